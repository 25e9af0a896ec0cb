//! Release errors. Each names the package and what failed.

use std::path::PathBuf;

/// Why a package could not be built, verified, installed or rolled back.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The archive is not a valid usersync connector package.
    #[error("{package}: not a valid connector package: {reason}")]
    Malformed {
        /// The package.
        package: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The package's checksum does not match `SHA256SUMS` (or the library's the manifest's).
    #[error("{package}: checksum mismatch: {what} is {actual}, expected {expected}; the file was altered or damaged, nothing was installed")]
    Checksum {
        /// The package.
        package: PathBuf,
        /// Which checksum.
        what: String,
        /// Expected hex digest.
        expected: String,
        /// Computed hex digest.
        actual: String,
    },
    /// No `SHA256SUMS` entry for the package.
    #[error("{package}: no checksum: {reason}")]
    MissingChecksum {
        /// The package.
        package: PathBuf,
        /// Why.
        reason: String,
    },
    /// Built for another platform.
    #[error(
        "{package}: built for target {package_target}, this host is {host_target}; nothing was installed"
    )]
    WrongTarget {
        /// The package.
        package: PathBuf,
        /// The package's target triple.
        package_target: String,
        /// This host's.
        host_target: String,
    },
    /// The plugin ABI is not one this host accepts.
    #[error("{package}: plugin ABI version {abi} is not accepted by this usersync (it accepts {}); nothing was installed", usersync_sdk::manifest::abi_versions_text(*.min, *.max))]
    IncompatibleAbi {
        /// The package.
        package: PathBuf,
        /// Its ABI version.
        abi: u32,
        /// Lowest accepted.
        min: u32,
        /// Highest accepted.
        max: u32,
    },
    /// Signature missing or invalid while trusted keys are configured.
    #[error("{package}: signature check failed: {reason}; nothing was installed")]
    Signature {
        /// The package.
        package: PathBuf,
        /// Why.
        reason: String,
    },
    /// A trusted key in config is not a valid minisign public key.
    #[error("trusted key `{key}` is not a minisign public key: {reason}")]
    BadTrustedKey {
        /// The key as configured.
        key: String,
        /// Why.
        reason: String,
    },
    /// Nothing to roll back to, or nothing installed.
    #[error("{0}")]
    NotInstalled(String),
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReleaseError {
    let path = path.into();
    move |source| ReleaseError::Io { path, source }
}
