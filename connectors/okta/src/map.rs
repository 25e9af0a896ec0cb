//! Okta wire objects -> usersync records, and Okta error responses -> [`ConnectorError`].
//! Pure functions: no I/O, no clock (rate-limit waits are computed from the response's own
//! `Date` header).

use serde_json::Value;
use usersync_sdk::model::{Attributes, Group, ManagerRef, User, UserState, UserStatus};
use usersync_sdk::paging::retry_after_seconds;
use usersync_sdk::{ConnectorError, HttpResponse};

use crate::api::{ApiError, ApiGroup, ApiUser};

/// Every user status the Okta API documents, plus the transitional `ACTIVATING`.
pub const USER_STATUSES: [&str; 9] = [
    "ACTIVE",
    "STAGED",
    "PROVISIONED",
    "RECOVERY",
    "PASSWORD_EXPIRED",
    "LOCKED_OUT",
    "SUSPENDED",
    "DEPROVISIONED",
    "ACTIVATING",
];

/// The group types Okta documents.
pub const GROUP_TYPES: [&str; 3] = ["OKTA_GROUP", "APP_GROUP", "BUILT_IN"];

/// Prefix of the attribute keys holding Okta's own metadata (as opposed to profile attributes).
pub const META_PREFIX: &str = "okta.";

/// Normalise an Okta user status. `None` for a status this connector does not know: the
/// caller must stop rather than guess (a wrong guess could deactivate someone).
pub fn user_state(status: &str) -> Option<UserState> {
    Some(match status {
        // Signed in normally, or active with a pending password change / reset.
        "ACTIVE" | "RECOVERY" | "PASSWORD_EXPIRED" => UserState::Active,
        "LOCKED_OUT" => UserState::Locked,
        // Created, not yet activated; ACTIVATING is the documented transition out of these.
        "STAGED" | "PROVISIONED" | "ACTIVATING" => UserState::Staged,
        "SUSPENDED" => UserState::Disabled,
        "DEPROVISIONED" => UserState::Deprovisioned,
        _ => return None,
    })
}

/// Profile attributes that become first-class [`User`] fields (not repeated in attributes).
/// `managerId` is not one of them: it is kept verbatim, because it is often free text (an
/// employee number, a name) that names no Okta user.
const USER_FIELDS: [&str; 5] = ["login", "email", "displayName", "firstName", "lastName"];

