//! One run of one connection: fetch, plan, gates, apply, record. Dry runs take the same path
//! and stop before the apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use usersync_config::Policy;
use usersync_sdk::Manifest;
use usersync_store::{RunOutcome, RunStatus, Store, StoreError};

use crate::delta::{FeedOutcome, FeedSettings, RunKind};
use crate::desired;
use crate::fetch::{fetch, FetchContext, Snapshot};
use crate::links::StoredLinks;
use crate::plan::{diff_with_links, DiffContext, GroupAction, Plan, UserAction};
use crate::runner::{Progress, QueryRunner};

/// What one run needs to know about its connection.
pub struct RunSpec<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// The connector's manifest.
    pub manifest: &'a Manifest,
    /// The policy.
    pub policy: &'a Policy,
    /// Queries in flight at once.
    pub concurrency: usize,
    /// Compute and record the plan, apply nothing.
    pub dry_run: bool,
    /// Operator confirmation: allow up to this many deactivations+deletions past the gates.
    pub allow_deletes: Option<u64>,
}

/// Entries of each list of the plan kept in run history (see [`Plan::history_json`]).
pub const HISTORY_ENTRIES: usize = 1000;

/// User counts of a run (the JSON contract).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UserCounts {
    /// Created.
    pub created: u64,
    /// Updated.
    pub updated: u64,
    /// Renamed.
    pub renamed: u64,
    /// Reactivated.
    pub reactivated: u64,
    /// Deactivated.
    pub deactivated: u64,
    /// Deleted.
    pub deleted: u64,
    /// Unchanged.
    pub unchanged: u64,
}

/// Group counts of a run (renames count as updates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    /// Created.
    pub created: u64,
    /// Updated (renamed included).
    pub updated: u64,
    /// Deleted.
    pub deleted: u64,
    /// Unchanged.
    pub unchanged: u64,
}

/// Direct membership counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MembershipCounts {
    /// Added.
    pub added: u64,
    /// Removed.
    pub removed: u64,
}

/// The result of a run: exactly the JSON object `usersync sync --format json` prints per
/// connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Run id in the store's history (absent when the store could not record it).
    pub run_id: Option<i64>,
    /// Connection name.
    pub connection: String,
    /// `applied`, `dry_run`, `blocked` or `failed` (the store's [`RunStatus`], serialised as
    /// those words).
    pub status: RunStatus,
    /// User counts.
    pub users: UserCounts,
    /// Group counts.
    pub groups: GroupCounts,
    /// Membership counts.
    pub memberships: MembershipCounts,
    /// HTTP requests made.
    pub requests: u64,
    /// The provider's rate-limit budget at its lowest during the run, when its headers report
    /// one (Okta, OneLogin): how much of the budget this sync left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::runner::RateBudget>,
    /// Wall time.
    pub duration_ms: u64,
    /// Errors, conflicts and gate messages, one line each.
    pub errors: Vec<String>,
    /// The plan: every entry in `--format json` (table output prints at most `--limit` per list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// `full` or `incremental` when the connection uses change feeds (issue 21).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<RunKind>,
}

impl RunReport {
    /// A run that failed before it had a plan.
    pub fn failed(run_id: Option<i64>, connection: &str, error: String, started: Instant) -> RunReport {
        RunReport {
            run_id,
            connection: connection.to_string(),
            status: RunStatus::Failed,
            users: UserCounts::default(),
            groups: GroupCounts::default(),
            memberships: MembershipCounts::default(),
            requests: 0,
            rate_limit: None,
            duration_ms: started.elapsed().as_millis() as u64,
            errors: vec![error],
            plan: None,
            kind: None,
        }
    }
}

/// Record a run of `connection` that failed before anything was fetched (its client could not
/// be built: an unset secret, an invalid option, a refused plugin), so that run history shows
/// it with its reason. When the run cannot be recorded (another run holds the connection, the
/// store fails), the report says why and has no run id.
pub fn record_failed_start<S: Store + ?Sized>(
    store: &mut S,
    connection: &str,
    error: String,
    started: Instant,
) -> RunReport {
    let run_id = match store.begin_run(connection, now_ms()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(connection, "cannot record the failed run: {e}");
            let mut report = RunReport::failed(None, connection, error, started);
            report
                .errors
                .push(format!("this failure is not in run history: {e}"));
            return report;
        }
    };
    let report = RunReport::failed(Some(run_id), connection, error, started);
    record(store, run_id, &report, None, None);
    report
}

