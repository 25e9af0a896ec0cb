//! Pure mapping from Graph wire types to usersync records and errors.

use std::collections::BTreeMap;

use serde_json::Value;
use usersync_sdk::model::{
    Attributes, Group, ManagerRef, MemberRef, Membership, Record, User, UserState, UserStatus,
};
use usersync_sdk::paging::retry_after_seconds;
use usersync_sdk::{Batch, ConnectorError, HttpResponse};

use crate::api::{DirectoryObject, GraphErrorBody, GraphGroup, GraphUser, TokenErrorBody};

/// Keep only real attributes: drop OData annotations and nulls (an unset property).
fn attributes(rest: BTreeMap<String, Value>) -> Attributes {
    rest.into_iter()
        .filter(|(k, v)| !k.starts_with("@odata.") && !k.contains("@odata.") && !v.is_null())
        .collect()
}

/// The status of a Graph user. `accountEnabled` decides; an invited guest who has not
/// redeemed the invitation (`externalUserState = PendingAcceptance`) is staged.
pub fn user_status(user: &GraphUser) -> Result<UserStatus, ConnectorError> {
    let id = user.id.as_deref().unwrap_or("?");
    let enabled = user.account_enabled.ok_or_else(|| {
        ConnectorError::protocol(format!(
            "user `{id}` has no `accountEnabled` (the listing must $select it); refusing to guess its status"
        ))
    })?;
    let mut raw = format!("accountEnabled={enabled}");
    if let Some(ext) = user.external_user_state.as_deref() {
        raw.push_str(&format!(";externalUserState={ext}"));
    }
    let state = match (enabled, user.external_user_state.as_deref()) {
        (false, _) => UserState::Disabled,
        (true, Some(ext)) if ext.eq_ignore_ascii_case("PendingAcceptance") => UserState::Staged,
        (true, _) => UserState::Active,
    };
    Ok(UserStatus::new(state, raw))
}

/// Map a user. Returns the user and, when the listing expanded `manager`, its manager record.
/// Keys on `id` only; UPN and mail are attributes (guests have `#EXT#` UPNs, `mail` may be null).
pub fn user(
    wire: GraphUser,
    manager_expanded: bool,
    batch: &mut Batch,
) -> Result<(User, Option<Record>), ConnectorError> {
    let status = user_status(&wire)?;
    let id = wire
        .id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol("a user in the listing has no `id`"))?;
    let username = wire
        .user_principal_name
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol(format!("user `{id}` has no `userPrincipalName`")))?;
    let mut u = User::new(id.clone(), username, status);
    u.email = wire.mail.filter(|s| !s.is_empty());
    u.display_name = wire.display_name;
    u.given_name = wire.given_name;
    u.family_name = wire.surname;
    let mut rest = wire.rest;
    rest.remove("manager@odata.context");
    u.attributes = attributes(rest);
    let manager_record = if manager_expanded {
        let manager = match wire.manager {
            Some(m) => manager_ref(&m, batch),
            None => None,
        };
        u.manager = manager.clone();
        Some(Record::Manager { user_id: id, manager })
    } else {
        None
    };
    Ok((u, manager_record))
}

/// A manager directory object as a reference: users by id; an organisational contact (or
/// any other type) is not a usersync user and is counted as skipped (`manager:<type>`).
pub fn manager_ref(obj: &DirectoryObject, batch: &mut Batch) -> Option<ManagerRef> {
    match (obj.kind(), obj.id.as_deref()) {
        (Some("user") | None, Some(id)) if !id.is_empty() => Some(ManagerRef::Id(id.to_string())),
        (kind, _) => {
            batch.skip(&format!("manager:{}", kind.unwrap_or("unknown")));
            None
        }
    }
}

/// Map a group.
pub fn group(wire: GraphGroup) -> Result<Group, ConnectorError> {
    let id = wire
        .id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol("a group in the listing has no `id`"))?;
    let name = wire
        .display_name
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::protocol(format!("group `{id}` has no `displayName`")))?;
    let mut g = Group::new(id, name);
    g.description = wire.description.filter(|s| !s.is_empty());
    g.attributes = attributes(wire.rest);
    Ok(g)
}

