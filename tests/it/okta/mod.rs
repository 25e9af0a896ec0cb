//! Okta end to end: the Okta connector driven by the runtime (HTTP, auth, retries, paging guards)
//! against the emulator's Okta facade. The expected data comes from the emulator's organisation,
//! never from the connector.

mod cli;

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
