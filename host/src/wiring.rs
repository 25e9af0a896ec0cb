//! Host glue shared by `sync`, `users`, `groups`, `runs`, `explain` and `config`: loading the
//! config, opening the store, building a connection's runtime client, progress display, and
//! small output helpers.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use usersync_config::{Config, ConfigError, ConfigIssue, ConnectionConfig};
use usersync_runtime::{ConnectionClient, ConnectionSettings, RetryPolicy, RuntimeError};
use usersync_sdk::{Connector, ConnectorError, Manifest, Options, Query, Session};
use usersync_store::{PgStore, SqliteStore, Store, StoreError};
use usersync_sync::{FailureKind, Progress, QueryFailure, QueryResult, QueryRunner};

use crate::registry::{Entry, Lookup, Registry};
use crate::GlobalArgs;

/// `println!` that ignores a closed stdout (`usersync users list | head`) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
pub(crate) use outln;

/// Exit codes of the sync family of commands.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A run or command failed.
    pub const FAILURE: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// A safety gate blocked a run.
    pub const BLOCKED: u8 = 3;
}

/// Output format of listing and sync commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// JSON on stdout.
    Json,
}

/// Unwrap a `Result<T, u8>` whose error is an exit code already explained to the user, returning
/// `Ok(code)` from the calling command.
#[macro_export]
macro_rules! or_exit {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(code) => return Ok(code),
        }
    };
}

/// Load the config, or print why not and return the usage exit code.
pub fn load_config(global: &GlobalArgs) -> Result<Config, u8> {
    match Config::discover(global.config.as_deref()) {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ConfigError::Invalid(_) | ConfigError::Parse { .. }) {
                eprintln!("hint: `usersync config check` validates the whole file");
            }
            Err(exit::USAGE)
        }
    }
}

