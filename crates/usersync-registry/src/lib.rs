//! Connector registry: built-in connectors plus dynamic plugins, with precedence and safety checks.
//!
//! * Built-ins are handed in by the host (one per enabled cargo feature).
//! * Plugins are the shared libraries (`*.so` on Linux) found in the plugin directories, in this
//!   order: every `--plugin-dir`, then each entry of `USERSYNC_PLUGIN_PATH` (colon-separated), then
//!   the default data directory ([`default_plugin_dir`]).
//! * A library is refused (and kept in the registry with a one-line reason, never a crash) when it
//!   or its directory is writable by group or others, or owned by a user other than root and the
//!   current user; when its ABI is incompatible; when it is not a usersync plugin; when it
//!   panics or fails while loading; or when its manifest is invalid (`Manifest::validate`, and
//!   for a connector with a target half [`target_manifest_problems`]).
//! * When several candidates share an id, a pin from the config's `[plugins.pin]` table decides
//!   (`okta = "builtin"`, `okta = "plugin"` or `okta = "1.2.0"`); otherwise the highest semver
//!   version wins, and the built-in wins a tie.
//! * A connection naming an id is answered by [`Registry::lookup`]: the active candidate, or the
//!   refused libraries that stand for that id (see [`library_ids`] for how a library whose
//!   manifest was never read is matched to an id), or candidates a pin rules out, or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use usersync_sdk::Connector;

pub use usersync_abi::{ACCEPTED_ABI_MAX, ACCEPTED_ABI_MIN};

/// Errors building the registry (bad configuration; a bad plugin is never an error).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML, or `[plugins.pin]` is malformed.
    #[error("config file {path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
}

/// Where a candidate connector comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Linked into the host binary.
    Builtin,
    /// A plugin library at this path.
    Plugin(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin => f.write_str("builtin"),
            Source::Plugin(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A config pin for one connector id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Use the built-in connector.
    Builtin,
    /// Use the newest plugin.
    Plugin,
    /// Use the candidate with exactly this version.
    Version(semver::Version),
}

impl Pin {
    /// Parse a pin value: `builtin`, `plugin` or a semver version.
    pub fn parse(s: &str) -> Result<Pin, String> {
        match s.trim() {
            "builtin" => Ok(Pin::Builtin),
            "plugin" => Ok(Pin::Plugin),
            v => semver::Version::parse(v.trim_start_matches('v'))
                .map(Pin::Version)
                .map_err(|e| format!("`{s}` is not `builtin`, `plugin` or a version like `1.2.0` ({e})")),
        }
    }

    fn matches(&self, c: &Candidate) -> bool {
        match self {
            Pin::Builtin => c.source == Source::Builtin,
            Pin::Plugin => matches!(c.source, Source::Plugin(_)),
            Pin::Version(v) => c.semver.as_ref() == Some(v),
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Builtin => f.write_str("builtin"),
            Pin::Plugin => f.write_str("plugin"),
            Pin::Version(v) => write!(f, "{v}"),
        }
    }
}

/// What the registry needs to know besides the built-ins.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Plugin directories, in search order (see [`plugin_dirs`]).
    pub plugin_dirs: Vec<PathBuf>,
    /// Directories the user named explicitly: a missing one is reported (a missing default
    /// directory is not).
    pub explicit_dirs: BTreeSet<PathBuf>,
    /// Pins from the config's `[plugins.pin]` table.
    pub pins: BTreeMap<String, Pin>,
    /// The config file the pins came from (for messages).
    pub config_file: Option<PathBuf>,
}

/// One row of the registry: a built-in, a loaded plugin or a refused library.
#[derive(Clone)]
pub struct Entry {
    /// Connector id (`None` for a refused library whose manifest was never read).
    pub id: Option<String>,
    /// Connector version from its manifest.
    pub version: Option<String>,
    /// ABI version (the SDK's for built-ins).
    pub abi_version: Option<u32>,
    /// Where it comes from.
    pub source: Source,
    /// Whether this candidate is the one used for its id.
    pub active: bool,
    /// Why it is active, inactive or refused (one line; `refused: ...` for a refused library).
    pub reason: String,
    /// Whether the library was refused (never loaded, or loaded and then rejected).
    pub refused: bool,
    /// The connector, for loaded candidates.
    pub connector: Option<Arc<dyn Connector>>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("abi_version", &self.abi_version)
            .field("source", &self.source)
            .field("active", &self.active)
            .field("reason", &self.reason)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

/// Every candidate connector and refused library, with the active one per id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
    warnings: Vec<String>,
}

