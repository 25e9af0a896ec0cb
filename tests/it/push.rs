//! `usersync push` end to end: an emulated IdP (Okta) -> `usersync sync` -> store ->
//! `usersync push` -> a SCIM service provider (the SCIM emulator in each profile's mode, and the
//! real scim2-server). The application's own GET answers are the judge, not the run report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};

use crate::support;

const SETUP: &str = "sh tests/scim/setup.sh";
const SCIM2_TOKEN: &str = "scim2-push-token";

/// Where the target application runs.
enum App {
    Emulator(RunningEmulator),
    Scim2(Scim2Server),
}

impl App {
    fn base_url(&self) -> String {
        match self {
            App::Emulator(e) => e.base_url().to_string(),
            App::Scim2(s) => s.base_url.clone(),
        }
    }

    fn token(&self) -> String {
        match self {
            App::Emulator(e) => e.credentials().api_token.clone(),
            App::Scim2(_) => SCIM2_TOKEN.into(),
        }
    }

    fn emulator(&self) -> &RunningEmulator {
        match self {
            App::Emulator(e) => e,
            App::Scim2(_) => panic!("not an emulator"),
        }
    }
}

/// A running scim2-server (PyPI, installed by tests/scim/setup.sh), killed on drop.
struct Scim2Server {
    child: Child,
    base_url: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_scim2_server() -> Scim2Server {
    let target = support::profile_dir()
        .parent()
        .map(PathBuf::from)
        .expect("the profile dir has a parent (the target dir)");
    let bin = target.join("scim2-venv/bin/scim2-server");
    assert!(
        bin.exists(),
        "{} is missing: the push tests need the real scim2-server; install it with `{SETUP}` (from the \
         repository root)",
        bin.display()
    );
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(&bin)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                SCIM2_TOKEN,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e} (install it with `{SETUP}`)", bin.display()));
        let mut server = Scim2Server {
            child,
            base_url: format!("http://127.0.0.1:{port}/v2"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http
                .get(format!("{}/ServiceProviderConfig", server.base_url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return server;
                }
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = server.child.kill();
    }
    panic!("scim2-server did not start (installed by `{SETUP}`)");
}

/// An Okta emulator (the source), a SCIM application (the target), and a config pushing one
/// into the other.
struct Harness {
    idp: RunningEmulator,
    app: App,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// Users and groups as the application holds them (its own GET answers).
#[derive(Debug, Default, PartialEq)]
struct AppView {
    /// userName -> (active, externalId, displayName)
    users: BTreeMap<String, (bool, Option<String>, Option<String>)>,
    /// displayName -> member userNames (empty when the service does not return members)
    groups: BTreeMap<String, BTreeSet<String>>,
    /// every userName, duplicates included
    user_names: Vec<String>,
}

impl Harness {
    async fn new(users: u32, groups: u32, app: App, target_extra: &str) -> Harness {
        let mut opts = EmulatorOptions::new("okta");
        opts.gen = GenConfig {
            users,
            groups,
            seed: 19,
            ..GenConfig::default()
        };
        let idp = start(opts).await.expect("start the Okta emulator");
        let profile = match &app {
            App::Emulator(e) if e.provider == "scim-aws" => "aws",
            App::Emulator(e) if e.provider == "scim-atlassian" => "atlassian",
            _ => "generic",
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            r#"[store]
path = "store.db"

[runtime]
max_retries = 4
max_throttle_wait_secs = 0

[[connections]]
name = "okta"
connector = "okta"
[connections.options]
base_url = "{}"
api_token = {{ env = "OKTA_TOKEN" }}
[connections.policy]
max_removal_percent = 100
max_removals = 100000
min_source_percent = 0

[targets.app]
connector = "scim"
{target_extra}
[targets.app.options]
base_url = "{}"
profile = "{profile}"
token = {{ env = "SCIM_TOKEN" }}
"#,
            idp.http_url,
            app.base_url()
        );
        std::fs::write(dir.path().join("usersync.toml"), config).expect("write config");
        Harness {
            idp,
            app,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("usersync.toml")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = support::usersync_command(&self.config());
        c.args(args)
            .env("OKTA_TOKEN", &self.idp.credentials().api_token)
            .env("SCIM_TOKEN", self.app.token());
        c
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().await.expect("run usersync");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn sync(&self) {
        // `-c okta`: sources only (a full `usersync sync` also pushes the targets); `--full`: the
        // tests delete users at the IdP for good, which only a listing shows
        let (code, out, err) = self
            .run(&[
                "sync",
                "-c",
                "okta",
                "--full",
                "--no-progress",
                "--format",
                "json",
            ])
            .await;
        assert_eq!(code, 0, "sync: {out}{err}");
    }

    /// `usersync push --format json`: exit code and the one target's report.
    async fn push(&self, extra: &[&str]) -> (i32, Value, String) {
        let mut args = vec!["push", "--format", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.run(&args).await;
        let reports: Vec<Value> = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("push printed no JSON ({e}); exit {code}\n{out}\n{err}"));
        assert_eq!(reports.len(), 1, "{out}");
        (code, reports[0].clone(), err)
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.app.base_url()))
            .bearer_auth(self.app.token())
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("JSON")
    }

    async fn list(&self, resource: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let page = self
                .get(&format!("/{resource}?startIndex={start}&count=50"))
                .await;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0);
            start += items.len();
            let done = items.is_empty() || start as u64 > total;
            out.extend(items);
            if done {
                return out;
            }
        }
    }

    /// The application's users and groups, from its own answers.
    async fn app_view(&self) -> AppView {
        let mut v = AppView::default();
        let mut by_id = BTreeMap::new();
        for u in self.list("Users").await {
            let name = u["userName"].as_str().expect("userName").to_string();
            by_id.insert(u["id"].as_str().expect("id").to_string(), name.clone());
            v.user_names.push(name.clone());
            let active = u["active"].as_bool().unwrap_or(true);
            let ext = u["externalId"].as_str().map(str::to_string);
            let display = u["displayName"].as_str().map(str::to_string);
            v.users.insert(name, (active, ext, display));
        }
        for g in self.list("Groups").await {
            let id = g["id"].as_str().expect("id").to_string();
            let full = self.get(&format!("/Groups/{id}")).await;
            let members = full["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|x| x["value"].as_str())
                        .filter_map(|id| by_id.get(id).cloned())
                        .collect()
                })
                .unwrap_or_default();
            v.groups.insert(
                g["displayName"].as_str().expect("displayName").to_string(),
                members,
            );
        }
        v
    }

