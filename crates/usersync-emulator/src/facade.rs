//! The contract between the server harness and a provider facade, and the shared context a facade
//! reads (org, faults, rate limiter, tokens, credentials, counters). See FACADES.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};

use crate::faults::Faults;
use crate::gen::GenConfig;
use crate::org::{GroupIx, Org, SharedOrg, UserIx};
use crate::rate::{InFlight, RateDecision, RateLimiter};
use crate::server::ConnInfo;
use crate::tokens::TokenIssuer;
use crate::EmulatorError;

/// Test credentials every emulator hands out (deterministic in the org seed, so a written demo config
/// stays valid across restarts with the same seed). Facades use the fields that fit their provider.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Credentials {
    /// A full-access static API token (Okta `SSWS`, OneLogin/Keycloak admin secret, ...).
    pub api_token: String,
    /// A static token that can read users but NOT groups (for the provider's 403).
    pub limited_api_token: String,
    /// OAuth client id with every read scope/permission.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// OAuth client id that lacks the groups scope/permission.
    pub limited_client_id: String,
    /// Its client secret.
    pub limited_client_secret: String,
}

impl Credentials {
    /// Derive credentials from the provider id and seed.
    pub fn derive(provider: &str, seed: u64) -> Self {
        let h = |what: &str, n: usize| -> String {
            let mut d = Sha256::new();
            d.update(provider.as_bytes());
            d.update(seed.to_le_bytes());
            d.update(what.as_bytes());
            d.finalize().iter().take(n).map(|b| format!("{b:02x}")).collect()
        };
        Self {
            api_token: format!("00emu{}", h("api", 19)),
            limited_api_token: format!("00lim{}", h("api-limited", 19)),
            client_id: format!("0oaemu{}", h("client", 7)),
            client_secret: h("secret", 20),
            limited_client_id: format!("0oalim{}", h("client-limited", 7)),
            limited_client_secret: h("secret-limited", 20),
        }
    }
}

/// Request/fault counters of one emulator.
#[derive(Debug, Default)]
pub struct Stats {
    /// API requests received (control endpoints excluded).
    pub requests: AtomicU64,
    /// Requests answered with a throttling response (rate or concurrency).
    pub throttled: AtomicU64,
}

impl Stats {
    /// Snapshot as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests.load(Ordering::SeqCst),
            "throttled": self.throttled.load(Ordering::SeqCst),
        })
    }
}

/// Everything a facade's handlers share. Handed to [`Facade::router`] as `Arc<EmuContext>`.
#[derive(Debug)]
pub struct EmuContext {
    /// Provider id (`okta`, `entra`, ...).
    pub provider: &'static str,
    /// The organisation.
    pub org: SharedOrg,
    /// Fault state (read `faults.config()` for paging faults).
    pub faults: Faults,
    /// Per-bucket rate limiter (the middleware uses it; facades rarely need it).
    pub rate: RateLimiter,
    /// In-flight gauge for concurrency limits.
    pub in_flight: InFlight,
    /// Token issuer for OAuth token endpoints (lifetime configurable).
    pub tokens: TokenIssuer,
    /// The test credentials.
    pub creds: Credentials,
    /// Counters.
    pub stats: Stats,
    /// Where files for clients (CA, keys) are written.
    pub state_dir: std::path::PathBuf,
    /// What the change feeds' tokens stand for (issue 21).
    pub feeds: crate::feeds::FeedRounds,
}

impl EmuContext {
    /// Apply [`crate::FaultConfig::vanish_group`] to a read of one group's members or children:
    /// `find` locates the group read; when it is the one named, it is deleted now, so the
    /// facade's own lookup that follows answers the provider's 404, as for a group deleted
    /// after the listing. Costs nothing while the knob is off. Returns whether it vanished.
    pub async fn vanish_group_by(&self, find: impl FnOnce(&Org) -> Option<GroupIx>) -> bool {
        if !self.faults.vanish_armed() {
            return false;
        }
        let mut org = self.org.write().await;
        let Some(ix) = find(&org) else {
            return false;
        };
        let Some(name) = org.group(ix).map(|g| g.name.clone()) else {
            return false;
        };
        if !self.faults.take_vanish(true, &name) {
            return false;
        }
        tracing::debug!(group = %name, "fault: the group vanishes before its members are read");
        org.remove_group(ix)
    }

