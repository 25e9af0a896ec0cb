//! Okta Management API facade (the reference facade).
//!
//! Follows the Okta management OpenAPI spec and the api-notes (section B):
//! - `GET /api/v1/users` (`limit` default 200, max 200: larger values are silently capped; a plain
//!   listing and `q` omit `DEPROVISIONED` users, `search`/`filter` include them; `q` is a prefix match
//!   on firstName/lastName/email, not paged, default limit 10; `fields` projection),
//!   `GET /api/v1/users/{id|login}`, `GET /api/v1/users/{id}/groups`,
//!   `GET /api/v1/groups` (`search`, `filter`, `q`, `limit` max 10000, `expand=stats`),
//!   `GET /api/v1/groups/{id}`, `GET /api/v1/groups/{id}/users` (`limit` default 1000);
//! - paging by `Link` headers, `rel="self"` and `rel="next"` as two header values, next links keeping
//!   every query parameter and adding an opaque `after`;
//! - `Authorization: SSWS <token>`, and OAuth 2.0 access tokens (`Bearer`/`DPoP`) from
//!   `POST /oauth2/v1/token` (see [`oauth`]) with scopes `okta.users.read` / `okta.groups.read`;
//! - errors `{errorCode, errorSummary, errorLink, errorId, errorCauses}`: E0000007 (404), E0000011
//!   (401), E0000006 (403), E0000047 (429), E0000031 (bad search/filter), E0000001 (bad parameter);
//! - `X-Rate-Limit-Limit/Remaining/Reset` (Unix seconds) on every API response (`Date` is added by the
//!   server), per endpoint bucket; an org-wide concurrency limit (75).
//!
//! Okta has no nested groups: the generator is told so ([`Facade::adjust_gen`]).

// Handlers short-circuit with a ready `Response` as the error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

pub mod oauth;
pub mod search;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::facade::or_respond;
use crate::facade::{json_response, BaseUrl, EmuContext, Facade};
use crate::gen::GenConfig;
use crate::ids::{self, kind};
use crate::org::{Group, GroupKind, Org, User, UserStatus};
use crate::paging::{self, PageTokenError};
use crate::rate::RateDecision;
use crate::timefmt::{now_unix, rfc3339_millis};
use crate::tokens::TokenCheck;
use crate::EmulatorError;

use search::Expr;

/// The Okta facade.
#[derive(Debug, Clone, Copy)]
pub struct Okta;

/// Default and maximum `limit` of `GET /api/v1/users`.
pub const USERS_LIMIT_DEFAULT: usize = 200;
/// Maximum `limit` of `GET /api/v1/users` (larger values are capped).
pub const USERS_LIMIT_MAX: usize = 200;
/// Default `limit` of `GET /api/v1/users?q=`.
pub const USERS_Q_LIMIT_DEFAULT: usize = 10;
/// Default (and maximum) `limit` of `GET /api/v1/groups`.
pub const GROUPS_LIMIT_MAX: usize = 10_000;
/// Default `limit` of `GET /api/v1/groups?q=`.
pub const GROUPS_Q_LIMIT_DEFAULT: usize = 300;
/// Default `limit` of `GET /api/v1/groups/{id}/users` (also its cap in this emulator).
pub const MEMBERS_LIMIT_DEFAULT: usize = 1000;
/// Page size of `GET /api/v1/users/{id}/groups` (real Okta pages it at 200 although the spec
/// declares no paging parameters; a smaller `limit` is honoured here for tests).
pub const USER_GROUPS_LIMIT_DEFAULT: usize = 200;
/// Okta's org-wide concurrency limit (help.okta.com, API rate limits).
pub const CONCURRENCY_LIMIT: u32 = 75;
/// Default per-minute limit of each bucket: generous, so tests and benchmarks are not throttled
/// unless `--rate-limit` asks for it (real orgs: ~600/min for `/api/v1/users`).
pub const DEFAULT_BUCKET_LIMIT: u32 = 100_000;

const SCOPE_USERS: &str = "okta.users.read";
const SCOPE_GROUPS: &str = "okta.groups.read";

