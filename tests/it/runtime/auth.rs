//! Auth flows of every provider: client secrets, certificate and private-key JWT assertions, DPoP,
//! service-account impersonation, API tokens, refresh on 401, password grant, proxies.

use super::*;

#[tokio::test]
async fn entra_client_secret_in_form_body_with_token_cache() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/tenant/oauth2/v2.0/token" => {
            tc.fetch_add(1, Ordering::SeqCst);
            let f = r.form();
            assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
            if f.get("grant_type").map(String::as_str) != Some("client_credentials")
                || f.get("client_id").map(String::as_str) != Some("app-1")
                || f.get("client_secret").map(String::as_str) != Some("s3cret&=+")
                || f.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default")
            {
                return Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}));
            }
            token_ok("tok-entra", 3599)
        }
        _ => bearer_only("tok-entra", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/tenant/oauth2/v2.0/token"),
        client_id: "app-1".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec!["https://graph.microsoft.com/.default".into()],
    };
    let c = client("entra", &base, plan, &[("client_secret", "s3cret&=+")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(ids(&out), ["u1", "u2", "u3"]);
    let again = c.run_query(&Query::ListUsers).await.expect("users again");
    assert_eq!(again.pages, 2);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        1,
        "the token is cached across pages and queries"
    );
    let n = c.counters();
    assert_eq!((n.requests, n.token_requests, n.pages), (5, 1, 4));
    assert!(n.bytes_received > 0);
}

#[tokio::test]
async fn keycloak_basic_client_auth_and_early_refresh_of_short_tokens() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/realms/acme/protocol/openid-connect/token" => {
            let n = tc.fetch_add(1, Ordering::SeqCst) + 1;
            let expected = format!("Basic {}", STANDARD.encode("usersync:kc-secret"));
            assert_eq!(r.header("authorization"), Some(expected.as_str()));
            assert_eq!(
                r.form().get("grant_type").map(String::as_str),
                Some("client_credentials")
            );
            assert!(
                !r.body.contains("kc-secret"),
                "Basic auth keeps the secret out of the body"
            );
            // a token that is already inside its early-refresh margin
            token_ok(&format!("kc-{n}"), 0)
        }
        _ => {
            if !r
                .header("authorization")
                .unwrap_or_default()
                .starts_with("Bearer kc-")
            {
                return Resp::json(401, serde_json::json!({"error": "HTTP 401 Unauthorized"}));
            }
            users_listing(r)
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/realms/acme/protocol/openid-connect/token"),
        client_id: "usersync".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::Basic,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan, &[("client_secret", "kc-secret")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        2,
        "a token due for refresh is replaced before each use"
    );
}

