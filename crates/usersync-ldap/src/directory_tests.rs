//! The entry mapping: users, groups, nesting, memberOf, the flattened view, POSIX numbers,
//! group-name collisions and the per-connection layout.

use std::collections::HashMap;

use usersync_config::{LdapConfig, LdapLayout};
use usersync_model::{GroupKind, ManagerRef, UserState};
use usersync_store::{DirectoryLinks, Member, PosixKind, StoredGroup, StoredMembership, StoredUser};

use super::*;

fn user(c: &str, id: &str, name: &str, active: bool) -> StoredUser {
    StoredUser {
        connection: c.into(),
        provider_id: id.into(),
        username: name.into(),
        email: Some(format!("{name}@example.com")),
        display_name: None,
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        active,
        state: UserState::Active,
        status_raw: "ACTIVE".into(),
        manager: None,
        attributes: [("title".to_string(), serde_json::json!("Engineer"))]
            .into_iter()
            .collect(),
        inactive_reason: None,
    }
}

fn group(c: &str, id: &str, name: &str) -> StoredGroup {
    StoredGroup {
        connection: c.into(),
        provider_id: id.into(),
        name: name.into(),
        source_name: name.into(),
        kind: GroupKind::Group,
        description: Some(format!("{name} group")),
        attributes: Default::default(),
    }
}

fn edge(c: &str, g: &str, m: Member) -> (String, StoredMembership) {
    (
        c.into(),
        StoredMembership {
            group: g.into(),
            member: m,
        },
    )
}

/// Org: ada (in dev), bob (in staff, inactive), carol (manager of ada); staff contains dev.
fn view() -> StoreView {
    let mut ada = user("c", "u1", "ada", true);
    ada.manager = Some(ManagerRef::Id("u3".into()));
    let users = vec![ada, user("c", "u2", "bob", false), user("c", "u3", "carol", true)];
    let groups = vec![group("c", "g1", "staff"), group("c", "g2", "dev")];
    let links = DirectoryLinks {
        direct: vec![
            edge("c", "g2", Member::User("u1".into())),
            edge("c", "g1", Member::User("u2".into())),
            edge("c", "g1", Member::User("u3".into())),
            edge("c", "g1", Member::Group("g2".into())),
        ],
        effective: vec![
            ("c".into(), "g2".into(), "u1".into()),
            ("c".into(), "g1".into(), "u1".into()),
            ("c".into(), "g1".into(), "u2".into()),
            ("c".into(), "g1".into(), "u3".into()),
        ],
    };
    StoreView {
        users,
        groups,
        links,
        ..StoreView::default()
    }
}

fn get<'a>(d: &'a Directory, dn_: &str) -> &'a Entry {
    let norm = dn::normalize(dn_).expect("dn");
    &d.entries[*d.index.get(&norm).unwrap_or_else(|| panic!("no entry {dn_}"))]
}

