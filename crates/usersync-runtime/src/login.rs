//! `usersync auth login`: the OAuth2 authorization-code flow (with PKCE) for connections whose
//! auth plan is [`AuthPlan::RefreshToken`]. A one-shot listener on a loopback address receives
//! the redirect; the code is exchanged for tokens and the refresh token is stored in the
//! connection's credential file with mode 0600.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use usersync_config::Secret;
use usersync_sdk::AuthPlan;

use crate::auth::credential::{self, StoredCredential};
use crate::auth::jwt::{b64url, now_epoch, random_id};
use crate::error::RuntimeError;
use crate::settings::ConnectionSettings;
use crate::transport::{self, redact_url};

/// Inputs of an interactive login.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    /// Connection name (stored in the credential file).
    pub connection: &'a str,
    /// The session's auth plan; must be [`AuthPlan::RefreshToken`].
    pub plan: &'a AuthPlan,
    /// The OAuth2 client secret.
    pub client_secret: &'a Secret,
    /// Where to store the refresh token.
    pub credential_file: &'a Path,
    /// HTTP settings (proxy, CA bundle, timeouts) for the code exchange.
    pub settings: &'a ConnectionSettings,
    /// Address of the redirect listener; port 0 picks a free port. Must be loopback.
    pub listen: SocketAddr,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
}

const DONE_PAGE: &str = "<!doctype html><title>usersync</title><p>usersync received the authorization. You can close this window.</p>";

/// Run the flow: bind the listener, call `show_url` with the authorization URL (print it, open
/// a browser), wait for the redirect, exchange the code, store the refresh token.
pub async fn login(
    req: LoginRequest<'_>,
    show_url: impl FnOnce(&str),
) -> Result<StoredCredential, RuntimeError> {
    let AuthPlan::RefreshToken {
        authorize_url,
        token_url,
        client_id,
        scopes,
        ..
    } = req.plan
    else {
        return Err(RuntimeError::Login(
            "this connection does not use the authorization-code flow; nothing to log in to".into(),
        ));
    };
    if !req.listen.ip().is_loopback() {
        return Err(RuntimeError::Login(format!(
            "the redirect listener must be on a loopback address, not {}",
            req.listen
        )));
    }
    transport::check_url_allowed(token_url)?;
    let listener = TcpListener::bind(req.listen)
        .await
        .map_err(|e| RuntimeError::Login(format!("cannot listen on {}: {e}", req.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| RuntimeError::Login(format!("listener address: {e}")))?;
    let redirect_uri = format!("http://{local}/callback");
    let state = random_id();
    let verifier = b64url(random_id().repeat(2).as_bytes());
    let challenge = b64url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let mut url = url::Url::parse(authorize_url).map_err(|e| RuntimeError::UrlNotAllowed {
        url: redact_url(authorize_url),
        reason: e.to_string(),
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent");
    show_url(url.as_str());
    let code = tokio::time::timeout(req.timeout, wait_for_code(&listener, &state))
        .await
        .map_err(|_| {
            RuntimeError::Login(format!(
                "no redirect arrived within {} s; run the command again and finish the sign-in in the browser",
                req.timeout.as_secs()
            ))
        })??;
    tracing::info!(
        connection = req.connection,
        "authorization code received; exchanging it"
    );
    let http = transport::http_client(req.settings)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("client_id", client_id)
        .append_pair("client_secret", req.client_secret.expose())
        .append_pair("code_verifier", &verifier)
        .finish();
    let resp = http
        .post(token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let (kind, detail) = transport::classify(&e, false);
            RuntimeError::Transport {
                method: "POST".into(),
                url: redact_url(token_url),
                kind,
                detail,
            }
        })?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if !(200..300).contains(&status) {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        return Err(RuntimeError::Token {
            url: redact_url(token_url),
            status,
            error: s("error"),
            description: s("error_description").unwrap_or_default(),
            advice: None,
        });
    }
    let refresh = v
        .get("refresh_token")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            RuntimeError::Login(
                "the token endpoint returned no refresh_token (the consent must grant offline access; \
                 for Google the request asks access_type=offline and prompt=consent)"
                    .into(),
            )
        })?;
    let cred = StoredCredential {
        connection: req.connection.to_string(),
        token_url: token_url.clone(),
        client_id: client_id.clone(),
        scopes: scopes.clone(),
        refresh_token: refresh.to_string(),
        obtained_at: now_epoch(),
    };
    credential::write(req.credential_file, &cred)?;
    tracing::info!(connection = req.connection, file = %req.credential_file.display(), "refresh token stored");
    Ok(cred)
}

async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, RuntimeError> {
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| RuntimeError::Login(format!("redirect listener failed: {e}")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let Ok(u) = url::Url::parse(&format!("http://localhost{target}")) else {
            continue;
        };
        if u.path() != "/callback" {
            let _ = sock
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            continue;
        }
        let get = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        let (status, page, outcome) = if let Some(err) = get("error") {
            let desc = get("error_description").unwrap_or_default();
            (
                "400 Bad Request",
                format!("<p>Authorization failed: {}</p>", html_escape(&err)),
                Err(RuntimeError::Login(format!(
                    "the authorization server answered `{err}`: {desc}"
                ))),
            )
        } else if get("state").as_deref() != Some(state) {
            (
                "400 Bad Request",
                "<p>State mismatch: this redirect does not belong to this login.</p>".to_string(),
                Err(RuntimeError::Login(
                    "the redirect's state does not match (a stale or forged redirect); run the command again"
                        .into(),
                )),
            )
        } else if let Some(code) = get("code") {
            ("200 OK", DONE_PAGE.to_string(), Ok(code))
        } else {
            (
                "400 Bad Request",
                "<p>No authorization code in the redirect.</p>".to_string(),
                Err(RuntimeError::Login("the redirect carried no code".into())),
            )
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
        return outcome;
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
