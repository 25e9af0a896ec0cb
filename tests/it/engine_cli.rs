//! Issue 18, the engine-facing items, through the real binary: group patterns matching no group
//! are named with close matches and an emptied scope blocks the sync (item 4); a connection that
//! fails before fetching is in run history with its reason (item 5); `explain user` answers from
//! the store without a request unless `--live`, which asks only the connection holding the user,
//! and a broken unrelated connection does not change its exit code (item 7).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use usersync_bench::{write_config, Connection};
use usersync_emulator::{RunningEmulator, UserStatus};
use usersync_store::{RunStatus, SqliteStore, Store};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(config: &std::path::Path, args: &[&str]) -> Out {
    let out = crate::support::usersync_command(config)
        .args(args)
        .output()
        .await
        .expect("run usersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// API requests the emulator has received.
fn requests(emu: &RunningEmulator) -> u64 {
    emu.ctx.stats.requests.load(Ordering::SeqCst)
}

struct Setup {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// An environment variable no test sets.
const UNSET: &str = "USERSYNC_IT_ENGINE_CLI_NEVER_SET";

/// An Okta emulator (60 users, 12 groups: "All Staff", "Engineering", ...) and a config with the
/// connection `okta`, plus, with `broken`, a connection `broken` whose token is an environment
/// variable that is not set, both with the `policy` lines.
async fn setup(policy: &str, broken: bool) -> Setup {
    let emu = crate::support::start_emulator("okta", 60, 12, 18).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let okta = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let mut conns = vec![okta.clone()];
    if broken {
        let mut b = okta.clone();
        b.name = "broken".into();
        let secret = okta
            .secrets
            .first()
            .map(|s| s.0.clone())
            .expect("a secret option");
        b.secrets.clear();
        b.secret_files = vec![(secret, dir.path().join("placeholder"))];
        conns.push(b);
    }
    let config = write_config(dir.path(), &conns, "", policy).expect("config");
    let placeholder = format!(
        "{{ file = {} }}",
        usersync_bench::toml_str(&dir.path().join("placeholder").to_string_lossy())
    );
    let text = std::fs::read_to_string(&config).expect("read config");
    assert!(!broken || text.contains(&placeholder), "{text}");
    let text = text.replace(&placeholder, &format!("{{ env = \"{UNSET}\" }}"));
    std::fs::write(&config, text).expect("write config");
    Setup { emu, dir, config }
}

impl Setup {
    fn store(&self) -> SqliteStore {
        SqliteStore::open_read_only(&self.dir.path().join("store.db")).expect("store")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_failing_before_its_fetch_is_in_run_history_with_its_reason() {
    let s = setup("", true).await;
    let out = run(&s.config, &["sync", "--no-progress", "--format", "json"]).await;
    assert_eq!(
        out.code, 2,
        "a configuration error: {}\n{}",
        out.stdout, out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let broken = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["connection"] == "broken"))
        .expect("a report for `broken`");
    assert_eq!(broken["status"], "failed");
    let run_id = broken["run_id"].as_i64().expect("recorded: a run id");
    let okta = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["connection"] == "okta"))
        .expect("okta");
    assert_eq!(okta["status"], "applied", "the other connection still syncs");

    let runs = s.store().runs(Some("broken"), 10).expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].id, runs[0].status), (run_id, RunStatus::Failed));
    assert!(
        runs[0].errors[0].contains(UNSET) && runs[0].errors[0].contains("`broken`"),
        "the reason names the connection and the unset variable: {:?}",
        runs[0].errors
    );
    assert!(runs[0].finished_ms.is_some());

    let list = run(&s.config, &["runs", "list", "--connection", "broken"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.contains("broken") && l.contains("failed")),
        "{}",
        list.stdout
    );
    let show = run(&s.config, &["runs", "show", &run_id.to_string()]).await;
    assert!(
        show.stdout.contains("status:     failed") && show.stdout.contains(UNSET),
        "{}",
        show.stdout
    );

    // A second sync records a second failed run: the failure is never silent.
    let again = run(&s.config, &["sync", "--no-progress", "--connection", "broken"]).await;
    assert_eq!(again.code, 2);
    assert!(again.stdout.contains("broken: failed (run "), "{}", again.stdout);
    assert_eq!(s.store().runs(Some("broken"), 10).expect("runs").len(), 2);

    // An error that stops the command before the store is opened is not recorded, and says so.
    let before = s.store().runs(None, 100).expect("runs").len();
    let unknown = run(&s.config, &["sync", "--no-progress", "--connection", "nosuch"]).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("nothing was recorded in run history"),
        "{}",
        unknown.stderr
    );
    assert_eq!(s.store().runs(None, 100).expect("runs").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_group_matching_nothing_is_named_and_the_emptied_scope_blocks_the_sync() {
    // The group is called "All Staff".
    let s = setup("required_groups = [\"Staff\"]", false).await;
    let warning = "required_groups pattern `Staff` matches no group at the source (closest: `All Staff`";
    let dry = run(&s.config, &["sync", "--dry-run", "--no-progress"]).await;
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.contains(warning), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("! would be blocked: the scope was emptied by policy: the source returned 60 users"),
        "{}",
        dry.stdout
    );

    let real = run(&s.config, &["sync", "--no-progress", "--format", "json"]).await;
    assert_eq!(real.code, 3, "blocked: {}\n{}", real.stdout, real.stderr);
    let v: serde_json::Value = serde_json::from_str(&real.stdout).expect("json");
    let r = &v[0];
    assert_eq!(r["status"], "blocked");
    for key in [
        "run_id",
        "connection",
        "users",
        "groups",
        "memberships",
        "requests",
        "duration_ms",
    ] {
        assert!(r.get(key).is_some(), "the JSON contract keeps `{key}`: {r}");
    }
    let errors = r["errors"].to_string();
    assert!(
        errors.contains("the scope was emptied by policy")
            && errors.contains("`Staff` (closest: `All Staff`"),
        "{errors}"
    );
    assert_eq!(r["plan"]["unmatched_patterns"][0]["pattern"], "Staff");
    let store = s.store();
    assert!(store.users(None).expect("users").is_empty(), "nothing applied");
    let runs = store.runs(None, 10).expect("runs");
    assert_eq!(runs[0].status, RunStatus::Blocked);
    assert_eq!(
        runs[0].source_users,
        Some(60),
        "a blocked run records the source size"
    );

    // explain shows the same warning, from the store (the last run) and live
    let login = s
        .emu
        .org()
        .read()
        .await
        .users
        .iter()
        .flatten()
        .find(|u| u.status == UserStatus::Active)
        .map(|u| u.login.clone())
        .expect("an active user");
    let stored = run(&s.config, &["explain", "user", &login]).await;
    assert!(
        stored.stdout.contains(&format!("warning: {warning}")),
        "{}",
        stored.stdout
    );
    let live = run(&s.config, &["explain", "user", &login, "--live"]).await;
    assert_eq!(live.code, 0, "{}\n{}", live.stdout, live.stderr);
    assert!(
        live.stdout.contains(&format!("warning: {warning}")),
        "{}",
        live.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_from_the_store_and_fetches_only_the_holding_connection_with_live() {
    let s = setup("required_groups = [\"Engineering\"]", true).await;
    let sync = run(&s.config, &["sync", "--no-progress", "--connection", "okta"]).await;
    assert_eq!(sync.code, 0, "{}\n{}", sync.stdout, sync.stderr);
    let store = s.store();
    let member = store
        .users(Some("okta"))
        .expect("users")
        .into_iter()
        .find(|u| u.active)
        .expect("an Engineering member");
    let stored_ids: Vec<String> = store
        .users(None)
        .expect("users")
        .into_iter()
        .map(|u| u.provider_id)
        .collect();
    let outsider = {
        let org = s.emu.org().read().await;
        org.users
            .iter()
            .flatten()
            .find(|u| {
                u.status == UserStatus::Active
                    && !stored_ids.contains(&usersync_emulator::providers::okta::user_id(&org, u.ix))
            })
            .map(|u| u.login.clone())
            .expect("an active user outside Engineering")
    };

    // from the store: no request, the broken connection plays no part
    let before = requests(&s.emu);
    let out = run(&s.config, &["explain", "user", &member.username]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(requests(&s.emu), before, "answered without a request");
    assert!(out.stdout.contains("as of run 1 ("), "{}", out.stdout);
    assert!(
        out.stdout.contains("local account: active (in scope)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("rule:   member of required group `Engineering` directly"),
        "{}",
        out.stdout
    );
    let json = run(
        &s.config,
        &["explain", "user", &member.username, "--format", "json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let okta = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["connection"] == "okta"))
        .expect("okta");
    assert_eq!(
        (okta["source"].as_str(), okta["as_of_run"].as_i64()),
        (Some("store"), Some(1))
    );

    // never synced, out of scope: the store does not know the user
    let out = run(&s.config, &["explain", "user", &outsider]).await;
    assert_eq!(out.code, 1, "found in no store: {}", out.stdout);
    assert!(out.stdout.contains("not in the store"), "{}", out.stdout);
    assert!(out.stderr.contains("--live"), "{}", out.stderr);

    // --live: only the connection that holds the user is opened and fetched
    let before = requests(&s.emu);
    let out = run(&s.config, &["explain", "user", &member.username, "--live"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(requests(&s.emu) > before, "fetched");
    assert!(
        !out.stderr.contains("broken") && !out.stdout.contains("broken"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("scope:  IN scope") && out.stdout.contains("next sync: no change"),
        "{}",
        out.stdout
    );

    // --live for a user no store holds asks every connection; the broken one is said, and does
    // not decide the exit code; the wording fits a user who gets no account
    let out = run(&s.config, &["explain", "user", &outsider, "--live"]).await;
    assert_eq!(out.code, 0, "found at okta: {}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("`broken`"), "{}", out.stderr);
    assert!(out.stdout.contains("scope:  OUT of scope"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("policy: out of scope: no local account is created"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("policy: deactivate"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("next sync: nothing (there is no local account, and none is created)"),
        "{}",
        out.stdout
    );
}
