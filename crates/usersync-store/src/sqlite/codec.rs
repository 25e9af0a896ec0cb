//! Rows <-> stored records.

use super::*;

pub(crate) fn state_str(s: UserState) -> &'static str {
    match s {
        UserState::Active => "active",
        UserState::Disabled => "disabled",
        UserState::Locked => "locked",
        UserState::Staged => "staged",
        UserState::Deprovisioned => "deprovisioned",
    }
}

pub(crate) fn parse_state(s: &str) -> Result<UserState, StoreError> {
    Ok(match s {
        "active" => UserState::Active,
        "disabled" => UserState::Disabled,
        "locked" => UserState::Locked,
        "staged" => UserState::Staged,
        "deprovisioned" => UserState::Deprovisioned,
        other => return Err(StoreError::Corrupt(format!("unknown user state `{other}`"))),
    })
}

pub(crate) fn kind_str(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Group => "group",
        GroupKind::Role => "role",
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) const USER_COLS: &str =
    "connection, provider_id, username, email, display_name, given_name, family_name, active, \
                         state, status_raw, manager, attributes, inactive_reason";

pub(crate) type RawUser = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

pub(crate) fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

pub(crate) fn decode_user(u: RawUser) -> Result<StoredUser, StoreError> {
    Ok(StoredUser {
        connection: u.0,
        provider_id: u.1,
        username: u.2,
        email: u.3,
        display_name: u.4,
        given_name: u.5,
        family_name: u.6,
        active: u.7,
        state: parse_state(&u.8)?,
        status_raw: u.9,
        manager: u.10.as_deref().map(|m| json(m, "manager")).transpose()?,
        attributes: json(&u.11, "user attributes")?,
        inactive_reason: u.12,
    })
}

pub(crate) type RawGroup = (String, String, String, String, String, Option<String>, String);

pub(crate) fn decode_group(g: RawGroup) -> Result<StoredGroup, StoreError> {
    Ok(StoredGroup {
        connection: g.0,
        provider_id: g.1,
        name: g.2,
        source_name: g.3,
        kind: match g.4.as_str() {
            "group" => GroupKind::Group,
            "role" => GroupKind::Role,
            other => return Err(StoreError::Corrupt(format!("unknown group kind `{other}`"))),
        },
        description: g.5,
        attributes: json(&g.6, "group attributes")?,
    })
}

pub(crate) const GROUP_COLS: &str =
    "connection, provider_id, name, source_name, kind, description, attributes";

pub(crate) fn read_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawGroup> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

pub(crate) type RawRun = (
    i64,
    String,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

pub(crate) fn read_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

pub(crate) fn decode_run(r: RawRun) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: r.0,
        connection: r.1,
        started_ms: r.2,
        finished_ms: r.3,
        status: RunStatus::parse(&r.4)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{}`", r.4)))?,
        counts: json(&r.5, "run counts")?,
        errors: json(&r.6, "run errors")?,
        plan: json(&r.7, "run plan")?,
        requests: r.8.max(0) as u64,
        source_users: r.9.map(|n| n.max(0) as u64),
    })
}
