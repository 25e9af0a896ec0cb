//! `usersync doctor`: connectivity, TLS, proxy, token and permission checks per connection,
//! with a plain-language diagnosis and fix for each failed step.

use usersync_config::ConnectionConfig;
use usersync_runtime::doctor::{self, Check, CheckStatus, DoctorReport};

use crate::or_exit;
use crate::registry::Registry;
use crate::wiring::{self, exit, Format, OpenError};
use crate::GlobalArgs;

mod targets;

/// Arguments of `usersync doctor`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 every required check passed, 1 a required check failed, 2 usage or \
configuration error.

Examples:
  usersync doctor
  usersync doctor -c okta -c google
  usersync doctor --target jira
  usersync doctor --format json | jq '.[] | select(.checks[].status == \"fail\")'"
)]
pub struct DoctorArgs {
    /// Check only this connection (repeatable; default: every connection in the config).
    #[arg(long = "connection", short = 'c', value_name = "NAME")]
    pub connections: Vec<String>,
    /// Check only this target (repeatable; default: every target when no --connection is given).
    #[arg(long = "target", short = 't', value_name = "NAME")]
    pub targets: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn setup_failure(
    name: &str,
    connector: &str,
    step: &str,
    detail: String,
    diagnosis: &str,
    fix: &str,
) -> DoctorReport {
    DoctorReport {
        connection: name.to_string(),
        connector: connector.to_string(),
        checks: vec![Check {
            step: step.into(),
            target: name.into(),
            status: CheckStatus::Fail,
            required: true,
            detail,
            diagnosis: Some(diagnosis.into()),
            fix: Some(fix.into()),
        }],
    }
}

/// Run the command; returns the process exit code (0: every required check passed, 1: a
/// required check failed, 2: usage or config error).
pub async fn run(args: DoctorArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config_as(global, args.format));
    for t in &args.targets {
        if config.target(t).is_none() {
            eprintln!("error: no target named `{t}` in {}", config.path.display());
            return Ok(exit::USAGE);
        }
    }
    // `--target` alone checks only targets; `--connection` alone only connections
    let selected = if args.targets.is_empty() || !args.connections.is_empty() {
        or_exit!(wiring::select(&config, &args.connections))
    } else {
        Vec::new()
    };
    let targets: Vec<&usersync_config::TargetConfig> = config
        .targets
        .iter()
        .filter(|t| {
            if args.targets.is_empty() {
                args.connections.is_empty()
            } else {
                args.targets.contains(&t.name)
            }
        })
        .collect();
    if selected.is_empty() && targets.is_empty() {
        eprintln!("error: {} defines no connections", config.path.display());
        return Ok(exit::USAGE);
    }
    let registry = crate::registry::load(global)?;
    let mut reports = Vec::new();
    for conn in selected {
        let report = check_connection(conn, &config.path, &registry).await;
        if args.format == Format::Table {
            print_table("connection", &report);
        }
        reports.push(report);
    }
    for target in targets {
        let report = targets::check_target(target, &config.path, &registry).await;
        if args.format == Format::Table {
            print_table("target", &report);
        }
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| r.failed()).count();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Table => {
            if failed == 0 {
                println!("all {} connection(s) and target(s) passed", reports.len());
            } else {
                println!(
                    "{failed} of {} connection(s) and target(s) failed a required check",
                    reports.len()
                );
            }
        }
    }
    // A connection whose configuration is invalid was never contacted: a config error, exit 2.
    let config_error = reports
        .iter()
        .any(|r| r.checks.iter().any(|c| c.step == "config"));
    Ok(if config_error {
        exit::USAGE
    } else if failed == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// Check one connection: its operations against the provider, or why it could not be opened.
async fn check_connection(
    conn: &ConnectionConfig,
    config_path: &std::path::Path,
    registry: &Registry,
) -> DoctorReport {
    match wiring::open_client(conn, config_path, registry) {
        Ok((client, _)) => {
            let ops = doctor::default_operations(&client);
            doctor::run_for(&client, &ops, doctor::Needs::of(&conn.policy)).await
        }
        Err(OpenError::Config(m)) => setup_failure(
            &conn.name,
            &conn.connector,
            "config",
            m,
            "the connection's configuration is invalid, so nothing was contacted",
            "fix the connection in the config file (`usersync config check` lists every problem)",
        ),
        Err(OpenError::Plugin(m)) => setup_failure(
            &conn.name,
            &conn.connector,
            "plugin",
            m,
            "the connector's plugin library was found but refused, so nothing was contacted",
            "see the reason above and `usersync plugins list`; rebuild the plugin for this usersync or \
             install a compatible package with `usersync plugins install <package>`",
        ),
        Err(OpenError::Runtime(m)) => setup_failure(
            &conn.name,
            &conn.connector,
            "setup",
            m,
            "the connection cannot be opened (a key, certificate, proxy or CA bundle setting is unusable)",
            "fix the setting named above (proxy, ca_bundle, key or credential file)",
        ),
    }
}

fn print_table(kind: &str, r: &DoctorReport) {
    println!("{kind} `{}` ({})", r.connection, r.connector);
    let step_w = r.checks.iter().map(|c| c.step.len()).max().unwrap_or(4).max(4);
    let target_w = r
        .checks
        .iter()
        .map(|c| c.target.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 48);
    for c in &r.checks {
        println!(
            "  {:<4}  {:<step_w$}  {:<target_w$}  {}",
            c.status.as_str(),
            c.step,
            c.target,
            c.detail.lines().next().unwrap_or_default()
        );
        if c.status == CheckStatus::Fail || c.status == CheckStatus::Warn {
            if let Some(d) = &c.diagnosis {
                println!("        diagnosis: {d}");
            }
            if let Some(f) = &c.fix {
                println!("        fix: {f}");
            }
        }
    }
    println!();
}
