//! Issue 21, part 2: OneLogin's change feed (users by `updated_since`, groups re-listed) and
//! Keycloak's (the realm's admin events), through the `usersync` binary against the emulators.
//! After every applied run the incrementally synced store equals a store synced in full from the
//! same org (the truth); what a feed cannot see is never removed or deactivated by an incremental
//! run and is reconciled by the next full run; an unusable watermark, a realm that records no admin
//! events, expired events or a broken feed never read as "nothing changed". Google reads in full
//! (docs/providers/google.md).

use serde_json::Value;
use usersync_emulator::mutate::{random_mutations, Mutation, Rng};
use usersync_emulator::providers::keycloak::admin_events;

use crate::incremental_support::{deactivations, kind, Env};

/// What only OneLogin's users feed carries in its query.
const FEED: &str = "updated_since";

/// Seeded random changes (create, rename, status, manager, move between groups, create and
/// rename groups), incremental and `--full` runs interleaved, a broken feed and a run killed while
/// it reads the feed: after every applied run the store equals the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    let env = Env::new("onelogin", 40, 6, 2201).await;
    let mut rng = Rng::new(2201);
    let first = env.applied("inc", &[], "first run").await;
    assert_eq!(kind(&first), "full", "the first run with a feed is full: {first}");
    env.assert_truth("after the first run").await;
    for step in 1..=8u64 {
        {
            let mut org = env.emu.org().write().await;
            random_mutations(&mut org, &mut rng, 6, step, false);
        }
        if step == 3 {
            env.broken_feed_fails_without_removals(FEED, &format!("step {step}"))
                .await;
        }
        if step == 5 {
            env.kill_a_run_reading_the_feed(FEED).await;
        }
        let full = step % 4 == 2;
        let args: &[&str] = if full { &["--full"] } else { &[] };
        let r = env.applied("inc", args, &format!("step {step}")).await;
        let want = if full { "full" } else { "incremental" };
        assert_eq!(kind(&r), want, "step {step}: {r}");
        env.assert_truth(&format!("step {step} ({want})")).await;
    }
}

/// OneLogin deletes users and groups outright: the feed cannot see it. An incremental run
/// deactivates nobody (the deleted user stays as it was), and the next full run reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_deletions_are_left_to_the_next_full_run_and_nobody_is_wrongly_deactivated() {
    let env = Env::new("onelogin", 30, 5, 2202).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    let quiet = env.applied("inc", &[], "no change").await;
    assert_eq!(kind(&quiet), "incremental", "{quiet}");
    let requests = quiet["requests"].as_u64().expect("requests");
    assert!(
        requests <= 4,
        "a no-change incremental run makes a handful of requests (token, users feed, groups), not {requests}: {quiet}"
    );
    {
        let mut org = env.emu.org().write().await;
        let users: Vec<u32> = org.live_users().map(|u| u.ix).take(2).collect();
        org.remove_user(users[0]);
        org.rename_user(users[1], "Still", "Here");
    }
    let r = env.applied("inc", &[], "incremental run after a delete").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    assert_eq!(
        deactivations(&r),
        0,
        "a feed that cannot see deletes deactivates nobody: {r}"
    );
    assert!(
        r.pointer("/users/updated").and_then(Value::as_u64).unwrap_or(0) >= 1,
        "the rename was read from the feed: {r}"
    );
    let r = env.applied("inc", &["--full"], "full run after a delete").await;
    assert_eq!(kind(&r), "full", "{r}");
    assert_eq!(
        deactivations(&r),
        1,
        "the full run reconciles the deleted user: {r}"
    );
    env.assert_truth("after the full run").await;
}

/// A watermark OneLogin's feed cannot answer from (later than its clock, or unreadable) leads to
/// a full run, never to "nothing changed"; the fallback stores a usable watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_unusable_watermarks_lead_to_a_full_run() {
    let env = Env::new("onelogin", 20, 4, 2203).await;
    env.applied("inc", &[], "first run").await;
    for bad in ["onelogin-time:99999999999999", "garbage"] {
        {
            let mut org = env.emu.org().write().await;
            let u = org.live_users().map(|u| u.ix).next().expect("a user");
            org.rename_user(u, "Changed", bad);
        }
        env.set_watermark("users", bad);
        let r = env.applied("inc", &[], bad).await;
        assert_eq!(kind(&r), "full", "watermark `{bad}` is not trusted: {r}");
        env.assert_truth(bad).await;
        let next = env.applied("inc", &[], "after the fallback").await;
        assert_eq!(
            kind(&next),
            "incremental",
            "the fallback stored new watermarks: {next}"
        );
    }
}