struct Candidate {
    index: usize,
    source: Source,
    semver: Option<semver::Version>,
}

impl Registry {
    /// Build the registry: load every plugin found in `config.plugin_dirs`, then choose the
    /// active candidate per id.
    pub fn build(builtins: Vec<Arc<dyn Connector>>, config: &RegistryConfig) -> Registry {
        let _span = tracing::info_span!("registry_build", dirs = config.plugin_dirs.len()).entered();
        let mut reg = Registry::default();
        for c in builtins {
            let m = c.manifest();
            reg.entries.push(Entry {
                id: Some(m.id),
                version: Some(m.version),
                abi_version: Some(m.abi_version),
                source: Source::Builtin,
                active: false,
                reason: String::new(),
                refused: false,
                connector: Some(c),
            });
        }
        let mut seen_files = BTreeSet::new();
        for dir in &config.plugin_dirs {
            reg.scan_dir(dir, config.explicit_dirs.contains(dir), &mut seen_files);
        }
        reg.choose(config);
        reg
    }

    fn scan_dir(&mut self, dir: &Path, explicit: bool, seen: &mut BTreeSet<PathBuf>) {
        let read = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => {
                if explicit || e.kind() != std::io::ErrorKind::NotFound {
                    self.warnings
                        .push(format!("plugin directory {}: {}", dir.display(), e));
                }
                return;
            }
        };
        let suffix = std::env::consts::DLL_SUFFIX.trim_start_matches('.');
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension() == Some(OsStr::new(suffix)) && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !seen.insert(key) {
                continue;
            }
            self.entries.push(load_entry(&path));
        }
    }

    fn choose(&mut self, config: &RegistryConfig) {
        let mut by_id: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
        for (index, e) in self.entries.iter().enumerate() {
            if let (Some(id), Some(_)) = (&e.id, &e.connector) {
                by_id.entry(id.clone()).or_default().push(Candidate {
                    index,
                    source: e.source.clone(),
                    semver: e.version.as_deref().and_then(|v| semver::Version::parse(v).ok()),
                });
            }
        }
        let pin_origin = config
            .config_file
            .as_ref()
            .map(|p| format!("{} [plugins.pin]", p.display()))
            .unwrap_or_else(|| "[plugins.pin]".into());
        for (id, cands) in by_id {
            let pin = config.pins.get(&id);
            let winner = match pin {
                Some(pin) => cands.iter().filter(|c| pin.matches(c)).max_by(|a, b| rank(a, b)),
                None => cands.iter().max_by(|a, b| rank(a, b)),
            };
            let Some(winner) = winner else {
                let pin = pin.map(ToString::to_string).unwrap_or_default();
                for c in &cands {
                    self.entries[c.index].reason =
                        format!("not used: {pin_origin} pins `{id}` to `{pin}`, which matches no candidate");
                }
                continue;
            };
            let (wi, wsrc, wver) = (winner.index, winner.source.clone(), self.version_of(winner.index));
            for c in &cands {
                if c.index == wi {
                    continue;
                }
                let why = match pin {
                    Some(p) => format!("pinned to `{p}` in {pin_origin}"),
                    None if c.semver.is_none() => "its version is not semver".to_string(),
                    None if c.semver == winner.semver => {
                        "same version; the built-in or first found wins".into()
                    }
                    None => "higher version".into(),
                };
                self.entries[c.index].reason = format!("overridden by {} {} ({why})", wsrc, wver);
            }
            let others = cands.len() - 1;
            let tie = cands.iter().any(|c| c.index != wi && c.semver == winner.semver);
            let reason = match (pin, others) {
                (Some(p), _) => format!("pinned to `{p}` in {pin_origin}"),
                (None, 0) => match wsrc {
                    Source::Builtin => "built in".to_string(),
                    Source::Plugin(_) => "only candidate".to_string(),
                },
                (None, n) if tie => format!(
                    "same version as another of {} candidates; the built-in or first found wins",
                    n + 1
                ),
                (None, n) => format!("highest version of {} candidates", n + 1),
            };
            let w = &mut self.entries[wi];
            w.active = true;
            w.reason = reason;
        }
        for (id, pin) in &config.pins {
            if !self.entries.iter().any(|e| e.id.as_deref() == Some(id)) {
                self.warnings.push(format!(
                    "{pin_origin} pins `{id}` to `{pin}`, but no connector has that id"
                ));
            }
        }
    }

    fn version_of(&self, i: usize) -> String {
        self.entries[i].version.clone().unwrap_or_default()
    }

    /// The active connector with this id.
    pub fn get(&self, id: &str) -> Option<Arc<dyn Connector>> {
        self.entries
            .iter()
            .find(|e| e.active && e.id.as_deref() == Some(id))
            .and_then(|e| e.connector.clone())
    }

    /// The active entry with this id.
    pub fn active_entry(&self, id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.active && e.id.as_deref() == Some(id))
    }

    /// All active entries, sorted by id.
    pub fn active(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().filter(|e| e.active).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// All active connectors, sorted by id.
    pub fn all(&self) -> Vec<Arc<dyn Connector>> {
        self.active()
            .into_iter()
            .filter_map(|e| e.connector.clone())
            .collect()
    }

    /// Every entry: built-ins, plugins and refused libraries, sorted by id then source.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by(|a, b| {
            (
                a.id.is_none(),
                &a.id,
                a.source != Source::Builtin,
                a.source.to_string(),
            )
                .cmp(&(
                    b.id.is_none(),
                    &b.id,
                    b.source != Source::Builtin,
                    b.source.to_string(),
                ))
        });
        v
    }

    /// Problems with directories or pins that concern no single library.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every refused library, in search order.
    pub fn refused(&self) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.refused).collect()
    }

    /// What a connection naming connector `id` gets: the active candidate; else the candidates a
    /// pin rules out (a config problem); else the refused libraries that stand for `id` (see
    /// [`library_ids`]); else nothing.
    pub fn lookup(&self, id: &str) -> Lookup<'_> {
        if let Some(e) = self.active_entry(id) {
            return Lookup::Active(e);
        }
        let unused: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.connector.is_some() && e.id.as_deref() == Some(id))
            .collect();
        if !unused.is_empty() {
            return Lookup::Unused(unused);
        }
        let refused: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.refused && e.claims(id))
            .collect();
        if !refused.is_empty() {
            return Lookup::Refused(refused);
        }
        Lookup::Unknown
    }
}

