//! Fault injection, shared by every facade.
//!
//! A [`FaultConfig`] is set at start (CLI flags) or at run time (`PUT /_emulator/faults`). Decisions
//! come from one RNG seeded with [`FaultConfig::seed`], drawn in request order, so a sequential client
//! sees the same faults on every run. Request-level faults (latency, 429, 5xx, reset, truncated or
//! malformed body, invalid UTF-8, slow drip) are applied by the server's middleware; paging faults
//! (loop, expired page token, empty page with a next link, an item repeated across pages) are applied
//! by [`crate::paging`] inside each facade.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every fault knob. All default to "off".
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// Fixed latency added to every API request, milliseconds.
    pub latency_ms: u64,
    /// Extra random latency, uniformly 0..=jitter, milliseconds.
    pub latency_jitter_ms: u64,
    /// Requests per minute per rate-limit bucket before the provider's own 429; `None` = the facade's
    /// generous default (headers are still sent where the provider sends them).
    pub rate_limit_per_minute: Option<u32>,
    /// Maximum concurrent in-flight API requests before a 429 (providers with a concurrency limit).
    pub concurrency_limit: Option<u32>,
    /// Probability (0..=1) of answering with a server error instead of the real response.
    pub error_rate: f64,
    /// Which statuses the server errors use (picked at random): default 500, 502, 503. Also
    /// 423, which Okta answers with `E0000239` ("try again later"), and 429, answered with the
    /// provider's own throttle response and a `Retry-After` of [`Self::retry_after_secs`].
    pub error_statuses: Vec<u16>,
    /// `Retry-After` (delta-seconds, as Slack and the SCIM services that send it do) of injected
    /// 429 faults, and the wait the emulator checks with [`Faults::early_retries`]. Default 1.
    pub retry_after_secs: u64,
    /// Probability of resetting the TCP connection (RST) instead of answering.
    pub reset_rate: f64,
    /// Probability of sending only part of the body (Content-Length promises the whole).
    pub truncate_rate: f64,
    /// Probability of a syntactically broken JSON body (with a consistent Content-Length).
    pub malformed_rate: f64,
    /// Probability of a slow-drip body (sent in small chunks with pauses).
    pub drip_rate: f64,
    /// Probability of invalid UTF-8 bytes (`FC FF`: a Latin-1 `ü`, then a byte no UTF-8 text holds)
    /// inside a JSON string of a successful answer: the first record field (a name, login, email or
    /// string id) of a listing page, else its first string. Content-Length stays consistent.
    pub invalid_utf8_rate: f64,
    /// Chunk size of slow-drip bodies, bytes.
    pub drip_chunk_bytes: usize,
    /// Pause between slow-drip chunks, milliseconds.
    pub drip_pause_ms: u64,
    /// Paging loop: page number (1-based) of a listing whose next link points back to itself.
    pub paging_loop_at_page: Option<u32>,
    /// Page tokens expire: a token for page N or later (N >= 2) is rejected with the provider's error.
    pub expire_token_at_page: Option<u32>,
    /// Empty page: page number (1-based) of a listing served with no items but a next link.
    pub empty_page_at: Option<u32>,
    /// Repeated item: page number (N >= 2) of a listing that starts with the last item of page N-1
    /// again (the same object twice across pages, as offset paging does when an object is added
    /// before the offset between two page reads). Offset-paged listings (Keycloak) shift every
    /// page from N on by one, as the real server would; token-paged ones repeat the item once.
    pub repeat_at_page: Option<u32>,
    /// Probability of answering with a redirect (`redirect_status`) to the same path and query on
    /// another origin, `redirect_to` (e.g. a server that answers `[]`): what a hijacked proxy or a
    /// misconfigured gateway does. A client must never take the other origin's answer as a page.
    pub redirect_rate: f64,
    /// The other origin of redirect faults, `scheme://host:port` (required with `redirect_rate`).
    pub redirect_to: Option<String>,
    /// Status of redirect faults: 301, 302, 303, 307 or 308 (default 302).
    pub redirect_status: u16,
    /// Probability of an oversized answer: the real JSON body followed by whitespace (still valid
    /// JSON) up to `oversize_bytes` in all, streamed without Content-Length.
    pub oversize_rate: f64,
    /// Total size of oversized answers, bytes.
    pub oversize_bytes: u64,
    /// Request-level faults apply only to API requests whose path and query contain this text
    /// (e.g. `/members`, `after=`): the others are served normally and not counted by
    /// `start_after` or `max_faults`. Aims a fault at one kind of listing or page position.
    pub path_contains: Option<String>,
    /// Vanishing group: the name of a group (or role) deleted from the organisation when its
    /// members or child groups are first read, i.e. after the group listing returned it, as when
    /// an administrator deletes it while a sync runs. That read answers the provider's own 404.
    /// Once per setting; counted by [`Faults::vanished`].
    pub vanish_group: Option<String>,
    /// Vanishing user: the login of a user deleted when its groups are first read (after the
    /// user listing), answered with the provider's 404. Once per setting.
    pub vanish_user: Option<String>,
    /// Request-level faults start only after this many API requests (so a listing fails mid-way).
    pub start_after: u64,
    /// Stop injecting request-level faults after this many (e.g. one 503, then healthy).
    pub max_faults: Option<u64>,
    /// Paging faults served so far under this config (shared by its clones; not configuration).
    #[serde(skip)]
    pub paging_served: PagingCounter,
}

