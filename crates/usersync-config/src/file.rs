//! The config file: loading, path resolution, and offline validation against manifests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use usersync_sdk::{Manifest, Options};

use crate::policy::Policy;
use crate::secret::SecretRef;

/// The name of the config file looked up in the working directory and the XDG config dir.
pub const FILE_NAME: &str = "usersync.toml";

/// A config problem: cannot read, cannot parse, or invalid content.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No config file in any of the places looked at.
    #[error("no config file found (looked at: {}); pass --config FILE", .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// The file could not be read.
    #[error("cannot read config file `{}`: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error or a value of the wrong shape (the message names line and column).
    #[error("{}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and a snippet.
        message: String,
    },
    /// One or more semantic problems.
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// One problem in the config file, located by file and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The connection, when the problem is inside one.
    pub connection: Option<String>,
    /// The option, when the problem is about one.
    pub option: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(c) = &self.connection {
            write!(f, "connection `{c}`: ")?;
        }
        if let Some(o) = &self.option {
            write!(f, "option `{o}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Where the directory store lives (`[store]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file; a relative path is relative to the config file's directory.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// A PostgreSQL store instead of the file (`postgres://user@host/db?sslmode=verify-full`), as a
    /// literal or a secret reference (`{ env = "USERSYNC_STORE_URL" }`, `{ file = "..." }`) when it
    /// holds a password. When set, `path` is not used.
    #[serde(default)]
    pub url: Option<SecretRef>,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("usersync.db")
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            url: None,
        }
    }
}

/// Runtime settings as written (`[runtime]` globally, `[connections.runtime]` per connection);
/// unset fields fall back to the global section, then to the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Concurrent requests (default: the connector's `default_concurrency`).
    pub concurrency: Option<u32>,
    /// HTTP(S) proxy URL, e.g. `http://proxy.internal:3128`.
    pub proxy: Option<String>,
    /// Extra PEM CA bundle to trust (TLS-inspecting proxies).
    pub ca_bundle: Option<PathBuf>,
    /// TCP+TLS connect timeout, seconds (default 10).
    pub connect_timeout_secs: Option<u64>,
    /// Whole-request timeout, seconds (default 60).
    pub request_timeout_secs: Option<u64>,
    /// Retries of a retryable failure (throttling, 5xx) before the query fails (default 5).
    pub max_retries: Option<u32>,
    /// Longest wait accepted from a provider's throttle headers (`Retry-After`, rate-limit
    /// reset), seconds (default 60); longer asks are capped.
    pub max_throttle_wait_secs: Option<u64>,
    /// How long one request may keep being throttled (429s, quota errors) before its query
    /// fails, seconds, counted from its first throttle answer (default: 10 times
    /// `max_throttle_wait_secs`, i.e. 600). Throttle retries do not count against `max_retries`.
    pub max_throttle_total_secs: Option<u64>,
    /// Where `usersync auth login` keeps the connection's refresh token (authorization-code
    /// flow only; default `credentials/<connection>.json` next to the config file).
    pub credential_file: Option<PathBuf>,
    /// Largest response body accepted from the provider, MiB (default 64); a larger answer
    /// fails its query (nothing destructive is applied).
    pub max_response_mb: Option<u64>,
    /// Time limit of one run of the connection, seconds (default 21600, 6 hours): a provider
    /// that answers ever more slowly fails the run instead of keeping it busy for ever.
    pub max_run_secs: Option<u64>,
}

/// Effective runtime settings of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// Concurrent requests; `None`: use the connector's `default_concurrency`.
    pub concurrency: Option<u32>,
    /// HTTP(S) proxy URL.
    pub proxy: Option<String>,
    /// Extra PEM CA bundle (already resolved against the config directory).
    pub ca_bundle: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retries of a retryable failure.
    pub max_retries: u32,
    /// Longest single wait accepted from throttle headers.
    pub max_throttle_wait: Duration,
    /// How long one request may stay throttled; `None`: 10 times `max_throttle_wait`.
    pub max_throttle_total: Option<Duration>,
    /// The refresh-token file of the authorization-code flow (resolved against the config
    /// directory).
    pub credential_file: PathBuf,
    /// Largest response body accepted, bytes.
    pub max_response_bytes: u64,
    /// Time limit of one run.
    pub max_run: Duration,
}

