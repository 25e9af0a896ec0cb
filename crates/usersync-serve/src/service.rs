//! The service's state: each job's schedule, run state, failures and pending requests, the
//! settings in force, and the operations on them (start due jobs, record results, approve, run
//! now, reload). One mutex; nothing slow is done while holding it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Notify;
use usersync_config::serve::{format_duration, Schedule, WebhookEvent};
use usersync_store::RunStatus;

use crate::metrics::Metrics;
use crate::webhook::{Event, Notifier};
use crate::{now_ms, JobResult, Jobs, Settings};

/// Why a job starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its schedule was due.
    Schedule,
    /// An operator asked (run now).
    RunNow,
    /// An operator approved blocked run `run_id`: allow exactly its removals.
    Approve {
        /// The blocked run.
        run_id: i64,
        /// Its removals (`--allow-deletes N`).
        allow_deletes: u64,
    },
}

/// One job's state (the JSON API's `connections[]` entry).
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobState {
    /// Connection name.
    pub name: String,
    /// The schedule in words (`every 15m, jitter 1m`), or `manual`.
    pub schedule: String,
    /// `running`, `queued`, `idle`, `failing`, `blocked`.
    pub state: String,
    /// When the current run started (ms).
    pub running_since_ms: Option<i64>,
    /// When the next scheduled run is due (ms).
    pub next_due_ms: Option<i64>,
    /// When the last run ended (ms).
    pub last_end_ms: Option<i64>,
    /// The last run's status.
    pub last_status: Option<RunStatus>,
    /// The last run's id.
    pub last_run_id: Option<i64>,
    /// Consecutive failed runs.
    pub failures: u32,
    /// When the current streak of failures began (ms).
    pub failing_since_ms: Option<i64>,
    /// When a run last applied (ms).
    pub last_success_ms: Option<i64>,
    /// The last run's errors in plain words (never a secret: the engine's messages carry none).
    pub last_errors: Vec<String>,
    /// A start waiting for the scheduler.
    pub pending: Option<Trigger>,
    /// Serve on several hosts (PostgreSQL store): who runs the connections, as `host:pid` (the
    /// lease holder, as this host last saw it). `None`: this host alone, or not known yet.
    pub leader: Option<String>,
    #[serde(skip)]
    sched: Option<Schedule>,
    /// Removals of the last blocked plan (a repeat of the same block is not notified again).
    #[serde(skip)]
    blocked_removals: Option<u64>,
}

/// One target's state (the JSON API's `targets[]` entry): what its pushes did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetState {
    /// Target name (its runs are `push:<name>` in run history).
    pub name: String,
    /// The connections feeding it: an applied run of one of them pushes the target.
    pub fed_by: Vec<String>,
    /// `idle` (no push yet, or the last applied), `failing` (failed or partial), `blocked`.
    pub state: String,
    /// The last push's status.
    pub last_status: Option<RunStatus>,
    /// The last push's run id.
    pub last_run_id: Option<i64>,
    /// The last push left some objects refused by the application.
    pub last_partial: bool,
    /// When the last push ended (ms).
    pub last_end_ms: Option<i64>,
    /// When a push last applied (ms).
    pub last_success_ms: Option<i64>,
    /// Consecutive failed (or partial) pushes.
    pub failures: u32,
    /// The last push's errors and gate messages in plain words.
    pub last_errors: Vec<String>,
    /// Removals of the last blocked push (a repeat of the same block is not notified again).
    #[serde(skip)]
    blocked_removals: Option<u64>,
}

impl TargetState {
    fn new(spec: &crate::TargetSpec) -> TargetState {
        TargetState {
            name: spec.name.clone(),
            fed_by: spec.fed_by.clone(),
            state: "idle".into(),
            ..TargetState::default()
        }
    }

