//! Unit tests of the SQLite backend.
use super::*;
use usersync_model::Attributes;

fn user(pid: &str, name: &str) -> StoredUser {
    StoredUser {
        connection: "c".into(),
        provider_id: pid.into(),
        username: name.into(),
        email: Some(format!("{name}@x")),
        display_name: None,
        given_name: None,
        family_name: None,
        active: true,
        state: UserState::Active,
        status_raw: "ACTIVE".into(),
        manager: None,
        attributes: Attributes::new(),
        inactive_reason: None,
    }
}

fn group(pid: &str, name: &str) -> StoredGroup {
    StoredGroup {
        connection: "c".into(),
        provider_id: pid.into(),
        name: name.into(),
        source_name: name.into(),
        kind: GroupKind::Group,
        description: None,
        attributes: Attributes::new(),
    }
}

fn outcome() -> RunOutcome {
    RunOutcome {
        status: RunStatus::Applied,
        counts: serde_json::json!({}),
        errors: vec![],
        plan: serde_json::json!({}),
        requests: 3,
        source_users: Some(2),
    }
}

#[test]
fn a_change_is_small() {
    assert!(
        std::mem::size_of::<Change>() <= 80,
        "{}",
        std::mem::size_of::<Change>()
    );
}

#[test]
fn migrations_from_empty_and_from_v1_reach_latest_and_reopen_is_noop() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("v1");
        conn.pragma_update(None, "user_version", 1).expect("ver");
        conn.execute(
            "INSERT INTO users (connection, provider_id, username, username_key, active, state, status_raw, \
             attributes, created_ms, updated_ms) VALUES ('c','u1','Ada','ada',1,'active','ACTIVE','{}',0,0)",
            [],
        )
        .expect("row");
    }
    let s = SqliteStore::open(&path).expect("migrate");
    assert_eq!(s.schema_version().expect("v"), MIGRATIONS.len() as u32);
    assert_eq!(s.users(None).expect("users")[0].username, "Ada");
    let mode: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(s.schema_version().expect("v"), MIGRATIONS.len() as u32);
    s.conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(s);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn apply_round_trips_state_and_swaps_usernames() {
    let mut s = SqliteStore::open_in_memory().expect("store");
    let run = s.begin_run("c", 1).expect("run");
    let changes = vec![
        Change::PutUser(std::sync::Arc::new(user("u1", "ada"))),
        Change::PutUser(std::sync::Arc::new(user("u2", "bob"))),
        Change::PutGroup(Box::new(group("g1", "Staff"))),
        Change::PutGroup(Box::new(group("g2", "Eng"))),
        Change::AddMembership(StoredMembership {
            group: "g1".into(),
            member: Member::Group("g2".into()),
        }),
        Change::AddMembership(StoredMembership {
            group: "g2".into(),
            member: Member::User("u1".into()),
        }),
        Change::PutEffective(EffectiveMembership {
            group: "g1".into(),
            user: "u1".into(),
            path: vec!["g2".into(), "g1".into()],
        }),
        Change::PutPhoto(Box::new(StoredPhoto {
            user: "u1".into(),
            content_type: "image/png".into(),
            sha256: "ab".into(),
            bytes: Some(vec![1, 2]),
            version: Some("\"etag-1\"".into()),
        })),
    ];
    s.apply("c", run, &changes, &outcome(), 2).expect("apply");
    assert_eq!(
        s.photo_versions("c").expect("versions"),
        BTreeMap::from([("u1".to_string(), "\"etag-1\"".to_string())])
    );
    let st = s.state("c").expect("state");
    assert_eq!(st.users.len(), 2);
    assert_eq!(st.memberships.len(), 2);
    assert_eq!(st.effective[0].path, vec!["g2".to_string(), "g1".to_string()]);
    // the streaming read hands over the same rows, and the path as the JSON text stored
    let (mut direct, mut effective) = (Vec::new(), Vec::new());
    let rest = s
        .state_streaming("c", &mut |row| {
            match row {
                LinkRow::Direct(m) => direct.push(m.clone()),
                LinkRow::Effective {
                    group,
                    user,
                    path_json,
                } => effective.push((group.to_string(), user.to_string(), path_json.to_string())),
            }
            Ok(())
        })
        .expect("streaming");
    direct.sort();
    assert_eq!(direct, st.memberships);
    assert_eq!(
        effective,
        vec![("g1".to_string(), "u1".to_string(), r#"["g2","g1"]"#.to_string())]
    );
    assert!(rest.memberships.is_empty() && rest.effective.is_empty());
    assert_eq!(
        (rest.users, rest.groups, rest.photos),
        (st.users.clone(), st.groups.clone(), st.photos.clone())
    );
    assert_eq!(
        s.photo("c", "u1").expect("photo").expect("some").bytes,
        Some(vec![1, 2])
    );
    assert_eq!(s.last_source_users("c").expect("n"), Some(2));
    // swap usernames in one run
    let run = s.begin_run("c", 3).expect("run");
    s.apply(
        "c",
        run,
        &[
            Change::PutUser(std::sync::Arc::new(user("u1", "bob"))),
            Change::PutUser(std::sync::Arc::new(user("u2", "ADA"))),
        ],
        &outcome(),
        4,
    )
    .expect("swap");
    let names: Vec<String> = s
        .users(None)
        .expect("u")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, vec!["ADA", "bob"]);
    // deleting a user cascades memberships and photo
    let run = s.begin_run("c", 5).expect("run");
    s.apply(
        "c",
        run,
        &[Change::DeleteUser {
            provider_id: "u1".into(),
        }],
        &outcome(),
        6,
    )
    .expect("delete");
    let st = s.state("c").expect("state");
    assert_eq!(st.memberships.len(), 1);
    assert!(st.effective.is_empty() && st.photos.is_empty());
}

#[test]
fn username_uniqueness_is_enforced_case_and_nfc_insensitively() {
    assert_eq!(username_key("A\u{030A}da"), username_key("\u{00E5}DA"));
    let mut s = SqliteStore::open_in_memory().expect("store");
    let run = s.begin_run("c", 1).expect("run");
    s.apply(
        "c",
        run,
        &[Change::PutUser(std::sync::Arc::new(user("u1", "\u{00C5}da")))],
        &outcome(),
        1,
    )
    .expect("one");
    let run = s.begin_run("c", 2).expect("run");
    let err = s.apply(
        "c",
        run,
        &[Change::PutUser(std::sync::Arc::new(user("u2", "a\u{030A}DA")))],
        &outcome(),
        2,
    );
    assert!(err.is_err());
    assert_eq!(
        s.users(None).expect("u").len(),
        1,
        "failed transaction left nothing behind"
    );
}

#[test]
fn runs_history_and_interrupted_runs() {
    let mut s = SqliteStore::open_in_memory().expect("store");
    let r1 = s.begin_run("c", 1).expect("r1");
    let r2 = s.begin_run("c", 2).expect("r2");
    let mut o = outcome();
    o.status = RunStatus::Blocked;
    o.errors = vec!["too many".into()];
    s.finish_run(r2, &o, 3).expect("finish");
    let runs = s.runs(Some("c"), 10).expect("runs");
    assert_eq!(runs[0].id, r2);
    assert_eq!(runs[0].status, RunStatus::Blocked);
    assert_eq!(runs[1].id, r1);
    assert_eq!(runs[1].status, RunStatus::Interrupted);
    assert_eq!(
        s.run(r2).expect("run").expect("some").errors,
        vec!["too many".to_string()]
    );
    assert_eq!(s.last_source_users("c").expect("n"), None);
}

#[test]
fn concurrent_opens_of_a_new_store_migrate_it_once() {
    for _ in 0..4 {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.db");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteStore::open(&path).map(|s| s.schema_version().ok()))
            })
            .collect();
        for h in handles {
            let v = h.join().expect("thread").expect("open");
            assert_eq!(v, Some(MIGRATIONS.len() as u32));
        }
    }
}