/// [`load_config`] for a command with `--format`: with `--format json` the error is also
/// printed on stdout as one JSON object (see [`print_json_error`]), so a script reading stdout
/// learns why there is no report.
pub fn load_config_as(global: &GlobalArgs, format: Format) -> Result<Config, u8> {
    match Config::discover(global.config.as_deref()) {
        Ok(c) => Ok(c),
        Err(e) => {
            let issues = config_error_issues(&e);
            if format == Format::Json {
                // the issues' one-line messages (no caret snippet), else the error itself
                let message = if issues.is_empty() {
                    e.to_string()
                } else {
                    issues
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                print_json_error("config", &message, &issues);
            }
            eprintln!("error: {e}");
            if matches!(e, ConfigError::Invalid(_) | ConfigError::Parse { .. }) {
                eprintln!("hint: `usersync config check` validates the whole file");
            }
            Err(exit::USAGE)
        }
    }
}

/// The problems of a config that failed to load, by file and line, for JSON output: the
/// semantic issues as they are; a TOML syntax error as one issue whose message is toml's
/// without the caret snippet (`TOML parse error at line 7, column 21: invalid table header,
/// expected `.`, `]``). Empty when the file could not be found or read.
pub fn config_error_issues(e: &ConfigError) -> Vec<ConfigIssue> {
    match e {
        ConfigError::Invalid(issues) => issues.clone(),
        ConfigError::Parse { path, message } => {
            let (line, plain) = plain_toml_message(message);
            vec![ConfigIssue {
                file: path.clone(),
                line,
                connection: None,
                option: None,
                message: plain,
            }]
        }
        _ => Vec::new(),
    }
}

/// toml's error message without its source snippet: `(line, "TOML parse error at line L,
/// column C: what, more")`. toml prints the header line, then the snippet (lines whose text up
/// to the first `|` is blank or a line number), then what is wrong.
pub fn plain_toml_message(message: &str) -> (usize, String) {
    let mut lines = message.lines();
    let header = lines.next().unwrap_or_default().trim().to_string();
    let line = header
        .find("line ")
        .and_then(|i| {
            header[i + 5..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let what: Vec<&str> = lines
        .filter(|l| match l.split_once('|') {
            Some((gutter, _)) => !gutter.trim().chars().all(|c| c.is_ascii_digit()),
            None => true,
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if what.is_empty() {
        (line, header)
    } else {
        (line, format!("{header}: {}", what.join(", ")))
    }
}

/// The error object a `--format json` command prints on stdout instead of its report when it
/// cannot produce one: `{"error": {"kind": "config", "message": "...", "issues": [...]}}`
/// (`issues`: the config problems by file and line, in the shape of `config check --format json`).
pub fn print_json_error(kind: &str, message: &str, issues: &[ConfigIssue]) {
    let v = serde_json::json!({"error": {"kind": kind, "message": message, "issues": issues}});
    outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

/// `USERSYNC_LOCK_WAIT_SECS`: how long a run waits for a connection another run holds (default
/// 0: refuse at once, naming that run).
pub(crate) fn lock_wait() -> anyhow::Result<std::time::Duration> {
    let wait = match std::env::var("USERSYNC_LOCK_WAIT_SECS") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| {
            anyhow::anyhow!("USERSYNC_LOCK_WAIT_SECS must be a whole number of seconds, not `{v}`")
        })?,
        Err(_) => 0,
    };
    Ok(std::time::Duration::from_secs(wait))
}

/// The `[store] url` of a PostgreSQL store, resolved (it may be a secret reference), if set.
pub(crate) fn store_url(config: &Config) -> anyhow::Result<Option<String>> {
    let Some(url) = &config.store.url else {
        return Ok(None);
    };
    let url = url
        .resolve()
        .map_err(|e| anyhow::anyhow!("[store] url in {}: {e}", config.path.display()))?;
    let url = url.expose().to_string();
    if !usersync_store::is_postgres_url(&url) {
        anyhow::bail!(
            "[store] url in {} must be a postgres:// URL (for a SQLite store, set [store] path instead), not `{}`",
            config.path.display(),
            usersync_store::mask_url(&url)
        );
    }
    Ok(Some(url))
}

/// Open the store named in the config for a sync, creating and migrating it when needed: the
/// PostgreSQL store of `[store] url`, else the SQLite file of `[store] path`. An existing store is
/// checked first (schema version; for SQLite, integrity) and refused before anything is fetched
/// or written. See [`lock_wait`] for `USERSYNC_LOCK_WAIT_SECS`.
pub fn open_any_store(config: &Config) -> anyhow::Result<Box<dyn Store>> {
    let wait = lock_wait()?;
    if let Some(url) = store_url(config)? {
        let mut store = PgStore::open(&url)?;
        store.set_lock_wait(wait);
        return Ok(Box::new(store));
    }
    Ok(Box::new(open_store(config)?))
}

/// The SQLite store of `[store] path`, for a sync (what [`open_any_store`] opens without
/// `[store] url`; a command that can only use the file calls it directly and is refused, saying
/// so, when `[store] url` is set).
pub fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    if config.store.url.is_some() {
        anyhow::bail!(
            "this command works with a SQLite store ([store] path) only for now, and {} sets [store] url",
            config.path.display()
        );
    }
    let mut store = SqliteStore::open(&config.store.path)?;
    store.set_lock_wait(lock_wait()?);
    Ok(store)
}

/// Open the store for a command that only reads it and may run before the first sync
/// (`explain`): read-only when it exists, an empty in-memory store otherwise.
pub fn open_store_for_reading(config: &Config) -> anyhow::Result<Box<dyn Store>> {
    if let Some(url) = store_url(config)? {
        return match PgStore::open_read_only(&url) {
            Ok(s) => Ok(Box::new(s)),
            // no store in that database yet: nothing to read, as with a missing file
            Err(StoreError::Open { reason, .. }) if reason.contains("no usersync store") => {
                Ok(Box::new(SqliteStore::open_in_memory()?))
            }
            Err(e) => Err(e.into()),
        };
    }
    if config.store.path.exists() {
        Ok(Box::new(SqliteStore::open_read_only(&config.store.path)?))
    } else {
        Ok(Box::new(SqliteStore::open_in_memory()?))
    }
}

/// Open the store for reading commands (`users`, `groups`, `runs`): it must exist already. Opened
/// read-only, so it is readable even where this user cannot write (see
/// [`SqliteStore::open_read_only`]; a PostgreSQL store's transactions are all read-only).
pub fn open_existing_store(config: &Config) -> Result<Box<dyn Store>, u8> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        exit::FAILURE
    };
    if let Some(url) = store_url(config).map_err(|e| fail(&format!("{e:#}")))? {
        return PgStore::open_read_only(&url)
            .map(|s| Box::new(s) as Box<dyn Store>)
            .map_err(|e| fail(&e));
    }
    let path = &config.store.path;
    if !path.exists() {
        eprintln!(
            "error: there is no store at `{}` yet; run `usersync sync` first (store path from {})",
            path.display(),
            config.path.display()
        );
        return Err(exit::FAILURE);
    }
    SqliteStore::open_read_only(path)
        .map(|s| Box::new(s) as Box<dyn Store>)
        .map_err(|e| fail(&e))
}

/// Select connections by `--connection` names (all when empty), in config (priority) order.
/// Unknown names are a usage error.
pub fn select<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a ConnectionConfig>, u8> {
    for n in names {
        if config.connection(n).is_none() {
            let known: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
            eprintln!(
                "error: no connection named `{n}` in {} (defined: {})",
                config.path.display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
            return Err(exit::USAGE);
        }
    }
    Ok(config
        .connections
        .iter()
        .filter(|c| names.is_empty() || names.iter().any(|n| c.name.eq_ignore_ascii_case(n)))
        .collect())
}

/// Why a connection could not be opened.
pub enum OpenError {
    /// Config problem (unknown connector, bad option, missing secret): exit code 2.
    Config(String),
    /// Runtime problem (bad proxy, unreadable key...): exit code 1.
    Runtime(String),
    /// The connector's plugin library was found but refused (incompatible ABI, not a plugin,
    /// invalid manifest, unsafe permissions, panic while loading): a runtime failure of this
    /// connection only, exit code 1.
    Plugin(String),
}

impl OpenError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            OpenError::Config(m) | OpenError::Runtime(m) | OpenError::Plugin(m) => m,
        }
    }
}

