//! `usersync connectors ...`: what each active connector declares (manifest, endpoints, the
//! hosts a firewall must allow). Everything here is derived from the manifests.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::{json, Value};
use usersync_sdk::{Manifest, TargetManifest};

use crate::registry::{self, Entry, Registry};
use crate::GlobalArgs;

/// `usersync connectors` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectorsCmd {
    /// List the active connectors (id, name, version, source).
    #[command(after_help = "Examples:
  usersync connectors list
  usersync connectors list --format json")]
    List(ListArgs),
    /// Describe connectors: auth flows, endpoints, capabilities and options.
    #[command(after_help = "Examples:
  usersync connectors describe okta
  usersync connectors describe --all --format markdown > endpoints.md")]
    Describe(DescribeArgs),
    /// The endpoints each connector calls, or with --hosts the host:port list a firewall or
    /// proxy must allow.
    #[command(after_help = "Examples:
  usersync connectors endpoints okta
  usersync connectors endpoints --hosts                 # the hosts of the connections in your config
  usersync connectors endpoints --hosts --templates     # every connector's host templates")]
    Endpoints(EndpointsArgs),
}

/// Output format of `connectors list` and `connectors endpoints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned text for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// Output format of `connectors describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeFormat {
    /// Text for people.
    Table,
    /// JSON (array of objects: id, name, version, abi_version, source, auth, endpoints,
    /// capabilities, options, target: the target half's capabilities and endpoints, or null).
    Json,
    /// Per-provider `URL | Reason` tables (docs/endpoints.md is generated from this).
    Markdown,
}

/// Arguments of `connectors list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Arguments of `connectors describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// Connector id (see `usersync connectors list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Describe every active connector.
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DescribeFormat::Table)]
    pub format: DescribeFormat,
}

/// Arguments of `connectors endpoints`.
#[derive(Debug, clap::Args)]
pub struct EndpointsArgs {
    /// Only this connector (default: every active connector).
    pub id: Option<String>,
    /// Show the host:port list to allow instead of every endpoint URL: with a config file (the
    /// usual lookup, or --config), the hosts its connections contact; without one, every
    /// connector's host templates (`{oktaDomain}:443`).
    #[arg(long)]
    pub hosts: bool,
    /// With --hosts: every connector's host templates, even when a config file is in use.
    #[arg(long, requires = "hosts")]
    pub templates: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: ConnectorsCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let reg = registry::load(global)?;
    if let ConnectorsCmd::Endpoints(a) = &cmd {
        if a.hosts && !a.templates {
            if let Some(path) = registry::config_path(global) {
                return configured_hosts(&reg, &path, a);
            }
        }
    }
    let out = match cmd {
        ConnectorsCmd::List(a) => {
            // Refused libraries are not connectors, but whoever looks for a connector here must
            // learn that one was refused (stderr: the listing on stdout stays machine-readable).
            let refused = reg.refused();
            if !refused.is_empty() {
                eprintln!(
                    "note: {} plugin librar{} refused (`usersync plugins list` says why):",
                    refused.len(),
                    if refused.len() == 1 { "y was" } else { "ies were" }
                );
                for e in refused {
                    eprintln!("  {}: {}", e.source, e.refusal().unwrap_or(&e.reason));
                }
            }
            list(&reg, a.format)
        }
        ConnectorsCmd::Describe(a) => {
            let entries = select(&reg, a.id.as_deref())?;
            match a.format {
                DescribeFormat::Json => serde_json::to_string_pretty(&describe_json(&entries))? + "\n",
                DescribeFormat::Markdown => describe_markdown(&entries),
                DescribeFormat::Table => describe_table(&entries),
            }
        }
        ConnectorsCmd::Endpoints(a) => {
            let entries = select(&reg, a.id.as_deref())?;
            match (a.hosts, a.format) {
                (true, ListFormat::Json) => serde_json::to_string_pretty(&hosts_json(&entries))? + "\n",
                (true, ListFormat::Table) => hosts_table(&entries),
                (false, ListFormat::Json) => {
                    let v: Vec<Value> = entries
                        .iter()
                        .map(|(e, m)| {
                            let target = target_of(e).map(|t| t.endpoints).unwrap_or_default();
                            json!({"id": m.id, "source": e.source.to_string(), "endpoints": m.endpoints,
                                   "target_endpoints": target})
                        })
                        .collect();
                    serde_json::to_string_pretty(&v)? + "\n"
                }
                (false, ListFormat::Table) => endpoints_table(&entries),
            }
        }
    };
    print!("{out}");
    Ok(0)
}