/// Counts paging faults actually served (a loop link, an expired token, an empty page, a
/// repeated item), so a test can prove its paging fault fired. Clones share the count; it never
/// takes part in comparisons.
#[derive(Debug, Clone, Default)]
pub struct PagingCounter(std::sync::Arc<AtomicU64>);

impl PagingCounter {
    /// Count one served paging fault.
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Paging faults served so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl PartialEq for PagingCounter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            rate_limit_per_minute: None,
            concurrency_limit: None,
            error_rate: 0.0,
            error_statuses: vec![500, 502, 503],
            retry_after_secs: 1,
            reset_rate: 0.0,
            truncate_rate: 0.0,
            malformed_rate: 0.0,
            drip_rate: 0.0,
            invalid_utf8_rate: 0.0,
            drip_chunk_bytes: 16,
            drip_pause_ms: 50,
            paging_loop_at_page: None,
            expire_token_at_page: None,
            empty_page_at: None,
            repeat_at_page: None,
            redirect_rate: 0.0,
            redirect_to: None,
            redirect_status: 302,
            oversize_rate: 0.0,
            oversize_bytes: 0,
            path_contains: None,
            vanish_group: None,
            vanish_user: None,
            start_after: 0,
            max_faults: None,
            paging_served: PagingCounter::default(),
        }
    }
}

impl FaultConfig {
    /// Check ranges; the error names the bad field.
    pub fn validate(&self) -> Result<(), crate::EmulatorError> {
        for (name, p) in [
            ("error_rate", self.error_rate),
            ("reset_rate", self.reset_rate),
            ("truncate_rate", self.truncate_rate),
            ("malformed_rate", self.malformed_rate),
            ("drip_rate", self.drip_rate),
            ("invalid_utf8_rate", self.invalid_utf8_rate),
            ("redirect_rate", self.redirect_rate),
            ("oversize_rate", self.oversize_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(crate::EmulatorError::InvalidSetting {
                    name,
                    reason: format!("{p} is not a probability in 0..=1"),
                });
            }
        }
        if self
            .error_statuses
            .iter()
            .any(|s| !(500..=599).contains(s) && *s != 423 && *s != 429)
            || self.error_statuses.is_empty()
        {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "error_statuses",
                reason: "must be a non-empty list of 5xx statuses (or 423, Okta's \"try again later\", \
                         or 429, the provider's throttle answer)"
                    .to_string(),
            });
        }
        if self.drip_chunk_bytes == 0 {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "drip_chunk_bytes",
                reason: "must be at least 1".to_string(),
            });
        }
        if self.expire_token_at_page.is_some_and(|p| p < 2) {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "expire_token_at_page",
                reason: "the first page has no token: use 2 or more".to_string(),
            });
        }
        if self.repeat_at_page.is_some_and(|p| p < 2) {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "repeat_at_page",
                reason: "the first page has nothing before it to repeat: use 2 or more".to_string(),
            });
        }
        if self.redirect_rate > 0.0
            && self
                .redirect_to
                .as_deref()
                .is_none_or(|t| url::Url::parse(t).is_err())
        {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "redirect_to",
                reason: "redirect faults need an absolute `scheme://host:port` to redirect to".to_string(),
            });
        }
        if ![301, 302, 303, 307, 308].contains(&self.redirect_status) {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "redirect_status",
                reason: format!(
                    "{} is not a redirect status (301, 302, 303, 307, 308)",
                    self.redirect_status
                ),
            });
        }
        if self.retry_after_secs > 3600 {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "retry_after_secs",
                reason: format!("{} is more than an hour", self.retry_after_secs),
            });
        }
        if self.rate_limit_per_minute == Some(0) || self.concurrency_limit == Some(0) {
            return Err(crate::EmulatorError::InvalidSetting {
                name: "rate_limit_per_minute/concurrency_limit",
                reason: "must be at least 1 when set".to_string(),
            });
        }
        Ok(())
    }
}

