//! One push of one target: read the feeding connections' state, plan, gate, execute, record
//! the run in the same run history as syncs (key `push:NAME`).

use std::time::Instant;

use serde::Serialize;
use usersync_config::TargetConfig;
use usersync_sdk::TargetSession;
use usersync_store::{RunOutcome, RunStatus, Store, StoreError};

use super::desired::{self, DesiredTarget};
use super::exec::{ExecOutcome, Executor, TargetSender};
use super::gate::{gate, GateInput};
use super::plan::{diff, PushCounts, PushPlan};

/// The result of one push: the JSON object `usersync push --format json` prints per target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushReport {
    /// Run id in run history.
    pub run_id: Option<i64>,
    /// `push`.
    pub direction: &'static str,
    /// The target.
    pub target: String,
    /// `applied`, `dry_run`, `blocked` or `failed`.
    pub status: RunStatus,
    /// True when some objects were refused (the rest applied; nothing destructive ran).
    pub partial: bool,
    /// The plan's counts.
    pub counts: PushCounts,
    /// Objects adopted (found in the app instead of created).
    pub adopted: u64,
    /// Write requests sent.
    pub writes: u64,
    /// HTTP requests made (discovery, lookups, writes, retries).
    pub requests: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Errors and gate messages, one line each.
    pub errors: Vec<String>,
    /// The plan.
    pub plan: PushPlan,
    /// Users of the sources not provisioned, and why.
    pub excluded: Vec<desired::Excluded>,
}

/// What a push needs.
pub struct PushSpec<'a> {
    /// The target.
    pub target: &'a TargetConfig,
    /// The connections feeding it (names, in config order).
    pub sources: Vec<String>,
    /// Plan, record, write nothing.
    pub dry_run: bool,
    /// Operator confirmation past the removal gates.
    pub allow_deletes: Option<u64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A failed push before it had a plan.
fn failed(run_id: Option<i64>, target: &str, error: String, started: Instant) -> PushReport {
    PushReport {
        run_id,
        direction: "push",
        target: target.to_string(),
        status: RunStatus::Failed,
        partial: false,
        counts: PushCounts::default(),
        adopted: 0,
        writes: 0,
        requests: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        errors: vec![error],
        plan: PushPlan::default(),
        excluded: Vec::new(),
    }
}

/// The desired state of a target from the store (also used by `explain`).
pub fn desired_state<S: Store + ?Sized>(
    store: &S,
    target: &TargetConfig,
    sources: &[String],
) -> Result<DesiredTarget, StoreError> {
    let mut states = Vec::new();
    for c in sources {
        states.push((c.clone(), store.state(c)?));
    }
    Ok(desired::build(&target.settings, &states))
}

