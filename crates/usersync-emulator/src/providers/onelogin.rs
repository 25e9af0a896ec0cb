//! OneLogin facade: API v2 users and roles (bare JSON arrays, cursor in the `After-Cursor`
//! header), API v1 groups (`{status, pagination, data}` envelope, cursor in the body), and the v2
//! token endpoint with OneLogin's `Authorization: client_id:<id>, client_secret:<secret>` header.
//!
//! Mapping from the neutral organisation: numeric ids (users `1_000_000 + ix`, groups
//! `400_000 + ix`, roles `200_000 + ix`); a user's ONE `group_id` is the lowest-index group the
//! user belongs to (OneLogin users have a single group); roles carry the multi-valued
//! membership; built-in groups (Okta's "Everyone") do not exist in OneLogin; deprovisioned users
//! do not exist either (OneLogin deletes users), so they are not served.
#![allow(clippy::result_large_err)] // axum handlers answer errors as ready `Response`s

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::facade::or_respond;
use crate::facade::{json_response, BaseUrl, EmuContext, Facade};
use crate::org::{GroupKind, Org, User, UserStatus};
use crate::paging::{self, PageTokenError};
use crate::rate::RateDecision;
use crate::timefmt;
use crate::tokens::TokenCheck;
use crate::EmulatorError;

/// First OneLogin user id (`ix` is added).
pub const USER_ID_BASE: u64 = 1_000_000;
/// First OneLogin group id.
pub const GROUP_ID_BASE: u64 = 400_000;
/// First OneLogin role id.
pub const ROLE_ID_BASE: u64 = 200_000;
/// Users per page by default and at most (OneLogin documents 1-50 for users).
pub const USERS_MAX_LIMIT: usize = 50;
/// Groups per v1 page (fixed by OneLogin).
pub const GROUPS_PAGE: usize = 50;
/// Account-wide budget OneLogin advertises (calls per hour).
pub const HOURLY_BUDGET: u32 = 5_000;
/// Token lifetime OneLogin documents (10 hours), used when the emulator's TTL is the default.
pub const TOKEN_TTL_SECS: i64 = 36_000;

/// The OneLogin (API v1/v2) facade.
#[derive(Debug, Clone, Copy)]
pub struct OneLogin;

struct OlState {
    ctx: Arc<EmuContext>,
    /// client_id -> (token, expires_at): the same pair gets the same token until expiry.
    issued: Mutex<HashMap<String, (String, i64)>>,
}

type St = State<Arc<OlState>>;

impl Facade for OneLogin {
    fn id(&self) -> &'static str {
        "onelogin"
    }

    fn adjust_gen(&self, cfg: &mut crate::gen::GenConfig) {
        // OneLogin groups do not nest.
        cfg.nesting_depth = 0;
        cfg.allow_cycle = false;
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        let state = Arc::new(OlState {
            ctx,
            issued: Mutex::new(HashMap::new()),
        });
        Ok(Router::new()
            .route("/auth/oauth2/v2/token", post(token))
            .route("/api/2/users", get(list_users))
            .route("/api/2/users/{id}", get(get_user))
            .route("/api/1/groups", get(list_groups))
            .route("/api/1/groups/{id}", get(get_group))
            .route("/api/2/roles", get(list_roles))
            .route("/api/2/roles/{id}/users", get(role_users))
            .with_state(state))
    }

    fn rate_bucket(&self, _method: &Method, path: &str) -> Option<(String, u32)> {
        // One account-wide bucket. The harness counts per minute; the default is generous so
        // tests are not throttled (`--rate-limit` sets a real budget).
        (path.starts_with("/api/") || path.starts_with("/auth/")).then(|| ("account".to_string(), 100_000))
    }

    fn rate_headers(&self, d: &RateDecision, h: &mut HeaderMap) {
        let now = timefmt::now_unix();
        // OneLogin's reset is SECONDS REMAINING, not an epoch.
        for (name, value) in [
            ("X-RateLimit-Limit", d.limit.to_string()),
            ("X-RateLimit-Remaining", d.remaining.to_string()),
            ("X-RateLimit-Reset", (d.reset_epoch - now).max(0).to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
    }

    fn throttled(&self, d: &RateDecision, _concurrency: bool) -> Response {
        let mut r = v1_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            json!("Rate limit exceeded"),
        );
        self.rate_headers(d, r.headers_mut());
        r
    }

    fn server_error(&self, status: StatusCode) -> Response {
        v1_error(
            status,
            status.canonical_reason().unwrap_or("error"),
            json!("Internal server error"),
        )
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "token_url": format!("{base_url}/auth/oauth2/v2/token"),
            "connector_options": { "base_url": base_url, "client_id": ctx.creds.client_id },
            "connector_secrets": { "client_secret": ctx.creds.client_secret },
            "limited": { "client_id": ctx.creds.limited_client_id, "client_secret": ctx.creds.limited_client_secret },
        })
    }
}

