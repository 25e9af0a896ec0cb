//! Table tests of the push stages: desired state, diff, gates.

use usersync_config::{Deprovision, Pattern, TargetSettings, UserNameSource};
use usersync_model::{GroupKind, UserState};
use usersync_store::{
    ConnectionState, EffectiveMembership, StoredGroup, StoredUser, TargetKind, TargetObject, TargetOrigin,
    TargetState,
};

use super::desired::{build, source_key};
use super::gate::{gate, GateInput};
use super::plan::{diff, PushStep};

fn user(id: &str, name: &str, active: bool) -> StoredUser {
    StoredUser {
        connection: "okta".into(),
        provider_id: id.into(),
        username: name.into(),
        email: Some(format!("{name}@example.com")),
        display_name: Some(name.to_uppercase()),
        given_name: None,
        family_name: None,
        active,
        state: if active {
            UserState::Active
        } else {
            UserState::Disabled
        },
        status_raw: String::new(),
        manager: None,
        attributes: Default::default(),
        inactive_reason: None,
    }
}

fn group(id: &str, name: &str) -> StoredGroup {
    StoredGroup {
        connection: "okta".into(),
        provider_id: id.into(),
        name: name.into(),
        source_name: name.into(),
        kind: GroupKind::Group,
        description: None,
        attributes: Default::default(),
    }
}

fn eff(g: &str, u: &str) -> EffectiveMembership {
    EffectiveMembership {
        group: g.into(),
        user: u.into(),
        path: vec![g.into()],
    }
}

pub(super) fn source() -> Vec<(String, ConnectionState)> {
    let st = ConnectionState {
        users: vec![
            user("u1", "ada", true),
            user("u2", "bob", true),
            user("u3", "cy", false),
        ],
        groups: vec![group("g1", "aws-admins"), group("g2", "staff")],
        effective: vec![eff("g1", "u1"), eff("g2", "u1"), eff("g2", "u2"), eff("g2", "u3")],
        ..Default::default()
    };
    vec![("okta".to_string(), st)]
}

fn managed(kind: TargetKind, key: &str, hash: Option<String>, active: bool) -> TargetObject {
    TargetObject {
        kind,
        source_key: key.into(),
        app_id: format!("app-{key}"),
        etag: None,
        hash,
        origin: TargetOrigin::Created,
        active,
        updated_ms: 0,
    }
}

/// The state a complete push of `settings` leaves.
fn pushed(settings: &TargetSettings) -> TargetState {
    let d = build(settings, &source());
    let mut objects: Vec<TargetObject> = d
        .users
        .values()
        .filter(|w| w.user.active)
        .map(|w| managed(TargetKind::User, &w.key, Some(w.hash.clone()), true))
        .collect();
    objects.extend(
        d.groups
            .values()
            .map(|g| managed(TargetKind::Group, &g.key, Some(g.hash.clone()), true)),
    );
    TargetState {
        objects,
        members: d.members.iter().cloned().collect(),
    }
}

#[test]
fn desired_scopes_by_required_groups_and_flattens_members_of_active_users() {
    let all = build(&TargetSettings::default(), &source());
    assert_eq!(all.users.len(), 3);
    assert_eq!(all.groups.len(), 2);
    assert_eq!(all.in_scope, 2);
    assert!(
        !all.members
            .contains(&(source_key("okta", "g2"), source_key("okta", "u3"))),
        "a disabled user's membership is not pushed"
    );
    let scoped = TargetSettings {
        required_groups: vec![Pattern::parse("aws-*").expect("pattern")],
        ..TargetSettings::default()
    };
    let d = build(&scoped, &source());
    assert_eq!(d.users.keys().collect::<Vec<_>>(), vec!["okta/u1"]);
    assert_eq!(d.groups.len(), 1);
    assert_eq!(d.excluded.len(), 2);
    assert!(d.excluded[0].reason.contains("required_groups"));
    let by_email = TargetSettings {
        mapping: usersync_config::TargetMapping {
            user_name: UserNameSource::Email,
            ..Default::default()
        },
        ..TargetSettings::default()
    };
    assert_eq!(
        build(&by_email, &source()).users["okta/u1"].user.user_name,
        "ada@example.com"
    );
}

#[test]
fn first_push_creates_groups_then_users_then_members_and_a_second_writes_nothing() {
    let s = TargetSettings::default();
    let d = build(&s, &source());
    let plan = diff(&d, &TargetState::default(), Deprovision::Deactivate);
    let kinds: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            PushStep::CreateGroup { .. } => "group",
            PushStep::CreateUser { .. } => "user",
            PushStep::AddMembers { .. } => "members",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["group", "group", "user", "user", "members", "members"]
    );
    assert_eq!(
        plan.counts.users_created, 2,
        "the disabled, never-pushed user is not created"
    );
    assert_eq!(plan.counts.members_added, 3);
    let again = diff(&d, &pushed(&s), Deprovision::Deactivate);
    assert!(again.is_empty(), "{:?}", again.steps);
    assert_eq!(again.counts.users_unchanged, 2);
}

