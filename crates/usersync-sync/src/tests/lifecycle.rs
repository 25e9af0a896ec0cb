//! Sync lifecycle: initial sync, changes, deletes, plans, collisions, cycles, protected users.

use std::sync::{Arc, Mutex};

use usersync_config::Policy;
use usersync_model::{Membership, UserState, UserStatus};
use usersync_store::{RunStatus, Store};

use crate::engine::{run_connection, RunSpec};
use crate::plan::UserAction;
use crate::runner::NoProgress;

use super::{org, required_staff, Dir, Env, Fake};

#[tokio::test]
async fn initial_sync_scopes_through_nesting_and_resync_writes_nothing() {
    let mut env = Env::new(org(), required_staff());
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    assert_eq!(
        r.users.created, 19,
        "u19 is only in Sales: out of scope, not created"
    );
    assert_eq!(r.groups.created, 3);
    assert_eq!(
        r.memberships.added,
        19 + 1,
        "Eng's users and Eng in Staff; u19 was not created"
    );
    let st = env.store.state("okta-prod").expect("state");
    let path = st
        .effective
        .iter()
        .find(|e| e.user == "u03" && e.group == "g-staff")
        .expect("inherited membership");
    assert_eq!(path.path, vec!["Eng", "Staff"]);
    assert!(st.users.iter().all(|u| u.active));

    let before = env
        .store
        .connection()
        .query_row("SELECT total_changes()", [], |r| r.get::<_, i64>(0));
    let r2 = env.run(false, None).await;
    let after = env
        .store
        .connection()
        .query_row("SELECT total_changes()", [], |r| r.get::<_, i64>(0));
    assert_eq!(r2.status, RunStatus::Applied);
    assert_eq!(r2.users.unchanged, 19);
    assert_eq!(
        (
            r2.users.created,
            r2.users.updated,
            r2.memberships.added,
            r2.memberships.removed
        ),
        (0, 0, 0, 0)
    );
    assert!(r2.plan.as_ref().expect("plan").changes.is_empty());
    // only run bookkeeping was written: the run row (begin + finish) and its run lock (take + release)
    assert_eq!(after.expect("n") - before.expect("n"), 4);
}