type Selected<'a> = Vec<(&'a Entry, Manifest)>;

fn select<'a>(reg: &'a Registry, id: Option<&str>) -> anyhow::Result<Selected<'a>> {
    let entries: Vec<&Entry> = match id {
        Some(id) => vec![reg.active_entry(id).with_context(|| {
            if let registry::Lookup::Refused(refused) = reg.lookup(id) {
                return format!(
                    "no active connector `{id}`: {}",
                    crate::wiring::refused_message(id, &refused)
                );
            }
            let known: Vec<String> = reg.active().iter().filter_map(|e| e.id.clone()).collect();
            format!(
                "no active connector `{id}` (active: {}; see `usersync plugins list`)",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?],
        None => reg.active(),
    };
    Ok(entries
        .into_iter()
        .filter_map(|e| e.connector.as_ref().map(|c| (e, c.manifest())))
        .collect())
}

fn list(reg: &Registry, format: ListFormat) -> String {
    let rows: Vec<(&Entry, Manifest)> = reg
        .active()
        .into_iter()
        .filter_map(|e| e.connector.as_ref().map(|c| (e, c.manifest())))
        .collect();
    match format {
        ListFormat::Json => {
            let v: Vec<Value> = rows
                .iter()
                .map(|(e, m)| json!({"id": m.id, "name": m.name, "version": m.version, "source": e.source.to_string()}))
                .collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        ListFormat::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|(e, m)| {
                    vec![
                        m.id.clone(),
                        m.name.clone(),
                        m.version.clone(),
                        e.source.to_string(),
                    ]
                })
                .collect();
            render_table(&["ID", "NAME", "VERSION", "SOURCE"], &table)
        }
    }
}

/// The JSON contract of `connectors describe --format json`.
pub fn describe_json(entries: &Selected<'_>) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(e, m)| {
                json!({
                    "id": m.id,
                    "name": m.name,
                    "version": m.version,
                    "abi_version": m.abi_version,
                    "source": e.source.to_string(),
                    "auth": m.auth,
                    "endpoints": m.endpoints,
                    "capabilities": m.capabilities,
                    "options": m.options,
                    "default_concurrency": m.default_concurrency,
                    "target": target_of(e),
                })
            })
            .collect(),
    )
}

/// The connector's target half, when it has one (built-in or plugin alike).
fn target_of(e: &Entry) -> Option<TargetManifest> {
    e.connector.as_ref()?.target().map(|t| t.manifest())
}

