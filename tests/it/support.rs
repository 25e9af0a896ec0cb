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
        "{} is missing: run `cargo build --workspace` before `cargo test` (see README)",
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
            "{file} not found under {} or its deps/: run `cargo build --workspace` first",
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