// ---------------------------------------------------------------- error bodies

/// v1 envelope: `{"status":{"error":true,"code","type","message"}}`.
fn v1_error(status: StatusCode, kind: &str, message: Value) -> Response {
    json_response(
        status,
        &json!({"status": {"error": true, "code": status.as_u16(), "type": kind, "message": message}}),
    )
}

/// v2 (a): `{"statusCode","name","message"}`.
fn v2_error(status: StatusCode, name: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"statusCode": status.as_u16(), "name": name, "message": message}),
    )
}

/// v2 (b): `{"status","error","description"}`.
fn v2_bad_request(description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"status": 400, "error": "BadRequestError", "description": description}),
    )
}

// ---------------------------------------------------------------- auth

fn parse_client_header(value: &str) -> Option<(String, String)> {
    // `client_id:<id>, client_secret:<secret>` (also without the space), or HTTP Basic.
    if let Some(b) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let raw = String::from_utf8(STANDARD.decode(b.trim()).ok()?).ok()?;
        let (id, secret) = raw.split_once(':')?;
        return Some((id.to_string(), secret.to_string()));
    }
    let mut id = None;
    let mut secret = None;
    for part in value.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("client_id:") {
            id = Some(v.trim().to_string());
        } else if let Some(v) = part.strip_prefix("client_secret:") {
            secret = Some(v.trim().to_string());
        }
    }
    Some((id?, secret?))
}

async fn token(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let ctx = &st.ctx;
    let mut creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_client_header);
    // grant_type from a JSON body or a form body (with the credentials in it)
    let (grant, form_creds) = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => (
            v.get("grant_type").and_then(|g| g.as_str()).map(String::from),
            None,
        ),
        Err(_) => {
            let pairs: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            let fc = match (pairs.get("client_id"), pairs.get("client_secret")) {
                (Some(i), Some(s)) => Some((i.clone(), s.clone())),
                _ => None,
            };
            (pairs.get("grant_type").cloned(), fc)
        }
    };
    if creds.is_none() {
        creds = form_creds;
    }
    if grant.as_deref() != Some("client_credentials") {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "bad request",
            json!("grant_type is incorrect/absent"),
        );
    }
    let Some((id, secret)) = creds else {
        return v1_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            json!("Authentication Failure"),
        );
    };
    let scope = if id == ctx.creds.client_id && secret == ctx.creds.client_secret {
        "read_all"
    } else if id == ctx.creds.limited_client_id && secret == ctx.creds.limited_client_secret {
        "authentication_only"
    } else {
        return v1_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            json!("Authentication Failure"),
        );
    };
    let now = timefmt::now_unix();
    let (access, expires_at) = {
        let mut issued = st.issued.lock().unwrap_or_else(|p| p.into_inner());
        match issued.get(&id) {
            Some((t, exp)) if *exp > now => (t.clone(), *exp),
            _ => {
                let t = ctx.tokens.issue(&id, vec![scope.to_string()], None, now);
                let exp = now + ctx.tokens.ttl_secs();
                issued.insert(id.clone(), (t.clone(), exp));
                (t, exp)
            }
        }
    };
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "created_at": timefmt::rfc3339_millis(expires_at - ctx.tokens.ttl_secs()),
            "expires_in": expires_at - now,
            "refresh_token": URL_SAFE_NO_PAD.encode(format!("refresh-{access}")),
            "token_type": "bearer",
            "account_id": 100_000 + (ctx.org.read().await.seed % 900_000),
        }),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// Check the bearer token. `needs_read_all`: the call needs a "Read users"-or-better credential.
