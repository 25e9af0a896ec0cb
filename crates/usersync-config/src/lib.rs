//! usersync configuration: the TOML file, its connections, secret references and sync policy.
//!
//! # Where the file is
//! [`Config::resolve_path`]: `--config FILE` (or `USERSYNC_CONFIG`), else `./usersync.toml`,
//! else `$XDG_CONFIG_HOME/usersync/usersync.toml` (`~/.config/usersync/usersync.toml`).
//! [`Config::discover`] resolves and loads; [`Config::load`] reads a given file;
//! [`Config::from_str`] parses text. Relative paths in the file are relative to its directory.
//!
//! # Format
//! ```toml
//! [store]
//! path = "usersync.db"            # SQLite file (default usersync.db)
//!
//! [runtime]                       # defaults for every connection
//! concurrency = 8                 # default: the connector's default_concurrency
//! proxy = "http://proxy:3128"
//! ca_bundle = "corp-ca.pem"
//! connect_timeout_secs = 10
//! request_timeout_secs = 60
//! max_retries = 5
//! max_throttle_wait_secs = 60     # cap on a provider's "retry after" ask
//! max_throttle_total_secs = 600   # how long one request may stay throttled (default 10x the above)
//!
//! [[connections]]                 # one per tenant; file order = priority order
//! name = "okta-prod"
//! connector = "okta"
//! [connections.options]           # checked against the connector's manifest
//! okta_domain = "https://acme.okta.com"
//! api_token = { env = "OKTA_API_TOKEN" }   # secret options: { env = "..." } or { file = "..." }
//! [connections.policy]            # see policy::Policy; every key optional
//! required_groups = ["Staff"]
//! max_removals = 50
//! max_removal_percent = 10
//! [connections.runtime]           # overrides [runtime] for this connection
//! concurrency = 4
//! credential_file = "credentials/okta-prod.json"  # authorization-code flow refresh token
//!
//! [plugins.pin]                   # read by the connector registry; ignored here
//! ```
//!
//! Consumers (runtime, doctor, demo, sync): take a [`ConnectionConfig`], validate it against
//! the connector's manifest with [`ConnectionConfig::check`] (which yields the connector's
//! [`usersync_sdk::Options`]), resolve each entry of [`ConnectionConfig::secrets`] with
//! [`SecretRef::resolve`] when the auth flow needs it, and use [`ConnectionConfig::runtime`]
//! for HTTP settings.

pub mod file;
pub mod pattern;
pub mod policy;
pub mod secret;

pub use file::{
    Config, ConfigError, ConfigIssue, ConnectionConfig, RuntimeSection, RuntimeSettings, StoreConfig,
};
pub use pattern::Pattern;
pub use policy::{GroupRemoval, MembershipRoute, PhotoMode, Policy, UserRemoval};
pub use secret::{Secret, SecretError, SecretRef};
