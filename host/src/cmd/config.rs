//! `usersync config ...`: find and validate the configuration file.

use serde::Serialize;
use usersync_config::{Config, ConfigError, ConfigIssue, ConnectionConfig, SecretRef};
use usersync_sdk::AuthPlan;

use crate::registry::{Lookup, Registry};
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
    #[command(after_help = "Examples:
  usersync config check
  usersync --config /etc/usersync/usersync.toml config check --format json | jq '.errors[]'

Exit codes: 0 the file is right, 1 a connector it names is a refused plugin library, 2 the file is wrong.")]
    Check {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the path of the config file this invocation uses.
    #[command(
        after_help = "Lookup: --config FILE (or USERSYNC_CONFIG), else ./usersync.toml, else \
$XDG_CONFIG_HOME/usersync/usersync.toml (~/.config/usersync/usersync.toml)."
    )]
    Path,
    /// Write a commented configuration template with one connection per chosen connector
    /// (placeholders to replace; secrets as environment-variable references). The file passes
    /// `usersync config check` as written.
    #[command(after_help = "Examples:
  usersync config init okta
  usersync config init entra google --output /etc/usersync/usersync.toml
  usersync config init keycloak --output -        # print instead of writing")]
    Init {
        /// Connector ids (see `usersync connectors list`), one connection each.
        #[arg(required = true, value_name = "CONNECTOR")]
        connectors: Vec<String>,
        /// Where to write (`-`: stdout). Default: `--config` when given, else ./usersync.toml.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
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
        ConfigCmd::Init {
            connectors,
            output,
            force,
        } => init(global, &connectors, output, force),
    }
}

/// `config init`: the template for `connectors`, written to `output`.
fn init(
    global: &GlobalArgs,
    connectors: &[String],
    output: Option<std::path::PathBuf>,
    force: bool,
) -> anyhow::Result<u8> {
    let registry = crate::registry::load(global)?;
    let mut manifests = Vec::new();
    for id in connectors {
        match registry.get(id) {
            Some(c) => manifests.push(c.manifest()),
            None => {
                eprintln!("error: {}", wiring::unknown_message(id, &registry));
                return Ok(exit::USAGE);
            }
        }
    }
    let text = template(&manifests);
    let path = output
        .or_else(|| global.config.clone())
        .unwrap_or_else(|| usersync_config::file::FILE_NAME.into());
    if path.as_os_str() == "-" {
        outln!("{}", text.trim_end());
        return Ok(exit::OK);
    }
    if path.exists() && !force {
        eprintln!(
            "error: `{}` exists; pass --force to overwrite it, or --output FILE",
            path.display()
        );
        return Ok(exit::USAGE);
    }
    if let Err(e) = std::fs::write(&path, &text) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return Ok(exit::FAILURE);
    }
    eprintln!(
        "wrote {}: replace the placeholders, set the environment variables it names, then run \
         `usersync config check` and `usersync doctor`",
        path.display()
    );
    Ok(exit::OK)
}

