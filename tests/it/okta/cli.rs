//! `usersync sync`, `doctor` and the CLI end to end against the Okta emulator: whole-org
//! syncs, faulted runs, free-text managers, objects that vanish mid-run.

use super::*;

// ------------------------------------------------------------------ `usersync sync` end to end

async fn sync_cli(config: &std::path::Path, token: &str) -> (i32, serde_json::Value) {
    let run = crate::support::sync_report(config, &[], &[("OKTA_E2E_TOKEN", token)]).await;
    assert!(!run.stderr.contains(token), "the API token leaked to stderr");
    assert!(!run.stdout.contains(token), "the API token leaked to stdout");
    (run.code, run.report())
}

use crate::support::{active_flags, count as n};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usersync_sync_reads_the_whole_org_and_faulted_runs_deactivate_nobody() {
    let emu = emulator(500, 20, 31).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "okta.db"

[[connections]]
name = "okta"
connector = "okta"

[connections.options]
base_url = "{}"
group_types = ["OKTA_GROUP", "APP_GROUP", "BUILT_IN"]
api_token = {{ env = "OKTA_E2E_TOKEN" }}

[connections.runtime]
max_retries = 1
"#,
            emu.http_url
        ),
    )
    .expect("write config");
    // full runs: the requests of the listings are counted, and faults hit mid-listing
    crate::support::full_runs_only(&config);
    let token = emu.credentials().api_token.clone();

    // 1. first run: everything the org holds, with the fewest requests the page sizes allow
    let (code, r) = sync_cli(&config, &token).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    let (active_users, active_edges, minimum) = {
        let org = emu.org().read().await;
        let active = |ix: u32| org.user(ix).is_some_and(|u| okta_status(u.status).1.is_active());
        let users = org.live_users().filter(|u| active(u.ix)).count() as u64;
        let edges: u64 = org
            .live_groups()
            .map(|g| g.members.iter().filter(|&&m| active(m)).count() as u64)
            .sum();
        (users, edges, minimum_requests(&org))
    };
    assert_eq!(n(&r, "/users/created"), active_users, "{r}");
    assert_eq!(n(&r, "/groups/created"), 20, "{r}");
    assert_eq!(n(&r, "/memberships/added"), active_edges, "{r}");
    assert_eq!(n(&r, "/requests"), minimum, "requests made vs the minimum: {r}");

    // 2. a fault mid-listing: the run fails and nobody is deactivated or removed
    let faults = [
        (
            "paging loop",
            FaultConfig {
                paging_loop_at_page: Some(3),
                ..FaultConfig::default()
            },
        ),
        (
            "expired cursor",
            FaultConfig {
                expire_token_at_page: Some(2),
                ..FaultConfig::default()
            },
        ),
        (
            "truncated bodies",
            FaultConfig {
                truncate_rate: 1.0,
                start_after: 4,
                ..FaultConfig::default()
            },
        ),
        (
            "malformed bodies",
            FaultConfig {
                malformed_rate: 1.0,
                start_after: 4,
                ..FaultConfig::default()
            },
        ),
    ];
    let good = stored(dir.path());
    let stored_ids: std::collections::BTreeSet<&str> = good
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.provider_id.as_str())
        .collect();
    assert_eq!(
        stored_ids.len() as u64,
        active_users,
        "the store holds the active users"
    );
    for (what, f) in faults {
        emu.set_faults(f.clone()).expect("faults");
        let (code, r) = sync_cli(&config, &token).await;
        let fired = crate::support::faults_fired(&emu, &f);
        assert!(fired > 0, "{what}: the emulator served no fault: {r}");
        assert_ne!(code, 0, "{what}: the run must fail: {r}");
        assert_eq!(r["status"].as_str(), Some("failed"), "{what}: {r}");
        crate::support::assert_same_store(&stored(dir.path()), &good, what);
    }
    emu.set_faults(FaultConfig::default()).expect("faults off");

    // 3. an empty page with a next link is not the end of the listing
    emu.set_faults(FaultConfig {
        empty_page_at: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    let (code, r) = sync_cli(&config, &token).await;
    assert!(
        emu.ctx.faults.paging_served() > 0,
        "the empty page was served: {r}"
    );
    emu.set_faults(FaultConfig::default()).expect("faults off");
    assert_eq!(code, 0, "{r}");
    crate::support::assert_same_store(&stored(dir.path()), &good, "an empty page mid-listing");
    assert_eq!(
        n(&r, "/users/unchanged"),
        active_users,
        "empty page mid-listing: {r}"
    );
    assert_eq!(
        n(&r, "/users/deactivated") + n(&r, "/users/reactivated"),
        0,
        "{r}"
    );

    // 4. deprovisioned and suspended in Okta: seen in the listing and deactivated for that reason
    let off: Vec<String> = {
        let mut org = emu.org().write().await;
        let two: Vec<u32> = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .take(2)
            .collect();
        assert!(org.set_status(two[0], UserStatus::Deprovisioned));
        assert!(org.set_status(two[1], UserStatus::Suspended));
        two.iter().map(|ix| user_id(&org, *ix)).collect()
    };
    let (code, r) = sync_cli(&config, &token).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    assert_eq!(n(&r, "/users/deactivated"), 2, "{r}");
    assert_eq!(n(&r, "/users/deleted"), 0, "{r}");
    // the store: the same users and groups, exactly the two inactive now
    let after = stored(dir.path());
    assert_eq!(active_flags(&after, &[]), active_flags(&good, &off));
    assert_eq!(after.groups, good.groups);
}

/// At scale (issue 17): `usersync sync` into a store, which then equals the organisation: the
/// users the provider counts as active, all active, every group, and every direct membership of
/// an active user. 5,000 users and 500 groups in CI; the full size by hand:
/// `USERSYNC_AT_SCALE_USERS=10000 cargo test -p usersync-tests --test it -- okta::at_scale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_scale_sync_stores_exactly_the_org() {
    use usersync_store::Member;
    let (users, groups) = crate::support::at_scale();
    let emu = emulator(users, groups, 77).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sync_config(dir.path(), &emu.http_url, "");
    let token = emu.credentials().api_token.clone();
    let (code, r) = sync_cli(&config, &token).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    let (want_users, want_groups, want_edges) = {
        let org = emu.org().read().await;
        let active = |ix: u32| org.user(ix).is_some_and(|u| okta_status(u.status).1.is_active());
        let users: BTreeSet<(String, bool)> = org
            .live_users()
            .filter(|u| active(u.ix))
            .map(|u| (user_id(&org, u.ix), true))
            .collect();
        let groups: BTreeSet<String> = org.live_groups().map(|g| group_id(&org, g.ix)).collect();
        let edges: BTreeSet<(String, String)> = org
            .live_groups()
            .flat_map(|g| {
                g.members
                    .iter()
                    .filter(|m| active(**m))
                    .map(|m| (group_id(&org, g.ix), user_id(&org, *m)))
                    .collect::<Vec<_>>()
            })
            .collect();
        (users, groups, edges)
    };
    let st = stored(dir.path());
    let got_users: BTreeSet<(String, bool)> = st
        .users
        .iter()
        .map(|u| (u.provider_id.clone(), u.active))
        .collect();
    assert_eq!(
        got_users.len(),
        want_users.len(),
        "stored users vs active users in the org"
    );
    assert!(
        got_users == want_users,
        "the stored users are not the org's active users"
    );
    let got_groups: BTreeSet<String> = st.groups.iter().map(|g| g.provider_id.clone()).collect();
    assert!(got_groups == want_groups, "stored groups differ from the org's");
    let got_edges: BTreeSet<(String, String)> = st
        .memberships
        .iter()
        .filter_map(|m| match &m.member {
            Member::User(u) => Some((m.group.clone(), u.clone())),
            Member::Group(_) => None,
        })
        .collect();
    assert_eq!(got_edges.len(), want_edges.len(), "direct memberships");
    assert!(
        got_edges == want_edges,
        "stored memberships differ from the org's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usersync_doctor_passes_and_diagnoses_a_wrong_token_and_a_missing_permission() {
    let emu = emulator(40, 4, 6).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            "[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n[connections.options]\nbase_url = \"{}\"\n\
             api_token = {{ env = \"OKTA_E2E_TOKEN\" }}\n",
            emu.http_url
        ),
    )
    .expect("write config");
    let doctor = |token: String| {
        let config = config.clone();
        async move {
            let out = tokio::process::Command::new(crate::support::usersync_bin())
                .arg("--config")
                .arg(&config)
                .arg("doctor")
                .env("OKTA_E2E_TOKEN", &token)
                .output()
                .await
                .expect("run usersync doctor");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!text.contains(&token), "the token leaked: {text}");
            (out.status.code().unwrap_or(-1), text)
        }
    };
    let (code, text) = doctor(emu.credentials().api_token.clone()).await;
    assert_eq!(code, 0, "{text}");
    let (code, text) = doctor("00wrongTokenForTheDoctor".into()).await;
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("401") && text.contains("E0000011"),
        "a wrong token is named: {text}"
    );
    let (code, text) = doctor(emu.credentials().limited_api_token.clone()).await;
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("403") && text.contains("Read-Only Administrator"),
        "the missing permission is named: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_select_exactly_those_groups_server_side() {
    let emu = emulator(60, 25, 19).await;
    let org = emu.org().read().await;
    // Okta compares search values without regard to case: a name also selects its case twins.
    let names: Vec<String> = org
        .live_groups()
        .filter(|g| g.kind != GroupKind::BuiltIn)
        .map(|g| g.name.clone())
        .take(3)
        .collect();
    let token = emu.credentials().api_token.clone();
    let c = client_with(
        &emu,
        Cred::Token(token),
        &[
            ("group_types", serde_json::json!(["OKTA_GROUP", "APP_GROUP"])),
            ("group_names", serde_json::json!(names)),
        ],
    );
    let out = c.run_query(&Query::ListGroups).await.expect("groups by name");
    let got: BTreeSet<String> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Group(g) => Some(g.id.clone()),
            _ => None,
        })
        .collect();
    let want: BTreeSet<String> = org
        .live_groups()
        .filter(|g| {
            g.kind != GroupKind::BuiltIn && names.iter().any(|n| n.to_lowercase() == g.name.to_lowercase())
        })
        .map(|g| group_id(&org, g.ix))
        .collect();
    assert_eq!(got, want, "names {names:?}");
    assert!(
        out.skipped.is_empty(),
        "the server applied the search: {:?}",
        out.skipped
    );
}

