//! One pass over the config file that collects every problem with its line: unknown keys
//! (with a "did you mean"), wrong types, bad patterns and enum values, out-of-range numbers,
//! files named by the config that cannot be read, and unusable secret values.
//!
//! Every command loads the file through here ([`crate::Config::load`]), so `config check`
//! and `sync` agree on what is a configuration error.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml_edit::{ImDocument, Item, TableLike};

use crate::file::{
    Config, ConfigError, ConfigIssue, ConnectionConfig, RuntimeSection, RuntimeSettings, StoreConfig,
    DEFAULT_FULL_EVERY,
};
use crate::policy::{GroupNameMapping, Policy};
use crate::secret::SecretRef;

/// The allowed range of a numeric setting: (section, key, min, max, what the unit is).
/// Sections: `policy`, `runtime` (both `[runtime]` and `[connections.runtime]`).
pub const RANGES: &[(&str, &str, f64, f64, &str)] = &[
    ("policy", "max_removal_percent", 0.0, 100.0, "a percentage"),
    (
        "policy",
        "min_source_percent",
        0.0,
        100.0,
        "a percentage; 0 turns the check off",
    ),
    ("runtime", "concurrency", 1.0, 1024.0, "requests in flight"),
    ("runtime", "connect_timeout_secs", 1.0, 86_400.0, "seconds"),
    ("runtime", "request_timeout_secs", 1.0, 86_400.0, "seconds"),
    ("runtime", "max_retries", 0.0, 100.0, "retries"),
    ("runtime", "max_throttle_wait_secs", 0.0, 86_400.0, "seconds"),
    ("runtime", "max_throttle_total_secs", 0.0, 604_800.0, "seconds"),
    ("runtime", "max_response_mb", 1.0, 4096.0, "MiB"),
    ("runtime", "max_run_secs", 1.0, 2_592_000.0, "seconds"),
];

/// The keys of a connection table.
const CONNECTION_KEYS: &[&str] = &[
    "name",
    "full_every",
    "incremental",
    "connector",
    "options",
    "policy",
    "runtime", // serve: crate::serve::CONNECTION_SCHEDULE_KEYS
    "every",
    "schedule",
    "jitter",
];
/// The top-level keys.
const TOP_KEYS: &[&str] = &[
    "store",
    "runtime",
    "connections",
    "plugins",
    "targets",
    "serve",
    "ldap",
];

mod targets;

/// The closest of `known` to `key`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key_l = key.to_lowercase();
    let limit = match key.chars().count() {
        0..=4 => 1,
        5..=10 => 2,
        _ => 3,
    };
    known
        .into_iter()
        .map(|k| (edit_distance(&k.to_lowercase(), &key_l), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring
/// characters (`stroe` -> `store` is 1).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// "unknown key; did you mean `x`?" or, when nothing is close, the known keys (a short list)
/// or where they are listed (`see`).
pub fn unknown_key_message(what: &str, key: &str, known: &[&str], see: &str) -> String {
    match did_you_mean(key, known.iter().copied()) {
        Some(k) => format!("unknown {what}; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown {what} (there are none)"),
        None if known.len() <= 8 => format!("unknown {what} (known: {})", known.join(", ")),
        None => format!(
            "unknown {what}; none of its {} keys is close ({see})",
            known.len()
        ),
    }
}

const SEE_DOCS: &str = "see docs/configuration.md";

/// The field names of a serde struct with a `Default`, in declaration order.
fn field_names<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Convert a parsed TOML item to a plain value (`None` for an empty slot).
pub(crate) fn to_toml(item: &Item) -> Option<toml::Value> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_to_toml(v)),
        Item::Table(t) => Some(toml::Value::Table(
            t.iter()
                .filter_map(|(k, i)| Some((k.to_string(), to_toml(i)?)))
                .collect(),
        )),
        Item::ArrayOfTables(a) => Some(toml::Value::Array(
            a.iter()
                .map(|t| {
                    toml::Value::Table(
                        t.iter()
                            .filter_map(|(k, i)| Some((k.to_string(), to_toml(i)?)))
                            .collect(),
                    )
                })
                .collect(),
        )),
    }
}

