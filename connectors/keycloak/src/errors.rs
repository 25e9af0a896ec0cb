//! Keycloak error responses -> [`ConnectorError`].
//!
//! Shapes handled (Admin REST OpenAPI and observed servers):
//! - admin API `ErrorRepresentation`: `{"errorMessage": "...", "field": "...", "params": [...]}`;
//! - admin API exceptions in OAuth2 form: `{"error": "HTTP 403 Forbidden"}`, `{"error": "unknown_error"}`,
//!   `{"error": "unknown_error", "error_description": "For more on this error consult the server log."}`;
//! - empty bodies (some 403s) and HTML pages from reverse proxies;
//! - token endpoint: `{"error": "invalid_client" | "unauthorized_client" | "invalid_grant" | ...,
//!   "error_description": "..."}` with HTTP 400 (Keycloak 18 and older) or 401 (current servers).
//!
//! The variant is chosen by HTTP status and OAuth2 error code, never by message text.

use usersync_sdk::paging::retry_after_seconds;
use usersync_sdk::{ConnectorError, HttpResponse, Operation};

use crate::api::ErrorBody;

/// The realm-management client roles an operation needs (named in `Forbidden.needed` and by doctor).
pub fn needed_roles(op: Operation) -> &'static str {
    match op {
        Operation::ListGroups | Operation::GroupChildren => {
            "realm-management client role `query-groups` (or `view-users`)"
        }
        Operation::ListRoles => "realm-management client role `view-realm` (roles as groups only)",
        Operation::RoleMembers => {
            "realm-management client roles `view-realm` and `view-users` (roles as groups only)"
        }
        Operation::UsersDelta | Operation::GroupsDelta => {
            "realm-management client roles `view-events` and `view-users` (incremental runs only)"
        }
        _ => "realm-management client role `view-users`",
    }
}

/// Whether a 404 on this operation means "the realm or server path is wrong" rather than
/// "this object does not exist". A listing never answers 404 for a missing object.
fn is_listing(op: Operation) -> bool {
    matches!(
        op,
        Operation::ListUsers | Operation::ListGroups | Operation::ListRoles
    )
}

/// Map a non-2xx admin API response. `what` names the request (method and path, no query).
pub fn admin_error(response: &HttpResponse, op: Operation, what: &str) -> ConnectorError {
    let body = ErrorBody::parse(&response.body);
    let said = body.summary().unwrap_or_else(|| {
        if response.body.is_empty() {
            "empty body".to_string()
        } else {
            format!("unexpected body: {}", response.body_snippet(120))
        }
    });
    let detail = format!("HTTP {} on {what}: {said}", response.status);
    match response.status {
        401 => ConnectorError::Unauthorized { detail },
        403 => ConnectorError::Forbidden {
            detail,
            needed: Some(needed_roles(op).to_string()),
        },
        404 if is_listing(op) => ConnectorError::config(
            "realm",
            format!(
                "{}. The realm or the server path is wrong: check `realm` (the realm's name, not its \
                 display name), `base_url`, and `path_prefix` (`/auth` on Keycloak 16 and older)",
                detail.trim_end_matches('.')
            ),
        ),
        404 | 410 => ConnectorError::NotFound { detail },
        429 => ConnectorError::RateLimited {
            retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
            detail,
        },
        500 | 502 | 503 | 504 => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

/// Map a token endpoint error response (`POST {base}/realms/{realm}/protocol/openid-connect/token`).
///
/// Current servers answer 401 `invalid_client` for an unknown client and 401 `unauthorized_client` for a
/// wrong secret; Keycloak 18 answered 400 `invalid_client`: both are accepted. `invalid_grant` (wrong
/// password, disabled user on the password grant) is a credential problem too.
pub fn token_error(response: &HttpResponse) -> ConnectorError {
    let body = ErrorBody::parse(&response.body);
    let said = body.summary().unwrap_or_else(|| response.body_snippet(120));
    let detail = format!("token request failed with HTTP {}: {said}", response.status);
    match (response.status, body.error.as_deref()) {
        (400 | 401, Some("invalid_client" | "unauthorized_client")) => ConnectorError::Unauthorized {
            detail: format!(
                "{detail}. The client was rejected: check `client_id`, `client_secret`, that the client is \
                 confidential (Client authentication ON) and, for client credentials, that \"Service accounts \
                 roles\" is enabled"
            ),
        },
        (400 | 401, Some("invalid_grant")) => ConnectorError::Unauthorized {
            detail: format!("{detail}. Check `username` and `password` (password grant)"),
        },
        (400, Some("invalid_scope")) => ConnectorError::config("client_id", detail),
        (400, Some("unsupported_grant_type")) => ConnectorError::config(
            "grant",
            format!("{detail}. The server does not allow this grant for the client"),
        ),
        (401, _) => ConnectorError::Unauthorized { detail },
        (403, _) => ConnectorError::Forbidden { detail, needed: None },
        (404, _) => ConnectorError::config(
            "realm",
            format!(
                "{}. No token endpoint at this address: check `base_url`, `realm` (or `token_realm`) \
                 and `path_prefix` (`/auth` on Keycloak 16 and older)",
                detail.trim_end_matches('.')
            ),
        ),
        (429, _) => ConnectorError::RateLimited {
            retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
            detail,
        },
        (500 | 502 | 503 | 504, _) => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(status, body)
    }

    #[test]
    fn token_errors_current_and_keycloak18_shapes() {
        // current servers: 401 invalid_client (unknown client), 401 unauthorized_client (wrong secret)
        let unknown = token_error(&resp(
            401,
            r#"{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}"#,
        ));
        assert!(
            matches!(&unknown, ConnectorError::Unauthorized { detail } if detail.contains("client_secret"))
        );
        let wrong = token_error(&resp(
            401,
            r#"{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}"#,
        ));
        assert!(matches!(wrong, ConnectorError::Unauthorized { .. }));
        // Keycloak 18 answered 400 invalid_client
        let kc18 = token_error(&resp(
            400,
            r#"{"error":"invalid_client","error_description":"Invalid client credentials"}"#,
        ));
        assert!(matches!(kc18, ConnectorError::Unauthorized { .. }));
        let grant = token_error(&resp(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#,
        ));
        assert!(matches!(&grant, ConnectorError::Unauthorized { detail } if detail.contains("password")));
        let missing_id = token_error(&resp(
            400,
            r#"{"error":"invalid_request","error_description":"Missing parameter: client_id"}"#,
        ));
        assert!(matches!(missing_id, ConnectorError::Protocol { .. }));
        let not_found = token_error(&resp(404, r#"{"error":"Realm does not exist"}"#));
        assert!(matches!(&not_found, ConnectorError::Config { option, .. } if option == "realm"));
        let busy = token_error(&resp(503, ""));
        assert!(busy.is_retryable());
    }

    #[test]
    fn admin_errors_by_status_and_shape() {
        let e = admin_error(
            &resp(409, r#"{"errorMessage":"User exists with same username"}"#),
            Operation::ListUsers,
            "GET /x",
        );
        assert!(matches!(&e, ConnectorError::Protocol { detail } if detail.contains("User exists")));
        let e = admin_error(
            &resp(404, r#"{"error":"User not found"}"#),
            Operation::GetUser,
            "GET /x",
        );
        assert!(matches!(e, ConnectorError::NotFound { .. }));
        let e = admin_error(&resp(403, ""), Operation::RoleMembers, "GET /x");
        assert!(
            matches!(&e, ConnectorError::Forbidden { needed: Some(n), detail } if n.contains("view-realm") && detail.contains("empty body"))
        );
    }
}
