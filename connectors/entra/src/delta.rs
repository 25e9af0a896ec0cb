//! Graph delta queries (issue 21): `GET /users/delta` and `GET /groups/delta` (with
//! `members@delta`), the change feed of incremental runs.
//!
//! Microsoft's delta query overview (microsoft-graph-docs `concepts/delta-query-overview.md`):
//! parameters go on the first request only and are encoded in the tokens; pages carry
//! `@odata.nextLink` (`$skiptoken`) until the last one, which carries `@odata.deltaLink`
//! (`$deltatoken`), stored whole as the watermark and never parsed; `$deltatoken=latest` answers
//! only a deltaLink (the watermark taken before a full listing); a removed object is
//! `{"id", "@removed": {"reason": "changed" | "deleted"}}` (`changed`: soft-deleted, restorable);
//! `members@delta` lists added members and, with `@removed`, removed ones; a token older than
//! the directory's limit (7 days) or reset by the service is answered with `410 Gone` or an
//! error code such as `syncStateNotFound` / `resyncRequired`: a full read is needed.

use serde_json::{Map, Value};
use usersync_sdk::model::{FeedEntry, MemberRef, Membership, Record};
use usersync_sdk::paging::parse_json;
use usersync_sdk::{Batch, ConnectorError, HttpRequest, HttpResponse, PageParser, ParsedPage};

use crate::api::{DirectoryObject, GraphGroup, GraphUser};
use crate::map::{self, ErrorContext};
use crate::{EntraSession, GROUP_SELECT, PERM_MEMBERS, PERM_USERS};
use usersync_sdk::{Cursor, PagedCursor, Paging, Query};

/// A delta query's cursor: from the stored deltaLink, or `$deltatoken=latest`.
pub(crate) fn cursor(session: &EntraSession, query: &Query, since: Option<&str>) -> Box<dyn Cursor> {
    let (feed, select, what, permission) = match query {
        Query::UsersDelta { .. } => {
            let mut select = session.user_select.clone();
            select.push("manager".into());
            (Feed::Users, select, "reading the users delta", PERM_USERS)
        }
        _ => {
            let mut select: Vec<String> = GROUP_SELECT.iter().map(|s| s.to_string()).collect();
            select.push("members".into());
            (Feed::Groups, select, "reading the groups delta", PERM_MEMBERS)
        }
    };
    let prefix = format!("{}/", session.graph_base);
    let seed = first_request(&session.api_root(), feed, &select, true);
    let (first, resync) = match since {
        None => (seed, None),
        Some(link) if link.starts_with(&prefix) => (HttpRequest::get(link.to_string()), None),
        // never send the token elsewhere; start over instead (one request, then a full run)
        Some(_) => (
            seed,
            Some("the stored watermark is not a Graph delta link on this tenant's Graph host".to_string()),
        ),
    };
    let parser = DeltaParser {
        feed,
        err: ErrorContext {
            what: what.into(),
            permission,
            query_option: None,
        },
        graph_prefix: prefix,
        resync,
    };
    Box::new(PagedCursor::new(first, Paging::ODataNextLink, parser))
}

/// Graph error codes that mean "this delta token cannot be used any more: start over".
const RESYNC_CODES: &[&str] = &["syncstatenotfound", "resyncrequired", "syncstateinvalid"];

/// Which collection a delta query tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `/users/delta`.
    Users,
    /// `/groups/delta` with `members`.
    Groups,
}

/// The first request of a delta query: the stored deltaLink, or a new round.
/// `latest`: only the current token (`$deltatoken=latest`).
pub fn first_request(root: &str, feed: Feed, select: &[String], latest: bool) -> HttpRequest {
    let path = match feed {
        Feed::Users => "users",
        Feed::Groups => "groups",
    };
    let mut url = format!("{root}/{path}/delta?$select={}", select.join(","));
    if latest {
        url.push_str("&$deltatoken=latest");
    }
    HttpRequest::get(url)
}

/// Parses delta pages. `graph_prefix` (`https://graph.microsoft.com/`): every next and delta
/// link must start with it (our bearer token goes there). `resync`: the stored watermark was
/// unusable before any request (answer `Resync` whatever the response).
pub struct DeltaParser {
    /// Users or groups.
    pub feed: Feed,
    /// What is being read, the permission it needs.
    pub err: ErrorContext,
    /// Prefix of acceptable links.
    pub graph_prefix: String,
    /// Answer `Resync` to the first response, with this reason.
    pub resync: Option<String>,
}

