//! The fetch planner: which queries to run, driven by the connector's capabilities and the
//! policy, run concurrently, collected into a [`Snapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use usersync_config::{MembershipRoute, Pattern, PhotoMode, Policy};
use usersync_model::{Group, GroupKind, ManagerRef, MemberRef, Membership, Photo, PhotoHint, Record, User};
use usersync_sdk::{Manifest, Operation, Query};

use crate::runner::{FailureKind, PageEvent, Progress, QueryFailure, QueryResult, QueryRunner};

/// How effective (transitive) memberships were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitiveSource {
    /// The provider has no nesting: effective = direct.
    NotNested,
    /// Computed here from direct group-in-group edges.
    Computed,
    /// Asked from the provider (server-side transitive queries).
    ServerSide,
    /// Nesting exists but could not be resolved (reported as a warning).
    Unavailable,
}

/// The membership route taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// One member listing per group.
    PerGroup,
    /// One group listing per user.
    PerUser,
    /// The user listing already carried every membership (capability
    /// `memberships_in_user_listing`, e.g. OneLogin's single `group_id`): no extra queries.
    UserListing,
    /// The connector lists no memberships.
    None,
}

/// Everything one fetch read from a connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Users by provider id.
    pub users: BTreeMap<String, User>,
    /// Groups and roles by provider id.
    pub groups: BTreeMap<String, Group>,
    /// Direct membership edges.
    pub direct: BTreeSet<Membership>,
    /// Server-side transitive user memberships (group id, user id), when used.
    pub server_transitive: BTreeSet<(String, String)>,
    /// Managers fetched with `user_manager` queries (None: no manager).
    pub managers: BTreeMap<String, Option<ManagerRef>>,
    /// Photos fetched (None: the user has none).
    pub photos: BTreeMap<String, Option<Photo>>,
    /// Users whose manager or photo query failed: keep what the store has.
    pub optional_failed: BTreeSet<String>,
    /// Groups (and roles) listed, then answered "not found" when their members or children
    /// were read: deleted while the run read them. Their memberships are left as stored.
    pub vanished_groups: BTreeSet<String>,
    /// Users listed, then answered "not found" when their groups were read (see
    /// [`Snapshot::vanished_groups`]).
    pub vanished_users: BTreeSet<String>,
    /// True when every query ended normally.
    pub complete: bool,
    /// Failed queries, one line each.
    pub errors: Vec<String>,
    /// Things the administrator should know (capability gaps, cycles).
    pub warnings: Vec<String>,
    /// HTTP requests made.
    pub requests: u64,
    /// The provider's rate-limit budget at its lowest during the fetch, when reported.
    pub rate_budget: Option<crate::runner::RateBudget>,
    /// Queries run.
    pub queries: u64,
    /// Objects skipped by the connector, by kind.
    pub skipped: BTreeMap<String, u64>,
    /// Membership route taken.
    pub route: Option<Route>,
    /// How effective memberships are obtained.
    pub transitive: Option<TransitiveSource>,
}

/// Inputs of a fetch.
pub struct FetchContext<'a> {
    /// The connector's manifest (capabilities and supported operations).
    pub manifest: &'a Manifest,
    /// The connection's policy.
    pub policy: &'a Policy,
    /// Queries in flight at once (the runtime also limits requests).
    pub concurrency: usize,
    /// The version of each stored photo that has one, by user id: a photo the listing gives
    /// the same version of is not fetched again.
    pub photo_versions: &'a BTreeMap<String, String>,
    /// Progress reporting.
    pub progress: &'a dyn Progress,
}

impl Snapshot {
    /// The snapshot without its records: completeness, errors, warnings and counters only
    /// (what the run needs after the policy has been applied).
    pub fn summary(self) -> Snapshot {
        Snapshot {
            complete: self.complete,
            errors: self.errors,
            warnings: self.warnings,
            requests: self.requests,
            rate_budget: self.rate_budget,
            queries: self.queries,
            skipped: self.skipped,
            route: self.route,
            transitive: self.transitive,
            ..Snapshot::default()
        }
    }