    fn store(&self) -> usersync_store::ConnectionState {
        support::store_state(&self.dir.path().join("store.db"), "okta")
    }

    /// The application holds exactly the store's active users (active), its groups, and each
    /// group's transitive active members (when the service returns members).
    async fn assert_app_matches_store(&self, members_returned: bool) {
        let st = self.store();
        let view = self.app_view().await;
        let active: BTreeSet<String> = st
            .users
            .iter()
            .filter(|u| u.active)
            .map(|u| u.username.clone())
            .collect();
        let app_active: BTreeSet<String> = view
            .users
            .iter()
            .filter(|(_, (a, _, _))| *a)
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(
            app_active, active,
            "active accounts in the app = active users in the store"
        );
        let mut names = view.user_names.clone();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "no duplicate accounts");
        for u in st.users.iter().filter(|u| u.active) {
            let (_, ext, display) = &view.users[&u.username];
            assert_eq!(ext.as_deref(), Some(format!("okta/{}", u.provider_id).as_str()));
            assert_eq!(display, &u.display_name, "{}", u.username);
        }
        let groups: BTreeSet<String> = st.groups.iter().map(|g| g.name.clone()).collect();
        assert_eq!(view.groups.keys().cloned().collect::<BTreeSet<_>>(), groups);
        if members_returned {
            let names: BTreeMap<&str, &str> = st
                .users
                .iter()
                .filter(|u| u.active)
                .map(|u| (u.provider_id.as_str(), u.username.as_str()))
                .collect();
            for g in &st.groups {
                let want: BTreeSet<String> = st
                    .effective
                    .iter()
                    .filter(|e| e.group == g.provider_id)
                    .filter_map(|e| names.get(e.user.as_str()).map(|s| s.to_string()))
                    .collect();
                assert_eq!(view.groups[&g.name], want, "members of {}", g.name);
            }
        }
    }

    /// Change the IdP: a new user, a rename, a deactivation, a removal, a membership added and
    /// one removed, a group renamed.
    async fn change_the_idp(&self) {
        let mut org = self.idp.org().write().await;
        let live: Vec<u32> = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .collect();
        let new = org.add_user("newcomer@example.com", "New", "Comer");
        assert!(org.rename_user(live[0], "Renamed", "Person"));
        assert!(org.set_status(live[1], UserStatus::Suspended));
        assert!(org.remove_user(live[2]));
        let groups: Vec<u32> = org.live_groups().map(|g| g.ix).collect();
        assert!(org.add_member(groups[0], new));
        let member = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active && u.ix > 2)
            .map(|u| u.ix)
            .find(|ix| org.groups_of(*ix).contains(&groups[1]))
            .expect("a member of the second group");
        assert!(org.remove_member(groups[1], member));
        assert!(org.rename_group(groups[2], "renamed-group"));
    }
}

