//! Manager lookups against the fetched users.

use usersync_store::RunStatus;

use super::{org, required_staff, Dir, Env};

#[tokio::test]
async fn manager_lookups_resolve_against_the_fetched_users_or_set_no_manager() {
    use usersync_model::ManagerRef;
    let lookup = |v: &str| ManagerRef::Lookup {
        value: v.into(),
        keys: vec!["id".into(), "username".into(), "attributes.employeeNumber".into()],
    };
    let mut dir = org();
    for (i, n) in [("u01", 1001), ("u02", 1002), ("u03", 1002)] {
        let u = dir.users.get_mut(i).expect("user");
        u.attributes.insert("employeeNumber".into(), serde_json::json!(n));
    }
    let set = |d: &mut Dir, id: &str, m: ManagerRef| d.users.get_mut(id).expect("user").manager = Some(m);
    set(&mut dir, "u10", lookup("u01")); // by id
    set(&mut dir, "u11", lookup("USER01@acme.test")); // by username, any case
    set(&mut dir, "u12", lookup("1001")); // by a number-valued attribute
    set(&mut dir, "u13", lookup("1002")); // two users hold 1002: names no one
    set(&mut dir, "u14", lookup("Jimbo")); // free text
    set(&mut dir, "u15", ManagerRef::Id("u02".into())); // plain references are kept as they are
    let mut env = Env::new(dir, required_staff());
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    let id = |s: &str| Some(ManagerRef::Id(s.into()));
    assert_eq!(env.user("u10").manager, id("u01"));
    assert_eq!(env.user("u11").manager, id("u01"));
    assert_eq!(env.user("u12").manager, id("u01"));
    assert_eq!(env.user("u13").manager, None);
    assert_eq!(env.user("u14").manager, None);
    assert_eq!(env.user("u15").manager, id("u02"));
    let warnings = &r.plan.as_ref().expect("plan").warnings;
    let w: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("matches no synced user"))
        .collect();
    assert_eq!(w.len(), 1, "one warning for all of them: {warnings:?}");
    assert!(w[0].starts_with("2 user(s)"), "{}", w[0]);
}

/// Google names a manager by an email that may be any of the manager's addresses: the lookup
/// compares the primary email, then each alias (a list attribute) one by one.
#[tokio::test]
async fn manager_lookups_match_any_item_of_a_list_attribute() {
    use usersync_model::ManagerRef;
    let lookup = |v: &str| ManagerRef::Lookup {
        value: v.into(),
        keys: vec!["email".into(), "attributes.aliases".into()],
    };
    let mut dir = org();
    let aliases = [
        ("u01", serde_json::json!(["boss@acme.test", "chief@acme.test"])),
        ("u02", serde_json::json!(["shared@acme.test"])),
        ("u03", serde_json::json!(["shared@acme.test"])),
    ];
    for (i, a) in aliases {
        let u = dir.users.get_mut(i).expect("user");
        u.email = Some(format!("{i}@primary.test"));
        u.attributes.insert("aliases".into(), a);
    }
    let set = |d: &mut Dir, id: &str, m: ManagerRef| d.users.get_mut(id).expect("user").manager = Some(m);
    set(&mut dir, "u10", lookup("u01@primary.test")); // the primary email
    set(&mut dir, "u11", lookup("Chief@acme.test")); // the second alias, any case
    set(&mut dir, "u12", lookup("shared@acme.test")); // an alias two users hold: no one
    let mut env = Env::new(dir, required_staff());
    let r = env.run(false, None).await;
    assert_eq!(r.status, RunStatus::Applied, "{:?}", r.errors);
    let id = |s: &str| Some(ManagerRef::Id(s.into()));
    assert_eq!(env.user("u10").manager, id("u01"));
    assert_eq!(env.user("u11").manager, id("u01"));
    assert_eq!(env.user("u12").manager, None);
}
