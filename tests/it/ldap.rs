//! `usersync ldap serve` with a real client: the Keycloak emulator's organisation (nested groups)
//! is synced into a store, the LDAP view is started as a subprocess, and OpenLDAP's `ldapsearch`
//! (Debian `ldap-utils`, installed by tests/ldap/setup.sh) asks it what Jira, GitLab, Grafana and
//! SSSD ask. Expectations come from the store the sync wrote, never from the LDAP code.

mod export;
mod harness;
mod python;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usersync_store::Store;

#[tokio::test]
async fn tree_users_groups_nesting_member_of_and_posix() {
    let mut h = Harness::new(40, 8, "").await;
    let want = expected(&h);
    assert!(
        !want.group_members.is_empty(),
        "the organisation should have nested groups"
    );

    // rootDSE
    let root = h.search(&["-b", "", "-s", "base", "(objectClass=*)", "+"]).await;
    assert_eq!(root.code, 0, "{}{}", root.stdout, root.stderr);
    let root = parse_ldif(&root.stdout);
    assert_eq!(root[0].all("namingContexts"), [BASE]);
    assert!(root[0]
        .all("supportedControl")
        .contains(&"1.2.840.113556.1.4.319".to_string()));
    assert!(root[0]
        .all("supportedExtension")
        .contains(&"1.3.6.1.4.1.1466.20037".to_string()));
    // the subschema entry names the served classes
    let schema = h
        .entries(
            "cn=Subschema",
            "(objectClass=subschema)",
            &["-s", "base", "objectClasses"],
        )
        .await;
    assert!(schema[0]
        .all("objectClasses")
        .iter()
        .any(|c| c.contains("'inetOrgPerson'")));

    // users: every active user of the store, once
    let users = h
        .entries(
            &format!("ou=users,{BASE}"),
            "(objectClass=inetOrgPerson)",
            &["*", "+"],
        )
        .await;
    let got: BTreeSet<String> = users.iter().map(|e| e.one("uid")).collect();
    let exp: BTreeSet<String> = want.users.iter().map(|u| u.username.clone()).collect();
    assert_eq!(got, exp);
    for u in &want.users {
        let e = users
            .iter()
            .find(|e| e.one("uid") == u.username)
            .expect("user entry");
        assert_eq!(e.dn.to_lowercase(), user_dn(&u.username).to_lowercase());
        assert_eq!(e.one("cn"), u.username);
        if let Some(m) = &u.email {
            assert_eq!(&e.one("mail"), m);
        }
        if let Some(g) = &u.given_name {
            assert_eq!(&e.one("givenName"), g);
        }
        // memberOf: exactly the store's direct groups of the user
        let direct: BTreeSet<String> = want
            .user_members
            .iter()
            .filter(|(_, us)| us.contains(&u.username))
            .map(|(g, _)| group_dn(g).to_lowercase())
            .collect();
        assert_eq!(lower(e.all("memberOf")), direct, "memberOf of {}", u.username);
        assert!(e.all("objectClass").contains(&"posixAccount".to_string()));
        assert_eq!(e.one("homeDirectory"), format!("/home/{}", u.username));
        assert_eq!(e.one("entryUUID").len(), 36);
    }

    // groups: groupOfNames and groupOfUniqueNames, direct users and nested groups as members
    let groups = h
        .entries(
            &format!("ou=groups,{BASE}"),
            "(objectClass=groupOfNames)",
            &["*", "+"],
        )
        .await;
    assert_eq!(groups.len(), want.groups.len());
    for g in &want.groups {
        let e = groups
            .iter()
            .find(|e| e.one("cn") == g.name)
            .expect("group entry");
        let mut members: BTreeSet<String> = want
            .user_members
            .get(&g.name)
            .into_iter()
            .flatten()
            .map(|u| user_dn(u).to_lowercase())
            .collect();
        members.extend(
            want.group_members
                .get(&g.name)
                .into_iter()
                .flatten()
                .map(|c| group_dn(c).to_lowercase()),
        );
        assert_eq!(lower(e.all("member")), members, "member of {}", g.name);
        assert_eq!(
            lower(e.all("uniqueMember")),
            members,
            "uniqueMember of {}",
            g.name
        );
        let uids: BTreeSet<String> = want.user_members.get(&g.name).cloned().unwrap_or_default();
        assert_eq!(e.all("memberUid").into_iter().collect::<BTreeSet<_>>(), uids);
        assert!(e.all("objectClass").contains(&"groupOfUniqueNames".to_string()));
        assert!(e.all("objectClass").contains(&"posixGroup".to_string()));
    }
    // a nested group's memberOf names its parent
    let (parent, kids) = want.group_members.iter().next().expect("a nested group");
    let kid = kids.iter().next().expect("child");
    let e = groups.iter().find(|e| &e.one("cn") == kid).expect("child entry");
    assert!(lower(e.all("memberOf")).contains(&group_dn(parent).to_lowercase()));

    // POSIX numbers: unique over users and groups, and the same after a restart
    let numbers = |users: &[Ldif], groups: &[Ldif]| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for e in users {
            m.insert(e.dn.to_lowercase(), e.one("uidNumber"));
        }
        for e in groups {
            m.insert(e.dn.to_lowercase(), e.one("gidNumber"));
        }
        m
    };
    let before = numbers(&users, &groups);
    let distinct: BTreeSet<&String> = before.values().collect();
    assert_eq!(
        distinct.len(),
        before.len(),
        "uidNumber/gidNumber collide: {before:?}"
    );
    let uuids: BTreeMap<String, String> = users.iter().map(|e| (e.dn.clone(), e.one("entryUUID"))).collect();
    h.stop().await;
    h.start().await;
    let users2 = h
        .entries(
            &format!("ou=users,{BASE}"),
            "(objectClass=posixAccount)",
            &["uidNumber", "entryUUID"],
        )
        .await;
    let groups2 = h
        .entries(
            &format!("ou=groups,{BASE}"),
            "(objectClass=posixGroup)",
            &["gidNumber"],
        )
        .await;
    assert_eq!(
        numbers(&users2, &groups2),
        before,
        "numbers changed across a restart"
    );
    let uuids2: BTreeMap<String, String> = users2
        .iter()
        .map(|e| (e.dn.clone(), e.one("entryUUID")))
        .collect();
    assert_eq!(uuids2, uuids);
}

