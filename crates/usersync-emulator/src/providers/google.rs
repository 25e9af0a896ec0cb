//! Google Workspace facade: the Admin SDK Directory API (`/admin/directory/v1/...`) and Google's
//! OAuth 2.0 endpoints (`/token`, `/oauth2/v4/token`, `/o/oauth2/v2/auth`), written from the
//! `admin.directory_v1` discovery document and Google's published documentation.
//!
//! What it reproduces:
//! - **Auth.** Service account JWT bearer grant (RFC 7523) with domain-wide delegation: the
//!   assertion's RS256 signature, `aud`, `iat`/`exp` (at most one hour), delegated scopes
//!   (`unauthorized_client` otherwise) and `sub` (an existing user; `invalid_grant` otherwise).
//!   Without `sub`, or with a `sub` who is not an administrator, a token is issued and every
//!   Directory call answers 403 "Not Authorized to access this resource/api". Authorization code
//!   (+ `access_type=offline` refresh token, PKCE `code_challenge` checked) and refresh-token grants for OAuth clients.
//! - **Privileges.** User 0 is a super administrator; user 1 a delegated administrator with the
//!   "Users > Read" privilege only (groups and members: 403 `forbidden`).
//! - **Users.** `users?customer=my_customer|<id>` or `domain=`, `maxResults` 1-500 (default 100; out
//!   of range: 400 `invalid`), `pageToken` (`nextPageToken`), `projection=basic|custom|full`
//!   (`customSchemas` only with `full`, or `custom` + `customFieldMask`), `orderBy=email|givenName|
//!   familyName`, `sortOrder`, `fields=` partial responses. Status: `suspended` (+`suspensionReason`)
//!   and `archived`. Manager: `relations[{type: manager, value: <email>}]`, the manager's primary
//!   address or (one user in ten) one of its `aliases`/`nonEditableAliases`, which every user
//!   carries. An empty page omits `users`.
//!   Guests of the neutral org are not Workspace users: they are not listed and only appear as
//!   external `USER` members of groups.
//! - **Photos.** `users/{userKey}/photos/thumbnail`, `photoData` in Google's web-safe base64 (`-`,
//!   `_`, `*`/`.` for `=`); 404 when the user has no photo.
//! - **Groups.** `groups?customer=|domain=|userKey=` (direct groups of a user or of a group; `userKey`
//!   with `customer` is a 400), `maxResults` default and maximum 200, `directMembersCount` as a
//!   string. **Members:** `groups/{groupKey}/members` (`USER`, `GROUP`; the built-in "Everyone" group
//!   has one `CUSTOMER` member = every user of the account), `roles=`, `includeDerivedMembership`,
//!   `members/{memberKey}`, `hasMember/{memberKey}` (nested).
//! - **Errors** in Google's envelope `{"error":{"code","message","errors":[{"message","domain",
//!   "reason"}],"status"}}`; throttling as 403 `userRateLimitExceeded` (rate, 2,400 queries per
//!   minute per user by default) or 403 `quotaExceeded` (concurrency), without `Retry-After`;
//!   5xx as `backendError` (502 as Google's HTML error page).

// Helpers return the ready error `Response` as their `Err`, as the handlers answer it as is.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::facade::or_respond;
use crate::facade::{json_response, BaseUrl, EmuContext, Facade};
use crate::gen::GenConfig;
use crate::ids::{kind, mix32, unmix32};
use crate::org::{GroupKind, Org, User, UserIx, UserStatus};
use crate::paging::{self, PageTokenError};
use crate::rate::RateDecision;
use crate::timefmt::{now_unix, rfc3339_millis};
use crate::tokens::TokenCheck;
use crate::EmulatorError;

/// Path prefix of the Directory API (the connector's `base_url` is `<emulator>/admin/directory/v1`).
pub const API: &str = "/admin/directory/v1";
/// Default rate limit: 2,400 queries per minute per user per project (Directory API limits page).
pub const DEFAULT_QPM: u32 = 2_400;

/// Read-only scopes (and the read-write ones that also grant reads).
pub mod scope {
    /// Users, read-only.
    pub const USER_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
    /// Users, read-write.
    pub const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
    /// Groups, read-only.
    pub const GROUP_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
    /// Groups, read-write.
    pub const GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group";
    /// Group members, read-only.
    pub const MEMBER_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
    /// Group members, read-write.
    pub const MEMBER: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
    /// Cloud platform (accepted by `users.list`).
    pub const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";
}

const NOT_AUTHORIZED: &str = "Not Authorized to access this resource/api";
const UNAUTHORIZED_CLIENT: &str =
    "Client is unauthorized to retrieve access tokens using this method, or client not \
                                   authorized for any of the scopes requested.";
const BAD_TIMES: &str =
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. \
                         Check your iat and exp values in the JWT claim.";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The Google Workspace (Admin SDK Directory) facade.
#[derive(Debug, Clone, Copy)]
pub struct Google;

// ------------------------------------------------------------------ ids and mappings (pub for tests)

fn id_tag(seed: u64) -> u32 {
    mix32(0, seed, 77) % 1_000_000_000
}

/// Google-shaped user id: a 21-digit number, e.g. `100123456780123456789`.
pub fn user_id(seed: u64, ix: UserIx) -> String {
    format!("1{:010}{:010}", id_tag(seed), mix32(ix, seed, kind::USER))
}

/// The index behind [`user_id`].
pub fn parse_user_id(id: &str, seed: u64) -> Option<UserIx> {
    if id.len() != 21 || !id.bytes().all(|b| b.is_ascii_digit()) || !id.starts_with('1') {
        return None;
    }
    let tag: u32 = id[1..11].parse().ok()?;
    let m: u64 = id[11..].parse().ok()?;
    (tag == id_tag(seed)).then_some(())?;
    Some(unmix32(u32::try_from(m).ok()?, seed, kind::USER))
}

/// Google-shaped group id: 15 lower-case characters starting with `0`, e.g. `03a1b2c30000abcd`.
pub fn group_id(seed: u64, ix: u32) -> String {
    format!(
        "0{:06x}{:08x}",
        id_tag(seed) & 0xFF_FFFF,
        mix32(ix, seed, kind::GROUP)
    )
}

/// The index behind [`group_id`].
pub fn parse_group_id(id: &str, seed: u64) -> Option<u32> {
    if id.len() != 15 || !id.starts_with('0') {
        return None;
    }
    let tag = u32::from_str_radix(&id[1..7], 16).ok()?;
    let m = u32::from_str_radix(&id[7..], 16).ok()?;
    (tag == id_tag(seed) & 0xFF_FFFF).then_some(())?;
    Some(unmix32(m, seed, kind::GROUP))
}

/// The account's customer id, e.g. `C03xk9a2b`.
pub fn customer_id(seed: u64) -> String {
    let mut v = mix32(1, seed, 78);
    let mut s = String::new();
    for _ in 0..7 {
        let d = (v % 36) as u8;
        s.push(if d < 10 {
            (b'0' + d) as char
        } else {
            (b'a' + d - 10) as char
        });
        v /= 36;
    }
    format!("C0{s}")
}

/// `(suspended, archived, suspensionReason)` of a neutral status. Google has no staged, locked or
/// password states: those accounts are active (never-signed-in ones have `agreedToTerms: false`).
pub fn google_status(status: UserStatus) -> (bool, bool, Option<&'static str>) {
    match status {
        UserStatus::Suspended => (true, false, Some("ADMIN")),
        UserStatus::Deprovisioned => (false, true, None),
        _ => (false, false, None),
    }
}

/// Whether the user is a Workspace user of the account (listed by `users.list`). Guests of the
/// neutral org are external accounts in Google.
pub fn is_listed(u: &User) -> bool {
    !u.guest
}

/// The primary email Google shows for a listed user.
pub fn primary_email(u: &User) -> String {
    u.login.to_lowercase()
}

/// A user's `aliases`: the sign-in email when it differs from the primary address, and for every
/// third user a second address (renamed people and role addresses keep their old mail).
pub fn aliases(org: &Org, u: &User) -> Vec<String> {
    let primary = primary_email(u);
    let mut out = Vec::new();
    let email = u.email.to_lowercase();
    if !email.is_empty() && email != primary {
        out.push(email);
    }
    if u.ix % 3 == 1 {
        let local = primary.split('@').next().unwrap_or("user");
        out.push(format!("{local}.a{}@{}", u.ix, org.domain));
    }
    out
}

/// A user's `nonEditableAliases`: the address in the account's test domain, as Google adds it.
pub fn non_editable_aliases(u: &User) -> Vec<String> {
    vec![format!("{}.test-google-a.com", primary_email(u))]
}

/// What an administrator typed as the user's manager (`relations[type=manager].value`): the
/// manager's primary address, or, for one user in ten, one of the manager's aliases (any address
/// of the manager is accepted by the Admin console).
pub fn manager_reference(org: &Org, u: &User) -> Option<String> {
    let m = u.manager.and_then(|m| org.user(m)).filter(|m| is_listed(m))?;
    if u.ix % 10 == 3 {
        let mut all = aliases(org, m);
        all.extend(non_editable_aliases(m));
        return all.get((u.ix as usize / 10) % all.len()).cloned();
    }
    Some(primary_email(m))
}

/// The group's address: a slug of its name plus its index (names collide on purpose).
pub fn group_email(org: &Org, ix: u32, name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "group" } else { slug };
    format!("{slug}-{ix}@{}", org.domain)
}

/// Admin privileges of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Privilege {
    /// Super administrator: every read.
    Super,
    /// Delegated administrator with "Users > Read" only.
    UsersRead,
    /// Not an administrator.
    None,
}

impl Privilege {
    fn code(self) -> &'static str {
        match self {
            Privilege::Super => "super",
            Privilege::UsersRead => "users",
            Privilege::None => "none",
        }
    }

    fn from_code(s: &str) -> Privilege {
        match s {
            "super" => Privilege::Super,
            "users" => Privilege::UsersRead,
            _ => Privilege::None,
        }
    }

    fn of(org: &Org, email: &str) -> Privilege {
        match find_user_by_email(org, email) {
            Some(0) => Privilege::Super,
            Some(1) => Privilege::UsersRead,
            _ => Privilege::None,
        }
    }
}

/// The user with this address: primary, or an alias (Google accepts any of them as `userKey`).
fn find_user_by_email(org: &Org, email: &str) -> Option<UserIx> {
    let e = email.trim().to_lowercase();
    org.live_users()
        .find(|u| {
            is_listed(u)
                && (primary_email(u) == e
                    || u.email.eq_ignore_ascii_case(&e)
                    || aliases(org, u).contains(&e)
                    || non_editable_aliases(u).contains(&e))
        })
        .map(|u| u.ix)
}

// ------------------------------------------------------------------ service accounts

#[derive(Clone)]
struct ServiceAccount {
    email: String,
    client_id: String,
    /// Scopes an administrator authorised for this client in "Domain-wide delegation".
    delegated: Vec<&'static str>,
    key: jsonwebtoken::DecodingKey,
}

/// Service-account key file names written into the state directory.
pub mod key_files {
    /// Full access (every read scope delegated).
    pub const FULL: &str = "google-service-account.json";
    /// Only `admin.directory.user.readonly` delegated: asking for the group scopes is refused.
    pub const LIMITED: &str = "google-service-account-limited.json";
    /// The full account's email with another key: the signature check fails.
    pub const WRONG_KEY: &str = "google-service-account-wrong-key.json";
}

fn sa_email(seed: u64, which: &str) -> String {
    format!(
        "usersync-{which}@emulator-{:x}.iam.gserviceaccount.com",
        mix32(2, seed, 79) & 0xFFFF
    )
}

