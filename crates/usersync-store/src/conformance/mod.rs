//! One conformance suite of store behaviour, run on every backend: SQLite always, PostgreSQL when
//! `USERSYNC_TEST_POSTGRES` names a server (otherwise each PostgreSQL test prints that it was
//! skipped, by name). A check is a function over a [`Backend`]; `suite!` makes one test per backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use usersync_model::{Attributes, GroupKind, UserState};

use crate::types::*;
use crate::{LinkRow, Store, StoreError};

pub(crate) mod backends;
use backends::Backend;
mod directory;
use directory::the_directory_is_read_whole_and_posix_numbers_are_never_reused;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::backends::Sqlite::new());
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(b) = super::backends::Postgres::new(stringify!($name)) {
                    super::$name(&b);
                }
            })*
        }
    };
}

suite!(
    apply_round_trips_state_and_swaps_usernames,
    username_uniqueness_is_enforced_case_and_nfc_insensitively,
    runs_history_and_interrupted_runs,
    concurrent_opens_of_a_new_store_migrate_it_once,
    a_held_connection_is_refused_naming_its_holder_and_released_by_finishing,
    a_lock_of_a_dead_process_is_taken_over_and_its_run_cannot_apply,
    a_newer_store_is_refused_without_being_modified,
    a_read_only_open_writes_nothing,
    a_failed_apply_leaves_the_previous_state,
    large_runs_and_repeated_changes_apply,
    target_state_round_trips_and_is_per_target,
    feed_state_is_written_with_the_run_and_reset_by_a_full_one,
    the_directory_is_read_whole_and_posix_numbers_are_never_reused,
    a_link_batch_writes_its_rows_and_a_bad_one_writes_nothing,
);

pub(crate) fn user(pid: &str, name: &str) -> StoredUser {
    StoredUser {
        connection: "c".into(),
        provider_id: pid.into(),
        username: name.into(),
        email: Some(format!("{name}@x")),
        display_name: None,
        given_name: None,
        family_name: None,
        active: true,
        state: UserState::Active,
        status_raw: "ACTIVE".into(),
        manager: None,
        attributes: Attributes::new(),
        inactive_reason: None,
    }
}

pub(crate) fn group(pid: &str, name: &str) -> StoredGroup {
    StoredGroup {
        connection: "c".into(),
        provider_id: pid.into(),
        name: name.into(),
        source_name: name.into(),
        kind: GroupKind::Group,
        description: None,
        attributes: Attributes::new(),
    }
}

pub(crate) fn outcome() -> RunOutcome {
    RunOutcome {
        status: RunStatus::Applied,
        counts: serde_json::json!({}),
        errors: vec![],
        plan: serde_json::json!({}),
        requests: 3,
        source_users: Some(2),
    }
}

fn put(u: StoredUser) -> Change {
    Change::PutUser(Arc::new(u))
}

fn holder<B: Backend>(b: &B, connection: &str) -> Option<i64> {
    b.query_i64(&format!(
        "SELECT run_id FROM run_locks WHERE connection = '{connection}'"
    ))
}

