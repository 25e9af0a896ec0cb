//! Engine tests against an in-memory directory and an in-memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use usersync_config::Policy;
use usersync_model::{Group, MemberRef, Membership, Record, User, UserState, UserStatus};
use usersync_sdk::{Capabilities, Endpoint, Manifest, Operation, Query};
use usersync_store::{RunStatus, SqliteStore, Store};

use crate::engine::{run_connection, RunReport, RunSpec};
use crate::fetch::describe;
use crate::plan::UserAction;
use crate::runner::{FailureKind, NoProgress, QueryFailure, QueryResult, QueryRunner};

#[derive(Default, Clone)]
struct Dir {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    edges: BTreeSet<Membership>,
    fail: BTreeSet<String>,
    /// Queries answered "not found" (an object deleted after the listings).
    gone: BTreeSet<String>,
}

impl Dir {
    fn user(&mut self, id: &str, name: &str) {
        self.users.insert(
            id.into(),
            User::new(id, name, UserStatus::new(UserState::Active, "ACTIVE")),
        );
    }
    fn group(&mut self, id: &str, name: &str) {
        self.groups.insert(id.into(), Group::new(id, name));
    }
    fn member(&mut self, g: &str, u: &str) {
        self.edges.insert(Membership::direct_user(g, u));
    }
    fn nest(&mut self, parent: &str, child: &str) {
        self.edges.insert(Membership::direct_group(parent, child));
    }
}

struct Fake {
    dir: Mutex<Dir>,
    log: Mutex<Vec<String>>,
}

impl QueryRunner for Fake {
    async fn run(&self, q: Query) -> Result<QueryResult, QueryFailure> {
        let d = self.dir.lock().expect("lock").clone();
        self.log.lock().expect("lock").push(describe(&q));
        if d.fail.contains(&describe(&q)) || d.fail.contains(q.operation().as_str()) {
            return Err(QueryFailure {
                kind: FailureKind::Failed,
                message: "HTTP 503 after 5 retries".into(),
                requests: 6,
            });
        }
        if d.gone.contains(&describe(&q)) {
            return Err(QueryFailure {
                kind: FailureKind::NotFound,
                message: "HTTP 404: not found".into(),
                requests: 1,
            });
        }
        let records: Vec<Record> = match &q {
            Query::ListUsers => d.users.values().cloned().map(Record::User).collect(),
            Query::ListGroups => d.groups.values().cloned().map(Record::Group).collect(),
            Query::GroupMembers { group_id } => d
                .edges
                .iter()
                .filter(|m| &m.group_id == group_id)
                .cloned()
                .map(Record::Membership)
                .collect(),
            Query::UserGroups { user_id } => d
                .edges
                .iter()
                .filter(|m| m.member == MemberRef::User(user_id.clone()))
                .cloned()
                .map(Record::Membership)
                .collect(),
            Query::UserTransitiveGroups { user_id } => {
                let mut graph = crate::closure::Graph::default();
                for m in &d.edges {
                    match &m.member {
                        MemberRef::User(u) => graph.add_user(&m.group_id, u),
                        MemberRef::Group(c) => graph.add_group(&m.group_id, c),
                        MemberRef::AllUsers => {}
                    }
                }
                graph
                    .effective()
                    .into_keys()
                    .filter(|(u, _)| u == user_id)
                    .map(|(u, g)| {
                        Record::Membership(Membership {
                            group_id: g,
                            member: MemberRef::User(u),
                            direct: false,
                        })
                    })
                    .collect()
            }
            _ => {
                return Err(QueryFailure {
                    kind: FailureKind::Unsupported,
                    message: "unsupported".into(),
                    requests: 0,
                })
            }
        };
        Ok(QueryResult {
            records,
            skipped: BTreeMap::new(),
            requests: 1,
        })
    }
}

fn manifest(ops: &[Operation], caps: Capabilities) -> Manifest {
    Manifest {
        id: "fake".into(),
        name: "Fake".into(),
        version: "0".into(),
        abi_version: 1,
        auth: vec![],
        endpoints: ops
            .iter()
            .map(|op| Endpoint {
                method: "GET".into(),
                url: format!("https://x/{op}"),
                purpose: "test".into(),
                operation: *op,
            })
            .collect(),
        capabilities: caps,
        options: vec![],
        default_concurrency: 4,
    }
}

fn nested_manifest() -> Manifest {
    manifest(
        &[
            Operation::ListUsers,
            Operation::ListGroups,
            Operation::GroupMembers,
            Operation::UserGroups,
        ],
        Capabilities {
            nested_groups: true,
            ..Capabilities::default()
        },
    )
}

/// 20 users u00..u19 in `Staff` through `Eng` (nested), u19 only in `Sales`.
fn org() -> Dir {
    let mut d = Dir::default();
    d.group("g-staff", "Staff");
    d.group("g-eng", "Eng");
    d.group("g-sales", "Sales");
    d.nest("g-staff", "g-eng");
    for i in 0..20 {
        let id = format!("u{i:02}");
        d.user(&id, &format!("user{i:02}@acme.test"));
        if i < 19 {
            d.member("g-eng", &id);
        } else {
            d.member("g-sales", &id);
        }
    }
    d
}

