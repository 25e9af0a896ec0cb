//! The backends the suite runs on: SQLite always, PostgreSQL when `USERSYNC_TEST_POSTGRES` is a
//! server URL (each test in a schema of its own, dropped afterwards).

use std::path::PathBuf;
use std::time::Duration;

use crate::{SqliteStore, Store, StoreError};

/// What a conformance check needs of a backend besides the [`Store`] trait: more handles on the
/// same store, and a few raw writes that stand for a crash, another process or a newer usersync.
pub(crate) trait Backend: Sync {
    /// A store handle of this backend.
    type S: Store + crate::DirectoryStore + Send + std::fmt::Debug + 'static;
    /// A new handle on the test's store (created and migrated at the first call).
    fn handle(&self) -> Self::S {
        self.open().expect("open the store")
    }
    /// Open the test's store for a sync.
    fn open(&self) -> Result<Self::S, StoreError>;
    /// Open the test's store for reading only.
    fn open_read_only(&self) -> Result<Self::S, StoreError>;
    /// How long `begin_run` waits on a held connection.
    fn set_lock_wait(s: &mut Self::S, wait: Duration);
    /// Run SQL that both backends understand on the store.
    fn exec(&self, sql: &str);
    /// One integer from a query that both backends understand (None: no row).
    fn query_i64(&self, sql: &str) -> Option<i64>;
    /// Make the process holding the lock of every connection look gone (a crash).
    fn kill_holders(&self);
    /// Make the holders look like another process that reuses their identity.
    fn forge_holders(&self);
    /// Mark the store as written by a newer usersync, at schema version `v`.
    fn set_version(&self, v: u32);
    /// The highest schema version this usersync knows for the backend.
    fn supported(&self) -> u32;
    /// Something that changes whenever anything in the store is written.
    fn fingerprint(&self) -> String;
}

/// SQLite: a file in a temporary directory.
pub(crate) struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    pub(crate) fn new() -> Sqlite {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.db");
        Sqlite { _dir: dir, path }
    }

    fn raw(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.path).expect("raw open");
        c.busy_timeout(Duration::from_secs(10)).expect("timeout");
        c
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    fn open(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(&self.path)
    }

    fn open_read_only(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_read_only(&self.path)
    }

    fn set_lock_wait(s: &mut SqliteStore, wait: Duration) {
        s.set_lock_wait(wait);
    }

    fn exec(&self, sql: &str) {
        self.raw().execute_batch(sql).expect("exec");
    }

    fn query_i64(&self, sql: &str) -> Option<i64> {
        use rusqlite::OptionalExtension;
        self.raw()
            .query_row(sql, [], |r| r.get(0))
            .optional()
            .expect("query")
    }

    fn kill_holders(&self) {
        // a pid that is not alive on this host
        let dead = (100_000u32..4_000_000)
            .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            .expect("a free pid");
        self.exec(&format!("UPDATE run_locks SET pid = {dead}"));
    }

    fn forge_holders(&self) {
        self.exec("UPDATE run_locks SET proc_start = -1");
    }

    fn set_version(&self, v: u32) {
        self.exec(&format!("PRAGMA user_version = {v}"));
    }

    fn supported(&self) -> u32 {
        crate::MIGRATIONS.len() as u32
    }

    fn fingerprint(&self) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let wal = std::fs::read(format!("{}-wal", self.path.display())).unwrap_or_default();
        format!("{:?}", (bytes, wal))
    }
}

