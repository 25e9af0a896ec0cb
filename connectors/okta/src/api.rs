//! Okta Management API wire types (serde), as documented in Okta's management OpenAPI
//! specification (`User`, `Group`, `Error`). Only the fields usersync reads are typed; the
//! rest of a user's `profile` is kept as free-form JSON so custom attributes survive.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A user object (`GET /api/v1/users`, `/api/v1/users/{id}`, `/api/v1/groups/{id}/users`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiUser {
    /// Immutable Okta id (`00u...`).
    pub id: String,
    /// Lifecycle status (`ACTIVE`, `DEPROVISIONED`, ...). Absent only under a `fields` projection.
    #[serde(default)]
    pub status: Option<String>,
    /// Target status while a lifecycle operation runs (`ACTIVE`, `DEPROVISIONED`, `PROVISIONED`).
    #[serde(default)]
    pub transitioning_to_status: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created: Option<String>,
    /// Activation time.
    #[serde(default)]
    pub activated: Option<String>,
    /// Last status change.
    #[serde(default)]
    pub status_changed: Option<String>,
    /// Last sign-in.
    #[serde(default)]
    pub last_login: Option<String>,
    /// Last update of the user object.
    #[serde(default)]
    pub last_updated: Option<String>,
    /// Last password change.
    #[serde(default)]
    pub password_changed: Option<String>,
    /// The user type (`{"id": "oty..."}`).
    #[serde(default, rename = "type")]
    pub user_type: Option<IdRef>,
    /// The profile: base attributes (`login`, `email`, `firstName`, `managerId`, ...) and
    /// custom attributes, kept verbatim.
    #[serde(default)]
    pub profile: Map<String, Value>,
    /// Credentials (only `provider` is read: where the user is mastered).
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

/// A member of a group page: only the id is needed for a membership edge.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiMember {
    /// The member user's id.
    pub id: String,
}

/// `{"id": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub struct IdRef {
    /// The id.
    #[serde(default)]
    pub id: Option<String>,
}

/// The part of `credentials` usersync reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// The authentication provider (`OKTA`, `ACTIVE_DIRECTORY`, `LDAP`, `FEDERATION`, `SOCIAL`, `IMPORT`).
    #[serde(default)]
    pub provider: Option<Provider>,
}

/// `credentials.provider`.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    /// Provider type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Provider name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A group object (`GET /api/v1/groups`, `/api/v1/users/{id}/groups`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// Immutable Okta id (`00g...`).
    pub id: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN` (absent in some documented user-groups examples).
    #[serde(default, rename = "type")]
    pub group_type: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created: Option<String>,
    /// Last profile update.
    #[serde(default)]
    pub last_updated: Option<String>,
    /// Last membership change.
    #[serde(default)]
    pub last_membership_updated: Option<String>,
    /// `okta:user_group`, `okta:windows_security_principal`, ...
    #[serde(default)]
    pub object_class: Vec<String>,
    /// `name`, `description` and, for imported groups, the source directory's attributes.
    #[serde(default)]
    pub profile: Map<String, Value>,
    /// Links; `source.href` names the app an `APP_GROUP` was imported from.
    #[serde(default, rename = "_links")]
    pub links: Option<GroupLinks>,
}

/// The group `_links` usersync reads.
#[derive(Debug, Clone, Deserialize)]
pub struct GroupLinks {
    /// The importing app (APP_GROUP only).
    #[serde(default)]
    pub source: Option<Href>,
}

/// `{"href": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Href {
    /// The link target.
    #[serde(default)]
    pub href: Option<String>,
}

/// Okta's error body: `{errorCode, errorSummary, errorLink, errorId, errorCauses}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// `E0000007`, `E0000011`, ...
    #[serde(default)]
    pub error_code: Option<String>,
    /// Human summary.
    #[serde(default)]
    pub error_summary: Option<String>,
    /// Request id, for Okta support.
    #[serde(default)]
    pub error_id: Option<String>,
    /// Details.
    #[serde(default)]
    pub error_causes: Vec<ErrorCause>,
    /// OAuth-style error (`invalid_token`, `invalid_dpop_proof`, ...), sent by the OAuth
    /// resource server instead of the Okta shape.
    #[serde(default)]
    pub error: Option<String>,
    /// OAuth-style description.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// One of `errorCauses`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCause {
    /// The cause.
    #[serde(default)]
    pub error_summary: Option<String>,
}
