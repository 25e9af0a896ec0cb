//! `usersync store migrate`: copy a SQLite store into PostgreSQL in one transaction, verified
//! by row counts and a content hash per table (read back from PostgreSQL before committing).

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use super::{PgStore, PG_MIGRATIONS};
use crate::{SqliteStore, StoreError, MIGRATIONS};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Bool,
    Text,
    Bytes,
}

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Ty)],
    /// Key columns, in order.
    order: &'static [&'static str],
    /// The BIGSERIAL column whose sequence must continue after the copied ids.
    serial: Option<&'static str>,
}

use Ty::*;

/// Every table of the store, parents first. `run_locks` is not copied: the source must be idle.
const TABLES: &[Table] = &[
    Table {
        name: "users",
        cols: &[
            ("id", Int),
            ("connection", Text),
            ("provider_id", Text),
            ("username", Text),
            ("username_key", Text),
            ("email", Text),
            ("display_name", Text),
            ("given_name", Text),
            ("family_name", Text),
            ("active", Bool),
            ("state", Text),
            ("status_raw", Text),
            ("manager", Text),
            ("attributes", Text),
            ("inactive_reason", Text),
            ("created_ms", Int),
            ("updated_ms", Int),
        ],
        order: &["id"],
        serial: Some("id"),
    },
    Table {
        name: "groups",
        cols: &[
            ("id", Int),
            ("connection", Text),
            ("provider_id", Text),
            ("name", Text),
            ("source_name", Text),
            ("kind", Text),
            ("description", Text),
            ("attributes", Text),
            ("created_ms", Int),
            ("updated_ms", Int),
        ],
        order: &["id"],
        serial: Some("id"),
    },
    Table {
        name: "user_memberships",
        cols: &[("group_ref", Int), ("user_ref", Int)],
        order: &["group_ref", "user_ref"],
        serial: None,
    },
    Table {
        name: "group_memberships",
        cols: &[("group_ref", Int), ("child_ref", Int)],
        order: &["group_ref", "child_ref"],
        serial: None,
    },
    Table {
        name: "effective_memberships",
        cols: &[("group_ref", Int), ("user_ref", Int), ("path", Text)],
        order: &["group_ref", "user_ref"],
        serial: None,
    },
    Table {
        name: "photos",
        cols: &[
            ("user_ref", Int),
            ("content_type", Text),
            ("sha256", Text),
            ("bytes", Bytes),
            ("version", Text),
        ],
        order: &["user_ref"],
        serial: None,
    },
    Table {
        name: "runs",
        cols: &[
            ("id", Int),
            ("connection", Text),
            ("started_ms", Int),
            ("finished_ms", Int),
            ("status", Text),
            ("counts", Text),
            ("errors", Text),
            ("plan", Text),
            ("requests", Int),
            ("source_users", Int),
        ],
        order: &["id"],
        serial: Some("id"),
    },
    Table {
        name: "target_objects",
        cols: &[
            ("target", Text),
            ("kind", Text),
            ("source_key", Text),
            ("app_id", Text),
            ("etag", Text),
            ("hash", Text),
            ("origin", Text),
            ("active", Bool),
            ("updated_ms", Int),
        ],
        order: &["target", "kind", "source_key"],
        serial: None,
    },
    Table {
        name: "target_members",
        cols: &[("target", Text), ("group_key", Text), ("user_key", Text)],
        order: &["target", "group_key", "user_key"],
        serial: None,
    },
    // the LDAP view's POSIX numbers, kept as they are (the sequence continues after the highest
    // number SQLite ever handed out: see `posix_next`)
    Table {
        name: "posix_ids",
        cols: &[
            ("number", Int),
            ("kind", Text),
            ("connection", Text),
            ("provider_id", Text),
        ],
        order: &["number"],
        serial: None,
    },
];