#[test]
fn changes_at_the_source_become_the_right_steps() {
    let s = TargetSettings::default();
    let state = pushed(&s);
    // rename a group, change an attribute, remove a user, disable another, drop a membership
    let mut src = source();
    src[0].1.groups[1].name = "everyone".into();
    src[0].1.users[0].display_name = Some("Ada L.".into());
    src[0].1.users[1].active = false;
    src[0]
        .1
        .effective
        .retain(|e| !(e.group == "g1" && e.user == "u1"));
    let d = build(&s, &src);
    let plan = diff(&d, &state, Deprovision::Deactivate);
    assert_eq!(plan.counts.groups_renamed, 1);
    assert_eq!(plan.counts.users_updated, 1);
    assert_eq!(plan.counts.users_deactivated, 1);
    assert_eq!(
        plan.counts.members_removed, 2,
        "ada left aws-admins, bob (disabled) left staff"
    );
    assert!(matches!(plan.steps.last(), Some(PushStep::DeactivateUser { .. })));
    // a user gone from the store: deleted in delete mode
    src[0].1.users.remove(1);
    let plan = diff(&build(&s, &src), &state, Deprovision::Delete);
    assert_eq!(plan.counts.users_deleted, 1);
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s, PushStep::DeleteUser { reason, .. } if reason == "no longer in the store")));
}

#[test]
fn objects_usersync_does_not_manage_are_never_in_the_plan() {
    // the target state only knows what usersync created or adopted: an app object made by hand
    // is not in it, so no step can name it; a managed object is updated by its source key only
    let s = TargetSettings::default();
    let plan = diff(&build(&s, &source()), &pushed(&s), Deprovision::Delete);
    assert!(plan.steps.is_empty());
}

#[test]
fn gates_block_mass_deprovisioning_and_incomplete_sources() {
    let s = TargetSettings {
        max_removals: 1,
        ..TargetSettings::default()
    };
    let state = pushed(&s);
    let mut src = source();
    src[0].1.users.clear();
    src[0].1.effective.clear();
    let d = build(&s, &src);
    let plan = diff(&d, &state, Deprovision::Deactivate);
    assert_eq!(plan.removals(), 2);
    let why = gate("aws", &plan, d.in_scope, &s, &GateInput::default()).expect("blocked");
    assert!(why.contains("no user is in target `aws`'s scope"), "{why}");
    let confirmed = GateInput {
        allow_deletes: Some(2),
        ..GateInput::default()
    };
    assert_eq!(gate("aws", &plan, d.in_scope, &s, &confirmed), None);
    // one of two users leaves: 50% > 10%
    let mut src = source();
    src[0].1.users.remove(1);
    let d = build(&s, &src);
    let plan = diff(&d, &state, Deprovision::Deactivate);
    let why = gate("aws", &plan, d.in_scope, &s, &GateInput::default()).expect("blocked");
    assert!(why.contains("max_removals / max_removal_percent"), "{why}");
    let input = GateInput {
        incomplete_sources: vec!["okta".into()],
        ..GateInput::default()
    };
    let plan = diff(&build(&s, &source()), &state, Deprovision::Deactivate);
    assert!(gate("aws", &plan, 2, &s, &input)
        .expect("blocked")
        .contains("`okta`"));
    let shrink = GateInput {
        last_in_scope: Some(10),
        ..GateInput::default()
    };
    assert!(gate("aws", &plan, 2, &s, &shrink)
        .expect("blocked")
        .contains("min_source_percent"));
}

#[test]
fn the_shared_thresholds_decide_for_sync_and_push_alike() {
    use super::gate::{crossed, Counts, Crossed, Limits};
    let limits = Limits {
        max_removals: 5,
        max_removal_percent: 10.0,
        min_source_percent: 50.0,
    };
    let c = |removals, active_before, source_now, source_before| Counts {
        removals,
        active_before,
        source_now,
        source_before,
    };
    // (counts, confirmed, expected)
    let table: Vec<(Counts, bool, Option<&str>)> = vec![
        (c(0, 100, 100, Some(100)), false, None),
        (c(5, 100, 95, Some(100)), false, None),
        (c(6, 100, 94, Some(100)), false, Some("removals")),
        (c(2, 10, 8, Some(10)), false, Some("removals")), // 20% > 10%
        (c(2, 10, 8, Some(10)), true, None),
        (c(0, 100, 40, Some(100)), false, Some("shrunk")),
        (c(0, 100, 40, None), false, None),
        (c(0, 100, 0, Some(0)), false, None),
    ];
    for (counts, confirmed, want) in table {
        let got = match crossed(&limits, &counts, confirmed) {
            None => None,
            Some(Crossed::Shrunk { .. }) => Some("shrunk"),
            Some(Crossed::TooManyRemovals { .. }) => Some("removals"),
        };
        assert_eq!(got, want, "{counts:?} confirmed={confirmed}");
    }
}
