//! Bad input of the PostgreSQL backend against a real server (`USERSYNC_TEST_POSTGRES`; each test
//! in its own schema): wrong user, unreachable server, a read-only database, the connection lost
//! in the middle of an apply, and the SQLite -> PostgreSQL copy.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::conformance::backends::{Backend, Postgres};
use crate::conformance::{outcome, user};
use crate::{DirectoryStore, PosixKey, PosixKind};

fn backend(name: &str) -> Option<Postgres> {
    Postgres::new(name)
}

/// `url` with its user replaced and a password added.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_username(user).expect("user");
    u.set_password(Some(password)).expect("password");
    u.to_string()
}

#[test]
fn an_unknown_user_or_an_unreachable_server_is_a_clear_error_without_the_password() {
    let Some(b) = backend("unknown_user") else { return };
    let err = PgStore::open(&with_user(&b.url(""), "no_such_role_x", "s3cret-pw")).expect_err("unknown role");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(text.contains("no_such_role_x") && text.contains("****"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    // nothing listens on port 1
    let mut u = url::Url::parse(&with_user(&b.url(""), "postgres", "s3cret-pw")).expect("url");
    u.set_port(Some(1)).expect("port");
    let err = PgStore::open(u.as_str()).expect_err("unreachable");
    let text = err.to_string();
    assert!(
        text.contains("cannot open store") && text.contains("reachable"),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");
}

#[test]
fn a_wrong_password_is_a_clear_error_naming_the_user_without_the_password() {
    let Some(b) = backend("wrong_password") else {
        return;
    };
    // the role and its password rule come from tests/postgres/setup.sh (the other rules are trust)
    let rule = b.admin(
        "SELECT count(*) FROM pg_hba_file_rules WHERE 'usersync_pw_test' = ANY(user_name) \
         AND auth_method = 'scram-sha-256'",
    );
    assert_eq!(
        rule[0].get::<_, i64>(0),
        1,
        "run tests/postgres/setup.sh: it adds the role usersync_pw_test with a password rule"
    );
    let err =
        PgStore::open(&with_user(&b.url(""), "usersync_pw_test", "wrong-pw-x1")).expect_err("wrong password");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        text.contains("password authentication failed") && text.contains("usersync_pw_test"),
        "{text}"
    );
    assert!(text.contains("****") && !text.contains("wrong-pw-x1"), "{text}");
    let err = PgStore::open_read_only(&with_user(&b.url(""), "usersync_pw_test", "wrong-pw-x1"))
        .expect_err("wrong password, read-only");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}

#[test]
fn a_read_only_database_is_refused_with_a_clear_error_and_nothing_written() {
    let Some(b) = backend("read_only_db") else { return };
    let ro = b.url("&options=-c%20default_transaction_read_only%3Don");
    // a new store cannot be created there
    let err = PgStore::open(&ro).expect_err("read-only, empty");
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // an existing store opens, but no run can begin
    drop(b.handle());
    let before = b.fingerprint();
    let mut s = PgStore::open(&ro).expect("existing store");
    let err = s.begin_run("c", 1).expect_err("read-only");
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("point [store] url at the primary"),
        "{err}"
    );
    assert_eq!(b.fingerprint(), before);
}

#[test]
fn a_connection_lost_during_an_apply_is_a_clear_error_and_loses_nothing() {
    let Some(b) = backend("lost_connection") else {
        return;
    };
    let mut s = b.handle();
    let run = s.begin_run("c", 1).expect("run");
    s.apply(
        "c",
        run,
        &[Change::PutUser(Arc::new(user("u1", "ada")))],
        &outcome(),
        1,
    )
    .expect("first run");
    let before = s.state("c").expect("state");
    let run = s.begin_run("c", 2).expect("run");
    // hold the connection's advisory lock so that the apply waits inside its transaction, then
    // end that session from the server side (as a failover or a DBA would)
    let mut blocker = postgres::Client::connect(
        &std::env::var("USERSYNC_TEST_POSTGRES").expect("url"),
        postgres::NoTls,
    )
    .expect("blocker");
    blocker
        .execute(
            "SELECT pg_advisory_lock($1, hashtext('c'))",
            &[&schema::LOCK_CLASS],
        )
        .expect("lock");
    let schema = b.schema.clone();
    let killer = std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(
            &std::env::var("USERSYNC_TEST_POSTGRES").expect("url"),
            postgres::NoTls,
        )
        .expect("admin");
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            let n = admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 \
                     AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'",
                    &[&schema],
                )
                .expect("terminate");
            if n > 0 {
                return true;
            }
        }
        false
    });
    let err = s
        .apply(
            "c",
            run,
            &[
                Change::PutUser(Arc::new(user("u2", "bob"))),
                Change::DeleteUser {
                    provider_id: "u1".into(),
                },
            ],
            &outcome(),
            3,
        )
        .expect_err("the session was terminated");
    assert!(
        killer.join().expect("killer"),
        "the apply's session was found and ended"
    );
    let text = err.to_string();
    assert!(
        text.contains("connection to the database was lost") && text.contains("nothing of it was applied"),
        "{text}"
    );
    drop(blocker);
    // the pool replaces the dead connection: the store is as it was, and the run may apply again
    assert_eq!(s.state("c").expect("state"), before);
    s.apply(
        "c",
        run,
        &[Change::PutUser(Arc::new(user("u2", "bob")))],
        &outcome(),
        4,
    )
    .expect("applies after the connection came back");
    assert_eq!(s.users(None).expect("users").len(), 2);
}

