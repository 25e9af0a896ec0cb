//! SIGTERM: during a run (the store stays consistent), and waiting for a running apply.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_exits_cleanly_and_the_store_is_consistent() {
    // a slow provider, and a grace shorter than the run: serve exits while the run is going
    let mut s = start(60, "shutdown_grace = \"1s\"", "", "").await;
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 1000;
    s.emu.ctx.faults.set(f).expect("faults");
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the run to start", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    s.signal("-TERM");
    let started = Instant::now();
    let st = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exits within its bound: {:?}",
        started.elapsed()
    );
    assert_eq!(
        st.code(),
        Some(1),
        "stopped with a run still in progress (exit 1)"
    );
    // the store: the run applied whole or not at all
    let runs = s.runs();
    let db = s.dir.path().join("store.db");
    let after_stop = crate::support::store_state(&db, "okta");
    // the next sync takes over: the interrupted run is marked, the store converges
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 0;
    s.emu.ctx.faults.set(f).expect("faults");
    let run = crate::support::sync_report(&s.config, &[], crate::support::NO_ENV).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let good = crate::support::store_state(&db, "okta");
    match runs[0].status {
        RunStatus::Running => {
            assert!(
                after_stop.users.is_empty() && after_stop.groups.is_empty(),
                "an unfinished run applied nothing"
            )
        }
        RunStatus::Applied => {
            crate::support::assert_same_store(&after_stop, &good, "an applied run applied everything")
        }
        other => panic!("unexpected status {other:?}"),
    }
    let runs = s.runs();
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "{:?}",
        summary(&runs)
    );
    assert!(
        runs.iter().any(|r| r.status == RunStatus::Interrupted)
            || runs[runs.len() - 1].status == RunStatus::Applied,
        "{:?}",
        summary(&runs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_a_running_apply_within_the_grace() {
    let mut s = start(40, "", "", "").await;
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 150;
    s.emu.ctx.faults.set(f).expect("faults");
    let csrf = s.csrf().await;
    let (st, _) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK);
    s.wait_runs("the run to start", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    s.signal("-TERM");
    let st = tokio::time::timeout(Duration::from_secs(40), s.child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(st.code(), Some(0), "the run finished within the 30s grace");
    let runs = s.runs();
    assert_eq!(runs[0].status, RunStatus::Applied);
    // the store is whole: a sync of the same org afterwards finds it equal and changes nothing
    let db = s.dir.path().join("store.db");
    let after_stop = crate::support::store_state(&db, "okta");
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 0;
    s.emu.ctx.faults.set(f).expect("faults");
    let run = crate::support::sync_report(&s.config, &[], crate::support::NO_ENV).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    crate::support::assert_same_store(
        &crate::support::store_state(&db, "okta"),
        &after_stop,
        "after a clean stop",
    );
}