fn vals(e: &Entry, a: &str) -> Vec<String> {
    e.get(&a.to_lowercase())
        .map(|a| {
            a.values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn users_and_groups_map_to_inet_org_person_and_group_of_names() {
    let d = build(&view(), &LdapConfig::new("dc=example,dc=com")).expect("build");
    // base, ou=users, ou=groups, 2 active users, 2 groups; bob is inactive and not served
    assert_eq!(d.entries.len(), 7);
    assert!(!d.index.contains_key("cn=bob,ou=users,dc=example,dc=com"));
    let ada = get(&d, "cn=ada,ou=users,dc=example,dc=com");
    assert_eq!(
        vals(ada, "objectClass"),
        ["top", "person", "organizationalPerson", "inetOrgPerson"]
    );
    assert_eq!(vals(ada, "uid"), ["ada"]);
    assert_eq!(vals(ada, "cn"), ["ada"]);
    assert_eq!(vals(ada, "sn"), ["Lovelace"]);
    assert_eq!(vals(ada, "displayName"), ["Ada Lovelace"]);
    assert_eq!(vals(ada, "mail"), ["ada@example.com"]);
    assert_eq!(vals(ada, "title"), ["Engineer"]);
    assert_eq!(vals(ada, "manager"), ["cn=carol,ou=users,dc=example,dc=com"]);
    assert_eq!(vals(ada, "memberOf"), ["cn=dev,ou=groups,dc=example,dc=com"]);
    assert_eq!(vals(ada, "entryUUID"), [entry_uuid("user", "c", "u1")]);
    assert!(vals(ada, "uidNumber").is_empty(), "posix is off");
    let staff = get(&d, "cn=staff,ou=groups,dc=example,dc=com");
    assert_eq!(
        vals(staff, "objectClass"),
        ["top", "groupOfNames", "groupOfUniqueNames"]
    );
    // direct members: carol and the nested group dev (bob is not served)
    let members = vals(staff, "member");
    assert_eq!(
        members,
        [
            "cn=carol,ou=users,dc=example,dc=com",
            "cn=dev,ou=groups,dc=example,dc=com"
        ]
    );
    assert_eq!(vals(staff, "uniqueMember"), members);
    let dev = get(&d, "cn=dev,ou=groups,dc=example,dc=com");
    assert_eq!(vals(dev, "memberOf"), ["cn=staff,ou=groups,dc=example,dc=com"]);
}

#[test]
fn transitive_view_flattens_members_and_member_of() {
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.transitive = true;
    let d = build(&view(), &cfg).expect("build");
    let ada = get(&d, "cn=ada,ou=users,dc=example,dc=com");
    assert_eq!(
        vals(ada, "memberOf"),
        [
            "cn=dev,ou=groups,dc=example,dc=com",
            "cn=staff,ou=groups,dc=example,dc=com"
        ]
    );
    let staff = get(&d, "cn=staff,ou=groups,dc=example,dc=com");
    assert_eq!(
        vals(staff, "member"),
        [
            "cn=ada,ou=users,dc=example,dc=com",
            "cn=carol,ou=users,dc=example,dc=com"
        ],
        "users only, through nesting"
    );
}

#[test]
fn posix_numbers_come_from_the_store_and_missing_ones_are_reported() {
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.posix = true;
    cfg.uid_base = 20_000;
    cfg.gid_base = 20_000;
    let mut v = view();
    let d = build(&v, &cfg).expect("build");
    assert_eq!(
        d.missing_posix.len(),
        4,
        "2 served users and 2 groups need numbers"
    );
    v.posix = HashMap::from([
        ((PosixKind::User, "c".to_string(), "u1".to_string()), 1),
        ((PosixKind::User, "c".to_string(), "u3".to_string()), 3),
        ((PosixKind::Group, "c".to_string(), "g1".to_string()), 4),
        ((PosixKind::Group, "c".to_string(), "g2".to_string()), 5),
    ]);
    let d = build(&v, &cfg).expect("build");
    assert!(d.missing_posix.is_empty());
    let ada = get(&d, "cn=ada,ou=users,dc=example,dc=com");
    assert!(vals(ada, "objectClass").contains(&"posixAccount".to_string()));
    assert_eq!(vals(ada, "uidNumber"), ["20001"]);
    assert_eq!(vals(ada, "gidNumber"), ["20001"]);
    assert_eq!(vals(ada, "homeDirectory"), ["/home/ada"]);
    let staff = get(&d, "cn=staff,ou=groups,dc=example,dc=com");
    assert_eq!(vals(staff, "gidNumber"), ["20004"]);
    assert_eq!(vals(staff, "memberUid"), ["carol"]);
}

#[test]
fn colliding_group_names_and_per_connection_layout() {
    let mut v = view();
    v.users.push(user("d", "x1", "dave", true));
    v.groups.push(group("d", "h1", "Staff"));
    let d = build(&v, &LdapConfig::new("dc=example,dc=com")).expect("build");
    assert!(d.index.contains_key("cn=staff@c,ou=groups,dc=example,dc=com"));
    assert!(d.index.contains_key("cn=staff@d,ou=groups,dc=example,dc=com"));
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.layout = LdapLayout::PerConnection;
    let d = build(&v, &cfg).expect("build");
    for dn_ in [
        "ou=c,dc=example,dc=com",
        "ou=users,ou=c,dc=example,dc=com",
        "cn=ada,ou=users,ou=c,dc=example,dc=com",
        "cn=staff,ou=groups,ou=c,dc=example,dc=com",
        "cn=staff,ou=groups,ou=d,dc=example,dc=com",
        "cn=dave,ou=users,ou=d,dc=example,dc=com",
    ] {
        get(&d, dn_);
    }
}

#[test]
fn entry_uuid_is_stable_and_distinct() {
    let a = entry_uuid("user", "c", "u1");
    assert_eq!(a, entry_uuid("user", "c", "u1"));
    assert_ne!(a, entry_uuid("group", "c", "u1"));
    assert_ne!(a, entry_uuid("user", "c2", "u1"));
    assert_eq!(&a[14..15], "8", "version 8 (name-based, custom hash)");
}

#[test]
fn the_equality_index_finds_what_a_scan_finds() {
    use crate::filter::{compile, eval, Truth};
    use ldap3_proto::proto::LdapFilter;
    let mut cfg = LdapConfig::new("dc=example,dc=com");
    cfg.posix = true;
    let mut v = view();
    v.posix = HashMap::from([((PosixKind::Group, "c".to_string(), "g1".to_string()), 4)]);
    let d = build(&v, &cfg).expect("build");
    let eq = |a: &str, val: &str| LdapFilter::Equality(a.into(), val.into());
    let filters = [
        eq("uid", "ADA"),
        eq("cn", "staff"),
        eq("mail", "carol@example.com"),
        eq("entryUUID", &entry_uuid("user", "c", "u1").to_uppercase()),
        eq("member", "CN=dev, ou=groups,dc=example,dc=com"),
        eq("uniqueMember", "cn=carol,ou=users,dc=example,dc=com"),
        eq("memberUid", "carol"),
        eq("memberOf", "cn=staff,ou=groups,dc=example,dc=com"),
        LdapFilter::And(vec![eq("objectClass", "inetOrgPerson"), eq("uid", "carol")]),
        eq("uid", "nobody"),
    ];
    for f in filters {
        let c = compile(&f);
        let scan: Vec<usize> = (0..d.entries.len())
            .filter(|i| eval(&c, &d.entries[*i]) == Truth::True)
            .collect();
        let cands = d.candidates(&c).expect("indexed");
        let via_index: Vec<usize> = cands
            .iter()
            .copied()
            .filter(|i| eval(&c, &d.entries[*i]) == Truth::True)
            .collect();
        assert_eq!(via_index, scan, "{f:?}");
        if !matches!(&f, LdapFilter::Equality(_, v) if v == "nobody") {
            assert!(!scan.is_empty(), "{f:?} should match something");
        }
    }
}