impl Facade for Okta {
    fn id(&self) -> &'static str {
        "okta"
    }

    fn adjust_gen(&self, cfg: &mut GenConfig) {
        cfg.nesting_depth = 0;
        cfg.allow_cycle = false;
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        oauth::init(&ctx)?;
        Ok(Router::new()
            .route("/api/v1/users", get(list_users))
            .route("/api/v1/users/{id}", get(get_user))
            .route("/api/v1/users/{id}/groups", get(user_groups))
            .route("/api/v1/groups", get(list_groups))
            .route("/api/v1/groups/{id}", get(get_group))
            .route("/api/v1/groups/{id}/users", get(group_users))
            .route("/oauth2/v1/token", post(oauth::token))
            .fallback(not_found_path)
            .with_state(ctx))
    }

    fn rate_bucket(&self, _method: &Method, path: &str) -> Option<(String, u32)> {
        let bucket = match path
            .trim_end_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["", "api", "v1", "users"] => "/api/v1/users",
            ["", "api", "v1", "users", _] => "/api/v1/users/{id}",
            ["", "api", "v1", "users", _, "groups"] => "/api/v1/users/{id}/groups",
            ["", "api", "v1", "groups"] => "/api/v1/groups",
            ["", "api", "v1", "groups", _] | ["", "api", "v1", "groups", _, "users"] => "/api/v1/groups/{id}",
            ["", "oauth2", "v1", "token"] => "/oauth2/v1/token",
            _ => "/api/v1/*",
        };
        Some((bucket.to_string(), DEFAULT_BUCKET_LIMIT))
    }

    fn default_concurrency_limit(&self) -> Option<u32> {
        Some(CONCURRENCY_LIMIT)
    }

    fn rate_headers(&self, d: &RateDecision, h: &mut HeaderMap) {
        for (name, v) in [
            ("x-rate-limit-limit", d.limit.to_string()),
            ("x-rate-limit-remaining", d.remaining.to_string()),
            ("x-rate-limit-reset", d.reset_epoch.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        }
    }

    fn throttled(&self, _d: &RateDecision, _concurrency: bool) -> Response {
        okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            vec![],
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        if status == StatusCode::LOCKED {
            // Okta's "try again later" while it finishes an operation on the object.
            return okta_error(
                status,
                "E0000239",
                "The request cannot be completed right now; try again later.",
                vec![],
            );
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            okta_error(status, "E0000009", "Internal Server Error", vec![])
        } else {
            // 502/503 come from the edge, not the API: an HTML page, not an Okta error object.
            let mut r = (
                status,
                format!(
                    "<html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>",
                    status.canonical_reason().unwrap_or("Service Unavailable")
                ),
            )
                .into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html"),
            );
            r
        }
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        json!({
            // The connector's `domain` option is a host name without scheme; the emulator is
            // reached through `base_url` (the connector only builds https:// from `domain`).
            "domain": base_url.split_once("://").map_or(base_url, |(_, rest)| rest),
            "base_url": base_url,
            "auth": {
                "api_token": { "header": "Authorization: SSWS <credentials.api_token>" },
                "oauth": {
                    "token_url": format!("{base_url}/oauth2/v1/token"),
                    "client_id": ctx.creds.client_id,
                    "private_key_path": oauth::key_path(ctx),
                    "scopes": [SCOPE_USERS, SCOPE_GROUPS],
                    "dpop": true,
                },
            },
            "group_types": ["OKTA_GROUP", "APP_GROUP", "BUILT_IN"],
            "connector_options": { "base_url": base_url },
            "connector_secrets": { "api_token": ctx.creds.api_token },
        })
    }
}

// ------------------------------------------------------------------------------------------ errors

/// An Okta error response `{errorCode, errorSummary, errorLink, errorId, errorCauses}`.
pub fn okta_error(status: StatusCode, code: &str, summary: &str, causes: Vec<String>) -> Response {
    let causes: Vec<Value> = causes.into_iter().map(|c| json!({ "errorSummary": c })).collect();
    json_response(
        status,
        &json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": error_id(),
            "errorCauses": causes,
        }),
    )
}

fn error_id() -> String {
    use rand::Rng;
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::thread_rng();
    let tail: String = (0..22).map(|_| A[rng.gen_range(0..A.len())] as char).collect();
    format!("oae{tail}")
}

fn not_found(id: &str, what: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} ({what})"),
        vec![],
    )
}

async fn not_found_path(uri: axum::http::Uri) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000022",
        &format!(
            "The endpoint does not support the provided HTTP method: {}",
            uri.path()
        ),
        vec![],
    )
}

fn invalid_token() -> Response {
    okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
        vec![],
    )
}

fn forbidden() -> Response {
    okta_error(
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
        vec![],
    )
}

fn bad_param(name: &str, why: &str) -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000001",
        &format!("Api validation failed: {name}"),
        vec![format!("{name}: {why}")],
    )
}

fn bad_search(why: &str) -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000031",
        "Invalid search criteria.",
        vec![why.to_string()],
    )
}

fn page_token_error(e: PageTokenError) -> Response {
    match e {
        PageTokenError::Invalid => bad_param("after", "The cursor is invalid."),
        PageTokenError::Expired => bad_param("after", "The cursor has expired; restart the listing."),
    }
}

// -------------------------------------------------------------------------------------------- auth

/// What a credential may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Users,
    Groups,
}