fn authorize(ctx: &EmuContext, headers: &HeaderMap, api: Api, needs_read_all: bool) -> Result<(), Response> {
    let unauthorized = || match api {
        Api::V1 => v1_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            json!("Authentication Failure"),
        ),
        Api::V2 => v2_error(StatusCode::UNAUTHORIZED, "UnauthorizedError", "Unauthorized"),
    };
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = value
        .strip_prefix("bearer:")
        .or_else(|| {
            value
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| &value[7..])
        })
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    match ctx.tokens.check(token, timefmt::now_unix()) {
        TokenCheck::Valid(info) => {
            if needs_read_all && !info.scopes.iter().any(|s| s == "read_all") {
                return Err(match api {
                    Api::V1 => v1_error(
                        StatusCode::UNAUTHORIZED,
                        "Unauthorized",
                        json!("Insufficient Permission"),
                    ),
                    Api::V2 => v2_error(StatusCode::FORBIDDEN, "ForbiddenError", "Insufficient Permission"),
                });
            }
            Ok(())
        }
        TokenCheck::Expired | TokenCheck::Unknown => Err(unauthorized()),
    }
}

// ---------------------------------------------------------------- mapping

fn user_id(ix: u32) -> u64 {
    USER_ID_BASE + u64::from(ix)
}

fn parse_id(raw: &str, base: u64) -> Option<u32> {
    raw.parse::<u64>()
        .ok()?
        .checked_sub(base)
        .and_then(|v| u32::try_from(v).ok())
}

/// OneLogin `status` for a neutral status; `None` = the user does not exist in OneLogin.
fn status_code(s: UserStatus) -> Option<i64> {
    Some(match s {
        UserStatus::Active => 1,
        UserStatus::Staged => 0,
        UserStatus::Provisioned => 7,
        UserStatus::Recovery => 5,
        UserStatus::PasswordExpired => 4,
        UserStatus::Locked => 3,
        UserStatus::Suspended => 2,
        UserStatus::Deprovisioned => return None,
    })
}

fn served(u: &User) -> bool {
    status_code(u.status).is_some()
}

/// The ONE group OneLogin gives a user: the lowest-index non-built-in group they belong to.
fn group_of(org: &Org, u: &User) -> Option<u64> {
    org.groups_of(u.ix)
        .iter()
        .copied()
        .find(|g| org.group(*g).is_some_and(|g| g.kind != GroupKind::BuiltIn))
        .map(|g| GROUP_ID_BASE + u64::from(g))
}