/// Counts of a plan.
pub fn counts(plan: &Plan) -> (UserCounts, GroupCounts, MembershipCounts) {
    (
        UserCounts {
            created: plan.count_users(UserAction::Created),
            updated: plan.count_users(UserAction::Updated),
            renamed: plan.count_users(UserAction::Renamed),
            reactivated: plan.count_users(UserAction::Reactivated),
            deactivated: plan.count_users(UserAction::Deactivated),
            deleted: plan.count_users(UserAction::Deleted),
            unchanged: plan.unchanged_users,
        },
        GroupCounts {
            created: plan.count_groups(GroupAction::Created),
            updated: plan.count_groups(GroupAction::Updated) + plan.count_groups(GroupAction::Renamed),
            deleted: plan.count_groups(GroupAction::Deleted),
            unchanged: plan.unchanged_groups,
        },
        MembershipCounts {
            added: plan.count_memberships("added"),
            removed: plan.count_memberships("removed"),
        },
    )
}

/// The safety gates on a complete fetch. Returns the reason to block, if any.
pub fn gate(
    plan: &Plan,
    policy: &Policy,
    last_source_users: Option<u64>,
    allow: Option<u64>,
) -> Option<String> {
    let removals = plan.removals();
    let confirmed = allow.is_some_and(|n| removals <= n);
    let override_hint = format!(
        "review with `usersync sync --dry-run --connection {}`, then confirm with `--allow-deletes {removals}`",
        plan.connection
    );
    // Part of the shrinking-source gate: `min_source_percent = 0` turns it off too.
    if plan.scope_emptied_by_policy() && policy.min_source_percent > 0.0 && !confirmed {
        let required: Vec<&crate::desired::UnmatchedPattern> = plan
            .unmatched_patterns
            .iter()
            .filter(|p| p.option == "required_groups")
            .collect();
        let why = if required.is_empty() {
            "the groups its required_groups match have no members".to_string()
        } else {
            let each: Vec<String> = required
                .iter()
                .map(|p| {
                    let close: Vec<String> = p.closest.iter().map(|n| format!("`{n}`")).collect();
                    if close.is_empty() {
                        format!("`{}`", p.pattern)
                    } else {
                        format!("`{}` (closest: {})", p.pattern, close.join(", "))
                    }
                })
                .collect();
            format!(
                "required_groups pattern(s) matching no group: {}",
                each.join(", ")
            )
        };
        return Some(format!(
            "blocked: the scope was emptied by policy: the source returned {} users and the connection's \
             policy leaves none of them in scope ({why}); this run would deactivate or delete {removals} \
             users; fix required_groups, or if an empty scope is intended, {override_hint}",
            plan.source_users
        ));
    }
    // the numeric gates are shared with push (one decision, each command's own words)
    use crate::push::gate::{crossed, Counts, Crossed, Limits};
    let limits = Limits {
        max_removals: policy.max_removals,
        max_removal_percent: policy.max_removal_percent,
        min_source_percent: policy.min_source_percent,
    };
    let counts = Counts {
        removals,
        active_before: plan.active_users_before,
        source_now: plan.source_users,
        source_before: last_source_users,
    };
    match crossed(&limits, &counts, confirmed)? {
        Crossed::Shrunk { now, before: prev } => Some(format!(
            "blocked: the source returned {now} users, fewer than {}% of the {prev} it returned last time \
             (min_source_percent); this run would deactivate or delete {removals} users; {override_hint}",
            policy.min_source_percent
        )),
        Crossed::TooManyRemovals { percent } => Some(format!(
            "blocked: this run would deactivate or delete {removals} of {} active users ({percent:.1}%), \
             above the limit of {} users or {}% (max_removals / max_removal_percent in the connection's \
             policy); {override_hint}",
            plan.active_users_before, policy.max_removals, policy.max_removal_percent
        )),
    }
}