/// The answer of [`Registry::lookup`] for one connector id.
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// The candidate in use.
    Active(&'a Entry),
    /// Candidates exist, but a `[plugins.pin]` entry matches none of them (each entry's
    /// `reason` says so).
    Unused(Vec<&'a Entry>),
    /// No candidate loaded; these refused libraries stand for the id (in search order).
    Refused(Vec<&'a Entry>),
    /// Nothing has this id.
    Unknown,
}

impl Entry {
    /// The refusal reason without the `refused: ` prefix, for a refused library.
    pub fn refusal(&self) -> Option<&str> {
        self.refused
            .then(|| self.reason.strip_prefix("refused: ").unwrap_or(&self.reason))
    }

    /// Whether this entry stands for connector `id`: its manifest's id when it was read,
    /// otherwise (a refused library) the ids its file name stands for ([`library_ids`]).
    pub fn claims(&self, id: &str) -> bool {
        match (&self.id, &self.source) {
            (Some(own), _) => own == id,
            (None, Source::Plugin(path)) => library_ids(path).iter().any(|c| c == id),
            (None, Source::Builtin) => false,
        }
    }
}

/// The connector ids a library's file name stands for, used to match a refused library whose
/// manifest could not be read to the connections that name it. The name is
/// `lib<stem>.<suffix>`; `_` in the stem stands for `-` in an id. The stem itself, the stem
/// without a leading `usersync_`, and the stem without a leading `usersync_connector_` are
/// candidates, so `libusersync_connector_acme.so` (the name `usersync plugins install` writes,
/// and what cargo builds for a package named `usersync-connector-acme`) stands for `acme`, and
/// `libusersync_fixture_bad_abi.so` for `fixture-bad-abi`. Ids are compared exactly (they are
/// lowercase kebab-case).
pub fn library_ids(path: &Path) -> Vec<String> {
    let Some(stem) = path.file_stem().and_then(OsStr::to_str) else {
        return Vec::new();
    };
    let stem = stem.strip_prefix("lib").unwrap_or(stem);
    let mut out: Vec<String> = Vec::new();
    for s in [
        Some(stem),
        stem.strip_prefix("usersync_"),
        stem.strip_prefix("usersync_connector_"),
    ]
    .into_iter()
    .flatten()
    {
        let id = s.replace('_', "-");
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Highest semver first; a non-semver version ranks lowest; on a tie the built-in, then the
/// first found (lowest index) wins.
fn rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    a.semver
        .cmp(&b.semver)
        .then_with(|| (a.source == Source::Builtin).cmp(&(b.source == Source::Builtin)))
        .then_with(|| b.index.cmp(&a.index))
}

fn refused(path: &Path, reason: String) -> Entry {
    tracing::warn!(path = %path.display(), %reason, "plugin refused");
    Entry {
        id: None,
        version: None,
        abi_version: None,
        source: Source::Plugin(path.to_path_buf()),
        active: false,
        reason: format!("refused: {reason}"),
        refused: true,
        connector: None,
    }
}

fn load_entry(path: &Path) -> Entry {
    if let Err(reason) = check_permissions(path) {
        return refused(path, reason);
    }
    let loaded = std::panic::catch_unwind(|| usersync_abi::load_plugin(path));
    match loaded {
        Ok(Ok(p)) => {
            let m = p.connector.manifest();
            let target_problems = p
                .connector
                .target()
                .map(|t| target_manifest_problems(&t.manifest()));
            if let Err(problems) = m.validate().and(match target_problems {
                Some(problems) if !problems.is_empty() => Err(problems),
                _ => Ok(()),
            }) {
                // The id it claims is kept (a connection naming it is told why it cannot be used).
                let mut e = refused(path, format!("invalid manifest: {}", problems.join("; ")));
                e.id = Some(m.id).filter(|id| !id.is_empty());
                e.version = Some(m.version);
                e.abi_version = Some(p.abi_version);
                return e;
            }
            Entry {
                id: Some(m.id),
                version: Some(m.version),
                abi_version: Some(p.abi_version),
                source: Source::Plugin(path.to_path_buf()),
                active: false,
                reason: String::new(),
                refused: false,
                connector: Some(p.connector),
            }
        }
        Ok(Err(e)) => refused(path, e.to_string()),
        Err(_) => refused(path, "failed while loading: the host's loader panicked".into()),
    }
}

/// What is wrong with a target manifest (empty: nothing). The same rule as a source manifest's
/// endpoints (https URL templates), plus: every endpoint names a method.
pub fn target_manifest_problems(m: &usersync_sdk::TargetManifest) -> Vec<String> {
    let mut problems = Vec::new();
    for e in &m.endpoints {
        if !e.url.starts_with("https://") {
            problems.push(format!(
                "target endpoint `{}` is not an https URL template",
                e.url
            ));
        }
        if e.method.trim().is_empty() {
            problems.push(format!("target endpoint `{}` has no HTTP method", e.url));
        }
    }
    problems
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn check_one(what: &str, path: &Path, me: u32) -> Result<(), String> {
    let md = std::fs::metadata(path).map_err(|e| format!("cannot inspect {what} {}: {e}", path.display()))?;
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "group",
            _ => "others",
        };
        return Err(format!(
            "{what} {} is writable by {who} (mode {mode:04o}); run `chmod go-w` on it",
            path.display()
        ));
    }
    if md.uid() != 0 && md.uid() != me {
        return Err(format!(
            "{what} {} is owned by uid {}, not by root or the current user (uid {me})",
            path.display(),
            md.uid()
        ));
    }
    Ok(())
}

/// Refuse a library that another user could have replaced: the file (after following
/// symlinks) and the directory holding it must not be writable by group or others, and must
/// be owned by root or the current user.
pub fn check_permissions(path: &Path) -> Result<(), String> {
    let me = euid();
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    check_one("library", &real, me)?;
    let mut dirs = Vec::new();
    if let Some(d) = real.parent() {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::canonicalize(d) {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    for d in dirs {
        check_one("directory", &d, me)?;
    }
    Ok(())
}

/// The default plugin directory: `$XDG_DATA_HOME/usersync/plugins`, else
/// `$HOME/.local/share/usersync/plugins`.
pub fn default_plugin_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".local/share"))
    })?;
    Some(base.join("usersync").join("plugins"))
}