#[tokio::test]
async fn disable_remove_rename_and_membership_changes() {
    let mut env = Env::new(org(), required_staff());
    env.run(false, None).await;
    env.edit(|d| {
        d.users.get_mut("u01").expect("u01").status = UserStatus::new(UserState::Disabled, "SUSPENDED");
        d.users.remove("u02");
        d.users.get_mut("u03").expect("u03").username = "renamed@acme.test".into();
        d.edges.remove(&Membership::direct_user("g-eng", "u04"));
        d.member("g-sales", "u04");
        d.member("g-sales", "u05");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked, "3 of 19 is above 10%");
    let r = env.run(false, Some(3)).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    assert_eq!(r.users.deactivated, 3, "disabled, removed, and u04 left scope");
    assert_eq!(r.users.renamed, 1);
    assert_eq!(r.memberships.added, 2);
    assert_eq!(r.memberships.removed, 1);
    let u1 = env.user("u01");
    assert!(!u1.active && u1.inactive_reason.as_deref() == Some("disabled at source (SUSPENDED)"));
    let u2 = env.user("u02");
    assert!(!u2.active && u2.inactive_reason.as_deref() == Some("missing from the source"));
    assert_eq!(env.user("u03").username, "renamed@acme.test");
    assert!(env.user("u03").active, "a rename keeps the same local user");
    let u4 = env.user("u04");
    assert!(!u4.active && u4.inactive_reason.expect("reason").starts_with("out of scope"));
    // reactivation
    env.edit(|d| d.users.get_mut("u01").expect("u01").status = UserStatus::new(UserState::Active, "ACTIVE"));
    let r = env.run(false, None).await;
    assert_eq!(r.users.reactivated, 1);
    assert!(env.user("u01").active);
}

#[tokio::test]
async fn delete_policy_deletes_missing_users() {
    let mut policy = required_staff();
    policy.on_user_missing = usersync_config::UserRemoval::Delete;
    let mut env = Env::new(org(), policy);
    env.run(false, None).await;
    env.edit(|d| {
        d.users.remove("u02");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.users.deleted, 1);
    assert!(env
        .store
        .users(None)
        .expect("users")
        .iter()
        .all(|u| u.provider_id != "u02"));
}

#[tokio::test]
async fn dry_run_plan_is_what_apply_does() {
    let mut env = Env::new(org(), required_staff());
    env.run(false, None).await;
    env.edit(|d| {
        d.users.get_mut("u03").expect("u03").username = "x@acme.test".into();
        d.users.remove("u06");
        d.user("u40", "new@acme.test");
        d.member("g-eng", "u40");
        d.groups.get_mut("g-sales").expect("sales").name = "Sales EMEA".into();
    });
    let dry = env.run(true, None).await;
    assert_eq!(dry.status, RunStatus::DryRun);
    let dry_plan = dry.plan.clone().expect("plan");
    assert!(!dry_plan.changes.is_empty());
    assert_eq!(
        env.user("u03").username,
        "user03@acme.test",
        "dry run changed nothing"
    );
    let real = env.run(false, None).await;
    assert_eq!(real.status, RunStatus::Applied);
    assert_eq!(real.plan.expect("plan"), dry_plan);
    assert_eq!(
        (dry.users, dry.groups, dry.memberships),
        (real.users, real.groups, real.memberships)
    );
    let again = env.run(true, None).await;
    assert!(again.plan.expect("plan").changes.is_empty());
}

#[tokio::test]
async fn username_collisions_are_reported_not_merged() {
    let mut env = Env::new(org(), Policy::default());
    env.edit(|d| {
        d.user("u98", "USER01@acme.test");
    });
    let r = env.run(false, None).await;
    assert!(
        r.errors
            .iter()
            .any(|e| e.starts_with("conflict:") && e.contains("USER01@acme.test")),
        "{:?}",
        r.errors
    );
    assert_eq!(r.users.created, 20);
    // a second connection bringing the same person: reported, first connection keeps it
    let spec = RunSpec {
        connection: "okta-eu",
        manifest: &env.manifest,
        policy: &env.policy,
        concurrency: 2,
        dry_run: false,
        allow_deletes: None,
    };
    let mut other = Dir::default();
    other.user("x1", "user05@ACME.test");
    other.user("x2", "only-eu@acme.test");
    let fake2 = Arc::new(Fake {
        dir: Mutex::new(other),
        log: Mutex::new(vec![]),
    });
    let r = run_connection(&mut env.store, fake2, &spec, &NoProgress).await;
    assert_eq!(r.users.created, 1);
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("user05@ACME.test") && e.contains("okta-prod")),
        "{:?}",
        r.errors
    );
}

#[tokio::test]
async fn cycles_are_reported_and_do_not_hang() {
    let mut d = org();
    d.nest("g-eng", "g-staff");
    let mut env = Env::new(d, required_staff());
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied);
    let plan = r.plan.expect("plan");
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("cycle") && w.contains("Eng")),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test]
async fn protected_users_are_never_touched() {
    let mut policy = required_staff();
    policy.protected_users = vec![usersync_config::Pattern::parse("user0[12]@*").expect("p")];
    let mut env = Env::new(org(), policy);
    env.run(false, None).await;
    env.edit(|d| {
        d.users.remove("u01");
        d.users.remove("u03");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.users.deactivated, 1);
    assert!(env.user("u01").active);
    assert!(!env.user("u03").active);
    assert!(r
        .plan
        .expect("plan")
        .protected
        .iter()
        .any(|p| p.contains("user01")));
}

#[test]
fn user_action_names_are_the_contract() {
    assert_eq!(
        serde_json::to_string(&UserAction::Reactivated).expect("json"),
        "\"reactivated\""
    );
}
