//! State behind emulated change feeds (issue 21): what a provider's delta token stands for.
//!
//! A facade serving a token-based feed (Graph's `$deltatoken`) records, per token, the state of
//! the org the token was issued at; the next round answers the difference between that state and
//! now. Rounds (the pages of one answer) are kept too, so that `$skiptoken` pages of one round are
//! stable while the org changes. [`FeedRounds::expire_all`] makes every token issued so far
//! unusable: the provider's answer for a token past its lifetime (Graph: 7 days).

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Rounds kept for paging (older ones answer "invalid token").
const ROUNDS_KEPT: usize = 64;
/// States kept (older tokens expire).
const STATES_KEPT: usize = 256;

/// One computed answer of a feed, paged by the facade.
#[derive(Debug)]
pub struct Round {
    /// Every item of the answer, in order.
    pub items: Vec<Value>,
    /// The token of the state after this round (for the final page's delta link).
    pub next_token: u64,
}

#[derive(Default)]
struct Inner {
    next: u64,
    states: BTreeMap<u64, Arc<dyn Any + Send + Sync>>,
    rounds: VecDeque<(u64, Arc<Round>)>,
    /// Tokens below this are expired.
    expired_before: u64,
}

/// Feed state of one emulator.
#[derive(Default)]
pub struct FeedRounds {
    inner: Mutex<Inner>,
    /// Rounds computed (a delta request without `$skiptoken`).
    pub rounds_served: AtomicU64,
    /// Requests answered "token expired".
    pub expired_answers: AtomicU64,
}

impl std::fmt::Debug for FeedRounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedRounds")
            .field("rounds_served", &self.rounds_served)
            .field("expired_answers", &self.expired_answers)
            .finish()
    }
}

/// Why a token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Issued, then expired (or evicted).
    Expired,
    /// Never issued here.
    Unknown,
}

impl FeedRounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a state; returns its token (tokens start at 1 and only grow).
    pub fn put_state(&self, state: Arc<dyn Any + Send + Sync>) -> u64 {
        let mut g = self.lock();
        g.next += 1;
        let t = g.next;
        g.states.insert(t, state);
        while g.states.len() > STATES_KEPT {
            g.states.pop_first();
        }
        t
    }

    /// The state a token stands for.
    pub fn state(&self, token: u64) -> Result<Arc<dyn Any + Send + Sync>, TokenError> {
        let g = self.lock();
        if token == 0 || token > g.next {
            return Err(TokenError::Unknown);
        }
        if token < g.expired_before {
            self.expired_answers.fetch_add(1, Ordering::SeqCst);
            return Err(TokenError::Expired);
        }
        match g.states.get(&token) {
            Some(s) => Ok(Arc::clone(s)),
            None => {
                self.expired_answers.fetch_add(1, Ordering::SeqCst);
                Err(TokenError::Expired)
            }
        }
    }

    /// Keep a round for paging; returns its id.
    pub fn put_round(&self, round: Round) -> u64 {
        self.rounds_served.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        g.next += 1;
        let id = g.next;
        g.rounds.push_back((id, Arc::new(round)));
        while g.rounds.len() > ROUNDS_KEPT {
            g.rounds.pop_front();
        }
        id
    }

    /// A kept round.
    pub fn round(&self, id: u64) -> Option<Arc<Round>> {
        self.lock()
            .rounds
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| Arc::clone(r))
    }

    /// Expire every token issued so far (the provider's lifetime has passed for all of them).
    pub fn expire_all(&self) {
        let mut g = self.lock();
        g.expired_before = g.next + 1;
    }

    /// Counters as JSON (part of the emulator's stats).
    pub fn snapshot(&self) -> Value {
        serde_json::json!({
            "delta_rounds": self.rounds_served.load(Ordering::SeqCst),
            "delta_expired": self.expired_answers.load(Ordering::SeqCst),
        })
    }
}
