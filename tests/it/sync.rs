//! Integration tests: `usersync sync` end to end. The host binary (subprocess) syncs the Okta
//! connector against the in-process Okta emulator into a SQLite store; expectations come from
//! the emulator's organisation and the store, never from the code under test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use usersync_emulator::providers::okta::{group_id, user_id};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};
use usersync_store::{ConnectionState, SqliteStore, Store};

const TOKEN_ENV: &str = "USERSYNC_IT_SYNC_OKTA_TOKEN";

struct Harness {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    connection: String,
}

impl Harness {
    /// An Okta emulator and a config with one connection `okta` using `policy` lines.
    async fn new(users: u32, groups: u32, seed: u64, policy: &str) -> Harness {
        let gen = GenConfig {
            users,
            groups,
            seed,
            ..GenConfig::default()
        };
        Harness::with("okta", gen, policy).await
    }

    async fn with(provider: &str, gen: GenConfig, policy: &str) -> Harness {
        let mut opts = EmulatorOptions::new(provider);
        opts.gen = gen;
        let emu = start(opts).await.expect("start the emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let options = match provider {
            "okta" => format!("base_url = \"{}\"\napi_token = {{ env = \"{TOKEN_ENV}\" }}", emu.http_url),
            "keycloak" => format!(
                "base_url = \"{}\"\nrealm = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ env = \"{TOKEN_ENV}\" }}",
                emu.http_url,
                usersync_emulator::providers::keycloak::REALM,
                emu.credentials().client_id
            ),
            other => panic!("no config for {other}"),
        };
        let config = format!(
            r#"
[store]
path = "store.db"

[runtime]
max_retries = 1
max_throttle_wait_secs = 0

[[connections]]
name = "{provider}"
connector = "{provider}"
[connections.options]
{options}
[connections.policy]
{policy}
"#
        );
        std::fs::write(dir.path().join("usersync.toml"), config).expect("write config");
        Harness {
            emu,
            dir,
            connection: provider.to_string(),
        }
    }