fn held_row(s: &SqliteStore, connection: &str) -> Option<(i64, u32)> {
    s.conn
        .query_row(
            "SELECT run_id, pid FROM run_locks WHERE connection = ?1",
            [connection],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .expect("lock row")
}

#[test]
fn a_held_connection_is_refused_naming_its_holder_and_released_by_finishing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let mut a = SqliteStore::open(&path).expect("a");
    let mut b = SqliteStore::open(&path).expect("b");
    let run = a.begin_run("c", 1).expect("a begins");
    let err = b.begin_run("c", 2).expect_err("b must not begin");
    let text = err.to_string();
    assert!(
        matches!(&err, StoreError::Held { holder, .. } if holder.run_id == run && holder.pid == std::process::id()),
        "{err:?}"
    );
    assert!(
        text.contains(&format!("run {run} (pid {}", std::process::id())),
        "{text}"
    );
    assert_eq!(
        b.runs(Some("c"), 10).expect("runs").len(),
        1,
        "the refused run recorded nothing"
    );
    // another connection is not held
    let other = b.begin_run("d", 2).expect("other connection");
    b.finish_run(other, &outcome(), 3).expect("finish d");
    // waiting: b gets the lock once a finishes
    b.set_lock_wait(Duration::from_secs(60));
    let waiter = std::thread::spawn(move || {
        let id = b.begin_run("c", 4);
        (b, id)
    });
    std::thread::sleep(Duration::from_millis(300));
    a.finish_run(run, &outcome(), 5).expect("finish a");
    let (b, id) = waiter.join().expect("thread");
    let id = id.expect("b begins after a finished");
    assert_eq!(held_row(&b, "c").map(|h| h.0), Some(id));
    assert_eq!(b.run(run).expect("run").expect("a").status, RunStatus::Applied);
}

