//! Graph delta queries (issue 21): `GET /{v}/users/delta` and `GET /{v}/groups/delta`, with
//! Microsoft's documented semantics (delta-query-overview): parameters on the first request only,
//! encoded in the tokens; `@odata.nextLink` (`$skiptoken`) on every page but the last, which has
//! `@odata.deltaLink` (`$deltatoken`); `$deltatoken=latest` answers only a deltaLink; created and
//! changed objects in full (the selected properties), removed ones as
//! `{"id","@removed":{"reason":"deleted"}}`; `manager@delta` when `manager` is selected and the
//! manager changed; `members@delta` (added members, and removed ones with `@removed`) when
//! `members` is selected, a group whose only change is its members coming back as its id and
//! `members@delta`; `$skiptoken` and `$deltatoken` together: 400; an expired or unknown token:
//! `410 Gone` with `syncStateNotFound` (see [`crate::feeds::FeedRounds::expire_all`]).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::*;
use crate::feeds::{Round, TokenError};

/// Items per delta page.
const DELTA_PAGE: usize = 200;

/// What a delta token stands for: the selection, and each object's state when it was issued.
#[derive(Debug, Default)]
struct Seen {
    select: Vec<String>,
    users: HashMap<u32, (u64, Option<u32>)>,
    groups: HashMap<u32, (u64, BTreeSet<u32>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Users,
    Groups,
}

fn hash_of(v: &Map<String, Value>) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn decode(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

struct DeltaParams {
    select: Option<Vec<String>>,
    deltatoken: Option<String>,
    skiptoken: Option<String>,
}

fn params(raw: Option<&str>) -> Result<DeltaParams, Response> {
    let mut p = DeltaParams {
        select: None,
        deltatoken: None,
        skiptoken: None,
    };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(k).to_ascii_lowercase().as_str() {
            "$select" => {
                p.select = Some(
                    decode(v)
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$deltatoken" => p.deltatoken = Some(decode(v)),
            "$skiptoken" => p.skiptoken = Some(decode(v)),
            "$expand" | "$orderby" | "$top" | "$search" => {
                return Err(bad_request(
                    "Request_UnsupportedQuery",
                    &format!(
                        "The query option '{}' is not supported with delta queries.",
                        decode(k)
                    ),
                ))
            }
            _ => {}
        }
    }
    if p.deltatoken.is_some() && p.skiptoken.is_some() {
        return Err(bad_request(
            "Request_BadRequest",
            "$skiptoken and $deltatoken cannot be used together.",
        ));
    }
    Ok(p)
}

fn expired() -> Response {
    graph_error(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation was not found. The delta token is expired or invalid: resync.",
    )
}

pub(super) async fn users_delta(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, &[USER_READ_ALL]));
    delta(&ctx, &base, &version, raw.as_deref(), Which::Users).await
}

pub(super) async fn groups_delta(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, GROUP_READ));
    delta(&ctx, &base, &version, raw.as_deref(), Which::Groups).await
}

async fn delta(ctx: &EmuContext, base: &str, version: &str, raw: Option<&str>, which: Which) -> Response {
    let p = or_respond!(params(raw));
    let path = match which {
        Which::Users => format!("/{version}/users/delta"),
        Which::Groups => format!("/{version}/groups/delta"),
    };
    let context = metadata(
        base,
        version,
        if which == Which::Users { "users" } else { "groups" },
    );
    if let Some(skip) = &p.skiptoken {
        let parsed = skip
            .split_once('_')
            .and_then(|(r, o)| Some((r.parse::<u64>().ok()?, o.parse::<usize>().ok()?)));
        let Some((round, offset)) = parsed else {
            return bad_request(
                "Directory_InvalidPageToken",
                "The specified page token value is invalid.",
            );
        };
        let Some(round) = ctx.feeds.round(round) else {
            return expired();
        };
        return page(base, &path, &context, &round, round_id(skip), offset);
    }
    let org = ctx.org.read().await;
    let previous: Option<std::sync::Arc<Seen>> = match p.deltatoken.as_deref() {
        None | Some("latest") => None,
        Some(t) => {
            let Ok(t) = t.parse::<u64>() else {
                return expired();
            };
            match ctx.feeds.state(t) {
                Ok(s) => match s.downcast::<Seen>() {
                    Ok(s) => Some(s),
                    Err(_) => return expired(),
                },
                Err(TokenError::Expired | TokenError::Unknown) => return expired(),
            }
        }
    };
    // parameters come from the first request; a token carries them on
    let select = match (&previous, &p.select) {
        (Some(prev), _) => prev.select.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => Vec::new(),
    };
    if previous.is_none() {
        let exts = extension_names(&org);
        let (known, kind, link): (&[&str], &str, &str) = match which {
            Which::Users => (USER_PROPS, "user", "manager"),
            Which::Groups => (GROUP_PROPS, "group", "members"),
        };
        let plain: Vec<String> = select.iter().filter(|s| *s != link).cloned().collect();
        if !plain.is_empty() {
            or_respond!(validate_select(&plain, known, &exts, kind));
        }
    }
    let (items, now) = diff(&org, which, &select, previous.as_deref());
    drop(org);
    let token = ctx.feeds.put_state(std::sync::Arc::new(now));
    if p.deltatoken.as_deref() == Some("latest") {
        let body = json!({
            "@odata.context": context,
            "@odata.deltaLink": format!("{base}{path}?$deltatoken={token}"),
            "value": [],
        });
        return ok(&body);
    }
    let round = ctx.feeds.put_round(Round {
        items,
        next_token: token,
    });
    let Some(r) = ctx.feeds.round(round) else {
        return expired();
    };
    page(base, &path, &context, &r, round, 0)
}

