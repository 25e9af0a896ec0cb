//! Issue 22, `usersync serve` with real clients: the real binary against the Okta emulator,
//! driven by reqwest, headless Chromium (the status page) and promtool (`/metrics`), with a
//! small webhook receiver. Chromium and promtool are installed by tests/serve/setup.sh.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use usersync_bench::{write_config, Connection};
use usersync_emulator::{RunningEmulator, UserStatus};
use usersync_store::{RunStatus, SqliteStore, Store};

const TOKEN: &str = "serve-test-token-6f1d2a9c";

struct Serve {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
    /// Every response body read through [`Serve::get`]/[`Serve::post`], to check for secrets.
    bodies: Arc<Mutex<Vec<String>>>,
}

/// The config: `[serve]` on a free loopback port with a token from a file, `extra_serve` lines
/// in `[serve]`, `conn_lines` in the connection (e.g. `every = "10s"`), and the policy lines.
fn config_text(base: &str, dir: &Path, extra_serve: &str, conn_lines: &str) -> String {
    let token_file = dir.join("serve-token");
    let grace = if extra_serve.contains("shutdown_grace") {
        ""
    } else {
        "shutdown_grace = \"30s\"\n"
    };
    let serve = format!(
        "[serve]\nlisten = \"127.0.0.1:0\"\ntoken = {{ file = {} }}\n{grace}{extra_serve}\n\n",
        usersync_bench::toml_str(&token_file.to_string_lossy())
    );
    let with_lines = base.replacen(
        "connector = \"okta\"\n",
        &format!("connector = \"okta\"\n{conn_lines}\n"),
        1,
    );
    format!("{serve}{with_lines}")
}

async fn start(users: u32, extra_serve: &str, conn_lines: &str, policy: &str) -> Serve {
    let emu = crate::support::start_emulator("okta", users, 8, 22).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let okta = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let config = write_config(dir.path(), &[okta], "", policy).expect("config");
    std::fs::write(dir.path().join("serve-token"), format!("{TOKEN}\n")).expect("token");
    let base = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, config_text(&base, dir.path(), extra_serve, conn_lines)).expect("write config");
    let (child, url) = spawn(&config).await;
    Serve {
        emu,
        dir,
        config,
        child,
        url,
        http: reqwest::Client::builder().no_proxy().build().expect("client"),
        bodies: Arc::new(Mutex::new(Vec::new())),
    }
}

/// Start `usersync serve` and read its URL from the first line on stdout.
async fn spawn(config: &Path) -> (tokio::process::Child, String) {
    let mut child = crate::support::usersync_command(config)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn usersync serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve prints its URL within 60s")
        .expect("read stdout")
        .expect("serve printed nothing (did it exit?)");
    let url = line
        .strip_prefix("usersync serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    // keep draining stdout so the process never blocks on a full pipe
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

impl Serve {
    fn store(&self) -> SqliteStore {
        SqliteStore::open_read_only(&self.dir.path().join("store.db")).expect("store")
    }

    fn runs(&self) -> Vec<usersync_store::RunRecord> {
        // before the first run has created and migrated it, there are none
        match SqliteStore::open_read_only(&self.dir.path().join("store.db")) {
            Ok(st) => st.runs(Some("okta"), 100).expect("runs"),
            Err(_) => Vec::new(),
        }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("GET");
        let status = StatusCode::from_u16(res.status().as_u16()).expect("status");
        let body = res.text().await.expect("body");
        self.bodies.lock().expect("bodies").push(body.clone());
        (status, body)
    }

    async fn post_form(&self, path: &str, csrf: Option<&str>) -> (StatusCode, String) {
        let mut req = self.http.post(format!("{}{path}", self.url)).bearer_auth(TOKEN);
        req = match csrf {
            Some(c) => req.form(&[("csrf", c)]),
            None => req.form(&[("other", "x")]),
        };
        let res = req.send().await.expect("POST");
        let status = StatusCode::from_u16(res.status().as_u16()).expect("status");
        let body = res.text().await.expect("body");
        self.bodies.lock().expect("bodies").push(body.clone());
        (status, body)
    }

    async fn csrf(&self) -> String {
        let (s, body) = self.get("/api/csrf", Some(TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["csrf"].as_str().expect("csrf").to_string()
    }

    /// Wait until the connection's runs satisfy `pred` (60 s at most).
    async fn wait_runs(
        &self,
        what: &str,
        pred: impl Fn(&[usersync_store::RunRecord]) -> bool,
    ) -> Vec<usersync_store::RunRecord> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let runs = self.runs();
            if pred(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; runs: {:?}",
                summary(&runs)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// The secret values this setup holds: serve's token and the emulator's API credentials.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![TOKEN.to_string()];
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("secrets")) {
            for e in rd.flatten() {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    out.push(s.trim().to_string());
                }
            }
        }
        out.retain(|s| s.len() >= 8);
        out
    }

    fn assert_no_secret_served(&self) {
        let bodies = self.bodies.lock().expect("bodies");
        assert!(!bodies.is_empty());
        for secret in self.secrets() {
            for b in bodies.iter() {
                assert!(!b.contains(&secret), "a secret value was served in:\n{b}");
            }
        }
    }
}

fn summary(runs: &[usersync_store::RunRecord]) -> Vec<(i64, &'static str)> {
    runs.iter().map(|r| (r.id, r.status.as_str())).collect()
}

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run `sh tests/serve/setup.sh` (cargo xtask test runs it)")
        })
}