struct Env {
    store: SqliteStore,
    fake: Arc<Fake>,
    manifest: Manifest,
    policy: Policy,
}

impl Env {
    fn new(dir: Dir, policy: Policy) -> Env {
        Env {
            store: SqliteStore::open_in_memory().expect("store"),
            fake: Arc::new(Fake {
                dir: Mutex::new(dir),
                log: Mutex::new(vec![]),
            }),
            manifest: nested_manifest(),
            policy,
        }
    }
    fn edit(&self, f: impl FnOnce(&mut Dir)) {
        f(&mut self.fake.dir.lock().expect("lock"));
    }
    async fn run(&mut self, dry_run: bool, allow: Option<u64>) -> RunReport {
        self.fake.log.lock().expect("lock").clear();
        let spec = RunSpec {
            connection: "okta-prod",
            manifest: &self.manifest,
            policy: &self.policy,
            concurrency: 4,
            dry_run,
            allow_deletes: allow,
        };
        run_connection(&mut self.store, Arc::clone(&self.fake), &spec, &NoProgress).await
    }
    fn user(&self, id: &str) -> usersync_store::StoredUser {
        self.store
            .users(None)
            .expect("users")
            .into_iter()
            .find(|u| u.provider_id == id)
            .expect("user")
    }
}

fn required_staff() -> Policy {
    Policy {
        required_groups: vec![usersync_config::Pattern::parse("Staff").expect("pattern")],
        ..Policy::default()
    }
}

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

/// The seam of issue 18: the report's status is the store's enum, serialised as the words of
/// the JSON contract; a dry run records what the source returned (it was always dropped).
#[tokio::test]
async fn the_report_status_is_typed_and_a_dry_run_records_the_source_size() {
    let mut env = Env::new(org(), required_staff());
    let r = env.run(true, None).await;
    assert_eq!(r.status, RunStatus::DryRun);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["status"], "dry_run");
    let run = env
        .store
        .run(r.run_id.expect("recorded"))
        .expect("read")
        .expect("run");
    assert_eq!(run.status, RunStatus::DryRun);
    assert_eq!(run.source_users, Some(20));
    assert_eq!(
        env.store.last_source_users("okta-prod").expect("read"),
        None,
        "the shrinking-source gate compares with applied runs only"
    );
}

