//! The fault suite's environment: one provider emulator, a config for the real `usersync` binary,
//! and the checks every fault case shares (store differences, what a failed run may have done).

use std::path::PathBuf;
use std::time::Duration;

use usersync_bench::{page_size_option, write_config, Connection};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};
use usersync_store::ConnectionState;

/// Upper bound for one `usersync sync` run; a hang (e.g. an endless paging loop) fails the test.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The runs' error retries (`max_retries`) unless a case sets its own.
pub(super) const MAX_RETRIES: u64 = 3;

/// The runs' whole-request timeout (`request_timeout_secs`) unless a case sets its own.
pub(super) const REQUEST_TIMEOUT_SECS: u64 = 3;

/// How long one request may keep being throttled before its query fails
/// (`max_throttle_total_secs`): the runtime's default, ten of the 2 s throttle waits, unless a
/// case sets its own.
pub(super) const THROTTLE_BUDGET_SECS: u64 = 20;

pub(super) struct Env {
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub provider: &'static str,
}

/// Outcome of one sync run.
pub(super) struct Run {
    pub code: i32,
    pub report: serde_json::Value,
    pub stderr: String,
}

impl Env {
    pub async fn new(provider: &'static str, users: u32, groups: u32, token_ttl: i64) -> Env {
        let mut opts = EmulatorOptions::new(provider);
        opts.gen = GenConfig {
            users,
            groups,
            seed: 12,
            ..GenConfig::default()
        };
        opts.token_ttl_secs = token_ttl;
        Self::with_options(provider, opts).await
    }

    pub async fn with_options(provider: &'static str, opts: EmulatorOptions) -> Env {
        // small pages: every listing spans several pages, so paging faults hit mid-listing
        Self::with_page_size(provider, opts, Some(10), "").await
    }

    /// `page_size`: the connector's page size where it has the option (`None`: the largest the
    /// provider allows); `policy`: lines of the connection's `[connections.policy]` table.
    pub async fn with_page_size(
        provider: &'static str,
        opts: EmulatorOptions,
        page_size: Option<u32>,
        policy: &str,
    ) -> Env {
        Self::with_runtime(provider, opts, page_size, policy, "").await
    }

    /// [`Env::with_page_size`] with extra lines for the `[runtime]` table (e.g. `max_run_secs = 5`).
    pub async fn with_runtime(
        provider: &'static str,
        opts: EmulatorOptions,
        page_size: Option<u32>,
        policy: &str,
        extra_runtime: &str,
    ) -> Env {
        let emu = start(opts).await.expect("start emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let info = emu.info().await;
        let mut conn = Connection::from_emulator_info(&info, None).expect("connection from emulator info");
        if let Some((opt, max)) = page_size_option(provider) {
            conn.set_option(opt, serde_json::json!(page_size.unwrap_or(max)));
        }
        let runtime = format!(
            "max_retries = {MAX_RETRIES}\nmax_throttle_wait_secs = 2\nmax_throttle_total_secs = {THROTTLE_BUDGET_SECS}\nrequest_timeout_secs = {REQUEST_TIMEOUT_SECS}\nconnect_timeout_secs = 2\n{extra_runtime}"
        );
        let config = write_config(dir.path(), &[conn], &runtime, policy).expect("write config");
        // every faulted run reads the listings the faults aim at: no change feed
        crate::support::full_runs_only(&config);
        Env {
            emu,
            dir,
            config,
            provider,
        }
    }

    /// Sets one line of the `[runtime]` table [`Env::with_runtime`] wrote (e.g.
    /// `request_timeout_secs`) from the next run on.
    pub fn set_runtime(&self, key: &str, value: u64) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let prefix = format!("{key} = ");
        let mut found = false;
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&prefix) {
                    found = true;
                    format!("{prefix}{value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(found, "no `{key}` line in {}", self.config.display());
        std::fs::write(&self.config, lines.join("\n") + "\n").expect("write config");
    }

    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = crate::support::usersync_command(&self.config);
        c.args(args);
        let out = tokio::time::timeout(RUN_LIMIT, c.output())
            .await
            .unwrap_or_else(|_| panic!("{}: `usersync {args:?}` hung for {RUN_LIMIT:?}", self.provider))
            .expect("run usersync");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn sync(&self) -> Run {
        let (code, stdout, stderr) = self.run(&["sync", "--format", "json", "--no-progress"]).await;
        let run = crate::support::SyncRun::parse(&self.config, code, stdout, stderr);
        let report = run.report();
        Run {
            code,
            report,
            stderr: run.stderr,
        }
    }

    /// Request-level faults the emulator injected since the fault config was last set: a fault
    /// test proves its fault fired.
    pub fn faults_injected(&self) -> u64 {
        self.emu.ctx.faults.injected()
    }

    pub fn state(&self) -> ConnectionState {
        crate::support::store_state(&self.dir.path().join("store.db"), self.provider)
    }

    /// `usersync users list --format json`: (provider id, active) of every user, sorted.
    pub async fn listed_users(&self) -> Vec<(String, bool)> {
        let (code, out, err) = self.run(&["users", "list", "--format", "json"]).await;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("users list json");
        let mut users: Vec<(String, bool)> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|u| {
                (
                    u["provider_id"].as_str().expect("provider_id").to_string(),
                    u["active"].as_bool().expect("active"),
                )
            })
            .collect();
        users.sort();
        users
    }