fn apply_round_trips_state_and_swaps_usernames<B: Backend>(b: &B) {
    let mut s = b.handle();
    let run = s.begin_run("c", 1).expect("run");
    let mut ada = user("u1", "ada");
    ada.manager = Some(usersync_model::ManagerRef::Id("u2".into()));
    ada.attributes.insert("dept".into(), serde_json::json!("R&D"));
    ada.given_name = Some("Åda".into());
    let changes = vec![
        put(ada.clone()),
        put(user("u2", "bob")),
        Change::PutGroup(Box::new(group("g1", "Staff"))),
        Change::PutGroup(Box::new(group("g2", "Eng"))),
        Change::AddMembership(StoredMembership {
            group: "g1".into(),
            member: Member::Group("g2".into()),
        }),
        Change::AddMembership(StoredMembership {
            group: "g2".into(),
            member: Member::User("u1".into()),
        }),
        Change::PutEffective(EffectiveMembership {
            group: "g1".into(),
            user: "u1".into(),
            path: vec!["g2".into(), "g1".into()],
        }),
        Change::PutPhoto(Box::new(StoredPhoto {
            user: "u1".into(),
            content_type: "image/png".into(),
            sha256: "ab".into(),
            bytes: Some(vec![1, 2]),
            version: Some("\"etag-1\"".into()),
        })),
    ];
    s.apply("c", run, &changes, &outcome(), 2).expect("apply");
    assert_eq!(
        s.photo_versions("c").expect("versions"),
        BTreeMap::from([("u1".to_string(), "\"etag-1\"".to_string())])
    );
    let st = s.state("c").expect("state");
    assert_eq!(st.users.len(), 2);
    assert_eq!(st.users[0], ada, "every field round-trips");
    assert_eq!(st.memberships.len(), 2);
    assert_eq!(st.effective[0].path, vec!["g2".to_string(), "g1".to_string()]);
    // the streaming read hands over the same rows, and the path as the JSON text stored
    let (mut direct, mut effective) = (Vec::new(), Vec::new());
    let rest = s
        .state_streaming("c", &mut |row| {
            match row {
                LinkRow::Direct(m) => direct.push(m.clone()),
                LinkRow::Effective {
                    group,
                    user,
                    path_json,
                } => effective.push((group.to_string(), user.to_string(), path_json.to_string())),
            }
            Ok(())
        })
        .expect("streaming");
    direct.sort();
    assert_eq!(direct, st.memberships);
    assert_eq!(
        effective,
        vec![("g1".to_string(), "u1".to_string(), r#"["g2","g1"]"#.to_string())]
    );
    assert!(rest.memberships.is_empty() && rest.effective.is_empty());
    assert_eq!(
        (rest.users, rest.groups, rest.photos),
        (st.users.clone(), st.groups.clone(), st.photos.clone())
    );
    // an error from the callback stops the read and is returned
    let err = s
        .state_streaming("c", &mut |_| Err(StoreError::Corrupt("stop".into())))
        .expect_err("callback error");
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m == "stop"),
        "{err:?}"
    );
    assert_eq!(
        s.photo("c", "u1").expect("photo").expect("some").bytes,
        Some(vec![1, 2])
    );
    assert_eq!(s.last_source_users("c").expect("n"), Some(2));
    let groups: Vec<String> = s
        .groups(None)
        .expect("groups")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, vec!["Eng", "Staff"]);
    // swap usernames in one run
    let run = s.begin_run("c", 3).expect("run");
    s.apply(
        "c",
        run,
        &[put(user("u1", "bob")), put(user("u2", "ADA"))],
        &outcome(),
        4,
    )
    .expect("swap");
    let names: Vec<String> = s
        .users(None)
        .expect("u")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, vec!["ADA", "bob"]);
    let keys: Vec<String> = s
        .username_holders()
        .expect("holders")
        .into_iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(keys, vec!["ada", "bob"]);
    // deleting a user cascades memberships and photo
    let run = s.begin_run("c", 5).expect("run");
    s.apply(
        "c",
        run,
        &[Change::DeleteUser {
            provider_id: "u1".into(),
        }],
        &outcome(),
        6,
    )
    .expect("delete");
    let st = s.state("c").expect("state");
    assert_eq!(st.memberships.len(), 1);
    assert!(st.effective.is_empty() && st.photos.is_empty());
    // a group deletion takes its links on both sides (as group and as member) with it
    let run = s.begin_run("c", 7).expect("run");
    let link = |g: &str, m: Member| {
        Change::AddMembership(StoredMembership {
            group: g.into(),
            member: m,
        })
    };
    let effective = Change::PutEffective(EffectiveMembership {
        group: "g2".into(),
        user: "u2".into(),
        path: vec!["Eng".into()],
    });
    s.apply(
        "c",
        run,
        &[link("g2", Member::User("u2".into())), effective],
        &outcome(),
        8,
    )
    .expect("links");
    assert_eq!(s.state("c").expect("state").memberships.len(), 2);
    let run = s.begin_run("c", 9).expect("run");
    s.apply(
        "c",
        run,
        &[
            Change::DeleteGroup {
                provider_id: "g2".into(),
            },
            Change::RemovePhoto {
                user: "nobody".into(),
            },
        ],
        &outcome(),
        10,
    )
    .expect("delete group");
    let st = s.state("c").expect("state");
    assert!(st.memberships.is_empty() && st.effective.is_empty(), "{st:?}");
    assert_eq!(st.groups.len(), 1);
    assert_eq!(st.users.len(), 1);
    // no row is left behind that the reads would not show
    for table in [
        "user_memberships",
        "group_memberships",
        "effective_memberships",
        "photos",
    ] {
        assert_eq!(
            b.query_i64(&format!("SELECT count(*) FROM {table}")),
            Some(0),
            "{table}"
        );
    }
    assert!(s.state("other").expect("other connection").users.is_empty());
}