fn user_json(org: &Org, u: &User) -> Value {
    let roles: Vec<u64> = org
        .roles
        .iter()
        .filter(|r| r.members.binary_search(&u.ix).is_ok())
        .map(|r| ROLE_ID_BASE + u64::from(r.ix))
        .collect();
    let custom: serde_json::Map<String, Value> = u
        .custom
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut custom = custom;
    custom.insert(
        "employeenumber".into(),
        u.employee_number
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    json!({
        "id": user_id(u.ix),
        "username": u.login,
        "email": u.email,
        "firstname": u.first_name,
        "lastname": u.last_name,
        "status": status_code(u.status),
        "state": 1,
        "group_id": group_of(org, u),
        "role_ids": roles,
        "manager_user_id": u.manager.map(user_id),
        "manager_ad_id": Value::Null,
        "custom_attributes": custom,
        "department": u.department,
        "title": u.title,
        "company": Value::Null,
        "external_id": Value::Null,
        "directory_id": Value::Null,
        "distinguished_name": Value::Null,
        "samaccountname": Value::Null,
        "userprincipalname": Value::Null,
        "member_of": Value::Null,
        "phone": Value::Null,
        "comment": Value::Null,
        "invalid_login_attempts": if u.status == UserStatus::Locked { 5 } else { 0 },
        "locked_until": Value::Null,
        "trusted_idp_id": Value::Null,
        "preferred_locale_code": Value::Null,
        "created_at": timefmt::rfc3339_millis(u.created),
        "updated_at": timefmt::rfc3339_millis(updated_at(org, u)),
        "activated_at": (u.status != UserStatus::Staged).then(|| timefmt::rfc3339_millis(u.created)),
        "last_login": u.last_login.map(timefmt::rfc3339_millis),
        "password_changed_at": Value::Null,
        "invitation_sent_at": Value::Null,
    })
}

/// When the user last changed: its own attributes or its group (`group_id` is a user attribute in
/// OneLogin, so a move between groups updates the user).
fn updated_at(org: &Org, u: &User) -> i64 {
    org.user_groups_changed
        .get(&u.ix)
        .map_or(u.last_updated, |t| (*t).max(u.last_updated))
}

/// Unix seconds of an ISO 8601 UTC time as OneLogin takes it in `updated_since`
/// (`2026-12-07T13:45:00Z`, optional fraction; `Z` or `+00:00`).
fn parse_iso_utc(raw: &str) -> Option<i64> {
    let s = raw.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// Keep only the fields named by `fields=` (id always stays, as OneLogin does).
fn project(v: Value, fields: Option<&str>) -> Value {
    let Some(list) = fields.filter(|f| !f.trim().is_empty()) else {
        return v;
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k == "id" || wanted.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

// ---------------------------------------------------------------- v2 paging

/// OneLogin's v2 cursor carries the page size (later requests send only `cursor`).
fn encode_cursor(limit: usize, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("limit={limit}&t={token}"))
}

fn decode_cursor(c: &str) -> Option<(usize, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (l, t) = raw.strip_prefix("limit=")?.split_once("&t=")?;
    Some((l.parse().ok()?, t.to_string()))
}

/// Resolve `limit` / `page` / `cursor` for a v2 listing and serve the page of `keys`.
fn v2_page(
    ctx: &EmuContext,
    q: &HashMap<String, String>,
    keys: &[u32],
    tag: u32,
    default_limit: usize,
    max_limit: usize,
) -> Result<(Vec<u32>, HeaderMap), Response> {
    let cursor = q.get("cursor").filter(|c| !c.is_empty());
    if cursor.is_some() && (q.contains_key("limit") || q.contains_key("page")) {
        return Err(v2_bad_request(
            "Requests can only have cursor xor pagination arguments",
        ));
    }
    let faults = ctx.faults.config();
    let (limit, page_keys, next) = if let Some(c) = cursor {
        let (limit, token) = decode_cursor(c).ok_or_else(|| v2_bad_request("Invalid pagination cursor"))?;
        let p = paging::page(keys, tag, Some(&token), limit, &faults)
            .map_err(|_: PageTokenError| v2_bad_request("Invalid pagination cursor"))?;
        (limit, p.keys, p.next)
    } else {
        let limit = match q.get("limit") {
            None => default_limit,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| *l >= 1)
                .ok_or_else(|| v2_bad_request("limit must be a positive integer"))?
                .min(max_limit),
        };
        match q.get("page") {
            Some(p) => {
                let n = p
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| v2_bad_request("Invalid page"))?;
                let start = (n - 1).saturating_mul(limit).min(keys.len());
                let end = (start + limit).min(keys.len());
                (limit, keys[start..end].to_vec(), None)
            }
            None => {
                let p = paging::page(keys, tag, None, limit, &faults)
                    .map_err(|_: PageTokenError| v2_bad_request("Invalid pagination cursor"))?;
                (limit, p.keys, p.next)
            }
        }
    };
    let mut h = HeaderMap::new();
    let total = keys.len();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("Total-Count", total.to_string());
    put("Total-Pages", total.div_ceil(limit.max(1)).to_string());
    put("Page-Items", page_keys.len().to_string());
    put(
        "After-Cursor",
        next.map(|t| encode_cursor(limit, &t)).unwrap_or_default(),
    );
    if let Some(c) = cursor {
        put("Before-Cursor", c.clone());
    }
    Ok((page_keys, h))
}

fn with_headers(mut r: Response, h: HeaderMap) -> Response {
    r.headers_mut().extend(h);
    r
}

// ---------------------------------------------------------------- handlers

fn matches_filter(value: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.to_lowercase().starts_with(&prefix.to_lowercase()),
        None => value.eq_ignore_ascii_case(pattern),
    }
}