fn sa_client_id(seed: u64, which: u8) -> String {
    format!(
        "1{:010}{:010}",
        id_tag(seed),
        mix32(u32::from(which), seed, kind::APP)
    )
}

fn key_file_json(email: &str, client_id: &str, private_key: &str, key_id: &str, token_uri: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "usersync-emulator",
        "private_key_id": key_id,
        "private_key": private_key,
        "client_email": email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com"
    })
}

// ------------------------------------------------------------------ state

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    principal: String,
    offline: bool,
    /// PKCE `code_challenge` (S256 or plain) sent to the authorization endpoint.
    challenge: Option<(String, String)>,
}

struct RefreshGrant {
    client_id: String,
    scopes: Vec<String>,
    principal: String,
}

struct GState {
    ctx: Arc<EmuContext>,
    accounts: Vec<ServiceAccount>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    refresh: Mutex<HashMap<String, RefreshGrant>>,
}

type St = State<Arc<GState>>;

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------ responses

/// A Google API error in the standard envelope.
fn gerror(status: u16, reason: &str, message: &str) -> Response {
    gerror_full(status, reason, message, "global", None)
}

fn canonical_status(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => return None,
    })
}

fn gerror_full(
    status: u16,
    reason: &str,
    message: &str,
    domain: &str,
    location: Option<(&str, &str)>,
) -> Response {
    let mut item = json!({"message": message, "domain": domain, "reason": reason});
    if let Some((loc, loc_type)) = location {
        item["location"] = loc.into();
        item["locationType"] = loc_type.into();
    }
    let mut err = json!({"code": status, "message": message, "errors": [item]});
    // Newer Google front ends add the canonical status; the Directory API's classic errors
    // (403 forbidden, 404 notFound, 400 badRequest) come without it.
    if matches!(
        reason,
        "authError" | "required" | "insufficientPermissions" | "backendError" | "rateLimitExceeded"
    ) {
        if let Some(s) = canonical_status(status) {
            err["status"] = s.into();
        }
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, &json!({ "error": err }));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(status, &json!({"error": error, "error_description": description}))
}

fn not_found(what: &str) -> Response {
    gerror(404, "notFound", &format!("Resource Not Found: {what}"))
}

fn bad_request() -> Response {
    gerror(400, "badRequest", "Bad Request")
}

fn invalid_param(name: &str, message: &str) -> Response {
    gerror_full(400, "invalid", message, "global", Some((name, "parameter")))
}

fn page_token_error(e: PageTokenError) -> Response {
    let msg = match e {
        PageTokenError::Invalid => "Invalid pageToken",
        PageTokenError::Expired => "Invalid pageToken: the page token has expired",
    };
    invalid_param("pageToken", msg)
}

fn etag(parts: &[&str]) -> String {
    let tag = paging::listing_tag(parts);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(tag.to_be_bytes()))
}

// ------------------------------------------------------------------ partial responses (`fields=`)

/// A `fields=` selection: names with an optional sub-selection (`None` = the whole value).
#[derive(Debug, Clone, Default, PartialEq)]
struct Selection(BTreeMap<String, Option<Selection>>);

/// Parse Google's partial-response syntax: `a,b/c,d(e,f/g)`.
fn parse_fields(s: &str) -> Result<Selection, String> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let sel = parse_list(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(format!("Invalid field selection {s}"));
    }
    Ok(sel)
}

fn parse_list(c: &[char], pos: &mut usize) -> Result<Selection, String> {
    let mut sel = Selection::default();
    loop {
        let (name, sub) = parse_item(c, pos)?;
        merge(&mut sel, name, sub);
        if *pos < c.len() && c[*pos] == ',' {
            *pos += 1;
            continue;
        }
        return Ok(sel);
    }
}

fn merge(sel: &mut Selection, name: String, sub: Option<Selection>) {
    match (sel.0.get_mut(&name), sub) {
        (None, sub) => {
            sel.0.insert(name, sub);
        }
        (Some(existing), None) => *existing = None,
        (Some(Some(a)), Some(b)) => {
            for (k, v) in b.0 {
                merge(a, k, v);
            }
        }
        (Some(None), Some(_)) => {}
    }
}

fn parse_item(c: &[char], pos: &mut usize) -> Result<(String, Option<Selection>), String> {
    let start = *pos;
    while *pos < c.len() && (c[*pos].is_alphanumeric() || matches!(c[*pos], '_' | '$' | '*' | '.' | '-')) {
        *pos += 1;
    }
    if *pos == start {
        return Err("Invalid field selection".into());
    }
    let name: String = c[start..*pos].iter().collect();
    if *pos < c.len() && c[*pos] == '/' {
        *pos += 1;
        let (n, sub) = parse_item(c, pos)?;
        let mut inner = Selection::default();
        inner.0.insert(n, sub);
        return Ok((name, Some(inner)));
    }
    if *pos < c.len() && c[*pos] == '(' {
        *pos += 1;
        let inner = parse_list(c, pos)?;
        if *pos >= c.len() || c[*pos] != ')' {
            return Err("Invalid field selection: missing `)`".into());
        }
        *pos += 1;
        return Ok((name, Some(inner)));
    }
    Ok((name, None))
}

fn apply_fields(v: Value, sel: &Selection) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(|i| apply_fields(i, sel)).collect()),
        Value::Object(mut obj) => {
            if sel.0.contains_key("*") {
                return Value::Object(obj);
            }
            let mut out = Map::new();
            for (k, sub) in &sel.0 {
                if let Some(val) = obj.remove(k) {
                    out.insert(
                        k.clone(),
                        match sub {
                            Some(s) => apply_fields(val, s),
                            None => val,
                        },
                    );
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Answer 200 with `value` after applying the request's `fields=` selection.
fn ok_with_fields(value: Value, fields: Option<&str>) -> Response {
    let value = match fields.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => match parse_fields(f) {
            Ok(sel) => apply_fields(value, &sel),
            Err(msg) => {
                return gerror_full(
                    400,
                    "invalidParameter",
                    &msg,
                    "global",
                    Some(("fields", "parameter")),
                )
            }
        },
        None => value,
    };
    let mut r = json_response(StatusCode::OK, &value);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

// ------------------------------------------------------------------ authorization of API calls

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Users,
    UsersList,
    Groups,
    Members,
}

impl Need {
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Need::Users => &[scope::USER, scope::USER_RO],
            Need::UsersList => &[scope::USER, scope::USER_RO, scope::CLOUD],
            Need::Groups => &[scope::GROUP, scope::GROUP_RO],
            Need::Members => &[scope::GROUP, scope::MEMBER, scope::MEMBER_RO, scope::GROUP_RO],
        }
    }

    fn allowed(self, p: Privilege) -> bool {
        match p {
            Privilege::Super => true,
            Privilege::UsersRead => matches!(self, Need::Users | Need::UsersList),
            Privilege::None => false,
        }
    }
}

fn www_authenticate(r: &mut Response, error: Option<&str>) {
    let v = match error {
        Some(e) => format!("Bearer realm=\"https://accounts.google.com/\", error=\"{e}\""),
        None => "Bearer realm=\"https://accounts.google.com/\"".to_string(),
    };
    if let Ok(h) = HeaderValue::from_str(&v) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, h);
    }
}

fn authorize(st: &GState, headers: &HeaderMap, need: Need) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        let mut r = gerror_full(
            401,
            "required",
            "Login Required.",
            "global",
            Some(("Authorization", "header")),
        );
        www_authenticate(&mut r, None);
        return Err(r);
    };
    let info = match st
        .ctx
        .tokens
        .check(token.strip_prefix("ya29.").unwrap_or(token), now_unix())
    {
        TokenCheck::Valid(info) => info,
        TokenCheck::Expired | TokenCheck::Unknown => {
            let mut r = gerror_full(
                401,
                "authError",
                "Invalid Credentials",
                "global",
                Some(("Authorization", "header")),
            );
            www_authenticate(&mut r, Some("invalid_token"));
            return Err(r);
        }
    };
    if !info.scopes.iter().any(|s| need.scopes().contains(&s.as_str())) {
        let mut r = gerror(
            403,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        );
        www_authenticate(&mut r, Some("insufficient_scope"));
        return Err(r);
    }
    let privilege = Privilege::from_code(info.client_id.split('|').next().unwrap_or(""));
    if !need.allowed(privilege) {
        return Err(gerror(403, "forbidden", NOT_AUTHORIZED));
    }
    Ok(())
}

// ------------------------------------------------------------------ users

