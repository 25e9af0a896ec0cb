//! The schema: migrations, the versions the commands can read, and the read-only checks of an
//! existing file before anything writes to it.

use super::*;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied. Never edit a
/// released entry: add a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: directory and run history
    r#"
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL,
        email TEXT,
        display_name TEXT,
        given_name TEXT,
        family_name TEXT,
        active INTEGER NOT NULL,
        state TEXT NOT NULL,
        status_raw TEXT NOT NULL,
        manager TEXT,
        attributes TEXT NOT NULL,
        inactive_reason TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        UNIQUE (connection, provider_id)
    );
    CREATE UNIQUE INDEX users_username_key ON users (username_key);
    CREATE INDEX users_email ON users (lower(email));
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        name TEXT NOT NULL,
        source_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        description TEXT,
        attributes TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        UNIQUE (connection, provider_id)
    );
    CREATE TABLE user_memberships (
        group_ref INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_ref INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (group_ref, user_ref)
    ) WITHOUT ROWID;
    CREATE INDEX user_memberships_user ON user_memberships (user_ref);
    CREATE TABLE group_memberships (
        group_ref INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        child_ref INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        PRIMARY KEY (group_ref, child_ref)
    ) WITHOUT ROWID;
    CREATE TABLE effective_memberships (
        group_ref INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_ref INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        PRIMARY KEY (group_ref, user_ref)
    ) WITHOUT ROWID;
    CREATE INDEX effective_memberships_user ON effective_memberships (user_ref);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        connection TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        status TEXT NOT NULL,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        plan TEXT NOT NULL DEFAULT '{}',
        requests INTEGER NOT NULL DEFAULT 0,
        source_users INTEGER
    );
    "#,
    // 2: photos, run lookup by connection
    r#"
    CREATE TABLE photos (
        user_ref INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        content_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes BLOB
    );
    CREATE INDEX runs_connection ON runs (connection, id);
    "#,
    // 3: one run per connection at a time (see `Store::begin_run`)
    r#"
    CREATE TABLE run_locks (
        connection TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        -- the holder process's start time (/proc/<pid>/stat), so a reused pid is not mistaken for it
        proc_start INTEGER
    );
    "#,
    // 4: the provider's version (ETag) of a stored photo, so an unchanged photo is not fetched again
    r#"
    ALTER TABLE photos ADD COLUMN version TEXT;
    "#,
    // push (issue 19): what usersync created or adopted in each target, and what it pushed
    // (IF NOT EXISTS: safe whatever number this step ends up with among concurrent additions)
    r#"
    CREATE TABLE IF NOT EXISTS target_objects (
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        source_key TEXT NOT NULL,
        app_id TEXT NOT NULL,
        etag TEXT,
        hash TEXT,
        origin TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (target, kind, source_key)
    );
    CREATE TABLE IF NOT EXISTS target_members (
        target TEXT NOT NULL,
        group_key TEXT NOT NULL,
        user_key TEXT NOT NULL,
        PRIMARY KEY (target, group_key, user_key)
    ) WITHOUT ROWID;
    "#,
    // LDAP view (issue 23): POSIX numbers (uidNumber/gidNumber), allocated once per object and
    // never reused (AUTOINCREMENT; rows are kept when their object goes)
    r#"
    CREATE TABLE IF NOT EXISTS posix_ids (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        UNIQUE (kind, connection, provider_id)
    );
    "#,
    // incremental sync (issue 21): change-feed watermarks and the source copy they apply to,
    // written in the transaction of the run that read them
    r#"
    CREATE TABLE IF NOT EXISTS feed_watermarks (
        connection TEXT NOT NULL,
        feed TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (connection, feed)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS feed_objects (
        connection TEXT NOT NULL,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (connection, kind, id)
    ) WITHOUT ROWID;
    "#,
];

/// The oldest schema version the reading commands can read as it is (later versions only added
/// what a sync needs); an older store must be migrated by a sync first.
pub const OLDEST_READABLE: u32 = 2;

/// How long a lock held from another host is honoured without news from it (its process cannot
/// be checked from here): after this, the next run takes it over with a warning.
pub const FOREIGN_LOCK_STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

pub(super) fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Check an existing store before anything writes to it: its schema version must be one this
/// usersync knows and `PRAGMA quick_check` must pass. Read-only: the file is left as it was.
pub(super) fn preflight(path: &Path) -> Result<(), StoreError> {
    let _span = tracing::info_span!("store_check", path = %path.display()).entered();
    let conn = open_read_only_conn(path)?;
    let damaged = |detail: String| StoreError::Damaged {
        path: display(path),
        detail,
    };
    let found = user_version(&conn).map_err(|e| explain(path, StoreError::Db(e)))?;
    let supported = MIGRATIONS.len() as u32;
    if found > supported {
        return Err(StoreError::TooNew {
            path: display(path),
            found,
            supported,
        });
    }
    let mut q = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| explain(path, StoreError::Db(e)))?;
    let findings: Vec<String> = q
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| explain(path, StoreError::Db(e)))?;
    if findings != ["ok"] {
        return Err(damaged(format!("integrity check: {}", findings.join("; "))));
    }
    Ok(())
}

pub(super) fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    // first, so that every later statement waits for a concurrent opener instead of failing
    conn.busy_timeout(Duration::from_secs(30))?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // switching needs a moment alone with the file: retry while another opener holds it
        let mut tries = 0;
        loop {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
                Err(e) if code(&e) == Some(ErrorCode::DatabaseBusy) && tries < 300 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