#[tokio::test]
async fn filters_scopes_paging_and_application_queries() {
    let h = Harness::new(45, 6, "").await;
    let want = expected(&h);
    let users_base = format!("ou=users,{BASE}");
    let n_users = want.users.len();
    let some = &want.users[0];
    let count = |v: Vec<Ldif>| v.len();

    // scopes
    assert_eq!(
        count(h.entries(BASE, "(objectClass=*)", &["-s", "base", "1.1"]).await),
        1
    );
    assert_eq!(
        count(h.entries(BASE, "(objectClass=*)", &["-s", "one", "1.1"]).await),
        2
    );
    assert_eq!(
        count(h.entries(BASE, "(objectClass=*)", &["-s", "sub", "1.1"]).await),
        3 + n_users + want.groups.len()
    );
    let missing = h
        .search(&["-b", &format!("ou=nowhere,{BASE}"), "(objectClass=*)"])
        .await;
    assert_eq!(missing.code, 32, "noSuchObject: {}", missing.stderr);

    // equality (case-insensitive), presence, substrings, and/or/not
    let one = h
        .entries(
            &users_base,
            &format!("(uid={})", some.username.to_uppercase()),
            &["uid"],
        )
        .await;
    assert_eq!(one.len(), 1);
    let with_mail = want.users.iter().filter(|u| u.email.is_some()).count();
    assert_eq!(
        count(h.entries(&users_base, "(mail=*)", &["1.1"]).await),
        with_mail
    );
    let prefix: String = some.username.chars().take(2).collect();
    let exp_prefix = want
        .users
        .iter()
        .filter(|u| u.username.to_lowercase().starts_with(&prefix.to_lowercase()))
        .count();
    assert_eq!(
        count(
            h.entries(&users_base, &format!("(uid={prefix}*)"), &["1.1"])
                .await
        ),
        exp_prefix
    );
    let other = &want.users[1];
    let or = format!("(|(uid={})(uid={}))", some.username, other.username);
    assert_eq!(count(h.entries(&users_base, &or, &["1.1"]).await), 2);
    let not = format!("(&(objectClass=inetOrgPerson)(!(uid={})))", some.username);
    assert_eq!(count(h.entries(&users_base, &not, &["1.1"]).await), n_users - 1);
    assert_eq!(
        count(h.entries(&users_base, "(uidNumber>=1)", &["1.1"]).await),
        n_users
    );

    // Jira ("OpenLDAP"/"generic" defaults): users, groups, a group's members, a user's groups
    let jira_users = h
        .entries(
            BASE,
            "(objectclass=inetorgperson)",
            &[
                "cn",
                "givenName",
                "sn",
                "displayName",
                "mail",
                "entryUUID",
                "memberOf",
            ],
        )
        .await;
    assert_eq!(jira_users.len(), n_users);
    let (gname, members) = want.user_members.iter().next().expect("a group with users");
    let jira_groups = h
        .entries(
            BASE,
            "(objectclass=groupOfUniqueNames)",
            &["cn", "description", "uniqueMember"],
        )
        .await;
    assert_eq!(jira_groups.len(), want.groups.len());
    let member = members.iter().next().expect("member");
    let of_member = h
        .entries(
            BASE,
            &format!(
                "(&(objectclass=groupOfUniqueNames)(uniqueMember={}))",
                user_dn(member)
            ),
            &["cn"],
        )
        .await;
    let exp: BTreeSet<String> = want
        .user_members
        .iter()
        .filter(|(_, m)| m.contains(member))
        .map(|(g, _)| g.clone())
        .collect();
    assert_eq!(
        of_member.iter().map(|e| e.one("cn")).collect::<BTreeSet<_>>(),
        exp
    );
    assert!(exp.contains(gname) || !members.contains(member));
    // Grafana: user by login, groups by posixGroup memberUid
    let grafana = h
        .entries(BASE, &format!("(cn={member})"), &["mail", "memberOf"])
        .await;
    assert_eq!(grafana.len(), 1);
    let posix_groups = h
        .entries(
            BASE,
            &format!("(&(objectClass=posixGroup)(memberUid={member}))"),
            &["cn"],
        )
        .await;
    assert_eq!(
        posix_groups.iter().map(|e| e.one("cn")).collect::<BTreeSet<_>>(),
        exp
    );
    // SSSD (rfc2307): enumerate accounts with numbers, look one up, its groups
    let sssd = h
        .entries(
            BASE,
            "(&(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))",
            &[
                "uid",
                "uidNumber",
                "gidNumber",
                "homeDirectory",
                "loginShell",
                "gecos",
            ],
        )
        .await;
    assert_eq!(sssd.len(), n_users);
    let sssd_groups = h
        .entries(
            BASE,
            &format!("(&(memberUid={member})(objectClass=posixGroup)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))"),
            &["cn", "gidNumber", "memberUid"],
        )
        .await;
    assert_eq!(
        sssd_groups.iter().map(|e| e.one("cn")).collect::<BTreeSet<_>>(),
        exp
    );
    assert!(sssd.iter().all(|e| e.one("loginShell") == "/bin/bash"));

    // paged results over all users: every entry once, in pages of 10
    let paged = h
        .client_plain(
            "ldapsearch",
            &["-D", BIND_DN, "-w", PASSWORD, "-o", "ldif-wrap=no"],
            &[
                "-E",
                "pr=10/noprompt",
                "-b",
                &users_base,
                "(objectClass=inetOrgPerson)",
                "uid",
            ],
        )
        .await;
    assert_eq!(paged.code, 0, "{}{}", paged.stdout, paged.stderr);
    let got: Vec<String> = parse_ldif(&paged.stdout).iter().map(|e| e.one("uid")).collect();
    assert_eq!(got.len(), n_users);
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        n_users,
        "an entry came twice"
    );
    let pages = paged.stdout.lines().filter(|l| l.starts_with("search: ")).count();
    assert_eq!(pages, n_users.div_ceil(10), "{}", paged.stdout);

    // size limit: the first entries and sizeLimitExceeded (4)
    let limited = h
        .search(&["-z", "5", "-b", &users_base, "(objectClass=inetOrgPerson)", "1.1"])
        .await;
    assert_eq!(limited.code, 4, "{}", limited.stderr);
    assert_eq!(parse_ldif(&limited.stdout).len(), 5);
}