/// A headless Chromium's DOM of `url` (basic credentials in the URL).
async fn chromium_dom(url: &str) -> String {
    let out = tokio::process::Command::new(tool("chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-proxy-server",
            "--dump-dom",
            url,
        ])
        .output()
        .await
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn active_count(store: &SqliteStore) -> usize {
    store
        .users(Some("okta"))
        .expect("users")
        .iter()
        .filter(|u| u.active)
        .count()
}

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
    let mut promtool = tokio::process::Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin.write_all(metrics.as_bytes()).await.expect("write");
    }
    let out = promtool.wait_with_output().await.expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

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

/// A webhook receiver answering 500 to its first `fail_first` requests.
async fn webhook_receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let g = g.clone();
            async move {
                let mut list = g.lock().expect("hooks");
                list.push(v);
                if list.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve hooks") });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_run_shows_its_plan_and_is_approved_with_the_csrf_token() {
    let (json_hook, json_got) = webhook_receiver(1).await;
    let (slack_hook, slack_got) = webhook_receiver(0).await;
    let hooks = format!(
        "[[serve.webhooks]]\nurl = \"{json_hook}\"\nretries = 3\n[[serve.webhooks]]\nurl = \"{slack_hook}\"\nformat = \"slack\"\nevents = [\"blocked\"]\n"
    );
    let s = start(60, &hooks, "", "max_removals = 3\nmax_removal_percent = 100").await;
    // manual connection: nothing runs until asked
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(s.runs().is_empty());
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", None).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "run now without the CSRF token: {body}"
    );
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the first run", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Applied)
    })
    .await;
    assert_eq!(active_count(&s.store()), 60 - count_inactive(&s.emu).await);

    // the provider loses 10 active users: the gate blocks
    let victims: Vec<(u32, String)> = {
        let org = s.emu.org().read().await;
        org.live_users()
            .filter(|u| u.status == UserStatus::Active)
            .map(|u| (u.ix, u.login.clone()))
            .take(10)
            .collect()
    };
    {
        let mut org = s.emu.org().write().await;
        for (ix, _) in &victims {
            assert!(org.remove_user(*ix));
        }
    }
    let active_before = active_count(&s.store());
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let runs = s
        .wait_runs("a blocked run", |r| {
            r.first().is_some_and(|r| r.status == RunStatus::Blocked)
        })
        .await;
    let blocked = runs[0].id;
    assert_eq!(
        active_count(&s.store()),
        active_before,
        "a blocked run changes nothing"
    );

    // the page shows the plan: who would go and why the gate stopped it
    let (st, page) = s.get("/", Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        page.contains(&format!("Run {blocked} is blocked by a safety gate")),
        "{page}"
    );
    assert!(page.contains("max_removals"), "{page}");
    let shown = victims
        .iter()
        .filter(|(_, login)| page.contains(login.as_str()))
        .count();
    assert!(shown >= 1, "the plan names the users it would deactivate: {page}");
    assert!(
        page.contains(&format!("action=\"/runs/{blocked}/approve\"")),
        "{page}"
    );
    let (_, api) = s.get("/api/status", Some(TOKEN)).await;
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(v["connections"][0]["blocked"]["removals"], 10, "{v}");

    // approve without the token: refused, nothing runs
    let (st, body) = s.post_form(&format!("/runs/{blocked}/approve"), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some("0000"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.runs()[0].id, blocked, "no run started");

    // approve with it: the run applies and the store shows it
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("allowing up to 10 removals"), "{body}");
    let runs = s
        .wait_runs("the approved run", |r| {
            r.first()
                .is_some_and(|r| r.id > blocked && r.status != RunStatus::Running)
        })
        .await;
    assert_eq!(runs[0].status, RunStatus::Applied, "{:?}", runs[0].errors);
    let store = s.store();
    let users = store.users(Some("okta")).expect("users");
    for (_, login) in &victims {
        let u = users
            .iter()
            .find(|u| &u.username == login)
            .expect("victim stored");
        assert!(!u.active, "{login} deactivated");
    }
    // approving it again: no longer blocked / not the latest
    let (st, body) = s
        .post_form(&format!("/runs/{blocked}/approve"), Some(&csrf))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("no longer its latest run"), "{body}");

    // webhooks: blocked (the JSON one retried after its 500), recovered; Slack gets text
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let events: Vec<String> = json_got
            .lock()
            .expect("hooks")
            .iter()
            .map(|v| v["event"].to_string())
            .collect();
        if events.iter().filter(|e| e.contains("blocked")).count() >= 2
            && events.iter().any(|e| e.contains("recovered"))
        {
            break;
        }
        assert!(Instant::now() < until, "webhooks received: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = json_got.lock().expect("hooks")[0].clone();
    assert_eq!(first["event"], "blocked");
    assert_eq!(first["removals"], 10);
    assert_eq!(first["connection"], "okta");
    let slack = slack_got.lock().expect("hooks").clone();
    assert_eq!(slack.len(), 1, "slack: only the blocked event: {slack:?}");
    assert!(
        slack[0]["text"].as_str().is_some_and(|t| t.contains("blocked")),
        "{slack:?}"
    );
    s.assert_no_secret_served();
}

