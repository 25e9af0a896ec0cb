//! `usersync groups ...`: groups in the directory store, with direct and transitive members.

use std::collections::BTreeMap;

use serde::Serialize;
use usersync_store::{ConnectionState, Member, Store, StoredGroup};

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCmd {
    /// List groups with member counts, as a table fitted to the terminal or as JSON.
    #[command(after_help = "Examples:
  usersync groups list --search eng
  usersync groups list -c okta -c google --all
  usersync groups list --format json | jq '.[] | {name, transitive_users}'")]
    List {
        /// Only groups of this connection (repeatable).
        #[arg(long = "connection", short = 'c', value_name = "NAME")]
        connections: Vec<String>,
        /// Only groups whose name, path, provider name or provider id contains TEXT
        /// (case-insensitive).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        #[command(flatten)]
        limit: wiring::LimitArgs,
        /// Output format (JSON: every matching group, all fields).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one group: its direct members (users and nested groups), then the users it has only
    /// through nested groups, each with the chain of groups.
    #[command(after_help = "Examples:
  usersync groups show Engineering
  usersync groups show /Eng/Members -c keycloak
  usersync groups show Engineering --all --format json")]
    Show {
        /// Local name, provider name, provider id, or full path (`/Eng/Members`, for providers with
        /// group hierarchies such as Keycloak).
        group: String,
        /// The connection, when the name matches groups of several.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        #[command(flatten)]
        limit: wiring::LimitArgs,
        /// Output format (JSON: `direct_members` and `transitive_members`, every user
        /// direct or nested, complete).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// The group's full path in the provider's hierarchy (Keycloak `/Eng/Members`), stored as the
/// `path` attribute.
fn path_of(g: &StoredGroup) -> Option<&str> {
    g.attributes.get("path").and_then(|p| p.as_str())
}

#[derive(Serialize)]
struct ListedGroup {
    #[serde(flatten)]
    group: StoredGroup,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    direct_members: usize,
    transitive_users: usize,
}

#[derive(Serialize)]
struct MemberOut {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path: Vec<String>,
}

#[derive(Serialize)]
struct ShowGroup {
    #[serde(flatten)]
    group: StoredGroup,
    direct_members: Vec<MemberOut>,
    transitive_members: Vec<MemberOut>,
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: GroupsCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config(global));
    let store = or_exit!(wiring::open_existing_store(&config));
    match cmd {
        GroupsCmd::List {
            connections,
            search,
            limit,
            format,
        } => list(&*store, &connections, search.as_deref(), &limit, format),
        GroupsCmd::Show {
            group,
            connection,
            limit,
            format,
        } => show(&*store, &group, connection.as_deref(), &limit, format),
    }
}

/// `groups list`: the matching groups with their member counts.
fn list(
    store: &dyn Store,
    connections: &[String],
    search: Option<&str>,
    limit: &wiring::LimitArgs,
    format: Format,
) -> anyhow::Result<u8> {
    let needle = search.map(str::to_lowercase);
    let groups: Vec<StoredGroup> = store
        .groups(None)?
        .into_iter()
        .filter(|g| {
            connections.is_empty() || connections.iter().any(|c| c.eq_ignore_ascii_case(&g.connection))
        })
        .filter(|g| {
            needle.as_deref().is_none_or(|n| {
                [
                    g.name.as_str(),
                    g.source_name.as_str(),
                    g.provider_id.as_str(),
                    path_of(g).unwrap_or(""),
                ]
                .iter()
                .any(|v| v.to_lowercase().contains(n))
            })
        })
        .collect();
    let mut states = BTreeMap::new();
    let mut out = Vec::new();
    for g in groups {
        if !states.contains_key(&g.connection) {
            states.insert(g.connection.clone(), store.state(&g.connection)?);
        }
        let st = &states[&g.connection];
        let direct = st.memberships.iter().filter(|m| m.group == g.provider_id).count();
        let transitive = st.effective.iter().filter(|e| e.group == g.provider_id).count();
        out.push(ListedGroup {
            path: path_of(&g).map(String::from),
            group: g,
            direct_members: direct,
            transitive_users: transitive,
        });
    }
    match format {
        Format::Json => wiring::print_json(&out)?,
        Format::Table => print_list(&out, limit.rows()),
    }
    Ok(exit::OK)
}

/// The `groups list` table: at most `rows` rows, then how many more and the count.
fn print_list(out: &[ListedGroup], rows: usize) {
    let shown = out.len().min(rows);
    let rows: Vec<Vec<String>> = out[..shown]
        .iter()
        .map(|g| {
            vec![
                g.group.name.clone(),
                g.path.clone().unwrap_or_else(|| "-".into()),
                g.group.connection.clone(),
                format!("{:?}", g.group.kind).to_lowercase(),
                g.direct_members.to_string(),
                g.transitive_users.to_string(),
                g.group.provider_id.clone(),
            ]
        })
        .collect();
    wiring::print_table(
        &[
            "NAME",
            "PATH",
            "CONNECTION",
            "KIND",
            "DIRECT MEMBERS",
            "ALL USERS",
            "PROVIDER ID",
        ],
        &rows,
    );
    if let Some(more) = wiring::more_line(shown, out.len()) {
        outln!("{more}");
    }
    outln!("{} group(s)", out.len());
}

/// `groups show`: one group with its direct and transitive members.
fn show(
    store: &dyn Store,
    group: &str,
    connection: Option<&str>,
    limit: &wiring::LimitArgs,
    format: Format,
) -> anyhow::Result<u8> {
    let all = store.groups(connection)?;
    let g = or_exit!(find_group(&all, group)).clone();
    let st = store.state(&g.connection)?;
    let (direct_members, transitive_members) = members_of(&st, &g.provider_id);
    let show = ShowGroup {
        group: g,
        direct_members,
        transitive_members,
    };
    match format {
        Format::Json => wiring::print_json(&show)?,
        Format::Table => print_show(&show, limit.rows()),
    }
    Ok(exit::OK)
}

/// The one group `group` names: a full path names one group of a hierarchy; then the local name,
/// the provider's name or id. None or several: says so and returns the exit code.
fn find_group<'a>(all: &'a [StoredGroup], group: &str) -> Result<&'a StoredGroup, u8> {
    let lower = group.to_lowercase();
    let by_path = |g: &&StoredGroup| path_of(g).is_some_and(|p| p.to_lowercase() == lower);
    let mut found: Vec<&StoredGroup> = if group.starts_with('/') {
        all.iter().filter(by_path).collect()
    } else {
        Vec::new()
    };
    if found.is_empty() {
        found = all.iter().filter(|g| g.name.to_lowercase() == lower).collect();
    }
    if found.is_empty() {
        found = all
            .iter()
            .filter(|g| g.source_name.to_lowercase() == lower || g.provider_id == group)
            .collect();
    }
    match found.as_slice() {
        [] => {
            eprintln!("error: no group `{group}` in the store");
            Err(exit::FAILURE)
        }
        [g] => Ok(g),
        many => {
            eprintln!(
                "error: `{group}` matches {} groups; name one by its path or provider id \
                 (or add --connection when they come from different connections):",
                many.len()
            );
            for g in many {
                match path_of(g) {
                    Some(path) => eprintln!(
                        "  {path}  (connection {}, provider id {}): usersync groups show {path} --connection {}",
                        g.connection, g.provider_id, g.connection
                    ),
                    None => eprintln!(
                        "  {}  (connection {}, provider id {}): usersync groups show {} --connection {}",
                        g.name, g.connection, g.provider_id, g.provider_id, g.connection
                    ),
                }
            }
            Err(exit::USAGE)
        }
    }
}

