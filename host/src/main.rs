//! The `usersync` command-line host.

mod cmd;
mod registry;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Keep an organisation's users and groups in sync with its identity providers.
#[derive(Debug, Parser)]
#[command(name = "usersync", version, about, long_about = None, after_help = ROOT_AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Examples and exit codes under `usersync --help`.
const ROOT_AFTER_HELP: &str = "Examples:
  usersync config init --connector okta > usersync.toml
  usersync config check
  usersync doctor
  usersync sync --dry-run
  usersync sync -c okta --allow-deletes 10
  usersync users list --status inactive --search smith

Exit codes: 0 success, 1 a run or command failed, 2 usage or configuration error, 3 a safety gate
blocked a run.";

/// What every subcommand's help says instead of repeating the global options.
const GLOBAL_NOTE: &str =
    "Global options (--config, --plugin-dir, --log-format, -v) work here too: see `usersync --help`.";

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Config file (default: ./usersync.toml, then $XDG_CONFIG_HOME/usersync/usersync.toml).
    #[arg(long, global = true, env = "USERSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory to load connector plugins from (repeatable; also USERSYNC_PLUGIN_PATH).
    #[arg(long = "plugin-dir", global = true)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe connectors: manifests, endpoints, firewall host lists.
    #[command(subcommand)]
    Connectors(cmd::connectors::ConnectorsCmd),
    /// List, install, remove and roll back connector plugins.
    #[command(subcommand)]
    Plugins(cmd::plugins::PluginsCmd),
    /// Check connectivity, credentials and permissions of each connection.
    Doctor(cmd::doctor::DoctorArgs),
    /// Interactive authorization (OAuth2 authorization code) for a connection.
    #[command(subcommand)]
    Auth(cmd::auth::AuthCmd),
    /// Validate the configuration file.
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Sync connections into the directory store.
    Sync(cmd::sync::SyncArgs),
    /// Provision the store into the configured targets (applications).
    Push(cmd::push::PushArgs),
    /// Run unattended: schedules, status page, JSON API, metrics, approvals, webhooks.
    Serve(cmd::serve::ServeArgs),
    /// Users in the directory store.
    #[command(subcommand)]
    Users(cmd::users::UsersCmd),
    /// Groups in the directory store.
    #[command(subcommand)]
    Groups(cmd::groups::GroupsCmd),
    /// Sync run history.
    #[command(subcommand)]
    Runs(cmd::runs::RunsCmd),
    /// The store itself: copy a SQLite store into PostgreSQL (`store migrate`).
    #[command(subcommand)]
    Store(cmd::store::StoreCmd),
    /// Explain why a user is in or out of scope.
    #[command(subcommand)]
    Explain(cmd::explain::ExplainCmd),
    /// Serve the store as a read-only LDAP directory (`[ldap]`).
    #[command(subcommand)]
    Ldap(cmd::ldap::LdapCmd),
    /// Export the store for other directories: `export ldif` (the LDAP view's tree).
    #[command(subcommand)]
    Export(cmd::export::ExportCmd),
    /// Run a local emulator of an identity provider's API.
    #[cfg(feature = "emulators")]
    Emulator(Box<cmd::emulator::EmulatorArgs>),
    /// Start every emulator, sync each into a local SQLite store, and report.
    #[cfg(feature = "emulators")]
    Demo(cmd::demo::DemoArgs),
    /// Not in this build (built without the `emulators` feature): says so and exits 2.
    #[cfg(not(feature = "emulators"))]
    #[command(name = "emulator", hide = true, disable_help_flag = true)]
    NoEmulator {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Not in this build (built without the `emulators` feature): says so and exits 2.
    #[cfg(not(feature = "emulators"))]
    #[command(name = "demo", hide = true, disable_help_flag = true)]
    NoDemo {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  usersync completions bash > /etc/bash_completion.d/usersync
  usersync completions zsh > \"${fpath[1]}/_usersync\"
  usersync completions fish > ~/.config/fish/completions/usersync.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = "Examples:
  usersync man | man -l -
  usersync man --dir /usr/local/share/man/man1")]
    Man {
        /// Write usersync.1 and usersync-<command>.1 pages here instead of printing usersync.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The command line definition as `--help`, completions and man pages show it: every
/// subcommand's help hides the global options (listed once under `usersync --help`) and says
/// so in one line.
pub fn command() -> clap::Command {
    let mut cmd = with_examples(Cli::command());
    cmd.build();
    let globals: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    // mut_args/mut_subcommands keep the order of a built command's arguments (its key index).
    fn hide(cmd: clap::Command, globals: &[clap::Id]) -> clap::Command {
        cmd.mut_subcommands(|sub| {
            if sub.get_name() == "help" {
                return sub;
            }
            let sub = sub.mut_args(|a| {
                if globals.contains(a.get_id()) {
                    a.hide(true)
                } else {
                    a
                }
            });
            let after = match sub.get_after_help() {
                Some(a) => format!("{a}\n\n{GLOBAL_NOTE}"),
                None => GLOBAL_NOTE.to_string(),
            };
            hide(sub.after_help(after), globals)
        })
    }
    hide(cmd, &globals)
}

/// Examples for the commands whose definitions give none (a command's own `after_help` wins).
const EXAMPLES: &[(&str, Option<&str>, &str)] = &[
    (
        "sync",
        None,
        "Examples:
  usersync sync --dry-run                 # the plan; nothing written
  usersync sync -c okta -c google         # two connections only
  usersync sync --allow-deletes 25        # confirm up to 25 removals past the safety gates
  usersync sync --format json | jq '.[] | {connection, status}'",
    ),
    (
        "runs",
        Some("list"),
        "Examples:
  usersync runs list -c okta --limit 10
  usersync runs list --format json | jq '.[0]'",
    ),
    ("runs", Some("show"), "Example:\n  usersync runs show 42"),
    (
        "explain",
        Some("user"),
        "Examples:
  usersync explain user alice@example.com
  usersync explain user alice -c okta --format json",
    ),
    (
        "demo",
        None,
        "Examples:
  usersync demo
  usersync demo --provider okta --users 200 --no-sync     # keep the emulator serving",
    ),
];

fn with_examples(mut cmd: clap::Command) -> clap::Command {
    for (name, sub, text) in EXAMPLES {
        if cmd.find_subcommand(name).is_none() {
            continue;
        }
        cmd = cmd.mut_subcommand(name, |c| match sub {
            None if c.get_after_help().is_none() => c.after_help(*text),
            Some(s) if c.find_subcommand(s).is_some_and(|l| l.get_after_help().is_none()) => {
                c.mut_subcommand(s, |l| l.after_help(*text))
            }
            _ => c,
        });
    }
    cmd
}

/// `usersync man`: the page on stdout, or every page into `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    let cmd = command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write man pages into `{}`", dir.display()))?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&out);
        }
    }
    Ok(0)
}

