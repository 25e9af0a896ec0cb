//! The per-connection run lock: whether a holder may still be running.

use super::*;

/// Whether the holder of a lock may still be running: on this host, its pid is alive (not a
/// zombie) and started when the holder did; from another host, it took the lock less than
/// [`FOREIGN_LOCK_STALE_AFTER`] ago.
pub(super) fn holder_alive(
    own_runs: &HashSet<i64>,
    h: &RunHolder,
    proc_start: Option<i64>,
    host: &str,
    now: i64,
) -> bool {
    if own_runs.contains(&h.run_id) {
        // begun through this very handle and never finished: abandoned by its caller
        return false;
    }
    if h.host == host && proc_stat(std::process::id()).is_some() {
        return match proc_stat(h.pid) {
            // gone, or a zombie nobody has reaped yet
            None | Some(('Z' | 'X', _)) => false,
            // a reused pid belongs to a process that started later
            Some((_, start)) => proc_start.is_none_or(|s| s == start),
        };
    }
    now.saturating_sub(h.since_ms) < FOREIGN_LOCK_STALE_AFTER.as_millis() as i64
}

/// State and start time (clock ticks after boot) of a process, from `/proc/<pid>/stat`.
pub(super) fn proc_stat(pid: u32) -> Option<(char, i64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: fields 3.. follow the last `)`
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let start = rest.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
