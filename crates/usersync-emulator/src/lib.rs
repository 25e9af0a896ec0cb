//! Faithful local emulators of identity-provider APIs, with a seeded generator and fault injection.
//!
//! - [`org`]: the provider-neutral in-memory organisation and its mutation API;
//! - [`gen`]: the seeded generator (`--users N --groups G --seed S`);
//! - [`server`]: the harness (127.0.0.1, http + https with a private CA, TCP_NODELAY, control endpoints);
//! - [`faults`], [`paging`], [`rate`], [`tokens`]: shared machinery every facade uses;
//! - [`providers`]: one facade per provider, and [`providers::facade`] the registry.
//!
//! ```no_run
//! # async fn demo() -> Result<(), usersync_emulator::EmulatorError> {
//! let emu = usersync_emulator::start(usersync_emulator::EmulatorOptions::new("okta")).await?;
//! println!("{}", emu.info().await);
//! # Ok(()) }
//! ```

// Facade helpers short-circuit with a ready `Response` as their error (axum's idiom); boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

pub mod error;
pub mod facade;
pub mod faults;
pub mod feeds;
pub mod gen;
pub mod ids;
pub mod jws;
pub mod mutate;
pub mod org;
pub mod paging;
pub mod photo;
pub mod providers;
pub mod rate;
pub mod server;
pub mod timefmt;
pub mod tls;
pub mod tokens;

pub use error::EmulatorError;
pub use facade::{BaseUrl, Credentials, EmuContext, Facade};
pub use faults::FaultConfig;
pub use gen::{generate, GenConfig};
pub use org::{GroupKind, Org, SharedOrg, UserStatus};
pub use server::{start, EmulatorOptions, RunningEmulator};
