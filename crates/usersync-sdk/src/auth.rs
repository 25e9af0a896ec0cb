//! What the host must do to authenticate a session's requests. A session resolves its
//! manifest's flow into an [`AuthPlan`] with concrete URLs; secrets are named by option, and
//! only the host reads their values.

use serde::{Deserialize, Serialize};

/// How a client authenticates at an OAuth2 token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    FormBody,
    /// HTTP Basic with client id and secret.
    Basic,
    /// OneLogin: `Authorization: client_id:<id>, client_secret:<secret>` with a JSON body.
    OneLoginHeader,
}

/// Signature algorithm of a JWT the host signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssertionAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// A resolved authentication plan for one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum AuthPlan {
    /// No authentication (never used by real providers; tests only).
    None,
    /// A static token in a header: `<header>: <scheme> <secret>` (Okta `Authorization: SSWS ...`).
    ApiToken {
        /// Header name.
        header: String,
        /// Scheme word before the token (`SSWS`), or empty for the bare token.
        scheme: String,
        /// Option holding the token.
        secret_option: String,
    },
    /// OAuth2 client credentials with a client secret.
    ClientCredentialsSecret {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Option holding the client secret.
        secret_option: String,
        /// How the secret is presented.
        client_auth: ClientAuth,
        /// Scopes (`.default` style for Entra).
        scopes: Vec<String>,
    },
    /// OAuth2 client credentials with a signed JWT client assertion
    /// (Entra certificate, Okta private_key_jwt, Keycloak signed JWT).
    ClientCredentialsAssertion {
        /// Token endpoint (also the assertion's `aud`).
        token_url: String,
        /// Client id (the assertion's `iss` and `sub`).
        client_id: String,
        /// Option holding the PEM private key.
        key_option: String,
        /// Option holding the PEM certificate, for `x5t`/`x5t#S256` (Entra).
        cert_option: Option<String>,
        /// Key id header, if the provider wants one (Okta `kid`).
        key_id: Option<String>,
        /// Signature algorithm.
        alg: AssertionAlg,
        /// Scopes.
        scopes: Vec<String>,
        /// Bind tokens with DPoP proofs (Okta service apps).
        dpop: bool,
    },
    /// Service-account JWT bearer grant (Google domain-wide delegation).
    JwtBearer {
        /// Token endpoint (the assertion's `aud`).
        token_url: String,
        /// Option holding the service account key (JSON key file or PEM key).
        key_option: String,
        /// Service account email (`iss`), if not taken from the key file.
        issuer: Option<String>,
        /// The admin to impersonate (`sub`).
        subject: String,
        /// Scopes.
        scopes: Vec<String>,
    },
    /// Authorization code flow; the host stores and uses a refresh token.
    RefreshToken {
        /// Authorization endpoint (for `usersync auth login`).
        authorize_url: String,
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Option holding the client secret.
        secret_option: String,
        /// Scopes.
        scopes: Vec<String>,
    },
    /// Resource-owner password grant (documented fallback only).
    Password {
        /// Token endpoint.
        token_url: String,
        /// Client id (e.g. `admin-cli`).
        client_id: String,
        /// User name.
        username: String,
        /// Option holding the password.
        secret_option: String,
    },
}

impl AuthPlan {
    /// The token endpoint, if the plan has one.
    pub fn token_url(&self) -> Option<&str> {
        match self {
            AuthPlan::None | AuthPlan::ApiToken { .. } => None,
            AuthPlan::ClientCredentialsSecret { token_url, .. }
            | AuthPlan::ClientCredentialsAssertion { token_url, .. }
            | AuthPlan::JwtBearer { token_url, .. }
            | AuthPlan::RefreshToken { token_url, .. }
            | AuthPlan::Password { token_url, .. } => Some(token_url),
        }
    }
}
