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

/// Status mapping, malformed bodies and "an error does not advance the cursor", on the
/// connector's own cursors (no network).
fn no_io_checks(
    report: &mut Report,
    subject: &Subject,
    options: &Options,
    declared: &BTreeSet<Operation>,
    groups: &QueryOutput,
    queries: &[Query],
) {
    let session = match subject.connector.open(options) {
        Ok(s) => s,
        Err(e) => {
            report.record("status.mapping", Outcome::Failed(format!("open: {e}")));
            return;
        }
    };
    let json_headers = vec![("content-type".to_string(), "application/json".to_string())];
    let answer = |query: &Query, status: u16, body: &[u8]| -> Result<(Option<String>, bool), String> {
        let mut cursor = session
            .query(query)
            .map_err(|e| format!("query {query:?}: {e}"))?;
        let request = cursor.next_request().ok_or("the cursor sent no request")?;
        let response = HttpResponse {
            status,
            headers: json_headers.clone(),
            body: body.to_vec(),
        };
        match cursor.on_response(response) {
            Ok(_) => Ok((None, true)),
            Err(e) => {
                let same = cursor.next_request().as_ref() == Some(&request);
                Ok((Some(format!("{}: {e}", variant(&e))), same))
            }
        }
    };
    let mut kept = true;
    for (name, status, want) in [
        ("status.401_unauthorized", 401, "Unauthorized"),
        ("status.403_forbidden", 403, "Forbidden"),
        ("status.429_rate_limited", 429, "RateLimited"),
        ("status.500_transient", 500, "Transient"),
        ("status.502_transient", 502, "Transient"),
        ("status.503_transient", 503, "Transient"),
    ] {
        match answer(&Query::ListUsers, status, b"{}") {
            Ok((Some(got), same)) => {
                kept &= same;
                report.check(name, got.starts_with(want), || {
                    format!("HTTP {status} gave {got}, not {want}")
                })
            }
            Ok((None, _)) => report.record(
                name,
                Outcome::Failed(format!("HTTP {status} was taken as a page")),
            ),
            Err(e) => report.record(name, Outcome::Failed(e)),
        }
    }
    match answer(&Query::ListUsers, 200, b"{\"users\": [{\"id\": ") {
        Ok((Some(got), same)) => {
            kept &= same;
            report.check("status.bad_json_protocol", got.starts_with("Protocol"), || {
                format!("a 200 with broken JSON gave {got}, not Protocol")
            })
        }
        Ok((None, _)) => report.record(
            "status.bad_json_protocol",
            Outcome::Failed("a 200 with broken JSON was taken as a page".into()),
        ),
        Err(e) => report.record("status.bad_json_protocol", Outcome::Failed(e)),
    }
    // every declared query's cursor: after a 503, 429, 401 or a broken 200, an error other than
    // NotFound and the same request again
    let mut moved = Vec::new();
    for q in queries {
        for (status, body) in [(503, &b""[..]), (429, b""), (401, b""), (200, b"{not json")] {
            match answer(q, status, body) {
                Ok((Some(_), false)) => moved.push(format!("{q:?} after HTTP {status}")),
                // NotFound would make the host record "none" for a failed read
                Ok((Some(got), true)) if got.starts_with("NotFound") => {
                    moved.push(format!("{q:?}: HTTP {status} gave {got}"))
                }
                Ok(_) => {}
                Err(e) => moved.push(e),
            }
        }
    }
    report.check("cursor.error_keeps_position", kept && moved.is_empty(), || {
        format!(
            "after an error, next_request did not return the same request: {}",
            if moved.is_empty() {
                "ListUsers".to_string()
            } else {
                moved.join("; ")
            }
        )
    });
    let group = ids(groups, true).into_iter().next();
    match (declared.contains(&Operation::GroupMembers), group) {
        (true, Some(group_id)) => match answer(&Query::GroupMembers { group_id }, 404, b"{}") {
            Ok((Some(got), _)) => report.check("status.404_not_found", got.starts_with("NotFound"), || {
                format!("HTTP 404 on a group's members gave {got}, not NotFound")
            }),
            Ok((None, _)) => report.record(
                "status.404_not_found",
                Outcome::Failed("HTTP 404 on a group's members was taken as a page".into()),
            ),
            Err(e) => report.record("status.404_not_found", Outcome::Failed(e)),
        },
        _ => report.record(
            "status.404_not_found",
            Outcome::Skipped("no group members operation, or no group".into()),
        ),
    }
}

