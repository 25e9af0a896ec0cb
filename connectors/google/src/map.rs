//! Wire -> model mapping (pure functions) and Google error bodies -> [`ConnectorError`].

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use usersync_model::{
    Group, ManagerRef, MemberRef, Membership, Photo, PhotoHint, User, UserState, UserStatus,
};
use usersync_sdk::paging::retry_after_seconds;
use usersync_sdk::{ConnectorError, HttpResponse};

use crate::api::{ErrorEnvelope, WireGroup, WireMember, WirePhoto, WireUser};

/// The `reason`s Google uses for throttling (retry with backoff), per the Directory API's
/// "Limits and quotas" page and the common Google API error reasons.
pub const THROTTLE_REASONS: [&str; 4] = [
    "userRateLimitExceeded",
    "rateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
];

/// The normalised status of a Google user: `archived` wins over `suspended`.
///
/// The raw value keeps both flags (and the suspension reason) verbatim, e.g.
/// `suspended=true,archived=false,suspensionReason=ADMIN`.
pub fn user_status(user: &WireUser) -> UserStatus {
    let suspended = user.suspended.unwrap_or(false);
    let archived = user.archived.unwrap_or(false);
    let mut raw = format!("suspended={suspended},archived={archived}");
    if let Some(reason) = user.suspension_reason.as_deref().filter(|r| !r.is_empty()) {
        raw.push_str(",suspensionReason=");
        raw.push_str(reason);
    }
    let state = if archived {
        UserState::Deprovisioned
    } else if suspended {
        UserState::Disabled
    } else {
        UserState::Active
    };
    UserStatus::new(state, raw)
}

/// The user fields a manager's email is compared with, in order: the primary address, then
/// every alias (administrators type whichever address they know; resolved by the host).
pub const MANAGER_KEYS: [&str; 3] = ["email", "attributes.aliases", "attributes.nonEditableAliases"];

/// The manager of a user: the first `relations[]` entry of type `manager`, whose `value` is
/// one of the manager's email addresses, primary or alias (resolved to a user by the host).
pub fn manager_of(user: &WireUser) -> Option<ManagerRef> {
    let relations = user.relations.as_ref()?.as_array()?;
    relations
        .iter()
        .filter(|r| r.get("type").and_then(|t| t.as_str()) == Some("manager"))
        .filter_map(|r| r.get("value").and_then(|v| v.as_str()))
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(|v| ManagerRef::Lookup {
            value: v.to_string(),
            keys: MANAGER_KEYS.iter().map(|k| k.to_string()).collect(),
        })
}

