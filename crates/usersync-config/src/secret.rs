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
    /// The secret is empty or only whitespace.
    #[error("the secret from {0} is empty or only whitespace")]
    Empty(String),
    /// The secret contains a character it cannot contain: NUL anywhere, or a line break in a
    /// single-line secret (a token, client secret or password goes into an HTTP header or form).
    #[error("the secret from {source_name} contains {what}; {hint}")]
    BadCharacter {
        /// Where it came from (`env:NAME`, `file:PATH`).
        source_name: String,
        /// The offending character class.
        what: &'static str,
        /// What to do.
        hint: &'static str,
    },
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
        check_value(&value).map_err(|e| e.with_source(format!("{self:?}")))?;
        Ok(Secret(value))
    }
}

/// Why a secret value is unusable, before the source is known.
enum BadValue {
    Blank,
    Nul,
    LineBreak,
}

impl BadValue {
    fn with_source(self, source_name: String) -> SecretError {
        match self {
            BadValue::Blank => SecretError::Empty(source_name),
            BadValue::Nul => SecretError::BadCharacter {
                source_name,
                what: "a NUL character",
                hint: "a secret is text",
            },
            BadValue::LineBreak => SecretError::BadCharacter {
                source_name,
                what: "a line break (CR or LF)",
                hint: "only key material (PEM `-----BEGIN`, JSON `{`) may span lines; \
                       remove the stray newline (a file may end with one)",
            },
        }
    }
}

/// The rules every secret value follows: not blank, no NUL, and no CR/LF unless it is
/// multi-line key material (a PEM block or a JSON key file). Tokens, client secrets and
/// passwords end up in HTTP headers, where a line break can only be a mistake.
fn check_value(value: &str) -> Result<(), BadValue> {
    if value.trim().is_empty() {
        return Err(BadValue::Blank);
    }
    if value.contains('\0') {
        return Err(BadValue::Nul);
    }
    let start = value.trim_start();
    let key_material = start.starts_with("-----BEGIN") || start.starts_with('{');
    if !key_material && value.contains(['\r', '\n']) {
        return Err(BadValue::LineBreak);
    }
    Ok(())
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
    fn blank_nul_and_line_breaks_are_refused_without_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: [(&str, &str); 6] = [
            ("blank", "   \n"),
            ("empty", ""),
            ("crlf", "tok\r\nen\n"),
            ("inner-lf", "hunter\n2"),
            ("cr", "hunter\r2"),
            ("nul", "hun\0ter2"),
        ];
        for (name, content) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, content).expect("write");
            let err = SecretRef::File { file: p }.resolve().unwrap_err().to_string();
            assert!(err.contains(name), "names the source: {err}");
            assert!(!err.contains("hunter") && !err.contains("tok"), "{err}");
        }
        let pem = dir.path().join("key.pem");
        std::fs::write(
            &pem,
            "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("w");
        assert!(
            SecretRef::File { file: pem }.resolve().is_ok(),
            "PEM may span lines"
        );
        let json = dir.path().join("sa.json");
        std::fs::write(&json, "{\n  \"type\": \"service_account\"\n}\n").expect("w");
        assert!(
            SecretRef::File { file: json }.resolve().is_ok(),
            "JSON keys may span lines"
        );
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