/// What the middleware does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// Nothing: serve normally.
    None,
    /// Answer with this 5xx (or 423) status and the provider's error body.
    ServerError(u16),
    /// Answer with the provider's 429 and `Retry-After: retry_after_secs`.
    Throttle,
    /// Reset the connection.
    Reset,
    /// Send part of the body.
    Truncate,
    /// Send broken JSON.
    Malformed,
    /// Send the body slowly.
    Drip,
    /// Put invalid UTF-8 bytes inside a JSON string of the body.
    InvalidUtf8,
    /// Redirect to the same path on `redirect_to`.
    Redirect,
    /// Pad the body with whitespace to `oversize_bytes`.
    Oversize,
}

/// The live fault state of one emulator.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<(FaultConfig, StdRng)>,
    requests: AtomicU64,
    injected: AtomicU64,
    vanished: AtomicU64,
    /// Until when the last injected 429 asked the client to wait.
    throttled_until: Mutex<Option<std::time::Instant>>,
    /// Injected 429s served, and requests that arrived before their `Retry-After` was over.
    throttles: AtomicU64,
    early: AtomicU64,
}

impl Faults {
    /// Build from a (validated) config.
    pub fn new(cfg: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            inner: Mutex::new((cfg, rng)),
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            vanished: AtomicU64::new(0),
            throttled_until: Mutex::new(None),
            throttles: AtomicU64::new(0),
            early: AtomicU64::new(0),
        }
    }

    /// The current config.
    pub fn config(&self) -> FaultConfig {
        self.lock().0.clone()
    }

    /// Replace the config (re-seeds the RNG and restarts the request count used by `start_after`).
    pub fn set(&self, cfg: FaultConfig) -> Result<(), crate::EmulatorError> {
        cfg.validate()?;
        let mut g = self.lock();
        g.1 = StdRng::seed_from_u64(cfg.seed);
        g.0 = FaultConfig {
            // a fresh count per config (configs cloned from one base would share one)
            paging_served: PagingCounter::default(),
            ..cfg
        };
        self.requests.store(0, Ordering::SeqCst);
        self.injected.store(0, Ordering::SeqCst);
        self.vanished.store(0, Ordering::SeqCst);
        self.throttles.store(0, Ordering::SeqCst);
        self.early.store(0, Ordering::SeqCst);
        *self.until() = None;
        Ok(())
    }

    /// Objects deleted by `vanish_group` / `vanish_user` since the config was set (0..=2).
    pub fn vanished(&self) -> u64 {
        u64::from(self.vanished.load(Ordering::SeqCst).count_ones())
    }

    /// Whether the object named `name` is the one `vanish_group` (`group = true`) or
    /// `vanish_user` names and has not vanished yet; if so, it counts as vanished from now on.
    pub fn take_vanish(&self, group: bool, name: &str) -> bool {
        let g = self.lock();
        let wanted = if group {
            &g.0.vanish_group
        } else {
            &g.0.vanish_user
        };
        if wanted.as_deref().is_none_or(|w| w != name) {
            return false;
        }
        let bit = if group { 1 } else { 2 };
        self.vanished.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    /// Whether a vanish knob is set (a cheap check before looking anything up).
    pub fn vanish_armed(&self) -> bool {
        let g = self.lock();
        let done = self.vanished.load(Ordering::SeqCst);
        (g.0.vanish_group.is_some() && done & 1 == 0) || (g.0.vanish_user.is_some() && done & 2 == 0)
    }

    /// Number of request-level faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Number of paging faults served so far under the current config.
    pub fn paging_served(&self) -> u64 {
        self.lock().0.paging_served.get()
    }

    /// Take back one injected fault that turned out not to apply (invalid UTF-8 drawn for an answer
    /// with no JSON string in it: an error, a count, a photo), so `max_faults` counts only faults
    /// that reached the client and a later answer gets the fault instead.
    pub fn refund(&self) {
        let _ = self
            .injected
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Injected 429 faults served since the config was set.
    pub fn throttles(&self) -> u64 {
        self.throttles.load(Ordering::SeqCst)
    }

    /// API requests that arrived while the `Retry-After` of the last injected 429 was not over
    /// yet (since the config was set). A sequential client that honours `Retry-After` keeps this
    /// at 0; one with requests in flight when the 429 came may legitimately exceed it.
    pub fn early_retries(&self) -> u64 {
        self.early.load(Ordering::SeqCst)
    }

    /// Record an injected 429 served at `now`, asking for `retry_after_secs`.
    pub fn note_throttle(&self, now: std::time::Instant, retry_after_secs: u64) {
        self.throttles.fetch_add(1, Ordering::SeqCst);
        *self.until() = Some(now + std::time::Duration::from_secs(retry_after_secs));
    }

    /// Count the API request arriving at `now` as early if a 429's `Retry-After` is still running.
    pub fn note_arrival(&self, now: std::time::Instant) {
        if self.until().is_some_and(|u| now < u) {
            self.early.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.throttled_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FaultConfig, StdRng)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Latency to add to this request.
    pub fn latency(&self) -> std::time::Duration {
        let mut g = self.lock();
        let (cfg, rng) = &mut *g;
        let jitter = if cfg.latency_jitter_ms > 0 {
            rng.gen_range(0..=cfg.latency_jitter_ms)
        } else {
            0
        };
        std::time::Duration::from_millis(cfg.latency_ms + jitter)
    }

    /// Draw the request-level fault for the next API request, whose path and query are
    /// `path_and_query` (requests outside `path_contains` get no fault and are not counted).
    pub fn draw_for(&self, path_and_query: &str) -> RequestFault {
        let aimed = self
            .lock()
            .0
            .path_contains
            .as_deref()
            .is_none_or(|p| path_and_query.contains(p));
        if aimed {
            self.draw()
        } else {
            RequestFault::None
        }
    }

    /// Draw the request-level fault for the next API request.
    pub fn draw(&self) -> RequestFault {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        let (cfg, rng) = &mut *g;
        if n < cfg.start_after
            || cfg
                .max_faults
                .is_some_and(|m| self.injected.load(Ordering::SeqCst) >= m)
        {
            return RequestFault::None;
        }
        // One draw per knob, in a fixed order, so each knob's sequence is stable.
        let mut pick = |p: f64| p > 0.0 && rng.gen_bool(p.min(1.0));
        let fault = if pick(cfg.error_rate) {
            let i = rng.gen_range(0..cfg.error_statuses.len());
            match cfg.error_statuses[i] {
                429 => RequestFault::Throttle,
                s => RequestFault::ServerError(s),
            }
        } else if pick(cfg.reset_rate) {
            RequestFault::Reset
        } else if pick(cfg.truncate_rate) {
            RequestFault::Truncate
        } else if pick(cfg.malformed_rate) {
            RequestFault::Malformed
        } else if pick(cfg.drip_rate) {
            RequestFault::Drip
        } else if pick(cfg.invalid_utf8_rate) {
            // Last in the order: adding this knob leaves every other knob's sequence unchanged.
            RequestFault::InvalidUtf8
        } else if pick(cfg.redirect_rate) {
            // After every older knob: their sequences stay as they were.
            RequestFault::Redirect
        } else if pick(cfg.oversize_rate) {
            RequestFault::Oversize
        } else {
            RequestFault::None
        };
        if fault != RequestFault::None {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_under_a_seed() {
        let cfg = FaultConfig {
            seed: 5,
            error_rate: 0.3,
            reset_rate: 0.2,
            ..FaultConfig::default()
        };
        let a = Faults::new(cfg.clone());
        let b = Faults::new(cfg);
        let xs: Vec<_> = (0..200).map(|_| a.draw()).collect();
        let ys: Vec<_> = (0..200).map(|_| b.draw()).collect();
        assert_eq!(xs, ys);
        assert!(xs.contains(&RequestFault::Reset));
        assert!(xs.iter().any(|f| matches!(f, RequestFault::ServerError(_))));
        assert!(xs.contains(&RequestFault::None));
    }

    #[test]
    fn start_after_and_max_faults_bound_injection() {
        let f = Faults::new(FaultConfig {
            error_rate: 1.0,
            start_after: 2,
            max_faults: Some(1),
            ..FaultConfig::default()
        });
        assert_eq!(f.draw(), RequestFault::None);
        assert_eq!(f.draw(), RequestFault::None);
        assert!(matches!(f.draw(), RequestFault::ServerError(500 | 502 | 503)));
        assert_eq!(f.draw(), RequestFault::None);
    }

    #[test]
    fn invalid_utf8_is_drawn_last_and_leaves_other_sequences_alone() {
        let base = FaultConfig {
            seed: 9,
            error_rate: 0.2,
            malformed_rate: 0.2,
            ..FaultConfig::default()
        };
        let with = FaultConfig {
            invalid_utf8_rate: 1.0,
            ..base.clone()
        };
        let a = Faults::new(base);
        let b = Faults::new(with);
        for _ in 0..200 {
            match (a.draw(), b.draw()) {
                (RequestFault::None, y) => assert_eq!(y, RequestFault::InvalidUtf8),
                (x, y) => assert_eq!(x, y, "an earlier knob's draw changed"),
            }
        }
        let err = FaultConfig {
            repeat_at_page: Some(1),
            ..FaultConfig::default()
        }
        .validate();
        assert!(err.is_err_and(|e| e.to_string().contains("repeat_at_page")));
        let err = FaultConfig {
            invalid_utf8_rate: -0.1,
            ..FaultConfig::default()
        }
        .validate();
        assert!(err.is_err_and(|e| e.to_string().contains("invalid_utf8_rate")));
    }

    #[test]
    fn a_429_fault_is_a_throttle_and_early_arrivals_are_counted() {
        let f = Faults::new(FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![429],
            retry_after_secs: 2,
            max_faults: Some(1),
            ..FaultConfig::default()
        });
        assert_eq!(f.draw(), RequestFault::Throttle);
        assert_eq!(f.draw(), RequestFault::None);
        let t0 = std::time::Instant::now();
        f.note_arrival(t0);
        assert_eq!(f.early_retries(), 0, "nothing asked to wait yet");
        f.note_throttle(t0, 2);
        f.note_arrival(t0 + std::time::Duration::from_millis(1999));
        f.note_arrival(t0 + std::time::Duration::from_secs(2));
        assert_eq!((f.throttles(), f.early_retries()), (1, 1));
        f.set(FaultConfig::default()).expect("set");
        assert_eq!((f.throttles(), f.early_retries()), (0, 0));
        let err = FaultConfig {
            error_statuses: vec![404],
            ..FaultConfig::default()
        }
        .validate();
        assert!(err.is_err_and(|e| e.to_string().contains("error_statuses")));
    }

    #[test]
    fn validation_names_the_field() {
        let err = FaultConfig {
            error_rate: 2.0,
            ..FaultConfig::default()
        }
        .validate();
        assert!(err.is_err_and(|e| e.to_string().contains("error_rate")));
    }
}