/// What to do about a refused plugin library (appended to every refusal message).
pub const REFUSED_HINT: &str = "hint: `usersync plugins list` shows every library and why it was refused; \
     `usersync connectors list` shows the connectors available now; fix the cause above, rebuild the \
     plugin for this usersync, or install a compatible package with `usersync plugins install <package>`";

/// Why connector `id` cannot be used although plugin libraries stand for it (without the
/// `file:line: connection` prefix): each refused library's path and reason, then
/// [`REFUSED_HINT`].
pub fn refused_message(id: &str, refused: &[&Entry]) -> String {
    let libs: Vec<String> = refused
        .iter()
        .map(|e| format!("{}: {}", e.source, e.refusal().unwrap_or(&e.reason)))
        .collect();
    let what = if libs.len() == 1 {
        "its plugin library was refused"
    } else {
        "every plugin library for it was refused"
    };
    format!(
        "connector `{id}` cannot be used: {what}: {}; {REFUSED_HINT}",
        libs.join("; ")
    )
}

/// Why connector `id` is unknown (without the `file:line: connection` prefix), with what is
/// available and, when some plugin libraries were refused, a pointer to them.
pub fn unknown_message(id: &str, registry: &Registry) -> String {
    let known: Vec<String> = registry.all().iter().map(|c| c.manifest().id).collect();
    let mut m = format!(
        "unknown connector `{id}` (available: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    );
    let refused = registry.refused();
    if !refused.is_empty() {
        let paths: Vec<String> = refused.iter().map(|e| e.source.to_string()).collect();
        m.push_str(&format!(
            "; {} plugin librar{} refused and none stands for `{id}` ({}); `usersync plugins list` says why",
            refused.len(),
            if refused.len() == 1 { "y was" } else { "ies were" },
            paths.join(", ")
        ));
    }
    m
}

/// Why connector `id` has candidates but none is used (a `[plugins.pin]` matching none).
pub fn unused_message(id: &str, unused: &[&Entry]) -> String {
    let why = unused.first().map(|e| e.reason.as_str()).unwrap_or_default();
    let why = why.strip_prefix("not used: ").unwrap_or(why);
    let sources: Vec<String> = unused.iter().map(|e| e.source.to_string()).collect();
    format!(
        "connector `{id}` is not used: {why} (candidates: {})",
        sources.join(", ")
    )
}

/// The runtime settings of a connection.
pub fn settings(conn: &ConnectionConfig) -> ConnectionSettings {
    let r = &conn.runtime;
    ConnectionSettings {
        concurrency: r.concurrency,
        proxy: r.proxy.clone(),
        ca_bundle: r.ca_bundle.clone(),
        connect_timeout: r.connect_timeout,
        request_timeout: r.request_timeout,
        retry: RetryPolicy {
            max_attempts: r.max_retries.saturating_add(1),
            max_throttle_wait: r.max_throttle_wait,
            ..RetryPolicy::default()
        },
        max_throttle_total: r.max_throttle_total,
        credential_file: Some(r.credential_file.clone()),
        max_response_bytes: r.max_response_bytes,
        max_run: Some(r.max_run),
        ..ConnectionSettings::default()
    }
}

/// A connection that passed [`check_connection`].
pub struct Checked {
    /// The validated options.
    pub options: Options,
    /// The opened session; `None` when opening failed for a reason that is not the config's.
    pub session: Option<Box<dyn Session>>,
}

/// Everything about one connection that can be checked offline once its connector is known:
/// the options against the manifest, the connector's own checks of their values (opening a
/// session does no I/O), and every URL the session will contact (base URLs, token endpoint)
/// against the URL rule ([`usersync_config::url_policy`]). `config check` and every command that
/// opens a connection use this, so they refuse the same things, as configuration errors.
///
/// Returns the validated options and the session, or no session when opening failed for a
/// reason that is not the configuration's (a plugin that panicked or answered garbage): that
/// failure is the connection's, reported when its client is built (exit code 1).
pub fn check_connection(
    conn: &ConnectionConfig,
    config_path: &Path,
    connector: &Arc<dyn Connector>,
) -> Result<Checked, Vec<ConfigIssue>> {
    let manifest = connector.manifest();
    let options = conn.check(&manifest, config_path)?;
    let issue = |option: Option<&str>, message: String| ConfigIssue {
        file: config_path.to_path_buf(),
        line: option.map_or(conn.connector_line(), |o| conn.option_line(o)),
        connection: Some(conn.name.clone()),
        option: option.map(str::to_string),
        message,
    };
    let session = match connector.open(&options) {
        Ok(s) => s,
        Err(ConnectorError::Config { option, reason }) => return Err(vec![issue(Some(&option), reason)]),
        Err(_) => {
            return Ok(Checked {
                options,
                session: None,
            })
        }
    };
    let plan = session.auth_plan();
    let mut urls: Vec<(&str, String)> = session.base_urls().into_iter().map(|u| ("base URL", u)).collect();
    if let Some(t) = plan.token_url() {
        urls.push(("token URL", t.to_string()));
    }
    let mut issues = Vec::new();
    for (what, url) in urls {
        if let Err(reason) = usersync_config::url_policy::check_url_allowed(&url) {
            // Name the option the URL came from: the longest value the URL contains.
            let option = conn
                .options
                .iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.trim_end_matches('/'))))
                .filter(|(_, v)| v.len() > 3 && url.contains(v))
                .max_by_key(|(_, v)| v.len())
                .map(|(k, _)| k.as_str());
            let shown = usersync_runtime::transport::redact_url(&url);
            issues.push(issue(
                option,
                format!("{what} `{shown}` is not allowed: {reason}"),
            ));
        }
    }
    if issues.is_empty() {
        Ok(Checked {
            options,
            session: Some(session),
        })
    } else {
        Err(issues)
    }
}

