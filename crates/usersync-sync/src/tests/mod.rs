//! Engine tests against an in-memory directory and an in-memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use usersync_config::Policy;
use usersync_model::{Group, MemberRef, Membership, Record, User, UserState, UserStatus};
use usersync_sdk::{Capabilities, Endpoint, Manifest, Operation, Query};
use usersync_store::{SqliteStore, Store};

use crate::engine::{run_connection, RunReport, RunSpec};
use crate::fetch::describe;
use crate::runner::{FailureKind, NoProgress, QueryFailure, QueryResult, QueryRunner};

mod failures;
mod lifecycle;
mod managers;
mod report;
mod safety;
mod snapshot;

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
