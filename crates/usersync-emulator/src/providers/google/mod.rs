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

mod fields;
mod groups;
mod members;
mod oauth;
mod photos;
mod users;

use fields::*;
use groups::*;
use members::*;
use oauth::*;
pub use photos::web_safe_base64;
use photos::*;
use users::*;

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

/// One page of a listing's `keys` (after the request's `pageToken`), or Google's 400 for a bad
/// token.
fn page_of(
    st: &GState,
    keys: &[u32],
    tag: u32,
    q: &HashMap<String, String>,
    limit: usize,
) -> Result<paging::KeyPage, Response> {
    paging::page(
        keys,
        tag,
        q.get("pageToken").map(String::as_str),
        limit,
        &st.ctx.faults.config(),
    )
    .map_err(page_token_error)
}

/// A Directory list answer: `{"kind": "admin#directory#<resource>", "etag", "<resource>": [..],
/// "nextPageToken"}` (an empty page omits the list, as Google's does), cut to the request's
/// `fields=`. The etag is derived from `etag_key` and the page number.
fn list_response(
    resource: &str,
    etag_key: &[&str],
    page: paging::KeyPage,
    items: Vec<Value>,
    q: &HashMap<String, String>,
) -> Response {
    let page_no = page.page_no.to_string();
    let mut parts = etag_key.to_vec();
    parts.push(&page_no);
    let mut body = json!({"kind": format!("admin#directory#{resource}"), "etag": etag(&parts)});
    if !items.is_empty() {
        body[resource] = Value::Array(items);
    }
    if let Some(next) = page.next {
        body["nextPageToken"] = next.into();
    }
    ok_with_fields(body, q.get("fields").map(String::as_str))
}

fn etag(parts: &[&str]) -> String {
    let tag = paging::listing_tag(parts);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(tag.to_be_bytes()))
}

// ------------------------------------------------------------------ partial responses (`fields=`)

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
mod tests;