/// Log the process's resident memory at a stage boundary (debug level, Linux only): what
/// `RUST_LOG=usersync_sync=debug` shows to see where a large sync's memory goes.
fn mem_probe(stage: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    tracing::debug!(
        stage,
        rss = %field("VmRSS:"),
        peak = %field("VmHWM:"),
        "memory after {stage}"
    );
}

/// Hand memory freed by a finished stage back to the operating system. The fetch allocates
/// its records on the runtime's worker threads, and glibc keeps what they free in those
/// threads' arenas, out of reach of the next stages (which run on another thread): without
/// this the peak RSS would be the sum of the stages instead of the largest pair of them.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the kernel;
    // it may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The fetch and the plan of a connection, without touching the store's data.
pub async fn plan_connection<R: QueryRunner, S: Store + ?Sized>(
    store: &S,
    runner: Arc<R>,
    spec: &RunSpec<'_>,
    progress: &dyn Progress,
) -> Result<(Snapshot, desired::Desired, Plan), StoreError> {
    let versions = photo_versions(store, spec);
    let (snapshot, wanted) = fetch_and_build(runner, spec, progress, &versions, true).await;
    let plan = plan_against_store(store, &wanted, &snapshot, snapshot.users.len() as u64, spec)?;
    Ok((snapshot, wanted, plan))
}

/// The versions of the connection's stored photos, when the policy syncs photos. A store that
/// cannot say only costs requests (every photo is fetched); a broken store fails the plan anyway.
fn photo_versions<S: Store + ?Sized>(store: &S, spec: &RunSpec<'_>) -> BTreeMap<String, String> {
    if spec.policy.photos == usersync_config::PhotoMode::Off {
        return BTreeMap::new();
    }
    store.photo_versions(spec.connection).unwrap_or_else(|e| {
        tracing::warn!(
            connection = spec.connection,
            "stored photo versions unreadable: {e}"
        );
        BTreeMap::new()
    })
}

/// Fetch, then apply the policy.
/// `keep_attributes`: the returned snapshot keeps its users' attributes (otherwise they are
/// moved into the wanted state).
async fn fetch_and_build<R: QueryRunner>(
    runner: Arc<R>,
    spec: &RunSpec<'_>,
    progress: &dyn Progress,
    photo_versions: &BTreeMap<String, String>,
    keep_attributes: bool,
) -> (Snapshot, desired::Desired) {
    let ctx = FetchContext {
        manifest: spec.manifest,
        policy: spec.policy,
        concurrency: spec.concurrency,
        photo_versions,
        progress,
    };
    let before = runner.requests();
    let mut snapshot = fetch(Arc::clone(&runner), &ctx).await;
    if let (Some(b), Some(a)) = (before, runner.requests()) {
        snapshot.requests = a.saturating_sub(b);
    }
    snapshot.rate_budget = runner.rate_budget();
    mem_probe("fetch");
    let _s = tracing::info_span!("policy").entered();
    let (snapshot, wanted) = if keep_attributes {
        let wanted = desired::build(&snapshot, spec.policy, spec.connection);
        (snapshot, wanted)
    } else {
        let (wanted, snapshot) = desired::build_consuming(snapshot, spec.policy, spec.connection);
        (snapshot, wanted)
    };
    mem_probe("policy");
    (snapshot, wanted)
}

/// Diff the wanted state against the store. `snapshot` only needs its summary fields
/// (completeness, warnings): see [`Snapshot::summary`].
fn plan_against_store<S: Store + ?Sized>(
    store: &S,
    wanted: &desired::Desired,
    snapshot: &Snapshot,
    source_users: u64,
    spec: &RunSpec<'_>,
) -> Result<Plan, StoreError> {
    let _s = tracing::info_span!("plan").entered();
    let mut links = StoredLinks::default();
    let stored = store.state_streaming(spec.connection, &mut |row| {
        links.add(&wanted.links, row);
        Ok(())
    })?;
    links.finish();
    let holders = store.username_holders()?;
    mem_probe("store read");
    let mut plan = diff_with_links(
        wanted,
        &stored,
        &links,
        &DiffContext {
            connection: spec.connection,
            policy: spec.policy,
            complete: snapshot.complete,
            holders: &holders,
            source_users,
        },
    );
    plan.warnings.extend(snapshot.warnings.iter().cloned());
    mem_probe("plan");
    Ok(plan)
}

