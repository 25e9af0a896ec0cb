//! Per-run counters of one connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// A snapshot of a connection's counters since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCounters {
    /// HTTP requests sent (token requests included, retries included).
    pub requests: u64,
    /// Requests that were retries of an earlier attempt.
    pub retries: u64,
    /// Token requests sent.
    pub token_requests: u64,
    /// Responses with HTTP 429 or a provider's throttling error.
    pub throttled_responses: u64,
    /// Milliseconds spent waiting because of throttling or pacing (not ordinary backoff).
    pub throttled_ms: u64,
    /// Milliseconds spent in backoff between retries.
    pub backoff_ms: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Pages handed to connector cursors.
    pub pages: u64,
    /// Listings restarted from page one after an expired paging cursor.
    pub listing_restarts: u64,
    /// Redirects to another origin that were refused (never followed).
    pub redirects_refused: u64,
    /// Responses refused for being larger than `max_response_mb`.
    pub oversized_responses: u64,
    /// Times the run's time limit (`max_run_secs`) stopped work.
    pub deadline_hits: u64,
    /// The lowest rate-limit budget seen in remaining-count headers, if any.
    pub lowest_budget: Option<BudgetSnapshot>,
    /// Requests by operation and response status, sorted (for `serve`'s metrics).
    pub by_request: Vec<RequestCount>,
}

/// How many requests of one operation ended with one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// The HTTP method (`GET`, `POST`, ...), or `token` for token requests.
    pub operation: String,
    /// The response's HTTP status code, or `error` when no response came (network, refused redirect).
    pub status: String,
    /// Requests.
    pub count: u64,
}

/// A provider's rate-limit budget as reported in response headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetSnapshot {
    /// Bucket (host and path prefix).
    pub bucket: String,
    /// Requests remaining in the window.
    pub remaining: u64,
    /// Window size, when reported.
    pub limit: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub token_requests: AtomicU64,
    pub throttled_responses: AtomicU64,
    pub throttled_ms: AtomicU64,
    pub backoff_ms: AtomicU64,
    pub bytes_received: AtomicU64,
    pub pages: AtomicU64,
    pub listing_restarts: AtomicU64,
    pub redirects_refused: AtomicU64,
    pub oversized_responses: AtomicU64,
    pub deadline_hits: AtomicU64,
    pub lowest_budget: Mutex<Option<BudgetSnapshot>>,
    pub by_request: Mutex<BTreeMap<(String, String), u64>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Count one request of `operation` that ended with `status` (a code, or `error`).
    pub fn count_request(&self, operation: &str, status: &str) {
        if let Ok(mut by) = self.by_request.lock() {
            *by.entry((operation.to_string(), status.to_string())).or_insert(0) += 1;
        }
    }

    pub fn observe_budget(&self, b: BudgetSnapshot) {
        if let Ok(mut low) = self.lowest_budget.lock() {
            if low.as_ref().is_none_or(|l| b.remaining < l.remaining) {
                *low = Some(b);
            }
        }
    }

    pub fn snapshot(&self) -> RunCounters {
        RunCounters {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            throttled_responses: self.throttled_responses.load(Ordering::Relaxed),
            throttled_ms: self.throttled_ms.load(Ordering::Relaxed),
            backoff_ms: self.backoff_ms.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            listing_restarts: self.listing_restarts.load(Ordering::Relaxed),
            redirects_refused: self.redirects_refused.load(Ordering::Relaxed),
            oversized_responses: self.oversized_responses.load(Ordering::Relaxed),
            deadline_hits: self.deadline_hits.load(Ordering::Relaxed),
            lowest_budget: self.lowest_budget.lock().ok().and_then(|b| b.clone()),
            by_request: self
                .by_request
                .lock()
                .map(|by| {
                    by.iter()
                        .map(|((operation, status), count)| RequestCount {
                            operation: operation.clone(),
                            status: status.clone(),
                            count: *count,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_and_status_in_a_sorted_snapshot() {
        let c = Counters::default();
        c.count_request("GET", "200");
        c.count_request("GET", "429");
        c.count_request("GET", "200");
        c.count_request("token", "error");
        let snap = c.snapshot();
        let got: Vec<(&str, &str, u64)> = snap
            .by_request
            .iter()
            .map(|r| (r.operation.as_str(), r.status.as_str(), r.count))
            .collect();
        assert_eq!(
            got,
            vec![("GET", "200", 2), ("GET", "429", 1), ("token", "error", 1)]
        );
    }
}
