//! PostgreSQL backend: [`PgStore`], the same [`Store`] semantics as SQLite for several hosts
//! sharing one database. One transaction per applied run; run locks in a table, taken and
//! checked (fencing) under a per-connection advisory transaction lock; versioned migrations;
//! a connection pool (r2d2) with rustls TLS.
//!
//! The synchronous `postgres` client drives a small tokio runtime of its own, which must not run
//! inside another runtime's thread (the host calls the store from async code): every call runs
//! on a short-lived scoped thread ([`off_runtime`]), and the pool is dropped on one too.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::sqlite::codec::{decode_group, decode_run, decode_user, json, kind_str, state_str, to_json};
use crate::sqlite::locks::now_ms;
use crate::types::*;
use crate::{LinkRow, RunHolder, SqliteStore, Store, StoreError};

mod apply;
mod copy;
mod feed;
mod lease;
mod posix;
mod schema;
mod target;
mod targets;
#[cfg(test)]
mod tests;

pub use copy::{copy_store, CopyReport, TableCheck};
pub use lease::Lease;
pub use schema::PG_MIGRATIONS;
use target::Target;
pub use target::{is_postgres_url, mask_url};

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// Connections in the pool of one store handle.
const POOL_SIZE: u32 = 4;

/// Run `f` on a scoped thread outside any tokio runtime (see the module doc).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The PostgreSQL directory store.
pub struct PgStore {
    target: Target,
    pool: Option<Pool>,
    /// A connection held for as long as this handle holds run locks: its backend (pid and start
    /// time in `pg_stat_activity`) is how other hosts see that the holder is alive.
    presence: Option<Client>,
    lock_wait: Duration,
    own_runs: HashSet<i64>,
    /// The lease every apply checks (see [`PgStore::set_fence`]).
    fence: Option<Lease>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.target.masked)
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let (pool, presence) = (self.pool.take(), self.presence.take());
        off_runtime(move || drop((pool, presence)));
    }
}

/// A row of a streamed membership read.
enum Link {
    Direct(StoredMembership),
    Effective(String, String, String),
}

