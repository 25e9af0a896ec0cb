//! Okta OAuth 2.0 for service apps: `POST /oauth2/v1/token` with `client_credentials`,
//! `private_key_jwt` client authentication and DPoP (RFC 9449) with the nonce dance:
//! the first token request with a DPoP proof lacking the current nonce gets
//! `400 {"error":"use_dpop_nonce"}` and a `DPoP-Nonce` header; the retry with the nonce gets
//! `{"token_type":"DPoP","expires_in":3600,"access_token":...,"scope":...}`.
//! Resource calls then send `Authorization: DPoP <token>` and a fresh `DPoP` proof (`htm`, `htu`,
//! `ath`) signed by the same key.
//!
//! The emulator generates each client's key pair (ECDSA P-256, ES256) and writes the private key
//! (PKCS#8 PEM) to the state directory: `okta-client-key.pem` for `client_id` (scopes
//! `okta.users.read okta.groups.read`), `okta-limited-client-key.pem` for `limited_client_id`
//! (`okta.users.read` only). DPoP proofs may use ES256 or RS256 keys.

#![allow(clippy::result_large_err)]

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::facade::{json_response, BaseUrl, EmuContext};
use crate::jws::{parse_jws, verify_es256, Jws};
use crate::timefmt::now_unix;
use crate::EmulatorError;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Per-emulator OAuth state (public keys of the generated clients, the current DPoP nonce).
#[derive(Debug)]
struct OAuthState {
    client_pub: Vec<u8>,
    limited_pub: Vec<u8>,
    nonce: String,
}

/// Keyed by state dir, so several emulators in one process (tests, demo) keep their own keys.
fn registry() -> &'static std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<OAuthState>>> {
    static R: OnceLock<std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<OAuthState>>>> =
        OnceLock::new();
    R.get_or_init(Default::default)
}

fn state(ctx: &EmuContext) -> Option<Arc<OAuthState>> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&ctx.state_dir)
        .cloned()
}

/// Path of the full client's private key (PEM).
pub fn key_path(ctx: &EmuContext) -> std::path::PathBuf {
    ctx.state_dir.join("okta-client-key.pem")
}

/// Path of the limited client's private key (PEM).
pub fn limited_key_path(ctx: &EmuContext) -> std::path::PathBuf {
    ctx.state_dir.join("okta-limited-client-key.pem")
}

/// Generate the client keys, write the private keys, register the public keys.
pub fn init(ctx: &EmuContext) -> Result<(), EmulatorError> {
    let gen = |path: std::path::PathBuf| -> Result<Vec<u8>, EmulatorError> {
        let kp = rcgen::KeyPair::generate().map_err(|e| EmulatorError::Tls(e.to_string()))?;
        std::fs::write(&path, kp.serialize_pem())
            .map_err(|e| EmulatorError::io(format!("write {}", path.display()), e))?;
        Ok(kp.public_key_raw().to_vec())
    };
    let client_pub = gen(key_path(ctx))?;
    let limited_pub = gen(limited_key_path(ctx))?;
    let mut n = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut n);
    let st = OAuthState {
        client_pub,
        limited_pub,
        nonce: URL_SAFE_NO_PAD.encode(n),
    };
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(ctx.state_dir.clone(), Arc::new(st));
    Ok(())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(v.as_str()?).ok()
}

