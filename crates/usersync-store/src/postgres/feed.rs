//! Change-feed state in PostgreSQL (issue 21): watermarks and the source copy an incremental run
//! rebuilds the complete source from, written in the run's apply transaction.

use std::collections::BTreeMap;

use postgres::types::ToSql;
use postgres::Transaction;

use super::PgStore;
use crate::types::*;
use crate::StoreError;

/// Rows per statement.
const CHUNK: usize = 5_000;

/// The feed changes of a run, in the order they apply: resets, then writes.
pub(super) fn apply(
    tx: &mut Transaction<'_>,
    connection: &str,
    changes: &[&Change],
    now: i64,
) -> Result<(), postgres::Error> {
    let conn: &(dyn ToSql + Sync) = &connection;
    if changes.iter().any(|c| matches!(c, Change::ResetFeed)) {
        tx.execute("DELETE FROM feed_watermarks WHERE connection = $1", &[conn])?;
        tx.execute("DELETE FROM feed_objects WHERE connection = $1", &[conn])?;
    }
    // the last write of each key wins, as in SQLite (an upsert may not touch a row twice)
    let mut put: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    for c in changes {
        match c {
            Change::PutWatermark { feed, value } => {
                tx.execute(
                    "INSERT INTO feed_watermarks (connection, feed, value, updated_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (connection, feed) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                    &[conn, feed, value, &now],
                )?;
            }
            Change::PutSource(o) => {
                put.insert((o.kind.as_str(), o.id.as_str()), Some(o.body.as_str()));
            }
            Change::RemoveSource { kind, id } => {
                put.insert((kind.as_str(), id.as_str()), None);
            }
            _ => {}
        }
    }
    let removed: Vec<(&str, &str)> = put.iter().filter(|(_, b)| b.is_none()).map(|(k, _)| *k).collect();
    for chunk in removed.chunks(CHUNK) {
        let (kinds, ids): (Vec<&str>, Vec<&str>) = chunk.iter().copied().unzip();
        tx.execute(
            "DELETE FROM feed_objects f USING unnest($2::text[], $3::text[]) AS x(k, i) \
             WHERE f.connection = $1 AND f.kind = x.k AND f.id = x.i",
            &[conn, &kinds, &ids],
        )?;
    }
    let written: Vec<(&str, &str, &str)> = put
        .iter()
        .filter_map(|((k, i), b)| b.map(|b| (*k, *i, b)))
        .collect();
    for chunk in written.chunks(CHUNK) {
        let kinds: Vec<&str> = chunk.iter().map(|r| r.0).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.1).collect();
        let bodies: Vec<&str> = chunk.iter().map(|r| r.2).collect();
        tx.execute(
            "INSERT INTO feed_objects (connection, kind, id, body) \
             SELECT $1, k, i, b FROM unnest($2::text[], $3::text[], $4::text[]) AS x(k, i, b) \
             ON CONFLICT (connection, kind, id) DO UPDATE SET body = excluded.body",
            &[conn, &kinds, &ids, &bodies],
        )?;
    }
    Ok(())
}

impl PgStore {
    pub(super) fn feed_watermarks(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.with_client(|c, t| {
            let rows = c
                .query(
                    "SELECT feed, value FROM feed_watermarks WHERE connection = $1",
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    pub(super) fn feed_objects(
        &self,
        connection: &str,
        each: &mut dyn FnMut(SourceObject) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let objects: Vec<SourceObject> = self.with_client(|c, t| {
            let rows = c
                .query(
                    "SELECT kind, id, body FROM feed_objects WHERE connection = $1",
                    &[&connection],
                )
                .map_err(|e| t.error(&e))?;
            Ok(rows
                .iter()
                .map(|r| SourceObject {
                    kind: r.get(0),
                    id: r.get(1),
                    body: r.get(2),
                })
                .collect())
        })?;
        for o in objects {
            each(o)?;
        }
        Ok(())
    }
}
