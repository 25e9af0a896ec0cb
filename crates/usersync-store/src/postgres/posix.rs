//! What the LDAP view needs from the PostgreSQL store ([`DirectoryStore`]), with the SQLite
//! backend's semantics: one consistent read of the whole directory (a `REPEATABLE READ`, read-only
//! transaction), the applied-run marker, and POSIX numbers.
//!
//! The numbers live in `posix_ids` (PG migration 5): one row per (kind, connection, provider id),
//! numbered by an identity column, whose sequence never hands a number out twice (a rolled-back
//! or conflicting insert leaves a gap, never a repeat); rows are kept when their object goes, so
//! an object that comes back keeps its number. Users and groups share the sequence, so a uid
//! never equals a gid. Several hosts (LDAP views) may allocate at once: the unique key makes the
//! first one win, the other's insert of the same object does nothing.

use std::collections::HashMap;

use postgres::GenericClient;

use super::{group_row, user_row, PgStore, GROUP_COLS, USER_COLS};
use crate::directory::{DirectoryRead, DirectoryStore};
use crate::sqlite::{DirectoryLinks, PosixKey, PosixKind};
use crate::types::{Member, StoredMembership, StoredPhoto};
use crate::StoreError;

fn kind_str(k: PosixKind) -> &'static str {
    match k {
        PosixKind::User => "user",
        PosixKind::Group => "group",
    }
}

const MARKER: &str =
    "SELECT count(*), coalesce(max(finished_ms), 0)::bigint FROM runs WHERE status = 'applied'";

fn marker(c: &mut impl GenericClient) -> Result<(i64, i64), postgres::Error> {
    let r = c.query_one(MARKER, &[])?;
    Ok((r.get(0), r.get(1)))
}

fn links(c: &mut impl GenericClient) -> Result<DirectoryLinks, postgres::Error> {
    let mut out = DirectoryLinks::default();
    for r in c.query(
        "SELECT g.connection, g.provider_id, u.provider_id FROM user_memberships m \
         JOIN groups g ON g.id = m.group_ref JOIN users u ON u.id = m.user_ref",
        &[],
    )? {
        let member = Member::User(r.get(2));
        out.direct.push((
            r.get(0),
            StoredMembership {
                group: r.get(1),
                member,
            },
        ));
    }
    for r in c.query(
        "SELECT g.connection, g.provider_id, c.provider_id FROM group_memberships m \
         JOIN groups g ON g.id = m.group_ref JOIN groups c ON c.id = m.child_ref",
        &[],
    )? {
        let member = Member::Group(r.get(2));
        out.direct.push((
            r.get(0),
            StoredMembership {
                group: r.get(1),
                member,
            },
        ));
    }
    for r in c.query(
        "SELECT g.connection, g.provider_id, u.provider_id FROM effective_memberships e \
         JOIN groups g ON g.id = e.group_ref JOIN users u ON u.id = e.user_ref",
        &[],
    )? {
        out.effective.push((r.get(0), r.get(1), r.get(2)));
    }
    Ok(out)
}

fn posix_ids(
    c: &mut impl GenericClient,
) -> Result<Result<HashMap<PosixKey, u32>, StoreError>, postgres::Error> {
    let rows = c.query("SELECT kind, connection, provider_id, number FROM posix_ids", &[])?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let kind = match r.get::<_, &str>(0) {
            "user" => PosixKind::User,
            "group" => PosixKind::Group,
            other => {
                return Ok(Err(StoreError::Corrupt(format!(
                    "unknown posix id kind `{other}`"
                ))))
            }
        };
        let number: i64 = r.get(3);
        let Ok(number) = u32::try_from(number) else {
            return Ok(Err(StoreError::Corrupt(format!(
                "posix number {number} out of range"
            ))));
        };
        out.insert((kind, r.get(1), r.get(2)), number);
    }
    Ok(Ok(out))
}

fn photos(c: &mut impl GenericClient) -> Result<Vec<(String, StoredPhoto)>, postgres::Error> {
    let rows = c.query(
        "SELECT u.connection, u.provider_id, p.content_type, p.sha256, p.bytes FROM photos p \
         JOIN users u ON u.id = p.user_ref WHERE u.active AND p.bytes IS NOT NULL \
         ORDER BY u.connection COLLATE \"C\", u.provider_id COLLATE \"C\"",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let photo = StoredPhoto {
                user: r.get(1),
                content_type: r.get(2),
                sha256: r.get(3),
                bytes: r.get(4),
                // as Store::photo: versions are read by photo_versions only
                version: None,
            };
            (r.get(0), photo)
        })
        .collect())
}

impl DirectoryStore for PgStore {
    fn read_directory(&self, posix: bool, with_photos: bool) -> Result<DirectoryRead, StoreError> {
        let _span = tracing::info_span!("store_read_directory", posix, photos = with_photos).entered();
        self.with_client(|c, t| {
            let db = |e: postgres::Error| t.error(&e);
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(db)?;
            let mut read = DirectoryRead {
                marker: marker(&mut tx).map_err(db)?,
                ..DirectoryRead::default()
            };
            // the orders of Store::users(None) and Store::groups(None)
            for r in tx
                .query(&format!("SELECT {USER_COLS} FROM users ORDER BY username_key COLLATE \"C\""), &[])
                .map_err(db)?
            {
                read.users.push(user_row(&r)?);
            }
            for r in tx
                .query(
                    &format!(
                        "SELECT {GROUP_COLS} FROM groups ORDER BY lower(name) COLLATE \"C\", connection COLLATE \"C\""
                    ),
                    &[],
                )
                .map_err(db)?
            {
                read.groups.push(group_row(&r)?);
            }
            read.links = links(&mut tx).map_err(db)?;
            if posix {
                read.posix = posix_ids(&mut tx).map_err(db)??;
            }
            if with_photos {
                read.photos = photos(&mut tx).map_err(db)?;
            }
            tx.commit().map_err(db)?;
            Ok(read)
        })
    }

    fn applied_marker(&self) -> Result<(i64, i64), StoreError> {
        self.with_client(|c, t| marker(c).map_err(|e| t.error(&e)))
    }

    fn allocate_posix_ids(&mut self, wanted: &[PosixKey]) -> Result<usize, StoreError> {
        let _span = tracing::info_span!("store_allocate_posix_ids", wanted = wanted.len()).entered();
        // the first of each key, in order
        let mut seen = std::collections::HashSet::new();
        let wanted: Vec<&PosixKey> = wanted.iter().filter(|k| seen.insert(*k)).collect();
        let kind: Vec<&str> = wanted.iter().map(|k| kind_str(k.0)).collect();
        let connection: Vec<&str> = wanted.iter().map(|k| k.1.as_str()).collect();
        let pid: Vec<&str> = wanted.iter().map(|k| k.2.as_str()).collect();
        self.with_client(|c, t| {
            let db = |e: postgres::Error| t.error(&e);
            let mut tx = c.transaction().map_err(db)?;
            // numbered in the order of `wanted` (as SQLite's one insert after another); keys that
            // have a number take none from the sequence
            let n = tx
                .execute(
                    "INSERT INTO posix_ids (kind, connection, provider_id) \
                     SELECT x.k, x.c, x.p FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(k, c, p, o) \
                     WHERE NOT EXISTS (SELECT 1 FROM posix_ids i WHERE i.kind = x.k AND i.connection = x.c \
                     AND i.provider_id = x.p) \
                     ORDER BY x.o ON CONFLICT (kind, connection, provider_id) DO NOTHING",
                    &[&kind, &connection, &pid],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
