//! Unit tests of what only the SQLite backend has (the store file, its journal, its versions);
//! the behaviour every backend shares is checked by the conformance suite (`crate::conformance`).
use super::*;

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
fn a_read_only_open_of_a_missing_file_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    assert!(matches!(
        SqliteStore::open_read_only(&dir.path().join("missing.db")),
        Err(StoreError::Open { .. })
    ));
    assert!(!dir.path().join("missing.db").exists(), "nothing was created");
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
