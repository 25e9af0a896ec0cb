//! Table tests of the diff's stages, each on a small hand-made wanted and stored state.

use std::collections::BTreeMap;
use std::sync::Arc;

use usersync_config::{GroupRemoval, Pattern, Policy, UserRemoval};
use usersync_model::{GroupKind, UserState};
use usersync_store::{
    username_key, ConnectionState, LinkRow, Member, StoredGroup, StoredMembership, StoredPhoto, StoredUser,
    UsernameHolder,
};

use super::users::{claim_usernames, intents, user_changes, Intent};
use super::*;
use crate::desired::{Desired, PhotoTarget, Target};
use crate::links::StoredLinks;

fn user(pid: &str, name: &str, active: bool) -> StoredUser {
    StoredUser {
        connection: "c".into(),
        provider_id: pid.into(),
        username: name.into(),
        email: None,
        display_name: None,
        given_name: None,
        family_name: None,
        active,
        state: if active {
            UserState::Active
        } else {
            UserState::Disabled
        },
        status_raw: if active { "ACTIVE" } else { "DISABLED" }.into(),
        manager: None,
        attributes: BTreeMap::new(),
        inactive_reason: None,
    }
}

fn group(pid: &str, name: &str) -> StoredGroup {
    StoredGroup {
        connection: "c".into(),
        provider_id: pid.into(),
        name: name.into(),
        source_name: name.into(),
        kind: GroupKind::Group,
        description: None,
        attributes: BTreeMap::new(),
    }
}

fn put(u: StoredUser) -> Target {
    let create = u.active;
    Target::Put {
        user: Arc::new(u),
        create,
        keep_manager: false,
    }
}

fn ctx<'a>(policy: &'a Policy, holders: &'a [UsernameHolder], complete: bool) -> DiffContext<'a> {
    DiffContext {
        connection: "c",
        policy,
        complete,
        holders,
        source_users: 0,
    }
}

fn state(users: Vec<StoredUser>, groups: Vec<StoredGroup>) -> ConnectionState {
    ConnectionState {
        users,
        groups,
        ..ConnectionState::default()
    }
}

