//! The records usersync moves from identity providers into the directory store.
//!
//! Everything here is plain data (serde only, no I/O). Identifiers are the provider's
//! own immutable ids; names and emails are attributes that may change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Free-form provider attributes (custom attributes, extension properties, ...).
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// The normalised lifecycle state of a user, derived from the provider's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// The user may sign in and is in scope for sync.
    Active,
    /// The account exists but is disabled or suspended by an administrator.
    Disabled,
    /// The account is locked (too many failed sign-ins, security hold); still exists.
    Locked,
    /// Created but never activated (Okta STAGED/PROVISIONED, OneLogin unactivated).
    Staged,
    /// Removed from the provider's active population (Okta DEPROVISIONED, Google archived).
    Deprovisioned,
}

impl UserState {
    /// Whether a user in this state should be active in the target directory.
    ///
    /// A locked account is a temporary condition of a current employee, so it stays active;
    /// disabled, staged and deprovisioned accounts do not.
    pub fn is_active(self) -> bool {
        matches!(self, UserState::Active | UserState::Locked)
    }
}

/// A user's status: the normalised state plus the provider's raw value, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// Normalised state the sync engine acts on.
    pub state: UserState,
    /// The provider's own status value(s), e.g. `"LOCKED_OUT"`, `"accountEnabled=false"`, `"status=3,state=1"`.
    pub raw: String,
}

impl UserStatus {
    /// Build a status from a normalised state and the provider's raw value.
    pub fn new(state: UserState, raw: impl Into<String>) -> Self {
        UserStatus {
            state,
            raw: raw.into(),
        }
    }
}

/// A reference to a user's manager, as the provider gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum ManagerRef {
    /// The manager's provider id (Entra, Okta `managerId`, OneLogin `manager_user_id`).
    Id(String),
    /// The manager's email or login (Google `relations[type=manager]`); the host resolves it.
    Email(String),
    /// The manager's username (Keycloak attribute holding a username).
    Username(String),
    /// A value that names the manager in a way only the fetched users can tell (Okta's
    /// free-text `profile.managerId`, an email that may be an alias): the engine resolves it
    /// to the one user whose field `keys[0]` equals `value`, else `keys[1]`, and so on. No
    /// user, or several, match: the user gets no manager (the connector keeps the raw value
    /// as an attribute) and the run counts it in a warning.
    Lookup {
        /// The raw value, as the provider gives it.
        value: String,
        /// Fields compared, in order: `id`, `username`, `email`, or an attribute name
        /// (`attributes.<name>` or `<name>`). Text compares without regard to case, except `id`.
        keys: Vec<String>,
    },
}

impl ManagerRef {
    /// The reference's raw value.
    pub fn value(&self) -> &str {
        match self {
            ManagerRef::Id(v) | ManagerRef::Email(v) | ManagerRef::Username(v) => v,
            ManagerRef::Lookup { value, .. } => value,
        }
    }
}

/// What a user listing says about the user's photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoHint {
    /// The user has no photo: nothing to fetch.
    None,
    /// The user has a photo of this version (an ETag): fetched only when the stored photo is of
    /// another version.
    Version(String),
}

/// A user as one provider holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The provider's immutable id (Graph object id, Okta id, Keycloak UUID, ...). The key.
    pub id: String,
    /// Sign-in name: UPN, Okta login, Keycloak username, Google primary email, OneLogin username.
    pub username: String,
    /// Primary email address, if any (Graph `mail` may be null).
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Given (first) name.
    pub given_name: Option<String>,
    /// Family (last) name.
    pub family_name: Option<String>,
    /// Normalised status with the provider's raw value.
    pub status: UserStatus,
    /// Manager, where the listing carries it (otherwise fetched with the `user_manager` operation).
    pub manager: Option<ManagerRef>,
    /// Whether the record says who the manager is: `true` when the listing carries the
    /// provider's manager field, so `manager: None` means "no manager" and the host asks no
    /// per-user manager query; `false` (the default, and what older plugins send) means the
    /// listing does not carry it, and the host asks `user_manager` when it needs managers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manager_known: bool,
    /// What the listing says about the user's photo, where it says anything (Google's
    /// `thumbnailPhotoEtag`): the host then fetches a photo only when there is one whose version
    /// it has not stored. `None` (the default): the listing does not say; the photo is fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<PhotoHint>,
    /// Other attributes (department, job title, custom attributes, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
}

impl User {
    /// A user with only the required fields set; the rest are empty.
    pub fn new(id: impl Into<String>, username: impl Into<String>, status: UserStatus) -> Self {
        User {
            id: id.into(),
            username: username.into(),
            email: None,
            display_name: None,
            given_name: None,
            family_name: None,
            status,
            manager: None,
            manager_known: false,
            photo: None,
            attributes: Attributes::new(),
        }
    }
}

/// Whether a group record is a real group or a role synced as a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A group.
    #[default]
    Group,
    /// A role (Keycloak realm role, OneLogin role) presented as a group.
    Role,
}

