//! Plain records the store keeps and the changes it applies.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use usersync_model::{Attributes, GroupKind, ManagerRef, UserState};

/// The key that makes usernames unique: Unicode NFC, then lower case (full Unicode case
/// folding by `to_lowercase`). `Ådа` typed with a combining ring and `ådа` are the same key.
pub fn username_key(username: &str) -> String {
    username.nfc().collect::<String>().to_lowercase().nfc().collect()
}

/// A user as stored for one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    /// The connection it came from.
    pub connection: String,
    /// The provider's immutable id (the key, with the connection).
    pub provider_id: String,
    /// Username (unique across the store by [`username_key`]).
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Whether the local account is active.
    pub active: bool,
    /// The provider's normalised state when last seen.
    pub state: UserState,
    /// The provider's raw status when last seen.
    pub status_raw: String,
    /// Manager reference, if fetched.
    pub manager: Option<ManagerRef>,
    /// Attributes (mapped, and the provider's own unless the policy drops them).
    pub attributes: Attributes,
    /// Why the user is inactive (`disabled at source`, `missing from source`, `out of scope`).
    pub inactive_reason: Option<String>,
}

/// A group as stored for one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// The connection it came from.
    pub connection: String,
    /// The provider's immutable id.
    pub provider_id: String,
    /// Local name (after the policy's name mapping).
    pub name: String,
    /// The provider's name.
    pub source_name: String,
    /// Group or role.
    pub kind: GroupKind,
    /// Description.
    pub description: Option<String>,
    /// Attributes.
    pub attributes: Attributes,
}

/// The member side of a stored membership, by provider id within the same connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Member {
    /// A user.
    User(String),
    /// A nested group.
    Group(String),
}

/// A direct membership edge, by provider ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredMembership {
    /// The group's provider id.
    pub group: String,
    /// The member.
    pub member: Member,
}

/// An effective (direct or inherited) membership of a user in a group, with the chain of
/// groups that grants it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EffectiveMembership {
    /// The group's provider id.
    pub group: String,
    /// The user's provider id.
    pub user: String,
    /// Group names (the provider's) from the user's direct group to the group: one element
    /// when direct. When the provider resolved the nesting server side the chain is unknown and
    /// the first element is `*` (`["*", "Staff"]`).
    pub path: Vec<String>,
}

/// A stored photo's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPhoto {
    /// The user's provider id.
    pub user: String,
    /// MIME type.
    pub content_type: String,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// The provider's version of the photo (Google `thumbnailPhotoEtag`), where its listing
    /// gives one: a photo of the same version is not fetched again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The bytes, when the policy keeps them.
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
}

/// Everything the store holds for one connection: the "before" side of a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionState {
    /// Users by provider id order.
    pub users: Vec<StoredUser>,
    /// Groups.
    pub groups: Vec<StoredGroup>,
    /// Direct memberships.
    pub memberships: Vec<StoredMembership>,
    /// Effective memberships.
    pub effective: Vec<EffectiveMembership>,
    /// Photos.
    pub photos: Vec<StoredPhoto>,
}

/// One stored membership row, as [`crate::Store::state_streaming`] hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRow<'a> {
    /// A direct membership.
    Direct(&'a StoredMembership),
    /// An effective membership; its path as the store keeps it: a JSON array of group names
    /// (compact, as `serde_json` writes it).
    Effective {
        /// Group provider id.
        group: &'a str,
        /// User provider id.
        user: &'a str,
        /// The path, JSON text.
        path_json: &'a str,
    },
}

/// A username already taken by some user of any connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameHolder {
    /// The [`username_key`].
    pub key: String,
    /// The holder's connection.
    pub connection: String,
    /// The holder's provider id.
    pub provider_id: String,
    /// The username as stored.
    pub username: String,
}

