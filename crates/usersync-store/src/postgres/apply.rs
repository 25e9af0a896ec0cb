//! Writing one run's changes in PostgreSQL: the changes are grouped by kind and phase (removals,
//! deletions, upserts, links: the order SQLite applies them in) and each group is one statement
//! over arrays (`unnest`), in chunks, so a run of 100,000 users is a few hundred round trips.

use std::collections::HashSet;

use postgres::types::ToSql;
use postgres::Transaction;

use crate::types::*;
use crate::StoreError;

/// Rows per statement.
const CHUNK: usize = 5_000;
/// Upserted users and groups after which the planner's statistics are refreshed.
const ANALYZE_AFTER: usize = 1_000;

/// A failure while applying: the driver's, or a change that refers to nothing.
pub(super) enum ApplyError {
    Db(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for ApplyError {
    fn from(e: postgres::Error) -> Self {
        ApplyError::Db(e)
    }
}

fn missing(what: &str, pid: &str) -> ApplyError {
    ApplyError::Store(StoreError::Corrupt(format!(
        "change refers to unknown {what} `{pid}`"
    )))
}

/// The run's changes, sorted into the statements that write them.
#[derive(Default)]
struct Batches<'a> {
    rm_effective: Vec<(&'a str, &'a str)>,
    rm_user_links: Vec<(&'a str, &'a str)>,
    rm_group_links: Vec<(&'a str, &'a str)>,
    rm_photos: Vec<&'a str>,
    del_users: Vec<&'a str>,
    del_groups: Vec<&'a str>,
    put_groups: Vec<&'a StoredGroup>,
    put_users: Vec<&'a StoredUser>,
    add_user_links: Vec<(&'a str, &'a str)>,
    add_group_links: Vec<(&'a str, &'a str)>,
    put_effective: Vec<(&'a str, &'a str, &'a [String])>,
    put_photos: Vec<&'a StoredPhoto>,
    feed: Vec<&'a Change>,
}

/// Keep the last of each key (an upsert may not touch one row twice in one statement).
fn last_by_key<T: Copy, K: std::hash::Hash + Eq>(v: &mut Vec<T>, key: impl Fn(&T) -> K) {
    let mut seen = HashSet::new();
    let mut out: Vec<T> = v.iter().rev().filter(|x| seen.insert(key(x))).copied().collect();
    out.reverse();
    *v = out;
}

fn sort(changes: &[Change]) -> Result<Batches<'_>, ApplyError> {
    let mut b = Batches::default();
    for c in changes {
        match c {
            Change::PutUser(u) => b.put_users.push(u),
            Change::DeleteUser { provider_id } => b.del_users.push(provider_id),
            Change::PutGroup(g) => b.put_groups.push(g),
            Change::DeleteGroup { provider_id } => b.del_groups.push(provider_id),
            Change::AddMembership(m) | Change::RemoveMembership(m) => {
                let add = matches!(c, Change::AddMembership(_));
                let list = match (&m.member, add) {
                    (Member::User(_), true) => &mut b.add_user_links,
                    (Member::User(_), false) => &mut b.rm_user_links,
                    (Member::Group(_), true) => &mut b.add_group_links,
                    (Member::Group(_), false) => &mut b.rm_group_links,
                };
                let (Member::User(id) | Member::Group(id)) = &m.member;
                list.push((&m.group, id));
            }
            Change::AddLinks(batch) => {
                for link in batch.user_links() {
                    b.add_user_links.push(link.map_err(corrupt)?);
                }
                for e in batch.effective() {
                    b.put_effective.push(e.map_err(corrupt)?);
                }
            }
            Change::PutEffective(e) => b.put_effective.push((&e.group, &e.user, &e.path)),
            Change::RemoveEffective { group, user } => b.rm_effective.push((group, user)),
            Change::PutPhoto(p) => b.put_photos.push(p),
            Change::RemovePhoto { user } => b.rm_photos.push(user),
            Change::ResetFeed
            | Change::PutWatermark { .. }
            | Change::PutSource(_)
            | Change::RemoveSource { .. } => b.feed.push(c),
        }
    }
    last_by_key(&mut b.put_users, |u| u.provider_id.as_str());
    last_by_key(&mut b.put_groups, |g| g.provider_id.as_str());
    last_by_key(&mut b.put_effective, |e| (e.0, e.1));
    last_by_key(&mut b.put_photos, |p| p.user.as_str());
    Ok(b)
}

fn corrupt(e: crate::BadIndex) -> ApplyError {
    ApplyError::Store(StoreError::Corrupt(e.to_string()))
}

fn pairs<'a>(v: &[(&'a str, &'a str)]) -> (Vec<&'a str>, Vec<&'a str>) {
    v.iter().copied().unzip()
}

