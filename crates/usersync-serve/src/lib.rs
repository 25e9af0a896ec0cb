//! `usersync serve`: one long-running process that runs each connection on its schedule and
//! lets an operations team watch and steer it.
//!
//! ```text
//! scheduler (schedule.rs: when; scheduler.rs: start, never two runs of one job at once)
//!     -> Jobs::run (the host's sync of one connection) -> JobResult
//!     -> state (service.rs), metrics (metrics.rs), webhooks (webhook.rs)
//! HTTP (http.rs): /healthz, /readyz, /metrics, the status page (page.rs), the JSON API,
//!     approve / run now (POST, CSRF token), auth on everything but /healthz
//! ```
//! This crate does not know how to sync: the host hands it a [`Jobs`] implementation. It owns
//! time (schedules, backoff, jitter); the engine never reads the clock for it.

pub mod http;
pub mod metrics;
mod page;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod target;
mod tls;
pub mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use usersync_config::serve::ServeConfig;
use usersync_config::Secret;
use usersync_store::Store;
use usersync_sync::RunReport;

pub use service::Service;

/// A failure of the service itself (not of a run).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load the TLS certificate/key: {0}")]
    Tls(String),
    /// `[serve]` has no credentials: nothing is served without auth.
    #[error(
        "[serve] has no credentials: set `token = {{ env = \"USERSYNC_SERVE_TOKEN\" }}` (or `username` and \
         `password`) in the config; usersync serve never runs without auth"
    )]
    NoAuth,
}

/// The result of one run of a job, as the host reports it.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The engine's report (status, counts, errors, plan).
    pub report: RunReport,
    /// Responses with HTTP 429 or a provider's throttling error.
    pub throttled_responses: u64,
    /// Milliseconds spent waiting for rate limits.
    pub throttled_ms: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// The connector's plugin library was refused (the run could not start).
    pub plugin_refused: bool,
    /// Requests by operation and status, and the pushes of the targets the connection feeds.
    pub detail: RunDetail,
}

/// What a run did beyond its report: its requests broken down, and the pushes that followed it.
#[derive(Debug, Clone, Default)]
pub struct RunDetail {
    /// Requests to the provider by operation and status.
    pub requests: Vec<RequestStat>,
    /// The pushes of the targets the connection feeds (after an applied run), in config order.
    pub pushes: Vec<PushResult>,
}

/// Requests of one operation that ended with one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStat {
    /// The HTTP method (`GET`, `POST`, ...) or `token`.
    pub operation: String,
    /// The HTTP status code, or `error` when no response came.
    pub status: String,
    /// Requests.
    pub count: u64,
}

/// One push of a target (recorded in run history as `push:<target>`).
#[derive(Debug, Clone)]
pub struct PushResult {
    /// The target's name.
    pub target: String,
    /// The push run's id.
    pub run_id: Option<i64>,
    /// `applied`, `blocked` or `failed`.
    pub status: usersync_store::RunStatus,
    /// Some objects were refused by the application (the rest applied).
    pub partial: bool,
    /// Wall time.
    pub duration_ms: u64,
    /// Users the push created in the application (its plan's creations; 0 unless it applied).
    pub users_provisioned: u64,
    /// Groups the push created in the application (0 unless it applied).
    pub groups_provisioned: u64,
    /// Deactivations + deletions of the push's plan.
    pub removals: u64,
    /// Errors and gate messages, one line each.
    pub errors: Vec<String>,
    /// Requests to the target's application by operation and status (counted in
    /// `usersync_http_requests` as connection `push:<target>`).
    pub requests: Vec<RequestStat>,
}

/// A configured target, as the status page lists it before its first push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The target's name.
    pub name: String,
    /// The connections feeding it, in config order.
    pub fed_by: Vec<String>,
}

