//! Per-connection runtime settings, given as plain values by the host (the config crate maps its
//! connection table onto [`ConnectionSettings`]).

use std::path::PathBuf;
use std::time::Duration;

/// How a connection talks to its provider. Every field has a sensible default
/// ([`ConnectionSettings::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    /// Maximum requests in flight for this connection. `None`: the connector manifest's
    /// `default_concurrency` (modest for providers with a concurrency limit, such as Okta).
    pub concurrency: Option<u32>,
    /// Proxy URL for this connection (`http://proxy.corp:3128`; user:password in the URL is
    /// allowed and never logged). `None`: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the
    /// environment apply. `NO_PROXY` is honoured in both cases.
    pub proxy: Option<String>,
    /// Ignore proxy environment variables (direct connections), unless `proxy` is set.
    pub no_proxy_env: bool,
    /// Extra PEM CA bundle trusted in addition to the built-in web PKI roots (a corporate
    /// TLS-inspecting proxy's CA, an emulator's generated CA).
    pub ca_bundle: Option<PathBuf>,
    /// TCP connect timeout (also bounds the TLS handshake in `doctor`).
    pub connect_timeout: Duration,
    /// Read timeout: the longest wait for more bytes of a response.
    pub read_timeout: Duration,
    /// Whole-request timeout (connect + send + receive one response).
    pub request_timeout: Duration,
    /// Retries, backoff and throttle waits.
    pub retry: RetryPolicy,
    /// How long one request may keep being throttled (429, quota errors such as Google's
    /// `userRateLimitExceeded`) before its query fails, counted from its first throttle answer.
    /// Throttle retries are counted apart from error retries (`retry.max_attempts` does not
    /// limit them): a provider that keeps answering eventually makes the sync slower, never
    /// fail. `None`: [`THROTTLE_BUDGET_WINDOWS`] times `retry.max_throttle_wait` (10 minutes by
    /// default, ten one-minute quota windows); see [`ConnectionSettings::throttle_budget`].
    pub max_throttle_total: Option<Duration>,
    /// Bound on pages per query (a guard against endless listings).
    pub max_pages: u64,
    /// Largest response body accepted, bytes; enforced while reading (nothing past it is
    /// buffered). Default [`DEFAULT_MAX_RESPONSE_BYTES`], the plugins' page limit too.
    pub max_response_bytes: u64,
    /// Time limit of one run of this connection (every query and request of one
    /// [`crate::ConnectionClient`], waits included), counted from the client's creation.
    /// `None`: no limit.
    pub max_run: Option<Duration>,
    /// How many times a listing may restart from page one after its paging cursor expired.
    pub max_listing_restarts: u32,
    /// Where the refresh token of the authorization-code flow is kept (written by
    /// `usersync auth login`, mode 0600). Required for that flow only.
    pub credential_file: Option<PathBuf>,
    /// Value of the `User-Agent` header.
    pub user_agent: String,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            concurrency: None,
            proxy: None,
            no_proxy_env: false,
            ca_bundle: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            max_throttle_total: None,
            max_pages: 1_000_000,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_run: Some(DEFAULT_MAX_RUN),
            max_listing_restarts: 3,
            credential_file: None,
            user_agent: format!("usersync/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Default largest response body: 64 MiB (a Graph page of 999 users with every attribute is
/// about 3 MB; a profile photo at most a few MB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Default time limit of one run of a connection: 6 hours (a first sync of a million users
/// under a provider's published rate limits fits; a provider that drips bytes does not keep a
/// run busy for ever).
pub const DEFAULT_MAX_RUN: Duration = Duration::from_secs(6 * 3600);

/// The default throttle budget of a request, in multiples of `max_throttle_wait` (the longest
/// single throttle wait, i.e. about one quota window).
pub const THROTTLE_BUDGET_WINDOWS: u32 = 10;

impl ConnectionSettings {
    /// The effective throttle budget of one request: `max_throttle_total`, else
    /// [`THROTTLE_BUDGET_WINDOWS`] times `retry.max_throttle_wait`.
    pub fn throttle_budget(&self) -> Duration {
        self.max_throttle_total.unwrap_or_else(|| {
            self.retry
                .max_throttle_wait
                .saturating_mul(THROTTLE_BUDGET_WINDOWS)
        })
    }
}

/// Retry, backoff and throttling limits. Error retries (5xx, resets, timeouts) are bounded in
/// attempts and in time; throttle retries by the connection's throttle budget
/// ([`ConnectionSettings::throttle_budget`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = never retry). Throttle answers (429, quota
    /// errors) do not count: the throttle budget bounds them.
    pub max_attempts: u32,
    /// Time budget for one request's error retries and backoff (time spent waiting out
    /// throttling is not counted: the throttle budget bounds it).
    pub max_total: Duration,
    /// First backoff step; attempt n waits a random time in `[0, min(max_delay, base * 2^n))`
    /// ("full jitter").
    pub base_delay: Duration,
    /// Largest backoff step.
    pub max_delay: Duration,
    /// Longest single wait the runtime accepts from a provider's throttle headers
    /// (`Retry-After`, Okta `X-Rate-Limit-Reset`, OneLogin `X-RateLimit-Reset`); longer asks are
    /// capped (Okta's concurrency 429s carry misleading resets about two minutes ahead). Also the
    /// cap of the exponential backoff after throttle answers without a wait (Google's quota
    /// errors): about one quota window.
    pub max_throttle_wait: Duration,
    /// Pace requests when remaining-count headers show the budget running low, instead of
    /// running into 429s.
    pub slow_down: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            max_total: Duration::from_secs(300),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_throttle_wait: Duration::from_secs(60),
            slow_down: true,
        }
    }
}
