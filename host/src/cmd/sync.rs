//! `usersync sync`: fetch each connection, plan against the store, gate, apply.

use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};
use usersync_store::RunStatus;

use usersync_sync::delta::FeedSettings;
use usersync_sync::engine::{record_failed_start, run_connection_with_feeds, RunReport, RunSpec};
use usersync_sync::plan::{Plan, UserAction};

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format, OpenError};
use crate::GlobalArgs;

/// Arguments of `usersync sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Sync only this connection (repeatable). Default: every connection, in config order.
    #[arg(long = "connection", short = 'c', value_name = "NAME")]
    pub connections: Vec<String>,
    /// Fetch and print the plan; change nothing (the run is recorded as `dry_run`).
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm up to N deactivations+deletions in this run, past the removal and
    /// shrinking-source safety gates.
    #[arg(long, value_name = "N")]
    pub allow_deletes: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// Table output: at most N entries per list of changes (the counts are always complete).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT, conflicts_with = "all")]
    pub limit: usize,
    /// Table output: every entry of every list (`--format json` always has them all).
    #[arg(long)]
    pub all: bool,
    /// Read every listing in full, even where a change feed could give only what changed (a
    /// full reconcile: catches what a feed can miss; see `full_every`).
    #[arg(long)]
    pub full: bool,
}

/// Set by `sync --full` for the runs of this process: every connection reads in full.
static FORCE_FULL: AtomicBool = AtomicBool::new(false);

/// Entries per list in table output unless `--limit`/`--all` say otherwise.
pub const DEFAULT_LIMIT: usize = 20;

/// Say that the command stopped before any run started (nothing is in run history), and pass
/// the exit code on.
fn unrecorded(code: u8) -> u8 {
    eprintln!("note: nothing was synced and nothing was recorded in run history");
    code
}

/// Run the command; returns the process exit code. A connection that fails once the store is
/// open (unset secret, invalid option, refused plugin) is recorded as a failed run; errors
/// before that (configuration, store refused) stop the command unrecorded.
pub async fn run(args: SyncArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    // --format json: a config error is a JSON error object on stdout, not nothing
    let config = or_exit!(wiring::load_config_as(global, args.format).map_err(unrecorded));
    let selected = or_exit!(wiring::select(&config, &args.connections).map_err(unrecorded));
    if selected.is_empty() {
        eprintln!("error: {} defines no connections", config.path.display());
        return Ok(unrecorded(exit::USAGE));
    }
    let registry = crate::registry::load(global)?;
    FORCE_FULL.store(args.full, Ordering::Relaxed);
    let mut store = match wiring::open_any_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(unrecorded(exit::FAILURE));
        }
    };
    let mut reports = Vec::new();
    let mut config_error = false;
    for conn in selected {
        let one = sync_connection(
            &mut *store,
            conn,
            &config.path,
            &registry,
            args.dry_run,
            args.allow_deletes,
            !args.no_progress,
        )
        .await;
        config_error |= matches!(one.open_error, Some(OpenError::Config(_)));
        reports.push(one.report);
    }
    // a full sync (no --connection) pushes the targets after their sources (a source whose run
    // did not apply blocks its targets' pushes: the push's complete-read gate)
    let targets: Vec<&usersync_config::TargetConfig> = config
        .targets
        .iter()
        .filter(|t| args.connections.is_empty() && reports.iter().any(|r| t.fed_by(&r.connection)))
        .collect();
    let pushes = {
        use crate::cmd::push::StoreHandle;
        crate::cmd::push::push_targets(
            store.store_mut(),
            &config,
            &registry,
            &targets,
            args.dry_run,
            None,
        )
        .await
    };
    match args.format {
        Format::Json if pushes.is_empty() => wiring::print_json(&reports)?,
        Format::Json => {
            let mut all: Vec<serde_json::Value> = reports
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            all.extend(
                pushes
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?,
            );
            wiring::print_json(&all)?
        }
        Format::Table => {
            let limit = if args.all { usize::MAX } else { args.limit };
            for r in &reports {
                print_report(r, limit);
            }
            pushes.iter().for_each(crate::cmd::push::print_report);
        }
    }
    let push_code = crate::cmd::push::exit_code(&pushes);
    Ok(if config_error {
        exit::USAGE
    } else if reports.iter().any(|r| r.status == RunStatus::Failed) || push_code == exit::FAILURE {
        exit::FAILURE
    } else if reports.iter().any(|r| r.status == RunStatus::Blocked) || push_code == exit::BLOCKED {
        exit::BLOCKED
    } else {
        exit::OK
    })
}

/// One connection's run as `sync` and `serve` do it.
pub struct ConnectionRun {
    /// The engine's report.
    pub report: RunReport,
    /// The runtime client's counters (absent when the client could not be built).
    pub counters: Option<usersync_runtime::RunCounters>,
    /// Why the connection could not be opened (the run is recorded as failed).
    pub open_error: Option<OpenError>,
}

