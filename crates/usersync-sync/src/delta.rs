//! Incremental runs (issue 21): read a connector's change feed since the stored watermarks and
//! merge the changes onto the stored copy of the source, so that the rest of the pipeline (policy,
//! plan, safety gates, apply) sees a complete snapshot exactly as after a full read.
//!
//! The store keeps, per connection, the source as the provider last described it (users, groups
//! and direct memberships before the policy: [`SourceObject`]s) and the feeds' watermarks. Both
//! are written by [`FeedOutcome::changes`] in the apply transaction of the run that read them, so
//! a run that is killed, fails, is blocked or is a dry run leaves them as they were and the next
//! run reads the same changes again (a change seen twice is applied once: the merge is by id).
//!
//! A full run happens when there is no watermark yet, when `full_every` has elapsed since the last
//! full run, on `sync --full`, when the policy changed, and whenever a feed cannot answer from its
//! watermark (`FeedEntry::Resync`): never "nothing changed".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use usersync_config::{PhotoMode, Policy};
use usersync_model::{FeedEntry, GroupKind, MemberRef, Membership, PhotoHint, Record, User};
use usersync_sdk::{Operation, Query};
use usersync_store::{Change, SourceObject, Store, StoreError};

use crate::fetch::{fetch, FetchContext, Route, Snapshot, TransitiveSource};
use crate::runner::{FailureKind, QueryRunner};

/// Watermark keys besides the feeds' own.
const FULL_AT: &str = "_full_at_ms";
const POLICY: &str = "_policy";
const USERS: &str = "users";
const GROUPS: &str = "groups";

/// Which kind of run read the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Every listing was read.
    Full,
    /// Only the change feeds since the stored watermarks.
    Incremental,
}

impl RunKind {
    /// `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
        }
    }
}

/// How a connection may use its change feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// Feeds are used at all (false: every run is full and no feed state is kept).
    pub enabled: bool,
    /// The connection asked for feeds itself (`incremental = true`), rather than by default: only
    /// then does a run say why it cannot use them (roles as groups, a hierarchy without a
    /// groups feed).
    pub requested: bool,
    /// A full run when the last one is older than this.
    pub full_every: Duration,
    /// This run is full whatever the watermarks say (`sync --full`).
    pub force_full: bool,
}

impl FeedSettings {
    /// No feeds: every run is a full one (explain, tests, connectors without feeds).
    pub fn disabled() -> Self {
        FeedSettings {
            enabled: false,
            requested: false,
            full_every: Duration::from_secs(24 * 3600),
            force_full: false,
        }
    }
}

/// What reading the source decided and what to store with the run.
#[derive(Debug, Clone, Default)]
pub struct FeedOutcome {
    /// The kind of run (None: feeds not used).
    pub kind: Option<RunKind>,
    /// Why this run is full although feeds are used.
    pub full_reason: Option<String>,
    /// Feed state to write in the apply transaction when the run applies with a complete read.
    pub changes: Vec<Change>,
}

/// Whether the connector and the policy allow incremental runs, and if not why.
fn unsupported(spec_manifest: &usersync_sdk::Manifest, policy: &Policy) -> Option<&'static str> {
    let caps = spec_manifest.capabilities;
    if !caps.incremental || !spec_manifest.supports(Operation::UsersDelta) {
        return Some("the connector has no change feed");
    }
    // a groups feed of a connector with a hierarchy reports hierarchy changes itself (Keycloak)
    if caps.nested_groups
        && spec_manifest.supports(Operation::GroupChildren)
        && !spec_manifest.supports(Operation::GroupsDelta)
    {
        return Some("group hierarchies are read in full");
    }
    if policy.roles_as_groups && caps.roles_as_groups {
        return Some("roles are read in full");
    }
    None
}