/// Listing sanity through the runtime: no duplicates, one request per page.
async fn listing_checks(
    report: &mut Report,
    client: &ConnectionClient,
    users: &QueryOutput,
    user_ids: &[String],
    control: Option<&Control>,
) {
    let unique: BTreeSet<&String> = user_ids.iter().collect();
    report.check("paging.no_duplicates", unique.len() == user_ids.len(), || {
        format!("{} users listed, {} distinct", user_ids.len(), unique.len())
    });
    // the token is warm now: a listing costs exactly one request per page
    let before = client.counters();
    let server_before = match control {
        Some(c) => c.stat("requests").await.ok(),
        None => None,
    };
    match client.run_query(&Query::ListUsers).await {
        Ok(again) => {
            let after = client.counters();
            let sent = after.requests - before.requests;
            let tokens = after.token_requests - before.token_requests;
            let server = match (control, server_before) {
                (Some(c), Some(b)) => c.stat("requests").await.ok().map(|a| a - b),
                _ => None,
            };
            report.check(
                "requests.one_per_page",
                sent == again.pages + tokens && server.is_none_or(|s| s == again.pages + tokens),
                || {
                    format!(
                        "{} pages cost {sent} requests ({tokens} token requests; the server counted {server:?})",
                        again.pages
                    )
                },
            );
            report.check(
                "paging.stable",
                sorted(ids(&again, false)) == sorted(ids(users, false)),
                || "two fault-free listings returned different users".into(),
            );
        }
        Err(e) => report.record(
            "requests.one_per_page",
            Outcome::Failed(format!("second listing: {e}")),
        ),
    }
}

/// A query for an operation, with ids from the reference listings; `None` when no id is known.
fn query_for(op: Operation, user: Option<&str>, group: Option<&str>, role: Option<&str>) -> Option<Query> {
    let u = || user.map(str::to_string);
    let g = || group.map(str::to_string);
    Some(match op {
        Operation::ListUsers => Query::ListUsers,
        Operation::ListGroups => Query::ListGroups,
        Operation::ListRoles => Query::ListRoles,
        Operation::GetUser => Query::GetUser { user_id: u()? },
        Operation::UserManager => Query::UserManager { user_id: u()? },
        Operation::UserGroups => Query::UserGroups { user_id: u()? },
        Operation::UserTransitiveGroups => Query::UserTransitiveGroups { user_id: u()? },
        Operation::UserPhoto => Query::UserPhoto { user_id: u()? },
        Operation::GroupMembers => Query::GroupMembers { group_id: g()? },
        Operation::GroupTransitiveMembers => Query::GroupTransitiveMembers { group_id: g()? },
        Operation::GroupChildren => Query::GroupChildren { group_id: g()? },
        Operation::RoleMembers => Query::RoleMembers {
            role_id: role?.to_string(),
        },
        _ => return None,
    })
}

const QUERY_OPERATIONS: [Operation; 12] = [
    Operation::ListUsers,
    Operation::GetUser,
    Operation::UserManager,
    Operation::UserGroups,
    Operation::UserTransitiveGroups,
    Operation::UserPhoto,
    Operation::ListGroups,
    Operation::GroupMembers,
    Operation::GroupTransitiveMembers,
    Operation::GroupChildren,
    Operation::ListRoles,
    Operation::RoleMembers,
];