#[cfg(feature = "postgres")]
pub(crate) use pg::Postgres;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::PgStore;

    /// PostgreSQL: a schema of its own in the database `USERSYNC_TEST_POSTGRES` names.
    pub(crate) struct Postgres {
        base: String,
        pub(crate) schema: String,
        admin: std::sync::Mutex<postgres::Client>,
    }

    static NEXT: AtomicU32 = AtomicU32::new(0);

    impl Postgres {
        /// The backend for the test `name`, or None (and a line saying it was skipped) without
        /// `USERSYNC_TEST_POSTGRES`. Panics, naming the variable, when the server cannot be reached.
        pub(crate) fn new(name: &str) -> Option<Postgres> {
            let Ok(base) = std::env::var("USERSYNC_TEST_POSTGRES") else {
                // straight to stderr: the test harness captures the print macros of passing tests
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: {name} on PostgreSQL (USERSYNC_TEST_POSTGRES is not set; set it to a \
                     server URL, e.g. postgres://postgres@127.0.0.1:5432/test, to run it)"
                );
                return None;
            };
            let schema = format!(
                "usersync_t_{}_{}_{}",
                name.chars().take(30).collect::<String>(),
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap_or_else(|e| {
                panic!(
                    "USERSYNC_TEST_POSTGRES is set ({}) but the server cannot be reached: {e}; start PostgreSQL \
                     or unset the variable to skip the PostgreSQL tests",
                    crate::mask_url(&base)
                )
            });
            admin
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .expect("create the test schema");
            Some(Postgres {
                base,
                schema,
                admin: std::sync::Mutex::new(admin),
            })
        }

        /// The store URL of this test (its schema; `extra` query parameters added).
        pub(crate) fn url(&self, extra: &str) -> String {
            let sep = if self.base.contains('?') { '&' } else { '?' };
            format!(
                "{}{sep}schema={}&application_name={}{extra}",
                self.base, self.schema, self.schema
            )
        }

        /// Run SQL as the admin connection (search path: the test's schema).
        pub(crate) fn admin(&self, sql: &str) -> Vec<postgres::Row> {
            let mut c = self.admin.lock().expect("admin lock");
            c.batch_execute(&format!("SET search_path TO {}", self.schema))
                .expect("search path");
            c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }

    impl Drop for Postgres {
        fn drop(&mut self) {
            if let Ok(mut c) = self.admin.lock() {
                let _ = c.batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{0}'; \
                     DROP SCHEMA IF EXISTS {0} CASCADE",
                    self.schema
                ));
            }
        }
    }

    impl Backend for Postgres {
        type S = PgStore;

        fn open(&self) -> Result<PgStore, StoreError> {
            PgStore::open(&self.url(""))
        }

        fn open_read_only(&self) -> Result<PgStore, StoreError> {
            PgStore::open_read_only(&self.url(""))
        }

        fn set_lock_wait(s: &mut PgStore, wait: Duration) {
            s.set_lock_wait(wait);
        }

        fn exec(&self, sql: &str) {
            let mut c = self.admin.lock().expect("admin lock");
            c.batch_execute(&format!("SET search_path TO {}; {sql}", self.schema))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }

        fn query_i64(&self, sql: &str) -> Option<i64> {
            self.admin(sql).first().map(|r| r.get(0))
        }

        fn kill_holders(&self) {
            // end the holders' presence sessions, as the server does when their process dies
            self.admin("SELECT pg_terminate_backend(backend_pid) FROM run_locks");
            std::thread::sleep(Duration::from_millis(200));
        }

        fn forge_holders(&self) {
            self.exec("UPDATE run_locks SET backend_start = 'another session'");
        }

        fn set_version(&self, v: u32) {
            self.exec(&format!("UPDATE usersync_schema SET version = {v}"));
        }

        fn supported(&self) -> u32 {
            crate::PG_MIGRATIONS.len() as u32
        }

        fn fingerprint(&self) -> String {
            let rows = self.admin(&format!(
                "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables \
                 WHERE table_schema = '{}'",
                self.schema
            ));
            let tables: Option<String> = rows.first().and_then(|r| r.get(0));
            let mut out = tables.clone().unwrap_or_default();
            for t in tables.unwrap_or_default().split(',').filter(|t| !t.is_empty()) {
                let rows = self.admin(&format!(
                    "SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM {t} x"
                ));
                let h: Option<String> = rows.first().and_then(|r| r.get(0));
                out.push_str(&format!(";{t}={}", h.unwrap_or_default()));
            }
            out
        }
    }
}
