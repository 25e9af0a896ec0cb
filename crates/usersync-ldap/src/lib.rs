//! A read-only LDAPv3 view of the usersync store, for applications that read their users from
//! LDAP (Jira/Confluence, GitLab, Grafana, SSSD, ...). See docs/ldap.md.
//!
//! - [`server`]: listeners (LDAP with StartTLS, LDAPS), service-account binds with a
//!   failed-bind limit per peer, and the tree swapped whole when a sync run applies;
//! - [`directory`]: the tree built from one consistent read of the store (users as
//!   `inetOrgPerson`/`posixAccount`, groups as `groupOfNames`/`groupOfUniqueNames`/`posixGroup`);
//! - [`search`] and [`filter`]: scopes, filters, attribute selection, limits, paged results;
//! - [`ber`]: the BER writer the entries of a search are encoded with, straight from the tree;
//! - [`codec`]: the BER codec (ldap3_proto) behind a size and nesting guard, which also reads
//!   the criticality of each request's controls;
//! - [`ldif`]: the same tree as LDIF (`usersync export ldif`).
//!
//! Every write is answered `unwillingToPerform`.

pub mod ber;
pub mod codec;
pub mod directory;
pub mod dn;
pub mod entry;
pub mod filter;
pub mod ldif;
pub mod schema;
pub mod search;
pub mod server;
pub mod session;
pub mod tls;

use std::future::Future;

pub use server::{DirectoryOpener, Server, StoreOpener};
use usersync_config::LdapConfig;

/// Why the LDAP server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// The `[ldap]` section cannot be served as written.
    #[error("[ldap]: {0}")]
    Config(String),
    /// A service account's password could not be read (the message never holds the value).
    #[error("[ldap] service account `{dn}`: {source}")]
    Secret {
        /// The account's DN.
        dn: String,
        /// Why.
        source: usersync_config::SecretError,
    },
    /// The certificate or key cannot be used.
    #[error("[ldap] TLS: {0}")]
    Tls(String),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] usersync_store::StoreError),
    /// A listener could not be bound.
    #[error("[ldap] cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serve the LDAP view described by `config` from the store `open` opens, until `shutdown`
/// completes. `usersync ldap serve` and `usersync serve` call this.
pub async fn serve(
    config: LdapConfig,
    open: StoreOpener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), LdapError> {
    let server = Server::bind(config, open).await?;
    let (plain, ldaps) = server.local_addrs();
    tracing::info!(ldap = ?plain, ldaps = ?ldaps, entries = server.entries(), "LDAP server listening");
    server.run(shutdown).await
}