fn username_uniqueness_is_enforced_case_and_nfc_insensitively<B: Backend>(b: &B) {
    assert_eq!(username_key("A\u{030A}da"), username_key("\u{00E5}DA"));
    let mut s = b.handle();
    let run = s.begin_run("c", 1).expect("run");
    s.apply("c", run, &[put(user("u1", "\u{00C5}da"))], &outcome(), 1)
        .expect("one");
    // another connection's user may not take the name either
    let run = s.begin_run("d", 2).expect("run");
    let mut other = user("u2", "a\u{030A}DA");
    other.connection = "d".into();
    let err = s.apply("d", run, &[put(other)], &outcome(), 2);
    assert!(err.is_err());
    assert_eq!(
        s.users(None).expect("u").len(),
        1,
        "failed transaction left nothing behind"
    );
    let holders = s.username_holders().expect("holders");
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].key, username_key("ÅDA"));
}

fn runs_history_and_interrupted_runs<B: Backend>(b: &B) {
    let mut s = b.handle();
    let r1 = s.begin_run("c", 1).expect("r1");
    let r2 = s.begin_run("c", 2).expect("r2");
    let mut o = outcome();
    o.status = RunStatus::Blocked;
    o.errors = vec!["too many".into()];
    s.finish_run(r2, &o, 3).expect("finish");
    let runs = s.runs(Some("c"), 10).expect("runs");
    assert_eq!(runs[0].id, r2);
    assert_eq!(runs[0].status, RunStatus::Blocked);
    assert_eq!(runs[0].finished_ms, Some(3));
    assert_eq!(runs[1].id, r1);
    assert_eq!(runs[1].status, RunStatus::Interrupted);
    assert_eq!(
        s.run(r2).expect("run").expect("some").errors,
        vec!["too many".to_string()]
    );
    assert_eq!(s.runs(None, 1).expect("limit").len(), 1);
    assert_eq!(s.last_source_users("c").expect("n"), None);
    assert_eq!(s.run(r2 + 100).expect("no such run"), None);
}

fn concurrent_opens_of_a_new_store_migrate_it_once<B: Backend>(b: &B) {
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4).map(|_| sc.spawn(|| b.open().map(|_| ()))).collect();
        for h in handles {
            h.join().expect("thread").expect("open");
        }
    });
    assert_eq!(b.fingerprint(), b.fingerprint());
    let s = b.handle();
    assert!(s.users(None).expect("users").is_empty());
}

fn a_held_connection_is_refused_naming_its_holder_and_released_by_finishing<B: Backend>(b: &B) {
    let mut a = b.handle();
    let mut bb = b.handle();
    let run = a.begin_run("c", 1).expect("a begins");
    let err = bb.begin_run("c", 2).expect_err("b must not begin");
    let text = err.to_string();
    assert!(
        matches!(&err, StoreError::Held { holder, .. } if holder.run_id == run && holder.pid == std::process::id()),
        "{err:?}"
    );
    assert!(
        text.contains(&format!("run {run} (pid {}", std::process::id())),
        "{text}"
    );
    assert_eq!(
        bb.runs(Some("c"), 10).expect("runs").len(),
        1,
        "the refused run recorded nothing"
    );
    // another connection is not held
    let other = bb.begin_run("d", 2).expect("other connection");
    bb.finish_run(other, &outcome(), 3).expect("finish d");
    // waiting: b gets the lock once a finishes
    B::set_lock_wait(&mut bb, Duration::from_secs(60));
    let waiter = std::thread::spawn(move || {
        let id = bb.begin_run("c", 4);
        (bb, id)
    });
    std::thread::sleep(Duration::from_millis(300));
    a.finish_run(run, &outcome(), 5).expect("finish a");
    let (bb, id) = waiter.join().expect("thread");
    let id = id.expect("b begins after a finished");
    assert_eq!(holder(b, "c"), Some(id));
    assert_eq!(bb.run(run).expect("run").expect("a").status, RunStatus::Applied);
}