#[test]
fn a_lock_of_a_dead_process_is_taken_over_and_its_run_cannot_apply() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    let mut a = SqliteStore::open(&path).expect("a");
    let run = a.begin_run("c", 1).expect("a begins");
    // pretend a's process died: a pid that is not alive on this host
    let dead = (100_000u32..4_000_000)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");
    a.conn
        .execute("UPDATE run_locks SET pid = ?1", [dead])
        .expect("fake");
    a.own_runs.clear();
    let mut b = SqliteStore::open(&path).expect("b");
    let taken = b.begin_run("c", 2).expect("takes over");
    assert_eq!(
        b.run(run).expect("run").expect("a").status,
        RunStatus::Interrupted
    );
    // b's process (this one) is alive: another handle must wait for it
    let mut c = SqliteStore::open(&path).expect("c");
    let err = c.begin_run("c", 3).expect_err("b's lock is live");
    assert!(matches!(err, StoreError::Held { .. }), "{err:?}");
    // ... unless the pid was reused by a process that started at another time
    b.conn
        .execute("UPDATE run_locks SET proc_start = -1", [])
        .expect("fake");
    let now = c.begin_run("c", 4).expect("a reused pid is taken over");
    assert_eq!(
        b.run(taken).expect("run").expect("b").status,
        RunStatus::Interrupted
    );
    // a and b wake up: their applies are fenced off, nothing of them is written
    for (store, id) in [(&mut a, run), (&mut b, taken)] {
        let err = store
            .apply(
                "c",
                id,
                &[Change::PutUser(std::sync::Arc::new(user("u1", "ada")))],
                &outcome(),
                5,
            )
            .expect_err("fenced");
        assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("run {now}")), "{err}");
    }
    assert!(c.users(None).expect("users").is_empty());
    c.apply(
        "c",
        now,
        &[Change::PutUser(std::sync::Arc::new(user("u1", "ada")))],
        &outcome(),
        6,
    )
    .expect("the holder applies");
    assert_eq!(held_row(&c, "c"), None, "released by the apply");
    assert_eq!(c.users(None).expect("users").len(), 1);
}

#[test]
fn a_newer_or_damaged_store_is_refused_without_being_modified() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 42;")
            .expect("newer");
    }
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path).expect_err("newer");
    assert!(matches!(err, StoreError::TooNew { found: 42, .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "journal mode or anything else changed"
    );
    let err = SqliteStore::open_read_only(&path).expect_err("newer, read-only");
    assert!(matches!(err, StoreError::TooNew { found: 42, .. }), "{err:?}");

    let path = dir.path().join("d.db");
    std::fs::write(
        &path,
        b"SQLite format 3\0 but then nothing a database would hold, really",
    )
    .expect("garbage");
    let before = std::fs::read(&path).expect("read");
    let err = SqliteStore::open(&path).expect_err("damaged");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert!(std::fs::read(&path).expect("read") == before);
}

#[test]
fn a_read_only_open_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.db");
    {
        let mut s = SqliteStore::open(&path).expect("create");
        let run = s.begin_run("c", 1).expect("run");
        s.apply(
            "c",
            run,
            &[Change::PutUser(std::sync::Arc::new(user("u1", "ada")))],
            &outcome(),
            2,
        )
        .expect("apply");
    }
    let before = std::fs::read(&path).expect("read");
    let mut s = SqliteStore::open_read_only(&path).expect("read-only");
    assert_eq!(s.users(None).expect("users").len(), 1);
    assert!(s.begin_run("c", 3).is_err(), "a read-only store refuses writes");
    drop(s);
    assert!(std::fs::read(&path).expect("read") == before);
    assert!(matches!(
        SqliteStore::open_read_only(&dir.path().join("missing.db")),
        Err(StoreError::Open { .. })
    ));
}

#[test]
fn reading_commands_read_a_store_one_sync_behind_but_not_older() {
    let dir = tempfile::tempdir().expect("dir");
    for version in 1..=MIGRATIONS.len() as u32 {
        let path = dir.path().join(format!("v{version}.db"));
        {
            let conn = Connection::open_in_memory().expect("mem");
            let mut s = SqliteStore::new(conn, PathBuf::from(":memory:"));
            s.migrate_to(version).expect("migrate");
            let file = path.to_string_lossy().replace('\'', "''");
            s.conn
                .execute_batch(&format!("VACUUM INTO '{file}'"))
                .expect("write");
        }
        let r = SqliteStore::open_read_only(&path);
        if version < OLDEST_READABLE {
            assert!(
                matches!(r, Err(StoreError::NeedsUpgrade { found, .. }) if found == version),
                "{r:?}"
            );
        } else {
            let s = r.expect("readable");
            assert!(s.users(None).expect("users").is_empty() && s.runs(None, 1).expect("runs").is_empty());
        }
    }
}

#[test]
fn file_uris_escape_what_a_uri_reads_differently() {
    assert_eq!(
        file_uri(Path::new("/a b/x?y#z%.db"), "mode=ro"),
        "file:/a%20b/x%3Fy%23z%25.db?mode=ro"
    );
}
