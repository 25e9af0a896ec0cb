//! Issue 21: incremental runs from change feeds, through the `usersync` binary against the
//! emulators. Property style: a seeded random sequence of org changes (create, update, rename,
//! move between groups, deactivate, delete users and groups) and runs (incremental and full
//! interleaved, a fault in the feed, a run killed midway); after every applied run the store
//! equals a store synced in full from the same org (the truth), so nobody is wrongly
//! deactivated or removed. An expired delta token leads to a full run; a run with no change makes
//! a handful of requests.

use usersync_emulator::mutate::{random_mutations, Rng};

use crate::incremental_support::{kind, Env};

/// `n` random changes; deletions only where the provider's feed shows them (Entra).
async fn mutate(env: &Env, rng: &mut Rng, n: usize, step: u64) {
    let mut org = env.emu.org().write().await;
    random_mutations(&mut org, rng, n, step, env.provider == "entra");
}

async fn property_run(provider: &'static str, seed: u64) {
    let env = Env::new(provider, 40, 6, seed).await;
    // what only the feed's requests carry in their path and query
    let feed_path = if provider == "entra" {
        "/delta"
    } else {
        "lastUpdated"
    };
    let mut rng = Rng::new(seed);
    let first = env.applied("inc", &[], "first run").await;
    assert_eq!(kind(&first), "full", "the first run with a feed is full: {first}");
    env.assert_truth("after the first run").await;
    for step in 1..=8u64 {
        mutate(&env, &mut rng, 6, step).await;
        if step == 3 {
            env.broken_feed_fails_without_removals(feed_path, &format!("step {step}"))
                .await;
        }
        if step == 5 {
            env.kill_a_run_reading_the_feed(feed_path).await;
        }
        let full = step % 4 == 2;
        let args: &[&str] = if full { &["--full"] } else { &[] };
        let r = env.applied("inc", args, &format!("step {step}")).await;
        let want = if full { "full" } else { "incremental" };
        assert_eq!(kind(&r), want, "step {step}: {r}");
        env.assert_truth(&format!("step {step} ({want})")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    property_run("entra", 2101).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_incremental_runs_match_a_full_read_through_random_changes_faults_and_kills() {
    property_run("okta", 2103).await;
}

/// Okta's timestamp feeds cannot see a user or group deleted for good: the next full run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_deletions_are_reconciled_by_the_next_full_run() {
    let env = Env::new("okta", 30, 5, 2104).await;
    env.applied("inc", &[], "first run").await;
    env.assert_truth("after the first run").await;
    {
        let mut org = env.emu.org().write().await;
        let u = org.live_users().map(|u| u.ix).next().expect("a user");
        org.set_status(u, usersync_emulator::UserStatus::Deprovisioned);
        org.remove_user(u);
    }
    let r = env.applied("inc", &["--full"], "full run after a delete").await;
    assert_eq!(kind(&r), "full", "{r}");
    env.assert_truth("after the full run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_watermark_in_the_future_leads_to_a_full_run() {
    let env = Env::new("okta", 20, 4, 2105).await;
    env.applied("inc", &[], "first run").await;
    // a watermark later than Okta's clock (a host clock gone wrong, a hand-edited store)
    env.set_watermark("users", "okta-time:99999999999999");
    let r = env.applied("inc", &[], "future watermark").await;
    assert_eq!(kind(&r), "full", "a watermark in the future is not trusted: {r}");
    env.assert_truth("after the fallback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_expired_delta_token_leads_to_a_full_run_and_no_change_costs_a_handful_of_requests() {
    let env = Env::new("entra", 30, 5, 2102).await;
    env.applied("inc", &[], "first run").await;
    let quiet = env.applied("inc", &[], "no change").await;
    assert_eq!(kind(&quiet), "incremental", "{quiet}");
    let requests = quiet["requests"].as_u64().expect("requests");
    assert!(
        requests <= 4,
        "a no-change incremental run makes a handful of requests (token, users delta, groups delta), not {requests}: {quiet}"
    );
    let mut rng = Rng::new(7);
    mutate(&env, &mut rng, 5, 1).await;
    env.emu.ctx.feeds.expire_all();
    let r = env.applied("inc", &[], "expired token").await;
    assert_eq!(
        kind(&r),
        "full",
        "an expired delta token leads to a full run: {r}"
    );
    env.assert_truth("after the expired token").await;
    let next = env.applied("inc", &[], "after the fallback").await;
    assert_eq!(
        kind(&next),
        "incremental",
        "the fallback stored new watermarks: {next}"
    );
}
