//! The push plan: the desired state of a target against what usersync manages there
//! ([`TargetState`]). Objects whose hash did not change produce no step, so a push with no
//! change writes nothing. Only objects usersync created or adopted are ever updated,
//! deactivated or deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use usersync_config::Deprovision;
use usersync_store::{TargetKind, TargetObject, TargetState};

use super::desired::DesiredTarget;

/// One step of a push. Users and groups are named by source key; the executor finds their
/// application ids in the target state (or in what this push created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PushStep {
    /// Create a group (or adopt the one that exists with its name).
    CreateGroup {
        /// Source key.
        key: String,
        /// Display name.
        name: String,
    },
    /// Rename a group usersync manages.
    RenameGroup {
        /// Source key.
        key: String,
        /// New display name.
        name: String,
    },
    /// Create a user (or adopt the account that exists with its userName).
    CreateUser {
        /// Source key.
        key: String,
        /// userName.
        user_name: String,
    },
    /// Update a managed user's attributes (reactivation included).
    UpdateUser {
        /// Source key.
        key: String,
        /// userName.
        user_name: String,
    },
    /// Add members to a group.
    AddMembers {
        /// Group source key.
        group: String,
        /// User source keys.
        users: Vec<String>,
    },
    /// Remove members from a group.
    RemoveMembers {
        /// Group source key.
        group: String,
        /// User source keys.
        users: Vec<String>,
    },
    /// Deactivate a managed user (`active=false`).
    DeactivateUser {
        /// Source key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Delete a managed user.
    DeleteUser {
        /// Source key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Delete a managed group.
    DeleteGroup {
        /// Source key.
        key: String,
    },
}

impl PushStep {
    /// Whether the step takes something away (run last; skipped after an error).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            PushStep::DeactivateUser { .. }
                | PushStep::DeleteUser { .. }
                | PushStep::DeleteGroup { .. }
                | PushStep::RemoveMembers { .. }
        )
    }
}

/// Counts of a push plan (the JSON contract, as `sync`'s counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PushCounts {
    /// Users created.
    pub users_created: u64,
    /// Users updated.
    pub users_updated: u64,
    /// Users deactivated.
    pub users_deactivated: u64,
    /// Users deleted.
    pub users_deleted: u64,
    /// Users unchanged.
    pub users_unchanged: u64,
    /// Groups created.
    pub groups_created: u64,
    /// Groups renamed.
    pub groups_renamed: u64,
    /// Groups deleted.
    pub groups_deleted: u64,
    /// Membership changes: added.
    pub members_added: u64,
    /// Membership changes: removed.
    pub members_removed: u64,
}

/// The plan of one push, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushPlan {
    /// Steps in order: groups, users (managers first), memberships, then the destructive ones.
    pub steps: Vec<PushStep>,
    /// Counts.
    pub counts: PushCounts,
    /// Active accounts usersync manages in the target before the push (the percentage base).
    pub managed_active_before: u64,
}

impl PushPlan {
    /// Deactivations and deletions of users (what the gates limit).
    pub fn removals(&self) -> u64 {
        self.counts.users_deactivated + self.counts.users_deleted
    }