fn authorize(
    ctx: &EmuContext,
    method: &Method,
    uri: &axum::http::Uri,
    h: &HeaderMap,
    base: &str,
    need: Need,
) -> Result<(), Response> {
    let Some(auth) = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(invalid_token());
    };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let value = value.trim();
    match scheme {
        s if s.eq_ignore_ascii_case("SSWS") => {
            if value == ctx.creds.api_token {
                Ok(())
            } else if value == ctx.creds.limited_api_token {
                if need == Need::Users {
                    Ok(())
                } else {
                    Err(forbidden())
                }
            } else {
                Err(invalid_token())
            }
        }
        s if s.eq_ignore_ascii_case("Bearer") || s.eq_ignore_ascii_case("DPoP") => {
            let info = match ctx.tokens.check(value, now_unix()) {
                TokenCheck::Valid(info) => info,
                TokenCheck::Expired | TokenCheck::Unknown => return Err(invalid_token()),
            };
            if let Some(jkt) = &info.dpop_jkt {
                if !s.eq_ignore_ascii_case("DPoP") {
                    return Err(oauth::resource_dpop_error(
                        "The DPoP-bound access token must use the DPoP scheme.",
                    ));
                }
                oauth::check_resource_proof(method, &format!("{base}{}", uri.path()), h, value, jkt)?;
            }
            let scope = if need == Need::Users {
                SCOPE_USERS
            } else {
                SCOPE_GROUPS
            };
            if info.scopes.iter().any(|s| s == scope) {
                Ok(())
            } else {
                let mut r = forbidden();
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", resource=\"{}\"",
                    uri.path()
                )) {
                    r.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, v);
                }
                Err(r)
            }
        }
        _ => Err(invalid_token()),
    }
}

// ------------------------------------------------------------------------------------------ shapes

fn status_str(s: UserStatus) -> &'static str {
    match s {
        UserStatus::Active => "ACTIVE",
        UserStatus::Staged => "STAGED",
        UserStatus::Provisioned => "PROVISIONED",
        UserStatus::Recovery => "RECOVERY",
        UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
        UserStatus::Locked => "LOCKED_OUT",
        UserStatus::Suspended => "SUSPENDED",
        UserStatus::Deprovisioned => "DEPROVISIONED",
    }
}

fn group_type(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Native => "OKTA_GROUP",
        GroupKind::Imported => "APP_GROUP",
        GroupKind::BuiltIn => "BUILT_IN",
    }
}

/// The Okta id of user `ix` in `org`.
pub fn user_id(org: &Org, ix: u32) -> String {
    ids::okta_id("00u", org.seed, kind::USER, ix)
}

/// The Okta id of group `ix` in `org`.
pub fn group_id(org: &Org, ix: u32) -> String {
    ids::okta_id("00g", org.seed, kind::GROUP, ix)
}

fn user_type_id(org: &Org) -> String {
    ids::okta_id("oty", org.seed, kind::APP, 0)
}

fn app_id(org: &Org) -> String {
    ids::okta_id("0oa", org.seed, kind::APP, 1)
}

/// The searchable/serialised attributes of a user, as `(path, value)` with Okta names.
fn user_profile(org: &Org, u: &User) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("firstName".into(), json!(u.first_name));
    p.insert("lastName".into(), json!(u.last_name));
    p.insert("mobilePhone".into(), Value::Null);
    p.insert("secondEmail".into(), Value::Null);
    p.insert("login".into(), json!(if u.guest { &u.email } else { &u.login }));
    p.insert("email".into(), json!(u.email));
    if sends_display_name(u) {
        p.insert("displayName".into(), json!(u.display_name));
    }
    p.insert("department".into(), json!(u.department));
    p.insert("title".into(), json!(u.title));
    p.insert("employeeNumber".into(), json!(u.employee_number));
    p.insert(
        "userType".into(),
        json!(if u.guest { "Guest" } else { "Employee" }),
    );
    let (manager_id, manager_name) = manager_fields(org, u);
    p.insert("managerId".into(), json!(manager_id));
    p.insert("manager".into(), json!(manager_name));
    p.insert(
        "profileUrl".into(),
        json!(u
            .has_photo
            .then(|| format!("https://photos.{}/{}.png", org.domain, user_id(org, u.ix)))),
    );
    for (k, v) in custom_attributes(u) {
        p.insert(k.to_string(), v);
    }
    p
}

/// Whether `u`'s profile has a `displayName`: real Okta profiles rarely do (it is optional
/// and most sources leave it empty), so only every fifth user has one.
pub fn sends_display_name(u: &User) -> bool {
    u.ix % 5 == 0
}

/// How a user's `profile.managerId` names the manager. Real orgs fill it from HR, with free
/// text as often as an Okta id (recorded: `managerId: "222222"`, `manager: "Jimbo"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerForm {
    /// The manager's Okta id.
    OktaId,
    /// The manager's `employeeNumber`.
    EmployeeNumber,
    /// The manager's login.
    Login,
    /// The manager's first name: text that names no user.
    FreeText,
}

