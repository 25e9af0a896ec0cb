//! Python's `ldap3` (PyPI, pinned, in the venv tests/ldap/setup.sh makes) against
//! `usersync ldap serve`: binds, each scope and filter form, paged results over 10,050 users,
//! memberOf and nested groups, StartTLS and LDAPS with the test CA. The store is written through
//! the Store API (no emulator: 10,000 users in about a second); expectations come from what was
//! written, never from the LDAP code. tests/ldap/ldap3_client.py asks, this file judges.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use usersync_model::{GroupKind, UserState};
use usersync_store::{
    Change, Member, RunOutcome, RunStatus, SqliteStore, Store, StoredGroup, StoredMembership, StoredUser,
};

use super::harness::{free_port, spawn_serve, write_tls, BASE, BIND_DN, PASSWORD, PW_ENV};

/// Users written (more than 10,000: the paged search crosses that many entries).
pub(super) const USERS: usize = 10_050;
/// Groups `team0`..`team9`; team1 is nested in team0 and team2 in team1.
pub(super) const GROUPS: usize = 10;

/// The user `i` as written.
pub(super) fn user(i: usize) -> StoredUser {
    StoredUser {
        connection: "hr".into(),
        provider_id: format!("u{i}"),
        username: format!("user{i}"),
        email: (i % 10 != 0).then(|| format!("user{i}@example.com")),
        display_name: Some(if i == 7 {
            "Zoë Ünïcode".to_string()
        } else {
            format!("User {i}")
        }),
        given_name: Some(format!("Given{}", i % 7)),
        family_name: Some(format!("Family{i}")),
        active: true,
        state: UserState::Active,
        status_raw: "ACTIVE".into(),
        manager: None,
        attributes: Default::default(),
        inactive_reason: None,
    }
}

/// The direct user members of team `k`: users 0..100 with `i % 10 == k`.
pub(super) fn team_users(k: usize) -> Vec<usize> {
    (0..100).filter(|i| i % 10 == k).collect()
}

/// Write the store: [`USERS`] active users, one inactive, [`GROUPS`] groups, nesting, one run.
pub(super) fn fill(path: &Path) {
    let mut store = SqliteStore::open(path).expect("store");
    let mut changes: Vec<Change> = (0..USERS).map(|i| Change::PutUser(Arc::new(user(i)))).collect();
    let mut gone = user(USERS);
    gone.username = "gone".into();
    gone.active = false;
    gone.state = UserState::Disabled;
    changes.push(Change::PutUser(Arc::new(gone)));
    for k in 0..GROUPS {
        changes.push(Change::PutGroup(Box::new(StoredGroup {
            connection: "hr".into(),
            provider_id: format!("g{k}"),
            name: format!("team{k}"),
            source_name: format!("team{k}"),
            kind: GroupKind::Group,
            description: Some(format!("Team {k}")),
            attributes: Default::default(),
        })));
        for i in team_users(k) {
            changes.push(Change::AddMembership(StoredMembership {
                group: format!("g{k}"),
                member: Member::User(format!("u{i}")),
            }));
        }
    }
    for (parent, child) in [(0, 1), (1, 2)] {
        changes.push(Change::AddMembership(StoredMembership {
            group: format!("g{parent}"),
            member: Member::Group(format!("g{child}")),
        }));
    }
    let run = store.begin_run("hr", 0).expect("begin run");
    let outcome = RunOutcome {
        status: RunStatus::Applied,
        counts: json!({}),
        errors: vec![],
        plan: json!({}),
        requests: 0,
        source_users: Some(USERS as u64 + 1),
    };
    store.apply("hr", run, &changes, &outcome, 1).expect("apply");
}

/// A directory with the filled store, the test CA and a config serving it (LDAP with StartTLS
/// on `port`, LDAPS on `ldaps_port`; `extra` is added to `[ldap]`).
pub(super) fn setup(dir: &Path, port: u16, ldaps_port: u16, extra: &str) -> PathBuf {
    fill(&dir.join("store.db"));
    write_tls(dir);
    let config = dir.join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "store.db"

[[connections]]
name = "hr"
connector = "keycloak"
[connections.options]
base_url = "http://127.0.0.1:1"
realm = "r"
client_id = "c"
client_secret = {{ env = "UNUSED_SECRET" }}

[ldap]
base_dn = "{BASE}"
listen = "127.0.0.1:{port}"
ldaps_listen = "127.0.0.1:{ldaps_port}"
tls_cert = "ldap.pem"
tls_key = "ldap.key"
{extra}
[[ldap.service_accounts]]
dn = "{BIND_DN}"
password = {{ env = "{PW_ENV}" }}
"#
        ),
    )
    .expect("write config");
    config
}