fn value_to_toml(v: &toml_edit::Value) -> toml::Value {
    use toml_edit::Value as V;
    match v {
        V::String(s) => toml::Value::String(s.value().clone()),
        V::Integer(i) => toml::Value::Integer(*i.value()),
        V::Float(f) => toml::Value::Float(*f.value()),
        V::Boolean(b) => toml::Value::Boolean(*b.value()),
        V::Datetime(d) => toml::Value::Datetime(*d.value()),
        V::Array(a) => toml::Value::Array(a.iter().map(value_to_toml).collect()),
        V::InlineTable(t) => {
            toml::Value::Table(t.iter().map(|(k, v)| (k.to_string(), value_to_toml(v))).collect())
        }
    }
}

/// A TOML table that is a secret reference: exactly `{ env = "..." }` or `{ file = "..." }`.
pub(crate) fn as_secret_ref(v: &toml::Value, base: &Path) -> Option<SecretRef> {
    let t = v.as_table()?;
    if t.len() != 1 {
        return None;
    }
    match (t.get("env"), t.get("file")) {
        (Some(toml::Value::String(env)), None) => Some(SecretRef::Env { env: env.clone() }),
        (None, Some(toml::Value::String(file))) => Some(SecretRef::File {
            file: base.join(file),
        }),
        _ => None,
    }
}

/// The collector of problems while walking one file.
pub(crate) struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    pub(crate) base: &'a Path,
    issues: Vec<ConfigIssue>,
}

