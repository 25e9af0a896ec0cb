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

/// The pacing interval implied by a budget: zero while the budget is healthy; when fewer than
/// `reserve` (or 10 % of the limit) requests remain, spread the rest over the time to reset; at
/// zero remaining, wait for the reset.
pub fn pacing_for(b: &Budget, reserve: u64) -> Duration {
    let Some(reset_in) = b.reset_in else {
        return Duration::ZERO;
    };
    let low_mark = reserve.max(b.limit.map(|l| l / 10).unwrap_or(0));
    if b.remaining == 0 {
        reset_in
    } else if b.remaining <= low_mark {
        reset_in / (b.remaining.min(u32::MAX as u64) as u32)
    } else {
        Duration::ZERO
    }
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

#[derive(Debug, Clone, Copy)]
struct BucketState {
    next_at: Instant,
    interval: Duration,
}

/// Spaces requests per bucket: a pause (until a reset) and a pacing interval between requests.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    buckets: Mutex<HashMap<String, BucketState>>,
}

impl Pacer {
    /// Reserve this request's start time in its bucket; returns how long to wait first.
    pub fn reserve(&self, key: &str) -> Duration {
        let now = Instant::now();
        let Ok(mut map) = self.buckets.lock() else {
            return Duration::ZERO;
        };
        let Some(state) = map.get_mut(key) else {
            return Duration::ZERO;
        };
        let start = state.next_at.max(now);
        state.next_at = start + state.interval;
        start - now
    }

    /// Hold every request of a bucket until `until` (e.g. a 429's reset).
    pub fn pause_until(&self, key: &str, until: Instant) {
        if let Ok(mut map) = self.buckets.lock() {
            let s = map.entry(key.to_string()).or_insert(BucketState {
                next_at: until,
                interval: Duration::ZERO,
            });
            s.next_at = s.next_at.max(until);
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
            let s = map.entry(key.to_string()).or_insert(BucketState {
                next_at: now,
                interval,
            });
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
        assert_eq!(pacing_for(&b, 4), Duration::from_secs(832));
    }

    #[test]
    fn pacing_spreads_the_rest_of_a_low_budget() {
        let healthy = Budget {
            remaining: 500,
            limit: Some(600),
            reset_in: Some(Duration::from_secs(60)),
        };
        assert_eq!(pacing_for(&healthy, 4), Duration::ZERO);
        let low = Budget {
            remaining: 30,
            limit: Some(600),
            reset_in: Some(Duration::from_secs(60)),
        };
        assert_eq!(pacing_for(&low, 4), Duration::from_secs(2));
        assert_eq!(graph_pacing(0.5), Duration::ZERO);
        assert_eq!(graph_pacing(1.0), Duration::from_secs(1));
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
    fn pacer_spaces_requests() {
        let p = Pacer::default();
        assert_eq!(p.reserve("b"), Duration::ZERO);
        p.set_interval("b", Duration::from_millis(100));
        let first = p.reserve("b");
        let second = p.reserve("b");
        assert!(
            second >= first + Duration::from_millis(90),
            "{first:?} {second:?}"
        );
        p.set_interval("b", Duration::ZERO);
    }
}