/// The form of `u`'s `managerId` (by user index: id, employee number, login, free text in
/// turn; an employee number the manager does not have becomes free text).
pub fn manager_form(org: &Org, u: &User) -> Option<ManagerForm> {
    let m = u.manager.and_then(|m| org.user(m))?;
    Some(match u.ix % 4 {
        0 => ManagerForm::OktaId,
        1 if m.employee_number.is_some() => ManagerForm::EmployeeNumber,
        2 => ManagerForm::Login,
        _ => ManagerForm::FreeText,
    })
}

/// `profile.managerId` and `profile.manager` of `u`, as this emulator sends them.
pub fn manager_fields(org: &Org, u: &User) -> (Option<String>, Option<String>) {
    let Some(m) = u.manager.and_then(|m| org.user(m)) else {
        return (None, None);
    };
    let id = match manager_form(org, u) {
        Some(ManagerForm::OktaId) => user_id(org, m.ix),
        Some(ManagerForm::EmployeeNumber) => m.employee_number.clone().unwrap_or_default(),
        Some(ManagerForm::Login) => (if m.guest { &m.email } else { &m.login }).clone(),
        Some(ManagerForm::FreeText) | None => m.first_name.clone(),
    };
    let name = match manager_form(org, u) {
        Some(ManagerForm::FreeText) => m.first_name.clone(),
        _ => m.display_name.clone(),
    };
    (Some(id), Some(name))
}

/// `transitioningToStatus` of `u`, present only while a lifecycle operation runs: some
/// PROVISIONED users are being activated, a few ACTIVE ones deactivated.
pub fn transitioning_to(u: &User) -> Option<&'static str> {
    match u.status {
        UserStatus::Provisioned if u.ix % 3 == 0 => Some("ACTIVE"),
        UserStatus::Active if u.ix % 97 == 1 => Some("DEPROVISIONED"),
        _ => None,
    }
}

/// Custom profile attributes with the JSON types Okta's profile schema gives them: text
/// stays a string, `badgeId` is an integer, `isContractor` a boolean, `clearances` an array.
pub fn custom_attributes(u: &User) -> Vec<(&str, Value)> {
    let mut out: Vec<(&str, Value)> = Vec::with_capacity(u.custom.len() + 2);
    for (k, v) in &u.custom {
        let typed = match k.as_str() {
            "badgeId" => v
                .trim_start_matches('B')
                .parse::<u64>()
                .map_or_else(|_| json!(v), |n| json!(n)),
            _ => json!(v),
        };
        out.push((k.as_str(), typed));
    }
    if !u.guest {
        let contractor = u
            .custom
            .iter()
            .any(|(k, v)| k == "employeeType" && v == "Contractor");
        out.push(("isContractor", json!(contractor)));
    }
    if let Some(d) = u.department.as_deref().filter(|_| u.ix % 3 == 0) {
        out.push(("clearances", json!([d.to_lowercase()])));
    }
    out
}

fn user_json(org: &Org, u: &User, base: &str) -> Value {
    let id = user_id(org, u.ix);
    let ts = |t: i64| json!(rfc3339_millis(t));
    let activated = !matches!(u.status, UserStatus::Staged);
    let password = !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned);
    let mut creds = Map::new();
    if password {
        creds.insert("password".into(), json!({}));
    }
    creds.insert("provider".into(), json!({"type": "OKTA", "name": "OKTA"}));
    let mut v = json!({
        "id": id,
        "status": status_str(u.status),
        "created": ts(u.created),
        "activated": if activated { ts(u.created + 60) } else { Value::Null },
        "statusChanged": ts(u.status_changed),
        "lastLogin": u.last_login.map(rfc3339_millis),
        "lastUpdated": ts(u.last_updated),
        "passwordChanged": if password { ts(u.created + 120) } else { Value::Null },
        "type": { "id": user_type_id(org) },
        "profile": user_profile(org, u),
        "credentials": creds,
        "_links": { "self": { "href": format!("{base}/api/v1/users/{id}") } },
    });
    if let (Some(t), Some(o)) = (transitioning_to(u), v.as_object_mut()) {
        o.insert("transitioningToStatus".into(), json!(t));
    }
    v
}

/// A user serialised straight into the response buffer (no intermediate `Value`): the listing fast
/// path. Same JSON as [`user_json`] (a unit test holds them equal).
struct UserOut<'a> {
    org: &'a Org,
    u: &'a User,
    base: &'a str,
}

#[derive(serde::Serialize)]
struct IdOnly {
    id: String,
}

#[derive(serde::Serialize)]
struct Empty {}

#[derive(serde::Serialize)]
struct Provider {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'static str,
}

#[derive(serde::Serialize)]
struct Creds {
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<Empty>,
    provider: Provider,
}