fn user_json(org: &Org, u: &User, projection: Projection, custom_mask: &[String], customer: &str) -> Value {
    let (suspended, archived, reason) = google_status(u.status);
    let email = primary_email(u);
    let mut v = json!({
        "kind": "admin#directory#user",
        "id": user_id(org.seed, u.ix),
        "etag": etag(&[&u.ix.to_string(), &u.last_updated.to_string()]),
        "primaryEmail": email,
        "name": {
            "givenName": u.first_name,
            "familyName": u.last_name,
            "fullName": format!("{} {}", u.first_name, u.last_name),
            "displayName": u.display_name,
        },
        "isAdmin": u.ix == 0,
        "isDelegatedAdmin": u.ix == 1,
        "lastLoginTime": u.last_login.map(rfc3339_millis).unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into()),
        "creationTime": rfc3339_millis(u.created),
        "agreedToTerms": !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned),
        "suspended": suspended,
        "archived": archived,
        "changePasswordAtNextLogin": matches!(u.status, UserStatus::PasswordExpired | UserStatus::Recovery),
        "ipWhitelisted": false,
        "emails": [{"address": email, "primary": true}],
        "customerId": customer,
        "orgUnitPath": u.department.as_deref().map(|d| format!("/{d}")).unwrap_or_else(|| "/".into()),
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": u.ix % 3 == 0,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true,
    });
    if let Some(r) = reason {
        v["suspensionReason"] = r.into();
    }
    if archived {
        v["archivalTime"] = rfc3339_millis(u.status_changed).into();
    }
    if suspended {
        v["suspensionTime"] = rfc3339_millis(u.status_changed).into();
    }
    if u.department.is_some() || u.title.is_some() {
        let mut o = json!({"primary": true, "customType": ""});
        if let Some(t) = &u.title {
            o["title"] = t.clone().into();
        }
        if let Some(d) = &u.department {
            o["department"] = d.clone().into();
        }
        if let Some((_, cc)) = u.custom.iter().find(|(k, _)| k == "costCenter") {
            o["costCenter"] = cc.clone().into();
        }
        v["organizations"] = json!([o]);
    }
    if let Some(m) = manager_reference(org, u) {
        v["relations"] = json!([{"value": m, "type": "manager"}]);
    }
    let user_aliases = aliases(org, u);
    if !user_aliases.is_empty() {
        v["aliases"] = json!(user_aliases);
    }
    v["nonEditableAliases"] = json!(non_editable_aliases(u));
    if let Some(n) = &u.employee_number {
        v["externalIds"] = json!([{"value": n, "type": "organization"}]);
    }
    if u.has_photo {
        v["thumbnailPhotoUrl"] =
            format!("https://lh3.googleusercontent.com/a-/emulator{}=s96-c", u.ix).into();
        v["thumbnailPhotoEtag"] = etag(&["photo", &u.ix.to_string()]).into();
    }
    let custom_wanted = match projection {
        Projection::Full => true,
        Projection::Custom => custom_mask.iter().any(|m| m == "Employment"),
        Projection::Basic => false,
    };
    if custom_wanted && !u.custom.is_empty() {
        let fields: Map<String, Value> = u
            .custom
            .iter()
            .map(|(k, val)| (k.clone(), Value::from(val.clone())))
            .collect();
        v["customSchemas"] = json!({ "Employment": fields });
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Projection {
    Basic,
    Custom,
    Full,
}

fn projection(q: &HashMap<String, String>) -> Result<(Projection, Vec<String>), Response> {
    let p = match q.get("projection").map(String::as_str) {
        None | Some("basic") | Some("BASIC") => Projection::Basic,
        Some("custom") | Some("CUSTOM") => Projection::Custom,
        Some("full") | Some("FULL") => Projection::Full,
        Some(other) => {
            return Err(invalid_param(
                "projection",
                &format!("Invalid value '{other}'. Values must be one of: basic, custom, full"),
            ))
        }
    };
    let mask: Vec<String> = q
        .get("customFieldMask")
        .map(|m| {
            m.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if p == Projection::Custom && mask.is_empty() {
        return Err(gerror(
            400,
            "invalid",
            "Invalid Input: custom fields mask is required for projection custom",
        ));
    }
    Ok((p, mask))
}

/// Checks `customer`/`domain`; returns an error response for an account that is not this one.
fn check_scope(org: &Org, q: &HashMap<String, String>) -> Result<(), Response> {
    let customer = q.get("customer").map(String::as_str).filter(|c| !c.is_empty());
    let domain = q.get("domain").map(String::as_str).filter(|d| !d.is_empty());
    match (customer, domain) {
        (None, None) => Err(bad_request()),
        (Some(c), _) if c != "my_customer" && c != customer_id(org.seed) => {
            Err(gerror(403, "forbidden", NOT_AUTHORIZED))
        }
        (None, Some(d)) if !d.eq_ignore_ascii_case(&org.domain) => {
            Err(gerror(403, "forbidden", NOT_AUTHORIZED))
        }
        _ => Ok(()),
    }
}

fn max_results(
    q: &HashMap<String, String>,
    default: usize,
    max: Option<usize>,
    clamp: usize,
) -> Result<usize, Response> {
    let Some(raw) = q.get("maxResults") else {
        return Ok(default);
    };
    let n: i64 = raw.trim().parse().map_err(|_| {
        invalid_param(
            "maxResults",
            &format!(
                "Invalid value '{raw}'. Values must be within the range: [1, {}]",
                max.unwrap_or(clamp)
            ),
        )
    })?;
    if n < 1 || max.is_some_and(|m| n as usize > m) {
        return Err(invalid_param(
            "maxResults",
            &format!(
                "Invalid value '{raw}'. Values must be within the range: [1, {}]",
                max.unwrap_or(clamp)
            ),
        ));
    }
    Ok((n as usize).min(clamp))
}

fn descending(q: &HashMap<String, String>) -> Result<bool, Response> {
    match q.get("sortOrder").map(|s| s.to_ascii_uppercase()) {
        None => Ok(false),
        Some(s) if s == "ASCENDING" => Ok(false),
        Some(s) if s == "DESCENDING" => Ok(true),
        Some(s) => Err(invalid_param(
            "sortOrder",
            &format!("Invalid value '{s}'. Values must be one of: ASCENDING, DESCENDING"),
        )),
    }
}

/// The keys of a listing in the requested order: ranks `0..n` over `order` (ascending keys for
/// [`paging::page`]), or the indices themselves in index order.
fn ranked(order: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
    let keys = (0..order.len() as u32).collect();
    (keys, order)
}

async fn list_users(State(st): St, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::UsersList) {
        return r;
    }
    if q.contains_key("query") || q.get("showDeleted").is_some_and(|v| v == "true") {
        // Not emulated: refuse rather than answer with unfiltered data.
        return gerror(
            400,
            "invalid",
            "Invalid Input: query and showDeleted are not supported by the emulator",
        );
    }
    let org = st.ctx.org.read().await;
    if let Err(r) = check_scope(&org, &q) {
        return r;
    }
    let (proj, mask) = or_respond!(projection(&q));
    let limit = or_respond!(max_results(&q, 100, Some(500), 500));
    let desc = or_respond!(descending(&q));
    let domain_filter = q.get("domain").filter(|_| !q.contains_key("customer"));
    let mut users: Vec<&User> = org
        .live_users()
        .filter(|u| is_listed(u))
        .filter(|u| {
            domain_filter.is_none_or(|d| primary_email(u).ends_with(&format!("@{}", d.to_lowercase())))
        })
        .collect();
    let order_by = q.get("orderBy").map(String::as_str);
    match order_by {
        None => {}
        Some("email") => users.sort_by_key(|u| primary_email(u)),
        Some("givenName") => users.sort_by(|a, b| {
            a.first_name
                .to_lowercase()
                .cmp(&b.first_name.to_lowercase())
                .then(a.ix.cmp(&b.ix))
        }),
        Some("familyName") => users.sort_by(|a, b| {
            a.last_name
                .to_lowercase()
                .cmp(&b.last_name.to_lowercase())
                .then(a.ix.cmp(&b.ix))
        }),
        Some(other) => {
            return invalid_param(
                "orderBy",
                &format!("Invalid value '{other}'. Values must be one of: email, familyName, givenName"),
            )
        }
    }
    if desc {
        users.reverse();
    }
    let order: Vec<u32> = users.iter().map(|u| u.ix).collect();
    let (keys, order) = if order_by.is_some() || desc {
        ranked(order)
    } else {
        (order.clone(), order)
    };
    let sorted = order_by.is_some() || desc;
    let tag = paging::listing_tag(&[
        "users",
        order_by.unwrap_or(""),
        &desc.to_string(),
        domain_filter.map(String::as_str).unwrap_or(""),
    ]);
    let page = match paging::page(
        &keys,
        tag,
        q.get("pageToken").map(String::as_str),
        limit,
        &st.ctx.faults.config(),
    ) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let customer = customer_id(org.seed);
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| {
            if sorted {
                order.get(k as usize).copied()
            } else {
                Some(k)
            }
        })
        .filter_map(|ix| org.user(ix))
        .map(|u| user_json(&org, u, proj, &mask, &customer))
        .collect();
    drop(org);
    let mut body =
        json!({"kind": "admin#directory#users", "etag": etag(&["users", &page.page_no.to_string()])});
    if !items.is_empty() {
        body["users"] = Value::Array(items);
    }
    if let Some(next) = page.next {
        body["nextPageToken"] = next.into();
    }
    ok_with_fields(body, q.get("fields").map(String::as_str))
}

fn resolve_user(org: &Org, key: &str) -> Option<UserIx> {
    if let Some(ix) = parse_user_id(key, org.seed) {
        return org.user(ix).filter(|u| is_listed(u)).map(|u| u.ix);
    }
    find_user_by_email(org, key)
}

fn resolve_group(org: &Org, key: &str) -> Option<u32> {
    if let Some(ix) = parse_group_id(key, org.seed) {
        return org.group(ix).map(|g| g.ix);
    }
    let k = key.trim().to_lowercase();
    org.live_groups()
        .find(|g| group_email(org, g.ix, &g.name) == k)
        .map(|g| g.ix)
}

async fn get_user(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Users) {
        return r;
    }
    let (proj, mask) = or_respond!(projection(&q));
    let org = st.ctx.org.read().await;
    let Some(u) = resolve_user(&org, &key).and_then(|ix| org.user(ix)) else {
        return not_found("userKey");
    };
    let v = user_json(&org, u, proj, &mask, &customer_id(org.seed));
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

/// Google's web-safe base64: `+` -> `-`, `/` -> `_`, `=` -> `*`, and `.` for padding. Both padding
/// spellings occur in the documentation; users with an odd index get `.`, the others `*`.
pub fn web_safe_base64(bytes: &[u8], dot_padding: bool) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '=' if dot_padding => '.',
            '=' => '*',
            c => c,
        })
        .collect()
}

async fn get_photo(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Users) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(u) = resolve_user(&org, &key).and_then(|ix| org.user(ix)) else {
        return not_found("userKey");
    };
    if !u.has_photo {
        return not_found("photo");
    }
    let bytes = crate::photo::png_for(org.seed ^ u64::from(u.ix));
    let v = json!({
        "kind": "admin#directory#user#photo",
        "id": user_id(org.seed, u.ix),
        "etag": etag(&["photo", &u.ix.to_string()]),
        "primaryEmail": primary_email(u),
        "mimeType": "PNG",
        "width": 16,
        "height": 16,
        "photoData": web_safe_base64(&bytes, u.ix % 2 == 1),
    });
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

// ------------------------------------------------------------------ groups

fn group_json(org: &Org, ix: u32) -> Option<Value> {
    let g = org.group(ix)?;
    let email = group_email(org, ix, &g.name);
    let direct = if g.kind == GroupKind::BuiltIn {
        1
    } else {
        g.members.len() + g.child_groups.len()
    };
    let mut v = json!({
        "kind": "admin#directory#group",
        "id": group_id(org.seed, ix),
        "etag": etag(&["group", &ix.to_string(), &g.last_updated.to_string()]),
        "email": email,
        "name": g.name,
        "directMembersCount": direct.to_string(),
        "description": g.description.clone().unwrap_or_default(),
        "adminCreated": g.kind != GroupKind::Imported,
        "nonEditableAliases": [format!("{}.test-google-a.com", email)],
    });
    if g.kind == GroupKind::Imported {
        v["aliases"] = json!([format!("ad-{}", email)]);
    }
    Some(v)
}

async fn list_groups(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Groups) {
        return r;
    }
    if q.contains_key("query") {
        return gerror(
            400,
            "invalid",
            "Invalid Input: query is not supported by the emulator",
        );
    }
    let limit = or_respond!(max_results(&q, 200, None, 200));
    let desc = or_respond!(descending(&q));
    let org = st.ctx.org.read().await;
    let user_key = q.get("userKey").map(String::as_str).filter(|k| !k.is_empty());
    let mut ixs: Vec<u32> = match user_key {
        Some(_) if q.contains_key("customer") => return bad_request(),
        Some(key) => {
            if let Some(uix) = resolve_user(&org, key).or_else(|| {
                // External members (guests) are keyed by their id or address too.
                parse_user_id(key, org.seed)
                    .filter(|&i| org.user(i).is_some())
                    .or_else(|| {
                        org.live_users()
                            .find(|u| !is_listed(u) && u.email.eq_ignore_ascii_case(key))
                            .map(|u| u.ix)
                    })
            }) {
                let mut v: Vec<u32> = org
                    .groups_of(uix)
                    .iter()
                    .copied()
                    .filter(|&g| org.group(g).is_some_and(|gr| gr.kind != GroupKind::BuiltIn))
                    .collect();
                // The built-in group's only member is CUSTOMER: every listed user belongs directly.
                if org.user(uix).is_some_and(is_listed) {
                    v.extend(
                        org.live_groups()
                            .filter(|g| g.kind == GroupKind::BuiltIn)
                            .map(|g| g.ix),
                    );
                }
                v.sort_unstable();
                v.dedup();
                v
            } else if let Some(gix) = resolve_group(&org, key) {
                org.live_groups()
                    .filter(|g| g.child_groups.contains(&gix))
                    .map(|g| g.ix)
                    .collect()
            } else {
                return not_found("userKey");
            }
        }
        None => {
            if let Err(r) = check_scope(&org, &q) {
                return r;
            }
            org.live_groups().map(|g| g.ix).collect()
        }
    };
    let order_by = q.get("orderBy").map(String::as_str);
    match order_by {
        None => {}
        Some("email") => ixs.sort_by_key(|&g| {
            org.group(g)
                .map(|gr| group_email(&org, g, &gr.name))
                .unwrap_or_default()
        }),
        Some(other) => {
            return invalid_param(
                "orderBy",
                &format!("Invalid value '{other}'. Values must be one of: email"),
            )
        }
    }
    let sorted = order_by.is_some();
    if sorted && desc {
        ixs.reverse();
    }
    let (keys, order) = if sorted { ranked(ixs) } else { (ixs.clone(), ixs) };
    let tag = paging::listing_tag(&[
        "groups",
        user_key.unwrap_or(""),
        order_by.unwrap_or(""),
        &desc.to_string(),
    ]);
    let page = match paging::page(
        &keys,
        tag,
        q.get("pageToken").map(String::as_str),
        limit,
        &st.ctx.faults.config(),
    ) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| {
            if sorted {
                order.get(k as usize).copied()
            } else {
                Some(k)
            }
        })
        .filter_map(|g| group_json(&org, g))
        .collect();
    drop(org);
    let mut body =
        json!({"kind": "admin#directory#groups", "etag": etag(&["groups", &page.page_no.to_string()])});
    if !items.is_empty() {
        body["groups"] = Value::Array(items);
    }
    if let Some(next) = page.next {
        body["nextPageToken"] = next.into();
    }
    ok_with_fields(body, q.get("fields").map(String::as_str))
}