/// Validate a connection against its connector, resolve its secrets and build its client.
pub fn open_client(
    conn: &ConnectionConfig,
    config_path: &Path,
    registry: &Registry,
) -> Result<(ConnectionClient, Manifest), OpenError> {
    let at = || {
        format!(
            "{}:{}: connection `{}`",
            config_path.display(),
            conn.line,
            conn.name
        )
    };
    let connector = match registry.lookup(&conn.connector) {
        Lookup::Active(e) => e.connector.clone().ok_or_else(|| {
            OpenError::Runtime(format!(
                "{}: the active connector `{}` has no implementation (a registry bug)",
                at(),
                conn.connector
            ))
        })?,
        Lookup::Refused(refused) => {
            return Err(OpenError::Plugin(format!(
                "{}: {}",
                at(),
                refused_message(&conn.connector, &refused)
            )))
        }
        Lookup::Unused(unused) => {
            return Err(OpenError::Config(format!(
                "{}: {}",
                at(),
                unused_message(&conn.connector, &unused)
            )))
        }
        Lookup::Unknown => {
            return Err(OpenError::Config(format!(
                "{}: {}",
                at(),
                unknown_message(&conn.connector, registry)
            )))
        }
    };
    let manifest = connector.manifest();
    let Checked { options, .. } = check_connection(conn, config_path, &connector).map_err(|issues| {
        OpenError::Config(
            issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let mut secrets = BTreeMap::new();
    for (name, r) in &conn.secrets {
        if r.is_literal() {
            tracing::warn!(
                connection = conn.name,
                option = name,
                "secret written in the config file"
            );
        }
        let value = r.resolve().map_err(|e| {
            OpenError::Config(format!(
                "{}:{}: connection `{}`: option `{name}`: {e}",
                config_path.display(),
                conn.option_line(name),
                conn.name
            ))
        })?;
        secrets.insert(name.clone(), value);
    }
    let client = ConnectionClient::new(&conn.name, connector, options, secrets, settings(conn)).map_err(
        |e| match e {
            // The connector's errors carry their context, which names the connection
            // (`connection `x` (okta): ...`).
            RuntimeError::Connector { .. } => OpenError::Runtime(e.to_string()),
            _ => OpenError::Runtime(format!("connection `{}`: {e}", conn.name)),
        },
    )?;
    Ok((client, manifest))
}

/// The sync engine's query runner on top of the runtime's client.
pub struct RuntimeRunner {
    client: ConnectionClient,
}

impl RuntimeRunner {
    /// Wrap a client.
    pub fn new(client: ConnectionClient) -> Self {
        RuntimeRunner { client }
    }
}

impl QueryRunner for RuntimeRunner {
    async fn run(&self, query: Query) -> Result<QueryResult, QueryFailure> {
        match self.client.run_query(&query).await {
            Ok(out) => Ok(QueryResult {
                records: out.records,
                skipped: out.skipped,
                requests: 0,
            }),
            Err(e) => Err(query_failure(e)),
        }
    }

    /// Pages go from the runtime to the engine as they are read (issue 20).
    async fn run_pages(
        &self,
        query: Query,
        sink: &mut usersync_sync::runner::PageSink<'_>,
    ) -> Result<QueryResult, QueryFailure> {
        use usersync_runtime::Page;
        use usersync_sync::runner::PageEvent;
        let mut pages = |page: Page| {
            sink(match page {
                Page::Records(r) => PageEvent::Records(r),
                Page::Restart => PageEvent::Restart,
            })
        };
        match self.client.run_query_into(&query, &mut pages).await {
            Ok(out) => Ok(QueryResult {
                records: Vec::new(),
                skipped: out.skipped,
                requests: 0,
            }),
            Err(e) => Err(query_failure(e)),
        }
    }

    fn requests(&self) -> Option<u64> {
        Some(self.client.counters().requests)
    }

    fn rate_budget(&self) -> Option<usersync_sync::runner::RateBudget> {
        self.client
            .counters()
            .lowest_budget
            .map(|b| usersync_sync::runner::RateBudget {
                bucket: b.bucket,
                remaining: b.remaining,
                limit: b.limit,
            })
    }
}

/// A runtime error as the engine's query failure.
fn query_failure(e: RuntimeError) -> QueryFailure {
    let kind = match e.connector_error() {
        Some(ConnectorError::NotFound { .. }) => FailureKind::NotFound,
        Some(ConnectorError::Unsupported { .. }) => FailureKind::Unsupported,
        _ => FailureKind::Failed,
    };
    QueryFailure {
        kind,
        message: e.to_string(),
        requests: 0,
    }
}

/// Progress: an indicatif bar per phase on a terminal, plain log lines otherwise.
pub struct ConsoleProgress {
    connection: String,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    records: AtomicU64,
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<String>,
    client: Option<ConnectionClient>,
    terminal: bool,
}

impl ConsoleProgress {
    /// Progress for one connection; bars only when stderr is a terminal and `enabled`.
    pub fn new(connection: &str, client: Option<ConnectionClient>, enabled: bool) -> Self {
        ConsoleProgress {
            connection: connection.to_string(),
            bar: Mutex::new(None),
            records: AtomicU64::new(0),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            phase: Mutex::new(String::new()),
            client,
            terminal: enabled && std::io::stderr().is_terminal(),
        }
    }

    fn counters_note(&self) -> String {
        match &self.client {
            Some(c) => {
                let k = c.counters();
                let mut s = format!("{} requests", k.requests);
                if k.throttled_ms > 0 {
                    s.push_str(&format!(", throttled {:.1}s", k.throttled_ms as f64 / 1000.0));
                }
                s
            }
            None => String::new(),
        }
    }
}

impl Progress for ConsoleProgress {
    fn phase(&self, name: &str, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
        if self.terminal {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{prefix:.bold} {msg} [{bar:30}] {pos}/{len} queries, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(self.connection.clone());
            bar.set_message(name.to_string());
            if let Ok(mut b) = self.bar.lock() {
                *b = Some(bar);
            }
        } else {
            tracing::info!(connection = %self.connection, queries = total, "{name}");
        }
    }

    fn query_done(&self, records: u64) {
        let recs = self.records.fetch_add(records, Ordering::Relaxed) + records;
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.terminal {
            if let Ok(b) = self.bar.lock() {
                if let Some(bar) = b.as_ref() {
                    bar.inc(1);
                    let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
                    bar.set_message(format!("{phase}: {recs} records, {}", self.counters_note()));
                }
            }
        } else {
            let total = self.total.load(Ordering::Relaxed);
            // One line per 10% on large phases, keeping logs readable.
            let step = (total / 10).max(1);
            if done % step == 0 || done == total {
                tracing::info!(connection = %self.connection, done, total, records = recs, "{}", self.counters_note());
            }
        }
    }

    fn phase_done(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(bar) = b.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Format milliseconds since the epoch as RFC 3339 UTC (`2026-01-31T12:00:00Z`, whole seconds
/// rounded down).
pub fn rfc3339(ms: i64) -> String {
    usersync_sdk::time::iso_secs(ms)
}

/// The width tables are fitted to: `$COLUMNS` when set, else the terminal's width when stdout
/// is a terminal, else none (piped output keeps every character, for `grep` and `cut`).
pub fn terminal_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (c > 0).then_some(c);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; fd 1 is open.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// Column widths for `headers` and `rows` fitted into `max` characters (two spaces between
/// columns): the widest column gives up a character until the table fits or every column is
/// down to its header's width (at least 8).
fn fit_widths(headers: &[&str], rows: &[Vec<String>], max: Option<usize>) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let Some(max) = max else { return widths };
    let floor: Vec<usize> = headers.iter().map(|h| h.chars().count().max(8)).collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(&widths) > max {
        let widest = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > floor[*i])
            .max_by_key(|(_, w)| **w)
            .map(|(i, _)| i);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
    widths
}

/// `s` cut to `width` characters, ending in `…` when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Print rows as an aligned table, fitted to the terminal ([`terminal_width`]): the widest
/// columns are cut (ending in `…`) so that no line wraps.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let widths = fit_widths(headers, rows, terminal_width());
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{:<w$}", cut(c, w))
            })
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// Entries per list in table output of the listing commands unless `--limit`/`--all` say otherwise.
pub const LIST_LIMIT: usize = 50;

/// `--limit N` / `--all` of the listing commands (table output only: `--format json` always has
/// every entry, as `sync` does).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Table output: at most N rows (the count printed below is always complete).
    #[arg(long, value_name = "N", default_value_t = LIST_LIMIT, conflicts_with = "all")]
    pub limit: usize,
    /// Table output: every row (`--format json` always has them all).
    #[arg(long)]
    pub all: bool,
}

impl LimitArgs {
    /// The number of rows to print.
    pub fn rows(&self) -> usize {
        if self.all {
            usize::MAX
        } else {
            self.limit
        }
    }
}

/// The line after a table cut at `shown` of `total` rows: how many more and how to see them.
pub fn more_line(shown: usize, total: usize) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "... and {} more (`--limit N` or `--all` for more, `--format json` for every row)",
            total - shown
        )
    })
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Keep `Arc` in scope for callers building runners.
pub fn runner(client: ConnectionClient) -> Arc<RuntimeRunner> {
    Arc::new(RuntimeRunner::new(client))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::registry::{Entry, Registry, Source};

    fn refused(path: &str, reason: &str) -> Entry {
        Entry {
            id: None,
            version: None,
            abi_version: None,
            source: Source::Plugin(PathBuf::from(path)),
            active: false,
            reason: format!("refused: {reason}"),
            refused: true,
            connector: None,
        }
    }

    #[test]
    fn a_refusal_names_every_library_its_reason_and_what_to_do() {
        let a = refused(
            "/p/libusersync_connector_acme.so",
            "incompatible ABI: plugin ABI version 99",
        );
        let b = refused("/q/libacme.so", "library /q/libacme.so is writable by others");
        let one = super::refused_message("acme", &[&a]);
        assert!(
            one.starts_with(
                "connector `acme` cannot be used: its plugin library was refused: \
                 /p/libusersync_connector_acme.so: incompatible ABI: plugin ABI version 99; hint: "
            ),
            "{one}"
        );
        assert!(one.contains("usersync connectors list") && one.contains("usersync plugins install"));
        assert!(!one.contains("  ") && !one.contains('\n'), "one tidy line: {one}");
        let two = super::refused_message("acme", &[&a, &b]);
        assert!(two.contains("every plugin library for it was refused"), "{two}");
        assert!(
            two.contains("/q/libacme.so: library /q/libacme.so is writable by others"),
            "{two}"
        );
    }

    #[test]
    fn an_unknown_id_lists_what_is_available() {
        let m = super::unknown_message("acme", &Registry::default());
        assert_eq!(m, "unknown connector `acme` (available: none)");
    }

    #[test]
    fn tables_fit_the_width_by_cutting_the_widest_columns() {
        let rows = vec![vec!["a".repeat(40), "b".repeat(30), "c".into()]];
        let headers = ["USERNAME", "EMAIL", "STATE"];
        let w = super::fit_widths(&headers, &rows, None);
        assert_eq!(w, [40, 30, 5]);
        let w = super::fit_widths(&headers, &rows, Some(50));
        assert_eq!(w.iter().sum::<usize>() + 4, 50, "{w:?}");
        assert_eq!(w[2], 5, "narrow columns keep their width");
        // never below the header (or 8): the table may stay wider than a tiny terminal
        let w = super::fit_widths(&headers, &rows, Some(10));
        assert_eq!(w, [8, 8, 5]);
        assert_eq!(super::cut("abcdef", 4), "abc…");
        assert_eq!(super::cut("abc", 4), "abc");
    }

    #[test]
    fn toml_errors_lose_their_snippet() {
        let msg = "TOML parse error at line 7, column 21\n  |\n7 | [connections.options\n  |                     ^\ninvalid table header\nexpected `.`, `]`\n";
        let (line, plain) = super::plain_toml_message(msg);
        assert_eq!(line, 7);
        assert_eq!(
            plain,
            "TOML parse error at line 7, column 21: invalid table header, expected `.`, `]`"
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(super::rfc3339(946_684_799_999), "1999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
