//! `usersync users ...`: users in the directory store.

use serde::Serialize;
use usersync_model::ManagerRef;
use usersync_store::{username_key, ConnectionState, Member, Store, StoredUser};

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync users` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCmd {
    /// List users, filtered, as a table fitted to the terminal or as JSON.
    #[command(after_help = "Examples:
  usersync users list --status inactive
  usersync users list --search smith --columns username,email,name
  usersync users list -c okta --group Engineering --all
  usersync users list --format json | jq '.[].email'")]
    List {
        /// Only users of this connection (repeatable).
        #[arg(long = "connection", short = 'c', value_name = "NAME")]
        connections: Vec<String>,
        /// Only users whose username, email, display name or provider id contains TEXT
        /// (case-insensitive).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only active or only inactive users.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Only members of this group, directly or through nested groups (local name, provider
        /// name, provider id or path).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Only inactive users (same as `--status inactive`).
        #[arg(long, conflicts_with_all = ["active", "status"], hide = true)]
        inactive: bool,
        /// Only active users (same as `--status active`).
        #[arg(long, conflicts_with = "status", hide = true)]
        active: bool,
        /// Table columns, comma-separated, in order.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = Column::DEFAULT)]
        columns: Vec<Column>,
        #[command(flatten)]
        limit: wiring::LimitArgs,
        /// Output format (JSON: every matching user, all fields).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one user: attributes, status, manager, groups (direct and inherited, with the path).
    #[command(after_help = "Examples:
  usersync users show alice@example.com
  usersync users show alice -c okta --format json")]
    Show {
        /// Username, email or provider id.
        user: String,
        /// The connection, when the name matches users of several.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `--status` of `users list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Active users.
    Active,
    /// Inactive (suspended, deprovisioned, disabled) users.
    Inactive,
}

/// A column of `users list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Column {
    /// Username.
    Username,
    /// Connection name.
    Connection,
    /// active / inactive.
    State,
    /// Email address.
    Email,
    /// Display name.
    Name,
    /// The provider's id of the user.
    ProviderId,
}

impl Column {
    const DEFAULT: [Column; 6] = [
        Column::Username,
        Column::Connection,
        Column::State,
        Column::Email,
        Column::Name,
        Column::ProviderId,
    ];

    fn header(self) -> &'static str {
        match self {
            Column::Username => "USERNAME",
            Column::Connection => "CONNECTION",
            Column::State => "STATE",
            Column::Email => "EMAIL",
            Column::Name => "NAME",
            Column::ProviderId => "PROVIDER ID",
        }
    }

    fn cell(self, u: &StoredUser) -> String {
        match self {
            Column::Username => u.username.clone(),
            Column::Connection => u.connection.clone(),
            Column::State => if u.active { "active" } else { "inactive" }.into(),
            Column::Email => u.email.clone().unwrap_or_default(),
            Column::Name => u.display_name.clone().unwrap_or_default(),
            Column::ProviderId => u.provider_id.clone(),
        }
    }
}

/// One group of a user, for `users show`.
#[derive(Debug, Serialize)]
pub struct UserGroup {
    /// Group provider id.
    pub group_id: String,
    /// Local group name.
    pub name: String,
    /// Direct member (otherwise through nesting).
    pub direct: bool,
    /// The chain of groups granting it (provider names).
    pub path: Vec<String>,
}

#[derive(Serialize)]
struct ShowUser {
    #[serde(flatten)]
    user: StoredUser,
    groups: Vec<UserGroup>,
    photo: Option<serde_json::Value>,
    /// The manager as a person reads it (table output only; JSON keeps `manager` as stored).
    #[serde(skip)]
    manager: Option<String>,
}

/// The user's manager by name: `Jane Doe (jane, jane@example.com)` when the store holds the
/// manager, else the stored reference and why it names nobody here.
fn manager_line(all: &[StoredUser], u: &StoredUser) -> Option<String> {
    let m = u.manager.as_ref()?;
    let same = all.iter().filter(|x| x.connection == u.connection);
    let (found, raw): (Vec<&StoredUser>, &str) = match m {
        ManagerRef::Id(id) => (same.filter(|x| &x.provider_id == id).collect(), id),
        ManagerRef::Email(e) => (
            same.filter(|x| {
                x.email
                    .as_deref()
                    .is_some_and(|v| username_key(v) == username_key(e))
            })
            .collect(),
            e,
        ),
        ManagerRef::Username(n) => (
            same.filter(|x| username_key(&x.username) == username_key(n))
                .collect(),
            n,
        ),
        ManagerRef::Lookup { value, .. } => (Vec::new(), value),
    };
    Some(match found.as_slice() {
        [x] => {
            let mut s = x.display_name.clone().unwrap_or_else(|| x.username.clone());
            let mut also = vec![x.username.clone()];
            also.extend(x.email.clone());
            also.retain(|v| *v != s);
            also.dedup();
            if !also.is_empty() {
                s.push_str(&format!(" ({})", also.join(", ")));
            }
            s
        }
        _ => format!(
            "`{raw}` (not a user of connection `{}` in the store)",
            u.connection
        ),
    })
}