async fn get_group(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Groups) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(v) = resolve_group(&org, &key).and_then(|g| group_json(&org, g)) else {
        return not_found("groupKey");
    };
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

/// Member keys of a group in one ascending key space: user `u` -> `2u`, group `g` -> `2g + 1`;
/// the built-in group has the single key `u32::MAX` (its `CUSTOMER` member).
fn member_keys(org: &Org, gix: u32, derived: bool) -> Vec<u32> {
    let Some(g) = org.group(gix) else {
        return Vec::new();
    };
    if g.kind == GroupKind::BuiltIn {
        return vec![u32::MAX];
    }
    let mut keys: Vec<u32> = g.members.iter().map(|&u| u.saturating_mul(2)).collect();
    keys.extend(
        g.child_groups
            .iter()
            .map(|&c| c.saturating_mul(2).saturating_add(1)),
    );
    if derived {
        keys.extend(
            org.transitive_members(gix)
                .into_iter()
                .map(|u| u.saturating_mul(2)),
        );
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn member_json(org: &Org, gix: u32, key: u32) -> Option<Value> {
    if key == u32::MAX {
        return Some(json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), "customer"]),
            "id": customer_id(org.seed),
            "role": "MEMBER",
            "type": "CUSTOMER",
            "status": "ACTIVE",
        }));
    }
    let g = org.group(gix)?;
    if key % 2 == 0 {
        let u = org.user(key / 2)?;
        let (suspended, archived, _) = google_status(u.status);
        let owner = g.members.first() == Some(&u.ix);
        let mut v = json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), &key.to_string()]),
            "id": user_id(org.seed, u.ix),
            "email": if is_listed(u) { primary_email(u) } else { u.email.to_lowercase() },
            "role": if owner { "OWNER" } else { "MEMBER" },
            "type": "USER",
        });
        if is_listed(u) {
            v["status"] = if suspended || archived {
                "SUSPENDED"
            } else {
                "ACTIVE"
            }
            .into();
        }
        Some(v)
    } else {
        let c = org.group(key / 2)?;
        Some(json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), &key.to_string()]),
            "id": group_id(org.seed, c.ix),
            "email": group_email(org, c.ix, &c.name),
            "role": "MEMBER",
            "type": "GROUP",
            "status": "ACTIVE",
        }))
    }
}

fn member_role(v: &Value) -> &str {
    v.get("role").and_then(Value::as_str).unwrap_or("MEMBER")
}

async fn list_members(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let limit = or_respond!(max_results(&q, 200, None, 200));
    let roles: Option<Vec<String>> = q.get("roles").map(|r| {
        r.split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(bad) = roles
        .iter()
        .flatten()
        .find(|r| !matches!(r.as_str(), "OWNER" | "MANAGER" | "MEMBER"))
    {
        return invalid_param(
            "roles",
            &format!("Invalid value '{bad}'. Values must be OWNER, MANAGER or MEMBER"),
        );
    }
    let derived = match q.get("includeDerivedMembership").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return invalid_param(
                "includeDerivedMembership",
                &format!("Invalid value '{other}'. Values must be true or false"),
            )
        }
    };
    st.ctx.vanish_group_by(|org| resolve_group(org, &key)).await;
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let mut keys = member_keys(&org, gix, derived);
    if let Some(roles) = &roles {
        keys.retain(|&k| {
            member_json(&org, gix, k).is_some_and(|v| roles.iter().any(|r| r == member_role(&v)))
        });
    }
    let tag = paging::listing_tag(&[
        "members",
        &gix.to_string(),
        &derived.to_string(),
        q.get("roles").map(String::as_str).unwrap_or(""),
    ]);
    let page = match paging::page(
        &keys,
        tag,
        q.get("pageToken").map(String::as_str),
        limit,
        &st.ctx.faults.config(),
    ) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| member_json(&org, gix, k))
        .collect();
    drop(org);
    let mut body = json!({"kind": "admin#directory#members", "etag": etag(&["members", &gix.to_string(), &page.page_no.to_string()])});
    if !items.is_empty() {
        body["members"] = Value::Array(items);
    }
    if let Some(next) = page.next {
        body["nextPageToken"] = next.into();
    }
    ok_with_fields(body, q.get("fields").map(String::as_str))
}

fn member_key_of(org: &Org, gix: u32, member: &str) -> Option<u32> {
    if member == customer_id(org.seed) {
        return org
            .group(gix)
            .filter(|g| g.kind == GroupKind::BuiltIn)
            .map(|_| u32::MAX);
    }
    if let Some(u) = parse_user_id(member, org.seed)
        .filter(|&u| org.user(u).is_some())
        .or_else(|| {
            let m = member.to_lowercase();
            org.live_users()
                .find(|u| primary_email(u) == m || u.email.eq_ignore_ascii_case(&m))
                .map(|u| u.ix)
        })
    {
        return Some(u.saturating_mul(2));
    }
    resolve_group(org, member).map(|c| c.saturating_mul(2).saturating_add(1))
}

async fn get_member(
    State(st): St,
    headers: HeaderMap,
    Path((key, member)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let keys = member_keys(&org, gix, false);
    let Some(v) = member_key_of(&org, gix, &member)
        .filter(|k| keys.binary_search(k).is_ok())
        .and_then(|k| member_json(&org, gix, k))
    else {
        return not_found("memberKey");
    };
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

async fn has_member(
    State(st): St,
    headers: HeaderMap,
    Path((key, member)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let Some(mk) = member_key_of(&org, gix, &member).filter(|k| k % 2 == 0 && *k != u32::MAX) else {
        return not_found("memberKey");
    };
    let uix = mk / 2;
    let builtin = org.group(gix).is_some_and(|g| g.kind == GroupKind::BuiltIn);
    let is_member = (builtin && org.user(uix).is_some_and(is_listed))
        || org.transitive_members(gix).binary_search(&uix).is_ok();
    drop(org);
    json_response(StatusCode::OK, &json!({"isMember": is_member}))
}

// ------------------------------------------------------------------ OAuth 2.0

fn jwt_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?).ok()
}

fn token_ok(token: &str, ttl: i64, scopes: Option<&[String]>, refresh: Option<&str>) -> Response {
    let mut v = json!({
        "access_token": format!("ya29.{token}"),
        "expires_in": (ttl - 1).max(1),
        "token_type": "Bearer",
    });
    if let Some(s) = scopes {
        v["scope"] = s.join(" ").into();
    }
    if let Some(r) = refresh {
        v["refresh_token"] = r.into();
    }
    let mut r = json_response(StatusCode::OK, &v);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    r
}

fn principal_code(org: &Org, email: &str) -> String {
    format!("{}|{}", Privilege::of(org, email).code(), email)
}

async fn jwt_bearer(st: &GState, base: &str, form: &HashMap<String, String>) -> Response {
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Some(claims) = jwt_claims(assertion) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: the assertion is not a JWT",
        );
    };
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let Some(sa) = st.accounts.iter().find(|a| a.email == iss) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid grant: account not found",
        );
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    if jsonwebtoken::decode::<Value>(assertion, &sa.key, &validation).is_err() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT Signature.");
    }
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    let own = [format!("{base}/token"), format!("{base}/oauth2/v4/token")];
    let accepted = [
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
    ];
    if !own.iter().any(|a| a == aud) && !accepted.contains(&aud) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        );
    }
    let now = now_unix();
    let iat = claims.get("iat").and_then(Value::as_i64);
    let exp = claims.get("exp").and_then(Value::as_i64);
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > now && iat <= now + 300 && exp - iat <= 3600 && exp > iat => {}
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", BAD_TIMES),
    }
    let scopes: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let principal = match claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(sub) => {
            if !scopes.iter().all(|s| sa.delegated.contains(&s.as_str())) {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    UNAUTHORIZED_CLIENT,
                );
            }
            let org = st.ctx.org.read().await;
            if find_user_by_email(&org, sub).is_none() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid email or User ID",
                );
            }
            principal_code(&org, sub)
        }
        // No delegation: the token is the service account's own, which is no administrator.
        None => format!("{}|{}", Privilege::None.code(), sa.email),
    };
    let token = st.ctx.tokens.issue(&principal, scopes, None, now);
    token_ok(&token, st.ctx.tokens.ttl_secs(), None, None)
}

fn client_secret_of<'a>(st: &'a GState, client_id: &str) -> Option<&'a str> {
    let c = &st.ctx.creds;
    if client_id == c.client_id {
        Some(&c.client_secret)
    } else if client_id == c.limited_client_id {
        Some(&c.limited_client_secret)
    } else {
        None
    }
}

/// Client credentials from the form body or HTTP Basic.
fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> (String, String) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        if let Some((id, secret)) = basic.split_once(':') {
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return (dec(id), dec(secret));
        }
    }
    (
        form.get("client_id").cloned().unwrap_or_default(),
        form.get("client_secret").cloned().unwrap_or_default(),
    )
}

async fn token(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        JWT_BEARER => jwt_bearer(&st, &base, &form).await,
        "authorization_code" | "refresh_token" => {
            let (client_id, secret) = client_auth(&headers, &form);
            match client_secret_of(&st, &client_id) {
                Some(s) if s == secret => {}
                Some(_) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized"),
                None => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "The OAuth client was not found.",
                    )
                }
            }
            let now = now_unix();
            if grant == "authorization_code" {
                let code = form.get("code").cloned().unwrap_or_default();
                let grant = st.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(&code);
                let Some(g) = grant.filter(|g| g.client_id == client_id) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Malformed auth code.");
                };
                if form.get("redirect_uri").map(String::as_str) != Some(g.redirect_uri.as_str()) {
                    return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
                }
                if let Some((challenge, method)) = &g.challenge {
                    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
                    let computed = if method == "S256" {
                        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.to_string()
                    };
                    if verifier.is_empty() {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Missing code verifier.",
                        );
                    }
                    if &computed != challenge {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Invalid code verifier.",
                        );
                    }
                }
                let token = st.ctx.tokens.issue(&g.principal, g.scopes.clone(), None, now);
                let refresh = g.offline.then(|| {
                    let r = format!("1//0{}", random_hex(24));
                    st.refresh.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        r.clone(),
                        RefreshGrant {
                            client_id: client_id.clone(),
                            scopes: g.scopes.clone(),
                            principal: g.principal.clone(),
                        },
                    );
                    r
                });
                token_ok(
                    &token,
                    st.ctx.tokens.ttl_secs(),
                    Some(&g.scopes),
                    refresh.as_deref(),
                )
            } else {
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                let found = st
                    .refresh
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&rt)
                    .filter(|g| g.client_id == client_id)
                    .map(|g| (g.scopes.clone(), g.principal.clone()));
                let Some((scopes, principal)) = found else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Token has been expired or revoked.",
                    );
                };
                let token = st.ctx.tokens.issue(&principal, scopes.clone(), None, now);
                token_ok(&token, st.ctx.tokens.ttl_secs(), Some(&scopes), None)
            }
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

