//! OneLogin: fidelity tests of the emulator facade against OneLogin's documented behaviour
//! (api-notes section C and OneLogin's API docs), and end-to-end runs of the connector against it.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig, RunningEmulator};

async fn emulator(users: u32, groups: u32) -> RunningEmulator {
    let mut opts = EmulatorOptions::new("onelogin");
    opts.gen = GenConfig {
        users,
        groups,
        seed: 11,
        ..GenConfig::default()
    };
    usersync_emulator::start(opts)
        .await
        .expect("start onelogin emulator")
}

async fn token(emu: &RunningEmulator, id: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/auth/oauth2/v2/token", emu.http_url))
        .header("Authorization", format!("client_id:{id}, client_secret:{secret}"))
        .header("Content-Type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .expect("token request")
}

async fn access_token(emu: &RunningEmulator) -> String {
    let c = emu.credentials();
    let body: Value = token(emu, &c.client_id, &c.client_secret)
        .await
        .json()
        .await
        .expect("json");
    body["access_token"].as_str().expect("access_token").to_string()
}

async fn get(emu: &RunningEmulator, token: &str, path_and_query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path_and_query}", emu.http_url))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .expect("request")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

#[tokio::test]
async fn token_endpoint_follows_onelogin_v2() {
    let emu = emulator(20, 3).await;
    let c = emu.credentials().clone();
    let r = token(&emu, &c.client_id, &c.client_secret).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first: Value = r.json().await.expect("json");
    assert_eq!(first["token_type"], "bearer");
    assert!(first["expires_in"].as_i64().is_some_and(|e| e > 0));
    for key in ["access_token", "refresh_token", "created_at", "account_id"] {
        assert!(!first[key].is_null(), "token response lacks {key}: {first}");
    }
    // The same credential pair gets the same token until it expires.
    let second: Value = token(&emu, &c.client_id, &c.client_secret)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["access_token"], second["access_token"]);

    let wrong = token(&emu, &c.client_id, "not-the-secret").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["status"]["error"], true);
    assert_eq!(body["status"]["code"], 401);
    assert_eq!(body["status"]["message"], "Authentication Failure");

    let no_grant = reqwest::Client::new()
        .post(format!("{}/auth/oauth2/v2/token", emu.http_url))
        .header(
            "Authorization",
            format!("client_id:{}, client_secret:{}", c.client_id, c.client_secret),
        )
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(no_grant.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn users_page_with_after_cursor_header_and_reject_cursor_with_limit() {
    let emu = emulator(120, 5).await;
    let t = access_token(&emu).await;
    let served = {
        let org = emu.org().read().await;
        org.live_users()
            .filter(|u| u.status != usersync_emulator::UserStatus::Deprovisioned)
            .count()
    };

    // limit above the documented maximum of 50 is capped at 50
    let big = get(&emu, &t, "/api/2/users?limit=500").await;
    assert_eq!(big.status(), StatusCode::OK);
    let items: Vec<Value> = big.json().await.expect("json");
    assert_eq!(items.len(), 50.min(served));

    let mut seen = BTreeSet::new();
    let first = get(&emu, &t, "/api/2/users?limit=30").await;
    assert_eq!(
        header(&first, "total-count").as_deref(),
        Some(served.to_string().as_str())
    );
    let mut cursor = header(&first, "after-cursor").filter(|c| !c.is_empty());
    let page: Vec<Value> = first.json().await.expect("json");
    assert_eq!(page.len(), 30);
    seen.extend(page.iter().map(|u| u["id"].as_u64().expect("numeric id")));

    // cursor together with limit is OneLogin's 400
    let c = cursor.clone().expect("a second page");
    let both = get(&emu, &t, &format!("/api/2/users?limit=30&cursor={c}")).await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let body: Value = both.json().await.expect("json");
    assert_eq!(body["error"], "BadRequestError");
    assert_eq!(
        body["description"],
        "Requests can only have cursor xor pagination arguments"
    );

    while let Some(c) = cursor {
        let r = get(&emu, &t, &format!("/api/2/users?cursor={c}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        cursor = header(&r, "after-cursor").filter(|c| !c.is_empty());
        let page: Vec<Value> = r.json().await.expect("json");
        assert!(page.len() <= 30, "later pages keep the first request's limit");
        for u in &page {
            assert!(seen.insert(u["id"].as_u64().expect("id")), "user served twice");
        }
    }
    assert_eq!(seen.len(), served, "a full walk returns every user once");

    let bad = get(&emu, &t, "/api/2/users?cursor=bm90LWEtY3Vyc29y").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["description"], "Invalid pagination cursor");
}

#[tokio::test]
async fn user_and_group_shapes_match_the_docs() {
    let emu = emulator(40, 6).await;
    let t = access_token(&emu).await;
    let users: Vec<Value> = get(&emu, &t, "/api/2/users?limit=50")
        .await
        .json()
        .await
        .expect("json");
    let u = &users[0];
    assert!(u["id"].is_u64());
    assert!(
        u["status"].is_i64() && u["state"].is_i64(),
        "status and state are integers: {u}"
    );
    assert!(u["role_ids"].is_array());
    assert!(u["custom_attributes"].is_object());
    assert!(u["group_id"].is_u64() || u["group_id"].is_null());
    for u in &users {
        let s = u["status"].as_i64().expect("status");
        assert!([0, 1, 2, 3, 4, 5, 7, 8].contains(&s), "undocumented status {s}");
    }

    // fields= projects the listing (id always stays)
    let slim: Vec<Value> = get(&emu, &t, "/api/2/users?fields=username")
        .await
        .json()
        .await
        .expect("json");
    let keys: BTreeSet<&str> = slim[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "username"]));

    let missing = get(&emu, &t, "/api/2/users/1").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["statusCode"], 404);
    assert_eq!(body["name"], "NotFoundError");

    let groups = get(&emu, &t, "/api/1/groups").await;
    assert_eq!(groups.status(), StatusCode::OK);
    let env: Value = groups.json().await.expect("json");
    assert_eq!(env["status"]["error"], false);
    assert!(env["pagination"]
        .as_object()
        .is_some_and(|p| p.contains_key("after_cursor")));
    let g = &env["data"][0];
    assert!(
        g["id"].is_u64() && g["name"].is_string() && g["reference"].is_null(),
        "{g}"
    );
}