#[derive(serde::Serialize)]
struct Href {
    href: String,
}

#[derive(serde::Serialize)]
struct SelfLink {
    #[serde(rename = "self")]
    self_: Href,
}

struct ProfileOut<'a> {
    org: &'a Org,
    u: &'a User,
}

impl serde::Serialize for ProfileOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (org, u) = (self.org, self.u);
        let (manager_id, manager_name) = manager_fields(org, u);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("firstName", &u.first_name)?;
        m.serialize_entry("lastName", &u.last_name)?;
        m.serialize_entry("mobilePhone", &None::<&str>)?;
        m.serialize_entry("secondEmail", &None::<&str>)?;
        m.serialize_entry("login", if u.guest { &u.email } else { &u.login })?;
        m.serialize_entry("email", &u.email)?;
        if sends_display_name(u) {
            m.serialize_entry("displayName", &u.display_name)?;
        }
        m.serialize_entry("department", &u.department)?;
        m.serialize_entry("title", &u.title)?;
        m.serialize_entry("employeeNumber", &u.employee_number)?;
        m.serialize_entry("userType", if u.guest { "Guest" } else { "Employee" })?;
        m.serialize_entry("managerId", &manager_id)?;
        m.serialize_entry("manager", &manager_name)?;
        m.serialize_entry(
            "profileUrl",
            &u.has_photo
                .then(|| format!("https://photos.{}/{}.png", org.domain, user_id(org, u.ix))),
        )?;
        for (k, v) in custom_attributes(u) {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

impl serde::Serialize for UserOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (org, u) = (self.org, self.u);
        let id = user_id(org, u.ix);
        let activated = !matches!(u.status, UserStatus::Staged);
        let password = !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &id)?;
        m.serialize_entry("status", status_str(u.status))?;
        if let Some(t) = transitioning_to(u) {
            m.serialize_entry("transitioningToStatus", t)?;
        }
        m.serialize_entry("created", &rfc3339_millis(u.created))?;
        m.serialize_entry("activated", &activated.then(|| rfc3339_millis(u.created + 60)))?;
        m.serialize_entry("statusChanged", &rfc3339_millis(u.status_changed))?;
        m.serialize_entry("lastLogin", &u.last_login.map(rfc3339_millis))?;
        m.serialize_entry("lastUpdated", &rfc3339_millis(u.last_updated))?;
        m.serialize_entry(
            "passwordChanged",
            &password.then(|| rfc3339_millis(u.created + 120)),
        )?;
        m.serialize_entry(
            "type",
            &IdOnly {
                id: user_type_id(org),
            },
        )?;
        m.serialize_entry("profile", &ProfileOut { org, u })?;
        m.serialize_entry(
            "credentials",
            &Creds {
                password: password.then_some(Empty {}),
                provider: Provider {
                    ty: "OKTA",
                    name: "OKTA",
                },
            },
        )?;
        m.serialize_entry(
            "_links",
            &SelfLink {
                self_: Href {
                    href: format!("{}/api/v1/users/{id}", self.base),
                },
            },
        )?;
        m.end()
    }
}

fn group_json(org: &Org, g: &Group, base: &str, stats: bool) -> Value {
    let id = group_id(org, g.ix);
    let ts = |t: i64| json!(rfc3339_millis(t));
    let mut profile = Map::new();
    let (object_class, description) = match g.kind {
        GroupKind::BuiltIn => (
            "okta:user_group",
            Some("All users in your organization".to_string()),
        ),
        GroupKind::Native => ("okta:user_group", g.description.clone()),
        GroupKind::Imported => ("okta:windows_security_principal", g.description.clone()),
    };
    profile.insert("name".into(), json!(g.name));
    profile.insert("description".into(), json!(description));
    let mut links = json!({
        "logo": [
            {"name": "medium", "href": format!("{base}/assets/img/logos/groups/okta-medium.png"), "type": "image/png"},
            {"name": "large", "href": format!("{base}/assets/img/logos/groups/okta-large.png"), "type": "image/png"}
        ],
        "users": { "href": format!("{base}/api/v1/groups/{id}/users") },
        "apps": { "href": format!("{base}/api/v1/groups/{id}/apps") },
    });
    if g.kind == GroupKind::Imported {
        let sam: String = g
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let dom = org.domain.replace('.', ",DC=");
        profile.insert("samAccountName".into(), json!(sam));
        profile.insert("dn".into(), json!(format!("CN={sam},OU=Groups,DC={dom}")));
        profile.insert(
            "windowsDomainQualifiedName".into(),
            json!(format!(
                "{}\\{sam}",
                org.domain.split('.').next().unwrap_or("CORP").to_uppercase()
            )),
        );
        profile.insert("externalId".into(), json!(ids::guid(org.seed, kind::GROUP, g.ix)));
        profile.insert("groupType".into(), json!("Security"));
        profile.insert("groupScope".into(), json!("Global"));
        links["source"] = json!({ "href": format!("{base}/api/v1/apps/{}", app_id(org)) });
    }
    let mut v = json!({
        "id": id,
        "created": ts(g.created),
        "lastUpdated": ts(g.last_updated),
        "lastMembershipUpdated": ts(g.last_membership_updated),
        "objectClass": [object_class],
        "type": group_type(g.kind),
        "profile": profile,
        "_links": links,
    });
    if stats {
        v["_embedded"] = json!({ "stats": {
            "usersCount": g.members.len(),
            "appsCount": 0,
            "groupPushMappingsCount": 0,
            "hasAdminPrivilege": false,
        }});
    }
    v
}