fn html_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>{title}</title><p><b>{title}</b><p>{detail}</html>"
    );
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    r
}

/// `GET /o/oauth2/v2/auth`: no sign-in page; consent is given at once as `login_hint` (a listed
/// user) or the super administrator, and the browser is redirected back with a code.
async fn authorize_endpoint(State(st): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if client_secret_of(&st, &client_id).is_none() {
        return html_error(
            StatusCode::UNAUTHORIZED,
            "Error 401: invalid_client",
            "The OAuth client was not found.",
        );
    }
    let Some(redirect) = q.get("redirect_uri").filter(|r| !r.is_empty()).cloned() else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "Missing required parameter: redirect_uri",
        );
    };
    let Ok(mut target) = url::Url::parse(&redirect) else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: redirect_uri_mismatch",
            "Invalid redirect_uri",
        );
    };
    let requested: Vec<String> = q
        .get("scope")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "Missing required parameter: scope",
        );
    }
    {
        let mut pairs = target.query_pairs_mut();
        if let Some(s) = q.get("state") {
            pairs.append_pair("state", s);
        }
        if q.get("response_type").map(String::as_str) != Some("code") {
            pairs.append_pair("error", "unsupported_response_type");
            drop(pairs);
            return redirect_to(target.as_str());
        }
    }
    // The limited client's consent screen was answered with only the users scope ticked
    // (Google's granular consent).
    let scopes: Vec<String> = if client_id == st.ctx.creds.limited_client_id {
        requested
            .into_iter()
            .filter(|s| s == scope::USER_RO || s == scope::USER)
            .collect()
    } else {
        requested
    };
    let org = st.ctx.org.read().await;
    let email = q
        .get("login_hint")
        .filter(|h| find_user_by_email(&org, h).is_some())
        .cloned()
        .or_else(|| org.user(0).map(primary_email))
        .unwrap_or_default();
    let principal = principal_code(&org, &email);
    drop(org);
    let code = format!("4/0{}", random_hex(24));
    st.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect,
            scopes: scopes.clone(),
            principal,
            offline: q.get("access_type").map(String::as_str) == Some("offline"),
            challenge: q.get("code_challenge").filter(|c| !c.is_empty()).map(|c| {
                (
                    c.clone(),
                    q.get("code_challenge_method")
                        .cloned()
                        .unwrap_or_else(|| "plain".into()),
                )
            }),
        },
    );
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("scope", &scopes.join(" "));
    redirect_to(target.as_str())
}

fn redirect_to(url: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn unknown_path() -> Response {
    html_error(
        StatusCode::NOT_FOUND,
        "Error 404 (Not Found)!!1",
        "The requested URL was not found on this server. That’s all we know.",
    )
}

// ------------------------------------------------------------------ the facade

impl Facade for Google {
    fn id(&self) -> &'static str {
        "google"
    }

    fn adjust_gen(&self, cfg: &mut GenConfig) {
        // Google refuses membership cycles ("The API returns an error for cycles in group memberships").
        cfg.allow_cycle = false;
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        let seed = ctx.org.try_read().map(|o| o.seed).unwrap_or_default();
        let key = |pem: &str| {
            jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                EmulatorError::InvalidSetting {
                    name: "google test key",
                    reason: e.to_string(),
                }
            })
        };
        let full = ServiceAccount {
            email: sa_email(seed, "sync"),
            client_id: sa_client_id(seed, 1),
            delegated: vec![
                scope::USER_RO,
                scope::GROUP_RO,
                scope::MEMBER_RO,
                scope::USER,
                scope::GROUP,
                scope::MEMBER,
            ],
            key: key(SA_PUBLIC_KEY)?,
        };
        let limited = ServiceAccount {
            email: sa_email(seed, "limited"),
            client_id: sa_client_id(seed, 2),
            delegated: vec![scope::USER_RO],
            key: key(SA_PUBLIC_KEY)?,
        };
        let token_uri = "https://oauth2.googleapis.com/token";
        for (file, sa, pem, kid) in [
            (key_files::FULL, &full, SA_PRIVATE_KEY, "emulator-key-1"),
            (key_files::LIMITED, &limited, SA_PRIVATE_KEY, "emulator-key-1"),
            (key_files::WRONG_KEY, &full, WRONG_PRIVATE_KEY, "emulator-key-2"),
        ] {
            let path = ctx.state_dir.join(file);
            let text =
                serde_json::to_string_pretty(&key_file_json(&sa.email, &sa.client_id, pem, kid, token_uri))
                    .unwrap_or_default();
            std::fs::write(&path, text)
                .map_err(|e| EmulatorError::io(format!("write {}", path.display()), e))?;
        }
        let st = Arc::new(GState {
            ctx,
            accounts: vec![full, limited],
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
        });
        Ok(Router::new()
            .route(&format!("{API}/users"), get(list_users))
            .route(&format!("{API}/users/{{user_key}}"), get(get_user))
            .route(
                &format!("{API}/users/{{user_key}}/photos/thumbnail"),
                get(get_photo),
            )
            .route(&format!("{API}/groups"), get(list_groups))
            .route(&format!("{API}/groups/{{group_key}}"), get(get_group))
            .route(&format!("{API}/groups/{{group_key}}/members"), get(list_members))
            .route(
                &format!("{API}/groups/{{group_key}}/members/{{member_key}}"),
                get(get_member),
            )
            .route(
                &format!("{API}/groups/{{group_key}}/hasMember/{{member_key}}"),
                get(has_member),
            )
            .route("/token", post(token))
            .route("/oauth2/v4/token", post(token))
            .route("/o/oauth2/v2/auth", get(authorize_endpoint))
            .fallback(unknown_path)
            .with_state(st))
    }

    fn rate_bucket(&self, _method: &Method, path: &str) -> Option<(String, u32)> {
        path.starts_with(API)
            .then(|| ("directory".to_string(), DEFAULT_QPM))
    }

    fn throttled(&self, _decision: &RateDecision, concurrency: bool) -> Response {
        // Google throttles the Directory API with 403 and a usageLimits reason, without Retry-After.
        if concurrency {
            gerror_full(
                403,
                "quotaExceeded",
                "Quota exceeded for quota group 'default' and limit 'Concurrent requests'.",
                "usageLimits",
                None,
            )
        } else {
            gerror_full(
                403,
                "userRateLimitExceeded",
                "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'.",
                "usageLimits",
                None,
            )
        }
    }

    fn server_error(&self, status: StatusCode) -> Response {
        match status.as_u16() {
            502 => html_error(status, "Error 502 (Server Error)!!1", "The server encountered a temporary error and could not complete your request. Please try again in 30 seconds. That’s all we know."),
            500 => gerror(500, "backendError", "Internal error encountered."),
            503 => gerror(503, "backendError", "The service is currently unavailable."),
            s => gerror(s, "backendError", "Backend Error"),
        }
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        let (seed, admin, users_only, non_admin, domain) = match ctx.org.try_read() {
            Ok(org) => (
                org.seed,
                org.user(0).map(primary_email),
                org.user(1).map(primary_email),
                org.live_users()
                    .find(|u| u.ix > 1 && is_listed(u))
                    .map(primary_email),
                org.domain.clone(),
            ),
            Err(_) => (0, None, None, None, String::new()),
        };
        let key_file = |f: &str| ctx.state_dir.join(f).display().to_string();
        json!({
            "base_url": format!("{base_url}{API}"),
            "token_url": format!("{base_url}/token"),
            "authorize_url": format!("{base_url}/o/oauth2/v2/auth"),
            "customer": customer_id(seed),
            "domain": domain,
            "admin_email": admin,
            "users_only_admin_email": users_only,
            "non_admin_email": non_admin,
            "service_account_email": sa_email(seed, "sync"),
            "service_account_key_file": key_file(key_files::FULL),
            "limited_service_account_key_file": key_file(key_files::LIMITED),
            "wrong_service_account_key_file": key_file(key_files::WRONG_KEY),
            "options": {
                "auth_flow": "service_account",
                "base_url": format!("{base_url}{API}"),
                "token_url": format!("{base_url}/token"),
                "admin_email": admin,
                "service_account_key": { "file": key_file(key_files::FULL) },
            },
            // what `usersync demo` writes into its config (FACADES.md)
            "connector_options": {
                "auth_flow": "service_account",
                "base_url": format!("{base_url}{API}"),
                "token_url": format!("{base_url}/token"),
                "admin_email": admin,
            },
            "connector_secrets": {
                "service_account_key": std::fs::read_to_string(key_file(key_files::FULL)).unwrap_or_default(),
            },
            "oauth_options": {
                "auth_flow": "authorization_code",
                "base_url": format!("{base_url}{API}"),
                "token_url": format!("{base_url}/token"),
                "authorize_url": format!("{base_url}/o/oauth2/v2/auth"),
                "client_id": ctx.creds.client_id,
            },
        })
    }
}

// ------------------------------------------------------------------ test keys (EMULATOR ONLY)
//
// Fixed RSA test keys, generated for this emulator with `openssl genpkey -algorithm RSA`. They
// protect nothing: the emulator writes them into service-account key files so a client can sign
// its JWT bearer assertion. Never use them anywhere else.

