//! Retry and rate-limit arithmetic: throttle headers of each provider, exponential backoff with
//! full jitter, and a pacer that slows requests down before a budget runs out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use usersync_sdk::HttpResponse;

/// HTTP statuses the runtime retries on its own: 429, 502, 503, 504.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The response's `Date` header as a time, if present and valid.
fn response_date(resp: &HttpResponse) -> Option<SystemTime> {
    resp.header("Date")
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
}

/// `Retry-After`: delta-seconds or an HTTP date (measured against the response's `Date`
/// header when present, else against `now`).
pub fn retry_after(resp: &HttpResponse, now: SystemTime) -> Option<Duration> {
    let v = resp.header("Retry-After")?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let when = httpdate::parse_http_date(v).ok()?;
    let base = response_date(resp).unwrap_or(now);
    Some(when.duration_since(base).unwrap_or(Duration::ZERO))
}

/// Okta `X-Rate-Limit-Reset`: UTC epoch seconds when the window resets, measured against the
/// response's `Date` header (clock skew of this machine does not matter), else `now`.
pub fn okta_reset(resp: &HttpResponse, now: SystemTime) -> Option<Duration> {
    let epoch = resp.header("X-Rate-Limit-Reset")?.trim().parse::<u64>().ok()?;
    let reset = UNIX_EPOCH + Duration::from_secs(epoch);
    let base = response_date(resp).unwrap_or(now);
    Some(reset.duration_since(base).unwrap_or(Duration::ZERO))
}

/// OneLogin `X-RateLimit-Reset`: seconds remaining until the window resets.
pub fn onelogin_reset(resp: &HttpResponse) -> Option<Duration> {
    let secs = resp.header("X-RateLimit-Reset")?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(secs))
}

/// How long the provider asked us to wait, from whichever throttle header it sent:
/// `Retry-After` (Graph, Google, generic), Okta `X-Rate-Limit-Reset`, OneLogin
/// `X-RateLimit-Reset`. Uncapped; the caller caps it.
pub fn server_wait(resp: &HttpResponse, now: SystemTime) -> Option<Duration> {
    retry_after(resp, now)
        .or_else(|| okta_reset(resp, now))
        .or_else(|| onelogin_reset(resp))
}

/// A remaining-count observation from response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests left in the window.
    pub remaining: u64,
    /// Window size, when sent.
    pub limit: Option<u64>,
    /// Time until the window resets, when sent.
    pub reset_in: Option<Duration>,
}

/// Read Okta (`X-Rate-Limit-Remaining/-Limit/-Reset`) or OneLogin
/// (`X-RateLimit-Remaining/-Limit/-Reset`) budget headers.
pub fn budget(resp: &HttpResponse, now: SystemTime) -> Option<Budget> {
    let num = |h: &str| resp.header(h).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(remaining) = num("X-Rate-Limit-Remaining") {
        return Some(Budget {
            remaining,
            limit: num("X-Rate-Limit-Limit"),
            reset_in: okta_reset(resp, now),
        });
    }
    if let Some(remaining) = num("X-RateLimit-Remaining") {
        return Some(Budget {
            remaining,
            limit: num("X-RateLimit-Limit"),
            reset_in: onelogin_reset(resp),
        });
    }
    None
}

/// Graph's `x-ms-throttle-limit-percentage` (sent above 0.8 of the limit; 0.8..1.8).
pub fn graph_pressure(resp: &HttpResponse) -> Option<f64> {
    resp.header("x-ms-throttle-limit-percentage")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p >= 0.0)
}

/// Backoff before retry number `retry` (1 = first retry): a uniformly random time in
/// `[0, min(max, base * 2^(retry-1))]` ("full jitter").
pub fn full_jitter(retry: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let ceiling = exp.min(max);
    if ceiling.is_zero() {
        return Duration::ZERO;
    }
    let nanos = rand::thread_rng().gen_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
    Duration::from_nanos(nanos)
}

/// The pacing interval for Graph's throttle pressure: nothing below 0.8 of the limit, then a
/// growing pause per request (1 s at the limit, 5 s at 1.8x).
pub fn graph_pacing(pressure: f64) -> Duration {
    if pressure < 0.8 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(((pressure - 0.8) * 5.0).min(10.0))
    }
}