/// The group's direct members (users, then nested groups, by name) and every user it has,
/// directly or through nested groups (by name, with the chain of groups).
fn members_of(st: &ConnectionState, group_id: &str) -> (Vec<MemberOut>, Vec<MemberOut>) {
    let users: BTreeMap<&str, (&str, bool)> = st
        .users
        .iter()
        .map(|u| (u.provider_id.as_str(), (u.username.as_str(), u.active)))
        .collect();
    let groups: BTreeMap<&str, &str> = st
        .groups
        .iter()
        .map(|x| (x.provider_id.as_str(), x.name.as_str()))
        .collect();
    let mut direct: Vec<MemberOut> = st
        .memberships
        .iter()
        .filter(|m| m.group == group_id)
        .map(|m| match &m.member {
            Member::User(u) => MemberOut {
                kind: "user",
                id: u.clone(),
                name: users.get(u.as_str()).map(|x| x.0).unwrap_or(u).to_string(),
                active: users.get(u.as_str()).map(|x| x.1),
                path: vec![],
            },
            Member::Group(c) => MemberOut {
                kind: "group",
                id: c.clone(),
                name: groups.get(c.as_str()).copied().unwrap_or(c).to_string(),
                active: None,
                path: vec![],
            },
        })
        .collect();
    direct.sort_by(|a, b| (a.kind, a.name.to_lowercase()).cmp(&(b.kind, b.name.to_lowercase())));
    let mut transitive: Vec<MemberOut> = st
        .effective
        .iter()
        .filter(|e| e.group == group_id)
        .map(|e| MemberOut {
            kind: "user",
            id: e.user.clone(),
            name: users
                .get(e.user.as_str())
                .map(|x| x.0)
                .unwrap_or(&e.user)
                .to_string(),
            active: users.get(e.user.as_str()).map(|x| x.1),
            path: e.path.clone(),
        })
        .collect();
    transitive.sort_by_key(|m| m.name.to_lowercase());
    (direct, transitive)
}

