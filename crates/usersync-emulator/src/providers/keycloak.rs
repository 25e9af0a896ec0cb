//! Keycloak (Admin REST API) facade, written from Keycloak's Admin REST OpenAPI (26.8.1) and its
//! documented behaviour, for one realm ([`REALM`]) plus the `master` realm's token endpoint.
//!
//! Served:
//! - `POST /realms/{realm}/protocol/openid-connect/token`: `client_credentials` (client id and secret in
//!   the form body or HTTP Basic, or a signed JWT: see [`client_jwt`]), `password` with the public `admin-cli` client in `master`, and
//!   `refresh_token` for the tokens of the password grant. Errors as current servers send them:
//!   400 `invalid_client` "Missing client_id parameter", 401 `invalid_client` for an unknown client,
//!   401 `unauthorized_client` for a wrong secret, 401 `invalid_grant` for a wrong password,
//!   400 `unsupported_grant_type`, 404 `Realm does not exist`.
//! - `GET /admin/realms/{realm}/users` (+`/count`), `/users/{id}`, `/users/{id}/groups` (+`/count`),
//!   `/groups` (+`/count`), `/groups/{id}`, `/groups/{id}/children`, `/groups/{id}/members`, `/roles`,
//!   `/roles/{role-name}`, `/roles/{role-name}/users`, `/roles-by-id/{role-id}`, `/admin-events` and
//!   `/events/config` (the change feed: see [`events`]); a trailing slash is
//!   accepted on every path. Offset paging with `first`/`max` and Keycloak's per-endpoint defaults
//!   (users, members and role users 100; children 10; the others unbounded); no documented maximum,
//!   so none is enforced. `briefRepresentation` defaults as documented (`/users`, `/members`,
//!   `/children`, role users: false; `/groups`, `/users/{id}/groups`, `/roles`: true). Users and members
//!   are ordered by username, groups and roles by name.
//! - Since Keycloak 23, `GET /groups` returns top-level groups with `subGroupCount` and an EMPTY
//!   `subGroups` (unless `search`/`q` is given); sub-groups come from `/children`.
//! - Permissions of the `realm-management` roles: `/users` needs `query-users` (or `view-users`) and
//!   then only returns the users the caller may view (so `query-users` alone yields `[]`, as Keycloak
//!   filters); user reads and group members need `view-users`; `/groups` needs `query-groups` or
//!   `view-users`; `/groups/{id}` and `/children` need `view-users`; `/roles` any admin role; a role
//!   and its users need `view-realm`; admin events and their config `view-events`. The full client has
//!   `view-users`, `query-groups`, `view-realm`, `view-events`;
//!   the limited client only `query-users`; the `master` admin (password grant) everything.
//! - Errors: `{"error":"HTTP 401 Unauthorized"}` with `WWW-Authenticate: Bearer`,
//!   `{"error":"HTTP 403 Forbidden"}`, `{"error":"Realm not found."}`, `{"error":"User not found"}`,
//!   `{"error":"Could not find group by id"}`, `{"error":"Could not find role"}`; unparsable
//!   integer query parameters get 404 (JAX-RS). Injected 500s carry Keycloak's
//!   `{"error":"unknown_error",...}`; 502/503/504 and 429 come from a reverse proxy (HTML, `Retry-After`):
//!   Keycloak itself has no rate limiting or rate-limit headers.
//!
//! Mapping from the neutral organisation: Keycloak has one status, `enabled`: suspended users are
//! disabled; deprovisioned users do not exist (Keycloak deletes users); staged/provisioned users are
//! enabled with required actions. Groups form a tree: a group nested under several parents keeps
//! the first (lowest index) as its parent; a cycle is broken by making a group top-level. Managers
//! are in the `manager` attribute (the manager's username), photos in `picture` (a `data:` URI).
//! Realm roles: the three built-ins (`default-roles-<realm>` held directly by every user,
//! `offline_access`, `uma_authorization`) plus the organisation's roles.

// Helpers return the provider's error response as `Err(Response)` so handlers can `?`-style bail out;
// boxing it would only add an allocation per error.
#![allow(clippy::result_large_err)]