/// The bucket a URL's rate limit is tracked in: host, port and the first three path segments
/// (Okta buckets are per endpoint family: `/api/v1/users`, `/api/v1/groups`...).
pub fn bucket_key(url: &url::Url) -> String {
    let mut key = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    );
    for seg in url.path_segments().into_iter().flatten().take(3) {
        key.push('/');
        key.push_str(seg);
    }
    key
}

/// Backoff before throttle retry number `level` of a bucket (1 = first) when the provider gave
/// no usable wait (Google's quota errors carry no `Retry-After`): exponential from `base`, capped
/// at `cap` (the quota window), with "equal jitter" (a random time in `[ceiling/2, ceiling]`) so
/// that waits never collapse towards zero and clients do not retry in lockstep.
pub fn throttle_backoff(level: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << level.saturating_sub(1).min(20));
    let ceiling = exp.min(cap);
    let half = ceiling / 2;
    let spread = (ceiling - half).as_nanos().min(u64::MAX as u128) as u64;
    if spread == 0 {
        return ceiling;
    }
    half + Duration::from_nanos(rand::thread_rng().gen_range(0..=spread))
}

#[derive(Debug, Clone, Copy)]
struct BucketState {
    /// Earliest start of the next request (pacing slots).
    next_at: Instant,
    /// Spacing between requests (pacing from budget headers).
    interval: Duration,
    /// Nobody in the bucket starts before this (a throttle response's wait).
    paused_until: Instant,
    /// Consecutive throttle rounds without a success (the backoff exponent).
    level: u32,
    /// Bumped at every escalation: a throttle answer to a request sent before the latest
    /// escalation is stale and does not escalate again (the whole in-flight burst is answered
    /// 429/403 together; it counts as one round).
    generation: u64,
    /// When the bucket's current run of unthrottled requests began: the earliest its quota
    /// window can have opened.
    calm_since: Option<Instant>,
    /// While throttled without a provider's wait: the latest the quota window that throttled
    /// us can end (a window of `cap` opened at `calm_since` or later). The backoff never waits
    /// past it, so the first request after the refill is not a whole backoff step late.
    window_end: Option<Instant>,
    /// The provider's own budget of the current rate-limit window, from its remaining-count
    /// headers, less the requests admitted since.
    window: Option<WindowBudget>,
}

/// What is left of a provider's rate-limit window (Okta `X-Rate-Limit-*`, OneLogin
/// `X-RateLimit-*`), as the pacer spends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowBudget {
    /// Requests the window still allows (the provider's last count, less requests admitted
    /// since).
    remaining: u64,
    /// When the window refills.
    reset_at: Instant,
    /// Requests kept back for requests in flight and other clients of the same organisation.
    floor: u64,
}

/// Margin after a window's reset before the first request of the next one (the reset headers
/// have one-second resolution and the clocks are the provider's).
pub const RESET_MARGIN: Duration = Duration::from_millis(100);

impl BucketState {
    fn new(now: Instant) -> Self {
        BucketState {
            next_at: now,
            interval: Duration::ZERO,
            paused_until: now,
            level: 0,
            generation: 0,
            calm_since: None,
            window_end: None,
            window: None,
        }
    }
}

/// The first end, after `now`, of back-to-back windows of `len` starting at `start`.
fn next_window_end(start: Instant, now: Instant, len: Duration) -> Option<Instant> {
    if len.is_zero() {
        return None;
    }
    let elapsed = now.saturating_duration_since(start);
    let windows = (elapsed.as_nanos() / len.as_nanos()) as u32 + 1;
    Some(start + len.saturating_mul(windows))
}

/// How a bucket reacted to a throttle response (see [`Pacer::throttled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThrottleStep {
    /// How long the bucket is paused from now (the throttled request waits this long too).
    pub wait: Duration,
    /// The bucket's backoff level after this response.
    pub level: u32,
}

/// Spaces requests per bucket: a pause (after a throttle response, for the whole bucket), a
/// pacing interval between requests, and the bucket's throttle backoff level.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Mutex<HashMap<String, BucketState>>,
}