#[tokio::test]
async fn binds_writes_and_rate_limit() {
    let h = Harness::new(10, 3, "max_bind_failures = 3").await;
    let users_base = format!("ou=users,{BASE}");
    // anonymous: refused (inappropriateAuthentication)
    let anon = h
        .client("ldapsearch", &[], &["-b", &users_base, "(objectClass=*)"])
        .await;
    assert_ne!(anon.code, 0, "anonymous search must fail: {}", anon.stdout);
    assert!(parse_ldif(&anon.stdout).is_empty());
    // the right account: works; whoami names it
    let who = h
        .client("ldapwhoami", &["-D", BIND_DN, "-w", PASSWORD], &[])
        .await;
    assert_eq!(who.code, 0, "{}", who.stderr);
    assert!(
        who.stdout
            .to_lowercase()
            .contains(&format!("dn:{}", BIND_DN.to_lowercase())),
        "{}",
        who.stdout
    );
    // writes: unwillingToPerform (53)
    let ldif = h.dir.path().join("add.ldif");
    std::fs::write(
        &ldif,
        format!("dn: cn=mallory,{users_base}\nobjectClass: inetOrgPerson\ncn: mallory\nsn: m\n"),
    )
    .expect("ldif");
    let add = h
        .client(
            "ldapadd",
            &["-D", BIND_DN, "-w", PASSWORD],
            &["-f", ldif.to_str().expect("utf8")],
        )
        .await;
    assert_eq!(add.code, 53, "{}{}", add.stdout, add.stderr);
    let del = h
        .client(
            "ldapdelete",
            &["-D", BIND_DN, "-w", PASSWORD],
            &[&format!("cn=x,{users_base}")],
        )
        .await;
    assert_eq!(del.code, 53, "{}", del.stderr);
    // wrong password: invalidCredentials (49), three times, then refused (53) even with the right one
    for _ in 0..3 {
        let bad = h
            .client(
                "ldapsearch",
                &["-D", BIND_DN, "-w", "wrong"],
                &["-b", BASE, "(objectClass=*)"],
            )
            .await;
        assert_eq!(bad.code, 49, "{}", bad.stderr);
    }
    let blocked = h.search(&["-b", BASE, "(objectClass=*)", "1.1"]).await;
    assert_eq!(
        blocked.code, 53,
        "binds from this address are limited now: {}",
        blocked.stderr
    );
    assert!(
        blocked.stderr.contains("too many failed binds"),
        "{}",
        blocked.stderr
    );
    assert!(!blocked.stderr.contains(PASSWORD));
}

