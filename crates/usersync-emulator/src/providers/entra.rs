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
//! Not emulated: delta queries, `$batch`, `$orderby`, `$count` path segments, group photos.

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

// ------------------------------------------------------------------------------ OData parameters

/// The OData system query options of a request.
#[derive(Debug, Default)]
struct OData {
    select: Option<Vec<String>>,
    top: Option<usize>,
    expand: Option<String>,
    filter: Option<String>,
    search: Option<String>,
    count: bool,
    skiptoken: Option<String>,
    /// Raw `name=value` pairs other than `$skiptoken`, verbatim, for next links.
    keep: Vec<String>,
    /// `ConsistencyLevel: eventual` was sent.
    eventual: bool,
}

impl OData {
    fn advanced(&self) -> bool {
        self.eventual && self.count
    }
}

fn parse_odata(raw: Option<&str>, headers: &HeaderMap) -> Result<OData, Response> {
    let mut o = OData {
        eventual: headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        ..OData::default()
    };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .to_string();
        let value = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .to_string();
        if key != "$skiptoken" {
            o.keep.push(pair.to_string());
        }
        match key.to_ascii_lowercase().as_str() {
            "$select" => {
                o.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$top" => {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| bad_request("BadRequest", &format!("Invalid $top value '{value}'.")))?;
                if !(1..=MAX_TOP).contains(&n) {
                    return Err(bad_request(
                        "Request_BadRequest",
                        &format!(
                            "Invalid page size specified: '{n}'. Must be between 1 and {MAX_TOP} inclusive."
                        ),
                    ));
                }
                o.top = Some(n);
            }
            "$expand" => o.expand = Some(value),
            "$filter" => o.filter = Some(value),
            "$search" => o.search = Some(value),
            "$count" => o.count = value.eq_ignore_ascii_case("true"),
            "$skiptoken" => o.skiptoken = Some(value),
            "$skip" => {
                return Err(bad_request(
                    "Request_BadRequest",
                    "'$skip' is not supported by the service.",
                ));
            }
            "$orderby" => {
                return Err(bad_request(
                    "Request_UnsupportedQuery",
                    "Sorting is not supported by this emulator (Graph supports $orderby on displayName and \
                     userPrincipalName).",
                ))
            }
            _ => {}
        }
    }
    if o.search.is_some() && !o.eventual {
        return Err(bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: \
             'ConsistencyLevel: eventual'",
        ));
    }
    if o.expand.is_some() && o.advanced() {
        return Err(bad_request(
            "Request_UnsupportedQuery",
            "$expand is not supported with advanced query capabilities ($count=true and ConsistencyLevel:eventual).",
        ));
    }
    Ok(o)
}

/// Canonical names of the selected properties, or a 400 naming the unknown one.
fn validate_select(
    select: &[String],
    known: &[&str],
    extra: &[String],
    type_name: &str,
) -> Result<Vec<String>, Response> {
    select
        .iter()
        .map(|s| {
            known
                .iter()
                .map(|k| k.to_string())
                .chain(extra.iter().cloned())
                .find(|k| k.eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    bad_request(
                        "Request_BadRequest",
                        &format!(
                            "Could not find a property named '{s}' on type 'microsoft.graph.{type_name}'."
                        ),
                    )
                })
        })
        .collect()
}

/// `manager` or `manager($select=a,b)`: the manager's selected properties (`None` = Graph's default).
fn parse_expand(expand: &str) -> Result<Option<Vec<String>>, Response> {
    let e = expand.trim();
    if e.eq_ignore_ascii_case("manager") {
        return Ok(None);
    }
    if let Some(inner) = e
        .strip_prefix("manager(")
        .or_else(|| e.strip_prefix("Manager("))
        .and_then(|r| r.strip_suffix(')'))
    {
        let select = inner
            .split(';')
            .find_map(|opt| opt.trim().strip_prefix("$select="))
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect::<Vec<_>>());
        return Ok(select);
    }
    let name = e.split('(').next().unwrap_or(e);
    Err(bad_request(
        "Request_BadRequest",
        &format!("Could not find a property named '{name}' on type 'microsoft.graph.user'."),
    ))
}

// ----------------------------------------------------------------------------------- filtering

/// One comparison of a `$filter`.
#[derive(Debug, Clone)]
enum Clause {
    Eq(String, Value),
    Ne(String, Value),
    StartsWith(String, String),
    EndsWith(String, String),
}

fn unquote(v: &str) -> Option<Value> {
    let v = v.trim();
    if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Value::String(s.replace("''", "'")));
    }
    match v {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => None,
    }
}

fn unsupported_filter() -> Response {
    bad_request(
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified.",
    )
}

/// Parse the `$filter` subset this facade supports: clauses joined by `and`; `p eq v`, `p ne v`,
/// `startswith(p,'x')`, `endswith(p,'x')`. `ne` and `endswith` are advanced queries.
fn parse_filter(filter: &str, advanced: bool) -> Result<Vec<Clause>, Response> {
    let mut out = Vec::new();
    for part in filter.split(" and ") {
        let p = part.trim();
        let lower = p.to_ascii_lowercase();
        let func = |name: &str| -> Option<(String, String)> {
            if !lower.starts_with(name) {
                return None;
            }
            let inner = p[name.len()..].strip_suffix(')')?;
            let (prop, val) = inner.split_once(',')?;
            match unquote(val)? {
                Value::String(s) => Some((prop.trim().to_string(), s)),
                _ => None,
            }
        };
        if let Some((prop, v)) = func("startswith(") {
            out.push(Clause::StartsWith(prop, v));
        } else if let Some((prop, v)) = func("endswith(") {
            if !advanced {
                return Err(advanced_needed("endsWith"));
            }
            out.push(Clause::EndsWith(prop, v));
        } else if let Some((prop, v)) = p.split_once(" eq ") {
            out.push(Clause::Eq(
                prop.trim().to_string(),
                unquote(v).ok_or_else(unsupported_filter)?,
            ));
        } else if let Some((prop, v)) = p.split_once(" ne ") {
            if !advanced {
                return Err(advanced_needed("ne"));
            }
            out.push(Clause::Ne(
                prop.trim().to_string(),
                unquote(v).ok_or_else(unsupported_filter)?,
            ));
        } else if lower.starts_with("not(") || lower.starts_with("not ") {
            if !advanced {
                return Err(advanced_needed("not"));
            }
            return Err(unsupported_filter());
        } else {
            return Err(unsupported_filter());
        }
    }
    Ok(out)
}