async fn list_users(State(st): St, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V2, false) {
        return r;
    }
    let since = match q.get("updated_since").map(|v| (v, parse_iso_utc(v))) {
        None => None,
        Some((_, Some(t))) => Some(t),
        Some((v, None)) => return v2_bad_request(&format!("updated_since `{v}` is not an ISO 8601 time")),
    };
    let org = ctx.org.read().await;
    let ids: Option<Vec<u32>> = q.get("user_ids").map(|s| {
        s.split(',')
            .filter_map(|i| parse_id(i.trim(), USER_ID_BASE))
            .collect()
    });
    let keys: Vec<u32> = org
        .live_users()
        .filter(|u| served(u))
        .filter(|u| ids.as_ref().is_none_or(|ids| ids.contains(&u.ix)))
        .filter(|u| q.get("username").is_none_or(|p| matches_filter(&u.login, p)))
        .filter(|u| q.get("email").is_none_or(|p| matches_filter(&u.email, p)))
        .filter(|u| {
            q.get("firstname")
                .is_none_or(|p| matches_filter(&u.first_name, p))
        })
        .filter(|u| q.get("lastname").is_none_or(|p| matches_filter(&u.last_name, p)))
        .filter(|u| since.is_none_or(|t| updated_at(&org, u) >= t))
        .map(|u| u.ix)
        .collect();
    let filter_key: Vec<&str> = [
        "user_ids",
        "username",
        "email",
        "firstname",
        "lastname",
        "updated_since",
    ]
    .iter()
    .map(|k| q.get(*k).map(String::as_str).unwrap_or(""))
    .collect();
    let mut tag_parts = vec!["/api/2/users"];
    tag_parts.extend(filter_key);
    let tag = paging::listing_tag(&tag_parts);
    let (page, h) = or_respond!(v2_page(ctx, &q, &keys, tag, USERS_MAX_LIMIT, USERS_MAX_LIMIT));
    let fields = q.get("fields").map(String::as_str);
    let body: Vec<Value> = page
        .iter()
        .filter_map(|ix| org.user(*ix))
        .map(|u| project(user_json(&org, u), fields))
        .collect();
    with_headers(json_response(StatusCode::OK, &body), h)
}

async fn get_user(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V2, false) {
        return r;
    }
    let org = ctx.org.read().await;
    match parse_id(&id, USER_ID_BASE)
        .and_then(|ix| org.user(ix))
        .filter(|u| served(u))
    {
        Some(u) => json_response(StatusCode::OK, &user_json(&org, u)),
        None => v2_error(StatusCode::NOT_FOUND, "NotFoundError", "Not Found"),
    }
}

fn group_json(g: &crate::org::Group) -> Value {
    json!({"id": GROUP_ID_BASE + u64::from(g.ix), "name": g.name, "reference": Value::Null})
}