/// A user's group is an attribute of the user in OneLogin (`group_id`): a move between groups is
/// read from the users feed, and the old membership goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onelogin_a_move_between_groups_is_read_from_the_users_feed() {
    let env = Env::new("onelogin", 20, 4, 2204).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    {
        let mut org = env.emu.org().write().await;
        let native: Vec<u32> = org
            .live_groups()
            .filter(|g| g.kind == usersync_emulator::GroupKind::Native)
            .map(|g| g.ix)
            .collect();
        // a user in exactly one of the groups OneLogin serves (built-in ones are not served)
        let (u, from) = org
            .live_users()
            .filter(|u| u.status == usersync_emulator::UserStatus::Active)
            .find_map(|u| {
                let mine: Vec<u32> = org
                    .groups_of(u.ix)
                    .iter()
                    .copied()
                    .filter(|g| native.contains(g))
                    .collect();
                (mine.len() == 1).then(|| (u.ix, mine[0]))
            })
            .expect("a user in one group");
        let to = *native.iter().find(|g| **g != from).expect("another group");
        org.remove_member(from, u);
        org.add_member(to, u);
    }
    let r = env.applied("inc", &[], "after a move").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    assert_eq!(
        r.pointer("/memberships/removed").and_then(Value::as_u64),
        Some(1),
        "the old group's membership goes: {r}"
    );
    env.assert_truth("after the move").await;
}

/// What only Keycloak's feed requests carry in their path (`/admin-events`, `/events/config`).
const KC_FEED: &str = "events";

/// Keycloak: seeded random changes including deletions of users and groups (admin events record
/// them), incremental and `--full` runs interleaved, a broken feed and a killed run: after every
/// applied run the store equals the truth. A deleted group makes the run full (Keycloak deletes
/// its sub-groups with it and records one event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    let env = Env::new("keycloak", 40, 8, 2301).await;
    let mut rng = Rng::new(2301);
    let first = env.applied("inc", &[], "first run").await;
    assert_eq!(kind(&first), "full", "the first run with a feed is full: {first}");
    env.assert_truth("after the first run").await;
    let mut group_deleted = false;
    let mut incremental_runs = 0;
    for step in 1..=8u64 {
        {
            let mut org = env.emu.org().write().await;
            let done = random_mutations(&mut org, &mut rng, 6, step, true);
            group_deleted |= done.iter().any(|m| matches!(m, Mutation::DeleteGroup(_)));
        }
        if step == 3 {
            env.broken_feed_fails_without_removals(KC_FEED, &format!("step {step}"))
                .await;
        }
        if step == 5 {
            env.kill_a_run_reading_the_feed(KC_FEED).await;
        }
        let full = step % 4 == 2;
        let args: &[&str] = if full { &["--full"] } else { &[] };
        let r = env.applied("inc", args, &format!("step {step}")).await;
        let want = if full || group_deleted {
            "full"
        } else {
            "incremental"
        };
        assert_eq!(kind(&r), want, "step {step}: {r}");
        incremental_runs += u32::from(want == "incremental");
        group_deleted = false;
        env.assert_truth(&format!("step {step} ({want})")).await;
    }
    assert!(
        incremental_runs >= 3,
        "most runs were incremental ({incremental_runs})"
    );
}