impl PgStore {
    /// Open (creating the schema if needed) a store for a sync and migrate it. A newer schema
    /// version is refused ([`StoreError::TooNew`]) before anything is written.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let target = Target::parse(url, false)?;
        let _span = tracing::info_span!("store_open", url = %target.masked).entered();
        let store = Self::connect(target)?;
        store.with_client(|c, t| schema::migrate(c, t, PG_MIGRATIONS.len() as u32))?;
        Ok(store)
    }

    /// Open an existing store for reading only: every transaction is read-only (the server
    /// refuses writes). Refuses a database without a store, or of a newer schema version.
    pub fn open_read_only(url: &str) -> Result<PgStore, StoreError> {
        let target = Target::parse(url, true)?;
        let store = Self::connect(target)?;
        let found = store.schema_version()?;
        let supported = PG_MIGRATIONS.len() as u32;
        if found == 0 {
            return Err(StoreError::Open {
                path: store.target.masked.clone(),
                reason: "there is no usersync store in this database (schema) yet: run `usersync sync` first"
                    .into(),
            });
        }
        if found > supported {
            return Err(StoreError::TooNew {
                path: store.target.masked.clone(),
                found,
                supported,
            });
        }
        Ok(store)
    }

    /// Connect once (so that a wrong password or an unreachable server is reported as it is),
    /// then build the pool around the same settings.
    fn connect(target: Target) -> Result<PgStore, StoreError> {
        let tls = target.connector()?;
        let first = off_runtime(|| target.config.connect(tls.clone()).map_err(|e| target.error(&e)))?;
        let manager = PostgresConnectionManager::new(target.config.clone(), tls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .build_unchecked(manager);
        off_runtime(move || drop(first));
        Ok(PgStore {
            target,
            pool: Some(pool),
            presence: None,
            lock_wait: Duration::ZERO,
            own_runs: HashSet::new(),
            fence: None,
        })
    }

    /// How long [`Store::begin_run`] waits for a connection held by another live run.
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

    /// The store URL with its password masked.
    pub fn url(&self) -> &str {
        &self.target.masked
    }

    /// The schema version of the store (0: none yet).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.with_client(|c, t| schema::version(c).map_err(|e| t.error(&e)))
    }

    /// Apply the migrations up to `target` (tests: build an older store).
    pub fn migrate_to(&mut self, target: u32) -> Result<(), StoreError> {
        self.with_client(|c, t| schema::migrate(c, t, target))
    }

    /// Run `f` with a pooled connection, off the caller's runtime.
    fn with_client<T: Send>(
        &self,
        f: impl FnOnce(&mut Client, &Target) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let (pool, target) = (self.pool.as_ref(), &self.target);
        off_runtime(move || {
            let pool = pool.ok_or_else(|| StoreError::Corrupt("store handle is closed".into()))?;
            let mut c = pool.get().map_err(|e| StoreError::Postgres {
                url: target.masked.clone(),
                detail: format!("no database connection: {e}"),
            })?;
            f(&mut c, target)
        })
    }

    /// Run SQL statements on the store (tests and diagnostics).
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.with_client(|c, t| c.batch_execute(sql).map_err(|e| t.error(&e)))
    }

    /// The presence connection's backend pid and start time, opening it when needed.
    fn presence(&mut self) -> Result<(i32, String), StoreError> {
        let (presence, target) = (&mut self.presence, &self.target);
        off_runtime(move || {
            if presence.as_ref().is_none_or(|c| c.is_closed()) {
                *presence = Some(
                    target
                        .config
                        .connect(target.connector()?)
                        .map_err(|e| target.error(&e))?,
                );
            }
            let c = presence
                .as_mut()
                .ok_or_else(|| StoreError::Corrupt("no presence connection".into()))?;
            let row = c
                .query_one(
                    "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                    &[],
                )
                .map_err(|e| target.error(&e))?;
            Ok((row.get(0), row.get(1)))
        })
    }

    fn begin_run_inner(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError> {
        let host = SqliteStore::this_host();
        let pid = i64::from(std::process::id());
        let deadline = Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            // a presence connection that died (or was terminated) is opened again
            let (backend_pid, backend_start) = self.presence()?;
            let own = self.own_runs.clone();
            // a lease holder (see `set_fence`) is the only leader: a run lock held by anyone else is
            // stale by the lease's decision, and that run's apply is fenced off
            let fence = self.fence.clone();
            let step = self.with_client(|c, t| {
                let mut tx = c.transaction().map_err(|e| t.error(&e))?;
                let r = (|| -> Result<Result<(i64, Option<i64>), RunHolder>, postgres::Error> {
                    tx.execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&schema::LOCK_CLASS, &connection],
                    )?;
                    let holder = tx.query_opt(
                        "SELECT l.run_id, l.pid, l.host, l.since_ms, EXISTS (SELECT 1 FROM pg_stat_activity a \
                         WHERE a.pid = l.backend_pid AND a.backend_start::text = l.backend_start) \
                         FROM run_locks l WHERE l.connection = $1",
                        &[&connection],
                    )?;
                    let mut taken = None;
                    if let Some(r) = holder {
                        let h = RunHolder {
                            run_id: r.get(0),
                            pid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                            host: r.get(2),
                            since_ms: r.get(3),
                        };
                        let alive: bool = r.get(4);
                        // a live holder is taken over only by the lease's current holder
                        let leader = match &fence {
                            Some(l) if alive => lease::check(&mut tx, l, connection, 0, false)?
                                .is_ok()
                                .then_some((l.name.as_str(), l.token)),
                            _ => None,
                        };
                        if alive && !own.contains(&h.run_id) && leader.is_none() {
                            return Ok(Err(h));
                        }
                        taken = Some(h.run_id);
                        match (leader, alive) {
                            _ if own.contains(&h.run_id) => {}
                            (Some((lease, token)), true) => tracing::warn!(
                                connection,
                                "taking over the run lock of {h}: its process is still connected to the \
                                 database, but this host holds the lease `{lease}` now (token {token}), so that \
                                 run is stale: it is recorded as interrupted, and its apply will be refused"
                            ),
                            _ => tracing::warn!(
                                connection,
                                "taking over the run lock of {h}: its database session is gone (its process \
                                 ended or lost the database); its run is recorded as interrupted"
                            ),
                        }
                    }
                    tx.execute(
                        "UPDATE runs SET status = 'interrupted' WHERE connection = $1 AND status = 'running'",
                        &[&connection],
                    )?;
                    let id: i64 = tx
                        .query_one(
                            "INSERT INTO runs (connection, started_ms, status) VALUES ($1, $2, 'running') RETURNING id",
                            &[&connection, &started_ms],
                        )?
                        .get(0);
                    tx.execute(
                        "INSERT INTO run_locks (connection, run_id, pid, host, since_ms, backend_pid, backend_start) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (connection) DO UPDATE SET \
                         run_id = excluded.run_id, pid = excluded.pid, host = excluded.host, \
                         since_ms = excluded.since_ms, backend_pid = excluded.backend_pid, \
                         backend_start = excluded.backend_start",
                        &[&connection, &id, &pid, &host, &now_ms(), &backend_pid, &backend_start],
                    )?;
                    Ok(Ok((id, taken)))
                })()
                .map_err(|e| t.error(&e))?;
                if r.is_ok() {
                    tx.commit().map_err(|e| t.error(&e))?;
                }
                Ok(r)
            })?;
            match step {
                Ok((id, taken)) => {
                    if let Some(taken) = taken {
                        self.own_runs.remove(&taken);
                    }
                    self.own_runs.insert(id);
                    return Ok(id);
                }
                Err(h) => {
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
                }
            }
        }
    }
}

