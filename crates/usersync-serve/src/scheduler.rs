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

async fn run_one(svc: Arc<Service>, name: String, trigger: Trigger) -> (String, Trigger, JobResult) {
    let allow = match trigger {
        Trigger::Approve { allow_deletes, .. } => Some(allow_deletes),
        _ => None,
    };
    tracing::info!(connection = name, ?trigger, "run starts");
    let result = svc.jobs.run(&name, allow).await;
    (name, trigger, result)
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
    let mut tasks: JoinSet<(String, Trigger, JobResult)> = JoinSet::new();
    let mut running: Vec<String> = Vec::new();
    for j in svc.states() {
        svc.metrics.declare(&j.name);
    }
    refresh_objects(svc.clone()).await;
    loop {
        if svc.stopping() {
            break;
        }
        for (name, trigger) in svc.take_due(now_ms(), &mut draw) {
            running.push(name.clone());
            tasks.spawn(run_one(svc.clone(), name, trigger));
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
        running.join(", ")
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
                    running.join(", "),
                    grace.as_secs()
                );
                return running;
            }
        }
    }
    Vec::new()
}

async fn finished(
    svc: &Arc<Service>,
    done: Result<(String, Trigger, JobResult), tokio::task::JoinError>,
    running: &mut Vec<String>,
) {
    match done {
        Ok((name, trigger, result)) => {
            running.retain(|n| n != &name);
            svc.finish(&name, trigger, &result, draw());
            refresh_objects(svc.clone()).await;
        }
        Err(e) => {
            // a panicking run: its job stays marked running, so it never overlaps a half-run
            tracing::error!("a run task ended abnormally: {e}");
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