/// What the manifest declares is what the connector does.
async fn capability_checks(
    report: &mut Report,
    subject: &Subject,
    client: &ConnectionClient,
    declared: &BTreeSet<Operation>,
    users: &QueryOutput,
    groups: &QueryOutput,
) {
    let caps = subject.connector.manifest().capabilities;
    let user_ids = ids(users, false);
    let group_ids = ids(groups, true);
    let roles = if declared.contains(&Operation::ListRoles) {
        client.run_query(&Query::ListRoles).await.ok()
    } else {
        None
    };
    let role_ids = roles.as_ref().map(|r| ids(r, true)).unwrap_or_default();

    // operations: declared ones answer, others are refused as Unsupported without a request
    let mut wrong = Vec::new();
    for op in QUERY_OPERATIONS {
        let Some(q) = query_for(
            op,
            user_ids.first().map(String::as_str),
            group_ids.first().map(String::as_str),
            role_ids.first().map(String::as_str),
        ) else {
            continue;
        };
        let unsupported = match client.run_query(&q).await {
            Err(e) => matches!(e.connector_error(), Some(ConnectorError::Unsupported { .. })),
            Ok(_) => false,
        };
        if declared.contains(&op) == unsupported {
            wrong.push(format!(
                "{op:?} is {} in the manifest's endpoints but the connector {}",
                if declared.contains(&op) {
                    "declared"
                } else {
                    "not declared"
                },
                if unsupported {
                    "refuses it as Unsupported"
                } else {
                    "answers it"
                }
            ));
        }
    }
    report.check("capabilities.operations", wrong.is_empty(), || wrong.join("; "));

    // managers: in the listing, or by UserManager for the first users
    let mut managers = users.records.iter().any(|r| match r {
        Record::User(u) => u.manager.is_some(),
        Record::Manager { manager, .. } => manager.is_some(),
        _ => false,
    });
    if !managers && declared.contains(&Operation::UserManager) {
        for id in user_ids.iter().take(40) {
            if let Ok(out) = client
                .run_query(&Query::UserManager { user_id: id.clone() })
                .await
            {
                if out
                    .records
                    .iter()
                    .any(|r| matches!(r, Record::Manager { manager: Some(_), .. }))
                {
                    managers = true;
                    break;
                }
            }
        }
    }
    flag(report, "capabilities.manager", caps.manager, managers);

    let mut photos = users.records.iter().any(|r| matches!(r, Record::Photo(_)));
    if !photos && declared.contains(&Operation::UserPhoto) {
        for id in user_ids.iter().take(40) {
            if let Ok(out) = client.run_query(&Query::UserPhoto { user_id: id.clone() }).await {
                if out.records.iter().any(|r| matches!(r, Record::Photo(_))) {
                    photos = true;
                    break;
                }
            }
        }
    }
    flag(report, "capabilities.photos", caps.photos, photos);

    let mut nested = groups.records.iter().any(|r| match r {
        Record::Group(g) => g.parent_id.is_some(),
        Record::Membership(m) => matches!(m.member, MemberRef::Group(_)),
        _ => false,
    });
    for g in group_ids.iter().take(60) {
        if nested {
            break;
        }
        for q in [
            Query::GroupMembers { group_id: g.clone() },
            Query::GroupChildren { group_id: g.clone() },
        ] {
            if !declared.contains(&q.operation()) {
                continue;
            }
            if let Ok(out) = client.run_query(&q).await {
                nested |= out.records.iter().any(|r| match r {
                    Record::Group(_) => true,
                    Record::Membership(m) => matches!(m.member, MemberRef::Group(_)),
                    _ => false,
                });
            }
        }
    }
    flag(report, "capabilities.nested_groups", caps.nested_groups, nested);

    // roles as groups: role groups listed, and members read for one of them
    let mut role_groups = false;
    if roles.as_ref().is_some_and(|r| {
        r.records
            .iter()
            .any(|r| matches!(r, Record::Group(g) if g.kind == GroupKind::Role))
    }) && declared.contains(&Operation::RoleMembers)
    {
        for id in role_ids.iter().take(20) {
            if let Ok(out) = client
                .run_query(&Query::RoleMembers { role_id: id.clone() })
                .await
            {
                if out.records.iter().any(|r| matches!(r, Record::Membership(_))) {
                    role_groups = true;
                    break;
                }
            }
        }
    }
    flag(
        report,
        "capabilities.roles_as_groups",
        caps.roles_as_groups,
        role_groups,
    );

    let in_listing = users.records.iter().any(|r| matches!(r, Record::Membership(_)));
    flag(
        report,
        "capabilities.memberships_in_user_listing",
        caps.memberships_in_user_listing,
        in_listing,
    );

    let transitive = declared.contains(&Operation::GroupTransitiveMembers)
        || declared.contains(&Operation::UserTransitiveGroups);
    flag(
        report,
        "capabilities.transitive_membership",
        caps.transitive_membership,
        transitive,
    );
}

