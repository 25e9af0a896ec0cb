//! SQLite backend: [`SqliteStore`] and its [`Store`] implementation. The schema, the file's
//! opening rules, the run lock, the row codecs and the writing of a run's changes live in the
//! submodules.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use usersync_model::{GroupKind, UserState};

use crate::types::*;
use crate::{LinkRow, RunHolder, Store, StoreError};

mod apply;
pub(crate) mod codec;
mod files;
pub(crate) mod locks;
mod posix;
mod schema;
mod targets;
#[cfg(test)]
mod tests;

use apply::*;
use codec::*;
use files::*;
use locks::*;
pub use posix::{DirectoryLinks, PosixKey, PosixKind};
use schema::*;
pub use schema::{FOREIGN_LOCK_STALE_AFTER, MIGRATIONS, OLDEST_READABLE};

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

    pub(crate) fn this_host() -> String {
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

    fn watermarks(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT feed, value FROM feed_watermarks WHERE connection = ?1")?;
        let rows = q.query_map([connection], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<BTreeMap<String, String>, rusqlite::Error>>()?)
    }

    fn source_objects(
        &self,
        connection: &str,
        each: &mut dyn FnMut(SourceObject) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT kind, id, body FROM feed_objects WHERE connection = ?1")?;
        let mut rows = q.query([connection])?;
        while let Some(r) = rows.next()? {
            each(SourceObject {
                kind: r.get(0)?,
                id: r.get(1)?,
                body: r.get(2)?,
            })?;
        }
        Ok(())
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

    fn target_state(&self, target: &str) -> Result<crate::TargetState, StoreError> {
        self.target_state_inner(target)
    }

    fn write_target(&mut self, target: &str, writes: &[crate::TargetWrite]) -> Result<(), StoreError> {
        self.write_target_inner(target, writes)
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