    /// Record a push; returns the event to notify, if any (a new block, the first failure, a
    /// recovery), as for connections.
    fn record(&mut self, p: &crate::PushResult, now: i64) -> Option<WebhookEvent> {
        let prev = self.last_status;
        let prev_failing = self.failures > 0;
        let failing = p.status == RunStatus::Failed || p.partial;
        self.last_status = Some(p.status);
        self.last_run_id = p.run_id;
        self.last_partial = p.partial;
        self.last_end_ms = Some(now);
        self.last_errors = p.errors.clone();
        if p.status == RunStatus::Applied {
            self.last_success_ms = Some(now);
        }
        if failing {
            self.failures += 1;
            self.state = "failing".into();
            self.blocked_removals = None;
            (!prev_failing).then_some(WebhookEvent::Failed)
        } else if p.status == RunStatus::Blocked {
            self.failures = 0;
            self.state = "blocked".into();
            let new = prev != Some(RunStatus::Blocked) || self.blocked_removals != Some(p.removals);
            self.blocked_removals = Some(p.removals);
            new.then_some(WebhookEvent::Blocked)
        } else {
            self.failures = 0;
            self.state = "idle".into();
            self.blocked_removals = None;
            (prev_failing || prev == Some(RunStatus::Blocked)).then_some(WebhookEvent::Recovered)
        }
    }
}

/// The outcome of the last config reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadNote {
    /// When (ms).
    pub at_ms: i64,
    /// Switched to the new config.
    pub ok: bool,
    /// What happened, in words.
    pub message: String,
}

struct Inner {
    settings: Settings,
    jobs: Vec<JobState>,
    targets: Vec<TargetState>,
    stopping: bool,
    reload: Option<ReloadNote>,
}

/// Why an approve or a run-now was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No such connection.
    #[error("there is no connection named `{0}`")]
    Unknown(String),
    /// No such run.
    #[error("there is no run {0}")]
    NoRun(i64),
    /// The run is not the connection's latest, or not blocked.
    #[error("{0}")]
    NotBlocked(String),
    /// A run of the connection is in progress or waiting to start.
    #[error("a run of `{0}` is already in progress or queued: wait for it to finish")]
    Busy(String),
    /// The service is shutting down.
    #[error("usersync serve is shutting down: no new runs start")]
    Stopping,
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Store(String),
}

/// The service: state, the host's jobs, metrics and notifications.
pub struct Service {
    inner: Mutex<Inner>,
    /// The host.
    pub jobs: Arc<dyn Jobs>,
    /// Metrics.
    pub metrics: Metrics,
    /// Webhooks.
    pub notifier: Notifier,
    /// Wakes the scheduler (run now, approve, reload, stop).
    pub wake: Notify,
    /// The CSRF token of this process (random; every form carries it).
    pub csrf: String,
}

fn job_state(name: &str, settings: &Settings) -> JobState {
    let sched = settings.serve.schedules.get(name).cloned();
    JobState {
        name: name.to_string(),
        schedule: sched
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "manual (run now only)".into()),
        state: "idle".into(),
        sched,
        ..JobState::default()
    }
}