fn a_lock_of_a_dead_process_is_taken_over_and_its_run_cannot_apply<B: Backend>(b: &B) {
    let mut a = b.handle();
    let run = a.begin_run("c", 1).expect("a begins");
    b.kill_holders();
    let mut bb = b.handle();
    let taken = bb.begin_run("c", 2).expect("takes over");
    assert_eq!(
        bb.run(run).expect("run").expect("a").status,
        RunStatus::Interrupted
    );
    // b is alive: another handle must wait for it
    let mut c = b.handle();
    let err = c.begin_run("c", 3).expect_err("b's lock is live");
    assert!(matches!(err, StoreError::Held { .. }), "{err:?}");
    // ... unless its identity belongs to another process now
    b.forge_holders();
    let now = c.begin_run("c", 4).expect("a reused identity is taken over");
    assert_eq!(
        bb.run(taken).expect("run").expect("b").status,
        RunStatus::Interrupted
    );
    // a and b wake up: their applies are fenced off, nothing of them is written
    for (store, id) in [(&mut a, run), (&mut bb, taken)] {
        let err = store
            .apply("c", id, &[put(user("u1", "ada"))], &outcome(), 5)
            .expect_err("fenced");
        assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("run {now}")), "{err}");
    }
    assert!(c.users(None).expect("users").is_empty());
    c.apply("c", now, &[put(user("u1", "ada"))], &outcome(), 6)
        .expect("the holder applies");
    assert_eq!(holder(b, "c"), None, "released by the apply");
    assert_eq!(c.users(None).expect("users").len(), 1);
    // a released lock fences too
    let err = c
        .apply("c", now, &[put(user("u2", "bob"))], &outcome(), 7)
        .expect_err("released");
    assert!(err.to_string().contains("released"), "{err}");
}

fn a_newer_store_is_refused_without_being_modified<B: Backend>(b: &B) {
    drop(b.handle());
    b.set_version(b.supported() + 40);
    let before = b.fingerprint();
    let err = b.open().expect_err("newer");
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == b.supported() + 40),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("newer than this usersync supports"),
        "{err}"
    );
    let err = b.open_read_only().expect_err("newer, read-only");
    assert!(matches!(err, StoreError::TooNew { .. }), "{err:?}");
    assert!(b.fingerprint() == before, "the store was modified");
}

fn a_read_only_open_writes_nothing<B: Backend>(b: &B) {
    {
        let mut s = b.handle();
        let run = s.begin_run("c", 1).expect("run");
        s.apply("c", run, &[put(user("u1", "ada"))], &outcome(), 2)
            .expect("apply");
    }
    let before = b.fingerprint();
    let mut s = b.open_read_only().expect("read-only");
    assert_eq!(s.users(None).expect("users").len(), 1);
    assert_eq!(s.state("c").expect("state").users.len(), 1);
    assert!(s.begin_run("c", 3).is_err(), "a read-only store refuses writes");
    drop(s);
    assert!(b.fingerprint() == before, "the store was modified");
}

fn a_failed_apply_leaves_the_previous_state<B: Backend>(b: &B) {
    let mut s = b.handle();
    let run = s.begin_run("c", 1).expect("run");
    s.apply(
        "c",
        run,
        &[
            put(user("u1", "ada")),
            Change::PutGroup(Box::new(group("g1", "Staff"))),
        ],
        &outcome(),
        1,
    )
    .expect("first");
    let before = s.state("c").expect("state");
    for bad in [
        Change::AddMembership(StoredMembership {
            group: "nope".into(),
            member: Member::User("u1".into()),
        }),
        Change::AddMembership(StoredMembership {
            group: "g1".into(),
            member: Member::User("nobody".into()),
        }),
        Change::PutEffective(EffectiveMembership {
            group: "g1".into(),
            user: "nobody".into(),
            path: vec!["g1".into()],
        }),
        Change::PutPhoto(Box::new(StoredPhoto {
            user: "nobody".into(),
            content_type: "image/png".into(),
            sha256: "ab".into(),
            bytes: None,
            version: None,
        })),
    ] {
        let run = s.begin_run("c", 2).expect("run");
        let err = s
            .apply(
                "c",
                run,
                &[
                    put(user("u2", "bob")),
                    Change::DeleteUser {
                        provider_id: "u1".into(),
                    },
                    bad,
                ],
                &outcome(),
                3,
            )
            .expect_err("refers to nothing");
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("unknown")),
            "{err:?}"
        );
        assert_eq!(
            s.state("c").expect("state"),
            before,
            "nothing of the failed run was applied"
        );
        assert_eq!(
            s.run(run).expect("run").expect("recorded").status,
            RunStatus::Running
        );
        let mut o = outcome();
        o.status = RunStatus::Failed;
        s.finish_run(run, &o, 4).expect("record the failure");
    }
}

