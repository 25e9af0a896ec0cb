//! The target half of the connector contract: writing users, groups and memberships into an
//! application (SCIM 2.0 service providers first).
//!
//! Same sans-IO rule as sources: a target session turns one typed [`TargetChange`] into the
//! [`HttpRequest`]s that apply it and each response into a typed [`TargetResult`]; the host sends
//! the requests (auth, retries, rate limits, secrets). Before any write the host sends the
//! session's [`TargetSession::discovery`] requests and hands their responses to
//! [`TargetSession::configure`], which narrows what the session does to what the application
//! announces (e.g. no PATCH when SCIM's `patch.supported` is false). [`Lookup`]s find an account
//! that already exists in the application, so the host adopts it instead of creating a duplicate.
//!
//! ```text
//! Connector::target() -> Target --open(options)--> TargetSession
//!   discovery() -> host sends each -> configure(responses)
//!   lookup_request(lookup) -> host sends it -> on_lookup(lookup, response) -> Vec<AppObject>
//!   requests(change) -> host sends each -> on_response(change, response) -> TargetResult
//! ```
//!
//! Declaration: a target is reached through [`crate::Connector::target`] (default `None`), and
//! declares itself with a [`TargetManifest`] beside the connector's [`crate::Manifest`]. A target
//! may be built in or a `.so` plugin: `usersync-abi` carries this half in a second, optional root
//! module, so plugins built before it still load and answer `None` (docs/connector-authoring.md §7).

use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};
use crate::options::Options;

/// A write operation a target may support. Also tags [`TargetEndpoint`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOperation {
    /// Read the application's own description of what it supports (SCIM `/ServiceProviderConfig`).
    Discover,
    /// Find an existing object by a unique attribute (adopt instead of duplicate).
    Lookup,
    /// List existing objects.
    List,
    /// Create a user.
    CreateUser,
    /// Change a user's attributes.
    UpdateUser,
    /// Deactivate a user (keep the account, block sign-in).
    DeactivateUser,
    /// Delete a user.
    DeleteUser,
    /// Create a group.
    CreateGroup,
    /// Rename a group in place.
    RenameGroup,
    /// Delete a group.
    DeleteGroup,
    /// Add members to a group.
    AddMembers,
    /// Remove members from a group.
    RemoveMembers,
}

impl TargetOperation {
    /// Every operation, in declaration order.
    pub const ALL: [TargetOperation; 12] = [
        TargetOperation::Discover,
        TargetOperation::Lookup,
        TargetOperation::List,
        TargetOperation::CreateUser,
        TargetOperation::UpdateUser,
        TargetOperation::DeactivateUser,
        TargetOperation::DeleteUser,
        TargetOperation::CreateGroup,
        TargetOperation::RenameGroup,
        TargetOperation::DeleteGroup,
        TargetOperation::AddMembers,
        TargetOperation::RemoveMembers,
    ];

    /// The snake_case name used in manifests, JSON and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetOperation::Discover => "discover",
            TargetOperation::Lookup => "lookup",
            TargetOperation::List => "list",
            TargetOperation::CreateUser => "create_user",
            TargetOperation::UpdateUser => "update_user",
            TargetOperation::DeactivateUser => "deactivate_user",
            TargetOperation::DeleteUser => "delete_user",
            TargetOperation::CreateGroup => "create_group",
            TargetOperation::RenameGroup => "rename_group",
            TargetOperation::DeleteGroup => "delete_group",
            TargetOperation::AddMembers => "add_members",
            TargetOperation::RemoveMembers => "remove_members",
        }
    }
}

