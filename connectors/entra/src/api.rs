//! Microsoft Graph wire types (JSON shapes of the responses the connector reads).
//!
//! Only what the connector needs is typed; every other property of a user or group is kept
//! in a `rest` map so custom attributes (`extension_<appId>_<name>`, `onPremisesExtensionAttributes`)
//! reach the model unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One page of an OData collection: `{"value": [...], "@odata.nextLink": "..."}`.
#[derive(Debug, Deserialize)]
pub struct CollectionPage<T> {
    /// The items of this page (may be empty even when a next link follows).
    pub value: Vec<T>,
    /// The full URL of the next page, to be followed verbatim.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// A `microsoft.graph.user` as returned with the connector's `$select`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    /// Object id (GUID): the key.
    #[serde(default)]
    pub id: Option<String>,
    /// UPN; for guests `alias_domain#EXT#@tenant.onmicrosoft.com`.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// SMTP address; may be null.
    #[serde(default)]
    pub mail: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Surname.
    #[serde(default)]
    pub surname: Option<String>,
    /// Whether the account may sign in (only returned when selected).
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// Guest invitation state: `PendingAcceptance` or `Accepted` (null for members).
    #[serde(default)]
    pub external_user_state: Option<String>,
    /// `$expand=manager` result: absent or null when the user has no manager.
    #[serde(default)]
    pub manager: Option<DirectoryObject>,
    /// Every other property (attributes).
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A `microsoft.graph.group`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphGroup {
    /// Object id.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name (not unique in Entra).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Every other property (attributes).
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A `microsoft.graph.directoryObject` in a members / memberOf / manager response,
/// discriminated by `@odata.type`.
#[derive(Debug, Deserialize)]
pub struct DirectoryObject {
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, `#microsoft.graph.servicePrincipal`, ...
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// Object id.
    #[serde(default)]
    pub id: Option<String>,
}

impl DirectoryObject {
    /// The type without its `#microsoft.graph.` prefix (`user`, `group`, `directoryRole`, ...).
    pub fn kind(&self) -> Option<&str> {
        self.odata_type
            .as_deref()
            .map(|t| t.trim_start_matches('#').trim_start_matches("microsoft.graph."))
    }
}

/// The `GET /users/{id}/photos` response item (`microsoft.graph.profilePhoto`).
#[derive(Debug, Deserialize)]
pub struct ProfilePhoto {
    /// The size id, e.g. `240x240` (`1x1` for the placeholder).
    #[serde(default)]
    pub id: Option<String>,
    /// Width in pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height in pixels.
    #[serde(default)]
    pub height: Option<u32>,
}

/// A Graph error: `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Deserialize)]
pub struct GraphErrorBody {
    /// The error.
    pub error: GraphError,
}

/// The `error` object of a Graph error.
#[derive(Debug, Deserialize)]
pub struct GraphError {
    /// Machine-readable code, e.g. `Request_ResourceNotFound`, `Authorization_RequestDenied`.
    #[serde(default)]
    pub code: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// `{"date","request-id","client-request-id"}`.
    #[serde(rename = "innerError", default)]
    pub inner_error: Option<InnerError>,
}

/// The `innerError` object (identifiers support asks for).
#[derive(Debug, Deserialize)]
pub struct InnerError {
    /// Request id.
    #[serde(rename = "request-id", default)]
    pub request_id: Option<String>,
    /// Date of the error.
    #[serde(default)]
    pub date: Option<String>,
}

/// A Microsoft identity platform token error:
/// `{"error","error_description","error_codes":[...],"trace_id","correlation_id"}`.
#[derive(Debug, Deserialize)]
pub struct TokenErrorBody {
    /// OAuth error, e.g. `invalid_client`, `unauthorized_client`, `invalid_scope`.
    pub error: String,
    /// Description starting with `AADSTSnnnnnn: ...`.
    #[serde(default)]
    pub error_description: String,
    /// The AADSTS numbers.
    #[serde(default)]
    pub error_codes: Vec<u64>,
    /// Trace id, for support.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Correlation id, for support.
    #[serde(default)]
    pub correlation_id: Option<String>,
}