fn flag(report: &mut Report, name: &str, declared: bool, done: bool) {
    report.check(name, declared == done, || {
        format!(
            "the manifest says {declared}, the connector's answers say {done} (against a server whose data has it)"
        )
    });
}

/// A wrong credential stops the listing with an authentication error (never data, never an
/// endless retry).
async fn auth_check(report: &mut Report, subject: &Subject) {
    let name = "auth.wrong_credential_refused";
    let wrong: Option<BTreeMap<String, String>> = subject
        .secrets
        .iter()
        .map(|(k, v)| Some((k.clone(), spoil(v)?)))
        .collect();
    let wrong = match wrong {
        Some(w) if !w.is_empty() => w,
        Some(_) => return report.record(name, Outcome::Skipped("the connection has no secret".into())),
        None => {
            return report.record(
                name,
                Outcome::Skipped("a key cannot be spoiled and still parse (a PEM private key)".into()),
            )
        }
    };
    let c = match client(subject, &wrong, "conformance-wrong-credential") {
        Ok(c) => c,
        Err(e) => {
            report.record(
                name,
                Outcome::Skipped(format!("a spoiled secret is refused before any request: {e}")),
            );
            return;
        }
    };
    match c.run_query(&Query::ListUsers).await {
        Ok(out) => report.record(
            name,
            Outcome::Failed(format!("a wrong credential listed {} records", out.records.len())),
        ),
        Err(e) => {
            let auth = matches!(
                e,
                RuntimeError::Token { .. } | RuntimeError::ConnectionHalted { .. } | RuntimeError::Key { .. }
            ) || matches!(
                e.connector_error(),
                Some(ConnectorError::Unauthorized { .. } | ConnectorError::Forbidden { .. })
            );
            report.check(name, auth, || format!("a wrong credential failed as: {e}"));
        }
    }
}

/// A secret changed so the server refuses it but its shape still parses: its last alphanumeric
/// character replaced. `None` for keys (PEM), which would no longer parse.
fn spoil(secret: &str) -> Option<String> {
    if secret.contains("-----BEGIN") {
        return None;
    }
    let mut chars: Vec<char> = secret.chars().collect();
    match chars.iter().rposition(|c| c.is_ascii_alphanumeric()) {
        Some(i) => chars[i] = if chars[i] == 'a' { 'b' } else { 'a' },
        None => chars.push('x'),
    }
    Some(chars.into_iter().collect())
}

