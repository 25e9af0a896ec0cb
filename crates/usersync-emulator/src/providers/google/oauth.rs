//! Google's OAuth 2.0 endpoints: JWT bearer (service account), authorization code, refresh token.

use super::*;

pub(super) fn jwt_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?).ok()
}

pub(super) fn token_ok(token: &str, ttl: i64, scopes: Option<&[String]>, refresh: Option<&str>) -> Response {
    let mut v = json!({
        "access_token": format!("ya29.{token}"),
        "expires_in": (ttl - 1).max(1),
        "token_type": "Bearer",
    });
    if let Some(s) = scopes {
        v["scope"] = s.join(" ").into();
    }
    if let Some(r) = refresh {
        v["refresh_token"] = r.into();
    }
    let mut r = json_response(StatusCode::OK, &v);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    r
}

pub(super) fn principal_code(org: &Org, email: &str) -> String {
    format!("{}|{}", Privilege::of(org, email).code(), email)
}

pub(super) async fn jwt_bearer(st: &GState, base: &str, form: &HashMap<String, String>) -> Response {
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Some(claims) = jwt_claims(assertion) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: the assertion is not a JWT",
        );
    };
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let Some(sa) = st.accounts.iter().find(|a| a.email == iss) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid grant: account not found",
        );
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    if jsonwebtoken::decode::<Value>(assertion, &sa.key, &validation).is_err() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT Signature.");
    }
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    let own = [format!("{base}/token"), format!("{base}/oauth2/v4/token")];
    let accepted = [
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
    ];
    if !own.iter().any(|a| a == aud) && !accepted.contains(&aud) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        );
    }
    let now = now_unix();
    let iat = claims.get("iat").and_then(Value::as_i64);
    let exp = claims.get("exp").and_then(Value::as_i64);
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > now && iat <= now + 300 && exp - iat <= 3600 && exp > iat => {}
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", BAD_TIMES),
    }
    let scopes: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let principal = match claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(sub) => {
            if !scopes.iter().all(|s| sa.delegated.contains(&s.as_str())) {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    UNAUTHORIZED_CLIENT,
                );
            }
            let org = st.ctx.org.read().await;
            if find_user_by_email(&org, sub).is_none() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid email or User ID",
                );
            }
            principal_code(&org, sub)
        }
        // No delegation: the token is the service account's own, which is no administrator.
        None => format!("{}|{}", Privilege::None.code(), sa.email),
    };
    let token = st.ctx.tokens.issue(&principal, scopes, None, now);
    token_ok(&token, st.ctx.tokens.ttl_secs(), None, None)
}

pub(super) fn client_secret_of<'a>(st: &'a GState, client_id: &str) -> Option<&'a str> {
    let c = &st.ctx.creds;
    if client_id == c.client_id {
        Some(&c.client_secret)
    } else if client_id == c.limited_client_id {
        Some(&c.limited_client_secret)
    } else {
        None
    }
}

/// Client credentials from the form body or HTTP Basic.
pub(super) fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> (String, String) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        if let Some((id, secret)) = basic.split_once(':') {
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return (dec(id), dec(secret));
        }
    }
    (
        form.get("client_id").cloned().unwrap_or_default(),
        form.get("client_secret").cloned().unwrap_or_default(),
    )
}

