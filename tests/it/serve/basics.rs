//! Scheduled runs, auth and rate limiting, metrics through promtool, the page in Chromium, reload
//! on SIGHUP or a file change, HTTPS.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_metrics_pass_promtool_and_the_page_renders_in_chromium() {
    let s = start(40, "", "every = \"10s\"", "").await;
    // the first run at start, the next on the schedule
    let runs = s
        .wait_runs("two scheduled runs", |r| {
            r.iter().filter(|r| r.status == RunStatus::Applied).count() >= 2
        })
        .await;
    let (first, second) = (&runs[runs.len() - 1], &runs[runs.len() - 2]);
    let gap = second.started_ms - first.finished_ms.expect("finished");
    assert!(
        (9_000..30_000).contains(&gap),
        "the second run starts about 10s after the first ended: {gap} ms"
    );

    // no auth: 401 everywhere but /healthz; a wrong token too
    assert_eq!(s.get("/healthz", None).await.0, StatusCode::OK);
    for path in [
        "/",
        "/readyz",
        "/metrics",
        "/api/status",
        "/api/csrf",
        "/runs/1",
        "/api/runs/1",
    ] {
        assert_eq!(s.get(path, None).await.0, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            s.get(path, Some("wrong-token")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    for path in [
        "/connections/okta/run",
        "/runs/1/approve",
        "/api/connections/okta/run",
        "/api/runs/1/approve",
    ] {
        let res = s
            .http
            .post(format!("{}{path}", s.url))
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status().as_u16(), 401, "POST {path} without auth");
    }
    assert_eq!(s.get("/readyz", Some(TOKEN)).await.0, StatusCode::OK);

    // metrics: the expected series after runs, and promtool accepts the exposition
    let (st, metrics) = s.get("/metrics", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    let stored = s.store().users(None).expect("users").len();
    assert!(stored > 0);
    assert!(
        metrics.contains(&format!("usersync_store_objects{{kind=\"users\"}} {stored}\n")),
        "objects in the store: {stored} users\n{metrics}"
    );
    for series in [
        "usersync_runs_total{connection=\"okta\",outcome=\"applied\"}",
        "usersync_last_success_timestamp_seconds{connection=\"okta\"}",
        "usersync_run_duration_seconds_count{connection=\"okta\"}",
        "usersync_requests_total{connection=\"okta\",outcome=\"applied\"}",
        "usersync_gate_blocks_total{connection=\"okta\"} 0",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    promtool_check(&metrics).await;

    // the status page in a real browser
    let url = s.url.replacen("http://", &format!("http://ops:{TOKEN}@"), 1);
    let dom = chromium_dom(&format!("{url}/")).await;
    assert!(dom.contains("id=\"conn-okta\""), "{dom}");
    assert!(dom.contains("every 10s"), "{dom}");
    assert!(dom.contains("applied"), "{dom}");
    s.bodies.lock().expect("bodies").push(dom);
    // a phone-sized screenshot, kept as a CI artifact under target/serve/
    let shots = crate::support::profile_dir().join("..").join("serve");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let png = shots.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = tokio::process::Command::new(tool("chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-proxy-server",
            "--hide-scrollbars",
            "--window-size=412,915",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("{url}/"))
        .output()
        .await
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&png).map(|m| m.len() > 1000).unwrap_or(false),
        "no screenshot at {}",
        png.display()
    );

    // the JSON API has the same data
    let (_, status) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v["connections"][0]["name"], "okta");
    assert_eq!(v["connections"][0]["runs"][0]["status"], "applied");
    s.assert_no_secret_served();

    // wrong credentials are rate limited: 10 failures, then 429 even for the right token
    for _ in 0..10 {
        s.get("/api/status", Some("wrong")).await;
    }
    assert_eq!(
        s.get("/api/status", Some(TOKEN)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_the_old_one() {
    let mut s = start(20, "", "", "").await;
    let good = std::fs::read_to_string(&s.config).expect("config");
    let broken = good.replacen(
        "connector = \"okta\"\n",
        "connector = \"okta\"\nevery = \"soon\"\n",
        1,
    );
    std::fs::write(&s.config, &broken).expect("write");
    s.signal("-HUP");
    let until = Instant::now() + Duration::from_secs(20);
    let note = loop {
        let (_, body) = s.get("/api/status", Some(TOKEN)).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if !v["reload"].is_null() {
            break v;
        }
        assert!(Instant::now() < until, "no reload reported: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(note["reload"]["ok"], false, "{note}");
    let msg = note["reload"]["message"].as_str().expect("message");
    assert!(
        msg.contains("previous one stays in force") && msg.contains("`soon` is not a duration"),
        "{msg}"
    );
    assert_eq!(note["connections"][0]["schedule"], "manual (run now only)");
    // still serving with the old config: a run now works (through the JSON API: the token in a header)
    let csrf = s.csrf().await;
    let api = format!("{}/api/connections/okta/run", s.url);
    let res = s.http.post(&api).bearer_auth(TOKEN).send().await.expect("POST");
    assert_eq!(res.status().as_u16(), 403, "no X-CSRF-Token");
    let res = s
        .http
        .post(&api)
        .bearer_auth(TOKEN)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 202);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["ok"], "`okta` runs now", "{body}");
    s.wait_runs("a run with the old config", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    // a valid change is picked up from the file without a signal
    std::fs::write(
        &s.config,
        good.replacen(
            "connector = \"okta\"\n",
            "connector = \"okta\"\nevery = \"1h\"\n",
            1,
        ),
    )
    .expect("write");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = s.get("/api/status", Some(TOKEN)).await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if v["reload"]["ok"] == true {
            assert_eq!(v["connections"][0]["schedule"], "every 1h");
            break;
        }
        assert!(Instant::now() < until, "the valid config was not picked up: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    s.signal("-TERM");
    let st = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(st.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_when_a_certificate_is_configured() {
    // a test CA and a server certificate it signed
    let certs = tempfile::tempdir().expect("tempdir");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "usersync serve test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let leaf_key = rcgen::KeyPair::generate().expect("server key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("server certificate");
    let (cert, key) = (certs.path().join("serve.pem"), certs.path().join("serve.key"));
    std::fs::write(&cert, leaf.pem()).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    let extra = format!(
        "tls_cert = {}\ntls_key = {}",
        usersync_bench::toml_str(&cert.to_string_lossy()),
        usersync_bench::toml_str(&key.to_string_lossy())
    );
    let mut s = start(10, &extra, "", "").await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    s.http = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA"))
        .build()
        .expect("client");
    assert_eq!(s.get("/healthz", None).await.0, StatusCode::OK);
    assert_eq!(s.get("/api/status", None).await.0, StatusCode::UNAUTHORIZED);
    let (st, body) = s.get("/api/status", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("\"name\":\"okta\""), "{body}");
    // plain HTTP on the TLS port gets no answer
    let plain = reqwest::Client::builder().no_proxy().build().expect("client");
    let http_url = s.url.replacen("https://", "http://", 1);
    assert!(plain.get(format!("{http_url}/healthz")).send().await.is_err());
    s.assert_no_secret_served();
}
