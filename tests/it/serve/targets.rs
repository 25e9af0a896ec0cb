//! Targets: pushes after an applied run, their state on the page, API, metrics and webhooks, and
//! the approval of a push blocked by the target's gate.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_run_pushes_the_targets_its_connection_feeds() {
    let app = crate::support::start_emulator("scim", 0, 0, 1).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("scim-token");
    std::fs::write(&token_file, &app.credentials().api_token).expect("token");
    let target = format!(
        "\n[targets.app]\nconnector = \"scim\"\n[targets.app.options]\nbase_url = \"{}\"\nprofile = \"generic\"\ntoken = {{ file = {} }}\n",
        app.base_url(),
        usersync_bench::toml_str(&token_file.to_string_lossy())
    );
    let s = start(20, &target, "", "").await;
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the source's run", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    // the push is recorded in the same run history, as `push:<target>`
    let until = Instant::now() + Duration::from_secs(60);
    let push = loop {
        let runs = SqliteStore::open_read_only(&s.dir.path().join("store.db"))
            .and_then(|st| st.runs(Some("push:app"), 5))
            .unwrap_or_default();
        if let Some(r) = runs.into_iter().find(|r| r.status != RunStatus::Running) {
            break r;
        }
        assert!(
            Instant::now() < until,
            "no push run of `app` after the source applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(push.status, RunStatus::Applied, "{:?}", push.errors);
    // the application holds the store's active users
    let active = active_count(&s.store());
    let users: serde_json::Value = s
        .http
        .get(format!("{}/Users?count=500", app.base_url()))
        .bearer_auth(&app.credentials().api_token)
        .send()
        .await
        .expect("GET /Users")
        .json()
        .await
        .expect("json");
    assert_eq!(users["totalResults"].as_u64(), Some(active as u64), "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_and_request_breakdowns_show_on_the_page_api_metrics_and_webhooks() {
    let app = crate::support::start_emulator("scim", 0, 0, 1).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("scim-token");
    // a token the application refuses: the first push fails
    std::fs::write(&token_file, "not-the-scim-token-0000").expect("token");
    let (hook, got) = webhook_receiver(0).await;
    let extra = format!(
        "[[serve.webhooks]]\nurl = \"{hook}\"\n\n[targets.app]\nconnector = \"scim\"\n[targets.app.options]\nbase_url = \"{}\"\nprofile = \"generic\"\ntoken = {{ file = {} }}\n",
        app.base_url(),
        usersync_bench::toml_str(&token_file.to_string_lossy())
    );
    let s = start(20, &extra, "", "").await;
    // the target is listed before its first push
    let (st, body) = s.get("/api/status", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["targets"][0]["name"], "app", "{v}");
    assert_eq!(v["targets"][0]["fed_by"], serde_json::json!(["okta"]), "{v}");
    assert_eq!(v["targets"][0]["state"], "idle", "{v}");
    // the provider throttles a share of its answers with 429s
    s.emu
        .set_faults(usersync_emulator::FaultConfig {
            seed: 7,
            error_rate: 0.3,
            error_statuses: vec![429],
            retry_after_secs: 1,
            ..Default::default()
        })
        .expect("faults");

    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the source's run", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    let until = Instant::now() + Duration::from_secs(60);
    while finished_pushes(&s, "app").is_empty() {
        assert!(
            Instant::now() < until,
            "no push of `app` after the source applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(finished_pushes(&s, "app")[0].status, RunStatus::Failed);
    wait_hook(&got, "failed for the target", |e| {
        e["event"] == "failed" && e["target"] == "app" && e["connection"] == "okta"
    })
    .await;
    let (_, body) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let t = &v["targets"][0];
    assert_eq!(
        (&t["state"], &t["last_status"]),
        (&"failing".into(), &"failed".into()),
        "{t}"
    );
    assert!(t["last_errors"].as_array().is_some_and(|e| !e.is_empty()), "{t}");
    assert!(t["runs"].as_array().is_some_and(|r| r.len() == 1), "{t}");

    // the right token: the next run's push applies and the target recovers
    s.emu
        .set_faults(usersync_emulator::FaultConfig::default())
        .expect("faults");
    std::fs::write(&token_file, &app.credentials().api_token).expect("token");
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let until = Instant::now() + Duration::from_secs(60);
    while finished_pushes(&s, "app").len() < 2 {
        assert!(Instant::now() < until, "no second push of `app`");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let push = &finished_pushes(&s, "app")[0];
    assert_eq!(push.status, RunStatus::Applied, "{:?}", push.errors);
    wait_hook(&got, "recovered for the target", |e| {
        e["event"] == "recovered" && e["target"] == "app"
    })
    .await;
    let active = active_count(&s.store());
    assert!(active > 0);

    // metrics: pushes by target and outcome, last success, duration, objects provisioned;
    // requests by connection, operation and status, 429s and seconds waited
    let (st, metrics) = s.get("/metrics", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    for (series, want) in [
        ("usersync_push_runs_total{target=\"app\",outcome=\"failed\"}", 1.0),
        (
            "usersync_push_runs_total{target=\"app\",outcome=\"applied\"}",
            1.0,
        ),
        ("usersync_push_duration_seconds_count{target=\"app\"}", 2.0),
        ("usersync_target_failing{target=\"app\"}", 0.0),
        (
            "usersync_push_objects_provisioned_total{target=\"app\",kind=\"users\"}",
            active as f64,
        ),
    ] {
        assert_eq!(series_value(&metrics, series), want, "{series}\n{metrics}");
    }
    let last = series_value(
        &metrics,
        "usersync_push_last_success_timestamp_seconds{target=\"app\"}",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        last > now - 120.0 && last <= now + 1.0,
        "last success {last}, now {now}"
    );
    let ok = series_value(
        &metrics,
        "usersync_http_requests_total{connection=\"okta\",operation=\"GET\",status=\"200\"}",
    );
    let throttled = series_value(
        &metrics,
        "usersync_http_requests_total{connection=\"okta\",operation=\"GET\",status=\"429\"}",
    );
    let by_status: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("usersync_http_requests_total{connection=\"okta\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let requests: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("usersync_requests_total{connection=\"okta\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(ok >= 2.0, "GET 200s over two runs: {ok}");
    assert!(
        throttled >= 1.0,
        "the 429s of the first run: {throttled}\n{metrics}"
    );
    assert!(
        by_status >= requests && requests > 0.0,
        "the breakdown covers the runs' requests: {by_status} < {requests}\n{metrics}"
    );
    assert!(
        series_value(
            &metrics,
            "usersync_throttled_responses_total{connection=\"okta\"}"
        ) >= throttled,
        "{metrics}"
    );
    assert!(
        series_value(
            &metrics,
            "usersync_rate_limit_wait_seconds_total{connection=\"okta\"}"
        ) >= 1.0,
        "waited at least one Retry-After second\n{metrics}"
    );
    promtool_check(&metrics).await;

    // the page in a real browser shows the target and its pushes
    let url = s.url.replacen("http://", &format!("http://ops:{TOKEN}@"), 1);
    let dom = chromium_dom(&format!("{url}/")).await;
    assert!(dom.contains("id=\"target-app\""), "{dom}");
    assert!(dom.contains("Target app"), "{dom}");
    assert!(dom.contains(&format!("/runs/{}", push.id)), "{dom}");
    // the push's run page (linked from the target's table) opens
    let (st, page) = s.get(&format!("/runs/{}", push.id), Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("push:app") && page.contains("applied"), "{page}");
    s.bodies.lock().expect("bodies").push(dom);
    s.assert_no_secret_served();
    for secret in [app.credentials().api_token.as_str(), "not-the-scim-token-0000"] {
        assert!(!metrics.contains(secret));
        for e in got.lock().expect("hooks").iter() {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
}

/// The SCIM application's users: (userName, active).
async fn app_users(s: &Serve, app: &RunningEmulator) -> Vec<(String, bool)> {
    let users: serde_json::Value = s
        .http
        .get(format!("{}/Users?count=500", app.base_url()))
        .bearer_auth(&app.credentials().api_token)
        .send()
        .await
        .expect("GET /Users")
        .json()
        .await
        .expect("json");
    users["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap_or_default().to_string(),
                u["active"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_blocked_by_the_targets_gate_is_approved_on_the_page_and_its_requests_are_counted() {
    let app = crate::support::start_emulator("scim", 0, 0, 1).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("scim-token");
    std::fs::write(&token_file, &app.credentials().api_token).expect("token");
    // the source may lose users; the target's gate allows 3 deactivations per push
    let target = format!(
        "\n[targets.app]\nconnector = \"scim\"\nmax_removals = 3\nmax_removal_percent = 100\n[targets.app.options]\nbase_url = \"{}\"\nprofile = \"generic\"\ntoken = {{ file = {} }}\n",
        app.base_url(),
        usersync_bench::toml_str(&token_file.to_string_lossy())
    );
    let s = start(20, &target, "", "max_removals = 100\nmax_removal_percent = 100").await;
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let until = Instant::now() + Duration::from_secs(60);
    while finished_pushes(&s, "app").is_empty() {
        assert!(
            Instant::now() < until,
            "no push of `app` after the source applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(finished_pushes(&s, "app")[0].status, RunStatus::Applied);
    let provisioned = app_users(&s, &app).await;
    assert!(provisioned.iter().all(|(_, active)| *active) && provisioned.len() > 5);

    // 5 active users are deprovisioned at the IdP: the source applies, the push of `app` is blocked
    let victims: Vec<(u32, String)> = {
        let org = s.emu.org().read().await;
        org.live_users()
            .filter(|u| u.status == UserStatus::Active)
            .filter(|u| provisioned.iter().any(|(name, _)| name == &u.login))
            .map(|u| (u.ix, u.login.clone()))
            .take(5)
            .collect()
    };
    assert_eq!(victims.len(), 5);
    {
        let mut org = s.emu.org().write().await;
        for (ix, _) in &victims {
            assert!(org.set_status(*ix, UserStatus::Deprovisioned));
        }
    }
    s.wait_idle().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let until = Instant::now() + Duration::from_secs(60);
    while finished_pushes(&s, "app").len() < 2 {
        assert!(Instant::now() < until, "no second push of `app`");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let blocked = finished_pushes(&s, "app")[0].clone();
    assert_eq!(blocked.status, RunStatus::Blocked, "{:?}", blocked.errors);
    assert_eq!(s.runs()[0].status, RunStatus::Applied, "the source applied");
    assert!(
        app_users(&s, &app).await.iter().all(|(_, a)| *a),
        "a blocked push writes nothing"
    );

    // the page and the API show the blocked push: its removals, the gate's reason, approve
    let (_, api) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    let t = &v["targets"][0];
    assert_eq!(t["state"], "blocked", "{t}");
    assert_eq!(t["blocked"]["run_id"], blocked.id, "{t}");
    assert_eq!(t["blocked"]["removals"], 5, "{t}");
    assert!(
        t["blocked"]["removed"].as_array().is_some_and(|r| r.len() == 5),
        "{t}"
    );
    let (_, page) = s.get("/", Some(TOKEN)).await;
    let section = &page[page.find("id=\"target-app\"").expect("target section")..];
    assert!(section.contains("is blocked by a safety gate"), "{section}");
    assert!(section.contains("max_removals"), "the gate's reason: {section}");
    assert!(
        section.contains(&format!("action=\"/runs/{}/approve\"", blocked.id)),
        "{section}"
    );

    // approve on the page: the target is pushed again with exactly those removals
    let (st, body) = s
        .post_form(&format!("/runs/{}/approve", blocked.id), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(
        body.contains("target `app` is pushed again now") && body.contains("up to 5 removals"),
        "{body}"
    );
    let until = Instant::now() + Duration::from_secs(60);
    while finished_pushes(&s, "app")[0].id == blocked.id {
        assert!(Instant::now() < until, "the approved push did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let approved = finished_pushes(&s, "app")[0].clone();
    assert_eq!(approved.status, RunStatus::Applied, "{:?}", approved.errors);
    let after = app_users(&s, &app).await;
    for (_, login) in &victims {
        assert!(
            after.iter().any(|(name, active)| name == login && !active),
            "{login} deactivated in the application: {after:?}"
        );
    }
    assert_eq!(after.iter().filter(|(_, a)| !a).count(), 5);
    let (_, api) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(v["targets"][0]["state"], "idle", "{v}");
    assert!(v["targets"][0]["blocked"].is_null(), "{v}");
    // approving it again (API): refused, it is no longer the target's latest push
    let res = s
        .http
        .post(format!("{}/api/runs/{}/approve", s.url, blocked.id))
        .bearer_auth(TOKEN)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 409);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no longer its latest run")),
        "{body}"
    );

    // the pushes' requests to the application are counted as connection `push:app`
    let (_, metrics) = s.get("/metrics", Some(TOKEN)).await;
    let created = series_value(
        &metrics,
        "usersync_http_requests_total{connection=\"push:app\",operation=\"POST\",status=\"201\"}",
    );
    assert!(created >= provisioned.len() as f64, "{created}\n{metrics}");
    let push_requests: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("usersync_http_requests_total{connection=\"push:app\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let recorded: u64 = finished_pushes(&s, "app").iter().map(|r| r.requests).sum();
    assert_eq!(
        push_requests, recorded as f64,
        "every push request counted\n{metrics}"
    );
    promtool_check(&metrics).await;
    s.assert_no_secret_served();
}
