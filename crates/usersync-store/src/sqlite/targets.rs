//! Per-target state in SQLite (schema in [`super::MIGRATIONS`]: `target_objects`,
//! `target_members`). Each [`SqliteStore::write_target_inner`] call is one transaction, so a
//! push records an application id as soon as its create succeeded and a push killed halfway
//! leaves a state the next push converges from.

use super::*;
use crate::target_types::{TargetKind, TargetObject, TargetOrigin, TargetState, TargetWrite};

impl SqliteStore {
    pub(super) fn target_state_inner(&self, target: &str) -> Result<TargetState, StoreError> {
        let mut q = self.conn.prepare(
            "SELECT kind, source_key, app_id, etag, hash, origin, active, updated_ms FROM target_objects \
             WHERE target = ?1 ORDER BY kind, source_key",
        )?;
        let rows = q.query_map([target], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut objects = Vec::new();
        for row in rows {
            let (kind, source_key, app_id, etag, hash, origin, active, updated_ms) = row?;
            let kind = TargetKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("target object kind `{kind}`")))?;
            let origin = match origin.as_str() {
                "created" => TargetOrigin::Created,
                "adopted" => TargetOrigin::Adopted,
                other => return Err(StoreError::Corrupt(format!("target object origin `{other}`"))),
            };
            objects.push(TargetObject {
                kind,
                source_key,
                app_id,
                etag,
                hash,
                origin,
                active,
                updated_ms,
            });
        }
        let mut q = self.conn.prepare(
            "SELECT group_key, user_key FROM target_members WHERE target = ?1 ORDER BY group_key, user_key",
        )?;
        let members = q
            .query_map([target], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TargetState { objects, members })
    }

    pub(super) fn write_target_inner(
        &mut self,
        target: &str,
        writes: &[TargetWrite],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for w in writes {
            match w {
                TargetWrite::Put(o) => {
                    tx.execute(
                        "INSERT INTO target_objects (target, kind, source_key, app_id, etag, hash, origin, active, \
                         updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                         ON CONFLICT (target, kind, source_key) DO UPDATE SET app_id = excluded.app_id, \
                         etag = excluded.etag, hash = excluded.hash, origin = excluded.origin, \
                         active = excluded.active, updated_ms = excluded.updated_ms",
                        params![
                            target,
                            o.kind.as_str(),
                            o.source_key,
                            o.app_id,
                            o.etag,
                            o.hash,
                            o.origin.as_str(),
                            o.active,
                            o.updated_ms
                        ],
                    )?;
                }
                TargetWrite::Forget { kind, source_key } => {
                    tx.execute(
                        "DELETE FROM target_objects WHERE target = ?1 AND kind = ?2 AND source_key = ?3",
                        params![target, kind.as_str(), source_key],
                    )?;
                    let column = match kind {
                        TargetKind::User => "user_key",
                        TargetKind::Group => "group_key",
                    };
                    tx.execute(
                        &format!("DELETE FROM target_members WHERE target = ?1 AND {column} = ?2"),
                        params![target, source_key],
                    )?;
                }
                TargetWrite::AddMember { group, user } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO target_members (target, group_key, user_key) VALUES (?1, ?2, ?3)",
                        params![target, group, user],
                    )?;
                }
                TargetWrite::RemoveMember { group, user } => {
                    tx.execute(
                        "DELETE FROM target_members WHERE target = ?1 AND group_key = ?2 AND user_key = ?3",
                        params![target, group, user],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::target_types::{TargetKind, TargetObject, TargetOrigin, TargetWrite};
    use crate::{SqliteStore, Store};

    fn user(key: &str, app: &str) -> TargetObject {
        TargetObject {
            kind: TargetKind::User,
            source_key: key.into(),
            app_id: app.into(),
            etag: None,
            hash: Some("h1".into()),
            origin: TargetOrigin::Created,
            active: true,
            updated_ms: 1,
        }
    }

    #[test]
    fn target_state_round_trips_and_is_per_target() {
        let mut s = SqliteStore::open_in_memory().expect("store");
        s.write_target(
            "aws",
            &[
                TargetWrite::Put(user("okta/u1", "A1")),
                TargetWrite::Put(TargetObject {
                    kind: TargetKind::Group,
                    origin: TargetOrigin::Adopted,
                    ..user("okta/g1", "G1")
                }),
                TargetWrite::AddMember {
                    group: "okta/g1".into(),
                    user: "okta/u1".into(),
                },
            ],
        )
        .expect("write");
        // idempotent
        s.write_target(
            "aws",
            &[TargetWrite::AddMember {
                group: "okta/g1".into(),
                user: "okta/u1".into(),
            }],
        )
        .expect("write again");
        let st = s.target_state("aws").expect("state");
        assert_eq!(st.objects.len(), 2);
        assert_eq!(st.objects[0].origin, TargetOrigin::Adopted);
        assert_eq!(st.members, vec![("okta/g1".to_string(), "okta/u1".to_string())]);
        assert!(s.target_state("jira").expect("other").objects.is_empty());
        s.write_target(
            "aws",
            &[TargetWrite::Forget {
                kind: TargetKind::User,
                source_key: "okta/u1".into(),
            }],
        )
        .expect("forget");
        let st = s.target_state("aws").expect("state");
        assert_eq!(st.objects.len(), 1);
        assert!(st.members.is_empty(), "forgetting a user forgets its memberships");
    }
}