impl Pacer {
    /// Ask to send one request of the bucket now: `Duration::ZERO` admits it (and counts it
    /// against the bucket's window budget and spacing), anything else is how long to wait
    /// before asking again. Nothing is booked ahead: a waiter asks again after its wait, so a
    /// window that refilled, a pause that ended or a spacing that was lifted meanwhile is seen
    /// at once (booking future slots cumulatively kept requests waiting for budget that had
    /// already come back).
    pub fn admit(&self, key: &str) -> Duration {
        self.admit_at(key, Instant::now())
    }

    /// [`Pacer::admit`] at a given time (tests inject the clock).
    pub fn admit_at(&self, key: &str, now: Instant) -> Duration {
        let Ok(mut map) = self.buckets.lock() else {
            return Duration::ZERO;
        };
        let Some(s) = map.get_mut(key) else {
            return Duration::ZERO;
        };
        let mut wait = s.paused_until.saturating_duration_since(now);
        if let Some(w) = s.window {
            if now >= w.reset_at {
                // refilled: the next answer tells the new window's count
                s.window = None;
            } else if w.remaining <= w.floor {
                wait = wait.max(w.reset_at - now + RESET_MARGIN);
            }
        }
        if !s.interval.is_zero() {
            wait = wait.max(s.next_at.saturating_duration_since(now));
        }
        if wait.is_zero() {
            if let Some(w) = &mut s.window {
                w.remaining = w.remaining.saturating_sub(1);
            }
            s.next_at = now + s.interval;
        }
        wait
    }

    /// A response carried the provider's budget of its window: `remaining` requests until
    /// `reset_in`. Within one window the lower of the provider's count and ours is kept (answers
    /// arrive out of order, and requests in flight are not in the provider's count yet); a later
    /// reset is a new window. `floor`: requests kept back (in flight, other clients).
    pub fn observe_window(&self, key: &str, remaining: u64, reset_in: Duration, floor: u64) {
        self.observe_window_at(key, remaining, reset_in, floor, Instant::now());
    }

    /// [`Pacer::observe_window`] at a given time (tests inject the clock).
    pub fn observe_window_at(&self, key: &str, remaining: u64, reset_in: Duration, floor: u64, now: Instant) {
        let Ok(mut map) = self.buckets.lock() else {
            return;
        };
        let s = map
            .entry(key.to_string())
            .or_insert_with(|| BucketState::new(now));
        let reset_at = now + reset_in;
        let same_window = s.window.is_some_and(|w| {
            let (a, b) = (w.reset_at.max(reset_at), w.reset_at.min(reset_at));
            a - b <= Duration::from_millis(1500)
        });
        let remaining = match s.window {
            Some(w) if same_window => w.remaining.min(remaining),
            _ => remaining,
        };
        s.window = Some(WindowBudget {
            remaining,
            reset_at: match s.window {
                Some(w) if same_window => w.reset_at.max(reset_at),
                _ => reset_at,
            },
            floor,
        });
    }

    /// What is left of the bucket's pause (it may have grown while a request slept), and the
    /// bucket's generation: call right before sending; send when the pause is zero and pass
    /// the generation to [`Pacer::throttled`] / [`Pacer::succeeded`].
    pub fn enter(&self, key: &str) -> (Duration, u64) {
        self.enter_at(key, Instant::now())
    }

    /// [`Pacer::enter`] at a given time (tests inject the clock).
    pub fn enter_at(&self, key: &str, now: Instant) -> (Duration, u64) {
        let Ok(mut map) = self.buckets.lock() else {
            return (Duration::ZERO, 0);
        };
        if !map.contains_key(key) {
            map.insert(key.to_string(), BucketState::new(now));
        }
        let Some(s) = map.get_mut(key) else {
            return (Duration::ZERO, 0);
        };
        let left = s.paused_until.saturating_duration_since(now);
        if left.is_zero() && s.level == 0 && s.calm_since.is_none() {
            s.calm_since = Some(now);
        }
        (left, s.generation)
    }

