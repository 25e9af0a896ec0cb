//! SQLite backend.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use usersync_model::{GroupKind, UserState};

use crate::types::*;
use crate::{LinkRow, RunHolder, Store, StoreError};

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
];

/// The oldest schema version the reading commands can read as it is (later versions only added
/// what a sync needs); an older store must be migrated by a sync first.
pub const OLDEST_READABLE: u32 = 2;

/// How long a lock held from another host is honoured without news from it (its process cannot
/// be checked from here): after this, the next run takes it over with a warning.
pub const FOREIGN_LOCK_STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The SQLite directory store.
pub struct SqliteStore {
    conn: Connection,
    /// The store file (`:memory:` for in-memory stores), for error messages.
    path: PathBuf,
    /// How long [`Store::begin_run`] waits for a connection another run holds.
    lock_wait: Duration,
    /// Runs begun through this handle that still hold their connection's lock.
    own_runs: HashSet<i64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// The effective uid, and whether this process may write `dir` (by its mode bits and owner; root
/// may write anything that is not on a read-only file system).
fn may_write(dir: &Path) -> (Option<u32>, Option<bool>) {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default()
    };
    let Some(&uid) = field("Uid:").get(1) else {
        return (None, None);
    };
    let gids: Vec<u32> = field("Gid:")
        .into_iter()
        .skip(1)
        .take(1)
        .chain(field("Groups:"))
        .collect();
    let Ok(meta) = std::fs::metadata(dir) else {
        return (Some(uid), None);
    };
    let mode = meta.mode();
    let writable = uid == 0
        || (meta.uid() == uid && mode & 0o200 != 0)
        || (meta.uid() != uid && gids.contains(&meta.gid()) && mode & 0o020 != 0)
        || (meta.uid() != uid && !gids.contains(&meta.gid()) && mode & 0o002 != 0);
    (Some(uid), Some(writable))
}

/// Why `path` cannot be written, and the fix, for a write that SQLite refused.
fn not_writable(path: &Path, sqlite: &str) -> StoreError {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (uid, dir_ok) = may_write(&dir);
    let who = uid
        .map(|u| format!("uid {u}"))
        .unwrap_or_else(|| "this user".into());
    // opening for writing (no truncation, no write) changes nothing in the file
    let file_ok = !path.exists() || std::fs::OpenOptions::new().write(true).open(path).is_ok();
    let detail = match (dir_ok, file_ok) {
        (Some(false), _) => format!(
            "the directory `{}` is not writable by {who} (SQLite creates `{name}-wal` and `{name}-shm` \
             beside the store); make the directory{} writable by {who} (e.g. `chown {} {}`), or run \
             usersync as their owner",
            dir.display(),
            if file_ok { "" } else { " and the store file" },
            uid.map(|u| u.to_string()).unwrap_or_else(|| "<user>".into()),
            if file_ok {
                format!("{}", dir.display())
            } else {
                format!("{} {}", dir.display(), path.display())
            },
        ),
        (_, false) => format!(
            "the file is not writable by {who}; make it writable by {who} (e.g. `chown {} {}`), or run \
             usersync as its owner",
            uid.map(|u| u.to_string()).unwrap_or_else(|| "<user>".into()),
            path.display()
        ),
        _ => format!(
            "SQLite said `{sqlite}` (is the file system read-only, or are `{name}-wal`/`{name}-shm` owned by \
             another user?)"
        ),
    };
    StoreError::NotWritable {
        path: display(path),
        detail,
    }
}

/// Turn SQLite's permission and corruption errors into errors that name the store and the fix.
fn explain(path: &Path, e: StoreError) -> StoreError {
    let StoreError::Db(db) = &e else {
        return e;
    };
    match code(db) {
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            not_writable(path, &db.to_string())
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Damaged {
            path: display(path),
            detail: db.to_string(),
        },
        _ => e,
    }
}

