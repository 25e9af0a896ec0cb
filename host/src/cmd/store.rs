//! `usersync store ...`: operations on the store itself (the copy of a SQLite store into
//! PostgreSQL; the work is `usersync_store::copy_store`).

use std::path::PathBuf;

use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCmd {
    /// Copy a SQLite store into a PostgreSQL store, in one transaction, verified before it commits
    /// (row count and content hash of every table, read back). Stop `sync` and `serve` first.
    #[command(after_help = "Examples:
  usersync store migrate --from sqlite:/var/lib/usersync/usersync.db --to postgres://usersync@db/usersync
  USERSYNC_STORE_URL=postgres://usersync:pw@db/usersync usersync store migrate --from sqlite:usersync.db --to env:USERSYNC_STORE_URL")]
    Migrate {
        /// The SQLite store, `sqlite:PATH` (opened read-only; it must be at this usersync's schema).
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The PostgreSQL store, `postgres://...`, or `env:NAME` to read the URL (which may hold a
        /// password) from an environment variable. Created or migrated as needed.
        #[arg(long, value_name = "postgres://...")]
        to: String,
        /// Delete what the destination store holds (users, groups, runs) and copy over it; without
        /// it, a destination that holds anything is refused.
        #[arg(long)]
        replace: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// Run the command; returns the process exit code.
pub async fn run(cmd: StoreCmd, _global: &GlobalArgs) -> anyhow::Result<u8> {
    let StoreCmd::Migrate {
        from,
        to,
        replace,
        format,
    } = cmd;
    let Some(path) = from.strip_prefix("sqlite:").map(PathBuf::from) else {
        eprintln!("error: --from must be sqlite:PATH, not `{from}`");
        return Ok(exit::USAGE);
    };
    let url = match to.strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(v) => v,
            Err(_) => {
                eprintln!("error: --to env:{name}: the environment variable {name} is not set");
                return Ok(exit::USAGE);
            }
        },
        None => to.clone(),
    };
    if !usersync_store::is_postgres_url(&url) {
        eprintln!(
            "error: --to must be a postgres:// URL (or env:NAME holding one), not `{}`",
            usersync_store::mask_url(&url)
        );
        return Ok(exit::USAGE);
    }
    let _span =
        tracing::info_span!("store_migrate", from = %path.display(), to = %usersync_store::mask_url(&url))
            .entered();
    let report = match usersync_store::copy_store(&path, &url, replace) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::FAILURE);
        }
    };
    match format {
        Format::Json => wiring::print_json(&report)?,
        Format::Table => {
            outln!("copied {} -> {} (verified)", report.from, report.to);
            outln!("{:<24} {:>10}  sha256", "table", "rows");
            for t in &report.tables {
                outln!("{:<24} {:>10}  {}", t.table, t.rows, t.sha256);
            }
            outln!("next: set [store] url in the config to the PostgreSQL store (a secret reference if it holds a password)");
        }
    }
    Ok(exit::OK)
}