/// Apply `changes` for `connection` inside `tx` (the caller checks the fence and commits).
pub(super) fn apply_changes(
    tx: &mut Transaction<'_>,
    connection: &str,
    changes: &[Change],
    now: i64,
) -> Result<(), ApplyError> {
    let b = sort(changes)?;
    let conn: &(dyn ToSql + Sync) = &connection;
    // phase 0: removals
    for chunk in b.rm_effective.chunks(CHUNK) {
        let (g, u) = pairs(chunk);
        tx.execute(
            "DELETE FROM effective_memberships e USING unnest($2::text[], $3::text[]) AS x(g, u), groups g, users u \
             WHERE g.connection = $1 AND g.provider_id = x.g AND u.connection = $1 AND u.provider_id = x.u \
             AND e.group_ref = g.id AND e.user_ref = u.id",
            &[conn, &g, &u],
        )?;
    }
    for chunk in b.rm_user_links.chunks(CHUNK) {
        let (g, u) = pairs(chunk);
        tx.execute(
            "DELETE FROM user_memberships m USING unnest($2::text[], $3::text[]) AS x(g, u), groups g, users u \
             WHERE g.connection = $1 AND g.provider_id = x.g AND u.connection = $1 AND u.provider_id = x.u \
             AND m.group_ref = g.id AND m.user_ref = u.id",
            &[conn, &g, &u],
        )?;
    }
    for chunk in b.rm_group_links.chunks(CHUNK) {
        let (g, c) = pairs(chunk);
        tx.execute(
            "DELETE FROM group_memberships m USING unnest($2::text[], $3::text[]) AS x(g, c), groups g, groups c \
             WHERE g.connection = $1 AND g.provider_id = x.g AND c.connection = $1 AND c.provider_id = x.c \
             AND m.group_ref = g.id AND m.child_ref = c.id",
            &[conn, &g, &c],
        )?;
    }
    for chunk in b.rm_photos.chunks(CHUNK) {
        tx.execute(
            "DELETE FROM photos p USING users u WHERE u.connection = $1 AND u.provider_id = ANY($2) \
             AND p.user_ref = u.id",
            &[conn, &chunk],
        )?;
    }
    // phase 1: deletions, with their memberships, effective rows and photos (the schema has no
    // foreign keys to cascade them: see PG_MIGRATIONS)
    for chunk in b.del_users.chunks(CHUNK) {
        tx.execute(
            "WITH d AS (SELECT id FROM users WHERE connection = $1 AND provider_id = ANY($2)), \
             m AS (DELETE FROM user_memberships WHERE user_ref IN (SELECT id FROM d)), \
             e AS (DELETE FROM effective_memberships WHERE user_ref IN (SELECT id FROM d)), \
             p AS (DELETE FROM photos WHERE user_ref IN (SELECT id FROM d)) \
             DELETE FROM users WHERE id IN (SELECT id FROM d)",
            &[conn, &chunk],
        )?;
    }
    for chunk in b.del_groups.chunks(CHUNK) {
        tx.execute(
            "WITH d AS (SELECT id FROM groups WHERE connection = $1 AND provider_id = ANY($2)), \
             m AS (DELETE FROM user_memberships WHERE group_ref IN (SELECT id FROM d)), \
             n AS (DELETE FROM group_memberships WHERE group_ref IN (SELECT id FROM d) \
                   OR child_ref IN (SELECT id FROM d)), \
             e AS (DELETE FROM effective_memberships WHERE group_ref IN (SELECT id FROM d)) \
             DELETE FROM groups WHERE id IN (SELECT id FROM d)",
            &[conn, &chunk],
        )?;
    }
    // phase 2: upserts
    put_groups(tx, connection, &b.put_groups, now)?;
    put_users(tx, connection, &b.put_users, now)?;
    // The planner's statistics do not know the rows this transaction just wrote: a first sync
    // would join its links against "empty" tables with nested scans (seconds a chunk). Refresh
    // them (a sample; it sees this transaction's rows) when many rows came in.
    if b.put_users.len() + b.put_groups.len() >= ANALYZE_AFTER {
        tx.batch_execute("ANALYZE users, groups")?;
    }
    // phase 3: links and photos
    add_links(
        tx,
        connection,
        &b.add_user_links,
        "users",
        "user_memberships",
        "user_ref",
    )?;
    add_links(
        tx,
        connection,
        &b.add_group_links,
        "groups",
        "group_memberships",
        "child_ref",
    )?;
    put_effective(tx, connection, &b.put_effective)?;
    put_photos(tx, connection, &b.put_photos)?;
    // phase 4: change-feed state (issue 21)
    super::feed::apply(tx, connection, &b.feed, now)?;
    Ok(())
}

