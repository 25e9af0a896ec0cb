//! One module per subcommand; each exposes its clap type and `run`.

pub mod auth;
pub mod config;
pub mod connectors;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod explain;
pub mod export;
pub mod groups;
pub mod ldap;
pub mod plugins;
pub mod push;
pub mod runs;
pub mod serve;
pub mod store;
pub mod sync;
pub mod users;
