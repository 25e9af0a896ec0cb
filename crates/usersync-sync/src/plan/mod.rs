//! The plan: the diff between the wanted state and the store, as human-readable entries and
//! as the store changes that carry it out. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use usersync_config::Policy;
use usersync_store::{Change, ConnectionState, LinkRow, Member, StoredGroup, StoredUser, UsernameHolder};

use crate::desired::{Desired, Target};
use crate::links::StoredLinks;

mod groups;
mod memberships;
mod photos;
mod protection;
#[cfg(test)]
mod tests;
mod users;

/// What happens to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// New local user.
    Created,
    /// Attributes changed.
    Updated,
    /// Same provider id, new username (other attributes may change too).
    Renamed,
    /// Inactive -> active.
    Reactivated,
    /// Active -> inactive.
    Deactivated,
    /// Removed.
    Deleted,
}

/// One user entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserChange {
    /// The action.
    pub action: UserAction,
    /// Provider id.
    pub provider_id: String,
    /// Username (the new one for a rename).
    pub username: String,
    /// The old username, for a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_username: Option<String>,
    /// Attributes that change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Why (deactivations and deletions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What happens to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupAction {
    /// New local group.
    Created,
    /// New local name.
    Renamed,
    /// Other attributes changed.
    Updated,
    /// Removed.
    Deleted,
}

/// One group entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    /// The action.
    pub action: GroupAction,
    /// Provider id.
    pub provider_id: String,
    /// Local name (the new one for a rename).
    pub name: String,
    /// The old local name, for a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_name: Option<String>,
    /// Attributes that change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// One direct membership entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MembershipChange {
    /// `added` or `removed`.
    pub action: &'static str,
    /// Local group name (shared by the entries of the group).
    #[serde(serialize_with = "shared_str")]
    pub group: Arc<str>,
    /// `user` or `group`.
    pub member_type: &'static str,
    /// Username or local group name of the member (shared by the member's entries).
    #[serde(serialize_with = "shared_str")]
    pub member: Arc<str>,
}

/// A shared string serialised as the string (serde's own `Arc` support is behind a feature).
fn shared_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// The plan of one connection's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Connection name.
    pub connection: String,
    /// Whether the fetch was complete (otherwise destructive changes are withheld).
    pub complete: bool,
    /// User changes.
    pub users: Vec<UserChange>,
    /// Group changes.
    pub groups: Vec<GroupChange>,
    /// Direct membership changes.
    pub memberships: Vec<MembershipChange>,
    /// Effective (transitive) membership rows added, re-pathed or removed.
    pub effective_changes: u64,
    /// Users of the connection left unchanged.
    pub unchanged_users: u64,
    /// Groups of the connection left unchanged.
    pub unchanged_groups: u64,
    /// Username collisions (never merged).
    pub conflicts: Vec<String>,
    /// Changes skipped because the user or group is protected.
    pub protected: Vec<String>,
    /// Destructive changes withheld because the fetch was incomplete.
    pub withheld: Vec<String>,
    /// Warnings from fetch and policy.
    pub warnings: Vec<String>,
    /// Users the source returned.
    pub source_users: u64,
    /// Active users of the connection in the store before the run.
    pub active_users_before: u64,
    /// Group patterns of the policy that matched no group at the source (also in `warnings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmatched_patterns: Vec<crate::desired::UnmatchedPattern>,
    /// Source users in scope, when `required_groups` decides scope (`None`: every user is).
    #[serde(skip)]
    pub users_in_scope: Option<u64>,
    /// The store changes that carry out this plan.
    #[serde(skip)]
    pub changes: Vec<Change>,
}

impl Plan {
    /// The source returned users but the policy's `required_groups` leave none of them in
    /// scope: a suspicious run (a pattern naming no group, an emptied group), gated like a
    /// source that returned no users.
    pub fn scope_emptied_by_policy(&self) -> bool {
        self.source_users > 0 && self.users_in_scope == Some(0)
    }