impl RuntimeSettings {
    pub(crate) fn merge(
        conn: &RuntimeSection,
        global: &RuntimeSection,
        base: &Path,
        name: &str,
    ) -> RuntimeSettings {
        RuntimeSettings {
            credential_file: base.join(
                conn.credential_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("credentials").join(format!("{name}.json"))),
            ),
            concurrency: conn.concurrency.or(global.concurrency),
            proxy: conn.proxy.clone().or_else(|| global.proxy.clone()),
            ca_bundle: conn
                .ca_bundle
                .clone()
                .or_else(|| global.ca_bundle.clone())
                .map(|p| base.join(p)),
            connect_timeout: Duration::from_secs(
                conn.connect_timeout_secs
                    .or(global.connect_timeout_secs)
                    .unwrap_or(10),
            ),
            request_timeout: Duration::from_secs(
                conn.request_timeout_secs
                    .or(global.request_timeout_secs)
                    .unwrap_or(60),
            ),
            max_throttle_wait: Duration::from_secs(
                conn.max_throttle_wait_secs
                    .or(global.max_throttle_wait_secs)
                    .unwrap_or(60),
            ),
            max_throttle_total: conn
                .max_throttle_total_secs
                .or(global.max_throttle_total_secs)
                .map(Duration::from_secs),
            max_retries: conn.max_retries.or(global.max_retries).unwrap_or(5),
            max_response_bytes: conn
                .max_response_mb
                .or(global.max_response_mb)
                .unwrap_or(64)
                .saturating_mul(1024 * 1024),
            max_run: Duration::from_secs(conn.max_run_secs.or(global.max_run_secs).unwrap_or(6 * 3600)),
        }
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings::merge(
            &RuntimeSection::default(),
            &RuntimeSection::default(),
            Path::new("."),
            "default",
        )
    }
}

/// One connection (`[[connections]]`): a connector, its options and secrets, policy and
/// runtime settings.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Unique name, used on the command line (`--connection NAME`) and in the store.
    pub name: String,
    /// Connector id (`okta`, `entra`, `google`, `keycloak`, `onelogin`, or a plugin's id).
    pub connector: String,
    /// Non-secret option values (TOML converted to JSON).
    pub options: BTreeMap<String, serde_json::Value>,
    /// Secret options: option name -> where the value comes from.
    pub secrets: BTreeMap<String, SecretRef>,
    /// Sync policy.
    pub policy: Policy,
    /// Effective runtime settings.
    pub runtime: RuntimeSettings,
    /// Position in the file (0 = first). When the same person arrives from two connections,
    /// the earlier connection wins.
    pub priority: usize,
    /// Line of the connection's `name` key.
    pub line: usize,
    pub(crate) option_lines: BTreeMap<String, usize>,
    pub(crate) connector_line: usize,
    /// With a change feed (incremental runs), a full run when the last one is older than this
    /// (`full_every`, default [`DEFAULT_FULL_EVERY`]).
    pub full_every: std::time::Duration,
    /// The `incremental` key: `Some(false)` makes every run full, `Some(true)` asks for the
    /// change feed, unset (`None`) uses it where the connector has one; see
    /// [`ConnectionConfig::incremental_enabled`].
    pub incremental: Option<bool>,
}

