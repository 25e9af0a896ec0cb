//! Microsoft Entra ID facade: the Microsoft identity platform token endpoint and the Microsoft Graph
//! directory API (`/v1.0` and `/beta`), written from Microsoft's documentation.
//!
//! Served on one base URL (point both `login_base_url` and `graph_base_url` of a client at it):
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials with a client secret (form body or HTTP
//!   Basic) or a JWT client assertion (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`;
//!   the assertion's claims and `x5t`/`x5t#S256` header are checked, its signature is not). Errors are
//!   the identity platform's `{"error","error_description":"AADSTSnnnn: ...","error_codes":[..],...}`:
//!   unknown tenant `AADSTS90002`, unknown app `AADSTS700016`, wrong secret `AADSTS7000215` (401),
//!   expired secret `AADSTS7000222` (the `expired` app of [`Facade::client_info`]), bad scope
//!   `AADSTS1002012`/`AADSTS500011`, bad assertion `AADSTS700027`/`AADSTS700024`.
//! - `GET /{v}/users`, `/users/{id|upn}`, `/users/{id}/manager`, `/memberOf`, `/transitiveMemberOf`,
//!   `/photos`, `/photo`, `/photo/$value`, `/photos/{size}/$value`, `/groups`, `/groups/{id}`,
//!   `/groups/{id}/members`, `/groups/{id}/transitiveMembers`.
//!
//! Graph behaviour reproduced: default projection of users (without `$select`, `accountEnabled`,
//! `department`, `userType`... are not returned); `$select` validated against the type's properties;
//! `$top` default 100, 1..=999 else 400; `$expand=manager[($select=..)]` caps a page at 100; `$skip`
//! refused; `@odata.nextLink` carrying every original parameter plus `$skiptoken` (but not the
//! `ConsistencyLevel` header, so a client must re-send it); advanced queries (`endsWith`, `ne`, `not`,
//! `$search`) refused without `ConsistencyLevel: eventual` (+ `$count=true` for filters); `@odata.count`
//! on the first page only; `$expand` refused in advanced queries; expired page tokens ->
//! `400 Directory_ExpiredPageToken`; manager 404 `Request_ResourceNotFound` when none; `@odata.type`
//! discriminators in member lists, with service principals, devices and organisational contacts among
//! group members and directory roles in `memberOf`; photo 404 `ImageNotFound` (no photo) and 400
//! `AuthenticationError` (guests: no mailbox); 401 `InvalidAuthenticationToken`; 403
//! `Authorization_RequestDenied` for an app without `GroupMember.Read.All` (the `limited` app); 429
//! `TooManyRequests` with `Retry-After`, `x-ms-throttle-scope`, `x-ms-throttle-information`;
//! `x-ms-throttle-limit-percentage` above 80 % of the limit; Graph error bodies with `innerError`.
//!
//! Status mapping (Graph has only `accountEnabled`, plus `externalUserState` for guests): Active,
//! Provisioned, Recovery, PasswordExpired, Locked -> enabled; Suspended, Deprovisioned -> disabled;
//! Staged -> disabled for members, enabled + `externalUserState: PendingAcceptance` for guests.
//! - `GET /{v}/users/delta`, `/groups/delta` (issue 21): Graph's delta queries, see [`delta`].
//!
//! Not emulated: `$batch`, `$orderby`, `$count` path segments, group photos.

// Helpers return the ready HTTP error response as their `Err`; handlers answer it as is.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Map, Value};

use crate::facade::or_respond;
use crate::facade::{json_response, BaseUrl, EmuContext, Facade};
use crate::gen::GenConfig;
use crate::ids::{self, kind};
use crate::org::{Group, GroupKind, Org, User, UserStatus};
use crate::paging::{self, PageTokenError};
use crate::rate::RateDecision;
use crate::timefmt::{now_unix, rfc3339};
use crate::{photo, EmulatorError};

mod delta;
mod groups;
mod objects;
mod odata;
mod photos;
mod token;
mod users;

use delta::*;
use groups::*;
use objects::*;
pub use objects::{account_enabled_of, extra_member_kinds};
use odata::*;
use photos::*;
use token::*;
use users::*;

/// The Microsoft Entra ID (Graph) facade.
#[derive(Debug, Clone, Copy)]
pub struct Entra;

/// Id kinds of this facade's own objects (disjoint from the shared kinds).
mod ekind {
    /// The tenant.
    pub const TENANT: u8 = 20;
    /// The app owning directory extension attributes.
    pub const EXTENSION_APP: u8 = 21;
    /// The app whose only secret has expired.
    pub const EXPIRED_APP: u8 = 22;
    /// Service principal members.
    pub const SERVICE_PRINCIPAL: u8 = 23;
    /// Device members.
    pub const DEVICE: u8 = 24;
    /// Organisational contact members.
    pub const ORG_CONTACT: u8 = 25;
}

/// Graph's application permissions, as roles in our tokens.
const USER_READ_ALL: &str = "User.Read.All";
const GROUP_MEMBER_READ_ALL: &str = "GroupMember.Read.All";
/// The permissions of which any one may read groups and their members.
const GROUP_READ: &[&str] = &[GROUP_MEMBER_READ_ALL, "Group.Read.All"];
/// Default and maximum `$top` of users, groups and member lists.
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 999;
/// Page cap when `$expand` is used on directory objects.
const EXPAND_CAP: usize = 100;
/// Default per-minute limit of the Graph bucket (a large tenant's 8,000 resource units / 10 s at
/// about 2 units a request); generous for tests.
const DEFAULT_PER_MINUTE: u32 = 24_000;
/// Size id of the photos served (the PNGs are 16x16; photos stored in Entra may have any size).
const PHOTO_SIZE: &str = "16x16";

/// Properties returned for a user when the request has no `$select` (Graph's default set).
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// Every `microsoft.graph.user` property a `$select` may name (v1.0 CSDL); those the organisation
/// does not model are returned as null.
const USER_PROPS: &[&str] = &[
    "aboutMe",
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "birthday",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "givenName",
    "hireDate",
    "id",
    "identities",
    "imAddresses",
    "interests",
    "isResourceAccount",
    "jobTitle",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "mail",
    "mailNickname",
    "mobilePhone",
    "mySite",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "pastProjects",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "preferredName",
    "proxyAddresses",
    "responsibilities",
    "schools",
    "securityIdentifier",
    "showInAddressList",
    "signInSessionsValidFromDateTime",
    "skills",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// Every `microsoft.graph.group` property a `$select` may name. Groups return all of them by default.
const GROUP_PROPS: &[&str] = &[
    "classification",
    "createdDateTime",
    "deletedDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "id",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
];

// ------------------------------------------------------------------------------------------ ids

/// The emulated tenant's id (a GUID derived from the org seed).
pub fn tenant_id(seed: u64) -> String {
    ids::guid(seed, ekind::TENANT, 0)
}

/// The app id (without dashes) naming directory extension attributes `extension_<appId>_<name>`.
pub fn extension_app(seed: u64) -> String {
    ids::guid(seed, ekind::EXTENSION_APP, 0).replace('-', "")
}

/// Client id and secret of the app registration whose only secret has expired (`AADSTS7000222`).
pub fn expired_app(seed: u64) -> (String, String) {
    let id = ids::guid(seed, ekind::EXPIRED_APP, 0);
    let secret = format!(
        "Exp8Q~{}",
        &ids::guid(seed, ekind::EXPIRED_APP, 1).replace('-', "")[..30]
    );
    (id, secret)
}

/// The Graph object id of user `ix`.
pub fn user_id(seed: u64, ix: u32) -> String {
    ids::guid(seed, kind::USER, ix)
}

/// The Graph object id of group `ix`.
pub fn group_id(seed: u64, ix: u32) -> String {
    ids::guid(seed, kind::GROUP, ix)
}

fn role_id(seed: u64, ix: u32) -> String {
    ids::guid(seed, kind::ROLE, ix)
}

/// Tenant names the token endpoint accepts: the tenant GUID, the primary domain and
/// `<label>.onmicrosoft.com`.
fn tenant_matches(org: &Org, t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    let label = org
        .domain
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    t == tenant_id(org.seed)
        || t == org.domain.to_ascii_lowercase()
        || t == format!("{label}.onmicrosoft.com")
}

/// The user behind an id or userPrincipalName.
fn find_user<'a>(org: &'a Org, key: &str) -> Option<&'a User> {
    if let Some(ix) = ids::parse_guid(key, org.seed, kind::USER) {
        return org.user(ix);
    }
    let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    org.live_users().find(|u| u.login.eq_ignore_ascii_case(&decoded))
}