fn policy_hash(policy: &Policy) -> String {
    let text = format!("{policy:?}");
    Sha256::digest(text.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn link_key(m: &Membership) -> String {
    let (k, id) = match &m.member {
        MemberRef::User(id) => ("u", id.as_str()),
        MemberRef::Group(id) => ("g", id.as_str()),
        MemberRef::AllUsers => ("a", ""),
    };
    format!("{}\u{1f}{k}:{id}", m.group_id)
}

fn put_user(u: &User) -> Result<Change, serde_json::Error> {
    Ok(Change::PutSource(SourceObject {
        kind: "user".into(),
        id: u.id.clone(),
        body: serde_json::to_string(u)?,
    }))
}

fn put_group(g: &usersync_model::Group) -> Result<Change, serde_json::Error> {
    Ok(Change::PutSource(SourceObject {
        kind: "group".into(),
        id: g.id.clone(),
        body: serde_json::to_string(g)?,
    }))
}

fn put_link(m: &Membership) -> Result<Change, serde_json::Error> {
    Ok(Change::PutSource(SourceObject {
        kind: "link".into(),
        id: link_key(m),
        body: serde_json::to_string(m)?,
    }))
}

fn remove(kind: &str, id: String) -> Change {
    Change::RemoveSource {
        kind: kind.into(),
        id,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the store says about a connection's feeds, read before anything is fetched (so that no
/// store handle is held while the fetch awaits).
pub enum Prepared {
    /// Feeds are not used: a plain full fetch (with a warning when the connector has feeds).
    Off(Option<&'static str>),
    /// A full run that takes the watermarks, with the reason.
    Full {
        /// Why the run is full.
        reason: String,
        /// The groups feed is used.
        groups_feed: bool,
        /// The policy's fingerprint.
        hash: String,
    },
    /// An incremental run from the stored watermarks and source copy.
    Incremental {
        /// Watermarks by feed.
        stored: BTreeMap<String, String>,
        /// The stored source copy.
        cache: Box<Snapshot>,
        /// The groups feed is used.
        groups_feed: bool,
        /// The policy's fingerprint.
        hash: String,
    },
}

/// Decide the kind of run of a connection from its stored feed state (store reads only).
pub fn prepare<S: Store + ?Sized>(
    store: &S,
    connection: &str,
    manifest: &usersync_sdk::Manifest,
    policy: &Policy,
    feed: &FeedSettings,
) -> Prepared {
    if !feed.enabled {
        return Prepared::Off(None);
    }
    if let Some(why) = unsupported(manifest, policy) {
        return Prepared::Off(feed.requested.then_some(why));
    }
    let stored = match store.watermarks(connection) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(connection, "stored watermarks unreadable: {e}");
            BTreeMap::new()
        }
    };
    let groups_feed = manifest.supports(Operation::GroupsDelta) && manifest.supports(Operation::ListGroups);
    let hash = policy_hash(policy);
    let due = stored
        .get(FULL_AT)
        .and_then(|v| v.parse::<i64>().ok())
        .map(|at| now_ms().saturating_sub(at) >= feed.full_every.as_millis() as i64);
    let reason = if feed.force_full {
        Some("a full run was asked for (--full)".to_string())
    } else if !stored.contains_key(USERS) || (groups_feed && !stored.contains_key(GROUPS)) {
        Some("no watermark yet (first run with the change feed)".to_string())
    } else if due != Some(false) {
        Some("full_every has elapsed since the last full run".to_string())
    } else if stored.get(POLICY) != Some(&hash) {
        Some("the connection's policy changed since the last full run".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        return Prepared::Full {
            reason,
            groups_feed,
            hash,
        };
    }
    match load(store, connection) {
        Ok(cache) => Prepared::Incremental {
            stored,
            cache: Box::new(cache),
            groups_feed,
            hash,
        },
        Err(why) => Prepared::Full {
            reason: why,
            groups_feed,
            hash,
        },
    }
}

/// Read the source of one connection as [`prepare`] decided: incrementally when the feeds allow
/// it, else in full (taking the feeds' watermarks first). The snapshot is complete exactly as a
/// full fetch's would be.
pub async fn fetch_source<R: QueryRunner>(
    runner: Arc<R>,
    ctx: &FetchContext<'_>,
    prepared: Prepared,
) -> (Snapshot, FeedOutcome) {
    match prepared {
        Prepared::Off(why) => {
            let mut snap = fetch(runner, ctx).await;
            if let Some(why) = why {
                snap.warnings
                    .push(format!("incremental runs are off for this connection: {why}"));
            }
            (snap, FeedOutcome::default())
        }
        Prepared::Full {
            reason,
            groups_feed,
            hash,
        } => {
            let (snap, mut out) = full(runner, ctx, groups_feed, &hash).await;
            out.full_reason = Some(reason);
            (snap, out)
        }
        Prepared::Incremental {
            stored,
            cache,
            groups_feed,
            hash,
        } => match incremental(*cache, Arc::clone(&runner), ctx, &stored, groups_feed).await {
            Ok(done) => done,
            Err(why) => {
                tracing::warn!("incremental run falls back to a full run: {why}");
                let (mut snap, mut out) = full(runner, ctx, groups_feed, &hash).await;
                snap.warnings
                    .push(format!("full run instead of incremental: {why}"));
                out.full_reason = Some(why);
                (snap, out)
            }
        },
    }
}

/// A full read, with the feeds' watermarks taken before it (a change made during the listing is
/// read again by the next incremental run: harmless).
async fn full<R: QueryRunner>(
    runner: Arc<R>,
    ctx: &FetchContext<'_>,
    groups_feed: bool,
    policy_hash: &str,
) -> (Snapshot, FeedOutcome) {
    let started = now_ms();
    let mut marks = BTreeMap::new();
    let mut seed_requests = 0;
    let mut seed_error = None;
    let mut feeds = vec![(USERS, Query::UsersDelta { since: None })];
    if groups_feed {
        feeds.push((GROUPS, Query::GroupsDelta { since: None }));
    }
    for (name, q) in feeds {
        match runner.run(q).await {
            Ok(r) => {
                seed_requests += r.requests;
                match r.records.last() {
                    Some(Record::Feed(FeedEntry::Watermark(w))) => {
                        marks.insert(name.to_string(), w.clone());
                    }
                    _ => seed_error = Some(format!("the {name} feed gave no watermark")),
                }
            }
            Err(f) => {
                seed_requests += f.requests;
                seed_error = Some(format!(
                    "the {name} feed's watermark could not be read: {}",
                    f.message
                ));
            }
        }
    }
    let mut snap = fetch(runner, ctx).await;
    snap.requests += seed_requests;
    let mut out = FeedOutcome {
        kind: Some(RunKind::Full),
        ..FeedOutcome::default()
    };
    if let Some(e) = seed_error {
        snap.warnings.push(format!("{e}; the next run is a full one too"));
        return (snap, out);
    }
    let complete_links = matches!(
        snap.route,
        Some(Route::PerGroup | Route::UserListing | Route::None)
    );
    if !snap.complete || !complete_links {
        return (snap, out);
    }
    match encode_full(&snap, &marks, policy_hash, started) {
        Ok(changes) => out.changes = changes,
        Err(e) => snap.warnings.push(format!(
            "the source copy could not be encoded ({e}); the next run is a full one too"
        )),
    }
    (snap, out)
}

fn encode_full(
    snap: &Snapshot,
    marks: &BTreeMap<String, String>,
    policy_hash: &str,
    started: i64,
) -> Result<Vec<Change>, serde_json::Error> {
    let mut changes = Vec::with_capacity(snap.users.len() + snap.groups.len() + snap.direct.len() + 4);
    changes.push(Change::ResetFeed);
    for u in snap.users.values() {
        changes.push(put_user(u)?);
    }
    for g in snap.groups.values() {
        changes.push(put_group(g)?);
    }
    for m in &snap.direct {
        changes.push(put_link(m)?);
    }
    for (feed, value) in marks.iter().map(|(k, v)| (k.clone(), v.clone())).chain([
        (FULL_AT.to_string(), started.to_string()),
        (POLICY.to_string(), policy_hash.to_string()),
    ]) {
        changes.push(Change::PutWatermark { feed, value });
    }
    Ok(changes)
}

/// The stored source copy as a snapshot.
fn load<S: Store + ?Sized>(store: &S, connection: &str) -> Result<Snapshot, String> {
    let mut snap = Snapshot {
        complete: true,
        ..Snapshot::default()
    };
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("source copy: {e}"));
    store
        .source_objects(connection, &mut |o| {
            match o.kind.as_str() {
                "user" => {
                    let u: User = serde_json::from_str(&o.body).map_err(corrupt)?;
                    snap.users.insert(u.id.clone(), u);
                }
                "group" => {
                    let g: usersync_model::Group = serde_json::from_str(&o.body).map_err(corrupt)?;
                    snap.groups.insert(g.id.clone(), g);
                }
                "link" => {
                    let m: Membership = serde_json::from_str(&o.body).map_err(corrupt)?;
                    snap.direct.insert(m);
                }
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "source copy: unknown kind `{other}`"
                    )))
                }
            }
            Ok(())
        })
        .map_err(|e| format!("the stored source copy is unreadable: {e}"))?;
    Ok(snap)
}

