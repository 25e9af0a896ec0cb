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
pub use crate::target::TargetState;
use crate::target::{push_job, record_pushes, target_of};
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
    /// No such target (a push run of a target no longer configured).
    #[error("there is no target named `{0}` in the configuration in force")]
    UnknownTarget(String),
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
        let inner = &mut *inner;
        // a connection does not start while an approved push of a target it feeds runs, nor
        // that push while one of the connections feeding the target runs (one push at a time)
        let pushing: Vec<&String> = inner
            .targets
            .iter()
            .filter(|t| t.running_since_ms.is_some())
            .flat_map(|t| &t.fed_by)
            .collect();
        for j in inner.jobs.iter_mut() {
            if j.running_since_ms.is_some() || pushing.contains(&&j.name) {
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
        for t in inner.targets.iter_mut() {
            let feeding_runs = inner
                .jobs
                .iter()
                .any(|j| j.running_since_ms.is_some() && t.fed_by.contains(&j.name));
            if t.running_since_ms.is_some() || t.pending.is_none() || feeding_runs {
                continue;
            }
            if let Some(trigger) = t.pending.take() {
                t.running_since_ms = Some(now);
                t.state = "running".into();
                start.push((push_job(&t.name), trigger));
            }
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
        if let Some(target) = target_of(name) {
            tracing::warn!(
                target,
                holder = standby.holder,
                "approved push dropped: this host stands by"
            );
            if let Some(t) = inner.targets.iter_mut().find(|t| t.name == target) {
                t.running_since_ms = None;
                t.state = "standby".into();
            }
            return;
        }
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
        let inner = self.lock();
        // a connection waiting for an approved push of a target it feeds is looked at again when
        // that push ends (the scheduler wakes on it), not in a busy loop meanwhile
        let pushing: Vec<&String> = inner
            .targets
            .iter()
            .filter(|t| t.running_since_ms.is_some())
            .flat_map(|t| &t.fed_by)
            .collect();
        inner
            .jobs
            .iter()
            .filter(|j| j.running_since_ms.is_none() && !pushing.contains(&&j.name))
            .filter_map(|j| j.next_due_ms)
            .min()
    }

    /// Record an approved push `job` (`push:<target>`) that finished: the target's state,
    /// metrics and notifications, as for a push after a run. Returns the events notified.
    pub fn finish_push(&self, job: &str, pushes: &[crate::PushResult]) -> Vec<WebhookEvent> {
        let now = now_ms();
        let events = {
            let mut inner = self.lock();
            if let Some(t) = inner
                .targets
                .iter_mut()
                .find(|t| Some(t.name.as_str()) == target_of(job))
            {
                t.running_since_ms = None;
                t.state = match t.last_status {
                    Some(RunStatus::Blocked) => "blocked",
                    Some(RunStatus::Failed) => "failing",
                    _ => "idle",
                }
                .into();
            }
            record_pushes(&mut inner.targets, &self.metrics, pushes, now)
        };
        for p in pushes {
            tracing::info!(
                job,
                status = p.status.as_str(),
                run_id = p.run_id,
                "approved push finished"
            );
        }
        for (e, p) in &events {
            self.notifier.send(Event::push(*e, job, p));
        }
        events.into_iter().map(|(e, _)| e).collect()
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
        let trigger = Trigger::Approve {
            run_id,
            allow_deletes: allow,
        };
        match target_of(&run.connection) {
            Some(target) => self.queue_push(target, trigger)?,
            None => self.queue(&run.connection, trigger)?,
        }
        tracing::info!(
            connection = run.connection,
            run_id,
            allow_deletes = allow,
            "blocked run approved"
        );
        Ok((run.connection, allow))
    }

    /// Queue an approved push of `target` (its feeding connections' runs finish first).
    fn queue_push(&self, target: &str, trigger: Trigger) -> Result<(), Refused> {
        let mut inner = self.lock();
        if inner.stopping {
            return Err(Refused::Stopping);
        }
        let t = inner
            .targets
            .iter_mut()
            .find(|t| t.name == target)
            .ok_or_else(|| Refused::UnknownTarget(target.to_string()))?;
        if t.running_since_ms.is_some() || t.pending.is_some() {
            return Err(Refused::Busy(push_job(&t.name)));
        }
        t.pending = Some(trigger);
        t.state = "queued".into();
        drop(inner);
        self.wake.notify_one();
        Ok(())
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

/// Deactivations + deletions in a run's recorded counts (a sync's `users.deactivated`, a
/// push's `users_deactivated`).
pub fn removals(counts: &serde_json::Value) -> u64 {
    let n = |path: &str| counts.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0);
    n("/users/deactivated") + n("/users/deleted") + n("/users_deactivated") + n("/users_deleted")
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

    /// No jobs run; one target `app` fed by `a`.
    struct OneTarget;
    impl Jobs for OneTarget {
        fn run(&self, _: &str, _: Option<u64>) -> crate::BoxFuture<'_, JobResult> {
            Box::pin(async { unreachable!("not run in these tests") })
        }
        fn store(&self) -> Result<Box<dyn Store>, String> {
            NoJobs.store()
        }
        fn reload(&self) -> Result<Settings, String> {
            Err("bad".into())
        }
        fn watched(&self) -> Vec<std::path::PathBuf> {
            Vec::new()
        }
        fn targets(&self) -> Vec<crate::TargetSpec> {
            vec![crate::TargetSpec {
                name: "app".into(),
                fed_by: vec!["a".into()],
            }]
        }
    }

    #[test]
    fn an_approved_push_waits_for_the_feeding_run_and_holds_that_connection_back() {
        let svc = Service::new(Arc::new(OneTarget), settings());
        let t0 = 1_000_000;
        assert_eq!(
            svc.take_due(t0, &mut || 0.0),
            vec![("a".to_string(), Trigger::Schedule)]
        );
        let approve = Trigger::Approve {
            run_id: 5,
            allow_deletes: 3,
        };
        svc.queue_push("app", approve).expect("queued");
        assert_eq!(
            svc.queue_push("app", approve),
            Err(Refused::Busy("push:app".into()))
        );
        assert_eq!(
            svc.queue_push("gone", approve),
            Err(Refused::UnknownTarget("gone".into()))
        );
        assert_eq!(svc.targets()[0].state, "queued");
        // `a` feeds `app` and runs: the push waits for it
        assert!(svc.take_due(t0 + 1, &mut || 0.0).is_empty());
        svc.finish("a", Trigger::Schedule, &result(RunStatus::Applied), 0.0);
        assert_eq!(
            svc.take_due(t0 + 2, &mut || 0.0),
            vec![("push:app".to_string(), approve)]
        );
        assert_eq!(svc.targets()[0].state, "running");
        // while the push runs, `a` does not start (it would push `app` too), nor spins the scheduler
        svc.run_now("a").expect("queued");
        assert!(svc.take_due(t0 + 3, &mut || 0.0).is_empty());
        assert_eq!(svc.next_wake(), None);
        let push = crate::PushResult {
            target: "app".into(),
            run_id: Some(6),
            status: RunStatus::Applied,
            partial: false,
            duration_ms: 5,
            users_provisioned: 0,
            groups_provisioned: 0,
            removals: 3,
            errors: Vec::new(),
            requests: Vec::new(),
        };
        svc.finish_push("push:app", &[push]);
        let t = &svc.targets()[0];
        assert_eq!((t.state.as_str(), t.running_since_ms), ("idle", None));
        assert_eq!(t.last_run_id, Some(6));
        assert_eq!(
            svc.take_due(t0 + 4, &mut || 0.0),
            vec![("a".to_string(), Trigger::RunNow)]
        );
    }

    #[test]
    fn approving_a_run_that_does_not_exist_is_refused() {
        let svc = Service::new(Arc::new(NoJobs), settings());
        assert_eq!(svc.approve(42), Err(Refused::NoRun(42)));
    }
}
