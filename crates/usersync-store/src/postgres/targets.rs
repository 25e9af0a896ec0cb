//! Per-target state of `usersync push` (what was pushed to each target), as the SQLite backend
//! keeps it: `target_objects` and `target_members`, one transaction per `write_target`.

use postgres::GenericClient;

use super::Target;
use crate::target_types::{TargetKind, TargetObject, TargetOrigin, TargetState, TargetWrite};
use crate::StoreError;

pub(super) fn read(c: &mut impl GenericClient, t: &Target, target: &str) -> Result<TargetState, StoreError> {
    let db = |e: postgres::Error| t.error(&e);
    let rows = c
        .query(
            "SELECT kind, source_key, app_id, etag, hash, origin, active, updated_ms FROM target_objects \
             WHERE target = $1 ORDER BY kind COLLATE \"C\", source_key COLLATE \"C\"",
            &[&target],
        )
        .map_err(db)?;
    let mut objects = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.get(0);
        let origin: String = r.get(5);
        objects.push(TargetObject {
            kind: TargetKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("target object kind `{kind}`")))?,
            source_key: r.get(1),
            app_id: r.get(2),
            etag: r.get(3),
            hash: r.get(4),
            origin: match origin.as_str() {
                "created" => TargetOrigin::Created,
                "adopted" => TargetOrigin::Adopted,
                other => return Err(StoreError::Corrupt(format!("target object origin `{other}`"))),
            },
            active: r.get(6),
            updated_ms: r.get(7),
        });
    }
    let members = c
        .query(
            "SELECT group_key, user_key FROM target_members WHERE target = $1 \
             ORDER BY group_key COLLATE \"C\", user_key COLLATE \"C\"",
            &[&target],
        )
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(TargetState { objects, members })
}

pub(super) fn write(
    c: &mut postgres::Client,
    t: &Target,
    target: &str,
    writes: &[TargetWrite],
) -> Result<(), StoreError> {
    let db = |e: postgres::Error| t.error(&e);
    let mut tx = c.transaction().map_err(db)?;
    for w in writes {
        match w {
            TargetWrite::Put(o) => tx.execute(
                "INSERT INTO target_objects (target, kind, source_key, app_id, etag, hash, origin, active, \
                 updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (target, kind, source_key) DO UPDATE SET app_id = excluded.app_id, \
                 etag = excluded.etag, hash = excluded.hash, origin = excluded.origin, \
                 active = excluded.active, updated_ms = excluded.updated_ms",
                &[
                    &target,
                    &o.kind.as_str(),
                    &o.source_key,
                    &o.app_id,
                    &o.etag,
                    &o.hash,
                    &o.origin.as_str(),
                    &o.active,
                    &o.updated_ms,
                ],
            ),
            TargetWrite::Forget { kind, source_key } => {
                tx.execute(
                    "DELETE FROM target_objects WHERE target = $1 AND kind = $2 AND source_key = $3",
                    &[&target, &kind.as_str(), source_key],
                )
                .map_err(db)?;
                let column = match kind {
                    TargetKind::User => "user_key",
                    TargetKind::Group => "group_key",
                };
                tx.execute(
                    &format!("DELETE FROM target_members WHERE target = $1 AND {column} = $2"),
                    &[&target, source_key],
                )
            }
            TargetWrite::AddMember { group, user } => tx.execute(
                "INSERT INTO target_members (target, group_key, user_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&target, group, user],
            ),
            TargetWrite::RemoveMember { group, user } => tx.execute(
                "DELETE FROM target_members WHERE target = $1 AND group_key = $2 AND user_key = $3",
                &[&target, group, user],
            ),
        }
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}