/// A group (or a role used as a group) as one provider holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The provider's immutable id.
    pub id: String,
    /// The group's name (Okta `profile.name`, Graph `displayName`, Google `email` or `name`).
    pub name: String,
    /// Description, if any.
    pub description: Option<String>,
    /// Parent group id, where the provider has a hierarchy (Keycloak).
    pub parent_id: Option<String>,
    /// Full path in the hierarchy, e.g. `/engineering/platform` (Keycloak).
    pub path: Option<String>,
    /// Group or role.
    #[serde(default)]
    pub kind: GroupKind,
    /// Other attributes (Okta group type, Google email, Graph groupTypes, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
}

impl Group {
    /// A group with only id and name set.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Group {
            id: id.into(),
            name: name.into(),
            description: None,
            parent_id: None,
            path: None,
            kind: GroupKind::Group,
            attributes: Attributes::new(),
        }
    }
}

/// The member side of a membership.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum MemberRef {
    /// A user, by provider id.
    User(String),
    /// A nested group, by provider id.
    Group(String),
    /// Every user of the customer/domain (Google member type `CUSTOMER`).
    AllUsers,
}

/// One membership edge: `member` belongs to `group_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    /// The group (or role) id.
    pub group_id: String,
    /// The member.
    pub member: MemberRef,
    /// True when the provider reports this edge directly; false for a server-side transitive edge.
    pub direct: bool,
}

impl Membership {
    /// A direct membership of a user in a group.
    pub fn direct_user(group_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Membership {
            group_id: group_id.into(),
            member: MemberRef::User(user_id.into()),
            direct: true,
        }
    }

    /// A direct membership of a group in a group.
    pub fn direct_group(group_id: impl Into<String>, child_id: impl Into<String>) -> Self {
        Membership {
            group_id: group_id.into(),
            member: MemberRef::Group(child_id.into()),
            direct: true,
        }
    }
}

/// A profile photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Photo {
    /// The user the photo belongs to.
    pub user_id: String,
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: String,
    /// The image bytes.
    pub bytes: Vec<u8>,
}

/// One record produced by a connector page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A user.
    User(User),
    /// A group or role.
    Group(Group),
    /// A membership edge.
    Membership(Membership),
    /// The manager of `user_id` (`None`: the user has no manager).
    Manager {
        /// The managed user.
        user_id: String,
        /// The manager.
        manager: Option<ManagerRef>,
    },
    /// A profile photo.
    Photo(Photo),
    /// A change-feed entry: only delta queries (`users_delta`, `groups_delta`) yield these.
    Feed(FeedEntry),
}

/// What a change feed says besides the changed objects themselves (which come as
/// [`Record::User`], [`Record::Group`] and, for added direct memberships, [`Record::Membership`]).
/// Entries apply in order: a later record about the same object wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum FeedEntry {
    /// The user is gone from the source (Graph `@removed`, either reason): like a user missing
    /// from a full listing.
    UserRemoved {
        /// Provider id.
        id: String,
        /// Deleted for good (Graph `deleted`), rather than restorable (`changed`).
        permanent: bool,
    },
    /// The group is gone from the source, with its memberships.
    GroupRemoved {
        /// Provider id.
        id: String,
        /// Deleted for good rather than restorable.
        permanent: bool,
    },
    /// A direct membership was removed (Graph `members@delta` with `@removed`).
    MembershipRemoved(Membership),
    /// The group's membership changed and the feed does not say how (Okta
    /// `lastMembershipUpdated`): the host re-reads its direct members.
    MembersChanged {
        /// Provider id.
        group_id: String,
    },
    /// The position to read the feed from next time (opaque: a Graph deltaLink, an Okta
    /// timestamp). The last record of a complete delta query; a query without it is incomplete.
    Watermark(String),
    /// The feed cannot answer from the watermark it was given (expired, reset by the provider,
    /// unreadable): the host runs a full read instead. Never "nothing changed".
    Resync {
        /// What the provider said.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let mut user = User::new(
            "u1",
            "Ada@Example.com",
            UserStatus::new(UserState::Locked, "LOCKED_OUT"),
        );
        user.manager = Some(ManagerRef::Id("u0".into()));
        user.attributes
            .insert("department".into(), serde_json::json!("R&D"));
        let records = vec![
            Record::User(user),
            Record::Group(Group::new("g1", "Engineers")),
            Record::Membership(Membership::direct_group("g1", "g2")),
            Record::Manager {
                user_id: "u1".into(),
                manager: None,
            },
            Record::Manager {
                user_id: "u2".into(),
                manager: Some(ManagerRef::Lookup {
                    value: "222222".into(),
                    keys: vec!["id".into(), "attributes.employeeNumber".into()],
                }),
            },
        ];
        let json = serde_json::to_string(&records).expect("serialise");
        let back: Vec<Record> = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(records, back);
        assert!(json.contains("\"state\":\"locked\""));
        assert!(json.contains("\"raw\":\"LOCKED_OUT\""));
    }

    #[test]
    fn active_and_locked_states_are_active() {
        assert!(UserState::Active.is_active());
        assert!(UserState::Locked.is_active());
        for s in [UserState::Disabled, UserState::Staged, UserState::Deprovisioned] {
            assert!(!s.is_active(), "{s:?}");
        }
    }
}
