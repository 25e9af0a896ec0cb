//! The scheduler loop: starts due jobs (each as its own task, never two of one job), records
//! their results, and on stop lets running jobs finish within the grace period. Also the
//! config-file watcher (a reload on change).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::service::{Service, Trigger};
use crate::{now_ms, JobResult};

/// The longest the scheduler sleeps between looks (a clock jump or a missed wake-up costs at
/// most this).
const MAX_SLEEP: Duration = Duration::from_secs(30);

fn draw() -> f64 {
    rand::random::<f64>()
}

/// What a started job gave: a connection's run, or an approved push of a target.
enum Done {
    Run(Box<JobResult>),
    Push(Vec<crate::PushResult>),
}

async fn run_one(svc: Arc<Service>, name: String, trigger: Trigger) -> (String, Trigger, Done) {
    let allow = match trigger {
        Trigger::Approve { allow_deletes, .. } => Some(allow_deletes),
        _ => None,
    };
    if let Some(target) = crate::target::target_of(&name) {
        tracing::info!(target, ?trigger, "approved push starts");
        let pushes = svc.jobs.push(target, allow).await;
        return (name, trigger, Done::Push(pushes));
    }
    tracing::info!(connection = name, ?trigger, "run starts");
    let result = svc.jobs.run(&name, allow).await;
    (name, trigger, Done::Run(Box::new(result)))
}

/// Refresh the store's object counts in the metrics (off the async threads).
pub async fn refresh_objects(svc: Arc<Service>) {
    let s = svc.clone();
    let counts = tokio::task::spawn_blocking(move || -> Result<(u64, u64), String> {
        let store = s.jobs.store()?;
        let users = store.users(None).map_err(|e| e.to_string())?.len() as u64;
        let groups = store.groups(None).map_err(|e| e.to_string())?.len() as u64;
        Ok((users, groups))
    })
    .await;
    match counts {
        Ok(Ok((u, g))) => svc.metrics.set_objects(u, g),
        Ok(Err(e)) => tracing::warn!("cannot count the store's objects: {e}"),
        Err(e) => tracing::warn!("cannot count the store's objects: {e}"),
    }
}

/// Run the scheduler until [`Service::stop`]; then wait for running jobs for at most `grace`.
/// Returns the jobs still running when the grace ran out (empty: all finished).
pub async fn run(svc: Arc<Service>) -> Vec<String> {
    let mut tasks: JoinSet<(String, Trigger, Done)> = JoinSet::new();
    // the jobs running, by task (a panicking run is reported by its task id only)
    let mut running: Vec<(tokio::task::Id, String, Trigger)> = Vec::new();
    for j in svc.states() {
        svc.metrics.declare(&j.name);
    }
    refresh_objects(svc.clone()).await;
    loop {
        if svc.stopping() {
            break;
        }
        for (name, trigger) in svc.take_due(now_ms(), &mut draw) {
            if let Err(standby) = svc.jobs.may_run(&name) {
                tracing::debug!(connection = name, holder = standby.holder, "standing by");
                svc.stand_by(&name, trigger, &standby);
                continue;
            }
            let handle = tasks.spawn(run_one(svc.clone(), name.clone(), trigger));
            running.push((handle.id(), name, trigger));
        }
        let sleep = svc
            .next_wake()
            .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = svc.wake.notified() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finished(&svc, done, &mut running).await;
            }
        }
    }
    if tasks.is_empty() {
        return Vec::new();
    }
    let grace = svc.settings().serve.shutdown_grace;
    tracing::info!(
        "stopping: waiting up to {}s for {} running run(s): {}",
        grace.as_secs(),
        running.len(),
        names(&running)
    );
    let deadline = tokio::time::Instant::now() + grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(done)) => finished(&svc, done, &mut running).await,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    "stopping: {} still running after {}s; exiting anyway (an apply is one store transaction: \
                     it is in the store whole or not at all; the run is marked interrupted at its next start)",
                    names(&running),
                    grace.as_secs()
                );
                return running.into_iter().map(|(_, n, _)| n).collect();
            }
        }
    }
    Vec::new()
}