/// `usersync demo` / `usersync emulator` in a build without the `emulators` feature (a packaged
/// build that leaves the provider emulators out): one line on stderr, exit 2 (usage error).
#[cfg(not(feature = "emulators"))]
fn not_built(command: &str) -> u8 {
    eprintln!(
        "error: `usersync {command}` is not in this build: it was built without the `emulators` feature \
         (build it with `cargo build -p usersync --features emulators`, the default)"
    );
    2
}

fn init_logging(global: &GlobalArgs) {
    let default = match global.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // colour only on a terminal, and never when NO_COLOR is set (https://no-color.org): cron
    // mail and journald get plain text
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Die quietly on a closed pipe (`usersync users list | head`), as command-line tools do, instead
/// of panicking in `println!`.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Long-running servers (`emulator`, `demo --no-sync`) must outlive a reader that closed their
    // stdout after the first line; every other command dies quietly on a closed pipe.
    #[cfg(feature = "emulators")]
    let server = matches!(cli.command, Command::Emulator(_) | Command::Demo(_));
    #[cfg(not(feature = "emulators"))]
    let server = false;
    let server = server || matches!(cli.command, Command::Ldap(_));
    let server = server || matches!(cli.command, Command::Serve(_));
    if !server {
        restore_default_sigpipe();
    }
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Connectors(c) => cmd::connectors::run(c, &cli.global).await,
            Command::Plugins(c) => cmd::plugins::run(c, &cli.global).await,
            Command::Doctor(c) => cmd::doctor::run(c, &cli.global).await,
            Command::Auth(c) => cmd::auth::run(c, &cli.global).await,
            Command::Config(c) => cmd::config::run(c, &cli.global).await,
            Command::Sync(c) => cmd::sync::run(c, &cli.global).await,
            Command::Push(c) => cmd::push::run(c, &cli.global).await,
            Command::Serve(c) => cmd::serve::run(c, &cli.global).await,
            Command::Users(c) => cmd::users::run(c, &cli.global).await,
            Command::Groups(c) => cmd::groups::run(c, &cli.global).await,
            Command::Runs(c) => cmd::runs::run(c, &cli.global).await,
            Command::Store(c) => cmd::store::run(c, &cli.global).await,
            Command::Explain(c) => cmd::explain::run(c, &cli.global).await,
            Command::Ldap(c) => cmd::ldap::run(c, &cli.global).await,
            Command::Export(c) => cmd::export::run(c, &cli.global).await,
            #[cfg(feature = "emulators")]
            Command::Emulator(c) => cmd::emulator::run(*c, &cli.global).await,
            #[cfg(feature = "emulators")]
            Command::Demo(c) => cmd::demo::run(c, &cli.global).await,
            #[cfg(not(feature = "emulators"))]
            Command::NoEmulator { .. } => Ok(not_built("emulator")),
            #[cfg(not(feature = "emulators"))]
            Command::NoDemo { .. } => Ok(not_built("demo")),
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut command(), "usersync", &mut std::io::stdout());
                Ok(0)
            }
            Command::Man { dir } => man(dir.as_deref()),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
