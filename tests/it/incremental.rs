//! Issue 21: incremental runs from change feeds, through the `usersync` binary against the
//! emulators. Property style: a seeded random sequence of org changes (create, update, rename,
//! move between groups, deactivate, delete users and groups) and runs (incremental and full
//! interleaved, a fault in the feed, a run killed midway); after every applied run the store
//! equals a store synced in full from the same org (the truth), so nobody is wrongly
//! deactivated or removed. An expired delta token leads to a full run; a run with no change makes
//! a handful of requests.

use std::time::Duration;

use serde_json::Value;
use usersync_emulator::mutate::{random_mutations, Rng};
use usersync_emulator::{FaultConfig, RunningEmulator};

use crate::support::{store_diff, store_state, sync_report};

/// An emulator and two configs over it: `inc` (change feeds, the subject) and `full` (every run
/// `--full`, the truth).
struct Env {
    provider: &'static str,
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Env {
    async fn new(provider: &'static str, users: u32, groups: u32, seed: u64) -> Env {
        let emu = crate::support::start_emulator(provider, users, groups, seed).await;
        let info = emu.info().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = Vec::new();
        for store in ["inc", "full"] {
            let mut text = format!(
                "[store]\npath = \"{store}.db\"\n\n[[connections]]\nname = \"{provider}\"\nconnector = \"{provider}\"\nincremental = true\n\
                 [connections.options]\n"
            );
            for (k, v) in info["client"]["connector_options"].as_object().expect("options") {
                text.push_str(&format!("{k} = {v}\n"));
            }
            for (k, v) in info["client"]["connector_secrets"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let var = format!("USERSYNC_IT_INC_{}_{}", provider.to_uppercase(), k.to_uppercase());
                text.push_str(&format!("{k} = {{ env = \"{var}\" }}\n"));
                if store == "inc" {
                    env.push((var, v.as_str().expect("secret text").to_string()));
                }
            }
            text.push_str(
                "[connections.policy]\nmanagers = true\nmax_removal_percent = 100.0\nmax_removals = 100000\n",
            );
            std::fs::write(dir.path().join(format!("{store}.toml")), text).expect("write config");
        }
        Env {
            provider,
            emu,
            dir,
            env,
        }
    }

    fn config(&self, store: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{store}.toml"))
    }

    /// A sync of `store` with `args`; returns (exit code, report).
    async fn sync(&self, store: &str, args: &[&str]) -> (i32, Value) {
        let run = sync_report(&self.config(store), args, &self.env).await;
        (run.code, run.report())
    }

    /// An applied sync; returns its report.
    async fn applied(&self, store: &str, args: &[&str], what: &str) -> Value {
        let (code, r) = self.sync(store, args).await;
        assert_eq!(
            (code, r["status"].as_str()),
            (0, Some("applied")),
            "{}: {what}: {r}",
            self.provider
        );
        r
    }

    /// The incremental store equals the truth (a full sync of the same org into the other store).
    async fn assert_truth(&self, what: &str) {
        self.applied("full", &["--full"], what).await;
        let got = store_state(&self.dir.path().join("inc.db"), self.provider);
        let want = store_state(&self.dir.path().join("full.db"), self.provider);
        assert!(!want.users.is_empty(), "{what}: the truth has no users");
        if let Some(d) = store_diff(&got, &want) {
            panic!(
                "{}: {what}: the incrementally synced store differs from the truth: {d}",
                self.provider
            );
        }
    }
}

fn kind(r: &Value) -> &str {
    r["kind"].as_str().unwrap_or("(none)")
}

fn removals(r: &Value) -> u64 {
    [
        "/users/deactivated",
        "/users/deleted",
        "/memberships/removed",
        "/groups/deleted",
    ]
    .iter()
    .map(|p| r.pointer(p).and_then(Value::as_u64).unwrap_or(0))
    .sum()
}

/// `n` random changes; deletions only where the provider's feed shows them (Entra).
async fn mutate(env: &Env, rng: &mut Rng, n: usize, step: u64) {
    let mut org = env.emu.org().write().await;
    random_mutations(&mut org, rng, n, step, env.provider == "entra");
}

async fn property_run(provider: &'static str, seed: u64) {
    let env = Env::new(provider, 40, 6, seed).await;
    // what only the feed's requests carry in their path and query
    let feed_path = if provider == "entra" {
        "/delta"
    } else {
        "lastUpdated"
    };
    let mut rng = Rng::new(seed);
    let first = env.applied("inc", &[], "first run").await;
    assert_eq!(kind(&first), "full", "the first run with a feed is full: {first}");
    env.assert_truth("after the first run").await;
    for step in 1..=8u64 {
        mutate(&env, &mut rng, 6, step).await;
        if step == 3 {
            // a fault in the feed: the groups feed answers garbage; nothing destructive applies
            let fault = FaultConfig {
                malformed_rate: 1.0,
                path_contains: Some(feed_path.into()),
                ..FaultConfig::default()
            };
            env.emu.set_faults(fault).expect("set faults");
            let (code, r) = env.sync("inc", &[]).await;
            assert_ne!(code, 0, "step {step}: a broken feed fails the run: {r}");
            assert_eq!(
                removals(&r),
                0,
                "step {step}: nothing destructive on a broken feed: {r}"
            );
            env.emu.set_faults(FaultConfig::default()).expect("clear faults");
        }
        if step == 5 {
            // a run killed while it reads the feed: nothing of it is kept, the next run re-reads
            let slow = FaultConfig {
                latency_ms: 4_000,
                path_contains: Some(feed_path.into()),
                ..FaultConfig::default()
            };
            env.emu.set_faults(slow).expect("set faults");
            let mut child = crate::support::usersync_command(&env.config("inc"));
            child.args(["sync", "--no-progress"]);
            for (k, v) in &env.env {
                child.env(k, v);
            }
            let mut child = child.spawn().expect("spawn usersync");
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            child.kill().await.expect("kill the run");
            env.emu.set_faults(FaultConfig::default()).expect("clear faults");
        }
        let full = step % 4 == 2;
        let args: &[&str] = if full { &["--full"] } else { &[] };
        let r = env.applied("inc", args, &format!("step {step}")).await;
        let want = if full { "full" } else { "incremental" };
        assert_eq!(kind(&r), want, "step {step}: {r}");
        env.assert_truth(&format!("step {step} ({want})")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    property_run("entra", 2101).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    property_run("okta", 2103).await;
}

/// Okta's timestamp feeds cannot see a user or group deleted for good: the next full run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_deletions_are_reconciled_by_the_next_full_run() {
    let env = Env::new("okta", 30, 5, 2104).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    {
        let mut org = env.emu.org().write().await;
        let u = org.live_users().map(|u| u.ix).next().expect("a user");
        org.set_status(u, usersync_emulator::UserStatus::Deprovisioned);
        org.remove_user(u);
    }
    let r = env.applied("inc", &["--full"], "full run after a delete").await;
    assert_eq!(kind(&r), "full", "{r}");
    env.assert_truth("after the full run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_watermark_in_the_future_leads_to_a_full_run() {
    let env = Env::new("okta", 20, 4, 2105).await;
    env.applied("inc", &[], "first run").await;
    // a watermark later than Okta's clock (a host clock gone wrong, a hand-edited store)
    let db = env.dir.path().join("inc.db");
    let conn = usersync_store::SqliteStore::open(&db).expect("open store");
    conn.connection()
        .execute(
            "UPDATE feed_watermarks SET value = 'okta-time:99999999999999' WHERE feed = 'users'",
            [],
        )
        .expect("edit the watermark");
    drop(conn);
    let r = env.applied("inc", &[], "future watermark").await;
    assert_eq!(kind(&r), "full", "a watermark in the future is not trusted: {r}");
    env.assert_truth("after the fallback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_expired_delta_token_leads_to_a_full_run_and_no_change_costs_a_handful_of_requests() {
    let env = Env::new("entra", 30, 5, 2102).await;
    env.applied("inc", &[], "first run").await;
    let quiet = env.applied("inc", &[], "no change").await;
    assert_eq!(kind(&quiet), "incremental", "{quiet}");
    let requests = quiet["requests"].as_u64().expect("requests");
    assert!(
        requests <= 4,
        "a no-change incremental run makes a handful of requests (token, users delta, groups delta), not {requests}: {quiet}"
    );
    let mut rng = Rng::new(7);
    mutate(&env, &mut rng, 5, 1).await;
    env.emu.ctx.feeds.expire_all();
    let r = env.applied("inc", &[], "expired token").await;
    assert_eq!(
        kind(&r),
        "full",
        "an expired delta token leads to a full run: {r}"
    );
    env.assert_truth("after the expired token").await;
    let next = env.applied("inc", &[], "after the fallback").await;
    assert_eq!(
        kind(&next),
        "incremental",
        "the fallback stored new watermarks: {next}"
    );
}
