//! OneLogin wire types (API v1 envelopes and v2 bare arrays), as documented.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A field that may be absent (`None`, with `#[serde(default)]`) or present, possibly `null`
/// (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A v2 user (`GET /api/2/users`, `GET /api/2/users/{id}`). Fields absent from a
/// response default to `None`.
#[derive(Debug, Deserialize)]
pub struct User {
    /// Numeric id.
    pub id: u64,
    /// Sign-in name.
    #[serde(default)]
    pub username: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub firstname: Option<String>,
    /// Family name.
    #[serde(default)]
    pub lastname: Option<String>,
    /// Status code (0 unactivated, 1 active, 2 suspended, 3 locked, 4 password expired,
    /// 5 awaiting password reset, 7 password pending, 8 security questions required).
    #[serde(default)]
    pub status: Option<i64>,
    /// State code (0 unapproved, 1 approved, 2 rejected, 3 unlicensed).
    #[serde(default)]
    pub state: Option<i64>,
    /// The user's one group.
    #[serde(default)]
    pub group_id: Option<u64>,
    /// Roles held.
    #[serde(default)]
    pub role_ids: Option<Vec<u64>>,
    /// Manager's OneLogin id: `None` when the response leaves the field out, `Some(None)` when it
    /// says `null` (no manager).
    #[serde(default, deserialize_with = "present")]
    pub manager_user_id: Option<Option<u64>>,
    /// Custom attributes (shortname -> value).
    #[serde(default)]
    pub custom_attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// Department.
    #[serde(default)]
    pub department: Option<String>,
    /// Job title.
    #[serde(default)]
    pub title: Option<String>,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// External id.
    #[serde(default)]
    pub external_id: Option<serde_json::Value>,
    /// Directory (AD/LDAP connector) id.
    #[serde(default)]
    pub directory_id: Option<u64>,
}

/// A v1 envelope: `{status, pagination, data}`.
#[derive(Debug, Deserialize)]
pub struct V1Envelope<T> {
    /// Paging block.
    #[serde(default)]
    pub pagination: Option<V1Pagination>,
    /// The items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

/// v1 paging block.
#[derive(Debug, Deserialize)]
pub struct V1Pagination {
    /// Cursor for the next page; null on the last.
    #[serde(default)]
    pub after_cursor: Option<String>,
}

/// A v1 group (`GET /api/1/groups`).
#[derive(Debug, Deserialize)]
pub struct Group {
    /// Numeric id.
    pub id: u64,
    /// Name.
    pub name: String,
}

/// A v2 role (`GET /api/2/roles`).
#[derive(Debug, Deserialize)]
pub struct Role {
    /// Numeric id.
    pub id: u64,
    /// Name.
    pub name: String,
}

/// An item of `GET /api/2/roles/{id}/users`.
#[derive(Debug, Deserialize)]
pub struct RoleUser {
    /// The user's id.
    pub id: u64,
    /// Whether the role is assigned (`include_unassigned=true` also lists unassigned users).
    #[serde(default = "assigned_default")]
    pub assigned: bool,
}

fn assigned_default() -> bool {
    true
}

/// Every error body OneLogin uses, read leniently.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// v1: `{"status":{"error":true,"code","type","message"}}`; v2 (b): `{"status":400, ...}`.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    /// v2 (a): `statusCode`.
    #[serde(default, rename = "statusCode")]
    pub status_code: Option<u16>,
    /// v2 (a): `name`, e.g. `UnauthorizedError`.
    #[serde(default)]
    pub name: Option<String>,
    /// v2 (a): `message`.
    #[serde(default)]
    pub message: Option<serde_json::Value>,
    /// v2 (b): `error`, e.g. `BadRequestError`.
    #[serde(default)]
    pub error: Option<String>,
    /// v2 (b): `description`.
    #[serde(default)]
    pub description: Option<String>,
}

impl ErrorBody {
    /// A one-line summary: the error type and message, whichever envelope carried them.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(serde_json::Value::Object(st)) = &self.status {
            if let Some(t) = st.get("type").and_then(|v| v.as_str()) {
                parts.push(t.to_string());
            }
            if let Some(m) = st.get("message") {
                parts.push(value_text(m));
            }
        }
        if let Some(n) = self.name.as_ref().or(self.error.as_ref()) {
            parts.push(n.clone());
        }
        if let Some(m) = &self.message {
            parts.push(value_text(m));
        }
        if let Some(d) = &self.description {
            parts.push(d.clone());
        }
        parts.join(": ")
    }

    /// The v1 `status.type` or v2 error name, if present.
    pub fn kind(&self) -> Option<String> {
        if let Some(serde_json::Value::Object(st)) = &self.status {
            if let Some(t) = st.get("type").and_then(|v| v.as_str()) {
                return Some(t.to_string());
            }
        }
        self.name.clone().or_else(|| self.error.clone())
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => {
            // v1 message objects look like {"attribute":"id","description":"ID is incorrect"}
            let attr = o.get("attribute").and_then(|a| a.as_str());
            let desc = o.get("description").and_then(|a| a.as_str());
            match (attr, desc) {
                (Some(a), Some(d)) => format!("{a}: {d}"),
                (None, Some(d)) => d.to_string(),
                _ => v.to_string(),
            }
        }
        other => other.to_string(),
    }
}