#[tokio::test]
async fn starttls_and_ldaps() {
    let h = Harness::new(8, 2, "").await;
    let users_base = format!("ou=users,{BASE}");
    // StartTLS (-ZZ: must succeed), the certificate checked against the test's own
    let tls = h
        .search(&["-ZZ", "-b", &users_base, "(objectClass=inetOrgPerson)", "1.1"])
        .await;
    assert_eq!(tls.code, 0, "{}", tls.stderr);
    let n = h
        .store()
        .users(Some("kc"))
        .expect("users")
        .iter()
        .filter(|u| u.active)
        .count();
    assert_eq!(parse_ldif(&tls.stdout).len(), n);
    // LDAPS
    let out = tokio::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &format!("ldaps://127.0.0.1:{}", h.ldaps_port),
            "-D",
            BIND_DN,
            "-w",
            PASSWORD,
        ])
        .args(["-b", &users_base, "(objectClass=inetOrgPerson)", "1.1"])
        .env("LDAPTLS_CACERT", h.dir.path().join("ca.pem"))
        .env("LDAPTLS_REQCERT", "demand")
        .output()
        .await
        .expect("ldapsearch");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parse_ldif(&String::from_utf8_lossy(&out.stdout)).len(), n);
    // a client that does not trust the certificate is refused by its own check
    let untrusted = tokio::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-ZZ",
            "-H",
            &h.url(),
            "-D",
            BIND_DN,
            "-w",
            PASSWORD,
            "-b",
            BASE,
            "(objectClass=*)",
        ])
        .env("LDAPTLS_CACERT", "/dev/null")
        .env("LDAPTLS_REQCERT", "demand")
        .output()
        .await
        .expect("ldapsearch");
    assert_ne!(untrusted.status.code(), Some(0));
}

/// Send `bytes` on a fresh connection; what came back before the server closed it.
async fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server must close a connection that sent bad input")
        .ok();
    out
}

#[tokio::test]
async fn malformed_input_closes_the_connection_and_the_server_keeps_serving() {
    let h = Harness::new(6, 2, "max_request_kb = 64").await;
    // not BER at all
    let reply = raw(h.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!reply.is_empty(), "a notice of disconnection is expected");
    assert_eq!(reply[0], 0x30, "an LDAPMessage");
    // a message that declares 16 MiB
    let reply = raw(h.port, &[0x30, 0x84, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01]).await;
    assert!(
        String::from_utf8_lossy(&reply).contains("larger than"),
        "{reply:?}"
    );
    // a deeply nested filter (5,000 NOTs) inside a well-formed search request
    let mut filter: Vec<u8> = vec![0x87, 0x02, b'c', b'n']; // (cn=*)
    for _ in 0..5000 {
        let mut outer = vec![0xa2];
        push_len(&mut outer, filter.len());
        outer.extend(filter);
        filter = outer;
    }
    let mut search = Vec::new();
    search.extend([
        0x04, 0x00, 0x0a, 0x01, 0x02, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x01, 0x01, 0x00,
    ]);
    search.extend(filter);
    search.extend([0x30, 0x00]);
    let mut op = vec![0x63];
    push_len(&mut op, search.len());
    op.extend(search);
    let mut body = vec![0x02, 0x01, 0x07];
    body.extend(op);
    let mut msg = vec![0x30];
    push_len(&mut msg, body.len());
    msg.extend(body);
    let reply = raw(h.port, &msg).await;
    assert!(
        String::from_utf8_lossy(&reply).contains("nested deeper"),
        "{reply:?}"
    );
    // truncated lengths inside a message
    let reply = raw(h.port, &[0x30, 0x05, 0x02, 0x09, 0x01, 0x00, 0x00]).await;
    assert!(!reply.is_empty());
    // still serving
    let ok = h
        .search(&["-b", BASE, "-s", "base", "(objectClass=*)", "1.1"])
        .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend(&bytes[skip..]);
    }
}