// ------------------------------------------------- free-text managers and objects that vanish

/// A `usersync sync` config for the Okta emulator at `url`, store `okta.db` next to it, with
/// `extra` option lines.
fn write_sync_config(dir: &std::path::Path, url: &str, extra: &str) -> std::path::PathBuf {
    let config = dir.join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "okta.db"

[[connections]]
name = "okta"
connector = "okta"

[connections.options]
base_url = "{url}"
group_types = ["OKTA_GROUP", "APP_GROUP", "BUILT_IN"]
api_token = {{ env = "OKTA_E2E_TOKEN" }}
{extra}
"#
        ),
    )
    .expect("write config");
    config
}

fn stored(dir: &std::path::Path) -> usersync_store::ConnectionState {
    use usersync_store::Store;
    usersync_store::SqliteStore::open(&dir.join("okta.db"))
        .expect("open store")
        .state("okta")
        .expect("state")
}

/// The warnings the run `r` recorded (`usersync runs show <id>`).
async fn warnings(config: &std::path::Path, r: &serde_json::Value) -> Vec<String> {
    let id = r["run_id"].as_i64().expect("run id").to_string();
    let out = crate::support::usersync_command(config)
        .args(["runs", "show", &id, "--format", "json"])
        .output()
        .await
        .expect("runs show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs show json");
    v.pointer("/plan/warnings")
        .and_then(|w| w.as_array())
        .map(|w| w.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_manager_ids_resolve_by_the_configured_attributes_or_set_no_manager() {
    let emu = emulator(300, 6, 41).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sync_config(
        dir.path(),
        &emu.http_url,
        r#"manager_match = ["id", "login", "employeeNumber"]"#,
    );
    let (code, r) = sync_cli(&config, &emu.credentials().api_token).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    let st = stored(dir.path());
    let org = emu.org().read().await;
    let mut forms: BTreeMap<String, usize> = BTreeMap::new();
    for su in &st.users {
        let u = org
            .live_users()
            .find(|u| user_id(&org, u.ix) == su.provider_id)
            .expect("stored user is in the org");
        let form = okta::manager_form(&org, u);
        *forms.entry(format!("{form:?}")).or_insert(0) += 1;
        let want = match (form, u.manager) {
            (Some(okta::ManagerForm::FreeText) | None, _) | (_, None) => None,
            (Some(_), Some(m)) => Some(ManagerRef::Id(user_id(&org, m))),
        };
        assert_eq!(su.manager, want, "manager of {} ({form:?})", su.username);
        // the raw value is kept verbatim
        let raw = okta::manager_fields(&org, u).0;
        assert_eq!(
            su.attributes.get("managerId").and_then(|v| v.as_str()),
            raw.as_deref().filter(|v| !v.is_empty()),
            "managerId of {}",
            su.username
        );
    }
    for f in [
        "Some(OktaId)",
        "Some(EmployeeNumber)",
        "Some(Login)",
        "Some(FreeText)",
    ] {
        assert!(
            forms.get(f).is_some_and(|&n| n > 0),
            "{f} among stored users: {forms:?}"
        );
    }
    // one warning counts the users whose managerId names no one
    let free_text = org
        .live_users()
        .filter(|u| okta::manager_form(&org, u) == Some(okta::ManagerForm::FreeText))
        .filter(|u| {
            okta::manager_fields(&org, u)
                .0
                .is_some_and(|v| !v.trim().is_empty())
        })
        .count();
    let w: Vec<String> = warnings(&config, &r)
        .await
        .into_iter()
        .filter(|w| w.contains("matches no synced user"))
        .collect();
    assert_eq!(w.len(), 1, "{r}");
    assert!(w[0].starts_with(&format!("{free_text} user(s)")), "{}", w[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_while_the_sync_reads_it_is_a_warning_and_keeps_its_memberships() {
    // two emulators of the same organisation: one run clean, one with the group vanishing
    let clean = emulator(300, 8, 43).await;
    let faulted = emulator(300, 8, 43).await;
    let (clean_dir, faulted_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let clean_cfg = write_sync_config(clean_dir.path(), &clean.http_url, "");
    let faulted_cfg = write_sync_config(faulted_dir.path(), &faulted.http_url, "");
    // full runs: the group vanishes while its members are listed
    crate::support::full_runs_only(&clean_cfg);
    crate::support::full_runs_only(&faulted_cfg);
    let token = |e: &RunningEmulator| e.credentials().api_token.clone();
    for (cfg, emu) in [(&clean_cfg, &clean), (&faulted_cfg, &faulted)] {
        let (code, r) = sync_cli(cfg, &token(emu)).await;
        assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    }
    // the same changes in both organisations, one of them to the group that will vanish
    let (victim, victim_name) = {
        let org = faulted.org().read().await;
        let g = org
            .live_groups()
            .filter(|g| g.kind == GroupKind::Native && !g.members.is_empty())
            .find(|g| org.live_groups().filter(|o| o.name == g.name).count() == 1)
            .expect("a plain group with members");
        (group_id(&org, g.ix), g.name.clone())
    };
    for emu in [&clean, &faulted] {
        let mut org = emu.org().write().await;
        let active: Vec<u32> = org
            .live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .collect();
        let gix = org
            .live_groups()
            .find(|g| g.name == victim_name)
            .map(|g| g.ix)
            .expect("victim");
        let other = org
            .live_groups()
            .find(|g| g.kind == GroupKind::Native && g.ix != gix)
            .map(|g| g.ix)
            .expect("another group");
        let joiner = *active
            .iter()
            .find(|&&u| !org.groups_of(u).contains(&gix))
            .expect("a user outside the victim");
        assert!(org.add_member(gix, joiner));
        let joiner2 = *active
            .iter()
            .find(|&&u| !org.groups_of(u).contains(&other))
            .expect("a user outside the other group");
        assert!(org.add_member(other, joiner2));
        assert!(org.set_status(active[0], UserStatus::Suspended));
    }
    let before = stored(faulted_dir.path());
    faulted
        .set_faults(FaultConfig {
            vanish_group: Some(victim_name.clone()),
            ..FaultConfig::default()
        })
        .expect("faults");
    let (code, r) = sync_cli(&clean_cfg, &token(&clean)).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "clean: {r}");
    let (code, r) = sync_cli(&faulted_cfg, &token(&faulted)).await;
    assert_eq!(
        (code, r["status"].as_str()),
        (0, Some("applied")),
        "a vanished group is no failure: {r}"
    );
    assert_eq!(faulted.ctx.faults.vanished(), 1, "the fault fired");
    assert!(
        faulted
            .org()
            .read()
            .await
            .live_groups()
            .all(|g| g.name != victim_name),
        "the group is gone from the organisation"
    );
    assert!(
        warnings(&faulted_cfg, &r)
            .await
            .iter()
            .any(|w| w.contains(&format!("`{victim_name}` ({victim})")) && w.contains("not found")),
        "a warning names the group: {r}"
    );
    let (c, f) = (stored(clean_dir.path()), stored(faulted_dir.path()));
    assert_eq!(
        f.users, c.users,
        "users as in a clean run (the suspended user deactivated)"
    );
    assert!(f.users.iter().any(|u| !u.active), "the suspension was applied");
    assert_eq!(f.groups, c.groups, "groups as in a clean run");
    let of = |s: &usersync_store::ConnectionState, victim_only: bool| -> BTreeSet<String> {
        s.memberships
            .iter()
            .filter(|m| (m.group == victim) == victim_only)
            .map(|m| format!("{m:?}"))
            .collect()
    };
    assert_eq!(
        of(&f, true),
        of(&before, true),
        "the vanished group's memberships are unchanged"
    );
    assert_ne!(of(&c, true), of(&before, true), "(the clean run did change them)");
    assert_eq!(
        of(&f, false),
        of(&c, false),
        "every other membership as in a clean run"
    );

    // the next run sees the group gone and reconciles
    faulted.set_faults(FaultConfig::default()).expect("faults off");
    let (code, r) = sync_cli(&faulted_cfg, &token(&faulted)).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    let f = stored(faulted_dir.path());
    assert!(f.groups.iter().all(|g| g.provider_id != victim), "{r}");
    assert!(f.memberships.iter().all(|m| m.group != victim), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_again_later_423_is_retried_and_user_groups_are_read_across_pages() {
    let emu = emulator(40, 4, 47).await;
    let uid = {
        let mut org = emu.org().write().await;
        for i in 0..230 {
            let g = org.add_group(&format!("Project {i:03}"), GroupKind::Native);
            org.add_member(g, 5);
        }
        user_id(&org, 5)
    };
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![423],
        max_faults: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    let c = client(&emu);
    let out = c
        .run_query(&Query::UserGroups { user_id: uid.clone() })
        .await
        .expect("423 E0000239 is retried, not a failure");
    assert_eq!(emu.ctx.faults.injected(), 2, "both 423s were answered");
    let got: BTreeSet<String> = out
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Membership(m) => Some(m.group_id.clone()),
            _ => None,
        })
        .collect();
    let org = emu.org().read().await;
    let want: BTreeSet<String> = org.groups_of(5).iter().map(|&g| group_id(&org, g)).collect();
    assert!(want.len() > 230, "more than one page of groups");
    assert_eq!(got, want, "every page of the user's groups");
    assert!(c.counters().retries >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_come_with_the_listing_and_cost_no_request_per_user() {
    let emu = emulator(200, 6, 53).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_sync_config(
        dir.path(),
        &emu.http_url,
        "\n[connections.policy]\nmanagers = true",
    );
    // a full run: the requests of the listings are counted
    crate::support::full_runs_only(&config);
    let (code, r) = sync_cli(&config, &emu.credentials().api_token).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    let org = emu.org().read().await;
    assert!(
        org.live_users().any(|u| u.manager.is_none()),
        "some users have no manager"
    );
    // users without `managerId` are known to have none: no `GET /api/v1/users/{id}` for them
    assert_eq!(n(&r, "/requests"), minimum_requests(&org), "{r}");
    let st = stored(dir.path());
    assert!(
        st.users.iter().any(|u| u.manager.is_some()),
        "managers are synced"
    );
}