/// `file:` URI of a path (percent-encoding what a URI would read differently).
fn file_uri(path: &Path, query: &str) -> String {
    let mut out = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' | b' ' | 0..=0x1f | 0x7f..=0xff => out.push_str(&format!("%{b:02X}")),
            _ => out.push(*b as char),
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Open `path` read-only, without writing anything into it or changing its journal mode. A store
/// in WAL mode needs its `-shm` file; when that cannot be created (the directory is not writable)
/// and there is no unfinished WAL, the file is opened `immutable` instead (nobody may be writing
/// it then anyway: a writer needs the same directory).
fn open_read_only_conn(path: &Path) -> Result<Connection, StoreError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = |uri: String| -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(uri, flags).map_err(|e| StoreError::Open {
            path: display(path),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    };
    let conn = open(file_uri(path, "mode=ro"))?;
    let probe: Result<i64, rusqlite::Error> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    match probe {
        Ok(_) => Ok(conn),
        Err(e) if matches!(code(&e), Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)) => {
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            if std::fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false) {
                return Err(not_writable(path, &e.to_string()));
            }
            tracing::info!(path = %path.display(), "store opened immutable: its -shm file cannot be created");
            drop(conn);
            open(file_uri(path, "mode=ro&immutable=1"))
        }
        Err(e) => Err(explain(path, StoreError::Db(e))),
    }
}

fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Check an existing store before anything writes to it: its schema version must be one this
/// usersync knows and `PRAGMA quick_check` must pass. Read-only: the file is left as it was.
fn preflight(path: &Path) -> Result<(), StoreError> {
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

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
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

impl SqliteStore {
    /// Open (creating if needed) a store file for a sync, and migrate it to the latest schema.
    ///
    /// An existing file is checked read-only first: a newer schema version
    /// ([`StoreError::TooNew`]) or a failed integrity check ([`StoreError::Damaged`]) is refused
    /// before anything is written to it. Opening and migrating are safe when several processes
    /// do it at once (each migration step runs in an immediate transaction that re-reads the
    /// version).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: display(path),
                reason: format!("cannot create its directory `{}`: {e}", dir.display()),
            })?;
        }
        if std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false) {
            preflight(path)?;
        }
        let conn = Connection::open(path).map_err(|e| match code(&e) {
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                not_writable(path, &e.to_string())
            }
            _ => StoreError::Open {
                path: display(path),
                reason: e.to_string(),
            },
        })?;
        configure(&conn).map_err(|e| explain(path, StoreError::Db(e)))?;
        let mut store = SqliteStore::new(conn, path.to_path_buf());
        store
            .migrate_to(MIGRATIONS.len() as u32)
            .map_err(|e| explain(path, e))?;
        Ok(store)
    }

    /// Open an existing store for reading only (`users`, `groups`, `runs`, `explain`): nothing
    /// is written, not even the journal mode, so a store in a directory this user cannot write is
    /// still readable. Refuses a store of a newer schema version, or one older than
    /// [`OLDEST_READABLE`].
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: display(path),
                reason: "no such file".into(),
            });
        }
        let conn = open_read_only_conn(path)?;
        let found = user_version(&conn).map_err(|e| explain(path, StoreError::Db(e)))?;
        let supported = MIGRATIONS.len() as u32;
        if found > supported {
            return Err(StoreError::TooNew {
                path: display(path),
                found,
                supported,
            });
        }
        if found < OLDEST_READABLE {
            return Err(StoreError::NeedsUpgrade {
                path: display(path),
                found,
                supported,
            });
        }
        Ok(SqliteStore::new(conn, path.to_path_buf()))
    }

    /// An in-memory store (tests).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = SqliteStore::new(conn, PathBuf::from(":memory:"));
        store.migrate_to(MIGRATIONS.len() as u32)?;
        Ok(store)
    }

    fn new(conn: Connection, path: PathBuf) -> SqliteStore {
        SqliteStore {
            conn,
            path,
            lock_wait: Duration::ZERO,
            own_runs: HashSet::new(),
        }
    }

    /// How long [`Store::begin_run`] waits for a connection held by another live run before
    /// failing with [`StoreError::Held`] (default: not at all).
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(user_version(&self.conn)?)
    }

    /// Apply the migrations up to `target`, each in its own immediate transaction with its
    /// version bump; the version is read inside the transaction, so two processes migrating
    /// at once apply each step once (the second waits, then finds it done).
    pub fn migrate_to(&mut self, target: u32) -> Result<(), StoreError> {
        let supported = MIGRATIONS.len() as u32;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = user_version(&tx)?;
            if current > supported {
                return Err(StoreError::TooNew {
                    path: display(&self.path),
                    found: current,
                    supported,
                });
            }
            if current >= target.min(supported) {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[current as usize])?;
            tx.pragma_update(None, "user_version", current + 1)?;
            tx.commit()?;
            tracing::info!(version = current + 1, "store migrated");
        }
    }

    /// The raw connection (tests and diagnostics).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn apply_inner(
        &mut self,
        connection: &str,
        run_id: i64,
        changes: &[Change],
        outcome: &RunOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _span = tracing::info_span!("store_apply", connection, run_id, changes = changes.len()).entered();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Fencing: only the run that holds the connection applies, so the plan was made against
        // the state it is applied to (the lock was taken before the store was read).
        let holder: Option<(i64, u32, String, i64)> = tx
            .query_row(
                "SELECT run_id, pid, host, since_ms FROM run_locks WHERE connection = ?1",
                [connection],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        match holder {
            Some((id, ..)) if id == run_id => {}
            other => {
                let now = other
                    .map(|(run_id, pid, host, since_ms)| {
                        format!(
                            "it is held by {}",
                            RunHolder {
                                run_id,
                                pid,
                                host,
                                since_ms
                            }
                        )
                    })
                    .unwrap_or_else(|| "its lock was released".into());
                return Err(StoreError::Fenced {
                    connection: connection.to_string(),
                    run_id,
                    now,
                });
            }
        }
        let mut ordered: Vec<&Change> = changes.iter().collect();
        ordered.sort_by_key(|c| phase(c));
        // Renames may swap usernames between users: park every renamed user's key first.
        for c in &ordered {
            if let Change::PutUser(u) = c {
                tx.prepare_cached(
                    "UPDATE users SET username_key = char(1) || id WHERE connection = ?1 AND provider_id = ?2 \
                     AND username_key <> ?3",
                )?
                .execute(params![connection, u.provider_id, username_key(&u.username)])?;
            }
        }
        for c in ordered {
            apply_change(&tx, connection, c, now_ms)?;
        }
        write_outcome(&tx, run_id, outcome, now_ms)?;
        tx.execute("DELETE FROM run_locks WHERE run_id = ?1", [run_id])?;
        tx.commit()?;
        self.own_runs.remove(&run_id);
        Ok(())
    }

    fn finish_run_inner(&mut self, run_id: i64, outcome: &RunOutcome, now_ms: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_outcome(&tx, run_id, outcome, now_ms)?;
        tx.execute("DELETE FROM run_locks WHERE run_id = ?1", [run_id])?;
        tx.commit()?;
        self.own_runs.remove(&run_id);
        Ok(())
    }

    fn this_host() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into())
    }

    fn begin_run_inner(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError> {
        let host = Self::this_host();
        let pid = std::process::id();
        let deadline = Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder = tx
                .query_row(
                    "SELECT run_id, pid, host, since_ms, proc_start FROM run_locks WHERE connection = ?1",
                    [connection],
                    |r| {
                        let h = RunHolder {
                            run_id: r.get(0)?,
                            pid: r.get(1)?,
                            host: r.get(2)?,
                            since_ms: r.get(3)?,
                        };
                        Ok((h, r.get::<_, Option<i64>>(4)?))
                    },
                )
                .optional()?;
            if let Some((h, proc_start)) = holder {
                if holder_alive(&self.own_runs, &h, proc_start, &host, now_ms()) {
                    drop(tx);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(StoreError::Held {
                            connection: connection.to_string(),
                            holder: h,
                        });
                    }
                    if !told {
                        tracing::info!(connection, holder = %h, "waiting for the connection's run lock");
                        told = true;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(200)));
                    continue;
                }
                if !self.own_runs.remove(&h.run_id) {
                    tracing::warn!(
                        connection,
                        "taking over the run lock of {h}: that process is gone; its run is recorded as \
                         interrupted"
                    );
                }
            }
            tx.execute(
                "UPDATE runs SET status = 'interrupted' WHERE connection = ?1 AND status = 'running'",
                [connection],
            )?;
            tx.execute(
                "INSERT INTO runs (connection, started_ms, status) VALUES (?1, ?2, 'running')",
                params![connection, started_ms],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT OR REPLACE INTO run_locks (connection, run_id, pid, host, since_ms, proc_start) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    connection,
                    id,
                    pid,
                    host,
                    now_ms(),
                    proc_stat(pid).map(|(_, start)| start)
                ],
            )?;
            tx.commit()?;
            self.own_runs.insert(id);
            return Ok(id);
        }
    }
}

