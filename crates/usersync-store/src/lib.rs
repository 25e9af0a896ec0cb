//! The directory store: users, groups, direct and effective memberships, photos and run
//! history, behind the [`Store`] trait. [`SqliteStore`] is the embedded default (WAL mode,
//! versioned migrations, one transaction per applied run).
//!
//! Users and groups are keyed by (connection, provider id), never by a mutable name or
//! email. Usernames are unique across the whole store by [`username_key`] (NFC, then lower
//! case): the sync engine checks [`Store::username_holders`] and reports a collision instead
//! of writing it, and the database enforces it with a unique index as a last line.

use std::collections::BTreeMap;

mod batch;
#[cfg(test)]
mod conformance;
mod directory;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
mod target_types;
mod types;

#[cfg(feature = "postgres")]
pub use postgres::{
    copy_store, is_postgres_url, mask_url, CopyReport, Lease, PgStore, TableCheck, PG_MIGRATIONS,
};

pub use batch::{BadIndex, LinkBatch};
pub use directory::{DirectoryRead, DirectoryStore};
pub use sqlite::{DirectoryLinks, PosixKey, PosixKind};
pub use sqlite::{SqliteStore, FOREIGN_LOCK_STALE_AFTER, MIGRATIONS, OLDEST_READABLE};
pub use target_types::{TargetKind, TargetObject, TargetOrigin, TargetState, TargetWrite};
pub use types::{
    username_key, utc, Change, ConnectionState, EffectiveMembership, LinkRow, Member, RunHolder, RunOutcome,
    RunRecord, RunStatus, SourceObject, StoredGroup, StoredMembership, StoredPhoto, StoredUser,
    UsernameHolder,
};

