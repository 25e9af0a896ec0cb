//! Apply the policy to a snapshot: who is in scope and why, the local records wanted, and the
//! memberships (direct and effective) among them. Pure: no store, no network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use usersync_config::{PhotoMode, Policy, UserRemoval};
use usersync_model::{Attributes, ManagerRef, MemberRef, User};
use usersync_store::{StoredGroup, StoredPhoto, StoredUser};

use crate::closure::Graph;
use crate::fetch::{Snapshot, TransitiveSource};
use crate::links::{EffectiveRow, Links};

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
        /// The wanted record (shared with the plan's change).
        user: Arc<StoredUser>,
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
    /// Direct and effective memberships among wanted groups and users present at the source,
    /// in compact form (effective paths are group names).
    pub links: Links,
    /// Photos per user.
    pub photos: BTreeMap<String, PhotoTarget>,
    /// Warnings (cycles, name collisions after mapping).
    pub warnings: Vec<String>,
    /// Groups deleted while the run read them ([`Snapshot::vanished_groups`]): their
    /// memberships are neither added nor removed in this run.
    pub vanished_groups: BTreeSet<String>,
    /// Users deleted while the run read their groups: memberships left as stored.
    pub vanished_users: BTreeSet<String>,
    /// Users whose scope this run cannot decide because an object vanished mid-run (the
    /// vanished users themselves, and users out of scope while a group vanished): no
    /// deactivation or deletion of them is applied.
    pub uncertain_users: BTreeSet<String>,
    /// A group vanished where groups nest: inherited (effective) memberships that disappear
    /// may only be missing because of it, so none is removed in this run.
    pub keep_effective: bool,
    /// Group patterns of the policy that match no group of a complete fetch (each is also a
    /// line of `warnings`).
    pub unmatched_patterns: Vec<UnmatchedPattern>,
}

/// A group pattern of the policy (`required_groups`, `include_groups`, `exclude_groups`) that
/// matched no group the source returned: usually a typo or a group's short name (`Staff` for
/// `All Staff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnmatchedPattern {
    /// The policy option: `required_groups`, `include_groups` or `exclude_groups`.
    pub option: String,
    /// The pattern as written in the config.
    pub pattern: String,
    /// Up to 3 group names (paths, for `/` patterns) of the source closest to the pattern.
    pub closest: Vec<String>,
}

impl std::fmt::Display for UnmatchedPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pattern `{}` matches no group at the source",
            self.option, self.pattern
        )?;
        if self.closest.is_empty() {
            Ok(())
        } else {
            let names: Vec<String> = self.closest.iter().map(|n| format!("`{n}`")).collect();
            write!(f, " (closest: {})", names.join(", "))
        }
    }
}

/// A group's stored attributes: the provider's, plus its full `path` where the provider has a
/// hierarchy (Keycloak), so groups of the same name stay distinguishable in the store.
fn group_attributes(g: &usersync_model::Group) -> Attributes {
    let mut a = g.attributes.clone();
    if let Some(path) = &g.path {
        a.entry("path".to_string())
            .or_insert_with(|| serde_json::Value::String(path.clone()));
    }
    a
}

fn source_value(u: &User, attributes: &Attributes, source: &str) -> Option<serde_json::Value> {
    let s = |v: &Option<String>| v.clone().map(serde_json::Value::String);
    match source {
        "id" => Some(u.id.clone().into()),
        "username" => Some(u.username.clone().into()),
        "email" => s(&u.email),
        "display_name" => s(&u.display_name),
        "given_name" => s(&u.given_name),
        "family_name" => s(&u.family_name),
        "status" => Some(u.status.raw.clone().into()),
        other => attributes
            .get(other.strip_prefix("attributes.").unwrap_or(other))
            .cloned(),
    }
    .filter(|v| !v.is_null())
}

/// Build the wanted state from a snapshot and a policy.
pub fn build(snap: &Snapshot, policy: &Policy, connection: &str) -> Desired {
    build_impl(snap, policy, connection, None)
}