/// `connectors describe` (table): what the target half can do and every endpoint it may call.
fn describe_target_table(s: &mut String, t: &TargetManifest) {
    let c = &t.capabilities;
    let ops: Vec<&str> = c.operations.iter().map(|o| o.as_str()).collect();
    let _ = writeln!(s, "  target:");
    let _ = writeln!(
        s,
        "    operations: {}",
        if ops.is_empty() {
            "none".into()
        } else {
            ops.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "    members per request: {}; lookup by filter: {}; list: {}; etags: {}; nested groups: {}",
        c.max_members_per_request,
        yes_no(c.can_filter),
        yes_no(c.can_list),
        yes_no(c.etags),
        yes_no(c.nested_groups)
    );
    let _ = writeln!(s, "    endpoints:");
    for ep in &t.endpoints {
        let _ = writeln!(s, "      {:<6} {}", ep.method, ep.url);
        let _ = writeln!(s, "             {} ({})", ep.purpose, ep.operation);
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn capability_names(m: &Manifest) -> (Vec<String>, Vec<String>) {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    if let Ok(Value::Object(map)) = serde_json::to_value(m.capabilities) {
        for (k, v) in map {
            if v.as_bool() == Some(true) {
                yes.push(k);
            } else {
                no.push(k);
            }
        }
    }
    (yes, no)
}

fn describe_table(entries: &Selected<'_>) -> String {
    let mut s = String::new();
    for (i, (e, m)) in entries.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(s, "{} ({})", m.name, m.id);
        let _ = writeln!(
            s,
            "  version {}, ABI {}, source {}",
            m.version, m.abi_version, e.source
        );
        let _ = writeln!(s, "  auth flows:");
        for a in &m.auth {
            let flow = serde_json::to_value(a.flow)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let _ = writeln!(s, "    {flow}: {}", a.description);
            if let Some(u) = &a.authorize_url {
                let _ = writeln!(s, "      authorize: {u}");
            }
            if let Some(u) = &a.token_url {
                let _ = writeln!(s, "      token:     {u}");
            }
            if !a.scopes.is_empty() {
                let _ = writeln!(s, "      scopes:    {}", a.scopes.join(" "));
            }
        }
        let (yes, no) = capability_names(m);
        let _ = writeln!(
            s,
            "  capabilities: {}",
            if yes.is_empty() {
                "none".into()
            } else {
                yes.join(", ")
            }
        );
        if !no.is_empty() {
            let _ = writeln!(s, "  not supported: {}", no.join(", "));
        }
        let _ = writeln!(s, "  endpoints:");
        for ep in &m.endpoints {
            let _ = writeln!(s, "    {:<4} {}", ep.method, ep.url);
            let _ = writeln!(s, "         {} ({})", ep.purpose, ep.operation);
        }
        let _ = writeln!(s, "  options:");
        for o in &m.options {
            let mut flags = Vec::new();
            if o.required {
                flags.push("required".to_string());
            }
            if o.secret {
                flags.push("secret".to_string());
            }
            if let Some(d) = &o.default {
                flags.push(format!("default {d}"));
            }
            let kind = serde_json::to_value(o.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!(", {}", flags.join(", "))
            };
            let _ = writeln!(s, "    {} ({kind}{flags}): {}", o.name, o.help);
        }
        if let Some(t) = target_of(e) {
            describe_target_table(&mut s, &t);
        }
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The one command that regenerates docs/endpoints.md (no plugin directories, so only built-ins).
pub const REGENERATE_ENDPOINTS_MD: &str =
    "env -u USERSYNC_PLUGIN_PATH XDG_DATA_HOME=/nonexistent cargo run -q -p usersync -- \
     connectors describe --all --format markdown > docs/endpoints.md";

/// `connectors describe --format markdown`: per provider, a `URL | Reason` table plus
/// the hosts to allow. docs/endpoints.md is exactly this output.
pub fn describe_markdown(entries: &Selected<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!-- Generated by `usersync connectors describe --all --format markdown`; do not edit. -->"
    );
    let _ = writeln!(
        s,
        "<!-- Regenerate from the workspace root (built-in connectors only, no plugin directories): -->"
    );
    let _ = writeln!(s, "<!-- {REGENERATE_ENDPOINTS_MD} -->");
    let _ = writeln!(s);
    let _ = writeln!(s, "# Endpoints usersync calls");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "usersync needs direct HTTPS access to each identity provider's API. Allow these URLs (or at least \
         the hosts listed under each table) in your firewall or proxy. Placeholders such as `{{oktaDomain}}` \
         stand for your own tenant's value. `usersync connectors endpoints --hosts` prints the host:port list."
    );
    for (e, m) in entries {
        let target = target_of(e);
        let _ = writeln!(s);
        let _ = writeln!(s, "## {} (`{}`)", m.name, m.id);
        let _ = writeln!(s);
        let _ = writeln!(s, "| URL | Reason |");
        let _ = writeln!(s, "|---|---|");
        let mut seen = BTreeSet::new();
        for a in &m.auth {
            for u in [&a.authorize_url, &a.token_url].into_iter().flatten() {
                if !m.endpoints.iter().any(|e| &e.url == u) && seen.insert(u.clone()) {
                    let what = if Some(u) == a.authorize_url.as_ref() {
                        "Request OAuth2 authorization"
                    } else {
                        "Request and refresh access token"
                    };
                    let _ = writeln!(s, "| {} | {what} |", md_cell(u));
                }
            }
        }
        for ep in &m.endpoints {
            if seen.insert(format!("{} {} {}", ep.method, ep.url, ep.purpose)) {
                let _ = writeln!(s, "| {} | {} |", md_cell(&ep.url), md_cell(&ep.purpose));
            }
        }
        // The target half writes: its rows name the method.
        for ep in target.iter().flat_map(|t| &t.endpoints) {
            if seen.insert(format!("{} {} {}", ep.method, ep.url, ep.purpose)) {
                let _ = writeln!(
                    s,
                    "| {} {} | {} (target) |",
                    md_cell(&ep.method),
                    md_cell(&ep.url),
                    md_cell(&ep.purpose)
                );
            }
        }
        let hosts = hosts_with_target(m, target.as_ref());
        let _ = writeln!(s);
        let list: Vec<String> = hosts.hosts.iter().map(|h| format!("`{h}`")).collect();
        if list.is_empty() {
            let _ = writeln!(s, "Hosts to allow: none declared.");
        } else {
            let _ = writeln!(s, "Hosts to allow: {}.", list.join(", "));
        }
        for n in &hosts.notes {
            let _ = writeln!(s);
            let _ = writeln!(s, "Note: {n}");
        }
    }
    s
}

/// The host:port list of one connector, with notes about placeholders.
#[derive(Debug, Default)]
pub struct Hosts {
    /// `host:port`, sorted, unique.
    pub hosts: Vec<String>,
    /// One note per placeholder host.
    pub notes: Vec<String>,
}

/// Split a URL template into `host:port` (the default port of its scheme when none is given).
/// Returns `None` for a template without a `scheme://`.
pub fn host_port(url: &str) -> Option<(String, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        _ => 443,
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            (h.to_string(), p.to_string())
        }
        _ => (authority.to_string(), default_port.to_string()),
    };
    let templated = host.contains('{');
    // Placeholders keep the provider's spelling (`{oktaDomain}`); real host names are case-insensitive.
    let host = if templated {
        host
    } else {
        host.to_ascii_lowercase()
    };
    Some((format!("{host}:{port}"), templated))
}

