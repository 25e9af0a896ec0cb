//! The PostgreSQL schema: migrations, kept in a one-row table `usersync_schema`, applied under
//! an advisory lock so that several hosts opening one database at once apply each step once.

use postgres::Client;

use super::Target;
use crate::StoreError;

/// PostgreSQL migrations, in order; `usersync_schema.version` is the number applied. Never edit
/// a released entry: add a new one. Version 1 holds what SQLite's versions 1 to 4 hold, without
/// foreign keys: their per-row checks made bulk link inserts six times slower (200,000 rows: 9.9 s
/// against 1.6 s), so the apply keeps references whole itself (a link to a missing user or group is
/// refused before it is written; deleting a user or group deletes its links, effective rows and
/// photo in the same statement).
pub const PG_MIGRATIONS: &[&str] = &[
    // 1: directory, photos, run history, run locks
    r#"
    CREATE TABLE users (
        id BIGSERIAL PRIMARY KEY,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL,
        email TEXT,
        display_name TEXT,
        given_name TEXT,
        family_name TEXT,
        active BOOLEAN NOT NULL,
        state TEXT NOT NULL,
        status_raw TEXT NOT NULL,
        manager TEXT,
        attributes TEXT NOT NULL,
        inactive_reason TEXT,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        UNIQUE (connection, provider_id)
    );
    CREATE UNIQUE INDEX users_username_key ON users (username_key);
    CREATE INDEX users_email ON users (lower(email));
    CREATE TABLE groups (
        id BIGSERIAL PRIMARY KEY,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        name TEXT NOT NULL,
        source_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        description TEXT,
        attributes TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        UNIQUE (connection, provider_id)
    );
    CREATE TABLE user_memberships (
        group_ref BIGINT NOT NULL,
        user_ref BIGINT NOT NULL,
        PRIMARY KEY (group_ref, user_ref)
    );
    CREATE INDEX user_memberships_user ON user_memberships (user_ref);
    CREATE TABLE group_memberships (
        group_ref BIGINT NOT NULL,
        child_ref BIGINT NOT NULL,
        PRIMARY KEY (group_ref, child_ref)
    );
    CREATE INDEX group_memberships_child ON group_memberships (child_ref);
    CREATE TABLE effective_memberships (
        group_ref BIGINT NOT NULL,
        user_ref BIGINT NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (group_ref, user_ref)
    );
    CREATE INDEX effective_memberships_user ON effective_memberships (user_ref);
    CREATE TABLE photos (
        user_ref BIGINT PRIMARY KEY,
        content_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes BYTEA,
        version TEXT
    );
    CREATE TABLE runs (
        id BIGSERIAL PRIMARY KEY,
        connection TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        finished_ms BIGINT,
        status TEXT NOT NULL,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        plan TEXT NOT NULL DEFAULT '{}',
        requests BIGINT NOT NULL DEFAULT 0,
        source_users BIGINT
    );
    CREATE INDEX runs_connection ON runs (connection, id);
    -- the holder's liveness is its presence connection (backend pid and start) in pg_stat_activity
    CREATE TABLE run_locks (
        connection TEXT PRIMARY KEY,
        run_id BIGINT NOT NULL,
        pid BIGINT NOT NULL,
        host TEXT NOT NULL,
        since_ms BIGINT NOT NULL,
        backend_pid INTEGER NOT NULL,
        backend_start TEXT NOT NULL
    );
    "#,
    // 2: per-target state of `usersync push` (SQLite's version 5)
    r#"
    CREATE TABLE target_objects (
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        source_key TEXT NOT NULL,
        app_id TEXT NOT NULL,
        etag TEXT,
        hash TEXT,
        origin TEXT NOT NULL,
        active BOOLEAN NOT NULL DEFAULT true,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (target, kind, source_key)
    );
    CREATE TABLE target_members (
        target TEXT NOT NULL,
        group_key TEXT NOT NULL,
        user_key TEXT NOT NULL,
        PRIMARY KEY (target, group_key, user_key)
    );
    "#,
    // 3: leases (leader election of `usersync serve` on several hosts), see `PgStore::lease_acquire`
    r#"
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    "#,
    // LDAP view (issue 23, SQLite's posix_ids): POSIX numbers (uidNumber/gidNumber) from one
    // sequence, allocated once per object and never reused (rows are kept when their object goes);
    // IF NOT EXISTS: safe whatever number this step gets
    r#"
    CREATE TABLE IF NOT EXISTS posix_ids (
        number BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        connection TEXT NOT NULL,
        provider_id TEXT NOT NULL,
        UNIQUE (kind, connection, provider_id)
    );
    "#,
    // incremental sync (issue 21): change-feed watermarks and the source copy they apply to,
    // written in the apply transaction of the run that read them; IF NOT EXISTS: safe whatever
    // number this step gets
    r#"
    CREATE TABLE IF NOT EXISTS feed_watermarks (
        connection TEXT NOT NULL,
        feed TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (connection, feed)
    );
    CREATE TABLE IF NOT EXISTS feed_objects (
        connection TEXT NOT NULL,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (connection, kind, id)
    );
    "#,
];