fn names(running: &[(tokio::task::Id, String, Trigger)]) -> String {
    running
        .iter()
        .map(|(_, n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn finished(
    svc: &Arc<Service>,
    done: Result<(String, Trigger, Done), tokio::task::JoinError>,
    running: &mut Vec<(tokio::task::Id, String, Trigger)>,
) {
    let (name, trigger, result) = match done {
        Ok(done) => {
            running.retain(|(_, n, _)| n != &done.0);
            done
        }
        Err(e) => {
            // a run that panicked: recorded as failed, so its connection is not left "running"
            let Some(pos) = running.iter().position(|(id, _, _)| *id == e.id()) else {
                tracing::error!("a run task ended abnormally: {e}");
                return;
            };
            let (_, name, trigger) = running.remove(pos);
            tracing::error!(connection = name, "the run ended abnormally: {e}");
            if crate::target::target_of(&name).is_some() {
                // the push's run stays `running` in history; its next push recovers from it
                svc.finish_push(&name, &[]);
                return;
            }
            let report = usersync_sync::RunReport::failed(
                None,
                &name,
                "the run ended abnormally (a bug: see the log); nothing more was applied than its store \
                 transaction committed"
                    .into(),
                std::time::Instant::now(),
            );
            let result = JobResult {
                report,
                throttled_responses: 0,
                throttled_ms: 0,
                retries: 0,
                plugin_refused: false,
                detail: Default::default(),
            };
            (name, trigger, Done::Run(Box::new(result)))
        }
    };
    match result {
        Done::Run(result) => {
            svc.finish(&name, trigger, &result, draw());
            refresh_objects(svc.clone()).await;
        }
        Done::Push(pushes) => {
            svc.finish_push(&name, &pushes);
        }
    }
}

fn modified(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Reload when a watched file changes (polled every `every`).
pub async fn watch_config(svc: Arc<Service>, every: Duration) {
    let paths = svc.jobs.watched();
    let mut seen = modified(&paths);
    loop {
        tokio::time::sleep(every).await;
        if svc.stopping() {
            return;
        }
        let now = modified(&paths);
        if now != seen {
            seen = now;
            tracing::info!("the config file changed: reloading");
            let _ = svc.reload();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use usersync_config::serve::ServeConfig;
    use usersync_config::Secret;
    use usersync_store::{RunStatus, SqliteStore, Store};

    /// Panics on its first run, applies on the next.
    struct Flaky(AtomicU32);

    impl crate::Jobs for Flaky {
        fn run(&self, job: &str, _: Option<u64>) -> crate::BoxFuture<'_, JobResult> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let job = job.to_string();
            Box::pin(async move {
                assert!(n > 0, "a bug in the first run");
                let mut report =
                    usersync_sync::RunReport::failed(Some(1), &job, String::new(), std::time::Instant::now());
                report.status = RunStatus::Applied;
                report.errors.clear();
                JobResult {
                    report,
                    throttled_responses: 0,
                    throttled_ms: 0,
                    retries: 0,
                    plugin_refused: false,
                    detail: Default::default(),
                }
            })
        }
        fn store(&self) -> Result<Box<dyn Store>, String> {
            Ok(Box::new(
                SqliteStore::open_in_memory().map_err(|e| e.to_string())?,
            ))
        }
        fn reload(&self) -> Result<crate::Settings, String> {
            Err("not here".into())
        }
        fn watched(&self) -> Vec<std::path::PathBuf> {
            Vec::new()
        }
    }

    /// Stands by until `leader` is set; counts its runs.
    struct Follower {
        leader: std::sync::atomic::AtomicBool,
        runs: AtomicU32,
        /// Applies (past its one panic).
        inner: Flaky,
    }

    impl crate::Jobs for Follower {
        fn run(&self, job: &str, allow: Option<u64>) -> crate::BoxFuture<'_, JobResult> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.inner.run(job, allow)
        }
        fn store(&self) -> Result<Box<dyn Store>, String> {
            self.inner.store()
        }
        fn reload(&self) -> Result<crate::Settings, String> {
            Err("not here".into())
        }
        fn watched(&self) -> Vec<std::path::PathBuf> {
            Vec::new()
        }
        fn may_run(&self, _: &str) -> Result<(), crate::Standby> {
            if self.leader.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(crate::Standby {
                    holder: "host-b:7".into(),
                    retry: Duration::from_millis(20),
                })
            }
        }
    }

    async fn wait_for(svc: &Service, what: &str, pred: impl Fn(&crate::service::JobState) -> bool) {
        for _ in 0..200 {
            if pred(&svc.states()[0]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:?}", svc.states()[0]);
    }

    #[tokio::test]
    async fn a_standby_host_runs_nothing_and_records_nothing_until_it_leads() {
        let mut serve = ServeConfig::default();
        serve.schedules.insert(
            "a".into(),
            usersync_config::serve::Schedule {
                kind: usersync_config::serve::ScheduleKind::Every(Duration::from_secs(3600)),
                jitter: Duration::ZERO,
            },
        );
        let settings = crate::Settings {
            serve,
            jobs: vec!["a".into()],
            credentials: crate::Credentials::Token(Secret::new("t")),
            webhook_urls: vec![],
        };
        let jobs = Arc::new(Follower {
            leader: false.into(),
            runs: AtomicU32::new(0),
            inner: Flaky(AtomicU32::new(1)),
        });
        let svc = Service::new(jobs.clone(), settings);
        let loop_ = tokio::spawn(run(svc.clone()));
        svc.run_now("a").expect("queued");
        wait_for(&svc, "standby", |j| j.state == "standby").await;
        // several retries later: still nothing ran or was recorded
        tokio::time::sleep(Duration::from_millis(100)).await;
        let j = &svc.states()[0];
        assert_eq!(
            (jobs.runs.load(Ordering::SeqCst), j.last_status, j.state.as_str()),
            (0, None, "standby")
        );
        // the lease is ours now: the standby retry (not the hourly schedule) starts the run
        jobs.leader.store(true, Ordering::SeqCst);
        wait_for(&svc, "the run as leader", |j| {
            j.last_status == Some(RunStatus::Applied)
        })
        .await;
        assert_eq!(jobs.runs.load(Ordering::SeqCst), 1);
        svc.stop();
        assert!(loop_.await.expect("scheduler").is_empty());
    }

    #[tokio::test]
    async fn a_run_that_panics_is_recorded_as_failed_and_the_connection_runs_again() {
        let settings = crate::Settings {
            serve: ServeConfig::default(),
            jobs: vec!["a".into()],
            credentials: crate::Credentials::Token(Secret::new("t")),
            webhook_urls: vec![],
        };
        let svc = Service::new(Arc::new(Flaky(AtomicU32::new(0))), settings);
        let loop_ = tokio::spawn(run(svc.clone()));
        svc.run_now("a").expect("queued");
        wait_for(&svc, "the failed run", |j| {
            j.last_status == Some(RunStatus::Failed)
        })
        .await;
        let j = &svc.states()[0];
        assert_eq!((j.state.as_str(), j.running_since_ms), ("failing", None));
        assert!(j.last_errors[0].contains("ended abnormally"), "{j:?}");
        svc.run_now("a").expect("not left running");
        wait_for(&svc, "the good run", |j| {
            j.last_status == Some(RunStatus::Applied)
        })
        .await;
        svc.stop();
        assert!(loop_.await.expect("scheduler").is_empty());
    }
}
