//! Okta end to end: the Okta connector driven by the runtime (HTTP, auth, retries, paging guards)
//! against the emulator's Okta facade. The expected data comes from the emulator's organisation,
//! never from the connector.

use crate::support::fast_settings as settings;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use usersync_config::Secret;
use usersync_emulator::org::Org;
use usersync_emulator::providers::okta::{self, group_id, user_id};
use usersync_emulator::{FaultConfig, GroupKind, RunningEmulator, UserStatus};
use usersync_model::{Group, ManagerRef, MemberRef, Record, User, UserState};
use usersync_runtime::{ConnectionClient, ConnectionSettings, RuntimeError};
use usersync_sdk::{Connector, ConnectorError, Options, Query};

const PAGE: usize = 200;

async fn emulator(users: u32, groups: u32, seed: u64) -> RunningEmulator {
    crate::support::start_emulator("okta", users, groups, seed).await
}

enum Cred {
    Token(String),
    /// OAuth service app: client id and the PEM private key.
    ServiceApp(String, String),
}

fn client_with(emu: &RunningEmulator, cred: Cred, extra: &[(&str, serde_json::Value)]) -> ConnectionClient {
    client_with_settings(emu, cred, extra, settings())
}

fn client_with_settings(
    emu: &RunningEmulator,
    cred: Cred,
    extra: &[(&str, serde_json::Value)],
    settings: ConnectionSettings,
) -> ConnectionClient {
    let connector: Arc<dyn Connector> = Arc::from(usersync_connector_okta::connector());
    let mut values: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    values.insert("base_url".into(), serde_json::json!(emu.http_url));
    values.insert(
        "group_types".into(),
        serde_json::json!(["OKTA_GROUP", "APP_GROUP", "BUILT_IN"]),
    );
    for (k, v) in extra {
        values.insert(k.to_string(), v.clone());
    }
    let mut secrets = BTreeMap::new();
    match cred {
        Cred::Token(t) => {
            secrets.insert("api_token".to_string(), Secret::new(t));
        }
        Cred::ServiceApp(id, pem) => {
            values.insert("client_id".into(), serde_json::json!(id));
            values.insert("signing_alg".into(), serde_json::json!("ES256"));
            secrets.insert("private_key".to_string(), Secret::new(pem));
        }
    }
    let options = Options::validate(&connector.manifest(), values, secrets.keys().cloned().collect())
        .expect("valid okta options");
    ConnectionClient::new("okta-e2e", connector, options, secrets, settings).expect("client")
}

fn client(emu: &RunningEmulator) -> ConnectionClient {
    client_with(emu, Cred::Token(emu.credentials().api_token.clone()), &[])
}

/// What one full read of the org returned.
#[derive(Debug, Default)]
struct Listing {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    members: BTreeMap<String, BTreeSet<String>>,
    skipped: BTreeMap<String, u64>,
}

