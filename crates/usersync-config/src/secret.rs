//! Secrets: where they come from ([`SecretRef`]) and a value type ([`Secret`]) that never
//! prints itself.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A secret value. `Debug` and `Display` print `[redacted]`; use [`Secret::expose`] at the
/// single place the value is needed (building a header or signing).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value. Call it only where the value goes onto the wire or into a signer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from, as written in config:
/// `{ env = "NAME" }`, `{ file = "path" }`, or a literal string (accepted with a warning).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    /// An environment variable.
    Env {
        /// Variable name.
        env: String,
    },
    /// A file whose contents (trailing newline trimmed) are the secret.
    File {
        /// Path to the file.
        file: PathBuf,
    },
    /// The value written in the config file itself (discouraged).
    Literal(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env { env } => write!(f, "env:{env}"),
            SecretRef::File { file } => write!(f, "file:{}", file.display()),
            SecretRef::Literal(_) => f.write_str("literal:[redacted]"),
        }
    }
}

/// A secret could not be read. Never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not UTF-8).
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret is empty.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// True for a literal written in config (the caller should warn).
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }

    /// Read the secret now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env { env } => std::env::var(env).map_err(|_| SecretError::MissingEnv(env.clone()))?,
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map_err(|source| SecretError::File {
                    path: file.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            SecretRef::Literal(v) => v.clone(),
        };
        if value.is_empty() {
            return Err(SecretError::Empty(format!("{self:?}")));
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        let r = SecretRef::Literal("hunter2".into());
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn secret_refs_parse_from_toml_forms() {
        #[derive(Deserialize)]
        struct T {
            a: SecretRef,
            b: SecretRef,
            c: SecretRef,
        }
        let t: T = toml::from_str("a = { env = \"X\" }\nb = { file = \"/k\" }\nc = \"lit\"").expect("parse");
        assert_eq!(t.a, SecretRef::Env { env: "X".into() });
        assert_eq!(t.b, SecretRef::File { file: "/k".into() });
        assert!(t.c.is_literal());
    }

    #[test]
    fn file_secret_is_trimmed_and_missing_env_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n").expect("write");
        assert_eq!(
            SecretRef::File { file: p }.resolve().expect("read").expose(),
            "abc"
        );
        let err = SecretRef::Env {
            env: "USERSYNC_TEST_SURELY_UNSET".into(),
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("USERSYNC_TEST_SURELY_UNSET"));
    }
}
