//! `usersync export ...`: the store in formats other directories load. `export ldif` writes the
//! LDAP view's tree (crates/usersync-ldap: the same load and entry builders `usersync ldap serve`
//! answers from) as LDIF, e.g. for OpenLDAP's `slapadd`.

use std::path::PathBuf;

use usersync_store::{DirectoryStore, PgStore, SqliteStore};

use crate::or_exit;
use crate::wiring::{self, exit};
use crate::GlobalArgs;

/// `usersync export` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ExportCmd {
    /// The LDAP view ([ldap] in the config) as LDIF (RFC 2849): every entry `usersync ldap serve`
    /// serves, parents first, with its user attributes and entryUUID.
    #[command(after_help = "Examples:
  usersync export ldif --out directory.ldif
  usersync export ldif --no-entry-uuid | ldapadd -x -D cn=admin,dc=example,dc=com -W
  slapadd -q -s -f slapd.conf -l directory.ldif      # see docs/ldap.md, \"Export as LDIF\"
POSIX numbers not allocated yet are allocated in the store first, as `usersync ldap serve` does.")]
    Ldif {
        /// Write to this file (replaced only once the whole export is written); default stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Leave out entryUUID (ldapadd refuses it; slapadd keeps it).
        #[arg(long)]
        no_entry_uuid: bool,
    },
}

/// Run an `export` subcommand.
pub async fn run(cmd: ExportCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let ExportCmd::Ldif { out, no_entry_uuid } = cmd;
    let config = or_exit!(wiring::load_config(global));
    let Some(ldap) = config.ldap.clone() else {
        eprintln!(
            "error: no [ldap] section in {}: the export is the LDAP view's tree (base_dn, layout, posix); see docs/ldap.md",
            config.path.display()
        );
        return Ok(exit::USAGE);
    };
    // the SQLite file ([store] path) or the PostgreSQL store ([store] url), as `ldap serve` opens it
    let url = match wiring::store_url(&config) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    if url.is_none() && !config.store.path.exists() {
        eprintln!(
            "error: no store at {}: run `usersync sync` first",
            config.store.path.display()
        );
        return Ok(exit::FAILURE);
    }
    let path = config.store.path.clone();
    let dir = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut store: Box<dyn DirectoryStore> = match &url {
            Some(url) => Box::new(PgStore::open(url)?),
            None => Box::new(SqliteStore::open(&path)?),
        };
        Ok(usersync_ldap::server::load(&mut *store, &ldap)?)
    })
    .await?;
    let dir = match dir {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::FAILURE);
        }
    };
    let op = if no_entry_uuid {
        usersync_ldap::ldif::Operational::None
    } else {
        usersync_ldap::ldif::Operational::EntryUuid
    };
    let written = match &out {
        Some(file) => write_file(file, &dir, op),
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            usersync_ldap::ldif::write(&mut w, &dir, op).map_err(anyhow::Error::from)
        }
    };
    match written {
        Ok(n) => {
            if let Some(file) = &out {
                eprintln!("usersync export: {n} entries written to {}", file.display());
            }
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: writing the LDIF: {e:#}");
            Ok(exit::FAILURE)
        }
    }
}

/// Write to a temporary file next to `file` and rename it over `file` once complete, so a failed
/// export never leaves a truncated LDIF where a whole one was.
fn write_file(
    file: &std::path::Path,
    dir: &usersync_ldap::directory::Directory,
    op: usersync_ldap::ldif::Operational,
) -> anyhow::Result<usize> {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = file.with_file_name(name);
    let written = (|| -> anyhow::Result<usize> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        let n = usersync_ldap::ldif::write(&mut w, dir, op)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file)?;
        Ok(n)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let n = written?;
    Ok(n)
}