    fn secret(&self) -> String {
        match self.connection.as_str() {
            "okta" => self.emu.credentials().api_token.clone(),
            _ => self.emu.credentials().client_secret.clone(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("usersync.toml")
    }

    fn store_path(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = crate::support::usersync_command(&self.config());
        c.args(args).env(TOKEN_ENV, self.secret());
        c
    }

    /// Run the binary; (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().await.expect("run usersync");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `usersync sync --format json` plus extra args; (exit code, the connection's report).
    async fn sync(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let secret = self.secret();
        let run = crate::support::sync_report(&self.config(), extra, &[(TOKEN_ENV, &secret)]).await;
        (run.code, run.report())
    }

    fn state(&self) -> ConnectionState {
        SqliteStore::open(&self.store_path())
            .expect("open store")
            .state(&self.connection)
            .expect("state")
    }

    async fn uid(&self, ix: u32) -> String {
        user_id(&*self.emu.org().read().await, ix)
    }
}

use crate::support::count as n;

fn is_active(s: UserStatus) -> bool {
    matches!(
        s,
        UserStatus::Active | UserStatus::Recovery | UserStatus::PasswordExpired | UserStatus::Locked
    )
}

/// Pick active users that are members of at least one group (index order, deterministic).
async fn active_users(h: &Harness, count: usize) -> Vec<u32> {
    let org = h.emu.org().read().await;
    org.live_users()
        .filter(|u| is_active(u.status))
        .map(|u| u.ix)
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_matches_the_org_and_a_resync_writes_nothing() {
    let h = Harness::new(80, 6, 11, "").await;
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["status"], "applied");
    let (want_active, want_groups, want_edges) = {
        let org = h.emu.org().read().await;
        let active: Vec<String> = org
            .live_users()
            .filter(|u| is_active(u.status))
            .map(|u| user_id(&org, u.ix))
            .collect();
        let groups = org.live_groups().count();
        let mut edges = std::collections::BTreeSet::new();
        for g in org.live_groups() {
            for m in &g.members {
                let u = org.user(*m).expect("member");
                if is_active(u.status) {
                    edges.insert((group_id(&org, g.ix), user_id(&org, *m)));
                }
            }
        }
        (active, groups, edges)
    };
    assert_eq!(
        n(&r, "/users/created"),
        want_active.len() as u64,
        "active users are created, others not"
    );
    let st = h.state();
    let mut got: Vec<String> = st.users.iter().map(|u| u.provider_id.clone()).collect();
    let mut want = want_active.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(st.users.iter().all(|u| u.active));
    // groups the connector lists (its default group types) are all stored, with their members
    assert!(
        !st.groups.is_empty() && st.groups.len() <= want_groups,
        "{} groups",
        st.groups.len()
    );
    for m in &st.memberships {
        if let usersync_store::Member::User(u) = &m.member {
            assert!(
                want_edges.contains(&(m.group.clone(), u.clone())),
                "{m:?} is not in the org"
            );
        }
    }
    let stored_edges = st.memberships.len() as u64;
    assert_eq!(n(&r, "/memberships/added"), stored_edges);
    assert!(n(&r, "/requests") > 0);

    let before = h.state();
    let max_updated = |p: &Path| -> i64 {
        let s = SqliteStore::open(p).expect("open");
        s.connection()
            .query_row("SELECT coalesce(max(updated_ms), 0) FROM users", [], |r| r.get(0))
            .expect("max")
    };
    let stamp = max_updated(&h.store_path());
    let (code, r2) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r2}");
    for k in [
        "created",
        "updated",
        "renamed",
        "reactivated",
        "deactivated",
        "deleted",
    ] {
        assert_eq!(n(&r2, &format!("/users/{k}")), 0, "{k}: {r2}");
    }
    assert_eq!(n(&r2, "/users/unchanged"), want_active.len() as u64);
    assert_eq!(n(&r2, "/memberships/added") + n(&r2, "/memberships/removed"), 0);
    assert_eq!(
        n(&r2, "/groups/created") + n(&r2, "/groups/updated") + n(&r2, "/groups/deleted"),
        0
    );
    assert_eq!(h.state(), before);
    assert_eq!(max_updated(&h.store_path()), stamp, "no user row was rewritten");

    // the read commands see the same store
    let (code, out, _) = h.run(&["users", "list", "--format", "json"]).await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(listed.as_array().expect("array").len(), want_active.len());
    let (code, out, _) = h.run(&["runs", "list", "--format", "json"]).await;
    assert_eq!(code, 0);
    let runs: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(runs.as_array().expect("array").len(), 2);
    assert_eq!(runs[0]["status"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_remove_rename_and_membership_changes_reach_the_store() {
    let h = Harness::new(120, 6, 21, "").await;
    let (code, _) = h.sync(&[]).await;
    assert_eq!(code, 0);
    let picked = active_users(&h, 4).await;
    let (disabled, removed, renamed, moved) = (picked[0], picked[1], picked[2], picked[3]);
    let (gid_added, gid_left) = {
        let mut org = h.emu.org().write().await;
        assert!(org.set_status(disabled, UserStatus::Suspended));
        assert!(org.remove_user(removed));
        if let Some(Some(u)) = org.users.get_mut(renamed as usize) {
            u.login = "renamed.person@example.com".into();
        }
        // move `moved` into a group it is not in, out of one it is in
        let current: Vec<u32> = org.groups_of(moved).to_vec();
        let target = org
            .live_groups()
            .map(|g| g.ix)
            .find(|g| !current.contains(g))
            .expect("a group to join");
        assert!(org.add_member(target, moved));
        let left = current.iter().copied().find(|g| *g != 0); // group 0 is Okta's built-in Everyone
        if let Some(l) = left {
            assert!(org.remove_member(l, moved));
        }
        (group_id(&org, target), left.map(|l| group_id(&org, l)))
    };
    // a full run: Okta's feed cannot see a hard delete, and the login is edited behind its clock
    let (code, r) = h.sync(&["--full"]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(n(&r, "/users/deactivated"), 2, "{r}");
    assert_eq!(n(&r, "/users/renamed"), 1, "{r}");
    assert_eq!(
        n(&r, "/users/created") + n(&r, "/users/deleted"),
        0,
        "a rename is never delete + create"
    );
    let st = h.state();
    let find = |id: &str| {
        st.users
            .iter()
            .find(|u| u.provider_id == id)
            .cloned()
            .expect("user kept")
    };
    let d = find(&h.uid(disabled).await);
    assert!(!d.active);
    assert_eq!(
        d.inactive_reason.as_deref(),
        Some("disabled at source (SUSPENDED)")
    );
    let gone = find(&h.uid(removed).await);
    assert!(!gone.active);
    assert_eq!(gone.inactive_reason.as_deref(), Some("missing from the source"));
    let ren = find(&h.uid(renamed).await);
    assert_eq!(ren.username, "renamed.person@example.com");
    assert!(ren.active);
    let mid = h.uid(moved).await;
    let member_of = |g: &str| {
        st.memberships
            .iter()
            .any(|m| m.group == g && m.member == usersync_store::Member::User(mid.clone()))
    };
    assert!(member_of(&gid_added));
    if let Some(l) = &gid_left {
        assert!(!member_of(l));
        assert_eq!(n(&r, "/memberships/removed"), 1, "{r}");
    }
    assert!(n(&r, "/memberships/added") >= 1);

    // show commands reflect it
    let (code, out, _) = h
        .run(&["users", "show", "renamed.person@example.com", "--format", "json"])
        .await;
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["provider_id"], serde_json::json!(h.uid(renamed).await));
    let (code, out, _) = h.run(&["groups", "show", &gid_added, "--format", "json"]).await;
    assert_eq!(code, 0, "{out}");
    let g: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(g["direct_members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["id"] == serde_json::json!(mid)));

    // deleting by policy
    let h2 = Harness::new(60, 4, 22, "on_user_missing = \"delete\"").await;
    assert_eq!(h2.sync(&[]).await.0, 0);
    let victim = active_users(&h2, 1).await[0];
    let vid = h2.uid(victim).await;
    assert!(h2.emu.org().write().await.remove_user(victim));
    // a full run: Okta's feed cannot see a hard delete
    let (code, r) = h2.sync(&["--full"]).await;
    assert_eq!(code, 0);
    assert_eq!(n(&r, "/users/deleted"), 1);
    assert!(h2.state().users.iter().all(|u| u.provider_id != vid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_the_middle_of_a_fetch_applies_nothing_destructive() {
    let h = Harness::new(100, 8, 31, "").await;
    // full runs: the fault is counted in requests of the listings, and hard deletes need a listing
    crate::support::full_runs_only(&h.config());
    assert_eq!(h.sync(&[]).await.0, 0);
    let before = h.state();
    let picked = active_users(&h, 2).await;
    {
        let mut org = h.emu.org().write().await;
        assert!(org.remove_user(picked[0]));
        assert!(org.set_status(picked[1], UserStatus::Suspended));
        org.add_user("brand.new@example.com", "Brand", "New");
    }
    // the users and groups listings succeed (one request each), then every request fails
    h.emu
        .set_faults(FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![503],
            start_after: 2,
            ..FaultConfig::default()
        })
        .expect("faults");
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["status"], "failed");
    assert_eq!(n(&r, "/users/deactivated") + n(&r, "/users/deleted"), 0, "{r}");
    assert_eq!(n(&r, "/memberships/removed") + n(&r, "/groups/deleted"), 0, "{r}");
    let errors = r["errors"].to_string();
    assert!(errors.contains("withheld") && errors.contains("503"), "{errors}");
    let after = h.state();
    assert_eq!(
        after.users.iter().filter(|u| u.active).count(),
        before.users.len() + 1,
        "nobody was deactivated; the new user arrived"
    );
    assert_eq!(after.memberships, before.memberships);

    // once the provider is healthy the same changes apply
    h.emu.set_faults(FaultConfig::default()).expect("faults");
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(n(&r, "/users/deactivated"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_removal_threshold_blocks_with_exit_3_until_confirmed() {
    let h = Harness::new(100, 4, 41, "").await;
    assert_eq!(h.sync(&[]).await.0, 0);
    let before = h.state();
    let active = before.users.len() as u64;
    let victims = active_users(&h, 12).await;
    {
        let mut org = h.emu.org().write().await;
        for v in &victims {
            assert!(org.remove_user(*v));
        }
    }
    // full runs: users vanishing from a listing (Okta's feed cannot see hard deletes)
    let (code, r) = h.sync(&["--full"]).await;
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["status"], "blocked");
    let msg = r["errors"].to_string();
    assert!(msg.contains(&format!("12 of {active}")), "{msg}");
    assert!(msg.contains("--allow-deletes 12"), "{msg}");
    assert_eq!(h.state(), before, "a blocked run changes nothing");

    let (code, _) = h.sync(&["--full", "--allow-deletes", "11"]).await;
    assert_eq!(code, 3, "confirming fewer than the run removes does not pass");
    let (code, r) = h.sync(&["--full", "--allow-deletes", "12"]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(n(&r, "/users/deactivated"), 12);

    // a source that suddenly returns nobody is blocked the same way
    {
        let mut org = h.emu.org().write().await;
        let all: Vec<u32> = org.live_users().map(|u| u.ix).collect();
        for ix in all {
            org.remove_user(ix);
        }
    }
    let (code, r) = h.sync(&["--full"]).await;
    assert_eq!(code, 3, "{r}");
    assert!(r["errors"].to_string().contains("returned 0 users"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_a_dry_run_prints_is_what_the_apply_does() {
    let h = Harness::new(90, 6, 51, "").await;
    assert_eq!(h.sync(&[]).await.0, 0);
    let picked = active_users(&h, 3).await;
    {
        let mut org = h.emu.org().write().await;
        org.set_status(picked[0], UserStatus::Suspended);
        if let Some(Some(u)) = org.users.get_mut(picked[1] as usize) {
            u.login = "someone.else@example.com".into();
        }
        let g = org.live_groups().map(|g| g.ix).next().expect("group");
        org.rename_group(g, "Renamed Group");
        org.add_user("fresh@example.com", "Fresh", "Hire");
    }
    let before = h.state();
    // full runs: the login is edited behind the emulator's clock, which Okta's feed cannot see
    let (code, dry) = h.sync(&["--full", "--dry-run"]).await;
    assert_eq!(code, 0, "{dry}");
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(h.state(), before, "a dry run changes nothing");
    let (code, real) = h.sync(&["--full"]).await;
    assert_eq!(code, 0, "{real}");
    for k in ["users", "groups", "memberships"] {
        assert_eq!(dry[k], real[k], "{k}");
    }
    let dry_plan = recorded_plan(&h, &dry["run_id"]).await;
    let real_plan = recorded_plan(&h, &real["run_id"]).await;
    assert!(
        dry_plan["users"].as_array().is_some_and(|a| a.len() >= 3),
        "{dry_plan}"
    );
    assert_eq!(dry_plan, real_plan);
}

async fn recorded_plan(h: &Harness, id: &serde_json::Value) -> serde_json::Value {
    let id = id.as_i64().expect("run id").to_string();
    let (code, out, _) = h.run(&["runs", "show", &id, "--format", "json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["plan"].clone()
}

/// Start `usersync -v sync` and return once it announced the apply (its stderr keeps draining).
async fn spawn_until_apply(h: &Harness) -> (tokio::process::Child, std::time::Instant) {
    let mut child = h
        .command(&["-v", "sync", "--no-progress", "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("applying") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(announced, "the host never announced the apply");
    let at = std::time::Instant::now();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, at)
}

/// Kill -9 the host while it applies a large initial sync, at several points after it announced
/// the apply; the store must hold either the old state (nothing) or the complete new state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_apply_leaves_the_old_or_the_new_state() {
    let h = Harness::new(1500, 30, 61, "").await;
    // reference: an uninterrupted run into a copy of the config's store
    let (code, r) = h.sync(&["--dry-run"]).await;
    assert_eq!(code, 0, "{r}");
    let pristine = h.dir.path().join("pristine");
    std::fs::create_dir_all(&pristine).expect("dir");
    for f in ["store.db", "store.db-wal", "store.db-shm"] {
        let p = h.dir.path().join(f);
        if p.exists() {
            std::fs::copy(&p, pristine.join(f)).expect("copy");
        }
    }
    // the uninterrupted run, timed from its "applying" announcement to its exit
    let (mut child, announced) = spawn_until_apply(&h).await;
    let status = child.wait().await.expect("wait");
    assert!(status.success());
    let apply_ms = announced.elapsed().as_millis() as u64;
    let new_state = h.state();
    assert!(new_state.users.len() > 1000);
    eprintln!(
        "apply of the initial sync of {} users: {apply_ms} ms",
        new_state.users.len()
    );
    let mut saw_old = 0;
    let mut saw_new = 0;
    // the last kill lands early, so the final run below finds an interrupted run to mark
    let delays = [
        1,
        apply_ms / 8,
        apply_ms / 4,
        apply_ms / 2,
        apply_ms * 3 / 4,
        apply_ms * 3 + 500,
        0,
    ];
    for delay_ms in delays {
        for f in ["store.db", "store.db-wal", "store.db-shm"] {
            let _ = std::fs::remove_file(h.dir.path().join(f));
            let p = pristine.join(f);
            if p.exists() {
                std::fs::copy(&p, h.dir.path().join(f)).expect("restore");
            }
        }
        let (mut child, _) = spawn_until_apply(&h).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.start_kill(); // SIGKILL; fails only if the process is already reaped
        let _ = child.wait().await;
        let st = h.state();
        if st.users.is_empty() && st.groups.is_empty() && st.memberships.is_empty() && st.effective.is_empty()
        {
            saw_old += 1;
        } else {
            assert_eq!(
                st, new_state,
                "killed {delay_ms} ms into the apply: a mix of old and new"
            );
            saw_new += 1;
        }
    }
    eprintln!("kill -9 during apply at {delays:?} ms: {saw_old} old state, {saw_new} new state");
    assert!(
        saw_old > 0,
        "no kill landed before the commit; the test did not exercise the apply"
    );
    // the next run after a crash completes normally
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(h.state(), new_state);
    let (_, out, _) = h
        .run(&["runs", "list", "--format", "json", "--limit", "100"])
        .await;
    assert!(
        out.contains("\"interrupted\""),
        "killed runs are marked interrupted: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_names_file_line_and_option() {
    let h = Harness::new(5, 1, 71, "").await;
    let (code, out, err) = h.run(&["config", "check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let bad = std::fs::read_to_string(h.config())
        .expect("read")
        .replace("base_url =", "base_ulr =");
    std::fs::write(h.config(), bad).expect("write");
    let (code, _, err) = h.run(&["config", "check"]).await;
    assert_eq!(code, 2);
    let want = format!(
        "{}:13: connection `okta`: option `base_ulr`",
        h.config().display()
    );
    assert!(
        err.contains(&want) && err.contains("did you mean `base_url`"),
        "{err}"
    );
    let (code, _, _) = h.run(&["sync", "--no-progress"]).await;
    assert_eq!(code, 2, "a config error is exit code 2");
    let (code, _, err) = h.run(&["sync", "--connection", "nope"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no connection named `nope`"), "{err}");
}

/// Keycloak nests groups: a required group admits members of its sub-groups, with the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_groups_admit_members_through_nested_groups() {
    use usersync_emulator::providers::keycloak::{group_id as kc_group, user_id as kc_user};
    let gen = GenConfig {
        users: 150,
        groups: 12,
        seed: 81,
        nesting_depth: 3,
        ..GenConfig::default()
    };
    // find a parent with a child group, and a user only in the child
    let probe = Harness::with("keycloak", gen.clone(), "").await;
    let (parent, child, inner) = {
        let org = probe.emu.org().read().await;
        let mut found = None;
        for p in org.live_groups() {
            for c in &p.child_groups {
                let cg = org.group(*c).expect("child");
                if let Some(u) = cg.members.iter().find(|u| {
                    !p.members.contains(u) && org.user(**u).is_some_and(|x| x.status == UserStatus::Active)
                }) {
                    found = Some((p.ix, *c, *u));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        found.expect("the generated realm nests groups")
    };
    let (pid, cid, uid, parent_name, child_name, transitive) = {
        let org = probe.emu.org().read().await;
        let t: BTreeSet<String> = org
            .transitive_members(parent)
            .into_iter()
            .map(|u| kc_user(&org, u))
            .collect();
        let active: BTreeSet<String> = org
            .live_users()
            // Keycloak has only `enabled`; deprovisioned users do not exist in a realm
            .filter(|u| !matches!(u.status, UserStatus::Suspended | UserStatus::Deprovisioned))
            .map(|u| kc_user(&org, u.ix))
            .collect();
        (
            kc_group(&org, parent),
            kc_group(&org, child),
            kc_user(&org, inner),
            org.group(parent).expect("p").name.clone(),
            org.group(child).expect("c").name.clone(),
            t.intersection(&active).cloned().collect::<BTreeSet<String>>(),
        )
    };
    drop(probe);
    let h = Harness::with("keycloak", gen, &format!("required_groups = [\"{pid}\"]")).await;
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r}");
    let st = h.state();
    let stored: BTreeSet<String> = st.users.iter().map(|u| u.provider_id.clone()).collect();
    let extra: Vec<&String> = stored.difference(&transitive).collect();
    let missing: Vec<&String> = transitive.difference(&stored).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "exactly the active members of the required group's subtree; extra {extra:?}, missing {missing:?}"
    );
    assert!(stored.contains(&uid));
    let e = st
        .effective
        .iter()
        .find(|e| e.user == uid && e.group == pid)
        .expect("inherited membership stored");
    assert_eq!(e.path.first(), Some(&child_name), "{:?}", e.path);
    assert_eq!(e.path.last(), Some(&parent_name), "{:?}", e.path);
    assert!(st
        .memberships
        .iter()
        .any(|m| m.group == pid && m.member == usersync_store::Member::Group(cid.clone())));

    let (code, out, err) = h
        .run(&["explain", "user", &uid, "--live", "--format", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["decision"]["in_scope"], true, "{v}");
    assert!(
        v[0]["decision"]["rule"]
            .as_str()
            .unwrap_or("")
            .contains("through nested groups"),
        "{v}"
    );

    // leaving the child group takes the user out of scope -> deactivated
    {
        let mut org = h.emu.org().write().await;
        assert!(org.remove_member(child, inner));
    }
    let (code, r) = h.sync(&["--allow-deletes", "1"]).await;
    assert_eq!(code, 0, "{r}");
    let u = h
        .state()
        .users
        .into_iter()
        .find(|u| u.provider_id == uid)
        .expect("kept");
    if !u.active {
        assert!(u.inactive_reason.unwrap_or_default().starts_with("out of scope"));
    } else {
        panic!("{uid} left the subtree but stayed active: {r}");
    }
}

/// Run history keeps the first 1,000 entries of each list of a large plan, says how many it
/// left out, and the run's counts stay complete; a resync of the same organisation still
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_history_keeps_a_bounded_plan_with_complete_counts() {
    let h = Harness::new(300, 30, 97, "").await;
    let (code, r) = h.sync(&[]).await;
    assert_eq!(code, 0, "{r}");
    let st = h.state();
    let added = r["memberships"]["added"].as_u64().expect("count");
    assert_eq!(
        added as usize,
        st.memberships.len(),
        "every membership is counted"
    );
    assert!(
        added > 1000,
        "the organisation has more memberships than history keeps: {added}"
    );
    let created = r["users"]["created"].as_u64().expect("count");
    assert_eq!(created as usize, st.users.len());

    let plan = recorded_plan(&h, &r["run_id"]).await;
    assert_eq!(
        plan["memberships"].as_array().map(Vec::len),
        Some(1000),
        "{}",
        plan["omitted"]
    );
    assert_eq!(plan["omitted"]["memberships"].as_u64(), Some(added - 1000));
    assert!(plan["omitted"].get("users").is_none(), "{}", plan["omitted"]);
    assert_eq!(plan["users"].as_array().map(|a| a.len() as u64), Some(created));
    let last = plan["warnings"]
        .as_array()
        .and_then(|w| w.last())
        .and_then(|w| w.as_str())
        .unwrap_or("");
    assert!(
        last.contains("keeps the first 1000 entries")
            && last.contains(&format!("{} memberships", added - 1000)),
        "{last}"
    );

    let (code, again) = h.sync(&[]).await;
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        again["memberships"],
        serde_json::json!({"added": 0, "removed": 0})
    );
    assert_eq!(again["users"]["unchanged"].as_u64(), Some(created));
    assert_eq!(h.state(), st, "a resync writes nothing");
    let plan = recorded_plan(&h, &again["run_id"]).await;
    assert_eq!(plan["omitted"], serde_json::json!({}));
}
