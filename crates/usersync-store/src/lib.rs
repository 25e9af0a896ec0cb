//! The directory store: users, groups, direct and effective memberships, photos and run
//! history, behind the [`Store`] trait. [`SqliteStore`] is the embedded default (WAL mode,
//! versioned migrations, one transaction per applied run).
//!
//! Users and groups are keyed by (connection, provider id), never by a mutable name or
//! email. Usernames are unique across the whole store by [`username_key`] (NFC, then lower
//! case): the sync engine checks [`Store::username_holders`] and reports a collision instead
//! of writing it, and the database enforces it with a unique index as a last line.

mod sqlite;
mod types;

pub use sqlite::{SqliteStore, MIGRATIONS};
pub use types::{
    username_key, Change, ConnectionState, EffectiveMembership, LinkRow, Member, RunOutcome, RunRecord,
    RunStatus, StoredGroup, StoredMembership, StoredPhoto, StoredUser, UsernameHolder,
};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("store database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// Data in the store could not be decoded.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer usersync.
    #[error("the store is at schema version {found}, newer than this usersync supports ({supported}); upgrade usersync")]
    TooNew {
        /// Version found.
        found: u32,
        /// Highest version known.
        supported: u32,
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

    /// Record the start of a run (committed at once); marks earlier runs of the connection that
    /// were still `running` as `interrupted`. Returns the run id.
    fn begin_run(&mut self, connection: &str, started_ms: i64) -> Result<i64, StoreError>;

    /// Apply changes and record the run's outcome, in one transaction: either all of it is
    /// in the store afterwards, or none of it (crash, kill -9, power loss).
    fn apply(
        &mut self,
        connection: &str,
        run_id: i64,
        changes: &[Change],
        outcome: &RunOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Record the outcome of a run that applies nothing (dry run, blocked, failed).
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
}
