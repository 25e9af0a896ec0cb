//! `usersync plugins ...`: the connector candidates (built-in and plugin libraries), which one is
//! active per id and why, and the libraries that were refused.

use clap::ValueEnum;
use serde_json::{json, Value};

use crate::cmd::connectors::render_table;
use crate::registry::{self, Entry};
use crate::GlobalArgs;

/// `usersync plugins` subcommands. Packages are built with `cargo xtask package` (docs/releasing.md).
#[derive(Debug, clap::Subcommand)]
pub enum PluginsCmd {
    /// List built-in connectors, loaded plugins and refused libraries: id, version, ABI version,
    /// source (`builtin` or the library path), whether it is active, and why.
    #[command(after_help = "Examples:
  usersync plugins list
  usersync --plugin-dir ./plugins plugins list --format json")]
    List(ListArgs),
    /// Verify a connector package (checksum, target, ABI, signature) and install it atomically,
    /// keeping the previous version for `rollback`.
    #[command(after_help = "Examples:
  usersync plugins install usersync-connector-acme-1.2.0-x86_64-unknown-linux-gnu.tar.gz
  usersync --plugin-dir /opt/usersync/plugins plugins install ./usersync-connector-acme-1.2.0-x86_64-unknown-linux-gnu.tar.gz")]
    Install(InstallArgs),
    /// Put the previous version of a connector plugin back (run again to undo).
    #[command(after_help = "Example:
  usersync plugins rollback acme")]
    Rollback(IdArgs),
    /// Remove a connector plugin (and its kept previous version); a built-in takes over again.
    #[command(after_help = "Example:
  usersync plugins remove acme")]
    Remove(IdArgs),
}

/// Arguments of `plugins install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The package: usersync-connector-<id>-<version>-<target>.tar.gz (SHA256SUMS beside it).
    pub package: std::path::PathBuf,
}

/// Arguments naming one connector id.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Connector id, e.g. `okta`.
    pub id: String,
}

/// Output format of `plugins list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// A JSON array of objects: id, version, abi_version, source, active, reason.
    Json,
}

/// Arguments of `plugins list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: PluginsCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    match cmd {
        PluginsCmd::List(a) => list(a, global),
        PluginsCmd::Install(a) => install(a, global),
        PluginsCmd::Rollback(a) => rollback(a, global),
        PluginsCmd::Remove(a) => remove(a, global),
    }
}

/// The directory `install`, `rollback` and `remove` work on: the first `--plugin-dir`, else the
/// default data directory.
fn target_plugin_dir(global: &GlobalArgs) -> anyhow::Result<std::path::PathBuf> {
    global
        .plugin_dirs
        .first()
        .cloned()
        .or_else(usersync_registry::default_plugin_dir)
        .ok_or_else(|| anyhow::anyhow!("no plugin directory: pass --plugin-dir DIR (HOME is not set)"))
}

/// Trusted minisign keys from the config file's `[plugins] trusted_keys`.
fn trusted_keys(global: &GlobalArgs) -> anyhow::Result<Vec<String>> {
    Ok(registry::plugins_section(global)?.trusted_keys)
}

fn install(args: InstallArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let policy = usersync_release::TrustPolicy {
        trusted_keys: trusted_keys(global)?,
        host_target: usersync_release::HOST_TARGET.to_string(),
        abi_min: usersync_registry::ACCEPTED_ABI_MIN,
        abi_max: usersync_registry::ACCEPTED_ABI_MAX,
    };
    // Every check happens before anything is written.
    let verified = match usersync_release::verify_package(&args.package, &policy) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    let dir = target_plugin_dir(global)?;
    let report = usersync_release::install(&verified, &dir)?;
    // The library must really load in this host and be what the package says it is; if not,
    // put things back as they were.
    let loaded = usersync_abi::load_plugin(&report.installed)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            let m = p.connector.manifest();
            if m.id == verified.manifest.id
                && m.version == verified.manifest.version
                && p.abi_version == verified.manifest.abi_version
            {
                Ok(())
            } else {
                Err(format!(
                    "the library reports {} {} (ABI {}) but the package manifest says {} {} (ABI {})",
                    m.id,
                    m.version,
                    p.abi_version,
                    verified.manifest.id,
                    verified.manifest.version,
                    verified.manifest.abi_version
                ))
            }
        });
    if let Err(e) = loaded {
        match &report.previous {
            Some(_) => {
                usersync_release::rollback(&dir, &verified.manifest.id)?;
            }
            None => {
                usersync_release::remove(&dir, &verified.manifest.id)?;
            }
        }
        eprintln!(
            "refused: {}: the installed library does not load: {e}; the previous state was restored",
            args.package.display()
        );
        return Ok(1);
    }
    println!(
        "installed {} {} ({}) into {}{}",
        verified.manifest.id,
        verified.manifest.version,
        verified.manifest.target,
        report.installed.display(),
        match &verified.signed_by {
            Some(k) => format!(", signed by {k}"),
            None => String::new(),
        }
    );
    if let Some(prev) = &report.previous {
        println!(
            "previous version kept at {} (`usersync plugins rollback {}`)",
            prev.display(),
            verified.manifest.id
        );
    }
    Ok(0)
}

fn rollback(args: IdArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let dir = target_plugin_dir(global)?;
    let report = usersync_release::rollback(&dir, &args.id)?;
    let version = usersync_abi::load_plugin(&report.installed)
        .map(|p| p.connector.manifest().version)
        .unwrap_or_else(|e| format!("(does not load: {e})"));
    println!("{} is now {} at {}", args.id, version, report.installed.display());
    Ok(0)
}

fn remove(args: IdArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let dir = target_plugin_dir(global)?;
    for p in usersync_release::remove(&dir, &args.id)? {
        println!("removed {}", p.display());
    }
    Ok(0)
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "id": e.id,
        "version": e.version,
        "abi_version": e.abi_version,
        "source": e.source.to_string(),
        "active": e.active,
        "reason": e.reason,
    })
}

fn list(args: ListArgs, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = registry::registry_config(global)?;
    let reg = registry::load(global)?;
    let entries = reg.entries();
    match args.format {
        Format::Json => {
            let v: Vec<Value> = entries.iter().map(|e| entry_json(e)).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table => {
            let dash = || "-".to_string();
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone().unwrap_or_else(dash),
                        e.version.clone().unwrap_or_else(dash),
                        e.abi_version.map(|v| v.to_string()).unwrap_or_else(dash),
                        e.source.to_string(),
                        if e.active { "yes" } else { "no" }.to_string(),
                        e.reason.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(&["ID", "VERSION", "ABI", "SOURCE", "ACTIVE", "REASON"], &rows)
            );
            println!();
            println!("{}", accepted_abi_sentence());
            let dirs: Vec<String> = config
                .plugin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            println!(
                "Plugin directories searched (--plugin-dir, {}, default): {}",
                registry::PLUGIN_PATH_ENV,
                if dirs.is_empty() {
                    "none".to_string()
                } else {
                    dirs.join(", ")
                }
            );
            for w in reg.warnings() {
                println!("warning: {w}");
            }
        }
    }
    Ok(0)
}

/// What `plugins list` says about the ABI versions this host accepts, in words: `This usersync
/// loads plugins built for ABI version 1.` (or `versions 1 to 3`).
fn accepted_abi_sentence() -> String {
    let (min, max) = (
        usersync_registry::ACCEPTED_ABI_MIN,
        usersync_registry::ACCEPTED_ABI_MAX,
    );
    format!(
        "This usersync loads plugins built for {}.",
        usersync_sdk::manifest::abi_versions_text(min, max)
    )
}
