//! Protection and withholding: the users and groups the policy protects are never changed,
//! and nothing destructive is applied on a partial read or when an object the decision depends
//! on vanished during the run. Each skipped change is named in the plan (`protected`,
//! `withheld`).

use std::collections::{BTreeMap, BTreeSet};

use usersync_config::Policy;
use usersync_store::{StoredGroup, StoredUser};

use super::users::Intent;
use super::{DiffContext, Plan, StoreView};
use crate::desired::Desired;

/// The protection pattern that covers a stored user, if any.
pub(crate) fn protected_user(policy: &Policy, u: &StoredUser) -> Option<String> {
    policy
        .protected_user(&u.username, &u.provider_id)
        .map(|p| p.to_string())
}

/// The protection pattern that covers a stored group (by local name, source name or id).
pub(crate) fn protected_group(policy: &Policy, g: &StoredGroup) -> Option<String> {
    policy
        .protected_group(&[&g.name, &g.source_name, &g.provider_id])
        .map(|p| p.to_string())
}

/// Drop the intents that touch a protected user, and the deactivations and deletions of a
/// partial read or of a user whose scope depends on a vanished object. Returns the users that
/// are deleted.
pub(crate) fn screen_users(
    intents: &mut BTreeMap<String, Intent<'_>>,
    desired: &Desired,
    view: &StoreView<'_>,
    ctx: &DiffContext<'_>,
    plan: &mut Plan,
) -> BTreeSet<String> {
    let mut users_deleted: BTreeSet<String> = BTreeSet::new();
    intents.retain(|pid, intent| {
        if let Some(s) = view.user(pid) {
            if let Some(reason) = user_hold(pid, s, intent.destructive(), desired, ctx) {
                match reason {
                    Hold::Protected(line) => plan.protected.push(line),
                    Hold::Withheld(line) => plan.withheld.push(line),
                }
                return false;
            }
        }
        if matches!(intent, Intent::Delete { .. }) {
            users_deleted.insert(pid.clone());
        }
        true
    });
    users_deleted
}

/// Why a change is not applied.
#[derive(Debug, PartialEq, Eq)]
enum Hold {
    /// A protection pattern covers the object.
    Protected(String),
    /// Destructive on data this run cannot trust.
    Withheld(String),
}

fn user_hold(
    pid: &str,
    s: &StoredUser,
    destructive: bool,
    desired: &Desired,
    ctx: &DiffContext<'_>,
) -> Option<Hold> {
    if let Some(p) = protected_user(ctx.policy, s) {
        return Some(Hold::Protected(format!(
            "user `{}` ({pid}) is protected by `{p}`",
            s.username
        )));
    }
    if destructive && !ctx.complete {
        return Some(Hold::Withheld(format!(
            "user `{}` ({pid}) would be deactivated or deleted",
            s.username
        )));
    }
    if destructive && desired.uncertain_users.contains(pid) {
        return Some(Hold::Withheld(format!(
            "user `{}` ({pid}) would be deactivated or deleted, but an object its scope depends on \
             was deleted during the run; the next run decides",
            s.username
        )));
    }
    None
}
