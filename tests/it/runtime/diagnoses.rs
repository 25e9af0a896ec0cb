//! TLS verification and `doctor`'s diagnoses: DNS, refused and reset connections, untrusted
//! certificates, proxies, missing permissions, rejected secrets.

use super::*;

#[tokio::test]
async fn plain_http_is_refused_for_non_loopback_hosts() {
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("okta", "http://acme.okta.com", api_token_plan()),
        Options::default(),
        secrets(&[("api_token", "tok")]),
        fast(),
    )
    .unwrap_err();
    assert!(matches!(e, RuntimeError::UrlNotAllowed { .. }), "{e}");
    assert!(e.to_string().contains("only allowed for loopback"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TLS

fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("cert");
    let cert_pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.key_pair.serialize_der(),
    ));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .expect("server config");
    (cert_pem, Arc::new(config))
}

/// An HTTPS server answering every request with the users listing (one page).
async fn https_server(config: Arc<rustls::ServerConfig>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = users_page(&["tls-user"]).to_string();
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn https_is_verified_and_an_extra_ca_bundle_is_trusted() {
    let (cert_pem, config) = self_signed();
    let base = https_server(config).await;
    // untrusted: fails with a TLS error, never retried into success
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert_eq!(e.transport_kind(), Some(TransportKind::Tls), "{e}");
    // trusted through the extra CA bundle
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).expect("write");
    let mut s = fast();
    s.ca_bundle = Some(ca);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    assert_eq!(
        ids(&c.run_query(&Query::ListUsers).await.expect("users")),
        ["tls-user"]
    );
}

// ---------------------------------------------------------------------------------------------
// Doctor

fn doctor_client(id: &'static str, base: &str, settings: ConnectionSettings) -> ConnectionClient {
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "app".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    client_with(id, base, plan, &[("client_secret", "doc-secret")], settings)
}

fn one_attempt() -> ConnectionSettings {
    let mut s = fast();
    s.retry.max_attempts = 2;
    s
}

fn step<'a>(r: &'a doctor::DoctorReport, name: &str) -> &'a doctor::Check {
    r.checks
        .iter()
        .find(|c| c.step == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {r:#?}"))
}

#[tokio::test]
async fn doctor_passes_on_a_healthy_connection_and_walks_each_operation() {
    let base = serve(|r| match r.path.as_str() {
        "/token" => token_ok("doc-token", 3600),
        "/users/u1/manager" => Resp::json(
            404,
            serde_json::json!({"error": {"code": "Request_ResourceNotFound"}}),
        ),
        _ => bearer_only("doc-token", users_listing)(r),
    })
    .await;
    let c = doctor_client("entra", &base, one_attempt());
    let ops = doctor::default_operations(&c);
    assert_eq!(
        ops,
        [
            Operation::ListUsers,
            Operation::ListGroups,
            Operation::GroupMembers,
            Operation::UserManager
        ]
    );
    let r = doctor::run(&c, &ops).await;
    assert!(!r.failed(), "{r:#?}");
    assert_eq!(step(&r, "tcp").status, CheckStatus::Pass);
    assert_eq!(step(&r, "tls").status, CheckStatus::Skip);
    assert!(step(&r, "token").detail.contains("valid for 3600 s"));
    assert!(step(&r, "list_users")
        .detail
        .contains("record(s) on the first page"));
    assert_eq!(
        step(&r, "user_manager").status,
        CheckStatus::Pass,
        "404 = no manager, fine"
    );
}

#[tokio::test]
async fn doctor_diagnoses_dns_failure() {
    let c = doctor_client(
        "entra",
        "https://login.nonexistent-usersync-host.invalid",
        one_attempt(),
    );
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    let dns = step(&r, "dns");
    assert_eq!(dns.status, CheckStatus::Fail);
    assert!(
        dns.diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("does not resolve"),
        "{dns:?}"
    );
    assert!(step(&r, "token")
        .diagnosis
        .as_deref()
        .unwrap_or_default()
        .contains("does not resolve"));
    assert_eq!(step(&r, "list_users").status, CheckStatus::Skip);
}

#[tokio::test]
async fn doctor_diagnoses_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = doctor_client("okta", &format!("https://127.0.0.1:{port}"), one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    let tcp = step(&r, "tcp");
    assert_eq!(tcp.status, CheckStatus::Fail);
    assert!(
        tcp.diagnosis.as_deref().unwrap_or_default().contains("refused"),
        "{tcp:?}"
    );
}

/// A server that accepts TCP and resets the connection (what a blocking firewall or proxy does
/// to the TLS handshake).
async fn resetting_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_zero_linger();
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(sock);
        }
    });
    port
}