#[tokio::test]
async fn onelogin_token_request_uses_its_header_and_json_body() {
    let base = serve(|r| match r.path.as_str() {
        "/auth/oauth2/v2/token" => {
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("authorization"), Some("client_id:ol-id, client_secret:ol-secret"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            let body: serde_json::Value = serde_json::from_str(&r.body).expect("json body");
            assert_eq!(body, serde_json::json!({"grant_type": "client_credentials"}));
            Resp::json(200, serde_json::json!({"access_token": "ol-tok", "created_at": 1630368707239u64, "expires_in": 36000, "refresh_token": "r", "token_type": "bearer", "account_id": 1}))
        }
        _ => bearer_only("ol-tok", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/auth/oauth2/v2/token"),
        client_id: "ol-id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::OneLoginHeader,
        scopes: vec![],
    };
    let c = client("onelogin", &base, plan, &[("client_secret", "ol-secret")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

fn check_assertion(r: &Req, alg: Algorithm, client_id: &str) -> Result<jsonwebtoken::Header, String> {
    let f = r.form();
    if f.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("client_assertion_type".into());
    }
    let jwt = f.get("client_assertion").ok_or("no client_assertion")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    if header.alg != alg {
        return Err(format!("alg {:?}", header.alg));
    }
    let aud = format!("{}{}", r.base(), r.path);
    let mut v = Validation::new(alg);
    v.set_audience(&[aud.as_str()]);
    v.set_issuer(&[client_id]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        jwt,
        &DecodingKey::from_rsa_pem(TEST_PUB.as_bytes()).expect("pub"),
        &v,
    )
    .map_err(|e| format!("signature/claims: {e}"))?;
    let c = data.claims;
    if c["sub"] != client_id || c["jti"].as_str().unwrap_or_default().is_empty() {
        return Err("sub/jti".into());
    }
    let (nbf, exp) = (c["nbf"].as_u64().unwrap_or(0), c["exp"].as_u64().unwrap_or(0));
    if exp <= nbf || exp - nbf > 600 {
        return Err("lifetime".into());
    }
    Ok(header)
}

#[tokio::test]
async fn entra_certificate_assertion_ps256_with_x5t_s256_and_legacy_rs256_with_x5t() {
    let der = der_of(TEST_CERT);
    let s256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der));
    let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &der,
    ));
    for (alg, jalg) in [
        (AssertionAlg::PS256, Algorithm::PS256),
        (AssertionAlg::RS256, Algorithm::RS256),
    ] {
        let (s256, sha1) = (s256.clone(), sha1.clone());
        let base = serve(move |r| match r.path.as_str() {
            "/tenant/oauth2/v2.0/token" => match check_assertion(r, jalg, "app-cert") {
                Ok(h) => {
                    let thumb_ok = if jalg == Algorithm::PS256 {
                        h.x5t_s256.as_deref() == Some(s256.as_str())
                    } else {
                        h.x5t.as_deref() == Some(sha1.as_str())
                    };
                    assert!(thumb_ok, "certificate thumbprint header for {jalg:?}: {h:?}");
                    assert!(!r.form().contains_key("client_secret"));
                    token_ok("tok-cert", 3600)
                }
                Err(e) => Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": format!("AADSTS700027: {e}")})),
            },
            _ => bearer_only("tok-cert", users_listing)(r),
        })
        .await;
        let plan = AuthPlan::ClientCredentialsAssertion {
            token_url: format!("{base}/tenant/oauth2/v2.0/token"),
            client_id: "app-cert".into(),
            key_option: "private_key".into(),
            cert_option: Some("certificate".into()),
            key_id: None,
            alg,
            scopes: vec!["https://graph.microsoft.com/.default".into()],
            dpop: false,
        };
        let c = client(
            "entra",
            &base,
            plan,
            &[("private_key", TEST_KEY), ("certificate", TEST_CERT)],
        );
        let out = c
            .run_query(&Query::ListUsers)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(out.records.len(), 3);
    }
}

fn verify_dpop(
    proof: &str,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    token: Option<&str>,
) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(proof).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("typ".into());
    }
    let jwk = header.jwk.ok_or("no jwk")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.set_required_spec_claims::<&str>(&[]);
    let c = jsonwebtoken::decode::<serde_json::Value>(proof, &key, &v)
        .map_err(|e| format!("proof signature: {e}"))?
        .claims;
    if c["htm"] != method || c["htu"] != url || c["jti"].as_str().unwrap_or_default().is_empty() {
        return Err(format!("htm/htu/jti: {c}"));
    }
    if c["nonce"].as_str() != nonce {
        return Err("nonce".into());
    }
    if let Some(t) = token {
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()));
        if c["ath"].as_str() != Some(ath.as_str()) {
            return Err("ath".into());
        }
    }
    Ok(())
}

