//! Delete thresholds, empty sources and scopes emptied by policy.

use usersync_config::Policy;
use usersync_model::Group;
use usersync_store::{RunStatus, Store};

use super::{org, required_staff, Env};

#[tokio::test]
async fn thresholds_block_with_exit_numbers_and_override() {
    let mut policy = required_staff();
    policy.max_removals = 3;
    let mut env = Env::new(org(), policy);
    env.run(false, None).await;
    env.edit(|d| {
        for i in 0..5 {
            d.users.remove(&format!("u{i:02}"));
        }
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked);
    let msg = r.errors.join("\n");
    assert!(
        msg.contains("5 of 19") && msg.contains("--allow-deletes 5"),
        "{msg}"
    );
    assert!(
        env.store.users(None).expect("u").iter().all(|u| u.active),
        "nothing applied"
    );
    let r = env.run(false, Some(4)).await;
    assert_eq!(
        r.status,
        RunStatus::Blocked,
        "override below the number does not confirm"
    );
    let r = env.run(false, Some(5)).await;
    assert_eq!(r.status, RunStatus::Applied);
    assert_eq!(r.users.deactivated, 5);

    // percentage: 2 of 14 = 14% > 10%
    env.policy.max_removals = 50;
    env.edit(|d| {
        d.users.remove("u10");
        d.users.remove("u11");
    });
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked);
    assert!(r.errors[0].contains("14.3%"), "{:?}", r.errors);
}

#[tokio::test]
async fn a_source_returning_zero_users_is_blocked() {
    let mut policy = required_staff();
    policy.max_removals = 1000;
    policy.max_removal_percent = 100.0;
    let mut env = Env::new(org(), policy);
    env.run(false, None).await;
    env.edit(|d| d.users.clear());
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked);
    assert!(r.errors[0].contains("returned 0 users"), "{:?}", r.errors);
}

/// Issue 18.4: `required_groups = ["Staff"]` where the group is "All Staff" leaves nobody in
/// scope. The pattern is named with its closest group names in the warnings, and the run is
/// blocked as "scope emptied by policy" (not a silent run creating 0 users); a dry run says it
/// would be blocked; `--allow-deletes` confirms an intended empty scope.
#[tokio::test]
async fn a_required_group_matching_nothing_is_named_and_an_emptied_scope_is_blocked() {
    let mut d = org();
    d.group("g-staff", "All Staff");
    d.group("g-staffing", "Staffing Agency");
    let mut policy = required_staff();
    policy.include_groups = vec![
        usersync_config::Pattern::parse("*").expect("pattern"),
        usersync_config::Pattern::parse("Sale").expect("pattern"),
    ];
    let mut env = Env::new(d, policy);

    let dry = env.run(true, None).await;
    assert_eq!(dry.status, RunStatus::DryRun);
    let plan = dry.plan.as_ref().expect("plan");
    assert!(
        plan.warnings.contains(
            &"required_groups pattern `Staff` matches no group at the source (closest: `All Staff`, \
              `Staffing Agency`)"
                .to_string()
        ),
        "{:?}",
        plan.warnings
    );
    assert!(
        plan.warnings.contains(
            &"include_groups pattern `Sale` matches no group at the source (closest: `Sales`)".to_string()
        ),
        "{:?}",
        plan.warnings
    );
    assert_eq!(plan.unmatched_patterns.len(), 2, "`*` matches every group");
    let msg = dry.errors.join("\n");
    assert!(
        msg.starts_with("would be blocked: the scope was emptied by policy: the source returned 20 users")
            && msg.contains("`Staff` (closest: `All Staff`, `Staffing Agency`)")
            && msg.contains("--allow-deletes 0"),
        "{msg}"
    );

    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("blocked: the scope was emptied by policy"),
        "{:?}",
        r.errors
    );
    assert!(env.store.users(None).expect("users").is_empty());
    assert!(
        env.store.groups(None).expect("groups").is_empty(),
        "nothing applied"
    );

    // the pattern fixed: in scope again, no warning about it
    env.policy.required_groups = vec![usersync_config::Pattern::parse("All Staff").expect("pattern")];
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    assert_eq!(r.users.created, 19);
    let plan = r.plan.as_ref().expect("plan");
    assert_eq!(plan.unmatched_patterns.len(), 1, "{:?}", plan.unmatched_patterns);

    // the members of the required group all leave it: the gate catches the emptied scope even
    // where the removal thresholds would not
    env.policy.max_removals = 1000;
    env.policy.max_removal_percent = 100.0;
    env.edit(|d| d.edges.retain(|m| m.group_id != "g-eng"));
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Blocked, "{:?}", r.errors);
    assert!(
        r.errors[0].contains("the groups its required_groups match have no members"),
        "{:?}",
        r.errors
    );
    let dry = env.run(true, Some(19)).await;
    assert!(dry.errors.is_empty(), "confirmed: {:?}", dry.errors);
    // `min_source_percent = 0` turns the shrinking-source gate off, this check with it
    env.policy.min_source_percent = 0.0;
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "gate off: {:?}", r.errors);
    assert_eq!(r.users.deactivated, 19);
}

#[test]
fn close_group_names_are_found_by_substring_and_edit_distance() {
    use crate::desired::unmatched_patterns;
    let mut snap = crate::fetch::Snapshot {
        complete: true,
        ..Default::default()
    };
    for (id, name) in [
        ("1", "All Staff"),
        ("2", "Engineering"),
        ("3", "Enginering Leads"),
        ("4", "Sales"),
        ("5", "Marketing"),
    ] {
        snap.groups.insert(id.into(), Group::new(id, name));
    }
    let pat = |s: &str| usersync_config::Pattern::parse(s).expect("pattern");
    let policy = Policy {
        required_groups: vec![pat("Engineerng"), pat("engineering"), pat("3")],
        exclude_groups: vec![pat("Sals*"), pat("Finance")],
        ..Policy::default()
    };
    let found: Vec<(String, String, Vec<String>)> = unmatched_patterns(&snap, &policy)
        .into_iter()
        .map(|u| (u.option, u.pattern, u.closest))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            ("required_groups".into(), "Engineerng".into(), s(&["Engineering"]),),
            ("exclude_groups".into(), "Sals*".into(), s(&["Sales"])),
            ("exclude_groups".into(), "Finance".into(), s(&[])),
        ],
        "`engineering` matches (case-insensitive), `3` matches a group id"
    );
}
