//! The safety gates of a push: the same three as a sync (complete read, zero/shrinking
//! source, deletion threshold), judged before anything is written to the application. The
//! thresholds come from the target's settings, with the meaning they have in a connection's
//! policy.

use usersync_config::TargetSettings;

use super::plan::PushPlan;

/// What the gates look at besides the plan.
#[derive(Debug, Clone, Default)]
pub struct GateInput {
    /// Feeding connections whose last sync did not apply (failed, blocked, interrupted, never
    /// synced): their part of the store may be incomplete or stale.
    pub incomplete_sources: Vec<String>,
    /// Users in scope at the last applied push of this target, if any.
    pub last_in_scope: Option<u64>,
    /// Operator confirmation: allow up to this many deactivations+deletions.
    pub allow_deletes: Option<u64>,
}

/// The reason to block the push, if any. `in_scope` is the number of active users in scope now.
pub fn gate(
    target: &str,
    plan: &PushPlan,
    in_scope: u64,
    settings: &TargetSettings,
    input: &GateInput,
) -> Option<String> {
    let removals = plan.removals();
    let confirmed = input.allow_deletes.is_some_and(|n| removals <= n);
    let hint = format!(
        "review with `usersync push {target} --dry-run`, then confirm with `--allow-deletes {removals}`"
    );
    // complete read: a source that did not sync cleanly could look like mass removals
    if !input.incomplete_sources.is_empty() {
        return Some(format!(
            "blocked: the last sync of {} did not apply (failed, blocked or never run), so the store may \
             not hold its whole directory; nothing was pushed to target `{target}`: run `usersync sync` \
             until it applies",
            input
                .incomplete_sources
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // zero source: nothing in scope while usersync manages active accounts
    if in_scope == 0 && plan.managed_active_before > 0 && settings.min_source_percent > 0.0 && !confirmed {
        return Some(format!(
            "blocked: no user is in target `{target}`'s scope (its sources and required_groups leave none), \
             and this push would deactivate or delete {removals} accounts; fix sources/required_groups, or \
             if an empty target is intended, {hint}"
        ));
    }
    if let Some(prev) = input.last_in_scope.filter(|p| *p > 0) {
        let floor = prev as f64 * settings.min_source_percent / 100.0;
        if (in_scope as f64) < floor && !confirmed {
            return Some(format!(
                "blocked: {in_scope} users are in target `{target}`'s scope, fewer than {}% of the {prev} of \
                 its last push (min_source_percent); this push would deactivate or delete {removals} \
                 accounts; {hint}",
                settings.min_source_percent
            ));
        }
    }
    let base = plan.managed_active_before.max(1);
    let percent = removals as f64 * 100.0 / base as f64;
    if removals > 0
        && !confirmed
        && (removals > settings.max_removals || percent > settings.max_removal_percent)
    {
        return Some(format!(
            "blocked: this push would deactivate or delete {removals} of {} active accounts usersync \
             manages in target `{target}` ({percent:.1}%), above the limit of {} accounts or {}% \
             (max_removals / max_removal_percent of [targets.{target}]); {hint}",
            plan.managed_active_before, settings.max_removals, settings.max_removal_percent
        ));
    }
    None
}