/// The commented configuration file for `manifests` (one connection each, named after the
/// connector, `-2`, `-3`... when one is chosen twice).
pub fn template(manifests: &[usersync_sdk::Manifest]) -> String {
    let ids: Vec<&str> = manifests.iter().map(|m| m.id.as_str()).collect();
    let mut s = format!(
        "# usersync configuration for: {}.\n\
         # Replace the placeholders, then check the file with `usersync config check` (offline) and\n\
         # `usersync doctor` (contacts each provider). Every option of a connector:\n\
         # `usersync connectors describe <id>`. Reference: docs/configuration.md.\n\
         # Secrets are references, never values: {{ env = \"NAME\" }} or {{ file = \"/path\" }}.\n\
         \n\
         [store]\n\
         path = \"usersync.db\"                 # the SQLite directory store, relative to this file\n\
         \n\
         # [runtime]                          # defaults for every connection\n\
         # proxy = \"http://proxy.corp:3128\"   # default: HTTPS_PROXY / NO_PROXY from the environment\n\
         # ca_bundle = \"corp-root-ca.pem\"     # extra CA to trust (TLS-inspecting proxy)\n\
         # concurrency = 8\n",
        ids.join(", ")
    );
    let mut used = std::collections::BTreeMap::<&str, usize>::new();
    for m in manifests {
        let n = used.entry(m.id.as_str()).or_default();
        *n += 1;
        let name = if *n == 1 {
            m.id.clone()
        } else {
            format!("{}-{n}", m.id)
        };
        s.push_str(&format!(
            "\n[[connections]]                      # {} ({})\n\
             name = \"{name}\"                   # used with --connection; order of blocks = priority\n\
             connector = \"{}\"\n\
             [connections.options]                # `usersync connectors describe {}`\n",
            m.name, m.id, m.id, m.id
        ));
        s.push_str(&options_template(m));
        s.push_str(
            "# [connections.policy]               # what to sync (docs/sync.md)\n\
             # required_groups = [\"Staff\"]       # only members of these groups\n\
             # exclude_groups = [\"re:^test-\"]\n\
             # max_removals = 50                  # safety gate: block a run removing more\n",
        );
    }
    s
}

