//! Retries, rate limits and paging: 5xx and 429 handling, pacing to the window budget, throttle
//! budgets, looping or expired cursors, concurrency limits, plain HTTP refused off loopback.

use super::*;

#[tokio::test]
async fn transient_5xx_are_retried_and_attempts_are_bounded() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        match n {
            0 => Resp::json(503, serde_json::json!({"error": "unavailable"})),
            1 => Resp::json(502, serde_json::json!({})),
            2 => Resp::json(504, serde_json::json!({})),
            _ => users_listing(r),
        }
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(c.counters().retries, 3);

    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
        Resp::json(503, serde_json::json!({}))
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(
        matches!(e, RuntimeError::RetriesExhausted { attempts: 4, .. }),
        "{e}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn total_error_retry_time_is_bounded() {
    // a 503 with Retry-After is an error, not throttling: `max_total` bounds it
    let base = serve(|_| Resp::json(503, serde_json::json!({})).with("Retry-After", "1")).await;
    let mut s = fast();
    s.retry.max_attempts = 1000;
    s.retry.max_total = Duration::from_millis(400);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    // bounded by `max_total` (400 ms of waits capped at `max_throttle_wait`), not by the 1000
    // attempts: a handful of attempts (no wall-clock upper bound here: a loaded machine is slow,
    // and a slow machine makes fewer attempts, never more)
    match &e {
        RuntimeError::RetriesExhausted { attempts, .. } => assert!(*attempts <= 10, "{e}"),
        other => panic!("expected RetriesExhausted, got {other}"),
    }
}

#[tokio::test]
async fn okta_429_waits_for_x_rate_limit_reset_measured_against_the_date_header() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            // The server clock says 2015; the reset is 30 s after the server's Date. Measured
            // against the local clock the reset would be long past (no wait at all).
            return Resp::json(429, serde_json::json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."}))
                .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
                .with("X-Rate-Limit-Limit", "600")
                .with("X-Rate-Limit-Remaining", "0")
                .with("X-Rate-Limit-Reset", "1445412510");
        }
        users_listing(r)
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let n = c.counters();
    assert_eq!(n.throttled_responses, 1);
    assert!(
        n.throttled_ms >= 140,
        "waited for the reset (capped at 150 ms in this test): {n:?}"
    );
}

#[tokio::test]
async fn graph_retry_after_http_date_and_onelogin_seconds_remaining() {
    for header in [
        ("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT"),
        ("X-RateLimit-Reset", "900"),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let c2 = calls.clone();
        let base = serve(move |r| {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                return Resp::json(429, serde_json::json!({"error": {"code": "TooManyRequests"}}))
                    .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
                    .with(header.0, header.1);
            }
            users_listing(r)
        })
        .await;
        let c = client("entra", &base, api_token_plan(), &[("api_token", "tok")]);
        c.run_query(&Query::ListUsers).await.expect("users");
        let n = c.counters();
        assert!(
            n.throttled_ms >= 140 && n.throttled_responses == 1,
            "{header:?}: {n:?}"
        );
    }
}

