//! usersync configuration: the TOML file, its connections, and secret references.

pub mod secret;

pub use secret::{Secret, SecretError, SecretRef};
