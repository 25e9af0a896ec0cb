//! Leader election for `usersync serve` on several hosts sharing one PostgreSQL store. One lease
//! per process, named [`LEASE`]: the host holding it runs every connection, the others stand by
//! and only answer reads (status page, API, metrics). A keeper task takes or renews the lease
//! every lease/3; a run starts only while the lease is held (and renewed within the lease time by
//! this host's clock), and its store handle is fenced with the lease, so an apply of a leader
//! that lost it (paused past its lease, partitioned) is refused by the database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usersync_store::Lease;
use usersync_store::PgStore;

/// The lease's name in the store's `leases` table.
pub const LEASE: &str = "serve";

/// This process's leadership: its own store handle for the lease, and what it last knew.
pub struct Leadership {
    store: Mutex<PgStore>,
    holder: String,
    ttl: Duration,
    /// The lease and when it was last taken or renewed (by this host's monotonic clock).
    held: Mutex<Option<(Lease, Instant)>>,
    /// Who held the lease at the last attempt (this process or another), if anyone.
    leader: Mutex<Option<String>>,
}

/// `host:pid`, how other hosts see who leads.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

impl Leadership {
    /// A leadership on `store` (the lease is taken by [`Leadership::keep`]).
    pub fn new(store: PgStore, ttl: Duration) -> Arc<Leadership> {
        Arc::new(Leadership {
            store: Mutex::new(store),
            holder: holder_name(),
            ttl,
            held: Mutex::new(None),
            leader: Mutex::new(None),
        })
    }

    /// Who this process is in the `leases` table.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How often the keeper takes or renews the lease, and a standby asks again.
    pub fn interval(&self) -> Duration {
        self.ttl / 3
    }

    /// Who runs the connections (`host:pid`), as of the last attempt.
    pub fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lease, while this process holds it (renewed less than the lease time ago).
    pub fn current(&self) -> Option<Lease> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref()
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(l, _)| l.clone())
    }

    /// Take or renew the lease once (blocking). Returns whether this process holds it now.
    pub fn attempt(&self) -> bool {
        let _span = tracing::debug_span!("lease_attempt", lease = LEASE, holder = %self.holder).entered();
        let before = self.current();
        let started = Instant::now();
        let (got, other) = {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let got = store.lease_acquire(LEASE, &self.holder, self.ttl);
            // not ours: who has it (for the status API); a failure here only leaves it unknown
            let other = match &got {
                Ok(None) => store.lease_holder(LEASE).ok().flatten().map(|(h, _)| h),
                _ => None,
            };
            (got, other)
        };
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match got {
            Ok(Some(lease)) => {
                if before.as_ref().map(|l| l.token) != Some(lease.token) {
                    tracing::info!(holder = %self.holder, token = lease.token, "this host leads now (lease `{LEASE}`)");
                }
                // the expiry was set by the database after `started`: count from then
                *held = Some((lease, started));
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.holder.clone());
                true
            }
            Ok(None) => {
                if before.is_some() {
                    tracing::warn!(holder = %self.holder, "lost the lease `{LEASE}`: another host leads; this host stands by");
                }
                *held = None;
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = other;
                false
            }
            Err(e) => {
                // keep what we had: it lapses by itself after the lease time, and the database
                // fences any apply made with it after that
                tracing::warn!("cannot take or renew the lease `{LEASE}`: {e}");
                held.is_some()
            }
        }
    }

    /// Take or renew the lease every [`Leadership::interval`] until the process ends.
    pub async fn keep(self: Arc<Self>) {
        loop {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.attempt()).await;
            tokio::time::sleep(self.interval()).await;
        }
    }

    /// Give the lease up (on a clean stop) so another host takes over at once.
    pub fn release(&self) {
        let Some(lease) = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|(l, _)| l)
        else {
            return;
        };
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match store.lease_release(&lease) {
            Ok(()) => tracing::info!("released the lease `{LEASE}`"),
            Err(e) => tracing::warn!("cannot release the lease `{LEASE}` (it expires by itself): {e}"),
        }
    }
}