impl std::fmt::Display for TargetOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP endpoint a target may call (for docs and firewall lists, like [`crate::Endpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEndpoint {
    /// HTTP method.
    pub method: String,
    /// URL template, e.g. `{base_url}/Users/{id}`.
    pub url: String,
    /// Why usersync calls it.
    pub purpose: String,
    /// The operation it serves.
    pub operation: TargetOperation,
}

/// What a target can do. In a [`TargetManifest`] it is the most the connector can do; a
/// session's [`TargetSession::capabilities`] after discovery is what this application allows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetCapabilities {
    /// Supported write operations (and `discover`, `lookup`, `list`).
    pub operations: Vec<TargetOperation>,
    /// Largest number of member changes in one add/remove request (0: membership unsupported).
    pub max_members_per_request: u32,
    /// Existing objects can be found by a unique attribute ([`Lookup`]).
    pub can_filter: bool,
    /// Existing objects can be listed.
    pub can_list: bool,
    /// Writes carry the object's version (`If-Match`) and a mismatch is reported
    /// ([`TargetResult::PreconditionFailed`]).
    pub etags: bool,
    /// Groups may contain groups (otherwise the host flattens nested source groups).
    #[serde(default)]
    pub nested_groups: bool,
}

impl TargetCapabilities {
    /// Whether an operation is supported.
    pub fn supports(&self, op: TargetOperation) -> bool {
        self.operations.contains(&op)
    }
}

/// The target half of a connector's declaration (beside its [`crate::Manifest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetManifest {
    /// The most this connector can do (a profile or the application may allow less).
    pub capabilities: TargetCapabilities,
    /// Every endpoint the target half may call.
    pub endpoints: Vec<TargetEndpoint>,
}

/// A connector's target half: opens target sessions. Reached through
/// [`crate::Connector::target`].
pub trait Target: Send + Sync {
    /// The target declaration.
    fn manifest(&self) -> TargetManifest;

    /// Validate options and build a target session. No I/O.
    fn open(&self, options: &Options) -> Result<Box<dyn TargetSession>, ConnectorError>;
}

/// A user as the target should hold it (after attribute mapping). `None` = not managed / empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetUser {
    /// Sign-in name (SCIM `userName`), unique in the application.
    pub user_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Primary (work) email.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the account may sign in.
    pub active: bool,
    /// Employee number (SCIM enterprise extension).
    #[serde(default)]
    pub employee_number: Option<String>,
    /// Department (SCIM enterprise extension).
    #[serde(default)]
    pub department: Option<String>,
    /// The manager's id **in the application** (not the source's id).
    #[serde(default)]
    pub manager_app_id: Option<String>,
}

/// One change to apply to the application. `source_key` is the stable source key of the object
/// (written to SCIM `externalId`); `app_id` is the application's id of an object usersync created
/// or adopted; `etag` is its last known version (sent as `If-Match` where the target uses ETags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum TargetChange {
    /// Create a user.
    CreateUser {
        /// Stable source key.
        source_key: String,
        /// Attributes.
        user: TargetUser,
    },
    /// Set a user's managed attributes to `user`.
    UpdateUser {
        /// Application id.
        app_id: String,
        /// Last known version.
        etag: Option<String>,
        /// Stable source key (re-asserted as `externalId`).
        source_key: String,
        /// Desired attributes; `None` fields are cleared in the application.
        user: TargetUser,
    },
    /// Deactivate a user (`active=false`).
    DeactivateUser {
        /// Application id.
        app_id: String,
        /// Last known version.
        etag: Option<String>,
    },
    /// Delete a user.
    DeleteUser {
        /// Application id.
        app_id: String,
        /// Last known version.
        etag: Option<String>,
    },
    /// Create a group (without members: they follow as [`TargetChange::AddMembers`]).
    CreateGroup {
        /// Stable source key.
        source_key: String,
        /// Display name.
        display_name: String,
    },
    /// Rename a group in place.
    RenameGroup {
        /// Application id.
        app_id: String,
        /// Last known version.
        etag: Option<String>,
        /// New display name.
        display_name: String,
    },
    /// Delete a group.
    DeleteGroup {
        /// Application id.
        app_id: String,
        /// Last known version.
        etag: Option<String>,
    },
    /// Add members (application ids) to a group; split into requests of at most
    /// `max_members_per_request`.
    AddMembers {
        /// The group's application id.
        group_app_id: String,
        /// Members' application ids.
        member_app_ids: Vec<String>,
    },
    /// Remove members (application ids) from a group; split like [`TargetChange::AddMembers`].
    RemoveMembers {
        /// The group's application id.
        group_app_id: String,
        /// Members' application ids.
        member_app_ids: Vec<String>,
    },
}