/// Credentials the HTTP listener requires (resolved from `[serve]`'s secret references).
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`, or basic auth with the token as password.
    Token(Secret),
    /// Basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// What serve runs with: `[serve]`, the jobs in config order and the resolved credentials.
#[derive(Clone)]
pub struct Settings {
    /// `[serve]` (schedules included).
    pub serve: ServeConfig,
    /// Connection names in config order.
    pub jobs: Vec<String>,
    /// Credentials.
    pub credentials: Credentials,
    /// Resolved webhook URLs, in `serve.webhooks` order (secrets: never logged or shown).
    pub webhook_urls: Vec<Secret>,
}

/// A boxed future, for the object-safe [`Jobs`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the host provides: how to run a job, read the store, and reload the config.
pub trait Jobs: Send + Sync + 'static {
    /// Run one connection now; `allow_deletes` is the operator's approval of a blocked plan.
    fn run(&self, job: &str, allow_deletes: Option<u64>) -> BoxFuture<'_, JobResult>;
    /// Open the store for reading.
    fn store(&self) -> Result<Box<dyn Store>, String>;
    /// Load and validate the config again; the host switches to it only when this is `Ok`.
    fn reload(&self) -> Result<Settings, String>;
    /// Files whose change triggers a reload (the config file).
    fn watched(&self) -> Vec<PathBuf>;
    /// The configured targets (asked at start and after each reload that switched).
    fn targets(&self) -> Vec<TargetSpec> {
        Vec::new()
    }
    /// Push one target now (an operator approved its blocked push: `allow_deletes` is that
    /// plan's removals). Returns the push (empty: the target is no longer configured).
    fn push(&self, _target: &str, _allow_deletes: Option<u64>) -> BoxFuture<'_, Vec<PushResult>> {
        Box::pin(async { Vec::new() })
    }
    /// Whether this process may run `job` now. `Err`: another host runs it (serve on several
    /// hosts sharing one PostgreSQL store: the lease holder runs, the others stand by and only
    /// answer reads). Called by the scheduler before each start; must not block. Default: yes.
    fn may_run(&self, _job: &str) -> Result<(), Standby> {
        Ok(())
    }
    /// Serve on several hosts: who runs the connections (`host:pid`), as last seen; shown in the
    /// JSON API. Must not block. Default: `None` (this host alone).
    fn leader(&self) -> Option<String> {
        None
    }
}

/// Why a job does not run on this host now: another host holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// Who holds it, as far as this host knows (`host:pid`), or why it could not be taken.
    pub holder: String,
    /// When to ask again.
    pub retry: std::time::Duration,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How often the config file is checked for changes.
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Run the service until SIGTERM (or SIGINT): bind, serve HTTP(S), schedule, reload on SIGHUP
/// or a config file change. `listening` is called with the URL once the port is bound. Returns
/// the jobs still running when the shutdown grace ran out (empty: a clean stop).
pub async fn run(
    jobs: std::sync::Arc<dyn Jobs>,
    settings: Settings,
    listening: impl FnOnce(&str),
) -> Result<Vec<String>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = http::bind(settings.serve.listen).await?;
    let tls = settings.serve.tls.as_ref().map(tls::acceptor).transpose()?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.serve.listen.to_string(),
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut term = signal(SignalKind::terminate()).map_err(|source| ServeError::Bind {
        addr: "SIGTERM handler".into(),
        source,
    })?;
    let mut hup = signal(SignalKind::hangup()).map_err(|source| ServeError::Bind {
        addr: "SIGHUP handler".into(),
        source,
    })?;
    let svc = Service::new(jobs, settings);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(http::serve(listener, http::router(svc.clone()), tls, stop_rx));
    tokio::spawn(scheduler::watch_config(svc.clone(), WATCH_EVERY));
    let s = svc.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: no new runs start; running ones may finish");
                    s.stop();
                    return;
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupted: no new runs start; running ones may finish");
                    s.stop();
                    return;
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = s.reload();
                }
            }
        }
    });
    listening(&format!("{scheme}://{addr}"));
    let left = scheduler::run(svc).await;
    let _ = stop_tx.send(true);
    Ok(left)
}
