//! The credential file of the authorization-code flow: the refresh token `usersync auth login`
//! obtained, stored as JSON with mode 0600 (owner read/write only).

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use usersync_config::Secret;

use crate::error::RuntimeError;

/// What the credential file holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredCredential {
    /// The connection it belongs to.
    pub connection: String,
    /// Token endpoint the refresh token is redeemed at.
    pub token_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// Scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The refresh token.
    pub refresh_token: String,
    /// When it was obtained (Unix seconds).
    pub obtained_at: u64,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("connection", &self.connection)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("refresh_token", &"[redacted]")
            .field("obtained_at", &self.obtained_at)
            .finish()
    }
}

impl StoredCredential {
    /// The refresh token as a [`Secret`].
    pub fn refresh_token(&self) -> Secret {
        Secret::new(self.refresh_token.clone())
    }
}

fn cred_err(path: &Path, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Credential {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Read a credential file. Warns (in the error) when permissions are wider than 0600.
pub fn read(path: &Path) -> Result<StoredCredential, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            cred_err(
                path,
                "does not exist: run `usersync auth login <connection>` first",
            )
        } else {
            cred_err(path, format!("cannot read: {e}"))
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(cred_err(
                    path,
                    format!("is readable by other users (mode {mode:o}); run `chmod 600` on it"),
                ));
            }
        }
    }
    serde_json::from_str(&text)
        .map_err(|e| cred_err(path, format!("is not a usersync credential file ({e})")))
}

/// Write a credential file atomically with mode 0600 (parent directory created with 0700).
pub fn write(path: &Path, cred: &StoredCredential) -> Result<(), RuntimeError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(parent)
            .map_err(|e| cred_err(path, format!("cannot create directory: {e}")))?;
    }
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(cred).map_err(|e| cred_err(path, e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| cred_err(&tmp, format!("cannot create: {e}")))?;
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .map_err(|e| cred_err(&tmp, format!("cannot write: {e}")))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| cred_err(path, format!("cannot replace: {e}")))
}