/// A URL template that starts with a placeholder for the whole base URL (`{base_url}/Users`, as
/// target manifests write it): the placeholder stands for the host.
fn leading_placeholder(url: &str) -> Option<(String, bool)> {
    let end = url.strip_prefix('{')?.find('}')?;
    Some((url[..end + 2].to_string(), true))
}

/// Every host:port a connector's manifest may contact (endpoints and auth flow URLs).
pub fn hosts_of(m: &Manifest) -> Hosts {
    hosts_with_target(m, None)
}

/// [`hosts_of`] plus the endpoints of the connector's target half, when it has one.
pub fn hosts_with_target(m: &Manifest, target: Option<&TargetManifest>) -> Hosts {
    let mut set = BTreeSet::new();
    let mut placeholders = BTreeSet::new();
    let urls = m
        .endpoints
        .iter()
        .map(|e| e.url.as_str())
        .chain(
            m.auth
                .iter()
                .flat_map(|a| [a.token_url.as_deref(), a.authorize_url.as_deref()])
                .flatten(),
        )
        .chain(
            target
                .iter()
                .flat_map(|t| t.endpoints.iter().map(|e| e.url.as_str())),
        );
    for u in urls {
        if let Some((hp, templated)) = host_port(u).or_else(|| leading_placeholder(u)) {
            if templated {
                placeholders.insert(hp.clone());
            }
            set.insert(hp);
        }
    }
    let notes = placeholders
        .into_iter()
        .map(|h| {
            format!(
                "`{h}` contains a placeholder: allow the host (and port, when your URL names one) that your \
                 configuration gives it."
            )
        })
        .collect();
    Hosts {
        hosts: set.into_iter().collect(),
        notes,
    }
}

fn hosts_json(entries: &Selected<'_>) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(e, m)| {
                let h = hosts_with_target(m, target_of(e).as_ref());
                json!({"id": m.id, "name": m.name, "hosts": h.hosts, "notes": h.notes})
            })
            .collect(),
    )
}