fn put_groups(
    tx: &mut Transaction<'_>,
    connection: &str,
    v: &[&StoredGroup],
    now: i64,
) -> Result<(), ApplyError> {
    for chunk in v.chunks(CHUNK) {
        let pid: Vec<&str> = chunk.iter().map(|g| g.provider_id.as_str()).collect();
        let name: Vec<&str> = chunk.iter().map(|g| g.name.as_str()).collect();
        let source: Vec<&str> = chunk.iter().map(|g| g.source_name.as_str()).collect();
        let kind: Vec<&str> = chunk.iter().map(|g| super::kind_str(g.kind)).collect();
        let desc: Vec<Option<&str>> = chunk.iter().map(|g| g.description.as_deref()).collect();
        let attrs: Vec<String> = chunk.iter().map(|g| super::to_json(&g.attributes)).collect();
        tx.execute(
            "INSERT INTO groups (connection, provider_id, name, source_name, kind, description, attributes, \
             created_ms, updated_ms) SELECT $1, p, n, s, k, d, a, $8, $8 FROM \
             unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS x(p, n, s, k, d, a) \
             ON CONFLICT (connection, provider_id) DO UPDATE SET name = excluded.name, \
             source_name = excluded.source_name, kind = excluded.kind, description = excluded.description, \
             attributes = excluded.attributes, updated_ms = excluded.updated_ms",
            &[&connection, &pid, &name, &source, &kind, &desc, &attrs, &now],
        )?;
    }
    Ok(())
}