pub(super) async fn token(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        JWT_BEARER => jwt_bearer(&st, &base, &form).await,
        "authorization_code" | "refresh_token" => {
            let (client_id, secret) = client_auth(&headers, &form);
            match client_secret_of(&st, &client_id) {
                Some(s) if s == secret => {}
                Some(_) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized"),
                None => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "The OAuth client was not found.",
                    )
                }
            }
            let now = now_unix();
            if grant == "authorization_code" {
                let code = form.get("code").cloned().unwrap_or_default();
                let grant = st.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(&code);
                let Some(g) = grant.filter(|g| g.client_id == client_id) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Malformed auth code.");
                };
                if form.get("redirect_uri").map(String::as_str) != Some(g.redirect_uri.as_str()) {
                    return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
                }
                if let Some((challenge, method)) = &g.challenge {
                    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
                    let computed = if method == "S256" {
                        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.to_string()
                    };
                    if verifier.is_empty() {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Missing code verifier.",
                        );
                    }
                    if &computed != challenge {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Invalid code verifier.",
                        );
                    }
                }
                let token = st.ctx.tokens.issue(&g.principal, g.scopes.clone(), None, now);
                let refresh = g.offline.then(|| {
                    let r = format!("1//0{}", random_hex(24));
                    st.refresh.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        r.clone(),
                        RefreshGrant {
                            client_id: client_id.clone(),
                            scopes: g.scopes.clone(),
                            principal: g.principal.clone(),
                        },
                    );
                    r
                });
                token_ok(
                    &token,
                    st.ctx.tokens.ttl_secs(),
                    Some(&g.scopes),
                    refresh.as_deref(),
                )
            } else {
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                let found = st
                    .refresh
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&rt)
                    .filter(|g| g.client_id == client_id)
                    .map(|g| (g.scopes.clone(), g.principal.clone()));
                let Some((scopes, principal)) = found else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Token has been expired or revoked.",
                    );
                };
                let token = st.ctx.tokens.issue(&principal, scopes.clone(), None, now);
                token_ok(&token, st.ctx.tokens.ttl_secs(), Some(&scopes), None)
            }
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

pub(super) fn html_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>{title}</title><p><b>{title}</b><p>{detail}</html>"
    );
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    r
}

/// `GET /o/oauth2/v2/auth`: no sign-in page; consent is given at once as `login_hint` (a listed
/// user) or the super administrator, and the browser is redirected back with a code.
pub(super) async fn authorize_endpoint(State(st): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if client_secret_of(&st, &client_id).is_none() {
        return html_error(
            StatusCode::UNAUTHORIZED,
            "Error 401: invalid_client",
            "The OAuth client was not found.",
        );
    }
    let Some(redirect) = q.get("redirect_uri").filter(|r| !r.is_empty()).cloned() else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "Missing required parameter: redirect_uri",
        );
    };
    let Ok(mut target) = url::Url::parse(&redirect) else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: redirect_uri_mismatch",
            "Invalid redirect_uri",
        );
    };
    let requested: Vec<String> = q
        .get("scope")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return html_error(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "Missing required parameter: scope",
        );
    }
    {
        let mut pairs = target.query_pairs_mut();
        if let Some(s) = q.get("state") {
            pairs.append_pair("state", s);
        }
        if q.get("response_type").map(String::as_str) != Some("code") {
            pairs.append_pair("error", "unsupported_response_type");
            drop(pairs);
            return redirect_to(target.as_str());
        }
    }
    // The limited client's consent screen was answered with only the users scope ticked
    // (Google's granular consent).
    let scopes: Vec<String> = if client_id == st.ctx.creds.limited_client_id {
        requested
            .into_iter()
            .filter(|s| s == scope::USER_RO || s == scope::USER)
            .collect()
    } else {
        requested
    };
    let org = st.ctx.org.read().await;
    let email = q
        .get("login_hint")
        .filter(|h| find_user_by_email(&org, h).is_some())
        .cloned()
        .or_else(|| org.user(0).map(primary_email))
        .unwrap_or_default();
    let principal = principal_code(&org, &email);
    drop(org);
    let code = format!("4/0{}", random_hex(24));
    st.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect,
            scopes: scopes.clone(),
            principal,
            offline: q.get("access_type").map(String::as_str) == Some("offline"),
            challenge: q.get("code_challenge").filter(|c| !c.is_empty()).map(|c| {
                (
                    c.clone(),
                    q.get("code_challenge_method")
                        .cloned()
                        .unwrap_or_else(|| "plain".into()),
                )
            }),
        },
    );
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("scope", &scopes.join(" "));
    redirect_to(target.as_str())
}
