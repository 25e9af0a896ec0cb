//! `auth login` (refresh token stored 0600) and secret hygiene: no secret in trace-level logs,
//! errors or the CLI's output.

use super::*;

#[tokio::test]
async fn auth_login_stores_the_refresh_token_0600_and_the_flow_uses_it() {
    let challenge = Arc::new(Mutex::new(String::new()));
    let ch = challenge.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => {
            let f = r.form();
            assert_eq!(f.get("client_id").map(String::as_str), Some("web-client"));
            assert_eq!(f.get("client_secret").map(String::as_str), Some("web-secret"));
            match f.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    assert_eq!(f.get("code").map(String::as_str), Some("the-code"));
                    let verifier = f.get("code_verifier").expect("pkce verifier");
                    let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
                    assert_eq!(*ch.lock().expect("challenge"), expected);
                    assert!(f.get("redirect_uri").expect("redirect").starts_with("http://127.0.0.1:"));
                    Resp::json(200, serde_json::json!({"access_token": "at-0", "expires_in": 3599, "token_type": "Bearer", "refresh_token": "rt-1"}))
                }
                Some("refresh_token") => {
                    assert_eq!(f.get("refresh_token").map(String::as_str), Some("rt-1"));
                    // the provider rotates the refresh token
                    Resp::json(200, serde_json::json!({"access_token": "at-1", "expires_in": 3599, "token_type": "Bearer", "refresh_token": "rt-2"}))
                }
                other => panic!("grant {other:?}"),
            }
        }
        _ => bearer_only("at-1", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::RefreshToken {
        authorize_url: format!("{base}/authorize"),
        token_url: format!("{base}/token"),
        client_id: "web-client".into(),
        secret_option: "client_secret".into(),
        scopes: vec!["https://www.googleapis.com/auth/admin.directory.user.readonly".into()],
    };
    let dir = tempfile::tempdir().expect("dir");
    let cred_path = dir.path().join("creds").join("conn.json");
    let secret = Secret::new("web-secret");
    let settings = fast();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let browser = tokio::spawn(async move {
        let url = url::Url::parse(&rx.await.expect("url")).expect("authorize url");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["access_type"], "offline");
        *challenge.lock().expect("challenge") = q["code_challenge"].clone();
        let redirect = format!("{}?code=the-code&state={}", q["redirect_uri"], q["state"]);
        let page = reqwest::get(&redirect)
            .await
            .expect("redirect")
            .text()
            .await
            .expect("page");
        assert!(page.contains("You can close this window"));
    });
    let cred = usersync_runtime::login::login(
        usersync_runtime::login::LoginRequest {
            connection: "conn",
            plan: &plan,
            client_secret: &secret,
            credential_file: &cred_path,
            settings: &settings,
            listen: "127.0.0.1:0".parse().expect("addr"),
            timeout: Duration::from_secs(10),
        },
        move |u| {
            let _ = tx.send(u.to_string());
        },
    )
    .await
    .expect("login");
    browser.await.expect("browser");
    assert!(!format!("{cred:?}").contains("rt-1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cred_path).expect("file").permissions().mode() & 0o777,
        0o600
    );
    let mut s = fast();
    s.credential_file = Some(cred_path.clone());
    let c = client_with("google", &base, plan, &[("client_secret", "web-secret")], s);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cred_path).expect("read")).expect("json");
    assert_eq!(
        stored["refresh_token"], "rt-2",
        "a rotated refresh token is stored"
    );
    assert_eq!(
        std::fs::metadata(&cred_path).expect("file").permissions().mode() & 0o777,
        0o600
    );
}

