//! Shared pieces of the usersync benchmarks and fault suite: turning the JSON line an emulator
//! prints (`usersync emulator ...`, or `RunningEmulator::info()` in-process) into a ready
//! `usersync.toml` connection, with its secrets written to files (never inline).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Errors building a configuration from an emulator's description.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The emulator's JSON lacks a field this provider needs.
    #[error("emulator info for `{provider}` has no `{field}`")]
    MissingField {
        /// Provider id.
        provider: String,
        /// JSON pointer of the missing field.
        field: String,
    },
    /// The provider is not one usersync ships a connector for.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The five providers with an emulator and a built-in connector.
pub const PROVIDERS: [&str; 5] = ["okta", "entra", "google", "keycloak", "onelogin"];

/// One `[[connections]]` block: plain options and secret options (written to files).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Connection name (also the connector id here).
    pub name: String,
    /// Connector id.
    pub connector: String,
    /// Non-secret options, as JSON values (strings, numbers, booleans, string lists).
    pub options: Vec<(String, Value)>,
    /// Secret options: (option, value); written to `secrets/<name>-<option>` and referenced by file.
    pub secrets: Vec<(String, String)>,
    /// Secret options already held in a file: (option, path).
    pub secret_files: Vec<(String, PathBuf)>,
}

fn field<'a>(provider: &str, v: &'a Value, ptr: &str) -> Result<&'a Value, BenchError> {
    v.pointer(ptr)
        .filter(|x| !x.is_null())
        .ok_or_else(|| BenchError::MissingField {
            provider: provider.to_string(),
            field: ptr.to_string(),
        })
}

fn text(provider: &str, v: &Value, ptr: &str) -> Result<String, BenchError> {
    let f = field(provider, v, ptr)?;
    f.as_str()
        .map(str::to_string)
        .ok_or_else(|| BenchError::MissingField {
            provider: provider.to_string(),
            field: format!("{ptr} (a string)"),
        })
}

impl Connection {
    /// Build the connection for the emulator described by `info` (its one JSON line), using its
    /// full-permission credentials. `base_url` overrides the URL the connector is pointed at
    /// (e.g. the emulator's https URL); `None` uses the one the emulator advertises.
    pub fn from_emulator_info(info: &Value, base_url: Option<&str>) -> Result<Connection, BenchError> {
        let provider = text("?", info, "/provider")?;
        let p = provider.as_str();
        let mut options: Vec<(String, Value)> = Vec::new();
        let mut secrets: Vec<(String, String)> = Vec::new();
        let mut secret_files: Vec<(String, PathBuf)> = Vec::new();
        let client = field(p, info, "/client")?;
        let generic = client.get("connector_options").and_then(Value::as_object);
        match p {
            _ if generic.is_some() => {
                // the emulator's own description of the connection (the convention every facade
                // is moving to): plain options, and secrets as values or `{ "file": ... }`
                for (k, v) in generic.cloned().unwrap_or_default() {
                    match v.get("file").and_then(Value::as_str) {
                        Some(f) => secret_files.push((k, PathBuf::from(f))),
                        None => options.push((k, v)),
                    }
                }
                let sec = client
                    .get("connector_secrets")
                    .and_then(Value::as_object)
                    .cloned();
                for (k, v) in sec.unwrap_or_default() {
                    match (v.as_str(), v.get("file").and_then(Value::as_str)) {
                        (Some(text), _) => secrets.push((k, text.to_string())),
                        (None, Some(f)) => secret_files.push((k, PathBuf::from(f))),
                        _ => {
                            return Err(BenchError::MissingField {
                                provider: p.to_string(),
                                field: format!("/client/connector_secrets/{k} (a string or a file)"),
                            })
                        }
                    }
                }
            }
            "okta" | "entra" => {
                let opts = field(p, client, "/connector_options")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                options.extend(opts);
                let sec = field(p, client, "/connector_secrets")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in sec {
                    secrets.push((k, v.as_str().unwrap_or_default().to_string()));
                }
            }
            "google" => {
                let opts = field(p, client, "/options")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in opts {
                    if k == "service_account_key" {
                        let f = text(p, &v, "/file")?;
                        secret_files.push((k, PathBuf::from(f)));
                    } else {
                        options.push((k, v));
                    }
                }
            }
            "keycloak" => {
                for k in ["base_url", "realm", "client_id", "manager_attribute"] {
                    options.push((k.to_string(), field(p, client, &format!("/{k}"))?.clone()));
                }
                secrets.push(("client_secret".into(), text(p, client, "/client_secret")?));
            }
            "onelogin" => {
                let opts = field(p, client, "/options")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                options.extend(opts);
                secrets.push(("client_secret".into(), text(p, client, "/secrets/client_secret")?));
            }
            other => return Err(BenchError::UnknownProvider(other.to_string())),
        }
        if let Some(url) = base_url {
            let advertised = text(p, info, "/http_url")?;
            for (_, v) in options.iter_mut() {
                if let Some(s) = v.as_str() {
                    if s.starts_with(&advertised) {
                        *v = Value::String(s.replacen(&advertised, url.trim_end_matches('/'), 1));
                    }
                }
            }
        }
        Ok(Connection {
            name: provider.clone(),
            connector: provider,
            options,
            secrets,
            secret_files,
        })
    }