/// Private key of the emulator's service account (PKCS#8 PEM). TEST KEY.
const SA_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC8sdRixiPRaMvN
b5iIm//pD54rvJ9XDNSE8O/Ju44+uIy9mcj9NEhuvvAdLBzmo8XUuQCaa9nO1hXR
MZgUlU5iLivggPR/83KfTGK0UpuP2q0YftdbR6SIa5tT03sc8+Ti+nBtVooLuF66
YZPnzeDYPNXSq1MY6ae42otK3xu3fWPKIcxyzoPOdkWYHqq26VA+H54Vyf+2D98c
sivh/VKz2Bw7tStVeXhV4h6voWSWEQiFL4VMNyAlWUqPyklhwCfWrDNY1fMx1EY4
x0D/w06ofuZMn//PmUetcS79myef7tq4FDSLd3rgGnmevf2unbXQBOVWxtRc9NeY
MK+U7aoZAgMBAAECggEAGXUNcBkGxo8Spd/3LoELbNxOTNzJC4O/3UKrOyZ6aaRY
2pCXoO+PkR9iAjGMIaK5QzqFZhAEZecUsPE1sRs2pMDRaxvCwMttrKevzl+xvJ32
Se587AP1ovEPlubafny6JdQ/XET3YV7pqtAU1gp82feVKnOyRZNqbSJQ9hQ1J1NA
Toqy9pgQwOJ3Q0USfryitaL3QAucB0u2jel4KgqYPGLMJq3mh45Rx1spLVXrFWxN
J4kD39ybic5CD3bENxTG4tyjfkItQXcg8IS/3UVkq/ABJOU2Qti7AtcnBsYHCm3X
XgBRPp5pmi4gjmx50EAPFcsWZ/Oo5HKwEvrWNudfbQKBgQDjto6nZRaqksiYuJVA
gviN5Ojfe5E31xjO6lSWX3Q5GpVl7toEeYw1PZ5YetNvefc4Jt0mv4qg59KKxAHG
APEVvlbMR22Mhbb8jVqid1SROofN4jBxkLwgH6+2eNWWXU11Sf7CJluH2vCTtyBe
WGrWip3uxfHphohApoHcOc0ETQKBgQDUInTsoQ3/PHB4cFEHA3nGsN2ZkDNg9y9a
ccmhE5exGUGJ1eJrmnIMPpRLB9+DTEhplLLnL1Ikpa92Nh7Ct+xOtmeeW5bQLMey
VRnfmSN4Om4Xkl/FfLsJcKNieQAlVHgg+y0hh5ELplOxYaz5s5Aocr7lgs8d3Xb9
lFxpNI8S/QKBgQCUIakROhCRq+T0fHcTPWAFpljbMN4aDkIkMIoQPE4165Yudj+7
U3qjE8+TTWuIBDaPf7CzyTycSdJL1RA2R1yNwYFjaD/afw23oxjHwYrw4rt/cloD
Np065IIA2QBQzada2mTw1dULPqDr5uAWn7v4jroInxosyQiPzgGCStOUrQKBgA3X
QbG+wF8K3nu9OEww2d0w5QSD+BY3iotoKTOtR5RyhWgs4F0M8qwB2UMb/GVgsMjS
vul+mOlzNgOMfG1P+scX96LJbwmeIllsXAfOwhWyGkTHdCA6hymSg9aE9pF49W2R
ddxeMASGkaddLCAOqzU4Z2QqKMFWFdFtwKnMmBkxAoGBALuluxlIupIyeFb1/Dzm
WkehPgSZcA5LXsof0QGg37equJ/xNzzOm+nnfXJRACnt1ahHgmhd49+AlyC0KnQ8
O9m86gzsc47dlyZl+TMM/LmHCTOmIXFhrD7vY8zHFJVhqLkzSK3RnrGKI7xbxlS3
i+RG4nARHiLur0CPd7YhzK34
-----END PRIVATE KEY-----\n";
/// Public key matching [`SA_PRIVATE_KEY`]. TEST KEY.
const SA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvLHUYsYj0WjLzW+YiJv/
6Q+eK7yfVwzUhPDvybuOPriMvZnI/TRIbr7wHSwc5qPF1LkAmmvZztYV0TGYFJVO
Yi4r4ID0f/Nyn0xitFKbj9qtGH7XW0ekiGubU9N7HPPk4vpwbVaKC7heumGT583g
2DzV0qtTGOmnuNqLSt8bt31jyiHMcs6DznZFmB6qtulQPh+eFcn/tg/fHLIr4f1S
s9gcO7UrVXl4VeIer6FklhEIhS+FTDcgJVlKj8pJYcAn1qwzWNXzMdRGOMdA/8NO
qH7mTJ//z5lHrXEu/Zsnn+7auBQ0i3d64Bp5nr39rp210ATlVsbUXPTXmDCvlO2q
GQIDAQAB
-----END PUBLIC KEY-----\n";
/// A different private key: a key file with it fails signature checks ("wrong secret"). TEST KEY.
const WRONG_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDb2UlCKzAOKs9J
+sgc+xAFO4i0hcInc05fugtP5TM+DPquIyCyc8qLFt8kxT08VGS41n4tF7SrmL+H
Q7v8cc+TuzPWzcdjgSOgCV1u5OuW75KZ8wm9tqDTLJjlmP0xeywMNAFJIogR98Lv
V8Ce/FL+yeOKJAxjVFdlHV39hqY7TEGmPx1WcUi076GuFOGLY015puaibkAHrVZ5
oOioPofsWeV27cZRFILnynb5Da0eAywziLnbLBlKZhmuA4JLhh1NMq68WMfQDyan
F3KbjMTiLXIARK+WR6CQt3tdRPDde/cKlg7EsRTqtO/64jcIKlD9KrfpwJOQjGvI
47gMoDvRAgMBAAECggEACP24r4ZVI4swKZIiS38gD1q5M0rSHytpzePtsQGKaDP/
L457uJigNLKFgzs2zygTa3TIOb9hse/gC1/jiQY9i0jpbJRDXogqRRIE+nNNyEE5
gWbNY+8bYi+NfDxWxIaJTWF2GP/ayUNU+1VfKRFgMo/eqKhjQk+xeE7saGEwnLWl
A5YrERyGyvWrlQ8CPNnAWhinr1q1NlloSH/V6V08ofTlV2FGB64OysNEZSPlVXAh
MvulYzEtLgdLuRm6Gam7jZatYJpeAu0QOmQNBJDSLeDcgMutmNMoXyhfmTvCD4t9
PCvlXXj5c0O1xuMhWJl+3KyzEhptLVtPjh92vGJdAQKBgQDzH15+9o3PE955gdUV
yWTovUPupCOSziRrkrc+xs3ydjyJNA8DZLklisiy0C/u5qRtQV0NYT6yoH3raqyi
lazPRnRgvxLGAs7KkDBbEJbMSPsESDSyklCy98UvHZDrIfA1ZF/wpMUrtHgiaUhF
MjTDOK94czwsxZdks89wu4DNQQKBgQDnflXe5B45nNH4g334hPASLdUCQpgVfwJs
BXEcNw2uD77SRAFeqZWni/I0053SuETfXK7TfDCPKmw0PhdEP7DVjZw7xGtp3AyB
S9y2rlcPnzv9wx/s69K1sSK/F/Wcr8Tk/26umfSP9KDZc22ObprX8PwesmFqtKfo
sQbrkRt6kQKBgD2yLTG88ZmmKiPdjax8sg3Z0b5iiuB7TYS686OLocGwvYX33wN2
cQGU6X9vE2rlvr43Ax0dG2MLFUlDhdGwd+0VrPzMIEB9f+qpkovZdtsafhDFHhJe
zPnNpI1jTF5O+30hHrObrKl9n6rj2sIsjnUoEmdXnuKhtdyJQNAT1QjBAoGAR/dY
jsBwPQzpoc6PHPGHCL/C1r8JNLWVdSuD7HeZAyHV+tw1aM5jvgCdvZqEF/w9PQs9
NnYHSpqvpNYguZDrUpiBl3sKwZAtOwzwgsJUQoEIT22XwTnW+bEl0i6KprlmBqL6
L8Gg7Bfq4W8nAf6UmMlMN+bQrjGXeZl/Q0CLQGECgYEAjLIktoFRUDmD7UDDcqYJ
nJTSdRZU5vLwSOaatEuO3Knudxg+55goIalz9BvMx+krZHrYSxakLNh/2so9iBUW
LM6zMSKe8Ca7RFOkZiVPL2ugD4HKcOuAIQbe0RCzYdp3amHtNQUXnEzSsqsTIHuH
jB2WlYlIz9cOZC7I1x9DG9o=
-----END PRIVATE KEY-----\n";

// ------------------------------------------------------------------ fidelity tests

#[cfg(test)]
mod tests {
    //! Documented behaviour of the Directory API and Google's OAuth endpoints (discovery document
    //! `admin.directory_v1`, the Directory API "Limits and quotas" page, the UserPhoto reference and
    //! the server-to-server OAuth guide), asserted against the facade over HTTP.

    use super::*;
    use crate::faults::FaultConfig;
    use crate::server::{start, EmulatorOptions, RunningEmulator};

    const ALL_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly \
                              https://www.googleapis.com/auth/admin.directory.group.readonly \
                              https://www.googleapis.com/auth/admin.directory.group.member.readonly";

    async fn emu(users: u32, groups: u32) -> RunningEmulator {
        emu_with(users, groups, |_| {}).await
    }

    async fn emu_with(users: u32, groups: u32, f: impl FnOnce(&mut EmulatorOptions)) -> RunningEmulator {
        let mut opts = EmulatorOptions::new("google");
        opts.gen = GenConfig {
            users,
            groups,
            seed: 11,
            ..GenConfig::default()
        };
        f(&mut opts);
        start(opts).await.expect("emulator starts")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    fn assertion(
        emu: &RunningEmulator,
        iss: &str,
        sub: Option<&str>,
        scope: &str,
        pem: &str,
        lifetime: i64,
    ) -> String {
        let now = now_unix();
        let mut claims = json!({
            "iss": iss, "scope": scope, "aud": format!("{}/token", emu.http_url),
            "iat": now, "exp": now + lifetime,
        });
        if let Some(s) = sub {
            claims["sub"] = s.into();
        }
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .expect("sign")
    }

    async fn token_response(emu: &RunningEmulator, jwt: &str) -> (u16, Value) {
        let r = client()
            .post(format!("{}/token", emu.http_url))
            .form(&[("grant_type", JWT_BEARER), ("assertion", jwt)])
            .send()
            .await
            .expect("token request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn token_for(emu: &RunningEmulator, sub: Option<&str>) -> String {
        let iss = sa_email(11, "sync");
        let (status, body) =
            token_response(emu, &assertion(emu, &iss, sub, ALL_SCOPES, SA_PRIVATE_KEY, 3600)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0));
        body["access_token"].as_str().expect("access_token").to_string()
    }

    async fn admin_token(emu: &RunningEmulator) -> String {
        let admin = emu.org().read().await.user(0).map(primary_email).expect("admin");
        token_for(emu, Some(&admin)).await
    }

    async fn get(emu: &RunningEmulator, token: &str, path_and_query: &str) -> (u16, HeaderMap, Value) {
        let r = client()
            .get(format!("{}{API}{path_and_query}", emu.http_url))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn reason(body: &Value) -> &str {
        body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
    }

    async fn walk(emu: &RunningEmulator, token: &str, first: &str, items: &str) -> (Vec<Value>, usize) {
        let mut out = Vec::new();
        let mut pages = 0;
        let mut next: Option<String> = None;
        loop {
            let url = match &next {
                Some(t) => format!("{first}&pageToken={t}"),
                None => first.to_string(),
            };
            let (s, _, body) = get(emu, token, &url).await;
            assert_eq!(s, 200, "{body}");
            pages += 1;
            out.extend(body[items].as_array().cloned().unwrap_or_default());
            match body["nextPageToken"].as_str() {
                Some(t) => next = Some(t.to_string()),
                None => return (out, pages),
            }
            assert!(pages < 1000, "endless listing");
        }
    }

    #[tokio::test]
    async fn users_page_size_default_100_max_500_and_full_walk() {
        let emu = emu(450, 5).await;
        let tok = admin_token(&emu).await;
        let listed = emu
            .org()
            .read()
            .await
            .live_users()
            .filter(|u| is_listed(u))
            .count();
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!(s, 200);
        assert_eq!(body["kind"], "admin#directory#users");
        assert_eq!(
            body["users"].as_array().map(Vec::len),
            Some(100),
            "default maxResults is 100"
        );
        assert!(body["nextPageToken"].is_string());
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&maxResults=500").await;
        assert_eq!(s, 200);
        assert_eq!(body["users"].as_array().map(Vec::len), Some(listed));
        assert!(
            body.get("nextPageToken").is_none(),
            "last page has no nextPageToken"
        );
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&maxResults=501").await;
        assert_eq!(s, 400, "maximum is 500");
        assert_eq!(reason(&body), "invalid");
        assert_eq!(body["error"]["errors"][0]["location"], "maxResults");
        let (users, pages) = walk(&emu, &tok, "/users?customer=my_customer&maxResults=40", "users").await;
        assert_eq!(pages, listed.div_ceil(40));
        let mut ids: Vec<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), listed, "every user exactly once");
        let (s, _, body) = get(&emu, &tok, "/users?maxResults=10").await;
        assert_eq!(
            (s, reason(&body)),
            (400, "badRequest"),
            "customer or domain is required"
        );
    }