/// Map a wire user to a model user. A user without `id` or `primaryEmail` is a protocol
/// error (never skipped: a user silently missing from a listing could be deactivated).
pub fn map_user(user: WireUser) -> Result<User, ConnectorError> {
    let id = user
        .id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol("a user in the response has no `id`"))?;
    let email = user
        .primary_email
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol(format!("user `{id}` has no `primaryEmail`")))?;
    let mut out = User::new(id, email.clone(), user_status(&user));
    out.email = Some(email);
    out.manager = manager_of(&user);
    // Every user read asks for `relations` (USER_FIELDS), and Google leaves an empty field out:
    // no manager relation means no manager, not "not listed".
    out.manager_known = true;
    // Every user read asks for `thumbnailPhotoEtag` (USER_FIELDS): present only when the user has a
    // photo, and a new value when the photo changes.
    out.photo = Some(match user.thumbnail_photo_etag.as_deref().map(str::trim) {
        Some(etag) if !etag.is_empty() => PhotoHint::Version(etag.to_string()),
        _ => PhotoHint::None,
    });
    if let Some(name) = &user.name {
        out.given_name = name.given_name.clone().filter(|s| !s.is_empty());
        out.family_name = name.family_name.clone().filter(|s| !s.is_empty());
        out.display_name = name
            .display_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| name.full_name.clone().filter(|s| !s.is_empty()));
    }
    let a = &mut out.attributes;
    let mut put = |k: &str, v: serde_json::Value| {
        if !v.is_null() {
            a.insert(k.to_string(), v);
        }
    };
    put("suspended", user.suspended.unwrap_or(false).into());
    put("archived", user.archived.unwrap_or(false).into());
    if let Some(v) = user.suspension_reason.clone() {
        put("suspensionReason", v.into());
    }
    if let Some(v) = user.is_admin {
        put("isAdmin", v.into());
    }
    if let Some(v) = user.is_delegated_admin {
        put("isDelegatedAdmin", v.into());
    }
    if let Some(v) = user.org_unit_path.clone() {
        put("orgUnitPath", v.into());
    }
    if let Some(v) = user.customer_id.clone() {
        put("customerId", v.into());
    }
    if let Some(v) = user.creation_time.clone() {
        put("creationTime", v.into());
    }
    if let Some(v) = user.last_login_time.clone() {
        put("lastLoginTime", v.into());
    }
    if let Some(v) = user.is_enrolled_in2_sv {
        put("isEnrolledIn2Sv", v.into());
    }
    if let Some(v) = user.thumbnail_photo_etag.clone() {
        put("thumbnailPhotoEtag", v.into());
    }
    if !user.aliases.is_empty() {
        put("aliases", user.aliases.clone().into());
    }
    if !user.non_editable_aliases.is_empty() {
        put("nonEditableAliases", user.non_editable_aliases.clone().into());
    }
    if let Some(org) = primary_entry(user.organizations.as_ref()) {
        for (wire, key) in [
            ("title", "title"),
            ("department", "department"),
            ("costCenter", "costCenter"),
            ("location", "location"),
            ("name", "organization"),
            ("description", "organizationDescription"),
        ] {
            if let Some(v) = org.get(wire).and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
                put(key, v.into());
            }
        }
    }
    if let Some(ids) = user.external_ids.as_ref().and_then(|v| v.as_array()) {
        if let Some(emp) = ids
            .iter()
            .find(|e| e.get("type").and_then(|t| t.as_str()) == Some("organization"))
            .and_then(|e| e.get("value"))
        {
            put("employeeId", emp.clone());
        }
        put("externalIds", serde_json::Value::Array(ids.clone()));
    }
    if let Some(phones) = user.phones.as_ref().filter(|p| p.is_array()) {
        put("phones", phones.clone());
    }
    if let Some(schemas) = &user.custom_schemas {
        for (schema, fields) in schemas {
            match fields.as_object() {
                Some(fields) => {
                    for (field, value) in fields {
                        put(&format!("custom.{schema}.{field}"), value.clone());
                    }
                }
                None => put(&format!("custom.{schema}"), fields.clone()),
            }
        }
    }
    Ok(out)
}

/// The entry marked `primary: true` of a Google multi-value field, or the first one.
fn primary_entry(list: Option<&serde_json::Value>) -> Option<&serde_json::Map<String, serde_json::Value>> {
    let items = list?.as_array()?;
    items
        .iter()
        .find(|o| o.get("primary").and_then(|p| p.as_bool()) == Some(true))
        .or_else(|| items.first())
        .and_then(|o| o.as_object())
}

/// Map a wire group. The name is the display name, or the address when the name is empty.
pub fn map_group(group: WireGroup) -> Result<Group, ConnectorError> {
    let id = group
        .id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol("a group in the response has no `id`"))?;
    let name = group
        .name
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| group.email.clone().filter(|s| !s.is_empty()))
        .ok_or_else(|| ConnectorError::protocol(format!("group `{id}` has neither `name` nor `email`")))?;
    let mut out = Group::new(id.clone(), name);
    out.description = group.description.clone().filter(|s| !s.is_empty());
    let a = &mut out.attributes;
    if let Some(email) = group.email.clone() {
        a.insert("email".into(), email.into());
    }
    if let Some(count) = &group.direct_members_count {
        // int64 is a JSON string in Google APIs; accept a number too.
        let n = match count {
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            ConnectorError::protocol(format!(
                "group `{id}`: `directMembersCount` `{count}` is not a count"
            ))
        })?;
        a.insert("directMembersCount".into(), n.into());
    }
    if let Some(v) = group.admin_created {
        a.insert("adminCreated".into(), v.into());
    }
    if !group.aliases.is_empty() {
        a.insert("aliases".into(), group.aliases.clone().into());
    }
    if !group.non_editable_aliases.is_empty() {
        a.insert(
            "nonEditableAliases".into(),
            group.non_editable_aliases.clone().into(),
        );
    }
    Ok(out)
}