impl DeltaParser {
    fn link(&self, what: &str, link: Option<&Value>) -> Result<Option<String>, ConnectorError> {
        match link {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(l)) if l.starts_with(&self.graph_prefix) => Ok(Some(l.clone())),
            Some(Value::String(l)) => Err(ConnectorError::protocol(format!(
                "{}: {what} `{}` is not on {}; refusing to send credentials there",
                self.err.what,
                usersync_sdk::paging::redact_url(l),
                self.graph_prefix
            ))),
            Some(_) => Err(ConnectorError::protocol(format!(
                "{}: {what} is not a string",
                self.err.what
            ))),
        }
    }

    fn item(&self, mut obj: Map<String, Value>, batch: &mut Batch) -> Result<(), ConnectorError> {
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ConnectorError::protocol(format!(
                    "{}: an item has no `id`",
                    self.err.what
                )))
            }
        };
        if let Some(removed) = obj.get("@removed") {
            let permanent = removed.get("reason").and_then(Value::as_str) == Some("deleted");
            batch.records.push(Record::Feed(match self.feed {
                Feed::Users => FeedEntry::UserRemoved { id, permanent },
                Feed::Groups => FeedEntry::GroupRemoved { id, permanent },
            }));
            return Ok(());
        }
        let manager = obj.remove("manager@delta");
        let members = obj.remove("members@delta");
        let obj: Map<String, Value> = obj
            .into_iter()
            .filter(|(k, _)| !k.starts_with('@') && !k.contains("@odata."))
            .collect();
        match self.feed {
            Feed::Users => {
                let wire: GraphUser = serde_json::from_value(Value::Object(obj))
                    .map_err(|e| ConnectorError::protocol(format!("{}: user `{id}`: {e}", self.err.what)))?;
                let (mut user, _) = map::user(wire, false, batch)?;
                if let Some(Value::Array(entries)) = manager {
                    // the last entry is the current manager; `@removed` on it: none
                    let current = entries.last().and_then(|e| {
                        if e.get("@removed").is_some() {
                            return None;
                        }
                        let o: DirectoryObject = serde_json::from_value(e.clone()).ok()?;
                        map::manager_ref(&o, batch)
                    });
                    user.manager = current.clone();
                    user.manager_known = true;
                    batch.records.push(Record::User(user));
                    batch.records.push(Record::Manager {
                        user_id: id,
                        manager: current,
                    });
                } else {
                    batch.records.push(Record::User(user));
                }
            }
            Feed::Groups => {
                // a group whose only change is its members comes back without its properties:
                // its stored copy stays, only the membership changes apply
                if obj.get("displayName").is_some_and(|v| !v.is_null()) {
                    let wire: GraphGroup = serde_json::from_value(Value::Object(obj)).map_err(|e| {
                        ConnectorError::protocol(format!("{}: group `{id}`: {e}", self.err.what))
                    })?;
                    batch.records.push(Record::Group(map::group(wire)?));
                }
                if let Some(Value::Array(entries)) = members {
                    for e in entries {
                        self.member(&id, e, batch);
                    }
                }
            }
        }
        Ok(())
    }

    fn member(&self, group_id: &str, e: Value, batch: &mut Batch) {
        let removed = e.get("@removed").is_some();
        let Ok(o) = serde_json::from_value::<DirectoryObject>(e) else {
            batch.skip("unknown");
            return;
        };
        let kind = o.kind().map(str::to_string);
        let member = match (kind.as_deref(), o.id) {
            (Some("user"), Some(id)) if !id.is_empty() => MemberRef::User(id),
            (Some("group"), Some(id)) if !id.is_empty() => MemberRef::Group(id),
            (kind, _) => {
                batch.skip(kind.unwrap_or("unknown"));
                return;
            }
        };
        let m = Membership {
            group_id: group_id.to_string(),
            member,
            direct: true,
        };
        batch.records.push(if removed {
            Record::Feed(FeedEntry::MembershipRemoved(m))
        } else {
            Record::Membership(m)
        });
    }
}

fn resync(reason: String) -> ParsedPage {
    ParsedPage::new(Batch::of(vec![Record::Feed(FeedEntry::Resync { reason })]), None)
}

impl PageParser for DeltaParser {
    fn parse(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        if let Some(reason) = self.resync.take() {
            return Ok(resync(reason));
        }
        let page: Map<String, Value> = parse_json(r, &self.err.what)?;
        let next = self.link("@odata.nextLink", page.get("@odata.nextLink"))?;
        let delta = self.link("@odata.deltaLink", page.get("@odata.deltaLink"))?;
        let items = match page.get("value") {
            Some(Value::Array(items)) => items.clone(),
            _ => {
                return Err(ConnectorError::protocol(format!(
                    "{}: the page has no `value` array",
                    self.err.what
                )))
            }
        };
        let item_count = items.len();
        let mut batch = Batch::default();
        for item in items {
            match item {
                Value::Object(obj) => self.item(obj, &mut batch)?,
                _ => {
                    return Err(ConnectorError::protocol(format!(
                        "{}: an item is not an object",
                        self.err.what
                    )))
                }
            }
        }
        match (next, delta) {
            (Some(next), _) => Ok(ParsedPage {
                batch,
                next: Some(next),
                item_count,
            }),
            (None, Some(delta)) => {
                batch.records.push(Record::Feed(FeedEntry::Watermark(delta)));
                Ok(ParsedPage {
                    batch,
                    next: None,
                    item_count,
                })
            }
            (None, None) => Err(ConnectorError::protocol(format!(
                "{}: a delta page has neither @odata.nextLink nor @odata.deltaLink",
                self.err.what
            ))),
        }
    }

    fn on_error(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        if let Some(reason) = self.resync.take() {
            return Ok(resync(reason));
        }
        let code = map::graph_error_code(r).unwrap_or_default();
        if r.status == 410 || RESYNC_CODES.contains(&code.to_ascii_lowercase().as_str()) {
            let what = if code.is_empty() { "Gone".to_string() } else { code };
            return Ok(resync(format!(
                "Graph answered HTTP {} {what} to the stored delta link (expired or reset): a full read is needed",
                r.status
            )));
        }
        Err(map::graph_error(r, &self.err))
    }
}