/// Keycloak: a run with no change makes a handful of requests; a new sub-tree and a renamed parent
/// are read from the groups feed; a realm that stops recording admin events, events that expired,
/// and unusable watermarks lead to full runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_admin_events_off_or_expired_and_bad_watermarks_lead_to_full_runs() {
    let env = Env::new("keycloak", 20, 4, 2302).await;
    let events = admin_events(&env.emu.ctx);
    let rename = |org: &mut usersync_emulator::Org, last: &str| {
        let u = org.live_users().map(|u| u.ix).next().expect("a user");
        org.rename_user(u, "Changed", last);
    };
    env.applied("inc", &[], "first run").await;
    rename(&mut *env.emu.org().write().await, "First");
    let r = env.applied("inc", &[], "a rename").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    let quiet = env.applied("inc", &[], "no change").await;
    assert_eq!(kind(&quiet), "incremental", "{quiet}");
    let requests = quiet["requests"].as_u64().expect("requests");
    assert!(
        requests <= 5,
        "a no-change run: token, then events config and one page of events per feed, not {requests}: {quiet}"
    );
    // a new group with a sub-group holding a user, then the parent renamed: the sub-tree is re-read
    // (its path changes), the parent link and the nested membership stay
    let parent = {
        let mut org = env.emu.org().write().await;
        let parent = org.add_group("Parent", usersync_emulator::GroupKind::Native);
        let child = org.add_group("Child", usersync_emulator::GroupKind::Native);
        org.add_child_group(parent, child);
        let u = org.live_users().map(|u| u.ix).next().expect("a user");
        org.add_member(child, u);
        parent
    };
    let r = env.applied("inc", &[], "a new sub-tree").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    env.assert_truth("a new sub-tree").await;
    env.emu.org().write().await.rename_group(parent, "Renamed parent");
    let r = env.applied("inc", &[], "the parent renamed").await;
    assert_eq!(kind(&r), "incremental", "{r}");
    env.assert_truth("the parent renamed").await;
    // admin events off: the change is not recorded, the feed says so
    {
        let mut org = env.emu.org().write().await;
        events.set_enabled(&org, false);
        rename(&mut org, "WhileOff");
    }
    let r = env.applied("inc", &[], "admin events off").await;
    assert_eq!(
        kind(&r),
        "full",
        "a realm without admin events is read in full: {r}"
    );
    env.assert_truth("admin events off").await;
    // back on; then every recorded event expires (`adminEventsExpiration`)
    {
        let mut org = env.emu.org().write().await;
        events.set_enabled(&org, true);
        rename(&mut org, "BeforeExpiry");
        events.expire_all(&org);
    }
    let r = env.applied("inc", &[], "expired events").await;
    assert_eq!(
        kind(&r),
        "full",
        "a watermark older than the retained events: {r}"
    );
    env.assert_truth("expired events").await;
    let next = env.applied("inc", &[], "after the fallback").await;
    assert_eq!(
        kind(&next),
        "incremental",
        "the fallback stored new watermarks: {next}"
    );
    for (feed, bad) in [
        ("users", "keycloak-admin-events:99999999999999:not-an-event"),
        ("groups", "garbage"),
    ] {
        {
            let mut org = env.emu.org().write().await;
            rename(&mut org, bad);
        }
        env.set_watermark(feed, bad);
        let r = env.applied("inc", &[], bad).await;
        assert_eq!(kind(&r), "full", "watermark `{bad}` is not trusted: {r}");
        env.assert_truth(bad).await;
    }
}

/// Keycloak: a user deleted in the admin console (`DELETE users/{id}`) is removed by an
/// incremental run through the usual safety gates: blocked by `max_removals`, applied once confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_a_deleted_user_is_removed_through_the_safety_gates() {
    let env = Env::new("keycloak", 20, 4, 2303).await;
    // the gate is part of the policy from the start (a policy change makes the next run full)
    env.edit_config("inc", "max_removals = 100000", "max_removals = 0");
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    {
        let mut org = env.emu.org().write().await;
        let u = org
            .live_users()
            .find(|u| u.status == usersync_emulator::UserStatus::Active && !org.groups_of(u.ix).is_empty())
            .map(|u| u.ix)
            .expect("an active user in a group");
        org.remove_user(u);
    }
    let (code, r) = env.sync("inc", &[]).await;
    assert_eq!(
        (code, r["status"].as_str()),
        (3, Some("blocked")),
        "the removal gate holds a deletion read from the feed: {r}"
    );
    assert_eq!(kind(&r), "incremental", "{r}");
    let r = env
        .applied("inc", &["--allow-deletes", "1"], "removal confirmed")
        .await;
    assert_eq!(kind(&r), "incremental", "{r}");
    assert_eq!(deactivations(&r), 1, "the deleted user goes: {r}");
    env.assert_truth("after the delete").await;
}