pub mod client_jwt;
pub mod events;
mod handlers;
pub use events::admin_events;
use handlers::*;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::facade::or_respond;
use crate::facade::{json_response, BaseUrl, EmuContext, Facade};
use crate::faults::FaultConfig;
use crate::ids::{self, kind};
use crate::org::{GroupIx, Org, UserIx, UserStatus};
use crate::rate::RateDecision;
use crate::timefmt;
use crate::tokens::TokenCheck;
use crate::{photo, EmulatorError};

/// The emulated realm.
pub const REALM: &str = "example";
/// Keycloak's administration realm (admin users, `admin-cli`).
pub const MASTER: &str = "master";
/// The public client of the password grant.
pub const ADMIN_CLI: &str = "admin-cli";
/// Username of the `master` realm administrator (its password is `Credentials::api_token`).
pub const ADMIN_USER: &str = "admin";
/// `Constants.DEFAULT_MAX_RESULTS`: default `max` of `/users`, `/members` and role users.
pub const DEFAULT_MAX: i64 = 100;
/// Default `max` of `/groups/{id}/children`.
pub const CHILDREN_DEFAULT_MAX: i64 = 10;
/// User attribute holding the manager's username.
pub const MANAGER_ATTRIBUTE: &str = "manager";
/// User attribute holding the photo as a `data:` URI.
pub const PHOTO_ATTRIBUTE: &str = "picture";
/// Index offset of the built-in realm roles (their ids do not collide with the org's roles).
const BUILTIN_ROLE_BASE: u32 = 1_000_000;

/// The Keycloak (Admin REST API) facade.
#[derive(Debug, Clone, Copy)]
pub struct Keycloak;

type St = State<Arc<EmuContext>>;

/// `realm-management` client roles the facade checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perm {
    ViewUsers,
    QueryUsers,
    QueryGroups,
    ViewRealm,
    ViewEvents,
}

impl Perm {
    fn name(self) -> &'static str {
        match self {
            Perm::ViewUsers => "view-users",
            Perm::QueryUsers => "query-users",
            Perm::QueryGroups => "query-groups",
            Perm::ViewRealm => "view-realm",
            Perm::ViewEvents => "view-events",
        }
    }

    fn parse(s: &str) -> Option<Perm> {
        [
            Perm::ViewUsers,
            Perm::QueryUsers,
            Perm::QueryGroups,
            Perm::ViewRealm,
            Perm::ViewEvents,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }
}

/// The authenticated caller of an admin request.
struct Caller {
    perms: Vec<Perm>,
}

impl Caller {
    fn has(&self, p: Perm) -> bool {
        self.perms.contains(&p)
    }
    fn can_view_users(&self) -> bool {
        self.has(Perm::ViewUsers)
    }
    fn can_query_users(&self) -> bool {
        self.has(Perm::QueryUsers) || self.has(Perm::ViewUsers)
    }
    fn can_list_groups(&self) -> bool {
        self.has(Perm::QueryGroups) || self.has(Perm::ViewUsers)
    }
    fn can_view_realm(&self) -> bool {
        self.has(Perm::ViewRealm)
    }
    fn is_admin(&self) -> bool {
        !self.perms.is_empty()
    }
}

