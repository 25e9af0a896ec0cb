//! What the LDAP view needs from the SQLite store: one consistent read of the whole directory
//! (every connection), a marker that changes when a run applies, and POSIX numbers
//! (uidNumber/gidNumber) allocated once per object and never reused.
//!
//! The numbers live in `posix_ids` (migration 5): one row per (kind, connection, provider id),
//! numbered by an `AUTOINCREMENT` key, so a number is never handed out twice, even after its
//! object is deleted (its row is kept: the object keeps its number if it comes back).

use std::collections::HashMap;

use super::*;

/// Which kind of object a POSIX number belongs to. Users and groups share one sequence, so a
/// user's number never equals a group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PosixKind {
    /// A user (its uidNumber).
    User,
    /// A group (its gidNumber).
    Group,
}

impl PosixKind {
    fn as_str(self) -> &'static str {
        match self {
            PosixKind::User => "user",
            PosixKind::Group => "group",
        }
    }
}

/// An object that has (or needs) a POSIX number: kind, connection, provider id.
pub type PosixKey = (PosixKind, String, String);

/// Every direct and effective membership of the store, all connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryLinks {
    /// Direct memberships: (connection, edge).
    pub direct: Vec<(String, StoredMembership)>,
    /// Effective (direct or inherited) user memberships: (connection, group id, user id).
    pub effective: Vec<(String, String, String)>,
}

impl SqliteStore {
    /// Run `read` inside one read transaction: everything it reads comes from the same state
    /// of the store (a run applied meanwhile is either wholly visible or not at all).
    pub fn read_consistent<T>(
        &self,
        read: impl FnOnce(&SqliteStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let out = read(self);
        // a read transaction has nothing to keep: end it either way
        let end = self.conn.execute_batch("COMMIT");
        let out = out?;
        end?;
        Ok(out)
    }

    /// A value that changes whenever a run applies changes (count and newest end of applied
    /// runs): a reader holding a copy of the directory reloads it when this changes.
    pub fn applied_marker(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(max(finished_ms), 0) FROM runs WHERE status = 'applied'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Every membership of every connection.
    pub fn all_links(&self) -> Result<DirectoryLinks, StoreError> {
        let mut out = DirectoryLinks::default();
        let mut q = self.conn.prepare(
            "SELECT g.connection, g.provider_id, u.provider_id FROM user_memberships m \
             JOIN groups g ON g.id = m.group_ref JOIN users u ON u.id = m.user_ref",
        )?;
        for r in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (c, group, user): (String, String, String) = r?;
            out.direct.push((
                c,
                StoredMembership {
                    group,
                    member: Member::User(user),
                },
            ));
        }
        let mut q = self.conn.prepare(
            "SELECT g.connection, g.provider_id, c.provider_id FROM group_memberships m \
             JOIN groups g ON g.id = m.group_ref JOIN groups c ON c.id = m.child_ref",
        )?;
        for r in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (c, group, child): (String, String, String) = r?;
            out.direct.push((
                c,
                StoredMembership {
                    group,
                    member: Member::Group(child),
                },
            ));
        }
        let mut q = self.conn.prepare(
            "SELECT g.connection, g.provider_id, u.provider_id FROM effective_memberships e \
             JOIN groups g ON g.id = e.group_ref JOIN users u ON u.id = e.user_ref",
        )?;
        for r in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            out.effective.push(r?);
        }
        Ok(out)
    }

    /// The POSIX number of every object that has one (the sequence number, starting at 1; the
    /// LDAP view adds its configured base).
    pub fn posix_ids(&self) -> Result<HashMap<PosixKey, u32>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT kind, connection, provider_id, number FROM posix_ids")?;
        let mut out = HashMap::new();
        for r in q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })? {
            let (kind, connection, provider_id, number) = r?;
            let kind = match kind.as_str() {
                "user" => PosixKind::User,
                "group" => PosixKind::Group,
                other => return Err(StoreError::Corrupt(format!("unknown posix id kind `{other}`"))),
            };
            let number = u32::try_from(number)
                .map_err(|_| StoreError::Corrupt(format!("posix number {number} out of range")))?;
            out.insert((kind, connection, provider_id), number);
        }
        Ok(out)
    }

    /// Give each of `wanted` a POSIX number unless it has one (one transaction); returns how
    /// many were allocated. Existing numbers are never changed.
    pub fn allocate_posix_ids(&mut self, wanted: &[PosixKey]) -> Result<usize, StoreError> {
        let _span = tracing::info_span!("store_allocate_posix_ids", wanted = wanted.len()).entered();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0;
        {
            let mut q = tx.prepare_cached(
                "INSERT OR IGNORE INTO posix_ids (kind, connection, provider_id) VALUES (?1, ?2, ?3)",
            )?;
            for (kind, connection, provider_id) in wanted {
                added += q.execute(params![kind.as_str(), connection, provider_id])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }
}

#[cfg(test)]
mod posix_tests {
    use super::*;

    #[test]
    fn numbers_are_allocated_once_and_never_reused() {
        let mut s = SqliteStore::open_in_memory().expect("store");
        let a = (PosixKind::User, "c".to_string(), "u1".to_string());
        let b = (PosixKind::Group, "c".to_string(), "u1".to_string());
        assert_eq!(s.allocate_posix_ids(&[a.clone(), b.clone()]).expect("alloc"), 2);
        let ids = s.posix_ids().expect("ids");
        let (na, nb) = (ids[&a], ids[&b]);
        assert_ne!(na, nb, "a user and a group never share a number");
        // again: nothing changes
        assert_eq!(s.allocate_posix_ids(&[b.clone(), a.clone()]).expect("alloc"), 0);
        assert_eq!(s.posix_ids().expect("ids")[&a], na);
        // a deleted row's number is not handed out again (AUTOINCREMENT)
        s.connection()
            .execute(
                "DELETE FROM posix_ids WHERE provider_id = 'u1' AND kind = 'group'",
                [],
            )
            .expect("delete");
        let c = (PosixKind::User, "c".to_string(), "u2".to_string());
        s.allocate_posix_ids(std::slice::from_ref(&c)).expect("alloc");
        assert!(s.posix_ids().expect("ids")[&c] > nb);
    }

    #[test]
    fn consistent_read_and_marker() {
        let s = SqliteStore::open_in_memory().expect("store");
        let m = s.read_consistent(|s| s.applied_marker()).expect("marker");
        assert_eq!(m, (0, 0));
        assert!(s.all_links().expect("links").direct.is_empty());
    }
}