#[tokio::test]
async fn doctor_diagnoses_connection_reset_during_the_tls_handshake() {
    let port = resetting_server().await;
    let c = doctor_client("entra", &format!("https://127.0.0.1:{port}"), one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    assert_eq!(step(&r, "tcp").status, CheckStatus::Pass);
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Fail);
    let diag = tls.diagnosis.clone().unwrap_or_default();
    assert!(
        diag.contains(&format!(
            "connection to 127.0.0.1:{port} was reset during the TLS handshake"
        )),
        "{diag}"
    );
    let fix = tls.fix.clone().unwrap_or_default();
    assert!(
        fix.contains("outbound HTTPS") && fix.contains("usersync connectors endpoints --hosts"),
        "{fix}"
    );
    let token = step(&r, "token");
    assert_eq!(token.status, CheckStatus::Fail);
    assert!(
        token
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("was reset"),
        "{token:?}"
    );
}

#[tokio::test]
async fn doctor_diagnoses_an_untrusted_certificate_and_reports_a_trusted_one() {
    let (cert_pem, config) = self_signed();
    let base = https_server(config).await;
    let c = doctor_client("okta", &base, one_attempt());
    let r = doctor::run(&c, &[]).await;
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Fail);
    assert!(
        tls.diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("not trusted"),
        "{tls:?}"
    );
    assert!(
        tls.fix.as_deref().unwrap_or_default().contains("ca_bundle"),
        "{tls:?}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).expect("write");
    let mut s = one_attempt();
    s.ca_bundle = Some(ca);
    let c = doctor_client("okta", &base, s);
    let r = doctor::run(&c, &[]).await;
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Pass, "{tls:?}");
    assert!(
        tls.detail.contains("subject") && tls.detail.contains("expires"),
        "{tls:?}"
    );
}

#[tokio::test]
async fn doctor_diagnoses_a_proxy_that_refuses_the_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if let Ok(mut s) = seen2.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = sock
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let mut s = one_attempt();
    s.proxy = Some(format!("http://proxyuser:proxy-pass-123@127.0.0.1:{port}"));
    let c = doctor_client("entra", "https://login.idp.example.test", s);
    let r = doctor::run(&c, &[]).await;
    assert!(r.failed());
    let proxy = step(&r, "proxy");
    assert_eq!(proxy.status, CheckStatus::Fail);
    assert!(
        proxy
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("refused the tunnel to login.idp.example.test:443"),
        "{proxy:?}"
    );
    assert!(seen
        .lock()
        .expect("seen")
        .starts_with("CONNECT login.idp.example.test:443 HTTP/1.1"));
    let json = serde_json::to_string(&r).expect("json");
    assert!(
        !json.contains("proxy-pass-123"),
        "the proxy password never appears: {json}"
    );
}

#[tokio::test]
async fn doctor_names_the_missing_permission_on_401_and_403() {
    for (status, id, words) in [
        (401u16, "okta", "API token"),
        (403, "entra", "User.Read.All"),
        (403, "keycloak", "view-users"),
        (403, "google", "domain-wide delegation"),
        (403, "onelogin", "Read users"),
    ] {
        let base = serve(move |r| match r.path.as_str() {
            "/token" => token_ok("tok", 3600),
            _ => Resp::json(status, serde_json::json!({"error": "denied"})),
        })
        .await;
        let c = doctor_client(id, &base, one_attempt());
        let r = doctor::run(&c, &[Operation::ListUsers]).await;
        assert!(r.failed(), "{id}");
        let check = step(&r, "list_users");
        let text = format!("{:?} {:?}", check.diagnosis, check.fix);
        assert!(
            text.contains(&format!("HTTP {status}")) && text.contains(words),
            "{id} {status}: {text}"
        );
    }
}

#[tokio::test]
async fn doctor_explains_a_rejected_client_secret() {
    let base = serve(|_| {
        Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is doc-secret\r\nTrace ID: 1"}))
    })
    .await;
    let c = doctor_client("entra", &base, one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    let token = step(&r, "token");
    assert_eq!(token.status, CheckStatus::Fail);
    assert!(
        token.detail.contains("invalid_client") && token.detail.contains("AADSTS7000215"),
        "{token:?}"
    );
    assert!(
        !token.detail.contains("doc-secret"),
        "an echoed secret is scrubbed: {token:?}"
    );
    assert!(token
        .diagnosis
        .as_deref()
        .unwrap_or_default()
        .contains("rejected the client credentials"));
}

// ---------------------------------------------------------------------------------------------
// auth login (authorization code + refresh token)