fn put_users(
    tx: &mut Transaction<'_>,
    connection: &str,
    v: &[&StoredUser],
    now: i64,
) -> Result<(), ApplyError> {
    let keys: Vec<String> = v.iter().map(|u| username_key(&u.username)).collect();
    // Renames may swap usernames between users: park every renamed user's key first.
    for (chunk, kchunk) in v.chunks(CHUNK).zip(keys.chunks(CHUNK)) {
        let pid: Vec<&str> = chunk.iter().map(|u| u.provider_id.as_str()).collect();
        tx.execute(
            "UPDATE users u SET username_key = chr(1) || u.id::text FROM unnest($2::text[], $3::text[]) AS x(p, k) \
             WHERE u.connection = $1 AND u.provider_id = x.p AND u.username_key <> x.k",
            &[&connection, &pid, &kchunk],
        )?;
    }
    for (chunk, kchunk) in v.chunks(CHUNK).zip(keys.chunks(CHUNK)) {
        let s = |f: fn(&StoredUser) -> &str| -> Vec<&str> { chunk.iter().map(|u| f(u)).collect() };
        let o = |f: fn(&StoredUser) -> Option<&str>| -> Vec<Option<&str>> {
            chunk.iter().map(|u| f(u)).collect()
        };
        let pid = s(|u| &u.provider_id);
        let name = s(|u| &u.username);
        let email = o(|u| u.email.as_deref());
        let display = o(|u| u.display_name.as_deref());
        let given = o(|u| u.given_name.as_deref());
        let family = o(|u| u.family_name.as_deref());
        let active: Vec<bool> = chunk.iter().map(|u| u.active).collect();
        let state: Vec<&str> = chunk.iter().map(|u| super::state_str(u.state)).collect();
        let raw = s(|u| &u.status_raw);
        let manager: Vec<Option<String>> = chunk
            .iter()
            .map(|u| u.manager.as_ref().map(super::to_json))
            .collect();
        let attrs: Vec<String> = chunk.iter().map(|u| super::to_json(&u.attributes)).collect();
        let reason = o(|u| u.inactive_reason.as_deref());
        tx.execute(
            "INSERT INTO users (connection, provider_id, username, username_key, email, display_name, given_name, \
             family_name, active, state, status_raw, manager, attributes, inactive_reason, created_ms, updated_ms) \
             SELECT $1, p, n, k, e, d, g, f, a, s, r, m, t, i, $15, $15 FROM unnest($2::text[], $3::text[], \
             $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[], $10::text[], $11::text[], \
             $12::text[], $13::text[], $14::text[]) AS x(p, n, k, e, d, g, f, a, s, r, m, t, i) \
             ON CONFLICT (connection, provider_id) DO UPDATE SET username = excluded.username, \
             username_key = excluded.username_key, email = excluded.email, display_name = excluded.display_name, \
             given_name = excluded.given_name, family_name = excluded.family_name, active = excluded.active, \
             state = excluded.state, status_raw = excluded.status_raw, manager = excluded.manager, \
             attributes = excluded.attributes, inactive_reason = excluded.inactive_reason, \
             updated_ms = excluded.updated_ms",
            &[
                &connection, &pid, &name, &kchunk, &email, &display, &given, &family, &active, &state, &raw, &manager,
                &attrs, &reason, &now,
            ],
        )?;
    }
    Ok(())
}

/// The first pair of `v` whose group or member (in `member_table`) is not stored.
fn first_missing(
    tx: &mut Transaction<'_>,
    connection: &str,
    g: &[&str],
    m: &[&str],
    member_table: &str,
) -> Result<Option<ApplyError>, postgres::Error> {
    let row = tx.query_opt(
        &format!(
            "SELECT x.g, x.m, g.id IS NULL FROM unnest($2::text[], $3::text[]) AS x(g, m) \
             LEFT JOIN groups g ON g.connection = $1 AND g.provider_id = x.g \
             LEFT JOIN {member_table} c ON c.connection = $1 AND c.provider_id = x.m \
             WHERE g.id IS NULL OR c.id IS NULL LIMIT 1"
        ),
        &[&connection, &g, &m],
    )?;
    Ok(row.map(|r| {
        let (group, member, no_group): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        if no_group {
            missing("group", &group)
        } else {
            missing(
                if member_table == "users" {
                    "user"
                } else {
                    "member group"
                },
                &member,
            )
        }
    }))
}

fn add_links(
    tx: &mut Transaction<'_>,
    connection: &str,
    v: &[(&str, &str)],
    member_table: &str,
    table: &str,
    col: &str,
) -> Result<(), ApplyError> {
    for chunk in v.chunks(CHUNK) {
        let (g, m) = pairs(chunk);
        if let Some(e) = first_missing(tx, connection, &g, &m, member_table)? {
            return Err(e);
        }
        tx.execute(
            &format!(
                "INSERT INTO {table} (group_ref, {col}) SELECT g.id, c.id FROM unnest($2::text[], $3::text[]) AS x(g, m) \
                 JOIN groups g ON g.connection = $1 AND g.provider_id = x.g \
                 JOIN {member_table} c ON c.connection = $1 AND c.provider_id = x.m ON CONFLICT DO NOTHING"
            ),
            &[&connection, &g, &m],
        )?;
    }
    Ok(())
}