/// Whether the holder of a lock may still be running: on this host, its pid is alive (not a
/// zombie) and started when the holder did; from another host, it took the lock less than
/// [`FOREIGN_LOCK_STALE_AFTER`] ago.
fn holder_alive(
    own_runs: &HashSet<i64>,
    h: &RunHolder,
    proc_start: Option<i64>,
    host: &str,
    now: i64,
) -> bool {
    if own_runs.contains(&h.run_id) {
        // begun through this very handle and never finished: abandoned by its caller
        return false;
    }
    if h.host == host && proc_stat(std::process::id()).is_some() {
        return match proc_stat(h.pid) {
            // gone, or a zombie nobody has reaped yet
            None | Some(('Z' | 'X', _)) => false,
            // a reused pid belongs to a process that started later
            Some((_, start)) => proc_start.is_none_or(|s| s == start),
        };
    }
    now.saturating_sub(h.since_ms) < FOREIGN_LOCK_STALE_AFTER.as_millis() as i64
}

/// State and start time (clock ticks after boot) of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, i64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: fields 3.. follow the last `)`
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let start = rest.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn state_str(s: UserState) -> &'static str {
    match s {
        UserState::Active => "active",
        UserState::Disabled => "disabled",
        UserState::Locked => "locked",
        UserState::Staged => "staged",
        UserState::Deprovisioned => "deprovisioned",
    }
}

fn parse_state(s: &str) -> Result<UserState, StoreError> {
    Ok(match s {
        "active" => UserState::Active,
        "disabled" => UserState::Disabled,
        "locked" => UserState::Locked,
        "staged" => UserState::Staged,
        "deprovisioned" => UserState::Deprovisioned,
        other => return Err(StoreError::Corrupt(format!("unknown user state `{other}`"))),
    })
}

fn kind_str(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Group => "group",
        GroupKind::Role => "role",
    }
}

fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

const USER_COLS: &str =
    "connection, provider_id, username, email, display_name, given_name, family_name, active, \
                         state, status_raw, manager, attributes, inactive_reason";

type RawUser = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn decode_user(u: RawUser) -> Result<StoredUser, StoreError> {
    Ok(StoredUser {
        connection: u.0,
        provider_id: u.1,
        username: u.2,
        email: u.3,
        display_name: u.4,
        given_name: u.5,
        family_name: u.6,
        active: u.7,
        state: parse_state(&u.8)?,
        status_raw: u.9,
        manager: u.10.as_deref().map(|m| json(m, "manager")).transpose()?,
        attributes: json(&u.11, "user attributes")?,
        inactive_reason: u.12,
    })
}