/// Map one member of `group_id`: `USER` and `GROUP` by id, `CUSTOMER` as every user of the
/// account. Anything else (or a member without an id) is returned as `Err(kind)` for the
/// batch's skip counts.
pub fn map_member(group_id: &str, member: &WireMember) -> Result<Membership, String> {
    let kind = member.kind.as_deref().unwrap_or("").to_ascii_uppercase();
    let id = member.id.as_deref().filter(|s| !s.is_empty());
    let member_ref = match (kind.as_str(), id) {
        ("USER", Some(id)) => MemberRef::User(id.to_string()),
        ("GROUP", Some(id)) => MemberRef::Group(id.to_string()),
        ("CUSTOMER", _) => MemberRef::AllUsers,
        ("USER" | "GROUP", None) => return Err(format!("member_{}_without_id", kind.to_ascii_lowercase())),
        ("", _) => return Err("member_without_type".into()),
        (other, _) => return Err(format!("member_{}", other.to_ascii_lowercase())),
    };
    Ok(Membership {
        group_id: group_id.to_string(),
        member: member_ref,
        direct: true,
    })
}

/// Decode Google's web-safe base64 (`-` for `+`, `_` for `/`, `*` for `=`, `.` as padding).
/// Standard-alphabet input and missing padding are accepted too.
pub fn decode_web_safe_base64(data: &str) -> Result<Vec<u8>, String> {
    let normalised: String = data
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            '*' | '.' => '=',
            c => c,
        })
        .collect();
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE
        .decode(normalised.trim_end_matches('='))
        .map_err(|e| e.to_string())
}

/// A MIME type for the photo: Google's short names (`JPEG`, `PNG`...), a full MIME type as
/// given, or a guess from the image's magic bytes.
pub fn photo_content_type(declared: Option<&str>, bytes: &[u8]) -> String {
    if let Some(d) = declared.map(str::trim).filter(|d| !d.is_empty()) {
        if d.contains('/') {
            return d.to_ascii_lowercase();
        }
        match d.to_ascii_uppercase().as_str() {
            "JPEG" | "JPG" => return "image/jpeg".into(),
            "PNG" => return "image/png".into(),
            "GIF" => return "image/gif".into(),
            "BMP" => return "image/bmp".into(),
            "TIFF" => return "image/tiff".into(),
            _ => {}
        }
    }
    match bytes {
        [0xFF, 0xD8, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', ..] => "image/gif",
        [b'B', b'M', ..] => "image/bmp",
        [b'I', b'I', 0x2A, 0, ..] | [b'M', b'M', 0, 0x2A, ..] => "image/tiff",
        _ => "application/octet-stream",
    }
    .into()
}

/// Map a `users.photos.get` body. `None` when the body carries no image data.
pub fn map_photo(user_id: &str, photo: WirePhoto) -> Result<Option<Photo>, ConnectorError> {
    let Some(data) = photo.photo_data.filter(|d| !d.trim().is_empty()) else {
        return Ok(None);
    };
    let bytes = decode_web_safe_base64(&data).map_err(|e| {
        ConnectorError::protocol(format!(
            "photo of user `{user_id}`: `photoData` is not web-safe base64: {e}"
        ))
    })?;
    Ok(Some(Photo {
        user_id: user_id.to_string(),
        content_type: photo_content_type(photo.mime_type.as_deref(), &bytes),
        bytes,
    }))
}

/// What a request needs, for `Forbidden::needed`.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// The OAuth scope the call needs.
    pub scope: &'static str,
    /// The Admin console privilege the impersonated admin needs.
    pub privilege: &'static str,
}

