//! SQLite backend.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use usersync_model::{GroupKind, UserState};

use crate::types::*;
use crate::{LinkRow, Store, StoreError};

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
];

/// The SQLite directory store.
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish()
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) a store file and migrate it to the latest schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        configure(&conn)?;
        let mut store = SqliteStore { conn };
        store.migrate_to(MIGRATIONS.len() as u32)?;
        Ok(store)
    }

    /// An in-memory store (tests).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = SqliteStore { conn };
        store.migrate_to(MIGRATIONS.len() as u32)?;
        Ok(store)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Apply the migrations up to `target` (each in its own transaction with its version bump).
    pub fn migrate_to(&mut self, target: u32) -> Result<(), StoreError> {
        let current = self.schema_version()?;
        let supported = MIGRATIONS.len() as u32;
        if current > supported {
            return Err(StoreError::TooNew {
                found: current,
                supported,
            });
        }
        for version in current..target.min(supported) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
            tracing::info!(version = version + 1, "store migrated");
        }
        Ok(())
    }

    /// The raw connection (tests and diagnostics).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
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
                "INSERT INTO photos (user_ref, content_type, sha256, bytes) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_ref) DO UPDATE SET content_type = excluded.content_type, \
                 sha256 = excluded.sha256, bytes = excluded.bytes",
                params![u, p.content_type, p.sha256, p.bytes],
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE runs SET status = 'interrupted' WHERE connection = ?1 AND status = 'running'",
            [connection],
        )?;
        tx.execute(
            "INSERT INTO runs (connection, started_ms, status) VALUES (?1, ?2, 'running')",
            params![connection, started_ms],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
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
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
        tx.commit()?;
        Ok(())
    }

    fn finish_run(&mut self, run_id: i64, outcome: &RunOutcome, now_ms: i64) -> Result<(), StoreError> {
        write_outcome(&self.conn, run_id, outcome, now_ms)
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
            })),
        ];
        s.apply("c", run, &changes, &outcome(), 2).expect("apply");
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
}
