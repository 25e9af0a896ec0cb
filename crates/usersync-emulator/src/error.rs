//! Errors of the emulator library.

/// Everything that can go wrong while building or running an emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The provider id names no facade at all.
    #[error("unknown provider `{0}` (known: entra, google, keycloak, okta, onelogin)")]
    UnknownProvider(String),
    /// The provider's facade exists as a placeholder only.
    #[error("the `{0}` emulator facade is not implemented yet")]
    NotImplemented(&'static str),
    /// Binding or serving a socket failed.
    #[error("emulator I/O error: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the private CA or the server certificate failed.
    #[error("emulator TLS setup failed: {0}")]
    Tls(String),
    /// An invalid setting (fault configuration, generator parameters, ...).
    #[error("invalid emulator setting `{name}`: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

impl EmulatorError {
    /// Wrap an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