    /// Set (or replace) a plain option, e.g. `page_size`.
    pub fn set_option(&mut self, key: &str, value: Value) {
        self.options.retain(|(k, _)| k != key);
        self.options.push((key.to_string(), value));
    }
}

/// TOML literal for a JSON value (strings, numbers, booleans, arrays of those).
pub fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => toml_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A TOML basic string (JSON string escaping is valid TOML).
pub fn toml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Write `dir/usersync.toml` (store `dir/store.db`) with the given connections, a `[runtime]`
/// body (TOML lines, may be empty) and a `[connections.policy]` body for every connection.
/// Secrets go to `dir/secrets/` (mode 0600) and are referenced as `{ file = ... }`.
pub fn write_config(
    dir: &Path,
    connections: &[Connection],
    runtime: &str,
    policy: &str,
) -> Result<PathBuf, BenchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    let secrets_dir = dir.join("secrets");
    std::fs::create_dir_all(&secrets_dir).map_err(io(&secrets_dir))?;
    let mut out = format!(
        "[store]\npath = {}\n\n[runtime]\n{runtime}\n",
        toml_str(&dir.join("store.db").to_string_lossy())
    );
    for c in connections {
        let _ = write!(
            out,
            "\n[[connections]]\nname = {}\nconnector = {}\n[connections.options]\n",
            toml_str(&c.name),
            toml_str(&c.connector)
        );
        for (k, v) in &c.options {
            let _ = writeln!(out, "{k} = {}", toml_value(v));
        }
        for (k, v) in &c.secrets {
            let path = secrets_dir.join(format!("{}-{k}", c.name));
            std::fs::write(&path, v).map_err(io(&path))?;
            restrict(&path).map_err(io(&path))?;
            let _ = writeln!(out, "{k} = {{ file = {} }}", toml_str(&path.to_string_lossy()));
        }
        for (k, path) in &c.secret_files {
            let _ = writeln!(out, "{k} = {{ file = {} }}", toml_str(&path.to_string_lossy()));
        }
        let _ = write!(out, "[connections.policy]\n{policy}\n");
    }
    let path = dir.join("usersync.toml");
    std::fs::write(&path, out).map_err(io(&path))?;
    Ok(path)
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The connector option that sets the page size, and the provider's maximum for user listings.
pub fn page_size_option(provider: &str) -> Option<(&'static str, u32)> {
    match provider {
        "okta" => Some(("page_size", 200)),
        "entra" => Some(("page_size", 999)),
        "keycloak" => Some(("page_size", 1000)),
        "onelogin" => Some(("page_size", 50)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keycloak_info_becomes_a_connection_with_a_secret_file() {
        let info = serde_json::json!({
            "provider": "keycloak", "http_url": "http://127.0.0.1:1",
            "client": {"base_url": "http://127.0.0.1:1", "realm": "example", "client_id": "c",
                       "client_secret": "s3cret", "manager_attribute": "manager"}
        });
        let c = Connection::from_emulator_info(&info, Some("https://localhost:2")).expect("conn");
        assert_eq!(
            c.options[0],
            (
                "base_url".to_string(),
                Value::String("https://localhost:2".into())
            )
        );
        let dir = tempfile::tempdir().expect("tmp");
        let path = write_config(dir.path(), &[c], "max_retries = 1", "").expect("write");
        let text = std::fs::read_to_string(path).expect("read");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("client_secret = { file = "), "{text}");
        let bad = serde_json::json!({"provider": "nope", "http_url": "x", "client": {}});
        assert!(matches!(
            Connection::from_emulator_info(&bad, None),
            Err(BenchError::UnknownProvider(_))
        ));
    }
}