    #[tokio::test]
    async fn user_fields_types_status_manager_and_projection() {
        let emu = emu(300, 5).await;
        {
            let mut org = emu.org().write().await;
            org.set_status(5, UserStatus::Suspended);
            org.set_status(6, UserStatus::Deprovisioned);
            org.set_manager(7, Some(0));
        }
        let tok = admin_token(&emu).await;
        let (domain, u7) = {
            let org = emu.org().read().await;
            (org.domain.clone(), user_id(org.seed, 7))
        };
        let (s, _, u) = get(&emu, &tok, &format!("/users/{u7}?projection=full")).await;
        assert_eq!(s, 200, "{u}");
        assert_eq!(u["kind"], "admin#directory#user");
        assert!(u["id"]
            .as_str()
            .is_some_and(|i| i.len() == 21 && i.bytes().all(|b| b.is_ascii_digit())));
        assert!(u["primaryEmail"]
            .as_str()
            .is_some_and(|e| e.ends_with(&format!("@{domain}"))));
        assert!(u["suspended"].is_boolean() && u["archived"].is_boolean() && u["isAdmin"].is_boolean());
        assert!(u["name"]["givenName"].is_string() && u["name"]["familyName"].is_string());
        let admin_email = emu.org().read().await.user(0).map(primary_email);
        assert_eq!(u["relations"][0]["type"], "manager");
        assert_eq!(u["relations"][0]["value"].as_str(), admin_email.as_deref());
        assert!(
            u["customSchemas"].is_object(),
            "projection=full includes custom schemas"
        );
        let (_, _, basic) = get(&emu, &tok, &format!("/users/{u7}")).await;
        assert!(
            basic.get("customSchemas").is_none(),
            "projection=basic (default) excludes custom schemas"
        );
        let email5 = emu
            .org()
            .read()
            .await
            .user(5)
            .map(primary_email)
            .unwrap_or_default();
        let (_, _, u5) = get(&emu, &tok, &format!("/users/{email5}")).await;
        assert_eq!(
            (u5["suspended"].as_bool(), u5["archived"].as_bool()),
            (Some(true), Some(false))
        );
        assert_eq!(u5["suspensionReason"], "ADMIN");
        let id6 = user_id(11, 6);
        let (_, _, u6) = get(&emu, &tok, &format!("/users/{id6}")).await;
        assert_eq!(u6["archived"], true);
        let (s, _, body) = get(&emu, &tok, "/users/100000000000000000000").await;
        assert_eq!((s, reason(&body)), (404, "notFound"));
        assert_eq!(body["error"]["message"], "Resource Not Found: userKey");
        assert_eq!(body["error"]["code"], 404);
    }

    #[tokio::test]
    async fn partial_responses_and_empty_lists() {
        let emu = emu(30, 5).await;
        let tok = admin_token(&emu).await;
        let (_, _, body) = get(
            &emu,
            &tok,
            "/users?customer=my_customer&maxResults=5&fields=nextPageToken,users(id,name/givenName)",
        )
        .await;
        let first = &body["users"][0];
        assert_eq!(first.as_object().map(|o| o.len()), Some(2), "{first}");
        assert_eq!(first["name"].as_object().map(|o| o.len()), Some(1));
        assert!(body["nextPageToken"].is_string());
        assert!(body.get("kind").is_none());
        // A selector without nextPageToken drops the paging token: Google only returns what is selected.
        let (_, _, body) = get(
            &emu,
            &tok,
            "/users?customer=my_customer&maxResults=5&fields=users(id)",
        )
        .await;
        assert!(body.get("nextPageToken").is_none());
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&fields=users(id").await;
        assert_eq!((s, reason(&body)), (400, "invalidParameter"));
        {
            let mut org = emu.org().write().await;
            let ixs: Vec<u32> = org.live_users().map(|u| u.ix).collect();
            for ix in ixs {
                org.remove_user(ix);
            }
        }
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!(s, 200);
        assert!(
            body.get("users").is_none(),
            "an empty list omits the `users` key: {body}"
        );
    }

    #[tokio::test]
    async fn groups_members_customer_member_and_user_groups() {
        let emu = emu(500, 260).await;
        let tok = admin_token(&emu).await;
        let (_, _, body) = get(&emu, &tok, "/groups?customer=my_customer").await;
        assert_eq!(
            body["groups"].as_array().map(Vec::len),
            Some(200),
            "default and maximum is 200"
        );
        let (_, _, body) = get(&emu, &tok, "/groups?customer=my_customer&maxResults=1000").await;
        assert_eq!(
            body["groups"].as_array().map(Vec::len),
            Some(200),
            "larger requests are capped at 200"
        );
        let g = &body["groups"][0];
        assert!(g["directMembersCount"].is_string(), "int64 is a JSON string: {g}");
        assert!(g["email"].is_string() && g["id"].is_string() && g["adminCreated"].is_boolean());
        let (groups, _) = walk(&emu, &tok, "/groups?customer=my_customer", "groups").await;
        assert_eq!(groups.len(), 260);
        // The built-in "Everyone" group: one CUSTOMER member whose id is the customer id, no email.
        let everyone = group_id(11, 0);
        let (_, _, m) = get(&emu, &tok, &format!("/groups/{everyone}/members")).await;
        assert_eq!(m["kind"], "admin#directory#members");
        assert_eq!(m["members"].as_array().map(Vec::len), Some(1));
        assert_eq!(m["members"][0]["type"], "CUSTOMER");
        assert_eq!(m["members"][0]["id"].as_str(), Some(customer_id(11).as_str()));
        assert!(m["members"][0].get("email").is_none());
        // "All Staff" (half the users): paged by 200, every direct member once.
        let all_staff = group_id(11, 1);
        let expected = emu
            .org()
            .read()
            .await
            .group(1)
            .map(|g| g.members.len() + g.child_groups.len())
            .unwrap_or(0);
        assert!(expected > 200);
        let (members, pages) = walk(
            &emu,
            &tok,
            &format!("/groups/{all_staff}/members?maxResults=200"),
            "members",
        )
        .await;
        assert_eq!(members.len(), expected);
        assert_eq!(pages, expected.div_ceil(200));
        assert!(members
            .iter()
            .all(|m| m["type"] == "USER" || m["type"] == "GROUP"));
        // A user's direct groups (the seed's "groups for specific user").
        let u1 = user_id(11, 1);
        let direct = emu.org().read().await.groups_of(1).len();
        let (groups, _) = walk(&emu, &tok, &format!("/groups?userKey={u1}"), "groups").await;
        assert_eq!(
            groups.len(),
            direct,
            "direct groups, the built-in group counted once"
        );
        let (s, _, body) = get(&emu, &tok, &format!("/groups?userKey={u1}&customer=my_customer")).await;
        assert_eq!(
            (s, reason(&body)),
            (400, "badRequest"),
            "userKey cannot be combined with customer"
        );
        let (s, _, body) = get(&emu, &tok, "/groups/0000000000000ff/members").await;
        assert_eq!(
            (s, body["error"]["message"].as_str()),
            (404, Some("Resource Not Found: groupKey"))
        );
    }

    #[tokio::test]
    async fn nested_groups_has_member_and_derived_membership() {
        let emu = emu(60, 12).await;
        let tok = admin_token(&emu).await;
        let (parent, child, user) = {
            let mut org = emu.org().write().await;
            let p = org.add_group("Parent", GroupKind::Native);
            let c = org.add_group("Child", GroupKind::Native);
            org.add_child_group(p, c);
            org.add_member(c, 3);
            (p, c, 3)
        };
        let (pid, cid, uid) = (group_id(11, parent), group_id(11, child), user_id(11, user));
        let (_, _, m) = get(&emu, &tok, &format!("/groups/{pid}/members")).await;
        assert_eq!(m["members"].as_array().map(Vec::len), Some(1));
        assert_eq!(m["members"][0]["type"], "GROUP");
        assert_eq!(m["members"][0]["id"].as_str(), Some(cid.as_str()));
        let (_, _, h) = get(&emu, &tok, &format!("/groups/{pid}/hasMember/{uid}")).await;
        assert_eq!(h["isMember"], true, "hasMember includes nested membership");
        let (_, _, d) = get(
            &emu,
            &tok,
            &format!("/groups/{pid}/members?includeDerivedMembership=true"),
        )
        .await;
        assert!(d["members"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m["id"].as_str() == Some(uid.as_str()))));
        let (_, _, up) = get(&emu, &tok, &format!("/groups?userKey={cid}")).await;
        assert_eq!(
            up["groups"][0]["id"].as_str(),
            Some(pid.as_str()),
            "groups of a group (dex's recursion)"
        );
    }

