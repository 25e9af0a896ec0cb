//! Per-target state: what usersync created or adopted in each application, and what it last
//! pushed there (issue 19). Kept by [`crate::Store::target_state`] and written by
//! [`crate::Store::write_target`].

use serde::{Deserialize, Serialize};

/// The kind of an object in a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A user account.
    User,
    /// A group.
    Group,
}

impl TargetKind {
    /// `user` or `group`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::User => "user",
            TargetKind::Group => "group",
        }
    }

    /// Parse [`TargetKind::as_str`].
    pub fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "user" => Some(TargetKind::User),
            "group" => Some(TargetKind::Group),
            _ => None,
        }
    }
}

/// How usersync came to manage an object in the application. usersync never touches an
/// object it did not create or adopt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOrigin {
    /// usersync created it.
    Created,
    /// It existed (same userName/externalId/displayName) and usersync adopted it.
    Adopted,
}

impl TargetOrigin {
    /// `created` or `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetOrigin::Created => "created",
            TargetOrigin::Adopted => "adopted",
        }
    }
}

/// One object usersync manages in a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetObject {
    /// User or group.
    pub kind: TargetKind,
    /// The stable source key (`connection/provider_id`), written to SCIM `externalId`.
    pub source_key: String,
    /// The application's id.
    pub app_id: String,
    /// Its last known version.
    pub etag: Option<String>,
    /// Hash of what was last pushed (`None`: created or adopted, attributes not pushed yet, so
    /// the next push sends them).
    pub hash: Option<String>,
    /// Created or adopted.
    pub origin: TargetOrigin,
    /// For users: whether the account was left active by the last push (false: deactivated).
    pub active: bool,
    /// When this row last changed, milliseconds since the Unix epoch.
    pub updated_ms: i64,
}

/// Everything the store keeps for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// Managed objects, by kind then source key.
    pub objects: Vec<TargetObject>,
    /// Memberships usersync pushed: (group source key, user source key).
    pub members: Vec<(String, String)>,
}

/// One write to a target's state. Applying the same write twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TargetWrite {
    /// Insert or replace a managed object (by kind and source key).
    Put(TargetObject),
    /// Forget a managed object (deleted in the app) and its memberships.
    Forget {
        /// User or group.
        kind: TargetKind,
        /// Source key.
        source_key: String,
    },
    /// A membership was pushed.
    AddMember {
        /// Group source key.
        group: String,
        /// User source key.
        user: String,
    },
    /// A membership was removed in the app.
    RemoveMember {
        /// Group source key.
        group: String,
        /// User source key.
        user: String,
    },
}