fn venv_python() -> PathBuf {
    let target = crate::support::profile_dir()
        .parent()
        .map(PathBuf::from)
        .expect("the profile dir has a parent (the target dir)");
    let py = target.join("ldap3-venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: the ldap3 tests need Python's ldap3 in a venv; install it with \
         `sh tests/ldap/setup.sh` (from the repository root; `cargo xtask test` runs it)",
        py.display()
    );
    py
}

fn uids(v: &Value) -> BTreeSet<String> {
    v["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {v}"))
        .iter()
        .map(|e| {
            let dn = e["dn"].as_str().unwrap_or_default().to_lowercase();
            dn.strip_prefix("cn=")
                .and_then(|r| r.split(',').next())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn names(it: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
    it.into_iter().map(|i| format!("user{i}")).collect()
}

#[tokio::test]
async fn ldap3_binds_scopes_filters_paging_nesting_and_tls() {
    let py = venv_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, ldaps_port) = (free_port(), free_port());
    let config = setup(dir.path(), port, ldaps_port, "");
    let _server = spawn_serve(&config, port).await;
    let users = format!("ou=users,{BASE}");
    let groups = format!("ou=groups,{BASE}");
    let team = |k: usize| format!("cn=team{k},ou=groups,{BASE}");
    let s = |name: &str, base: &str, scope: &str, filter: &str, attrs: &[&str]| json!({"name": name, "base": base, "scope": scope, "filter": filter, "attrs": attrs});
    let searches = vec![
        s("base", BASE, "base", "(objectClass=*)", &["1.1"]),
        s("one", BASE, "one", "(objectClass=*)", &["1.1"]),
        s(
            "sub",
            &groups,
            "sub",
            "(objectClass=*)",
            &["cn", "member", "memberOf"],
        ),
        s(
            "equality",
            &users,
            "sub",
            "(uid=USER42)",
            &["uid", "mail", "memberOf"],
        ),
        s("presence", &users, "sub", "(&(uid=user10*)(mail=*))", &["1.1"]),
        s("initial", &users, "sub", "(uid=user104*)", &["1.1"]),
        s("any", &users, "sub", "(displayName=*ser 99*)", &["1.1"]),
        s("final", &users, "sub", "(uid=*0049)", &["1.1"]),
        s(
            "and_or_not",
            &users,
            "sub",
            "(&(|(uid=user1)(uid=user2)(uid=user3))(!(uid=user2)))",
            &["1.1"],
        ),
        s("approx", &users, "sub", "(uid~=user5)", &["1.1"]),
        s("greater", &users, "sub", "(uid>=user9995)", &["1.1"]),
        s(
            "less",
            &users,
            "sub",
            "(&(uid<=user1)(objectClass=inetOrgPerson))",
            &["1.1"],
        ),
        s(
            "unicode",
            &users,
            "sub",
            "(displayName=zoë ünïcode)",
            &["displayName"],
        ),
        s(
            "member_of",
            &users,
            "sub",
            &format!("(memberOf={})", team(0).to_uppercase()),
            &["1.1"],
        ),
        s(
            "nested",
            &groups,
            "sub",
            &format!("(member={})", team(1)),
            &["cn"],
        ),
        s("inactive", &users, "sub", "(uid=gone)", &["1.1"]),
        s(
            "no_such_base",
            &format!("ou=nowhere,{BASE}"),
            "sub",
            "(objectClass=*)",
            &["1.1"],
        ),
    ];
    let plan = json!({
        "host": "127.0.0.1", "port": port, "ldaps_port": ldaps_port,
        "ca": dir.path().join("ca.pem"), "other_ca": dir.path().join("other_ca.pem"),
        "bind_dn": BIND_DN, "password": PASSWORD, "base": BASE,
        "searches": searches,
        "paged": {"base": users, "filter": "(objectClass=inetOrgPerson)", "size": 1000},
    });
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).expect("write plan");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ldap/ldap3_client.py");
    let out = tokio::process::Command::new(&py)
        .arg(&script)
        .arg(&plan_file)
        .output()
        .await
        .expect("run the ldap3 client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ldap3_client.py failed:\n{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    // binds
    assert_eq!(
        r["bad_bind"],
        json!({"ok": false, "code": 49}),
        "invalidCredentials"
    );
    assert_eq!(
        r["anonymous_bind"],
        json!({"ok": false, "code": 48}),
        "inappropriateAuthentication"
    );
    assert_eq!(r["bind"], json!({"ok": true, "code": 0}));
    assert_eq!(
        r["whoami"].as_str().map(str::to_lowercase),
        Some(format!("dn:{}", BIND_DN.to_lowercase()))
    );
    // rootDSE and schema as ldap3 reads them
    assert_eq!(r["root_dse"]["naming_contexts"], json!([BASE]));
    assert!(r["root_dse"]["supported_controls"]
        .to_string()
        .contains("1.2.840.113556.1.4.319"));
    assert!(r["root_dse"]["supported_extensions"]
        .to_string()
        .contains("1.3.6.1.4.1.1466.20037"));
    for class in ["inetOrgPerson", "groupOfNames", "groupOfUniqueNames"] {
        assert!(
            r["schema_classes"].to_string().contains(class),
            "{class}: {}",
            r["schema_classes"]
        );
    }

    let q = |name: &str| -> Value {
        let v = r["searches"][name].clone();
        assert_eq!(v["code"], 0, "{name}: {v}");
        v
    };
    // scopes
    let dns = |v: &Value| -> BTreeSet<String> {
        v["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["dn"].as_str())
            .map(str::to_lowercase)
            .collect()
    };
    assert_eq!(dns(&q("base")), BTreeSet::from([BASE.to_string()]));
    assert_eq!(dns(&q("one")), BTreeSet::from([users.clone(), groups.clone()]));
    let sub = q("sub")["entries"].as_array().expect("entries").clone();
    assert_eq!(sub.len(), 1 + GROUPS, "ou=groups and every group");
    // nested groups: team0 has team1 as a member (with its direct users), team1 is memberOf team0
    let entry = |k: usize| {
        sub.iter()
            .find(|e| {
                e["dn"]
                    .as_str()
                    .unwrap_or_default()
                    .eq_ignore_ascii_case(&team(k))
            })
            .unwrap_or_else(|| panic!("team{k} in {sub:?}"))
    };
    let lower = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .map(str::to_lowercase)
            .collect()
    };
    let mut members0: BTreeSet<String> = team_users(0)
        .into_iter()
        .map(|i| format!("cn=user{i},ou=users,{BASE}"))
        .collect();
    members0.insert(team(1));
    assert_eq!(lower(&entry(0)["attrs"]["member"]), members0);
    assert_eq!(lower(&entry(1)["attrs"]["memberof"]), BTreeSet::from([team(0)]));
    assert_eq!(lower(&entry(2)["attrs"]["memberof"]), BTreeSet::from([team(1)]));
    assert_eq!(uids(&q("nested")), BTreeSet::from(["team0".to_string()]));

    // filters (case-insensitive equality, presence, substrings, and/or/not, approx, ordering)
    let all = 0..USERS;
    let active = |f: &dyn Fn(&StoredUser) -> bool| -> BTreeSet<String> {
        all.clone()
            .map(user)
            .filter(|u| f(u))
            .map(|u| u.username)
            .collect()
    };
    assert_eq!(uids(&q("equality")), names([42]));
    let e42 = q("equality")["entries"][0]["attrs"].clone();
    assert_eq!(e42["mail"], json!(["user42@example.com"]));
    assert_eq!(lower(&e42["memberof"]), BTreeSet::from([team(2)]));
    assert_eq!(
        uids(&q("presence")),
        active(&|u| u.username.starts_with("user10") && u.email.is_some())
    );
    assert_eq!(
        uids(&q("initial")),
        active(&|u| u.username.starts_with("user104"))
    );
    assert_eq!(
        uids(&q("any")),
        active(&|u| u
            .display_name
            .as_deref()
            .is_some_and(|d| d.to_lowercase().contains("ser 99")))
    );
    assert_eq!(uids(&q("final")), active(&|u| u.username.ends_with("0049")));
    assert_eq!(uids(&q("and_or_not")), names([1, 3]));
    assert_eq!(uids(&q("approx")), names([5]));
    assert_eq!(
        uids(&q("greater")),
        active(&|u| u.username.as_str() >= "user9995")
    );
    assert_eq!(uids(&q("less")), active(&|u| u.username.as_str() <= "user1"));
    assert_eq!(
        q("unicode")["entries"][0]["attrs"]["displayname"],
        json!(["Zoë Ünïcode"])
    );
    assert_eq!(uids(&q("member_of")), names(team_users(0)));
    assert_eq!(
        q("inactive")["entries"],
        json!([]),
        "an inactive user is not served"
    );
    assert_eq!(r["searches"]["no_such_base"]["code"], 32, "noSuchObject");

    // paged results: every active user once, in pages of 1,000
    let paged = &r["paged"];
    assert_eq!(paged["code"], 0, "{paged}");
    let got: Vec<&str> = paged["uids"]
        .as_array()
        .expect("uids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(got.len(), USERS, "entries over all pages");
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        USERS,
        "an entry came twice"
    );
    assert_eq!(paged["pages"], USERS.div_ceil(1000));

    // StartTLS and LDAPS with the test CA; a client trusting another CA refuses the server
    assert_eq!(
        r["starttls"],
        json!({"started": true, "bound": true, "tls": true, "entries": 1})
    );
    assert_eq!(r["ldaps"], json!({"bound": true}));
    let untrusted = &r["untrusted_starttls"];
    assert!(
        untrusted["error"].is_string() || untrusted["started"] == json!(false),
        "a client trusting another CA must not get TLS up: {untrusted}"
    );
}
