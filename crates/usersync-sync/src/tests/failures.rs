//! Failed queries and objects deleted mid-run: nothing destructive is applied.

use std::collections::BTreeSet;

use usersync_config::Policy;
use usersync_sdk::{Capabilities, Operation};
use usersync_store::{RunStatus, Store};

use super::{manifest, org, required_staff, Dir, Env};

#[tokio::test]
async fn a_failed_query_applies_nothing_destructive() {
    let mut env = Env::new(org(), required_staff());
    env.run(false, None).await;
    env.edit(|d| {
        d.fail.insert("group_members(g-eng)".into());
        d.user("u50", "new@acme.test");
        d.nest("g-staff", "g-new");
        d.group("g-new", "New");
        d.member("g-new", "u50");
        d.users.remove("u05");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.users.deactivated, 0);
    assert_eq!(r.memberships.removed, 0);
    assert_eq!(r.users.created, 1, "additive changes still apply");
    assert!(r
        .errors
        .iter()
        .any(|e| e.contains("group_members(g-eng)") && e.contains("503")));
    assert!(r.errors.iter().any(|e| e.contains("withheld")));
    let st = env.store.state("okta-prod").expect("state");
    assert!(st
        .users
        .iter()
        .filter(|u| u.provider_id != "u50")
        .all(|u| u.active));
    assert!(st.users.iter().any(|u| u.provider_id == "u50"));
    // failing the user listing: nothing at all happens
    env.edit(|d| {
        d.fail.insert("list_users".into());
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.users.deactivated + r.users.deleted, 0);
}

/// Users (with their active flag), groups, memberships and effective memberships of a store.
type StoreView = (
    Vec<(String, bool)>,
    Vec<String>,
    BTreeSet<String>,
    BTreeSet<String>,
);

/// The store's data, for comparisons.
fn store_state(env: &Env) -> StoreView {
    let st = env.store.state("okta-prod").expect("state");
    let users = st
        .users
        .iter()
        .map(|u| (u.provider_id.clone(), u.active))
        .collect();
    let groups = st.groups.iter().map(|g| g.provider_id.clone()).collect();
    let direct = st.memberships.iter().map(|m| format!("{m:?}")).collect();
    let effective = st
        .effective
        .iter()
        .map(|e| format!("{}:{}:{:?}", e.group, e.user, e.path))
        .collect();
    (users, groups, direct, effective)
}

#[tokio::test]
async fn a_group_deleted_mid_run_keeps_its_memberships_and_the_run_applies() {
    let change = |d: &mut Dir| {
        d.user("u50", "new@acme.test");
        d.member("g-sales", "u50");
        d.member("g-staff", "u19");
        d.users.remove("u05");
    };
    // the clean run of the same change, for comparison
    let mut clean = Env::new(org(), required_staff());
    clean.run(false, None).await;
    clean.edit(change);
    let r = clean.run(false, Some(5)).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);

    let mut env = Env::new(org(), required_staff());
    env.run(false, None).await;
    let (_, _, eng_before, eff_before) = store_state(&env);
    env.edit(|d| {
        change(d);
        // `Eng` was listed, then deleted before its members were read
        d.gone.insert("group_members(g-eng)".into());
    });
    let r = env.run(false, Some(5)).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let plan = r.plan.as_ref().expect("plan");
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("`Eng` (g-eng)") && w.contains("not found")),
        "{:?}",
        plan.warnings
    );
    // Eng's members are unknown: nobody leaves scope because of it, no membership of Eng changes
    assert_eq!(r.users.deactivated, 1, "only u05, deleted at the source");
    assert!(!env.user("u05").active);
    assert_eq!(
        (r.users.created, r.memberships.added),
        (1, 2),
        "u19 joins Staff directly: created, with its Staff and Sales memberships"
    );
    let (users, groups, direct, effective) = store_state(&env);
    let (c_users, c_groups, c_direct, c_effective) = store_state(&clean);
    assert_eq!(
        (&users, &groups),
        (&c_users, &c_groups),
        "users and groups as a clean run"
    );
    let eng = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter().filter(|m| m.contains("g-eng")).cloned().collect()
    };
    assert_eq!(eng(&direct), eng(&eng_before), "Eng's memberships unchanged");
    let others = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter().filter(|m| !m.contains("g-eng")).cloned().collect()
    };
    assert_eq!(
        others(&direct),
        others(&c_direct),
        "other memberships as a clean run"
    );
    assert!(
        effective.is_superset(&eff_before),
        "no inherited membership removed"
    );
    assert!(effective.is_superset(&c_effective));

    // the next run, with Eng readable again, reconciles to the clean state
    env.edit(|d| {
        d.gone.clear();
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    assert_eq!(store_state(&env), store_state(&clean));
}

#[tokio::test]
async fn a_user_deleted_mid_run_keeps_its_memberships() {
    let policy = Policy {
        required_groups: vec![usersync_config::Pattern::parse("Eng").expect("pattern")],
        ..Policy::default()
    };
    let mut env = Env::new(org(), policy);
    // per-user route: a connector that lists groups per user only
    env.manifest = manifest(
        &[Operation::ListUsers, Operation::ListGroups, Operation::UserGroups],
        Capabilities::default(),
    );
    env.run(false, None).await;
    let (_, _, before, _) = store_state(&env);
    env.edit(|d| {
        d.gone.insert("user_groups(u03)".into());
        d.member("g-sales", "u04");
        d.member("g-sales", "u05");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    let plan = r.plan.as_ref().expect("plan");
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("user03@acme.test") && w.contains("(u03)")),
        "{:?}",
        plan.warnings
    );
    assert_eq!(
        r.users.deactivated, 0,
        "u03 is not taken out of scope for a read that found nothing"
    );
    assert!(env.user("u03").active);
    assert_eq!(r.memberships.added, 2, "u04 and u05 join Sales");
    let (_, _, after, _) = store_state(&env);
    let of_u03 = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter().filter(|m| m.contains("\"u03\"")).cloned().collect()
    };
    assert!(!of_u03(&before).is_empty());
    assert_eq!(of_u03(&after), of_u03(&before), "u03's memberships unchanged");
}