impl Service {
    /// A service for `settings`.
    pub fn new(jobs: Arc<dyn Jobs>, settings: Settings) -> Arc<Service> {
        let states = settings.jobs.iter().map(|n| job_state(n, &settings)).collect();
        let csrf: [u8; 32] = rand::random();
        let notifier = Notifier::new(&settings);
        let metrics = Metrics::new();
        let targets: Vec<TargetState> = jobs.targets().iter().map(TargetState::new).collect();
        targets.iter().for_each(|t| metrics.declare_target(&t.name));
        Arc::new(Service {
            inner: Mutex::new(Inner {
                settings,
                jobs: states,
                targets,
                stopping: false,
                reload: None,
            }),
            jobs,
            metrics,
            notifier,
            wake: Notify::new(),
            csrf: csrf.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // a panic while holding the lock leaves plain data behind: keep serving it
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.lock().settings.clone()
    }

    /// Every job's state, in config order.
    pub fn states(&self) -> Vec<JobState> {
        let leader = self.jobs.leader();
        let mut jobs = self.lock().jobs.clone();
        for j in &mut jobs {
            j.leader.clone_from(&leader);
        }
        jobs
    }

    /// Every target's state, in config order.
    pub fn targets(&self) -> Vec<TargetState> {
        self.lock().targets.clone()
    }

    /// The last reload's outcome.
    pub fn reload_note(&self) -> Option<ReloadNote> {
        self.lock().reload.clone()
    }

    /// True once SIGTERM was received.
    pub fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Stop starting runs (SIGTERM).
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_one();
    }

    /// Jobs to start now, marked running: pending requests first, then schedules that are due.
    /// A running job never starts again (no overlap). `draw` gives the jitter draws in `[0, 1)`.
    pub fn take_due(&self, now: i64, draw: &mut dyn FnMut() -> f64) -> Vec<(String, Trigger)> {
        let mut inner = self.lock();
        if inner.stopping {
            return Vec::new();
        }
        let mut start = Vec::new();
        for j in inner.jobs.iter_mut() {
            if j.running_since_ms.is_some() {
                continue;
            }
            if j.next_due_ms.is_none() {
                if let Some(s) = &j.sched {
                    j.next_due_ms = crate::schedule::next_due(s, now, j.last_end_ms, j.failures, draw());
                }
            }
            let trigger = match j.pending.take() {
                Some(t) => t,
                None if j.next_due_ms.is_some_and(|d| d <= now) => Trigger::Schedule,
                None => continue,
            };
            j.running_since_ms = Some(now);
            j.state = "running".into();
            start.push((j.name.clone(), trigger));
        }
        start
    }

    /// A job [`Service::take_due`] marked running that this host may not run now (another host
    /// holds the lease): back to idle as `standby`, nothing recorded (no run, no metrics, no
    /// webhook), looked at again after `standby.retry` (or its schedule, if sooner). An operator's
    /// request on a standby host is dropped (the leader runs the connection).
    pub fn stand_by(&self, name: &str, trigger: Trigger, standby: &crate::Standby) {
        let now = now_ms();
        let mut inner = self.lock();
        let Some(j) = inner.jobs.iter_mut().find(|j| j.name == name) else {
            return;
        };
        if !matches!(trigger, Trigger::Schedule) {
            tracing::warn!(
                connection = name,
                holder = standby.holder,
                "{trigger:?} dropped: this host stands by"
            );
        }
        j.running_since_ms = None;
        j.state = "standby".into();
        let retry = now + standby.retry.as_millis() as i64;
        j.next_due_ms = Some(j.next_due_ms.filter(|d| *d > now).map_or(retry, |d| d.min(retry)));
    }

    /// When the scheduler should look again (ms): the earliest due time.
    pub fn next_wake(&self) -> Option<i64> {
        self.lock()
            .jobs
            .iter()
            .filter(|j| j.running_since_ms.is_none())
            .filter_map(|j| j.next_due_ms)
            .min()
    }

    /// Record a finished run: state, metrics, notifications, next due time. Returns the events
    /// notified.
    pub fn finish(&self, name: &str, trigger: Trigger, result: &JobResult, draw: f64) -> Vec<WebhookEvent> {
        let now = now_ms();
        let r = &result.report;
        let mut events = Vec::new();
        let push_events;
        {
            let mut inner = self.lock();
            let Some(j) = inner.jobs.iter_mut().find(|j| j.name == name) else {
                return events;
            };
            let prev = j.last_status;
            let duration = j.running_since_ms.map(|s| now - s).unwrap_or(0);
            j.running_since_ms = None;
            j.last_end_ms = Some(now);
            j.last_status = Some(r.status);
            j.last_run_id = r.run_id;
            j.last_errors = r.errors.clone();
            match r.status {
                RunStatus::Failed | RunStatus::Interrupted => {
                    j.failures += 1;
                    j.failing_since_ms.get_or_insert(now);
                    if prev != Some(RunStatus::Failed) {
                        events.push(WebhookEvent::Failed);
                    }
                }
                RunStatus::Blocked => {
                    // a gate block is not a failure of the connection: it waits for an operator;
                    // the schedule re-planning the same block is not notified again
                    j.failures = 0;
                    j.failing_since_ms = None;
                    let removals = r.users.deactivated + r.users.deleted;
                    if prev != Some(RunStatus::Blocked) || j.blocked_removals != Some(removals) {
                        events.push(WebhookEvent::Blocked);
                    }
                    j.blocked_removals = Some(removals);
                }
                _ => {
                    j.failures = 0;
                    j.failing_since_ms = None;
                    j.blocked_removals = None;
                    if r.status == RunStatus::Applied {
                        j.last_success_ms = Some(now);
                    }
                    if matches!(prev, Some(RunStatus::Failed | RunStatus::Blocked)) {
                        events.push(WebhookEvent::Recovered);
                    }
                }
            }
            j.state = match r.status {
                RunStatus::Failed | RunStatus::Interrupted => "failing",
                RunStatus::Blocked => "blocked",
                _ => "idle",
            }
            .into();
            j.next_due_ms = j
                .sched
                .as_ref()
                .and_then(|s| crate::schedule::next_due(s, now, Some(now), j.failures, draw));
            self.metrics.record_run(name, result, duration, j.last_success_ms);
            self.metrics.set_failing(name, j.failures > 0);
            push_events = record_pushes(&mut inner.targets, &self.metrics, &result.detail.pushes, now);
        }
        tracing::info!(
            connection = name,
            status = r.status.as_str(),
            run_id = r.run_id,
            trigger = ?trigger,
            "run finished"
        );
        for e in &events {
            self.notifier.send(Event::new(*e, r));
        }
        for (e, p) in push_events {
            tracing::info!(connection = name, target = %p.target, event = e.as_str(), "push state changed");
            self.notifier.send(Event::push(e, name, p));
        }
        events
    }

    /// Queue a run now (operator).
    pub fn run_now(&self, name: &str) -> Result<(), Refused> {
        self.queue(name, Trigger::RunNow)
    }

    fn queue(&self, name: &str, trigger: Trigger) -> Result<(), Refused> {
        let mut inner = self.lock();
        if inner.stopping {
            return Err(Refused::Stopping);
        }
        let j = inner
            .jobs
            .iter_mut()
            .find(|j| j.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Refused::Unknown(name.to_string()))?;
        if j.running_since_ms.is_some() || j.pending.is_some() {
            return Err(Refused::Busy(j.name.clone()));
        }
        j.pending = Some(trigger);
        j.state = "queued".into();
        drop(inner);
        self.wake.notify_one();
        Ok(())
    }

    /// Approve blocked run `run_id`: its connection runs again with `--allow-deletes` set to
    /// exactly that plan's removals (a different plan with more removals blocks again). Refused
    /// unless the run is blocked and still the latest run of its connection.
    pub fn approve(&self, run_id: i64) -> Result<(String, u64), Refused> {
        let store = self.jobs.store().map_err(Refused::Store)?;
        let run = store
            .run(run_id)
            .map_err(|e| Refused::Store(e.to_string()))?
            .ok_or(Refused::NoRun(run_id))?;
        let latest = store
            .runs(Some(&run.connection), 1)
            .map_err(|e| Refused::Store(e.to_string()))?;
        drop(store);
        if run.status != RunStatus::Blocked {
            return Err(Refused::NotBlocked(format!(
                "run {run_id} of `{}` is {}, not blocked: there is nothing to approve",
                run.connection,
                run.status.as_str()
            )));
        }
        if let Some(l) = latest.first().filter(|l| l.id != run_id) {
            return Err(Refused::NotBlocked(format!(
                "run {run_id} of `{}` is no longer its latest run (run {} is, {}): approve the latest plan instead",
                run.connection,
                l.id,
                l.status.as_str()
            )));
        }
        let allow = removals(&run.counts);
        self.queue(
            &run.connection,
            Trigger::Approve {
                run_id,
                allow_deletes: allow,
            },
        )?;
        tracing::info!(
            connection = run.connection,
            run_id,
            allow_deletes = allow,
            "blocked run approved"
        );
        Ok((run.connection, allow))
    }

    /// Switch to new settings (validated by the host). Jobs keep their state; new ones start
    /// idle; removed ones go (a running one finishes first and is then dropped).
    pub fn apply_settings(&self, settings: Settings) {
        let mut inner = self.lock();
        let mut old: BTreeMap<String, JobState> = inner.jobs.drain(..).map(|j| (j.name.clone(), j)).collect();
        let mut jobs = Vec::new();
        for name in &settings.jobs {
            let fresh = job_state(name, &settings);
            let j = match old.remove(name) {
                Some(mut j) => {
                    if j.sched != fresh.sched {
                        j.next_due_ms = None;
                    }
                    j.schedule = fresh.schedule;
                    j.sched = fresh.sched;
                    j
                }
                None => fresh,
            };
            jobs.push(j);
        }
        if settings.serve.listen != inner.settings.serve.listen
            || settings.serve.tls != inner.settings.serve.tls
        {
            tracing::warn!("[serve] listen/tls changed: takes effect at the next restart");
        }
        self.notifier.update(&settings);
        let mut old_targets: BTreeMap<String, TargetState> =
            inner.targets.drain(..).map(|t| (t.name.clone(), t)).collect();
        inner.targets = self
            .jobs
            .targets()
            .iter()
            .map(|spec| match old_targets.remove(&spec.name) {
                Some(mut t) => {
                    t.fed_by = spec.fed_by.clone();
                    t
                }
                None => {
                    self.metrics.declare_target(&spec.name);
                    TargetState::new(spec)
                }
            })
            .collect();
        inner.jobs = jobs;
        inner.settings = settings;
        inner.reload = Some(ReloadNote {
            at_ms: now_ms(),
            ok: true,
            message: "the new configuration is in force".into(),
        });
        drop(inner);
        self.wake.notify_one();
    }

    /// Reload the config through the host: switch when valid, else keep the old one and say why.
    pub fn reload(&self) -> Result<(), String> {
        match self.jobs.reload() {
            Ok(s) => {
                self.apply_settings(s);
                self.metrics.reload(true);
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(false);
                tracing::error!("configuration not reloaded, the previous one stays in force: {e}");
                self.lock().reload = Some(ReloadNote {
                    at_ms: now_ms(),
                    ok: false,
                    message: format!(
                        "the new configuration is invalid; the previous one stays in force: {e}"
                    ),
                });
                Err(e)
            }
        }
    }

    /// `/readyz`: the store is readable and no job has been failing longer than allowed.
    pub fn ready(&self) -> Result<(), String> {
        let store = self.jobs.store()?;
        store
            .runs(None, 1)
            .map_err(|e| format!("store not readable: {e}"))?;
        drop(store);
        let inner = self.lock();
        let max = inner.settings.serve.ready_after_failing.as_millis() as i64;
        let now = now_ms();
        let failing: Vec<String> = inner
            .jobs
            .iter()
            .filter(|j| j.failing_since_ms.is_some_and(|s| now - s > max))
            .map(|j| j.name.clone())
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "failing for more than {}: {}",
                format_duration(inner.settings.serve.ready_after_failing),
                failing.join(", ")
            ))
        }
    }

    /// Whether any job is running.
    pub fn any_running(&self) -> bool {
        self.lock().jobs.iter().any(|j| j.running_since_ms.is_some())
    }
}

