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
//! domain = "acme.okta.com"
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
//! # Validation
//! [`Config::load`] checks the whole file in one pass ([`validate`]) and reports every problem
//! at once, sorted by line ([`ConfigError::Invalid`]): unknown keys at every level (with a
//! "did you mean"), wrong types and enum values, bad patterns, numbers outside their range
//! ([`validate::RANGES`], e.g. the safety gates' percentages), files the config names that
//! cannot be read (`ca_bundle`, secret `{ file = ... }`; relative to the config's directory),
//! and secret values that cannot be sent (blank, NUL, a line break in a single-line secret).
//! An unset environment variable is not a load error: commands that need it fail on it.
//!
//! Consumers (runtime, doctor, demo, sync): take a [`ConnectionConfig`], validate it against
//! the connector's manifest with [`ConnectionConfig::check`] (which yields the connector's
//! [`usersync_sdk::Options`]), resolve each entry of [`ConnectionConfig::secrets`] with
//! [`SecretRef::resolve`] when the auth flow needs it, and use [`ConnectionConfig::runtime`]
//! for HTTP settings.

pub mod file;
pub mod ldap;
pub mod pattern;
pub mod policy;
pub mod secret;
pub mod serve;
pub mod target;
pub mod url_policy;
pub mod validate;

pub use file::{
    Config, ConfigError, ConfigIssue, ConnectionConfig, RuntimeSection, RuntimeSettings, StoreConfig,
    DEFAULT_FULL_EVERY,
};
pub use ldap::{LdapConfig, LdapLayout, LdapServiceAccount};
pub use pattern::Pattern;
pub use policy::{GroupRemoval, MembershipRoute, PhotoMode, Policy, UserRemoval};
pub use secret::{Secret, SecretError, SecretRef};
pub use target::{Deprovision, TargetConfig, TargetMapping, TargetSettings, UserNameSource};
