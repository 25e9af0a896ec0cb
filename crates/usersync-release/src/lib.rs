//! Connector plugin releases.
//!
//! A release of one connector is `usersync-connector-<id>-<version>-<target>.tar.gz`, holding
//! the plugin library, `manifest.json` (id, version, ABI version, endpoints, capabilities,
//! target triple, sha256 of the library) and a short README, with a `SHA256SUMS` file beside it
//! and optionally a minisign signature `<package>.minisig`.
//!
//! [`build_package`] writes a package reproducibly (sorted entries, zero mtimes, fixed owners);
//! [`verify_package`] checks signature, checksum, target and ABI **before anything is written**;
//! [`install`] copies the library into a plugin directory atomically, keeping the previous
//! version for [`rollback`]; [`remove`] takes a connector out.

mod error;
mod install;
mod package;
mod verify;

pub use error::ReleaseError;
pub use install::{install, installed_path, previous_path, remove, rollback, InstallReport};
pub use package::{build_package, package_file_name, PackageManifest, PACKAGE_FORMAT};
pub use verify::{sha256_hex, verify_package, TrustPolicy, VerifiedPackage};

/// The target triple this build of usersync runs on (e.g. `x86_64-unknown-linux-gnu`).
pub const HOST_TARGET: &str = env!("USERSYNC_BUILD_TARGET");