fn find_group<'a>(org: &'a Org, key: &str) -> Option<&'a Group> {
    ids::parse_guid(key, org.seed, kind::GROUP).and_then(|ix| org.group(ix))
}

// ------------------------------------------------------------------------------------ responses

fn request_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A Graph error: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let rid = request_id();
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": rfc3339(now_unix()), "request-id": rid, "client-request-id": rid}}});
    let mut r = json_response(status, &body);
    if let Ok(v) = HeaderValue::from_str(&rid) {
        r.headers_mut().insert("request-id", v.clone());
        r.headers_mut().insert("client-request-id", v);
    }
    r
}

fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(code: &str, message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, code, message)
}

fn advanced_needed(op: &str) -> Response {
    bad_request(
        "Request_UnsupportedQuery",
        &format!(
            "Operator '{op}' is not supported because the required parameters might be missing. Try adding \
             $count=true query parameter and ConsistencyLevel:eventual header. Refer to \
             https://aka.ms/graph-docs/advanced-queries for more information"
        ),
    )
}

fn ok(value: &Value) -> Response {
    let mut r = json_response(StatusCode::OK, value);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

/// The token endpoint's error shape.
fn token_error(status: StatusCode, error: &str, code: u64, text: &str) -> Response {
    let trace = request_id();
    let corr = request_id();
    let ts = rfc3339(now_unix()).replace('T', " ");
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    json_response(status, &body)
}

// ------------------------------------------------------------------------------------------ auth

/// Check the bearer token; returns the app's roles.
fn authorize(ctx: &EmuContext, headers: &HeaderMap) -> Result<Vec<String>, Response> {
    let unauthorized = |msg: &str| {
        let mut r = graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", msg);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", \
                 client_id=\"00000003-0000-0000-c000-000000000000\"",
            ),
        );
        r
    };
    let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized("Access token is empty."));
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(unauthorized("Access token validation failure. Invalid audience."));
    };
    match ctx.tokens.check(token.trim(), now_unix()) {
        crate::tokens::TokenCheck::Valid(info) => Ok(info.scopes),
        crate::tokens::TokenCheck::Expired => Err(unauthorized("Lifetime validation failed, the token is expired.")),
        crate::tokens::TokenCheck::Unknown => Err(unauthorized(
            "IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact \
             Serialization Format. (JWS): 'EncodedHeader.EncodedPayload.EncodedSignature'.",
        )),
    }
}