/// Advisory lock class of the store's transaction-scoped locks (second key: the connection's
/// `hashtext`, or 0 for migrations).
pub(super) const LOCK_CLASS: i32 = 0x7573_7379; // "usy"
/// Advisory lock class of migrations.
pub(super) const MIGRATE_CLASS: i32 = 0x7573_736d; // "usm"

/// The schema version of the store in the client's search path (0: no store there yet).
pub(super) fn version(c: &mut impl postgres::GenericClient) -> Result<u32, postgres::Error> {
    // a query of pg_class (the statement's snapshot), not to_regclass (the catalog cache, which an
    // advisory lock does not refresh: a concurrent migrator's commit could go unseen)
    let exists: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid = c.relnamespace WHERE c.relname = 'usersync_schema' AND n.nspname = current_schema())",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = c
        .query_one("SELECT max(version) FROM usersync_schema", &[])?
        .get(0);
    Ok(v.unwrap_or(0).max(0) as u32)
}

/// Check the version read-only, then apply the missing migrations, each in its own transaction
/// with its version bump, under an advisory lock (the version is read again inside it).
pub(super) fn migrate(c: &mut Client, t: &Target, target: u32) -> Result<(), StoreError> {
    let supported = PG_MIGRATIONS.len() as u32;
    let too_new = |found| StoreError::TooNew {
        path: t.masked.clone(),
        found,
        supported,
    };
    let found = version(c).map_err(|e| t.error(&e))?;
    if found > supported {
        return Err(too_new(found));
    }
    if found >= target.min(supported) {
        return Ok(());
    }
    loop {
        let mut tx = c.transaction().map_err(|e| t.error(&e))?;
        let step = (|| -> Result<Option<u32>, postgres::Error> {
            tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&MIGRATE_CLASS])?;
            if let Some(schema) = &t.schema {
                // only when missing: creating needs CREATE on the database, using a made one does not
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                        &[schema],
                    )?
                    .get(0);
                if !exists {
                    // checked to be letters, digits and underscores by Target::parse
                    tx.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
                }
            }
            let current = version(&mut tx)?;
            if current > supported || current >= target.min(supported) {
                return Ok(Some(current));
            }
            tx.batch_execute(PG_MIGRATIONS[current as usize])?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS usersync_schema (version INTEGER NOT NULL)")?;
            tx.execute("DELETE FROM usersync_schema", &[])?;
            tx.execute(
                "INSERT INTO usersync_schema (version) VALUES ($1)",
                &[&(current as i32 + 1)],
            )?;
            Ok(None)
        })()
        .map_err(|e| t.error(&e))?;
        match step {
            Some(current) if current > supported => return Err(too_new(current)),
            Some(_) => return Ok(()),
            None => {
                tx.commit().map_err(|e| t.error(&e))?;
                tracing::info!(url = %t.masked, "store migrated");
            }
        }
    }
}