fn writes(report: &Value) -> u64 {
    report["writes"].as_u64().expect("writes")
}

async fn scim_emulator(mode: &str) -> App {
    App::Emulator(support::start_emulator(mode, 0, 0, 1).await)
}

/// The whole flow against one application: initial push, a no-change push, IdP changes, push.
async fn end_to_end(app: App, members_returned: bool) -> Harness {
    let h = Harness::new(30, 6, app, "deprovision = \"deactivate\"").await;
    h.sync().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["status"], "applied", "{r}");
    h.assert_app_matches_store(members_returned).await;
    let (code, r, _) = h.push(&[]).await;
    assert_eq!(code, 0);
    assert_eq!(writes(&r), 0, "a second push writes nothing: {r}");
    assert_eq!(r["requests"], 0, "and sends nothing: {r}");
    h.change_the_idp().await;
    h.sync().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["counts"]["users_created"], 1, "{r}");
    assert_eq!(r["counts"]["users_deactivated"], 2, "suspended + removed: {r}");
    assert!(r["counts"]["groups_renamed"].as_u64() >= Some(1), "{r}");
    h.assert_app_matches_store(members_returned).await;
    let (_, r, _) = h.push(&[]).await;
    assert_eq!(writes(&r), 0, "{r}");
    h
}