/// The default `full_every` of a connection: 24 hours.
pub const DEFAULT_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl ConnectionConfig {
    /// Whether runs read only what changed: the `incremental` key when set, otherwise on when
    /// the connector's manifest declares the `incremental` capability (a change feed).
    pub fn incremental_enabled(&self, manifest: &Manifest) -> bool {
        self.incremental.unwrap_or(manifest.capabilities.incremental)
    }

    /// The line of the connection's `connector` key.
    pub fn connector_line(&self) -> usize {
        self.connector_line
    }

    /// The line of an option in the file (or of the connection when the option is absent).
    pub fn option_line(&self, option: &str) -> usize {
        self.option_lines
            .get(option)
            .copied()
            .unwrap_or(self.connector_line)
    }

    /// Check the options against a connector's manifest, offline: unknown options, missing
    /// required ones, wrong types, secrets given as plain values and plain options given as
    /// secret references. On success returns the validated [`Options`] (defaults filled in,
    /// secrets listed by name only).
    pub fn check(&self, manifest: &Manifest, file: &Path) -> Result<Options, Vec<ConfigIssue>> {
        let issue = |option: &str, line: usize, message: String| ConfigIssue {
            file: file.to_path_buf(),
            line,
            connection: Some(self.name.clone()),
            option: Some(option.to_string()),
            message,
        };
        let mut issues = Vec::new();
        if manifest.id != self.connector {
            issues.push(ConfigIssue {
                option: None,
                ..issue(
                    "",
                    self.connector_line,
                    format!(
                        "manifest `{}` does not match connector `{}`",
                        manifest.id, self.connector
                    ),
                )
            });
        }
        for (name, value) in &self.options {
            let line = self.option_line(name);
            match manifest.option(name) {
                None => issues.push(issue(name, line, unknown_option(manifest, name))),
                Some(spec) if spec.secret => issues.push(issue(
                    name,
                    line,
                    format!(
                        "is a secret: write it as a reference, e.g. {name} = {{ env = \"{}\" }} or {{ file = \"/path\" }}",
                        name.to_uppercase()
                    ),
                )),
                Some(spec) => {
                    if let Err(reason) = spec.check(value) {
                        issues.push(issue(name, line, reason));
                    }
                }
            }
        }
        for name in self.secrets.keys() {
            let line = self.option_line(name);
            match manifest.option(name) {
                None => issues.push(issue(name, line, unknown_option(manifest, name))),
                Some(spec) if !spec.secret => issues.push(issue(
                    name,
                    line,
                    "is not a secret: give its value directly, not an { env } or { file } reference".into(),
                )),
                Some(_) => {}
            }
        }
        for spec in &manifest.options {
            let set = self.options.contains_key(&spec.name) || self.secrets.contains_key(&spec.name);
            if spec.required && !set && spec.default.is_none() {
                issues.push(issue(
                    &spec.name,
                    self.connector_line,
                    format!(
                        "is required by connector `{}` but not set ({})",
                        manifest.id, spec.help
                    ),
                ));
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Options::validate(
            manifest,
            self.options.clone(),
            self.secrets.keys().cloned().collect(),
        )
        .map_err(|e| {
            vec![ConfigIssue {
                file: file.to_path_buf(),
                line: self.connector_line,
                connection: Some(self.name.clone()),
                option: None,
                message: e.to_string(),
            }]
        })
    }
}

fn unknown_option(manifest: &Manifest, name: &str) -> String {
    let known: Vec<&str> = manifest.options.iter().map(|o| o.name.as_str()).collect();
    crate::validate::unknown_key_message(
        &format!("option for connector `{}`", manifest.id),
        name,
        &known,
        &format!("`usersync connectors describe {}` lists them", manifest.id),
    )
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (`<string>` for [`Config::from_str`]).
    pub path: PathBuf,
    /// The directory store.
    pub store: StoreConfig,
    /// Global runtime defaults as written.
    pub runtime: RuntimeSection,
    /// Connections in file order (= priority order).
    pub connections: Vec<ConnectionConfig>,
    /// The LDAP view (`[ldap]`), when configured.
    pub ldap: Option<crate::ldap::LdapConfig>,
    /// Targets (`[targets.NAME]`), in name order.
    pub targets: Vec<crate::target::TargetConfig>,
    /// `[serve]` and the connections' schedules (`usersync serve`).
    pub serve: crate::serve::ServeConfig,
}

impl Config {
    /// The config file to use: `explicit` (from `--config` or `USERSYNC_CONFIG`) when given,
    /// else `./usersync.toml` when it exists, else `$XDG_CONFIG_HOME/usersync/usersync.toml`
    /// (`~/.config/usersync/usersync.toml` when XDG_CONFIG_HOME is unset) when it exists.
    pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        let mut tried = vec![PathBuf::from(FILE_NAME)];
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(dir) = xdg {
            tried.push(dir.join("usersync").join(FILE_NAME));
        }
        match tried.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => Err(ConfigError::NotFound { tried }),
        }
    }

    /// Resolve the path (see [`Config::resolve_path`]) and load it.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(&Config::resolve_path(explicit)?)
    }

    /// Read and parse a config file. Relative paths inside are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, Config::base_of(path))
    }

    /// Read and check a config file for `config check`: the config built from everything in it
    /// that is valid, and every problem found (sorted by line), so that the connections can
    /// still be checked against their connectors. Fails only when the file cannot be read or is
    /// not TOML.
    pub fn load_all(path: &Path) -> Result<(Config, Vec<ConfigIssue>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        crate::validate::parse_lenient(&text, path, Config::base_of(path))
    }

    fn base_of(path: &Path) -> &Path {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// Parse config text; relative paths are relative to the working directory.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("<string>"), Path::new("."))
    }

    fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        crate::validate::parse(text, path, base)
    }

    /// A target by name (case-insensitive).
    pub fn target(&self, name: &str) -> Option<&crate::target::TargetConfig> {
        self.targets.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// A connection by name (case-insensitive).
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::UserRemoval;
    use usersync_sdk::{Capabilities, OptionSpec, OptionType};

    fn manifest() -> Manifest {
        Manifest {
            id: "okta".into(),
            name: "Okta".into(),
            version: "0.1.0".into(),
            abi_version: 1,
            auth: vec![],
            endpoints: vec![],
            capabilities: Capabilities::default(),
            options: vec![
                OptionSpec::new("okta_domain", OptionType::Url, true, "Your Okta org URL"),
                OptionSpec::new("api_token", OptionType::String, true, "SSWS token").secret(),
                OptionSpec::new("page_size", OptionType::Integer, false, "Page size")
                    .default_value(serde_json::json!(200)),
            ],
            default_concurrency: 4,
        }
    }

    const GOOD: &str = r#"
[store]
path = "dir.db"

[runtime]
concurrency = 8

[[connections]]
name = "okta-prod"
connector = "okta"
[connections.options]
okta_domain = "https://acme.okta.com"
api_token = { env = "OKTA_API_TOKEN" }
[connections.policy]
required_groups = ["Staff"]
on_user_missing = "delete"
[connections.runtime]
request_timeout_secs = 30
"#;

    #[test]
    fn parses_connections_options_secrets_policy_runtime() {
        let c = Config::from_str(GOOD).expect("parse");
        assert_eq!(c.store.path, PathBuf::from("./dir.db"));
        let conn = c.connection("OKTA-PROD").expect("conn");
        assert_eq!(conn.connector, "okta");
        assert_eq!(
            conn.options["okta_domain"],
            serde_json::json!("https://acme.okta.com")
        );
        assert_eq!(
            conn.secrets["api_token"],
            SecretRef::Env {
                env: "OKTA_API_TOKEN".into()
            }
        );
        assert_eq!(conn.policy.on_user_missing, UserRemoval::Delete);
        assert_eq!(conn.policy.on_user_out_of_scope, UserRemoval::Deactivate);
        assert_eq!(conn.runtime.concurrency, Some(8));
        assert_eq!(conn.runtime.request_timeout, Duration::from_secs(30));
        assert_eq!(conn.runtime.connect_timeout, Duration::from_secs(10));
        let opts = conn.check(&manifest(), Path::new("x.toml")).expect("valid");
        assert!(opts.has_secret("api_token"));
        assert_eq!(opts.u64("page_size"), Some(200));
    }

    #[test]
    fn incremental_unset_follows_the_connectors_feed_and_false_turns_it_off() {
        let (feed, mut none) = (manifest(), manifest());
        let mut with_feed = feed;
        with_feed.capabilities.incremental = true;
        none.capabilities.incremental = false;
        let at = |key: &str| {
            let text = GOOD.replace("connector = \"okta\"\n", &format!("connector = \"okta\"\n{key}"));
            Config::from_str(&text).expect("parse").connections[0].clone()
        };
        let unset = at("");
        assert_eq!(unset.incremental, None);
        assert!(unset.incremental_enabled(&with_feed));
        assert!(!unset.incremental_enabled(&none));
        let off = at("incremental = false\n");
        assert!(!off.incremental_enabled(&with_feed));
        let on = at("incremental = true\n");
        assert!(on.incremental_enabled(&with_feed));
    }

    #[test]
    fn check_names_file_line_and_option() {
        let text = GOOD
            .replace(
                "okta_domain = \"https://acme.okta.com\"",
                "okta_domain = 42\npage_sise = 3",
            )
            .replace("api_token = { env = \"OKTA_API_TOKEN\" }", "");
        let c = Config::from_str(&text).expect("parse");
        let issues = c.connections[0]
            .check(&manifest(), Path::new("/etc/usersync.toml"))
            .unwrap_err();
        let all: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert!(
            all.iter().any(|s| s
                .starts_with("/etc/usersync.toml:12: connection `okta-prod`: option `okta_domain`")
                && s.contains("URL")),
            "{all:?}"
        );
        assert!(all.iter().any(|s| s.contains(":13:")
            && s.contains("`page_sise`")
            && s.contains("unknown")
            && s.contains("did you mean `page_size`")));
        assert!(all
            .iter()
            .any(|s| s.contains("`api_token`") && s.contains("required")));
    }

    #[test]
    fn secret_given_as_plain_value_is_rejected() {
        let text = GOOD.replace("{ env = \"OKTA_API_TOKEN\" }", "\"00abc\"");
        let c = Config::from_str(&text).expect("parse");
        let issues = c.connections[0].check(&manifest(), Path::new("f")).unwrap_err();
        assert!(issues[0].to_string().contains("is a secret"));
        assert!(!issues[0].to_string().contains("00abc"));
    }

    #[test]
    fn bad_policy_and_duplicates_are_reported_with_lines() {
        let err = Config::from_str(&GOOD.replace("[\"Staff\"]", "[\"re:(\"]")).unwrap_err();
        let s = err.to_string();
        assert!(
            s.contains("<string>:15: connection `okta-prod`: option `policy.required_groups`: invalid regex `(`: unclosed group"),
            "{s}"
        );
        let err = Config::from_str(&GOOD.replace("on_user_missing", "on_user_mising")).unwrap_err();
        assert!(err.to_string().contains("on_user_mising"));
        let dup = format!("{GOOD}\n[[connections]]\nname = \"okta-prod\"\nconnector = \"okta\"\n");
        let err = Config::from_str(&dup).unwrap_err();
        assert!(
            err.to_string().contains(":21:") && err.to_string().contains("already defined"),
            "{err}"
        );
    }

    #[test]
    fn path_resolution_prefers_explicit() {
        let p = Config::resolve_path(Some(Path::new("/x/y.toml"))).expect("explicit");
        assert_eq!(p, PathBuf::from("/x/y.toml"));
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("u.toml");
        std::fs::write(&f, GOOD).expect("write");
        let c = Config::load(&f).expect("load");
        assert_eq!(c.store.path, dir.path().join("dir.db"));
    }
}