    /// A clean sync that must succeed.
    pub async fn clean_sync(&self, what: &str) -> ConnectionState {
        self.emu.set_faults(FaultConfig::default()).expect("clear faults");
        let r = self.sync().await;
        assert_eq!(
            r.code, 0,
            "{}: clean sync ({what}) failed: {}\n{}",
            self.provider, r.report, r.stderr
        );
        assert_eq!(r.report["status"], "applied", "{}", r.report);
        self.state()
    }

    /// Change the organisation a little so a faulted run has something to apply: rename one
    /// active user (a different one per case).
    pub async fn mutate(&self, case: usize) {
        let mut org = self.emu.org().write().await;
        let ix = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .nth(case)
            .expect("enough active users");
        assert!(org.rename_user(ix, "Renamed", &format!("Case{case}")));
    }
}

pub(super) use crate::support::{count, short, store_diff as diff};

/// After a failed run (docs/sync.md, safety gates): nothing destructive happened (every user,
/// group and membership of `before` is still there, nobody active was deactivated), and every
/// additive change is one a clean run also makes (each record is as before or as after a clean
/// run: nothing invented from a broken read).
pub(super) fn failed_run_is_safe(
    before: &ConnectionState,
    faulted: &ConnectionState,
    clean: &ConnectionState,
) -> Result<(), String> {
    for u in &before.users {
        let Some(f) = faulted.users.iter().find(|x| x.provider_id == u.provider_id) else {
            return Err(format!("a failed run deleted user {}", u.username));
        };
        if u.active && !f.active {
            return Err(format!("a failed run deactivated {}", u.username));
        }
    }
    for f in &faulted.users {
        let was = before.users.iter().find(|x| x.provider_id == f.provider_id);
        let clean_u = clean.users.iter().find(|x| x.provider_id == f.provider_id);
        if was != Some(f) && clean_u != Some(f) {
            return Err(format!(
                "a failed run wrote a user no clean run writes: {}",
                short(f)
            ));
        }
    }
    for g in &before.groups {
        if !faulted.groups.iter().any(|x| x.provider_id == g.provider_id) {
            return Err(format!("a failed run deleted group {}", g.name));
        }
    }
    for f in &faulted.groups {
        if !before.groups.contains(f) && !clean.groups.contains(f) {
            return Err(format!(
                "a failed run wrote a group no clean run writes: {}",
                short(f)
            ));
        }
    }
    for m in &before.memberships {
        if !faulted.memberships.contains(m) {
            return Err(format!("a failed run removed membership {}", short(m)));
        }
    }
    for m in &faulted.memberships {
        if !before.memberships.contains(m) && !clean.memberships.contains(m) {
            return Err(format!(
                "a failed run added a membership no clean run has: {}",
                short(m)
            ));
        }
    }
    Ok(())
}