/// A store failure. Every variant about the store file names its path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("store database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// Data in the store could not be decoded.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer usersync. Refused before anything is written.
    #[error(
        "the store `{path}` is at schema version {found}, newer than this usersync supports ({supported}); \
         it was not modified: use a newer usersync with it, or point [store] path at another file"
    )]
    TooNew {
        /// The store file.
        path: String,
        /// Version found.
        found: u32,
        /// Highest version known.
        supported: u32,
    },
    /// A read-only open found a store that needs a migration first.
    #[error(
        "the store `{path}` is at schema version {found}, too old to read without upgrading it (this \
         usersync's is {supported}); run `usersync sync` once to upgrade it"
    )]
    NeedsUpgrade {
        /// The store file.
        path: String,
        /// Version found.
        found: u32,
        /// Version this usersync reads.
        supported: u32,
    },
    /// The file failed SQLite's integrity check (or is not a database). Refused before anything
    /// is written.
    #[error(
        "the store `{path}` is damaged ({detail}); it was not modified and nothing was fetched: restore it \
         from a backup, or move it aside so that the next sync starts a new store (a first sync)"
    )]
    Damaged {
        /// The store file.
        path: String,
        /// SQLite's finding (first lines of `PRAGMA quick_check`, or its error).
        detail: String,
    },
    /// The store cannot be written (or, for reading, its WAL cannot be read) by this user.
    #[error("cannot write the store `{path}`: {detail}")]
    NotWritable {
        /// The store file.
        path: String,
        /// What is not writable by whom, and the fix.
        detail: String,
    },
    /// Another run holds the connection (see [`Store::begin_run`]).
    #[error(
        "connection `{connection}` is being synced by {holder}; nothing was fetched and nothing recorded: \
         run again when it has finished, or set USERSYNC_LOCK_WAIT_SECS to wait for it (a lock whose \
         process is gone is taken over by the next run)"
    )]
    Held {
        /// The connection.
        connection: String,
        /// The run holding it.
        holder: RunHolder,
    },
    /// The run lost its lock before applying (taken over by another run): its plan may be stale.
    #[error(
        "run {run_id} of `{connection}` no longer holds the connection ({now}); nothing was applied, \
         because its plan may not match the store any more: run the sync again"
    )]
    Fenced {
        /// The connection.
        connection: String,
        /// This run.
        run_id: i64,
        /// Who holds the connection now.
        now: String,
    },
    /// PostgreSQL reported an error (the URL is shown with its password masked).
    #[error("store database error ({url}): {detail}")]
    Postgres {
        /// The store URL, password masked.
        url: String,
        /// The server's or the driver's message, and the fix where known.
        detail: String,
    },
    /// This backend does not implement a feature (e.g. per-target state for `usersync push`).
    #[error("this store backend does not support {what} yet")]
    Unsupported {
        /// The feature.
        what: String,
    },
    /// The file could not be opened or created.
    #[error("cannot open store `{path}`: {reason}")]
    Open {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The directory store. Another backend (e.g. PostgreSQL for several hosts) implements this.
pub trait Store: Send {
    /// Everything stored for one connection.
    fn state(&self, connection: &str) -> Result<ConnectionState, StoreError>;

    /// Everything stored for one connection, except that direct and effective memberships
    /// are handed to `link` one row at a time (in no particular order) instead of being
    /// collected: the returned state's `memberships` and `effective` are empty. The sync engine
    /// keeps them in a compact form of its own, so reading a store of millions of memberships
    /// does not need a string pair (and a path) in memory for each. An error from `link` stops
    /// the read and is returned.
    fn state_streaming(
        &self,
        connection: &str,
        link: &mut dyn FnMut(LinkRow<'_>) -> Result<(), StoreError>,
    ) -> Result<ConnectionState, StoreError> {
        let mut st = self.state(connection)?;
        for m in std::mem::take(&mut st.memberships) {
            link(LinkRow::Direct(&m))?;
        }
        for e in std::mem::take(&mut st.effective) {
            let path_json = serde_json::to_string(&e.path).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            link(LinkRow::Effective {
                group: &e.group,
                user: &e.user,
                path_json: &path_json,
            })?;
        }
        Ok(st)
    }

    /// Every username in the store with its holder (all connections).
    fn username_holders(&self) -> Result<Vec<UsernameHolder>, StoreError>;

    /// Take the connection's run lock and record the start of a run (committed at once).
    /// Returns the run id.
    ///
    /// One run per connection at a time: while another live run holds the connection, this
    /// waits (for as long as the backend is configured to) and then fails with
    /// [`StoreError::Held`] naming that run, without recording anything. A lock whose holder is
    /// gone (its process no longer alive) is taken over with a warning; earlier runs of the
    /// connection still `running` are then marked `interrupted`. The lock is released by
    /// [`Store::apply`] and [`Store::finish_run`]; holding it from before the store is read
    /// until the apply is what makes a run apply its plan to the state it planned against.
    fn begin_run(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError>;

    /// Apply changes and record the run's outcome, in one transaction: either all of it is
    /// in the store afterwards, or none of it (crash, kill -9, power loss). Refused with
    /// [`StoreError::Fenced`] (nothing applied) when the run no longer holds the connection.
    fn apply(
        &mut self,
        connection: &str,
        run_id: i64,
        changes: &[Change],
        outcome: &RunOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Record the outcome of a run that applies nothing (dry run, blocked, failed), and release
    /// its lock.
    fn finish_run(&mut self, run_id: i64, outcome: &RunOutcome, now_ms: i64) -> Result<(), StoreError>;

    /// Users the source returned in the last applied run of the connection, if any.
    fn last_source_users(&self, connection: &str) -> Result<Option<u64>, StoreError>;

    /// Runs, newest first.
    fn runs(&self, connection: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, StoreError>;

    /// One run with its plan.
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;

    /// Users, optionally of one connection, ordered by username.
    fn users(&self, connection: Option<&str>) -> Result<Vec<StoredUser>, StoreError>;

    /// Groups, optionally of one connection, ordered by name.
    fn groups(&self, connection: Option<&str>) -> Result<Vec<StoredGroup>, StoreError>;

    /// Photo of a user, with bytes when stored.
    fn photo(&self, connection: &str, user: &str) -> Result<Option<StoredPhoto>, StoreError>;

    /// Everything kept for one target (`usersync push`): the objects usersync created or adopted
    /// in the application (app id, ETag, hash of what was last pushed) and the memberships it
    /// pushed. An unknown target has an empty state.
    fn target_state(&self, target: &str) -> Result<TargetState, StoreError> {
        let _ = target;
        Err(StoreError::Unsupported {
            what: "per-target state (usersync push)".into(),
        })
    }

    /// Apply writes to a target's state in one transaction (all or none). A push calls it after
    /// each successful write to the application (a create's app id is recorded at once), so a
    /// push killed halfway converges on the next run without duplicates.
    fn write_target(&mut self, target: &str, writes: &[TargetWrite]) -> Result<(), StoreError> {
        let _ = (target, writes);
        Err(StoreError::Unsupported {
            what: "per-target state (usersync push)".into(),
        })
    }

    /// The connection's change-feed watermarks by feed, as the last applied run that read them
    /// wrote them ([`Change::PutWatermark`], in the same transaction as that run's changes). A
    /// backend that keeps no feed state answers none: every run of the connection is a full one.
    fn watermarks(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let _ = connection;
        Ok(BTreeMap::new())
    }

    /// Hand every object of the connection's source copy ([`Change::PutSource`]) to `each`, in
    /// no particular order. An error from `each` stops the read and is returned.
    fn source_objects(
        &self,
        connection: &str,
        each: &mut dyn FnMut(SourceObject) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _ = (connection, each);
        Ok(())
    }

    /// The provider's version (ETag) of each stored photo of `connection` that has one, by user
    /// provider id: the sync fetches a photo again only when its listing gives another version.
    /// A store that keeps no versions answers none (every photo is fetched).
    fn photo_versions(&self, connection: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let _ = connection;
        Ok(BTreeMap::new())
    }
}