/// What the feeds changed, to write back with the run.
#[derive(Default)]
struct Merge {
    users: BTreeSet<String>,
    removed_users: BTreeSet<String>,
    groups: BTreeSet<String>,
    removed_groups: BTreeSet<String>,
    members_changed: BTreeSet<String>,
    links_added: BTreeSet<Membership>,
    links_removed: BTreeSet<Membership>,
    marks: BTreeMap<String, String>,
    /// The connector's memberships come with its user listing (OneLogin's `group_id`): a user
    /// read from the feed replaces its direct memberships with the ones that follow it.
    user_owns_links: bool,
}

impl Merge {
    fn unlink(&mut self, snap: &mut Snapshot, m: &Membership) {
        let m = Membership {
            direct: true,
            ..m.clone()
        };
        if snap.direct.remove(&m) {
            self.links_removed.insert(m.clone());
        }
        self.links_added.remove(&m);
    }

    fn link(&mut self, snap: &mut Snapshot, m: Membership) {
        let m = Membership { direct: true, ..m };
        self.links_removed.remove(&m);
        if snap.direct.insert(m.clone()) {
            self.links_added.insert(m);
        }
    }

    fn drop_links(&mut self, snap: &mut Snapshot, pred: impl Fn(&Membership) -> bool) {
        let gone: Vec<Membership> = snap.direct.iter().filter(|m| pred(m)).cloned().collect();
        for m in gone {
            self.unlink(snap, &m);
        }
    }