/// [`build`], moving the users' attributes out of the snapshot instead of copying them (the
/// largest part of a user record): the returned snapshot's users have empty attributes.
pub fn build_consuming(mut snap: Snapshot, policy: &Policy, connection: &str) -> (Desired, Snapshot) {
    let mut attributes: HashMap<String, Attributes> = snap
        .users
        .iter_mut()
        .map(|(id, u)| (id.clone(), std::mem::take(&mut u.attributes)))
        .collect();
    let d = build_impl(&snap, policy, connection, Some(&mut attributes));
    (d, snap)
}

fn build_impl(
    snap: &Snapshot,
    policy: &Policy,
    connection: &str,
    mut owned_attributes: Option<&mut HashMap<String, Attributes>>,
) -> Desired {
    let mut d = Desired::default();
    let name_of = |gid: &str| {
        snap.groups
            .get(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    };

    // direct edges, interned (groups and users in id order first)
    let mut links = Links::default();
    for gid in snap.groups.keys() {
        links.groups.intern(gid);
    }
    for uid in snap.users.keys() {
        links.users.intern(uid);
    }
    let mut cycle_graph = Graph::default();
    for m in &snap.direct {
        let g = links.groups.intern(&m.group_id);
        match &m.member {
            MemberRef::User(u) => {
                let u = links.users.intern(u);
                links.user_edges.push((g, u));
            }
            MemberRef::Group(c) => {
                let c = links.groups.intern(c);
                links.group_edges.push((g, c));
                cycle_graph.add_group(&m.group_id, links.groups.id(c));
            }
            MemberRef::AllUsers => {
                for u in snap.users.keys() {
                    let u = links.users.intern(u);
                    links.user_edges.push((g, u));
                }
            }
        }
    }
    links.user_edges.sort_unstable();
    links.user_edges.dedup();
    links.group_edges.sort_unstable();
    links.group_edges.dedup();
    for cycle in cycle_graph.cycles() {
        let names: Vec<String> = cycle.iter().map(|g| name_of(g)).collect();
        d.warnings
            .push(format!("nested group cycle: {}", names.join(" -> ")));
    }
    drop(cycle_graph);

    // the closure, user by user: each user's direct groups (in id order) and, for every group
    // reachable upward, the shortest path (ties: the smaller path of ids)
    let (anc, id_paths) = crate::links::ancestors(
        &links.groups,
        &links.group_edges,
        links.user_edges.iter().map(|e| e.0),
    );
    let mut by_user: Vec<(u32, u32)> = links.user_edges.iter().map(|&(g, u)| (u, g)).collect();
    by_user.sort_unstable_by(|a, b| (a.0, links.groups.id(a.1)).cmp(&(b.0, links.groups.id(b.1))));
    let path_key = |p: u32| -> Vec<&str> {
        id_paths
            .get(p as usize)
            .into_iter()
            .flatten()
            .map(|g| links.groups.id(*g))
            .collect()
    };
    let path_len = |p: u32| id_paths.get(p as usize).map_or(0, Vec::len);
    // (user, group, id path) in user order, each user's rows in group id order
    let mut rows: Vec<(u32, u32, u32)> = Vec::new();
    // a user's direct groups (by_user range) and effective rows (rows range)
    let mut user_spans: HashMap<u32, (std::ops::Range<usize>, std::ops::Range<usize>)> = HashMap::new();
    let mut best: HashMap<u32, u32> = HashMap::new();
    let mut i = 0;
    while i < by_user.len() {
        let u = by_user[i].0;
        let start = i;
        while i < by_user.len() && by_user[i].0 == u {
            i += 1;
        }
        best.clear();
        for &(_, g) in &by_user[start..i] {
            for &(a, p) in anc.get(&g).into_iter().flatten() {
                let better = match best.get(&a) {
                    None => true,
                    Some(&old) => (path_len(p), path_key(p)) < (path_len(old), path_key(old)),
                };
                if better {
                    best.insert(a, p);
                }
            }
        }
        let row_start = rows.len();
        rows.extend(best.iter().map(|(&a, &p)| (u, a, p)));
        rows[row_start..].sort_unstable_by(|x, y| links.groups.id(x.1).cmp(links.groups.id(y.1)));
        user_spans.insert(u, (start..i, row_start..rows.len()));
    }
    drop(anc);
    // paths of names, each distinct id path once
    let mut name_paths: HashMap<u32, u32> = HashMap::new();
    for r in &mut rows {
        let next = name_paths.len() as u32;
        let np = *name_paths.entry(r.2).or_insert_with(|| {
            links.paths.push(
                id_paths
                    .get(r.2 as usize)
                    .into_iter()
                    .flatten()
                    .map(|g| name_of(links.groups.id(*g)))
                    .collect(),
            );
            next
        });
        r.2 = np;
    }
    drop(id_paths);
    // server-side transitive memberships the closure does not have: path `["*", name]`
    if snap.transitive == Some(TransitiveSource::ServerSide) {
        let mut star: HashMap<u32, u32> = HashMap::new();
        let mut extra: Vec<(u32, u32, u32)> = Vec::new();
        for (group, user) in &snap.server_transitive {
            let g = links.groups.intern(group);
            let u = links.users.intern(user);
            let known = user_spans
                .get(&u)
                .is_some_and(|(_, r)| rows[r.clone()].iter().any(|x| x.1 == g));
            if known {
                continue;
            }
            let next = links.paths.len() as u32;
            let p = *star.entry(g).or_insert_with(|| {
                links.paths.push(vec!["*".to_string(), name_of(group)]);
                next
            });
            extra.push((u, g, p));
        }
        // keep each user's rows together and in group id order
        rows.extend(extra);
        rows.sort_by(|x, y| (x.0, links.groups.id(x.1)).cmp(&(y.0, links.groups.id(y.1))));
        user_spans.clear();
        let mut i = 0;
        while i < rows.len() {
            let u = rows[i].0;
            let start = i;
            while i < rows.len() && rows[i].0 == u {
                i += 1;
            }
            user_spans.insert(u, (0..0, start..i));
        }
        for (u, (direct, _)) in user_spans.iter_mut() {
            let lo = by_user.partition_point(|x| x.0 < *u);
            let hi = by_user.partition_point(|x| x.0 <= *u);
            *direct = lo..hi;
        }
    }
    let direct_of_user = |uid: &str| -> Vec<&str> {
        let Some(u) = links.users.get(uid) else {
            return vec![];
        };
        let lo = by_user.partition_point(|x| x.0 < u);
        by_user[lo..]
            .iter()
            .take_while(|x| x.0 == u)
            .map(|x| links.groups.id(x.1))
            .collect()
    };
    let eff_of_user = |uid: &str| -> Vec<(&str, &Vec<String>)> {
        let Some((_, r)) = links.users.get(uid).and_then(|u| user_spans.get(&u)) else {
            return vec![];
        };
        rows[r.clone()]
            .iter()
            .filter_map(|x| Some((links.groups.id(x.1), links.paths.get(x.2 as usize)?)))
            .collect()
    };

    // groups
    wanted_groups(snap, policy, connection, &mut d);

    // manager references that only the fetched users can resolve
    let manager_index = ManagerIndex::build(snap, owned_attributes.as_deref());
    let mut unresolved_managers: (u64, Option<(String, String)>) = (0, None);
    // scope and users
    let required_match = |gid: &str| {
        let g = snap.groups.get(gid);
        policy
            .required_groups
            .iter()
            .find(|p| p.matches(gid) || g.is_some_and(|g| crate::fetch::pattern_matches_group(p, g)))
    };
    for u in snap.users.values() {
        let (in_scope, rule, path) = scope_of(
            u,
            policy,
            &eff_of_user,
            &direct_of_user,
            &required_match,
            &name_of,
        );
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
                let inputs = UserInputs {
                    snap,
                    policy,
                    connection,
                    managers: &manager_index,
                };
                let who = Standing {
                    active,
                    in_scope,
                    rule: &rule,
                };
                put_target(
                    &inputs,
                    u,
                    &who,
                    &mut unresolved_managers,
                    owned_attributes.as_deref_mut(),
                )
            }
        };
        d.users.insert(u.id.clone(), target);

        // photo
        d.photos.insert(u.id.clone(), photo_target(u, snap, policy));
    }

    if let (n, Some((value, user))) = unresolved_managers {
        d.warnings.push(format!(
            "{n} user(s) name a manager that matches no synced user (e.g. `{value}` for `{user}`); \
             they get no manager, and the raw value stays in their attributes"
        ));
    }
    // memberships among wanted groups and users present at the source
    drop(by_user);
    drop(user_spans);
    restrict_links(&mut links, rows, &d);
    d.links = links;
    mark_vanished(&mut d, snap, policy);
    if snap.complete {
        d.unmatched_patterns = unmatched_patterns(snap, policy);
        d.warnings
            .extend(d.unmatched_patterns.iter().map(ToString::to_string));
    }
    d
}