/// The fault checks, driven by the server's control URL.
async fn fault_checks(
    report: &mut Report,
    subject: &Subject,
    control: &Control,
    user_ids: &[String],
    groups: &QueryOutput,
) -> Result<(), SetupError> {
    let reference = sorted(user_ids.to_vec());
    // each check uses a fresh client (a halted or throttled one must not spoil the next), with
    // its token fetched before the fault is set
    let fresh = |conc: Option<u32>| -> Result<ConnectionClient, SetupError> {
        let mut s = subject.settings.clone();
        s.concurrency = conc;
        let sub = Subject {
            connector: subject.connector.clone(),
            options: subject.options.clone(),
            secrets: subject.secrets.clone(),
            control_url: None,
            settings: s,
        };
        client(&sub, &subject.secrets, "conformance-faults")
    };

    // paging loop: stopped, or harmless
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"paging_loop_at_page": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.loop_guard",
            Outcome::Skipped("the fault did not fire (one page of users?)".into()),
        ),
        (true, Ok(out)) => report.check("paging.loop_guard", sorted(ids(&out, false)) == reference, || {
            format!(
                "a looping listing returned {} users, not the {} listed without it",
                out.records.len(),
                reference.len()
            )
        }),
        (true, Err(_)) => report.record("paging.loop_guard", Outcome::Passed),
    }

    // empty page with a next link: the listing goes on
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"empty_page_at": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.empty_page",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        (true, Ok(out)) => report.check("paging.empty_page", sorted(ids(&out, false)) == reference, || {
            "an empty page with a next link changed the listing".into()
        }),
        // a provider whose listings end at an empty page (Keycloak's offset paging) may stop
        // there, but must then fail the query (Protocol), never return a shorter listing
        (true, Err(e)) => report.check(
            "paging.empty_page",
            matches!(e.connector_error(), Some(ConnectorError::Protocol { .. })),
            || format!("an empty page with a next link failed the listing as {e}, not Protocol"),
        ),
    }

    // expired page cursor: restart, or CursorExpired
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    control.faults(json!({"expire_token_at_page": 2})).await?;
    let served = control.paging_served_before().await;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.paging_served_since(served).await;
    control.faults(json!({})).await?;
    match (fired, r) {
        (false, _) => report.record(
            "paging.cursor_expiry",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        (true, Ok(out)) => report.check(
            "paging.cursor_expiry",
            sorted(ids(&out, false)) == reference,
            || {
                format!(
                    "an expired cursor gave a different listing ({} restarts)",
                    out.restarts
                )
            },
        ),
        // CursorExpired once the restarts are spent, or Protocol where the provider's answer does
        // not tell an expired cursor from another refused parameter (Okta's E0000001): either
        // stops the run; NotFound, Transient or a shorter listing would not
        (true, Err(e)) => report.check(
            "paging.cursor_expiry",
            matches!(
                e.connector_error(),
                Some(ConnectorError::CursorExpired { .. } | ConnectorError::Protocol { .. })
            ),
            || format!("an expired cursor failed as {e}, not CursorExpired or Protocol"),
        ),
    }

    // server errors: retried to the same data
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    let before = control.stat("faults_injected").await?;
    control
        .faults(json!({"error_rate": 0.5, "error_statuses": [500, 502, 503], "seed": 7, "max_faults": 3}))
        .await?;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.stat("faults_injected").await? > before;
    control.faults(json!({})).await?;
    match r {
        Ok(out) => report.check(
            "faults.server_errors_retried",
            fired && sorted(ids(&out, false)) == reference,
            || {
                format!(
                    "fault fired: {fired}; listing equal: {}",
                    sorted(ids(&out, false)) == reference
                )
            },
        ),
        Err(e) => report.record(
            "faults.server_errors_retried",
            Outcome::Failed(format!("three server errors failed the listing: {e}")),
        ),
    }

    // throttling (the server's concurrency limit): retried to the same data
    let c = fresh(Some(4))?;
    let _ = c.fetch_token().await;
    let before = control.stat("throttled").await?;
    control
        .faults(json!({"concurrency_limit": 1, "latency_ms": 30}))
        .await?;
    let mut queries = vec![Query::ListUsers; 4];
    if !groups.records.is_empty() {
        queries.push(Query::ListGroups);
    }
    let results = c.run_all(queries).await;
    let fired = control.stat("throttled").await? > before;
    control.faults(json!({})).await?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let same = results
        .first()
        .and_then(|r| r.as_ref().ok())
        .is_some_and(|out| sorted(ids(out, false)) == reference);
    if !fired {
        report.record(
            "faults.throttling_retried",
            Outcome::Skipped("no request was throttled".into()),
        );
    } else {
        report.check("faults.throttling_retried", failed.is_empty() && same, || {
            format!("throttled queries failed: {}", failed.join("; "))
        });
    }

    // malformed body: the query fails (Protocol), never a shorter listing
    let c = fresh(None)?;
    let _ = c.fetch_token().await;
    let before = control.stat("faults_injected").await?;
    control
        .faults(json!({"malformed_rate": 1.0, "max_faults": 1}))
        .await?;
    let r = c.run_query(&Query::ListUsers).await;
    let fired = control.stat("faults_injected").await? > before;
    control.faults(json!({})).await?;
    match r {
        _ if !fired => report.record(
            "faults.malformed_body",
            Outcome::Skipped("the fault did not fire".into()),
        ),
        Ok(out) => report.check(
            "faults.malformed_body",
            sorted(ids(&out, false)) == reference,
            || "a malformed page was taken as a shorter listing".into(),
        ),
        Err(_) => report.record("faults.malformed_body", Outcome::Passed),
    }

    // a group deleted between the listing and its members read: NotFound
    let name = "faults.vanished_group_not_found";
    let first = groups.records.iter().find_map(|r| match r {
        Record::Group(g) if g.kind != GroupKind::Role => Some((g.id.clone(), g.name.clone())),
        _ => None,
    });
    let declared = subject
        .connector
        .manifest()
        .endpoints
        .iter()
        .any(|e| e.operation == Operation::GroupMembers);
    match first {
        Some((id, group_name)) if declared => {
            let c = fresh(None)?;
            let before = control.stat("objects_vanished").await?;
            control.faults(json!({ "vanish_group": group_name })).await?;
            let r = c.run_query(&Query::GroupMembers { group_id: id }).await;
            let fired = control.stat("objects_vanished").await? > before;
            control.faults(json!({})).await?;
            match r {
                _ if !fired => report.record(name, Outcome::Skipped("the group did not vanish".into())),
                Ok(out) => report.record(
                    name,
                    Outcome::Failed(format!(
                        "a deleted group's members were {} records",
                        out.records.len()
                    )),
                ),
                Err(e) => report.check(
                    name,
                    matches!(e.connector_error(), Some(ConnectorError::NotFound { .. })),
                    || format!("a deleted group's members failed as {e}, not NotFound"),
                ),
            }
        }
        _ => report.record(
            name,
            Outcome::Skipped("no group members operation, or no group".into()),
        ),
    }
    Ok(())
}