// ---------------------------------------------------------------------------------------------
// No secret in trace-level logs

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_appears_in_trace_level_logs_or_errors() {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let buf = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish();
    let _guard = subscriber.set_default();

    let client_secret = "cs-VERY-SECRET-1";
    let api_token = "ssws-VERY-SECRET-2";
    let access = "at-VERY-SECRET-3";
    let key_line = TEST_KEY.lines().nth(3).expect("key line").to_string();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    // client secret flow with a 401 refresh, a 503 retry and a 429 wait
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => token_ok(access, 3600),
        _ => match c2.fetch_add(1, Ordering::SeqCst) {
            0 => Resp::json(401, serde_json::json!({})),
            1 => Resp::json(503, serde_json::json!({})),
            2 => Resp::json(429, serde_json::json!({})).with("Retry-After", "0"),
            _ => users_listing(r),
        },
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("entra", &base, plan, &[("client_secret", client_secret)]);
    c.run_query(&Query::ListUsers).await.expect("users");

    // API token, and an endpoint that echoes the credential back in an error body
    let base = serve(|r| {
        Resp::json(403, serde_json::json!({"message": format!("forbidden for {}", r.header("authorization").unwrap_or_default())}))
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", api_token)]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    errors.lock().expect("errors").push(format!("{e} {e:?}"));

    // assertion flow against a token endpoint that rejects it and echoes the assertion
    let base = serve(|r| {
        Resp::json(
            401,
            serde_json::json!({"error": "invalid_client", "error_description": r.body.clone()}),
        )
    })
    .await;
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: format!("{base}/token"),
        client_id: "c".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: None,
        alg: AssertionAlg::RS256,
        scopes: vec![],
        dpop: false,
    };
    let c = client("okta", &base, plan, &[("private_key", TEST_KEY)]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    errors.lock().expect("errors").push(format!("{e} {e:?}"));
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    errors
        .lock()
        .expect("errors")
        .push(serde_json::to_string(&r).expect("json"));

    let logs = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf8");
    assert!(logs.contains("http_request"), "trace logs were captured");
    assert!(logs.contains("token_request"));
    let errors = errors.lock().expect("errors").join("\n");
    for secret in [client_secret, api_token, access, key_line.as_str()] {
        assert!(!logs.contains(secret), "secret `{secret}` leaked into the logs");
        assert!(
            !errors.contains(secret),
            "secret `{secret}` leaked into an error: {errors}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// End to end through the CLI: `usersync -vvv doctor` against the Okta emulator

/// Kills the emulator process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_doctor_checks_each_okta_flow_and_trace_logs_hold_no_secret() {
    use std::io::BufRead as _;
    let bin = crate::support::usersync_bin();
    let dir = tempfile::tempdir().expect("dir");
    let mut emu = Child(
        std::process::Command::new(&bin)
            .args([
                "emulator",
                "--provider",
                "okta",
                "--users",
                "12",
                "--groups",
                "4",
                "--tls",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("emu"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the emulator"),
    );
    let mut line = String::new();
    std::io::BufReader::new(emu.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("emulator banner");
    let j: serde_json::Value = serde_json::from_str(&line).expect("emulator JSON");
    let https = j["https_url"].as_str().expect("https url");
    let ca = j["ca_path"].as_str().expect("ca path");
    let key_path = j["client"]["auth"]["oauth"]["private_key_path"]
        .as_str()
        .expect("key");
    let client_id = j["credentials"]["client_id"].as_str().expect("client id");
    let token = j["credentials"]["api_token"].as_str().expect("token").to_string();
    let limited = j["credentials"]["limited_api_token"]
        .as_str()
        .expect("limited")
        .to_string();
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[runtime]
ca_bundle = "{ca}"

[[connections]]
name = "okta-token"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
api_token = {{ env = "RT_OKTA_TOKEN" }}

[[connections]]
name = "okta-service-app"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
client_id = "{client_id}"
private_key = {{ file = "{key_path}" }}
signing_alg = "ES256"
dpop = true

[[connections]]
name = "okta-limited"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
api_token = {{ env = "RT_OKTA_LIMITED" }}
"#
        ),
    )
    .expect("config");
    let out = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["-vvv", "doctor"])
        .env("RT_OKTA_TOKEN", &token)
        .env("RT_OKTA_LIMITED", &limited)
        .env_remove("RUST_LOG")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the limited token fails a required check\n{stdout}\n{stderr}"
    );
    let section = |name: &str| {
        let start = stdout
            .find(&format!("connection `{name}`"))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        let rest = &stdout[start + 1..];
        rest[..rest.find("\nconnection `").unwrap_or(rest.len())].to_string()
    };
    let service = section("okta-service-app");
    assert!(!service.contains("FAIL"), "{service}");
    assert!(
        service.contains("DPoP token issued") && service.contains("issuer `CN=usersync emulator"),
        "{service}"
    );
    assert!(!section("okta-token").contains("FAIL"), "{stdout}");
    let limited_out = section("okta-limited");
    assert!(
        limited_out.contains("FAIL")
            && limited_out.contains("HTTP 403")
            && limited_out.contains("okta.groups.read"),
        "{limited_out}"
    );
    assert!(
        stderr.contains("http_request") && stderr.contains("token_request"),
        "trace logs were written"
    );
    let key = std::fs::read_to_string(key_path).expect("key");
    let mut secrets = vec![token, limited];
    secrets.extend(
        key.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(String::from),
    );
    for s in secrets {
        assert!(
            !stdout.contains(&s) && !stderr.contains(&s),
            "a secret leaked into the doctor output or its trace logs"
        );
    }
}
