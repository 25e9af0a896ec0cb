//! Issue 22, `usersync serve` with real clients: the real binary against the Okta emulator,
//! driven by reqwest, headless Chromium (the status page; clicked through chromedriver in
//! `browser`) and promtool (`/metrics`), with a small webhook receiver. Chromium, chromedriver
//! and promtool are installed by tests/serve/setup.sh. This file is the harness; the tests are
//! in the submodules.

mod approve;
mod basics;
mod browser;
mod shutdown;
mod targets;

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

    /// Wait until serve has recorded the connection's last run (the store shows a run finished
    /// a moment before serve's own state does): nothing running or queued (20 s at most).
    async fn wait_idle(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.get("/api/status", Some(TOKEN)).await;
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            let c = &v["connections"][0];
            if c["running_since_ms"].is_null() && c["pending"].is_null() {
                return;
            }
            assert!(Instant::now() < until, "the connection stayed busy: {c}");
            tokio::time::sleep(Duration::from_millis(100)).await;
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