/// Open the connection's client (a failure is recorded as a failed run, so `runs list` shows
/// the connection failing), then fetch, plan, gate and apply it into `store`.
pub async fn sync_connection(
    store: &mut dyn usersync_store::Store,
    conn: &usersync_config::ConnectionConfig,
    config_path: &std::path::Path,
    registry: &crate::registry::Registry,
    dry_run: bool,
    allow_deletes: Option<u64>,
    show_progress: bool,
) -> ConnectionRun {
    let started = Instant::now();
    let (client, manifest) = match wiring::open_client(conn, config_path, registry) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", e.message());
            let report = record_failed_start(store, &conn.name, e.message().to_string(), started);
            return ConnectionRun {
                report,
                counters: None,
                open_error: Some(e),
            };
        }
    };
    let concurrency = client.concurrency() as usize;
    let progress = wiring::ConsoleProgress::new(&conn.name, Some(client.clone()), show_progress);
    let spec = RunSpec {
        connection: &conn.name,
        manifest: &manifest,
        policy: &conn.policy,
        concurrency: concurrency.max(1) * 2,
        dry_run,
        allow_deletes,
    };
    let feed = FeedSettings {
        enabled: conn.incremental_enabled(&manifest),
        requested: conn.incremental == Some(true),
        full_every: conn.full_every,
        force_full: FORCE_FULL.load(Ordering::Relaxed),
    };
    let report =
        run_connection_with_feeds(store, wiring::runner(client.clone()), &spec, &feed, &progress).await;
    tracing::info!(
        connection = %conn.name,
        status = report.status.as_str(),
        run_id = report.run_id,
        requests = report.requests,
        duration_ms = report.duration_ms,
        "sync finished"
    );
    ConnectionRun {
        report,
        counters: Some(client.counters()),
        open_error: None,
    }
}

/// One connection's report: the summary first (status, counts, budget, errors and the gate's
/// verdict, warnings), then at most `limit` entries of each list of changes.
fn print_report(r: &RunReport, limit: usize) {
    let run = r
        .run_id
        .map(|id| format!("run {id}"))
        .unwrap_or_else(|| "not recorded".into());
    let kind = r.kind.map(|k| format!(", {}", k.as_str())).unwrap_or_default();
    outln!(
        "{}: {} ({run}{kind}, {} requests, {:.1}s)",
        r.connection,
        r.status.as_str(),
        r.requests,
        r.duration_ms as f64 / 1000.0
    );
    if let Some(b) = &r.rate_limit {
        let limit = b.limit.map(|l| format!(" of {l}")).unwrap_or_default();
        outln!(
            "  rate-limit budget ({}): {} requests left{limit} at the lowest point",
            b.bucket,
            b.remaining
        );
    }
    let u = &r.users;
    outln!(
        "  users:       {} created, {} updated, {} renamed, {} reactivated, {} deactivated, {} deleted, {} unchanged",
        u.created, u.updated, u.renamed, u.reactivated, u.deactivated, u.deleted, u.unchanged
    );
    let g = &r.groups;
    outln!(
        "  groups:      {} created, {} updated, {} deleted, {} unchanged",
        g.created,
        g.updated,
        g.deleted,
        g.unchanged
    );
    outln!(
        "  memberships: {} added, {} removed",
        r.memberships.added,
        r.memberships.removed
    );
    for e in &r.errors {
        outln!("  ! {e}");
    }
    if let Some(plan) = &r.plan {
        print_list("warnings", &plan.warnings, limit, r.run_id);
        print_plan(plan, limit, r.run_id);
    }
}

/// The line after a list cut at `limit`: how many more, and where to see them all.
fn print_more(n: usize, limit: usize, run_id: Option<i64>) {
    if n > limit {
        let all = run_id
            .map(|id| format!("`usersync runs show {id}` or "))
            .unwrap_or_default();
        outln!("    ... and {} more ({all}`--all`)", n - limit);
    }
}

fn print_list(title: &str, items: &[String], limit: usize, run_id: Option<i64>) {
    if !items.is_empty() {
        outln!("  {title} ({}):", items.len());
        for i in items.iter().take(limit) {
            outln!("    {i}");
        }
        print_more(items.len(), limit, run_id);
    }
}

/// Print the plan's entries, at most `limit` per section (warnings are printed with the summary).
pub fn print_plan(plan: &Plan, limit: usize, run_id: Option<i64>) {
    let more = |n: usize| print_more(n, limit, run_id);
    if !plan.users.is_empty() {
        outln!("  user changes ({}):", plan.users.len());
        for c in plan.users.iter().take(limit) {
            let mut line = format!(
                "    {:<12} {}",
                format!("{:?}", c.action).to_lowercase(),
                c.username
            );
            if let Some(p) = &c.previous_username {
                line.push_str(&format!(" (was {p})"));
            }
            let routine = matches!(c.action, UserAction::Deactivated | UserAction::Reactivated);
            if !c.changed.is_empty() && c.previous_username.is_none() && !routine {
                line.push_str(&format!(" [{}]", c.changed.join(", ")));
            }
            if let Some(reason) = &c.reason {
                line.push_str(&format!(": {reason}"));
            }
            outln!("{line}");
        }
        more(plan.users.len());
    }
    if !plan.groups.is_empty() {
        outln!("  group changes ({}):", plan.groups.len());
        for c in plan.groups.iter().take(limit) {
            let mut line = format!("    {:<12} {}", format!("{:?}", c.action).to_lowercase(), c.name);
            if let Some(p) = &c.previous_name {
                line.push_str(&format!(" (was {p})"));
            }
            outln!("{line}");
        }
        more(plan.groups.len());
    }
    if !plan.memberships.is_empty() {
        outln!("  membership changes ({}):", plan.memberships.len());
        for m in plan.memberships.iter().take(limit) {
            let sign = if m.action == "added" { "+" } else { "-" };
            outln!("    {sign} {} `{}` in `{}`", m.member_type, m.member, m.group);
        }
        more(plan.memberships.len());
    }
    print_list(
        "withheld (incomplete read or objects gone mid-run)",
        &plan.withheld,
        limit,
        run_id,
    );
    print_list("protected", &plan.protected, limit, run_id);
}
