//! `usersync config ...`: find and validate the configuration file.

use serde::Serialize;
use usersync_config::{Config, ConfigError, ConfigIssue, SecretRef};

use crate::registry::Lookup;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Validate the file offline: syntax, policies, and every connection's options against its
    /// connector's declared options (unknown, missing, wrong type, secrets not given as
    /// references). Exit code 2 when anything in the file is wrong; 1 when the file is right but
    /// a connector it names is a plugin library this host refused.
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the path of the config file this invocation uses.
    Path,
}

#[derive(Serialize)]
struct CheckReport {
    file: String,
    ok: bool,
    connections: Vec<String>,
    store: String,
    errors: Vec<ConfigIssue>,
    warnings: Vec<String>,
    /// How many of `errors` are connections whose connector's plugin library this host refused
    /// (exit code 1 when these are the only errors).
    #[serde(skip)]
    refused_plugins: usize,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: ConfigCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    match cmd {
        ConfigCmd::Path => match Config::resolve_path(global.config.as_deref()) {
            Ok(p) => {
                outln!("{}", p.display());
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(exit::USAGE)
            }
        },
        ConfigCmd::Check { format } => check(global, format),
    }
}

fn check(global: &GlobalArgs, format: Format) -> anyhow::Result<u8> {
    let path = match Config::resolve_path(global.config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let mut report = CheckReport {
        file: path.display().to_string(),
        ok: false,
        connections: vec![],
        store: String::new(),
        errors: vec![],
        warnings: vec![],
        refused_plugins: 0,
    };
    match Config::load(&path) {
        Err(ConfigError::Invalid(issues)) => report.errors = issues,
        Err(e) => {
            report.errors.push(ConfigIssue {
                file: path.clone(),
                line: parse_line(&e.to_string()).unwrap_or(0),
                connection: None,
                option: None,
                message: e.to_string(),
            });
        }
        Ok(config) => {
            report.store = config.store.path.display().to_string();
            let registry = crate::registry::load(global)?;
            if config.connections.is_empty() {
                report.warnings.push("no [[connections]] are defined".into());
            }
            for conn in &config.connections {
                report
                    .connections
                    .push(format!("{} ({})", conn.name, conn.connector));
                let issue = |message: String| ConfigIssue {
                    file: path.clone(),
                    line: conn.line,
                    connection: Some(conn.name.clone()),
                    option: None,
                    message,
                };
                let connector = match registry.lookup(&conn.connector) {
                    Lookup::Active(e) => match &e.connector {
                        Some(c) => c.clone(),
                        None => continue,
                    },
                    Lookup::Refused(refused) => {
                        // The file may be right; this host cannot load the connector it names,
                        // so its options cannot be checked here.
                        report
                            .errors
                            .push(issue(wiring::refused_message(&conn.connector, &refused)));
                        report.refused_plugins += 1;
                        continue;
                    }
                    Lookup::Unused(unused) => {
                        report
                            .errors
                            .push(issue(wiring::unused_message(&conn.connector, &unused)));
                        continue;
                    }
                    Lookup::Unknown => {
                        report
                            .errors
                            .push(issue(wiring::unknown_message(&conn.connector, &registry)));
                        continue;
                    }
                };
                let manifest = connector.manifest();
                if let Err(issues) = conn.check(&manifest, &path) {
                    report.errors.extend(issues);
                }
                for (name, r) in &conn.secrets {
                    match r {
                        SecretRef::Env { env } if std::env::var_os(env).is_none() => report.warnings.push(format!(
                            "{}:{}: connection `{}`: option `{name}`: environment variable `{env}` is not set here",
                            path.display(),
                            conn.option_line(name),
                            conn.name
                        )),
                        SecretRef::File { file } if !file.is_file() => report.warnings.push(format!(
                            "{}:{}: connection `{}`: option `{name}`: file `{}` does not exist here",
                            path.display(),
                            conn.option_line(name),
                            conn.name,
                            file.display()
                        )),
                        _ => {}
                    }
                }
                if conn.policy.max_removal_percent > 100.0 || conn.policy.max_removal_percent < 0.0 {
                    report.warnings.push(format!(
                        "connection `{}`: max_removal_percent {} is outside 0..=100",
                        conn.name, conn.policy.max_removal_percent
                    ));
                }
            }
        }
    }
    report.ok = report.errors.is_empty();
    match format {
        Format::Json => wiring::print_json(&report)?,
        Format::Table => {
            for e in &report.errors {
                eprintln!("error: {e}");
            }
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if report.ok {
                outln!(
                    "{}: ok ({} connection(s): {}; store {})",
                    report.file,
                    report.connections.len(),
                    report.connections.join(", "),
                    report.store
                );
            } else {
                outln!("{}: {} error(s)", report.file, report.errors.len());
            }
        }
    }
    Ok(if report.ok {
        exit::OK
    } else if report.errors.len() == report.refused_plugins {
        exit::FAILURE
    } else {
        exit::USAGE
    })
}

/// The line number in a toml error message ("TOML parse error at line 7, column 3").
fn parse_line(msg: &str) -> Option<usize> {
    let rest = &msg[msg.find("line ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