    #[tokio::test]
    async fn photo_is_web_safe_base64_and_404_without_photo() {
        let emu = emu(40, 3).await;
        let tok = admin_token(&emu).await;
        let (with, without) = {
            let org = emu.org().read().await;
            let with = org
                .live_users()
                .find(|u| u.has_photo && is_listed(u))
                .map(|u| u.ix)
                .expect("a photo");
            let without = org
                .live_users()
                .find(|u| !u.has_photo && is_listed(u))
                .map(|u| u.ix)
                .expect("no photo");
            (with, without)
        };
        let (s, _, p) = get(
            &emu,
            &tok,
            &format!("/users/{}/photos/thumbnail", user_id(11, with)),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(p["kind"], "admin#directory#user#photo");
        let data = p["photoData"].as_str().expect("photoData");
        assert!(
            !data.contains('+') && !data.contains('/') && !data.contains('='),
            "web-safe: {data}"
        );
        let std: String = data
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                '*' | '.' => '=',
                c => c,
            })
            .collect();
        let bytes = STANDARD.decode(std).expect("decodes after mapping back");
        assert_eq!(bytes, crate::photo::png_for(11 ^ u64::from(with)));
        let (s, _, body) = get(
            &emu,
            &tok,
            &format!("/users/{}/photos/thumbnail", user_id(11, without)),
        )
        .await;
        assert_eq!((s, reason(&body)), (404, "notFound"));
        assert_eq!(web_safe_base64(b"A", true), "QQ..");
        assert_eq!(web_safe_base64(b"A", false), "QQ**");
        assert_eq!(web_safe_base64(&[0xfb, 0xff, 0xbf], false), "-_-_");
    }

    #[tokio::test]
    async fn credentials_and_permissions_fail_like_google() {
        let emu = emu(20, 3).await;
        let c = client();
        // No token / unknown token.
        let r = c
            .get(format!("{}{API}/users?customer=my_customer", emu.http_url))
            .send()
            .await
            .expect("req");
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.expect("json");
        assert_eq!(reason(&body), "required");
        let (s, h, body) = get(&emu, "ya29.nonsense", "/users?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (401, "authError"));
        assert_eq!(body["error"]["message"], "Invalid Credentials");
        assert!(h.get("www-authenticate").is_some());
        // Wrong key: the signature check fails at the token endpoint.
        let iss = sa_email(11, "sync");
        let admin = emu
            .org()
            .read()
            .await
            .user(0)
            .map(primary_email)
            .unwrap_or_default();
        let (s, body) = token_response(
            &emu,
            &assertion(&emu, &iss, Some(&admin), ALL_SCOPES, WRONG_PRIVATE_KEY, 3600),
        )
        .await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
        // Scopes not delegated to the client: unauthorized_client.
        let limited = sa_email(11, "limited");
        let (s, body) = token_response(
            &emu,
            &assertion(&emu, &limited, Some(&admin), ALL_SCOPES, SA_PRIVATE_KEY, 3600),
        )
        .await;
        assert_eq!((s, body["error"].as_str()), (401, Some("unauthorized_client")));
        // Assertions live at most one hour.
        let (s, body) = token_response(
            &emu,
            &assertion(&emu, &iss, Some(&admin), ALL_SCOPES, SA_PRIVATE_KEY, 7200),
        )
        .await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
        // Unknown subject.
        let (s, body) = token_response(
            &emu,
            &assertion(
                &emu,
                &iss,
                Some("nobody@nowhere.test"),
                ALL_SCOPES,
                SA_PRIVATE_KEY,
                3600,
            ),
        )
        .await;
        assert_eq!(
            (s, body["error_description"].as_str()),
            (400, Some("Invalid email or User ID"))
        );
        // No `sub`: a token, then 403 "Not Authorized to access this resource/api".
        let bare = token_for(&emu, None).await;
        let (s, _, body) = get(&emu, &bare, "/users?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (403, "forbidden"));
        assert_eq!(body["error"]["message"], NOT_AUTHORIZED);
        // A non-administrator subject: the same 403.
        let user = emu
            .org()
            .read()
            .await
            .live_users()
            .find(|u| u.ix > 1 && is_listed(u))
            .map(primary_email)
            .unwrap_or_default();
        let t = token_for(&emu, Some(&user)).await;
        assert_eq!(get(&emu, &t, "/users?customer=my_customer").await.0, 403);
        // A delegated admin with "Users > Read" only: users yes, groups no.
        let helpdesk = emu
            .org()
            .read()
            .await
            .user(1)
            .map(primary_email)
            .unwrap_or_default();
        let t = token_for(&emu, Some(&helpdesk)).await;
        assert_eq!(get(&emu, &t, "/users?customer=my_customer").await.0, 200);
        let (s, _, body) = get(&emu, &t, "/groups?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (403, "forbidden"));
        // Another customer's account.
        let admin_tok = admin_token(&emu).await;
        let (s, _, body) = get(&emu, &admin_tok, "/users?customer=C0other99").await;
        assert_eq!((s, reason(&body)), (403, "forbidden"));
    }

    #[tokio::test]
    async fn authorization_code_refresh_token_and_granular_consent() {
        let emu = emu(20, 3).await;
        let creds = emu.credentials().clone();
        let c = client();
        let redirect = "http://127.0.0.1:9/callback";
        let code_for = |client_id: String, offline: bool| {
            let c = c.clone();
            let base = emu.http_url.clone();
            async move {
                let mut q = vec![
                    ("response_type", "code".to_string()),
                    ("client_id", client_id),
                    ("redirect_uri", redirect.to_string()),
                    ("scope", ALL_SCOPES.to_string()),
                    ("state", "xyz".to_string()),
                ];
                if offline {
                    q.push(("access_type", "offline".to_string()));
                }
                let r = c
                    .get(format!("{base}/o/oauth2/v2/auth"))
                    .query(&q)
                    .send()
                    .await
                    .expect("authorize");
                assert_eq!(r.status().as_u16(), 302);
                let loc = url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
                assert!(loc.as_str().starts_with(redirect));
                let pairs: HashMap<String, String> = loc.query_pairs().into_owned().collect();
                assert_eq!(pairs.get("state").map(String::as_str), Some("xyz"));
                pairs.get("code").cloned().expect("code")
            }
        };
        let exchange = |code: String, id: String, secret: String| {
            let c = c.clone();
            let base = emu.http_url.clone();
            async move {
                let r = c
                    .post(format!("{base}/oauth2/v4/token"))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("client_id", &id),
                        ("client_secret", &secret),
                        ("redirect_uri", redirect),
                    ])
                    .send()
                    .await
                    .expect("exchange");
                (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        // Without access_type=offline there is no refresh token.
        let code = code_for(creds.client_id.clone(), false).await;
        let (s, body) = exchange(code, creds.client_id.clone(), creds.client_secret.clone()).await;
        assert_eq!(s, 200);
        assert!(body.get("refresh_token").is_none());
        // Offline: refresh token, usable at the seed's v4 token URL.
        let code = code_for(creds.client_id.clone(), true).await;
        let (s, body) = exchange(code.clone(), creds.client_id.clone(), creds.client_secret.clone()).await;
        assert_eq!(s, 200, "{body}");
        let refresh = body["refresh_token"].as_str().expect("refresh_token").to_string();
        // A code is single-use.
        let (s, body) = exchange(code, creds.client_id.clone(), creds.client_secret.clone()).await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
        let r = c
            .post(format!("{}/oauth2/v4/token", emu.http_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
            ])
            .send()
            .await
            .expect("refresh");
        assert_eq!(r.status().as_u16(), 200);
        let tok = r.json::<Value>().await.expect("json")["access_token"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert_eq!(get(&emu, &tok, "/groups?customer=my_customer").await.0, 200);
        // Wrong client secret.
        let r = c
            .post(format!("{}/oauth2/v4/token", emu.http_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &creds.client_id),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .expect("refresh");
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_client");
        // The limited client's consent covers users only: group reads lack the scope.
        let code = code_for(creds.limited_client_id.clone(), true).await;
        let (_, body) = exchange(
            code,
            creds.limited_client_id.clone(),
            creds.limited_client_secret.clone(),
        )
        .await;
        let tok = body["access_token"].as_str().unwrap_or("").to_string();
        assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
        let (s, _, body) = get(&emu, &tok, "/groups?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (403, "insufficientPermissions"));
    }

    #[tokio::test]
    async fn pkce_code_verifier_is_checked() {
        let emu = emu(10, 2).await;
        let creds = emu.credentials().clone();
        let c = client();
        let verifier = "a-long-random-verifier-string-0123456789abcdef";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let redirect = "http://127.0.0.1:9/cb";
        for (sent, ok) in [("wrong-verifier", false), (verifier, true)] {
            let r = c
                .get(format!("{}/o/oauth2/v2/auth", emu.http_url))
                .query(&[
                    ("response_type", "code"),
                    ("client_id", creds.client_id.as_str()),
                    ("redirect_uri", redirect),
                    ("scope", ALL_SCOPES),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ])
                .send()
                .await
                .expect("authorize");
            let loc = url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
            let code = loc
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .expect("code");
            let r = c
                .post(format!("{}/token", emu.http_url))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("client_id", creds.client_id.as_str()),
                    ("client_secret", creds.client_secret.as_str()),
                    ("redirect_uri", redirect),
                    ("code_verifier", sent),
                ])
                .send()
                .await
                .expect("exchange");
            if ok {
                assert_eq!(r.status().as_u16(), 200);
            } else {
                assert_eq!(r.status().as_u16(), 400);
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["error_description"], "Invalid code verifier.");
            }
        }
    }

    #[tokio::test]
    async fn throttling_is_403_user_rate_limit_without_retry_after() {
        let emu = emu_with(10, 2, |o| {
            o.faults = FaultConfig {
                rate_limit_per_minute: Some(2),
                ..FaultConfig::default()
            };
        })
        .await;
        let tok = admin_token(&emu).await;
        assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
        assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
        let (s, h, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (403, "userRateLimitExceeded"));
        assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
        assert!(h.get("retry-after").is_none());
    }

    #[tokio::test]
    async fn token_expiry_gives_invalid_credentials() {
        let emu = emu_with(10, 2, |o| o.token_ttl_secs = 1).await;
        let tok = admin_token(&emu).await;
        tokio::time::sleep(std::time::Duration::from_millis(1001)).await;
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (401, "authError"));
    }

    #[tokio::test]
    async fn faults_take_google_shapes() {
        let emu = emu(120, 3).await;
        let tok = admin_token(&emu).await;
        let one = |statuses: Vec<u16>| FaultConfig {
            error_rate: 1.0,
            error_statuses: statuses,
            max_faults: Some(1),
            ..FaultConfig::default()
        };
        emu.set_faults(one(vec![503])).expect("faults");
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!((s, reason(&body)), (503, "backendError"));
        emu.set_faults(one(vec![502])).expect("faults");
        let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
        assert_eq!(s, 502);
        assert!(
            body.as_str().is_some_and(|t| t.contains("Error 502")),
            "Google's HTML error page"
        );
        // Paging faults: loop, expired token, empty page with a token.
        emu.set_faults(FaultConfig {
            paging_loop_at_page: Some(2),
            ..FaultConfig::default()
        })
        .expect("faults");
        let (_, _, p1) = get(&emu, &tok, "/users?customer=my_customer&maxResults=10").await;
        let t1 = p1["nextPageToken"].as_str().unwrap_or_default().to_string();
        let (_, _, p2) = get(
            &emu,
            &tok,
            &format!("/users?customer=my_customer&maxResults=10&pageToken={t1}"),
        )
        .await;
        let t2 = p2["nextPageToken"].as_str().unwrap_or_default().to_string();
        let (_, _, p3) = get(
            &emu,
            &tok,
            &format!("/users?customer=my_customer&maxResults=10&pageToken={t2}"),
        )
        .await;
        assert_eq!(
            p3["nextPageToken"], p2["nextPageToken"],
            "the token points back at the same page"
        );
        emu.set_faults(FaultConfig {
            expire_token_at_page: Some(2),
            ..FaultConfig::default()
        })
        .expect("faults");
        let (s, _, body) = get(
            &emu,
            &tok,
            &format!("/users?customer=my_customer&maxResults=10&pageToken={t1}"),
        )
        .await;
        assert_eq!((s, reason(&body)), (400, "invalid"));
        assert_eq!(body["error"]["errors"][0]["location"], "pageToken");
        emu.set_faults(FaultConfig {
            empty_page_at: Some(1),
            ..FaultConfig::default()
        })
        .expect("faults");
        let (_, _, e) = get(&emu, &tok, "/users?customer=my_customer&maxResults=10").await;
        assert!(e.get("users").is_none() && e["nextPageToken"].is_string(), "{e}");
        emu.set_faults(FaultConfig::default()).expect("faults");
        let (s, _, _) = get(&emu, &tok, "/users?customer=my_customer&pageToken=garbage").await;
        assert_eq!(s, 400);
    }

    #[test]
    fn ids_round_trip() {
        for ix in [0u32, 1, 77, 9_999, 1_000_000] {
            assert_eq!(parse_user_id(&user_id(5, ix), 5), Some(ix));
            assert_eq!(parse_user_id(&user_id(5, ix), 6), None);
            assert_eq!(parse_group_id(&group_id(5, ix), 5), Some(ix));
            assert_eq!(group_id(5, ix).len(), 15);
        }
        assert!(customer_id(5).starts_with("C0") && customer_id(5).len() == 9);
    }

    #[test]
    fn fields_parser_follows_google_syntax() {
        let sel = parse_fields("nextPageToken,users(id,name/givenName),users(primaryEmail)").expect("parses");
        let v = json!({"kind": "k", "nextPageToken": "t", "users": [{"id": "1", "primaryEmail": "a@x", "name": {"givenName": "A", "familyName": "B"}, "suspended": false}]});
        let out = apply_fields(v, &sel);
        assert_eq!(
            out,
            json!({"nextPageToken": "t", "users": [{"id": "1", "primaryEmail": "a@x", "name": {"givenName": "A"}}]})
        );
        assert!(parse_fields("users(id").is_err());
        assert!(parse_fields("users,,id").is_err());
    }
}