/// Verify a JWS with the public JWK in its own header (DPoP); returns the JWK thumbprint (RFC 7638).
fn verify_with_embedded_jwk(jws: &Jws) -> Option<String> {
    let jwk = &jws.header["jwk"];
    let (ok, canonical) = match (jwk["kty"].as_str()?, jws.header["alg"].as_str()?) {
        ("EC", "ES256") if jwk["crv"] == "P-256" => {
            let (x, y) = (b64(&jwk["x"])?, b64(&jwk["y"])?);
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let ok = verify_es256(&point, jws);
            let canon = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str()?,
                jwk["y"].as_str()?
            );
            (ok, canon)
        }
        ("RSA", "RS256") => {
            let (n, e) = (b64(&jwk["n"])?, b64(&jwk["e"])?);
            let ok = ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    &jws.signing_input,
                    &jws.signature,
                )
                .is_ok();
            let canon = format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk["e"].as_str()?,
                jwk["n"].as_str()?
            );
            (ok, canon)
        }
        _ => return None,
    };
    ok.then(|| URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The token request form.
#[derive(Debug, serde::Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth2/v1/token`.
#[tracing::instrument(name = "okta.token", skip_all)]
pub async fn token(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let Some(st) = state(&ctx) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "OAuth state missing",
        );
    };
    let now = now_unix();
    let token_url = format!("{base}/oauth2/v1/token");
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].",
        );
    }
    if form.client_secret.is_some() || form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        );
    }
    let Some(jws) = form.client_assertion.as_deref().and_then(parse_jws) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "The client_assertion token is malformed.",
        );
    };
    let iss = jws.claims["iss"].as_str().unwrap_or_default().to_string();
    let (public, granted): (&[u8], &[&str]) = if iss == ctx.creds.client_id {
        (&st.client_pub, &["okta.users.read", "okta.groups.read"])
    } else if iss == ctx.creds.limited_client_id {
        (&st.limited_pub, &["okta.users.read"])
    } else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion token has an invalid issuer or subject.",
        );
    };
    if form.client_id.as_deref().is_some_and(|c| c != iss) || jws.claims["sub"].as_str() != Some(iss.as_str())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion token has an invalid issuer or subject.",
        );
    }
    if !verify_es256(public, &jws) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client_assertion signature is invalid.",
        );
    }
    if jws.claims["aud"].as_str() != Some(token_url.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("The audience claim for client_assertion must be the endpoint invoked for the request ({token_url})."),
        );
    }
    match jws.claims["exp"].as_i64() {
        Some(exp) if exp > now && exp <= now + 3600 + 60 => {}
        Some(exp) if exp <= now => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client_assertion token is expired.",
            );
        }
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client_assertion token has an expiration too far in the future.",
            );
        }
    }
    if form.client_id.is_some() && form.client_id.as_deref() != Some(iss.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id does not match the assertion.",
        );
    }
    // Scopes.
    let requested: Vec<String> = form
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if requested.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.");
    }
    let refused: Vec<&String> = requested
        .iter()
        .filter(|s| !granted.contains(&s.as_str()))
        .collect();
    if !refused.is_empty() {
        let list: Vec<&str> = refused.iter().map(|s| s.as_str()).collect();
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("The following scopes are not allowed: [{}]", list.join(", ")),
        );
    }
    // DPoP.
    let Some(proof) = headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_jws)
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "The DPoP proof JWT header is missing.",
        );
    };
    let jkt = match check_proof(&proof, "POST", &token_url, now, None) {
        Ok(j) => j,
        Err(msg) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", msg),
    };
    if proof.claims["nonce"].as_str() != Some(st.nonce.as_str()) {
        let mut r = oauth_error(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "Authorization server requires nonce in DPoP proof.",
        );
        if let Ok(v) = HeaderValue::from_str(&st.nonce) {
            r.headers_mut().insert("dpop-nonce", v);
        }
        return r;
    }
    let access = ctx.tokens.issue(&iss, requested.clone(), Some(jkt), now);
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "DPoP",
            "expires_in": ctx.tokens.ttl_secs(),
            "access_token": access,
            "scope": requested.join(" "),
        }),
    )
}

/// Verify a DPoP proof: `typ`, signature by the embedded JWK, `htm`, `htu`, `iat` freshness and, for
/// resource calls, `ath`. Returns the JWK thumbprint.
fn check_proof(
    proof: &Jws,
    htm: &str,
    htu: &str,
    now: i64,
    ath: Option<&str>,
) -> Result<String, &'static str> {
    if proof.header["typ"] != "dpop+jwt" {
        return Err("The DPoP proof JWT 'typ' header must be 'dpop+jwt'.");
    }
    let jkt = verify_with_embedded_jwk(proof).ok_or("The DPoP proof JWT signature is invalid.")?;
    if proof.claims["htm"].as_str() != Some(htm) {
        return Err("The DPoP proof 'htm' claim does not match the request method.");
    }
    if proof.claims["htu"].as_str() != Some(htu) {
        return Err("The DPoP proof 'htu' claim does not match the request URL.");
    }
    match proof.claims["iat"].as_i64() {
        Some(iat) if (iat - now).abs() <= 300 => {}
        _ => return Err("The DPoP proof 'iat' claim is missing or too far from the current time."),
    }
    if proof.claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err("The DPoP proof 'jti' claim is missing.");
    }
    if let Some(ath) = ath {
        if proof.claims["ath"].as_str() != Some(ath) {
            return Err("The DPoP proof 'ath' claim does not match the access token.");
        }
    }
    Ok(jkt)
}

/// The error a resource call with a bad DPoP proof gets.
pub fn resource_dpop_error(msg: &str) -> Response {
    let mut r = super::okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
        vec![msg.to_string()],
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "DPoP algs=\"RS256 ES256\", error=\"invalid_dpop_proof\", error_description=\"{msg}\""
    )) {
        r.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Check the `DPoP` proof of a resource call made with a DPoP-bound token; `htu` is the request URL
/// without query.
pub fn check_resource_proof(
    method: &Method,
    htu: &str,
    h: &HeaderMap,
    token: &str,
    jkt: &str,
) -> Result<(), Response> {
    let Some(proof) = h.get("dpop").and_then(|v| v.to_str().ok()).and_then(parse_jws) else {
        return Err(resource_dpop_error("The DPoP proof JWT header is missing."));
    };
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    let got =
        check_proof(&proof, method.as_str(), htu, now_unix(), Some(&ath)).map_err(resource_dpop_error)?;
    if got != jkt {
        return Err(resource_dpop_error(
            "The DPoP proof key does not match the access token binding.",
        ));
    }
    Ok(())
}
