//! The groups stage: groups created, renamed, updated and deleted.

use std::collections::BTreeSet;

use usersync_config::GroupRemoval;
use usersync_store::{Change, ConnectionState, StoredGroup};

use super::protection::protected_group;
use super::{DiffContext, GroupAction, GroupChange, Plan, StoreView};
use crate::desired::Desired;

/// The group entries and changes. Returns the groups whose memberships this run leaves as
/// stored (protected, or missing from the source).
pub(crate) fn group_changes(
    desired: &Desired,
    stored: &ConnectionState,
    view: &StoreView<'_>,
    ctx: &DiffContext<'_>,
    plan: &mut Plan,
) -> BTreeSet<String> {
    let mut groups_frozen: BTreeSet<String> = BTreeSet::new();
    for (pid, want) in &desired.groups {
        let Some(have) = view.group(pid) else {
            plan.groups.push(GroupChange {
                action: GroupAction::Created,
                provider_id: pid.clone(),
                name: want.name.clone(),
                previous_name: None,
                changed: vec![],
            });
            plan.changes.push(Change::PutGroup(Box::new(want.clone())));
            continue;
        };
        if have == want {
            continue;
        }
        if let Some(p) = protected_group(ctx.policy, have) {
            plan.protected
                .push(format!("group `{}` ({pid}) is protected by `{p}`", have.name));
            groups_frozen.insert(pid.clone());
            continue;
        }
        let renamed = have.name != want.name;
        plan.groups.push(GroupChange {
            action: if renamed {
                GroupAction::Renamed
            } else {
                GroupAction::Updated
            },
            provider_id: pid.clone(),
            name: want.name.clone(),
            previous_name: renamed.then(|| have.name.clone()),
            changed: group_diff(have, want),
        });
        plan.changes.push(Change::PutGroup(Box::new(want.clone())));
    }
    for have in &stored.groups {
        if desired.groups.contains_key(&have.provider_id) {
            continue;
        }
        groups_frozen.insert(have.provider_id.clone());
        missing_group(have, ctx, plan);
    }
    groups_frozen
}

/// A stored group the source no longer returns: deleted when the policy says so, unless it is
/// protected or the read was partial.
fn missing_group(have: &StoredGroup, ctx: &DiffContext<'_>, plan: &mut Plan) {
    if ctx.policy.on_group_missing == GroupRemoval::Keep {
        return;
    }
    if let Some(p) = protected_group(ctx.policy, have) {
        plan.protected.push(format!(
            "group `{}` ({}) is protected by `{p}`",
            have.name, have.provider_id
        ));
        return;
    }
    if !ctx.complete {
        plan.withheld.push(format!(
            "group `{}` ({}) would be deleted",
            have.name, have.provider_id
        ));
        return;
    }
    plan.groups.push(GroupChange {
        action: GroupAction::Deleted,
        provider_id: have.provider_id.clone(),
        name: have.name.clone(),
        previous_name: None,
        changed: vec![],
    });
    plan.changes.push(Change::DeleteGroup {
        provider_id: have.provider_id.clone(),
    });
}

/// The attributes that differ between the stored and the wanted group.
pub(crate) fn group_diff(have: &StoredGroup, want: &StoredGroup) -> Vec<String> {
    [
        ("name", have.name != want.name),
        ("source_name", have.source_name != want.source_name),
        ("kind", have.kind != want.kind),
        ("description", have.description != want.description),
        ("attributes", have.attributes != want.attributes),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name.to_string())
    .collect()
}
