//! Apply the policy to a snapshot: who is in scope and why, the local records wanted, and the
//! memberships (direct and effective) among them. Pure: no store, no network.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use usersync_config::{PhotoMode, Policy, UserRemoval};
use usersync_model::{MemberRef, User};
use usersync_store::{Member, StoredGroup, StoredMembership, StoredPhoto, StoredUser};

use crate::closure::Graph;
use crate::fetch::{Snapshot, TransitiveSource};

/// Why a user is in or out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// In scope (subject to sync) or not.
    pub in_scope: bool,
    /// Whether the local account should be active.
    pub active: bool,
    /// The rule that decided, in words.
    pub rule: String,
    /// The group chain that granted scope (provider names), when a required group decided.
    pub path: Vec<String>,
    /// What the policy does with the user: `sync`, `deactivate`, `delete` or `keep`.
    pub action: String,
}

/// What the policy wants for a user present at the source.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The local record should look like this. `create`: create it when missing (false for
    /// users who are inactive or out of scope: they are only kept up to date if they exist).
    Put {
        /// The wanted record.
        user: Box<StoredUser>,
        /// Create when missing.
        create: bool,
        /// Keep the stored manager (the manager query failed).
        keep_manager: bool,
    },
    /// Delete the local record, if any.
    Delete {
        /// Why.
        reason: String,
    },
    /// Leave the local record as it is.
    Keep,
}

/// What to do with a user's photo.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoTarget {
    /// Photos are off or the query failed: leave the stored photo as it is.
    Keep,
    /// Set (or remove, with `None`) the photo.
    Set(Option<StoredPhoto>),
}

/// The wanted state of one connection.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Per source user (provider id).
    pub users: BTreeMap<String, Target>,
    /// Scope decisions per source user.
    pub decisions: BTreeMap<String, Decision>,
    /// Groups to have (selected by the filters), by provider id.
    pub groups: BTreeMap<String, StoredGroup>,
    /// Direct memberships among wanted groups and users.
    pub memberships: BTreeSet<StoredMembership>,
    /// Effective memberships among wanted groups and users: (group, user) -> path of names.
    pub effective: BTreeMap<(String, String), Vec<String>>,
    /// Photos per user.
    pub photos: BTreeMap<String, PhotoTarget>,
    /// Warnings (cycles, name collisions after mapping).
    pub warnings: Vec<String>,
}

fn source_value(u: &User, source: &str) -> Option<serde_json::Value> {
    let s = |v: &Option<String>| v.clone().map(serde_json::Value::String);
    match source {
        "id" => Some(u.id.clone().into()),
        "username" => Some(u.username.clone().into()),
        "email" => s(&u.email),
        "display_name" => s(&u.display_name),
        "given_name" => s(&u.given_name),
        "family_name" => s(&u.family_name),
        "status" => Some(u.status.raw.clone().into()),
        other => u
            .attributes
            .get(other.strip_prefix("attributes.").unwrap_or(other))
            .cloned(),
    }
    .filter(|v| !v.is_null())
}

