//! `usersync export ldif` loaded into OpenLDAP's own server: the export of a synced store goes
//! through `slapadd` (Debian `slapd`, installed by tests/ldap/setup.sh) into a throwaway slapd,
//! and the same searches against slapd and against `usersync ldap serve` return the same entries.
//! Also the helpers the benchmark uses to run slapd side by side (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::harness::{free_port, parse_ldif, which, Harness, Ldif, BASE, BIND_DN, PASSWORD};

/// The one attribute type the tree serves that OpenLDAP's schema lacks (crates/usersync-ldap
/// schema.rs), in slapd.conf form.
const USERSYNC_SCHEMA: &str = "attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'usersyncConnection' \
     DESC 'the usersync connection the object comes from' EQUALITY caseIgnoreMatch \
     SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )\n";

/// A slapd.conf for a database under `dir` holding the base DN, the test's service account as
/// its root DN, and the memberof overlay (which defines `memberOf`).
fn slapd_conf(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("db")).expect("db dir");
    std::fs::write(dir.join("usersync.schema"), USERSYNC_SCHEMA).expect("schema");
    let conf = dir.join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include {dir}/usersync.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             pidfile {dir}/slapd.pid\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{BASE}\"\n\
             rootdn \"{BIND_DN}\"\n\
             rootpw {PASSWORD}\n\
             directory {dir}/db\n\
             overlay memberof\n",
            dir = dir.display()
        ),
    )
    .expect("slapd.conf");
    conf
}

/// Entries keyed by lower-case DN, attribute values sorted (names are already lower case).
fn by_dn(entries: Vec<Ldif>) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    entries
        .into_iter()
        .map(|e| {
            let attrs = e
                .attrs
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort();
                    (k, v)
                })
                .collect();
            (e.dn.to_lowercase(), attrs)
        })
        .collect()
}

#[tokio::test]
async fn export_ldif_loads_into_slapd_and_serves_the_same_entries() {
    assert!(
        Path::new("/usr/sbin/slapadd").exists() && Path::new("/usr/sbin/slapd").exists(),
        "slapd/slapadd are missing: run `sh tests/ldap/setup.sh` (or `cargo xtask test`, which runs it)"
    );
    assert!(
        which("ldapsearch"),
        "ldapsearch is missing: run `sh tests/ldap/setup.sh`"
    );
    let h = Harness::new(30, 6, "").await;
    let ldif = h.dir.path().join("export.ldif");
    let out = crate::support::usersync_command(&h.config())
        .args(["export", "ldif", "--out"])
        .arg(&ldif)
        .output()
        .await
        .expect("run usersync export ldif");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&ldif).expect("read the export");
    assert!(text.starts_with("# usersync export ldif: "), "{text:.200}");
    let want = super::harness::expected(&h);
    let dns = text.lines().filter(|l| l.starts_with("dn:")).count();
    assert_eq!(
        dns,
        3 + want.users.len() + want.groups.len(),
        "containers, users, groups"
    );

    // slapadd it (-s: the tree's groups are groupOfNames and groupOfUniqueNames, two structural
    // classes OpenLDAP's schema check refuses together; -q: no per-value syntax checks)
    let sdir = h.dir.path().join("slapd");
    let conf = slapd_conf(&sdir);
    let add = tokio::process::Command::new("/usr/sbin/slapadd")
        .args(["-q", "-s", "-f"])
        .arg(&conf)
        .arg("-l")
        .arg(&ldif)
        .output()
        .await
        .expect("run slapadd");
    assert!(
        add.status.success(),
        "slapadd refused the export: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let port = free_port();
    let mut slapd = tokio::process::Command::new("/usr/sbin/slapd")
        .args(["-d", "0", "-f"])
        .arg(&conf)
        .args(["-h", &format!("ldap://127.0.0.1:{port}/")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start slapd");
    let slapd_search = |args: Vec<String>| async move {
        tokio::process::Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
            .arg(format!("ldap://127.0.0.1:{port}"))
            .args(["-D", BIND_DN, "-w", PASSWORD])
            .args(&args)
            .env_remove("LDAPRC")
            .output()
            .await
            .expect("ldapsearch")
    };
    let mut up = false;
    for _ in 0..100 {
        let probe = slapd_search(vec![
            "-b".into(),
            BASE.into(),
            "-s".into(),
            "base".into(),
            "1.1".into(),
        ])
        .await;
        if probe.status.success() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "slapd did not answer within 5 s");

    // the same searches on both servers: the whole tree with the user attributes, memberOf
    // (operational in slapd) and entryUUID; users of a group; groups of a user
    let (gname, members) = want.user_members.iter().next().expect("a group with users");
    let member_dn = super::harness::user_dn(members.iter().next().expect("a member"));
    let queries: Vec<Vec<String>> = vec![
        vec![
            "(objectClass=*)".into(),
            "*".into(),
            "memberOf".into(),
            "entryUUID".into(),
        ],
        vec![
            format!("(memberOf={})", super::harness::group_dn(gname)),
            "uid".into(),
        ],
        vec![
            format!("(&(objectClass=groupOfUniqueNames)(uniqueMember={member_dn}))"),
            "cn".into(),
        ],
        vec![
            "(&(objectClass=posixAccount)(uidNumber>=1))".into(),
            "uidNumber".into(),
            "gidNumber".into(),
        ],
        vec!["(|(cn=*a*)(mail=*example*))".into(), "1.1".into()],
    ];
    for q in queries {
        let mut args = vec!["-b".to_string(), BASE.to_string()];
        args.extend(q.iter().cloned());
        let theirs = slapd_search(args.clone()).await;
        assert!(
            theirs.status.success(),
            "slapd {q:?}: {}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = h.search(&arg_refs).await;
        assert_eq!(ours.code, 0, "usersync {q:?}: {}", ours.stderr);
        let (ours, theirs) = (
            by_dn(parse_ldif(&ours.stdout)),
            by_dn(parse_ldif(&String::from_utf8_lossy(&theirs.stdout))),
        );
        assert!(!ours.is_empty(), "{q:?} found nothing");
        assert_eq!(ours, theirs, "{q:?}: usersync and slapd differ");
    }
    let _ = slapd.kill().await;
}
