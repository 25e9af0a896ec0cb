//! `usersync users ...`: users in the directory store.

use serde::Serialize;
use usersync_store::{username_key, Member, Store, StoredUser};

use crate::or_exit;
use crate::wiring::{self, exit, outln, Format};
use crate::GlobalArgs;

/// `usersync users` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCmd {
    /// List users.
    List {
        /// Only users of this connection.
        #[arg(long, short = 'c', value_name = "NAME")]
        connection: Option<String>,
        /// Only inactive users.
        #[arg(long, conflicts_with = "active")]
        inactive: bool,
        /// Only active users.
        #[arg(long)]
        active: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one user: attributes, status, groups (direct and inherited, with the path).
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
            connection,
            inactive,
            active,
            format,
        } => {
            let users: Vec<StoredUser> = store
                .users(connection.as_deref())?
                .into_iter()
                .filter(|u| (!inactive || !u.active) && (!active || u.active))
                .collect();
            match format {
                Format::Json => wiring::print_json(&users)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = users
                        .iter()
                        .map(|u| {
                            vec![
                                u.username.clone(),
                                u.connection.clone(),
                                if u.active {
                                    "active".into()
                                } else {
                                    "inactive".into()
                                },
                                u.email.clone().unwrap_or_default(),
                                u.display_name.clone().unwrap_or_default(),
                                u.provider_id.clone(),
                            ]
                        })
                        .collect();
                    wiring::print_table(
                        &["USERNAME", "CONNECTION", "STATE", "EMAIL", "NAME", "PROVIDER ID"],
                        &rows,
                    );
                    outln!("{} user(s)", rows.len());
                }
            }
            Ok(exit::OK)
        }
        UsersCmd::Show {
            user,
            connection,
            format,
        } => {
            let found = find_users(&store, &user, connection.as_deref())?;
            let u = match found.as_slice() {
                [] => {
                    eprintln!(
                        "error: no user `{user}` in the store (searched usernames, emails, provider ids)"
                    );
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
            let names: std::collections::BTreeMap<&str, &str> = state
                .groups
                .iter()
                .map(|g| (g.provider_id.as_str(), g.name.as_str()))
                .collect();
            let direct: std::collections::BTreeSet<&str> = state
                .memberships
                .iter()
                .filter(|m| m.member == Member::User(u.provider_id.clone()))
                .map(|m| m.group.as_str())
                .collect();
            let mut groups: Vec<UserGroup> = state
                .effective
                .iter()
                .filter(|e| e.user == u.provider_id)
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
            let photo = store
                .photo(&u.connection, &u.provider_id)?
                .map(|p| serde_json::json!({"content_type": p.content_type, "sha256": p.sha256, "bytes_stored": p.bytes.is_some()}));
            let show = ShowUser {
                user: u,
                groups,
                photo,
            };
            match format {
                Format::Json => wiring::print_json(&show)?,
                Format::Table => print_user(&show),
            }
            Ok(exit::OK)
        }
    }
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
    if let Some(m) = &u.manager {
        outln!("manager:       {}", serde_json::to_string(m).unwrap_or_default());
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