/// The emulator's control protocol.
struct Control {
    url: String,
    http: reqwest::Client,
}

impl Control {
    fn new(url: &str) -> Self {
        Control {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().no_proxy().build().unwrap_or_default(),
        }
    }

    async fn faults(&self, cfg: Value) -> Result<(), SetupError> {
        let url = format!("{}/faults", self.url);
        let r = self
            .http
            .put(&url)
            .json(&cfg)
            .send()
            .await
            .map_err(|e| SetupError(format!("PUT {url}: {e}")))?;
        if !r.status().is_success() {
            return Err(SetupError(format!(
                "PUT {url} {cfg}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Value, SetupError> {
        let url = format!("{}/stats", self.url);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| SetupError(format!("GET {url}: {e}")))?;
        r.json().await.map_err(|e| SetupError(format!("GET {url}: {e}")))
    }

    async fn stat(&self, name: &str) -> Result<u64, SetupError> {
        let v = self.stats().await?;
        v[name]
            .as_u64()
            .ok_or_else(|| SetupError(format!("{}/stats has no counter `{name}`", self.url)))
    }

    async fn paging_served_before(&self) -> Option<u64> {
        self.stat("paging_faults_served").await.ok()
    }

    async fn paging_served_since(&self, before: Option<u64>) -> bool {
        match (before, self.stat("paging_faults_served").await.ok()) {
            (Some(b), Some(a)) => a > b,
            _ => false,
        }
    }
}

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