#[tokio::test]
async fn okta_private_key_jwt_with_dpop_and_the_nonce_dance() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/oauth2/v1/token" => {
            tc.fetch_add(1, Ordering::SeqCst);
            let h = match check_assertion(r, Algorithm::RS256, "0oa-service") {
                Ok(h) => h,
                Err(e) => return Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": e})),
            };
            assert_eq!(h.kid.as_deref(), Some("key-1"));
            assert_eq!(r.form().get("scope").map(String::as_str), Some("okta.users.read okta.groups.read"));
            let url = format!("{}{}", r.base(), r.path);
            let Some(proof) = r.header("dpop") else {
                return Resp::json(400, serde_json::json!({"error": "invalid_dpop_proof", "error_description": "The DPoP proof JWT header is missing."}));
            };
            if verify_dpop(proof, "POST", &url, None, None).is_ok() {
                return Resp::json(400, serde_json::json!({"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}))
                    .with("DPoP-Nonce", "nonce-as-1");
            }
            match verify_dpop(proof, "POST", &url, Some("nonce-as-1"), None) {
                Ok(()) => Resp::json(200, serde_json::json!({"token_type": "DPoP", "expires_in": 3600, "access_token": "okta-dpop-token", "scope": "okta.users.read okta.groups.read"})),
                Err(e) => Resp::json(400, serde_json::json!({"error": "invalid_dpop_proof", "error_description": e})),
            }
        }
        _ => {
            if r.header("authorization") != Some("DPoP okta-dpop-token") {
                return Resp::json(401, serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}));
            }
            let url = format!("{}{}", r.base(), r.path);
            let proof = r.header("dpop").unwrap_or_default();
            if let Err(e) = verify_dpop(proof, "GET", &url, None, Some("okta-dpop-token")) {
                return Resp::json(400, serde_json::json!({"errorCode": "E0000001", "errorSummary": e}));
            }
            users_listing(r)
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: format!("{base}/oauth2/v1/token"),
        client_id: "0oa-service".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: Some("key-1".into()),
        alg: AssertionAlg::RS256,
        scopes: vec!["okta.users.read".into(), "okta.groups.read".into()],
        dpop: true,
    };
    let c = client("okta", &base, plan, &[("private_key", TEST_KEY)]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        2,
        "one nonce challenge, then the token"
    );
    let info = c.fetch_token().await.expect("token").expect("info");
    assert_eq!(info.token_type, "DPoP");
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        3,
        "the stored nonce is reused: no second challenge"
    );
}

