//! `usersync plugins ...`: the connector candidates (built-in and plugin libraries), which one is
//! active per id and why, and the libraries that were refused.

use clap::ValueEnum;
use serde_json::{json, Value};

use crate::cmd::connectors::render_table;
use crate::registry::{self, Entry};
use crate::GlobalArgs;

/// `usersync plugins` subcommands. (Planned: `install`, `remove`, `rollback`, `package`.)
#[derive(Debug, clap::Subcommand)]
pub enum PluginsCmd {
    /// List built-in connectors, loaded plugins and refused libraries: id, version, ABI version,
    /// source (`builtin` or the library path), whether it is active, and why.
    List(ListArgs),
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
    }
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
            println!(
                "Host accepts plugin ABI versions {}..={}.",
                usersync_registry::ACCEPTED_ABI_MIN,
                usersync_registry::ACCEPTED_ABI_MAX
            );
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
