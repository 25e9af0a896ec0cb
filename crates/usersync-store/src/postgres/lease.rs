//! Leases: leader election for `usersync serve` on several hosts against one database. A lease is
//! a row (name, holder, fencing token, expiry by the database's clock, so hosts' clocks do not
//! matter). Whoever holds an unexpired lease is the leader; another host takes it over once it
//! has expired, and the token then grows. A store handle given the lease with
//! [`PgStore::set_fence`] has every apply check, inside its transaction, that the lease still has
//! that token and has not expired: a leader that was paused past its lease (SIGSTOP, a long GC, a
//! network partition) and wakes up cannot commit.
//!
//! The apply checks the lease twice: once at its start (a stale leader is refused before it writes
//! anything) and once right before its commit, `FOR SHARE`, which is the guard: a takeover cannot
//! change the lease between that check and the commit. A leader paused *inside* its apply
//! transaction would otherwise keep that transaction's locks (and so the next leader's run) waiting
//! for as long as it is paused: the apply sets `idle_in_transaction_session_timeout` to
//! [`idle_limit`] (twice the lease), after which the server ends the session and rolls it back. A
//! leader resumed before that reaches the final check with the lease's old token and is refused.

use std::time::Duration;

use super::PgStore;
use crate::StoreError;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name (e.g. `serve`).
    pub name: String,
    /// Who holds it (e.g. `host:pid`).
    pub holder: String,
    /// The fencing token: grows by one every time the lease changes hands.
    pub token: i64,
    /// The lease time it was taken or renewed for.
    pub ttl: Duration,
}

/// How long an apply fenced with `lease` may stand idle inside its transaction (its process
/// paused) before the server ends the session: twice the lease, so a leader resumed within the
/// lease time still commits when nobody took over, and one resumed later meets the next token.
pub fn idle_limit(lease: &Lease) -> Duration {
    lease.ttl.saturating_mul(2).max(Duration::from_secs(1))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Take the lease `name` for `holder` for `ttl`, if it is free, expired, or `holder`'s already
    /// (then it is renewed with the same token). `None`: another holder has it.
    pub fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let ttl_ms = millis(ttl);
        self.with_client(|c, t| {
            let row = c
                .query_opt(
                    "INSERT INTO leases (name, holder, token, expires_at) \
                     VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond') \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                     token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > clock_timestamp() \
                                  THEN leases.token ELSE leases.token + 1 END, \
                     expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= clock_timestamp() \
                     RETURNING token",
                    &[&name, &holder, &(ttl_ms as f64)],
                )
                .map_err(|e| t.error(&e))?;
            Ok(row.map(|r| Lease {
                name: name.to_string(),
                holder: holder.to_string(),
                token: r.get(0),
                ttl,
            }))
        })
    }

    /// Extend a held lease by `ttl` from now. `false`: it was lost (expired and taken over, or
    /// released); the caller is no longer the leader.
    pub fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = millis(ttl);
        self.with_client(|c, t| {
            let n = c
                .execute(
                    "UPDATE leases SET expires_at = clock_timestamp() + $4 * interval '1 millisecond' \
                     WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()",
                    &[&lease.name, &lease.holder, &lease.token, &(ttl as f64)],
                )
                .map_err(|e| t.error(&e))?;
            Ok(n == 1)
        })
    }

    /// Give a held lease up (it expires at once; the next holder gets the next token).
    pub fn lease_release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.with_client(|c, t| {
            c.execute(
                "UPDATE leases SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2 AND token = $3",
                &[&lease.name, &lease.holder, &lease.token],
            )
            .map_err(|e| t.error(&e))?;
            Ok(())
        })
    }

    /// Who holds the lease `name` now (`holder`, token), or `None` when it is free or expired.
    pub fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.with_client(|c, t| {
            let row = c
                .query_opt(
                    "SELECT holder, token FROM leases WHERE name = $1 AND expires_at > clock_timestamp()",
                    &[&name],
                )
                .map_err(|e| t.error(&e))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Make every later apply of this handle check, in its transaction, that `lease` is still held
    /// with its token and unexpired (refused with [`StoreError::Fenced`] otherwise). `None` stops it.
    pub fn set_fence(&mut self, lease: Option<Lease>) {
        self.fence = lease;
    }
}

/// The apply's check of the handle's fence, inside the apply's transaction: `guard` takes the
/// lease row `FOR SHARE` (right before the commit), so no takeover happens between the check and
/// the commit; without it (at the apply's start) it only refuses a stale leader early.
pub(super) fn check(
    tx: &mut postgres::Transaction<'_>,
    lease: &Lease,
    connection: &str,
    run_id: i64,
    guard: bool,
) -> Result<Result<(), StoreError>, postgres::Error> {
    let lock = if guard { " FOR SHARE" } else { "" };
    let row = tx.query_opt(
        &format!("SELECT holder, token, expires_at > clock_timestamp() FROM leases WHERE name = $1{lock}"),
        &[&lease.name],
    )?;
    Ok(match row {
        Some(r) if r.get::<_, i64>(1) == lease.token && r.get::<_, bool>(2) => Ok(()),
        other => Err(StoreError::Fenced {
            connection: connection.to_string(),
            run_id,
            now: match other {
                Some(r) if r.get::<_, i64>(1) == lease.token => format!(
                    "its lease `{}` (token {}) expired: this process was not renewing it",
                    lease.name, lease.token
                ),
                Some(r) => format!(
                    "the lease `{}` passed to {} with fencing token {}; this process had token {}",
                    lease.name,
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    lease.token
                ),
                None => format!("the lease `{}` does not exist", lease.name),
            },
        }),
    })
}

/// Make the server end the session when the apply's transaction stands idle past [`idle_limit`].
pub(super) fn limit_idle(tx: &mut postgres::Transaction<'_>, lease: &Lease) -> Result<(), postgres::Error> {
    tx.batch_execute(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = {}",
        millis(idle_limit(lease))
    ))
}