impl Table {
    /// `ORDER BY` columns; PostgreSQL compares text byte-wise (`C`), as SQLite does.
    fn order_by(&self, pg: bool) -> String {
        self.order
            .iter()
            .map(|c| match self.cols.iter().find(|(n, _)| n == c) {
                Some((_, Text)) if pg => format!("{c} COLLATE \"C\""),
                _ => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Rows per insert statement.
const CHUNK: usize = 2_000;

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn feed(h: &mut Sha256, v: &Val) {
    match v {
        Val::Null => h.update(b"n"),
        Val::Int(i) => {
            h.update(b"i");
            h.update(i.to_be_bytes());
        }
        Val::Text(s) => {
            h.update(b"t");
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        Val::Bytes(b) => {
            h.update(b"b");
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

/// One table's verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    /// Table name.
    pub table: String,
    /// Rows in the source.
    pub rows: u64,
    /// SHA-256 of the rows in key order (the same in source and destination).
    pub sha256: String,
}

/// What [`copy_store`] copied and verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// The source file.
    pub from: String,
    /// The destination, password masked.
    pub to: String,
    /// One entry per table.
    pub tables: Vec<TableCheck>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copy the SQLite store at `from` into the PostgreSQL store at `to` (created or migrated
/// first), in one transaction: each table is copied in key order, read back and compared (row
/// count and content hash) before the commit, so a mismatch leaves the destination as it was. A
/// destination holding users, groups or runs is refused unless `replace` (then its rows are
/// deleted in the same transaction). The source must be at this usersync's latest schema version
/// and have no run in progress; it is opened read-only.
pub fn copy_store(from: &Path, to: &str, replace: bool) -> Result<CopyReport, StoreError> {
    let _span = tracing::info_span!("store_copy", from = %from.display()).entered();
    let src = SqliteStore::open_read_only(from)?;
    let path = from.display().to_string();
    let version = src.schema_version()?;
    if version != MIGRATIONS.len() as u32 {
        return Err(StoreError::NeedsUpgrade {
            path,
            found: version,
            supported: MIGRATIONS.len() as u32,
        });
    }
    let sconn = src.connection();
    let held: i64 = sconn.query_row("SELECT count(*) FROM run_locks", [], |r| r.get(0))?;
    if held > 0 {
        return Err(StoreError::Open {
            path,
            reason: "a sync is running on this store (a run lock is held): copy it when no sync runs".into(),
        });
    }
    // AUTOINCREMENT remembers the highest number ever handed out, also of rows deleted since
    let posix_next: i64 = sconn.query_row(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'posix_ids'), 0), \
         coalesce((SELECT max(number) FROM posix_ids), 0)) + 1",
        [],
        |r| r.get(0),
    )?;
    let dst = PgStore::open(to)?;
    if dst.schema_version()? != PG_MIGRATIONS.len() as u32 {
        return Err(StoreError::Corrupt(
            "destination schema is not at the latest version".into(),
        ));
    }
    let masked = dst.url().to_string();
    let mut report = CopyReport {
        from: path.clone(),
        to: masked.clone(),
        tables: Vec::new(),
    };
    // Read the source first (the SQLite handle stays on this thread), one table at a time.
    let mut data: Vec<(Vec<Vec<Val>>, TableCheck)> = Vec::new();
    for t in TABLES {
        let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
        let mut q = sconn.prepare(&format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            t.name,
            t.order_by(false)
        ))?;
        let mut rows = q.query([])?;
        let mut out = Vec::new();
        let mut h = Sha256::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                let v = match r.get_ref(i)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(n) => Val::Int(n),
                    ValueRef::Real(f) => Val::Int(f as i64),
                    ValueRef::Text(s) => Val::Text(String::from_utf8_lossy(s).into_owned()),
                    ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
                };
                let v = match (t.cols[i].1, v) {
                    (Bool, Val::Int(n)) => Val::Int(i64::from(n != 0)),
                    (_, v) => v,
                };
                feed(&mut h, &v);
                row.push(v);
            }
            out.push(row);
        }
        let check = TableCheck {
            table: t.name.into(),
            rows: out.len() as u64,
            sha256: hex(&h.finalize()),
        };
        data.push((out, check));
    }
    dst.with_client(|c, tg| {
        let db = |e: postgres::Error| tg.error(&e);
        let mut tx = c.transaction().map_err(db)?;
        let existing: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM groups) + (SELECT count(*) FROM runs)",
                &[],
            )
            .map_err(db)?
            .get(0);
        if existing > 0 && !replace {
            return Err(StoreError::Open {
                path: masked.clone(),
                reason: format!(
                    "the destination already holds {existing} users, groups and runs; nothing was copied \
                     (pass --replace to delete them and copy over them)"
                ),
            });
        }
        tx.batch_execute(
            "TRUNCATE users, groups, user_memberships, group_memberships, effective_memberships, photos, runs, \
             run_locks, target_objects, target_members, posix_ids",
        )
        .map_err(db)?;
        for (t, (rows, check)) in TABLES.iter().zip(&data) {
            insert(&mut tx, t, rows).map_err(db)?;
            if let Some(col) = t.serial {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', '{col}'), COALESCE(max({col}), 0) + 1, false) \
                         FROM {0}",
                        t.name
                    ),
                    &[],
                )
                .map_err(db)?;
            }
            let got = read_back(&mut tx, t).map_err(db)?;
            if got != *check {
                return Err(StoreError::Corrupt(format!(
                    "verification of table `{}` failed (source {} rows, sha256 {}; copy {} rows, sha256 {}); \
                     nothing was committed to {masked}",
                    t.name, check.rows, check.sha256, got.rows, got.sha256
                )));
            }
        }
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('posix_ids', 'number'), $1, false)",
            &[&posix_next],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    })?;
    report.tables = data.into_iter().map(|(_, c)| c).collect();
    Ok(report)
}