    /// Apply one feed's records in order; returns `Err` with the reason when the feed asks for a
    /// full read.
    fn apply(&mut self, snap: &mut Snapshot, feed: &str, records: Vec<Record>) -> Result<bool, String> {
        let mut watermark = None;
        for rec in records {
            watermark = None;
            match rec {
                Record::User(mut u) => {
                    // a feed record that does not say who the manager is (Graph sends
                    // `manager@delta` only when the manager changed) keeps the stored one
                    if !u.manager_known && u.manager.is_none() {
                        if let Some(old) = snap.users.get(&u.id) {
                            u.manager = old.manager.clone();
                            u.manager_known = old.manager_known;
                        }
                    }
                    if self.user_owns_links {
                        let id = u.id.clone();
                        self.drop_links(snap, |m| matches!(&m.member, MemberRef::User(x) if *x == id));
                    }
                    self.removed_users.remove(&u.id);
                    self.users.insert(u.id.clone());
                    snap.users.insert(u.id.clone(), u);
                }
                Record::Group(g) => {
                    self.removed_groups.remove(&g.id);
                    self.groups.insert(g.id.clone());
                    snap.groups.insert(g.id.clone(), g);
                }
                Record::Membership(m) => self.link(snap, m),
                Record::Manager { user_id, manager } => {
                    snap.managers.insert(user_id, manager);
                }
                Record::Photo(p) => {
                    snap.photos.insert(p.user_id.clone(), Some(p));
                }
                Record::Feed(FeedEntry::UserRemoved { id, .. }) => {
                    self.users.remove(&id);
                    snap.users.remove(&id);
                    self.drop_links(snap, |m| matches!(&m.member, MemberRef::User(u) if *u == id));
                    self.removed_users.insert(id);
                }
                Record::Feed(FeedEntry::GroupRemoved { id, .. }) => {
                    self.groups.remove(&id);
                    snap.groups.remove(&id);
                    self.drop_links(snap, |m| {
                        m.group_id == id || matches!(&m.member, MemberRef::Group(g) if *g == id)
                    });
                    self.removed_groups.insert(id);
                }
                Record::Feed(FeedEntry::MembershipRemoved(m)) => self.unlink(snap, &m),
                Record::Feed(FeedEntry::MembersChanged { group_id }) => {
                    self.members_changed.insert(group_id);
                }
                Record::Feed(FeedEntry::Watermark(w)) => watermark = Some(w),
                Record::Feed(FeedEntry::Resync { reason }) => {
                    return Err(format!("the {feed} feed asks for a full read: {reason}"))
                }
            }
        }
        match watermark {
            Some(w) => {
                self.marks.insert(feed.to_string(), w);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn changes(&self, snap: &Snapshot) -> Result<Vec<Change>, serde_json::Error> {
        let mut out = Vec::new();
        for id in &self.users {
            if let Some(u) = snap.users.get(id) {
                out.push(put_user(u)?);
            }
        }
        out.extend(self.removed_users.iter().map(|id| remove("user", id.clone())));
        for id in &self.groups {
            if let Some(g) = snap.groups.get(id) {
                out.push(put_group(g)?);
            }
        }
        out.extend(self.removed_groups.iter().map(|id| remove("group", id.clone())));
        out.extend(self.links_removed.iter().map(|m| remove("link", link_key(m))));
        for m in &self.links_added {
            out.push(put_link(m)?);
        }
        for (feed, value) in &self.marks {
            out.push(Change::PutWatermark {
                feed: feed.clone(),
                value: value.clone(),
            });
        }
        Ok(out)
    }
}

/// An incremental read. `Err`: the feeds cannot be used this time (a full run follows).
async fn incremental<R: QueryRunner>(
    mut snap: Snapshot,
    runner: Arc<R>,
    ctx: &FetchContext<'_>,
    stored: &BTreeMap<String, String>,
    groups_feed: bool,
) -> Result<(Snapshot, FeedOutcome), String> {
    let before = runner.requests();
    let mut merge = Merge {
        user_owns_links: ctx.manifest.capabilities.memberships_in_user_listing,
        ..Merge::default()
    };
    let mut feeds = vec![(
        USERS,
        Query::UsersDelta {
            since: stored.get(USERS).cloned(),
        },
    )];
    if groups_feed {
        feeds.push((
            GROUPS,
            Query::GroupsDelta {
                since: stored.get(GROUPS).cloned(),
            },
        ));
    }
    ctx.progress.phase("reading the change feeds", feeds.len() as u64);
    for (name, q) in feeds {
        snap.queries += 1;
        match runner.run(q).await {
            Ok(r) => {
                snap.requests += r.requests;
                ctx.progress.query_done(r.records.len() as u64);
                if !merge.apply(&mut snap, name, r.records)? {
                    snap.complete = false;
                    snap.errors.push(format!(
                        "the {name} feed ended without a watermark (incomplete read)"
                    ));
                }
            }
            Err(f) => {
                snap.requests += f.requests;
                ctx.progress.query_done(0);
                snap.complete = false;
                snap.errors
                    .push(format!("query {name}_delta failed: {}", f.message));
            }
        }
    }
    ctx.progress.phase_done();
    reread_members(&runner, ctx, &mut snap, &mut merge).await;
    optional(&runner, ctx, &mut snap, &merge).await;
    if let (Some(b), Some(a)) = (before, runner.requests()) {
        snap.requests = a.saturating_sub(b);
    }
    let nested = ctx.manifest.capabilities.nested_groups || ctx.manifest.capabilities.transitive_membership;
    snap.route = Some(if ctx.manifest.capabilities.memberships_in_user_listing {
        Route::UserListing
    } else {
        Route::PerGroup
    });
    snap.transitive = Some(if nested {
        TransitiveSource::Computed
    } else {
        TransitiveSource::NotNested
    });
    let mut out = FeedOutcome {
        kind: Some(RunKind::Incremental),
        ..FeedOutcome::default()
    };
    if snap.complete {
        out.changes = merge
            .changes(&snap)
            .map_err(|e| format!("the source copy could not be encoded: {e}"))?;
    }
    Ok((snap, out))
}

/// Re-read the direct members of groups whose feed said only "members changed".
async fn reread_members<R: QueryRunner>(
    runner: &Arc<R>,
    ctx: &FetchContext<'_>,
    snap: &mut Snapshot,
    merge: &mut Merge,
) {
    let todo: Vec<String> = merge
        .members_changed
        .iter()
        .filter(|g| snap.groups.get(*g).is_some_and(|g| g.kind == GroupKind::Group))
        .cloned()
        .collect();
    if todo.is_empty() {
        return;
    }
    ctx.progress
        .phase("re-reading changed groups' members", todo.len() as u64);
    for group_id in todo {
        snap.queries += 1;
        match runner
            .run(Query::GroupMembers {
                group_id: group_id.clone(),
            })
            .await
        {
            Ok(r) => {
                snap.requests += r.requests;
                ctx.progress.query_done(r.records.len() as u64);
                merge.drop_links(snap, |m| m.group_id == group_id);
                for rec in r.records {
                    if let Record::Membership(m) = rec {
                        merge.link(snap, m);
                    }
                }
            }
            Err(f) if f.kind == FailureKind::NotFound => {
                snap.requests += f.requests;
                snap.warnings.push(format!(
                    "group {group_id} was not found when its members were re-read (deleted during the run?): \
                     its memberships are left as they are; the next run reconciles"
                ));
                snap.vanished_groups.insert(group_id);
            }
            Err(f) => {
                snap.requests += f.requests;
                snap.complete = false;
                snap.errors
                    .push(format!("query group_members({group_id}) failed: {}", f.message));
            }
        }
    }
    ctx.progress.phase_done();
}

/// Managers and photos: asked for the changed users only; every other user keeps what the store
/// has (as for a user whose manager or photo query failed).
async fn optional<R: QueryRunner>(
    runner: &Arc<R>,
    ctx: &FetchContext<'_>,
    snap: &mut Snapshot,
    merge: &Merge,
) {
    let (m, policy) = (ctx.manifest, ctx.policy);
    let mut qs = Vec::new();
    for u in snap.users.values() {
        if !merge.users.contains(&u.id) {
            snap.optional_failed.insert(u.id.clone());
            continue;
        }
        if policy.managers
            && m.capabilities.manager
            && m.supports(Operation::UserManager)
            && u.manager.is_none()
            && !u.manager_known
            && !snap.managers.contains_key(&u.id)
        {
            qs.push(Query::UserManager {
                user_id: u.id.clone(),
            });
        }
        if policy.photos != PhotoMode::Off
            && m.capabilities.photos
            && m.supports(Operation::UserPhoto)
            && u.status.state.is_active()
        {
            let wanted = match &u.photo {
                Some(PhotoHint::None) => false,
                Some(PhotoHint::Version(v)) => ctx.photo_versions.get(&u.id) != Some(v),
                None => true,
            };
            if wanted {
                qs.push(Query::UserPhoto {
                    user_id: u.id.clone(),
                });
            }
        }
    }
    for q in qs {
        snap.queries += 1;
        match runner.run(q.clone()).await {
            Ok(r) => {
                snap.requests += r.requests;
                for rec in r.records {
                    match rec {
                        Record::Manager { user_id, manager } => {
                            snap.managers.insert(user_id, manager);
                        }
                        Record::Photo(p) => {
                            snap.photos.insert(p.user_id.clone(), Some(p));
                        }
                        _ => {}
                    }
                }
            }
            Err(f) => {
                snap.requests += f.requests;
                match (&f.kind, &q) {
                    (FailureKind::NotFound, Query::UserManager { user_id }) => {
                        snap.managers.insert(user_id.clone(), None);
                    }
                    (FailureKind::NotFound, Query::UserPhoto { user_id }) => {
                        snap.photos.insert(user_id.clone(), None);
                    }
                    (_, Query::UserManager { user_id } | Query::UserPhoto { user_id }) => {
                        snap.optional_failed.insert(user_id.clone());
                        snap.complete = false;
                        snap.errors.push(format!(
                            "query {} failed: {}",
                            crate::fetch::describe(&q),
                            f.message
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User::new(
            id,
            format!("{id}@x"),
            usersync_model::UserStatus::new(usersync_model::UserState::Active, "A"),
        )
    }

    #[test]
    fn merge_applies_in_order_and_reports_what_to_store() {
        let mut snap = Snapshot::default();
        snap.users.insert("u1".into(), user("u1"));
        snap.users.insert("u2".into(), user("u2"));
        snap.groups
            .insert("g1".into(), usersync_model::Group::new("g1", "Staff"));
        snap.direct.insert(Membership::direct_user("g1", "u1"));
        snap.direct.insert(Membership::direct_user("g1", "u2"));
        let mut m = Merge::default();
        let ok = m
            .apply(
                &mut snap,
                "users",
                vec![
                    Record::User(user("u3")),
                    Record::Feed(FeedEntry::UserRemoved {
                        id: "u2".into(),
                        permanent: false,
                    }),
                    Record::Membership(Membership::direct_user("g1", "u3")),
                    Record::Feed(FeedEntry::MembershipRemoved(Membership::direct_user("g1", "u1"))),
                    Record::Feed(FeedEntry::Watermark("w2".into())),
                ],
            )
            .expect("no resync");
        assert!(ok, "ends with a watermark");
        assert_eq!(snap.users.keys().collect::<Vec<_>>(), ["u1", "u3"]);
        assert_eq!(
            snap.direct.iter().cloned().collect::<Vec<_>>(),
            vec![Membership::direct_user("g1", "u3")]
        );
        let changes = m.changes(&snap).expect("encode");
        assert!(changes.contains(&remove("user", "u2".into())));
        assert!(changes.contains(&remove("link", link_key(&Membership::direct_user("g1", "u1")))));
        assert!(changes.contains(&remove("link", link_key(&Membership::direct_user("g1", "u2")))));
        assert!(changes.contains(&Change::PutWatermark {
            feed: "users".into(),
            value: "w2".into()
        }));
        // a feed without its final watermark is incomplete; a resync is an error, not "no change"
        let mut m = Merge::default();
        assert_eq!(
            m.apply(&mut snap, "users", vec![Record::User(user("u4"))]),
            Ok(false)
        );
        let resync = vec![Record::Feed(FeedEntry::Resync {
            reason: "syncStateNotFound".into(),
        })];
        assert!(m.apply(&mut snap, "groups", resync).is_err());
    }

    #[test]
    fn a_feed_user_without_manager_information_keeps_the_stored_manager() {
        let mut snap = Snapshot::default();
        let mut stored = user("u1");
        stored.manager = Some(usersync_model::ManagerRef::Id("m1".into()));
        snap.users.insert("u1".into(), stored.clone());
        snap.users.insert("u2".into(), stored.clone());
        let mut renamed = user("u1");
        renamed.display_name = Some("Renamed".into());
        // u2's record says the manager was removed (`manager@delta` with `@removed`)
        let mut cleared = user("u2");
        cleared.manager_known = true;
        let mut m = Merge::default();
        let records = vec![
            Record::User(renamed),
            Record::User(cleared),
            Record::Feed(FeedEntry::Watermark("w".into())),
        ];
        assert_eq!(m.apply(&mut snap, "users", records), Ok(true));
        assert_eq!(
            snap.users["u1"].manager, stored.manager,
            "unknown: the stored one stays"
        );
        assert_eq!(snap.users["u1"].display_name.as_deref(), Some("Renamed"));
        assert_eq!(snap.users["u2"].manager, None, "a known removal applies");
    }
}