    /// Users deactivated plus deleted: what the removal threshold counts.
    pub fn removals(&self) -> u64 {
        self.users
            .iter()
            .filter(|u| matches!(u.action, UserAction::Deactivated | UserAction::Deleted))
            .count() as u64
    }

    /// Number of user entries with an action.
    pub fn count_users(&self, action: UserAction) -> u64 {
        self.users.iter().filter(|u| u.action == action).count() as u64
    }

    /// Number of group entries with an action.
    pub fn count_groups(&self, action: GroupAction) -> u64 {
        self.groups.iter().filter(|g| g.action == action).count() as u64
    }

    /// Number of membership entries with an action (`added`, `removed`).
    pub fn count_memberships(&self, action: &str) -> u64 {
        self.memberships.iter().filter(|m| m.action == action).count() as u64
    }

    /// True when the plan changes nothing in the directory.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The plan as recorded in run history: every field, but each list cut to its first
    /// `limit` entries. When something was cut, `omitted` gives the number of entries left out
    /// per list and a warning line says so (the run's counts are always complete). This keeps
    /// a run's record, and the memory needed to write it, bounded whatever the organisation's
    /// size: an initial sync of 1,000,000 memberships records 1,000 of them.
    pub fn history_json(&self, limit: usize) -> serde_json::Value {
        fn cut<T: Serialize>(
            name: &'static str,
            list: &[T],
            limit: usize,
            omitted: &mut BTreeMap<&'static str, usize>,
        ) -> serde_json::Value {
            if list.len() > limit {
                omitted.insert(name, list.len() - limit);
            }
            serde_json::to_value(&list[..list.len().min(limit)]).unwrap_or(serde_json::Value::Null)
        }
        let mut omitted: BTreeMap<&'static str, usize> = BTreeMap::new();
        let users = cut("users", &self.users, limit, &mut omitted);
        let groups = cut("groups", &self.groups, limit, &mut omitted);
        let memberships = cut("memberships", &self.memberships, limit, &mut omitted);
        let conflicts = cut("conflicts", &self.conflicts, limit, &mut omitted);
        let protected = cut("protected", &self.protected, limit, &mut omitted);
        let withheld = cut("withheld", &self.withheld, limit, &mut omitted);
        let mut warnings: Vec<String> = self.warnings.iter().take(limit).cloned().collect();
        if self.warnings.len() > limit {
            omitted.insert("warnings", self.warnings.len() - limit);
        }
        if !omitted.is_empty() {
            let what: Vec<String> = omitted.iter().map(|(k, n)| format!("{n} {k}")).collect();
            warnings.push(format!(
                "run history keeps the first {limit} entries of each list of the plan; not recorded: {} \
                 (the counts are complete)",
                what.join(", ")
            ));
        }
        let mut v = serde_json::json!({
            "connection": self.connection,
            "complete": self.complete,
            "users": users,
            "groups": groups,
            "memberships": memberships,
            "effective_changes": self.effective_changes,
            "unchanged_users": self.unchanged_users,
            "unchanged_groups": self.unchanged_groups,
            "conflicts": conflicts,
            "protected": protected,
            "withheld": withheld,
            "warnings": warnings,
            "source_users": self.source_users,
            "active_users_before": self.active_users_before,
            "omitted": omitted,
        });
        if !self.unmatched_patterns.is_empty() {
            v["unmatched_patterns"] = serde_json::to_value(&self.unmatched_patterns).unwrap_or_default();
        }
        v
    }
}

/// Inputs of [`diff`] besides the wanted and stored states.
pub struct DiffContext<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// Its policy.
    pub policy: &'a Policy,
    /// Whether the fetch was complete.
    pub complete: bool,
    /// Every username in the store (all connections).
    pub holders: &'a [UsernameHolder],
    /// Users the source returned.
    pub source_users: u64,
}