impl Facade for Keycloak {
    fn id(&self) -> &'static str {
        "keycloak"
    }

    fn adjust_gen(&self, cfg: &mut crate::gen::GenConfig) {
        // Keycloak groups form a tree: nesting yes, cycles no.
        cfg.allow_cycle = false;
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        client_jwt::init(&ctx)?;
        let admin = "/admin/realms/{realm}";
        let routes: Vec<(String, MethodRouter<Arc<EmuContext>>)> = vec![
            (
                "/realms/{realm}/protocol/openid-connect/token".into(),
                post(token),
            ),
            (format!("{admin}/users"), get(list_users)),
            (format!("{admin}/users/count"), get(count_users)),
            (format!("{admin}/users/{{id}}"), get(get_user)),
            (format!("{admin}/users/{{id}}/groups"), get(user_groups)),
            (
                format!("{admin}/users/{{id}}/groups/count"),
                get(user_groups_count),
            ),
            (format!("{admin}/groups"), get(list_groups)),
            (format!("{admin}/groups/count"), get(count_groups)),
            (format!("{admin}/groups/{{id}}"), get(get_group)),
            (format!("{admin}/groups/{{id}}/children"), get(group_children)),
            (format!("{admin}/groups/{{id}}/members"), get(group_members)),
            (format!("{admin}/roles"), get(list_roles)),
            (format!("{admin}/roles/{{name}}"), get(get_role)),
            (format!("{admin}/roles/{{name}}/users"), get(role_users)),
            (format!("{admin}/roles-by-id/{{id}}"), get(role_by_id)),
            (format!("{admin}/admin-events"), get(events::admin_events_list)),
            (format!("{admin}/events/config"), get(events::events_config)),
        ];
        let mut router = Router::new();
        for (path, handler) in routes {
            // real clients send collection paths with a trailing slash; Keycloak accepts both
            router = router
                .route(&path, handler.clone())
                .route(&format!("{path}/"), handler);
        }
        Ok(router.with_state(ctx))
    }

    fn rate_bucket(&self, _method: &Method, path: &str) -> Option<(String, u32)> {
        // Keycloak has no rate limiting; a reverse proxy in front of it may have. The bucket only
        // exists so `--rate-limit` can emulate that proxy; the default is out of reach.
        (!path.starts_with("/_emulator")).then(|| ("proxy".to_string(), 1_000_000))
    }

    fn throttled(&self, decision: &RateDecision, _concurrency: bool) -> Response {
        proxy_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(decision.retry_after_secs.max(1) as u64),
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            json_response(
                status,
                &json!({"error": "unknown_error", "error_description": "For more on this error consult the server log."}),
            )
        } else {
            proxy_page(status, None)
        }
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "realm": REALM,
            "client_id": ctx.creds.client_id,
            "client_secret": ctx.creds.client_secret,
            "limited_client_id": ctx.creds.limited_client_id,
            "limited_client_secret": ctx.creds.limited_client_secret,
            "admin_username": ADMIN_USER,
            "admin_password": ctx.creds.api_token,
            "admin_token_realm": MASTER,
            "manager_attribute": MANAGER_ATTRIBUTE,
            "photo_attribute": PHOTO_ATTRIBUTE,
            "token_url": format!("{base_url}/realms/{REALM}/protocol/openid-connect/token"),
            // what `usersync demo` writes into its config for the keycloak connector
            "connector_options": {
                "base_url": base_url,
                "realm": REALM,
                "client_id": ctx.creds.client_id,
                "manager_attribute": MANAGER_ATTRIBUTE,
                "photo_attribute": PHOTO_ATTRIBUTE,
            },
            "connector_secrets": { "client_secret": ctx.creds.client_secret },
        })
    }
}

// ------------------------------------------------------------------------------------------------
// responses

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": code, "error_description": description }),
    )
}

fn unauthorized() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "HTTP 401 Unauthorized");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn forbidden() -> Response {
    error(StatusCode::FORBIDDEN, "HTTP 403 Forbidden")
}

fn realm_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Realm not found.")
}

/// What nginx in front of Keycloak answers for 429/502/503/504.
fn proxy_page(status: StatusCode, retry_after: Option<u64>) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if let Some(s) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

// ------------------------------------------------------------------------------------------------
// query parameters

struct Params(HashMap<String, String>);

impl Params {
    /// An `Integer` query parameter; unparsable values get JAX-RS's 404.
    fn int(&self, name: &str) -> Result<Option<i64>, Response> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i32>()
                .map(|n| Some(i64::from(n)))
                .map_err(|_| error(StatusCode::NOT_FOUND, "HTTP 404 Not Found")),
        }
    }

    /// A `Boolean` query parameter (Java `Boolean.valueOf`: only "true", any case, is true).
    fn boolean(&self, name: &str, default: bool) -> bool {
        match self.0.get(name) {
            None => default,
            Some(v) if v.is_empty() => default,
            Some(v) => v.eq_ignore_ascii_case("true"),
        }
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }
}