fn require(roles: &[String], any_of: &[&str]) -> Result<(), Response> {
    if roles
        .iter()
        .any(|r| any_of.contains(&r.as_str()) || r == "Directory.Read.All")
    {
        Ok(())
    } else {
        Err(graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

fn check_version(v: &str) -> Result<(), Response> {
    if v == "v1.0" || v == "beta" {
        Ok(())
    } else {
        Err(bad_request("BadRequest", &format!("Invalid version: {v}")))
    }
}

/// Auth, permission and version checks of every Graph route.
fn guard(ctx: &EmuContext, headers: &HeaderMap, version: &str, perms: &[&str]) -> Result<(), Response> {
    check_version(version)?;
    let roles = authorize(ctx, headers)?;
    require(&roles, perms)
}

async fn unknown_segment(uri: axum::http::Uri) -> Response {
    let seg = uri
        .path()
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_string();
    bad_request(
        "BadRequest",
        &format!("Resource not found for the segment '{seg}'."),
    )
}

impl Facade for Entra {
    fn id(&self) -> &'static str {
        "entra"
    }

    fn adjust_gen(&self, cfg: &mut GenConfig) {
        // Entra nests security groups but refuses a membership that would create a cycle.
        cfg.allow_cycle = false;
        if cfg.nesting_depth == 0 {
            cfg.nesting_depth = 3;
        }
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        Ok(Router::new()
            .route("/{v}/oauth2/v2.0/token", post(token))
            .route("/{v}/users", get(list_users))
            .route("/{v}/users/delta", get(users_delta))
            .route("/{v}/groups/delta", get(groups_delta))
            .route("/{v}/users/{id}", get(get_user))
            .route("/{v}/users/{id}/manager", get(get_manager))
            .route("/{v}/users/{id}/memberOf", get(member_of))
            .route("/{v}/users/{id}/transitiveMemberOf", get(transitive_member_of))
            .route("/{v}/users/{id}/photos", get(list_photos))
            .route("/{v}/users/{id}/photo", get(get_photo))
            .route("/{v}/users/{id}/photo/$value", get(photo_value))
            .route("/{v}/users/{id}/photos/{size}/$value", get(sized_photo_value))
            .route("/{v}/groups", get(list_groups))
            .route("/{v}/groups/{id}", get(get_group))
            .route("/{v}/groups/{id}/members", get(members))
            .route("/{v}/groups/{id}/transitiveMembers", get(transitive_members))
            .fallback(unknown_segment)
            .with_state(ctx))
    }

    fn rate_bucket(&self, _method: &Method, path: &str) -> Option<(String, u32)> {
        (path.starts_with("/v1.0/") || path.starts_with("/beta/"))
            .then(|| ("graph".to_string(), DEFAULT_PER_MINUTE))
    }

    fn rate_headers(&self, d: &RateDecision, headers: &mut HeaderMap) {
        if d.allowed && d.limit > 0 {
            let used = f64::from(d.limit - d.remaining) / f64::from(d.limit);
            if used >= 0.8 {
                if let Ok(v) = HeaderValue::from_str(&format!("{used:.2}")) {
                    headers.insert("x-ms-throttle-limit-percentage", v);
                }
            }
        }
    }

    fn throttled(&self, d: &RateDecision, concurrency: bool) -> Response {
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please retry after the time given in the Retry-After header.",
        );
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&d.retry_after_secs.max(1).to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
        h.insert(
            "x-ms-throttle-scope",
            HeaderValue::from_static("Tenant_Application/ReadOnly"),
        );
        h.insert(
            "x-ms-throttle-information",
            HeaderValue::from_static(if concurrency {
                "ConcurrencyLimitExceeded"
            } else {
                "ResourceUnitLimitExceeded"
            }),
        );
        r
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let (code, msg) = match status.as_u16() {
            502 => (
                "BadGateway",
                "The server received an invalid response from an upstream server.",
            ),
            503 => (
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => (
                "gatewayTimeout",
                "The server did not receive a timely response from an upstream server.",
            ),
            _ => ("generalException", "General exception while processing."),
        };
        let mut r = graph_error(status, code, msg);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        let seed = ctx.org.try_read().map(|o| o.seed).unwrap_or_default();
        let tenant = tenant_id(seed);
        let (expired_id, expired_secret) = expired_app(seed);
        json!({
            "base_url": base_url,
            "connector": "entra",
            "token_url": format!("{base_url}/{tenant}/oauth2/v2.0/token"),
            "connector_options": {
                "tenant_id": tenant,
                "client_id": ctx.creds.client_id,
                "graph_base_url": base_url,
                "login_base_url": base_url,
                "api_version": "v1.0",
            },
            "connector_secrets": {"client_secret": ctx.creds.client_secret},
            "limited": {"client_id": ctx.creds.limited_client_id, "client_secret": ctx.creds.limited_client_secret,
                        "lacks": GROUP_MEMBER_READ_ALL},
            "expired": {"client_id": expired_id, "client_secret": expired_secret},
            "extension_app_id": extension_app(seed),
        })
    }
}

#[cfg(test)]
mod tests;