/// The groups the policy selects, with their local names; two groups mapping to one local name
/// are a warning.
fn wanted_groups(snap: &Snapshot, policy: &Policy, connection: &str, d: &mut Desired) {
    let name_of = |gid: &str| {
        snap.groups
            .get(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    };
    let mut local_names: BTreeMap<String, String> = BTreeMap::new();
    for g in snap.groups.values() {
        if !crate::fetch::group_selected(policy, g) {
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
                attributes: group_attributes(g),
            },
        );
    }
}

/// Whether a user is in scope, the rule that decided, in words, and the group path that granted it.
#[allow(clippy::type_complexity)]
fn scope_of<'l, 'p>(
    u: &User,
    policy: &'p Policy,
    eff_of_user: &dyn Fn(&str) -> Vec<(&'l str, &'l Vec<String>)>,
    direct_of_user: &dyn Fn(&str) -> Vec<&'l str>,
    required_match: &dyn Fn(&str) -> Option<&'p usersync_config::Pattern>,
    name_of: &dyn Fn(&str) -> String,
) -> (bool, String, Vec<String>) {
    if policy.required_groups.is_empty() {
        (
            true,
            "no required_groups are configured: every user is in scope".to_string(),
            vec![],
        )
    } else {
        let mut best: Option<(Vec<String>, String)> = None;
        if policy.transitive {
            for (g, path) in eff_of_user(&u.id) {
                if let Some(p) = required_match(g) {
                    if best.as_ref().is_none_or(|(bp, _)| path.len() < bp.len()) {
                        best = Some((path.clone(), p.to_string()));
                    }
                }
            }
        } else {
            for g in direct_of_user(&u.id) {
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
    }
}

/// What the user targets need besides the user.
struct UserInputs<'a> {
    snap: &'a Snapshot,
    policy: &'a Policy,
    connection: &'a str,
    managers: &'a ManagerIndex,
}

/// A user's standing under the policy.
struct Standing<'a> {
    active: bool,
    in_scope: bool,
    rule: &'a str,
}

