//! `usersync ldap ...`: the read-only LDAP view of the store (crates/usersync-ldap).

use std::sync::Arc;

use usersync_store::{DirectoryStore, PgStore, SqliteStore};

use crate::or_exit;
use crate::wiring::{self, exit, outln};
use crate::GlobalArgs;

/// `usersync ldap` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LdapCmd {
    /// Serve the store as a read-only LDAP directory ([ldap] in the config) until interrupted.
    #[command(after_help = "Examples:
  LDAP_JIRA_PASSWORD=... usersync ldap serve
  ldapsearch -H ldap://127.0.0.1:3389 -D cn=jira,ou=services,dc=example,dc=com -w \"$LDAP_JIRA_PASSWORD\" \\
    -b ou=users,dc=example,dc=com '(objectClass=inetOrgPerson)' uid mail memberOf
See docs/ldap.md for the tree, the settings of Jira, GitLab, Grafana and SSSD, and security.")]
    Serve,
}

/// Run an `ldap` subcommand.
pub async fn run(cmd: LdapCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    match cmd {
        LdapCmd::Serve => serve(global).await,
    }
}

async fn serve(global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config(global));
    let Some(ldap) = config.ldap.clone() else {
        eprintln!(
            "error: no [ldap] section in {}: add one (base_dn, service accounts); see docs/ldap.md",
            config.path.display()
        );
        return Ok(exit::USAGE);
    };
    // the SQLite file ([store] path) or the PostgreSQL store ([store] url), which several LDAP
    // hosts may serve at once
    let url = match wiring::store_url(&config) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let path = config.store.path.clone();
    let open: usersync_ldap::DirectoryOpener = Arc::new(move || match &url {
        Some(url) => Ok(Box::new(PgStore::open(url)?) as Box<dyn DirectoryStore>),
        None => Ok(Box::new(SqliteStore::open(&path)?) as Box<dyn DirectoryStore>),
    });
    let server = match usersync_ldap::Server::bind_any(ldap, open).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::FAILURE);
        }
    };
    let (plain, ldaps) = server.local_addrs();
    if let Some(a) = plain {
        outln!(
            "usersync ldap: listening on ldap://{a} ({} entries)",
            server.entries()
        );
    }
    if let Some(a) = ldaps {
        outln!("usersync ldap: listening on ldaps://{a}");
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return shutdown.await,
        };
        tokio::select! {
            _ = shutdown => {}
            _ = term.recv() => {}
        }
    };
    match server.run(shutdown).await {
        Ok(()) => {
            eprintln!("usersync ldap: stopped");
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::FAILURE)
        }
    }
}
