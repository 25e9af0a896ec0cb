//! `usersync push [TARGET]`: provision the store into the configured targets (issue 19). The
//! planning, gates, execution and run recording are `usersync_sync::push`; this is wiring: the
//! target's connector, options, secrets and runtime client.

use std::path::Path;

use usersync_config::{Config, TargetConfig};
use usersync_runtime::ConnectionClient;
use usersync_sdk::{HttpRequest, HttpResponse, TargetSession};
use usersync_store::{RunStatus, SqliteStore, Store};
use usersync_sync::push::{push_target, PushReport, PushSpec, PushStep, TargetSender};

use crate::or_exit;
use crate::registry::{Lookup, Registry};
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// Arguments of `usersync push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Push only this target. Default: every target, in name order.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// Plan and print; write nothing to the application (the run is recorded as `dry_run`).
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm up to N deactivations+deletions in this push, past the safety gates.
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The runtime client as the push executor's sender (auth, retries, rate limits, body caps,
/// redirects refused).
pub struct RuntimeSender(pub ConnectionClient);

impl TargetSender for RuntimeSender {
    async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        self.0.send(req).await.map_err(|e| e.to_string())
    }
}

/// Open a target: its connector's target half, the runtime client, discovery sent and fed to
/// the session.
pub(crate) async fn open_target(
    target: &TargetConfig,
    config_path: &Path,
    registry: &Registry,
) -> Result<(Box<dyn TargetSession>, RuntimeSender, Box<dyn Fn() -> u64 + Send>), String> {
    let conn = &target.connection;
    let connector = match registry.lookup(&conn.connector) {
        Lookup::Active(e) => e.connector.clone(),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{}:{}: [targets.{}]: {}",
            config_path.display(),
            conn.connector_line(),
            target.name,
            wiring::unknown_message(&conn.connector, registry)
        )
    })?;
    let Some(half) = connector.target() else {
        return Err(format!(
            "connector `{}` is not a target connector (it cannot write to an application)",
            conn.connector
        ));
    };
    let (client, _) =
        wiring::open_client(conn, config_path, registry).map_err(|e| e.message().to_string())?;
    let checked = wiring::check_connection(conn, config_path, &connector).map_err(|issues| {
        issues
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut session = half.open(&checked.options).map_err(|e| e.to_string())?;
    let mut answers = Vec::new();
    for req in session.discovery() {
        answers.push(client.send(&req).await.map_err(|e| format!("discovery: {e}"))?);
    }
    session
        .configure(answers)
        .map_err(|e| format!("discovery: {e}"))?;
    let counter = client.clone();
    Ok((
        session,
        RuntimeSender(client),
        Box::new(move || counter.counters().requests),
    ))
}

/// Push the given targets (every configured one when `names` is empty). Used by `push` and by
/// `sync` (targets after sources).
pub async fn push_targets(
    store: &mut dyn Store,
    config: &Config,
    registry: &Registry,
    targets: &[&TargetConfig],
    dry_run: bool,
    allow_deletes: Option<u64>,
) -> Vec<PushReport> {
    let mut reports = Vec::new();
    for target in targets {
        let sources: Vec<String> = config
            .connections
            .iter()
            .filter(|c| target.fed_by(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let spec = PushSpec {
            target,
            sources,
            dry_run,
            allow_deletes,
        };
        let report = push_target(store, &spec, || open_target(target, &config.path, registry)).await;
        tracing::info!(
            target = %target.name,
            status = report.status.as_str(),
            run_id = report.run_id,
            writes = report.writes,
            "push finished"
        );
        reports.push(report);
    }
    reports
}

/// The exit code of a set of pushes (as `sync`'s: failed 1, blocked 3; a partial push is 1).
pub fn exit_code(reports: &[PushReport]) -> u8 {
    if reports.iter().any(|r| r.status == RunStatus::Failed || r.partial) {
        exit::FAILURE
    } else if reports.iter().any(|r| r.status == RunStatus::Blocked) {
        exit::BLOCKED
    } else {
        exit::OK
    }
}

/// Run the command; returns the process exit code.
pub async fn run(args: PushArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config_as(global, args.format));
    let targets: Vec<&TargetConfig> = match &args.target {
        Some(name) => match config.target(name) {
            Some(t) => vec![t],
            None => {
                let known: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
                eprintln!(
                    "error: no target `{name}` in {} (defined: {})",
                    config.path.display(),
                    if known.is_empty() {
                        "none; add a [targets.NAME] table".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                return Ok(exit::USAGE);
            }
        },
        None => config.targets.iter().collect(),
    };
    if targets.is_empty() {
        eprintln!(
            "error: {} defines no targets: add a [targets.NAME] table (docs/targets.md)",
            config.path.display()
        );
        return Ok(exit::USAGE);
    }
    let registry = crate::registry::load(global)?;
    let mut store = match wiring::open_any_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::FAILURE);
        }
    };
    let reports = push_targets(
        store.store_mut(),
        &config,
        &registry,
        &targets,
        args.dry_run,
        args.allow_deletes,
    )
    .await;
    match args.format {
        Format::Json => wiring::print_json(&reports)?,
        Format::Table => reports.iter().for_each(print_report),
    }
    Ok(exit_code(&reports))
}

/// One target's report: summary, errors, then the steps.
pub fn print_report(r: &PushReport) {
    let run = r
        .run_id
        .map(|id| format!("run {id}"))
        .unwrap_or_else(|| "not recorded".into());
    let partial = if r.partial { ", partial" } else { "" };
    outln!(
        "push to {}: {}{partial} ({run}, {} writes, {} requests, {:.1}s)",
        r.target,
        r.status.as_str(),
        r.writes,
        r.requests,
        r.duration_ms as f64 / 1000.0
    );
    let c = &r.counts;
    outln!(
        "  users:       {} created, {} updated, {} deactivated, {} deleted, {} unchanged{}",
        c.users_created,
        c.users_updated,
        c.users_deactivated,
        c.users_deleted,
        c.users_unchanged,
        if r.adopted > 0 {
            format!(" ({} adopted)", r.adopted)
        } else {
            String::new()
        }
    );
    outln!(
        "  groups:      {} created, {} renamed, {} deleted",
        c.groups_created,
        c.groups_renamed,
        c.groups_deleted
    );
    outln!(
        "  memberships: {} added, {} removed",
        c.members_added,
        c.members_removed
    );
    for e in &r.errors {
        outln!("  ! {e}");
    }
    if !r.plan.steps.is_empty() {
        outln!("  steps ({}):", r.plan.steps.len());
        for s in r.plan.steps.iter().take(50) {
            outln!("    {}", step_line(s));
        }
        if r.plan.steps.len() > 50 {
            outln!("    ... and {} more (`--format json`)", r.plan.steps.len() - 50);
        }
    }
}

fn step_line(s: &PushStep) -> String {
    match s {
        PushStep::CreateGroup { name, .. } => format!("create group  {name}"),
        PushStep::RenameGroup { name, .. } => format!("rename group  {name}"),
        PushStep::CreateUser { user_name, .. } => format!("create user   {user_name}"),
        PushStep::UpdateUser { user_name, .. } => format!("update user   {user_name}"),
        PushStep::AddMembers { group, users } => format!("+ {} member(s) of {group}", users.len()),
        PushStep::RemoveMembers { group, users } => format!("- {} member(s) of {group}", users.len()),
        PushStep::DeactivateUser { key, reason } => format!("deactivate    {key}: {reason}"),
        PushStep::DeleteUser { key, reason } => format!("delete user   {key}: {reason}"),
        PushStep::DeleteGroup { key } => format!("delete group  {key}"),
    }
}

/// The store behind the handle a command holds (the SQLite store, or a boxed backend), so the
/// push wiring is called the same way from every command.
pub trait StoreHandle {
    /// The store, for reading.
    fn store_ref(&self) -> &dyn Store;
    /// The store, for writing.
    fn store_mut(&mut self) -> &mut dyn Store;
}

impl StoreHandle for SqliteStore {
    fn store_ref(&self) -> &dyn Store {
        self
    }
    fn store_mut(&mut self) -> &mut dyn Store {
        self
    }
}

impl StoreHandle for Box<dyn Store> {
    fn store_ref(&self) -> &dyn Store {
        self.as_ref()
    }
    fn store_mut(&mut self) -> &mut dyn Store {
        self.as_mut()
    }
}

/// Where one user is (or is not) provisioned, for `explain user`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetExplanation {
    /// The target.
    pub target: String,
    /// usersync manages an account for the user in the application.
    pub provisioned: bool,
    /// The application's id of the account.
    pub app_id: Option<String>,
    /// `created` or `adopted`.
    pub origin: Option<&'static str>,
    /// Whether the account was left active by the last push.
    pub active: Option<bool>,
    /// Why, in a sentence.
    pub why: String,
}