/// The wanted record of a user the policy keeps (`sync` or `deactivate`): mapped attributes,
/// the manager resolved, the reason when inactive. `unresolved_managers` counts manager
/// references matching no fetched user (and keeps the first).
fn put_target(
    inputs: &UserInputs<'_>,
    u: &User,
    who: &Standing<'_>,
    unresolved_managers: &mut (u64, Option<(String, String)>),
    owned_attributes: Option<&mut HashMap<String, Attributes>>,
) -> Target {
    let UserInputs {
        snap,
        policy,
        connection,
        managers: manager_index,
    } = *inputs;
    let Standing {
        active,
        in_scope,
        rule,
    } = *who;
    let no_attributes = Attributes::new();
    let keep_manager = snap.optional_failed.contains(&u.id) && policy.managers;
    let manager = match snap.managers.get(&u.id) {
        Some(m) => m.clone(),
        None => u.manager.clone(),
    };
    let manager = match manager {
        Some(ManagerRef::Lookup { value, keys }) => {
            let found = manager_index.resolve(&value, &keys);
            if found.is_none() {
                unresolved_managers.0 += 1;
                unresolved_managers.1.get_or_insert((value, u.username.clone()));
            }
            found.map(ManagerRef::Id)
        }
        other => other,
    };
    let source_attributes = match owned_attributes.as_deref() {
        Some(owned) => owned.get(&u.id).unwrap_or(&no_attributes),
        None => &u.attributes,
    };
    let mapped: Vec<(&String, Option<serde_json::Value>)> = policy
        .attributes
        .iter()
        .map(|(name, mapping)| {
            let v = mapping
                .source()
                .and_then(|s| source_value(u, source_attributes, s))
                .or_else(|| mapping.default_value().cloned());
            (name, v)
        })
        .collect();
    let mut attributes = if !policy.keep_provider_attributes {
        Attributes::new()
    } else if let Some(owned) = owned_attributes {
        owned.remove(&u.id).unwrap_or_default()
    } else {
        u.attributes.clone()
    };
    for (name, v) in mapped {
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
        user: Arc::new(StoredUser {
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

/// What to do with a user's photo.
fn photo_target(u: &User, snap: &Snapshot, policy: &Policy) -> PhotoTarget {
    if policy.photos == PhotoMode::Off || snap.optional_failed.contains(&u.id) {
        PhotoTarget::Keep
    } else {
        match snap.photos.get(&u.id) {
            // the listing said "no photo" (nothing was fetched)
            None if u.photo == Some(usersync_model::PhotoHint::None) => PhotoTarget::Set(None),
            None => PhotoTarget::Keep,
            Some(None) => PhotoTarget::Set(None),
            Some(Some(p)) => PhotoTarget::Set(Some(StoredPhoto {
                user: u.id.clone(),
                content_type: p.content_type.clone(),
                sha256: hex(&Sha256::digest(&p.bytes)),
                bytes: (policy.photos == PhotoMode::Bytes).then(|| p.bytes.clone()),
                version: match &u.photo {
                    Some(usersync_model::PhotoHint::Version(v)) => Some(v.clone()),
                    _ => None,
                },
            })),
        }
    }
}

/// Keep the memberships among wanted groups and users present at the source; the effective
/// rows become the sorted `links.effective`.
fn restrict_links(links: &mut Links, mut rows: Vec<(u32, u32, u32)>, d: &Desired) {
    let wanted_group: Vec<bool> = (0..links.groups.len() as u32)
        .map(|g| d.groups.contains_key(links.groups.id(g)))
        .collect();
    let present: Vec<bool> = (0..links.users.len() as u32)
        .map(|u| matches!(d.users.get(links.users.id(u)), Some(Target::Put { .. })))
        .collect();
    let wg = |g: u32| wanted_group.get(g as usize).copied().unwrap_or(false);
    let pu = |u: u32| present.get(u as usize).copied().unwrap_or(false);
    links.user_edges.retain(|&(g, u)| wg(g) && pu(u));
    links.group_edges.retain(|&(p, c)| wg(p) && wg(c));
    rows.retain(|&(u, g, _)| wg(g) && pu(u));
    links.effective = rows
        .into_iter()
        .map(|(user, group, path)| EffectiveRow { group, user, path })
        .collect();
    links.effective.sort_unstable();
}

/// Objects that vanished mid-run: freeze their memberships, and withhold the deactivations
/// whose reason could be a membership this run did not see.
fn mark_vanished(d: &mut Desired, snap: &Snapshot, policy: &Policy) {
    d.vanished_groups = snap.vanished_groups.clone();
    d.vanished_users = snap.vanished_users.clone();
    d.uncertain_users = snap.vanished_users.clone();
    if !snap.vanished_groups.is_empty() {
        if !policy.required_groups.is_empty() {
            // A vanished group's members are unknown: any of them may be out of scope only for that.
            d.uncertain_users.extend(
                d.decisions
                    .iter()
                    .filter(|(_, dec)| !dec.in_scope)
                    .map(|(id, _)| id.clone()),
            );
        }
        d.keep_effective = !matches!(snap.transitive, None | Some(TransitiveSource::NotNested));
    }
}

/// Resolves [`ManagerRef::Lookup`] references: for each field the references name, the
/// fetched users by that field's value (`None`: several users share it, so it names no one).
#[derive(Default)]
struct ManagerIndex {
    by_key: HashMap<String, HashMap<String, Option<String>>>,
}

impl ManagerIndex {
    fn build(snap: &Snapshot, owned: Option<&HashMap<String, Attributes>>) -> Self {
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        let refs = snap
            .users
            .values()
            .filter_map(|u| u.manager.as_ref())
            .chain(snap.managers.values().flatten());
        for r in refs {
            if let ManagerRef::Lookup { keys: k, .. } = r {
                keys.extend(k.iter().map(String::as_str));
            }
        }
        let mut index = ManagerIndex::default();
        let no_attributes = Attributes::new();
        for key in keys {
            let mut values: HashMap<String, Option<String>> = HashMap::new();
            for u in snap.users.values() {
                let attributes = match owned {
                    Some(o) => o.get(&u.id).unwrap_or(&no_attributes),
                    None => &u.attributes,
                };
                // a list (Google `aliases`) names the user by each of its values
                let own: BTreeSet<String> = match source_value(u, attributes, key) {
                    Some(serde_json::Value::Array(items)) => {
                        items.iter().filter_map(|v| lookup_text(key, v)).collect()
                    }
                    Some(v) => lookup_text(key, &v).into_iter().collect(),
                    None => continue,
                };
                for v in own {
                    values
                        .entry(v)
                        .and_modify(|slot| *slot = None)
                        .or_insert_with(|| Some(u.id.clone()));
                }
            }
            index.by_key.insert(key.to_string(), values);
        }
        index
    }

    /// The id of the one user whose `keys[0]` (else `keys[1]`, ...) equals `value`.
    fn resolve(&self, value: &str, keys: &[String]) -> Option<String> {
        keys.iter().find_map(|k| {
            let v = lookup_text(k, &serde_json::Value::String(value.to_string()))?;
            self.by_key.get(k)?.get(&v)?.clone()
        })
    }
}

/// A field value as compared by a manager lookup: trimmed text, numbers and booleans as
/// written; case folded except for ids. Other values (objects, empty text) match nothing; a
/// list's items are compared one by one (see [`ManagerIndex::build`]).
fn lookup_text(key: &str, v: &serde_json::Value) -> Option<String> {
    let s = match v {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    if s.is_empty() {
        return None;
    }
    Some(if key == "id" { s } else { s.to_lowercase() })
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

/// The policy's group patterns that match no group of the snapshot, each with the closest
/// group names. `required_groups` patterns also match group ids (as scope does).
pub fn unmatched_patterns(snap: &Snapshot, policy: &Policy) -> Vec<UnmatchedPattern> {
    let options = [
        ("required_groups", &policy.required_groups, true),
        ("include_groups", &policy.include_groups, false),
        ("exclude_groups", &policy.exclude_groups, false),
    ];
    let mut out = Vec::new();
    for (option, patterns, by_id) in options {
        for p in patterns {
            let matched = snap
                .groups
                .values()
                .any(|g| crate::fetch::pattern_matches_group(p, g) || (by_id && p.matches(&g.id)));
            if matched {
                continue;
            }
            let by_path = p.as_str().starts_with('/');
            let names = snap.groups.values().map(|g| match (&g.path, by_path) {
                (Some(path), true) => path.as_str(),
                _ => g.name.as_str(),
            });
            out.push(UnmatchedPattern {
                option: option.to_string(),
                pattern: p.as_str().to_string(),
                closest: closest_names(p.as_str(), names, 3),
            });
        }
    }
    out
}

/// Up to `n` of `names` closest to the literal text of `pattern` (glob and regex syntax
/// removed, case ignored): names containing it or contained in it first (by length
/// difference), then names within a small edit distance (by distance); ties by name.
fn closest_names<'a>(pattern: &str, names: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    let literal: String = pattern
        .strip_prefix("re:")
        .unwrap_or(pattern)
        .chars()
        .filter(|c| !"*?[]^$\\.()+{}|".contains(*c))
        .collect();
    let needle = literal.trim().to_lowercase();
    if needle.is_empty() {
        return vec![];
    }
    let needle_len = needle.chars().count();
    let max_distance = (needle_len / 3).max(2);
    let mut seen = BTreeSet::new();
    let mut scored: Vec<((u8, usize), String)> = Vec::new();
    for name in names {
        let lower = name.to_lowercase();
        if !seen.insert(lower.clone()) {
            continue;
        }
        let len = lower.chars().count();
        let score = if lower.contains(&needle) || needle.contains(&lower) {
            (0, len.abs_diff(needle_len))
        } else {
            let d = edit_distance(&needle, &lower);
            if d > max_distance {
                continue;
            }
            (1, d)
        };
        scored.push((score, name.to_string()));
    }
    scored.sort();
    scored.into_iter().take(n).map(|(_, name)| name).collect()
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