    fn absorb(
        &mut self,
        query: &Query,
        result: Result<QueryResult, QueryFailure>,
        staged: Staged,
        optional: bool,
    ) {
        self.queries += 1;
        match result {
            Ok(r) => {
                self.requests += r.requests;
                for (k, n) in r.skipped {
                    *self.skipped.entry(k).or_insert(0) += n;
                }
                for rec in r.records {
                    self.record(query, rec);
                }
                if self.users.is_empty() {
                    // the user listing: its map becomes the snapshot's, nothing is copied
                    self.users = staged.users;
                } else {
                    self.users.extend(staged.users);
                }
                for rec in staged.rest {
                    self.record(query, rec);
                }
            }
            Err(f) => {
                self.requests += f.requests;
                match (f.kind, query) {
                    (FailureKind::NotFound, Query::UserManager { user_id }) => {
                        self.managers.insert(user_id.clone(), None);
                    }
                    (FailureKind::NotFound, Query::UserPhoto { user_id }) => {
                        self.photos.insert(user_id.clone(), None);
                    }
                    // An object listed a moment ago and gone when its memberships are read:
                    // deleted during the run. Not a failure; its memberships stay as stored
                    // (see `desired::build`) and the next run reconciles.
                    (
                        FailureKind::NotFound,
                        Query::GroupMembers { group_id }
                        | Query::GroupTransitiveMembers { group_id }
                        | Query::GroupChildren { group_id }
                        | Query::RoleMembers { role_id: group_id },
                    ) => {
                        let name = self.groups.get(group_id).map_or(group_id.as_str(), |g| &g.name);
                        self.warnings.push(format!(
                            "group `{name}` ({group_id}) was not found when {} read it (deleted during \
                             the run?): its memberships are left as they are; the next run reconciles",
                            describe(query)
                        ));
                        self.vanished_groups.insert(group_id.clone());
                    }
                    (
                        FailureKind::NotFound,
                        Query::UserGroups { user_id } | Query::UserTransitiveGroups { user_id },
                    ) => {
                        let name = self.users.get(user_id).map_or(user_id.as_str(), |u| &u.username);
                        self.warnings.push(format!(
                            "user `{name}` ({user_id}) was not found when {} read it (deleted during \
                             the run?): its memberships are left as they are; the next run reconciles",
                            describe(query)
                        ));
                        self.vanished_users.insert(user_id.clone());
                    }
                    _ => {
                        if optional {
                            if let Query::UserManager { user_id } | Query::UserPhoto { user_id } = query {
                                self.optional_failed.insert(user_id.clone());
                            }
                        }
                        self.complete = false;
                        self.errors
                            .push(format!("query {} failed: {}", describe(query), f.message));
                    }
                }
            }
        }
    }

    fn record(&mut self, query: &Query, rec: Record) {
        match rec {
            Record::User(u) => {
                self.users.insert(u.id.clone(), u);
            }
            Record::Group(g) => {
                if let Some(parent) = &g.parent_id {
                    self.direct
                        .insert(Membership::direct_group(parent.clone(), g.id.clone()));
                }
                let entry = self.groups.entry(g.id.clone()).or_insert_with(|| g.clone());
                if entry.parent_id.is_none() {
                    entry.parent_id = g.parent_id.clone();
                }
            }
            Record::Membership(m) => {
                let transitive_query = matches!(
                    query,
                    Query::UserTransitiveGroups { .. } | Query::GroupTransitiveMembers { .. }
                );
                if transitive_query {
                    if let MemberRef::User(u) = &m.member {
                        self.server_transitive.insert((m.group_id.clone(), u.clone()));
                    }
                } else {
                    self.direct.insert(Membership { direct: true, ..m });
                }
            }
            Record::Manager { user_id, manager } => {
                self.managers.insert(user_id, manager);
            }
            Record::Photo(p) => {
                self.photos.insert(p.user_id.clone(), Some(p));
            }
            // Feed entries only come from delta queries, which `crate::delta` runs and merges.
            Record::Feed(_) => {}
        }
    }
}