/// Map a non-2xx Directory API response to a [`ConnectorError`] by status and `reason`
/// (never by message text). `what` names the request (no query string).
pub fn map_error(response: &HttpResponse, what: &str, needs: Needs) -> ConnectorError {
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let Some(ErrorEnvelope { error }) = envelope else {
        return usersync_sdk::paging::status_error(
            response,
            &format!("{what}: {}", response.body_snippet(200)),
        );
    };
    let reasons: Vec<&str> = error.errors.iter().filter_map(|e| e.reason.as_deref()).collect();
    let message = error
        .message
        .clone()
        .or_else(|| error.errors.iter().find_map(|e| e.message.clone()))
        .unwrap_or_default();
    let reason_text = if reasons.is_empty() {
        error.status.clone().unwrap_or_default()
    } else {
        reasons.join(",")
    };
    let detail = format!("HTTP {} {reason_text}: {message} ({what})", response.status);
    let throttled = reasons.iter().any(|r| THROTTLE_REASONS.contains(r))
        || error.status.as_deref() == Some("RESOURCE_EXHAUSTED")
        || response.status == 429;
    if throttled && matches!(response.status, 403 | 429) {
        return ConnectorError::RateLimited {
            retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
            detail,
        };
    }
    match response.status {
        401 => ConnectorError::Unauthorized { detail },
        403 => {
            let needed = if reasons.contains(&"accessNotConfigured")
                || error.status.as_deref() == Some("SERVICE_DISABLED")
            {
                "the Admin SDK API enabled in the Google Cloud project".to_string()
            } else if reasons.contains(&"insufficientPermissions") {
                format!(
                    "OAuth scope {} (authorised for the client in the Admin console)",
                    needs.scope
                )
            } else {
                format!(
                    "scope {} and an impersonated administrator with the `{}` privilege",
                    needs.scope, needs.privilege
                )
            };
            ConnectorError::Forbidden {
                detail,
                needed: Some(needed),
            }
        }
        404 | 410 => ConnectorError::NotFound { detail },
        500 | 502 | 503 | 504 => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WireUser;

    #[test]
    fn web_safe_base64_decodes_every_variant() {
        // bytes fb ef be -> "++++" in standard base64, "----" web-safe
        assert_eq!(decode_web_safe_base64("----").unwrap(), vec![0xfb, 0xef, 0xbe]);
        assert_eq!(decode_web_safe_base64("____").unwrap(), vec![0xff, 0xff, 0xff]);
        assert_eq!(decode_web_safe_base64("QQ..").unwrap(), b"A");
        assert_eq!(decode_web_safe_base64("QQ**").unwrap(), b"A");
        assert_eq!(decode_web_safe_base64("QQ*.").unwrap(), b"A");
        assert_eq!(decode_web_safe_base64("QQ").unwrap(), b"A");
        assert_eq!(decode_web_safe_base64("QUJD\nREVG").unwrap(), b"ABCDEF");
        assert_eq!(
            decode_web_safe_base64("+/+/").unwrap(),
            decode_web_safe_base64("-_-_").unwrap()
        );
        assert!(decode_web_safe_base64("Q!Q.").is_err());
    }

    #[test]
    fn archived_wins_over_suspended_and_raw_keeps_both() {
        let u = WireUser {
            suspended: Some(true),
            archived: Some(true),
            suspension_reason: Some("ADMIN".into()),
            ..WireUser::default()
        };
        let s = user_status(&u);
        assert_eq!(s.state, UserState::Deprovisioned);
        assert_eq!(s.raw, "suspended=true,archived=true,suspensionReason=ADMIN");
        assert_eq!(user_status(&WireUser::default()).state, UserState::Active);
    }

    #[test]
    fn errors_without_a_google_body_map_by_status() {
        let need = Needs {
            scope: "s",
            privilege: "p",
        };
        assert!(matches!(
            map_error(&HttpResponse::new(502, "<html>"), "x", need),
            ConnectorError::Transient { .. }
        ));
        assert!(matches!(
            map_error(&HttpResponse::new(401, ""), "x", need),
            ConnectorError::Unauthorized { .. }
        ));
        // 403 without a throttling reason is a permission error, never a retry.
        let body =
            r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"reason":"forbidden"}]}}"#;
        assert!(matches!(
            map_error(&HttpResponse::new(403, body), "x", need),
            ConnectorError::Forbidden { .. }
        ));
    }

    #[test]
    fn directmemberscount_accepts_string_and_number() {
        for v in [serde_json::json!("12"), serde_json::json!(12)] {
            let g = WireGroup {
                id: Some("g".into()),
                email: Some("g@example.com".into()),
                direct_members_count: Some(v),
                ..WireGroup::default()
            };
            assert_eq!(
                map_group(g).unwrap().attributes["directMembersCount"],
                serde_json::json!(12)
            );
        }
    }
}
