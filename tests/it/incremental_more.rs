//! Issue 21, part 2: OneLogin's change feed (users by `updated_since`, groups re-listed), through
//! the `usersync` binary against the emulator. After every applied run the incrementally synced
//! store equals a store synced in full from the same org (the truth); what the feed cannot see
//! (deleted users and groups) is never removed or deactivated by an incremental run and is
//! reconciled by the next full run; an unusable watermark or a broken feed never reads as
//! "nothing changed". Keycloak and Google read in full (docs/providers/{keycloak,google}.md).

use std::time::Duration;

use serde_json::Value;
use usersync_emulator::mutate::{random_mutations, Rng};
use usersync_emulator::{FaultConfig, RunningEmulator};

use crate::support::{store_diff, store_state, sync_report};

/// What only OneLogin's users feed carries in its query.
const FEED: &str = "updated_since";

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
                let var = format!(
                    "USERSYNC_IT_INC2_{}_{}",
                    provider.to_uppercase(),
                    k.to_uppercase()
                );
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

    async fn sync(&self, store: &str, args: &[&str]) -> (i32, Value) {
        let run = sync_report(&self.config(store), args, &self.env).await;
        (run.code, run.report())
    }

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

    fn set_watermark(&self, feed: &str, value: &str) {
        let conn = usersync_store::SqliteStore::open(&self.dir.path().join("inc.db")).expect("open store");
        conn.connection()
            .execute(
                "UPDATE feed_watermarks SET value = ?1 WHERE feed = ?2",
                [value, feed],
            )
            .expect("edit the watermark");
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

fn deactivations(r: &Value) -> u64 {
    ["/users/deactivated", "/users/deleted"]
        .iter()
        .map(|p| r.pointer(p).and_then(Value::as_u64).unwrap_or(0))
        .sum()
}

/// Seeded random changes (create, rename, status, manager, move between groups, create and
/// rename groups), incremental and `--full` runs interleaved, a broken feed and a run killed while
/// it reads the feed: after every applied run the store equals the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    let env = Env::new("onelogin", 40, 6, 2201).await;
    let mut rng = Rng::new(2201);
    let first = env.applied("inc", &[], "first run").await;
    assert_eq!(kind(&first), "full", "the first run with a feed is full: {first}");
    env.assert_truth("after the first run").await;
    for step in 1..=8u64 {
        {
            let mut org = env.emu.org().write().await;
            random_mutations(&mut org, &mut rng, 6, step, false);
        }
        if step == 3 {
            let fault = FaultConfig {
                malformed_rate: 1.0,
                path_contains: Some(FEED.into()),
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
            let slow = FaultConfig {
                latency_ms: 4_000,
                path_contains: Some(FEED.into()),
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

/// OneLogin deletes users and groups outright: the feed cannot see it. An incremental run
/// deactivates nobody (the deleted user stays as it was), and the next full run reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_deletions_are_left_to_the_next_full_run_and_nobody_is_wrongly_deactivated() {
    let env = Env::new("onelogin", 30, 5, 2202).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    let quiet = env.applied("inc", &[], "no change").await;
    assert_eq!(kind(&quiet), "incremental", "{quiet}");
    let requests = quiet["requests"].as_u64().expect("requests");
    assert!(
        requests <= 4,
        "a no-change incremental run makes a handful of requests (token, users feed, groups), not {requests}: {quiet}"
    );
    {
        let mut org = env.emu.org().write().await;
        let users: Vec<u32> = org.live_users().map(|u| u.ix).take(2).collect();
        org.remove_user(users[0]);
        org.rename_user(users[1], "Still", "Here");
    }
    let r = env.applied("inc", &[], "incremental run after a delete").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    assert_eq!(
        deactivations(&r),
        0,
        "a feed that cannot see deletes deactivates nobody: {r}"
    );
    assert!(
        r.pointer("/users/updated").and_then(Value::as_u64).unwrap_or(0) >= 1,
        "the rename was read from the feed: {r}"
    );
    let r = env.applied("inc", &["--full"], "full run after a delete").await;
    assert_eq!(kind(&r), "full", "{r}");
    assert_eq!(
        deactivations(&r),
        1,
        "the full run reconciles the deleted user: {r}"
    );
    env.assert_truth("after the full run").await;
}

/// A watermark OneLogin's feed cannot answer from (later than its clock, or unreadable) leads to
/// a full run, never to "nothing changed"; the fallback stores a usable watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_unusable_watermarks_lead_to_a_full_run() {
    let env = Env::new("onelogin", 20, 4, 2203).await;
    env.applied("inc", &[], "first run").await;
    for bad in ["onelogin-time:99999999999999", "garbage"] {
        {
            let mut org = env.emu.org().write().await;
            let u = org.live_users().map(|u| u.ix).next().expect("a user");
            org.rename_user(u, "Changed", bad);
        }
        env.set_watermark("users", bad);
        let r = env.applied("inc", &[], bad).await;
        assert_eq!(kind(&r), "full", "watermark `{bad}` is not trusted: {r}");
        env.assert_truth(bad).await;
        let next = env.applied("inc", &[], "after the fallback").await;
        assert_eq!(
            kind(&next),
            "incremental",
            "the fallback stored new watermarks: {next}"
        );
    }
}

/// A user's group is an attribute of the user in OneLogin (`group_id`): a move between groups is
/// read from the users feed, and the old membership goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_a_move_between_groups_is_read_from_the_users_feed() {
    let env = Env::new("onelogin", 20, 4, 2204).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    {
        let mut org = env.emu.org().write().await;
        let native: Vec<u32> = org
            .live_groups()
            .filter(|g| g.kind == usersync_emulator::GroupKind::Native)
            .map(|g| g.ix)
            .collect();
        // a user in exactly one of the groups OneLogin serves (built-in ones are not served)
        let (u, from) = org
            .live_users()
            .filter(|u| u.status == usersync_emulator::UserStatus::Active)
            .find_map(|u| {
                let mine: Vec<u32> = org
                    .groups_of(u.ix)
                    .iter()
                    .copied()
                    .filter(|g| native.contains(g))
                    .collect();
                (mine.len() == 1).then(|| (u.ix, mine[0]))
            })
            .expect("a user in one group");
        let to = *native.iter().find(|g| **g != from).expect("another group");
        org.remove_member(from, u);
        org.add_member(to, u);
    }
    let r = env.applied("inc", &[], "after a move").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    assert_eq!(
        r.pointer("/memberships/removed").and_then(Value::as_u64),
        Some(1),
        "the old group's membership goes: {r}"
    );
    env.assert_truth("after the move").await;
}
