//! Helpers shared by the integration-test modules.
#![allow(dead_code)]

use std::path::PathBuf;

/// The cargo profile directory holding the built binaries and plugins (`target/debug`).
/// Derived from this test executable's path (`target/debug/deps/it-*`), so it works with any
/// `CARGO_TARGET_DIR`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test executable lives in <target>/<profile>/deps")
}

/// Path of the `usersync` binary built by `cargo build --workspace`.
pub fn usersync_bin() -> PathBuf {
    let p = profile_dir().join("usersync");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask test` (or `cargo build --workspace` before `cargo test`; see README)",
        p.display()
    );
    p
}

/// `usersync --config <config>` as the tests run it: the caller's `RUST_LOG` removed, the emulators'
/// loopback addresses never proxied, the process killed when the handle is dropped.
pub fn usersync_command(config: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(usersync_bin());
    c.arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .kill_on_drop(true);
    c
}

/// Path of a cdylib built by `cargo build --workspace`, e.g. `cdylib("usersync_connector_okta")`.
/// `cargo build` uplifts it to the profile directory, `cargo test` may rebuild it in `deps/`: the
/// newer of the two is the current one (taking the first found could load a stale library).
pub fn cdylib(crate_name: &str) -> PathBuf {
    let dir = profile_dir();
    let file = format!("lib{crate_name}{}", std::env::consts::DLL_SUFFIX);
    let newest = [dir.join(&file), dir.join("deps").join(&file)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max();
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "{file} not found under {} or its deps/: run `cargo xtask test` (or `cargo build --workspace` first)",
            dir.display()
        ),
    }
}

/// Start a provider emulator with a generated organisation of `users` and `groups`.
pub async fn start_emulator(
    provider: &str,
    users: u32,
    groups: u32,
    seed: u64,
) -> usersync_emulator::RunningEmulator {
    let mut opts = usersync_emulator::EmulatorOptions::new(provider);
    opts.gen = usersync_emulator::GenConfig {
        users,
        groups,
        seed,
        ..usersync_emulator::GenConfig::default()
    };
    usersync_emulator::start(opts)
        .await
        .unwrap_or_else(|e| panic!("start the {provider} emulator: {e}"))
}

/// Runtime settings with tiny waits, so throttling and retries keep the tests fast.
pub fn fast_settings() -> usersync_runtime::ConnectionSettings {
    usersync_runtime::ConnectionSettings {
        no_proxy_env: true,
        retry: usersync_runtime::RetryPolicy {
            max_attempts: 6,
            max_total: std::time::Duration::from_secs(20),
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
            max_throttle_wait: std::time::Duration::from_millis(5),
            slow_down: false,
        },
        // Throttle waits are capped at 5 ms, so the default budget (10 waits, 50 ms) would give up
        // on a throttle that a loaded machine keeps up a little longer; bound it like errors.
        max_throttle_total: Some(std::time::Duration::from_secs(20)),
        ..usersync_runtime::ConnectionSettings::default()
    }
}

/// Turn the change feeds off in a written config (`incremental = false` after each
/// `connector = ...` line), for a test of full-run semantics: a user vanishing from a listing,
/// a fault mid-listing, the requests of a listing.
pub fn full_runs_only(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).expect("read config");
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("connector = ") {
            out.push_str("incremental = false\n");
        }
    }
    std::fs::write(config, out).expect("write config");
}

/// A number at a JSON pointer of a `usersync sync --format json` report (panics naming it).
pub fn count(report: &serde_json::Value, path: &str) -> u64 {
    report
        .pointer(path)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("no {path} in {report}"))
}

/// A reverse proxy in front of `upstream` (`http://host:port`) that answers `status` with `body`
/// for every path (and query) containing `refuse`, as a gateway that does not route, or forbids,
/// some API paths; everything else is forwarded. Returns the proxy's base URL.
pub async fn proxy_refusing(
    upstream: String,
    refuse: &'static str,
    status: u16,
    body: &'static str,
) -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let refused = StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if path.contains(refuse) {
                return (refused, body).into_response();
            }
            let method = req.method().clone();
            let headers = req.headers().clone();
            let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            let mut rb = client.request(method, format!("{upstream}{path}")).body(bytes);
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    rb = rb.header(k, v);
                }
            }
            match rb.send().await {
                Ok(r) => {
                    let status = r.status();
                    let hdrs = r.headers().clone();
                    let bytes = r.bytes().await.unwrap_or_default();
                    let mut resp = (status, bytes).into_response();
                    for (k, v) in &hdrs {
                        if k != "content-length" && k != "transfer-encoding" {
                            resp.headers_mut().insert(k.clone(), v.clone());
                        }
                    }
                    resp
                }
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// What one `usersync sync --format json` run printed: its exit code, the reports (one per
/// connection), and the raw output for messages and leak checks.
pub struct SyncRun {
    pub code: i32,
    pub reports: Vec<serde_json::Value>,
    pub stdout: String,
    pub stderr: String,
}

impl SyncRun {
    /// Parse what `usersync sync --format json` printed; panics naming the config's connectors
    /// (and showing both streams) when stdout is not a JSON array of reports.
    pub fn parse(config: &std::path::Path, code: i32, stdout: String, stderr: String) -> SyncRun {
        let reports: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{}: `usersync sync --format json` printed no JSON report array ({e}); exit {code}\n\
                 stdout: {stdout}\nstderr: {stderr}",
                connectors_of(config)
            )
        });
        SyncRun {
            code,
            reports,
            stdout,
            stderr,
        }
    }

    /// The report of the config's only connection (panics, showing the output, unless there is
    /// exactly one).
    pub fn report(&self) -> serde_json::Value {
        match self.reports.as_slice() {
            [one] => one.clone(),
            other => panic!(
                "expected one report, got {}; exit {}\nstdout: {}\nstderr: {}",
                other.len(),
                self.code,
                self.stdout,
                self.stderr
            ),
        }
    }
}