async fn list_groups(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V1, true) {
        return r;
    }
    let org = ctx.org.read().await;
    let keys: Vec<u32> = org
        .live_groups()
        .filter(|g| g.kind != GroupKind::BuiltIn)
        .map(|g| g.ix)
        .collect();
    let token = q
        .get("after_cursor")
        .filter(|c| !c.is_empty())
        .map(String::as_str);
    let tag = paging::listing_tag(&["/api/1/groups"]);
    let page = match paging::page(&keys, tag, token, GROUPS_PAGE, &ctx.faults.config()) {
        Ok(p) => p,
        Err(_) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "bad request",
                json!({"attribute": "after_cursor", "description": "after_cursor is incorrect"}),
            )
        }
    };
    let data: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|ix| org.group(*ix))
        .map(group_json)
        .collect();
    let next_link = page
        .next
        .as_ref()
        .map(|n| format!("{base}/api/1/groups?after_cursor={n}"));
    json_response(
        StatusCode::OK,
        &json!({
            "status": {"error": false, "code": 200, "type": "success", "message": "Success"},
            "pagination": {
                "before_cursor": token,
                "after_cursor": page.next,
                "previous_link": Value::Null,
                "next_link": next_link,
            },
            "data": data,
        }),
    )
}

async fn get_group(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V1, true) {
        return r;
    }
    let org = ctx.org.read().await;
    match parse_id(&id, GROUP_ID_BASE)
        .and_then(|ix| org.group(ix))
        .filter(|g| g.kind != GroupKind::BuiltIn)
    {
        Some(g) => json_response(
            StatusCode::OK,
            &json!({"status": {"error": false, "code": 200, "type": "success", "message": "Success"},
                    "data": [group_json(g)]}),
        ),
        None => v1_error(
            StatusCode::NOT_FOUND,
            "not found",
            json!({"attribute": "id", "description": "ID is incorrect"}),
        ),
    }
}

async fn list_roles(State(st): St, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V2, true) {
        return r;
    }
    let org = ctx.org.read().await;
    let keys: Vec<u32> = org
        .roles
        .iter()
        .filter(|r| q.get("name").is_none_or(|p| matches_filter(&r.name, p)))
        .map(|r| r.ix)
        .collect();
    let tag = paging::listing_tag(&["/api/2/roles", q.get("name").map(String::as_str).unwrap_or("")]);
    let (page, h) = or_respond!(v2_page(ctx, &q, &keys, tag, 50, 650));
    let body: Vec<Value> = page
        .iter()
        .filter_map(|ix| org.roles.get(*ix as usize))
        .map(|r| json!({"id": ROLE_ID_BASE + u64::from(r.ix), "name": r.name}))
        .collect();
    with_headers(json_response(StatusCode::OK, &body), h)
}

async fn role_users(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ctx = &st.ctx;
    if let Err(r) = authorize(ctx, &headers, Api::V2, true) {
        return r;
    }
    let org = ctx.org.read().await;
    let Some(role) = parse_id(&id, ROLE_ID_BASE).and_then(|ix| org.roles.get(ix as usize)) else {
        return v2_error(StatusCode::NOT_FOUND, "NotFoundError", "Not Found");
    };
    let keys: Vec<u32> = role
        .members
        .iter()
        .copied()
        .filter(|ix| org.user(*ix).is_some_and(served))
        .collect();
    let tag = paging::listing_tag(&["/api/2/roles/users", &id]);
    let (page, h) = or_respond!(v2_page(ctx, &q, &keys, tag, 50, 50));
    let body: Vec<Value> = page
        .iter()
        .filter_map(|ix| org.user(*ix))
        .map(|u| {
            json!({
                "id": user_id(u.ix),
                "name": u.display_name,
                "username": u.login,
                "email": u.email,
                "added_by": Value::Null,
                "added_at": timefmt::rfc3339(u.created),
                "assigned": true,
            })
        })
        .collect();
    with_headers(json_response(StatusCode::OK, &body), h)
}

#[cfg(test)]
mod feed_tests {
    use super::parse_iso_utc;

    #[test]
    fn updated_since_times() {
        assert_eq!(parse_iso_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso_utc("2026-12-07T13:45:00.123Z"), Some(1_796_651_100));
        assert_eq!(parse_iso_utc("2026-12-07T13:45:00+00:00"), Some(1_796_651_100));
        assert_eq!(parse_iso_utc("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_iso_utc("1999-12-31T23:59:59Z"), Some(946_684_799));
        assert_eq!(parse_iso_utc("2026-13-07T13:45:00Z"), None);
        assert_eq!(parse_iso_utc("yesterday"), None);
    }
}