/// Apply `first`/`max` (Keycloak: a missing or negative `first` is 0; a missing `max` is the
/// endpoint's default, `None` = unbounded; a negative `max` is unbounded) and the paging faults.
fn window<T: Clone>(
    items: &[T],
    p: &Params,
    default_max: Option<i64>,
    faults: &FaultConfig,
) -> Result<Vec<T>, Response> {
    let first = p.int("first")?.unwrap_or(0).max(0) as usize;
    let max = p.int("max")?.or(default_max);
    let max = match max {
        Some(m) if m >= 0 => Some(m as usize),
        _ => None,
    };
    let Some(max) = max else {
        return Ok(items.iter().skip(first).cloned().collect());
    };
    if max == 0 {
        return Ok(Vec::new());
    }
    let page_no = (first / max) as u32 + 1;
    // fault: an empty page in the middle of a listing (Keycloak has no other end marker)
    if page_no >= 2 && faults.empty_page_at == Some(page_no) && first < items.len() {
        faults.paging_served.hit();
        return Ok(Vec::new());
    }
    // fault: the page repeats the previous one
    let start = if page_no >= 2 && faults.paging_loop_at_page == Some(page_no) {
        faults.paging_served.hit();
        first - max
    } else if page_no >= 2 && faults.repeat_at_page.is_some_and(|n| page_no >= n) {
        faults.paging_served.hit();
        // fault: someone was added before the offset after page N-1 was read, so from page N on
        // every page starts one item early (page N repeats page N-1's last item; nothing is lost)
        first - 1
    } else {
        first
    };
    Ok(items.iter().skip(start).take(max).cloned().collect())
}

// ------------------------------------------------------------------------------------------------
// auth

async fn admin_auth(ctx: &EmuContext, headers: &HeaderMap, realm: &str) -> Result<Caller, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| value[7..].trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let info = match ctx.tokens.check(token, timefmt::now_unix()) {
        TokenCheck::Valid(info) => info,
        TokenCheck::Expired | TokenCheck::Unknown => return Err(unauthorized()),
    };
    if info.scopes.iter().any(|s| s == "refresh") {
        return Err(unauthorized());
    }
    let token_realm = info
        .scopes
        .iter()
        .find_map(|s| s.strip_prefix("realm:"))
        .unwrap_or("");
    let perms: Vec<Perm> = info
        .scopes
        .iter()
        .filter_map(|s| s.strip_prefix("role:"))
        .filter_map(Perm::parse)
        .collect();
    if realm != REALM {
        // a master admin learns the realm is missing; others may not even ask
        return Err(if token_realm == MASTER {
            realm_not_found()
        } else {
            forbidden()
        });
    }
    if token_realm != REALM && token_realm != MASTER {
        return Err(forbidden());
    }
    Ok(Caller { perms })
}

