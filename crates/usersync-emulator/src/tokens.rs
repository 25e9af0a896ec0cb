//! Access-token issuing and checking, shared by facades with OAuth token endpoints.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Thumbprint of the DPoP key the token is bound to, if any.
    pub dpop_jkt: Option<String>,
}

/// The result of checking a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid; here is what it grants.
    Valid(TokenInfo),
    /// Was valid, has expired.
    Expired,
    /// Never issued here.
    Unknown,
}

/// Issues opaque random tokens with a configurable lifetime.
#[derive(Debug)]
pub struct TokenIssuer {
    ttl_secs: i64,
    tokens: Mutex<HashMap<String, TokenInfo>>,
}

impl TokenIssuer {
    /// A new issuer whose tokens live `ttl_secs` seconds.
    pub fn new(ttl_secs: i64) -> Self {
        Self {
            ttl_secs,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Token lifetime, seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issue a token at time `now` (Unix seconds).
    pub fn issue(&self, client_id: &str, scopes: Vec<String>, dpop_jkt: Option<String>, now: i64) -> String {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let info = TokenInfo {
            client_id: client_id.to_string(),
            scopes,
            expires_at: now + self.ttl_secs,
            dpop_jkt,
        };
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), info);
        token
    }

    /// Check a presented token at time `now`.
    pub fn check(&self, token: &str, now: i64) -> TokenCheck {
        match self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(token) {
            None => TokenCheck::Unknown,
            Some(info) if info.expires_at <= now => TokenCheck::Expired,
            Some(info) => TokenCheck::Valid(info.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire() {
        let t = TokenIssuer::new(10);
        let tok = t.issue("c", vec!["s".into()], None, 100);
        assert!(matches!(t.check(&tok, 105), TokenCheck::Valid(ref i) if i.scopes == ["s"]));
        assert_eq!(t.check(&tok, 110), TokenCheck::Expired);
        assert_eq!(t.check("nope", 100), TokenCheck::Unknown);
    }
}
