//! The questions a host asks a connector session.

use serde::{Deserialize, Serialize};

/// The operations a connector may implement. Also used to tag manifest endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Obtain or refresh an access token (performed by the host).
    Token,
    /// Interactive OAuth2 authorization (performed by the host's `auth login`).
    Authorize,
    /// List every user.
    ListUsers,
    /// Fetch one user.
    GetUser,
    /// Fetch a user's manager.
    UserManager,
    /// A user's direct groups.
    UserGroups,
    /// A user's groups including those inherited through nesting (server side).
    UserTransitiveGroups,
    /// A user's profile photo.
    UserPhoto,
    /// List every group.
    ListGroups,
    /// Direct members of a group.
    GroupMembers,
    /// Members of a group including nested ones (server side).
    GroupTransitiveMembers,
    /// List roles (used as groups).
    ListRoles,
    /// Users holding a role.
    RoleMembers,
    /// Child groups of a group (hierarchical providers).
    GroupChildren,
    /// Users changed since a watermark (a change feed; see [`Query::UsersDelta`]).
    UsersDelta,
    /// Groups (and their memberships) changed since a watermark (see [`Query::GroupsDelta`]).
    GroupsDelta,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 16] = [
        Operation::Token,
        Operation::Authorize,
        Operation::ListUsers,
        Operation::GetUser,
        Operation::UserManager,
        Operation::UserGroups,
        Operation::UserTransitiveGroups,
        Operation::UserPhoto,
        Operation::ListGroups,
        Operation::GroupMembers,
        Operation::GroupTransitiveMembers,
        Operation::ListRoles,
        Operation::RoleMembers,
        Operation::GroupChildren,
        Operation::UsersDelta,
        Operation::GroupsDelta,
    ];

    /// The snake_case name used in manifests, JSON and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Token => "token",
            Operation::Authorize => "authorize",
            Operation::ListUsers => "list_users",
            Operation::GetUser => "get_user",
            Operation::UserManager => "user_manager",
            Operation::UserGroups => "user_groups",
            Operation::UserTransitiveGroups => "user_transitive_groups",
            Operation::UserPhoto => "user_photo",
            Operation::ListGroups => "list_groups",
            Operation::GroupMembers => "group_members",
            Operation::GroupTransitiveMembers => "group_transitive_members",
            Operation::ListRoles => "list_roles",
            Operation::RoleMembers => "role_members",
            Operation::GroupChildren => "group_children",
            Operation::UsersDelta => "users_delta",
            Operation::GroupsDelta => "groups_delta",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One question for a session; each yields one cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Query {
    /// Every user (all statuses the provider can list).
    ListUsers,
    /// One user by provider id.
    GetUser {
        /// Provider id.
        user_id: String,
    },
    /// A user's manager: yields one `Record::Manager` (with `None` when there is none).
    UserManager {
        /// Provider id.
        user_id: String,
    },
    /// Direct group memberships of a user.
    UserGroups {
        /// Provider id.
        user_id: String,
    },
    /// Transitive group memberships of a user (server side).
    UserTransitiveGroups {
        /// Provider id.
        user_id: String,
    },
    /// A user's photo: yields one `Record::Photo`, or nothing when the user has none.
    UserPhoto {
        /// Provider id.
        user_id: String,
    },
    /// Every group (top level and, for hierarchical providers, what the listing returns).
    ListGroups,
    /// Direct members of a group (users and nested groups).
    GroupMembers {
        /// Provider id.
        group_id: String,
    },
    /// Transitive members of a group (server side).
    GroupTransitiveMembers {
        /// Provider id.
        group_id: String,
    },
    /// Child groups of a group (yields `Record::Group` with `parent_id` set).
    GroupChildren {
        /// Provider id.
        group_id: String,
    },
    /// Every role, as groups of kind `Role`.
    ListRoles,
    /// Users holding a role, as memberships.
    RoleMembers {
        /// Provider id (or name, where the provider keys roles by name).
        role_id: String,
    },
    /// The users changed since `since`, a watermark an earlier delta query returned: each
    /// created or changed user in full (`Record::User`), each removed one as
    /// `FeedEntry::UserRemoved`, then exactly one `FeedEntry::Watermark` (the position to ask
    /// from next time) as the last record. `since: None` asks for the current watermark only
    /// (no other records): the host takes it just before a full listing, so that nothing
    /// changed during the listing is missed (a change seen twice is applied twice, harmlessly).
    /// A watermark the feed cannot answer from (expired, reset) yields `FeedEntry::Resync`,
    /// never an empty answer. Offered when the manifest's `incremental` capability is true.
    UsersDelta {
        /// The watermark to read from; `None`: only the current one.
        since: Option<String>,
    },
    /// The groups changed since `since`, as for [`Query::UsersDelta`]: changed groups in full
    /// (`Record::Group`), removed ones (`FeedEntry::GroupRemoved`), and their direct
    /// membership changes either exactly (`Record::Membership` added,
    /// `FeedEntry::MembershipRemoved` removed) or as `FeedEntry::MembersChanged` (the host
    /// re-reads that group's members with `group_members`); then one `FeedEntry::Watermark`.
    GroupsDelta {
        /// The watermark to read from; `None`: only the current one.
        since: Option<String>,
    },
}

impl Query {
    /// The operation this query performs.
    pub fn operation(&self) -> Operation {
        match self {
            Query::ListUsers => Operation::ListUsers,
            Query::GetUser { .. } => Operation::GetUser,
            Query::UserManager { .. } => Operation::UserManager,
            Query::UserGroups { .. } => Operation::UserGroups,
            Query::UserTransitiveGroups { .. } => Operation::UserTransitiveGroups,
            Query::UserPhoto { .. } => Operation::UserPhoto,
            Query::ListGroups => Operation::ListGroups,
            Query::GroupMembers { .. } => Operation::GroupMembers,
            Query::GroupTransitiveMembers { .. } => Operation::GroupTransitiveMembers,
            Query::GroupChildren { .. } => Operation::GroupChildren,
            Query::ListRoles => Operation::ListRoles,
            Query::RoleMembers { .. } => Operation::RoleMembers,
            Query::UsersDelta { .. } => Operation::UsersDelta,
            Query::GroupsDelta { .. } => Operation::GroupsDelta,
        }
    }
}