fn scopes(realm: &str, perms: &[Perm], extra: &[&str]) -> Vec<String> {
    let mut v = vec![format!("realm:{realm}")];
    v.extend(perms.iter().map(|p| format!("role:{}", p.name())));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

const ALL_PERMS: [Perm; 5] = [
    Perm::ViewUsers,
    Perm::QueryUsers,
    Perm::QueryGroups,
    Perm::ViewRealm,
    Perm::ViewEvents,
];

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.get(..6).filter(|p| p.eq_ignore_ascii_case("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(value[6..].trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| s.to_string())
    };
    Some((dec(id), dec(secret)))
}

async fn token(
    State(ctx): St,
    Path(realm): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if realm != REALM && realm != MASTER {
        return error(StatusCode::NOT_FOUND, "Realm does not exist");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(grant) = form.get("grant_type").filter(|g| !g.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing form parameter: grant_type",
        );
    };
    // Signed JWT client authentication: the client is the assertion's `sub`.
    let mut assertion_client = None;
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(client_jwt::JWT_BEARER) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "Parameter client_assertion_type is missing or has wrong value",
            );
        }
        let realm_url = format!("{base}/realms/{realm}");
        let form_id = form.get("client_id").map(String::as_str);
        match client_jwt::authenticate(&ctx, &realm_url, assertion, form_id, timefmt::now_unix()) {
            Ok(id) => assertion_client = Some(id),
            Err(why) => {
                tracing::debug!(?why, "signed JWT client authentication refused");
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Invalid client or Invalid client credentials",
                );
            }
        }
    }
    let basic = basic_credentials(&headers);
    let client_id = assertion_client
        .clone()
        .or_else(|| basic.as_ref().map(|(i, _)| i.clone()));
    let client_id = client_id.or_else(|| form.get("client_id").cloned());
    let secret = basic
        .as_ref()
        .map(|(_, s)| s.clone())
        .or_else(|| form.get("client_secret").cloned());
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Missing client_id parameter",
        );
    };
    let invalid_client = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client or Invalid client credentials",
        )
    };
    let wrong_secret = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Invalid client or Invalid client credentials",
        )
    };
    let creds = &ctx.creds;
    // the realm's clients: (id, secret or None for public clients, service-account roles)
    let confidential: Vec<(&str, &str, &[Perm])> = if realm == REALM {
        vec![
            (
                creds.client_id.as_str(),
                creds.client_secret.as_str(),
                &[
                    Perm::ViewUsers,
                    Perm::QueryGroups,
                    Perm::ViewRealm,
                    Perm::ViewEvents,
                ],
            ),
            (
                creds.limited_client_id.as_str(),
                creds.limited_client_secret.as_str(),
                &[Perm::QueryUsers],
            ),
        ]
    } else {
        Vec::new()
    };
    let now = timefmt::now_unix();
    let ttl = ctx.tokens.ttl_secs();
    match grant.as_str() {
        "client_credentials" => {
            if client_id == ADMIN_CLI {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    "Public client not allowed to retrieve service account",
                );
            }
            let Some((_, expected, perms)) = confidential.iter().find(|(id, _, _)| *id == client_id) else {
                return invalid_client();
            };
            if assertion_client.is_none() && secret.as_deref() != Some(*expected) {
                return wrong_secret();
            }
            let access = ctx
                .tokens
                .issue(&client_id, scopes(&realm, perms, &[]), None, now);
            json_response(
                StatusCode::OK,
                &json!({
                    "access_token": access,
                    "expires_in": ttl,
                    "refresh_expires_in": 0,
                    "token_type": "Bearer",
                    "not-before-policy": 0,
                    "scope": "profile email",
                }),
            )
        }
        "password" | "refresh_token" => {
            if client_id != ADMIN_CLI {
                if confidential.iter().any(|(id, _, _)| *id == client_id) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unauthorized_client",
                        "Client not allowed for direct access grants",
                    );
                }
                return invalid_client();
            }
            if grant == "password" {
                let ok = realm == MASTER
                    && form.get("username").map(|u| u.to_lowercase()) == Some(ADMIN_USER.to_string())
                    && form.get("password") == Some(&creds.api_token);
                if !ok {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        "Invalid user credentials",
                    );
                }
            } else {
                let presented = form.get("refresh_token").map(String::as_str).unwrap_or("");
                let valid = matches!(ctx.tokens.check(presented, now),
                    TokenCheck::Valid(ref i) if i.scopes.iter().any(|s| s == "refresh") && i.client_id == ADMIN_CLI);
                if !valid {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token");
                }
            }
            let access = ctx
                .tokens
                .issue(ADMIN_CLI, scopes(MASTER, &ALL_PERMS, &[]), None, now);
            let refresh = ctx
                .tokens
                .issue(ADMIN_CLI, scopes(MASTER, &[], &["refresh"]), None, now);
            json_response(
                StatusCode::OK,
                &json!({
                    "access_token": access,
                    "expires_in": ttl,
                    "refresh_token": refresh,
                    "refresh_expires_in": ttl,
                    "token_type": "Bearer",
                    "not-before-policy": 0,
                    "session_state": format!("{:x}", now),
                    "scope": "profile email",
                }),
            )
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant_type",
        ),
    }
}

// ------------------------------------------------------------------------------------------------
// the organisation, seen as a Keycloak realm

/// The Keycloak id (a UUID) of a user of the organisation.
pub fn user_id(org: &Org, ix: UserIx) -> String {
    ids::guid(org.seed, kind::USER, ix)
}

/// The Keycloak id (a UUID) of a group of the organisation.
pub fn group_id(org: &Org, ix: GroupIx) -> String {
    ids::guid(org.seed, kind::GROUP, ix)
}

/// A user as Keycloak has it: deprovisioned users were deleted.
fn kc_user(org: &Org, ix: UserIx) -> Option<&crate::org::User> {
    org.user(ix).filter(|u| u.status != UserStatus::Deprovisioned)
}

fn find_user(org: &Org, id: &str) -> Option<UserIx> {
    let ix = ids::parse_guid(id, org.seed, kind::USER)?;
    kc_user(org, ix).map(|_| ix)
}

fn username(u: &crate::org::User) -> String {
    u.login.to_lowercase()
}

/// Every user, ordered by username.
fn users_sorted(org: &Org) -> Vec<(String, UserIx)> {
    let mut v: Vec<(String, UserIx)> = org
        .live_users()
        .filter(|u| u.status != UserStatus::Deprovisioned)
        .map(|u| (username(u), u.ix))
        .collect();
    v.sort();
    v
}