fn insert(tx: &mut postgres::Transaction<'_>, t: &Table, rows: &[Vec<Val>]) -> Result<(), postgres::Error> {
    let names: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
    let arrays: Vec<String> = t
        .cols
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            let ty = match ty {
                Int => "bigint",
                Bool => "bool",
                Text => "text",
                Bytes => "bytea",
            };
            format!("${}::{ty}[]", i + 1)
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        t.name,
        names.join(", "),
        arrays.join(", ")
    );
    for chunk in rows.chunks(CHUNK) {
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        for (i, (_, ty)) in t.cols.iter().enumerate() {
            let col = chunk.iter().map(|r| &r[i]);
            params.push(match ty {
                Int => Box::new(
                    col.map(|v| if let Val::Int(n) = v { Some(*n) } else { None })
                        .collect::<Vec<_>>(),
                ),
                Bool => Box::new(
                    col.map(|v| if let Val::Int(n) = v { Some(*n != 0) } else { None })
                        .collect::<Vec<_>>(),
                ),
                Text => Box::new(
                    col.map(|v| match v {
                        Val::Text(s) => Some(s.clone()),
                        Val::Int(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                ),
                Bytes => Box::new(
                    col.map(|v| match v {
                        Val::Bytes(b) => Some(b.clone()),
                        Val::Text(s) => Some(s.as_bytes().to_vec()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                ),
            });
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        tx.execute(&sql, &refs)?;
    }
    Ok(())
}

fn read_back(tx: &mut postgres::Transaction<'_>, t: &Table) -> Result<TableCheck, postgres::Error> {
    let names: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
    let rows = tx.query(
        &format!(
            "SELECT {} FROM {} ORDER BY {}",
            names.join(", "),
            t.name,
            t.order_by(true)
        ),
        &[],
    )?;
    let mut h = Sha256::new();
    for r in &rows {
        for (i, (_, ty)) in t.cols.iter().enumerate() {
            let v = match ty {
                Int => r.get::<_, Option<i64>>(i).map(Val::Int),
                Bool => r.get::<_, Option<bool>>(i).map(|b| Val::Int(i64::from(b))),
                Text => r.get::<_, Option<String>>(i).map(Val::Text),
                Bytes => r.get::<_, Option<Vec<u8>>>(i).map(Val::Bytes),
            }
            .unwrap_or(Val::Null);
            feed(&mut h, &v);
        }
    }
    Ok(TableCheck {
        table: t.name.into(),
        rows: rows.len() as u64,
        sha256: hex(&h.finalize()),
    })
}