fn put_effective(
    tx: &mut Transaction<'_>,
    connection: &str,
    v: &[(&str, &str, &[String])],
) -> Result<(), ApplyError> {
    for chunk in v.chunks(CHUNK) {
        let g: Vec<&str> = chunk.iter().map(|e| e.0).collect();
        let u: Vec<&str> = chunk.iter().map(|e| e.1).collect();
        let p: Vec<String> = chunk.iter().map(|e| super::to_json(&e.2)).collect();
        if let Some(e) = first_missing(tx, connection, &g, &u, "users")? {
            return Err(e);
        }
        tx.execute(
            "INSERT INTO effective_memberships (group_ref, user_ref, path) SELECT g.id, u.id, x.p \
             FROM unnest($2::text[], $3::text[], $4::text[]) AS x(g, u, p) \
             JOIN groups g ON g.connection = $1 AND g.provider_id = x.g \
             JOIN users u ON u.connection = $1 AND u.provider_id = x.u \
             ON CONFLICT (group_ref, user_ref) DO UPDATE SET path = excluded.path",
            &[&connection, &g, &u, &p],
        )?;
    }
    Ok(())
}

fn put_photos(tx: &mut Transaction<'_>, connection: &str, v: &[&StoredPhoto]) -> Result<(), ApplyError> {
    for chunk in v.chunks(CHUNK) {
        let u: Vec<&str> = chunk.iter().map(|p| p.user.as_str()).collect();
        let missing_user = tx.query_opt(
            "SELECT x.u FROM unnest($2::text[]) AS x(u) LEFT JOIN users u ON u.connection = $1 \
             AND u.provider_id = x.u WHERE u.id IS NULL LIMIT 1",
            &[&connection, &u],
        )?;
        if let Some(r) = missing_user {
            return Err(missing("user", r.get::<_, &str>(0)));
        }
        let ct: Vec<&str> = chunk.iter().map(|p| p.content_type.as_str()).collect();
        let sha: Vec<&str> = chunk.iter().map(|p| p.sha256.as_str()).collect();
        let bytes: Vec<Option<&[u8]>> = chunk.iter().map(|p| p.bytes.as_deref()).collect();
        let version: Vec<Option<&str>> = chunk.iter().map(|p| p.version.as_deref()).collect();
        tx.execute(
            "INSERT INTO photos (user_ref, content_type, sha256, bytes, version) SELECT u.id, x.c, x.s, x.b, x.v \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[]) AS x(u, c, s, b, v) \
             JOIN users u ON u.connection = $1 AND u.provider_id = x.u \
             ON CONFLICT (user_ref) DO UPDATE SET content_type = excluded.content_type, sha256 = excluded.sha256, \
             bytes = excluded.bytes, version = excluded.version",
            &[&connection, &u, &ct, &sha, &bytes, &version],
        )?;
    }
    Ok(())
}

/// Record a run's outcome.
pub(super) fn write_outcome(
    c: &mut impl postgres::GenericClient,
    run_id: i64,
    o: &RunOutcome,
    now: i64,
) -> Result<(), postgres::Error> {
    c.execute(
        "UPDATE runs SET finished_ms = $2, status = $3, counts = $4, errors = $5, plan = $6, requests = $7, \
         source_users = $8 WHERE id = $1",
        &[
            &run_id,
            &now,
            &o.status.as_str(),
            &super::to_json(&o.counts),
            &super::to_json(&o.errors),
            &super::to_json(&o.plan),
            &(o.requests as i64),
            &o.source_users.map(|n| n as i64),
        ],
    )?;
    Ok(())
}