fn matches(obj: &Map<String, Value>, clauses: &[Clause]) -> bool {
    let get = |p: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(p))
            .map(|(_, v)| v)
    };
    let text = |p: &str| get(p).and_then(|v| v.as_str()).map(str::to_lowercase);
    clauses.iter().all(|c| match c {
        Clause::Eq(p, v) => match (get(p), v) {
            (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (Some(a), b) => a == b,
            (None, Value::Null) => true,
            (None, _) => false,
        },
        Clause::Ne(p, v) => match (get(p), v) {
            (Some(Value::String(a)), Value::String(b)) => !a.eq_ignore_ascii_case(b),
            (Some(a), b) => a != b,
            (None, b) => !b.is_null(),
        },
        Clause::StartsWith(p, s) => text(p).is_some_and(|t| t.starts_with(&s.to_lowercase())),
        Clause::EndsWith(p, s) => text(p).is_some_and(|t| t.ends_with(&s.to_lowercase())),
    })
}

/// `$search="prop:value"` (tokens joined by OR/AND), a word-prefix match as Graph's tokenized search.
fn search_matches(obj: &Map<String, Value>, search: &str) -> bool {
    let s = search.trim().trim_matches('"');
    s.split(" OR ").any(|term| {
        let term = term.trim().trim_matches('"');
        let (prop, val) = term.split_once(':').unwrap_or(("displayName", term));
        let val = val.to_lowercase();
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(prop.trim()))
            .and_then(|(_, v)| v.as_str())
            .is_some_and(|t| {
                t.to_lowercase()
                    .split([' ', '.', '@', '_'])
                    .any(|w| w.starts_with(&val))
            })
    })
}

// ---------------------------------------------------------------------------------- projection

fn account_enabled(u: &User) -> bool {
    match u.status {
        UserStatus::Suspended | UserStatus::Deprovisioned => false,
        UserStatus::Staged => u.guest,
        _ => true,
    }
}

/// Extension attribute names of the organisation (`extension_<appId>_<name>`).
fn extension_names(org: &Org) -> Vec<String> {
    let app = extension_app(org.seed);
    let mut names = BTreeSet::new();
    for u in org.live_users().take(2_000) {
        for (n, _) in &u.custom {
            if n != "employeeType" {
                names.insert(format!("extension_{app}_{n}"));
            }
        }
    }
    names.into_iter().collect()
}

/// Every property of a user (full form, before projection).
fn user_full(org: &Org, u: &User) -> Map<String, Value> {
    let app = extension_app(org.seed);
    let nickname = u.login.split('@').next().unwrap_or(&u.login).to_string();
    let ext_state = if u.guest {
        if u.status == UserStatus::Staged {
            json!("PendingAcceptance")
        } else {
            json!("Accepted")
        }
    } else {
        Value::Null
    };
    let employee_type = u
        .custom
        .iter()
        .find(|(n, _)| n == "employeeType")
        .map(|(_, v)| v.clone());
    let mut m = Map::new();
    for p in USER_PROPS {
        m.insert((*p).to_string(), Value::Null);
    }
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    set("id", json!(user_id(org.seed, u.ix)));
    set("userPrincipalName", json!(u.login));
    set("mail", json!(u.email));
    set("displayName", json!(u.display_name));
    set("givenName", json!(u.first_name));
    set("surname", json!(u.last_name));
    set("accountEnabled", json!(account_enabled(u)));
    set("userType", json!(if u.guest { "Guest" } else { "Member" }));
    set("externalUserState", ext_state);
    if u.guest {
        set(
            "externalUserStateChangeDateTime",
            json!(rfc3339(u.status_changed)),
        );
        set("creationType", json!("Invitation"));
    }
    set("department", json!(u.department));
    set("jobTitle", json!(u.title));
    set("employeeId", json!(u.employee_number));
    set("employeeType", json!(employee_type));
    set("mailNickname", json!(nickname));
    set("businessPhones", json!([]));
    set("imAddresses", json!([]));
    set(
        "otherMails",
        json!(if u.guest {
            vec![u.email.clone()]
        } else {
            Vec::new()
        }),
    );
    set(
        "proxyAddresses",
        json!(if u.guest {
            Vec::new()
        } else {
            vec![format!("SMTP:{}", u.email)]
        }),
    );
    set("preferredLanguage", json!("en-US"));
    set("createdDateTime", json!(rfc3339(u.created)));
    set(
        "identities",
        json!([{"signInType": "userPrincipalName", "issuer": org.domain, "issuerAssignedId": u.login}]),
    );
    for (n, v) in &u.custom {
        if n != "employeeType" {
            m.insert(format!("extension_{app}_{n}"), json!(v));
        }
    }
    m
}