/// Fetch (incrementally when the feeds allow), then apply the policy (consuming the snapshot).
async fn fetch_fed_and_build<R: QueryRunner>(
    prepared: crate::delta::Prepared,
    runner: Arc<R>,
    spec: &RunSpec<'_>,
    progress: &dyn Progress,
    photo_versions: &BTreeMap<String, String>,
) -> (Snapshot, desired::Desired, FeedOutcome) {
    let ctx = FetchContext {
        manifest: spec.manifest,
        policy: spec.policy,
        concurrency: spec.concurrency,
        photo_versions,
        progress,
    };
    let before = runner.requests();
    let (mut snapshot, fed) = crate::delta::fetch_source(Arc::clone(&runner), &ctx, prepared).await;
    if let (Some(b), Some(a)) = (before, runner.requests()) {
        snapshot.requests = a.saturating_sub(b);
    }
    snapshot.rate_budget = runner.rate_budget();
    mem_probe("fetch");
    let _s = tracing::info_span!("policy").entered();
    let (wanted, snapshot) = desired::build_consuming(snapshot, spec.policy, spec.connection);
    mem_probe("policy");
    (snapshot, wanted, fed)
}

/// Run one connection end to end, every run a full one. Store errors while recording are
/// returned as a failed report, never as a panic.
pub async fn run_connection<R: QueryRunner, S: Store + ?Sized>(
    store: &mut S,
    runner: Arc<R>,
    spec: &RunSpec<'_>,
    progress: &dyn Progress,
) -> RunReport {
    run_connection_with_feeds(store, runner, spec, &FeedSettings::disabled(), progress).await
}

