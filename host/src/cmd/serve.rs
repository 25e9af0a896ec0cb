//! `usersync serve`: the long-running service (crates/usersync-serve). The host's part is
//! wiring: how one connection is synced ([`super::sync::sync_connection`]), how the store is
//! read, and how the config is loaded again on SIGHUP or a change of the file.

mod lease;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use usersync_config::serve::ServeAuth;
use usersync_config::{Config, ConfigError};
use usersync_serve::{
    BoxFuture, Credentials, JobResult, Jobs, PushResult, RequestStat, RunDetail, Settings, TargetSpec,
};
use usersync_store::Store;
use usersync_sync::push::PushReport;
use usersync_sync::RunReport;

use crate::or_exit;
use crate::registry::Registry;
use crate::wiring::{self, exit, OpenError};
use crate::GlobalArgs;

/// Arguments of `usersync serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Runs each connection on its schedule (`every = \"15m\"` or `schedule = \"*/15 * * * *\"` in its
[[connections]] table) and serves the status page, JSON API and metrics on [serve] listen
(default 127.0.0.1:8787; a token or basic credentials from [serve] are required). SIGTERM
stops starting runs and lets a running one finish (up to [serve] shutdown_grace); SIGHUP or a
change of the config file reloads it when valid. See docs/operations.md.

Example:
  USERSYNC_SERVE_TOKEN=$(openssl rand -hex 24) usersync serve"
)]
pub struct ServeArgs {}

/// The host's jobs: sync one connection with the config in force.
struct HostJobs {
    config_path: PathBuf,
    config: RwLock<Config>,
    registry: Registry,
    /// With a PostgreSQL store: the lease that decides which host runs (None: SQLite, one host).
    leadership: Option<Arc<lease::Leadership>>,
}

fn failed(job: &str, message: String) -> JobResult {
    JobResult {
        report: RunReport::failed(None, job, message, Instant::now()),
        throttled_responses: 0,
        throttled_ms: 0,
        retries: 0,
        plugin_refused: false,
        detail: Default::default(),
    }
}