/// Sources whose last sync did not apply (or that never synced).
fn incomplete_sources<S: Store + ?Sized>(store: &S, sources: &[String]) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for c in sources {
        let last = store
            .runs(Some(c), 20)?
            .into_iter()
            .find(|r| r.status != RunStatus::DryRun && r.status != RunStatus::Running);
        if !last.is_some_and(|r| r.status == RunStatus::Applied) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// Run one push: `open` gives the configured session (discovery done) and the sender, and is
/// called only when the plan has something to write (a no-change push sends nothing at all).
pub async fn push_target<S, T, F, Fut>(store: &mut S, spec: &PushSpec<'_>, open: F) -> PushReport
where
    S: Store + ?Sized,
    T: TargetSender,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<
        Output = Result<(Box<dyn TargetSession>, T, Box<dyn Fn() -> u64 + Send>), String>,
    >,
{
    let started = Instant::now();
    let target = spec.target;
    let key = target.run_key();
    let _span = tracing::info_span!("push", target = %target.name).entered();
    let run_id = match store.begin_run(&key, now_ms()) {
        Ok(id) => id,
        Err(e) => return failed(None, &target.name, e.to_string(), started),
    };
    // the last push of this target ended without finishing (killed, failed): look objects up
    // before creating them, so what it created is adopted, not duplicated
    let recovering = store
        .runs(Some(&key), 5)
        .ok()
        .and_then(|runs| runs.into_iter().find(|r| r.id != run_id))
        .is_some_and(|r| {
            !matches!(
                r.status,
                RunStatus::Applied | RunStatus::DryRun | RunStatus::Blocked
            )
        });
    let prepared = (|| -> Result<_, StoreError> {
        let desired = desired_state(&*store, target, &spec.sources)?;
        let state = store.target_state(&key)?;
        let incomplete = incomplete_sources(&*store, &spec.sources)?;
        let last_in_scope = store.last_source_users(&key)?;
        Ok((desired, state, incomplete, last_in_scope))
    })();
    let (desired, state, incomplete, last_in_scope) = match prepared {
        Ok(x) => x,
        Err(e) => {
            let report = failed(Some(run_id), &target.name, e.to_string(), started);
            finish(store, run_id, &report, None);
            return report;
        }
    };
    let plan = diff(&desired, &state, target.settings.deprovision);
    let mut report = PushReport {
        run_id: Some(run_id),
        direction: "push",
        target: target.name.clone(),
        status: RunStatus::Applied,
        partial: false,
        counts: plan.counts,
        adopted: 0,
        writes: 0,
        requests: 0,
        duration_ms: 0,
        errors: Vec::new(),
        plan: plan.clone(),
        excluded: desired.excluded.clone(),
    };
    let input = GateInput {
        incomplete_sources: incomplete,
        last_in_scope,
        allow_deletes: spec.allow_deletes,
    };
    if let Some(why) = gate(&target.name, &plan, desired.in_scope, &target.settings, &input) {
        tracing::warn!(target = %target.name, "{why}");
        report.status = RunStatus::Blocked;
        report.errors.push(why);
    } else if spec.dry_run {
        report.status = RunStatus::DryRun;
    } else if !plan.is_empty() {
        match open().await {
            Err(e) => {
                report.status = RunStatus::Failed;
                report.errors.push(format!("target `{}`: {e}", target.name));
            }
            Ok((session, sender, requests)) => {
                let mut exec = Executor {
                    target: &target.name,
                    state_key: &key,
                    session: session.as_ref(),
                    sender: &sender,
                    store: &mut *store,
                    recovering,
                    now_ms,
                };
                let out: ExecOutcome = exec.run(&plan, &desired, &state).await;
                report.requests = requests();
                report.writes = out.writes;
                report.adopted = out.adopted;
                report.partial = !out.errors.is_empty() && out.stopped.is_none();
                report.errors.extend(out.errors);
                if let Some(stop) = out.stopped {
                    report.status = RunStatus::Failed;
                    report.errors.insert(0, stop);
                }
            }
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    let in_scope = (report.status == RunStatus::Applied).then_some(desired.in_scope);
    finish(store, run_id, &report, in_scope);
    report
}

fn finish<S: Store + ?Sized>(store: &mut S, run_id: i64, report: &PushReport, in_scope: Option<u64>) {
    let mut counts = serde_json::to_value(report.counts).unwrap_or_default();
    if let Some(m) = counts.as_object_mut() {
        m.insert("direction".into(), "push".into());
        m.insert("target".into(), report.target.clone().into());
        m.insert("partial".into(), report.partial.into());
        m.insert("adopted".into(), report.adopted.into());
        m.insert("writes".into(), report.writes.into());
    }
    let outcome = RunOutcome {
        status: report.status,
        counts,
        errors: report.errors.clone(),
        plan: serde_json::json!({ "direction": "push", "target": report.target, "steps": report.plan.steps }),
        requests: report.requests,
        source_users: in_scope,
    };
    if let Err(e) = store.finish_run(run_id, &outcome, now_ms()) {
        tracing::error!(run_id, "cannot record the push: {e}");
    }
}
