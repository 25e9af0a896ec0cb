//! The users stage: what happens to each user, the usernames the run claims, and the user
//! entries and changes of the plan.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use usersync_config::{Policy, UserRemoval};
use usersync_store::{username_key, Change, ConnectionState, StoredUser};

use super::{DiffContext, Plan, StoreView, UserAction, UserChange};
use crate::desired::{Desired, Target};

/// The final intent for one user, before usernames are resolved. The wanted record is shared
/// with `desired` (copied only when the plan edits it) and then with the change that writes it,
/// the stored one borrowed from the store's state: one intent costs a few pointers, not a copy
/// of the user.
#[derive(Debug)]
pub(crate) enum Intent<'a> {
    /// Write this record.
    Put {
        user: Arc<StoredUser>,
        stored: Option<&'a StoredUser>,
    },
    /// Delete the stored user.
    Delete { reason: Cow<'a, str> },
}

impl Intent<'_> {
    /// Deactivating or deleting a user of the store.
    pub(crate) fn destructive(&self) -> bool {
        match self {
            Intent::Delete { .. } => true,
            Intent::Put {
                user,
                stored: Some(s),
            } => s.active && !user.active,
            Intent::Put { .. } => false,
        }
    }
}

/// Each user's intent: the wanted state of the users the source returned, and the policy's
/// `on_user_missing` for the stored users it did not return. Users left as they are have none.
pub(crate) fn intents<'a>(
    desired: &'a Desired,
    stored: &'a ConnectionState,
    view: &StoreView<'a>,
    policy: &Policy,
) -> BTreeMap<String, Intent<'a>> {
    let mut intents: BTreeMap<String, Intent<'a>> = BTreeMap::new();
    for (pid, target) in &desired.users {
        let st = view.user(pid);
        match target {
            Target::Put {
                user,
                create,
                keep_manager,
            } => {
                let mut user = Arc::clone(user);
                if let Some(s) = st {
                    if *keep_manager && user.manager != s.manager {
                        Arc::make_mut(&mut user).manager = s.manager.clone();
                    }
                } else if !create {
                    continue;
                }
                intents.insert(pid.clone(), Intent::Put { user, stored: st });
            }
            Target::Delete { reason } if st.is_some() => {
                let reason = Cow::Borrowed(reason.as_str());
                intents.insert(pid.clone(), Intent::Delete { reason });
            }
            Target::Delete { .. } | Target::Keep => {}
        }
    }
    const MISSING: &str = "missing from the source";
    for s in &stored.users {
        if desired.users.contains_key(&s.provider_id) {
            continue;
        }
        match policy.on_user_missing {
            UserRemoval::Keep => {}
            UserRemoval::Delete => {
                let reason = Cow::Borrowed(MISSING);
                intents.insert(s.provider_id.clone(), Intent::Delete { reason });
            }
            UserRemoval::Deactivate if s.active => {
                let mut u = s.clone();
                u.active = false;
                u.inactive_reason = Some(MISSING.into());
                let intent = Intent::Put {
                    user: Arc::new(u),
                    stored: Some(s),
                };
                intents.insert(s.provider_id.clone(), intent);
            }
            UserRemoval::Deactivate => {}
        }
    }
    intents
}

/// The outcome of username resolution.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Claims {
    /// New users not created: their username is taken.
    pub skipped_new: BTreeSet<String>,
    /// Existing users whose new username is taken: they keep the stored one.
    pub kept_old_name: BTreeSet<String>,
}

/// Usernames are unique across the store by key; collisions are reported in `plan.conflicts`,
/// never merged. Existing users (renames) claim first, then new users, each in provider-id order.
pub(crate) fn claim_usernames(
    intents: &BTreeMap<String, Intent<'_>>,
    view: &StoreView<'_>,
    ctx: &DiffContext<'_>,
    plan: &mut Plan,
) -> Claims {
    let me = |pid: &str| (ctx.connection.to_string(), pid.to_string());
    let mut claims: BTreeMap<String, (String, String)> = ctx
        .holders
        .iter()
        .map(|h| (h.key.clone(), (h.connection.clone(), h.provider_id.clone())))
        .collect();
    release_claims(intents, view, &me, &mut claims);
    let holder_name = |k: &str| {
        ctx.holders.iter().find(|h| h.key == k).map(|h| {
            format!(
                "`{}` of connection `{}` ({})",
                h.username, h.connection, h.provider_id
            )
        })
    };
    let mut order: Vec<&String> = intents.keys().filter(|p| view.user(p).is_some()).collect();
    order.extend(intents.keys().filter(|p| view.user(p).is_none()));
    let mut out = Claims::default();
    for pid in order {
        let Some(Intent::Put { user, stored: st }) = intents.get(pid) else {
            continue;
        };
        let k = username_key(&user.username);
        let Some((conn, holder)) = claims.get(&k).filter(|h| **h != me(pid)).cloned() else {
            claims.insert(k, me(pid));
            continue;
        };
        let who = holder_name(&k).unwrap_or_else(|| {
            let name = match intents.get(&holder) {
                Some(Intent::Put { user, .. }) => user.username.clone(),
                _ => String::new(),
            };
            format!("`{name}` of connection `{conn}` ({holder})")
        });
        let Some(s) = st else {
            plan.conflicts.push(format!(
                "username `{}` ({pid}) collides with {who}; the user was not created",
                user.username
            ));
            out.skipped_new.insert(pid.clone());
            continue;
        };
        plan.conflicts.push(format!(
            "username `{}` ({pid}) collides with {who}; the user keeps the name `{}`",
            user.username, s.username
        ));
        let old = username_key(&s.username);
        match claims.get(&old) {
            Some(h) if *h != me(pid) => plan.conflicts.push(format!(
                "the old name `{}` of {pid} was claimed in the same run by {}; resolve by hand",
                s.username, h.1
            )),
            _ => {
                claims.insert(old, me(pid));
                out.kept_old_name.insert(pid.clone());
            }
        }
    }
    out
}