    /// [`EmuContext::vanish_group_by`] for [`crate::FaultConfig::vanish_user`] (by login), applied
    /// to a read of one user's groups.
    pub async fn vanish_user_by(&self, find: impl FnOnce(&Org) -> Option<UserIx>) -> bool {
        if !self.faults.vanish_armed() {
            return false;
        }
        let mut org = self.org.write().await;
        let Some(ix) = find(&org) else {
            return false;
        };
        let Some(login) = org.user(ix).map(|u| u.login.clone()) else {
            return false;
        };
        if !self.faults.take_vanish(false, &login) {
            return false;
        }
        tracing::debug!(user = %login, "fault: the user vanishes before its groups are read");
        org.remove_user(ix)
    }
}

/// A provider facade: routes of the real API plus the provider-specific shape of throttling and
/// server-error responses. Implementations are unit structs registered in [`crate::providers::facade`].
pub trait Facade: Send + Sync + 'static {
    /// Provider id, e.g. `okta`.
    fn id(&self) -> &'static str;

    /// Adjust the generator to the provider (e.g. no nesting for Okta, cycles only where allowed).
    fn adjust_gen(&self, _cfg: &mut GenConfig) {}

    /// Build the API router (paths exactly as the provider's, relative to the base URL).
    /// Placeholders return [`EmulatorError::NotImplemented`].
    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError>;

    /// Rate-limit bucket of a request and that bucket's default per-minute limit; `None` = not
    /// rate-limited. `FaultConfig::rate_limit_per_minute` overrides the limit.
    fn rate_bucket(&self, _method: &Method, _path: &str) -> Option<(String, u32)> {
        None
    }

    /// The provider's default limit of concurrent in-flight requests (`FaultConfig::concurrency_limit`
    /// overrides it); `None` = unlimited.
    fn default_concurrency_limit(&self) -> Option<u32> {
        None
    }

    /// Add the provider's rate-limit headers (if it sends any) to a response.
    fn rate_headers(&self, _decision: &RateDecision, _headers: &mut HeaderMap) {}

    /// The provider's throttling response (429 with its body and headers). `concurrency` is true
    /// when the concurrency limit, not the rate, was exceeded.
    fn throttled(&self, decision: &RateDecision, _concurrency: bool) -> Response {
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        if let Ok(v) = decision.retry_after_secs.to_string().parse() {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    }

    /// The provider's body for an injected server error with this status.
    fn server_error(&self, status: StatusCode) -> Response {
        (status, status.canonical_reason().unwrap_or("error")).into_response()
    }

    /// Facade-specific connection details for the JSON line / demo config: typically the option
    /// values a connector needs (domain, tenant, token URL) and which credential fields apply.
    fn client_info(&self, _ctx: &EmuContext, base_url: &str) -> serde_json::Value {
        serde_json::json!({ "base_url": base_url })
    }
}

/// Extractor: `scheme://host[:port]` of the current request (from the `Host` header and the
/// listener), for building absolute links such as Okta's `Link` or Graph's `@odata.nextLink`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let scheme = parts
            .extensions
            .get::<ConnInfo>()
            .map(|c| c.scheme())
            .unwrap_or("http");
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "127.0.0.1".to_string());
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

/// Unwrap a `Result<T, Response>` in a handler: the error is the provider's ready response, returned
/// as is.
macro_rules! or_respond {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}
pub(crate) use or_respond;

/// Serialize `value` into one buffer and answer with `status` and `application/json`
/// (one buffer = one write, which matters for keep-alive latency).
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
