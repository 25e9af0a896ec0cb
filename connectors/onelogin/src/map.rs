//! Wire -> model mapping (pure).

use usersync_model::{Group, GroupKind, ManagerRef, Membership, User, UserState, UserStatus};
use usersync_sdk::ConnectorError;

use crate::api;

/// Map OneLogin's `status` and `state` codes to a normalised state, keeping both raw values.
///
/// `state` (approval) wins when it blocks the account: unapproved -> staged, rejected or
/// unlicensed -> disabled. Otherwise `status` decides. An undocumented code is an error naming
/// the user, never a guess.
pub fn status(user_id: u64, status: Option<i64>, state: Option<i64>) -> Result<UserStatus, ConnectorError> {
    let raw = format!(
        "status={},state={}",
        status.map(|s| s.to_string()).unwrap_or_else(|| "null".into()),
        state.map(|s| s.to_string()).unwrap_or_else(|| "null".into())
    );
    let unknown = |what: &str, v: i64| {
        ConnectorError::protocol(format!(
            "OneLogin user {user_id} has an undocumented {what} code {v}"
        ))
    };
    let by_state = match state {
        None | Some(1) => None,
        Some(0) => Some(UserState::Staged),
        Some(2) | Some(3) => Some(UserState::Disabled),
        Some(v) => return Err(unknown("state", v)),
    };
    let by_status = match status {
        Some(1) | Some(4) | Some(5) | Some(8) => UserState::Active,
        Some(0) | Some(7) => UserState::Staged,
        Some(2) => UserState::Disabled,
        Some(3) => UserState::Locked,
        Some(v) => return Err(unknown("status", v)),
        None => {
            return Err(ConnectorError::protocol(format!(
                "OneLogin user {user_id} has no `status` field"
            )))
        }
    };
    Ok(UserStatus::new(by_state.unwrap_or(by_status), raw))
}

/// Map a v2 user.
pub fn user(u: &api::User) -> Result<User, ConnectorError> {
    let st = status(u.id, u.status, u.state)?;
    let username = u
        .username
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| u.email.clone().filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            ConnectorError::protocol(format!("OneLogin user {} has neither username nor email", u.id))
        })?;
    let mut out = User::new(u.id.to_string(), username, st);
    out.email = u.email.clone().filter(|s| !s.is_empty());
    out.given_name = u.firstname.clone().filter(|s| !s.is_empty());
    out.family_name = u.lastname.clone().filter(|s| !s.is_empty());
    out.display_name = match (&out.given_name, &out.family_name) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    out.manager = u
        .manager_user_id
        .flatten()
        .filter(|m| *m != 0)
        .map(|m| ManagerRef::Id(m.to_string()));
    // The listing asks for `manager_user_id` (USER_FIELDS): present, even as null, it says
    // whether there is a manager.
    out.manager_known = u.manager_user_id.is_some();
    for (key, value) in [
        ("department", &u.department),
        ("title", &u.title),
        ("company", &u.company),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            out.attributes
                .insert(key.into(), serde_json::Value::String(v.clone()));
        }
    }
    if let Some(ext) = u.external_id.as_ref().filter(|v| !v.is_null()) {
        out.attributes.insert("external_id".into(), ext.clone());
    }
    if let Some(d) = u.directory_id {
        out.attributes
            .insert("directory_id".into(), serde_json::Value::from(d));
    }
    if let Some(custom) = &u.custom_attributes {
        for (k, v) in custom {
            if !v.is_null() {
                out.attributes.insert(format!("custom_attributes.{k}"), v.clone());
            }
        }
    }
    Ok(out)
}

/// The membership carried by a user's single `group_id`, if any.
pub fn group_membership(u: &api::User) -> Option<Membership> {
    u.group_id
        .filter(|g| *g != 0)
        .map(|g| Membership::direct_user(g.to_string(), u.id.to_string()))
}

/// The role memberships carried by a user's `role_ids`.
pub fn role_memberships(u: &api::User) -> Vec<Membership> {
    u.role_ids
        .iter()
        .flatten()
        .map(|r| Membership::direct_user(role_group_id(*r), u.id.to_string()))
        .collect()
}

/// A group.
pub fn group(g: &api::Group) -> Group {
    Group::new(g.id.to_string(), g.name.clone())
}

/// Roles become groups of kind `Role` with ids prefixed `role:` so they never collide with a
/// group of the same number.
pub fn role(r: &api::Role) -> Group {
    let mut g = Group::new(role_group_id(r.id), r.name.clone());
    g.kind = GroupKind::Role;
    g
}

/// The group id under which a role is synced.
pub fn role_group_id(role_id: u64) -> String {
    format!("role:{role_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_blocks_override_status() {
        assert_eq!(status(1, Some(1), Some(1)).unwrap().state, UserState::Active);
        assert_eq!(status(1, Some(1), Some(0)).unwrap().state, UserState::Staged);
        assert_eq!(status(1, Some(1), Some(2)).unwrap().state, UserState::Disabled);
        assert_eq!(status(1, Some(3), Some(1)).unwrap().state, UserState::Locked);
        assert_eq!(status(1, Some(2), None).unwrap().raw, "status=2,state=null");
        assert!(status(9, Some(6), Some(1))
            .unwrap_err()
            .to_string()
            .contains("user 9"));
        assert!(status(9, None, Some(1)).is_err());
    }
}
