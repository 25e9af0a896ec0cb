//! Keycloak change feeds (issue 21) from the realm's admin events,
//! `GET /admin/realms/{realm}/admin-events` (Admin REST OpenAPI 26.8.1: `resourceTypes`,
//! `dateFrom` as epoch milliseconds, `direction=asc`, `first`/`max`).
//!
//! - Both feeds first read `GET /events/config`: with `adminEventsEnabled` off Keycloak records
//!   nothing, so the feed answers `Resync` (a full run), never "nothing changed". Taking the
//!   current position (before a full run) is one request: the newest events (`direction=desc`).
//! - Users feed: `USER` and `GROUP_MEMBERSHIP` events. A changed user is re-read
//!   (`GET /users/{id}`); a user created or whose memberships changed has its direct groups re-read
//!   (`GET /users/{id}/groups`): every current group is reported and every group an event named
//!   that the user is no longer in is reported removed, so the result does not depend on event
//!   order. `DELETE users/{id}` reports the user removed (the host's gates decide what follows).
//! - Groups feed: `GROUP` events. A changed group is re-read (`GET /groups/{id}`) with its whole
//!   sub-tree (a rename changes every descendant's path); a sub-group created under a parent
//!   (`CREATE groups/{parentId}/children`) re-reads that parent's children. A deleted group
//!   (Keycloak deletes its sub-groups with it and records one event) and a moved group (the event
//!   names only the new parent) answer `Resync`.
//! - The watermark is the time of the newest event read (on Keycloak's clock) and the ids of the
//!   events read within [`SKEW_MARGIN_MS`] before it. The next read starts [`SKEW_MARGIN_MS`]
//!   earlier (clock skew between cluster nodes, events committed after later ones) and skips the
//!   ids already read. The newest event (the anchor) must still be there: if it is not, the events
//!   expired (`adminEventsExpiration`) or were cleared, and the feed answers `Resync`.
//!
//! Not visible: changes made by user federation (LDAP, Kerberos) and by users themselves (account
//! console, first broker login, registration): Keycloak records no admin event for them. Full runs
//! (`full_every`) reconcile them.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use serde::Deserialize;
use usersync_model::{FeedEntry, Membership, Record};
use usersync_sdk::paging::{join_url, parse_json};
use usersync_sdk::{Batch, ConnectorError, Cursor, HttpRequest, HttpResponse, Operation, Query};

use crate::api::GroupRep;
use crate::errors::admin_error;
use crate::KeycloakSession;

/// How far before the newest event read the next read starts: 2 minutes.
pub const SKEW_MARGIN_MS: i64 = 2 * 60 * 1000;
/// Watermark text: `keycloak-admin-events:<ms or ->:<anchor id>,<id>,...`.
const PREFIX: &str = "keycloak-admin-events:";
/// Event ids kept in a watermark.
const MAX_SEEN: usize = 256;
/// Pages of events read at most in one query.
const MAX_EVENT_PAGES: u64 = 10_000;

/// Which feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Users and their direct memberships.
    Users,
    /// Groups (and the hierarchy).
    Groups,
}

impl Feed {
    fn resource_types(self) -> &'static [&'static str] {
        match self {
            Feed::Users => &["USER", "GROUP_MEMBERSHIP"],
            Feed::Groups => &["GROUP"],
        }
    }

    fn operation(self) -> Operation {
        match self {
            Feed::Users => Operation::UsersDelta,
            Feed::Groups => Operation::GroupsDelta,
        }
    }
}

/// A parsed watermark.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mark {
    /// Time of the newest event read, epoch ms (`None`: no event was recorded yet).
    pub time: Option<i64>,
    /// Ids of the events read within the margin before `time`, the newest (the anchor) first.
    pub seen: Vec<String>,
}