fn sort_by_username(org: &Org, ixs: impl Iterator<Item = UserIx>) -> Vec<UserIx> {
    let mut v: Vec<(String, UserIx)> = ixs
        .filter_map(|ix| kc_user(org, ix).map(|u| (username(u), ix)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, ix)| ix).collect()
}

fn required_actions(status: UserStatus) -> Vec<&'static str> {
    match status {
        UserStatus::Staged | UserStatus::Provisioned => vec!["VERIFY_EMAIL", "UPDATE_PASSWORD"],
        UserStatus::Recovery | UserStatus::PasswordExpired => vec!["UPDATE_PASSWORD"],
        _ => Vec::new(),
    }
}

/// `UserRepresentation`, full or brief.
fn user_json(org: &Org, ix: UserIx, full: bool) -> Value {
    let Some(u) = org.user(ix) else { return Value::Null };
    let mut m = Map::new();
    m.insert("id".into(), json!(user_id(org, ix)));
    m.insert("username".into(), json!(username(u)));
    m.insert("firstName".into(), json!(u.first_name));
    m.insert("lastName".into(), json!(u.last_name));
    m.insert("email".into(), json!(u.email.to_lowercase()));
    m.insert(
        "emailVerified".into(),
        json!(!matches!(u.status, UserStatus::Staged | UserStatus::Provisioned)),
    );
    m.insert("createdTimestamp".into(), json!(u.created * 1000));
    m.insert("enabled".into(), json!(u.status != UserStatus::Suspended));
    if full {
        m.insert("totp".into(), json!(false));
        m.insert("disableableCredentialTypes".into(), json!([]));
        m.insert("requiredActions".into(), json!(required_actions(u.status)));
        m.insert("notBefore".into(), json!(0));
        let mut attrs = Map::new();
        let mut put = |k: &str, v: &str| {
            attrs.insert(k.to_string(), json!([v]));
        };
        if let Some(d) = &u.department {
            put("department", d);
        }
        if let Some(t) = &u.title {
            put("title", t);
        }
        if let Some(n) = &u.employee_number {
            put("employeeNumber", n);
        }
        for (k, v) in &u.custom {
            put(k, v);
        }
        // the attribute keeps the username even after the manager is deleted, as Keycloak does
        if let Some(mgr) = u.manager.and_then(|m| org.user(m)) {
            put(MANAGER_ATTRIBUTE, &username(mgr));
        }
        if u.has_photo {
            let png = photo::png_for(org.seed ^ u64::from(ix));
            put(
                PHOTO_ATTRIBUTE,
                &format!("data:image/png;base64,{}", STANDARD.encode(png)),
            );
        }
        if !attrs.is_empty() {
            m.insert("attributes".into(), Value::Object(attrs));
        }
    }
    m.insert(
        "access".into(),
        json!({"manageGroupMembership": false, "view": true, "mapRoles": false, "impersonate": false, "manage": false}),
    );
    Value::Object(m)
}

/// The group tree: parent of each group, children sorted by name, top level sorted by name.
struct Tree {
    parent: Vec<Option<GroupIx>>,
    children: HashMap<GroupIx, Vec<GroupIx>>,
    top: Vec<GroupIx>,
}

fn tree(org: &Org) -> Tree {
    let n = org.groups.len();
    let mut parent: Vec<Option<GroupIx>> = vec![None; n];
    for g in org.live_groups() {
        for &c in &g.child_groups {
            if org.group(c).is_some() && c != g.ix && parent[c as usize].is_none() {
                parent[c as usize] = Some(g.ix);
            }
        }
    }
    // break cycles: a group that reaches itself going up becomes top-level
    for g in 0..n {
        let mut cur = parent[g];
        let mut steps = 0;
        while let Some(p) = cur {
            if p as usize == g || steps > n {
                parent[g] = None;
                break;
            }
            cur = parent[p as usize];
            steps += 1;
        }
    }
    let by_name = |v: &mut Vec<GroupIx>| {
        v.sort_by(|a, b| {
            let na = org.group(*a).map(|g| g.name.as_str()).unwrap_or("");
            let nb = org.group(*b).map(|g| g.name.as_str()).unwrap_or("");
            na.cmp(nb).then(a.cmp(b))
        })
    };
    let mut children: HashMap<GroupIx, Vec<GroupIx>> = HashMap::new();
    let mut top = Vec::new();
    for g in org.live_groups() {
        match parent[g.ix as usize] {
            Some(p) => children.entry(p).or_default().push(g.ix),
            None => top.push(g.ix),
        }
    }
    for v in children.values_mut() {
        by_name(v);
    }
    by_name(&mut top);
    Tree {
        parent,
        children,
        top,
    }
}