type RawGroup = (String, String, String, String, String, Option<String>, String);

fn decode_group(g: RawGroup) -> Result<StoredGroup, StoreError> {
    Ok(StoredGroup {
        connection: g.0,
        provider_id: g.1,
        name: g.2,
        source_name: g.3,
        kind: match g.4.as_str() {
            "group" => GroupKind::Group,
            "role" => GroupKind::Role,
            other => return Err(StoreError::Corrupt(format!("unknown group kind `{other}`"))),
        },
        description: g.5,
        attributes: json(&g.6, "group attributes")?,
    })
}

const GROUP_COLS: &str = "connection, provider_id, name, source_name, kind, description, attributes";

fn read_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawGroup> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn user_ref(tx: &Transaction<'_>, connection: &str, pid: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT id FROM users WHERE connection = ?1 AND provider_id = ?2")?
        .query_row(params![connection, pid], |r| r.get(0))
        .optional()?)
}

fn group_ref(tx: &Transaction<'_>, connection: &str, pid: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT id FROM groups WHERE connection = ?1 AND provider_id = ?2")?
        .query_row(params![connection, pid], |r| r.get(0))
        .optional()?)
}

fn missing(what: &str, pid: &str) -> StoreError {
    StoreError::Corrupt(format!("change refers to unknown {what} `{pid}`"))
}

fn phase(c: &Change) -> u8 {
    match c {
        Change::RemoveEffective { .. } | Change::RemoveMembership(_) | Change::RemovePhoto { .. } => 0,
        Change::DeleteUser { .. } | Change::DeleteGroup { .. } => 1,
        Change::PutGroup(_) | Change::PutUser(_) => 2,
        Change::AddMembership(_) | Change::PutEffective(_) | Change::PutPhoto(_) => 3,
    }
}

