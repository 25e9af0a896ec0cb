//! The connector conformance suite: one set of checks every usersync connector, built in or
//! plugin, must pass against its emulator (or a third-party author's own fake), in the spirit of
//! rclone's backend test suite. docs/connector-authoring.md, section "Conformance", explains it.
//!
//! Each built-in connector runs it with one line (`connectors/<id>/tests/conformance.rs`):
//!
//! ```ignore
//! usersync_conformance::emulator_conformance!("okta", usersync_connector_okta::connector());
//! ```
//!
//! The checks, each reported by name ([`Report`]):
//!
//! - **Without I/O**, on the connector's own cursor: HTTP 401, 403, 429, 500/502/503 and 404 map to
//!   `Unauthorized`, `Forbidden`, `RateLimited`, `Transient` and `NotFound`; a 200 whose body is
//!   not JSON is `Protocol`; after any error the cursor has not advanced (the same request again).
//! - **Through the real runtime** ([`usersync_runtime::ConnectionClient`]): capability honesty
//!   (every operation the manifest's endpoints declare answers, every other one is `Unsupported`;
//!   each capability flag is true exactly when the answers show it), listings without
//!   duplicates, the minimum request count (one request per page), a wrong credential stops with
//!   an authentication error.
//! - **With the emulator's fault knobs** (the control protocol of `usersync emulator`:
//!   `PUT {control}/faults`, `GET {control}/stats`): a paging loop is stopped or harmless, an empty
//!   page with a next link does not end a listing, an expired page cursor restarts the listing or
//!   stops the run (`CursorExpired`, or `Protocol` where the provider's answer cannot tell), server errors and throttling are retried to the same data, a
//!   malformed body fails the query, a group deleted mid-run is `NotFound`. Each fault check
//!   proves its fault fired (the emulator's counters); without a control URL they are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use usersync_model::{GroupKind, MemberRef, Record};
use usersync_runtime::{
    ConnectionClient, ConnectionSettings, QueryOutput, RetryPolicy, RuntimeError, Secret,
};
use usersync_sdk::{Connector, ConnectorError, HttpResponse, Operation, Options, Query};

/// What the suite runs against: a connector, the options and secrets of a connection to a server
/// (an emulator or the author's own fake), and optionally the server's fault control URL.
pub struct Subject {
    /// The connector under test.
    pub connector: Arc<dyn Connector>,
    /// Connection options (`base_url`, tenant, ...), as in a config file's `[connections.options]`.
    pub options: BTreeMap<String, Value>,
    /// Secret options by name (API token, client secret, key).
    pub secrets: BTreeMap<String, String>,
    /// The server's control URL (`.../_emulator`) speaking the emulator's fault protocol, if any.
    pub control_url: Option<String>,
    /// Runtime settings (default: short retry waits, proxies from the environment ignored).
    pub settings: ConnectionSettings,
}

impl Subject {
    /// A subject from a connector and its connection's options and secrets.
    pub fn new(
        connector: Box<dyn Connector>,
        options: BTreeMap<String, Value>,
        secrets: BTreeMap<String, String>,
    ) -> Self {
        Subject {
            connector: Arc::from(connector),
            options,
            secrets,
            control_url: None,
            settings: fast_settings(),
        }
    }

    /// Drive the fault checks through this control URL (`PUT {url}/faults`, `GET {url}/stats`).
    pub fn with_control_url(mut self, url: impl Into<String>) -> Self {
        self.control_url = Some(url.into());
        self
    }

