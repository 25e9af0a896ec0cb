//! Fetch routes and snapshots: query end order and streamed pages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use usersync_config::Policy;
use usersync_model::{Record, User, UserState, UserStatus};
use usersync_sdk::{Capabilities, Operation, Query};
use usersync_store::Store;

use crate::runner::{NoProgress, QueryFailure, QueryResult, QueryRunner};

use super::{manifest, nested_manifest, org, required_staff, Dir, Env, Fake};

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