/// The `groups show` text: the group, at most `rows` direct members, then at most `rows` users
/// it has only through nested groups.
fn print_show(show: &ShowGroup, rows: usize) {
    let g = &show.group;
    outln!("group:       {}", g.name);
    if let Some(path) = path_of(g) {
        outln!("path:        {path}");
    }
    outln!("connection:  {}", g.connection);
    outln!("provider id: {}", g.provider_id);
    outln!("source name: {}", g.source_name);
    outln!("kind:        {:?}", g.kind);
    if let Some(d) = &g.description {
        outln!("description: {d}");
    }
    outln!("direct members ({}):", show.direct_members.len());
    for m in show.direct_members.iter().take(rows) {
        let state = match m.active {
            Some(false) => " (inactive)",
            _ => "",
        };
        outln!("  {} {}{state}", m.kind, m.name);
    }
    if let Some(more) = wiring::more_line(rows.min(show.direct_members.len()), show.direct_members.len()) {
        outln!("  {more}");
    }
    // The direct users were listed above: here only the users the group has through nested
    // groups.
    let direct_users: std::collections::BTreeSet<&str> = show
        .direct_members
        .iter()
        .filter(|m| m.kind == "user")
        .map(|m| m.id.as_str())
        .collect();
    let nested: Vec<&MemberOut> = show
        .transitive_members
        .iter()
        .filter(|m| !direct_users.contains(m.id.as_str()))
        .collect();
    outln!(
        "users through nested groups only ({}; {} users in all):",
        nested.len(),
        show.transitive_members.len()
    );
    for m in nested.iter().take(rows) {
        let state = if m.active == Some(false) {
            " (inactive)"
        } else {
            ""
        };
        if m.path.len() > 1 {
            outln!("  {}{state} via {}", m.name, m.path.join(" -> "));
        } else {
            outln!("  {}{state}", m.name);
        }
    }
    if let Some(more) = wiring::more_line(rows.min(nested.len()), nested.len()) {
        outln!("  {more}");
    }
}