impl TargetChange {
    /// The operation this change performs.
    pub fn operation(&self) -> TargetOperation {
        match self {
            TargetChange::CreateUser { .. } => TargetOperation::CreateUser,
            TargetChange::UpdateUser { .. } => TargetOperation::UpdateUser,
            TargetChange::DeactivateUser { .. } => TargetOperation::DeactivateUser,
            TargetChange::DeleteUser { .. } => TargetOperation::DeleteUser,
            TargetChange::CreateGroup { .. } => TargetOperation::CreateGroup,
            TargetChange::RenameGroup { .. } => TargetOperation::RenameGroup,
            TargetChange::DeleteGroup { .. } => TargetOperation::DeleteGroup,
            TargetChange::AddMembers { .. } => TargetOperation::AddMembers,
            TargetChange::RemoveMembers { .. } => TargetOperation::RemoveMembers,
        }
    }
}

/// A question "does this object already exist in the application?".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Lookup {
    /// A user by sign-in name (SCIM `userName`, case-insensitive in SCIM).
    UserByUserName {
        /// The value.
        value: String,
    },
    /// A user by the source key usersync wrote (SCIM `externalId`).
    UserByExternalId {
        /// The value.
        value: String,
    },
    /// A group by display name.
    GroupByDisplayName {
        /// The value.
        value: String,
    },
    /// A group by the source key usersync wrote.
    GroupByExternalId {
        /// The value.
        value: String,
    },
}

/// An object found in the application by a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppObject {
    /// The application's id.
    pub app_id: String,
    /// Its version, when the application reports one.
    pub etag: Option<String>,
    /// Its stable source key as the application holds it (SCIM `externalId`), if any.
    pub external_id: Option<String>,
    /// Its name (`userName` or `displayName`).
    pub name: String,
}

/// The kind of object a [`TargetSession::list`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Users.
    User,
    /// Groups.
    Group,
}

/// A sans-IO listing of an application's objects, page by page (like a source [`crate::Cursor`]).
/// After an error the listing has not advanced: the same request may be sent again.
pub trait TargetListing: Send {
    /// The next request, or `None` when the listing is complete.
    fn next_request(&mut self) -> Option<HttpRequest>;

    /// Feed the response to the last request; returns that page's objects.
    fn on_response(&mut self, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError>;
}

/// The outcome of one write request. Each variant says what the host does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TargetResult {
    /// Created: record `app_id` (and `etag`) for the source object.
    Created {
        /// The application's id of the new object.
        app_id: String,
        /// Its version.
        etag: Option<String>,
    },
    /// Changed (or deleted, or membership applied); `etag` is the new version when reported.
    Updated {
        /// The new version, if the application sent it.
        etag: Option<String>,
    },
    /// The object already exists (HTTP 409, e.g. a duplicate `userName`). Host: look it up and
    /// adopt it, or report the conflict; never create a duplicate.
    Conflict {
        /// What the application said.
        detail: String,
        /// The application's reason code, when it sent one (SCIM `scimType`, e.g. `uniqueness`).
        reason: Option<String>,
    },
    /// The application refused this object's data (HTTP 400). Host: report this object, go on
    /// with the others, mark the run partial.
    Invalid {
        /// The attribute the application named, when it did.
        attribute: Option<String>,
        /// The application's reason code (SCIM `scimType`), if any.
        reason: Option<String>,
        /// What the application said.
        detail: String,
    },
    /// The object does not exist (any more) in the application.
    NotFound {
        /// What the application said.
        detail: String,
    },
    /// The object changed in the application since `etag` was read (HTTP 412). Host: read it
    /// again and retry once.
    PreconditionFailed {
        /// What the application said.
        detail: String,
    },
    /// Credentials rejected (401). Host: stop the push at once.
    Unauthorized {
        /// What the application said.
        detail: String,
    },
    /// The credential lacks a permission (403). Host: stop the push, name the permission.
    Forbidden {
        /// What the application said.
        detail: String,
        /// The permission the call needs, where known.
        needed: Option<String>,
    },
    /// Throttled (429). Host: wait and retry.
    Throttled {
        /// How long to wait, in milliseconds, if the application said.
        retry_after_ms: Option<u64>,
        /// What the application said.
        detail: String,
    },
    /// A temporary failure (5xx). Host: retry with backoff.
    Transient {
        /// What happened.
        detail: String,
    },
    /// The response was not what the protocol documents (bad JSON, a created object without an
    /// id). Host: stop the push; do nothing destructive.
    Protocol {
        /// What was wrong.
        detail: String,
    },
}