fn round_id(skip: &str) -> u64 {
    skip.split_once('_')
        .and_then(|(r, _)| r.parse().ok())
        .unwrap_or(0)
}

fn page(base: &str, path: &str, context: &str, round: &Round, id: u64, offset: usize) -> Response {
    let end = (offset + DELTA_PAGE).min(round.items.len());
    let values: Vec<Value> = round.items.get(offset..end).unwrap_or_default().to_vec();
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if end < round.items.len() {
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}{path}?$skiptoken={id}_{end}")),
        );
    } else {
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{base}{path}?$deltatoken={}", round.next_token)),
        );
    }
    body.insert("value".into(), Value::Array(values));
    ok(&Value::Object(body))
}

fn removed(id: String) -> Value {
    json!({"id": id, "@removed": {"reason": "deleted"}})
}

fn ref_object(org: &Org, key: u32, gone: bool) -> Value {
    let (kind, id) = if key >= OTHER_KEY {
        let v = other_object(org, key);
        let kind = v
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or("#microsoft.graph.directoryObject")
            .to_string();
        (kind, v.get("id").cloned().unwrap_or(Value::Null))
    } else if key >= GROUP_KEY {
        (
            "#microsoft.graph.group".to_string(),
            json!(group_id(org.seed, key & !GROUP_KEY)),
        )
    } else {
        ("#microsoft.graph.user".to_string(), json!(user_id(org.seed, key)))
    };
    let mut v = json!({"@odata.type": kind, "id": id});
    if gone {
        v["@removed"] = json!({"reason": "deleted"});
    }
    v
}

/// The items of a round against `previous` (None: the initial round, everything), and the
/// state after it.
fn diff(org: &Org, which: Which, select: &[String], previous: Option<&Seen>) -> (Vec<Value>, Seen) {
    let mut now = Seen {
        select: select.to_vec(),
        ..Seen::default()
    };
    let mut items = Vec::new();
    let empty = Seen::default();
    let prev = previous.unwrap_or(&empty);
    match which {
        Which::Users => {
            let track_manager = select.iter().any(|s| s == "manager");
            let plain: Vec<String> = select.iter().filter(|s| *s != "manager").cloned().collect();
            let sel = (!plain.is_empty()).then_some(plain.as_slice());
            for u in org.live_users() {
                let Value::Object(mut m) = user_value(org, u, sel, None) else {
                    continue;
                };
                m.entry("id").or_insert_with(|| json!(user_id(org.seed, u.ix)));
                let h = hash_of(&m);
                let manager = u.manager.filter(|ix| org.user(*ix).is_some());
                now.users.insert(u.ix, (h, manager));
                let old = prev.users.get(&u.ix);
                let manager_changed = track_manager && old.map(|o| o.1) != Some(manager);
                if old.map(|o| o.0) == Some(h) && !manager_changed {
                    continue;
                }
                if manager_changed {
                    let entry = match (manager, old.and_then(|o| o.1)) {
                        (Some(ix), _) => vec![ref_object(org, ix, false)],
                        (None, Some(was)) => vec![ref_object(org, was, true)],
                        (None, None) => vec![],
                    };
                    if !entry.is_empty() {
                        m.insert("manager@delta".into(), Value::Array(entry));
                    }
                }
                items.push(Value::Object(m));
            }
            for ix in prev.users.keys().filter(|ix| !now.users.contains_key(ix)) {
                items.push(removed(user_id(org.seed, *ix)));
            }
        }
        Which::Groups => {
            let track_members = select.iter().any(|s| s == "members");
            let plain: Vec<String> = select.iter().filter(|s| *s != "members").cloned().collect();
            let sel = (!plain.is_empty()).then_some(plain.as_slice());
            for g in org.live_groups() {
                let mut m = project(&group_full(org, g), sel, None);
                m.entry("id").or_insert_with(|| json!(group_id(org.seed, g.ix)));
                let h = hash_of(&m);
                let members: BTreeSet<u32> = if track_members {
                    member_keys(org, g, false).into_iter().collect()
                } else {
                    BTreeSet::new()
                };
                let old = prev.groups.get(&g.ix);
                let props_changed = old.map(|o| o.0) != Some(h);
                let none = BTreeSet::new();
                let old_members = old.map(|o| &o.1).unwrap_or(&none);
                let mut delta: Vec<Value> = members
                    .difference(old_members)
                    .map(|k| ref_object(org, *k, false))
                    .collect();
                delta.extend(
                    old_members
                        .difference(&members)
                        .map(|k| ref_object(org, *k, true)),
                );
                if props_changed || !delta.is_empty() {
                    if !props_changed {
                        m = Map::new();
                        m.insert("id".into(), json!(group_id(org.seed, g.ix)));
                    }
                    if track_members && !delta.is_empty() {
                        m.insert("members@delta".into(), Value::Array(delta));
                    }
                    items.push(Value::Object(m));
                }
                now.groups.insert(g.ix, (h, members));
            }
            for ix in prev.groups.keys().filter(|ix| !now.groups.contains_key(ix)) {
                items.push(removed(group_id(org.seed, *ix)));
            }
        }
    }
    (items, now)
}