/// A short, secret-free description of a query for messages.
pub fn describe(q: &Query) -> String {
    match q {
        Query::ListUsers | Query::ListGroups | Query::ListRoles => q.operation().to_string(),
        Query::GetUser { user_id }
        | Query::UserManager { user_id }
        | Query::UserGroups { user_id }
        | Query::UserTransitiveGroups { user_id }
        | Query::UserPhoto { user_id } => format!("{}({user_id})", q.operation()),
        Query::GroupMembers { group_id }
        | Query::GroupTransitiveMembers { group_id }
        | Query::GroupChildren { group_id } => format!("{}({group_id})", q.operation()),
        Query::RoleMembers { role_id } => format!("{}({role_id})", q.operation()),
        Query::UsersDelta { since } | Query::GroupsDelta { since } => match since {
            Some(_) => format!("{}(since the stored watermark)", q.operation()),
            None => format!("{}(current watermark)", q.operation()),
        },
    }
}

/// A query's records as its pages arrive: users straight into the map the snapshot takes over
/// (a user listing is never held as a list of records as well), everything else in order. A
/// failed query's are dropped, as if never read.
#[derive(Default)]
struct Staged {
    /// Users by provider id (a later record of the same id wins, as in the snapshot).
    users: BTreeMap<String, User>,
    /// Every other record, in the provider's order.
    rest: Vec<Record>,
    /// Records received.
    count: u64,
}

impl Staged {
    fn take(&mut self, event: PageEvent) {
        match event {
            PageEvent::Records(records) => {
                self.count += records.len() as u64;
                for rec in records {
                    match rec {
                        Record::User(u) => {
                            self.users.insert(u.id.clone(), u);
                        }
                        other => self.rest.push(other),
                    }
                }
            }
            PageEvent::Restart => *self = Staged::default(),
        }
    }
}

/// What a phase does with each query's result and records.
type Sink<'s> = dyn FnMut(Query, Result<QueryResult, QueryFailure>, Staged) + Send + 's;

/// Run a phase's queries concurrently and hand each result to `sink` in the order of
/// `queries` as soon as it and every query before it has ended: a query's records are absorbed
/// (and their buffer freed) while later queries still run, instead of the whole phase's
/// records waiting in memory. Results that end early wait for the ones before them, so the
/// snapshot is the same whatever the timing.
async fn run_all<R: QueryRunner>(
    runner: &Arc<R>,
    queries: Vec<Query>,
    ctx: &FetchContext<'_>,
    phase: &str,
    sink: &mut Sink<'_>,
) {
    ctx.progress.phase(phase, queries.len() as u64);
    let sem = Arc::new(Semaphore::new(ctx.concurrency.max(1)));
    let mut set = JoinSet::new();
    for (i, q) in queries.into_iter().enumerate() {
        let runner = Arc::clone(runner);
        let sem = Arc::clone(&sem);
        let span = tracing::debug_span!("query", query = %describe(&q));
        set.spawn(
            async move {
                let _permit = sem.acquire_owned().await;
                let mut staged = Staged::default();
                let r = runner.run_pages(q.clone(), &mut |page| staged.take(page)).await;
                (i, q, r, staged)
            }
            .instrument(span),
        );
    }
    let mut waiting: BTreeMap<usize, (Query, Result<QueryResult, QueryFailure>, Staged)> = BTreeMap::new();
    let mut next = 0usize;
    let mut panics = 0usize;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, q, r, staged)) => {
                let n = r.as_ref().map_or(0, |r| r.records.len() as u64 + staged.count);
                ctx.progress.query_done(n);
                waiting.insert(i, (q, r, staged));
            }
            Err(e) => {
                // A panicking runner task: surfaces as a failed query (the fetch is incomplete).
                // After every real query (they are numbered from 0), in the order they ended.
                panics += 1;
                waiting.insert(
                    usize::MAX / 2 + panics,
                    (
                        Query::ListUsers,
                        Err(QueryFailure::failed(format!("query task ended abnormally: {e}"))),
                        Staged::default(),
                    ),
                );
            }
        }
        while let Some((q, r, staged)) = waiting.remove(&next) {
            sink(q, r, staged);
            next += 1;
        }
    }
    ctx.progress.phase_done();
    for (_, (q, r, staged)) in waiting {
        sink(q, r, staged);
    }
}