    /// A request of the bucket sent at `generation` was throttled. `hint` is the provider's own
    /// wait (already capped), if it gave one above zero: the bucket pauses that long. Without
    /// one, the first throttle answer of a round raises the bucket's backoff level and pauses
    /// the bucket for [`throttle_backoff`] of it (`base`, capped at `cap`, the quota window),
    /// but never past the end of the window that throttled us (`cap` after the bucket's
    /// unthrottled run began; then the next window), plus a little jitter; later answers of
    /// the same round only wait out the pause. Returns the pause left and the level.
    pub fn throttled(
        &self,
        key: &str,
        generation: u64,
        hint: Option<Duration>,
        base: Duration,
        cap: Duration,
    ) -> ThrottleStep {
        self.throttled_at(key, generation, hint, base, cap, Instant::now())
    }

    /// [`Pacer::throttled`] at a given time (tests inject the clock).
    pub fn throttled_at(
        &self,
        key: &str,
        generation: u64,
        hint: Option<Duration>,
        base: Duration,
        cap: Duration,
        now: Instant,
    ) -> ThrottleStep {
        let Ok(mut map) = self.buckets.lock() else {
            return ThrottleStep {
                wait: hint.unwrap_or(cap),
                level: 1,
            };
        };
        let s = map
            .entry(key.to_string())
            .or_insert_with(|| BucketState::new(now));
        if generation == s.generation {
            s.level = s.level.saturating_add(1);
            s.generation += 1;
            // a little jitter so a burst does not hit the reset together
            let jitter = throttle_backoff(1, base.min(cap) / 2, cap);
            let wait = match hint.filter(|h| !h.is_zero()) {
                Some(h) => h + jitter,
                None => {
                    let end = match (s.window_end, s.calm_since.take()) {
                        (Some(end), _) if end > now => Some(end),
                        (Some(end), _) => next_window_end(end, now, cap),
                        (None, start) => next_window_end(start.unwrap_or(now), now, cap),
                    };
                    s.window_end = end;
                    let backoff = throttle_backoff(s.level, base, cap);
                    match end {
                        Some(end) => backoff.min((end - now) + jitter).max(jitter),
                        None => backoff,
                    }
                }
            };
            s.paused_until = s.paused_until.max(now + wait);
        } else if let Some(h) = hint.filter(|h| !h.is_zero()) {
            s.paused_until = s.paused_until.max(now + h);
        }
        ThrottleStep {
            wait: s.paused_until.saturating_duration_since(now),
            level: s.level,
        }
    }

    /// A request of the bucket sent at `generation` succeeded: if nothing was throttled since
    /// it was sent, the throttle backoff starts over.
    pub fn succeeded(&self, key: &str, generation: u64) {
        if let Ok(mut map) = self.buckets.lock() {
            if let Some(s) = map.get_mut(key) {
                if s.generation == generation && s.level > 0 {
                    s.level = 0;
                    s.window_end = None;
                    // the refilled window opened at about this request
                    s.calm_since = Some(Instant::now());
                }
            }
        }
    }

    /// Hold every request of a bucket until `until` (e.g. a 429's reset).
    pub fn pause_until(&self, key: &str, until: Instant) {
        if let Ok(mut map) = self.buckets.lock() {
            let s = map
                .entry(key.to_string())
                .or_insert_with(|| BucketState::new(Instant::now()));
            s.paused_until = s.paused_until.max(until);
        }
    }