/// The plugin search path: `cli` dirs, then `USERSYNC_PLUGIN_PATH` entries (`env`, colon-separated,
/// empty entries ignored), then `default`. Duplicates are dropped, first occurrence kept.
pub fn plugin_dirs(cli: &[PathBuf], env: Option<&OsStr>, default: Option<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let from_env = env.map(|v| {
        std::env::split_paths(v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect::<Vec<_>>()
    });
    for d in cli
        .iter()
        .cloned()
        .chain(from_env.unwrap_or_default())
        .chain(default)
    {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Keys of the config file's `[plugins]` table.
pub const PLUGINS_KEYS: &[&str] = &["pin", "trusted_keys"];

/// The config file's `[plugins]` table. This is the one reader of it: the config loader leaves
/// the table to the registry, and the host's `plugins install` takes its trusted keys from here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginsSection {
    /// `[plugins.pin]`: which candidate stands for a connector id.
    pub pins: BTreeMap<String, Pin>,
    /// `[plugins] trusted_keys`: minisign public keys whose signatures `plugins install` accepts.
    pub trusted_keys: Vec<String>,
}

impl PluginsSection {
    /// Read the `[plugins]` table of a config file. An absent file or table means no pins and no
    /// keys; only this table is interpreted (the rest of the file belongs to the config loader).
    pub fn read(path: &Path) -> Result<PluginsSection, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PluginsSection::default()),
            Err(source) => {
                return Err(RegistryError::ReadConfig {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        PluginsSection::parse(&text).map_err(|reason| RegistryError::BadConfig {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parse the `[plugins]` table out of a config file's text; the error names the key.
    pub fn parse(text: &str) -> Result<PluginsSection, String> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("invalid TOML: {}", e.message().trim_end()))?;
        let mut out = PluginsSection::default();
        let Some(plugins) = doc.get("plugins") else {
            return Ok(out);
        };
        let plugins = plugins
            .as_table()
            .ok_or_else(|| "`plugins` must be a table (`[plugins]`)".to_string())?;
        for key in plugins.keys() {
            if !PLUGINS_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown key `plugins.{key}` (known: {})",
                    PLUGINS_KEYS.join(", ")
                ));
            }
        }
        if let Some(pin) = plugins.get("pin") {
            let table = pin.as_table().ok_or_else(|| {
                "`plugins.pin` must be a table of `id = \"builtin\" | \"plugin\" | \"<version>\"`".to_string()
            })?;
            for (id, v) in table {
                let s = v
                    .as_str()
                    .ok_or_else(|| format!("`plugins.pin.{id}` must be a string"))?;
                let pin = Pin::parse(s).map_err(|r| format!("`plugins.pin.{id}`: {r}"))?;
                out.pins.insert(id.clone(), pin);
            }
        }
        if let Some(keys) = plugins.get("trusted_keys") {
            let bad =
                || "`plugins.trusted_keys` must be a list of strings (minisign public keys)".to_string();
            let keys = keys.as_array().ok_or_else(bad)?;
            for k in keys {
                out.trusted_keys.push(k.as_str().ok_or_else(bad)?.to_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn target_manifests_need_https_endpoints_with_a_method() {
        use usersync_sdk::{TargetEndpoint, TargetManifest, TargetOperation};
        let ep = |method: &str, url: &str| TargetEndpoint {
            method: method.into(),
            url: url.into(),
            purpose: "p".into(),
            operation: TargetOperation::CreateUser,
        };
        let mut m = TargetManifest {
            capabilities: Default::default(),
            endpoints: vec![ep("POST", "https://{domain}/api/users")],
        };
        assert!(target_manifest_problems(&m).is_empty());
        m.endpoints.push(ep(" ", "http://plain.test/users"));
        let p = target_manifest_problems(&m);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("not an https URL template") && p[1].contains("no HTTP method"),
            "{p:?}"
        );
    }

    #[test]
    fn search_path_order_and_dedup() {
        let env = OsStr::new("/b::/c:/a");
        let dirs = plugin_dirs(&[PathBuf::from("/a")], Some(env), Some(PathBuf::from("/d")));
        assert_eq!(dirs, ["/a", "/b", "/c", "/d"].map(PathBuf::from));
    }

    #[test]
    fn the_plugins_table_is_read_in_one_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("usersync.toml");
        std::fs::write(
            &p,
            "[other]\nx = 1\n[plugins]\ntrusted_keys = [\"RWQ\"]\n[plugins.pin]\nokta = \"builtin\"\n\
             entra = \"1.2.0\"\ng = \"plugin\"\n",
        )
        .expect("write");
        let section = PluginsSection::read(&p).expect("pins");
        assert_eq!(section.pins["okta"], Pin::Builtin);
        assert_eq!(section.pins["g"], Pin::Plugin);
        assert_eq!(section.pins["entra"], Pin::Version(semver::Version::new(1, 2, 0)));
        assert_eq!(section.trusted_keys, ["RWQ"]);
        assert_eq!(
            PluginsSection::read(&dir.path().join("absent.toml")).expect("absent"),
            PluginsSection::default()
        );
        for (text, names) in [
            ("[plugins.pin]\nokta = \"newest\"\n", "plugins.pin.okta"),
            ("[plugins]\ntrusted_keys = \"RWQ\"\n", "plugins.trusted_keys"),
            (
                "[plugins]\ntrusted_key = [\"RWQ\"]\n",
                "unknown key `plugins.trusted_key`",
            ),
        ] {
            std::fs::write(&p, text).expect("write");
            let e = PluginsSection::read(&p).expect_err(text).to_string();
            assert!(e.contains(names), "{e}");
        }
    }

    #[test]
    fn library_file_names_stand_for_connector_ids() {
        let ids = |p: &str| library_ids(Path::new(p));
        assert_eq!(
            ids("/p/libusersync_connector_acme_hr.so"),
            ["usersync-connector-acme-hr", "connector-acme-hr", "acme-hr"]
        );
        assert_eq!(
            ids("/p/libusersync_fixture_bad_abi.so"),
            ["usersync-fixture-bad-abi", "fixture-bad-abi"]
        );
        assert_eq!(ids("/p/libacme.so"), ["acme"]);
        assert_eq!(ids("/p/lib.so"), Vec::<String>::new());
    }

    struct Fake(&'static str);

    impl Connector for Fake {
        fn manifest(&self) -> usersync_sdk::Manifest {
            usersync_sdk::Manifest {
                id: self.0.into(),
                name: "fake".into(),
                version: "1.0.0".into(),
                abi_version: usersync_sdk::ABI_VERSION,
                auth: Vec::new(),
                endpoints: Vec::new(),
                capabilities: Default::default(),
                options: Vec::new(),
                default_concurrency: 1,
            }
        }

        fn open(
            &self,
            _options: &usersync_sdk::Options,
        ) -> Result<Box<dyn usersync_sdk::Session>, usersync_sdk::ConnectorError> {
            Err(usersync_sdk::ConnectorError::Unsupported {
                operation: "open".into(),
            })
        }
    }

    #[test]
    fn lookup_tells_active_refused_pinned_out_and_unknown_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let acme = dir.path().join("libusersync_connector_acme.so");
        let okta = dir.path().join("libusersync_connector_okta.so");
        for lib in [&acme, &okta] {
            std::fs::write(lib, b"not a shared library").expect("write");
            std::fs::set_permissions(lib, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let mut config = RegistryConfig {
            plugin_dirs: vec![dir.path().to_path_buf()],
            ..RegistryConfig::default()
        };
        let builtins =
            || -> Vec<Arc<dyn Connector>> { vec![Arc::new(Fake("okta")), Arc::new(Fake("entra"))] };
        let reg = Registry::build(builtins(), &config);
        assert_eq!(reg.refused().len(), 2);

        // A refused library never hides a working candidate of the same id.
        assert!(matches!(reg.lookup("okta"), Lookup::Active(e) if e.source == Source::Builtin));
        match reg.lookup("acme") {
            Lookup::Refused(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].source, Source::Plugin(acme.clone()));
                let why = v[0].refusal().expect("refused");
                assert!(!why.starts_with("refused"), "{why}");
                assert!(v[0].reason.ends_with(why));
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert!(matches!(reg.lookup("acme-hr"), Lookup::Unknown));
        assert!(matches!(reg.lookup("nope"), Lookup::Unknown));

        config.pins.insert("entra".into(), Pin::Plugin);
        let reg = Registry::build(builtins(), &config);
        match reg.lookup("entra") {
            Lookup::Unused(v) => assert!(v[0].reason.contains("matches no candidate"), "{}", v[0].reason),
            other => panic!("expected Unused, got {other:?}"),
        }
    }

    #[test]
    fn group_writable_library_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"not really").expect("write");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o664)).expect("chmod");
        let e = check_permissions(&lib).expect_err("refused");
        assert!(e.contains("writable by group"), "{e}");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(check_permissions(&lib).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o757)).expect("chmod");
        let e = check_permissions(&lib).expect_err("refused");
        assert!(e.contains("directory") && e.contains("others"), "{e}");
    }
}