    /// True when the push writes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Diff the desired state against the target state.
pub fn diff(desired: &DesiredTarget, state: &TargetState, deprovision: Deprovision) -> PushPlan {
    let managed: BTreeMap<(TargetKind, &str), &TargetObject> = state
        .objects
        .iter()
        .map(|o| ((o.kind, o.source_key.as_str()), o))
        .collect();
    let mut plan = PushPlan {
        managed_active_before: state
            .objects
            .iter()
            .filter(|o| o.kind == TargetKind::User && o.active)
            .count() as u64,
        ..PushPlan::default()
    };
    let mut destructive = Vec::new();
    // groups
    for g in desired.groups.values() {
        match managed.get(&(TargetKind::Group, g.key.as_str())) {
            None => {
                plan.counts.groups_created += 1;
                plan.steps.push(PushStep::CreateGroup {
                    key: g.key.clone(),
                    name: g.name.clone(),
                });
            }
            Some(o) if o.hash.as_deref() != Some(g.hash.as_str()) => {
                plan.counts.groups_renamed += 1;
                plan.steps.push(PushStep::RenameGroup {
                    key: g.key.clone(),
                    name: g.name.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let mut deleted_groups = BTreeSet::new();
    for o in state.objects.iter().filter(|o| o.kind == TargetKind::Group) {
        if !desired.groups.contains_key(&o.source_key) {
            plan.counts.groups_deleted += 1;
            deleted_groups.insert(o.source_key.clone());
            destructive.push(PushStep::DeleteGroup {
                key: o.source_key.clone(),
            });
        }
    }
    // users: managers before the users they manage (their app id is written with them)
    let mut creates = Vec::new();
    for w in desired.users.values() {
        match managed.get(&(TargetKind::User, w.key.as_str())) {
            None if !w.user.active => {} // disabled at the source and never provisioned
            None => creates.push(w),
            Some(o) if !w.user.active => {
                if o.active {
                    plan.counts.users_deactivated += 1;
                    destructive.push(PushStep::DeactivateUser {
                        key: w.key.clone(),
                        reason: "disabled at the source".into(),
                    });
                } else {
                    plan.counts.users_unchanged += 1;
                }
            }
            Some(o) if o.hash.as_deref() != Some(w.hash.as_str()) || !o.active => {
                plan.counts.users_updated += 1;
                creates.push(w);
            }
            Some(_) => plan.counts.users_unchanged += 1,
        }
    }
    let depth = |key: &str| {
        let mut d = 0;
        let mut at = desired.users.get(key).and_then(|w| w.manager_key.as_deref());
        while let Some(m) = at {
            d += 1;
            if d > desired.users.len() {
                break; // a manager cycle
            }
            at = desired.users.get(m).and_then(|w| w.manager_key.as_deref());
        }
        d
    };
    creates.sort_by_key(|w| (depth(&w.key), w.key.clone()));
    for w in creates {
        if managed.contains_key(&(TargetKind::User, w.key.as_str())) {
            plan.steps.push(PushStep::UpdateUser {
                key: w.key.clone(),
                user_name: w.user.user_name.clone(),
            });
        } else {
            plan.counts.users_created += 1;
            plan.steps.push(PushStep::CreateUser {
                key: w.key.clone(),
                user_name: w.user.user_name.clone(),
            });
        }
    }
    for o in state.objects.iter().filter(|o| o.kind == TargetKind::User) {
        if desired.users.contains_key(&o.source_key) {
            continue;
        }
        let reason = if desired.excluded.iter().any(|e| e.key == o.source_key) {
            "out of the target's scope"
        } else {
            "no longer in the store"
        };
        match deprovision {
            Deprovision::Delete => {
                plan.counts.users_deleted += 1;
                destructive.push(PushStep::DeleteUser {
                    key: o.source_key.clone(),
                    reason: reason.into(),
                });
            }
            Deprovision::Deactivate if o.active => {
                plan.counts.users_deactivated += 1;
                destructive.push(PushStep::DeactivateUser {
                    key: o.source_key.clone(),
                    reason: reason.into(),
                });
            }
            Deprovision::Deactivate => {}
        }
    }
    // memberships
    let pushed: BTreeSet<(String, String)> = state.members.iter().cloned().collect();
    let mut adds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (g, u) in desired.members.difference(&pushed) {
        adds.entry(g.as_str()).or_default().push(u.clone());
    }
    for (group, users) in adds {
        plan.counts.members_added += users.len() as u64;
        plan.steps.push(PushStep::AddMembers {
            group: group.to_string(),
            users,
        });
    }
    let mut removes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (g, u) in pushed.difference(&desired.members) {
        if deleted_groups.contains(g) {
            continue; // the group goes, with its members
        }
        removes.entry(g.as_str()).or_default().push(u.clone());
    }
    for (group, users) in removes {
        plan.counts.members_removed += users.len() as u64;
        plan.steps.push(PushStep::RemoveMembers {
            group: group.to_string(),
            users,
        });
    }
    // membership removals before deactivations and deletions, groups last
    destructive.sort_by_key(|s| match s {
        PushStep::DeactivateUser { .. } | PushStep::DeleteUser { .. } => 0,
        _ => 1,
    });
    plan.steps.extend(destructive);
    plan
}