impl HostJobs {
    fn config(&self) -> Config {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The store for a run: with a lease, the PostgreSQL store fenced with it (an apply after the
    /// lease was lost is refused by the database); else what `sync` opens.
    fn open_for_run(&self, config: &Config) -> Result<Box<dyn Store>, String> {
        let Some(leadership) = &self.leadership else {
            return wiring::open_any_store(config).map_err(|e| format!("cannot open the store: {e:#}"));
        };
        let Some(lease) = leadership.current() else {
            return Err(format!(
                "this host ({}) no longer holds the lease `{}`: another host runs the connections",
                leadership.holder(),
                lease::LEASE
            ));
        };
        let url = wiring::store_url(config)
            .and_then(|u| {
                u.ok_or_else(|| {
                    anyhow::anyhow!("[store] url is no longer set (restart serve to change stores)")
                })
            })
            .map_err(|e| format!("cannot open the store: {e:#}"))?;
        let mut store =
            usersync_store::PgStore::open(&url).map_err(|e| format!("cannot open the store: {e}"))?;
        store.set_lock_wait(wiring::lock_wait().map_err(|e| format!("{e:#}"))?);
        store.set_fence(Some(lease));
        Ok(Box::new(store))
    }
}

impl Jobs for HostJobs {
    fn run(&self, job: &str, allow_deletes: Option<u64>) -> BoxFuture<'_, JobResult> {
        let job = job.to_string();
        Box::pin(async move {
            let config = self.config();
            let Some(conn) = config.connection(&job) else {
                return failed(&job, format!("connection `{job}` is no longer in the config"));
            };
            let mut store = match self.open_for_run(&config) {
                Ok(s) => s,
                Err(e) => return failed(&job, e),
            };
            // as the pushes below: the sync's future need not be Send (the engine may hold a
            // store reference across awaits); it runs to completion on this worker thread
            let one = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(super::sync::sync_connection(
                    &mut *store,
                    conn,
                    &config.path,
                    &self.registry,
                    false,
                    allow_deletes,
                    false,
                ))
            });
            // as `sync` does after its sources: push the targets this connection feeds, once it applied
            let mut pushes = Vec::new();
            if one.report.status == usersync_store::RunStatus::Applied {
                let targets: Vec<&usersync_config::TargetConfig> =
                    config.targets.iter().filter(|t| t.fed_by(&job)).collect();
                // the push pipeline's future is not Send (it holds a span guard and a store reference
                // across awaits): run it to completion on this worker thread
                pushes = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(push_counted(
                        &mut *store,
                        &config,
                        &self.registry,
                        &targets,
                        None,
                    ))
                });
                for (p, _) in &pushes {
                    if p.status != usersync_store::RunStatus::Applied {
                        tracing::warn!(target = %p.target, status = p.status.as_str(), run_id = p.run_id, "push after `{job}`: {}", p.errors.join("; "));
                    }
                }
            }
            let c = one.counters.unwrap_or_default();
            JobResult {
                report: one.report,
                throttled_responses: c.throttled_responses,
                throttled_ms: c.throttled_ms,
                retries: c.retries,
                plugin_refused: matches!(one.open_error, Some(OpenError::Plugin(_))),
                detail: detail(&c, &pushes),
            }
        })
    }

    fn push(&self, target: &str, allow_deletes: Option<u64>) -> BoxFuture<'_, Vec<PushResult>> {
        let target = target.to_string();
        Box::pin(async move {
            let config = self.config();
            let Some(t) = config.target(&target) else {
                tracing::warn!(
                    target,
                    "approved push dropped: the target is no longer in the config"
                );
                return Vec::new();
            };
            let failed_push = |e: String| {
                vec![PushResult {
                    target: target.clone(),
                    run_id: None,
                    status: usersync_store::RunStatus::Failed,
                    partial: false,
                    duration_ms: 0,
                    users_provisioned: 0,
                    groups_provisioned: 0,
                    removals: 0,
                    errors: vec![e],
                    requests: Vec::new(),
                }]
            };
            let mut store = match self.open_for_run(&config) {
                Ok(s) => s,
                Err(e) => return failed_push(e),
            };
            let pushes = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(push_counted(
                    &mut *store,
                    &config,
                    &self.registry,
                    &[t],
                    allow_deletes,
                ))
            });
            push_results(&pushes)
        })
    }

    fn store(&self) -> Result<Box<dyn Store>, String> {
        let config = self.config();
        wiring::open_store_for_reading(&config).map_err(|e| format!("{e:#}"))
    }

    fn reload(&self) -> Result<Settings, String> {
        let config = Config::load(&self.config_path).map_err(|e| match e {
            ConfigError::Invalid(issues) => issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        })?;
        let settings = settings(&config)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(settings)
    }

    fn watched(&self) -> Vec<PathBuf> {
        vec![self.config_path.clone()]
    }

    fn may_run(&self, _job: &str) -> Result<(), usersync_serve::Standby> {
        match &self.leadership {
            Some(l) if l.current().is_none() => Err(usersync_serve::Standby {
                holder: l
                    .leader()
                    .unwrap_or_else(|| format!("another host holds the lease `{}`", lease::LEASE)),
                retry: l.interval(),
            }),
            _ => Ok(()),
        }
    }

    fn leader(&self) -> Option<String> {
        self.leadership.as_ref().and_then(|l| l.leader())
    }

    fn targets(&self) -> Vec<TargetSpec> {
        let config = self.config();
        config
            .targets
            .iter()
            .map(|t| TargetSpec {
                name: t.name.clone(),
                fed_by: config
                    .connections
                    .iter()
                    .filter(|c| t.fed_by(&c.name))
                    .map(|c| c.name.clone())
                    .collect(),
            })
            .collect()
    }
}

/// A push with its requests to the application by operation and status.
type CountedPush = (PushReport, Vec<RequestStat>);

/// Push `targets` as `sync` does after its sources (`push::push_targets`), keeping each push's
/// requests by operation and status for serve's metrics.
async fn push_counted(
    store: &mut dyn Store,
    config: &Config,
    registry: &Registry,
    targets: &[&usersync_config::TargetConfig],
    allow_deletes: Option<u64>,
) -> Vec<CountedPush> {
    let mut out = Vec::new();
    for target in targets {
        let sources: Vec<String> = config
            .connections
            .iter()
            .filter(|c| target.fed_by(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let spec = usersync_sync::push::PushSpec {
            target,
            sources,
            dry_run: false,
            allow_deletes,
        };
        // the client the push sends with, kept to read its request breakdown afterwards
        let client: Arc<Mutex<Option<usersync_runtime::ConnectionClient>>> = Arc::default();
        let keep = client.clone();
        let report = usersync_sync::push::push_target(store, &spec, || async move {
            let opened = super::push::open_target(target, &config.path, registry).await?;
            *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened.1 .0.clone());
            Ok(opened)
        })
        .await;
        tracing::info!(target = %target.name, status = report.status.as_str(), run_id = report.run_id, "push finished");
        let requests = client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| request_stats(&c.counters()))
            .unwrap_or_default();
        out.push((report, requests));
    }
    out
}

fn request_stats(c: &usersync_runtime::RunCounters) -> Vec<RequestStat> {
    c.by_request
        .iter()
        .map(|q| RequestStat {
            operation: q.operation.clone(),
            status: q.status.clone(),
            count: q.count,
        })
        .collect()
}