impl Tree {
    fn children_of(&self, g: GroupIx) -> &[GroupIx] {
        self.children.get(&g).map(Vec::as_slice).unwrap_or(&[])
    }

    fn path(&self, org: &Org, g: GroupIx) -> String {
        let mut names = Vec::new();
        let mut cur = Some(g);
        while let Some(c) = cur {
            names.push(org.group(c).map(|x| x.name.clone()).unwrap_or_default());
            cur = self.parent.get(c as usize).copied().flatten();
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }
}

/// `GroupRepresentation`. `sub_groups`: the embedded sub-groups (Keycloak 23+: empty unless searching).
fn group_json(org: &Org, t: &Tree, g: GroupIx, full: bool, count: bool, sub_groups: Vec<Value>) -> Value {
    let Some(gr) = org.group(g) else {
        return Value::Null;
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(group_id(org, g)));
    m.insert("name".into(), json!(gr.name));
    if let Some(d) = &gr.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("path".into(), json!(t.path(org, g)));
    if let Some(p) = t.parent.get(g as usize).copied().flatten() {
        m.insert("parentId".into(), json!(group_id(org, p)));
    }
    if count {
        m.insert("subGroupCount".into(), json!(t.children_of(g).len()));
    }
    m.insert("subGroups".into(), Value::Array(sub_groups));
    if full {
        let mut attrs = Map::new();
        if gr.kind == crate::org::GroupKind::Imported {
            attrs.insert("source".into(), json!(["ldap"]));
        }
        m.insert("attributes".into(), Value::Object(attrs));
        m.insert("realmRoles".into(), json!([]));
        m.insert("clientRoles".into(), json!({}));
    }
    m.insert(
        "access".into(),
        json!({"view": true, "viewMembers": true, "manageMembers": false, "manage": false, "manageMembership": false}),
    );
    Value::Object(m)
}

fn find_group(org: &Org, id: &str) -> Option<GroupIx> {
    let ix = ids::parse_guid(id, org.seed, kind::GROUP)?;
    org.group(ix).map(|_| ix)
}

/// A realm role: built-ins first by index, then the organisation's roles.
struct RoleView {
    ix: u32,
    name: String,
    description: Option<String>,
    composite: bool,
    members: Vec<UserIx>,
}

fn roles(org: &Org) -> Vec<RoleView> {
    let everyone: Vec<UserIx> = users_sorted(org).into_iter().map(|(_, ix)| ix).collect();
    let mut v = vec![
        RoleView {
            ix: BUILTIN_ROLE_BASE,
            name: format!("default-roles-{REALM}"),
            description: Some("${role_default-roles}".into()),
            composite: true,
            members: everyone,
        },
        RoleView {
            ix: BUILTIN_ROLE_BASE + 1,
            name: "offline_access".into(),
            description: Some("${role_offline-access}".into()),
            composite: false,
            members: Vec::new(),
        },
        RoleView {
            ix: BUILTIN_ROLE_BASE + 2,
            name: "uma_authorization".into(),
            description: Some("${role_uma_authorization}".into()),
            composite: false,
            members: Vec::new(),
        },
    ];
    for r in &org.roles {
        v.push(RoleView {
            ix: r.ix,
            name: r.name.clone(),
            description: None,
            composite: false,
            members: sort_by_username(org, r.members.iter().copied()),
        });
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn role_json(org: &Org, r: &RoleView, full: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(ids::guid(org.seed, kind::ROLE, r.ix)));
    m.insert("name".into(), json!(r.name));
    if let Some(d) = &r.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("composite".into(), json!(r.composite));
    m.insert("clientRole".into(), json!(false));
    m.insert("containerId".into(), json!(ids::guid(org.seed, kind::APP, 0)));
    if full {
        m.insert("attributes".into(), json!({}));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests;