/// The (connection, provider id) of every user in group `who` (directly or through nested
/// groups) of the given connections (all when empty). `Err(code)` when no group, or several
/// groups of different connections, match.
fn group_members(
    store: &dyn Store,
    who: &str,
    connections: &[String],
) -> anyhow::Result<Result<std::collections::BTreeSet<(String, String)>, u8>> {
    let lower = who.to_lowercase();
    let groups: Vec<_> = store
        .groups(None)?
        .into_iter()
        .filter(|g| {
            connections.is_empty() || connections.iter().any(|c| c.eq_ignore_ascii_case(&g.connection))
        })
        .filter(|g| {
            g.name.to_lowercase() == lower
                || g.source_name.to_lowercase() == lower
                || g.provider_id == who
                || g.attributes
                    .get("path")
                    .and_then(|p| p.as_str())
                    .is_some_and(|p| p.to_lowercase() == lower)
        })
        .collect();
    if groups.is_empty() {
        eprintln!("error: no group `{who}` in the store (see `usersync groups list`)");
        return Ok(Err(exit::FAILURE));
    }
    let mut out = std::collections::BTreeSet::new();
    let mut states = std::collections::BTreeMap::new();
    for g in &groups {
        if !states.contains_key(&g.connection) {
            states.insert(g.connection.clone(), store.state(&g.connection)?);
        }
        let st = &states[&g.connection];
        out.extend(
            st.effective
                .iter()
                .filter(|e| e.group == g.provider_id)
                .map(|e| (g.connection.clone(), e.user.clone())),
        );
        out.extend(
            st.memberships
                .iter()
                .filter(|m| m.group == g.provider_id)
                .filter_map(|m| match &m.member {
                    Member::User(u) => Some((g.connection.clone(), u.clone())),
                    Member::Group(_) => None,
                }),
        );
    }
    Ok(Ok(out))
}

/// Find users by username (NFC, case-insensitive), email or provider id.
pub fn find_users(store: &dyn Store, who: &str, connection: Option<&str>) -> anyhow::Result<Vec<StoredUser>> {
    let all = store.users(connection)?;
    let key = username_key(who);
    let by_name: Vec<StoredUser> = all
        .iter()
        .filter(|u| username_key(&u.username) == key)
        .cloned()
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let by_email: Vec<StoredUser> = all
        .iter()
        .filter(|u| u.email.as_deref().is_some_and(|e| username_key(e) == key))
        .cloned()
        .collect();
    if !by_email.is_empty() {
        return Ok(by_email);
    }
    Ok(all.into_iter().filter(|u| u.provider_id == who).collect())
}

/// Run the subcommand; returns the process exit code.
pub async fn run(cmd: UsersCmd, global: &GlobalArgs) -> anyhow::Result<u8> {
    let config = or_exit!(wiring::load_config(global));
    let store = or_exit!(wiring::open_existing_store(&config));
    match cmd {
        UsersCmd::List {
            connections,
            search,
            status,
            group,
            inactive,
            active,
            columns,
            limit,
            format,
        } => {
            let status = match (status, inactive, active) {
                (Some(s), _, _) => Some(s),
                (None, true, _) => Some(Status::Inactive),
                (None, _, true) => Some(Status::Active),
                _ => None,
            };
            let users = or_exit!(select_users(
                &*store,
                &connections,
                status,
                search.as_deref(),
                group.as_deref()
            )?);
            match format {
                Format::Json => wiring::print_json(&users)?,
                Format::Table => print_users(&users, &columns, limit.rows()),
            }
            Ok(exit::OK)
        }
        UsersCmd::Show {
            user,
            connection,
            format,
        } => show(&*store, &user, connection.as_deref(), format),
    }
}

/// The users `users list` shows: of the given connections (all when empty), with the status,
/// matching the search text, members of the group. `Err(code)` when the group is not found.
fn select_users(
    store: &dyn Store,
    connections: &[String],
    status: Option<Status>,
    search: Option<&str>,
    group: Option<&str>,
) -> anyhow::Result<Result<Vec<StoredUser>, u8>> {
    let mut users: Vec<StoredUser> = store
        .users(None)?
        .into_iter()
        .filter(|u| {
            connections.is_empty() || connections.iter().any(|c| c.eq_ignore_ascii_case(&u.connection))
        })
        .filter(|u| match status {
            Some(Status::Active) => u.active,
            Some(Status::Inactive) => !u.active,
            None => true,
        })
        .collect();
    if let Some(text) = search {
        let needle = text.to_lowercase();
        let has = |v: &str| v.to_lowercase().contains(&needle);
        users.retain(|u| {
            has(&u.username)
                || u.email.as_deref().is_some_and(has)
                || u.display_name.as_deref().is_some_and(has)
                || has(&u.provider_id)
        });
    }
    if let Some(g) = group {
        let members = match group_members(store, g, connections)? {
            Ok(members) => members,
            Err(code) => return Ok(Err(code)),
        };
        users.retain(|u| members.contains(&(u.connection.clone(), u.provider_id.clone())));
    }
    Ok(Ok(users))
}