/// The `[connections.options]` lines of one connector: a hand-written block for the built-in
/// connectors (their option rules are more than the manifest says: one of two credentials),
/// else the required options from the manifest with placeholders.
fn options_template(m: &usersync_sdk::Manifest) -> String {
    let fixed = match m.id.as_str() {
        "okta" => Some(
            "domain = \"example.okta.com\"         # your Okta org domain, without https://\n\
             api_token = { env = \"OKTA_API_TOKEN\" }   # Admin Console > Security > API > Tokens\n\
             # or an OAuth service app instead of api_token:\n\
             # client_id = \"0oa...\"\n\
             # private_key = { file = \"okta-service-app.pem\" }\n",
        ),
        "entra" => Some(
            "tenant_id = \"00000000-0000-0000-0000-000000000000\"   # Entra admin center > Overview\n\
             client_id = \"11111111-1111-1111-1111-111111111111\"   # the app registration's client ID\n\
             client_secret = { env = \"ENTRA_CLIENT_SECRET\" }     # or client_certificate_key + client_certificate\n",
        ),
        "google" => Some(
            "admin_email = \"admin@example.com\"    # a Workspace admin the service account acts as\n\
             service_account_key = { env = \"GOOGLE_SERVICE_ACCOUNT_KEY\" }   # the JSON key, or { file = \"key.json\" }\n\
             # domain = \"example.com\"             # only this domain instead of the whole account\n",
        ),
        "keycloak" => Some(
            "base_url = \"https://sso.example.com\"   # the address before /admin or /realms\n\
             realm = \"example\"                  # the realm to sync\n\
             client_id = \"usersync\"             # a confidential client with a service account\n\
             client_secret = { env = \"KEYCLOAK_CLIENT_SECRET\" }\n",
        ),
        "onelogin" => Some(
            "base_url = \"https://example.onelogin.com\"   # your OneLogin API host\n\
             client_id = \"0123456789abcdef\"     # Administration > Developers > API Credentials\n\
             client_secret = { env = \"ONELOGIN_CLIENT_SECRET\" }\n",
        ),
        _ => None,
    };
    if let Some(f) = fixed {
        return f.to_string();
    }
    let mut s = String::new();
    for o in &m.options {
        let help = o.help.split(". ").next().unwrap_or_default();
        let value = if o.secret {
            let var: String = format!("{}_{}", m.id, o.name)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{{ env = \"{var}\" }}")
        } else {
            match o.kind {
                usersync_sdk::OptionType::Integer => "0".into(),
                usersync_sdk::OptionType::Bool => "false".into(),
                usersync_sdk::OptionType::StringList => "[]".into(),
                usersync_sdk::OptionType::Url => "\"https://example.com\"".into(),
                _ => "\"CHANGE-ME\"".into(),
            }
        };
        let line = format!("{} = {value}", o.name);
        if o.required {
            s.push_str(&format!("{line}   # {help}\n"));
        } else if o.default.is_none() {
            s.push_str(&format!("# {line}   # {help}\n"));
        }
    }
    s
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
        Err(e) => report.errors = load_errors(&e, &path, format),
        Ok((config, issues)) => {
            report.errors = issues;
            check_loaded(global, &config, &path, &mut report);
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

/// Why the file could not be loaded.
fn load_errors(e: &ConfigError, path: &std::path::Path, format: Format) -> Vec<ConfigIssue> {
    let mut errors = Vec::new();
    // A syntax error stops the check: toml's message says line, column and what (the
    // caret snippet only on the terminal, never in JSON).
    match (e, format) {
        (ConfigError::Parse { message, .. }, Format::Table) => errors.push(ConfigIssue {
            file: path.to_path_buf(),
            line: wiring::plain_toml_message(message).0,
            connection: None,
            option: None,
            message: message.clone(),
        }),
        _ => {
            let issues = wiring::config_error_issues(e);
            if issues.is_empty() {
                errors.push(ConfigIssue {
                    file: path.to_path_buf(),
                    line: 0,
                    connection: None,
                    option: None,
                    message: e.to_string(),
                });
            }
            errors.extend(issues);
        }
    }
    errors
}

/// The loaded file's `[plugins]`, connections and targets.
fn check_loaded(global: &GlobalArgs, config: &Config, path: &std::path::Path, report: &mut CheckReport) {
    report.store = config.store.path.display().to_string();
    // `[plugins]` is the registry's table: a mistake in it is a config error too.
    let section = match crate::registry::plugins_section(global) {
        Ok(s) => s,
        Err(e) => {
            let message = match &e {
                usersync_registry::RegistryError::BadConfig { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            report.errors.push(ConfigIssue {
                file: path.to_path_buf(),
                line: plugins_line(path),
                connection: None,
                option: None,
                message,
            });
            Default::default()
        }
    };
    let registry = crate::registry::load_with(global, section);
    for conn in &config.connections {
        check_connection(conn, path, &registry, report);
    }
    let (errors, warnings) = crate::cmd::push::check_targets(config, path, &registry);
    report.errors.extend(errors);
    report.warnings.extend(warnings);
}

/// One connection: its connector is loaded and takes its options; its secrets are there.
fn check_connection(
    conn: &ConnectionConfig,
    path: &std::path::Path,
    registry: &Registry,
    report: &mut CheckReport,
) {
    report
        .connections
        .push(format!("{} ({})", conn.name, conn.connector));
    let issue = |message: String| ConfigIssue {
        file: path.to_path_buf(),
        line: conn.connector_line(),
        connection: Some(conn.name.clone()),
        option: None,
        message,
    };
    let connector = match registry.lookup(&conn.connector) {
        Lookup::Active(e) => match &e.connector {
            Some(c) => c.clone(),
            None => return,
        },
        Lookup::Refused(refused) => {
            // The file may be right; this host cannot load the connector it names,
            // so its options cannot be checked here.
            report
                .errors
                .push(issue(wiring::refused_message(&conn.connector, &refused)));
            report.refused_plugins += 1;
            return;
        }
        Lookup::Unused(unused) => {
            report
                .errors
                .push(issue(wiring::unused_message(&conn.connector, &unused)));
            return;
        }
        Lookup::Unknown => {
            report
                .errors
                .push(issue(wiring::unknown_message(&conn.connector, registry)));
            return;
        }
    };
    match wiring::check_connection(conn, path, &connector) {
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

/// The line of the file's first `[plugins` table header (1 when there is none).
fn plugins_line(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .position(|l| l.trim_start().starts_with("[plugins"))
                .map(|i| i + 1)
        })
        .unwrap_or(1)
}
