//! Compact JWS parsing and ES256 verification shared by the facades that authenticate clients
//! with signed JWTs (Okta private_key_jwt and DPoP, Keycloak signed JWT client authentication).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// A parsed, not yet verified JWS (compact form).
pub struct Jws {
    /// The protected header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `header.claims` as sent (what the signature covers).
    pub signing_input: Vec<u8>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Split and decode a compact JWS; `None` when it is not one.
pub fn parse_jws(token: &str) -> Option<Jws> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Jws {
        header: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?,
        claims: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?,
        signing_input: format!("{h}.{c}").into_bytes(),
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

/// Whether `jws` is an ES256 signature by the P-256 public key `public_point` (uncompressed point).
pub fn verify_es256(public_point: &[u8], jws: &Jws) -> bool {
    jws.header["alg"] == "ES256"
        && ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_point)
            .verify(&jws.signing_input, &jws.signature)
            .is_ok()
}
