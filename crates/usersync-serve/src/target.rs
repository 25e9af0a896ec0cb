//! Targets in serve: each target's state (what its pushes did), and an approved push of a
//! target blocked by its gate, which runs on its own (`push:<target>` in the scheduler), never
//! while a connection feeding the target runs (that run pushes the target itself).

use serde::Serialize;
use usersync_config::serve::WebhookEvent;
use usersync_store::RunStatus;

use crate::metrics::Metrics;
use crate::service::Trigger;

/// The scheduler's job name of target `name`'s approved push (also its run history key).
pub fn push_job(name: &str) -> String {
    format!("push:{name}")
}

/// The target of a scheduler job or run history key `push:<target>`.
pub fn target_of(job: &str) -> Option<&str> {
    job.strip_prefix("push:")
}

/// One target's state (the JSON API's `targets[]` entry): what its pushes did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetState {
    /// Target name (its runs are `push:<name>` in run history).
    pub name: String,
    /// The connections feeding it: an applied run of one of them pushes the target.
    pub fed_by: Vec<String>,
    /// `idle` (no push yet, or the last applied), `failing` (failed or partial), `blocked`.
    pub state: String,
    /// The last push's status.
    pub last_status: Option<RunStatus>,
    /// The last push's run id.
    pub last_run_id: Option<i64>,
    /// The last push left some objects refused by the application.
    pub last_partial: bool,
    /// When the last push ended (ms).
    pub last_end_ms: Option<i64>,
    /// When a push last applied (ms).
    pub last_success_ms: Option<i64>,
    /// Consecutive failed (or partial) pushes.
    pub failures: u32,
    /// The last push's errors and gate messages in plain words.
    pub last_errors: Vec<String>,
    /// When the current push started (an approved push runs on its own; a push after a
    /// connection's run is that run's part).
    pub running_since_ms: Option<i64>,
    /// An approved push waiting for the scheduler.
    pub pending: Option<Trigger>,
    /// Removals of the last blocked push (a repeat of the same block is not notified again).
    #[serde(skip)]
    blocked_removals: Option<u64>,
}

impl TargetState {
    pub(crate) fn new(spec: &crate::TargetSpec) -> TargetState {
        TargetState {
            name: spec.name.clone(),
            fed_by: spec.fed_by.clone(),
            state: "idle".into(),
            ..TargetState::default()
        }
    }

    /// Record a push; returns the event to notify, if any (a new block, the first failure, a
    /// recovery), as for connections.
    pub(crate) fn record(&mut self, p: &crate::PushResult, now: i64) -> Option<WebhookEvent> {
        let prev = self.last_status;
        let prev_failing = self.failures > 0;
        let failing = p.status == RunStatus::Failed || p.partial;
        self.last_status = Some(p.status);
        self.last_run_id = p.run_id;
        self.last_partial = p.partial;
        self.last_end_ms = Some(now);
        self.last_errors = p.errors.clone();
        if p.status == RunStatus::Applied {
            self.last_success_ms = Some(now);
        }
        if failing {
            self.failures += 1;
            self.state = "failing".into();
            self.blocked_removals = None;
            (!prev_failing).then_some(WebhookEvent::Failed)
        } else if p.status == RunStatus::Blocked {
            self.failures = 0;
            self.state = "blocked".into();
            let new = prev != Some(RunStatus::Blocked) || self.blocked_removals != Some(p.removals);
            self.blocked_removals = Some(p.removals);
            new.then_some(WebhookEvent::Blocked)
        } else {
            self.failures = 0;
            self.state = "idle".into();
            self.blocked_removals = None;
            (prev_failing || prev == Some(RunStatus::Blocked)).then_some(WebhookEvent::Recovered)
        }
    }
}

/// Record a run's pushes in their targets' state and metrics; returns the events to notify.
/// A push of a target no longer configured is counted in metrics only.
pub(crate) fn record_pushes<'a>(
    targets: &mut [TargetState],
    metrics: &Metrics,
    pushes: &'a [crate::PushResult],
    now: i64,
) -> Vec<(WebhookEvent, &'a crate::PushResult)> {
    let mut events = Vec::new();
    for p in pushes {
        let t = targets.iter_mut().find(|t| t.name == p.target);
        let event = match t {
            Some(t) => {
                let e = t.record(p, now);
                metrics.record_push(p, t.last_success_ms);
                e
            }
            None => {
                metrics.record_push(p, None);
                None
            }
        };
        events.extend(event.map(|e| (e, p)));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_notified_on_its_first_failed_push_a_new_block_and_a_recovery() {
        let mut t = TargetState::new(&crate::TargetSpec {
            name: "app".into(),
            fed_by: vec!["a".into()],
        });
        let push = |status: RunStatus, partial: bool, removals: u64| crate::PushResult {
            target: "app".into(),
            run_id: Some(1),
            status,
            partial,
            duration_ms: 10,
            users_provisioned: 0,
            groups_provisioned: 0,
            removals,
            errors: Vec::new(),
            requests: Vec::new(),
        };
        assert_eq!(t.record(&push(RunStatus::Applied, false, 0), 1), None);
        assert_eq!(t.last_success_ms, Some(1));
        assert_eq!(
            t.record(&push(RunStatus::Failed, false, 0), 2),
            Some(WebhookEvent::Failed)
        );
        assert_eq!(
            t.record(&push(RunStatus::Applied, true, 0), 3),
            None,
            "partial: still failing"
        );
        assert_eq!((t.failures, t.state.as_str()), (2, "failing"));
        assert_eq!(
            t.record(&push(RunStatus::Applied, false, 0), 4),
            Some(WebhookEvent::Recovered)
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 5), 5),
            Some(WebhookEvent::Blocked)
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 5), 6),
            None,
            "the same block"
        );
        assert_eq!(
            t.record(&push(RunStatus::Blocked, false, 6), 7),
            Some(WebhookEvent::Blocked)
        );
        assert_eq!(
            t.record(&push(RunStatus::Applied, false, 0), 8),
            Some(WebhookEvent::Recovered)
        );
        assert_eq!((t.state.as_str(), t.last_success_ms), ("idle", Some(8)));
    }

    #[test]
    fn push_jobs_are_named_as_in_run_history() {
        assert_eq!(push_job("app"), "push:app");
        assert_eq!(target_of("push:app"), Some("app"));
        assert_eq!(target_of("okta"), None);
    }
}