/// Names given up in this run (deleted users, renames) are free for the others.
fn release_claims(
    intents: &BTreeMap<String, Intent<'_>>,
    view: &StoreView<'_>,
    me: &dyn Fn(&str) -> (String, String),
    claims: &mut BTreeMap<String, (String, String)>,
) {
    for (pid, intent) in intents {
        let release = match intent {
            Intent::Delete { .. } => true,
            Intent::Put {
                user,
                stored: Some(s),
            } => username_key(&user.username) != username_key(&s.username),
            Intent::Put { .. } => false,
        };
        if let Some(s) = view.user(pid).filter(|_| release) {
            let k = username_key(&s.username);
            if claims.get(&k) == Some(&me(pid)) {
                claims.remove(&k);
            }
        }
    }
}

/// The user entries and changes, in provider-id order.
pub(crate) fn user_changes(
    intents: &BTreeMap<String, Intent<'_>>,
    claims: &Claims,
    view: &StoreView<'_>,
    plan: &mut Plan,
) {
    for (pid, intent) in intents {
        let (user, st) = match intent {
            Intent::Delete { reason } => {
                let username = view.user(pid).map(|s| s.username.clone()).unwrap_or_default();
                plan.users.push(UserChange {
                    action: UserAction::Deleted,
                    provider_id: pid.clone(),
                    username,
                    previous_username: None,
                    changed: vec![],
                    reason: Some(reason.to_string()),
                });
                plan.changes.push(Change::DeleteUser {
                    provider_id: pid.clone(),
                });
                continue;
            }
            Intent::Put { user, stored } => (user, stored),
        };
        if claims.skipped_new.contains(pid) {
            continue;
        }
        let mut user = Arc::clone(user);
        if let Some(s) = st.filter(|_| claims.kept_old_name.contains(pid)) {
            Arc::make_mut(&mut user).username = s.username.clone();
        }
        let Some(s) = st else {
            plan.users.push(UserChange {
                action: UserAction::Created,
                provider_id: pid.clone(),
                username: user.username.clone(),
                previous_username: None,
                changed: vec![],
                reason: None,
            });
            plan.changes.push(Change::PutUser(user));
            continue;
        };
        let changed = user_diff(s, &user);
        if changed.is_empty() {
            continue;
        }
        let renamed = s.username != user.username;
        let action = if s.active && !user.active {
            UserAction::Deactivated
        } else if !s.active && user.active {
            UserAction::Reactivated
        } else if renamed {
            UserAction::Renamed
        } else {
            UserAction::Updated
        };
        plan.users.push(UserChange {
            action,
            provider_id: pid.clone(),
            username: user.username.clone(),
            previous_username: renamed.then(|| s.username.clone()),
            changed,
            reason: (action == UserAction::Deactivated)
                .then(|| user.inactive_reason.clone())
                .flatten(),
        });
        plan.changes.push(Change::PutUser(user));
    }
}

/// The username each written user has after the run, by provider id.
pub(crate) fn new_names(plan: &Plan) -> BTreeMap<String, String> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::PutUser(u) => Some((u.provider_id.clone(), u.username.clone())),
            _ => None,
        })
        .collect()
}

/// The attributes that differ between the stored and the wanted record.
pub(crate) fn user_diff(old: &StoredUser, new: &StoredUser) -> Vec<String> {
    let mut out = Vec::new();
    let mut f = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    f("username", old.username != new.username);
    f("email", old.email != new.email);
    f("display_name", old.display_name != new.display_name);
    f("given_name", old.given_name != new.given_name);
    f("family_name", old.family_name != new.family_name);
    f("active", old.active != new.active);
    f(
        "status",
        old.state != new.state || old.status_raw != new.status_raw,
    );
    f("manager", old.manager != new.manager);
    f("inactive_reason", old.inactive_reason != new.inactive_reason);
    let keys: BTreeSet<&String> = old.attributes.keys().chain(new.attributes.keys()).collect();
    for k in keys {
        if old.attributes.get(k) != new.attributes.get(k) {
            out.push(format!("attributes.{k}"));
        }
    }
    out
}