/// Turn `manager_match` entries into the host's lookup keys: `id` → `id`, `login` →
/// `username`, `email` → `email`, any other profile attribute `x` → `attributes.x`.
pub fn manager_keys(entries: &[String]) -> Result<Vec<String>, String> {
    if entries.is_empty() {
        return Err("must name at least one way to match, e.g. [\"id\", \"login\"]".into());
    }
    let mut keys = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let e = e.trim();
        if e.is_empty() || e.contains(char::is_whitespace) {
            return Err(format!("entry {} (`{e}`) is not a profile attribute name", i + 1));
        }
        let key = match e {
            "id" => "id".to_string(),
            "login" => "username".to_string(),
            "email" => "email".to_string(),
            "managerId" | "manager" => {
                return Err(format!(
                    "`{e}` is the reference itself; name the attribute it holds"
                ))
            }
            other => format!("attributes.{}", other.strip_prefix("profile.").unwrap_or(other)),
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn profile_str(profile: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    profile
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn put_meta(attrs: &mut Attributes, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        attrs.insert(format!("{META_PREFIX}{key}"), Value::String(v.clone()));
    }
}

/// Map a user. Errors name the user and what is wrong; the caller turns them into a protocol
/// error (a user that cannot be read must never be dropped, or the sync would deactivate it).
/// `manager_keys`: how `profile.managerId` names the manager ([`manager_keys`]).
pub fn user(api: ApiUser, manager_keys: &[String]) -> Result<User, String> {
    if api.id.trim().is_empty() {
        return Err("a user has an empty `id`".into());
    }
    let raw = api
        .status
        .clone()
        .ok_or_else(|| format!("user `{}` has no `status`", api.id))?;
    let state = user_state(&raw).ok_or_else(|| {
        format!(
            "user `{}` has status `{raw}`, which this connector does not know (known: {}); \
             refusing to guess whether the account is active",
            api.id,
            USER_STATUSES.join(", ")
        )
    })?;
    let login = profile_str(&api.profile, "login")
        .ok_or_else(|| format!("user `{}` has no `profile.login`", api.id))?;
    let mut u = User::new(api.id.clone(), login, UserStatus::new(state, raw));
    u.email = profile_str(&api.profile, "email");
    u.given_name = profile_str(&api.profile, "firstName");
    u.family_name = profile_str(&api.profile, "lastName");
    u.display_name = profile_str(&api.profile, "displayName").or_else(|| {
        let parts: Vec<&str> = [u.given_name.as_deref(), u.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    u.manager = manager(&api, manager_keys);
    // The whole profile comes with every user read (no `fields` projection is used), so a null
    // or absent `managerId` means "no manager": the host asks no per-user manager query.
    u.manager_known = true;
    for (k, v) in &api.profile {
        if v.is_null() || USER_FIELDS.contains(&k.as_str()) {
            continue;
        }
        u.attributes.insert(k.clone(), v.clone());
    }
    let a = &mut u.attributes;
    put_meta(a, "created", api.created.as_ref());
    put_meta(a, "activated", api.activated.as_ref());
    put_meta(a, "statusChanged", api.status_changed.as_ref());
    put_meta(a, "lastLogin", api.last_login.as_ref());
    put_meta(a, "lastUpdated", api.last_updated.as_ref());
    put_meta(a, "passwordChanged", api.password_changed.as_ref());
    put_meta(a, "transitioningToStatus", api.transitioning_to_status.as_ref());
    put_meta(
        a,
        "userTypeId",
        api.user_type.as_ref().and_then(|t| t.id.as_ref()),
    );
    if let Some(p) = api.credentials.as_ref().and_then(|c| c.provider.as_ref()) {
        put_meta(a, "credentialsProviderType", p.kind.as_ref());
        put_meta(a, "credentialsProviderName", p.name.as_ref());
    }
    Ok(u)
}

/// A user's manager reference, from `profile.managerId`: free text in real orgs (an Okta id,
/// an employee number, a name), so the host resolves it against the fetched users.
pub fn manager(api: &ApiUser, keys: &[String]) -> Option<ManagerRef> {
    profile_str(&api.profile, "managerId").map(|value| ManagerRef::Lookup {
        value,
        keys: keys.to_vec(),
    })
}

/// Map a group. The group type is kept in attribute `okta.type`; every profile attribute other
/// than `name` and `description` (e.g. an AD group's `samAccountName`, `dn`) is kept verbatim.
pub fn group(api: ApiGroup) -> Result<Group, String> {
    if api.id.trim().is_empty() {
        return Err("a group has an empty `id`".into());
    }
    let name = profile_str(&api.profile, "name")
        .ok_or_else(|| format!("group `{}` has no `profile.name`", api.id))?;
    let mut g = Group::new(api.id.clone(), name);
    g.description = profile_str(&api.profile, "description");
    for (k, v) in &api.profile {
        if v.is_null() || k == "name" || k == "description" {
            continue;
        }
        g.attributes.insert(k.clone(), v.clone());
    }
    let a = &mut g.attributes;
    put_meta(a, "type", api.group_type.as_ref());
    put_meta(a, "created", api.created.as_ref());
    put_meta(a, "lastUpdated", api.last_updated.as_ref());
    put_meta(a, "lastMembershipUpdated", api.last_membership_updated.as_ref());
    put_meta(
        a,
        "sourceHref",
        api.links
            .as_ref()
            .and_then(|l| l.source.as_ref())
            .and_then(|s| s.href.as_ref()),
    );
    if !api.object_class.is_empty() {
        a.insert(
            format!("{META_PREFIX}objectClass"),
            Value::Array(api.object_class.iter().cloned().map(Value::String).collect()),
        );
    }
    Ok(g)
}

/// How the session authenticates, for error hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `Authorization: SSWS <token>`.
    ApiToken,
    /// OAuth 2.0 service app (private_key_jwt, optionally DPoP).
    OAuth,
}

/// What a failed request was for: names the request in messages and the permission it needs.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    /// e.g. `GET /api/v1/users`.
    pub what: String,
    /// The OAuth scope the endpoint requires (`okta.users.read` or `okta.groups.read`).
    pub scope: &'static str,
    /// The session's auth kind.
    pub auth: AuthKind,
}

impl ErrorContext {
    fn needed(&self) -> String {
        match self.auth {
            AuthKind::ApiToken => format!(
                "the API token's administrator needs an admin role that can read users and groups \
                 (e.g. Read-Only Administrator) for {}",
                self.what
            ),
            AuthKind::OAuth => format!(
                "the service app needs the `{}` scope granted (Okta API Scopes tab) and an admin role \
                 that can read users and groups (e.g. Read-Only Administrator) for {}",
                self.scope, self.what
            ),
        }
    }
}

/// The longest wait usersync takes from an Okta rate-limit reset. Okta's rate-limit windows
/// are one minute; concurrency-limit 429s are documented to carry a reset that is "only a
/// suggestion" and have been seen about two minutes ahead.
pub const MAX_RESET_WAIT_MS: u64 = 60_000;

/// Map a non-2xx Okta response. Okta's `errorCode` decides where present; the HTTP status
/// (and an OAuth `WWW-Authenticate` challenge) otherwise.
pub fn error(response: &HttpResponse, ctx: &ErrorContext) -> ConnectorError {
    let body: ApiError = serde_json::from_slice(&response.body).unwrap_or_default();
    let challenge = response.header("WWW-Authenticate").unwrap_or("");
    let challenge_error = auth_param(challenge, "error");
    let mut detail = format!("HTTP {} from {}", response.status, ctx.what);
    if let Some(code) = &body.error_code {
        detail.push_str(&format!(": {code}"));
    }
    if let Some(s) = body
        .error_summary
        .as_deref()
        .or(body.error_description.as_deref())
    {
        detail.push_str(&format!(" {s}"));
    }
    for cause in body
        .error_causes
        .iter()
        .filter_map(|c| c.error_summary.as_deref())
    {
        detail.push_str(&format!(" ({cause})"));
    }
    if let Some(e) = challenge_error.as_deref().or(body.error.as_deref()) {
        detail.push_str(&format!(" [{e}]"));
    }
    if let Some(id) = &body.error_id {
        detail.push_str(&format!(" (errorId {id})"));
    }
    if body.error_code.is_none() && body.error.is_none() && !response.body.is_empty() {
        detail.push_str(&format!(": {}", response.body_snippet(200)));
    }

    let rate_limited = || ConnectorError::RateLimited {
        retry_after_ms: rate_limit_wait_ms(response),
        detail: detail.clone(),
    };
    match body.error_code.as_deref() {
        Some("E0000047") => return rate_limited(),
        Some("E0000011" | "E0000004" | "E0000005") => {
            return ConnectorError::Unauthorized { detail };
        }
        Some("E0000006" | "E0000015") => {
            return ConnectorError::Forbidden {
                needed: Some(ctx.needed()),
                detail,
            };
        }
        Some("E0000007") => return ConnectorError::NotFound { detail },
        // E0000239 (423): "try again later" while Okta finishes an operation on the object.
        Some("E0000009" | "E0000010" | "E0000239") => return ConnectorError::Transient { detail },
        // Validation / invalid search: our request is wrong, retrying won't help.
        Some("E0000001" | "E0000003" | "E0000031") => return ConnectorError::Protocol { detail },
        _ => {}
    }
    match challenge_error.as_deref().or(body.error.as_deref()) {
        Some("insufficient_scope") => {
            return ConnectorError::Forbidden {
                needed: Some(ctx.needed()),
                detail,
            }
        }
        Some("invalid_token" | "invalid_dpop_proof" | "use_dpop_nonce" | "invalid_client") => {
            return ConnectorError::Unauthorized { detail }
        }
        _ => {}
    }
    match response.status {
        401 => ConnectorError::Unauthorized { detail },
        403 => ConnectorError::Forbidden {
            needed: Some(ctx.needed()),
            detail,
        },
        404 | 410 => ConnectorError::NotFound { detail },
        423 => ConnectorError::Transient { detail },
        429 => rate_limited(),
        500 | 502 | 503 | 504 => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

/// How long to wait after a 429: `X-Rate-Limit-Reset` (UTC epoch seconds) minus the response's
/// own `Date` (never the local clock), clamped to 1 s ..= [`MAX_RESET_WAIT_MS`]; `Retry-After`
/// when the Okta headers are missing.
pub fn rate_limit_wait_ms(response: &HttpResponse) -> Option<u64> {
    let reset = response
        .header("X-Rate-Limit-Reset")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let date = response.header("Date").and_then(http_date_epoch);
    match (reset, date) {
        (Some(reset), Some(now)) => Some((reset.saturating_sub(now) * 1000).clamp(1000, MAX_RESET_WAIT_MS)),
        _ => retry_after_seconds(response).map(|s| s.saturating_mul(1000).min(MAX_RESET_WAIT_MS)),
    }
}

/// A parameter of a `WWW-Authenticate` challenge, e.g. `error` in
/// `Bearer realm="x", error="insufficient_scope"`.
pub fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(pos) = rest.find(name) {
        let before_ok = pos == 0 || matches!(rest.as_bytes()[pos - 1], b' ' | b',' | b'\t');
        let after = &rest[pos + name.len()..];
        let after_trim = after.trim_start();
        if before_ok {
            if let Some(v) = after_trim.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.strip_prefix('"') {
                    return q.find('"').map(|end| q[..end].to_string());
                }
                let end = v.find([',', ' ']).unwrap_or(v.len());
                return Some(v[..end].to_string());
            }
        }
        rest = after;
    }
    None
}

/// Parse an HTTP `Date` in IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`) to epoch seconds.
pub fn http_date_epoch(value: &str) -> Option<u64> {
    usersync_sdk::time::http_date_secs(value).and_then(|s| u64::try_from(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_maps_and_unknown_does_not() {
        let expected = [
            ("ACTIVE", UserState::Active),
            ("RECOVERY", UserState::Active),
            ("PASSWORD_EXPIRED", UserState::Active),
            ("LOCKED_OUT", UserState::Locked),
            ("STAGED", UserState::Staged),
            ("PROVISIONED", UserState::Staged),
            ("ACTIVATING", UserState::Staged),
            ("SUSPENDED", UserState::Disabled),
            ("DEPROVISIONED", UserState::Deprovisioned),
        ];
        for (raw, state) in expected {
            assert_eq!(user_state(raw), Some(state), "{raw}");
        }
        assert_eq!(expected.len(), USER_STATUSES.len());
        assert_eq!(user_state("active"), None);
        assert_eq!(user_state("ARCHIVED"), None);
    }

    #[test]
    fn http_dates_parse_to_epoch_seconds() {
        assert_eq!(http_date_epoch("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_epoch("Fri, 01 Jan 2021 00:00:00 GMT"),
            Some(1_609_459_200)
        );
        assert_eq!(
            http_date_epoch("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            http_date_epoch("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(http_date_epoch("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date_epoch("garbage"), None);
    }

    #[test]
    fn rate_limit_wait_uses_the_response_date_and_is_clamped() {
        let r = |reset: &str| {
            HttpResponse::new(429, "")
                .with_header("Date", "Fri, 01 Jan 2021 00:00:00 GMT")
                .with_header("X-Rate-Limit-Reset", reset)
        };
        assert_eq!(rate_limit_wait_ms(&r("1609459212")), Some(12_000));
        assert_eq!(rate_limit_wait_ms(&r("1609459200")), Some(1_000));
        assert_eq!(rate_limit_wait_ms(&r("1609459100")), Some(1_000));
        assert_eq!(rate_limit_wait_ms(&r("1609459330")), Some(MAX_RESET_WAIT_MS));
        let no_date = HttpResponse::new(429, "").with_header("X-Rate-Limit-Reset", "1609459212");
        assert_eq!(rate_limit_wait_ms(&no_date), None);
        let retry_after = HttpResponse::new(429, "").with_header("Retry-After", "3");
        assert_eq!(rate_limit_wait_ms(&retry_after), Some(3_000));
    }

    #[test]
    fn challenge_params_are_found_not_confused_with_error_description() {
        let c = r#"Bearer authorization_uri="http://x/oauth2/v1/authorize", realm="IdP", scope="okta.users.read", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="/api/v1/users""#;
        assert_eq!(auth_param(c, "error").as_deref(), Some("insufficient_scope"));
        assert_eq!(
            auth_param(r#"DPoP error="invalid_dpop_proof""#, "error").as_deref(),
            Some("invalid_dpop_proof")
        );
        assert_eq!(
            auth_param("DPoP error=use_dpop_nonce, x=y", "error").as_deref(),
            Some("use_dpop_nonce")
        );
        assert_eq!(auth_param(r#"Bearer error_description="x""#, "error"), None);
    }
}