#[tokio::test]
async fn google_service_account_jwt_bearer_impersonates_the_admin() {
    let key_file = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-123",
        "private_key": TEST_KEY,
        "client_email": "sync@p.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    let base = serve(|r| match r.path.as_str() {
        "/token" => {
            let f = r.form();
            assert_eq!(f.get("grant_type").map(String::as_str), Some("urn:ietf:params:oauth:grant-type:jwt-bearer"));
            let jwt = f.get("assertion").expect("assertion");
            let h = jsonwebtoken::decode_header(jwt).expect("header");
            assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::RS256, Some("kid-123")));
            let aud = format!("{}/token", r.base());
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[aud.as_str()]);
            v.set_issuer(&["sync@p.iam.gserviceaccount.com"]);
            let c = jsonwebtoken::decode::<serde_json::Value>(jwt, &DecodingKey::from_rsa_pem(TEST_PUB.as_bytes()).expect("pub"), &v)
                .expect("valid assertion")
                .claims;
            assert_eq!(c["sub"], "admin@example.test");
            assert_eq!(
                c["scope"],
                "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly"
            );
            assert!(c["exp"].as_u64().unwrap_or(0) - c["iat"].as_u64().unwrap_or(0) <= 3600);
            token_ok("ya29.google", 3599)
        }
        _ => bearer_only("ya29.google", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::JwtBearer {
        token_url: format!("{base}/token"),
        key_option: "service_account_key".into(),
        issuer: None,
        subject: "admin@example.test".into(),
        scopes: vec![
            "https://www.googleapis.com/auth/admin.directory.user.readonly".into(),
            "https://www.googleapis.com/auth/admin.directory.group.readonly".into(),
        ],
    };
    let c = client("google", &base, plan, &[("service_account_key", &key_file)]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

#[tokio::test]
async fn okta_ssws_api_token_header() {
    let base = serve(|r| {
        if r.header("authorization") != Some("SSWS 00abcTOKEN") {
            return Resp::json(401, serde_json::json!({"errorCode": "E0000011"}));
        }
        users_listing(r)
    })
    .await;
    let plan = AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    };
    let c = client("okta", &base, plan, &[("api_token", "00abcTOKEN")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(c.counters().token_requests, 0);
}

#[tokio::test]
async fn missing_secret_and_bad_key_are_named_without_values() {
    let plan = AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    };
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("okta", "https://x.okta.com", plan),
        Options::default(),
        BTreeMap::new(),
        fast(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("`api_token` is not set"), "{e}");
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: "https://login.example.test/token".into(),
        client_id: "c".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: None,
        alg: AssertionAlg::PS256,
        scopes: vec![],
        dpop: false,
    };
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("entra", "https://graph.example.test", plan),
        Options::default(),
        secrets(&[(
            "private_key",
            "-----BEGIN PRIVATE KEY-----\nnotakeyatallXYZ\n-----END PRIVATE KEY-----",
        )]),
        fast(),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("private_key") && !text.contains("notakeyatallXYZ"),
        "{text}"
    );
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh_and_one_retry() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => {
            let n = tc.fetch_add(1, Ordering::SeqCst) + 1;
            token_ok(&format!("t{n}"), 3600)
        }
        // the first token was revoked server side; the second works
        _ if r.header("authorization") == Some("Bearer t1") => {
            Resp::json(401, serde_json::json!({"error": "invalid_token"}))
        }
        _ => users_listing(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan.clone(), &[("client_secret", "x-secret")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(token_calls.load(Ordering::SeqCst), 2);

    // a credential that never works: one refresh, one retry, then a clear Unauthorized
    let resource_calls = Arc::new(AtomicU32::new(0));
    let rc = resource_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => token_ok("never-good", 3600),
        _ => {
            rc.fetch_add(1, Ordering::SeqCst);
            Resp::json(401, serde_json::json!({"error": "invalid_token"}))
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan, &[("client_secret", "x-secret")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(
        matches!(e.connector_error(), Some(ConnectorError::Unauthorized { .. })),
        "{e}"
    );
    assert_eq!(resource_calls.load(Ordering::SeqCst), 2);
    assert_eq!(c.counters().token_requests, 2);
}

#[tokio::test]
async fn keycloak_password_grant_fallback() {
    let base = serve(|r| match r.path.as_str() {
        "/realms/master/protocol/openid-connect/token" => {
            let f = r.form();
            let ok = f.get("grant_type").map(String::as_str) == Some("password")
                && f.get("client_id").map(String::as_str) == Some("admin-cli")
                && f.get("username").map(String::as_str) == Some("sync-admin")
                && f.get("password").map(String::as_str) == Some("pw-1");
            if !ok {
                return Resp::json(
                    401,
                    serde_json::json!({"error": "invalid_grant", "error_description": "Invalid user credentials"}),
                );
            }
            token_ok("kc-admin", 60)
        }
        _ => bearer_only("kc-admin", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::Password {
        token_url: format!("{base}/realms/master/protocol/openid-connect/token"),
        client_id: "admin-cli".into(),
        username: "sync-admin".into(),
        secret_option: "password".into(),
    };
    let c = client("keycloak", &base, plan, &[("password", "pw-1")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

#[tokio::test]
async fn a_per_connection_proxy_is_used_with_its_credentials() {
    let proxied = Arc::new(AtomicU32::new(0));
    let p2 = proxied.clone();
    // The "proxy" answers absolute-form requests itself; the origin does not exist.
    let proxy = serve(move |r| {
        let expected = format!("Basic {}", STANDARD.encode("corp:proxy-pw"));
        if r.header("proxy-authorization") != Some(expected.as_str()) {
            return Resp::json(407, serde_json::json!({})).with("Proxy-Authenticate", "Basic realm=\"corp\"");
        }
        p2.fetch_add(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["via-proxy"]))
    })
    .await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut s = fast();
    s.proxy = Some(proxy.replace("http://", "http://corp:proxy-pw@"));
    let c = client_with(
        "okta",
        &format!("http://127.0.0.1:{port}"),
        api_token_plan(),
        &[("api_token", "tok")],
        s,
    );
    assert_eq!(
        ids(&c.run_query(&Query::ListUsers).await.expect("users")),
        ["via-proxy"]
    );
    assert_eq!(proxied.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Retries, throttling, paging guards