fn user_row(r: &postgres::Row) -> Result<StoredUser, StoreError> {
    decode_user((
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
        r.get(12),
    ))
}

fn group_row(r: &postgres::Row) -> Result<StoredGroup, StoreError> {
    decode_group((
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
    ))
}

fn run_row(r: &postgres::Row) -> Result<RunRecord, StoreError> {
    decode_run((
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
    ))
}

const USER_COLS: &str =
    "connection, provider_id, username, email, display_name, given_name, family_name, active, \
                         state, status_raw, manager, attributes, inactive_reason";
const GROUP_COLS: &str = "connection, provider_id, name, source_name, kind, description, attributes";
const RUN_COLS: &str =
    "id, connection, started_ms, finished_ms, status, counts, errors, plan, requests, source_users";

impl Store for PgStore {
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
        let _span = tracing::info_span!("store_read", connection).entered();
        let (tx_rows, rx_rows) = std::sync::mpsc::sync_channel::<Link>(4096);
        std::thread::scope(|s| {
            let (pool, t) = (self.pool.as_ref(), &self.target);
            let reader = s.spawn(move || {
                let pool = pool.ok_or_else(|| StoreError::Corrupt("store handle is closed".into()))?;
                let mut c = pool.get().map_err(|e| StoreError::Postgres {
                    url: t.masked.clone(),
                    detail: format!("no database connection: {e}"),
                })?;
                let mut tx = c
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(|e| t.error(&e))?;
                let mut st = ConnectionState::default();
                let db = |e: postgres::Error| t.error(&e);
                for r in tx
                    .query(
                        &format!("SELECT {USER_COLS} FROM users WHERE connection = $1 ORDER BY provider_id COLLATE \"C\""),
                        &[&connection],
                    )
                    .map_err(db)?
                {
                    st.users.push(user_row(&r)?);
                }
                for r in tx
                    .query(
                        &format!("SELECT {GROUP_COLS} FROM groups WHERE connection = $1 ORDER BY provider_id COLLATE \"C\""),
                        &[&connection],
                    )
                    .map_err(db)?
                {
                    st.groups.push(group_row(&r)?);
                }
                let params: [&(dyn ToSql + Sync); 1] = [&connection];
                let queries = [
                    "SELECT g.provider_id, u.provider_id, NULL::text FROM user_memberships m JOIN groups g ON g.id = m.group_ref \
                     JOIN users u ON u.id = m.user_ref WHERE g.connection = $1",
                    "SELECT g.provider_id, c.provider_id, NULL::text FROM group_memberships m JOIN groups g ON g.id = m.group_ref \
                     JOIN groups c ON c.id = m.child_ref WHERE g.connection = $1",
                    "SELECT g.provider_id, u.provider_id, e.path FROM effective_memberships e \
                     JOIN groups g ON g.id = e.group_ref JOIN users u ON u.id = e.user_ref WHERE g.connection = $1",
                ];
                for (i, q) in queries.iter().enumerate() {
                    let mut rows = tx.query_raw(*q, params.iter().copied()).map_err(db)?;
                    while let Some(r) = rows.next().map_err(db)? {
                        let (g, m): (String, String) = (r.get(0), r.get(1));
                        let row = match i {
                            0 => Link::Direct(StoredMembership { group: g, member: Member::User(m) }),
                            1 => Link::Direct(StoredMembership { group: g, member: Member::Group(m) }),
                            _ => Link::Effective(g, m, r.get(2)),
                        };
                        if tx_rows.send(row).is_err() {
                            // the reader stopped (its callback failed): so do we
                            return Ok(st);
                        }
                    }
                }
                drop(tx_rows);
                for r in tx
                    .query(
                        "SELECT u.provider_id, p.content_type, p.sha256 FROM photos p JOIN users u ON u.id = p.user_ref \
                         WHERE u.connection = $1 ORDER BY u.provider_id COLLATE \"C\"",
                        &[&connection],
                    )
                    .map_err(db)?
                {
                    st.photos.push(StoredPhoto {
                        user: r.get(0),
                        content_type: r.get(1),
                        sha256: r.get(2),
                        bytes: None,
                        version: None,
                    });
                }
                tx.commit().map_err(db)?;
                Ok(st)
            });
            let mut failed = None;
            for row in rx_rows.iter() {
                let r = match &row {
                    Link::Direct(m) => link(LinkRow::Direct(m)),
                    Link::Effective(group, user, path_json) => link(LinkRow::Effective {
                        group,
                        user,
                        path_json,
                    }),
                };
                if let Err(e) = r {
                    failed = Some(e);
                    break;
                }
            }
            drop(rx_rows);
            let st = match reader.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            match failed {
                Some(e) => Err(e),
                None => st,
            }
        })
    }

    fn username_holders(&self) -> Result<Vec<UsernameHolder>, StoreError> {
        self.with_client(|c, t| {
            let rows = c
                .query(
                    "SELECT username_key, connection, provider_id, username FROM users ORDER BY username_key COLLATE \"C\"",
                    &[],
                )
                .map_err(|e| t.error(&e))?;
            Ok(rows
                .iter()
                .map(|r| UsernameHolder {
                    key: r.get(0),
                    connection: r.get(1),
                    provider_id: r.get(2),
                    username: r.get(3),
                })
                .collect())
        })
    }

    fn begin_run(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError> {
        self.begin_run_inner(connection, started_ms)
    }

    fn apply(
        &mut self,
        connection: &str,
        run_id: i64,
        changes: &[Change],
        outcome: &RunOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _span = tracing::info_span!("store_apply", connection, run_id, changes = changes.len()).entered();
        let fence = self.fence.as_ref();
        self.with_client(|c, t| {
            let db = |e: postgres::Error| t.error(&e);
            let mut tx = c.transaction().map_err(db)?;
            if let Some(lease) = fence {
                // a leader that lost its lease is refused before it writes anything; one paused
                // inside this transaction is ended by the server (see lease::idle_limit)
                lease::limit_idle(&mut tx, lease).map_err(db)?;
                lease::check(&mut tx, lease, connection, run_id, false).map_err(db)??;
            }
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&schema::LOCK_CLASS, &connection],
            )
            .map_err(db)?;
            // Only the run that holds the connection applies (checked under the lock that
            // begin_run takes, so no other run can take the connection before this commits).
            // Under a lease, the lease's token (below) is the guard: a new leader takes the run
            // lock of a live but stale holder over.
            let holder = tx
                .query_opt(
                    "SELECT run_id, pid, host, since_ms FROM run_locks WHERE connection = $1",
                    &[&connection],
                )
                .map_err(db)?;
            match holder {
                Some(r) if r.get::<_, i64>(0) == run_id => {}
                other => {
                    let now = other
                        .map(|r| {
                            let h = RunHolder {
                                run_id: r.get(0),
                                pid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                                host: r.get(2),
                                since_ms: r.get(3),
                            };
                            format!("it is held by {h}")
                        })
                        .unwrap_or_else(|| "its lock was released".into());
                    return Err(StoreError::Fenced {
                        connection: connection.to_string(),
                        run_id,
                        now,
                    });
                }
            }
            apply::apply_changes(&mut tx, connection, changes, now_ms).map_err(|e| match e {
                apply::ApplyError::Db(e) => db(e),
                apply::ApplyError::Store(e) => e,
            })?;
            apply::write_outcome(&mut tx, run_id, outcome, now_ms).map_err(db)?;
            tx.execute("DELETE FROM run_locks WHERE run_id = $1", &[&run_id])
                .map_err(db)?;
            if let Some(lease) = fence {
                // the fencing token, checked with the lease row locked until the commit
                lease::check(&mut tx, lease, connection, run_id, true).map_err(db)??;
            }
            tx.commit().map_err(db)
        })?;
        self.own_runs.remove(&run_id);
        Ok(())
    }

    fn finish_run(&mut self, run_id: i64, outcome: &RunOutcome, now_ms: i64) -> Result<(), StoreError> {
        self.with_client(|c, t| {
            let db = |e: postgres::Error| t.error(&e);
            let mut tx = c.transaction().map_err(db)?;
            apply::write_outcome(&mut tx, run_id, outcome, now_ms).map_err(db)?;
            tx.execute("DELETE FROM run_locks WHERE run_id = $1", &[&run_id])
                .map_err(db)?;
            tx.commit().map_err(db)
        })?;
        self.own_runs.remove(&run_id);
        Ok(())
    }

    fn last_source_users(&self, connection: &str) -> Result<Option<u64>, StoreError> {
        self.with_client(|c, t| {
            let r = c
                .query_opt(
                    "SELECT source_users FROM runs WHERE connection = $1 AND status = 'applied' \
                     AND source_users IS NOT NULL ORDER BY id DESC LIMIT 1",
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            Ok(r.and_then(|r| r.get::<_, Option<i64>>(0))
                .map(|n| n.max(0) as u64))
        })
    }

    fn runs(&self, connection: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.with_client(|c, t| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c
                .query(
                    "SELECT id, connection, started_ms, finished_ms, status, counts, errors, '{}', requests, \
                     source_users FROM runs WHERE ($1::text IS NULL OR connection = $1) ORDER BY id DESC LIMIT $2",
                    &[&connection, &limit],
                )
                .map_err(|e| t.error(&e))?;
            rows.iter().map(run_row).collect()
        })
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.with_client(|c, t| {
            let r = c
                .query_opt(&format!("SELECT {RUN_COLS} FROM runs WHERE id = $1"), &[&id])
                .map_err(|e| t.error(&e))?;
            r.as_ref().map(run_row).transpose()
        })
    }

    fn users(&self, connection: Option<&str>) -> Result<Vec<StoredUser>, StoreError> {
        self.with_client(|c, t| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {USER_COLS} FROM users WHERE ($1::text IS NULL OR connection = $1) \
                         ORDER BY username_key COLLATE \"C\""
                    ),
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            rows.iter().map(user_row).collect()
        })
    }

    fn groups(&self, connection: Option<&str>) -> Result<Vec<StoredGroup>, StoreError> {
        self.with_client(|c, t| {
            let rows = c
                .query(
                    &format!(
                        "SELECT {GROUP_COLS} FROM groups WHERE ($1::text IS NULL OR connection = $1) \
                         ORDER BY lower(name) COLLATE \"C\", connection COLLATE \"C\""
                    ),
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            rows.iter().map(group_row).collect()
        })
    }

    fn photo(&self, connection: &str, user: &str) -> Result<Option<StoredPhoto>, StoreError> {
        self.with_client(|c, t| {
            let r = c
                .query_opt(
                    "SELECT u.provider_id, p.content_type, p.sha256, p.bytes FROM photos p \
                     JOIN users u ON u.id = p.user_ref WHERE u.connection = $1 AND u.provider_id = $2",
                    &[&connection, &user],
                )
                .map_err(|e| t.error(&e))?;
            Ok(r.map(|r| StoredPhoto {
                user: r.get(0),
                content_type: r.get(1),
                sha256: r.get(2),
                bytes: r.get(3),
                version: None,
            }))
        })
    }

    fn target_state(&self, target: &str) -> Result<crate::TargetState, StoreError> {
        self.with_client(|c, t| targets::read(c, t, target))
    }

    fn write_target(&mut self, target: &str, writes: &[crate::TargetWrite]) -> Result<(), StoreError> {
        self.with_client(|c, t| targets::write(c, t, target, writes))
    }

    fn watermarks(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.feed_watermarks(connection)
    }

    fn source_objects(
        &self,
        connection: &str,
        each: &mut dyn FnMut(SourceObject) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.feed_objects(connection, each)
    }

    fn photo_versions(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.with_client(|c, t| {
            let rows = c
                .query(
                    "SELECT u.provider_id, p.version FROM photos p JOIN users u ON u.id = p.user_ref \
                     WHERE u.connection = $1 AND p.version IS NOT NULL",
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}
