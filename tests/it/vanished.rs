//! Issue 17.5, every provider: a group deleted between the group listing and the read of its
//! members (or a user between the user listing and the read of their groups) answers "not found".
//! Through the `usersync` binary against each emulator (fault `vanish_group` / `vanish_user`): the
//! run applies (exit 0), a warning names the object, the object's stored memberships are left as
//! they were, and the next run reconciles.

use serde_json::Value;
use usersync_emulator::{FaultConfig, RunningEmulator};
use usersync_store::{ConnectionState, Member, SqliteStore, Store};

/// An emulator, and a config written from its `connector_options` / `connector_secrets` (what
/// `usersync demo` writes), secrets passed through environment variables.
struct Env {
    provider: &'static str,
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Env {
    async fn new(provider: &'static str, policy: &str) -> Env {
        let emu = crate::support::start_emulator(provider, 80, 10, 29).await;
        let info = emu.info().await;
        let mut text = format!(
            "[store]\npath = \"store.db\"\n\n[[connections]]\nname = \"{provider}\"\nconnector = \"{provider}\"\n\
             [connections.options]\n"
        );
        for (k, v) in info["client"]["connector_options"].as_object().expect("options") {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let mut env = Vec::new();
        for (k, v) in info["client"]["connector_secrets"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let var = format!(
                "USERSYNC_IT_VANISH_{}_{}",
                provider.to_uppercase(),
                k.to_uppercase()
            );
            text.push_str(&format!("{k} = {{ env = \"{var}\" }}\n"));
            env.push((var, v.as_str().expect("secret text").to_string()));
        }
        text.push_str(&format!("[connections.policy]\n{policy}\n"));
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("usersync.toml");
        std::fs::write(&config, text).expect("write config");
        Env {
            provider,
            emu,
            dir,
            config,
            env,
        }
    }

    /// `usersync <args>`: exit code and stdout (stderr appended when stdout is empty).
    async fn run(&self, args: &[&str]) -> (i32, String) {
        let mut cmd = crate::support::usersync_command(&self.config);
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.expect("run usersync");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.trim().is_empty() {
            text = format!("(no output; stderr: {})", String::from_utf8_lossy(&out.stderr));
        }
        (out.status.code().unwrap_or(-1), text)
    }

    /// A sync that must exit 0 and apply; returns its report.
    async fn sync(&self) -> Value {
        let run = crate::support::sync_report(&self.config, &[], &self.env).await;
        let r = run.report();
        assert_eq!(
            (run.code, r["status"].as_str()),
            (0, Some("applied")),
            "{}: {r}",
            self.provider
        );
        r
    }

    /// The warnings the run recorded.
    async fn warnings(&self, r: &Value) -> Vec<String> {
        let id = r["run_id"].as_i64().expect("run id").to_string();
        let (code, out) = self.run(&["runs", "show", &id, "--format", "json"]).await;
        assert_eq!(code, 0, "{out}");
        let v: Value = serde_json::from_str(&out).expect("runs show json");
        v["plan"]["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    fn state(&self) -> ConnectionState {
        SqliteStore::open(&self.dir.path().join("store.db"))
            .expect("open store")
            .state(self.provider)
            .expect("state")
    }
}

/// The members of group `gid` in the store.
fn members_of(st: &ConnectionState, gid: &str) -> Vec<Member> {
    let mut m: Vec<Member> = st
        .memberships
        .iter()
        .filter(|m| m.group == gid)
        .map(|m| m.member.clone())
        .collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_before_its_members_are_read_keeps_its_memberships_for_every_provider() {
    for provider in ["entra", "google", "keycloak", "okta"] {
        let env = Env::new(provider, "").await;
        // full runs: the group vanishes while its members are listed
        crate::support::full_runs_only(&env.dir.path().join("usersync.toml"));
        env.sync().await;
        let before = env.state();
        // a synced group with user members and a name no other group has
        let victim = before
            .groups
            .iter()
            .filter(|g| {
                before
                    .groups
                    .iter()
                    .filter(|o| o.source_name == g.source_name)
                    .count()
                    == 1
            })
            .find(|g| {
                before
                    .memberships
                    .iter()
                    .any(|m| m.group == g.provider_id && matches!(m.member, Member::User(_)))
            })
            .unwrap_or_else(|| panic!("{provider}: a group with members"))
            .clone();
        // a change a clean run would make to it: one more member
        {
            let mut org = env.emu.org().write().await;
            let gix = org
                .live_groups()
                .find(|g| g.name == victim.source_name)
                .map(|g| g.ix)
                .expect("victim in the org");
            let joiner = org
                .live_users()
                .filter(|u| u.status.is_enabled() && !org.groups_of(u.ix).contains(&gix))
                .map(|u| u.ix)
                .next()
                .expect("a user outside the group");
            assert!(org.add_member(gix, joiner));
        }
        env.emu
            .set_faults(FaultConfig {
                vanish_group: Some(victim.source_name.clone()),
                ..FaultConfig::default()
            })
            .expect("faults");
        let r = env.sync().await;
        assert_eq!(
            env.emu.ctx.faults.vanished(),
            1,
            "{provider}: the fault fired: {r}"
        );
        let warnings = env.warnings(&r).await;
        assert!(
            warnings.iter().any(|w| w
                .contains(&format!("`{}` ({})", victim.source_name, victim.provider_id))
                && w.contains("not found")),
            "{provider}: a warning names the group: {warnings:?}"
        );
        let after = env.state();
        assert_eq!(
            members_of(&after, &victim.provider_id),
            members_of(&before, &victim.provider_id),
            "{provider}: the vanished group's memberships are left as stored"
        );
        assert_eq!(r["users"]["deactivated"], 0, "{provider}: {r}");

        // the next run: the group is gone from the source, and from the store
        env.emu.set_faults(FaultConfig::default()).expect("faults off");
        env.sync().await;
        let last = env.state();
        assert!(
            last.groups.iter().all(|g| g.provider_id != victim.provider_id)
                && members_of(&last, &victim.provider_id).is_empty(),
            "{provider}: the next run reconciles"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_before_their_groups_are_read_keeps_their_memberships() {
    for provider in ["okta", "keycloak"] {
        let env = Env::new(provider, "membership_route = \"per_user\"\n").await;
        env.sync().await;
        let before = env.state();
        let (victim, login) = {
            let org = env.emu.org().read().await;
            let st = &before;
            let u = st
                .users
                .iter()
                .filter(|u| u.active)
                .find(|u| {
                    st.memberships
                        .iter()
                        .any(|m| m.member == Member::User(u.provider_id.clone()))
                })
                .expect("an active user with groups");
            let login = org
                .live_users()
                .find(|x| {
                    x.login.eq_ignore_ascii_case(&u.username) || x.email.eq_ignore_ascii_case(&u.username)
                })
                .map(|x| x.login.clone())
                .expect("user in the org");
            (u.clone(), login)
        };
        env.emu
            .set_faults(FaultConfig {
                vanish_user: Some(login.clone()),
                ..FaultConfig::default()
            })
            .expect("faults");
        let r = env.sync().await;
        assert_eq!(
            env.emu.ctx.faults.vanished(),
            1,
            "{provider}: the fault fired: {r}"
        );
        let warnings = env.warnings(&r).await;
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("({})", victim.provider_id)) && w.contains("not found")),
            "{provider}: a warning names the user: {warnings:?}"
        );
        let of_user = |st: &ConnectionState| -> Vec<String> {
            let mut v: Vec<String> = st
                .memberships
                .iter()
                .filter(|m| m.member == Member::User(victim.provider_id.clone()))
                .map(|m| m.group.clone())
                .collect();
            v.sort();
            v
        };
        let after = env.state();
        assert_eq!(
            of_user(&after),
            of_user(&before),
            "{provider}: memberships left as stored"
        );
    }
}
