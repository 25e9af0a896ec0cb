//! Okta OAuth for service apps: private_key_jwt client assertion, DPoP with the nonce dance,
//! scopes, DPoP-bound resource calls and token expiry.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use usersync_emulator::{EmulatorOptions, GenConfig, RunningEmulator};

fn key_from_pem(path: &std::path::Path) -> EcdsaKeyPair {
    let pem = std::fs::read_to_string(path).expect("key file");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).expect("base64");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new()).expect("pkcs8")
}

fn sign(key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{c}");
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

struct Dpop(EcdsaKeyPair);

impl Dpop {
    fn new() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("gen");
        Dpop(
            EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
                &SystemRandom::new(),
            )
            .expect("key"),
        )
    }
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, token: Option<&str>) -> String {
        let pubkey = self.0.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&pubkey[1..33]), "y": URL_SAFE_NO_PAD.encode(&pubkey[33..65])});
        let mut claims = json!({"htm": htm, "htu": htu, "iat": now(), "jti": format!("j{}", rand_jti())});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
        }
        sign(
            &self.0,
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}),
            &claims,
        )
    }
}

fn rand_jti() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn start(ttl: i64) -> RunningEmulator {
    let mut o = EmulatorOptions::new("okta");
    o.gen = GenConfig {
        users: 30,
        groups: 4,
        ..GenConfig::default()
    };
    o.token_ttl_secs = ttl;
    usersync_emulator::start(o).await.expect("start")
}

fn assertion(emu: &RunningEmulator, client_id: &str, key_file: &str) -> String {
    let key = key_from_pem(&emu.ctx.state_dir.join(key_file));
    let aud = format!("{}/oauth2/v1/token", emu.http_url);
    sign(
        &key,
        &json!({"alg": "ES256", "typ": "JWT"}),
        &json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now() + 300, "iat": now(), "jti": "a1"}),
    )
}

async fn token_request(
    emu: &RunningEmulator,
    scope: &str,
    assertion: &str,
    dpop: Option<String>,
) -> reqwest::Response {
    let mut req = common::client()
        .post(format!("{}/oauth2/v1/token", emu.http_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ]);
    if let Some(p) = dpop {
        req = req.header("DPoP", p);
    }
    req.send().await.expect("token request")
}

/// The full dance; returns (access token, DPoP key).
async fn get_token(emu: &RunningEmulator, scope: &str) -> (String, Dpop) {
    let dpop = Dpop::new();
    let url = format!("{}/oauth2/v1/token", emu.http_url);
    let a = assertion(emu, &emu.credentials().client_id, "okta-client-key.pem");
    let r = token_request(emu, scope, &a, Some(dpop.proof("POST", &url, None, None))).await;
    assert_eq!(r.status(), 400);
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .expect("DPoP-Nonce")
        .to_string();
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "use_dpop_nonce");
    let r = token_request(emu, scope, &a, Some(dpop.proof("POST", &url, Some(&nonce), None))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["token_type"], "DPoP");
    assert_eq!(v["scope"], scope);
    (v["access_token"].as_str().expect("token").to_string(), dpop)
}

async fn call(emu: &RunningEmulator, path: &str, token: &str, dpop: &Dpop) -> reqwest::Response {
    let url = format!("{}{path}", emu.http_url);
    let htu = url.split('?').next().unwrap_or(&url).to_string();
    common::client()
        .get(&url)
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", dpop.proof("GET", &htu, None, Some(token)))
        .send()
        .await
        .expect("call")
}

#[tokio::test]
async fn nonce_dance_then_dpop_bound_calls() {
    let emu = start(3600).await;
    let (token, dpop) = get_token(&emu, "okta.users.read okta.groups.read").await;
    assert_eq!(
        call(&emu, "/api/v1/users?limit=5", &token, &dpop).await.status(),
        200
    );
    assert_eq!(call(&emu, "/api/v1/groups", &token, &dpop).await.status(), 200);
    // Without the proof, or with another key's proof, or as a Bearer token: refused.
    let url = format!("{}/api/v1/users", emu.http_url);
    let r = common::client()
        .get(&url)
        .header("Authorization", format!("DPoP {token}"))
        .send()
        .await
        .expect("x");
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().is_ok_and(|s| s.contains("invalid_dpop_proof"))));
    let other = Dpop::new();
    assert_eq!(call(&emu, "/api/v1/users", &token, &other).await.status(), 401);
    let r = common::client()
        .get(&url)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("x");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn token_endpoint_errors() {
    let emu = start(3600).await;
    let a = assertion(&emu, &emu.credentials().client_id, "okta-client-key.pem");
    let r = token_request(&emu, "okta.users.read", &a, None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_dpop_proof"
    );
    // Assertion signed with the wrong key.
    let wrong = assertion(&emu, &emu.credentials().client_id, "okta-limited-client-key.pem");
    let url = format!("{}/oauth2/v1/token", emu.http_url);
    let r = token_request(
        &emu,
        "okta.users.read",
        &wrong,
        Some(Dpop::new().proof("POST", &url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_client");
    // The limited client may not ask for groups.
    let limited = assertion(
        &emu,
        &emu.credentials().limited_client_id,
        "okta-limited-client-key.pem",
    );
    let r = token_request(
        &emu,
        "okta.users.read okta.groups.read",
        &limited,
        Some(Dpop::new().proof("POST", &url, None, None)),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_scope");
}

#[tokio::test]
async fn missing_scope_is_403_e0000006() {
    let emu = start(3600).await;
    let (token, dpop) = get_token(&emu, "okta.users.read").await;
    assert_eq!(call(&emu, "/api/v1/users", &token, &dpop).await.status(), 200);
    let r = call(&emu, "/api/v1/groups", &token, &dpop).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.expect("json")["errorCode"], "E0000006");
}

#[tokio::test]
async fn tokens_expire() {
    let emu = start(1).await;
    let (token, dpop) = get_token(&emu, "okta.users.read").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = call(&emu, "/api/v1/users", &token, &dpop).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.expect("json")["errorCode"], "E0000011");
}