impl Mark {
    /// Parse a stored watermark; `None` when it is not one of ours.
    pub fn parse(w: &str) -> Option<Mark> {
        let (t, ids) = w.strip_prefix(PREFIX)?.split_once(':')?;
        let seen: Vec<String> = ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if t == "-" {
            return seen.is_empty().then_some(Mark { time: None, seen });
        }
        let time: i64 = t.parse().ok()?;
        (!seen.is_empty() && time >= 0).then_some(Mark {
            time: Some(time),
            seen,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        match self.time {
            Some(t) => format!("{PREFIX}{t}:{}", self.seen.join(",")),
            None => format!("{PREFIX}-:"),
        }
    }

    /// From the events of one read (any order): the newest first, those within the margin.
    fn from_events(events: &[(i64, String)]) -> Option<Mark> {
        let newest = events.iter().map(|(t, _)| *t).max()?;
        let mut recent: Vec<&(i64, String)> = events
            .iter()
            .filter(|(t, _)| *t >= newest - SKEW_MARGIN_MS)
            .collect();
        recent.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut seen = Vec::new();
        let mut dup = HashSet::new();
        for (_, id) in recent {
            if dup.insert(id.as_str()) && seen.len() < MAX_SEEN {
                seen.push(id.clone());
            }
        }
        Some(Mark {
            time: Some(newest),
            seen,
        })
    }
}

/// `AdminEventRepresentation` (the fields read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRep {
    id: Option<String>,
    time: i64,
    operation_type: Option<String>,
    resource_type: Option<String>,
    resource_path: Option<String>,
    error: Option<String>,
}

/// `RealmEventsConfigRepresentation` (the field read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsConfig {
    admin_events_enabled: Option<bool>,
}

/// What the events said about one user.
#[derive(Debug, Default)]
struct UserTouch {
    changed: bool,
    created: bool,
    groups: BTreeSet<String>,
}

/// A re-read still to do.
#[derive(Debug)]
enum Job {
    User(String),
    UserGroups {
        user: String,
        named: BTreeSet<String>,
    },
    Group(String),
    Subtree {
        id: String,
        path: Option<String>,
        count: u64,
    },
    Children(String),
}

/// The re-read in progress.
enum Running {
    /// A query cursor of this connector; `got`: the group ids a user-groups read returned.
    Sub {
        job: Job,
        cursor: Box<dyn Cursor>,
        got: BTreeSet<String>,
    },
    /// `GET /groups/{id}`.
    Group { id: String, request: HttpRequest },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Config,
    Events,
    Reread,
    Done,
}

/// A users or groups feed query.
pub(crate) struct AdminEventsCursor {
    session: KeycloakSession,
    feed: Feed,
    /// `None`: the current watermark only; `Some(None)`: an unreadable watermark.
    since: Option<Option<Mark>>,
    phase: Phase,
    first: u64,
    pages: u64,
    last_time: Option<i64>,
    anchor_found: bool,
    read: Vec<(i64, String)>,
    resync: Option<String>,
    users: BTreeMap<String, UserTouch>,
    removed_users: BTreeSet<String>,
    groups: BTreeSet<String>,
    children_of: BTreeSet<String>,
    jobs: VecDeque<Job>,
    running: Option<Running>,
    /// Groups read in this query.
    emitted: HashSet<String>,
    /// Groups whose children were listed in this query.
    walked: HashSet<String>,
}

fn resync(reason: impl Into<String>) -> Batch {
    Batch::of(vec![Record::Feed(FeedEntry::Resync {
        reason: reason.into(),
    })])
}

impl AdminEventsCursor {
    /// A feed query from `since` (a stored watermark) or, with `None`, for the current watermark.
    pub(crate) fn new(session: &KeycloakSession, feed: Feed, since: Option<&str>) -> Self {
        AdminEventsCursor {
            session: session.clone(),
            feed,
            since: since.map(Mark::parse),
            // the current position needs no config check: a realm that does not record admin
            // events is noticed by the next incremental read, which then falls back to full
            phase: if since.is_none() {
                Phase::Events
            } else {
                Phase::Config
            },
            first: 0,
            pages: 0,
            last_time: None,
            anchor_found: false,
            read: Vec::new(),
            resync: None,
            users: BTreeMap::new(),
            removed_users: BTreeSet::new(),
            groups: BTreeSet::new(),
            children_of: BTreeSet::new(),
            jobs: VecDeque::new(),
            running: None,
            emitted: HashSet::new(),
            walked: HashSet::new(),
        }
    }

    fn seeding(&self) -> bool {
        self.since.is_none()
    }

    fn mark(&self) -> Option<&Mark> {
        self.since.as_ref().and_then(Option::as_ref)
    }