/// Map one member of `group_id` (from `members` or `transitiveMembers`): users and groups become
/// memberships; service principals, devices, org contacts and anything else are counted.
pub fn member(group_id: &str, obj: DirectoryObject, direct: bool, batch: &mut Batch) {
    let kind = obj.kind().map(str::to_string);
    match (kind.as_deref(), obj.id) {
        (Some("user"), Some(id)) if !id.is_empty() => batch.records.push(Record::Membership(Membership {
            group_id: group_id.to_string(),
            member: MemberRef::User(id),
            direct,
        })),
        (Some("group"), Some(id)) if !id.is_empty() => batch.records.push(Record::Membership(Membership {
            group_id: group_id.to_string(),
            member: MemberRef::Group(id),
            direct,
        })),
        (kind, _) => batch.skip(kind.unwrap_or("unknown")),
    }
}

/// Map one object a user is a member of (`memberOf` / `transitiveMemberOf`): only groups
/// become memberships; directory roles, administrative units and others are counted.
pub fn member_of(user_id: &str, obj: DirectoryObject, direct: bool, batch: &mut Batch) {
    match (obj.kind(), obj.id.as_deref()) {
        (Some("group"), Some(id)) if !id.is_empty() => batch.records.push(Record::Membership(Membership {
            group_id: id.to_string(),
            member: MemberRef::User(user_id.to_string()),
            direct,
        })),
        (kind, _) => batch.skip(kind.unwrap_or("unknown")),
    }
}

/// The Graph error code of a response, if its body is a Graph error.
pub fn graph_error_code(response: &HttpResponse) -> Option<String> {
    serde_json::from_slice::<GraphErrorBody>(&response.body)
        .ok()
        .map(|b| b.error.code)
        .filter(|c| !c.is_empty())
}

/// What a request was for, so an error can say what failed and what to grant.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    /// What was being fetched, e.g. `listing users`.
    pub what: String,
    /// The application permission this call needs (for `Forbidden`).
    pub permission: &'static str,
    /// The option whose value went into the request's query (e.g. `user_filter`), if any:
    /// a 400 about the query names it.
    pub query_option: Option<&'static str>,
}