/// Users, groups, and the members of every group, as the sync's fetch would read them.
async fn full_listing(c: &ConnectionClient) -> Result<Listing, RuntimeError> {
    let mut out = Listing::default();
    for r in c.run_query(&Query::ListUsers).await?.records {
        if let Record::User(u) = r {
            assert!(out.users.insert(u.id.clone(), u).is_none(), "a user listed twice");
        }
    }
    let groups = c.run_query(&Query::ListGroups).await?;
    out.skipped = groups.skipped;
    for r in groups.records {
        if let Record::Group(g) = r {
            assert!(
                out.groups.insert(g.id.clone(), g).is_none(),
                "a group listed twice"
            );
        }
    }
    let ids: Vec<String> = out.groups.keys().cloned().collect();
    let queries = ids
        .iter()
        .map(|g| Query::GroupMembers { group_id: g.clone() })
        .collect();
    for (gid, res) in ids.iter().zip(c.run_all(queries).await) {
        let set = out.members.entry(gid.clone()).or_default();
        for r in res?.records {
            match r {
                Record::Membership(m) => {
                    assert_eq!(&m.group_id, gid);
                    assert!(m.direct);
                    match m.member {
                        MemberRef::User(u) => assert!(set.insert(u), "member listed twice"),
                        other => panic!("okta groups have only user members, got {other:?}"),
                    }
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    Ok(out)
}

/// The manager reference the connector makes of a user's `profile.managerId` (free text the
/// engine resolves), with the default `manager_match`.
fn manager_ref(org: &Org, u: &usersync_emulator::org::User) -> Option<ManagerRef> {
    let value = okta::manager_fields(org, u).0?.trim().to_string();
    (!value.is_empty()).then(|| ManagerRef::Lookup {
        value,
        keys: vec!["id".into(), "username".into()],
    })
}

fn okta_status(s: UserStatus) -> (&'static str, UserState) {
    match s {
        UserStatus::Active => ("ACTIVE", UserState::Active),
        UserStatus::Staged => ("STAGED", UserState::Staged),
        UserStatus::Provisioned => ("PROVISIONED", UserState::Staged),
        UserStatus::Recovery => ("RECOVERY", UserState::Active),
        UserStatus::PasswordExpired => ("PASSWORD_EXPIRED", UserState::Active),
        UserStatus::Locked => ("LOCKED_OUT", UserState::Locked),
        UserStatus::Suspended => ("SUSPENDED", UserState::Disabled),
        UserStatus::Deprovisioned => ("DEPROVISIONED", UserState::Deprovisioned),
    }
}

/// Compare a listing with the organisation: users with statuses and managers, groups with names
/// and types, and every direct membership.
fn assert_matches_org(l: &Listing, org: &Org) {
    let want_users: BTreeSet<String> = org.live_users().map(|u| user_id(org, u.ix)).collect();
    let got_users: BTreeSet<String> = l.users.keys().cloned().collect();
    assert_eq!(got_users, want_users, "user ids");
    for u in org.live_users() {
        let got = &l.users[&user_id(org, u.ix)];
        let (raw, state) = okta_status(u.status);
        assert_eq!(got.status.raw, raw, "status of {}", got.id);
        assert_eq!(got.status.state, state, "state of {}", got.id);
        assert_eq!(got.manager, manager_ref(org, u), "manager of {}", got.id);
        if okta::sends_display_name(u) {
            assert_eq!(got.display_name.as_deref(), Some(u.display_name.trim()));
        }
        assert_eq!(
            got.email.as_deref(),
            Some(u.email.as_str()),
            "email of {}",
            got.id
        );
        assert_eq!(
            got.given_name.as_deref(),
            Some(u.first_name.as_str()).filter(|s| !s.trim().is_empty())
        );
    }
    let want_groups: BTreeSet<String> = org.live_groups().map(|g| group_id(org, g.ix)).collect();
    let got_groups: BTreeSet<String> = l.groups.keys().cloned().collect();
    assert_eq!(got_groups, want_groups, "group ids");
    let mut edges = 0;
    for g in org.live_groups() {
        let gid = group_id(org, g.ix);
        let got = &l.groups[&gid];
        assert_eq!(got.name, g.name.trim(), "name of {gid}");
        let kind = match g.kind {
            GroupKind::Native => "OKTA_GROUP",
            GroupKind::Imported => "APP_GROUP",
            GroupKind::BuiltIn => "BUILT_IN",
        };
        assert_eq!(
            got.attributes.get("okta.type"),
            Some(&serde_json::json!(kind)),
            "type of {gid}"
        );
        let want: BTreeSet<String> = g
            .members
            .iter()
            .filter(|&&m| org.user(m).is_some())
            .map(|&m| user_id(org, m))
            .collect();
        assert_eq!(l.members[&gid], want, "members of {gid} ({})", g.name);
        edges += want.len();
    }
    assert!(edges > 0, "the org has memberships");
}

/// The fewest requests the page-size limits allow for this org (API token: no token request).
fn minimum_requests(org: &Org) -> u64 {
    let pages = |n: usize| n.div_ceil(PAGE).max(1) as u64;
    let users = org.live_users().count();
    let groups = org.live_groups().count();
    pages(users) + pages(groups) + org.live_groups().map(|g| pages(g.members.len())).sum::<u64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_listing_matches_the_emulated_org_with_the_minimum_requests() {
    let emu = emulator(2_000, 60, 11).await;
    let c = client(&emu);
    let listing = full_listing(&c).await.expect("full listing");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    // every Okta status is present in the generated org and came through
    let raws: BTreeSet<&str> = listing.users.values().map(|u| u.status.raw.as_str()).collect();
    for s in UserStatus::ALL {
        assert!(raws.contains(okta_status(s).0), "{s:?} missing from the listing");
    }
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    let counters = c.counters();
    assert_eq!(counters.retries, 0);
    assert_eq!(
        counters.requests,
        minimum_requests(&org),
        "requests made vs the minimum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deprovisioned_in_okta_is_listed_as_deprovisioned() {
    let emu = emulator(300, 5, 3).await;
    let ix = {
        let mut org = emu.org().write().await;
        let ix = org
            .live_users()
            .find(|u| u.status == UserStatus::Active)
            .map(|u| u.ix)
            .expect("an active user");
        assert!(org.set_status(ix, UserStatus::Deprovisioned));
        ix
    };
    let c = client(&emu);
    let out = c.run_query(&Query::ListUsers).await.expect("list users");
    let id = user_id(&*emu.org().read().await, ix);
    let user = out
        .records
        .iter()
        .find_map(|r| match r {
            Record::User(u) if u.id == id => Some(u),
            _ => None,
        })
        .expect("the deprovisioned user is in the listing");
    assert_eq!(user.status.state, UserState::Deprovisioned);
    assert_eq!(user.status.raw, "DEPROVISIONED");
    assert_eq!(out.records.len(), emu.org().read().await.live_users().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_follow_every_next_link_and_user_groups_agree_with_members() {
    let emu = emulator(120, 8, 5).await;
    let c = client_with(
        &emu,
        Cred::Token(emu.credentials().api_token.clone()),
        &[("page_size", serde_json::json!(7))],
    );
    let listing = full_listing(&c).await.expect("full listing");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    assert!(c.counters().pages >= 120 / 7, "small pages were followed");
    // the per-user route gives the same edges
    let some: Vec<u32> = org.live_users().map(|u| u.ix).take(15).collect();
    for ix in some {
        let uid = user_id(&org, ix);
        let out = c
            .run_query(&Query::UserGroups { user_id: uid.clone() })
            .await
            .expect("user groups");
        let got: BTreeSet<String> = out
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Membership(m) => Some(m.group_id.clone()),
                _ => None,
            })
            .collect();
        let want: BTreeSet<String> = org.groups_of(ix).iter().map(|&g| group_id(&org, g)).collect();
        assert_eq!(got, want, "groups of {uid}");
        let one = c
            .run_query(&Query::GetUser { user_id: uid.clone() })
            .await
            .expect("get user");
        match one.records.as_slice() {
            [Record::User(u)] => assert_eq!(
                Some(u),
                listing.users.get(&uid),
                "a single read equals the listing"
            ),
            other => panic!("get_user returned {other:?}"),
        }
        let m = c
            .run_query(&Query::UserManager { user_id: uid.clone() })
            .await
            .expect("manager");
        let want_mgr = org.user(ix).and_then(|u| manager_ref(&org, u));
        assert_eq!(
            m.records,
            vec![Record::Manager {
                user_id: uid,
                manager: want_mgr
            }]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_group_types_skip_everyone_and_count_it() {
    let emu = emulator(50, 6, 9).await;
    let token = emu.credentials().api_token.clone();
    let c = client_with(
        &emu,
        Cred::Token(token),
        &[("group_types", serde_json::json!(["OKTA_GROUP", "APP_GROUP"]))],
    );
    let groups = c.run_query(&Query::ListGroups).await.expect("groups");
    let org = emu.org().read().await;
    let want: BTreeSet<String> = org
        .live_groups()
        .filter(|g| g.kind != GroupKind::BuiltIn)
        .map(|g| group_id(&org, g.ix))
        .collect();
    let got: BTreeSet<String> = groups
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Group(g) => Some(g.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        got, want,
        "the search on type selects OKTA_GROUP and APP_GROUP server side"
    );
    // a user's groups include Everyone (BUILT_IN): counted as skipped, not dropped silently
    let uid = user_id(&org, org.live_users().next().expect("a user").ix);
    let ug = c
        .run_query(&Query::UserGroups { user_id: uid })
        .await
        .expect("user groups");
    assert_eq!(
        ug.skipped.get("group_type:BUILT_IN"),
        Some(&1),
        "{:?}",
        ug.skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_mid_listing_are_retried_to_the_same_result() {
    let emu = emulator(900, 4, 21).await;
    let c = client(&emu);
    emu.set_faults(FaultConfig {
        seed: 4,
        error_rate: 1.0,
        error_statuses: vec![500, 502, 503],
        start_after: 1,
        max_faults: Some(3),
        ..FaultConfig::default()
    })
    .expect("faults");
    let out = c
        .run_query(&Query::ListUsers)
        .await
        .expect("listing survives transient faults");
    assert_eq!(out.records.len(), 900);
    assert_eq!(emu.ctx.faults.injected(), 3, "three 5xx were injected");
    assert_eq!(c.counters().retries, 3, "each injected 5xx was retried once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_429s_are_waited_out_and_the_listing_is_complete() {
    // Okta's org-wide concurrency limit answers 429 E0000047 with X-Rate-Limit-* headers.
    let emu = emulator(600, 8, 13).await;
    let mut s = settings();
    s.concurrency = Some(4);
    s.retry.max_attempts = 60;
    let c = client_with_settings(&emu, Cred::Token(emu.credentials().api_token.clone()), &[], s);
    emu.set_faults(FaultConfig {
        concurrency_limit: Some(3),
        latency_ms: 10,
        ..FaultConfig::default()
    })
    .expect("faults");
    let listing = full_listing(&c)
        .await
        .expect("full listing under the concurrency limit");
    emu.set_faults(FaultConfig::default()).expect("faults off");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    let counters = c.counters();
    assert!(
        counters.throttled_responses > 0,
        "the concurrency limit was hit: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_page_mid_listing_fails_the_whole_listing() {
    // A truncated or malformed body, a paging loop or an expiring cursor must never come back as
    // a shorter listing: the run would then deactivate the users it did not see.
    let emu = emulator(1_000, 3, 8).await;
    let c = client(&emu);
    let cases = [
        FaultConfig {
            malformed_rate: 1.0,
            start_after: 2,
            ..FaultConfig::default()
        },
        FaultConfig {
            truncate_rate: 1.0,
            start_after: 2,
            ..FaultConfig::default()
        },
        FaultConfig {
            paging_loop_at_page: Some(3),
            ..FaultConfig::default()
        },
        FaultConfig {
            expire_token_at_page: Some(3),
            ..FaultConfig::default()
        },
    ];
    for (i, faults) in cases.into_iter().enumerate() {
        emu.set_faults(faults.clone()).expect("faults");
        // the faults persist, so no retry can save the listing: it must fail as a whole
        let err = c
            .run_query(&Query::ListUsers)
            .await
            .expect_err("a broken listing is an error");
        assert!(
            crate::support::faults_fired(&emu, &faults) > 0,
            "case {i}: the emulator served no fault"
        );
        eprintln!("case {i}: {err}");
        assert!(
            !matches!(err.connector_error(), Some(ConnectorError::NotFound { .. })),
            "case {i}: must stop the run: {err}"
        );
    }
    emu.set_faults(FaultConfig::default()).expect("faults off");
    let out = c.run_query(&Query::ListUsers).await.expect("healthy again");
    assert_eq!(out.records.len(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_unauthorized_and_a_limited_token_is_forbidden_on_groups() {
    let emu = emulator(30, 3, 2).await;
    let bad = client_with(&emu, Cred::Token("00notTheRightToken".into()), &[]);
    let err = bad
        .run_query(&Query::ListUsers)
        .await
        .expect_err("a wrong token fails");
    assert!(
        matches!(err.connector_error(), Some(ConnectorError::Unauthorized { .. })),
        "wrong token: {err}"
    );
    assert!(
        !err.to_string().contains("00notTheRightToken"),
        "the secret leaked: {err}"
    );

    let limited = client_with(
        &emu,
        Cred::Token(emu.credentials().limited_api_token.clone()),
        &[],
    );
    limited
        .run_query(&Query::ListUsers)
        .await
        .expect("the limited token reads users");
    let err = limited
        .run_query(&Query::ListGroups)
        .await
        .expect_err("no group permission");
    match err.connector_error() {
        Some(ConnectorError::Forbidden { needed: Some(n), .. }) => assert!(n.contains("admin role"), "{n}"),
        other => panic!("expected Forbidden with what is needed, got {other:?} ({err})"),
    }
}

fn service_app_key(emu: &RunningEmulator) -> String {
    let path = usersync_emulator::providers::okta::oauth::key_path(&emu.ctx);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_app_with_private_key_jwt_and_dpop_reads_everything() {
    let emu = emulator(450, 12, 17).await;
    let pem = service_app_key(&emu);
    let c = client_with(
        &emu,
        Cred::ServiceApp(emu.credentials().client_id.clone(), pem),
        &[],
    );
    let listing = full_listing(&c).await.expect("full listing with a service app");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    let counters = c.counters();
    assert!(counters.token_requests >= 1, "a token was requested");
    assert!(
        counters.token_requests <= 2,
        "one token (plus at most the DPoP nonce retry) for the whole run: {}",
        counters.token_requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_app_with_a_wrong_key_is_unauthorized() {
    let emu = emulator(10, 2, 4).await;
    // the limited client's key does not belong to the full client id
    let pem = std::fs::read_to_string(usersync_emulator::providers::okta::oauth::limited_key_path(
        &emu.ctx,
    ))
    .expect("limited key");
    let c = client_with(
        &emu,
        Cred::ServiceApp(emu.credentials().client_id.clone(), pem),
        &[],
    );
    let err = c.run_query(&Query::ListUsers).await.expect_err("wrong key");
    let text = err.to_string();
    assert!(!text.contains("PRIVATE KEY"), "the key leaked: {text}");
    assert!(
        matches!(
            err.connector_error(),
            Some(ConnectorError::Unauthorized { .. }) | None
        ),
        "a rejected assertion is an auth failure: {err}"
    );
}

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