#[tokio::test]
async fn scim_emulator_end_to_end_converges_and_a_second_push_writes_nothing() {
    let h = end_to_end(scim_emulator("scim").await, true).await;
    // a full `usersync sync` pushes after its sources: one more user at the IdP reaches the app
    h.idp
        .org()
        .write()
        .await
        .add_user("via-sync@example.com", "Via", "Sync");
    let (code, out, err) = h.run(&["sync", "--no-progress", "--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let reports: Vec<Value> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(reports.len(), 2, "the source's run and the target's push: {out}");
    assert_eq!(reports[1]["direction"], "push");
    assert_eq!(reports[1]["counts"]["users_created"], 1, "{out}");
    h.assert_app_matches_store(true).await;
    // runs list shows the push runs under push:app
    let (code, out, _) = h.run(&["runs", "list", "--format", "json"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("push:app"), "{out}");
    let runs: Vec<Value> = serde_json::from_str(&out).expect("runs JSON");
    let push_run = runs
        .iter()
        .find(|r| r["connection"] == "push:app")
        .and_then(|r| r["id"].as_i64())
        .expect("a push run");
    let (code, out, err) = h.run(&["runs", "show", &push_run.to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("push:app"), "{out}");
}

#[tokio::test]
async fn scim2_server_end_to_end_converges_and_a_second_push_writes_nothing() {
    end_to_end(App::Scim2(start_scim2_server().await), true).await;
}

#[tokio::test]
async fn aws_profile_initial_push_and_no_change_push() {
    let h = Harness::new(30, 6, scim_emulator("scim-aws").await, "").await;
    h.sync().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    // AWS answers groups without members: users and groups are checked
    h.assert_app_matches_store(false).await;
    let (_, r, _) = h.push(&[]).await;
    assert_eq!(writes(&r), 0, "{r}");
}

#[tokio::test]
async fn atlassian_profile_initial_push_and_no_change_push() {
    let h = Harness::new(30, 6, scim_emulator("scim-atlassian").await, "").await;
    h.sync().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    h.assert_app_matches_store(true).await;
    let (_, r, _) = h.push(&[]).await;
    assert_eq!(writes(&r), 0, "{r}");
}

/// Create a user in the application by hand.
async fn create_by_hand(h: &Harness, user_name: &str) -> String {
    let r = h
        .http
        .post(format!("{}/Users", h.app.base_url()))
        .bearer_auth(h.app.token())
        .json(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "displayName": "Made By Hand",
            "active": true
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("JSON");
    v["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_409_adopts_the_existing_account_and_hand_made_objects_are_never_touched() {
    let h = Harness::new(12, 3, scim_emulator("scim").await, "deprovision = \"delete\"").await;
    h.sync().await;
    let st = h.store();
    let taken = st
        .users
        .iter()
        .find(|u| u.active)
        .expect("an active user")
        .username
        .clone();
    create_by_hand(&h, &taken).await;
    let stranger = create_by_hand(&h, "made-by-hand@example.com").await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["adopted"], 1, "{r}");
    let view = h.app_view().await;
    assert_eq!(
        view.user_names.iter().filter(|n| **n == taken).count(),
        1,
        "no duplicate"
    );
    assert!(
        view.users[&taken].1.is_some(),
        "the adopted account got its externalId"
    );
    // a deletion-mode push after users leave the IdP never touches the hand-made account
    {
        let mut org = h.idp.org().write().await;
        let ix = org.live_users().map(|u| u.ix).next().expect("a user");
        org.remove_user(ix);
    }
    h.sync().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    let hand = h.get(&format!("/Users/{stranger}")).await;
    assert_eq!(hand["displayName"], "Made By Hand");
    assert_eq!(hand["active"], true);
}

#[tokio::test]
async fn a_400_on_one_object_is_reported_the_rest_applies_and_nothing_is_deleted() {
    let h = Harness::new(12, 3, scim_emulator("scim").await, "deprovision = \"delete\"").await;
    h.sync().await;
    let (code, _, _) = h.push(&[]).await;
    assert_eq!(code, 0);
    {
        let mut org = h.idp.org().write().await;
        let ixs: Vec<u32> = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .collect();
        // an email the application refuses (400 invalidValue), a new user, a removal
        org.users[ixs[0] as usize].as_mut().expect("user").email = "not-an-email".into();
        org.add_user("fresh@example.com", "Fresh", "Person");
        org.remove_user(ixs[1]);
    }
    h.sync().await;
    let before = h.app_view().await;
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 1, "a partial push exits 1: {r}\n{err}");
    assert_eq!(r["partial"], true, "{r}");
    let errors = r["errors"].to_string();
    assert!(errors.contains("refused"), "{errors}");
    let after = h.app_view().await;
    assert!(
        after.users.keys().any(|n| n.starts_with("fresh")),
        "the rest applied"
    );
    for name in before.users.keys() {
        assert!(after.users.contains_key(name), "nothing deleted: {name}");
    }
}

#[tokio::test]
async fn a_wrong_token_stops_at_once_naming_the_target() {
    let h = Harness::new(5, 1, scim_emulator("scim").await, "").await;
    h.sync().await;
    let mut c = h.command(&["push", "--format", "json"]);
    c.env("SCIM_TOKEN", "wrong-token");
    let out = c.output().await.expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("target `app`") && stdout.contains("401"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrong-token"), "the token is never printed");
    assert!(h.app_view().await.users.is_empty(), "nothing written");
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_and_the_push_converges() {
    let h = Harness::new(20, 4, scim_emulator("scim").await, "").await;
    h.sync().await;
    h.app
        .emulator()
        .set_faults(FaultConfig {
            error_rate: 0.2,
            error_statuses: vec![502, 503],
            seed: 7,
            ..FaultConfig::default()
        })
        .expect("faults");
    let (code, r, err) = h.push(&[]).await;
    let fired = support::faults_fired(h.app.emulator(), &FaultConfig::default());
    h.app
        .emulator()
        .set_faults(FaultConfig::default())
        .expect("faults off");
    assert_eq!(code, 0, "{r}\n{err}");
    assert!(fired > 0, "the 5xx faults fired");
    h.assert_app_matches_store(true).await;
}

/// The target's runtime for the 429 tests: sequential (so a request arriving inside a 429's
/// `Retry-After` can only be an early retry), throttle waits honoured up to `wait` seconds, a
/// request throttled for longer than `total` seconds fails.
fn throttle_runtime(wait: u64, total: u64) -> String {
    format!(
        "[targets.app.runtime]\nconcurrency = 1\nmax_throttle_wait_secs = {wait}\n\
         max_throttle_total_secs = {total}\n"
    )
}

/// 429s with `Retry-After: 1`, three of them, at random points of the push.
fn three_429s(seed: u64) -> FaultConfig {
    FaultConfig {
        error_rate: 0.25,
        error_statuses: vec![429],
        retry_after_secs: 1,
        max_faults: Some(3),
        seed,
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_the_push_converges() {
    let h = Harness::new(20, 4, scim_emulator("scim").await, &throttle_runtime(5, 60)).await;
    h.sync().await;
    let emu = h.app.emulator();
    emu.set_faults(three_429s(7)).expect("faults");
    let (code, r, err) = h.push(&[]).await;
    let (throttles, early) = (emu.ctx.faults.throttles(), emu.ctx.faults.early_retries());
    emu.set_faults(FaultConfig::default()).expect("faults off");
    assert_eq!(code, 0, "{r}\n{err}");
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(throttles, 3, "the emulator served three 429s");
    // The runtime pauses the target's bucket for the Retry-After: with one request at a time,
    // nothing may reach the emulator before a 429's wait is over (counted there, not timed here).
    assert_eq!(early, 0, "no request arrived inside a 429's Retry-After");
    assert!(
        r["requests"].as_u64() >= Some(writes(&r) + throttles),
        "the throttled requests were sent again: {r}"
    );
    h.assert_app_matches_store(true).await;
    let mut groups: Vec<String> = h
        .list("Groups")
        .await
        .iter()
        .filter_map(|g| g["displayName"].as_str().map(str::to_string))
        .collect();
    let n = groups.len();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), n, "no duplicate groups");
    let (_, r, _) = h.push(&[]).await;
    assert_eq!(writes(&r), 0, "converged: {r}");
}

#[tokio::test]
async fn a_429_longer_than_the_throttle_budget_fails_the_push_naming_the_throttle() {
    // A runtime that may not wait a 2 s Retry-After (budget 1 s) must report it, not push on.
    let h = Harness::new(10, 2, scim_emulator("scim").await, &throttle_runtime(5, 1)).await;
    h.sync().await;
    let emu = h.app.emulator();
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![429],
        retry_after_secs: 2,
        ..FaultConfig::default()
    })
    .expect("faults");
    let (code, r, err) = h.push(&[]).await;
    let throttles = emu.ctx.faults.throttles();
    emu.set_faults(FaultConfig::default()).expect("faults off");
    assert_ne!(code, 0, "{r}\n{err}");
    assert_ne!(r["status"], "applied", "{r}");
    assert!(throttles >= 1, "the emulator served the 429");
    let errors = r["errors"].to_string();
    assert!(
        errors.contains("429") && errors.contains("max_throttle_total_secs"),
        "the report names the throttle: {r}"
    );
    assert!(h.app_view().await.users.is_empty(), "nothing written: {r}");
}

#[tokio::test]
async fn garbage_json_stops_the_push_and_nothing_destructive_is_done() {
    let h = Harness::new(10, 2, scim_emulator("scim").await, "deprovision = \"delete\"").await;
    h.sync().await;
    let (code, _, _) = h.push(&[]).await;
    assert_eq!(code, 0);
    {
        let mut org = h.idp.org().write().await;
        let ix = org.live_users().map(|u| u.ix).next().expect("a user");
        org.remove_user(ix);
        org.add_user("another@example.com", "Another", "One");
    }
    h.sync().await;
    let before = h.app_view().await;
    h.app
        .emulator()
        .set_faults(FaultConfig {
            malformed_rate: 1.0,
            ..FaultConfig::default()
        })
        .expect("faults");
    let (code, r, _) = h.push(&[]).await;
    h.app
        .emulator()
        .set_faults(FaultConfig::default())
        .expect("faults off");
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    let after = h.app_view().await;
    assert_eq!(
        before.users.len(),
        after.users.len() - usize::from(after.users.len() > before.users.len())
    );
    for name in before.users.keys() {
        assert!(after.users.contains_key(name), "nothing deleted: {name}");
    }
}

#[tokio::test]
async fn the_gate_blocks_a_mass_deprovisioning_before_anything_is_written() {
    let h = Harness::new(20, 3, scim_emulator("scim").await, "").await;
    h.sync().await;
    let (code, _, _) = h.push(&[]).await;
    assert_eq!(code, 0);
    {
        let mut org = h.idp.org().write().await;
        let ixs: Vec<u32> = org.live_users().map(|u| u.ix).collect();
        for ix in ixs.iter().skip(3) {
            org.remove_user(*ix);
        }
    }
    h.sync().await;
    let requests_before = h
        .app
        .emulator()
        .ctx
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let (code, r, _) = h.push(&[]).await;
    assert_eq!(code, 3, "blocked exits 3: {r}");
    assert_eq!(r["status"], "blocked");
    assert!(
        r["errors"][0].as_str().expect("why").starts_with("blocked:"),
        "{r}"
    );
    assert_eq!(
        h.app
            .emulator()
            .ctx
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        requests_before,
        "not one request to the application"
    );
    assert!(h.app_view().await.users.values().all(|(active, _, _)| *active));
    // confirmed: it applies
    let n = r["counts"]["users_deactivated"].as_u64().expect("n").to_string();
    let (code, r, _) = h.push(&["--allow-deletes", &n]).await;
    assert_eq!(code, 0, "{r}");
    h.assert_app_matches_store(true).await;
}

#[tokio::test]
async fn a_push_killed_halfway_converges_on_the_next_without_duplicates() {
    let h = Harness::new(40, 4, scim_emulator("scim").await, "").await;
    h.sync().await;
    h.app
        .emulator()
        .set_faults(FaultConfig {
            latency_ms: 25,
            ..FaultConfig::default()
        })
        .expect("faults");
    let mut child = h.command(&["push"]).stdout(Stdio::null()).spawn().expect("spawn");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    child.kill().await.expect("kill");
    h.app
        .emulator()
        .set_faults(FaultConfig::default())
        .expect("faults off");
    let halfway = h.app_view().await.users.len();
    let (code, r, err) = h.push(&[]).await;
    assert_eq!(code, 0, "{r}\n{err}");
    assert!(
        halfway > 0 && halfway < 40,
        "the kill came halfway ({halfway} accounts)"
    );
    h.assert_app_matches_store(true).await;
    let (_, r, _) = h.push(&[]).await;
    assert_eq!(writes(&r), 0, "{r}");
}

#[tokio::test]
async fn config_check_reports_target_problems_with_lines() {
    let h = Harness::new(3, 1, scim_emulator("scim").await, "deprovison = \"delete\"").await;
    let (code, _, err) = h.run(&["config", "check"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":21:") && err.contains("did you mean `deprovision`"),
        "{err}"
    );
    // the target's options are checked against the scim connector's manifest
    let text = std::fs::read_to_string(h.config())
        .expect("read")
        .replace("deprovison = \"delete\"", "")
        .replace("profile = ", "profil = ");
    std::fs::write(h.config(), text).expect("write");
    let (code, _, err) = h.run(&["config", "check"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("connection `targets.app`: option `profil`") && err.contains("did you mean `profile`"),
        "{err}"
    );
}