/// Record a run's pushes in their targets' state and metrics; returns the events to notify.
/// A push of a target no longer configured is counted in metrics only.
fn record_pushes<'a>(
    targets: &mut [TargetState],
    metrics: &Metrics,
    pushes: &'a [crate::PushResult],
    now: i64,
) -> Vec<(WebhookEvent, &'a crate::PushResult)> {
    let mut events = Vec::new();
    for p in pushes {
        let t = targets.iter_mut().find(|t| t.name == p.target);
        let event = match t {
            Some(t) => {
                let e = t.record(p, now);
                metrics.record_push(p, t.last_success_ms);
                e
            }
            None => {
                metrics.record_push(p, None);
                None
            }
        };
        events.extend(event.map(|e| (e, p)));
    }
    events
}

/// Deactivations + deletions in a run's recorded counts.
pub fn removals(counts: &serde_json::Value) -> u64 {
    let n = |k: &str| {
        counts
            .pointer(&format!("/users/{k}"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    n("deactivated") + n("deleted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use usersync_config::serve::{ScheduleKind, ServeConfig};
    use usersync_config::Secret;
    use usersync_store::{SqliteStore, Store};
    use usersync_sync::RunReport;

    struct NoJobs;
    impl Jobs for NoJobs {
        fn run(&self, _: &str, _: Option<u64>) -> crate::BoxFuture<'_, JobResult> {
            Box::pin(async { unreachable!("not run in these tests") })
        }
        fn store(&self) -> Result<Box<dyn Store>, String> {
            Ok(Box::new(
                SqliteStore::open_in_memory().map_err(|e| e.to_string())?,
            ))
        }
        fn reload(&self) -> Result<Settings, String> {
            Err("bad".into())
        }
        fn watched(&self) -> Vec<std::path::PathBuf> {
            Vec::new()
        }
    }

    fn settings() -> Settings {
        let mut serve = ServeConfig::default();
        serve.schedules.insert(
            "a".into(),
            Schedule {
                kind: ScheduleKind::Every(Duration::from_secs(60)),
                jitter: Duration::from_secs(10),
            },
        );
        Settings {
            serve,
            jobs: vec!["a".into(), "b".into()],
            credentials: crate::Credentials::Token(Secret::new("t")),
            webhook_urls: vec![],
        }
    }

    fn result(status: RunStatus) -> JobResult {
        let mut report = RunReport::failed(Some(1), "a", "x".into(), std::time::Instant::now());
        report.status = status;
        JobResult {
            report,
            throttled_responses: 0,
            throttled_ms: 0,
            retries: 0,
            plugin_refused: false,
            detail: Default::default(),
        }
    }

    #[test]
    fn a_running_job_never_starts_twice_and_manual_jobs_wait_for_run_now() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        let t0 = 1_000_000;
        let started = svc.take_due(t0, &mut || 0.0);
        assert_eq!(started, vec![("a".to_string(), Trigger::Schedule)]);
        // still running: not started again, however late it gets
        assert!(svc.take_due(t0 + 3_600_000, &mut || 0.0).is_empty());
        assert_eq!(svc.run_now("a"), Err(Refused::Busy("a".into())));
        // b has no schedule: only run now starts it
        svc.run_now("b").expect("queued");
        assert_eq!(svc.run_now("b"), Err(Refused::Busy("b".into())));
        assert_eq!(
            svc.take_due(t0 + 1, &mut || 0.0),
            vec![("b".to_string(), Trigger::RunNow)]
        );
        assert_eq!(svc.run_now("nope"), Err(Refused::Unknown("nope".into())));
    }

    #[test]
    fn failures_back_off_and_a_good_run_recovers() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        svc.take_due(0, &mut || 0.0);
        svc.finish("a", Trigger::Schedule, &result(RunStatus::Failed), 0.0);
        let s = &svc.states()[0];
        assert_eq!((s.failures, s.state.as_str()), (1, "failing"));
        let end = s.last_end_ms.expect("ended");
        assert_eq!(s.next_due_ms, Some(end + 60_000));
        for _ in 0..3 {
            svc.take_due(i64::MAX / 2, &mut || 0.0);
            svc.finish("a", Trigger::Schedule, &result(RunStatus::Failed), 0.0);
        }
        let s = &svc.states()[0];
        let end = s.last_end_ms.expect("ended");
        assert_eq!(s.failures, 4);
        assert_eq!(s.next_due_ms, Some(end + 8 * 60_000), "4 failures: 8 minutes");
        svc.take_due(i64::MAX / 2, &mut || 0.0);
        svc.finish("a", Trigger::Schedule, &result(RunStatus::Applied), 0.999);
        let s = &svc.states()[0];
        let end = s.last_end_ms.expect("ended");
        assert_eq!(s.failures, 0);
        assert!(s.last_success_ms.is_some());
        let due = s.next_due_ms.expect("due");
        assert!(
            due >= end + 60_000 && due < end + 70_000,
            "jitter within 10s: {}",
            due - end
        );
    }

    #[test]
    fn notified_on_a_new_block_a_first_failure_and_a_recovery_only() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        let run = |status: RunStatus, removals: u64| {
            svc.take_due(i64::MAX / 2, &mut || 0.0);
            let mut r = result(status);
            r.report.users.deactivated = removals;
            svc.finish("a", Trigger::Schedule, &r, 0.0)
        };
        assert_eq!(run(RunStatus::Applied, 0), vec![]);
        assert_eq!(run(RunStatus::Blocked, 12), vec![WebhookEvent::Blocked]);
        assert_eq!(run(RunStatus::Blocked, 12), vec![], "the same block again");
        assert_eq!(
            run(RunStatus::Blocked, 13),
            vec![WebhookEvent::Blocked],
            "another plan"
        );
        assert_eq!(run(RunStatus::Applied, 13), vec![WebhookEvent::Recovered]);
        assert_eq!(run(RunStatus::Failed, 0), vec![WebhookEvent::Failed]);
        assert_eq!(run(RunStatus::Failed, 0), vec![], "the streak goes on");
        assert_eq!(run(RunStatus::Applied, 0), vec![WebhookEvent::Recovered]);
    }

    #[test]
    fn a_target_is_notified_on_its_first_failed_push_a_new_block_and_a_recovery() {
        let mut t = TargetState::new(&crate::TargetSpec {
            name: "app".into(),
            fed_by: vec!["a".into()],
        });
        let push = |status: RunStatus, partial: bool, removals: u64| crate::PushResult {
            target: "app".into(),
            run_id: Some(1),
            status,
            partial,
            duration_ms: 10,
            users_provisioned: 0,
            groups_provisioned: 0,
            removals,
            errors: Vec::new(),
        };
        assert_eq!(t.record(&push(RunStatus::Applied, false, 0), 1), None);
        assert_eq!(t.last_success_ms, Some(1));
        assert_eq!(
            t.record(&push(RunStatus::Failed, false, 0), 2),
            Some(WebhookEvent::Failed)
        );
        assert_eq!(
            t.record(&push(RunStatus::Applied, true, 0), 3),
            None,
            "partial: still failing"
        );
        assert_eq!((t.failures, t.state.as_str()), (2, "failing"));
        assert_eq!(
            t.record(&push(RunStatus::Applied, false, 0), 4),
            Some(WebhookEvent::Recovered)
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 5), 5),
            Some(WebhookEvent::Blocked)
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 5), 6),
            None,
            "the same block"
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 6), 7),
            Some(WebhookEvent::Blocked)
        );
        assert_eq!(
            t.record(&push(RunStatus::Applied, false, 0), 8),
            Some(WebhookEvent::Recovered)
        );
        assert_eq!((t.state.as_str(), t.last_success_ms), ("idle", Some(8)));
    }

    #[test]
    fn stopping_starts_nothing_and_refuses_run_now() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        svc.stop();
        assert!(svc.take_due(0, &mut || 0.0).is_empty());
        assert_eq!(svc.run_now("b"), Err(Refused::Stopping));
    }

    #[test]
    fn an_invalid_reload_keeps_the_settings_and_says_why() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        assert!(svc.reload().is_err());
        assert_eq!(svc.settings().jobs, vec!["a".to_string(), "b".to_string()]);
        let note = svc.reload_note().expect("note");
        assert!(
            !note.ok && note.message.contains("previous one stays in force"),
            "{note:?}"
        );
    }

    #[test]
    fn approving_a_run_that_does_not_exist_is_refused() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        assert_eq!(svc.approve(42), Err(Refused::NoRun(42)));
    }
}