fn kind(i: Option<&Intent<'_>>) -> &'static str {
    match i {
        None => "none",
        Some(Intent::Delete { .. }) => "delete",
        Some(Intent::Put { user, stored: None }) if user.active => "create",
        Some(Intent::Put { user, .. }) if user.active => "put",
        Some(Intent::Put { .. }) => "put inactive",
    }
}

#[test]
fn intents_follow_the_target_and_the_missing_user_policy() {
    // (wanted target, stored user, on_user_missing, intent)
    let cases: Vec<(Option<Target>, Option<StoredUser>, UserRemoval, &str)> = vec![
        (
            Some(put(user("u", "ann", true))),
            None,
            UserRemoval::Deactivate,
            "create",
        ),
        (
            Some(put(user("u", "ann", false))),
            None,
            UserRemoval::Deactivate,
            "none",
        ),
        (
            Some(put(user("u", "ann", false))),
            Some(user("u", "ann", true)),
            UserRemoval::Deactivate,
            "put inactive",
        ),
        (
            Some(Target::Delete { reason: "r".into() }),
            None,
            UserRemoval::Deactivate,
            "none",
        ),
        (
            Some(Target::Delete { reason: "r".into() }),
            Some(user("u", "ann", true)),
            UserRemoval::Deactivate,
            "delete",
        ),
        (
            Some(Target::Keep),
            Some(user("u", "ann", true)),
            UserRemoval::Delete,
            "none",
        ),
        (
            None,
            Some(user("u", "ann", true)),
            UserRemoval::Deactivate,
            "put inactive",
        ),
        (
            None,
            Some(user("u", "ann", false)),
            UserRemoval::Deactivate,
            "none",
        ),
        (None, Some(user("u", "ann", true)), UserRemoval::Delete, "delete"),
        (None, Some(user("u", "ann", true)), UserRemoval::Keep, "none"),
    ];
    for (i, (target, stored, missing, want)) in cases.into_iter().enumerate() {
        let mut desired = Desired::default();
        if let Some(t) = target {
            desired.users.insert("u".into(), t);
        }
        let st = state(stored.into_iter().collect(), vec![]);
        let policy = Policy {
            on_user_missing: missing,
            ..Policy::default()
        };
        let view = StoreView::new(&st);
        let got = intents(&desired, &st, &view, &policy);
        assert_eq!(kind(got.get("u")), want, "case {i}");
    }
}

#[test]
fn protection_and_partial_reads_hold_back_changes() {
    // (protected, stored active, wanted active, complete, uncertain) -> (kept, protected, withheld)
    let cases = [
        (false, true, false, true, false, (true, 0, 0)),
        (true, true, true, true, false, (false, 1, 0)),
        (true, true, false, false, false, (false, 1, 0)),
        (false, true, false, false, false, (false, 0, 1)),
        (false, true, true, false, false, (true, 0, 0)),
        (false, true, false, true, true, (false, 0, 1)),
        (false, false, true, false, true, (true, 0, 0)),
    ];
    for (i, (protect, was, now, complete, uncertain, want)) in cases.into_iter().enumerate() {
        let mut desired = Desired::default();
        desired.users.insert("u".into(), put(user("u", "ann", now)));
        if uncertain {
            desired.uncertain_users.insert("u".into());
        }
        let st = state(vec![user("u", "ann", was)], vec![]);
        let mut policy = Policy::default();
        if protect {
            policy.protected_users = vec![Pattern::parse("ann").expect("pattern")];
        }
        let view = StoreView::new(&st);
        let mut it = intents(&desired, &st, &view, &policy);
        let mut plan = Plan::default();
        protection::screen_users(&mut it, &desired, &view, &ctx(&policy, &[], complete), &mut plan);
        let got = (it.contains_key("u"), plan.protected.len(), plan.withheld.len());
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn a_taken_username_skips_a_new_user_and_keeps_an_old_name() {
    let holders = vec![UsernameHolder {
        key: username_key("bob"),
        connection: "other".into(),
        provider_id: "x".into(),
        username: "bob".into(),
    }];
    let mut desired = Desired::default();
    desired.users.insert("new".into(), put(user("new", "bob", true)));
    desired.users.insert("old".into(), put(user("old", "Bob", true)));
    let st = state(vec![user("old", "carol", true)], vec![]);
    let policy = Policy::default();
    let view = StoreView::new(&st);
    let it = intents(&desired, &st, &view, &policy);
    let mut plan = Plan::default();
    let c = ctx(&policy, &holders, true);
    let claims = claim_usernames(&it, &view, &c, &mut plan);
    assert_eq!(claims.skipped_new.iter().collect::<Vec<_>>(), ["new"]);
    assert_eq!(claims.kept_old_name.iter().collect::<Vec<_>>(), ["old"]);
    assert_eq!(plan.conflicts.len(), 2, "{:?}", plan.conflicts);
    user_changes(&it, &claims, &view, &mut plan);
    // the new user is not created; the old one keeps `carol`, so nothing changes for it
    assert!(plan.users.is_empty(), "{:?}", plan.users);
    assert!(plan.changes.is_empty());
}

#[test]
fn user_actions_are_classified() {
    // (stored, wanted) -> action and changed attributes
    let renamed = user("u", "ann2", true);
    let mut emailed = user("u", "ann", true);
    emailed.email = Some("a@x".into());
    type Case = (
        Option<StoredUser>,
        StoredUser,
        Option<(UserAction, Vec<&'static str>)>,
    );
    let cases: Vec<Case> = vec![
        (None, user("u", "ann", true), Some((UserAction::Created, vec![]))),
        (Some(user("u", "ann", true)), user("u", "ann", true), None),
        (
            Some(user("u", "ann", true)),
            renamed,
            Some((UserAction::Renamed, vec!["username"])),
        ),
        (
            Some(user("u", "ann", true)),
            emailed,
            Some((UserAction::Updated, vec!["email"])),
        ),
        (
            Some(user("u", "ann", true)),
            user("u", "ann", false),
            Some((UserAction::Deactivated, vec!["active", "status"])),
        ),
        (
            Some(user("u", "ann", false)),
            user("u", "ann", true),
            Some((UserAction::Reactivated, vec!["active", "status"])),
        ),
    ];
    for (i, (stored, wanted, want)) in cases.into_iter().enumerate() {
        let mut desired = Desired::default();
        desired.users.insert("u".into(), put(wanted));
        let st = state(stored.into_iter().collect(), vec![]);
        let policy = Policy::default();
        let view = StoreView::new(&st);
        let it = intents(&desired, &st, &view, &policy);
        let mut plan = Plan::default();
        let claims = claim_usernames(&it, &view, &ctx(&policy, &[], true), &mut plan);
        user_changes(&it, &claims, &view, &mut plan);
        let got = plan.users.first().map(|u| {
            let changed: Vec<&str> = u.changed.iter().map(String::as_str).collect();
            (u.action, changed)
        });
        let want = want.map(|(a, c)| (a, c.into_iter().collect::<Vec<_>>()));
        assert_eq!(got, want, "case {i}");
        assert_eq!(plan.changes.len(), plan.users.len(), "case {i}");
    }
}

#[test]
fn group_changes_follow_the_policy_protection_and_completeness() {
    let mut renamed = group("g", "eng");
    renamed.name = "engineering".into();
    let mut described = group("g", "eng");
    described.description = Some("d".into());
    // (wanted, stored, on_group_missing, protected, complete) -> (action, frozen, protected, withheld)
    type Want = (Option<GroupAction>, bool, usize, usize);
    type Case = (
        Option<StoredGroup>,
        Option<StoredGroup>,
        GroupRemoval,
        bool,
        bool,
        Want,
    );
    let cases: Vec<Case> = vec![
        (
            Some(group("g", "eng")),
            None,
            GroupRemoval::Delete,
            false,
            true,
            (Some(GroupAction::Created), false, 0, 0),
        ),
        (
            Some(group("g", "eng")),
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            false,
            true,
            (None, false, 0, 0),
        ),
        (
            Some(renamed),
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            false,
            true,
            (Some(GroupAction::Renamed), false, 0, 0),
        ),
        (
            Some(described.clone()),
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            false,
            true,
            (Some(GroupAction::Updated), false, 0, 0),
        ),
        (
            Some(described),
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            true,
            true,
            (None, true, 1, 0),
        ),
        (
            None,
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            false,
            true,
            (Some(GroupAction::Deleted), true, 0, 0),
        ),
        (
            None,
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            false,
            false,
            (None, true, 0, 1),
        ),
        (
            None,
            Some(group("g", "eng")),
            GroupRemoval::Delete,
            true,
            true,
            (None, true, 1, 0),
        ),
        (
            None,
            Some(group("g", "eng")),
            GroupRemoval::Keep,
            false,
            true,
            (None, true, 0, 0),
        ),
    ];
    for (i, (wanted, stored, missing, protect, complete, want)) in cases.into_iter().enumerate() {
        let mut desired = Desired::default();
        if let Some(g) = wanted {
            desired.groups.insert("g".into(), g);
        }
        let st = state(vec![], stored.into_iter().collect());
        let mut policy = Policy {
            on_group_missing: missing,
            ..Policy::default()
        };
        if protect {
            policy.protected_groups = vec![Pattern::parse("eng").expect("pattern")];
        }
        let mut plan = Plan::default();
        let view = StoreView::new(&st);
        let frozen = groups::group_changes(&desired, &st, &view, &ctx(&policy, &[], complete), &mut plan);
        let got = (
            plan.groups.first().map(|g| g.action),
            frozen.contains("g"),
            plan.protected.len(),
            plan.withheld.len(),
        );
        assert_eq!(got, want, "case {i}");
    }
}

/// A plan of the whole diff for one wanted membership state against one stored one.
fn membership_plan(wanted: &[(&str, &str)], stored: &[(&str, &str)], complete: bool) -> Plan {
    let mut desired = Desired::default();
    let mut st = state(vec![], vec![]);
    for (pid, name) in [("u1", "ann"), ("u2", "bob")] {
        desired.users.insert(pid.into(), put(user(pid, name, true)));
        st.users.push(user(pid, name, true));
    }
    for pid in ["g1", "g2"] {
        desired.groups.insert(pid.into(), group(pid, pid));
        st.groups.push(group(pid, pid));
        desired.links.groups.intern(pid);
    }
    for pid in ["u1", "u2"] {
        desired.links.users.intern(pid);
    }
    for (g, u) in wanted {
        let (g, u) = (desired.links.groups.intern(g), desired.links.users.intern(u));
        desired.links.user_edges.push((g, u));
    }
    desired.links.user_edges.sort_unstable();
    let mut links = StoredLinks::default();
    for (g, u) in stored {
        let m = StoredMembership {
            group: g.to_string(),
            member: Member::User(u.to_string()),
        };
        links.add(&desired.links, LinkRow::Direct(&m));
    }
    links.finish();
    let policy = Policy::default();
    diff_with_links(&desired, &st, &links, &ctx(&policy, &[], complete))
}

#[test]
fn direct_memberships_are_added_removed_and_withheld_on_a_partial_read() {
    // (wanted, stored, complete) -> (entries "action group member", withheld)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        bool,
        &'a [&'a str],
        usize,
    );
    let cases: [Case<'_>; 4] = [
        (&[("g1", "u1")], &[], true, &["added g1 ann"], 0),
        (&[("g1", "u1")], &[("g1", "u1")], true, &[], 0),
        (
            &[],
            &[("g1", "u1"), ("g2", "u2")],
            true,
            &["removed g1 ann", "removed g2 bob"],
            0,
        ),
        (&[("g2", "u1")], &[("g1", "u1")], false, &["added g2 ann"], 1),
    ];
    for (i, (wanted, stored, complete, entries, withheld)) in cases.into_iter().enumerate() {
        let plan = membership_plan(wanted, stored, complete);
        let got: Vec<String> = plan
            .memberships
            .iter()
            .map(|m| format!("{} {} {}", m.action, m.group, m.member))
            .collect();
        assert_eq!(got, entries, "case {i}");
        assert_eq!(plan.withheld.len(), withheld, "case {i}: {:?}", plan.withheld);
        assert_eq!(plan.changes.len(), entries.len(), "case {i}");
    }
}

#[test]
fn a_photo_change_is_named_in_its_users_entry() {
    let mut desired = Desired::default();
    desired.users.insert("u".into(), put(user("u", "ann", true)));
    let photo = StoredPhoto {
        user: "u".into(),
        content_type: "image/png".into(),
        sha256: "ab".into(),
        bytes: None,
        version: None,
    };
    desired.photos.insert("u".into(), PhotoTarget::Set(Some(photo)));
    let st = state(vec![user("u", "ann", true)], vec![]);
    let policy = Policy::default();
    let plan = diff_with_links(&desired, &st, &StoredLinks::default(), &ctx(&policy, &[], true));
    assert_eq!(plan.users.len(), 1);
    assert_eq!(plan.users[0].action, UserAction::Updated);
    assert_eq!(plan.users[0].changed, ["photo"]);
    assert_eq!(plan.changes.len(), 1);
}
