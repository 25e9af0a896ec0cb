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
//!
//! Here: the facade (routes, rate buckets, edge errors) and authorization; `users.rs` and
//! `groups.rs` hold the handlers, `shapes.rs` Okta's JSON, `params.rs` query parameters and `Link`
//! paging, `errors.rs` Okta's error bodies.

// Handlers short-circuit with a ready `Response` as the error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod errors;
mod groups;
pub mod oauth;
mod params;
pub mod search;
mod shapes;
mod users;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::facade::{EmuContext, Facade};
use crate::gen::GenConfig;
use crate::rate::RateDecision;
use crate::timefmt::now_unix;
use crate::tokens::TokenCheck;
use crate::EmulatorError;

pub use errors::okta_error;
use errors::{forbidden, invalid_token, not_found_path};
use groups::{get_group, group_users, list_groups};
pub use shapes::{
    custom_attributes, group_id, manager_fields, manager_form, sends_display_name, transitioning_to, user_id,
    ManagerForm,
};
use users::{get_user, list_users, user_groups};

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
