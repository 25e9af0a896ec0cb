//! `usersync config ...`: find and validate the configuration file.

use serde::Serialize;
use usersync_config::{Config, ConfigError, ConfigIssue, SecretRef};
use usersync_sdk::AuthPlan;

use crate::registry::Lookup;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Validate the file offline and report every mistake at once, by line: syntax, unknown keys
    /// (with "did you mean"), policies, out-of-range settings, files the config names (CA
    /// bundle, secret files, refresh-token files), secret values, and every connection's options
    /// against its connector (unknown, missing, wrong type, secrets not given as references,
    /// URLs that may not be contacted). Exit code 2 when anything in the file is wrong; 1 when
    /// the file is right but a connector it names is a plugin library this host refused.
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
    warnings: Vec<ConfigIssue>,
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
    match Config::load_all(&path) {
        Err(e) => {
            // A syntax error stops the check: toml's message says line, column and what.
            let message = match &e {
                ConfigError::Parse { message, .. } => message.clone(),
                other => other.to_string(),
            };
            report.errors.push(ConfigIssue {
                file: path.clone(),
                line: parse_line(&message).unwrap_or(0),
                connection: None,
                option: None,
                message,
            });
        }
        Ok((config, issues)) => {
            report.errors = issues;
            report.store = config.store.path.display().to_string();
            let registry = crate::registry::load(global)?;
            for conn in &config.connections {
                report
                    .connections
                    .push(format!("{} ({})", conn.name, conn.connector));
                let issue = |message: String| ConfigIssue {
                    file: path.clone(),
                    line: conn.connector_line(),
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
                match wiring::check_connection(conn, &path, &connector) {
                    Err(issues) => report.errors.extend(issues),
                    Ok(wiring::Checked { session: None, .. }) => {}
                    Ok(wiring::Checked {
                        session: Some(session),
                        ..
                    }) => {
                        // The authorization-code flow runs on the refresh token `auth login`
                        // stored; without it every run fails.
                        if let AuthPlan::RefreshToken { .. } = session.auth_plan() {
                            let file = &conn.runtime.credential_file;
                            if !file.is_file() {
                                report.errors.push(ConfigIssue {
                                    option: Some("runtime.credential_file".into()),
                                    ..issue(format!(
                                        "no refresh token at `{}` yet: run `usersync auth login {}`",
                                        file.display(),
                                        conn.name
                                    ))
                                });
                            }
                        }
                    }
                }
                for (name, r) in &conn.secrets {
                    if let SecretRef::Env { env } = r {
                        if std::env::var_os(env).is_none() {
                            report.warnings.push(ConfigIssue {
                                line: conn.option_line(name),
                                option: Some(name.clone()),
                                ..issue(format!("environment variable `{env}` is not set here"))
                            });
                        }
                    }
                }
            }
        }
    }
    report.errors.sort_by_key(|i| i.line);
    report.warnings.sort_by_key(|i| i.line);
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
