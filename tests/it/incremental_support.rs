//! What the incremental-run tests (issue 21: `incremental.rs`, `incremental_more.rs`) share: an
//! emulator with two configs over it, `inc` (change feeds, the subject) and `full` (every run
//! `--full`, the truth), and readers of the sync report.

use std::time::Duration;

use serde_json::Value;
use usersync_emulator::{FaultConfig, RunningEmulator};

use crate::support::{store_diff, store_state, sync_report};

/// An emulator and the two configs over it.
pub struct Env {
    pub provider: &'static str,
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Env {
    pub async fn new(provider: &'static str, users: u32, groups: u32, seed: u64) -> Env {
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

    pub fn config(&self, store: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{store}.toml"))
    }

    /// Replace `from` with `to` in `store`'s config (a policy knob).
    pub fn edit_config(&self, store: &str, from: &str, to: &str) {
        let path = self.config(store);
        let text = std::fs::read_to_string(&path).expect("read config");
        assert!(text.contains(from), "`{from}` not in {}", path.display());
        std::fs::write(&path, text.replace(from, to)).expect("write config");
    }

    /// A sync of `store` with `args`; returns (exit code, report).
    pub async fn sync(&self, store: &str, args: &[&str]) -> (i32, Value) {
        let run = sync_report(&self.config(store), args, &self.env).await;
        (run.code, run.report())
    }

    /// An applied sync; returns its report.
    pub async fn applied(&self, store: &str, args: &[&str], what: &str) -> Value {
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
    pub async fn assert_truth(&self, what: &str) {
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

    /// Overwrite a stored watermark of the `inc` store.
    pub fn set_watermark(&self, feed: &str, value: &str) {
        let conn = usersync_store::SqliteStore::open(&self.dir.path().join("inc.db")).expect("open store");
        conn.connection()
            .execute(
                "UPDATE feed_watermarks SET value = ?1 WHERE feed = ?2",
                [value, feed],
            )
            .expect("edit the watermark");
    }

    /// A broken feed (every response to a request whose path or query contains `feed` is
    /// garbage) fails the run and removes nobody.
    pub async fn broken_feed_fails_without_removals(&self, feed: &str, what: &str) {
        let fault = FaultConfig {
            malformed_rate: 1.0,
            path_contains: Some(feed.into()),
            ..FaultConfig::default()
        };
        self.emu.set_faults(fault).expect("set faults");
        let (code, r) = self.sync("inc", &[]).await;
        assert_ne!(code, 0, "{what}: a broken feed fails the run: {r}");
        assert_eq!(
            removals(&r),
            0,
            "{what}: nothing destructive on a broken feed: {r}"
        );
        self.emu.set_faults(FaultConfig::default()).expect("clear faults");
    }

    /// A run killed while it reads the feed (requests matching `feed` are slow): nothing of it is
    /// kept, the next run reads the same changes again.
    pub async fn kill_a_run_reading_the_feed(&self, feed: &str) {
        let slow = FaultConfig {
            latency_ms: 4_000,
            path_contains: Some(feed.into()),
            ..FaultConfig::default()
        };
        self.emu.set_faults(slow).expect("set faults");
        let mut child = crate::support::usersync_command(&self.config("inc"));
        child.args(["sync", "--no-progress"]);
        for (k, v) in &self.env {
            child.env(k, v);
        }
        let mut child = child.spawn().expect("spawn usersync");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        child.kill().await.expect("kill the run");
        self.emu.set_faults(FaultConfig::default()).expect("clear faults");
    }
}

/// `full` or `incremental`.
pub fn kind(r: &Value) -> &str {
    r["kind"].as_str().unwrap_or("(none)")
}

/// Deactivations, deletions and removed memberships and groups of a run.
pub fn removals(r: &Value) -> u64 {
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

/// Deactivated and deleted users of a run.
pub fn deactivations(r: &Value) -> u64 {
    ["/users/deactivated", "/users/deleted"]
        .iter()
        .map(|p| r.pointer(p).and_then(Value::as_u64).unwrap_or(0))
        .sum()
}
