//! The Microsoft identity platform token endpoint (`/{tenant}/oauth2/v2.0/token`).

use super::*;

// ---------------------------------------------------------------------------------- token endpoint

pub(super) fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn jwt_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?).ok()
}

pub(super) async fn token(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let org = ctx.org.read().await;
    if !tenant_matches(&org, &tenant) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
                 the correct cloud. Check with your subscription administrator, this may happen if there are no \
                 active subscriptions for the tenant."
            ),
        );
    }
    let tenant_name = org.domain.clone();
    drop(org);
    let missing = |p: &str| {
        token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let Some(grant) = f.get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    // Client id and secret from the form or from HTTP Basic.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (i, p) = s.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("v={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(i)?, dec(p)?))
        });
    let client_id = f
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let Some(client_id) = client_id else {
        return missing("client_id");
    };
    let Some(scope) = f.get("scope") else {
        return missing("scope");
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.is_empty() || scopes.iter().any(|s| !s.ends_with("/.default")) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value \
                 with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let graph_resources = [
        "https://graph.microsoft.com".to_string(),
        "00000003-0000-0000-c000-000000000000".to_string(),
        base.clone(),
    ];
    if let Some(bad) = scopes
        .iter()
        .map(|s| s.trim_end_matches("/.default").trim_end_matches('/'))
        .find(|r| !graph_resources.iter().any(|g| g.eq_ignore_ascii_case(r)))
    {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {bad} was not found in the tenant named {tenant_name}. This can happen \
                 if the application has not been installed by the administrator of the tenant or consented to by any \
                 user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        );
    }
    let (expired_id, expired_secret) = expired_app(ctx.org.read().await.seed);
    let (roles, expected_secret): (Vec<String>, &str) = if client_id == ctx.creds.client_id {
        (
            vec![USER_READ_ALL.into(), GROUP_MEMBER_READ_ALL.into()],
            &ctx.creds.client_secret,
        )
    } else if client_id == ctx.creds.limited_client_id {
        (vec![USER_READ_ALL.into()], &ctx.creds.limited_client_secret)
    } else if client_id == expired_id {
        (
            vec![USER_READ_ALL.into(), GROUP_MEMBER_READ_ALL.into()],
            &expired_secret,
        )
    } else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented to \
                 by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let secret = f.get("client_secret").cloned().or_else(|| basic.map(|b| b.1));
    let invalid_client =
        |code: u64, text: String| token_error(StatusCode::UNAUTHORIZED, "invalid_client", code, &text);
    if let Some(secret) = secret {
        if secret != expected_secret {
            return invalid_client(
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
                     value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
        if client_id == expired_id {
            return invalid_client(
                7000222,
                format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."),
            );
        }
    } else if let Some(assertion) = f.get("client_assertion") {
        if f.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            );
        }
        let parts: Vec<&str> = assertion.split('.').collect();
        let (header_v, claims) = match (
            parts.len(),
            parts.first().and_then(|p| jwt_part(p)),
            parts.get(1).and_then(|p| jwt_part(p)),
        ) {
            (3, Some(h), Some(c)) => (h, c),
            _ => return invalid_client(700027, "Client assertion contains an invalid signature.".into()),
        };
        if header_v.get("x5t#S256").or_else(|| header_v.get("x5t")).is_none() {
            return invalid_client(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on application."
                    .into(),
            );
        }
        let aud = format!("{base}/{tenant}/oauth2/v2.0/token");
        let now = now_unix();
        let claim = |k: &str| {
            claims
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        if claim("iss") != client_id || claim("sub") != client_id {
            return invalid_client(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
            );
        }
        if !claim("aud").eq_ignore_ascii_case(&aud)
            && claim("aud") != format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        {
            return invalid_client(
                700212,
                format!(
                    "No matching federated identity record found for presented assertion audience '{}'.",
                    claim("aud")
                ),
            );
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now || nbf > now + 300 {
            return invalid_client(
                700024,
                "Client assertion is not within its valid time range.".into(),
            );
        }
    } else {
        return invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
                .into(),
        );
    }
    let access = ctx.tokens.issue(&client_id, roles, None, now_unix());
    let ttl = ctx.tokens.ttl_secs();
    json_response(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": access}),
    )
}