    /// Set the spacing between requests of a bucket (zero: full speed).
    pub fn set_interval(&self, key: &str, interval: Duration) {
        if let Ok(mut map) = self.buckets.lock() {
            if interval.is_zero() {
                if let Some(s) = map.get_mut(key) {
                    s.interval = Duration::ZERO;
                }
                return;
            }
            let now = Instant::now();
            let s = map
                .entry(key.to_string())
                .or_insert_with(|| BucketState::new(now));
            s.interval = interval;
            s.next_at = s.next_at.max(now + interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "7");
        assert_eq!(retry_after(&r, at(0)), Some(Duration::from_secs(7)));
        let r = HttpResponse::new(503, "")
            .with_header("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .with_header("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT");
        // the local clock is far off: the Date header is the reference
        assert_eq!(retry_after(&r, at(5)), Some(Duration::from_secs(30)));
        let r = HttpResponse::new(503, "").with_header("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT");
        assert_eq!(retry_after(&r, at(1_445_412_480)), Some(Duration::from_secs(30)));
        let r = HttpResponse::new(503, "").with_header("Retry-After", "soon");
        assert_eq!(retry_after(&r, at(0)), None);
    }

    #[test]
    fn okta_reset_is_epoch_against_date_header() {
        let r = HttpResponse::new(429, "")
            .with_header("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .with_header("X-Rate-Limit-Reset", "1445412500");
        assert_eq!(okta_reset(&r, at(0)), Some(Duration::from_secs(20)));
        // a reset in the past means "now"
        let r = HttpResponse::new(429, "")
            .with_header("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .with_header("X-Rate-Limit-Reset", "1445412400");
        assert_eq!(okta_reset(&r, at(0)), Some(Duration::ZERO));
        assert_eq!(server_wait(&r, at(0)), Some(Duration::ZERO));
    }

    #[test]
    fn onelogin_reset_is_seconds_remaining() {
        let r = HttpResponse::new(429, "")
            .with_header("X-RateLimit-Limit", "5000")
            .with_header("X-RateLimit-Remaining", "0")
            .with_header("X-RateLimit-Reset", "832");
        assert_eq!(server_wait(&r, at(0)), Some(Duration::from_secs(832)));
        let b = budget(&r, at(0)).expect("budget");
        assert_eq!((b.remaining, b.limit), (0, Some(5000)));
        assert_eq!(b.reset_in, Some(Duration::from_secs(832)));
    }

    #[test]
    fn graph_pressure_spaces_requests_above_eighty_percent() {
        assert_eq!(graph_pacing(0.5), Duration::ZERO);
        assert_eq!(graph_pacing(1.0), Duration::from_secs(1));
    }

    /// Issue 17.12: the window's budget is spent at full speed, the bucket waits for the reset
    /// only when the budget is down to the floor, and the first request after the reset goes at
    /// once (before, slots were booked cumulatively at reset/remaining apart and never re-planned,
    /// so a refilled window was wasted). Injected clock: no sleeping, no timing slack.
    #[test]
    fn a_window_budget_is_spent_then_waited_out_to_the_reset_and_never_booked_ahead() {
        let p = Pacer::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // unknown budget: full speed
        assert_eq!(p.admit_at("b", at(0)), Duration::ZERO);
        // the provider says: 10 left in this window, which resets in 60 s; 2 kept back
        p.observe_window_at("b", 10, Duration::from_secs(60), 2, at(0));
        for i in 0..8 {
            assert_eq!(
                p.admit_at("b", at(10 + i)),
                Duration::ZERO,
                "request {i} of the budget"
            );
        }
        // down to the floor: wait for the reset, whoever asks, however often they ask
        let wait = p.admit_at("b", at(100));
        assert_eq!(wait, Duration::from_millis(59_900) + RESET_MARGIN);
        for _ in 0..50 {
            assert_eq!(p.admit_at("b", at(100)), wait, "waiting books nothing ahead");
        }
        // an answer to an earlier request of the same window cannot raise the budget
        p.observe_window_at("b", 6, Duration::from_millis(59_900), 2, at(100));
        assert_eq!(
            p.admit_at("b", at(30_000)),
            Duration::from_millis(30_000) + RESET_MARGIN
        );
        // after the reset every waiter is admitted at once: the refilled window is used
        for i in 0..20 {
            assert_eq!(
                p.admit_at("b", at(60_001 + i)),
                Duration::ZERO,
                "after the reset, request {i}"
            );
        }
        // the new window's count arrives with the next answer
        p.observe_window_at("b", 3, Duration::from_secs(59), 2, at(60_100));
        assert_eq!(p.admit_at("b", at(60_101)), Duration::ZERO);
        assert!(p.admit_at("b", at(60_102)) > Duration::from_secs(58));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for retry in 1..12 {
            let d = full_jitter(retry, Duration::from_millis(100), Duration::from_secs(2));
            assert!(d <= Duration::from_secs(2));
            assert!(d <= Duration::from_millis(100) * (1 << (retry - 1)));
        }
    }

    #[test]
    fn buckets_group_endpoint_families() {
        let u = url::Url::parse("https://acme.okta.com/api/v1/users?limit=200&after=x").expect("url");
        assert_eq!(bucket_key(&u), "acme.okta.com:443/api/v1/users");
    }

    #[test]
    fn pacer_spaces_requests_without_booking_ahead() {
        let p = Pacer::default();
        assert_eq!(p.admit("b"), Duration::ZERO);
        p.set_interval("b", Duration::from_millis(100));
        // the injected clock starts after set_interval's own reading of it
        let t0 = Instant::now() + Duration::from_millis(1);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let first = p.admit_at("b", at(0));
        assert!(
            first > Duration::ZERO && first <= Duration::from_millis(100),
            "{first:?}"
        );
        // a second waiter is told the same wait, not a slot after the first one's
        assert_eq!(p.admit_at("b", at(0)), first);
        // lifting the spacing lets the next request go at once
        p.set_interval("b", Duration::ZERO);
        assert_eq!(p.admit_at("b", at(1)), Duration::ZERO);
    }

    #[test]
    fn throttle_backoff_grows_to_the_window_and_never_collapses() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(60);
        for level in 1..16 {
            let ceiling = (base * (1 << (level - 1).min(20))).min(cap);
            for _ in 0..20 {
                let d = throttle_backoff(level, base, cap);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "level {level}: {d:?} vs {ceiling:?}"
                );
            }
        }
        assert_eq!(throttle_backoff(3, base, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_throttled_burst_escalates_the_bucket_once_and_a_success_resets_it() {
        let p = Pacer::default();
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(10);
        let (left, g0) = p.enter("b");
        assert_eq!(left, Duration::ZERO);
        // four requests in flight are answered 403 together: one round, level 1
        let first = p.throttled("b", g0, None, base, cap);
        assert_eq!(first.level, 1);
        assert!(first.wait >= Duration::from_millis(50), "{first:?}");
        for _ in 0..3 {
            let stale = p.throttled("b", g0, None, base, cap);
            assert_eq!(
                stale.level, 1,
                "answers to requests sent before the escalation are one round"
            );
            assert!(stale.wait <= first.wait);
        }
        // every request of the bucket waits for the pause, not only the throttled one
        assert!(p.admit("b") >= Duration::from_millis(40));
        let (left, g1) = p.enter("b");
        assert!(left > Duration::ZERO && g1 != g0);
        // the next round (sent after the pause) escalates again: the backoff doubles
        let second = p.throttled("b", g1, None, base, cap);
        assert_eq!(second.level, 2);
        // a success of a request sent before the latest escalation does not reset the level
        p.succeeded("b", g1);
        let (_, g2) = p.enter("b");
        assert_eq!(p.throttled("b", g2, None, base, cap).level, 3);
        let (_, g3) = p.enter("b");
        p.succeeded("b", g3);
        assert_eq!(
            p.throttled("b", g3, None, base, cap).level,
            1,
            "a success starts over"
        );
        // a provider's own wait is honoured (plus a little jitter)
        let (_, g4) = p.enter("b");
        let hinted = p.throttled("b", g4, Some(Duration::from_secs(3)), base, cap);
        assert!(hinted.wait >= Duration::from_millis(2900), "{hinted:?}");
    }

    #[test]
    fn throttle_backoff_never_waits_past_the_end_of_the_quota_window() {
        let p = Pacer::default();
        let base = Duration::from_millis(10);
        let window = Duration::from_millis(400);
        // an injected clock: the bucket's unthrottled run (and its window) begins at t0, the
        // throttle answers arrive 300 ms later
        let t0 = Instant::now();
        let (_, _) = p.enter_at("b", t0);
        let t = t0 + Duration::from_millis(300);
        let mut last = ThrottleStep {
            wait: Duration::ZERO,
            level: 0,
        };
        for _ in 0..7 {
            let (_, g) = p.enter_at("b", t);
            last = p.throttled_at("b", g, None, base, window, t);
        }
        // level 7 would back off 200-400 ms; the window that throttled us ends within 100 ms
        assert_eq!(last.level, 7);
        assert!(last.wait <= Duration::from_millis(150), "{last:?}");
        assert!(
            last.wait >= Duration::from_millis(2),
            "never a busy loop: {last:?}"
        );
    }
}