    /// A subject from an emulator's JSON line (`usersync emulator` prints it; `RunningEmulator::info`
    /// returns it): `client.connector_options`, `client.connector_secrets` and `control_url`.
    pub fn from_emulator_info(connector: Box<dyn Connector>, info: &Value) -> Self {
        let options = info["client"]["connector_options"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let secrets = info["client"]["connector_secrets"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let s = Subject::new(connector, options, secrets);
        match info["control_url"].as_str() {
            Some(url) => s.with_control_url(url),
            None => s,
        }
    }
}

/// Runtime settings with tiny waits, so retries and throttling keep the suite fast.
pub fn fast_settings() -> ConnectionSettings {
    ConnectionSettings {
        no_proxy_env: true,
        retry: RetryPolicy {
            max_attempts: 6,
            max_total: Duration::from_secs(30),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            max_throttle_wait: Duration::from_millis(200),
            slow_down: false,
        },
        max_throttle_total: Some(Duration::from_secs(30)),
        ..ConnectionSettings::default()
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The connector does what the contract says.
    Passed,
    /// It does not: what was expected and what happened.
    Failed(String),
    /// Not applicable here (e.g. no control URL, an operation the connector does not declare).
    Skipped(String),
}

/// Every check's outcome, by name, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `(check name, outcome)`.
    pub checks: Vec<(String, Outcome)>,
}

impl Report {
    fn record(&mut self, name: &str, outcome: Outcome) {
        if let Outcome::Failed(why) = &outcome {
            tracing::warn!(check = name, %why, "conformance check failed");
        }
        self.checks.push((name.to_string(), outcome));
    }

    fn check(&mut self, name: &str, ok: bool, why: impl FnOnce() -> String) {
        self.record(
            name,
            if ok {
                Outcome::Passed
            } else {
                Outcome::Failed(why())
            },
        );
    }

    /// The failed checks: `(name, why)`.
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.checks
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed(w) => Some((n.as_str(), w.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The outcome of the check `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks.iter().find(|(n, _)| n == name).map(|(_, o)| o)
    }

    /// Panic naming every failed check (what a test calls). Skipped checks are listed on stderr
    /// with their reason.
    pub fn assert_passed(&self) {
        for (name, outcome) in &self.checks {
            if let Outcome::Skipped(why) = outcome {
                eprintln!("conformance: {name} skipped: {why}");
            }
        }
        let failures = self.failures();
        if !failures.is_empty() {
            let lines: Vec<String> = failures.iter().map(|(n, w)| format!("  {n}: {w}")).collect();
            panic!(
                "{} of {} conformance checks failed:\n{}",
                failures.len(),
                self.checks.len(),
                lines.join("\n")
            );
        }
    }
}

/// Why the suite could not run at all.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conformance setup: {}", self.0)
    }
}

impl std::error::Error for SetupError {}

/// Run every check against `subject`.
pub async fn run(subject: &Subject) -> Result<Report, SetupError> {
    let mut report = Report::default();
    let manifest = subject.connector.manifest();
    let options = open_options(subject, &subject.secrets)?;
    let client = client(subject, &subject.secrets, "conformance")?;
    let control = subject.control_url.as_deref().map(Control::new);
    if let Some(c) = &control {
        c.faults(json!({})).await?;
    }

    // the reference listing every other check compares with
    let users = client
        .run_query(&Query::ListUsers)
        .await
        .map_err(|e| SetupError(format!("the fault-free user listing failed: {e}")))?;
    let user_ids = ids(&users, false);
    if user_ids.is_empty() {
        return Err(SetupError("the fault-free user listing returned no users".into()));
    }
    let declared: BTreeSet<Operation> = manifest.endpoints.iter().map(|e| e.operation).collect();
    let groups = if declared.contains(&Operation::ListGroups) {
        client
            .run_query(&Query::ListGroups)
            .await
            .map_err(|e| SetupError(format!("the fault-free group listing failed: {e}")))?
    } else {
        QueryOutput::default()
    };

    // every declared query, with ids from the listings (for the cursor checks)
    let roles = if declared.contains(&Operation::ListRoles) {
        client.run_query(&Query::ListRoles).await.ok()
    } else {
        None
    };
    let (first_user, first_group) = (user_ids.first().cloned(), ids(&groups, true).into_iter().next());
    let first_role = roles.as_ref().and_then(|r| ids(r, true).into_iter().next());
    let queries: Vec<Query> = QUERY_OPERATIONS
        .into_iter()
        .filter(|op| declared.contains(op))
        .filter_map(|op| {
            query_for(
                op,
                first_user.as_deref(),
                first_group.as_deref(),
                first_role.as_deref(),
            )
        })
        .collect();
    no_io_checks(&mut report, subject, &options, &declared, &groups, &queries);
    listing_checks(&mut report, &client, &users, &user_ids, control.as_ref()).await;
    capability_checks(&mut report, subject, &client, &declared, &users, &groups).await;
    auth_check(&mut report, subject).await;
    match &control {
        Some(c) => fault_checks(&mut report, subject, c, &user_ids, &groups).await?,
        None => {
            for name in FAULT_CHECKS {
                report.record(
                    name,
                    Outcome::Skipped("no control URL (the server has no fault knobs)".into()),
                );
            }
        }
    }
    Ok(report)
}

/// The names of the fault checks (skipped without a control URL).
pub const FAULT_CHECKS: [&str; 7] = [
    "paging.loop_guard",
    "paging.empty_page",
    "paging.cursor_expiry",
    "faults.server_errors_retried",
    "faults.throttling_retried",
    "faults.malformed_body",
    "faults.vanished_group_not_found",
];

fn open_options(subject: &Subject, secrets: &BTreeMap<String, String>) -> Result<Options, SetupError> {
    Options::validate(
        &subject.connector.manifest(),
        subject.options.clone(),
        secrets.keys().cloned().collect(),
    )
    .map_err(|e| SetupError(format!("the connection's options are refused: {e}")))
}

fn client(
    subject: &Subject,
    secrets: &BTreeMap<String, String>,
    name: &str,
) -> Result<ConnectionClient, SetupError> {
    let secrets = secrets
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect();
    ConnectionClient::new(
        name,
        subject.connector.clone(),
        open_options(subject, &subject.secrets)?,
        secrets,
        subject.settings.clone(),
    )
    .map_err(|e| SetupError(format!("cannot open the connection: {e}")))
}

/// Ids of the users (or groups) a listing returned, and whether any came twice.
fn ids(out: &QueryOutput, groups: bool) -> Vec<String> {
    out.records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) if !groups => Some(u.id.clone()),
            Record::Group(g) if groups => Some(g.id.clone()),
            _ => None,
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn variant(e: &ConnectorError) -> &'static str {
    match e {
        ConnectorError::Unauthorized { .. } => "Unauthorized",
        ConnectorError::Forbidden { .. } => "Forbidden",
        ConnectorError::RateLimited { .. } => "RateLimited",
        ConnectorError::Transient { .. } => "Transient",
        ConnectorError::NotFound { .. } => "NotFound",
        ConnectorError::CursorExpired { .. } => "CursorExpired",
        ConnectorError::Protocol { .. } => "Protocol",
        ConnectorError::Config { .. } => "Config",
        ConnectorError::Unsupported { .. } => "Unsupported",
        ConnectorError::Plugin { .. } => "Plugin",
    }
}

mod faults;
mod offline;
mod through_runtime;

use faults::*;
use offline::*;
use through_runtime::*;

/// Start the built-in emulator of `provider` with an organisation large enough for several pages
/// of users, and run the suite against it with `connector`.
#[cfg(feature = "emulator")]
pub async fn run_against_emulator(
    provider: &str,
    connector: Box<dyn Connector>,
) -> Result<Report, SetupError> {
    let mut opts = usersync_emulator::EmulatorOptions::new(provider);
    opts.gen = usersync_emulator::GenConfig {
        users: 1_100,
        groups: 24,
        seed: 11,
        ..usersync_emulator::GenConfig::default()
    };
    let emu = usersync_emulator::start(opts)
        .await
        .map_err(|e| SetupError(format!("start the {provider} emulator: {e}")))?;
    let info = emu.info().await;
    let subject = Subject::from_emulator_info(connector, &info);
    let report = run(&subject).await;
    emu.shutdown();
    report
}

/// [`run_against_emulator`] on its own runtime, panicking with every failed check: the body of
/// [`emulator_conformance!`].
#[cfg(feature = "emulator")]
pub fn check_against_emulator(provider: &str, connector: Box<dyn Connector>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance suite");
    match rt.block_on(run_against_emulator(provider, connector)) {
        Ok(report) => report.assert_passed(),
        Err(e) => panic!("{e}"),
    }
}

/// One line per connector: a `#[test] fn conformance()` running the whole suite against the
/// built-in emulator of `$provider`.
#[cfg(feature = "emulator")]
#[macro_export]
macro_rules! emulator_conformance {
    ($provider:expr, $connector:expr) => {
        /// The connector conformance suite against its emulator (crates/usersync-conformance).
        #[test]
        fn conformance() {
            $crate::check_against_emulator($provider, $connector);
        }
    };
}