#[test]
fn a_sqlite_store_is_copied_and_verified_and_a_non_empty_destination_refused() {
    let Some(b) = backend("copy_store") else { return };
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    {
        let mut s = SqliteStore::open(&path).expect("sqlite");
        let run = s.begin_run("c", 1).expect("run");
        let mut changes: Vec<Change> = (0..50)
            .map(|i| Change::PutUser(Arc::new(user(&format!("u{i}"), &format!("user{i}")))))
            .collect();
        changes.push(Change::PutGroup(Box::new(crate::conformance::group("g", "All"))));
        changes.push(Change::AddMembership(StoredMembership {
            group: "g".into(),
            member: Member::User("u1".into()),
        }));
        changes.push(Change::PutPhoto(Box::new(StoredPhoto {
            user: "u1".into(),
            content_type: "image/png".into(),
            sha256: "ab".into(),
            bytes: Some(vec![0, 1, 2, 255]),
            version: None,
        })));
        s.apply("c", run, &changes, &outcome(), 2).expect("apply");
        // POSIX numbers of the LDAP view, one of them gone since: the copy keeps the numbers, and
        // the next one continues after the highest ever handed out
        let keys: Vec<PosixKey> = ["u1", "u2", "u3"]
            .iter()
            .map(|p| (PosixKind::User, "c".to_string(), p.to_string()))
            .collect();
        s.allocate_posix_ids(&keys).expect("posix");
        s.connection()
            .execute("DELETE FROM posix_ids WHERE number = 3", [])
            .expect("delete");
    }
    let report = copy_store(&path, &b.url(""), false).expect("copy");
    assert_eq!(
        report.tables.iter().find(|t| t.table == "users").map(|t| t.rows),
        Some(50)
    );
    assert!(!report.to.contains("password"));
    let sqlite = SqliteStore::open_read_only(&path).expect("sqlite");
    let mut pg = b.handle();
    assert_eq!(
        pg.state("c").expect("pg state"),
        sqlite.state("c").expect("sqlite state")
    );
    assert_eq!(
        pg.runs(None, 10).expect("runs"),
        sqlite.runs(None, 10).expect("runs")
    );
    assert_eq!(
        pg.photo("c", "u1").expect("photo").and_then(|p| p.bytes),
        Some(vec![0, 1, 2, 255])
    );
    let posix = pg.read_directory(true, false).expect("directory").posix;
    assert_eq!(
        posix,
        sqlite.read_directory(true, false).expect("directory").posix
    );
    assert_eq!(posix.len(), 2);
    let u4 = (PosixKind::User, "c".to_string(), "u4".to_string());
    pg.allocate_posix_ids(std::slice::from_ref(&u4)).expect("posix");
    assert_eq!(pg.read_directory(true, false).expect("directory").posix[&u4], 4);
    // run ids continue after the copied ones (they are fencing tokens)
    let next = pg.begin_run("c", 3).expect("run");
    assert!(next > sqlite.runs(None, 1).expect("runs")[0].id);
    pg.finish_run(next, &outcome(), 4).expect("finish");
    let err = copy_store(&path, &b.url(""), false).expect_err("not empty");
    assert!(err.to_string().contains("--replace"), "{err}");
    assert_eq!(
        pg.runs(None, 10).expect("runs").len(),
        2,
        "the refused copy changed nothing"
    );
    copy_store(&path, &b.url(""), true).expect("replace");
    assert_eq!(pg.runs(None, 10).expect("runs").len(), 1);
}

#[test]
fn a_lease_is_held_renewed_taken_over_after_expiry_and_fences_a_late_leader() {
    let Some(b) = backend("lease") else { return };
    let mut a = b.handle();
    let mut other = b.handle();
    let ttl = Duration::from_millis(700);
    let la = a
        .lease_acquire("serve", "host-a:1", ttl)
        .expect("acquire")
        .expect("free");
    assert_eq!(la.token, 1);
    assert_eq!(
        other.lease_acquire("serve", "host-b:2", ttl).expect("acquire"),
        None,
        "held"
    );
    assert_eq!(
        a.lease_acquire("serve", "host-a:1", ttl).expect("again"),
        Some(la.clone()),
        "own: same token"
    );
    assert!(a.lease_renew(&la, ttl).expect("renew"));
    // a is fenced by its lease; b waits for the lease to expire (a "paused"), then takes it over
    a.set_fence(Some(la.clone()));
    let run = a.begin_run("c", 1).expect("run");
    std::thread::sleep(Duration::from_millis(900));
    let lb = other
        .lease_acquire("serve", "host-b:2", ttl)
        .expect("acquire")
        .expect("expired: taken over");
    assert_eq!(lb.token, 2);
    assert!(!a.lease_renew(&la, ttl).expect("renew"), "a lost its lease");
    let err = a
        .apply(
            "c",
            run,
            &[Change::PutUser(Arc::new(user("u1", "ada")))],
            &outcome(),
            2,
        )
        .expect_err("a late leader cannot commit");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
    assert!(
        err.to_string().contains("host-b:2") && err.to_string().contains("token 2"),
        "{err}"
    );
    assert!(
        other.users(None).expect("users").is_empty(),
        "nothing of the fenced apply"
    );
    // the new leader applies; releasing hands the lease over at once, with the next token
    other.set_fence(Some(lb.clone()));
    let run = other.begin_run("c", 3).expect("takes the run lock over");
    other
        .apply(
            "c",
            run,
            &[Change::PutUser(Arc::new(user("u1", "ada")))],
            &outcome(),
            4,
        )
        .expect("leader applies");
    other.lease_release(&lb).expect("release");
    let la2 = a
        .lease_acquire("serve", "host-a:1", ttl)
        .expect("acquire")
        .expect("released");
    assert_eq!(la2.token, 3);
    // an expired own lease is not resurrected with its old token
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        a.lease_acquire("serve", "host-a:1", ttl)
            .expect("again")
            .map(|l| l.token),
        Some(4)
    );
}