fn large_runs_and_repeated_changes_apply<B: Backend>(b: &B) {
    let mut s = b.handle();
    let n = 12_000;
    let mut changes: Vec<Change> = (0..n)
        .map(|i| put(user(&format!("u{i:05}"), &format!("user{i}"))))
        .collect();
    changes.push(Change::PutGroup(Box::new(group("g", "All"))));
    changes.extend((0..n).map(|i| {
        Change::AddMembership(StoredMembership {
            group: "g".into(),
            member: Member::User(format!("u{i:05}")),
        })
    }));
    // the same record twice in one run: the last one wins
    changes.push(put(user("u00000", "renamed")));
    changes.push(Change::AddMembership(StoredMembership {
        group: "g".into(),
        member: Member::User("u00001".into()),
    }));
    let run = s.begin_run("c", 1).expect("run");
    s.apply("c", run, &changes, &outcome(), 1).expect("large apply");
    let st = s.state("c").expect("state");
    assert_eq!(st.users.len(), n);
    assert_eq!(st.memberships.len(), n);
    assert_eq!(st.users[0].username, "renamed");
}

fn target_state_round_trips_and_is_per_target<B: Backend>(b: &B) {
    use crate::{TargetKind, TargetObject, TargetOrigin, TargetWrite};
    let obj = |key: &str, app: &str| TargetObject {
        kind: TargetKind::User,
        source_key: key.into(),
        app_id: app.into(),
        etag: Some("W/\"1\"".into()),
        hash: Some("h1".into()),
        origin: TargetOrigin::Created,
        active: true,
        updated_ms: 1,
    };
    let member = || TargetWrite::AddMember {
        group: "okta/g1".into(),
        user: "okta/u1".into(),
    };
    let mut s = b.handle();
    let group = TargetObject {
        kind: TargetKind::Group,
        origin: TargetOrigin::Adopted,
        active: false,
        ..obj("okta/g1", "G1")
    };
    s.write_target(
        "aws",
        &[
            TargetWrite::Put(obj("okta/u1", "A1")),
            TargetWrite::Put(group.clone()),
            member(),
        ],
    )
    .expect("write");
    s.write_target("aws", &[member()]).expect("idempotent");
    let st = s.target_state("aws").expect("state");
    assert_eq!(st.objects, vec![group, obj("okta/u1", "A1")]);
    assert_eq!(st.members, vec![("okta/g1".to_string(), "okta/u1".to_string())]);
    assert!(s.target_state("jira").expect("other").objects.is_empty());
    s.write_target(
        "aws",
        &[TargetWrite::Forget {
            kind: TargetKind::User,
            source_key: "okta/u1".into(),
        }],
    )
    .expect("forget");
    let st = s.target_state("aws").expect("state");
    assert_eq!(st.objects.len(), 1);
    assert!(st.members.is_empty(), "forgetting a user forgets its memberships");
}

fn src(kind: &str, id: &str, body: &str) -> Change {
    Change::PutSource(SourceObject {
        kind: kind.into(),
        id: id.into(),
        body: body.into(),
    })
}

/// Watermarks, and the source copy as (kind, id, body) rows, sorted.
type FeedState = (BTreeMap<String, String>, Vec<(String, String, String)>);

fn feed_state<S: Store>(s: &S, connection: &str) -> FeedState {
    let mut objects = Vec::new();
    s.source_objects(connection, &mut |o| {
        objects.push((o.kind, o.id, o.body));
        Ok(())
    })
    .expect("source objects");
    objects.sort();
    (s.watermarks(connection).expect("watermarks"), objects)
}