async fn count_inactive(emu: &RunningEmulator) -> usize {
    let org = emu.org().read().await;
    org.live_users()
        .filter(|u| {
            !matches!(
                u.status,
                UserStatus::Active | UserStatus::Recovery | UserStatus::PasswordExpired | UserStatus::Locked
            )
        })
        .count()
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
async fn sigterm_during_a_run_exits_cleanly_and_the_store_is_consistent() {
    // a slow provider, and a grace shorter than the run: serve exits while the run is going
    let mut s = start(60, "shutdown_grace = \"1s\"", "", "").await;
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 1000;
    s.emu.ctx.faults.set(f).expect("faults");
    let csrf = s.csrf().await;
    let (st, body) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    s.wait_runs("the run to start", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    s.signal("-TERM");
    let started = Instant::now();
    let st = tokio::time::timeout(Duration::from_secs(30), s.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exits within its bound: {:?}",
        started.elapsed()
    );
    assert_eq!(
        st.code(),
        Some(1),
        "stopped with a run still in progress (exit 1)"
    );
    // the store: the run applied whole or not at all
    let runs = s.runs();
    let db = s.dir.path().join("store.db");
    let after_stop = crate::support::store_state(&db, "okta");
    // the next sync takes over: the interrupted run is marked, the store converges
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 0;
    s.emu.ctx.faults.set(f).expect("faults");
    let run = crate::support::sync_report(&s.config, &[], crate::support::NO_ENV).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let good = crate::support::store_state(&db, "okta");
    match runs[0].status {
        RunStatus::Running => {
            assert!(
                after_stop.users.is_empty() && after_stop.groups.is_empty(),
                "an unfinished run applied nothing"
            )
        }
        RunStatus::Applied => {
            crate::support::assert_same_store(&after_stop, &good, "an applied run applied everything")
        }
        other => panic!("unexpected status {other:?}"),
    }
    let runs = s.runs();
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "{:?}",
        summary(&runs)
    );
    assert!(
        runs.iter().any(|r| r.status == RunStatus::Interrupted)
            || runs[runs.len() - 1].status == RunStatus::Applied,
        "{:?}",
        summary(&runs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_a_running_apply_within_the_grace() {
    let mut s = start(40, "", "", "").await;
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 150;
    s.emu.ctx.faults.set(f).expect("faults");
    let csrf = s.csrf().await;
    let (st, _) = s.post_form("/connections/okta/run", Some(&csrf)).await;
    assert_eq!(st, StatusCode::OK);
    s.wait_runs("the run to start", |r| {
        r.first().is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    s.signal("-TERM");
    let st = tokio::time::timeout(Duration::from_secs(40), s.child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(st.code(), Some(0), "the run finished within the 30s grace");
    let runs = s.runs();
    assert_eq!(runs[0].status, RunStatus::Applied);
    // the store is whole: a sync of the same org afterwards finds it equal and changes nothing
    let db = s.dir.path().join("store.db");
    let after_stop = crate::support::store_state(&db, "okta");
    let mut f = s.emu.ctx.faults.config();
    f.latency_ms = 0;
    s.emu.ctx.faults.set(f).expect("faults");
    let run = crate::support::sync_report(&s.config, &[], crate::support::NO_ENV).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    crate::support::assert_same_store(
        &crate::support::store_state(&db, "okta"),
        &after_stop,
        "after a clean stop",
    );
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

/// `promtool check metrics` accepts `text`.
async fn promtool_check(text: &str) {
    let mut promtool = tokio::process::Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write");
    }
    let out = promtool.wait_with_output().await.expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the series `series` (name and labels, exactly) in a Prometheus exposition.
fn series_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series `{series}` in\n{metrics}"))
        .parse()
        .expect("a number")
}

/// The push runs of `target` that finished, newest first.
fn finished_pushes(s: &Serve, target: &str) -> Vec<usersync_store::RunRecord> {
    SqliteStore::open_read_only(&s.dir.path().join("store.db"))
        .and_then(|st| st.runs(Some(&format!("push:{target}")), 20))
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.status != RunStatus::Running)
        .collect()
}

/// Wait until the webhook receiver got an event satisfying `pred`.
async fn wait_hook(
    got: &Mutex<Vec<serde_json::Value>>,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if got.lock().expect("hooks").iter().any(&pred) {
            return;
        }
        assert!(
            Instant::now() < until,
            "no webhook {what}; got {:?}",
            got.lock().expect("hooks")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