// -------------------------------------------------------------------------------------- parameters

fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn limit_param(q: &[(String, String)], default: usize, max: usize) -> Result<usize, Response> {
    match param(q, "limit") {
        None | Some("") => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            Ok(_) => Err(bad_param("limit", "must be a positive integer")),
            Err(_) => Err(bad_param("limit", "must be an integer")),
        },
    }
}

/// `Link` values: self (the request as received) and next (every parameter kept, `after` replaced).
fn link_headers(base: &str, path: &str, q: &[(String, String)], next: Option<&str>) -> Vec<HeaderValue> {
    let build = |after: Option<&str>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in q {
            if k != "after" {
                ser.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            ser.append_pair("after", a);
        }
        let qs = ser.finish();
        if qs.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{qs}")
        }
    };
    let mut out = Vec::new();
    let self_after = param(q, "after");
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"self\"", build(self_after))) {
        out.push(v);
    }
    if let Some(n) = next {
        if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", build(Some(n)))) {
            out.push(v);
        }
    }
    out
}

fn with_links(mut r: Response, links: Vec<HeaderValue>) -> Response {
    for l in links {
        r.headers_mut().append(axum::http::header::LINK, l);
    }
    r
}

/// `fields=id,status,profile:(firstName,lastName)`: keep only those (id always kept).
fn project(v: &mut Value, fields: &str) {
    let mut top: Vec<String> = vec!["id".into()];
    let mut profile: Option<Vec<String>> = None;
    let mut depth = 0;
    let mut cur = String::new();
    let mut parts = Vec::new();
    for c in fields.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if let Some(inner) = p.strip_prefix("profile:(").and_then(|s| s.strip_suffix(')')) {
            profile = Some(inner.split(',').map(|s| s.trim().to_string()).collect());
            top.push("profile".into());
        } else if !p.is_empty() {
            top.push(p.to_string());
        }
    }
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| top.iter().any(|t| t == k));
        if let (Some(keep), Some(Value::Object(p))) = (profile, obj.get_mut("profile")) {
            p.retain(|k, _| keep.iter().any(|t| t == k));
        }
    }
}

// ---------------------------------------------------------------------------------------- handlers

fn user_attr(org: &Org, u: &User, path: &str) -> Option<Value> {
    match path {
        "id" => Some(json!(user_id(org, u.ix))),
        "status" => Some(json!(status_str(u.status))),
        "created" => Some(json!(rfc3339_millis(u.created))),
        "activated" => (u.status != UserStatus::Staged).then(|| json!(rfc3339_millis(u.created + 60))),
        "statusChanged" => Some(json!(rfc3339_millis(u.status_changed))),
        "lastUpdated" => Some(json!(rfc3339_millis(u.last_updated))),
        "type.id" => Some(json!(user_type_id(org))),
        p => {
            let name = p.strip_prefix("profile.")?;
            user_profile(org, u).remove(name).filter(|v| !v.is_null())
        }
    }
}

fn group_attr(org: &Org, g: &Group, path: &str) -> Option<Value> {
    match path {
        "id" => Some(json!(group_id(org, g.ix))),
        "type" => Some(json!(group_type(g.kind))),
        "created" => Some(json!(rfc3339_millis(g.created))),
        "lastUpdated" => Some(json!(rfc3339_millis(g.last_updated))),
        "lastMembershipUpdated" => Some(json!(rfc3339_millis(g.last_membership_updated))),
        "source.id" => (g.kind == GroupKind::Imported).then(|| json!(app_id(org))),
        "profile.name" => Some(json!(g.name)),
        "profile.description" => g.description.as_ref().map(|d| json!(d)),
        _ => None,
    }
}

const USER_FILTER_PROPS: &[&str] = &[
    "status",
    "lastUpdated",
    "id",
    "profile.login",
    "profile.email",
    "profile.firstName",
    "profile.lastName",
];
const GROUP_FILTER_PROPS: &[&str] = &["id", "type", "lastUpdated", "lastMembershipUpdated"];