/// Diff the wanted state against the store.
pub fn diff(desired: &Desired, stored: &ConnectionState, ctx: &DiffContext<'_>) -> Plan {
    let mut links = StoredLinks::default();
    for m in &stored.memberships {
        links.add(&desired.links, LinkRow::Direct(m));
    }
    for e in &stored.effective {
        let path_json = serde_json::to_string(&e.path).unwrap_or_default();
        links.add(
            &desired.links,
            LinkRow::Effective {
                group: &e.group,
                user: &e.user,
                path_json: &path_json,
            },
        );
    }
    links.finish();
    diff_with_links(desired, stored, &links, ctx)
}

/// [`diff`], with the store's memberships already read into compact form (`stored`'s own
/// `memberships` and `effective` are not looked at): see `Store::state_streaming`.
///
/// The diff runs in named stages, each appending its entries and store changes to the plan in
/// this order: users ([`users::intents`], screened by [`protection::screen_users`], usernames
/// resolved by [`users::claim_usernames`], written by [`users::user_changes`]), groups
/// ([`groups::group_changes`]), direct memberships ([`memberships::direct_changes`]), effective
/// memberships ([`memberships::effective_changes`]) and photos ([`photos::photo_changes`]).
/// Destructive changes are withheld on a partial read in each stage that makes them.
pub fn diff_with_links(
    desired: &Desired,
    stored: &ConnectionState,
    stored_links: &StoredLinks,
    ctx: &DiffContext<'_>,
) -> Plan {
    let mut plan = empty_plan(desired, stored, ctx);
    let view = StoreView::new(stored);
    let mut intents = users::intents(desired, stored, &view, ctx.policy);
    let users_deleted = protection::screen_users(&mut intents, desired, &view, ctx, &mut plan);
    let claims = users::claim_usernames(&intents, &view, ctx, &mut plan);
    users::user_changes(&intents, &claims, &view, &mut plan);
    let groups_frozen = groups::group_changes(desired, stored, &view, ctx, &mut plan);
    let scope = Scope {
        desired,
        view: &view,
        policy: ctx.policy,
        intents: &intents,
        skipped_new: &claims.skipped_new,
        users_deleted: &users_deleted,
        groups_frozen: &groups_frozen,
        new_names: users::new_names(&plan),
    };
    let mut batch = memberships::BatchBuilder::new(&desired.links);
    memberships::direct_changes(&scope, stored_links, ctx.complete, &mut batch, &mut plan);
    memberships::effective_changes(&scope, stored_links, ctx.complete, &mut batch, &mut plan);
    plan.changes.extend(batch.finish());
    photos::photo_changes(&scope, stored, &mut plan);
    finish(&mut plan, stored);
    plan
}

/// The plan before any stage ran: the run's context and the counts taken from the inputs.
fn empty_plan(desired: &Desired, stored: &ConnectionState, ctx: &DiffContext<'_>) -> Plan {
    Plan {
        connection: ctx.connection.to_string(),
        complete: ctx.complete,
        source_users: ctx.source_users,
        active_users_before: stored.users.iter().filter(|u| u.active).count() as u64,
        warnings: desired.warnings.clone(),
        unmatched_patterns: desired.unmatched_patterns.clone(),
        users_in_scope: (!ctx.policy.required_groups.is_empty())
            .then(|| desired.decisions.values().filter(|d| d.in_scope).count() as u64),
        ..Plan::default()
    }
}

/// The unchanged counts and the order of the user and group entries (case-insensitive name,
/// then provider id).
fn finish(plan: &mut Plan, stored: &ConnectionState) {
    let changed_users: BTreeSet<&str> = plan.users.iter().map(|u| u.provider_id.as_str()).collect();
    plan.unchanged_users = stored
        .users
        .iter()
        .filter(|u| !changed_users.contains(u.provider_id.as_str()))
        .count() as u64;
    let changed_groups: BTreeSet<&str> = plan.groups.iter().map(|g| g.provider_id.as_str()).collect();
    plan.unchanged_groups = stored
        .groups
        .iter()
        .filter(|g| !changed_groups.contains(g.provider_id.as_str()))
        .count() as u64;
    plan.users.sort_by(|a, b| {
        (a.username.to_lowercase(), &a.provider_id).cmp(&(b.username.to_lowercase(), &b.provider_id))
    });
    plan.groups.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.provider_id).cmp(&(b.name.to_lowercase(), &b.provider_id))
    });
}

