//! Keycloak end to end: the Keycloak connector driven by the runtime (HTTP, auth, token refresh,
//! retries) against the emulator's Keycloak facade. Expected data comes from the emulator's
//! organisation (what the realm holds), never from the connector.

use crate::support::fast_settings as settings;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use usersync_config::Secret;
use usersync_emulator::org::{GroupIx, Org};
use usersync_emulator::providers::keycloak::{group_id, user_id, ADMIN_USER, MASTER, REALM};
use usersync_emulator::{start, EmulatorOptions, FaultConfig, GenConfig, RunningEmulator, UserStatus};
use usersync_model::{GroupKind, ManagerRef, MemberRef, Record, User, UserState};
use usersync_runtime::{ConnectionClient, RuntimeError};
use usersync_sdk::{Connector, ConnectorError, Options, Query};

/// The connector's default page size (`max`).
const PAGE: usize = 100;

async fn emulator(users: u32, groups: u32, seed: u64) -> RunningEmulator {
    let mut opts = EmulatorOptions::new("keycloak");
    opts.gen = GenConfig {
        users,
        groups,
        seed,
        nesting_depth: 3,
        ..GenConfig::default()
    };
    start(opts).await.expect("start the keycloak emulator")
}

fn client_with(
    emu: &RunningEmulator,
    extra: &[(&str, serde_json::Value)],
    secrets: &[(&str, &str)],
) -> Result<ConnectionClient, RuntimeError> {
    let connector: Arc<dyn Connector> = Arc::from(usersync_connector_keycloak::connector());
    let mut values: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    values.insert("base_url".into(), serde_json::json!(emu.http_url));
    values.insert("realm".into(), serde_json::json!(REALM));
    values.insert("manager_attribute".into(), serde_json::json!("manager"));
    values.insert("photo_attribute".into(), serde_json::json!("picture"));
    for (k, v) in extra {
        values.insert(k.to_string(), v.clone());
    }
    let secrets: BTreeMap<String, Secret> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
        .collect();
    let options = Options::validate(&connector.manifest(), values, secrets.keys().cloned().collect())
        .expect("valid keycloak options");
    ConnectionClient::new("keycloak-e2e", connector, options, secrets, settings())
}

fn client(emu: &RunningEmulator) -> ConnectionClient {
    let c = emu.credentials().clone();
    client_with(
        emu,
        &[("client_id", serde_json::json!(c.client_id))],
        &[("client_secret", &c.client_secret)],
    )
    .expect("client")
}

/// What one full read of the realm returned.
#[derive(Debug, Default)]
struct Listing {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, usersync_model::Group>,
    /// direct user members per group (and role)
    members: BTreeMap<String, BTreeSet<String>>,
    /// parent -> child edges reported as group-in-group memberships
    nested: BTreeSet<(String, String)>,
}

