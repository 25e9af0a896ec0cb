//! Wire types of the Admin SDK Directory API (`admin.directory_v1` discovery schemas), as far
//! as usersync reads them. Unknown fields are ignored; every field is optional on the wire
//! because a `fields=` partial response (or an empty page) may omit it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A page of `users.list` (`admin#directory#users`). An empty result may omit `users`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersPage {
    /// The users of this page.
    #[serde(default)]
    pub users: Vec<WireUser>,
    /// Token of the next page (valid for three days); absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A user (`admin#directory#user`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUser {
    /// Immutable id.
    #[serde(default)]
    pub id: Option<String>,
    /// Primary email (the sign-in name).
    #[serde(default)]
    pub primary_email: Option<String>,
    /// Names.
    #[serde(default)]
    pub name: Option<WireUserName>,
    /// Suspended by an administrator or by Google.
    #[serde(default)]
    pub suspended: Option<bool>,
    /// Why the account is suspended (only when `suspended`).
    #[serde(default)]
    pub suspension_reason: Option<String>,
    /// Archived (Archived User licence).
    #[serde(default)]
    pub archived: Option<bool>,
    /// Super administrator.
    #[serde(default)]
    pub is_admin: Option<bool>,
    /// Delegated administrator.
    #[serde(default)]
    pub is_delegated_admin: Option<bool>,
    /// Organisational unit path, `/` for the top level.
    #[serde(default)]
    pub org_unit_path: Option<String>,
    /// Customer id of the account.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub creation_time: Option<String>,
    /// Last login time (RFC 3339).
    #[serde(default)]
    pub last_login_time: Option<String>,
    /// Alias addresses.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Alias addresses outside the account's primary domain (e.g. the `.test-google-a.com` one).
    #[serde(default)]
    pub non_editable_aliases: Vec<String>,
    /// Organisations (title, department, cost centre...).
    #[serde(default)]
    pub organizations: Option<serde_json::Value>,
    /// Relations to other users (`type: manager`).
    #[serde(default)]
    pub relations: Option<serde_json::Value>,
    /// External ids (employee id...).
    #[serde(default)]
    pub external_ids: Option<serde_json::Value>,
    /// Phone numbers.
    #[serde(default)]
    pub phones: Option<serde_json::Value>,
    /// Custom schema values: schema name -> field name -> value.
    #[serde(default)]
    pub custom_schemas: Option<BTreeMap<String, serde_json::Value>>,
    /// ETag of the photo, when the user has one.
    #[serde(default)]
    pub thumbnail_photo_etag: Option<String>,
    /// Enrolled in 2-step verification.
    #[serde(default)]
    pub is_enrolled_in2_sv: Option<bool>,
}

/// `UserName`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUserName {
    /// First name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Read-only "given family".
    #[serde(default)]
    pub full_name: Option<String>,
    /// Display name, when set.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A page of `groups.list` (`admin#directory#groups`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsPage {
    /// The groups of this page.
    #[serde(default)]
    pub groups: Vec<WireGroup>,
    /// Token of the next page; absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A group (`admin#directory#group`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireGroup {
    /// Immutable id.
    #[serde(default)]
    pub id: Option<String>,
    /// The group's address.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Number of direct members, as a decimal string (int64 in JSON is a string).
    #[serde(default)]
    pub direct_members_count: Option<serde_json::Value>,
    /// Created by an administrator.
    #[serde(default)]
    pub admin_created: Option<bool>,
    /// Alias addresses.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Aliases outside the primary domain.
    #[serde(default)]
    pub non_editable_aliases: Vec<String>,
}

/// A page of `members.list` (`admin#directory#members`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersPage {
    /// The members of this page.
    #[serde(default)]
    pub members: Vec<WireMember>,
    /// Token of the next page; absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A member (`admin#directory#member`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMember {
    /// Member id (user id, group id, or the customer id for `CUSTOMER`).
    #[serde(default)]
    pub id: Option<String>,
    /// Member address (absent for `CUSTOMER`).
    #[serde(default)]
    pub email: Option<String>,
    /// `OWNER`, `MANAGER` or `MEMBER`.
    #[serde(default)]
    pub role: Option<String>,
    /// `USER`, `GROUP`, `CUSTOMER` (all users of the account) or `EXTERNAL`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Member status.
    #[serde(default)]
    pub status: Option<String>,
}

/// `users.photos.get` (`admin#directory#user#photo`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePhoto {
    /// Web-safe base64 image data (`-`, `_`, `*` for `=`, `.` padding).
    #[serde(default)]
    pub photo_data: Option<String>,
    /// `JPEG`, `PNG`, `GIF`, `BMP`, `TIFF` (or a full MIME type).
    #[serde(default)]
    pub mime_type: Option<String>,
}

/// The error envelope of Google APIs: `{"error":{"code","message","errors":[...],"status"}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: WireError,
}

/// The error object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WireError {
    /// HTTP status repeated.
    #[serde(default)]
    pub code: Option<u16>,
    /// Human message.
    #[serde(default)]
    pub message: Option<String>,
    /// Legacy per-error details, each with a `reason` (`forbidden`, `userRateLimitExceeded`...).
    #[serde(default)]
    pub errors: Vec<WireErrorItem>,
    /// Canonical status (`PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`...), in newer bodies.
    #[serde(default)]
    pub status: Option<String>,
}

/// One entry of `error.errors`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WireErrorItem {
    /// Machine-readable reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Error domain (`global`, `usageLimits`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}
