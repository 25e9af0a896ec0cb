//! When a job is due: pure functions of the schedule, the clock reading the caller passes in,
//! the job's last run and its failures. Nothing here reads the clock (the tests drive it).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use usersync_config::serve::{cron_with_seconds, Schedule, ScheduleKind};

/// The first retry delay after a failure; it doubles with each further consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(60);
/// The longest delay backoff stretches a schedule to.
pub const BACKOFF_CAP: Duration = Duration::from_secs(6 * 3600);

/// The delay backoff imposes after `failures` consecutive failed runs (0 after none):
/// 1 min, 2 min, 4 min, ... capped at [`BACKOFF_CAP`].
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64
        .checked_shl(failures.saturating_sub(1).min(32))
        .unwrap_or(u64::MAX);
    BACKOFF_BASE
        .checked_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP)
}

/// The next instant (ms since the epoch, UTC) the schedule fires after `after_ms`, before
/// jitter and backoff. `None`: a cron expression with no future instant.
pub fn next_fire(schedule: &Schedule, after_ms: i64) -> Option<i64> {
    match &schedule.kind {
        ScheduleKind::Every(d) => Some(after_ms.saturating_add(d.as_millis() as i64)),
        ScheduleKind::Cron(expr) => {
            let cron = cron::Schedule::from_str(&cron_with_seconds(expr)).ok()?;
            let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?;
            cron.after(&after).next().map(|t| t.timestamp_millis())
        }
    }
}

/// When a job runs next.
///
/// - `last_end_ms`: when its last run ended (`None`: it has not run since serve started: it
///   runs at once, plus jitter, so a restart does not wait a whole interval).
/// - `failures`: consecutive failed runs; the next run is no earlier than the end of the last
///   one plus [`backoff`] (a long outage slows the schedule down instead of hammering).
/// - `jitter_draw`: a number in `[0, 1)` (the caller's random draw) scaling the jitter.
pub fn next_due(
    schedule: &Schedule,
    now_ms: i64,
    last_end_ms: Option<i64>,
    failures: u32,
    jitter_draw: f64,
) -> Option<i64> {
    let jitter = (schedule.jitter.as_millis() as f64 * jitter_draw.clamp(0.0, 1.0)) as i64;
    let Some(last) = last_end_ms else {
        return Some(now_ms + jitter);
    };
    let base = next_fire(schedule, last)?;
    let retry = last.saturating_add(backoff(failures).as_millis() as i64);
    let mut due = base.max(retry);
    if let (ScheduleKind::Cron(_), true) = (&schedule.kind, retry > base) {
        // a cron job under backoff waits for its first fire after the backoff
        due = next_fire(schedule, retry - 1)?;
    }
    Some(due + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn every(mins: u64, jitter_secs: u64) -> Schedule {
        Schedule {
            kind: ScheduleKind::Every(Duration::from_secs(mins * 60)),
            jitter: Duration::from_secs(jitter_secs),
        }
    }

    #[test]
    fn first_run_is_at_start_then_every_interval_after_the_last_end() {
        let s = every(15, 0);
        let t0 = 1_700_000_000_000;
        assert_eq!(next_due(&s, t0, None, 0, 0.5), Some(t0));
        assert_eq!(
            next_due(&s, t0 + 5 * MIN, Some(t0 + 2 * MIN), 0, 0.0),
            Some(t0 + 17 * MIN)
        );
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let s = every(15, 60);
        let t0 = 1_700_000_000_000;
        for draw in [0.0, 0.25, 0.5, 0.999_999] {
            let due = next_due(&s, t0, Some(t0), 0, draw).expect("due");
            assert!(due >= t0 + 15 * MIN && due < t0 + 16 * MIN, "{draw}: {due}");
        }
        // a draw outside [0, 1) is clamped, never past the bound
        assert_eq!(next_due(&s, t0, Some(t0), 0, 7.0), Some(t0 + 16 * MIN));
    }

    #[test]
    fn backoff_doubles_from_one_minute_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(960));
        assert_eq!(backoff(40), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn backoff_stretches_a_short_schedule_after_repeated_failures() {
        let s = every(1, 0);
        let t0 = 1_700_000_000_000;
        // one failure: the 1 minute schedule and the 1 minute backoff agree
        assert_eq!(next_due(&s, t0, Some(t0), 1, 0.0), Some(t0 + MIN));
        // four failures: 8 minutes
        assert_eq!(next_due(&s, t0, Some(t0), 4, 0.0), Some(t0 + 8 * MIN));
        // a good run ends the backoff
        assert_eq!(next_due(&s, t0, Some(t0), 0, 0.0), Some(t0 + MIN));
    }

    #[test]
    fn cron_fires_on_its_minutes_and_waits_for_the_next_fire_under_backoff() {
        let s = Schedule {
            kind: ScheduleKind::Cron("*/15 * * * *".into()),
            jitter: Duration::ZERO,
        };
        // 2023-11-14T22:13:20Z
        let t0 = 1_700_000_000_000;
        let next = next_due(&s, t0, Some(t0), 0, 0.0).expect("due");
        let at = DateTime::<Utc>::from_timestamp_millis(next).expect("time");
        assert_eq!(at.to_rfc3339(), "2023-11-14T22:15:00+00:00");
        // 5 failures: 16 minutes of backoff -> the first quarter hour after 22:29:20
        let next = next_due(&s, t0, Some(t0), 5, 0.0).expect("due");
        let at = DateTime::<Utc>::from_timestamp_millis(next).expect("time");
        assert_eq!(at.to_rfc3339(), "2023-11-14T22:30:00+00:00");
    }
}
