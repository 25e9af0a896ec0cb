//! Keycloak's "Signed JWT" client authenticator (`private_key_jwt`): the token request carries
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a
//! `client_assertion` signed with the key registered on the client (Credentials tab "Signed JWT",
//! Keys tab: an imported certificate or a JWKS URL). Keycloak identifies the client by the
//! assertion's `sub`, requires `iss` = `sub` = client id, an audience naming the realm (its
//! issuer URL or its token endpoint), an `exp` in the future and a `jti` it has not seen before
//! (single use), and answers every failure with 401 `invalid_client` without saying which check
//! failed (the reason goes to the server log).
//!
//! The emulator generates an ECDSA P-256 (ES256) key for the full-access client at start and
//! writes its private key (PKCS#8 PEM) to the state directory as `keycloak-client-key.pem`. The
//! limited client has no key registered, as a client still on "Client Id and Secret" would not.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::facade::EmuContext;
use crate::jws::{parse_jws, verify_es256};
use crate::EmulatorError;

/// The `client_assertion_type` of a signed JWT.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Per-emulator state: the registered public key and the `jti`s already used.
#[derive(Debug)]
struct ClientKeys {
    client_id: String,
    public_point: Vec<u8>,
    used_jti: Mutex<HashSet<String>>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<ClientKeys>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Arc<ClientKeys>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Path of the full-access client's private key (PEM).
pub fn key_path(ctx: &EmuContext) -> PathBuf {
    ctx.state_dir.join("keycloak-client-key.pem")
}

/// Generate the full-access client's key pair, write the private key, register the public key.
pub fn init(ctx: &EmuContext) -> Result<(), EmulatorError> {
    let kp = rcgen::KeyPair::generate().map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let path = key_path(ctx);
    std::fs::write(&path, kp.serialize_pem())
        .map_err(|e| EmulatorError::io(format!("write {}", path.display()), e))?;
    let keys = ClientKeys {
        client_id: ctx.creds.client_id.clone(),
        public_point: kp.public_key_raw().to_vec(),
        used_jti: Mutex::new(HashSet::new()),
    };
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(ctx.state_dir.clone(), Arc::new(keys));
    Ok(())
}

/// Why an assertion was refused (Keycloak logs it; the client only sees `invalid_client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a compact JWS with JSON header and claims.
    Malformed,
    /// No client with a registered key matches `sub`.
    UnknownClient,
    /// `iss` or `sub` differs from the client id (or from a `client_id` form field).
    WrongIssuer,
    /// The signature does not verify with the registered key.
    BadSignature,
    /// The audience names neither the realm's issuer nor its token endpoint.
    WrongAudience,
    /// `exp` missing or in the past.
    Expired,
    /// `jti` missing or already used.
    Reused,
}

/// Check an assertion presented to `realm_url` (`{base}/realms/{realm}`); returns the client id.
pub fn authenticate(
    ctx: &EmuContext,
    realm_url: &str,
    assertion: &str,
    form_client_id: Option<&str>,
    now: i64,
) -> Result<String, Refusal> {
    let keys = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&ctx.state_dir)
        .cloned()
        .ok_or(Refusal::UnknownClient)?;
    let jws = parse_jws(assertion).ok_or(Refusal::Malformed)?;
    let sub = jws.claims["sub"].as_str().unwrap_or_default();
    if sub != keys.client_id {
        return Err(Refusal::UnknownClient);
    }
    if jws.claims["iss"].as_str() != Some(sub) || form_client_id.is_some_and(|c| c != sub) {
        return Err(Refusal::WrongIssuer);
    }
    if !verify_es256(&keys.public_point, &jws) {
        return Err(Refusal::BadSignature);
    }
    let accepted = [
        realm_url.to_string(),
        format!("{realm_url}/protocol/openid-connect/token"),
    ];
    let aud_ok = match &jws.claims["aud"] {
        serde_json::Value::String(a) => accepted.contains(a),
        serde_json::Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| accepted.iter().any(|x| x == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(Refusal::WrongAudience);
    }
    if jws.claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err(Refusal::Expired);
    }
    let jti = jws.claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or(Refusal::Reused)?;
    if !keys
        .used_jti
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(jti.to_string())
    {
        return Err(Refusal::Reused);
    }
    Ok(sub.to_string())
}