impl Checker<'_> {
    pub(crate) fn line(&self, span: Option<Range<usize>>, fallback: usize) -> usize {
        match span {
            Some(r) => {
                self.text
                    .as_bytes()
                    .iter()
                    .take(r.start)
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            }
            None => fallback,
        }
    }

    /// The line of `key` in `table` (the key's own position, else its value's).
    pub(crate) fn key_line(&self, table: &dyn TableLike, key: &str, fallback: usize) -> usize {
        let span = table
            .get_key_value(key)
            .and_then(|(k, item)| k.span().or_else(|| item.span()));
        self.line(span, fallback)
    }

    pub(crate) fn push(&mut self, line: usize, conn: Option<&str>, option: Option<String>, message: String) {
        self.issues.push(ConfigIssue {
            file: self.file.to_path_buf(),
            line,
            connection: conn.map(str::to_string),
            option,
            message,
        });
    }

    /// Check that `item` is a table; returns it.
    pub(crate) fn table<'i>(
        &mut self,
        item: &'i Item,
        path: &str,
        conn: Option<&str>,
        line: usize,
    ) -> Option<&'i dyn TableLike> {
        let t = item.as_table_like();
        if t.is_none() {
            self.push(line, conn, Some(path.to_string()), "must be a table".into());
        }
        t
    }

    /// Deserialize a table into `T` key by key, so that every wrong key is reported: unknown
    /// keys (with a suggestion), wrong types and values, and numbers outside [`RANGES`].
    /// Keys in `skip` are left to the caller. Returns `T` when this call found no problem.
    fn typed<T>(
        &mut self,
        table: &dyn TableLike,
        section: &str,
        prefix: &str,
        conn: Option<&str>,
        fallback: usize,
        skip: &[&str],
    ) -> Option<T>
    where
        T: DeserializeOwned + Serialize + Default,
    {
        let before = self.issues.len();
        let known = field_names::<T>();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut whole = toml::Table::new();
        for (key, item) in table.iter() {
            let line = self.key_line(table, key, fallback);
            let option = format!("{prefix}{key}");
            let Some(value) = to_toml(item) else { continue };
            if !known.contains(&key) {
                let message = unknown_key_message(
                    &format!("key in [{}]", prefix.trim_end_matches('.')),
                    key,
                    &known,
                    SEE_DOCS,
                );
                self.push(line, conn, Some(option), message);
                continue;
            }
            if skip.contains(&key) {
                continue;
            }
            whole.insert(key.to_string(), value.clone());
            let mut one = toml::Table::new();
            one.insert(key.to_string(), value.clone());
            if let Err(e) = toml::Value::Table(one).try_into::<T>() {
                self.push(line, conn, Some(option), e.message().trim().to_string());
                continue;
            }
            let number = match &value {
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Float(f) => Some(*f),
                _ => None,
            };
            if let (Some(n), Some((_, _, min, max, unit))) = (
                number,
                RANGES.iter().find(|(s, k, ..)| *s == section && *k == key),
            ) {
                if !(n >= *min && n <= *max) {
                    self.push(
                        line,
                        conn,
                        Some(option),
                        format!("{value} is out of range: allowed {min} to {max} ({unit})"),
                    );
                }
            }
        }
        if self.issues.len() != before {
            return None;
        }
        match toml::Value::Table(whole).try_into::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.push(
                    fallback,
                    conn,
                    Some(prefix.trim_end_matches('.').to_string()),
                    e.message().trim().to_string(),
                );
                None
            }
        }
    }

    /// `[runtime]` or `[connections.runtime]`, with its files checked.
    fn runtime(&mut self, item: &Item, conn: Option<&str>, line: usize) -> RuntimeSection {
        let Some(t) = self.table(item, "runtime", conn, line) else {
            return RuntimeSection::default();
        };
        let section = self.typed::<RuntimeSection>(t, "runtime", "runtime.", conn, line, &[]);
        // The files and URLs are checked even when another key of the section is wrong.
        let string = |key: &str| t.get(key).and_then(Item::as_str);
        if let Some(ca) = string("ca_bundle") {
            let line = self.key_line(t, "ca_bundle", line);
            let path = self.base.join(ca);
            if let Err(reason) = check_ca_bundle(&path) {
                self.push(line, conn, Some("runtime.ca_bundle".into()), reason);
            }
        }
        if let Some(proxy) = string("proxy") {
            let line = self.key_line(t, "proxy", line);
            if let Err(reason) = check_proxy(proxy) {
                self.push(line, conn, Some("runtime.proxy".into()), reason);
            }
        }
        section.unwrap_or_default()
    }

    /// `[connections.policy]`.
    fn policy(&mut self, item: &Item, conn: &str, line: usize) -> Policy {
        let Some(t) = self.table(item, "policy", Some(conn), line) else {
            return Policy::default();
        };
        let before = self.issues.len();
        if let Some(names) = t.get("group_names").and_then(Item::as_table_like) {
            let l = self.key_line(t, "group_names", line);
            let _ = self.typed::<GroupNameMapping>(
                names,
                "policy.group_names",
                "policy.group_names.",
                Some(conn),
                l,
                &[],
            );
        }
        let skip: &[&str] = if self.issues.len() != before {
            &["group_names"]
        } else {
            &[]
        };
        let policy = self.typed::<Policy>(t, "policy", "policy.", Some(conn), line, skip);
        if self.issues.len() != before {
            return Policy::default();
        }
        policy.unwrap_or_default()
    }

    /// One `[[connections]]` table.
    fn connection(
        &mut self,
        t: &dyn TableLike,
        header_line: usize,
        priority: usize,
        global: &RuntimeSection,
        names: &mut BTreeSet<String>,
    ) -> Option<ConnectionConfig> {
        let string = |c: &mut Self, key: &str, conn: Option<&str>| -> Option<(String, usize)> {
            let line = c.key_line(t, key, header_line);
            match t.get(key).and_then(to_toml) {
                Some(toml::Value::String(s)) => Some((s, line)),
                Some(other) => {
                    c.push(
                        line,
                        conn,
                        Some(key.into()),
                        format!("must be a string, not {}", other.type_str()),
                    );
                    None
                }
                None => {
                    c.push(
                        header_line,
                        conn,
                        Some(key.into()),
                        format!("every [[connections]] needs `{key}`"),
                    );
                    None
                }
            }
        };
        let name = string(self, "name", None);
        let conn_name = name.as_ref().map(|(n, _)| n.clone());
        let conn = conn_name.as_deref();
        let connector = string(self, "connector", conn);
        for (key, _) in t.iter() {
            if !CONNECTION_KEYS.contains(&key) {
                let line = self.key_line(t, key, header_line);
                let message = unknown_key_message("key in [[connections]]", key, CONNECTION_KEYS, SEE_DOCS);
                self.push(line, conn, Some(key.to_string()), message);
            }
        }
        let line = name.as_ref().map(|(_, l)| *l).unwrap_or(header_line);
        if let Some((name, line)) = &name {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid {
                self.push(
                    *line,
                    conn,
                    None,
                    "a connection name may use only letters, digits, `-`, `_` and `.`".into(),
                );
            }
            if !names.insert(name.to_lowercase()) {
                self.push(
                    *line,
                    conn,
                    None,
                    "a connection with this name is already defined".into(),
                );
            }
        }
        let policy = match t.get("policy") {
            Some(item) => self.policy(item, conn.unwrap_or("?"), self.key_line(t, "policy", line)),
            None => Policy::default(),
        };
        let runtime = match t.get("runtime") {
            Some(item) => self.runtime(item, conn, self.key_line(t, "runtime", line)),
            None => RuntimeSection::default(),
        };
        let mut options = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        let mut option_lines = BTreeMap::new();
        if let Some(item) = t.get("options") {
            let oline = self.key_line(t, "options", line);
            if let Some(ot) = self.table(item, "options", conn, oline) {
                for (key, item) in ot.iter() {
                    let kline = self.key_line(ot, key, oline);
                    option_lines.insert(key.to_string(), kline);
                    let Some(v) = to_toml(item) else { continue };
                    if let Some(s) = as_secret_ref(&v, self.base) {
                        self.secret(&s, conn, key, kline);
                        secrets.insert(key.to_string(), s);
                        continue;
                    }
                    match serde_json::to_value(&v) {
                        Ok(j) => {
                            options.insert(key.to_string(), j);
                        }
                        Err(e) => self.push(
                            kline,
                            conn,
                            Some(key.to_string()),
                            format!("unsupported value: {e}"),
                        ),
                    }
                }
            }
        }
        let full_every = match t.get("full_every").and_then(to_toml) {
            None => DEFAULT_FULL_EVERY,
            Some(toml::Value::String(s)) => match crate::serve::parse_duration(&s) {
                Ok(d) if d >= std::time::Duration::from_secs(60) => d,
                Ok(_) => {
                    let l = self.key_line(t, "full_every", line);
                    self.push(l, conn, Some("full_every".into()), "must be at least `1m`".into());
                    DEFAULT_FULL_EVERY
                }
                Err(e) => {
                    let l = self.key_line(t, "full_every", line);
                    self.push(l, conn, Some("full_every".into()), e);
                    DEFAULT_FULL_EVERY
                }
            },
            Some(other) => {
                let l = self.key_line(t, "full_every", line);
                let message = format!(
                    "must be a duration string such as \"24h\", not {}",
                    other.type_str()
                );
                self.push(l, conn, Some("full_every".into()), message);
                DEFAULT_FULL_EVERY
            }
        };
        // unset: on where the connector has a change feed (ConnectionConfig::incremental_enabled)
        let incremental = match t.get("incremental").and_then(to_toml) {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(b),
            Some(other) => {
                let l = self.key_line(t, "incremental", line);
                let message = format!("must be true or false, not {}", other.type_str());
                self.push(l, conn, Some("incremental".into()), message);
                None
            }
        };
        let (name, _) = name?;
        let (connector, connector_line) = connector?;
        let runtime = RuntimeSettings::merge(&runtime, global, self.base, &name);
        Some(ConnectionConfig {
            name,
            connector,
            options,
            secrets,
            policy,
            runtime,
            priority,
            line,
            option_lines,
            connector_line,
            full_every,
            incremental,
        })
    }

    /// Read a secret now when it can be read here: a file must exist and hold a usable
    /// value; an environment variable, when set, must hold a usable value (an unset one is
    /// reported by `config check` as a warning and by the commands that need it).
    pub(crate) fn secret(&mut self, s: &SecretRef, conn: Option<&str>, option: &str, line: usize) {
        if let SecretRef::Env { env } = s {
            if std::env::var_os(env).is_none() {
                return;
            }
        }
        if let Err(e) = s.resolve() {
            self.push(line, conn, Some(option.to_string()), e.to_string());
        }
    }
}