/// Project a full object onto `select` (`None` = the type's default set; `default_all` = every property).
fn project(
    full: &Map<String, Value>,
    select: Option<&[String]>,
    default: Option<&[&str]>,
) -> Map<String, Value> {
    match (select, default) {
        (Some(sel), _) => sel
            .iter()
            .map(|k| (k.clone(), full.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
        (None, Some(def)) => def
            .iter()
            .map(|k| (k.to_string(), full.get(*k).cloned().unwrap_or(Value::Null)))
            .collect(),
        (None, None) => full
            .iter()
            .filter(|(k, _)| !k.starts_with("extension_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn group_full(org: &Org, g: &Group) -> Map<String, Value> {
    let mut m = Map::new();
    for p in GROUP_PROPS {
        m.insert((*p).to_string(), Value::Null);
    }
    let nick: String = g.name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let (types, rule, state, synced) = match g.kind {
        GroupKind::BuiltIn => (
            json!(["DynamicMembership"]),
            json!("user.objectId -ne null"),
            json!("On"),
            Value::Null,
        ),
        GroupKind::Imported => (json!([]), Value::Null, Value::Null, json!(true)),
        GroupKind::Native => (json!([]), Value::Null, Value::Null, Value::Null),
    };
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    set("id", json!(group_id(org.seed, g.ix)));
    set("displayName", json!(g.name));
    set("description", json!(g.description));
    set("mailEnabled", json!(false));
    set(
        "mailNickname",
        json!(if nick.is_empty() {
            format!("group{}", g.ix)
        } else {
            nick
        }),
    );
    set("securityEnabled", json!(true));
    set("groupTypes", types);
    set("membershipRule", rule);
    set("membershipRuleProcessingState", state);
    set("onPremisesSyncEnabled", synced.clone());
    if synced == json!(true) {
        set("onPremisesSamAccountName", json!(g.name));
        set("onPremisesLastSyncDateTime", json!(rfc3339(g.last_updated)));
    }
    set("createdDateTime", json!(rfc3339(g.created)));
    set("renewedDateTime", json!(rfc3339(g.created)));
    set("proxyAddresses", json!([]));
    set(
        "securityIdentifier",
        json!(format!("S-1-12-1-{}-{}", org.seed % 1_000_000, g.ix)),
    );
    m
}

fn typed(type_name: &str, mut m: Map<String, Value>) -> Value {
    m.insert(
        "@odata.type".into(),
        json!(format!("#microsoft.graph.{type_name}")),
    );
    Value::Object(m)
}

// ------------------------------------------------------------------------------ member listings

/// Key spaces of a mixed directory-object listing (ascending keys for the pager).
const GROUP_KEY: u32 = 1 << 28;
const OTHER_KEY: u32 = 0xF000_0000;

/// The synthetic non-user members of a group: service principals, devices, org contacts.
fn others_of(g: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if g % 7 == 3 {
        v.push(OTHER_KEY | (g << 2));
    }
    if g % 11 == 5 {
        v.push(OTHER_KEY | (g << 2) | 1);
    }
    if g % 13 == 6 {
        v.push(OTHER_KEY | (g << 2) | 2);
    }
    v
}

/// The `@odata.type` names (`servicePrincipal`, `device`, `orgContact`) of the non-user, non-group
/// direct members the facade gives group `ix` (the truth for tests of skipped-member counts).
pub fn extra_member_kinds(ix: u32) -> Vec<&'static str> {
    others_of(ix)
        .into_iter()
        .map(|k| match k & 3 {
            0 => "servicePrincipal",
            1 => "device",
            _ => "orgContact",
        })
        .collect()
}

/// Whether user `u` is enabled as Graph reports it (`accountEnabled`).
pub fn account_enabled_of(u: &User) -> bool {
    account_enabled(u)
}

fn other_object(org: &Org, key: u32) -> Value {
    let g = (key & !OTHER_KEY) >> 2;
    match key & 3 {
        0 => typed(
            "servicePrincipal",
            json!({"id": ids::guid(org.seed, ekind::SERVICE_PRINCIPAL, g), "displayName": format!("Automation app {g}"),
                   "appId": ids::guid(org.seed, ekind::SERVICE_PRINCIPAL, g + 1_000_000)})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
        1 => typed(
            "device",
            json!({"id": ids::guid(org.seed, ekind::DEVICE, g), "displayName": format!("LAPTOP-{g:05}"),
                   "deviceId": ids::guid(org.seed, ekind::DEVICE, g + 1_000_000), "accountEnabled": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
        _ => typed(
            "orgContact",
            json!({"id": ids::guid(org.seed, ekind::ORG_CONTACT, g), "displayName": format!("External contact {g}"),
                   "mail": format!("contact{g}@partner.example")})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
    }
}

/// Groups nested (transitively) inside `g`, excluding `g` unless a cycle leads back to it.
fn nested_closure(org: &Org, g: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<u32> = org.group(g).map(|x| x.child_groups.clone()).unwrap_or_default();
    while let Some(c) = stack.pop() {
        if org.group(c).is_some() && out.insert(c) {
            stack.extend(org.group(c).map(|x| x.child_groups.clone()).unwrap_or_default());
        }
    }
    out
}

/// Groups containing `start` (a set of groups) transitively.
fn ancestors(org: &Org, start: &[u32]) -> BTreeSet<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for g in org.live_groups() {
        for &c in &g.child_groups {
            parents.entry(c).or_default().push(g.ix);
        }
    }
    let mut out: BTreeSet<u32> = start.iter().copied().collect();
    let mut stack: Vec<u32> = start.to_vec();
    while let Some(c) = stack.pop() {
        for &p in parents.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
            if org.group(p).is_some() && out.insert(p) {
                stack.push(p);
            }
        }
    }
    out
}

fn member_keys(org: &Org, g: &Group, transitive: bool) -> Vec<u32> {
    let mut keys: BTreeSet<u32> = BTreeSet::new();
    if transitive {
        keys.extend(org.transitive_members(g.ix));
        let closure = nested_closure(org, g.ix);
        for &c in &closure {
            keys.insert(GROUP_KEY | c);
            keys.extend(others_of(c));
        }
    } else {
        keys.extend(g.members.iter().copied());
        keys.extend(
            g.child_groups
                .iter()
                .filter(|c| org.group(**c).is_some())
                .map(|c| GROUP_KEY | c),
        );
    }
    keys.extend(others_of(g.ix));
    keys.into_iter().collect()
}

fn member_object(org: &Org, key: u32, select: Option<&[String]>) -> Option<Value> {
    if key >= OTHER_KEY {
        let v = other_object(org, key);
        return Some(match select {
            Some(sel) => {
                let m = v.as_object().cloned().unwrap_or_default();
                let mut out: Map<String, Value> = sel
                    .iter()
                    .map(|k| (k.clone(), m.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
                out.insert(
                    "@odata.type".into(),
                    m.get("@odata.type").cloned().unwrap_or(Value::Null),
                );
                Value::Object(out)
            }
            None => v,
        });
    }
    if key >= GROUP_KEY {
        let g = org.group(key & !GROUP_KEY)?;
        return Some(typed("group", project(&group_full(org, g), select, None)));
    }
    let u = org.user(key)?;
    Some(typed(
        "user",
        project(&user_full(org, u), select, Some(USER_DEFAULT)),
    ))
}

// -------------------------------------------------------------------------------------- paging

/// A page of the listing `keys`; `build` renders one key. Adds `@odata.nextLink` (every original
/// parameter verbatim plus the new `$skiptoken`) and, on the first page of an advanced query with
/// `$count=true`, `@odata.count`.
#[allow(clippy::too_many_arguments)]
fn page_response(
    ctx: &EmuContext,
    base: &str,
    path: &str,
    context: &str,
    od: &OData,
    keys: &[u32],
    limit: usize,
    mut build: impl FnMut(u32) -> Option<Value>,
) -> Response {
    let tag = paging::listing_tag(&[
        path,
        od.filter.as_deref().unwrap_or(""),
        od.search.as_deref().unwrap_or(""),
    ]);
    let page =
        match paging::page(keys, tag, od.skiptoken.as_deref(), limit, &ctx.faults.config()) {
            Ok(p) => p,
            Err(PageTokenError::Expired) => return bad_request(
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            ),
            Err(PageTokenError::Invalid) => {
                return bad_request(
                    "Directory_InvalidPageToken",
                    "The specified page token value is invalid.",
                )
            }
        };
    let values: Vec<Value> = page.keys.iter().filter_map(|k| build(*k)).collect();
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if od.advanced() && od.skiptoken.is_none() {
        body.insert("@odata.count".into(), json!(keys.len()));
    }
    if let Some(next) = page.next {
        let mut q = od.keep.clone();
        q.push(format!("$skiptoken={next}"));
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}{path}?{}", q.join("&"))),
        );
    }
    body.insert("value".into(), Value::Array(values));
    ok(&Value::Object(body))
}

fn metadata(base: &str, version: &str, rest: &str) -> String {
    format!("{base}/{version}/$metadata#{rest}")
}

// ------------------------------------------------------------------------------------ handlers

type Ctx = State<Arc<EmuContext>>;

async fn list_users(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, USER_PROPS, &exts, "user"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let manager_select = match od.expand.as_deref().map(parse_expand) {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let clauses = match od.filter.as_deref().map(|f| parse_filter(f, od.advanced())) {
        Some(Err(r)) => return r,
        Some(Ok(c)) => c,
        None => Vec::new(),
    };
    let keys: Vec<u32> = org
        .live_users()
        .filter(|u| {
            if clauses.is_empty() && od.search.is_none() {
                return true;
            }
            let full = user_full(&org, u);
            matches(&full, &clauses) && od.search.as_deref().is_none_or(|s| search_matches(&full, s))
        })
        .map(|u| u.ix)
        .collect();
    let mut limit = od.top.unwrap_or(DEFAULT_TOP);
    if manager_select.is_some() {
        limit = limit.min(EXPAND_CAP);
    }
    let context = match &od.select {
        Some(s) => metadata(&base, &version, &format!("users({})", s.join(","))),
        None => metadata(&base, &version, "users"),
    };
    let path = format!("/{version}/users");
    page_response(&ctx, &base, &path, &context, &od, &keys, limit, |ix| {
        let u = org.user(ix)?;
        Some(user_value(&org, u, select.as_deref(), manager_select.as_ref()))
    })
}

/// A user projected, with `manager` expanded when asked (absent when the user has none).
fn user_value(
    org: &Org,
    u: &User,
    select: Option<&[String]>,
    manager: Option<&Option<Vec<String>>>,
) -> Value {
    let mut m = project(&user_full(org, u), select, Some(USER_DEFAULT));
    if let Some(msel) = manager {
        if let Some(mgr) = u.manager.and_then(|ix| org.user(ix)) {
            let full = user_full(org, mgr);
            let projected = match msel {
                Some(s) => project(&full, Some(s), None),
                None => project(&full, None, Some(USER_DEFAULT)),
            };
            m.insert("manager".into(), typed("user", projected));
        }
    }
    Value::Object(m)
}

async fn get_user(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, USER_PROPS, &exts, "user"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let manager_select = match od.expand.as_deref().map(parse_expand) {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let mut v = user_value(&org, u, select.as_deref(), manager_select.as_ref());
    v["@odata.context"] = json!(metadata(&base, &version, "users/$entity"));
    ok(&v)
}

async fn get_manager(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, USER_PROPS, &exts, "user"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let Some(mgr) = u.manager.and_then(|ix| org.user(ix)) else {
        return not_found("manager");
    };
    let mut v = typed(
        "user",
        project(&user_full(&org, mgr), select.as_deref(), Some(USER_DEFAULT)),
    );
    v["@odata.context"] = json!(metadata(&base, &version, "directoryObjects/$entity"));
    ok(&v)
}

async fn member_of(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    user_memberships(ctx, base, version, id, raw, headers, false).await
}

async fn transitive_member_of(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    user_memberships(ctx, base, version, id, raw, headers, true).await
}

async fn user_memberships(
    ctx: Arc<EmuContext>,
    base: String,
    version: String,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    transitive: bool,
) -> Response {
    if let Err(r) = guard(
        &ctx,
        &headers,
        &version,
        &[GROUP_MEMBER_READ_ALL, "Group.Read.All"],
    ) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    ctx.vanish_user_by(|org| find_user(org, &id).map(|u| u.ix)).await;
    let org = ctx.org.read().await;
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, GROUP_PROPS, &[], "directoryObject"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let direct = org.groups_of(u.ix).to_vec();
    let groups: BTreeSet<u32> = if transitive {
        ancestors(&org, &direct)
    } else {
        direct.into_iter().collect()
    };
    let mut keys: Vec<u32> = groups.into_iter().filter(|g| org.group(*g).is_some()).collect();
    keys.extend(
        org.roles
            .iter()
            .filter(|r| r.members.contains(&u.ix))
            .map(|r| GROUP_KEY | r.ix),
    );
    let rel = if transitive {
        "transitiveMemberOf"
    } else {
        "memberOf"
    };
    let path = format!("/{version}/users/{id}/{rel}");
    let context = metadata(&base, &version, "directoryObjects");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |k| {
            if k >= GROUP_KEY {
                let r = org.roles.get((k & !GROUP_KEY) as usize)?;
                let full = json!({"id": role_id(org.seed, r.ix), "displayName": r.name, "description": format!("Can act as {}.", r.name),
                              "roleTemplateId": ids::guid(org.seed, kind::ROLE, r.ix + 1_000_000), "deletedDateTime": null});
                let m = full.as_object().cloned().unwrap_or_default();
                return Some(typed("directoryRole", project(&m, select.as_deref(), None)));
            }
            let g = org.group(k)?;
            Some(typed(
                "group",
                project(&group_full(&org, g), select.as_deref(), None),
            ))
        },
    )
}

async fn list_groups(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(
        &ctx,
        &headers,
        &version,
        &[GROUP_MEMBER_READ_ALL, "Group.Read.All"],
    ) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    if let Some(e) = &od.expand {
        let name = e.split('(').next().unwrap_or(e);
        return bad_request(
            "Request_BadRequest",
            &format!("Could not find a property named '{name}' on type 'microsoft.graph.group'."),
        );
    }
    let org = ctx.org.read().await;
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, GROUP_PROPS, &[], "group"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let clauses = match od.filter.as_deref().map(|f| parse_filter(f, od.advanced())) {
        Some(Err(r)) => return r,
        Some(Ok(c)) => c,
        None => Vec::new(),
    };
    let keys: Vec<u32> = org
        .live_groups()
        .filter(|g| {
            if clauses.is_empty() && od.search.is_none() {
                return true;
            }
            let full = group_full(&org, g);
            matches(&full, &clauses) && od.search.as_deref().is_none_or(|s| search_matches(&full, s))
        })
        .map(|g| g.ix)
        .collect();
    let context = match &od.select {
        Some(s) => metadata(&base, &version, &format!("groups({})", s.join(","))),
        None => metadata(&base, &version, "groups"),
    };
    let path = format!("/{version}/groups");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |ix| {
            let g = org.group(ix)?;
            Some(Value::Object(project(
                &group_full(&org, g),
                select.as_deref(),
                None,
            )))
        },
    )
}

async fn get_group(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(
        &ctx,
        &headers,
        &version,
        &[GROUP_MEMBER_READ_ALL, "Group.Read.All"],
    ) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, GROUP_PROPS, &[], "group"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let Some(g) = find_group(&org, &id) else {
        return not_found(&id);
    };
    let mut v = Value::Object(project(&group_full(&org, g), select.as_deref(), None));
    v["@odata.context"] = json!(metadata(&base, &version, "groups/$entity"));
    ok(&v)
}

async fn members(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    group_members(ctx, base, version, id, raw, headers, false).await
}

async fn transitive_members(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    group_members(ctx, base, version, id, raw, headers, true).await
}

async fn group_members(
    ctx: Arc<EmuContext>,
    base: String,
    version: String,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    transitive: bool,
) -> Response {
    if let Err(r) = guard(
        &ctx,
        &headers,
        &version,
        &[GROUP_MEMBER_READ_ALL, "Group.Read.All"],
    ) {
        return r;
    }
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    if od.filter.is_some() && !od.advanced() {
        return advanced_needed("filter");
    }
    ctx.vanish_group_by(|org| find_group(org, &id).map(|g| g.ix))
        .await;
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let mut known: Vec<&str> = USER_PROPS.to_vec();
    known.extend(GROUP_PROPS);
    let select = match od
        .select
        .as_deref()
        .map(|s| validate_select(s, &known, &exts, "directoryObject"))
    {
        Some(Err(r)) => return r,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let Some(g) = find_group(&org, &id) else {
        return not_found(&id);
    };
    let keys = member_keys(&org, g, transitive);
    let rel = if transitive {
        "transitiveMembers"
    } else {
        "members"
    };
    let path = format!("/{version}/groups/{id}/{rel}");
    let context = metadata(&base, &version, "directoryObjects");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |k| member_object(&org, k, select.as_deref()),
    )
}

/// The user whose photo is asked for, or the provider's "no photo" / "no mailbox" answer.
fn photo_owner<'a>(org: &'a Org, id: &str) -> Result<&'a User, Response> {
    let u = find_user(org, id).ok_or_else(|| not_found(id))?;
    if u.guest {
        return Err(bad_request(
            "AuthenticationError",
            "Error authenticating with resource",
        ));
    }
    if !u.has_photo {
        return Err(graph_error(
            StatusCode::NOT_FOUND,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        ));
    }
    Ok(u)
}

fn photo_meta(org: &Org, u: &User) -> Map<String, Value> {
    let etag = format!(
        "\"{:08X}\"",
        (org.seed ^ u64::from(u.ix)).wrapping_mul(0x9E37_79B9) as u32
    );
    json!({"@odata.mediaContentType": "image/png", "@odata.mediaEtag": etag, "id": PHOTO_SIZE, "height": 16, "width": 16})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

async fn list_photos(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let org = ctx.org.read().await;
    match photo_owner(&org, &id) {
        Ok(u) => ok(&json!({
            "@odata.context": metadata(&base, &version, &format!("users('{id}')/photos")),
            "value": [photo_meta(&org, u)],
        })),
        Err(r) => r,
    }
}

async fn get_photo(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let org = ctx.org.read().await;
    match photo_owner(&org, &id) {
        Ok(u) => {
            let mut m = photo_meta(&org, u);
            m.insert(
                "@odata.context".into(),
                json!(metadata(&base, &version, &format!("users('{id}')/photo/$entity"))),
            );
            ok(&Value::Object(m))
        }
        Err(r) => r,
    }
}

fn photo_bytes(org: &Org, u: &User) -> Response {
    let mut r = (StatusCode::OK, photo::png_for(org.seed ^ u64::from(u.ix))).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    r
}

async fn photo_value(
    State(ctx): Ctx,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let org = ctx.org.read().await;
    match photo_owner(&org, &id) {
        Ok(u) => photo_bytes(&org, u),
        Err(r) => r,
    }
}

async fn sized_photo_value(
    State(ctx): Ctx,
    Path((version, id, size)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, &version, &[USER_READ_ALL]) {
        return r;
    }
    let org = ctx.org.read().await;
    match photo_owner(&org, &id) {
        Ok(u) if size == PHOTO_SIZE => photo_bytes(&org, u),
        Ok(_) => graph_error(
            StatusCode::NOT_FOUND,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        ),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------- token endpoint

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn jwt_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?).ok()
}

async fn token(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let org = ctx.org.read().await;
    if !tenant_matches(&org, &tenant) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
                 the correct cloud. Check with your subscription administrator, this may happen if there are no \
                 active subscriptions for the tenant."
            ),
        );
    }
    let tenant_name = org.domain.clone();
    drop(org);
    let missing = |p: &str| {
        token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let Some(grant) = f.get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    // Client id and secret from the form or from HTTP Basic.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (i, p) = s.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("v={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(i)?, dec(p)?))
        });
    let client_id = f
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let Some(client_id) = client_id else {
        return missing("client_id");
    };
    let Some(scope) = f.get("scope") else {
        return missing("scope");
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.is_empty() || scopes.iter().any(|s| !s.ends_with("/.default")) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value \
                 with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let graph_resources = [
        "https://graph.microsoft.com".to_string(),
        "00000003-0000-0000-c000-000000000000".to_string(),
        base.clone(),
    ];
    if let Some(bad) = scopes
        .iter()
        .map(|s| s.trim_end_matches("/.default").trim_end_matches('/'))
        .find(|r| !graph_resources.iter().any(|g| g.eq_ignore_ascii_case(r)))
    {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {bad} was not found in the tenant named {tenant_name}. This can happen \
                 if the application has not been installed by the administrator of the tenant or consented to by any \
                 user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        );
    }
    let (expired_id, expired_secret) = expired_app(ctx.org.read().await.seed);
    let (roles, expected_secret): (Vec<String>, &str) = if client_id == ctx.creds.client_id {
        (
            vec![USER_READ_ALL.into(), GROUP_MEMBER_READ_ALL.into()],
            &ctx.creds.client_secret,
        )
    } else if client_id == ctx.creds.limited_client_id {
        (vec![USER_READ_ALL.into()], &ctx.creds.limited_client_secret)
    } else if client_id == expired_id {
        (
            vec![USER_READ_ALL.into(), GROUP_MEMBER_READ_ALL.into()],
            &expired_secret,
        )
    } else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented to \
                 by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let secret = f.get("client_secret").cloned().or_else(|| basic.map(|b| b.1));
    let invalid_client =
        |code: u64, text: String| token_error(StatusCode::UNAUTHORIZED, "invalid_client", code, &text);
    if let Some(secret) = secret {
        if secret != expected_secret {
            return invalid_client(
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
                     value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
        if client_id == expired_id {
            return invalid_client(
                7000222,
                format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."),
            );
        }
    } else if let Some(assertion) = f.get("client_assertion") {
        if f.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            );
        }
        let parts: Vec<&str> = assertion.split('.').collect();
        let (header_v, claims) = match (
            parts.len(),
            parts.first().and_then(|p| jwt_part(p)),
            parts.get(1).and_then(|p| jwt_part(p)),
        ) {
            (3, Some(h), Some(c)) => (h, c),
            _ => return invalid_client(700027, "Client assertion contains an invalid signature.".into()),
        };
        if header_v.get("x5t#S256").or_else(|| header_v.get("x5t")).is_none() {
            return invalid_client(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on application."
                    .into(),
            );
        }
        let aud = format!("{base}/{tenant}/oauth2/v2.0/token");
        let now = now_unix();
        let claim = |k: &str| {
            claims
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        if claim("iss") != client_id || claim("sub") != client_id {
            return invalid_client(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
            );
        }
        if !claim("aud").eq_ignore_ascii_case(&aud)
            && claim("aud") != format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        {
            return invalid_client(
                700212,
                format!(
                    "No matching federated identity record found for presented assertion audience '{}'.",
                    claim("aud")
                ),
            );
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now || nbf > now + 300 {
            return invalid_client(
                700024,
                "Client assertion is not within its valid time range.".into(),
            );
        }
    } else {
        return invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
                .into(),
        );
    }
    let access = ctx.tokens.issue(&client_id, roles, None, now_unix());
    let ttl = ctx.tokens.ttl_secs();
    json_response(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": access}),
    )
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
mod tests {
    //! Fidelity tests: documented Microsoft Graph / identity platform behaviour.

    use super::*;
    use crate::{start, EmulatorOptions, FaultConfig, RunningEmulator};

    /// A token request form, the expected status, OAuth error and AADSTS code.
    type TokenCase = (Vec<(&'static str, String)>, u16, &'static str, u64);

    async fn emu_with(users: u32, groups: u32, faults: FaultConfig, ttl: i64) -> RunningEmulator {
        let mut opts = EmulatorOptions::new("entra");
        opts.gen = GenConfig {
            users,
            groups,
            seed: 7,
            ..GenConfig::default()
        };
        opts.faults = faults;
        opts.token_ttl_secs = ttl;
        start(opts).await.expect("start")
    }

    async fn emu() -> RunningEmulator {
        emu_with(250, 30, FaultConfig::default(), 3600).await
    }

    /// The tenant GUID of the seed-7 organisations these tests start.
    fn tenant(_emu: &RunningEmulator) -> String {
        tenant_id(7)
    }

    async fn token_resp(emu: &RunningEmulator, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), tenant(emu));
        let r = reqwest::Client::new()
            .post(url)
            .form(form)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    async fn token_for(emu: &RunningEmulator, id: &str, secret: &str) -> String {
        let (s, v) = token_resp(
            emu,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().expect("access_token").to_string()
    }

    async fn token(emu: &RunningEmulator) -> String {
        let c = emu.credentials().clone();
        token_for(emu, &c.client_id, &c.client_secret).await
    }

    async fn get(emu: &RunningEmulator, tok: &str, path: &str) -> (u16, HeaderMap, Value) {
        get_h(emu, tok, path, &[]).await
    }

    async fn get_h(
        emu: &RunningEmulator,
        tok: &str,
        path: &str,
        hs: &[(&str, &str)],
    ) -> (u16, HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", emu.base_url())
        };
        let mut req = reqwest::Client::new().get(url).bearer_auth(tok);
        for (k, v) in hs {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn code(v: &Value) -> &str {
        v["error"]["code"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn token_endpoint_issues_tokens_and_answers_aadsts_errors() {
        let emu = emu().await;
        let c = emu.credentials().clone();
        let (s, v) = token_resp(
            &emu,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 3600);
        assert!(
            v.get("refresh_token").is_none(),
            "client credentials has no refresh token"
        );

        let base = [
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let with = |extra: &[(&'static str, String)]| {
            let mut f: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
            f.extend(extra.iter().cloned());
            f
        };
        let cases: Vec<TokenCase> = vec![
            (
                with(&[
                    ("client_id", c.client_id.clone()),
                    ("client_secret", "wrong".into()),
                ]),
                401,
                "invalid_client",
                7000215,
            ),
            (
                with(&[
                    ("client_id", "11111111-2222-3333-4444-555555555555".into()),
                    ("client_secret", "x".into()),
                ]),
                400,
                "unauthorized_client",
                700016,
            ),
            (
                with(&[
                    ("client_id", expired_app(7).0),
                    ("client_secret", expired_app(7).1),
                ]),
                401,
                "invalid_client",
                7000222,
            ),
            (
                with(&[("client_id", c.client_id.clone())]),
                401,
                "invalid_client",
                7000218,
            ),
        ];
        for (form, status, error, code) in cases {
            let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (s, v) = token_resp(&emu, &f).await;
            assert_eq!(
                (s, v["error"].as_str().unwrap_or_default()),
                (status, error),
                "{v}"
            );
            assert_eq!(v["error_codes"], json!([code]));
            assert!(v["error_description"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("AADSTS{code}:")));
            assert!(v["trace_id"].is_string() && v["correlation_id"].is_string());
        }
        let (s, v) = token_resp(
            &emu,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("scope", "https://graph.microsoft.com/User.Read.All"),
            ],
        )
        .await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_scope")), "{v}");
        let url = format!("{}/not-a-tenant.example/oauth2/v2.0/token", emu.base_url());
        let r = reqwest::Client::new()
            .post(url)
            .form(&base)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 400);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error_codes"], json!([90002]));
        // HTTP Basic client authentication (RFC 6749 2.3.1) is accepted too.
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            emu.base_url(),
            emu.ctx.org.read().await.domain
        );
        let r = reqwest::Client::new()
            .post(url)
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&base)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn certificate_assertion_claims_are_checked() {
        let emu = emu().await;
        let c = emu.credentials().clone();
        let aud = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), tenant(&emu));
        let now = now_unix();
        let jwt = |claims: Value| {
            let h =
                URL_SAFE_NO_PAD.encode(json!({"alg": "PS256", "typ": "JWT", "x5t#S256": "abc"}).to_string());
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{h}.{p}.c2ln")
        };
        let good = jwt(
            json!({"aud": aud, "iss": c.client_id, "sub": c.client_id, "jti": "1", "nbf": now, "exp": now + 600}),
        );
        let expired = jwt(
            json!({"aud": aud, "iss": c.client_id, "sub": c.client_id, "jti": "2", "nbf": now - 900, "exp": now - 300}),
        );
        for (assertion, want) in [(good, 200), (expired, 401)] {
            let (s, v) = token_resp(
                &emu,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &c.client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
            assert_eq!(s, want, "{v}");
            if want == 401 {
                assert_eq!(v["error_codes"], json!([700024]));
            }
        }
    }

    #[tokio::test]
    async fn users_default_projection_select_and_paging() {
        let emu = emu().await;
        let t = token(&emu).await;
        // Without $select: the default set only; accountEnabled, department, userType are absent.
        let (s, _, v) = get(&emu, &t, "/v1.0/users").await;
        assert_eq!(s, 200);
        let first = v["value"][0].as_object().expect("user");
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, USER_DEFAULT.to_vec());
        assert_eq!(
            v["value"].as_array().map(Vec::len),
            Some(100),
            "default page size is 100"
        );
        assert!(v["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("$skiptoken=")));
        // $select returns exactly the selected properties with Graph's JSON types.
        let (_, _, v) = get(
            &emu,
            &t,
            "/v1.0/users?$select=id,accountEnabled,userType,department,businessPhones&$top=5",
        )
        .await;
        let u = &v["value"][0];
        assert!(u["accountEnabled"].is_boolean() && u["businessPhones"].is_array() && u["id"].is_string());
        assert_eq!(u.as_object().map(|o| o.len()), Some(5));
        assert!(v["@odata.context"].as_str().is_some_and(
            |c| c.ends_with("$metadata#users(id,accountEnabled,userType,department,businessPhones)")
        ));
        // Unknown property, out-of-range $top, $skip.
        let (s, _, v) = get(&emu, &t, "/v1.0/users?$select=id,nope").await;
        assert_eq!((s, code(&v)), (400, "Request_BadRequest"));
        let (s, _, v) = get(&emu, &t, "/v1.0/users?$top=1000").await;
        assert_eq!((s, code(&v)), (400, "Request_BadRequest"));
        let (s, _, _) = get(&emu, &t, "/v1.0/users?$skip=10").await;
        assert_eq!(s, 400);
        // A full walk with $top=999 returns every user once; next links keep $select verbatim.
        let mut seen = BTreeSet::new();
        let mut url = "/v1.0/users?$select=id,userPrincipalName&$top=60".to_string();
        let mut pages = 0;
        loop {
            let (s, _, v) = get(&emu, &t, &url).await;
            assert_eq!(s, 200, "{v}");
            pages += 1;
            for u in v["value"].as_array().expect("value") {
                assert!(
                    seen.insert(u["id"].as_str().expect("id").to_string()),
                    "duplicate"
                );
            }
            match v["@odata.nextLink"].as_str() {
                Some(n) => {
                    assert!(
                        n.contains("$select=id,userPrincipalName&$top=60&$skiptoken="),
                        "{n}"
                    );
                    url = n.to_string();
                }
                None => break,
            }
        }
        assert_eq!((seen.len(), pages), (250, 5));
    }

    #[tokio::test]
    async fn expand_manager_caps_pages_and_manager_404_means_none() {
        let emu = emu().await;
        let t = token(&emu).await;
        let (s, _, v) = get(
            &emu,
            &t,
            "/v1.0/users?$select=id&$expand=manager($select=id)&$top=999",
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(
            v["value"].as_array().map(Vec::len),
            Some(100),
            "$expand caps a page at 100"
        );
        let with_mgr = v["value"]
            .as_array()
            .expect("v")
            .iter()
            .find(|u| u.get("manager").is_some())
            .cloned();
        assert_eq!(
            with_mgr.expect("some user has a manager")["manager"]["@odata.type"],
            "#microsoft.graph.user"
        );
        let (root, managed) = {
            let org = emu.ctx.org.read().await;
            let root = org
                .live_users()
                .find(|u| u.manager.is_none())
                .map(|u| user_id(7, u.ix));
            let managed = org
                .live_users()
                .find(|u| u.manager.is_some())
                .map(|u| (user_id(7, u.ix), u.manager));
            (root.expect("root"), managed.expect("managed"))
        };
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{root}/manager")).await;
        assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
        assert!(v["error"]["innerError"]["request-id"].is_string());
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{}/manager?$select=id", managed.0)).await;
        assert_eq!(s, 200);
        assert_eq!(v["@odata.type"], "#microsoft.graph.user");
        assert_eq!(v["id"], json!(user_id(7, managed.1.expect("m"))));
        let (s, _, v) = get(&emu, &t, "/v1.0/users/00000000-0000-4000-8000-000000000000").await;
        assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
    }

    #[tokio::test]
    async fn advanced_queries_need_consistency_level_on_every_page() {
        let emu = emu().await;
        let t = token(&emu).await;
        let q = "/v1.0/users?$select=id,mail&$filter=endsWith(mail,'.com')&$count=true&$top=50";
        let (s, _, v) = get(&emu, &t, q).await;
        assert_eq!((s, code(&v)), (400, "Request_UnsupportedQuery"));
        let (s, _, v) = get_h(&emu, &t, q, &[("ConsistencyLevel", "eventual")]).await;
        assert_eq!(s, 200, "{v}");
        let total = v["@odata.count"].as_u64().expect("count on page 1");
        assert!(total > 50);
        let next = v["@odata.nextLink"].as_str().expect("next").to_string();
        let (s, _, v) = get(&emu, &t, &next).await;
        assert_eq!(
            (s, code(&v)),
            (400, "Request_UnsupportedQuery"),
            "the header is not part of the next link"
        );
        let (s, _, v) = get_h(&emu, &t, &next, &[("ConsistencyLevel", "eventual")]).await;
        assert_eq!(s, 200);
        assert!(v.get("@odata.count").is_none(), "count only on the first page");
        // $count=true without the header is silently ignored for basic filters.
        let (s, _, v) = get(
            &emu,
            &t,
            "/v1.0/users?$filter=accountEnabled eq false&$count=true&$select=id,accountEnabled",
        )
        .await;
        assert_eq!(s, 200);
        assert!(v.get("@odata.count").is_none());
        assert!(v["value"]
            .as_array()
            .expect("v")
            .iter()
            .all(|u| u["accountEnabled"] == false));
        let (s, _, v) = get(&emu, &t, "/v1.0/users?$search=\"displayName:ana\"").await;
        assert_eq!((s, code(&v)), (400, "Request_UnsupportedQuery"));
    }

    #[tokio::test]
    async fn auth_and_permission_errors() {
        let emu = emu().await;
        let (s, h, v) = get(&emu, "", "/v1.0/users").await;
        assert_eq!((s, code(&v)), (401, "InvalidAuthenticationToken"));
        assert!(h.get("www-authenticate").is_some());
        let c = emu.credentials().clone();
        let limited = token_for(&emu, &c.limited_client_id, &c.limited_client_secret).await;
        assert_eq!(get(&emu, &limited, "/v1.0/users").await.0, 200);
        let (s, _, v) = get(&emu, &limited, "/v1.0/groups").await;
        assert_eq!((s, code(&v)), (403, "Authorization_RequestDenied"));
        let (s, _, v) = get(&emu, &limited, "/v2.0/users").await;
        assert_eq!((s, code(&v)), (400, "BadRequest"));
        let short = emu_with(20, 5, FaultConfig::default(), 0).await;
        let t = token(&short).await;
        let (s, _, v) = get(&short, &t, "/v1.0/users").await;
        assert_eq!((s, code(&v)), (401, "InvalidAuthenticationToken"));
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")));
    }

    #[tokio::test]
    async fn groups_members_and_memberships_carry_odata_types() {
        let emu = emu_with(300, 40, FaultConfig::default(), 3600).await;
        let t = token(&emu).await;
        let (s, _, v) = get(&emu, &t, "/v1.0/groups?$top=999").await;
        assert_eq!(s, 200);
        assert_eq!(v["value"].as_array().map(Vec::len), Some(40));
        let g0 = &v["value"][0];
        assert!(
            g0["groupTypes"].is_array()
                && g0["securityEnabled"].is_boolean()
                && g0["displayName"].is_string()
        );
        // A group with a service principal among its members (g % 7 == 3).
        let gid = group_id(7, 3);
        let (s, _, v) = get(
            &emu,
            &t,
            &format!("/v1.0/groups/{gid}/members?$select=id&$top=999"),
        )
        .await;
        assert_eq!(s, 200);
        let types: BTreeSet<String> = v["value"]
            .as_array()
            .expect("v")
            .iter()
            .map(|m| m["@odata.type"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(types.contains("#microsoft.graph.servicePrincipal"), "{types:?}");
        assert!(types.contains("#microsoft.graph.user"));
        // transitiveMembers of a parent includes the nested group and its users.
        let (parent, child, child_users) = {
            let org = emu.ctx.org.read().await;
            let p = org
                .live_groups()
                .find(|g| !g.child_groups.is_empty())
                .expect("nesting");
            let c = p.child_groups[0];
            (
                p.ix,
                c,
                org.group(c).map(|g| g.members.clone()).unwrap_or_default(),
            )
        };
        let (_, _, v) = get(
            &emu,
            &t,
            &format!(
                "/v1.0/groups/{}/transitiveMembers?$select=id&$top=999",
                group_id(7, parent)
            ),
        )
        .await;
        let ids: BTreeSet<String> = v["value"]
            .as_array()
            .expect("v")
            .iter()
            .map(|m| m["id"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(ids.contains(&group_id(7, child)));
        assert!(child_users.iter().all(|u| ids.contains(&user_id(7, *u))));
        let (_, _, v) = get(
            &emu,
            &t,
            &format!("/v1.0/groups/{}/members?$select=id&$top=999", group_id(7, parent)),
        )
        .await;
        assert!(v["value"]
            .as_array()
            .expect("v")
            .iter()
            .any(|m| m["@odata.type"] == "#microsoft.graph.group"));
        // memberOf lists groups and directory roles.
        let holder = emu
            .ctx
            .org
            .read()
            .await
            .roles
            .iter()
            .find_map(|r| r.members.first().copied())
            .expect("role holder");
        let (s, _, v) = get(
            &emu,
            &t,
            &format!("/v1.0/users/{}/memberOf?$select=id", user_id(7, holder)),
        )
        .await;
        assert_eq!(s, 200);
        assert!(v["value"]
            .as_array()
            .expect("v")
            .iter()
            .any(|m| m["@odata.type"] == "#microsoft.graph.directoryRole"));
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/groups/{}", group_id(7, 999))).await;
        assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
    }

    #[tokio::test]
    async fn photos_bytes_and_no_photo_errors() {
        let emu = emu().await;
        let t = token(&emu).await;
        let (with, without, guest) = {
            let org = emu.ctx.org.read().await;
            let w = org
                .live_users()
                .find(|u| u.has_photo && !u.guest)
                .map(|u| user_id(7, u.ix));
            let wo = org
                .live_users()
                .find(|u| !u.has_photo && !u.guest)
                .map(|u| user_id(7, u.ix));
            let g = org.live_users().find(|u| u.guest).map(|u| user_id(7, u.ix));
            (w.expect("with"), wo.expect("without"), g.expect("guest"))
        };
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{with}/photos")).await;
        assert_eq!(s, 200);
        assert_eq!(v["value"][0]["@odata.mediaContentType"], "image/png");
        let r = reqwest::Client::new()
            .get(format!("{}/v1.0/users/{with}/photo/$value", emu.base_url()))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("image/png")
        );
        assert!(r.bytes().await.expect("bytes").starts_with(b"\x89PNG"));
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{without}/photos")).await;
        assert_eq!((s, code(&v)), (404, "ImageNotFound"));
        let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{guest}/photo/$value")).await;
        assert_eq!((s, code(&v)), (400, "AuthenticationError"));
    }

    #[tokio::test]
    async fn throttling_and_faults_use_graph_shapes() {
        let emu = emu_with(
            250,
            10,
            FaultConfig {
                rate_limit_per_minute: Some(3),
                ..FaultConfig::default()
            },
            3600,
        )
        .await;
        let t = token(&emu).await;
        for _ in 0..3 {
            assert_eq!(get(&emu, &t, "/v1.0/users?$top=1").await.0, 200);
        }
        let (s, h, v) = get(&emu, &t, "/v1.0/users?$top=1").await;
        assert_eq!((s, code(&v)), (429, "TooManyRequests"));
        assert!(h
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some());
        assert!(h.get("x-ms-throttle-scope").is_some() && h.get("x-ms-throttle-information").is_some());

        let emu = emu_with(
            250,
            10,
            FaultConfig {
                expire_token_at_page: Some(2),
                ..FaultConfig::default()
            },
            3600,
        )
        .await;
        let t = token(&emu).await;
        let (_, _, v) = get(&emu, &t, "/v1.0/users?$select=id&$top=100").await;
        let next = v["@odata.nextLink"].as_str().expect("next").to_string();
        let (s, _, v) = get(&emu, &t, &next).await;
        assert_eq!((s, code(&v)), (400, "Directory_ExpiredPageToken"));

        let emu = emu_with(
            50,
            5,
            FaultConfig {
                error_rate: 1.0,
                error_statuses: vec![503],
                start_after: 1,
                max_faults: Some(1),
                ..FaultConfig::default()
            },
            3600,
        )
        .await;
        let t = token(&emu).await;
        let (s, h, v) = get(&emu, &t, "/v1.0/users").await;
        assert_eq!((s, code(&v)), (503, "serviceNotAvailable"));
        assert!(h.get("retry-after").is_some());
        assert_eq!(get(&emu, &t, "/v1.0/users").await.0, 200);
    }
}