/// Whether a group pattern of the policy matches a group. A pattern that starts with `/` matches
/// the group's full path where the provider has a hierarchy (Keycloak `/Eng/Members`: one of
/// several groups called `Members`), else the name; every other pattern matches the name.
pub fn pattern_matches_group(p: &Pattern, g: &Group) -> bool {
    match g.path.as_deref() {
        Some(path) if p.as_str().starts_with('/') => p.matches(path),
        _ => p.matches(&g.name),
    }
}

/// Whether the policy's `include_groups` / `exclude_groups` select a group (by name, or by path
/// for patterns starting with `/`).
pub fn group_selected(policy: &Policy, g: &Group) -> bool {
    let included =
        policy.include_groups.is_empty() || policy.include_groups.iter().any(|p| pattern_matches_group(p, g));
    included && !policy.exclude_groups.iter().any(|p| pattern_matches_group(p, g))
}

fn group_needed(policy: &Policy, g: &Group) -> bool {
    group_selected(policy, g)
        || policy
            .required_groups
            .iter()
            .any(|p| pattern_matches_group(p, g) || p.matches(&g.id))
}

/// Fetch everything the policy needs from one connection.
pub async fn fetch<R: QueryRunner>(runner: Arc<R>, ctx: &FetchContext<'_>) -> Snapshot {
    let m = ctx.manifest;
    let caps = m.capabilities;
    let policy = ctx.policy;
    let mut snap = Snapshot {
        complete: true,
        ..Snapshot::default()
    };

    // 1. listings
    let mut first = vec![Query::ListUsers];
    if m.supports(Operation::ListGroups) {
        first.push(Query::ListGroups);
    } else {
        snap.warnings
            .push(format!("connector `{}` cannot list groups", m.id));
    }
    let roles = policy.roles_as_groups && caps.roles_as_groups && m.supports(Operation::ListRoles);
    if policy.roles_as_groups && !roles {
        snap.warnings.push(format!(
            "roles_as_groups is set but connector `{}` cannot list roles",
            m.id
        ));
    }
    if roles {
        first.push(Query::ListRoles);
    }
    run_all(
        &runner,
        first,
        ctx,
        "listing users and groups",
        &mut |q, r, staged| snap.absorb(&q, r, staged, false),
    )
    .await;
    if !snap.complete {
        // Without complete listings nothing below can be trusted or is needed.
        return snap;
    }

    // 2. hierarchy (providers with child-group listings)
    let nested = caps.nested_groups || caps.transitive_membership;
    if caps.nested_groups && m.supports(Operation::GroupChildren) {
        let mut asked: BTreeSet<String> = BTreeSet::new();
        loop {
            let todo: Vec<String> = snap
                .groups
                .values()
                .filter(|g| g.kind == GroupKind::Group && !asked.contains(&g.id))
                .map(|g| g.id.clone())
                .collect();
            if todo.is_empty() {
                break;
            }
            asked.extend(todo.iter().cloned());
            let qs = todo
                .into_iter()
                .map(|group_id| Query::GroupChildren { group_id })
                .collect();
            run_all(&runner, qs, ctx, "listing child groups", &mut |q, r, staged| {
                snap.absorb(&q, r, staged, false)
            })
            .await;
            if !snap.complete {
                return snap;
            }
        }
    }

    // 3. memberships, by the cheapest route
    let groups: Vec<&Group> = snap
        .groups
        .values()
        .filter(|g| g.kind == GroupKind::Group)
        .collect();
    let per_group_ok = m.supports(Operation::GroupMembers);
    let per_user_ok = m.supports(Operation::UserGroups);
    let server_user_transitive = caps.transitive_membership && m.supports(Operation::UserTransitiveGroups);
    let route = match policy.membership_route {
        MembershipRoute::Auto if caps.memberships_in_user_listing => Route::UserListing,
        MembershipRoute::PerGroup if per_group_ok => Route::PerGroup,
        MembershipRoute::PerUser if per_user_ok => Route::PerUser,
        _ if per_group_ok && per_user_ok => {
            // Per-user listings hide nesting: only take them when nesting is resolvable, and
            // then only when there are fewer users than groups to list.
            if (nested && !server_user_transitive) || groups.len() <= snap.users.len() {
                Route::PerGroup
            } else {
                Route::PerUser
            }
        }
        _ if per_group_ok => Route::PerGroup,
        _ if per_user_ok => Route::PerUser,
        _ => Route::None,
    };
    if policy.membership_route != MembershipRoute::Auto
        && !matches!(
            (policy.membership_route, route),
            (MembershipRoute::PerGroup, Route::PerGroup) | (MembershipRoute::PerUser, Route::PerUser)
        )
    {
        snap.warnings.push(format!(
            "membership_route {:?} is not supported by connector `{}`; using {:?}",
            policy.membership_route, m.id, route
        ));
    }
    let mut qs = Vec::new();
    match route {
        Route::PerGroup => {
            for g in &groups {
                if nested || group_needed(policy, g) {
                    qs.push(Query::GroupMembers {
                        group_id: g.id.clone(),
                    });
                }
            }
        }
        Route::PerUser => {
            for u in snap.users.keys() {
                qs.push(Query::UserGroups { user_id: u.clone() });
                if nested && server_user_transitive {
                    qs.push(Query::UserTransitiveGroups { user_id: u.clone() });
                }
            }
        }
        Route::UserListing => {}
        Route::None => snap
            .warnings
            .push(format!("connector `{}` lists no memberships", m.id)),
    }
    if roles && m.supports(Operation::RoleMembers) {
        for r in snap.groups.values().filter(|g| g.kind == GroupKind::Role) {
            qs.push(Query::RoleMembers {
                role_id: r.id.clone(),
            });
        }
    }
    snap.route = Some(route);
    snap.transitive = Some(match (nested, route) {
        (false, _) => TransitiveSource::NotNested,
        (true, Route::PerGroup | Route::UserListing) => TransitiveSource::Computed,
        (true, Route::PerUser) if server_user_transitive => TransitiveSource::ServerSide,
        (true, _) => {
            snap.warnings.push(format!(
                "connector `{}` has nested groups but neither member listings nor transitive queries; \
                 inherited memberships are not resolved",
                m.id
            ));
            TransitiveSource::Unavailable
        }
    });
    run_all(&runner, qs, ctx, "listing memberships", &mut |q, r, staged| {
        snap.absorb(&q, r, staged, false)
    })
    .await;

    // 4. managers and photos, only when asked
    let mut optional = Vec::new();
    if policy.managers {
        if caps.manager && m.supports(Operation::UserManager) {
            // Only users whose listing did not say who the manager is are asked: a listing that
            // carries the manager field (`manager_known`) or a `Record::Manager` next to the user
            // already answered it, "no manager" included.
            let known = &snap.managers;
            for u in snap
                .users
                .values()
                .filter(|u| u.manager.is_none() && !u.manager_known && !known.contains_key(&u.id))
            {
                optional.push(Query::UserManager {
                    user_id: u.id.clone(),
                });
            }
        } else if !caps.manager {
            snap.warnings.push(format!(
                "managers = true but connector `{}` has no managers",
                m.id
            ));
        }
    }
    if policy.photos != PhotoMode::Off {
        if caps.photos && m.supports(Operation::UserPhoto) {
            // A listing that says "no photo" needs no request (the policy step clears a stored
            // photo for it); one that gives the photo's version needs one only for a version the
            // store does not have.
            for u in snap.users.values().filter(|u| u.status.state.is_active()) {
                let wanted = match &u.photo {
                    Some(PhotoHint::None) => false,
                    Some(PhotoHint::Version(v)) => ctx.photo_versions.get(&u.id) != Some(v),
                    None => true,
                };
                if wanted {
                    optional.push(Query::UserPhoto {
                        user_id: u.id.clone(),
                    });
                }
            }
        } else {
            snap.warnings.push(format!(
                "photos are enabled but connector `{}` has no photos",
                m.id
            ));
        }
    }
    if !optional.is_empty() {
        run_all(
            &runner,
            optional,
            ctx,
            "fetching managers and photos",
            &mut |q, r, staged| snap.absorb(&q, r, staged, true),
        )
        .await;
    }
    snap
}