/// The connectors a config names (`connector = "..."` lines), for failure messages.
fn connectors_of(config: &std::path::Path) -> String {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("connector"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .collect();
    if names.is_empty() {
        format!("config {}", config.display())
    } else {
        format!("{} (config {})", names.join(", "), config.display())
    }
}

/// No extra environment variables, for [`sync_report`].
pub const NO_ENV: &[(&str, &str)] = &[];

/// `usersync --config <config> sync --format json --no-progress <extra_args>` with `envs` set (see
/// [`usersync_command`]).
pub async fn sync_report<K, V>(config: &std::path::Path, extra_args: &[&str], envs: &[(K, V)]) -> SyncRun
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut c = usersync_command(config);
    c.args(["sync", "--format", "json", "--no-progress"])
        .args(extra_args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: run usersync sync: {e}", connectors_of(config)));
    SyncRun::parse(
        config,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The store's data for `connection` in the SQLite store at `db` (users with their active flag,
/// groups, memberships, effective memberships, photos); empty when there is no store yet.
pub fn store_state(db: &std::path::Path, connection: &str) -> usersync_store::ConnectionState {
    use usersync_store::Store;
    if !db.exists() {
        return usersync_store::ConnectionState::default();
    }
    usersync_store::SqliteStore::open(db)
        .unwrap_or_else(|e| panic!("open store {}: {e}", db.display()))
        .state(connection)
        .unwrap_or_else(|e| panic!("read {connection} from {}: {e}", db.display()))
}

/// `x`'s debug form, cut to 400 characters for failure messages.
pub fn short<T: std::fmt::Debug>(x: &T) -> String {
    let s = format!("{x:?}");
    s.chars().take(400).collect()
}

/// A short description of the first differences between two store states, or None if equal.
pub fn store_diff(
    a: &usersync_store::ConnectionState,
    b: &usersync_store::ConnectionState,
) -> Option<String> {
    if a == b {
        return None;
    }
    let mut out = Vec::new();
    for u in &a.users {
        match b.users.iter().find(|x| x.provider_id == u.provider_id) {
            None => out.push(format!("user {} only on the left", u.provider_id)),
            Some(x) if x != u => out.push(format!("user differs: {} vs {}", short(u), short(x))),
            _ => {}
        }
    }
    for u in &b.users {
        if !a.users.iter().any(|x| x.provider_id == u.provider_id) {
            out.push(format!("user {} only on the right", u.provider_id));
        }
    }
    if a.groups != b.groups {
        out.push(format!("groups: {} vs {}", a.groups.len(), b.groups.len()));
    }
    if a.memberships != b.memberships {
        out.push(format!(
            "memberships: {} vs {}",
            a.memberships.len(),
            b.memberships.len()
        ));
    }
    if a.effective != b.effective {
        let left: Vec<_> = a
            .effective
            .iter()
            .filter(|e| !b.effective.contains(e))
            .take(3)
            .collect();
        let right: Vec<_> = b
            .effective
            .iter()
            .filter(|e| !a.effective.contains(e))
            .take(3)
            .collect();
        out.push(format!(
            "effective memberships: {} vs {}; only left: {}; only right: {}",
            a.effective.len(),
            b.effective.len(),
            short(&left),
            short(&right)
        ));
    }
    if a.photos != b.photos {
        out.push("photos differ".to_string());
    }
    out.truncate(6);
    Some(out.join("; "))
}

/// Panics with the first differences when the store's data `got` is not `want` (e.g. the store
/// as it was before a run that had to fail).
pub fn assert_same_store(
    got: &usersync_store::ConnectionState,
    want: &usersync_store::ConnectionState,
    what: &str,
) {
    assert!(!want.users.is_empty(), "{what}: the good store has no users");
    if let Some(d) = store_diff(got, want) {
        panic!("{what}: the store differs from the good store: {d}");
    }
}

/// How often the fault `f` fired since it was set, from the emulator's own counter for its kind:
/// paging faults served for a paging fault, request-level faults injected otherwise.
pub fn faults_fired(emu: &usersync_emulator::RunningEmulator, f: &usersync_emulator::FaultConfig) -> u64 {
    let paging = f.paging_loop_at_page.is_some()
        || f.expire_token_at_page.is_some()
        || f.empty_page_at.is_some()
        || f.repeat_at_page.is_some();
    if paging {
        emu.ctx.faults.paging_served()
    } else {
        emu.ctx.faults.injected()
    }
}

/// (provider id, active) of every stored user, with the users in `off` shown inactive: the
/// expected store after a run that deactivates exactly `off` is `active_flags(&before, off)`.
pub fn active_flags(st: &usersync_store::ConnectionState, off: &[String]) -> Vec<(String, bool)> {
    st.users
        .iter()
        .map(|u| (u.provider_id.clone(), u.active && !off.contains(&u.provider_id)))
        .collect()
}

/// Users and groups of the at-scale correctness tests: 5,000 users and 500 groups, what CI
/// affords in a debug build; `USERSYNC_AT_SCALE_USERS=10000` runs the full size by hand (groups
/// are always a tenth of the users).
pub fn at_scale() -> (u32, u32) {
    const VAR: &str = "USERSYNC_AT_SCALE_USERS";
    let users = match std::env::var(VAR) {
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 10)
            .unwrap_or_else(|| panic!("{VAR}={v:?}: expected a number of users, at least 10")),
        Err(_) => 5_000,
    };
    (users, users / 10)
}