/// One write the store applies. Users and groups are addressed by (run's connection,
/// provider id); applying the same change twice is harmless. The large records are boxed so
/// that a change costs 80 bytes plus its strings: a plan holds one per membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Insert or replace a user (by provider id). Shared: the plan hands the wanted record
    /// over without copying it.
    PutUser(#[serde(with = "shared")] std::sync::Arc<StoredUser>),
    /// Delete a user with its memberships and photo.
    DeleteUser {
        /// Provider id.
        provider_id: String,
    },
    /// Insert or replace a group.
    PutGroup(Box<StoredGroup>),
    /// Delete a group with its memberships (as group and as member).
    DeleteGroup {
        /// Provider id.
        provider_id: String,
    },
    /// Add a direct membership.
    AddMembership(StoredMembership),
    /// Add many direct user memberships and insert or re-path many effective memberships,
    /// in compact form (what a plan emits: see [`crate::LinkBatch`]).
    AddLinks(Box<crate::LinkBatch>),
    /// Remove a direct membership.
    RemoveMembership(StoredMembership),
    /// Insert or replace an effective membership (path changes included).
    PutEffective(EffectiveMembership),
    /// Remove an effective membership.
    RemoveEffective {
        /// Group provider id.
        group: String,
        /// User provider id.
        user: String,
    },
    /// Insert or replace a photo.
    PutPhoto(Box<StoredPhoto>),
    /// Remove a photo.
    RemovePhoto {
        /// User provider id.
        user: String,
    },
    /// Forget the connection's change-feed state: every watermark and the whole source copy
    /// (applied before the other feed changes of the run: a full run rewrites them after it).
    ResetFeed,
    /// Set one change feed's watermark (see [`crate::Store::watermarks`]).
    PutWatermark {
        /// The feed (e.g. `users`, `groups`).
        feed: String,
        /// The connector's opaque position.
        value: String,
    },
    /// Insert or replace one object of the connection's source copy.
    PutSource(SourceObject),
    /// Remove one object of the source copy.
    RemoveSource {
        /// The object's kind.
        kind: String,
        /// Its key within the kind.
        id: String,
    },
}

/// One object of a connection's source copy: what the provider last said, before the policy,
/// kept so that an incremental run can rebuild the complete source from a change feed. The store
/// does not interpret it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    /// The kind (`user`, `group`, `link`, ...).
    pub kind: String,
    /// Its key within the kind.
    pub id: String,
    /// The object, as the sync engine encodes it (JSON text).
    pub body: String,
}

/// Serde for a shared record, as the record itself (serde's own `Arc` support needs a crate
/// feature that would rebuild every crate using serde).
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        (**v).serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In progress (or the process died: see [`RunStatus::Interrupted`]).
    Running,
    /// Changes were applied.
    Applied,
    /// Dry run: the plan was computed, nothing applied.
    DryRun,
    /// A safety gate stopped the run; nothing applied.
    Blocked,
    /// The run failed (fetch, store or config error).
    Failed,
    /// The process ended while the run was in progress (found at the next run).
    Interrupted,
}

impl RunStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Applied => "applied",
            RunStatus::DryRun => "dry_run",
            RunStatus::Blocked => "blocked",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parse the snake_case name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "applied" => RunStatus::Applied,
            "dry_run" => RunStatus::DryRun,
            "blocked" => RunStatus::Blocked,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// The outcome of a run, written when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Final status.
    pub status: RunStatus,
    /// Counts (the JSON contract's users/groups/memberships objects).
    pub counts: serde_json::Value,
    /// Errors and warnings, one line each.
    pub errors: Vec<String>,
    /// The plan, as JSON.
    pub plan: serde_json::Value,
    /// HTTP requests made.
    pub requests: u64,
    /// Users the source returned (only meaningful for a complete fetch).
    pub source_users: Option<u64>,
}

/// A run as recorded in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// Connection name.
    pub connection: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// End, milliseconds since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// Status.
    pub status: RunStatus,
    /// Counts.
    pub counts: serde_json::Value,
    /// Errors.
    pub errors: Vec<String>,
    /// The plan (only in [`crate::Store::run`], empty in listings).
    pub plan: serde_json::Value,
    /// HTTP requests made.
    pub requests: u64,
    /// Users the source returned.
    pub source_users: Option<u64>,
}

/// The run that holds a connection's run lock: only it may apply changes to the connection
/// (see [`crate::Store::begin_run`]). Its run id doubles as a fencing token: ids only grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHolder {
    /// Run id.
    pub run_id: i64,
    /// Process id of the usersync that runs it.
    pub pid: u32,
    /// Host name of that process.
    pub host: String,
    /// When it took the lock, milliseconds since the Unix epoch.
    pub since_ms: i64,
}

impl std::fmt::Display for RunHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} (pid {} on {}) since {}",
            self.run_id,
            self.pid,
            self.host,
            utc(self.since_ms)
        )
    }
}

/// `2026-12-07T13:45:00Z` for milliseconds since the Unix epoch (UTC, whole seconds).
pub fn utc(ms: i64) -> String {
    match chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{ms} ms after 1970-01-01T00:00:00Z"),
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_796_651_100_000), "2026-12-07T13:45:00Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(946_684_799_999), "1999-12-31T23:59:59Z");
        assert_eq!(super::utc(-1), "1969-12-31T23:59:59Z");
    }
}
