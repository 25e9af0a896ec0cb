//! The run report and run records.

use usersync_store::{RunStatus, SqliteStore, Store};

use super::{org, required_staff, Env};

/// The seam of issue 18: the report's status is the store's enum, serialised as the words of
/// the JSON contract; a dry run records what the source returned (it was always dropped).
#[tokio::test]
async fn the_report_status_is_typed_and_a_dry_run_records_the_source_size() {
    let mut env = Env::new(org(), required_staff());
    let r = env.run(true, None).await;
    assert_eq!(r.status, RunStatus::DryRun);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["status"], "dry_run");
    let run = env
        .store
        .run(r.run_id.expect("recorded"))
        .expect("read")
        .expect("run");
    assert_eq!(run.status, RunStatus::DryRun);
    assert_eq!(run.source_users, Some(20));
    assert_eq!(
        env.store.last_source_users("okta-prod").expect("read"),
        None,
        "the shrinking-source gate compares with applied runs only"
    );
}

/// Issue 18.5: a connection that fails before fetching is recorded with its reason.
#[test]
fn a_failed_start_is_recorded_with_its_reason() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let r = crate::engine::record_failed_start(
        &mut store,
        "okta-prod",
        "usersync.toml:7: connection `okta-prod`: option `api_token`: environment variable `X` is not set"
            .into(),
        std::time::Instant::now(),
    );
    assert_eq!(r.status, RunStatus::Failed);
    let runs = store.runs(Some("okta-prod"), 10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(Some(runs[0].id), r.run_id);
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(
        runs[0].errors[0].contains("`X` is not set"),
        "{:?}",
        runs[0].errors
    );
    assert!(runs[0].finished_ms.is_some(), "finished, its lock released");
    let again =
        crate::engine::record_failed_start(&mut store, "okta-prod", "e".into(), std::time::Instant::now());
    assert!(again.run_id > r.run_id);
}