    fn events_url(&self) -> Result<String, ConnectorError> {
        let base = join_url(&self.session.admin, &["admin-events"])?;
        let mut url =
            url::Url::parse(&base).map_err(|e| ConnectorError::protocol(format!("admin events URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for t in self.feed.resource_types() {
                q.append_pair("resourceTypes", t);
            }
            match self.mark().and_then(|m| m.time) {
                _ if self.seeding() => {
                    q.append_pair("direction", "desc");
                }
                Some(t) => {
                    q.append_pair("dateFrom", &(t - SKEW_MARGIN_MS).max(0).to_string());
                    q.append_pair("direction", "asc");
                }
                None => {
                    q.append_pair("direction", "asc");
                }
            }
            q.append_pair("first", &self.first.to_string());
            q.append_pair("max", &self.session.page_size.to_string());
        }
        Ok(url.into())
    }

    fn what(&self, path: &str) -> String {
        format!("GET {}/{path}", self.session.admin)
    }

    /// A failed feed request: a stored watermark falls back to a full run when the realm or the
    /// permission is missing; other failures are errors (retried by the host when transient).
    fn feed_error(&self, response: &HttpResponse, path: &str) -> Result<Batch, ConnectorError> {
        let err = admin_error(response, self.feed.operation(), &self.what(path));
        if !self.seeding() && matches!(response.status, 403 | 404) {
            return Ok(resync(format!(
                "the admin events cannot be read ({err}): grant the realm-management role `view-events`"
            )));
        }
        Err(err)
    }

    fn on_config(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if !response.is_success() {
            let out = self.feed_error(&response, "events/config");
            if out.is_ok() {
                self.phase = Phase::Done;
            }
            return out;
        }
        let cfg: EventsConfig = parse_json(&response, &self.what("events/config"))?;
        if cfg.admin_events_enabled != Some(true) {
            self.phase = Phase::Done;
            return Ok(resync(
                "the realm does not record admin events (`adminEventsEnabled` is off: Realm settings > Events > \
                 Admin events settings > Save events)",
            ));
        }
        if matches!(self.since, Some(None)) {
            self.phase = Phase::Done;
            return Ok(resync(
                "the stored watermark is not a Keycloak admin-events position",
            ));
        }
        self.phase = Phase::Events;
        Ok(Batch::default())
    }

    fn on_events(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if !response.is_success() {
            let out = self.feed_error(&response, "admin-events");
            if out.is_ok() {
                self.phase = Phase::Done;
            }
            return out;
        }
        let events: Vec<EventRep> = parse_json(&response, &self.what("admin-events"))?;
        let mut page = Vec::with_capacity(events.len());
        for e in &events {
            let Some(id) = e.id.clone().filter(|s| !s.is_empty()) else {
                return Err(ConnectorError::protocol(
                    "an admin event has no `id`: this Keycloak is too old for the change feed (turn `incremental` off)",
                ));
            };
            page.push((e.time, id));
        }
        if self.seeding() {
            self.phase = Phase::Done;
            let mark = Mark::from_events(&page).unwrap_or_default();
            return Ok(Batch::of(vec![Record::Feed(FeedEntry::Watermark(mark.encode()))]));
        }
        let seen: HashSet<String> = self
            .mark()
            .map(|m| m.seen.iter().cloned().collect())
            .unwrap_or_default();
        let anchor = self.mark().and_then(|m| m.seen.first().cloned());
        for (e, (time, id)) in events.iter().zip(&page) {
            if self.last_time.is_some_and(|t| *time < t) {
                return Err(ConnectorError::protocol(
                    "admin events did not come oldest first: this Keycloak ignores `direction=asc` (turn \
                     `incremental` off)",
                ));
            }
            self.last_time = Some(*time);
            if anchor.as_deref() == Some(id.as_str()) {
                self.anchor_found = true;
            }
            if !seen.contains(id) {
                self.classify(e);
            }
        }
        self.read.extend(page);
        self.pages += 1;
        let n = events.len() as u64;
        if n >= self.session.page_size && n > 0 {
            if self.pages >= MAX_EVENT_PAGES {
                return Err(ConnectorError::protocol(format!(
                    "admin events: stopped after {} pages (bound reached)",
                    self.pages
                )));
            }
            self.first += n;
            return Ok(Batch::default());
        }
        // the last page
        if let (Some(t), false) = (self.mark().and_then(|m| m.time), self.anchor_found) {
            let reason = format!(
                "the newest admin event read last time (at {t} ms) is no longer recorded: the events expired \
                 (`adminEventsExpiration`) or were cleared"
            );
            self.phase = Phase::Done;
            return Ok(resync(reason));
        }
        if let Some(reason) = self.resync.take() {
            self.phase = Phase::Done;
            return Ok(resync(reason));
        }
        self.plan_jobs();
        self.phase = Phase::Reread;
        self.advance()
    }

    /// Note what one new event changed.
    fn classify(&mut self, e: &EventRep) {
        let op = e.operation_type.as_deref().unwrap_or("");
        let path = e.resource_path.as_deref().unwrap_or("");
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let failed = e.error.as_deref().is_some_and(|s| !s.is_empty());
        match (e.resource_type.as_deref(), segs.as_slice()) {
            (Some("USER"), ["users", id, rest @ ..]) if !id.is_empty() => {
                if op == "DELETE" && rest.is_empty() && !failed {
                    self.removed_users.insert(id.to_string());
                } else {
                    let t = self.users.entry(id.to_string()).or_default();
                    t.changed = true;
                    t.created |= op == "CREATE" && rest.is_empty();
                }
            }
            (Some("GROUP_MEMBERSHIP"), ["users", uid, "groups", gid])
                if !uid.is_empty() && !gid.is_empty() =>
            {
                self.users
                    .entry(uid.to_string())
                    .or_default()
                    .groups
                    .insert(gid.to_string());
            }
            (Some("GROUP"), ["groups", id]) if !id.is_empty() => {
                if op == "DELETE" && !failed {
                    self.resync.get_or_insert_with(|| {
                        format!(
                            "group {id} was deleted (Keycloak deletes its sub-groups with it and records one event)"
                        )
                    });
                } else {
                    self.groups.insert(id.to_string());
                }
            }
            (Some("GROUP"), ["groups", parent, "children"]) if op == "CREATE" => {
                self.children_of.insert(parent.to_string());
            }
            (Some("GROUP"), ["groups", _, "children"]) => {
                self.resync.get_or_insert_with(|| {
                    format!("a group was moved (the event names only its new parent: {op} {path})")
                });
            }
            (Some("GROUP"), ["groups", id, _, ..]) if !id.is_empty() => {
                self.groups.insert(id.to_string());
            }
            (Some("GROUP"), _) => {
                self.resync.get_or_insert_with(|| {
                    format!("a group was moved or changed in a way the event does not identify ({op} {path})")
                });
            }
            (Some("USER") | Some("GROUP_MEMBERSHIP"), _) => {
                self.resync.get_or_insert_with(|| {
                    format!("an admin event names an unexpected resource ({op} {path})")
                });
            }
            _ => {}
        }
    }

    fn plan_jobs(&mut self) {
        for (id, t) in std::mem::take(&mut self.users) {
            if self.removed_users.contains(&id) {
                continue;
            }
            if t.changed {
                self.jobs.push_back(Job::User(id.clone()));
            }
            if t.created || !t.groups.is_empty() {
                self.jobs.push_back(Job::UserGroups {
                    user: id,
                    named: t.groups,
                });
            }
        }
        for id in std::mem::take(&mut self.groups) {
            self.jobs.push_back(Job::Group(id));
        }
        for id in std::mem::take(&mut self.children_of) {
            self.jobs.push_back(Job::Children(id));
        }
    }

    /// Start the next re-read, or end the query with the removals and the new watermark.
    fn advance(&mut self) -> Result<Batch, ConnectorError> {
        while let Some(job) = self.jobs.pop_front() {
            // a group read earlier in this query (a sub-tree walk reads every level) is current:
            // reading it or its children again would repeat a request of the same query
            match &job {
                Job::Group(id) if self.emitted.contains(id) => continue,
                Job::Subtree { id, .. } | Job::Children(id) if !self.walked.insert(id.clone()) => continue,
                _ => {}
            }
            let s = &self.session;
            let sub = |q: Query, job: Job| -> Result<Running, ConnectorError> {
                Ok(Running::Sub {
                    cursor: crate::cursor::open(s, &q)?,
                    job,
                    got: BTreeSet::new(),
                })
            };
            let running = match job {
                Job::Group(id) => Running::Group {
                    request: HttpRequest::get(s.admin_url(&["groups", &id])?),
                    id,
                },
                Job::Subtree {
                    ref id,
                    ref path,
                    count,
                } => Running::Sub {
                    cursor: Box::new(crate::cursor::GroupTree::subtree(
                        s,
                        id,
                        path.clone(),
                        count,
                        self.emitted.clone(),
                    )?),
                    job,
                    got: BTreeSet::new(),
                },
                Job::User(ref id) => sub(Query::GetUser { user_id: id.clone() }, job)?,
                Job::UserGroups { ref user, .. } => sub(
                    Query::UserGroups {
                        user_id: user.clone(),
                    },
                    job,
                )?,
                Job::Children(ref id) => sub(Query::GroupChildren { group_id: id.clone() }, job)?,
            };
            self.running = Some(running);
            return Ok(Batch::default());
        }
        self.running = None;
        self.phase = Phase::Done;
        let mut records: Vec<Record> = self
            .removed_users
            .iter()
            .map(|id| {
                Record::Feed(FeedEntry::UserRemoved {
                    id: id.clone(),
                    permanent: true,
                })
            })
            .collect();
        let mark = match Mark::from_events(&self.read) {
            Some(m) => m,
            None => self.mark().cloned().unwrap_or_default(),
        };
        records.push(Record::Feed(FeedEntry::Watermark(mark.encode())));
        Ok(Batch::of(records))
    }

    /// Remember the groups and children listings a batch of listings (sub-tree walks, children
    /// listings) covered: a group-in-group link of such a batch comes from its parent's listing.
    fn note(&mut self, batch: &Batch) {
        for r in &batch.records {
            match r {
                Record::Group(g) => {
                    self.emitted.insert(g.id.clone());
                }
                Record::Membership(m) if matches!(m.member, usersync_model::MemberRef::Group(_)) => {
                    self.walked.insert(m.group_id.clone());
                }
                _ => {}
            }
        }
    }

    fn on_reread(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        let Some(running) = self.running.as_mut() else {
            return Err(ConnectorError::protocol("response received after the feed ended"));
        };
        if response.status == 404 {
            let what = match running {
                Running::Group { id, .. } => format!("group {id}"),
                Running::Sub { job, .. } => format!("{job:?}"),
            };
            self.phase = Phase::Done;
            self.running = None;
            return Ok(resync(format!(
                "{what} changed but is not found now (deleted meanwhile?)"
            )));
        }
        let mut batch = match running {
            Running::Group { id, request } => {
                let what = format!("GET {}", request.url.split('?').next().unwrap_or(""));
                if !response.is_success() {
                    return Err(admin_error(&response, self.feed.operation(), &what));
                }
                let rep: GroupRep = parse_json(&response, &what)?;
                if rep.id != *id {
                    return Err(ConnectorError::protocol(format!(
                        "{what} returned group `{}` instead of `{id}`",
                        rep.id
                    )));
                }
                let depth = rep
                    .path
                    .as_deref()
                    .map(|p| p.trim_matches('/').split('/').count());
                if rep.sub_group_count.is_none() || (depth != Some(1) && rep.parent_id.is_none()) {
                    self.phase = Phase::Done;
                    self.running = None;
                    return Ok(resync(
                        "this Keycloak does not give a group's parent and sub-group count (before 23)",
                    ));
                }
                let group = crate::map::group(&rep, None);
                let mut records = Vec::new();
                if let Some(p) = &group.parent_id {
                    records.push(Record::Membership(Membership::direct_group(
                        p.clone(),
                        rep.id.clone(),
                    )));
                }
                if let Some(count) = rep.sub_group_count.filter(|c| *c > 0) {
                    self.jobs.push_front(Job::Subtree {
                        id: rep.id.clone(),
                        path: group.path.clone(),
                        count,
                    });
                }
                records.insert(0, Record::Group(group));
                self.running = None;
                // only the group itself was read: its parent's children were not listed
                self.emitted.insert(rep.id.clone());
                let mut b = Batch::of(records);
                let next = self.advance()?;
                b.records.extend(next.records);
                return Ok(b);
            }
            Running::Sub { cursor, got, .. } => {
                let batch = cursor.on_response(response)?;
                for r in &batch.records {
                    if let Record::Membership(m) = r {
                        got.insert(m.group_id.clone());
                    }
                }
                let more = cursor.next_request().is_some();
                self.note(&batch);
                if more {
                    return Ok(batch);
                }
                batch
            }
        };
        // the job is complete
        if let Some(Running::Sub {
            job: Job::UserGroups { user, named },
            got,
            ..
        }) = self.running.take()
        {
            for g in named.difference(&got) {
                batch.records.push(Record::Feed(FeedEntry::MembershipRemoved(
                    Membership::direct_user(g.clone(), user.clone()),
                )));
            }
        }
        let next = self.advance()?;
        batch.records.extend(next.records);
        Ok(batch)
    }
}

impl Cursor for AdminEventsCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        match self.phase {
            Phase::Done => None,
            Phase::Config => join_url(&self.session.admin, &["events", "config"])
                .ok()
                .map(HttpRequest::get),
            Phase::Events => self.events_url().ok().map(HttpRequest::get),
            Phase::Reread => match self.running.as_mut()? {
                Running::Group { request, .. } => Some(request.clone()),
                Running::Sub { cursor, .. } => cursor.next_request(),
            },
        }
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        match self.phase {
            Phase::Config => self.on_config(response),
            Phase::Events => self.on_events(response),
            Phase::Reread => self.on_reread(response),
            Phase::Done => Err(ConnectorError::protocol("response received after the feed ended")),
        }
    }
}

#[cfg(test)]
mod tests;