/// Run one connection end to end, reading only its change feeds when `feed` and the stored
/// watermarks allow it (see [`crate::delta`]). Store errors while recording are returned as a
/// failed report, never as a panic.
pub async fn run_connection_with_feeds<R: QueryRunner, S: Store + ?Sized>(
    store: &mut S,
    runner: Arc<R>,
    spec: &RunSpec<'_>,
    feed: &FeedSettings,
    progress: &dyn Progress,
) -> RunReport {
    let started = Instant::now();
    let span = tracing::info_span!("sync", connection = spec.connection, dry_run = spec.dry_run);
    let _enter = span.enter();
    // Takes the connection's run lock before anything is fetched or read, so the plan is made
    // against the state it is applied to; a held connection fails here, recording nothing.
    let run_id = match store.begin_run(spec.connection, now_ms()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(connection = spec.connection, "{e}");
            return RunReport::failed(None, spec.connection, e.to_string(), started);
        }
    };
    drop(_enter);
    // Each stage's input is dropped as soon as the next stage has what it needs, so the peak
    // holds at most two of the snapshot, the wanted state, the stored state and the plan.
    let versions = photo_versions(&*store, spec);
    // the store is read before the fetch awaits (no store handle is held across it)
    let prepared = crate::delta::prepare(&*store, spec.connection, spec.manifest, spec.policy, feed);
    let (snapshot, wanted, fed) = fetch_fed_and_build(prepared, runner, spec, progress, &versions).await;
    drop(versions);
    let source_users = snapshot.users.len() as u64;
    let snapshot = snapshot.summary();
    release_freed_memory();
    let _enter = span.enter();
    let planned = plan_against_store(&*store, &wanted, &snapshot, source_users, spec);
    drop(wanted);
    release_freed_memory();
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            let report = RunReport::failed(Some(run_id), spec.connection, e.to_string(), started);
            record(store, run_id, &report, None, None);
            return report;
        }
    };
    let (users, groups, memberships) = counts(&plan);
    let mut errors: Vec<String> = snapshot.errors.clone();
    errors.extend(plan.conflicts.iter().map(|c| format!("conflict: {c}")));
    let last = match store.last_source_users(spec.connection) {
        Ok(v) => v,
        Err(e) => {
            let report = RunReport::failed(Some(run_id), spec.connection, e.to_string(), started);
            record(store, run_id, &report, Some(&plan), None);
            return report;
        }
    };
    let blocked = if snapshot.complete {
        gate(&plan, spec.policy, last, spec.allow_deletes)
    } else {
        if !plan.withheld.is_empty() {
            errors.push(format!(
                "the fetch was incomplete: {} destructive change(s) withheld (no deactivation, deletion or \
                 membership removal is applied on a partial read)",
                plan.withheld.len()
            ));
        }
        None
    };
    let status = match (&blocked, spec.dry_run, snapshot.complete) {
        (_, true, _) => RunStatus::DryRun,
        (Some(_), false, _) => RunStatus::Blocked,
        (None, false, false) => RunStatus::Failed,
        (None, false, true) => RunStatus::Applied,
    };
    if let Some(b) = &blocked {
        errors.push(if spec.dry_run {
            format!("would be {b}")
        } else {
            b.clone()
        });
    }
    let mut report = RunReport {
        run_id: Some(run_id),
        connection: spec.connection.to_string(),
        status,
        users,
        groups,
        memberships,
        requests: snapshot.requests,
        rate_limit: snapshot.rate_budget.clone(),
        duration_ms: 0,
        errors,
        plan: None,
        kind: fed.kind,
    };
    if let Some(why) = &fed.full_reason {
        tracing::info!(connection = spec.connection, "full run: {why}");
    }
    let source_users = snapshot.complete.then_some(plan.source_users);
    if status == RunStatus::Blocked {
        // Nothing is applied: the counts describe what would have happened. The gate's message
        // is in the report (said once, on stdout); the log says only that the run was blocked.
        tracing::info!(connection = spec.connection, "blocked by a safety gate");
    }
    let apply = matches!(status, RunStatus::Applied | RunStatus::Failed);
    report.duration_ms = started.elapsed().as_millis() as u64;
    // The feed state (watermarks, source copy) goes with an applied complete run only, in its
    // transaction: any other run leaves the old watermarks, and the next run reads again.
    let planned_changes = plan.changes.len();
    let mut plan = plan;
    if status == RunStatus::Applied && snapshot.complete {
        plan.changes.extend(fed.changes);
    }
    if apply {
        let outcome = outcome(&report, status, &plan, source_users);
        let result = {
            let _s = tracing::info_span!("apply", changes = plan.changes.len()).entered();
            tracing::info!(
                connection = spec.connection,
                run_id,
                "applying {} changes",
                plan.changes.len()
            );
            store.apply(spec.connection, run_id, &plan.changes, &outcome, now_ms())
        };
        mem_probe("apply");
        plan.changes.truncate(planned_changes);
        if let Err(e) = result {
            report.status = RunStatus::Failed;
            report.errors.push(format!("nothing was applied: {e}"));
            report.users = UserCounts::default();
            report.groups = GroupCounts::default();
            report.memberships = MembershipCounts::default();
            record(store, run_id, &report, Some(&plan), None);
        }
    } else {
        // A dry run or a blocked run records what the source returned too (`runs show` says
        // it); the shrinking-source gate compares with applied runs only.
        record(store, run_id, &report, Some(&plan), source_users);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.plan = Some(plan);
    report
}

fn outcome(report: &RunReport, status: RunStatus, plan: &Plan, source_users: Option<u64>) -> RunOutcome {
    RunOutcome {
        status,
        counts: serde_json::json!({
            "users": report.users,
            "groups": report.groups,
            "memberships": report.memberships,
            "duration_ms": report.duration_ms,
            "kind": report.kind,
        }),
        errors: report.errors.clone(),
        plan: plan.history_json(HISTORY_ENTRIES),
        requests: report.requests,
        source_users,
    }
}

fn record<S: Store + ?Sized>(
    store: &mut S,
    run_id: i64,
    report: &RunReport,
    plan: Option<&Plan>,
    src: Option<u64>,
) {
    let status = report.status;
    let o = RunOutcome {
        plan: plan
            .map(|p| p.history_json(HISTORY_ENTRIES))
            .unwrap_or(serde_json::Value::Null),
        ..outcome(report, status, &Plan::default(), src)
    };
    if let Err(e) = store.finish_run(run_id, &o, now_ms()) {
        tracing::error!(run_id, "cannot record the run's outcome: {e}");
    }
}