/// Issue 18.5: a connection that fails before fetching is recorded with its reason.
#[test]
fn a_failed_start_is_recorded_with_its_reason() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let r = crate::engine::record_failed_start(
        &mut store,
        "okta-prod",
        "usersync.toml:7: connection `okta-prod`: option `api_token`: environment variable `X` is not set"
            .into(),
        std::time::Instant::now(),
    );
    assert_eq!(r.status, RunStatus::Failed);
    let runs = store.runs(Some("okta-prod"), 10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(Some(runs[0].id), r.run_id);
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert!(
        runs[0].errors[0].contains("`X` is not set"),
        "{:?}",
        runs[0].errors
    );
    assert!(runs[0].finished_ms.is_some(), "finished, its lock released");
    let again =
        crate::engine::record_failed_start(&mut store, "okta-prod", "e".into(), std::time::Instant::now());
    assert!(again.run_id > r.run_id);
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
async fn route_follows_listing_sizes_and_capabilities() {
    // many groups, few users, server-side transitive: per-user with transitive queries
    let mut d = Dir::default();
    d.user("a", "a");
    d.user("b", "b");
    for i in 0..10 {
        d.group(&format!("g{i}"), &format!("G{i}"));
    }
    d.nest("g0", "g1");
    d.member("g1", "a");
    let mut env = Env::new(d, required_staff());
    env.policy.required_groups = vec![usersync_config::Pattern::parse("G0").expect("p")];
    env.manifest = manifest(
        &[
            Operation::ListUsers,
            Operation::ListGroups,
            Operation::GroupMembers,
            Operation::UserGroups,
            Operation::UserTransitiveGroups,
        ],
        Capabilities {
            nested_groups: true,
            transitive_membership: true,
            ..Capabilities::default()
        },
    );
    let r = env.run(false, None).await;
    let log = env.fake.log.lock().expect("log").clone();
    assert!(
        log.iter().any(|q| q.starts_with("user_transitive_groups")),
        "{log:?}"
    );
    assert!(!log.iter().any(|q| q.starts_with("group_members")), "{log:?}");
    assert_eq!(r.users.created, 1, "a is in G0 through G1 (server side)");
    let st = env.store.state("okta-prod").expect("state");
    assert!(st
        .effective
        .iter()
        .any(|e| e.user == "a" && e.group == "g0" && e.path == vec!["*", "G0"]));

    // without transitive queries nesting forces per-group listings
    env.manifest.capabilities.transitive_membership = false;
    env.run(true, None).await;
    let log = env.fake.log.lock().expect("log").clone();
    assert!(
        log.iter().any(|q| q.starts_with("group_members")) && !log.iter().any(|q| q.starts_with("user_"))
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

/// A runner whose queries end in the reverse of the order they started (within the
/// concurrency window): the first query of a phase yields the longest.
struct Reversed {
    inner: Fake,
    started: Mutex<u32>,
}

impl QueryRunner for Reversed {
    async fn run(&self, q: Query) -> Result<QueryResult, QueryFailure> {
        let n = {
            let mut s = self.started.lock().expect("lock");
            *s += 1;
            *s
        };
        for _ in 0..200u32.saturating_sub(n * 5) {
            tokio::task::yield_now().await;
        }
        self.inner.run(q).await
    }
}

/// Results are absorbed as queries end, but in query order: the snapshot (records, errors and
/// their order) is the same whatever order the queries end in.
#[tokio::test]
async fn the_snapshot_does_not_depend_on_the_order_queries_end() {
    let mut d = org();
    for j in 0..12 {
        let g = format!("g-{j:02}");
        d.group(&g, &format!("Team {j:02}"));
        for i in 0..20 {
            if (i + j) % 3 == 0 {
                d.member(&g, &format!("u{i:02}"));
            }
        }
    }
    d.fail.insert("group_members(g-03)".into());
    d.fail.insert("group_members(g-09)".into());
    let policy = Policy::default();
    let manifest = nested_manifest();
    let ctx = crate::fetch::FetchContext {
        manifest: &manifest,
        policy: &policy,
        concurrency: 4,
        photo_versions: &BTreeMap::new(),
        progress: &NoProgress,
    };
    let fake = |d: &Dir| Fake {
        dir: Mutex::new(d.clone()),
        log: Mutex::new(vec![]),
    };
    let in_order = crate::fetch::fetch(Arc::new(fake(&d)), &ctx).await;
    let reversed = Arc::new(Reversed {
        inner: fake(&d),
        started: Mutex::new(0),
    });
    let shuffled = crate::fetch::fetch(Arc::clone(&reversed), &ctx).await;
    let ended: Vec<String> = reversed.inner.log.lock().expect("log").clone();
    let members: Vec<&String> = ended.iter().filter(|q| q.starts_with("group_members")).collect();
    let mut sorted = members.clone();
    sorted.sort();
    assert_ne!(
        members, sorted,
        "the queries really ended out of order: {members:?}"
    );
    assert!(!shuffled.complete);
    assert_eq!(
        shuffled.errors.iter().map(|e| &e[..26]).collect::<Vec<_>>(),
        vec!["query group_members(g-03) ", "query group_members(g-09) "]
    );
    assert_eq!(
        serde_json::to_value(&shuffled).expect("json"),
        serde_json::to_value(&in_order).expect("json")
    );
    assert_eq!(shuffled.direct.len(), in_order.direct.len());
    assert!(shuffled.direct.len() > 60, "{}", shuffled.direct.len());
}

/// A runner that streams its pages: every query's records come one by one, and the user listing
/// first hands over a stale user, then says the listing restarted.
struct Paged {
    inner: Fake,
}

impl QueryRunner for Paged {
    async fn run(&self, q: Query) -> Result<QueryResult, QueryFailure> {
        self.inner.run(q).await
    }

    async fn run_pages(
        &self,
        q: Query,
        sink: &mut crate::runner::PageSink<'_>,
    ) -> Result<QueryResult, QueryFailure> {
        use crate::runner::PageEvent;
        if q == Query::ListUsers {
            let stale = User::new("stale", "stale", UserStatus::new(UserState::Active, "ACTIVE"));
            sink(PageEvent::Records(vec![Record::User(stale)]));
            sink(PageEvent::Restart);
        }
        let mut r = self.inner.run(q).await?;
        for rec in std::mem::take(&mut r.records) {
            sink(PageEvent::Records(vec![rec]));
        }
        Ok(r)
    }
}

/// Records handed over page by page make the same snapshot as whole results (a failed query
/// included), and a listing restart drops what came before it.
#[tokio::test]
async fn pages_streamed_make_the_same_snapshot_and_a_restart_forgets_earlier_pages() {
    let mut d = org();
    d.fail.insert("group_members(g-sales)".into());
    let policy = Policy::default();
    let manifest = nested_manifest();
    let ctx = crate::fetch::FetchContext {
        manifest: &manifest,
        policy: &policy,
        concurrency: 4,
        photo_versions: &BTreeMap::new(),
        progress: &NoProgress,
    };
    let fake = |d: &Dir| Fake {
        dir: Mutex::new(d.clone()),
        log: Mutex::new(vec![]),
    };
    let whole = crate::fetch::fetch(Arc::new(fake(&d)), &ctx).await;
    let paged = crate::fetch::fetch(Arc::new(Paged { inner: fake(&d) }), &ctx).await;
    assert!(!paged.users.contains_key("stale"));
    assert!(!paged.complete);
    assert_eq!(
        serde_json::to_value(&paged).expect("json"),
        serde_json::to_value(&whole).expect("json")
    );
    assert!(paged.direct.len() > 10, "{}", paged.direct.len());
}