/// The `users list` table: at most `rows` rows, then how many more and the count.
fn print_users(users: &[StoredUser], columns: &[Column], rows: usize) {
    let shown = users.len().min(rows);
    let rows: Vec<Vec<String>> = users[..shown]
        .iter()
        .map(|u| columns.iter().map(|c| c.cell(u)).collect())
        .collect();
    let headers: Vec<&str> = columns.iter().map(|c| c.header()).collect();
    wiring::print_table(&headers, &rows);
    if let Some(more) = wiring::more_line(shown, users.len()) {
        outln!("{more}");
    }
    outln!("{} user(s)", users.len());
}

/// `users show`: one user with its groups, photo and manager.
fn show(store: &dyn Store, user: &str, connection: Option<&str>, format: Format) -> anyhow::Result<u8> {
    let found = find_users(store, user, connection)?;
    let u = match found.as_slice() {
        [] => {
            eprintln!("error: no user `{user}` in the store (searched usernames, emails, provider ids)");
            return Ok(exit::FAILURE);
        }
        [u] => u.clone(),
        many => {
            eprintln!("error: `{user}` matches several users; add --connection:");
            for u in many {
                eprintln!("  {} ({}, {})", u.username, u.connection, u.provider_id);
            }
            return Ok(exit::USAGE);
        }
    };
    let state = store.state(&u.connection)?;
    let groups = groups_of(&state, &u.provider_id);
    let photo = store
        .photo(&u.connection, &u.provider_id)?
        .map(|p| serde_json::json!({"content_type": p.content_type, "sha256": p.sha256, "bytes_stored": p.bytes.is_some()}));
    let manager = manager_line(&store.users(Some(&u.connection))?, &u);
    let show = ShowUser {
        user: u,
        groups,
        photo,
        manager,
    };
    match format {
        Format::Json => wiring::print_json(&show)?,
        Format::Table => print_user(&show),
    }
    Ok(exit::OK)
}

/// The user's groups, direct first, by name; each nested one with its chain of groups.
fn groups_of(state: &ConnectionState, user_id: &str) -> Vec<UserGroup> {
    let names: std::collections::BTreeMap<&str, &str> = state
        .groups
        .iter()
        .map(|g| (g.provider_id.as_str(), g.name.as_str()))
        .collect();
    let direct: std::collections::BTreeSet<&str> = state
        .memberships
        .iter()
        .filter(|m| m.member == Member::User(user_id.to_string()))
        .map(|m| m.group.as_str())
        .collect();
    let mut groups: Vec<UserGroup> = state
        .effective
        .iter()
        .filter(|e| e.user == user_id)
        .map(|e| UserGroup {
            group_id: e.group.clone(),
            name: names
                .get(e.group.as_str())
                .copied()
                .unwrap_or(&e.group)
                .to_string(),
            direct: direct.contains(e.group.as_str()),
            path: e.path.clone(),
        })
        .collect();
    for g in &direct {
        if !groups.iter().any(|x| x.group_id == *g) {
            groups.push(UserGroup {
                group_id: g.to_string(),
                name: names.get(g).copied().unwrap_or(g).to_string(),
                direct: true,
                path: vec![],
            });
        }
    }
    groups.sort_by_key(|g| (!g.direct, g.name.to_lowercase()));
    groups
}

fn print_user(s: &ShowUser) {
    let u = &s.user;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    outln!("username:      {}", u.username);
    outln!("connection:    {}", u.connection);
    outln!("provider id:   {}", u.provider_id);
    outln!(
        "state:         {}{}",
        if u.active { "active" } else { "inactive" },
        u.inactive_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    outln!("source status: {:?} ({})", u.state, u.status_raw);
    outln!("email:         {}", opt(&u.email));
    outln!("display name:  {}", opt(&u.display_name));
    outln!("given name:    {}", opt(&u.given_name));
    outln!("family name:   {}", opt(&u.family_name));
    if let Some(m) = &s.manager {
        outln!("manager:       {m}");
    }
    if let Some(p) = &s.photo {
        outln!("photo:         {p}");
    }
    if !u.attributes.is_empty() {
        outln!("attributes:");
        for (k, v) in &u.attributes {
            outln!("  {k} = {v}");
        }
    }
    outln!("groups:");
    if s.groups.is_empty() {
        outln!("  (none)");
    }
    for g in &s.groups {
        if g.direct {
            outln!("  {} (direct)", g.name);
        } else {
            outln!("  {} (via {})", g.name, g.path.join(" -> "));
        }
    }
}