/// Where the user `provider_id` of `connection` is provisioned, target by target, and why
/// (from the store: the last push's state and the scope the next push would apply).
pub fn explain_user(
    store: &dyn Store,
    config: &Config,
    connection: &str,
    provider_id: &str,
) -> Vec<TargetExplanation> {
    let key = usersync_sync::push::desired::source_key(connection, provider_id);
    let mut out = Vec::new();
    for t in &config.targets {
        let state = store.target_state(&t.run_key()).unwrap_or_default();
        let managed = state
            .objects
            .iter()
            .find(|o| o.kind == usersync_store::TargetKind::User && o.source_key == key);
        let mut e = TargetExplanation {
            target: t.name.clone(),
            provisioned: managed.is_some(),
            app_id: managed.map(|o| o.app_id.clone()),
            origin: managed.map(|o| o.origin.as_str()),
            active: managed.map(|o| o.active),
            why: String::new(),
        };
        if !t.fed_by(connection) {
            e.why = format!(
                "connection `{connection}` does not feed target `{}` (its sources: {})",
                t.name,
                t.settings.sources.join(", ")
            );
            out.push(e);
            continue;
        }
        let sources: Vec<String> = config
            .connections
            .iter()
            .filter(|c| t.fed_by(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let desired = match usersync_sync::push::desired_state(store, t, &sources) {
            Ok(d) => d,
            Err(err) => {
                e.why = format!("cannot read the store: {err}");
                out.push(e);
                continue;
            }
        };
        e.why = match (desired.users.get(&key), managed) {
            (Some(w), Some(o)) if w.user.active && o.active => format!(
                "in scope; provisioned as `{}` (app id {}, {} by usersync)",
                w.user.user_name,
                o.app_id,
                o.origin.as_str()
            ),
            (Some(w), Some(_)) if w.user.active => {
                "in scope; deactivated by an earlier push: the next push reactivates it".into()
            }
            (Some(_), Some(o)) if o.active => {
                "disabled at the source: the next push deactivates the account".into()
            }
            (Some(_), Some(_)) => "disabled at the source: the account is deactivated".into(),
            (Some(w), None) if w.user.active => format!(
                "in scope, not provisioned yet: `usersync push {}` creates `{}` (or adopts the account \
                 with that userName)",
                t.name, w.user.user_name
            ),
            (Some(_), None) => "disabled at the source, never provisioned: not created".into(),
            (None, managed) => {
                let reason = desired
                    .excluded
                    .iter()
                    .find(|x| x.key == key)
                    .map(|x| x.reason.clone())
                    .unwrap_or_else(|| "not in the store".into());
                match managed {
                    Some(o) if o.active => format!(
                        "out of scope ({reason}): the next push {} the account",
                        match t.settings.deprovision {
                            usersync_config::Deprovision::Deactivate => "deactivates",
                            usersync_config::Deprovision::Delete => "deletes",
                        }
                    ),
                    Some(_) => format!("out of scope ({reason}): the account is deactivated"),
                    None => format!("not provisioned: {reason}"),
                }
            }
        };
        out.push(e);
    }
    out
}

/// `config check` of the targets: each names a known target connector, and its options pass
/// the connector's manifest (unknown options with a "did you mean", required ones, secrets as
/// references). Returns (errors, warnings about unset environment variables).
pub fn check_targets(
    config: &Config,
    path: &Path,
    registry: &Registry,
) -> (
    Vec<usersync_config::ConfigIssue>,
    Vec<usersync_config::ConfigIssue>,
) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for t in &config.targets {
        let conn = &t.connection;
        let issue = |line: usize, option: Option<String>, message: String| usersync_config::ConfigIssue {
            file: path.to_path_buf(),
            line,
            connection: Some(conn.name.clone()),
            option,
            message,
        };
        let connector = match registry.lookup(&conn.connector) {
            Lookup::Active(e) => e.connector.clone(),
            _ => None,
        };
        let Some(connector) = connector else {
            errors.push(issue(
                conn.connector_line(),
                None,
                wiring::unknown_message(&conn.connector, registry),
            ));
            continue;
        };
        if connector.target().is_none() {
            errors.push(issue(
                conn.connector_line(),
                None,
                format!(
                    "connector `{}` is not a target connector: it cannot write to an application",
                    conn.connector
                ),
            ));
            continue;
        }
        if let Err(issues) = wiring::check_connection(conn, path, &connector) {
            errors.extend(issues);
        }
        for (name, r) in &conn.secrets {
            if let usersync_config::SecretRef::Env { env } = r {
                if std::env::var_os(env).is_none() {
                    warnings.push(issue(
                        conn.option_line(name),
                        Some(name.clone()),
                        format!("environment variable `{env}` is not set here"),
                    ));
                }
            }
        }
    }
    (errors, warnings)
}
