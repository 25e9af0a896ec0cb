//! Wire types of the Keycloak Admin REST API (the fields usersync reads).
//!
//! Field names follow the Admin REST OpenAPI (`UserRepresentation`, `GroupRepresentation`,
//! `RoleRepresentation`, `ErrorRepresentation`). Everything optional in the spec is optional here;
//! `null` is accepted wherever a field is optional.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `UserRepresentation` (full or brief form).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRep {
    /// Immutable id (a UUID on current servers; LDAP-federated ids may differ).
    pub id: String,
    /// Username (lower-cased by Keycloak).
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Whether the email was verified.
    pub email_verified: Option<bool>,
    /// Whether the account is enabled: Keycloak's only status.
    pub enabled: Option<bool>,
    /// Custom attributes, `{name: [values]}` (absent in the brief form).
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// Creation time, epoch milliseconds.
    pub created_timestamp: Option<i64>,
    /// Id of the user-storage provider (LDAP, Kerberos) the user comes from.
    pub federation_link: Option<String>,
    /// Set on the technical user behind a client's service account.
    pub service_account_client_id: Option<String>,
    /// Pending required actions (`VERIFY_EMAIL`, `UPDATE_PASSWORD`, ...).
    pub required_actions: Option<Vec<String>>,
}

/// `GroupRepresentation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRep {
    /// Immutable id.
    pub id: String,
    /// Name (unique among siblings).
    pub name: String,
    /// Description (Keycloak 25 and later).
    pub description: Option<String>,
    /// Full path, e.g. `/engineering/platform`.
    pub path: Option<String>,
    /// Parent id (Keycloak 23 and later, on sub-groups).
    pub parent_id: Option<String>,
    /// Number of direct sub-groups (Keycloak 23 and later; absent on older servers).
    pub sub_group_count: Option<u64>,
    /// Embedded sub-groups: the whole tree on servers before 23, empty (or search matches only) after.
    pub sub_groups: Option<Vec<GroupRep>>,
    /// Attributes, `{name: [values]}` (full form only).
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
}

/// `RoleRepresentation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRep {
    /// Immutable id.
    pub id: String,
    /// Name (what `/roles/{role-name}/users` is keyed by).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Whether the role is a composite of other roles.
    pub composite: Option<bool>,
    /// Whether it is a client role (always false under `/roles`).
    pub client_role: Option<bool>,
    /// Attributes (full form only).
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
}

/// Every error body Keycloak sends: `ErrorRepresentation` (`errorMessage`, admin API) and the OAuth2
/// form (`error`, `error_description`: token endpoint, and admin API exceptions such as
/// `{"error":"HTTP 403 Forbidden"}` or `{"error":"unknown_error"}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// OAuth2 error code, or the exception message on admin API errors.
    pub error: Option<String>,
    /// OAuth2 error description.
    pub error_description: Option<String>,
    /// Admin API `ErrorRepresentation.errorMessage`.
    #[serde(rename = "errorMessage")]
    pub error_message: Option<String>,
    /// Admin API `ErrorRepresentation.field`.
    pub field: Option<String>,
}

impl ErrorBody {
    /// Parse an error body leniently: a body that is not one of the known shapes (HTML from a
    /// proxy, an empty 403) yields an empty `ErrorBody`.
    pub fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// One line for humans: `error: description` / `errorMessage (field)`; `None` when empty.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(e) = self.error.as_deref().filter(|s| !s.is_empty()) {
            parts.push(e.to_string());
        }
        if let Some(d) = self.error_description.as_deref().filter(|s| !s.is_empty()) {
            parts.push(d.to_string());
        }
        if let Some(m) = self.error_message.as_deref().filter(|s| !s.is_empty()) {
            match self.field.as_deref().filter(|s| !s.is_empty()) {
                Some(f) => parts.push(format!("{m} (field `{f}`)")),
                None => parts.push(m.to_string()),
            }
        }
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(": "))
        }
    }
}
