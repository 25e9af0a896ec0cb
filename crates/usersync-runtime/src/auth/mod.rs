//! Authentication performed by the host from a session's [`AuthPlan`]: static API tokens,
//! OAuth2 client credentials (secret in the form body, HTTP Basic or OneLogin's header; or a
//! signed JWT assertion), Okta DPoP, Google's service-account JWT bearer grant, refresh tokens
//! from `usersync auth login`, and the password grant. Tokens are cached per connection and
//! refreshed early (a fifth of their lifetime, at most five minutes, before expiry).

pub mod credential;
pub(crate) mod jwt;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::Instrument as _;
use usersync_config::Secret;
use usersync_sdk::{AuthPlan, ClientAuth, HttpResponse, Session};

use crate::counters::Counters;
use crate::error::RuntimeError;
use crate::retry::{full_jitter, is_retryable_status};
use crate::settings::RetryPolicy;
use crate::transport::redact_url;
use jwt::{AssertionClaims, BearerGrantClaims, DpopKey, Signer};

pub use credential::StoredCredential;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Replaces every secret value of a connection in a text (bodies quoted in errors).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    pub fn new(secrets: &BTreeMap<String, Secret>) -> Self {
        let mut needles = Vec::new();
        for s in secrets.values() {
            let v = s.expose();
            if v.len() >= 4 {
                needles.push(v.to_string());
            }
            // multi-line secrets (keys): also each substantial line on its own
            for line in v.lines().map(str::trim).filter(|l| l.len() >= 16) {
                needles.push(line.to_string());
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// A token obtained for the connection (for `doctor` output; the value is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `Bearer` or `DPoP`.
    pub token_type: String,
    /// Lifetime the endpoint granted.
    pub expires_in: Duration,
    /// Scopes the endpoint reported, if it did.
    pub scope: Option<String>,
}

#[derive(Clone)]
struct CachedToken {
    access_token: Secret,
    dpop: bool,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Credentials to put on one request.
pub(crate) struct Applied {
    pub headers: Vec<(String, String)>,
    /// The cached token generation used (for 401 invalidation).
    pub generation: Option<u64>,
}

pub(crate) struct TokenHttp {
    pub client: reqwest::Client,
    pub counters: Arc<Counters>,
    pub policy: RetryPolicy,
    pub via_proxy: bool,
    /// Largest token response accepted (the connection's `max_response_bytes`).
    pub max_response_bytes: u64,
}

/// Authentication state of one connection.
pub(crate) struct Authenticator {
    connection: String,
    plan: AuthPlan,
    secrets: BTreeMap<String, Secret>,
    signer: Option<Signer>,
    jwt_issuer: Option<String>,
    dpop: Option<DpopKey>,
    credential_file: Option<PathBuf>,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    generation: AtomicU64,
    nonces: Mutex<HashMap<String, String>>,
    scrubber: Scrubber,
    /// The connector session, asked to explain a refused token request in the provider's terms.
    session: Arc<dyn Session>,
}

/// The fields of a Google service-account JSON key file that matter here.
#[derive(Deserialize)]
struct ServiceAccountKey {
    private_key: String,
    client_email: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

impl Authenticator {
    pub fn new(
        connection: &str,
        plan: AuthPlan,
        secrets: BTreeMap<String, Secret>,
        credential_file: Option<PathBuf>,
        scrubber: Scrubber,
        session: Arc<dyn Session>,
    ) -> Result<Self, RuntimeError> {
        let need = |name: &str| -> Result<&Secret, RuntimeError> {
            secrets.get(name).ok_or_else(|| RuntimeError::MissingSecret {
                option: name.to_string(),
            })
        };
        let mut signer = None;
        let mut jwt_issuer = None;
        let mut dpop = None;
        match &plan {
            AuthPlan::None => {}
            AuthPlan::ApiToken { secret_option, .. }
            | AuthPlan::ClientCredentialsSecret { secret_option, .. }
            | AuthPlan::Password { secret_option, .. } => {
                need(secret_option)?;
            }
            AuthPlan::RefreshToken { secret_option, .. } => {
                need(secret_option)?;
                if credential_file.is_none() {
                    return Err(RuntimeError::Setting {
                        setting: "credential_file".into(),
                        reason: "the authorization-code flow needs a credential file location".into(),
                    });
                }
            }
            AuthPlan::ClientCredentialsAssertion {
                key_option,
                cert_option,
                key_id,
                alg,
                dpop: use_dpop,
                ..
            } => {
                let key = need(key_option)?;
                let cert = match cert_option {
                    Some(c) => Some((c.as_str(), need(c)?.expose())),
                    None => None,
                };
                signer = Some(Signer::new(key_option, key.expose(), *alg, key_id.clone(), cert)?);
                if *use_dpop {
                    dpop = Some(DpopKey::generate()?);
                }
            }
            AuthPlan::JwtBearer {
                key_option, issuer, ..
            } => {
                let key = need(key_option)?.expose();
                if key.trim_start().starts_with('{') {
                    let sa: ServiceAccountKey = serde_json::from_str(key).map_err(|e| RuntimeError::Key {
                        option: key_option.clone(),
                        reason: format!(
                            "not a service-account JSON key file (needs `private_key` and `client_email`): {}",
                            e.to_string().split(" at line").next().unwrap_or_default()
                        ),
                    })?;
                    signer = Some(Signer::new(
                        key_option,
                        &sa.private_key,
                        usersync_sdk::AssertionAlg::RS256,
                        sa.private_key_id,
                        None,
                    )?);
                    jwt_issuer = Some(issuer.clone().unwrap_or(sa.client_email));
                } else {
                    signer = Some(Signer::new(
                        key_option,
                        key,
                        usersync_sdk::AssertionAlg::RS256,
                        None,
                        None,
                    )?);
                    jwt_issuer = Some(issuer.clone().ok_or_else(|| RuntimeError::Key {
                        option: key_option.clone(),
                        reason: "a bare PEM key needs the service account email as issuer; give the JSON key file instead"
                            .into(),
                    })?);
                }
            }
        }
        Ok(Authenticator {
            connection: connection.to_string(),
            plan,
            secrets,
            signer,
            jwt_issuer,
            dpop,
            credential_file,
            cache: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            nonces: Mutex::new(HashMap::new()),
            scrubber,
            session,
        })
    }

    /// The connector's explanation of a refused token request (scrubbed), when it has one.
    fn explain(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Option<String> {
        let response = HttpResponse {
            status,
            headers: headers.to_vec(),
            body: body.to_vec(),
        };
        let explained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.session.token_error(&response)
        }));
        explained
            .ok()
            .flatten()
            .map(|e| self.scrubber.scrub(&e.to_string()))
    }

    fn secret(&self, name: &str) -> Result<&Secret, RuntimeError> {
        self.secrets.get(name).ok_or_else(|| RuntimeError::MissingSecret {
            option: name.to_string(),
        })
    }

    fn nonce_key(url: &str, token_endpoint: bool) -> String {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_default();
        format!("{host}|{}", if token_endpoint { "as" } else { "rs" })
    }

    fn nonce(&self, url: &str, token_endpoint: bool) -> Option<String> {
        self.nonces
            .lock()
            .ok()
            .and_then(|m| m.get(&Self::nonce_key(url, token_endpoint)).cloned())
    }

    fn store_nonce(&self, url: &str, token_endpoint: bool, nonce: &str) {
        if let Ok(mut m) = self.nonces.lock() {
            m.insert(Self::nonce_key(url, token_endpoint), nonce.to_string());
        }
    }

    /// Note a resource response: remembers a `DPoP-Nonce`; returns true when the response is
    /// a DPoP `use_dpop_nonce` challenge that should be retried with the new nonce.
    pub fn on_resource_response(&self, url: &str, status: u16, headers: &[(String, String)]) -> bool {
        if self.dpop.is_none() {
            return false;
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let Some(nonce) = find("DPoP-Nonce") else {
            return false;
        };
        let changed = self.nonce(url, false).as_deref() != Some(nonce);
        self.store_nonce(url, false, nonce);
        let challenge =
            status == 401 && find("WWW-Authenticate").is_some_and(|w| w.contains("use_dpop_nonce"));
        challenge && changed
    }

    /// Credentials for one resource request.
    pub async fn apply(&self, http: &TokenHttp, method: &str, url: &str) -> Result<Applied, RuntimeError> {
        match &self.plan {
            AuthPlan::None => Ok(Applied {
                headers: Vec::new(),
                generation: None,
            }),
            AuthPlan::ApiToken {
                header,
                scheme,
                secret_option,
            } => {
                let token = self.secret(secret_option)?.expose();
                let value = if scheme.is_empty() {
                    token.to_string()
                } else {
                    format!("{scheme} {token}")
                };
                Ok(Applied {
                    headers: vec![(header.clone(), value)],
                    generation: None,
                })
            }
            _ => {
                let token = self.current_token(http).await?;
                let mut headers = Vec::new();
                if token.dpop {
                    let key = self.dpop.as_ref().ok_or_else(|| RuntimeError::Key {
                        option: "dpop".into(),
                        reason:
                            "the token endpoint issued a DPoP-bound token but this connection has no DPoP key"
                                .into(),
                    })?;
                    let proof = key.proof(
                        method,
                        url,
                        self.nonce(url, false).as_deref(),
                        Some(token.access_token.expose()),
                    )?;
                    headers.push((
                        "Authorization".into(),
                        format!("DPoP {}", token.access_token.expose()),
                    ));
                    headers.push(("DPoP".into(), proof));
                } else {
                    headers.push((
                        "Authorization".into(),
                        format!("Bearer {}", token.access_token.expose()),
                    ));
                }
                Ok(Applied {
                    headers,
                    generation: Some(token.generation),
                })
            }
        }
    }

    /// Forget the cached token if it is still the one of `generation` (after a 401).
    pub async fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.generation == generation) {
            *cache = None;
        }
    }

    async fn current_token(&self, http: &TokenHttp) -> Result<CachedToken, RuntimeError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok(t.clone());
            }
            tracing::debug!(connection = %self.connection, "access token due for refresh");
        }
        let (token, _) = self.request_token(http).await?;
        *cache = Some(token.clone());
        Ok(token)
    }

    /// Request a fresh token now (replacing the cache); for `doctor`.
    pub async fn fetch_token(&self, http: &TokenHttp) -> Result<Option<TokenInfo>, RuntimeError> {
        if self.plan.token_url().is_none() {
            return Ok(None);
        }
        let mut cache = self.cache.lock().await;
        let (token, info) = self.request_token(http).await?;
        *cache = Some(token);
        Ok(Some(info))
    }

    async fn request_token(&self, http: &TokenHttp) -> Result<(CachedToken, TokenInfo), RuntimeError> {
        let token_url = self.plan.token_url().unwrap_or_default().to_string();
        let span = tracing::info_span!(
            "token_request",
            connection = %self.connection,
            url = %redact_url(&token_url),
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            let mut attempt = 0u32;
            let mut nonce_retried = false;
            loop {
                attempt += 1;
                let result = self.token_attempt(http, &token_url).await;
                match result {
                    Ok((status, headers, body)) => {
                        tracing::Span::current().record("status", status);
                        tracing::Span::current().record("attempts", attempt);
                        if (200..300).contains(&status) {
                            return self.accept_token(&token_url, &body);
                        }
                        let (error, description) = oauth_error(&body);
                        if status == 400 || status == 401 {
                            if let (Some("use_dpop_nonce"), Some(n)) = (
                                error.as_deref(),
                                headers
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case("DPoP-Nonce"))
                                    .map(|(_, v)| v.clone()),
                            ) {
                                if self.dpop.is_some() && !nonce_retried {
                                    tracing::debug!(
                                        "token endpoint asked for a DPoP nonce; retrying with it"
                                    );
                                    self.store_nonce(&token_url, true, &n);
                                    nonce_retried = true;
                                    attempt -= 1;
                                    continue;
                                }
                            }
                        }
                        let retryable = is_retryable_status(status) || status == 500;
                        if !retryable
                            || attempt >= http.policy.max_attempts.min(4)
                            || started.elapsed() >= http.policy.max_total
                        {
                            return Err(RuntimeError::Token {
                                url: redact_url(&token_url),
                                status,
                                error,
                                description: self.scrubber.scrub(&description),
                                advice: self.explain(status, &headers, &body),
                            });
                        }
                    }
                    Err(e) => {
                        let retry = e.transport_kind().is_some_and(|k| k.is_retryable());
                        if !retry
                            || attempt >= http.policy.max_attempts.min(4)
                            || started.elapsed() >= http.policy.max_total
                        {
                            return Err(e);
                        }
                    }
                }
                Counters::add(&http.counters.retries, 1);
                let wait = full_jitter(attempt, http.policy.base_delay, http.policy.max_delay);
                Counters::add(&http.counters.backoff_ms, wait.as_millis() as u64);
                tokio::time::sleep(wait).await;
            }
        }
        .instrument(span)
        .await
    }

    fn accept_token(&self, token_url: &str, body: &[u8]) -> Result<(CachedToken, TokenInfo), RuntimeError> {
        let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| RuntimeError::Token {
            url: redact_url(token_url),
            status: 200,
            error: None,
            description: format!("the response is not an OAuth2 token response ({e})"),
            advice: None,
        })?;
        if parsed.access_token.is_empty() {
            return Err(RuntimeError::Token {
                url: redact_url(token_url),
                status: 200,
                error: None,
                description: "the response has an empty access_token".into(),
                advice: None,
            });
        }
        let lifetime = parsed
            .expires_in
            .as_ref()
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        let margin = (lifetime / 5).min(Duration::from_secs(300));
        let token_type = parsed.token_type.clone().unwrap_or_else(|| "Bearer".into());
        let dpop = token_type.eq_ignore_ascii_case("DPoP");
        if let (Some(rt), AuthPlan::RefreshToken { .. }) = (parsed.refresh_token.as_deref(), &self.plan) {
            self.rotate_refresh_token(rt)?;
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            connection = %self.connection,
            token_type = %token_type,
            expires_in_s = lifetime.as_secs(),
            "access token obtained"
        );
        Ok((
            CachedToken {
                access_token: Secret::new(parsed.access_token),
                dpop,
                refresh_at: Instant::now() + lifetime - margin,
                generation,
            },
            TokenInfo {
                token_type,
                expires_in: lifetime,
                scope: parsed.scope,
            },
        ))
    }

    fn rotate_refresh_token(&self, new_token: &str) -> Result<(), RuntimeError> {
        let Some(path) = &self.credential_file else {
            return Ok(());
        };
        let mut cred = credential::read(path)?;
        if cred.refresh_token != new_token {
            cred.refresh_token = new_token.to_string();
            cred.obtained_at = jwt::now_epoch();
            credential::write(path, &cred)?;
            tracing::info!(connection = %self.connection, "stored the rotated refresh token");
        }
        Ok(())
    }

    /// One token request; returns status, headers and body.
    async fn token_attempt(
        &self,
        http: &TokenHttp,
        token_url: &str,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), RuntimeError> {
        let mut form: Vec<(&str, String)> = Vec::new();
        let mut headers: Vec<(String, String)> = vec![("Accept".into(), "application/json".into())];
        let mut json_body: Option<serde_json::Value> = None;
        let scope_of = |scopes: &[String]| scopes.join(" ");
        match &self.plan {
            AuthPlan::None | AuthPlan::ApiToken { .. } => {}
            AuthPlan::ClientCredentialsSecret {
                client_id,
                secret_option,
                client_auth,
                scopes,
                ..
            } => {
                let secret = self.secret(secret_option)?.expose();
                match client_auth {
                    ClientAuth::FormBody => {
                        form.push(("grant_type", "client_credentials".into()));
                        form.push(("client_id", client_id.clone()));
                        form.push(("client_secret", secret.to_string()));
                    }
                    ClientAuth::Basic => {
                        form.push(("grant_type", "client_credentials".into()));
                        headers.push(("Authorization".into(), basic_auth(client_id, secret)));
                    }
                    ClientAuth::OneLoginHeader => {
                        headers.push((
                            "Authorization".into(),
                            format!("client_id:{client_id}, client_secret:{secret}"),
                        ));
                        json_body = Some(serde_json::json!({"grant_type": "client_credentials"}));
                    }
                }
                if !scopes.is_empty() && json_body.is_none() {
                    form.push(("scope", scope_of(scopes)));
                }
            }
            AuthPlan::ClientCredentialsAssertion {
                token_url,
                client_id,
                key_option,
                scopes,
                dpop,
                ..
            } => {
                let signer = self.signer.as_ref().ok_or_else(|| RuntimeError::MissingSecret {
                    option: key_option.clone(),
                })?;
                let assertion = signer.sign(key_option, &AssertionClaims::new(client_id, token_url))?;
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_id", client_id.clone()));
                if !scopes.is_empty() {
                    form.push(("scope", scope_of(scopes)));
                }
                form.push(("client_assertion_type", ASSERTION_TYPE.into()));
                form.push(("client_assertion", assertion));
                if *dpop {
                    if let Some(key) = &self.dpop {
                        let proof =
                            key.proof("POST", token_url, self.nonce(token_url, true).as_deref(), None)?;
                        headers.push(("DPoP".into(), proof));
                    }
                }
            }
            AuthPlan::JwtBearer {
                token_url,
                key_option,
                subject,
                scopes,
                ..
            } => {
                let signer = self.signer.as_ref().ok_or_else(|| RuntimeError::MissingSecret {
                    option: key_option.clone(),
                })?;
                let iss = self.jwt_issuer.as_deref().unwrap_or_default();
                let now = jwt::now_epoch();
                let claims = BearerGrantClaims {
                    iss,
                    sub: subject,
                    scope: scope_of(scopes),
                    aud: token_url,
                    iat: now,
                    exp: now + 3600,
                };
                form.push(("grant_type", JWT_BEARER_GRANT.into()));
                form.push(("assertion", signer.sign(key_option, &claims)?));
            }
            AuthPlan::RefreshToken {
                client_id,
                secret_option,
                scopes,
                ..
            } => {
                let path = self
                    .credential_file
                    .as_ref()
                    .ok_or_else(|| RuntimeError::Setting {
                        setting: "credential_file".into(),
                        reason: "not set".into(),
                    })?;
                let cred = credential::read(path)?;
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", cred.refresh_token.clone()));
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", self.secret(secret_option)?.expose().to_string()));
                if !scopes.is_empty() {
                    form.push(("scope", scope_of(scopes)));
                }
            }
            AuthPlan::Password {
                client_id,
                username,
                secret_option,
                ..
            } => {
                form.push(("grant_type", "password".into()));
                form.push(("client_id", client_id.clone()));
                form.push(("username", username.clone()));
                form.push(("password", self.secret(secret_option)?.expose().to_string()));
            }
        }
        crate::transport::check_url_allowed(token_url)?;
        let mut req = http.client.post(token_url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match json_body {
            Some(j) => req.header("Content-Type", "application/json").body(j.to_string()),
            None => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                req.header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        Counters::add(&http.counters.requests, 1);
        Counters::add(&http.counters.token_requests, 1);
        let net_err = |e: reqwest::Error| {
            crate::transport::send_error(&e, "POST", token_url, http.via_proxy, |d| self.scrubber.scrub(d))
        };
        let resp = req.send().await.map_err(|e| {
            http.counters.count_request("token", "error");
            net_err(e)
        })?;
        let status = resp.status().as_u16();
        http.counters.count_request("token", &status.to_string());
        let headers = crate::transport::response_headers(&resp);
        let body = crate::transport::read_body(resp, http.max_response_bytes)
            .await
            .map_err(|e| match e {
                crate::transport::BodyError::Net(e) => net_err(e),
                crate::transport::BodyError::TooLarge { declared } => RuntimeError::ResponseTooLarge {
                    method: "POST".into(),
                    url: redact_url(token_url),
                    limit: http.max_response_bytes,
                    declared,
                },
            })?;
        Counters::add(&http.counters.bytes_received, body.len() as u64);
        Ok((status, headers, body))
    }
}

/// `Authorization: Basic` for an OAuth2 client (RFC 6749 2.3.1: form-encode id and secret first).
fn basic_auth(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// Extract an OAuth2 error (RFC 6749 5.2) or a provider's error envelope from a body.
fn oauth_error(body: &[u8]) -> (Option<String>, String) {
    let snippet = || {
        let s = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_string();
        if body.len() > 300 {
            format!("{s}...")
        } else {
            s
        }
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, snippet());
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
    let error = s("error").or_else(|| s("name")).or_else(|| s("errorCode"));
    let description = s("error_description")
        .or_else(|| s("description"))
        .or_else(|| s("message"))
        .or_else(|| s("errorSummary"))
        .or_else(|| {
            v.get("status")
                .and_then(|st| st.get("message"))
                .and_then(|m| m.as_str())
                .map(String::from)
        })
        .unwrap_or_else(snippet);
    let description = description.lines().next().unwrap_or_default().to_string();
    (error, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes() {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a+b:x%3Ay")
        );
        assert_eq!(basic_auth("a b", "x:y"), expected);
    }

    #[test]
    fn oauth_errors_are_read_from_each_envelope() {
        let (e, d) = oauth_error(
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: bad secret\r\nTrace ID: x"}"#,
        );
        assert_eq!(e.as_deref(), Some("invalid_client"));
        assert_eq!(d, "AADSTS7000215: bad secret");
        let (e, d) =
            oauth_error(br#"{"message":"Unauthorized","statusCode":401,"name":"UnauthorizedError"}"#);
        assert_eq!(
            (e.as_deref(), d.as_str()),
            (Some("UnauthorizedError"), "Unauthorized")
        );
        let (e, d) = oauth_error(b"<html>proxy says no</html>");
        assert_eq!((e, d.as_str()), (None, "<html>proxy says no</html>"));
    }

    #[test]
    fn scrubber_removes_secrets_and_key_lines() {
        let mut m = BTreeMap::new();
        m.insert("s".to_string(), Secret::new("s3cr3t-value"));
        let sc = Scrubber::new(&m);
        assert_eq!(sc.scrub("echo s3cr3t-value here"), "echo [redacted] here");
    }
}
