//! Runtime errors. Messages name what failed and where, and never contain a secret value:
//! URLs are shown without their query string and provider bodies are scrubbed of every secret
//! the connection holds.

use std::time::Duration;

use usersync_sdk::ConnectorError;

/// What went wrong at the network level, for diagnosis (`doctor` and error hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the TCP connection (refused or unreachable).
    ConnectRefused,
    /// The connection was reset or closed mid-exchange (often a firewall or proxy).
    Reset,
    /// The body ended before the length the response announced (Content-Length or chunking):
    /// a proxy or the provider cut the answer short.
    Truncated,
    /// The TLS handshake failed (untrusted or invalid certificate, protocol mismatch).
    Tls,
    /// No answer in time.
    Timeout,
    /// The proxy refused or failed the connection.
    Proxy,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// True for failures worth retrying (the next attempt may succeed).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            TransportKind::Reset | TransportKind::Truncated | TransportKind::Timeout | TransportKind::Other
        )
    }
}

/// An error from the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting is invalid (proxy URL, CA bundle, credential file location...).
    #[error("invalid setting `{setting}`: {reason}")]
    Setting {
        /// The setting's name.
        setting: String,
        /// Why.
        reason: String,
    },
    /// A URL is not allowed: plain `http://` to a non-loopback host, or not a URL at all.
    #[error("refusing to contact `{url}`: {reason}")]
    UrlNotAllowed {
        /// The URL, without its query string.
        url: String,
        /// Why.
        reason: String,
    },
    /// A secret option the auth flow needs has no value.
    #[error("secret `{option}` is not set for this connection (give it as {{ env = \"...\" }} or {{ file = \"...\" }})")]
    MissingSecret {
        /// The option's name.
        option: String,
    },
    /// A key, certificate or key file could not be used (never includes the key).
    #[error("cannot use `{option}`: {reason}")]
    Key {
        /// The option holding it.
        option: String,
        /// Why.
        reason: String,
    },
    /// The connector rejected the options or a query, or classified a response as an error.
    #[error("{context}: {source}")]
    Connector {
        /// Which connection and query.
        context: String,
        /// The connector's error.
        #[source]
        source: ConnectorError,
    },
    /// The request never got an HTTP response.
    #[error("{method} {url} failed ({kind:?}): {detail}")]
    Transport {
        /// Method.
        method: String,
        /// URL without query string.
        url: String,
        /// Classification.
        kind: TransportKind,
        /// What the network stack said (scrubbed).
        detail: String,
    },
    /// The token endpoint refused to issue a token.
    #[error("token request to {url} failed: HTTP {status}{}{}{}", .error.as_deref().map(|e| format!(" {e}")).unwrap_or_default(), if .description.is_empty() { String::new() } else { format!(": {}", .description) }, .advice.as_deref().map(|a| format!(" (the connector explains: {a})")).unwrap_or_default())]
    Token {
        /// Token endpoint (no query string).
        url: String,
        /// HTTP status.
        status: u16,
        /// OAuth2 `error` code, if any (`invalid_client`, `unauthorized_client`...).
        error: Option<String>,
        /// `error_description` or a body snippet (scrubbed).
        description: String,
        /// The connector's reading of the refusal in the provider's own terms
        /// ([`usersync_sdk::Session::token_error`], e.g. Entra's AADSTS codes), scrubbed.
        advice: Option<String>,
    },
    /// Retries or the time budget ran out.
    #[error("{method} {url}: gave up after {attempts} attempts in {:.1}s: {last}", .elapsed.as_secs_f64())]
    RetriesExhausted {
        /// Method.
        method: String,
        /// URL without query string.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// The provider answered a request with a redirect to another origin (scheme, host, port).
    /// It is never followed, like a next link to another origin: the other origin's answer would
    /// be taken as the provider's page. Not retried.
    #[error(
        "{method} {url} was redirected (HTTP {status}) to `{location}`, another origin: redirects are only \
         followed within the provider's own origin, so this answer was not used (a proxy, gateway or \
         misconfigured base URL sends requests elsewhere)"
    )]
    RedirectRefused {
        /// Method.
        method: String,
        /// The requested URL, without its query string.
        url: String,
        /// The redirect's target, without its query string.
        location: String,
        /// The redirect status (301, 302, 303, 307, 308).
        status: u16,
    },
    /// A response body was larger than the connection's `max_response_mb`; reading stopped at
    /// the limit (nothing past it was buffered). Not retried.
    #[error(
        "{method} {url}: the response is larger than {limit} bytes (`max_response_mb`), reading stopped at \
         the limit{}", .declared.map(|d| format!(" (Content-Length {d})")).unwrap_or_default()
    )]
    ResponseTooLarge {
        /// Method.
        method: String,
        /// URL without its query string.
        url: String,
        /// The limit, bytes.
        limit: u64,
        /// The size the provider declared, if it did.
        declared: Option<u64>,
    },
    /// The connection's time limit for one run (`max_run_secs`) ran out.
    #[error(
        "connection `{connection}`: the run's time limit of {}s (`max_run_secs`) ran out{}; the provider \
         answers too slowly (a dripping proxy or an overloaded provider) or the limit is too low for this \
         organisation", .limit.as_secs(), .during.as_deref().map(|d| format!(" during {d}")).unwrap_or_default()
    )]
    RunDeadline {
        /// The connection.
        connection: String,
        /// The limit.
        limit: Duration,
        /// What was running (an operation name).
        during: Option<String>,
    },
    /// An earlier request of this connection proved its credential is refused (HTTP 401 after a
    /// token refresh, or a token endpoint refusal): no further request is sent in this run.
    #[error("connection `{connection}` stopped sending requests: its credential was refused earlier in this run ({reason})")]
    ConnectionHalted {
        /// The connection.
        connection: String,
        /// The first refusal, short.
        reason: String,
    },
    /// The credential file of the authorization-code flow is missing or unusable.
    #[error("credential file `{path}`: {reason}")]
    Credential {
        /// The file.
        path: String,
        /// Why (e.g. "run `usersync auth login <connection>` first").
        reason: String,
    },
    /// The interactive login failed.
    #[error("login failed: {0}")]
    Login(String),
}

impl RuntimeError {
    /// The connector error inside, if this is one.
    pub fn connector_error(&self) -> Option<&ConnectorError> {
        match self {
            RuntimeError::Connector { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The transport failure kind, if this is (or ended as) a network failure.
    pub fn transport_kind(&self) -> Option<TransportKind> {
        match self {
            RuntimeError::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// HTTP status of a failure that got a response, where known.
    pub fn status(&self) -> Option<u16> {
        match self {
            RuntimeError::Token { status, .. } => Some(*status),
            RuntimeError::Connector { source, .. } => match source {
                ConnectorError::Unauthorized { .. } => Some(401),
                ConnectorError::Forbidden { .. } => Some(403),
                ConnectorError::NotFound { .. } => Some(404),
                ConnectorError::RateLimited { .. } => Some(429),
                _ => None,
            },
            _ => None,
        }
    }
}