fn check_filter(e: &Expr, allowed: &[&str], inequality_ok: &[&str]) -> Result<(), String> {
    for (attr, op) in e.comparisons() {
        if !allowed.contains(&attr.as_str()) {
            return Err(format!("filter does not support the property `{attr}`"));
        }
        if op != search::Op::Eq && !inequality_ok.contains(&attr.as_str()) {
            return Err(format!("filter supports only `eq` on `{attr}`"));
        }
    }
    Ok(())
}

#[tracing::instrument(name = "okta.list_users", skip_all)]
async fn list_users(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let search = param(&q, "search").map(search::parse).transpose();
    let filter = param(&q, "filter").map(search::parse).transpose();
    let (search, filter) = match (search, filter) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => return bad_search(&e),
    };
    if let Some(f) = &filter {
        if let Err(e) = check_filter(f, USER_FILTER_PROPS, &["lastUpdated"]) {
            return bad_search(&e);
        }
    }
    let qprefix = param(&q, "q").map(str::to_lowercase);
    let limit = match limit_param(
        &q,
        if qprefix.is_some() {
            USERS_Q_LIMIT_DEFAULT
        } else {
            USERS_LIMIT_DEFAULT
        },
        USERS_LIMIT_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let include_deprovisioned = search.is_some() || filter.is_some();
    // Lazily: users with an index above `after` that match (O(page), not O(org), per request).
    let users_after = |after: Option<u32>| {
        let start = after.map_or(0, |a| a as usize + 1);
        org.users
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .filter(|u| include_deprovisioned || u.status != UserStatus::Deprovisioned)
            .filter(|u| search.as_ref().is_none_or(|e| e.eval(&|p| user_attr(&org, u, p))))
            .filter(|u| filter.as_ref().is_none_or(|e| e.eval(&|p| user_attr(&org, u, p))))
            .filter(|u| {
                qprefix.as_ref().is_none_or(|p| {
                    [&u.first_name, &u.last_name, &u.email]
                        .iter()
                        .any(|s| s.to_lowercase().starts_with(p.as_str()))
                })
            })
            .map(|u| u.ix)
    };
    let fields = param(&q, "fields");
    let render = |ix: u32| {
        org.user(ix).map(|u| {
            let mut v = user_json(&org, u, &base);
            if let Some(f) = fields {
                project(&mut v, f);
            }
            v
        })
    };
    if qprefix.is_some() {
        // `q` is not paged: the first `limit` matches, no next link.
        let items: Vec<Value> = users_after(None).take(limit).filter_map(render).collect();
        return with_links(
            json_response(StatusCode::OK, &items),
            link_headers(&base, uri.path(), &q, None),
        );
    }
    let tag = paging::listing_tag(&[
        "users",
        param(&q, "search").unwrap_or(""),
        param(&q, "filter").unwrap_or(""),
    ]);
    let page = match paging::page_lazy(tag, param(&q, "after"), limit, &faults, users_after) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let body = if fields.is_some() {
        let items: Vec<Value> = page.keys.iter().filter_map(|&ix| render(ix)).collect();
        json_response(StatusCode::OK, &items)
    } else {
        let items: Vec<UserOut> = page
            .keys
            .iter()
            .filter_map(|&ix| org.user(ix))
            .map(|u| UserOut {
                org: &org,
                u,
                base: &base,
            })
            .collect();
        json_response(StatusCode::OK, &items)
    };
    drop(org);
    with_links(body, link_headers(&base, uri.path(), &q, page.next.as_deref()))
}

fn find_user(org: &Org, id_or_login: &str) -> Option<u32> {
    if let Some(ix) = ids::parse_okta_id(id_or_login, "00u", org.seed, kind::USER) {
        return org.user(ix).map(|u| u.ix);
    }
    let needle = id_or_login.to_lowercase();
    org.live_users()
        .find(|u| u.login.to_lowercase() == needle || (u.guest && u.email.to_lowercase() == needle))
        .map(|u| u.ix)
}

#[tracing::instrument(name = "okta.get_user", skip_all)]
async fn get_user(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let org = ctx.org.read().await;
    match find_user(&org, &id).and_then(|ix| org.user(ix)) {
        Some(u) => json_response(StatusCode::OK, &user_json(&org, u, &base)),
        None => not_found(&id, "User"),
    }
}

#[tracing::instrument(name = "okta.user_groups", skip_all)]
async fn user_groups(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let limit = or_respond!(limit_param(
        &q,
        USER_GROUPS_LIMIT_DEFAULT,
        USER_GROUPS_LIMIT_DEFAULT
    ));
    ctx.vanish_user_by(|org| find_user(org, &id)).await;
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let Some(ix) = find_user(&org, &id) else {
        return not_found(&id, "User");
    };
    // The spec declares no paging parameters here, but real Okta pages this list like the
    // others: 200 groups a page, then a `rel="next"` link carrying `after`.
    let tag = paging::listing_tag(&["user-groups", &id]);
    let page = match paging::page(org.groups_of(ix), tag, param(&q, "after"), limit, &faults) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&g| org.group(g))
        .map(|g| group_json(&org, g, &base, false))
        .collect();
    drop(org);
    with_links(
        json_response(StatusCode::OK, &items),
        link_headers(&base, uri.path(), &q, page.next.as_deref()),
    )
}