/// Incremental sync (issue 21): watermarks and the source copy are written in the run's apply
/// transaction (a refused apply writes none of them), per connection, with the last write of a key
/// winning; `ResetFeed` clears them before the same run's rewrite.
fn feed_state_is_written_with_the_run_and_reset_by_a_full_one<B: Backend>(b: &B) {
    let mut s = b.handle();
    assert_eq!(
        feed_state(&s, "c"),
        (BTreeMap::new(), vec![]),
        "a new store has no feed state"
    );
    let run = s.begin_run("c", 1).expect("run");
    let first = [
        put(user("u1", "ada")),
        Change::ResetFeed,
        src("user", "u1", "{\"v\":1}"),
        src("user", "u2", "{}"),
        src("user", "u1", "{\"v\":2}"),
        Change::PutWatermark {
            feed: "users".into(),
            value: "w1".into(),
        },
    ];
    s.apply("c", run, &first, &outcome(), 1).expect("apply");
    let other = s.begin_run("d", 1).expect("run of d");
    s.apply("d", other, &[src("user", "x", "{}")], &outcome(), 1)
        .expect("apply d");
    let (w, objects) = feed_state(&s, "c");
    assert_eq!(w, BTreeMap::from([("users".to_string(), "w1".to_string())]));
    assert_eq!(
        objects,
        vec![
            ("user".into(), "u1".into(), "{\"v\":2}".into()),
            ("user".into(), "u2".into(), "{}".into())
        ]
    );
    // a fenced apply (another run took the connection over) writes no feed state
    let run = s.begin_run("c", 2).expect("run");
    b.forge_holders();
    let mut s2 = b.handle();
    let taker = s2.begin_run("c", 2).expect("take over");
    let stale = [
        Change::RemoveSource {
            kind: "user".into(),
            id: "u2".into(),
        },
        Change::PutWatermark {
            feed: "users".into(),
            value: "w2".into(),
        },
    ];
    assert!(s.apply("c", run, &stale, &outcome(), 2).is_err(), "fenced");
    assert_eq!(feed_state(&s, "c").0["users"], "w1", "the old watermark stays");
    assert_eq!(feed_state(&s, "c").1.len(), 2);
    s2.finish_run(taker, &outcome(), 2).expect("finish");
    // an incremental run: removals and a new watermark
    let run = s.begin_run("c", 3).expect("run");
    s.apply("c", run, &stale, &outcome(), 3).expect("apply");
    let (w, objects) = feed_state(&s, "c");
    assert_eq!(w["users"], "w2");
    assert_eq!(objects.len(), 1);
    // a full run: the reset clears before the rewrite, wherever it stands in the changes
    let run = s.begin_run("c", 4).expect("run");
    let full = [
        src("group", "g1", "{}"),
        Change::PutWatermark {
            feed: "groups".into(),
            value: "g".into(),
        },
        Change::ResetFeed,
    ];
    s.apply("c", run, &full, &outcome(), 4).expect("apply");
    let (w, objects) = feed_state(&s, "c");
    assert_eq!(w, BTreeMap::from([("groups".to_string(), "g".to_string())]));
    assert_eq!(objects, vec![("group".into(), "g1".into(), "{}".into())]);
    assert_eq!(feed_state(&s, "d").1.len(), 1, "other connections keep theirs");
}

/// [`Change::AddLinks`] writes the same rows as one change per membership, and a batch naming
/// an unknown user or an index past its tables fails the whole apply.
fn a_link_batch_writes_its_rows_and_a_bad_one_writes_nothing<B: Backend>(b: &B) {
    let mut s = b.handle();
    let run = s.begin_run("c", 1).expect("run");
    let batch = crate::LinkBatch {
        groups: vec!["g1".into()],
        users: vec!["u1".into(), "u2".into()],
        paths: vec![vec!["Staff".into()]],
        user_links: vec![(0, 0), (0, 1)],
        effective: vec![(0, 0, 0), (0, 1, 0)],
    };
    s.apply(
        "c",
        run,
        &[
            put(user("u1", "ada")),
            put(user("u2", "bob")),
            Change::PutGroup(Box::new(group("g1", "Staff"))),
            Change::AddLinks(Box::new(batch.clone())),
        ],
        &outcome(),
        1,
    )
    .expect("batch");
    let before = s.state("c").expect("state");
    assert_eq!(before.memberships.len(), 2, "{before:?}");
    assert_eq!(before.effective.len(), 2, "{before:?}");
    assert!(before.effective.iter().all(|e| e.path == ["Staff"]));
    let unknown = crate::LinkBatch {
        users: vec!["nobody".into()],
        user_links: vec![(0, 0)],
        effective: vec![],
        ..batch.clone()
    };
    let past_the_end = crate::LinkBatch {
        effective: vec![(0, 0, 7)],
        ..batch
    };
    for bad in [unknown, past_the_end] {
        let run = s.begin_run("c", 2).expect("run");
        let err = s
            .apply("c", run, &[Change::AddLinks(Box::new(bad))], &outcome(), 2)
            .expect_err("bad batch");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        s.finish_run(run, &outcome(), 3).expect("finish");
        assert_eq!(s.state("c").expect("state"), before);
    }
}