#[tokio::test]
async fn credential_without_read_scope_is_refused_as_onelogin_does() {
    let emu = emulator(10, 3).await;
    let c = emu.credentials().clone();
    let body: Value = token(&emu, &c.limited_client_id, &c.limited_client_secret)
        .await
        .json()
        .await
        .expect("json");
    let limited = body["access_token"].as_str().expect("token").to_string();
    let v1 = get(&emu, &limited, "/api/1/groups").await;
    assert_eq!(v1.status(), StatusCode::UNAUTHORIZED);
    let body: Value = v1.json().await.expect("json");
    assert_eq!(body["status"]["message"], "Insufficient Permission");

    let none = get(&emu, "not-a-token", "/api/2/users").await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.expect("json");
    assert_eq!(body["name"], "UnauthorizedError");
}

#[tokio::test]
async fn rate_limit_reset_is_seconds_remaining_not_an_epoch() {
    let emu = emulator(10, 2).await;
    let t = access_token(&emu).await;
    let r = get(&emu, &t, "/api/2/users").await;
    let reset: i64 = header(&r, "x-ratelimit-reset")
        .and_then(|v| v.parse().ok())
        .expect("reset header");
    assert!(
        (0..=3600).contains(&reset),
        "X-RateLimit-Reset must be seconds remaining, got {reset}"
    );
    assert!(header(&r, "x-ratelimit-limit").is_some() && header(&r, "x-ratelimit-remaining").is_some());

    emu.set_faults(FaultConfig {
        rate_limit_per_minute: Some(1),
        ..FaultConfig::default()
    })
    .expect("faults");
    let mut throttled = None;
    for _ in 0..3 {
        let r = get(&emu, &t, "/api/2/users").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("a 429 once the budget is spent");
    let reset: i64 = header(&r, "x-ratelimit-reset")
        .and_then(|v| v.parse().ok())
        .expect("reset");
    assert!((0..=60).contains(&reset), "{reset}");
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
}

#[tokio::test]
async fn expired_access_token_gets_401() {
    let mut opts = EmulatorOptions::new("onelogin");
    opts.gen = GenConfig {
        users: 5,
        groups: 1,
        seed: 3,
        ..GenConfig::default()
    };
    // Long enough that the first call lands before expiry on a loaded machine (a 1 s TTL made this
    // flaky: a token minted at the end of one second was already expired at the next).
    opts.token_ttl_secs = 3;
    let emu = usersync_emulator::start(opts).await.expect("start");
    let t = access_token(&emu).await;
    assert_eq!(get(&emu, &t, "/api/2/users").await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    let r = get(&emu, &t, "/api/2/users").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // a new token request now returns a fresh token
    let fresh = access_token(&emu).await;
    assert_ne!(fresh, t);
}

#[tokio::test]
async fn expired_page_cursor_fault_answers_invalid_cursor() {
    let emu = emulator(30, 2).await;
    let t = access_token(&emu).await;
    emu.set_faults(FaultConfig {
        expire_token_at_page: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    let first = get(&emu, &t, "/api/2/users?limit=10").await;
    let c = header(&first, "after-cursor").expect("cursor");
    let r = get(&emu, &t, &format!("/api/2/users?cursor={c}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- connector end to end

mod end_to_end {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use usersync_config::Secret;
    use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};
    use usersync_model::{MemberRef, Record, UserState};
    use usersync_runtime::{ConnectionClient, ConnectionSettings};
    use usersync_sdk::{Options, Query};

    fn client(emu: &RunningEmulator) -> ConnectionClient {
        let connector: Arc<dyn usersync_sdk::Connector> = Arc::from(usersync_connector_onelogin::connector());
        let manifest = connector.manifest();
        let values = BTreeMap::from([
            ("base_url".to_string(), serde_json::json!(emu.http_url)),
            (
                "client_id".to_string(),
                serde_json::json!(emu.credentials().client_id),
            ),
        ]);
        let options = Options::validate(&manifest, values, vec!["client_secret".into()]).expect("options");
        let secrets = BTreeMap::from([(
            "client_secret".to_string(),
            Secret::new(emu.credentials().client_secret.clone()),
        )]);
        let mut settings = ConnectionSettings::default();
        settings.retry.base_delay = std::time::Duration::from_millis(5);
        settings.retry.max_delay = std::time::Duration::from_millis(50);
        ConnectionClient::new("onelogin-test", connector, options, secrets, settings).expect("client")
    }

    fn expected_state(s: UserStatus) -> Option<UserState> {
        Some(match s {
            UserStatus::Active | UserStatus::Recovery | UserStatus::PasswordExpired => UserState::Active,
            UserStatus::Staged | UserStatus::Provisioned => UserState::Staged,
            UserStatus::Locked => UserState::Locked,
            UserStatus::Suspended => UserState::Disabled,
            UserStatus::Deprovisioned => return None,
        })
    }

    #[tokio::test]
    async fn full_listing_matches_the_organisation() {
        let mut opts = EmulatorOptions::new("onelogin");
        opts.gen = GenConfig {
            users: 700,
            groups: 40,
            seed: 5,
            ..GenConfig::default()
        };
        let emu = usersync_emulator::start(opts).await.expect("start");
        let c = client(&emu);

        let users = c.run_query(&Query::ListUsers).await.expect("users");
        let groups = c.run_query(&Query::ListGroups).await.expect("groups");
        let roles = c.run_query(&Query::ListRoles).await.expect("roles");

        let org = emu.org().read().await;
        // users and statuses
        let mut got_users = BTreeMap::new();
        let mut got_group_members: BTreeSet<(String, String)> = BTreeSet::new();
        for r in &users.records {
            match r {
                Record::User(u) => {
                    assert!(
                        got_users.insert(u.id.clone(), u.clone()).is_none(),
                        "user {} twice",
                        u.id
                    );
                }
                Record::Membership(m) => {
                    let MemberRef::User(uid) = &m.member else {
                        panic!("unexpected member {m:?}")
                    };
                    got_group_members.insert((m.group_id.clone(), uid.clone()));
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
        let mut expected_users = 0;
        for u in org.live_users() {
            let Some(state) = expected_state(u.status) else {
                assert!(!got_users.contains_key(&(1_000_000 + u64::from(u.ix)).to_string()));
                continue;
            };
            expected_users += 1;
            let got = got_users
                .get(&(1_000_000 + u64::from(u.ix)).to_string())
                .expect("user listed");
            assert_eq!(got.username, u.login);
            assert_eq!(got.status.state, state, "user {} ({:?})", u.login, u.status);
            let mgr = u
                .manager
                .map(|m| usersync_model::ManagerRef::Id((1_000_000 + u64::from(m)).to_string()));
            assert_eq!(got.manager, mgr);
        }
        assert_eq!(got_users.len(), expected_users);
        // pages: ceil(users / 50) requests for the listing
        assert_eq!(users.pages, (expected_users as u64).div_ceil(50).max(1));

        let group_ids: BTreeSet<String> = groups
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Group(g) => Some(g.id.clone()),
                _ => None,
            })
            .collect();
        for (g, _) in &got_group_members {
            assert!(group_ids.contains(g), "membership in unknown group {g}");
        }

        // roles as groups, with members via /roles/{id}/users
        let mut role_members = BTreeSet::new();
        for r in &roles.records {
            let Record::Group(role) = r else {
                panic!("role listing yields groups")
            };
            assert_eq!(role.kind, usersync_model::GroupKind::Role);
            let members = c
                .run_query(&Query::RoleMembers {
                    role_id: role.id.clone(),
                })
                .await
                .expect("role members");
            for m in members.records {
                let Record::Membership(m) = m else {
                    panic!("role members yield memberships")
                };
                role_members.insert((m.group_id, format!("{:?}", m.member)));
            }
        }
        let expected_roles: usize = org
            .roles
            .iter()
            .map(|r| {
                r.members
                    .iter()
                    .filter(|ix| {
                        org.user(**ix)
                            .is_some_and(|u| u.status != UserStatus::Deprovisioned)
                    })
                    .count()
            })
            .sum();
        assert_eq!(role_members.len(), expected_roles);
        let counters = c.counters();
        assert!(counters.requests > 0);
    }

    #[tokio::test]
    async fn server_errors_and_cut_bodies_are_retried_to_a_complete_listing() {
        let mut opts = EmulatorOptions::new("onelogin");
        opts.gen = GenConfig {
            users: 120,
            groups: 5,
            seed: 8,
            ..GenConfig::default()
        };
        let emu = usersync_emulator::start(opts).await.expect("start");
        let c = client(&emu);
        emu.set_faults(FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![503],
            start_after: 2,
            max_faults: Some(2),
            ..FaultConfig::default()
        })
        .expect("faults");
        let users = c.run_query(&Query::ListUsers).await.expect("503s are retried");
        assert_eq!(emu.ctx.faults.injected(), 2, "two 503s were injected");
        assert!(
            users
                .records
                .iter()
                .filter(|r| matches!(r, Record::User(_)))
                .count()
                > 100
        );

        emu.set_faults(FaultConfig {
            truncate_rate: 1.0,
            start_after: 1,
            max_faults: Some(1),
            ..FaultConfig::default()
        })
        .expect("faults");
        let c2 = client(&emu);
        // A cut connection mid-body is a transport failure: the page is fetched again, and the
        // listing is complete, never a partial page taken for a whole one.
        let again = c2
            .run_query(&Query::ListUsers)
            .await
            .expect("truncated page is retried");
        assert_eq!(emu.ctx.faults.injected(), 1, "one body was cut");
        assert_eq!(again.records, users.records);
    }
}

// ---------------------------------------------------------------- `usersync sync` end to end

mod cli {
    use usersync_emulator::{EmulatorOptions, FaultConfig, GenConfig, UserStatus};

    async fn sync(config: &std::path::Path, secret: &str) -> (i32, serde_json::Value) {
        let run = crate::support::sync_report(config, &[], &[("ONELOGIN_E2E_SECRET", secret)]).await;
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the client secret leaked"
        );
        (run.code, run.report())
    }

    fn stored(dir: &std::path::Path) -> usersync_store::ConnectionState {
        crate::support::store_state(&dir.join("onelogin.db"), "onelogin")
    }

    use crate::support::{active_flags, count as n};

    /// Users the sync creates: those OneLogin serves whose status maps to an active state.
    fn active(s: UserStatus) -> bool {
        matches!(
            s,
            UserStatus::Active | UserStatus::Recovery | UserStatus::PasswordExpired | UserStatus::Locked
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_uses_the_minimum_requests_and_faulted_runs_deactivate_nobody() {
        let mut opts = EmulatorOptions::new("onelogin");
        opts.gen = GenConfig {
            users: 600,
            groups: 30,
            seed: 21,
            ..GenConfig::default()
        };
        let emu = usersync_emulator::start(opts).await.expect("start");
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("usersync.toml");
        std::fs::write(
            &config,
            format!(
                r#"[store]
path = "onelogin.db"

[[connections]]
name = "onelogin"
connector = "onelogin"

[connections.options]
base_url = "{}"
client_id = "{}"
client_secret = {{ env = "ONELOGIN_E2E_SECRET" }}

[connections.policy]
roles_as_groups = true

[connections.runtime]
max_retries = 1
"#,
                emu.http_url,
                emu.credentials().client_id
            ),
        )
        .expect("config");
        let secret = emu.credentials().client_secret.clone();

        let (code, r) = sync(&config, &secret).await;
        assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
        let (users, groups, roles, minimum) = {
            let org = emu.org().read().await;
            let served = org
                .live_users()
                .filter(|u| u.status != UserStatus::Deprovisioned)
                .count() as u64;
            let users = org.live_users().filter(|u| active(u.status)).count() as u64;
            let groups = org
                .live_groups()
                .filter(|g| g.kind != usersync_emulator::GroupKind::BuiltIn)
                .count() as u64;
            let roles = org.roles.len() as u64;
            let role_pages: u64 = org
                .roles
                .iter()
                .map(|r| {
                    let held = r.members.iter().filter(|m| {
                        org.user(**m)
                            .is_some_and(|u| u.status != UserStatus::Deprovisioned)
                    });
                    (held.count() as u64).div_ceil(50).max(1)
                })
                .sum();
            // token + user pages + group pages + role pages + one listing per role: no per-user calls
            let minimum =
                1 + served.div_ceil(50) + groups.div_ceil(50).max(1) + roles.div_ceil(50).max(1) + role_pages;
            (users, groups, roles, minimum)
        };
        assert_eq!(n(&r, "/users/created"), users, "{r}");
        assert_eq!(
            n(&r, "/groups/created"),
            groups + roles,
            "groups plus roles as groups: {r}"
        );
        assert!(n(&r, "/memberships/added") > 0, "{r}");
        assert_eq!(
            n(&r, "/requests"),
            minimum,
            "requests vs the minimum the page sizes allow: {r}"
        );
        // the summary says how much of the account-wide budget is left
        let (left, limit) = (n(&r, "/rate_limit/remaining"), n(&r, "/rate_limit/limit"));
        assert!(
            left < limit && limit - left >= minimum - 1,
            "budget used must cover the requests: {r}"
        );

        // a no-change resync changes nothing
        let (code, r) = sync(&config, &secret).await;
        assert_eq!(code, 0, "{r}");
        assert_eq!(n(&r, "/users/unchanged"), users, "{r}");
        for p in [
            "/users/created",
            "/users/updated",
            "/users/deactivated",
            "/memberships/added",
            "/memberships/removed",
        ] {
            assert_eq!(n(&r, p), 0, "{p}: {r}");
        }

        // the store holds exactly the active users, all active
        let good = stored(dir.path());
        assert_eq!(good.users.len() as u64, users);
        assert!(good.users.iter().all(|u| u.active));

        // faults mid-listing fail the run and change nothing in the store
        for (what, f) in [
            (
                "malformed page",
                FaultConfig {
                    malformed_rate: 1.0,
                    start_after: 3,
                    ..FaultConfig::default()
                },
            ),
            (
                "expired cursor",
                FaultConfig {
                    expire_token_at_page: Some(3),
                    ..FaultConfig::default()
                },
            ),
            (
                "paging loop",
                FaultConfig {
                    paging_loop_at_page: Some(2),
                    ..FaultConfig::default()
                },
            ),
        ] {
            emu.set_faults(f.clone()).expect("faults");
            let (code, r) = sync(&config, &secret).await;
            let fired = crate::support::faults_fired(&emu, &f);
            assert!(fired > 0, "{what}: the emulator served no fault: {r}");
            assert_ne!(code, 0, "{what}: {r}");
            assert_eq!(r["status"].as_str(), Some("failed"), "{what}: {r}");
            crate::support::assert_same_store(&stored(dir.path()), &good, what);
        }
        emu.set_faults(FaultConfig::default()).expect("faults off");

        // a user suspended in OneLogin is deactivated; a locked one stays active
        let suspended = {
            let mut org = emu.org().write().await;
            let two: Vec<u32> = org
                .live_users()
                .filter(|u| u.status == UserStatus::Active)
                .map(|u| u.ix)
                .take(2)
                .collect();
            assert!(org.set_status(two[0], UserStatus::Suspended));
            assert!(org.set_status(two[1], UserStatus::Locked));
            let email = org.user(two[0]).expect("suspended user").email.clone();
            good.users
                .iter()
                .find(|u| u.email.as_deref() == Some(email.as_str()))
                .map(|u| u.provider_id.clone())
                .unwrap_or_else(|| panic!("{email} is not in the store"))
        };
        let (code, r) = sync(&config, &secret).await;
        assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
        assert_eq!(n(&r, "/users/deactivated"), 1, "{r}");
        assert_eq!(n(&r, "/users/deleted"), 0, "{r}");
        let after = stored(dir.path());
        assert_eq!(
            active_flags(&after, &[]),
            active_flags(&good, &[suspended]),
            "only the suspended user is inactive"
        );
        assert_eq!(after.groups, good.groups);
    }
}

/// `doctor` against the OneLogin emulator (Issue 17.16): a wrong secret is blamed on the
/// credentials, not on a scope; role calls are required when roles are synced as groups.
mod doctor {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use usersync_config::Secret;
    use usersync_runtime::doctor::{self, CheckStatus, DoctorReport, Needs};
    use usersync_runtime::ConnectionClient;
    use usersync_sdk::Options;

    fn client(base_url: &str, client_id: &str, secret: &str) -> ConnectionClient {
        let connector: Arc<dyn usersync_sdk::Connector> = Arc::from(usersync_connector_onelogin::connector());
        let manifest = connector.manifest();
        let values = BTreeMap::from([
            ("base_url".to_string(), serde_json::json!(base_url)),
            ("client_id".to_string(), serde_json::json!(client_id)),
        ]);
        let options = Options::validate(&manifest, values, vec!["client_secret".into()]).expect("options");
        let secrets = BTreeMap::from([("client_secret".to_string(), Secret::new(secret.to_string()))]);
        ConnectionClient::new(
            "onelogin",
            connector,
            options,
            secrets,
            crate::support::fast_settings(),
        )
        .expect("client")
    }

    fn check<'a>(r: &'a DoctorReport, step: &str) -> &'a doctor::Check {
        r.checks
            .iter()
            .find(|c| c.step == step)
            .unwrap_or_else(|| panic!("no `{step}` check in {r:#?}"))
    }

    #[tokio::test]
    async fn a_wrong_secret_is_blamed_on_the_credentials_not_on_a_scope() {
        let emu = super::emulator(10, 3).await;
        let c = client(&emu.http_url, &emu.credentials().client_id, "not-the-secret");
        let ops = doctor::default_operations(&c);
        let r = doctor::run(&c, &ops).await;
        assert!(r.failed());
        let token = check(&r, "token");
        assert_eq!(token.status, CheckStatus::Fail, "{token:?}");
        let advice = format!("{:?} {:?}", token.diagnosis, token.fix);
        assert!(
            advice.contains("client_secret") && advice.contains("client_id"),
            "names the credentials: {advice}"
        );
        assert!(!advice.contains("Read users"), "blames a scope: {advice}");
        assert!(!format!("{r:?}").contains("not-the-secret"), "secret leaked");
    }

    #[tokio::test]
    async fn role_calls_are_required_when_roles_are_synced_as_groups() {
        let emu = super::emulator(10, 3).await;
        let proxy = crate::support::proxy_refusing(
            emu.http_url.clone(),
            "/api/2/roles",
            403,
            r#"{"statusCode":403,"name":"ForbiddenError","message":"Forbidden"}"#,
        )
        .await;
        let creds = emu.credentials().clone();
        let c = client(&proxy, &creds.client_id, &creds.client_secret);
        let ops = doctor::default_operations(&c);
        assert!(ops.contains(&usersync_sdk::Operation::ListRoles), "{ops:?}");

        let r = doctor::run_for(
            &c,
            &ops,
            Needs {
                roles: true,
                photos: false,
            },
        )
        .await;
        let roles = check(&r, "list_roles");
        assert_eq!(roles.status, CheckStatus::Fail, "{roles:?}");
        assert!(roles.required && r.failed(), "{r:#?}");
        assert_eq!(check(&r, "list_users").status, CheckStatus::Pass);

        let r = doctor::run_for(&c, &ops, Needs::default()).await;
        let roles = check(&r, "list_roles");
        assert_eq!(roles.status, CheckStatus::Warn, "{roles:?}");
        assert!(!r.failed(), "roles are not synced: {r:#?}");
    }
}