/// The connection's stored users and groups by provider id.
pub(crate) struct StoreView<'a> {
    users: BTreeMap<&'a str, &'a StoredUser>,
    groups: BTreeMap<&'a str, &'a StoredGroup>,
}

impl<'a> StoreView<'a> {
    fn new(stored: &'a ConnectionState) -> Self {
        StoreView {
            users: stored.users.iter().map(|u| (u.provider_id.as_str(), u)).collect(),
            groups: stored
                .groups
                .iter()
                .map(|g| (g.provider_id.as_str(), g))
                .collect(),
        }
    }

    fn user(&self, pid: &str) -> Option<&'a StoredUser> {
        self.users.get(pid).copied()
    }

    fn group(&self, pid: &str) -> Option<&'a StoredGroup> {
        self.groups.get(pid).copied()
    }
}

/// What the user and group stages decided, as the membership and photo stages need it: which
/// users and groups this run manages, and their local names after the run.
pub(crate) struct Scope<'a> {
    desired: &'a Desired,
    view: &'a StoreView<'a>,
    policy: &'a Policy,
    intents: &'a BTreeMap<String, users::Intent<'a>>,
    skipped_new: &'a BTreeSet<String>,
    users_deleted: &'a BTreeSet<String>,
    groups_frozen: &'a BTreeSet<String>,
    new_names: BTreeMap<String, String>,
}

impl Scope<'_> {
    /// Users whose memberships this run manages: present at the source and written or unchanged.
    fn managed_user(&self, pid: &str) -> bool {
        matches!(self.desired.users.get(pid), Some(Target::Put { .. }))
            && !self.skipped_new.contains(pid)
            && (self.view.users.contains_key(pid) || self.intents.contains_key(pid))
            && !self.users_deleted.contains(pid)
            && self
                .view
                .user(pid)
                .is_none_or(|s| protection::protected_user(self.policy, s).is_none())
    }

    fn group_managed(&self, pid: &str) -> bool {
        self.desired.groups.contains_key(pid) && !self.groups_frozen.contains(pid)
    }

    /// Objects deleted while the run read them: their memberships are left as stored.
    fn group_frozen(&self, pid: &str) -> bool {
        self.desired.vanished_groups.contains(pid)
    }

    fn user_frozen(&self, pid: &str) -> bool {
        self.desired.vanished_users.contains(pid)
    }

    fn member_ok(&self, group: &str, member: &Member) -> bool {
        self.group_managed(group)
            && !self.group_frozen(group)
            && match member {
                Member::User(u) => self.managed_user(u) && !self.user_frozen(u),
                Member::Group(g) => self.group_managed(g) && !self.group_frozen(g),
            }
    }

    fn effective_ok(&self, g: &str, u: &str) -> bool {
        self.group_managed(g) && self.managed_user(u) && !self.group_frozen(g) && !self.user_frozen(u)
    }

    fn group_name(&self, pid: &str) -> String {
        self.desired
            .groups
            .get(pid)
            .map(|g| g.name.clone())
            .or_else(|| self.view.group(pid).map(|g| g.name.clone()))
            .unwrap_or_else(|| pid.to_string())
    }

    fn user_name(&self, pid: &str) -> String {
        self.new_names
            .get(pid)
            .cloned()
            .or_else(|| self.view.user(pid).map(|u| u.username.clone()))
            .unwrap_or_else(|| pid.to_string())
    }
}