fn apply_change(tx: &Transaction<'_>, connection: &str, c: &Change, now: i64) -> Result<(), StoreError> {
    match c {
        Change::PutUser(u) => {
            tx.prepare_cached(
                "INSERT INTO users (connection, provider_id, username, username_key, email, display_name, \
                 given_name, family_name, active, state, status_raw, manager, attributes, inactive_reason, \
                 created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15) \
                 ON CONFLICT (connection, provider_id) DO UPDATE SET username = excluded.username, \
                 username_key = excluded.username_key, email = excluded.email, display_name = excluded.display_name, \
                 given_name = excluded.given_name, family_name = excluded.family_name, active = excluded.active, \
                 state = excluded.state, status_raw = excluded.status_raw, manager = excluded.manager, \
                 attributes = excluded.attributes, inactive_reason = excluded.inactive_reason, \
                 updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                    connection,
                    u.provider_id,
                    u.username,
                    username_key(&u.username),
                    u.email,
                    u.display_name,
                    u.given_name,
                    u.family_name,
                    u.active,
                    state_str(u.state),
                    u.status_raw,
                    u.manager.as_ref().map(to_json),
                    to_json(&u.attributes),
                    u.inactive_reason,
                    now,
                ])?;
        }
        Change::DeleteUser { provider_id } => {
            tx.execute(
                "DELETE FROM users WHERE connection = ?1 AND provider_id = ?2",
                params![connection, provider_id],
            )?;
        }
        Change::PutGroup(g) => {
            tx.execute(
                "INSERT INTO groups (connection, provider_id, name, source_name, kind, description, attributes, \
                 created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                 ON CONFLICT (connection, provider_id) DO UPDATE SET name = excluded.name, \
                 source_name = excluded.source_name, kind = excluded.kind, description = excluded.description, \
                 attributes = excluded.attributes, updated_ms = excluded.updated_ms",
                params![
                    connection,
                    g.provider_id,
                    g.name,
                    g.source_name,
                    kind_str(g.kind),
                    g.description,
                    to_json(&g.attributes),
                    now
                ],
            )?;
        }
        Change::DeleteGroup { provider_id } => {
            tx.execute(
                "DELETE FROM groups WHERE connection = ?1 AND provider_id = ?2",
                params![connection, provider_id],
            )?;
        }
        Change::AddMembership(m) | Change::RemoveMembership(m) => {
            let add = matches!(c, Change::AddMembership(_));
            let Some(g) = group_ref(tx, connection, &m.group)? else {
                return if add {
                    Err(missing("group", &m.group))
                } else {
                    Ok(())
                };
            };
            let (table, col, member) = match &m.member {
                Member::User(u) => ("user_memberships", "user_ref", user_ref(tx, connection, u)?),
                Member::Group(cg) => ("group_memberships", "child_ref", group_ref(tx, connection, cg)?),
            };
            let Some(member) = member else {
                return if add {
                    Err(missing("member", &format!("{:?}", m.member)))
                } else {
                    Ok(())
                };
            };
            let sql = if add {
                format!("INSERT OR IGNORE INTO {table} (group_ref, {col}) VALUES (?1, ?2)")
            } else {
                format!("DELETE FROM {table} WHERE group_ref = ?1 AND {col} = ?2")
            };
            tx.prepare_cached(&sql)?.execute(params![g, member])?;
        }
        Change::PutEffective(e) => {
            let g = group_ref(tx, connection, &e.group)?.ok_or_else(|| missing("group", &e.group))?;
            let u = user_ref(tx, connection, &e.user)?.ok_or_else(|| missing("user", &e.user))?;
            tx.prepare_cached(
                "INSERT INTO effective_memberships (group_ref, user_ref, path) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (group_ref, user_ref) DO UPDATE SET path = excluded.path",
            )?
            .execute(params![g, u, to_json(&e.path)])?;
        }
        Change::RemoveEffective { group, user } => {
            if let (Some(g), Some(u)) = (group_ref(tx, connection, group)?, user_ref(tx, connection, user)?) {
                tx.execute(
                    "DELETE FROM effective_memberships WHERE group_ref = ?1 AND user_ref = ?2",
                    params![g, u],
                )?;
            }
        }
        Change::PutPhoto(p) => {
            let u = user_ref(tx, connection, &p.user)?.ok_or_else(|| missing("user", &p.user))?;
            tx.execute(
                "INSERT INTO photos (user_ref, content_type, sha256, bytes, version) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (user_ref) DO UPDATE SET content_type = excluded.content_type, \
                 sha256 = excluded.sha256, bytes = excluded.bytes, version = excluded.version",
                params![u, p.content_type, p.sha256, p.bytes, p.version],
            )?;
        }
        Change::RemovePhoto { user } => {
            if let Some(u) = user_ref(tx, connection, user)? {
                tx.execute("DELETE FROM photos WHERE user_ref = ?1", params![u])?;
            }
        }
    }
    Ok(())
}