#[tokio::test]
async fn a_sync_while_serving_is_seen_whole_without_a_restart() {
    let h = Harness::new(12, 3, "").await;
    let users_base = format!("ou=users,{BASE}");
    let before = h
        .entries(&users_base, "(objectClass=posixAccount)", &["uid"])
        .await
        .len();
    {
        let mut org = h.emu.org().write().await;
        let first = org.live_groups().next().map(|g| g.ix).expect("a group");
        let ix = org.add_user("grace.hopper@example.com", "Grace", "Hopper");
        org.add_member(first, ix);
    }
    h.sync().await;
    let mut found = Vec::new();
    for _ in 0..100 {
        found = h
            .entries(
                &users_base,
                "(mail=grace.hopper@example.com)",
                &["uidNumber", "memberOf"],
            )
            .await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        found.len(),
        1,
        "the new user was not served within 10 s of the sync"
    );
    assert!(
        !found[0].one("uidNumber").is_empty(),
        "a number was allocated for the new user"
    );
    assert_eq!(
        found[0].all("memberOf").len(),
        1,
        "with its membership from the same run"
    );
    let after = h
        .entries(&users_base, "(objectClass=posixAccount)", &["uid"])
        .await
        .len();
    assert_eq!(after, before + 1);
}

#[tokio::test]
async fn config_check_reports_ldap_mistakes_with_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        "[[connections]]\nname = \"kc\"\nconnector = \"keycloak\"\n[connections.options]\n\
         base_url = \"http://127.0.0.1:1\"\nrealm = \"r\"\nclient_id = \"c\"\nclient_secret = { env = \"X\" }\n\
         [ldap]\nbase_dn = \"example.com\"\nlisten = \"localhost\"\nposxi = true\n\
         [[ldap.service_accounts]]\ndn = \"cn=jira,dc=example,dc=com\"\npassword = \"plain\"\n",
    )
    .expect("write config");
    let out = crate::support::usersync_command(&config)
        .args(["config", "check"])
        .output()
        .await
        .expect("run usersync config check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    for (line, what) in [
        (10, "not a DN"),
        (11, "address:port"),
        (12, "did you mean `posix`"),
        (13, "secret reference"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("usersync.toml:{line}:")) && l.contains(what)),
            "line {line} should say `{what}`:\n{text}"
        );
    }
    assert!(!text.contains("plain\""), "{text}");
}

/// `ldapsearch <ext> -b BASE -s base (objectClass=*) 1.1`, bound as the service account.
async fn base_search_with(h: &Harness, ext: &[&str]) -> Out {
    let mut args = ext.to_vec();
    args.extend(["-b", BASE, "-s", "base", "(objectClass=*)", "1.1"]);
    h.search(&args).await
}

#[tokio::test]
async fn critical_unknown_controls_are_refused_and_non_critical_ones_ignored() {
    let h = Harness::new(4, 1, "").await;
    // RFC 4511 4.1.11: an unknown control marked critical -> unavailableCriticalExtension (12),
    // the operation not performed; on a search (-E) or on every operation after the bind (-e)
    for ext in [["-e", "!1.2.3.4"], ["-E", "!1.2.3.4"], ["-e", "!manageDSAit"]] {
        let out = base_search_with(&h, &ext).await;
        assert_eq!(out.code, 12, "{ext:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.trim().is_empty(), "not performed: {}", out.stdout);
        assert!(out.stderr.contains("not supported"), "{}", out.stderr);
    }
    // the same controls not critical are ignored; paged results marked critical is honoured
    for ext in [["-e", "1.2.3.4"], ["-E", "1.2.3.4"], ["-E", "!pr=5/noprompt"]] {
        let out = base_search_with(&h, &ext).await;
        assert_eq!(out.code, 0, "{ext:?}: {}", out.stderr);
        assert_eq!(parse_ldif(&out.stdout).len(), 1, "{ext:?}: {}", out.stdout);
    }
}