#[tokio::test]
async fn google_403_rate_limit_exceeded_is_throttling_not_a_permission_error() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        if c2.fetch_add(1, Ordering::SeqCst) < 2 {
            return Resp::json(403, serde_json::json!({"error": {"code": 403, "message": "Rate Limit Exceeded", "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}));
        }
        users_listing(r)
    })
    .await;
    let c = client("google", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let n = c.counters();
    assert_eq!((n.throttled_responses, n.retries), (2, 2));
}

#[tokio::test]
async fn slows_down_before_the_budget_runs_out() {
    let base = serve(|r| {
        users_listing(r)
            .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .with("X-Rate-Limit-Limit", "600")
            .with("X-Rate-Limit-Remaining", "1")
            .with("X-Rate-Limit-Reset", "1445412540")
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    c.run_query(&Query::ListUsers).await.expect("users");
    let n = c.counters();
    assert_eq!(n.throttled_responses, 0, "never ran into a 429");
    assert!(n.throttled_ms >= 140, "paced the second page: {n:?}");
    assert_eq!(n.lowest_budget.map(|b| b.remaining), Some(1));
}

/// A fixed-window quota shaped like Google's Directory API: `limit` requests per `window`, then
/// 403 `userRateLimitExceeded` without Retry-After until the window ends (or, with `status_429`,
/// a bare 429). Every path pages `pages` times (one record a page). Counts served and denied
/// requests. `limit` 0: the throttle never lifts.
#[derive(Default)]
struct Quota {
    start: Option<std::time::Instant>,
    used: u32,
    served: u32,
    denied: u32,
}

async fn quota_server(
    limit: u32,
    window: Duration,
    pages: u32,
    status_429: bool,
) -> (String, Arc<Mutex<Quota>>) {
    let quota = Arc::new(Mutex::new(Quota::default()));
    let q2 = quota.clone();
    let base = serve(move |r| {
        let mut q = q2.lock().expect("quota");
        let now = std::time::Instant::now();
        if q.start.is_none_or(|s| now.duration_since(s) >= window) {
            q.start = Some(now);
            q.used = 0;
        }
        if q.used >= limit {
            q.denied += 1;
            if status_429 {
                return Resp::json(429, serde_json::json!({"error": "Too Many Requests"}));
            }
            return Resp::json(403, serde_json::json!({"error": {"code": 403,
                "message": "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
                "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}));
        }
        q.used += 1;
        q.served += 1;
        let page: u32 = r
            .query
            .strip_prefix("after=")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let id = format!("{}#{page}", r.path);
        let resp = Resp::json(200, users_page(&[id.as_str()]));
        if page + 1 < pages {
            resp.with("Link", format!("<{}{}?after={}>; rel=\"next\"", r.base(), r.path, page + 1))
        } else {
            resp
        }
    })
    .await;
    // one Directory-API-like prefix: every path falls into the same rate-limit bucket
    (format!("{base}/admin/directory/v1"), quota)
}

/// Settings where error retries alone would give up at once: only the throttle budget lets a
/// throttled listing go on.
fn throttle_settings(window: Duration, budget: Option<Duration>) -> ConnectionSettings {
    let mut s = fast();
    s.retry.max_attempts = 2;
    s.retry.base_delay = Duration::from_millis(10);
    s.retry.max_throttle_wait = window;
    s.max_throttle_total = budget;
    s
}

#[tokio::test]
async fn a_quota_that_refills_after_a_window_is_waited_out_and_the_listing_completes() {
    let window = Duration::from_millis(250);
    let (base, quota) = quota_server(5, window, 6, false).await;
    // the default throttle budget (10 windows) applies
    let s = throttle_settings(window, None);
    let c = client_with("google", &base, api_token_plan(), &[("api_token", "tok")], s);
    let started = std::time::Instant::now();
    let queries = vec![
        Query::ListUsers,
        Query::GroupMembers {
            group_id: "g1".into(),
        },
        Query::GroupMembers {
            group_id: "g2".into(),
        },
        Query::GroupMembers {
            group_id: "g3".into(),
        },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for r in c.run_all(queries).await {
        let out = r.expect("a throttled listing completes once the quota refills");
        assert_eq!(out.pages, 6);
        seen.extend(ids(&out));
    }
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), 24, "every page of every listing, once: {seen:?}");
    let q = quota.lock().expect("quota");
    assert_eq!(q.served, 24, "no page was fetched twice");
    // 24 requests at 5 a window need at least 5 windows: 4 window ends waited out
    assert!(elapsed >= window * 4, "{elapsed:?}");
    let n = c.counters();
    assert_eq!(n.throttled_responses, u64::from(q.denied));
    assert!(q.denied > 0 && n.throttled_ms > 0, "{n:?}");
    // no hammering: the whole bucket pauses with growing backoff, so each window sees a few
    // rounds of the 4 requests in flight, not a tight loop (a local server answers in well
    // under a millisecond)
    let windows = (elapsed.as_secs_f64() / window.as_secs_f64()).ceil() as u32;
    assert!(
        q.denied <= 30 * windows,
        "{} throttle answers in {windows} windows",
        q.denied
    );
}

#[tokio::test]
async fn a_throttle_that_never_lifts_fails_cleanly_within_the_throttle_budget() {
    let window = Duration::from_millis(100);
    let budget = Duration::from_millis(700);
    for status_429 in [false, true] {
        let (base, quota) = quota_server(0, window, 3, status_429).await;
        let s = throttle_settings(window, Some(budget));
        let c = client_with("google", &base, api_token_plan(), &[("api_token", "tok")], s);
        let started = std::time::Instant::now();
        let e = c.run_query(&Query::ListUsers).await.unwrap_err();
        let elapsed = started.elapsed();
        let what = if status_429 {
            "429"
        } else {
            "403 rateLimitExceeded"
        };
        assert!(matches!(e, RuntimeError::RetriesExhausted { .. }), "{what}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("max_throttle_total_secs"),
            "{what}: names the setting: {msg}"
        );
        // gave up by the budget's own arithmetic (a lower bound only: a loaded machine is slow,
        // never fast, so no upper bound on wall time)
        assert!(elapsed >= budget / 2, "{what}: gave up too early: {elapsed:?}");
        let q = quota.lock().expect("quota");
        // more tries than `max_attempts` (throttling is counted apart from errors), yet backed
        // off: 5, 10, 20, 40 ms... up to the 100 ms window
        assert!(q.denied > 3 && q.denied <= 30, "{what}: {} requests", q.denied);
        assert_eq!(c.counters().throttled_responses, u64::from(q.denied), "{what}");
    }
}

#[test]
fn the_throttle_budget_is_configurable_and_defaults_to_ten_throttle_waits() {
    let text = r#"
[runtime]
max_throttle_wait_secs = 5

[[connections]]
name = "a"
connector = "google"
[connections.runtime]
max_throttle_total_secs = 3900

[[connections]]
name = "b"
connector = "google"
"#;
    let c = usersync_config::Config::from_str(text).expect("parse");
    let a = &c.connection("a").expect("a").runtime;
    let b = &c.connection("b").expect("b").runtime;
    assert_eq!(a.max_throttle_total, Some(Duration::from_secs(3900)));
    assert_eq!(b.max_throttle_total, None);
    let mut s = ConnectionSettings::default();
    assert_eq!(
        s.throttle_budget(),
        Duration::from_secs(600),
        "10 x the 60 s default wait"
    );
    s.retry.max_throttle_wait = b.max_throttle_wait;
    assert_eq!(s.throttle_budget(), Duration::from_secs(50));
    s.max_throttle_total = a.max_throttle_total;
    assert_eq!(s.throttle_budget(), Duration::from_secs(3900));
}

#[tokio::test]
async fn a_repeated_page_or_too_many_pages_stop_with_a_protocol_error() {
    let base = serve(|_| Resp::json(200, users_page(&[]))).await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c
        .run_query(&Query::GetUser {
            user_id: "loop".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e.connector_error(), Some(ConnectorError::Protocol { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("already fetched"), "{e}");

    // endless distinct next links
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    let base = serve(move |r| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["x"]))
            .with("Link", format!("<{}/users?after={i}>; rel=\"next\"", r.base()))
    })
    .await;
    let mut s = fast();
    s.max_pages = 5;
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(e.to_string().contains("paging stopped after 5 pages"), "{e}");
    assert_eq!(n.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn an_expired_paging_cursor_restarts_the_listing_without_duplicates() {
    let expired_once = Arc::new(AtomicU32::new(0));
    let e2 = expired_once.clone();
    let base = serve(move |r| {
        if r.query.contains("after=2") && e2.fetch_add(1, Ordering::SeqCst) == 0 {
            return Resp::json(400, serde_json::json!({"error": {"code": "Directory_ExpiredPageToken", "message": "expired_page_token"}}));
        }
        users_listing(r)
    })
    .await;
    let c = client("entra", &base, api_token_plan(), &[("api_token", "tok")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(ids(&out), ["u1", "u2", "u3"]);
    assert_eq!((out.restarts, out.pages), (1, 2));
}

/// A multi-threaded runtime, so the test server really answers several requests at once: on the
/// test's single thread the peak would always be 1 and the bound could not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_holds_across_queries() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let base = serve(move |_| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        f.fetch_sub(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["m"]))
    })
    .await;
    let mut s = fast();
    s.concurrency = Some(2);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let queries: Vec<Query> = (0..8)
        .map(|i| Query::GroupMembers {
            group_id: format!("g{i}"),
        })
        .collect();
    let results = c.run_all(queries).await;
    assert!(results.iter().all(|r| r.is_ok()));
    // exactly the limit: at most 2 (the bound) and at least 2 (the server could see more)
    assert_eq!(peak.load(Ordering::SeqCst), 2, "peak in flight");
}

/// Issue 17.14: once a request proves the credential refused (401 with nothing to refresh), the
/// connection sends nothing more in this run: before, every remaining query of the run was sent
/// (and refused) too, ~170 requests for an Okta organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_credential_stops_the_connections_other_queries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let base = serve(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        Resp::json(
            401,
            serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
        )
    })
    .await;
    let mut s = fast();
    s.concurrency = Some(2);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "revoked")], s);
    let queries: Vec<Query> = (0..40)
        .map(|i| Query::GroupMembers {
            group_id: format!("g{i}"),
        })
        .collect();
    let results = c.run_all(queries).await;
    assert!(results.iter().all(|r| r.is_err()), "every query fails");
    let sent = hits.load(Ordering::SeqCst);
    assert!(
        sent <= 3,
        "{sent} requests sent after the credential was refused (2 in flight at most)"
    );
    let halted = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| matches!(e, RuntimeError::ConnectionHalted { .. }))
        .count();
    assert!(halted >= 37, "the others say why they were not sent: {halted}");
    let text = results
        .iter()
        .find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| matches!(e, RuntimeError::ConnectionHalted { .. }))
        })
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        text.contains("credential was refused") && !text.contains("revoked"),
        "{text}"
    );
}
