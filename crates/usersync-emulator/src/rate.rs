//! Per-bucket request-rate limiter (fixed one-minute windows), and an in-flight (concurrency) gauge.
//! Facades decide the bucket of a request and turn a [`RateDecision`] into their provider's headers
//! and 429 body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The outcome of counting one request against its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The bucket's limit per window.
    pub limit: u32,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// When the window resets, Unix seconds.
    pub reset_epoch: i64,
    /// Seconds until the reset (at least 1 when throttled).
    pub retry_after_secs: i64,
}

#[derive(Debug)]
struct Window {
    start: i64,
    count: u32,
}

/// Fixed-window limiter: each bucket's window opens at its first request and lasts 60 s.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimiter {
    /// Count one request in `bucket` with `limit` per minute, at time `now` (Unix seconds).
    pub fn check(&self, bucket: &str, limit: u32, now: i64) -> RateDecision {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let win = w
            .entry(bucket.to_string())
            .or_insert(Window { start: now, count: 0 });
        if now >= win.start + 60 {
            win.start = now;
            win.count = 0;
        }
        let reset = win.start + 60;
        if win.count >= limit {
            return RateDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_epoch: reset,
                retry_after_secs: (reset - now).max(1),
            };
        }
        win.count += 1;
        RateDecision {
            allowed: true,
            limit,
            remaining: limit - win.count,
            reset_epoch: reset,
            retry_after_secs: (reset - now).max(0),
        }
    }

    /// Forget every window (tests).
    pub fn reset(&self) {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Counts in-flight requests; a guard decrements on drop.
#[derive(Debug, Default, Clone)]
pub struct InFlight(Arc<AtomicU32>);

/// Decrements the in-flight count when dropped.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicU32>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    /// Enter; returns the guard and the number in flight including this request.
    pub fn enter(&self) -> (InFlightGuard, u32) {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        (InFlightGuard(self.0.clone()), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_and_resets() {
        let r = RateLimiter::default();
        let a = r.check("users", 2, 1000);
        assert_eq!((a.allowed, a.remaining, a.reset_epoch), (true, 1, 1060));
        assert!(r.check("users", 2, 1001).allowed);
        let c = r.check("users", 2, 1002);
        assert_eq!((c.allowed, c.remaining, c.retry_after_secs), (false, 0, 58));
        assert!(r.check("groups", 2, 1002).allowed, "buckets are independent");
        assert!(r.check("users", 2, 1060).allowed, "new window");
    }

    #[test]
    fn in_flight_guard_decrements() {
        let f = InFlight::default();
        let (g1, n1) = f.enter();
        let (_g2, n2) = f.enter();
        assert_eq!((n1, n2), (1, 2));
        drop(g1);
        assert_eq!(f.enter().1, 2);
    }
}