fn hosts_table(entries: &Selected<'_>) -> String {
    let mut s = String::new();
    for (e, m) in entries {
        let h = hosts_with_target(m, target_of(e).as_ref());
        let _ = writeln!(s, "{} ({}):", m.id, m.name);
        for host in &h.hosts {
            let _ = writeln!(s, "  {host}");
        }
        for n in &h.notes {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    s
}

/// `connectors endpoints --hosts` with a config: per connection, the host:port of every URL its
/// session contacts (base URLs and token endpoint), from the options as configured. A
/// connection whose options cannot be checked here shows its connector's templates and why.
fn configured_hosts(reg: &Registry, path: &std::path::Path, a: &EndpointsArgs) -> anyhow::Result<u8> {
    let config = match usersync_config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "hint: `usersync config check` lists every problem; without a config file this command \
                 prints each connector's host templates"
            );
            return Ok(crate::wiring::exit::USAGE);
        }
    };
    let mut out = Vec::new();
    // Connections, then targets (a target is reached through a connection of its connector: the
    // same base URLs and token endpoint).
    let targets = config
        .targets
        .iter()
        .map(|t| (format!("target {}", t.name), &t.connection));
    for (label, conn) in config
        .connections
        .iter()
        .map(|c| (c.name.clone(), c))
        .chain(targets)
    {
        if a.id.as_deref().is_some_and(|id| id != conn.connector) {
            continue;
        }
        let Some(connector) = reg.get(&conn.connector) else {
            eprintln!(
                "warning: connection `{}`: {}",
                conn.name,
                crate::wiring::unknown_message(&conn.connector, reg)
            );
            continue;
        };
        let m = connector.manifest();
        let (hosts, notes) = match crate::wiring::check_connection(conn, &config.path, &connector) {
            Ok(crate::wiring::Checked {
                session: Some(session),
                ..
            }) => {
                let plan = session.auth_plan();
                let urls = session
                    .base_urls()
                    .into_iter()
                    .chain(plan.token_url().map(str::to_string));
                let set: BTreeSet<String> = urls.filter_map(|u| Some(host_port(&u)?.0)).collect();
                (set.into_iter().collect::<Vec<_>>(), Vec::new())
            }
            other => {
                let why = match other {
                    Err(issues) => issues
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => "the connector could not open a session".to_string(),
                };
                let h = hosts_of(&m);
                let mut notes = vec![format!(
                    "the configured hosts are unknown ({why}): these are the connector's templates"
                )];
                notes.extend(h.notes);
                (h.hosts, notes)
            }
        };
        out.push((label, m, hosts, notes));
    }
    match a.format {
        ListFormat::Json => {
            let v: Vec<Value> = out
                .iter()
                .map(|(c, m, h, n)| json!({"connection": c, "id": m.id, "name": m.name, "hosts": h, "notes": n}))
                .collect();
            print!("{}", serde_json::to_string_pretty(&v)? + "\n");
        }
        ListFormat::Table => {
            let mut s = String::new();
            for (c, m, h, n) in &out {
                let _ = writeln!(s, "{c} ({}, {}):", m.id, m.name);
                for host in h {
                    let _ = writeln!(s, "  {host}");
                }
                for note in n {
                    let _ = writeln!(s, "  note: {note}");
                }
            }
            let _ = writeln!(s, "(hosts of the connections in {})", config.path.display());
            print!("{s}");
        }
    }
    Ok(0)
}

fn endpoints_table(entries: &Selected<'_>) -> String {
    let mut rows = Vec::new();
    for (entry, m) in entries {
        for e in &m.endpoints {
            rows.push(vec![
                m.id.clone(),
                e.method.clone(),
                e.url.clone(),
                e.operation.to_string(),
            ]);
        }
        for e in target_of(entry).iter().flat_map(|t| &t.endpoints) {
            rows.push(vec![
                m.id.clone(),
                e.method.clone(),
                e.url.clone(),
                format!("target {}", e.operation),
            ]);
        }
    }
    render_table(&["ID", "METHOD", "URL", "OPERATION"], &rows)
}

/// Left-aligned columns separated by two spaces.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut s = String::new();
    let line = |cells: Vec<&str>, s: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}  ", w = widths[i]);
            }
        }
        s.push('\n');
    };
    line(header.to_vec(), &mut s);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_templates() {
        assert_eq!(
            host_port("https://{oktaDomain}/api/v1/users?limit=200"),
            Some(("{oktaDomain}:443".into(), true))
        );
        assert_eq!(
            host_port("https://graph.microsoft.com/{apiVersion}/users"),
            Some(("graph.microsoft.com:443".into(), false))
        );
        assert_eq!(
            host_port("https://kc.example:8443/realms/x"),
            Some(("kc.example:8443".into(), false))
        );
        assert_eq!(host_port("not a url"), None);
        assert_eq!(
            leading_placeholder("{base_url}/Users/{id}"),
            Some(("{base_url}".into(), true))
        );
        assert_eq!(leading_placeholder("https://x.test/{id}"), None);
    }
}
