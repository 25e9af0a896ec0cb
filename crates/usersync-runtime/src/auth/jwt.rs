//! JWT signing: client assertions (RFC 7523), Google service-account grants, DPoP proofs
//! (RFC 9449). Keys are parsed once; errors name the option, never the key.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use usersync_sdk::AssertionAlg;

use crate::error::RuntimeError;

/// Seconds since the Unix epoch.
pub(crate) fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random id for `jti` claims (128 bits, hex).
pub(crate) fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// base64url without padding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_err(option: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Key {
        option: option.to_string(),
        reason: reason.into(),
    }
}

/// A private key ready to sign JWTs, with the header fields that identify it.
pub(crate) struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    x5t: Option<String>,
    x5t_s256: Option<String>,
}

impl Signer {
    /// Parse a PEM private key for `alg`; `cert_pem` adds `x5t` (RS256) or `x5t#S256` (PS256).
    pub fn new(
        option: &str,
        key_pem: &str,
        alg: AssertionAlg,
        kid: Option<String>,
        cert: Option<(&str, &str)>,
    ) -> Result<Signer, RuntimeError> {
        if !key_pem.contains("-----BEGIN") {
            return Err(key_err(
                option,
                "not a PEM private key (expected a `-----BEGIN ... PRIVATE KEY-----` block)",
            ));
        }
        let (alg, key) = match alg {
            AssertionAlg::RS256 | AssertionAlg::PS256 => {
                let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
                    if EncodingKey::from_ec_pem(key_pem.as_bytes()).is_ok() {
                        key_err(
                            option,
                            format!(
                                "this is an EC (P-256) key but the connection signs with {alg:?}, which needs \
                                 an RSA key; choose ES256 in the connector's signing-algorithm option, or use \
                                 an RSA key"
                            ),
                        )
                    } else {
                        key_err(option, format!("not a usable RSA private key in PEM form ({e})"))
                    }
                })?;
                let a = if alg == AssertionAlg::RS256 {
                    Algorithm::RS256
                } else {
                    Algorithm::PS256
                };
                (a, key)
            }
            AssertionAlg::ES256 => {
                let key = EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(|e| {
                    if EncodingKey::from_rsa_pem(key_pem.as_bytes()).is_ok() {
                        key_err(
                            option,
                            "this is an RSA key but the connection signs with ES256; choose RS256 in the \
                             connector's signing-algorithm option, or use a P-256 key",
                        )
                    } else {
                        key_err(
                            option,
                            format!("not a usable P-256 private key in PKCS#8 PEM form ({e})"),
                        )
                    }
                })?;
                (Algorithm::ES256, key)
            }
        };
        let mut signer = Signer {
            alg,
            key,
            kid,
            x5t: None,
            x5t_s256: None,
        };
        if let Some((cert_option, cert_pem)) = cert {
            let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
                .map_err(|e| key_err(cert_option, format!("not a PEM certificate ({e:?})")))?;
            if alg == Algorithm::RS256 {
                let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
                signer.x5t = Some(b64url(sha1.as_ref()));
            } else {
                let sha256 = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
                signer.x5t_s256 = Some(b64url(sha256.as_ref()));
            }
        }
        Ok(signer)
    }

    /// Sign claims into a compact JWT.
    pub fn sign<T: Serialize>(&self, option: &str, claims: &T) -> Result<String, RuntimeError> {
        let mut header = Header::new(self.alg);
        header.typ = Some("JWT".into());
        header.kid = self.kid.clone();
        header.x5t = self.x5t.clone();
        header.x5t_s256 = self.x5t_s256.clone();
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| key_err(option, format!("signing failed ({e})")))
    }
}

/// Claims of an OAuth2 client assertion (`iss` = `sub` = client id, `aud` = token endpoint).
#[derive(Debug, Serialize)]
pub(crate) struct AssertionClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

impl<'a> AssertionClaims<'a> {
    /// Claims valid for five minutes from now.
    pub fn new(client_id: &'a str, aud: &'a str) -> Self {
        let now = now_epoch();
        AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud,
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: random_id(),
        }
    }
}

/// Claims of a Google service-account JWT bearer grant.
#[derive(Debug, Serialize)]
pub(crate) struct BearerGrantClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub scope: String,
    pub aud: &'a str,
    pub iat: u64,
    pub exp: u64,
}

/// An ephemeral P-256 key for DPoP proofs (generated per connection, never stored).
pub(crate) struct DpopKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    jwk: serde_json::Value,
}

impl DpopKey {
    /// Generate a fresh key.
    pub fn generate() -> Result<DpopKey, RuntimeError> {
        let rng = SystemRandom::new();
        let err = |what: &str| key_err("dpop", format!("cannot {what} a DPoP key"));
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| err("generate"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| err("load"))?;
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return Err(err("encode"));
        }
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(&public[1..33]),
            "y": b64url(&public[33..65]),
        });
        Ok(DpopKey { pair, rng, jwk })
    }

    /// A DPoP proof for one request. `htu` is the URL without query and fragment; `ath` is
    /// the access token's SHA-256 (resource requests only).
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, RuntimeError> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = serde_json::json!({
            "htm": method,
            "htu": htu,
            "iat": now_epoch(),
            "jti": random_id(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        if let Some(t) = access_token {
            claims["ath"] = b64url(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()).as_ref()).into();
        }
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| key_err("dpop", "signing a DPoP proof failed"))?;
        Ok(format!("{signing_input}.{}", b64url(sig.as_ref())))
    }
}