/// Pushes as serve records them.
fn push_results(pushes: &[CountedPush]) -> Vec<PushResult> {
    let applied = |r: &PushReport, n: u64| {
        if r.status == usersync_store::RunStatus::Applied {
            n
        } else {
            0
        }
    };
    pushes
        .iter()
        .map(|(r, requests)| PushResult {
            target: r.target.clone(),
            run_id: r.run_id,
            status: r.status,
            partial: r.partial,
            duration_ms: r.duration_ms,
            users_provisioned: applied(r, r.counts.users_created),
            groups_provisioned: applied(r, r.counts.groups_created),
            removals: r.counts.users_deactivated + r.counts.users_deleted,
            errors: r.errors.clone(),
            requests: requests.clone(),
        })
        .collect()
}

/// A run's requests by operation and status, and its pushes, for serve's page and metrics.
fn detail(c: &usersync_runtime::RunCounters, pushes: &[CountedPush]) -> RunDetail {
    RunDetail {
        requests: request_stats(c),
        pushes: push_results(pushes),
    }
}

/// The service's settings from a loaded config: credentials and webhook URLs resolved (an
/// unset or unreadable secret is an error naming the option, never the value).
fn settings(config: &Config) -> Result<Settings, String> {
    let serve = config.serve.clone();
    let resolve = |what: &str, r: &usersync_config::SecretRef| {
        r.resolve()
            .map_err(|e| format!("{}: [serve] {what}: {e}", config.path.display()))
    };
    let credentials = match &serve.auth {
        None => return Err(usersync_serve::ServeError::NoAuth.to_string()),
        Some(ServeAuth::Token(t)) => Credentials::Token(resolve("token", t)?),
        Some(ServeAuth::Basic { username, password }) => Credentials::Basic {
            username: username.clone(),
            password: resolve("password", password)?,
        },
    };
    let webhook_urls = serve
        .webhooks
        .iter()
        .map(|w| resolve("webhooks.url", &w.url))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Settings {
        serve,
        jobs: config.connections.iter().map(|c| c.name.clone()).collect(),
        credentials,
        webhook_urls,
    })
}

/// `usersync demo --serve`: a `[serve]` section on 127.0.0.1:8787 with a new random token
/// (written to `<dir>/serve-token`, mode 0600) and `every = "15m"` in each connection of the
/// demo's config text. Returns the token (the demo prints it: a local demo's page must be openable).
#[cfg(feature = "emulators")]
pub fn demo_section(dir: &std::path::Path, config: &mut String) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the serve token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("serve-token");
    std::fs::write(&path, format!("{token}\n")).with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    *config = config.replace("\nconnector = ", "\nevery = \"15m\"\nconnector = ");
    config.push_str("\n[serve]\nlisten = \"127.0.0.1:8787\"\ntoken = { file = \"serve-token\" }\n");
    Ok(token)
}

/// Run the command until SIGTERM; returns the process exit code.
pub async fn run(_args: ServeArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config(global));
    let settings = match settings(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let registry = crate::registry::load(global)?;
    let leadership = match wiring::store_url(&config) {
        Ok(None) => None,
        Ok(Some(url)) => match usersync_store::PgStore::open(&url) {
            Ok(store) => {
                let l = lease::Leadership::new(store, config.serve.lease);
                // the first look before the scheduler starts, so a lone host runs at once
                let first = l.clone();
                tokio::task::spawn_blocking(move || first.attempt()).await?;
                tokio::spawn(l.clone().keep());
                Some(l)
            }
            Err(e) => {
                eprintln!("error: cannot open the store: {e}");
                return Ok(exit::FAILURE);
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let jobs = Arc::new(HostJobs {
        config_path: config.path.clone(),
        config: RwLock::new(config),
        registry,
        leadership: leadership.clone(),
    });
    let left = match usersync_serve::run(jobs, settings, |url| {
        wiring::outln!("usersync serve: listening on {url}");
    })
    .await
    {
        Ok(left) => left,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::FAILURE);
        }
    };
    if let Some(l) = leadership {
        // a clean stop hands the connections over at once instead of after the lease time
        tokio::task::spawn_blocking(move || l.release()).await?;
    }
    if left.is_empty() {
        eprintln!("usersync serve: stopped");
        Ok(exit::OK)
    } else {
        eprintln!(
            "usersync serve: stopped with run(s) of {} still in progress: nothing of them was applied unless \
             their apply had committed; each is marked interrupted at its next start",
            left.join(", ")
        );
        // exit now: a run still in progress holds a worker thread (it runs in place), which the
        // runtime's shutdown would wait for; the store's transaction makes stopping it safe
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(i32::from(exit::FAILURE))
    }
}