/// A CA bundle the runtime can load: readable, with at least one PEM certificate.
fn check_ca_bundle(path: &Path) -> Result<(), String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read CA bundle `{}`: {e}", path.display()))?;
    if !bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "CA bundle `{}` contains no `-----BEGIN CERTIFICATE-----` block",
            path.display()
        ));
    }
    Ok(())
}

/// A proxy URL the runtime can use: `http://`, `https://` or `socks5://` with a host.
fn check_proxy(proxy: &str) -> Result<(), String> {
    let url =
        url::Url::parse(proxy).map_err(|e| format!("not a proxy URL ({e}); e.g. http://proxy.corp:3128"))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err(format!(
            "unsupported proxy scheme `{}` (http, https, socks5 or socks5h)",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("the proxy URL has no host".into());
    }
    Ok(())
}

/// Parse and validate the whole file, collecting every problem (sorted by line).
pub(crate) fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
    let (config, issues) = parse_lenient(text, path, base)?;
    if issues.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

/// Parse and validate the whole file: the config built from everything that is valid
/// (connections without a usable `name` or `connector` left out, invalid sections at their
/// defaults) and every problem, sorted by line. Fails only when the file is not TOML.
pub(crate) fn parse_lenient(
    text: &str,
    path: &Path,
    base: &Path,
) -> Result<(Config, Vec<ConfigIssue>), ConfigError> {
    let doc = ImDocument::parse(text.to_string()).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut c = Checker {
        text,
        file: path,
        base,
        issues: Vec::new(),
    };
    let root = doc.as_table();
    for (key, _) in root.iter() {
        if !TOP_KEYS.contains(&key) {
            let line = c.key_line(root, key, 1);
            let message = unknown_key_message("top-level key", key, TOP_KEYS, SEE_DOCS);
            c.push(line, None, Some(key.to_string()), message);
        }
    }
    let store = match root.get("store") {
        Some(item) => {
            let line = c.key_line(root, "store", 1);
            match c.table(item, "store", None, line) {
                Some(t) => c
                    .typed::<StoreConfig>(t, "store", "store.", None, line, &[])
                    .unwrap_or_default(),
                None => StoreConfig::default(),
            }
        }
        None => StoreConfig::default(),
    };
    let runtime = match root.get("runtime") {
        Some(item) => {
            let line = c.key_line(root, "runtime", 1);
            c.runtime(item, None, line)
        }
        None => RuntimeSection::default(),
    };
    let mut connections = Vec::new();
    let mut names = BTreeSet::new();
    let mut schedules = BTreeMap::new();
    match root.get("connections") {
        None => c.push(
            1,
            None,
            None,
            "no [[connections]] are defined: add one [[connections]] table per tenant \
             (name, connector, options)"
                .into(),
        ),
        Some(Item::ArrayOfTables(a)) => {
            for (priority, t) in a.iter().enumerate() {
                let line = c.line(t.span(), 1);
                if let Some(conn) = c.connection(t, line, priority, &runtime, &mut names) {
                    if let Some(s) = c.connection_schedule(t, Some(&conn.name), line) {
                        schedules.insert(conn.name.clone(), s);
                    }
                    connections.push(conn);
                }
            }
        }
        Some(other) => {
            let line = c.key_line(root, "connections", 1);
            let tables: Option<Vec<&toml_edit::InlineTable>> = other
                .as_array()
                .map(|a| a.iter().filter_map(toml_edit::Value::as_inline_table).collect());
            match tables {
                Some(ts) if ts.len() == other.as_array().map_or(0, |a| a.len()) => {
                    for (priority, t) in ts.into_iter().enumerate() {
                        let line = c.line(t.span(), line);
                        if let Some(conn) = c.connection(t, line, priority, &runtime, &mut names) {
                            if let Some(s) = c.connection_schedule(t, Some(&conn.name), line) {
                                schedules.insert(conn.name.clone(), s);
                            }
                            connections.push(conn);
                        }
                    }
                }
                _ => c.push(
                    line,
                    None,
                    Some("connections".into()),
                    "must be [[connections]] tables".into(),
                ),
            }
        }
    }
    let targets = match root.get("targets") {
        Some(item) => {
            let line = c.key_line(root, "targets", 1);
            c.targets(item, line, &runtime, &connections)
        }
        None => Vec::new(),
    };
    let mut serve = match root.get("serve") {
        Some(item) => {
            let line = c.key_line(root, "serve", 1);
            c.serve_section(item, line)
        }
        None => crate::serve::ServeConfig::default(),
    };
    serve.schedules = schedules;
    let ldap = match root.get("ldap") {
        Some(item) => {
            let line = c.key_line(root, "ldap", 1);
            let (ldap, found) = crate::ldap::parse_section(item, line, text, path, base);
            c.issues.extend(found);
            ldap
        }
        None => None,
    };
    let mut issues = c.issues;
    issues.sort_by_key(|i| i.line);
    let config = Config {
        path: path.to_path_buf(),
        store: StoreConfig {
            path: base.join(&store.path),
            url: store.url,
        },
        runtime,
        connections,
        targets,
        serve,
        ldap,
    };
    Ok((config, issues))
}