#[tracing::instrument(name = "okta.list_groups", skip_all)]
async fn list_groups(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let search = param(&q, "search").map(search::parse).transpose();
    let filter = param(&q, "filter").map(search::parse).transpose();
    let (search, filter) = match (search, filter) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => return bad_search(&e),
    };
    if let Some(f) = &filter {
        if let Err(e) = check_filter(f, GROUP_FILTER_PROPS, &["lastUpdated", "lastMembershipUpdated"]) {
            return bad_search(&e);
        }
    }
    let qprefix = param(&q, "q").map(str::to_lowercase);
    let limit = match limit_param(
        &q,
        if qprefix.is_some() {
            GROUPS_Q_LIMIT_DEFAULT
        } else {
            GROUPS_LIMIT_MAX
        },
        GROUPS_LIMIT_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let stats = param(&q, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let groups_after = |after: Option<u32>| {
        let start = after.map_or(0, |a| a as usize + 1);
        org.groups
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .filter(|g| {
                search
                    .as_ref()
                    .is_none_or(|e| e.eval(&|p| group_attr(&org, g, p)))
            })
            .filter(|g| {
                filter
                    .as_ref()
                    .is_none_or(|e| e.eval(&|p| group_attr(&org, g, p)))
            })
            .filter(|g| {
                qprefix
                    .as_ref()
                    .is_none_or(|p| g.name.to_lowercase().starts_with(p.as_str()))
            })
            .map(|g| g.ix)
    };
    let render = |ix: u32| org.group(ix).map(|g| group_json(&org, g, &base, stats));
    if qprefix.is_some() {
        let items: Vec<Value> = groups_after(None).take(limit).filter_map(render).collect();
        return with_links(
            json_response(StatusCode::OK, &items),
            link_headers(&base, uri.path(), &q, None),
        );
    }
    let tag = paging::listing_tag(&[
        "groups",
        param(&q, "search").unwrap_or(""),
        param(&q, "filter").unwrap_or(""),
    ]);
    let page = match paging::page_lazy(tag, param(&q, "after"), limit, &faults, groups_after) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page.keys.iter().filter_map(|&ix| render(ix)).collect();
    drop(org);
    with_links(
        json_response(StatusCode::OK, &items),
        link_headers(&base, uri.path(), &q, page.next.as_deref()),
    )
}

fn find_group(org: &Org, id: &str) -> Option<u32> {
    ids::parse_okta_id(id, "00g", org.seed, kind::GROUP).filter(|&ix| org.group(ix).is_some())
}

#[tracing::instrument(name = "okta.get_group", skip_all)]
async fn get_group(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let stats = param(&q, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let org = ctx.org.read().await;
    match find_group(&org, &id).and_then(|ix| org.group(ix)) {
        Some(g) => json_response(StatusCode::OK, &group_json(&org, g, &base, stats)),
        None => not_found(&id, "UserGroup"),
    }
}

#[tracing::instrument(name = "okta.group_users", skip_all)]
async fn group_users(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let limit = or_respond!(limit_param(&q, MEMBERS_LIMIT_DEFAULT, MEMBERS_LIMIT_DEFAULT));
    ctx.vanish_group_by(|org| find_group(org, &id)).await;
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let Some(gix) = find_group(&org, &id) else {
        return not_found(&id, "UserGroup");
    };
    let members: &[u32] = org.group(gix).map(|g| g.members.as_slice()).unwrap_or(&[]);
    let tag = paging::listing_tag(&["members", &id]);
    let page = match paging::page(members, tag, param(&q, "after"), limit, &faults) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<UserOut> = page
        .keys
        .iter()
        .filter_map(|&ix| org.user(ix))
        .map(|u| UserOut {
            org: &org,
            u,
            base: &base,
        })
        .collect();
    let body = json_response(StatusCode::OK, &items);
    drop(org);
    with_links(body, link_headers(&base, uri.path(), &q, page.next.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_user_serialisation_equals_the_value_form() {
        let org = crate::gen::generate(&GenConfig {
            users: 300,
            groups: 5,
            ..GenConfig::default()
        });
        for u in org.live_users() {
            let fast = serde_json::to_value(UserOut {
                org: &org,
                u,
                base: "http://h",
            })
            .expect("serialise");
            assert_eq!(fast, user_json(&org, u, "http://h"), "user {}", u.ix);
        }
    }
}