fn write_outcome(conn: &Connection, run_id: i64, o: &RunOutcome, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET finished_ms = ?2, status = ?3, counts = ?4, errors = ?5, plan = ?6, requests = ?7, \
         source_users = ?8 WHERE id = ?1",
        params![
            run_id,
            now,
            o.status.as_str(),
            to_json(&o.counts),
            to_json(&o.errors),
            to_json(&o.plan),
            o.requests as i64,
            o.source_users.map(|n| n as i64)
        ],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn state(&self, connection: &str) -> Result<ConnectionState, StoreError> {
        let mut memberships = Vec::new();
        let mut effective = Vec::new();
        let mut st = self.state_streaming(connection, &mut |row| {
            match row {
                LinkRow::Direct(m) => memberships.push(m.clone()),
                LinkRow::Effective {
                    group,
                    user,
                    path_json,
                } => effective.push(EffectiveMembership {
                    group: group.to_string(),
                    user: user.to_string(),
                    path: json(path_json, "membership path")?,
                }),
            }
            Ok(())
        })?;
        memberships.sort();
        effective.sort();
        st.memberships = memberships;
        st.effective = effective;
        Ok(st)
    }

    fn state_streaming(
        &self,
        connection: &str,
        link: &mut dyn FnMut(LinkRow<'_>) -> Result<(), StoreError>,
    ) -> Result<ConnectionState, StoreError> {
        let mut st = ConnectionState::default();
        let mut q = self.conn.prepare(&format!(
            "SELECT {USER_COLS} FROM users WHERE connection = ?1 ORDER BY provider_id"
        ))?;
        for u in q.query_map([connection], read_user)? {
            st.users.push(decode_user(u?)?);
        }
        let mut q = self.conn.prepare(&format!(
            "SELECT {GROUP_COLS} FROM groups WHERE connection = ?1 ORDER BY provider_id"
        ))?;
        for g in q.query_map([connection], read_group)? {
            st.groups.push(decode_group(g?)?);
        }
        let mut q = self.conn.prepare(
            "SELECT g.provider_id, u.provider_id FROM user_memberships m JOIN groups g ON g.id = m.group_ref \
             JOIN users u ON u.id = m.user_ref WHERE g.connection = ?1",
        )?;
        let mut rows = q.query([connection])?;
        while let Some(r) = rows.next()? {
            link(LinkRow::Direct(&StoredMembership {
                group: r.get(0)?,
                member: Member::User(r.get(1)?),
            }))?;
        }
        drop(rows);
        let mut q = self.conn.prepare(
            "SELECT g.provider_id, c.provider_id FROM group_memberships m JOIN groups g ON g.id = m.group_ref \
             JOIN groups c ON c.id = m.child_ref WHERE g.connection = ?1",
        )?;
        let mut rows = q.query([connection])?;
        while let Some(r) = rows.next()? {
            link(LinkRow::Direct(&StoredMembership {
                group: r.get(0)?,
                member: Member::Group(r.get(1)?),
            }))?;
        }
        drop(rows);
        let mut q = self.conn.prepare(
            "SELECT g.provider_id, u.provider_id, e.path FROM effective_memberships e \
             JOIN groups g ON g.id = e.group_ref JOIN users u ON u.id = e.user_ref WHERE g.connection = ?1",
        )?;
        let mut rows = q.query([connection])?;
        while let Some(r) = rows.next()? {
            let group = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let user = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let path_json = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            link(LinkRow::Effective {
                group,
                user,
                path_json,
            })?;
        }
        drop(rows);
        let mut q = self.conn.prepare(
            "SELECT u.provider_id, p.content_type, p.sha256 FROM photos p JOIN users u ON u.id = p.user_ref \
             WHERE u.connection = ?1 ORDER BY u.provider_id",
        )?;
        for r in q.query_map([connection], |r| {
            Ok(StoredPhoto {
                user: r.get(0)?,
                content_type: r.get(1)?,
                sha256: r.get(2)?,
                bytes: None,
                version: None,
            })
        })? {
            st.photos.push(r?);
        }
        Ok(st)
    }

    fn username_holders(&self) -> Result<Vec<UsernameHolder>, StoreError> {
        let mut q = self.conn.prepare(
            "SELECT username_key, connection, provider_id, username FROM users ORDER BY username_key",
        )?;
        let rows = q.query_map([], |r| {
            Ok(UsernameHolder {
                key: r.get(0)?,
                connection: r.get(1)?,
                provider_id: r.get(2)?,
                username: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn begin_run(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError> {
        let path = self.path.clone();
        self.begin_run_inner(connection, started_ms)
            .map_err(|e| explain(&path, e))
    }

    fn apply(
        &mut self,
        connection: &str,
        run_id: i64,
        changes: &[Change],
        outcome: &RunOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.apply_inner(connection, run_id, changes, outcome, now_ms)
            .map_err(|e| explain(&path, e))
    }

    fn finish_run(&mut self, run_id: i64, outcome: &RunOutcome, now_ms: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.finish_run_inner(run_id, outcome, now_ms)
            .map_err(|e| explain(&path, e))
    }

    fn last_source_users(&self, connection: &str) -> Result<Option<u64>, StoreError> {
        let v: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT source_users FROM runs WHERE connection = ?1 AND status = 'applied' \
                 AND source_users IS NOT NULL ORDER BY id DESC LIMIT 1",
                [connection],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.flatten().map(|n| n.max(0) as u64))
    }

    fn runs(&self, connection: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut q = self.conn.prepare(
            "SELECT id, connection, started_ms, finished_ms, status, counts, errors, '{}', requests, source_users \
             FROM runs WHERE (?1 IS NULL OR connection = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![connection, limit as i64], read_run)?;
        rows.map(|r| decode_run(r?)).collect()
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let raw = self
            .conn
            .query_row(
                "SELECT id, connection, started_ms, finished_ms, status, counts, errors, plan, requests, \
                 source_users FROM runs WHERE id = ?1",
                [id],
                read_run,
            )
            .optional()?;
        raw.map(decode_run).transpose()
    }

    fn users(&self, connection: Option<&str>) -> Result<Vec<StoredUser>, StoreError> {
        let mut q = self.conn.prepare(&format!(
            "SELECT {USER_COLS} FROM users WHERE (?1 IS NULL OR connection = ?1) ORDER BY username_key"
        ))?;
        let rows = q.query_map([connection], read_user)?;
        rows.map(|r| decode_user(r?)).collect()
    }

    fn groups(&self, connection: Option<&str>) -> Result<Vec<StoredGroup>, StoreError> {
        let mut q = self.conn.prepare(&format!(
            "SELECT {GROUP_COLS} FROM groups WHERE (?1 IS NULL OR connection = ?1) ORDER BY lower(name), connection"
        ))?;
        let rows = q.query_map([connection], read_group)?;
        rows.map(|r| decode_group(r?)).collect()
    }

    fn photo_versions(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut q = self.conn.prepare(
            "SELECT u.provider_id, p.version FROM photos p JOIN users u ON u.id = p.user_ref \
             WHERE u.connection = ?1 AND p.version IS NOT NULL",
        )?;
        let rows = q.query_map([connection], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = BTreeMap::new();
        for r in rows {
            let (user, version) = r?;
            out.insert(user, version);
        }
        Ok(out)
    }

    fn photo(&self, connection: &str, user: &str) -> Result<Option<StoredPhoto>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT u.provider_id, p.content_type, p.sha256, p.bytes FROM photos p \
                 JOIN users u ON u.id = p.user_ref WHERE u.connection = ?1 AND u.provider_id = ?2",
                params![connection, user],
                |r| {
                    Ok(StoredPhoto {
                        user: r.get(0)?,
                        content_type: r.get(1)?,
                        sha256: r.get(2)?,
                        bytes: r.get(3)?,
                        // read by `photo_versions` only (reading commands may see a schema without it)
                        version: None,
                    })
                },
            )
            .optional()?)
    }
}

type RawRun = (
    i64,
    String,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

fn read_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn decode_run(r: RawRun) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: r.0,
        connection: r.1,
        started_ms: r.2,
        finished_ms: r.3,
        status: RunStatus::parse(&r.4)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{}`", r.4)))?,
        counts: json(&r.5, "run counts")?,
        errors: json(&r.6, "run errors")?,
        plan: json(&r.7, "run plan")?,
        requests: r.8.max(0) as u64,
        source_users: r.9.map(|n| n.max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
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
                assert!(
                    s.users(None).expect("users").is_empty() && s.runs(None, 1).expect("runs").is_empty()
                );
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
}