/// Map a non-2xx Graph response to the error naming the host's next step.
pub fn graph_error(response: &HttpResponse, ctx: &ErrorContext) -> ConnectorError {
    let parsed = serde_json::from_slice::<GraphErrorBody>(&response.body).ok();
    let (code, message, request_id) = match &parsed {
        Some(b) => (
            b.error.code.as_str(),
            b.error.message.as_str(),
            b.error.inner_error.as_ref().and_then(|i| i.request_id.as_deref()),
        ),
        None => ("", "", None),
    };
    let mut detail = format!("{}: HTTP {}", ctx.what, response.status);
    if !code.is_empty() {
        detail.push_str(&format!(" {code}"));
    }
    if !message.is_empty() {
        detail.push_str(&format!(": {message}"));
    } else if parsed.is_none() && !response.body.is_empty() {
        detail.push_str(&format!(": {}", response.body_snippet(200)));
    }
    if let Some(id) = request_id {
        detail.push_str(&format!(" (request-id {id})"));
    }
    let retry_after_ms = retry_after_seconds(response).map(|s| s.saturating_mul(1000));
    match (response.status, code) {
        (400, "Directory_ExpiredPageToken") => ConnectorError::CursorExpired { detail },
        (400, "Request_BadRequest" | "Request_UnsupportedQuery" | "BadRequest")
            if ctx.query_option.is_some() =>
        {
            ConnectorError::Config {
                option: ctx.query_option.unwrap_or_default().to_string(),
                reason: format!("Microsoft Graph rejected the query: {detail}"),
            }
        }
        (401, _) => ConnectorError::Unauthorized { detail },
        (403, _) => ConnectorError::Forbidden {
            detail,
            needed: Some(ctx.permission.to_string()),
        },
        (404 | 410, _) => ConnectorError::NotFound { detail },
        (429, _) => ConnectorError::RateLimited {
            retry_after_ms,
            detail,
        },
        (500 | 502 | 503 | 504, _) if retry_after_ms.is_some() => ConnectorError::RateLimited {
            retry_after_ms,
            detail,
        },
        (500 | 502 | 503 | 504, _) => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

/// What an administrator should do about an AADSTS code from the token endpoint.
pub fn aadsts_advice(code: u64) -> Option<&'static str> {
    Some(match code {
        7000215 => {
            "the client secret is wrong: copy the secret's Value (not its Secret ID) from the app \
                    registration's Certificates & secrets page into `client_secret`"
        }
        7000222 => {
            "the client secret has expired: create a new one under Certificates & secrets and update \
                    `client_secret`"
        }
        700016 => {
            "no application with this `client_id` exists in this tenant: check `client_id` (Application \
                   (client) ID) and `tenant_id` (Directory (tenant) ID) on the app's Overview page"
        }
        90002 | 900023 => {
            "the tenant was not found: check `tenant_id` (a GUID or a verified domain) and \
                           `login_base_url` (national clouds use their own login host)"
        }
        700027 | 700024 => {
            "the certificate assertion was rejected: upload the certificate (public part) to the \
                            app registration and check that `client_certificate` matches \
                            `client_certificate_key` and the clock of this machine"
        }
        70011 => {
            "the scope is invalid: `graph_base_url` must be the Microsoft Graph host of the tenant's cloud"
        }
        7000229 => {
            "the application has no service principal in this tenant: grant admin consent (API \
                    permissions > Grant admin consent)"
        }
        53003 => {
            "Conditional Access blocked the token request: exclude this workload identity or allow its \
                  location"
        }
        _ => return None,
    })
}

/// Map a token endpoint error response (`{"error","error_description","error_codes"}`) to an
/// error whose text carries the AADSTS code and advice (used by the host's token flow and doctor).
pub fn token_error(response: &HttpResponse) -> ConnectorError {
    let Ok(body) = serde_json::from_slice::<TokenErrorBody>(&response.body) else {
        return match response.status {
            429 => ConnectorError::RateLimited {
                retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
                detail: "token endpoint throttled the request".into(),
            },
            500..=599 => ConnectorError::Transient {
                detail: format!("token endpoint: HTTP {}", response.status),
            },
            _ => ConnectorError::protocol(format!(
                "token endpoint: HTTP {} with a body that is not a token error: {}",
                response.status,
                response.body_snippet(200)
            )),
        };
    };
    // The first line of the description is `AADSTSnnnn: message`; the rest is trace ids.
    let first_line = body.error_description.lines().next().unwrap_or_default().trim();
    let advice = body.error_codes.iter().find_map(|c| aadsts_advice(*c));
    let mut detail = format!("token request failed: {} ({first_line})", body.error);
    if let Some(a) = advice {
        detail.push_str(&format!("; {a}"));
    }
    if let Some(t) = &body.trace_id {
        detail.push_str(&format!(" [trace id {t}]"));
    }
    let has = |c: u64| body.error_codes.contains(&c);
    if has(700016) {
        ConnectorError::config("client_id", detail)
    } else if has(90002) || has(900023) {
        ConnectorError::config("tenant_id", detail)
    } else if has(70011) {
        ConnectorError::config("graph_base_url", detail)
    } else if response.status == 429 {
        ConnectorError::RateLimited {
            retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
            detail,
        }
    } else if response.status >= 500 || body.error == "temporarily_unavailable" {
        ConnectorError::Transient { detail }
    } else if body.error == "unauthorized_client" || has(7000229) || has(53003) {
        ConnectorError::Forbidden { detail, needed: None }
    } else {
        ConnectorError::Unauthorized { detail }
    }
}
