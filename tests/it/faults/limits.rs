//! Bounds on what a provider can make a run hold or wait for (issue 17, item 2): a response larger
//! than `max_response_mb` fails its query without being buffered, and a provider that drips its
//! pages (each one under the request timeout) cannot keep a run busy past `max_run_secs`. In both
//! cases the fault is proven to have fired and the store is compared with the good one.

use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig};

use super::env::{diff, Env};

fn options(provider: &str) -> EmulatorOptions {
    let mut opts = EmulatorOptions::new(provider);
    opts.gen = GenConfig {
        users: 45,
        groups: 6,
        seed: 21,
        ..GenConfig::default()
    };
    opts
}

/// Every provider: one listing page of 3 MiB (valid JSON padded with whitespace, streamed without
/// Content-Length) against a 1 MiB limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_page_fails_the_query_and_changes_nothing() {
    for provider in ["okta", "entra", "google", "keycloak", "onelogin"] {
        let env = Env::with_runtime(provider, options(provider), Some(10), "", "max_response_mb = 1").await;
        let good = env.clean_sync("baseline").await;
        env.emu
            .set_faults(FaultConfig {
                oversize_rate: 1.0,
                oversize_bytes: 3 * 1024 * 1024,
                start_after: 2,
                max_faults: Some(1),
                ..FaultConfig::default()
            })
            .expect("faults");
        let r = env.sync().await;
        assert_eq!(
            env.faults_injected(),
            1,
            "{provider}: the oversize fault did not fire"
        );
        assert_ne!(
            r.code, 0,
            "{provider}: an oversized page was accepted: {}",
            r.report
        );
        let errors = r.report["errors"].to_string();
        assert!(
            errors.contains("larger than 1048576 bytes") && errors.contains("max_response_mb"),
            "{provider}: the error does not name the limit: {errors}"
        );
        if let Some(d) = diff(&env.state(), &good) {
            panic!(
                "{provider}: an oversized page changed the store: {d}\n{}",
                r.report
            );
        }
        // the next run, without the fault, completes
        assert_eq!(env.clean_sync("after oversize").await, good);
    }
}

/// Every page dripped in 64-byte chunks 20 ms apart: each page stays under the 3 s request
/// timeout, the whole run would take minutes; `max_run_secs = 3` ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_provider_cannot_keep_a_run_busy_past_its_time_limit() {
    for provider in ["okta", "entra"] {
        let env = Env::with_runtime(provider, options(provider), Some(10), "", "max_run_secs = 3").await;
        let good = env.clean_sync("baseline").await;
        env.emu
            .set_faults(FaultConfig {
                drip_rate: 1.0,
                drip_chunk_bytes: 64,
                drip_pause_ms: 20,
                start_after: 1,
                ..FaultConfig::default()
            })
            .expect("faults");
        let r = env.sync().await;
        assert!(
            env.faults_injected() > 0,
            "{provider}: the drip fault did not fire"
        );
        assert_ne!(
            r.code, 0,
            "{provider}: the run did not stop at its limit: {}",
            r.report
        );
        let errors = r.report["errors"].to_string();
        assert!(
            errors.contains("max_run_secs"),
            "{provider}: the error does not name the time limit: {errors}"
        );
        if let Some(d) = diff(&env.state(), &good) {
            panic!("{provider}: a stopped run changed the store: {d}\n{}", r.report);
        }
    }
}