/// Users, groups with their hierarchy, every group's members, roles and their holders: what the
/// sync's fetch reads.
async fn full_listing(c: &ConnectionClient) -> Result<Listing, RuntimeError> {
    let mut out = Listing::default();
    for r in c.run_query(&Query::ListUsers).await?.records {
        if let Record::User(u) = r {
            assert!(out.users.insert(u.id.clone(), u).is_none(), "a user listed twice");
        }
    }
    for q in [Query::ListGroups, Query::ListRoles] {
        for r in c.run_query(&q).await?.records {
            match r {
                Record::Group(g) => assert!(
                    out.groups.insert(g.id.clone(), g).is_none(),
                    "a group listed twice"
                ),
                Record::Membership(m) => match m.member {
                    MemberRef::Group(child) => {
                        out.nested.insert((m.group_id, child));
                    }
                    other => panic!("the group listing reports only nesting, got {other:?}"),
                },
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    let mut queries = Vec::new();
    let mut ids = Vec::new();
    for g in out.groups.values() {
        ids.push(g.id.clone());
        queries.push(match g.kind {
            GroupKind::Group => Query::GroupMembers {
                group_id: g.id.clone(),
            },
            GroupKind::Role => Query::RoleMembers {
                role_id: g.id.clone(),
            },
        });
    }
    for (gid, res) in ids.iter().zip(c.run_all(queries).await) {
        let set = out.members.entry(gid.clone()).or_default();
        for r in res?.records {
            match r {
                Record::Membership(m) => {
                    assert_eq!(&m.group_id, gid);
                    assert!(m.direct);
                    match m.member {
                        MemberRef::User(u) => assert!(set.insert(u), "member listed twice"),
                        other => panic!("members are users, got {other:?}"),
                    }
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    Ok(out)
}

/// Whether Keycloak has the user: deprovisioned users are deleted users.
fn in_realm(org: &Org, ix: u32) -> bool {
    org.user(ix)
        .is_some_and(|u| u.status != UserStatus::Deprovisioned)
}

/// The parent of each group: the first group nesting it (the generator nests each group once).
fn parents(org: &Org) -> BTreeMap<GroupIx, GroupIx> {
    let mut p = BTreeMap::new();
    for g in org.live_groups() {
        for &c in &g.child_groups {
            p.entry(c).or_insert(g.ix);
        }
    }
    p
}

fn path(org: &Org, parents: &BTreeMap<GroupIx, GroupIx>, g: GroupIx) -> String {
    let mut names = vec![org.group(g).expect("group").name.clone()];
    let mut cur = g;
    while let Some(p) = parents.get(&cur) {
        names.push(org.group(*p).expect("parent").name.clone());
        cur = *p;
    }
    names.reverse();
    format!("/{}", names.join("/"))
}

/// Compare a listing with the organisation: users, statuses, managers, groups with paths and
/// parents, direct members, transitive members (closed over the hierarchy) and roles.
fn assert_matches_org(l: &Listing, org: &Org) {
    // users
    let want_users: BTreeSet<String> = org
        .live_users()
        .filter(|u| in_realm(org, u.ix))
        .map(|u| user_id(org, u.ix))
        .collect();
    let got_users: BTreeSet<String> = l.users.keys().cloned().collect();
    assert_eq!(got_users, want_users, "exactly the realm's users");
    for u in org.live_users().filter(|u| in_realm(org, u.ix)) {
        let got = &l.users[&user_id(org, u.ix)];
        assert_eq!(got.username, u.login.to_lowercase());
        let (raw, state) = if u.status == UserStatus::Suspended {
            ("enabled=false", UserState::Disabled)
        } else {
            ("enabled=true", UserState::Active)
        };
        assert_eq!(
            (got.status.raw.as_str(), got.status.state),
            (raw, state),
            "{}",
            u.login
        );
        let manager = u
            .manager
            .and_then(|m| org.user(m))
            .map(|m| ManagerRef::Username(m.login.to_lowercase()));
        assert_eq!(got.manager, manager, "manager of {}", u.login);
        assert_eq!(got.given_name.as_deref(), Some(u.first_name.as_str()));
    }
    // groups and hierarchy
    let parents = parents(org);
    let groups: Vec<_> = l.groups.values().filter(|g| g.kind == GroupKind::Group).collect();
    assert_eq!(
        groups.len(),
        org.live_groups().count(),
        "exactly the realm's groups"
    );
    let mut want_nested = BTreeSet::new();
    for g in org.live_groups() {
        let got = &l.groups[&group_id(org, g.ix)];
        assert_eq!(got.name, g.name);
        assert_eq!(got.path.as_deref(), Some(path(org, &parents, g.ix).as_str()));
        assert_eq!(got.parent_id, parents.get(&g.ix).map(|p| group_id(org, *p)));
        if let Some(p) = parents.get(&g.ix) {
            want_nested.insert((group_id(org, *p), group_id(org, g.ix)));
        }
        // direct members
        let want: BTreeSet<String> = g
            .members
            .iter()
            .filter(|u| in_realm(org, **u))
            .map(|u| user_id(org, *u))
            .collect();
        assert_eq!(
            l.members[&group_id(org, g.ix)],
            want,
            "direct members of {}",
            g.name
        );
    }
    assert_eq!(l.nested, want_nested, "parent/child pairs");
    // transitive members: close over the hierarchy the connector reported
    for g in org.live_groups() {
        let gid = group_id(org, g.ix);
        let mut closure = BTreeSet::new();
        let mut stack = vec![gid.clone()];
        while let Some(cur) = stack.pop() {
            closure.extend(l.members[&cur].iter().cloned());
            stack.extend(l.nested.iter().filter(|(p, _)| *p == cur).map(|(_, c)| c.clone()));
        }
        let want: BTreeSet<String> = org
            .transitive_members(g.ix)
            .into_iter()
            .filter(|u| in_realm(org, *u))
            .map(|u| user_id(org, u))
            .collect();
        assert_eq!(closure, want, "transitive members of {}", g.name);
    }
    // roles: the built-ins plus the organisation's roles
    let roles: BTreeMap<&str, &BTreeSet<String>> = l
        .groups
        .values()
        .filter(|g| g.kind == GroupKind::Role)
        .map(|g| (g.name.as_str(), &l.members[&g.id]))
        .collect();
    assert_eq!(roles.len(), 3 + org.roles.len());
    assert_eq!(
        roles[&*format!("default-roles-{REALM}")],
        &want_users,
        "held by every user"
    );
    assert!(roles["offline_access"].is_empty());
    for r in &org.roles {
        let want: BTreeSet<String> = r
            .members
            .iter()
            .filter(|u| in_realm(org, **u))
            .map(|u| user_id(org, *u))
            .collect();
        assert_eq!(roles[r.name.as_str()], &want, "holders of {}", r.name);
    }
}

fn pages(n: usize) -> u64 {
    n.div_ceil(PAGE) as u64
}

/// Requests the connector makes for a full listing (stop on an empty page, children walks stop at
/// `subGroupCount`, counts after users and groups, one role lookup per role), and the lower bound
/// the page size allows (one request per `max` objects, at least one per listing, no counts).
fn request_budget(org: &Org) -> (u64, u64) {
    let users = org.live_users().filter(|u| in_realm(org, u.ix)).count();
    let parents = parents(org);
    let top = org.live_groups().filter(|g| !parents.contains_key(&g.ix)).count();
    let mut children: BTreeMap<GroupIx, usize> = BTreeMap::new();
    for c in parents.values() {
        *children.entry(*c).or_default() += 1;
    }
    let roles_n = 3 + org.roles.len();
    let mut made = 1; // token
    let mut minimum = 1;
    made += pages(users) + 1 + 1; // users pages, the empty page, /users/count
    minimum += pages(users).max(1);
    made += pages(top) + 1 + 1; // top-level groups, the empty page, /groups/count
    minimum += pages(top).max(1);
    for n in children.values() {
        made += pages(*n); // stops once subGroupCount children were read
        minimum += pages(*n);
    }
    for g in org.live_groups() {
        let m = g.members.iter().filter(|u| in_realm(org, **u)).count();
        made += pages(m) + 1;
        minimum += pages(m).max(1);
    }
    made += pages(roles_n) + 1;
    minimum += pages(roles_n).max(1);
    let mut role_members: Vec<usize> = vec![users, 0, 0];
    role_members.extend(
        org.roles
            .iter()
            .map(|r| r.members.iter().filter(|u| in_realm(org, **u)).count()),
    );
    for m in role_members {
        made += 1 + pages(m) + 1; // roles-by-id, the pages, the empty page
        minimum += pages(m).max(1);
    }
    (made, minimum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_listing_matches_the_realm() {
    let emu = emulator(2_000, 120, 5).await;
    let c = client(&emu);
    let listing = full_listing(&c).await.expect("full listing");
    let org = emu.org().read().await;
    assert!(parents(&org).len() >= 6, "the generated org has nested groups");
    assert_matches_org(&listing, &org);
    let (made, minimum) = request_budget(&org);
    let counters = c.counters();
    assert_eq!(counters.retries, 0);
    assert_eq!(
        counters.requests, made,
        "requests made (the lower bound is {minimum})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_with_admin_cli_in_master_reads_the_realm() {
    let emu = emulator(150, 12, 9).await;
    let password = emu.credentials().api_token.clone();
    let c = client_with(
        &emu,
        &[
            ("grant", serde_json::json!("password")),
            ("username", serde_json::json!(ADMIN_USER)),
            ("token_realm", serde_json::json!(MASTER)),
        ],
        &[("password", &password)],
    )
    .expect("client");
    let listing = full_listing(&c).await.expect("listing as the master admin");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
}

fn signed_jwt_client(emu: &RunningEmulator, pem: &str) -> ConnectionClient {
    client_with(
        emu,
        &[
            ("client_id", serde_json::json!(emu.credentials().client_id)),
            ("signing_alg", serde_json::json!("ES256")),
        ],
        &[("client_key", pem)],
    )
    .expect("client")
}

fn registered_key(emu: &RunningEmulator) -> String {
    let path = usersync_emulator::providers::keycloak::client_jwt::key_path(&emu.ctx);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_jwt_client_authentication_reads_the_realm() {
    let emu = emulator(150, 12, 9).await;
    let c = signed_jwt_client(&emu, &registered_key(&emu));
    let listing = full_listing(&c).await.expect("listing with a signed JWT client");
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    assert_eq!(c.counters().token_requests, 1, "one token for the whole run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_jwt_with_an_unregistered_key_is_refused_without_leaking_it() {
    let emu = emulator(10, 2, 4).await;
    // another emulator's key: well formed, but not the one registered on this client
    let other = emulator(10, 2, 5).await;
    let pem = registered_key(&other);
    let err = signed_jwt_client(&emu, &pem)
        .run_query(&Query::ListUsers)
        .await
        .expect_err("an unregistered key is refused");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "the key leaked: {text}");
    // a secret and a key together are ambiguous: refused before any request
    let both = client_with(
        &emu,
        &[("client_id", serde_json::json!(emu.credentials().client_id))],
        &[("client_key", &pem), ("client_secret", "s")],
    )
    .expect_err("secret and key together");
    assert!(both.to_string().contains("client_key"), "{both}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_mid_listing_is_refreshed() {
    let mut opts = EmulatorOptions::new("keycloak");
    opts.gen = GenConfig {
        users: 60,
        groups: 4,
        seed: 2,
        ..GenConfig::default()
    };
    opts.token_ttl_secs = 1;
    opts.faults = FaultConfig {
        latency_ms: 120,
        ..FaultConfig::default()
    };
    let emu = start(opts).await.expect("start");
    let c = client_with(
        &emu,
        &[
            ("client_id", serde_json::json!(emu.credentials().client_id)),
            ("page_size", serde_json::json!(5)),
        ],
        &[("client_secret", &emu.credentials().client_secret.clone())],
    )
    .expect("client");
    let out = c
        .run_query(&Query::ListUsers)
        .await
        .expect("listing survives token expiry");
    let org = emu.org().read().await;
    let want = org.live_users().filter(|u| in_realm(&org, u.ix)).count();
    assert_eq!(out.records.len(), want);
    assert!(
        c.counters().token_requests >= 2,
        "the token was renewed mid-listing: {:?}",
        c.counters()
    );
}

fn connector_error(e: &RuntimeError) -> Option<&ConnectorError> {
    match e {
        RuntimeError::Connector { source, .. } => Some(source),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_mid_listing_never_yield_a_shorter_listing() {
    let emu = emulator(1_000, 6, 13).await;
    let c = client(&emu);
    let want = {
        let org = emu.org().read().await;
        org.live_users().filter(|u| in_realm(&org, u.ix)).count()
    };
    // transient faults are retried to the same, complete result
    emu.set_faults(FaultConfig {
        seed: 4,
        error_rate: 0.4,
        error_statuses: vec![500, 502, 503],
        start_after: 1,
        max_faults: Some(3),
        ..FaultConfig::default()
    })
    .expect("faults");
    let out = c.run_query(&Query::ListUsers).await.expect("retried");
    assert!(emu.ctx.faults.injected() > 0, "no error was injected");
    assert_eq!(out.records.len(), want);
    // a page that comes back empty mid-way looks like the end of a Keycloak listing: the count
    // after the listing catches it, and the listing fails instead of coming back short
    let broken = [
        FaultConfig {
            empty_page_at: Some(3),
            ..FaultConfig::default()
        },
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
    ];
    for f in broken {
        emu.set_faults(f.clone()).expect("faults");
        let result = c.run_query(&Query::ListUsers).await;
        assert!(
            crate::support::faults_fired(&emu, &f) > 0,
            "{f:?}: the emulator served no fault"
        );
        match result {
            Ok(out) => panic!(
                "{f:?}: a broken listing came back with {} users",
                out.records.len()
            ),
            Err(e) => assert!(
                !matches!(connector_error(&e), Some(ConnectorError::NotFound { .. })),
                "{f:?}: {e}"
            ),
        }
    }
    emu.set_faults(FaultConfig {
        empty_page_at: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    assert!(
        c.run_query(&Query::ListGroups).await.is_ok(),
        "fewer than 100 top-level groups: one page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_and_missing_roles_are_diagnosed() {
    let emu = emulator(20, 4, 1).await;
    let creds = emu.credentials().clone();
    let wrong = client_with(
        &emu,
        &[("client_id", serde_json::json!(creds.client_id))],
        &[("client_secret", "not-the-secret")],
    )
    .expect("client");
    let err = wrong
        .run_query(&Query::ListUsers)
        .await
        .expect_err("wrong secret");
    let text = err.to_string();
    assert!(
        !text.contains("not-the-secret"),
        "the secret never appears in errors: {text}"
    );
    let limited = client_with(
        &emu,
        &[("client_id", serde_json::json!(creds.limited_client_id))],
        &[("client_secret", &creds.limited_client_secret)],
    )
    .expect("client");
    let err = limited
        .run_query(&Query::ListGroups)
        .await
        .expect_err("no query-groups");
    match connector_error(&err) {
        Some(ConnectorError::Forbidden { needed: Some(n), .. }) => assert!(n.contains("query-groups"), "{n}"),
        other => panic!("expected Forbidden naming the role, got {other:?} ({err})"),
    }
    // query-users alone: Keycloak filters every user out; the listing is empty, never an error
    // the sync could mistake for a complete realm... except that it is complete for this caller:
    // the count agrees, and the sync's shrinking-source gate is what protects the directory.
    let out = limited
        .run_query(&Query::ListUsers)
        .await
        .expect("an empty, consistent listing");
    assert!(out.records.is_empty());
}

/// The `usersync` binary against the Keycloak emulator: `sync` and `doctor` end to end.
mod cli {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    const SECRET_ENV: &str = "USERSYNC_IT_KEYCLOAK_SECRET";

    struct Harness {
        emu: RunningEmulator,
        dir: tempfile::TempDir,
        secret: String,
    }

    impl Harness {
        async fn new(users: u32, groups: u32, seed: u64, client: Option<(String, String)>) -> Harness {
            let emu = emulator(users, groups, seed).await;
            let c = emu.credentials().clone();
            let (id, secret) = client.unwrap_or((c.client_id.clone(), c.client_secret.clone()));
            let dir = tempfile::tempdir().expect("tempdir");
            let config = format!(
                r#"
[store]
path = "store.db"

[runtime]
max_retries = 1

[[connections]]
name = "keycloak"
connector = "keycloak"
[connections.options]
base_url = "{}"
realm = "{REALM}"
client_id = "{id}"
client_secret = {{ env = "{SECRET_ENV}" }}
manager_attribute = "manager"
[connections.policy]
roles_as_groups = true
managers = true
"#,
                emu.http_url
            );
            std::fs::write(dir.path().join("usersync.toml"), config).expect("write config");
            Harness { emu, dir, secret }
        }

        fn config(&self) -> PathBuf {
            self.dir.path().join("usersync.toml")
        }

        async fn run(&self, args: &[&str]) -> (i32, String, String) {
            let out = crate::support::usersync_command(&self.config())
                .args(args)
                .env(SECRET_ENV, &self.secret)
                .output()
                .await
                .expect("run usersync");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }

        async fn json(&self, args: &[&str]) -> (i32, Value) {
            let (code, stdout, stderr) = self.run(args).await;
            let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!("no JSON from {args:?} ({e}); exit {code}\nstdout: {stdout}\nstderr: {stderr}")
            });
            (code, v)
        }

        async fn sync(&self) -> (i32, Value) {
            let run = crate::support::sync_report(&self.config(), &[], &[(SECRET_ENV, &self.secret)]).await;
            (run.code, run.report())
        }

        fn state(&self) -> usersync_store::ConnectionState {
            crate::support::store_state(&self.dir.path().join("store.db"), "keycloak")
        }
    }

    use crate::support::count as n;

    fn enabled(org: &Org, ix: u32) -> bool {
        org.user(ix)
            .is_some_and(|u| !matches!(u.status, UserStatus::Deprovisioned | UserStatus::Suspended))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_resync_and_a_fault_mid_listing_that_deactivates_nobody() {
        let h = Harness::new(300, 30, 7, None).await;
        let (code, r) = h.sync().await;
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["status"], "applied", "{r}");
        let (want_enabled, parent, want_transitive) = {
            let org = h.emu.org().read().await;
            let want: BTreeSet<String> = org
                .live_users()
                .filter(|u| enabled(&org, u.ix))
                .map(|u| user_id(&org, u.ix))
                .collect();
            let parents = parents(&org);
            let top = *parents
                .values()
                .find(|p| !parents.contains_key(p))
                .expect("a nested top-level group");
            let trans: BTreeSet<String> = org
                .transitive_members(top)
                .into_iter()
                .filter(|u| enabled(&org, *u))
                .map(|u| user_id(&org, u))
                .collect();
            (want, group_id(&org, top), trans)
        };
        assert_eq!(n(&r, "/users/created"), want_enabled.len() as u64, "{r}");
        let (_, listed) = h.json(&["users", "list", "--format", "json"]).await;
        let listed = listed.as_array().expect("array").len();
        assert_eq!(listed, want_enabled.len());
        // a member of a sub-group is a transitive member of its ancestors
        let (code, g) = h.json(&["groups", "show", &parent, "--format", "json"]).await;
        assert_eq!(code, 0, "{g}");
        let got: BTreeSet<String> = g["transitive_members"]
            .as_array()
            .expect("transitive members")
            .iter()
            .filter(|m| m["active"] == Value::Bool(true))
            .map(|m| m["id"].as_str().expect("id").to_string())
            .collect();
        assert_eq!(
            got, want_transitive,
            "transitive members of the top-level group {parent}"
        );
        assert!(n(&r, "/requests") > 0);

        // no change: nothing written
        let (code, r2) = h.sync().await;
        assert_eq!(code, 0, "{r2}");
        for k in ["created", "updated", "reactivated", "deactivated", "deleted"] {
            assert_eq!(n(&r2, &format!("/users/{k}")), 0, "{k}: {r2}");
        }

        // a page lost mid-listing (an empty page where users follow): the count check fails the
        // listing, and the run changes nothing in the store
        let before = h.state();
        let stored: BTreeSet<String> = before.users.iter().map(|u| u.provider_id.clone()).collect();
        assert_eq!(stored, want_enabled, "the store holds the enabled users");
        assert!(
            before.users.iter().all(|u| u.active),
            "every stored user is active"
        );
        h.emu
            .set_faults(FaultConfig {
                empty_page_at: Some(2),
                ..FaultConfig::default()
            })
            .expect("faults");
        let (code, r3) = h.sync().await;
        assert!(
            h.emu.ctx.faults.paging_served() > 0,
            "the empty page was served: {r3}"
        );
        assert_ne!(code, 0, "an incomplete fetch is not a success: {r3}");
        assert_eq!(r3["status"], "failed", "{r3}");
        crate::support::assert_same_store(&h.state(), &before, "an empty page mid-listing");
    }

    /// Six... here three sub-groups all called `Members` under different parents: the store keeps
    /// each one's path, `groups show` resolves a path and lists the candidate paths for the bare
    /// name, and a `required_groups` pattern starting with `/` matches the one path only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_named_sub_groups_are_told_apart_by_path() {
        let h = Harness::new(60, 8, 21, None).await;
        let (paths, members, wanted_user) = {
            let mut org = h.emu.org().write().await;
            let parents = parents(&org);
            let tops: Vec<(GroupIx, String)> = org
                .live_groups()
                .filter(|g| !parents.contains_key(&g.ix) && !g.name.contains('/'))
                .map(|g| (g.ix, g.name.clone()))
                .take(3)
                .collect();
            assert_eq!(tops.len(), 3, "three top-level groups");
            let users: Vec<u32> = org
                .live_users()
                .filter(|u| enabled(&org, u.ix))
                .map(|u| u.ix)
                .take(3)
                .collect();
            let mut paths = Vec::new();
            let mut members = Vec::new();
            for ((top, name), user) in tops.iter().zip(&users) {
                let g = org.add_group("Members", usersync_emulator::GroupKind::Native);
                assert!(org.add_child_group(*top, g));
                assert!(org.add_member(g, *user));
                paths.push(format!("/{name}/Members"));
                members.push(group_id(&org, g));
            }
            (paths, members, user_id(&org, users[0]))
        };
        // only the members of the first `Members` group are in scope
        let mut config = std::fs::read_to_string(h.config()).expect("config");
        config.push_str(&format!(
            "required_groups = [{}]\n",
            serde_json::to_string(&paths[0]).expect("toml string")
        ));
        std::fs::write(h.config(), config).expect("config");
        let (code, r) = h.sync().await;
        assert_eq!(code, 0, "{r}");
        let (_, users) = h.json(&["users", "list", "--format", "json"]).await;
        let active: BTreeSet<String> = users
            .as_array()
            .expect("users")
            .iter()
            .filter(|u| u["active"] == Value::Bool(true))
            .map(|u| u["provider_id"].as_str().expect("id").to_string())
            .collect();
        assert_eq!(
            active,
            BTreeSet::from([wanted_user.clone()]),
            "required_groups = [\"{}\"] matches that group only",
            paths[0]
        );

        // every `Members` group is listed with its path
        let (_, groups) = h.json(&["groups", "list", "--format", "json"]).await;
        let listed: BTreeMap<String, String> = groups
            .as_array()
            .expect("groups")
            .iter()
            .filter(|g| g["source_name"] == "Members")
            .map(|g| {
                (
                    g["provider_id"].as_str().expect("id").to_string(),
                    g["path"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect();
        let want: BTreeMap<String, String> = members.iter().cloned().zip(paths.iter().cloned()).collect();
        assert_eq!(listed, want);
        let (_, table, _) = h.run(&["groups", "list"]).await;
        for p in &paths {
            assert!(table.contains(p.as_str()), "path {p} in the table\n{table}");
        }

        // the bare name is ambiguous: the error names every candidate path
        let (code, out, err) = h
            .run(&["groups", "show", "Members", "--connection", "keycloak"])
            .await;
        assert_eq!(code, 2, "{out}{err}");
        for p in &paths {
            assert!(err.contains(p.as_str()), "candidate {p} in the error\n{err}");
        }
        // a path names one group
        let (code, g) = h
            .json(&[
                "groups",
                "show",
                &paths[0],
                "--connection",
                "keycloak",
                "--format",
                "json",
            ])
            .await;
        assert_eq!(code, 0, "{g}");
        assert_eq!(g["provider_id"].as_str(), Some(members[0].as_str()), "{g}");
        assert_eq!(
            g["path"].as_str().or(g["attributes"]["path"].as_str()),
            Some(paths[0].as_str())
        );
        let direct: Vec<&str> = g["direct_members"]
            .as_array()
            .expect("direct")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert_eq!(direct, [wanted_user.as_str()]);
    }

    /// A 404 on the role lookup (`/roles-by-id/{id}`), which the sync needs for roles as groups, is
    /// a doctor failure with advice, as the sync fails on it; without roles it is only a warning.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn doctor_fails_on_a_404_from_an_endpoint_the_sync_needs() {
        let h = Harness::new(30, 5, 4, None).await;
        let proxy = crate::support::proxy_refusing(
            h.emu.http_url.clone(),
            "/roles-by-id/",
            404,
            "<html><body><h1>404 Not Found</h1></body></html>",
        )
        .await;
        let config = std::fs::read_to_string(h.config()).expect("config");
        std::fs::write(h.config(), config.replace(&h.emu.http_url, &proxy)).expect("config");

        let (code, report) = h.json(&["doctor", "--format", "json"]).await;
        assert_eq!(code, 1, "{report}");
        let checks = report
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["checks"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("checks in {report}"));
        let role = checks
            .iter()
            .find(|c| c["step"] == "role_members")
            .unwrap_or_else(|| panic!("a role_members check in {report}"));
        assert_eq!(role["status"], "fail", "{role}");
        assert_eq!(role["required"], true, "{role}");
        let advice = format!("{} {}", role["diagnosis"], role["fix"]);
        assert!(advice.contains("404") && advice.contains("base URL"), "{advice}");

        // a policy without roles: the same 404 is only a warning
        let config = std::fs::read_to_string(h.config()).expect("config");
        std::fs::write(
            h.config(),
            config.replace("roles_as_groups = true", "roles_as_groups = false"),
        )
        .expect("config");
        let (code, report) = h.json(&["doctor", "--format", "json"]).await;
        assert_eq!(code, 0, "{report}");
        assert!(report.to_string().contains("\"warn\""), "{report}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn doctor_passes_and_diagnoses_a_wrong_secret_and_a_missing_role() {
        let ok = Harness::new(40, 8, 3, None).await;
        let (code, out, err) = ok.run(&["doctor", "--format", "json"]).await;
        assert_eq!(code, 0, "doctor should pass against the emulator\n{out}\n{err}");

        let c = ok.emu.credentials().clone();
        let wrong = Harness::new(10, 3, 3, Some((c.client_id.clone(), "not-the-secret".into()))).await;
        let (code, out, err) = wrong.run(&["doctor", "--format", "json"]).await;
        assert_ne!(code, 0);
        assert!(out.contains("token"), "{out}\n{err}");
        assert!(
            !out.contains("not-the-secret") && !err.contains("not-the-secret"),
            "secret leaked"
        );

        let limited = Harness::new(
            10,
            3,
            3,
            Some((c.limited_client_id.clone(), c.limited_client_secret.clone())),
        )
        .await;
        let (code, out, err) = limited.run(&["doctor", "--format", "json"]).await;
        assert_ne!(code, 0);
        assert!(
            out.contains("query-groups"),
            "the missing role is named\n{out}\n{err}"
        );
    }
}

/// The measurement quoted in docs/providers/keycloak.md: 10,000 users and 1,000 groups, requests
/// made vs the lower bound the page size allows. Run by hand:
/// `USERSYNC_AT_SCALE_USERS=10000 cargo test -p usersync-tests --test it -- --nocapture keycloak::at_scale`
/// CI runs it at 2,500 users and 250 groups (25 pages of users, four levels of sub-groups: the
/// paging and the tree walk at scale; half the shared default, to pay for the admin-events tests in
/// incremental_more.rs): the listing must equal the organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_scale_full_listing_matches_the_org_at_the_request_budget() {
    let (users, groups) = if std::env::var_os("USERSYNC_AT_SCALE_USERS").is_some() {
        crate::support::at_scale()
    } else {
        (2_500, 250)
    };
    let emu = emulator(users, groups, 42).await;
    let c = client(&emu);
    let started = std::time::Instant::now();
    let listing = full_listing(&c).await.expect("full listing");
    let elapsed = started.elapsed();
    let org = emu.org().read().await;
    assert_matches_org(&listing, &org);
    let (made, minimum) = request_budget(&org);
    let counters = c.counters();
    assert_eq!(counters.requests, made);
    let memberships: usize = listing.members.values().map(BTreeSet::len).sum();
    println!(
        "keycloak {users}/{groups}: {} users, {} groups ({} nested), {} roles, {} direct memberships (groups+roles); \
         requests made {} (token included), lower bound {}; {} ms, {} bytes",
        listing.users.len(),
        org.live_groups().count(),
        parents(&org).len(),
        3 + org.roles.len(),
        memberships,
        counters.requests,
        minimum,
        elapsed.as_millis(),
        counters.bytes_received
    );
}