/// Build the wanted state from a snapshot and a policy.
pub fn build(snap: &Snapshot, policy: &Policy, connection: &str) -> Desired {
    let mut d = Desired::default();
    let name_of = |gid: &str| {
        snap.groups
            .get(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    };

    // direct edges and the closure
    let mut graph = Graph::default();
    for m in &snap.direct {
        match &m.member {
            MemberRef::User(u) => graph.add_user(&m.group_id, u),
            MemberRef::Group(c) => graph.add_group(&m.group_id, c),
            MemberRef::AllUsers => {
                for u in snap.users.keys() {
                    graph.add_user(&m.group_id, u);
                }
            }
        }
    }
    for cycle in graph.cycles() {
        let names: Vec<String> = cycle.iter().map(|g| name_of(g)).collect();
        d.warnings
            .push(format!("nested group cycle: {}", names.join(" -> ")));
    }
    let mut effective: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for ((user, group), path) in graph.effective() {
        effective.insert((group, user), path.iter().map(|g| name_of(g)).collect());
    }
    if snap.transitive == Some(TransitiveSource::ServerSide) {
        for (group, user) in &snap.server_transitive {
            effective
                .entry((group.clone(), user.clone()))
                .or_insert_with(|| vec!["*".to_string(), name_of(group)]);
        }
    }
    let direct_of_user: BTreeMap<&str, BTreeSet<&str>> = {
        let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (g, users) in &graph.user_members {
            for u in users {
                m.entry(u.as_str()).or_default().insert(g.as_str());
            }
        }
        m
    };

    let mut eff_by_user: BTreeMap<&str, Vec<(&str, &Vec<String>)>> = BTreeMap::new();
    for ((g, u), path) in &effective {
        eff_by_user
            .entry(u.as_str())
            .or_default()
            .push((g.as_str(), path));
    }

    // groups
    let mut local_names: BTreeMap<String, String> = BTreeMap::new();
    for g in snap.groups.values() {
        if !policy.group_selected(&g.name) {
            continue;
        }
        let name = policy.group_names.apply(&g.name);
        if let Some(other) = local_names.insert(name.to_lowercase(), g.id.clone()) {
            d.warnings.push(format!(
                "groups `{}` and `{}` both map to the local name `{name}`",
                name_of(&other),
                g.name
            ));
        }
        d.groups.insert(
            g.id.clone(),
            StoredGroup {
                connection: connection.to_string(),
                provider_id: g.id.clone(),
                name,
                source_name: g.name.clone(),
                kind: g.kind,
                description: g.description.clone(),
                attributes: g.attributes.clone(),
            },
        );
    }

    // scope and users
    let required_match = |gid: &str| {
        let g = snap.groups.get(gid);
        policy
            .required_groups
            .iter()
            .find(|p| p.matches(gid) || g.is_some_and(|g| p.matches(&g.name)))
    };
    for u in snap.users.values() {
        let (in_scope, rule, path) = if policy.required_groups.is_empty() {
            (
                true,
                "no required_groups are configured: every user is in scope".to_string(),
                vec![],
            )
        } else {
            let mut best: Option<(Vec<String>, String)> = None;
            if policy.transitive {
                for (g, path) in eff_by_user.get(u.id.as_str()).into_iter().flatten() {
                    if let Some(p) = required_match(g) {
                        if best.as_ref().is_none_or(|(bp, _)| path.len() < bp.len()) {
                            best = Some(((*path).clone(), p.to_string()));
                        }
                    }
                }
            } else {
                for g in direct_of_user.get(u.id.as_str()).into_iter().flatten() {
                    if let Some(p) = required_match(g) {
                        best = Some((vec![name_of(g)], p.to_string()));
                        break;
                    }
                }
            }
            match best {
                Some((path, pattern)) => {
                    let how = if path.len() > 1 {
                        "through nested groups"
                    } else {
                        "directly"
                    };
                    (
                        true,
                        format!(
                            "member of required group `{}` {how} (pattern `{pattern}`)",
                            path.last().cloned().unwrap_or_default()
                        ),
                        path,
                    )
                }
                None => {
                    let pats: Vec<&str> = policy.required_groups.iter().map(|p| p.as_str()).collect();
                    let scope = if policy.transitive {
                        "directly or through nesting"
                    } else {
                        "directly"
                    };
                    (
                        false,
                        format!(
                            "not a member ({scope}) of any required group ({})",
                            pats.join(", ")
                        ),
                        vec![],
                    )
                }
            }
        };
        let active_at_source = u.status.state.is_active();
        let removal = policy.on_user_out_of_scope;
        let (target_action, active) = if !in_scope {
            match removal {
                UserRemoval::Deactivate => ("deactivate", false),
                UserRemoval::Delete => ("delete", false),
                UserRemoval::Keep => ("keep", false),
            }
        } else if active_at_source {
            ("sync", true)
        } else {
            ("deactivate", false)
        };
        let rule = if in_scope && !active_at_source {
            format!(
                "{rule}; the account is {} at the source ({})",
                state_word(u),
                u.status.raw
            )
        } else {
            rule
        };
        d.decisions.insert(
            u.id.clone(),
            Decision {
                in_scope,
                active,
                rule: rule.clone(),
                path,
                action: target_action.to_string(),
            },
        );
        let target = match target_action {
            "delete" => Target::Delete {
                reason: format!("out of scope: {rule}"),
            },
            "keep" => Target::Keep,
            _ => {
                let keep_manager = snap.optional_failed.contains(&u.id) && policy.managers;
                let manager = match snap.managers.get(&u.id) {
                    Some(m) => m.clone(),
                    None => u.manager.clone(),
                };
                let mut attributes = if policy.keep_provider_attributes {
                    u.attributes.clone()
                } else {
                    Default::default()
                };
                for (name, mapping) in &policy.attributes {
                    let v = mapping
                        .source()
                        .and_then(|s| source_value(u, s))
                        .or_else(|| mapping.default_value().cloned());
                    match v {
                        Some(v) => {
                            attributes.insert(name.clone(), v);
                        }
                        None => {
                            attributes.remove(name);
                        }
                    }
                }
                let inactive_reason = if active {
                    None
                } else if !in_scope {
                    Some(format!("out of scope: {rule}"))
                } else {
                    Some(format!("{} at source ({})", state_word(u), u.status.raw))
                };
                Target::Put {
                    user: Box::new(StoredUser {
                        connection: connection.to_string(),
                        provider_id: u.id.clone(),
                        username: u.username.clone(),
                        email: u.email.clone(),
                        display_name: u.display_name.clone(),
                        given_name: u.given_name.clone(),
                        family_name: u.family_name.clone(),
                        active,
                        state: u.status.state,
                        status_raw: u.status.raw.clone(),
                        manager,
                        attributes,
                        inactive_reason,
                    }),
                    create: active,
                    keep_manager,
                }
            }
        };
        d.users.insert(u.id.clone(), target);

        // photo
        let photo = if policy.photos == PhotoMode::Off || snap.optional_failed.contains(&u.id) {
            PhotoTarget::Keep
        } else {
            match snap.photos.get(&u.id) {
                None => PhotoTarget::Keep,
                Some(None) => PhotoTarget::Set(None),
                Some(Some(p)) => PhotoTarget::Set(Some(StoredPhoto {
                    user: u.id.clone(),
                    content_type: p.content_type.clone(),
                    sha256: hex(&Sha256::digest(&p.bytes)),
                    bytes: (policy.photos == PhotoMode::Bytes).then(|| p.bytes.clone()),
                })),
            }
        };
        d.photos.insert(u.id.clone(), photo);
    }

    // memberships among wanted groups and users present at the source
    let present = |uid: &str| matches!(d.users.get(uid), Some(Target::Put { .. }));
    for (g, users) in &graph.user_members {
        if !d.groups.contains_key(g) {
            continue;
        }
        for u in users {
            if present(u) {
                d.memberships.insert(StoredMembership {
                    group: g.clone(),
                    member: Member::User(u.clone()),
                });
            }
        }
    }
    for (child, parents) in &graph.parents {
        for p in parents {
            if d.groups.contains_key(p) && d.groups.contains_key(child) {
                d.memberships.insert(StoredMembership {
                    group: p.clone(),
                    member: Member::Group(child.clone()),
                });
            }
        }
    }
    for ((g, u), path) in effective {
        if d.groups.contains_key(&g) && present(&u) {
            d.effective.insert((g, u), path);
        }
    }
    d
}

fn state_word(u: &User) -> &'static str {
    match u.status.state {
        usersync_model::UserState::Active => "active",
        usersync_model::UserState::Locked => "locked",
        usersync_model::UserState::Disabled => "disabled",
        usersync_model::UserState::Staged => "staged (never activated)",
        usersync_model::UserState::Deprovisioned => "deprovisioned",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
