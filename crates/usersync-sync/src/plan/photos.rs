//! The photos stage: photos set, replaced and removed for managed users.

use std::collections::BTreeMap;

use usersync_store::{Change, ConnectionState};

use super::{Plan, Scope, UserAction, UserChange};
use crate::desired::PhotoTarget;

/// Photo changes; each is named in its user's entry (`changed: photo`), an entry of its own
/// (`updated`) for a user that does not otherwise change.
pub(crate) fn photo_changes(scope: &Scope<'_>, stored: &ConnectionState, plan: &mut Plan) {
    let stored_p: BTreeMap<&str, &str> = stored
        .photos
        .iter()
        .map(|p| (p.user.as_str(), p.sha256.as_str()))
        .collect();
    // a user's entry by provider id (one lookup per photo change, not a scan of every entry)
    let mut entry_of: BTreeMap<String, usize> = plan
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.provider_id.clone(), i))
        .collect();
    for (pid, target) in &scope.desired.photos {
        if !scope.managed_user(pid) {
            continue;
        }
        let change = match target {
            PhotoTarget::Keep => None,
            PhotoTarget::Set(None) => stored_p
                .contains_key(pid.as_str())
                .then(|| Change::RemovePhoto { user: pid.clone() }),
            PhotoTarget::Set(Some(p)) => {
                let same_image = stored_p.get(pid.as_str()) == Some(&p.sha256.as_str());
                if same_image && p.version.is_some() {
                    // fetched because its version (ETag) was not stored: record the version, so
                    // the next run does not fetch it again; the image itself did not change
                    plan.changes.push(Change::PutPhoto(Box::new(p.clone())));
                }
                (!same_image).then(|| Change::PutPhoto(Box::new(p.clone())))
            }
        };
        let Some(c) = change else { continue };
        plan.changes.push(c);
        match entry_of.get(pid).and_then(|&i| plan.users.get_mut(i)) {
            Some(entry) => entry.changed.push("photo".into()),
            None if scope.view.user(pid).is_some() => {
                entry_of.insert(pid.clone(), plan.users.len());
                plan.users.push(UserChange {
                    action: UserAction::Updated,
                    provider_id: pid.clone(),
                    username: scope.user_name(pid),
                    previous_username: None,
                    changed: vec!["photo".into()],
                    reason: None,
                });
            }
            None => {}
        }
    }
}
