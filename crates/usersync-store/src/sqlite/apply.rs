//! Writing one run's changes and outcome.

use super::*;
use crate::LinkBatch;

pub(super) fn user_ref(tx: &Transaction<'_>, connection: &str, pid: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT id FROM users WHERE connection = ?1 AND provider_id = ?2")?
        .query_row(params![connection, pid], |r| r.get(0))
        .optional()?)
}

pub(super) fn group_ref(
    tx: &Transaction<'_>,
    connection: &str,
    pid: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT id FROM groups WHERE connection = ?1 AND provider_id = ?2")?
        .query_row(params![connection, pid], |r| r.get(0))
        .optional()?)
}

pub(super) fn missing(what: &str, pid: &str) -> StoreError {
    StoreError::Corrupt(format!("change refers to unknown {what} `{pid}`"))
}

pub(super) fn phase(c: &Change) -> u8 {
    match c {
        Change::RemoveEffective { .. } | Change::RemoveMembership(_) | Change::RemovePhoto { .. } => 0,
        Change::DeleteUser { .. } | Change::DeleteGroup { .. } => 1,
        Change::PutGroup(_) | Change::PutUser(_) => 2,
        Change::AddMembership(_) | Change::AddLinks(_) | Change::PutEffective(_) | Change::PutPhoto(_) => 3,
        // a full run's reset comes before its rewrite (the sort is stable)
        Change::ResetFeed => 4,
        Change::PutWatermark { .. } | Change::PutSource(_) | Change::RemoveSource { .. } => 5,
    }
}

pub(super) fn apply_change(
    tx: &Transaction<'_>,
    connection: &str,
    c: &Change,
    now: i64,
) -> Result<(), StoreError> {
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
        Change::AddLinks(b) => add_links(tx, connection, b)?,
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
        Change::ResetFeed => {
            tx.prepare_cached("DELETE FROM feed_watermarks WHERE connection = ?1")?
                .execute([connection])?;
            tx.prepare_cached("DELETE FROM feed_objects WHERE connection = ?1")?
                .execute([connection])?;
        }
        Change::PutWatermark { feed, value } => {
            tx.prepare_cached(
                "INSERT INTO feed_watermarks (connection, feed, value, updated_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (connection, feed) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )?
            .execute(params![connection, feed, value, now])?;
        }
        Change::PutSource(o) => {
            tx.prepare_cached(
                "INSERT INTO feed_objects (connection, kind, id, body) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (connection, kind, id) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![connection, o.kind, o.id, o.body])?;
        }
        Change::RemoveSource { kind, id } => {
            tx.prepare_cached("DELETE FROM feed_objects WHERE connection = ?1 AND kind = ?2 AND id = ?3")?
                .execute(params![connection, kind, id])?;
        }
        Change::RemovePhoto { user } => {
            if let Some(u) = user_ref(tx, connection, user)? {
                tx.execute("DELETE FROM photos WHERE user_ref = ?1", params![u])?;
            }
        }
    }
    Ok(())
}

/// Row ids of a batch's groups or users, each looked up once, when first used.
struct Refs<'a> {
    ids: &'a [String],
    rows: Vec<Option<Option<i64>>>,
    table: &'static str,
}

impl<'a> Refs<'a> {
    fn new(ids: &'a [String], table: &'static str) -> Self {
        Refs {
            ids,
            rows: vec![None; ids.len()],
            table,
        }
    }

    fn get(&mut self, tx: &Transaction<'_>, connection: &str, i: u32) -> Result<Option<i64>, StoreError> {
        let bad = || {
            StoreError::Corrupt(format!(
                "a membership batch refers to a {} past its table",
                self.table
            ))
        };
        let id = self.ids.get(i as usize).ok_or_else(bad)?;
        if let Some(Some(row)) = self.rows.get(i as usize) {
            return Ok(*row);
        }
        let row = if self.table == "group" {
            group_ref(tx, connection, id)?
        } else {
            user_ref(tx, connection, id)?
        };
        if let Some(slot) = self.rows.get_mut(i as usize) {
            *slot = Some(row);
        }
        Ok(row)
    }
}

/// A [`LinkBatch`]: each group and user is looked up once, every row is one prepared insert.
fn add_links(tx: &Transaction<'_>, connection: &str, b: &LinkBatch) -> Result<(), StoreError> {
    let mut groups = Refs::new(&b.groups, "group");
    let mut users = Refs::new(&b.users, "user");
    let mut link =
        tx.prepare_cached("INSERT OR IGNORE INTO user_memberships (group_ref, user_ref) VALUES (?1, ?2)")?;
    for &(gi, ui) in &b.user_links {
        let g = groups
            .get(tx, connection, gi)?
            .ok_or_else(|| missing("group", &b.groups[gi as usize]))?;
        let u = users.get(tx, connection, ui)?.ok_or_else(|| {
            missing(
                "member",
                &format!("{:?}", Member::User(b.users[ui as usize].clone())),
            )
        })?;
        link.execute(params![g, u])?;
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO effective_memberships (group_ref, user_ref, path) VALUES (?1, ?2, ?3) \
         ON CONFLICT (group_ref, user_ref) DO UPDATE SET path = excluded.path",
    )?;
    let paths: Vec<String> = b.paths.iter().map(to_json).collect();
    for &(gi, ui, pi) in &b.effective {
        let g = groups
            .get(tx, connection, gi)?
            .ok_or_else(|| missing("group", &b.groups[gi as usize]))?;
        let u = users
            .get(tx, connection, ui)?
            .ok_or_else(|| missing("user", &b.users[ui as usize]))?;
        let path = paths.get(pi as usize).ok_or_else(|| {
            StoreError::Corrupt("a membership batch refers to a path past its table".into())
        })?;
        put.execute(params![g, u, path])?;
    }
    Ok(())
}

pub(super) fn write_outcome(
    conn: &Connection,
    run_id: i64,
    o: &RunOutcome,
    now: i64,
) -> Result<(), StoreError> {
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
