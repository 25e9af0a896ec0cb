//! What a target should hold: the store's users, groups and memberships of the connections that
//! feed it, scoped by its `required_groups`, mapped to [`TargetUser`]s, memberships flattened.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use usersync_config::{TargetSettings, UserNameSource};
use usersync_model::ManagerRef;
use usersync_sdk::TargetUser;
use usersync_store::{ConnectionState, StoredUser};

/// A user as the target should hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WantedUser {
    /// Stable source key (`connection/provider_id`).
    pub key: String,
    /// The store's username (for messages and `explain`).
    pub username: String,
    /// The account (`manager_app_id` is filled in at push time from `manager_key`).
    pub user: TargetUser,
    /// The manager's source key, when the manager is provisioned too.
    pub manager_key: Option<String>,
    /// Hash of what is pushed (attributes and manager key): unchanged hash, no write.
    pub hash: String,
}

/// A group as the target should hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WantedGroup {
    /// Stable source key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Hash of what is pushed.
    pub hash: String,
}

/// Why a store user is not provisioned (for `explain` and the plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// Source key.
    pub key: String,
    /// Username.
    pub username: String,
    /// Why.
    pub reason: String,
}

/// The desired state of one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesiredTarget {
    /// Users to provision, by key. `user.active` false: keep the account, deactivated
    /// (disabled at the source).
    pub users: BTreeMap<String, WantedUser>,
    /// Groups to provision, by key.
    pub groups: BTreeMap<String, WantedGroup>,
    /// Memberships (group key, user key), transitive (flattened): the target has no nesting.
    pub members: BTreeSet<(String, String)>,
    /// Store users not provisioned, and why.
    pub excluded: Vec<Excluded>,
    /// Active users in scope (the zero-source and shrinking-source gates compare it).
    pub in_scope: u64,
}

/// The stable key of a store object.
pub fn source_key(connection: &str, provider_id: &str) -> String {
    format!("{connection}/{provider_id}")
}

fn hash_of<T: Serialize>(v: &T) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(u: &StoredUser, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    match u.attributes.get(name)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The hash of a group as pushed (its display name).
pub fn group_hash(name: &str) -> String {
    hash_of(&("group", name))
}

/// Build the desired state from the feeding connections' stored state (`(connection, state)`).
pub fn build(settings: &TargetSettings, sources: &[(String, ConnectionState)]) -> DesiredTarget {
    let mut d = DesiredTarget::default();
    let scoped = !settings.required_groups.is_empty();
    // groups in scope, and users who are effective members of one of them
    let mut in_group: BTreeSet<String> = BTreeSet::new();
    for (conn, st) in sources {
        let mut pushed_groups = BTreeSet::new();
        for g in &st.groups {
            if scoped && !settings.required_groups.iter().any(|p| p.matches(&g.name)) {
                continue;
            }
            let key = source_key(conn, &g.provider_id);
            pushed_groups.insert(g.provider_id.clone());
            d.groups.insert(
                key.clone(),
                WantedGroup {
                    key,
                    name: g.name.clone(),
                    hash: group_hash(&g.name),
                },
            );
        }
        for e in &st.effective {
            if pushed_groups.contains(&e.group) {
                in_group.insert(source_key(conn, &e.user));
                d.members
                    .insert((source_key(conn, &e.group), source_key(conn, &e.user)));
            }
        }
    }
    // users
    let mut by_email: BTreeMap<String, String> = BTreeMap::new();
    let mut by_username: BTreeMap<String, String> = BTreeMap::new();
    for (conn, st) in sources {
        for u in &st.users {
            let key = source_key(conn, &u.provider_id);
            if let Some(e) = &u.email {
                by_email.insert(e.to_lowercase(), key.clone());
            }
            by_username.insert(u.username.to_lowercase(), key);
        }
    }
    let mut pending = Vec::new();
    for (conn, st) in sources {
        for u in &st.users {
            let key = source_key(conn, &u.provider_id);
            let exclude = |reason: &str| Excluded {
                key: key.clone(),
                username: u.username.clone(),
                reason: reason.to_string(),
            };
            if scoped && !in_group.contains(&key) {
                d.excluded.push(exclude(
                    "not a member of a group the target's required_groups match",
                ));
                continue;
            }
            let user_name = match settings.mapping.user_name {
                UserNameSource::Username => u.username.clone(),
                UserNameSource::Email => match &u.email {
                    Some(e) => e.clone(),
                    None => {
                        d.excluded.push(exclude(
                            "has no email, and the target's mapping.user_name is email",
                        ));
                        continue;
                    }
                },
            };
            if u.active {
                d.in_scope += 1;
            }
            let manager_key = if settings.mapping.manager {
                match &u.manager {
                    Some(ManagerRef::Id(id)) => Some(source_key(conn, id)),
                    Some(ManagerRef::Email(e)) => by_email.get(&e.to_lowercase()).cloned(),
                    Some(ManagerRef::Username(n)) => by_username.get(&n.to_lowercase()).cloned(),
                    _ => None,
                }
            } else {
                None
            };
            let user = TargetUser {
                user_name,
                display_name: u.display_name.clone(),
                given_name: u.given_name.clone(),
                family_name: u.family_name.clone(),
                email: u.email.clone(),
                active: u.active,
                employee_number: attribute(u, &settings.mapping.employee_number),
                department: attribute(u, &settings.mapping.department),
                manager_app_id: None,
            };
            pending.push(WantedUser {
                key,
                username: u.username.clone(),
                user,
                manager_key,
                hash: String::new(),
            });
        }
    }
    for mut w in pending {
        // a manager who is not provisioned is not written
        if w.manager_key.as_ref().is_some_and(|m| {
            !sources
                .iter()
                .any(|(c, st)| st.users.iter().any(|u| &source_key(c, &u.provider_id) == m))
        }) {
            w.manager_key = None;
        }
        w.hash = hash_of(&(&w.user, &w.manager_key));
        d.users.insert(w.key.clone(), w);
    }
    // managers out of scope are not written either
    let keys: BTreeSet<String> = d.users.keys().cloned().collect();
    for w in d.users.values_mut() {
        if w.manager_key.as_ref().is_some_and(|m| !keys.contains(m)) {
            w.manager_key = None;
            w.hash = hash_of(&(&w.user, &w.manager_key));
        }
    }
    // memberships only of provisioned, active users
    d.members
        .retain(|(_, u)| d.users.get(u).is_some_and(|w| w.user.active));
    d
}