impl TargetResult {
    /// True when the write took effect.
    pub fn is_success(&self) -> bool {
        matches!(self, TargetResult::Created { .. } | TargetResult::Updated { .. })
    }

    /// True when the host should send the same request again after a wait.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TargetResult::Throttled { .. } | TargetResult::Transient { .. }
        )
    }

    /// True when the whole push must stop (credentials, permissions, protocol).
    pub fn stops_the_push(&self) -> bool {
        matches!(
            self,
            TargetResult::Unauthorized { .. }
                | TargetResult::Forbidden { .. }
                | TargetResult::Protocol { .. }
        )
    }
}

/// A configured connection to one application, for writing.
pub trait TargetSession: Send + Sync {
    /// Requests to send before anything else (e.g. SCIM `/ServiceProviderConfig`); may be empty.
    fn discovery(&self) -> Vec<HttpRequest>;

    /// Feed the responses to [`TargetSession::discovery`]'s requests, in the same order. An error
    /// (unreachable, unauthorized, malformed) stops the push before any write.
    fn configure(&mut self, responses: Vec<HttpResponse>) -> Result<(), ConnectorError>;

    /// What this session will do (after [`TargetSession::configure`]: what the application
    /// announced, narrowed by the connector's profile).
    fn capabilities(&self) -> TargetCapabilities;

    /// The request that answers a lookup. [`ConnectorError::Unsupported`] when the application
    /// cannot be queried that way.
    fn lookup_request(&self, lookup: &Lookup) -> Result<HttpRequest, ConnectorError>;

    /// The objects the lookup found (empty: none).
    fn on_lookup(&self, lookup: &Lookup, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError>;

    /// A listing of every object of a kind in the application (to find what usersync did not
    /// create, or reconcile after a push was killed). [`ConnectorError::Unsupported`] when the
    /// application cannot be listed reliably (`capabilities().can_list` is false).
    fn list(&self, kind: ObjectKind) -> Result<Box<dyn TargetListing>, ConnectorError>;

    /// The requests that apply one change, in order; each is independent and gets its own
    /// result (membership changes are split into chunks). [`ConnectorError::Unsupported`] when
    /// the application (or its profile) does not allow the change.
    fn requests(&self, change: &TargetChange) -> Result<Vec<HttpRequest>, ConnectorError>;

    /// Classify the response to one of [`TargetSession::requests`]' requests.
    fn on_response(&self, change: &TargetChange, response: HttpResponse) -> TargetResult;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_results_round_trip_as_tagged_json() {
        let c = TargetChange::AddMembers {
            group_app_id: "g1".into(),
            member_app_ids: vec!["u1".into()],
        };
        let j = serde_json::to_value(&c).expect("json");
        assert_eq!(j["change"], "add_members");
        assert_eq!(serde_json::from_value::<TargetChange>(j).expect("back"), c);
        let r = TargetResult::Invalid {
            attribute: Some("emails".into()),
            reason: Some("invalidValue".into()),
            detail: "bad".into(),
        };
        let j = serde_json::to_value(&r).expect("json");
        assert_eq!(j["result"], "invalid");
        assert_eq!(serde_json::from_value::<TargetResult>(j).expect("back"), r);
    }

    #[test]
    fn result_classes_tell_the_host_what_to_do() {
        assert!(TargetResult::Throttled {
            retry_after_ms: None,
            detail: String::new()
        }
        .is_retryable());
        assert!(!TargetResult::Conflict {
            detail: String::new(),
            reason: None
        }
        .is_retryable());
        assert!(TargetResult::Forbidden {
            detail: String::new(),
            needed: None
        }
        .stops_the_push());
        assert!(!TargetResult::Invalid {
            attribute: None,
            reason: None,
            detail: String::new()
        }
        .stops_the_push());
        assert!(TargetResult::Updated { etag: None }.is_success());
    }

    #[test]
    fn capabilities_without_the_nested_field_still_parse() {
        let j = serde_json::json!({
            "operations": ["create_user", "add_members"],
            "max_members_per_request": 100, "can_filter": true, "can_list": true, "etags": false
        });
        let c: TargetCapabilities = serde_json::from_value(j).expect("parse");
        assert!(c.supports(TargetOperation::AddMembers) && !c.nested_groups);
        assert_eq!(TargetOperation::ALL.len(), 12);
    }
}
