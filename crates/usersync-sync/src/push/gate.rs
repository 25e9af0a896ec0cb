//! The safety gates of a push: the same three as a sync (complete read, zero/shrinking
//! source, deletion threshold), judged before anything is written to the application. The
//! thresholds come from the target's settings, with the meaning they have in a connection's
//! policy.

use usersync_config::TargetSettings;

use super::plan::PushPlan;

/// The numeric thresholds of the shrinking-source and removal gates (a connection's policy or a
/// target's settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most deactivations+deletions.
    pub max_removals: u64,
    /// Most deactivations+deletions, as a percentage of the active users before the run.
    pub max_removal_percent: f64,
    /// Fewest users now, as a percentage of last time's (0 turns the check off).
    pub min_source_percent: f64,
}

/// What a run would do, as the thresholds see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Deactivations+deletions the run would make.
    pub removals: u64,
    /// Active users (accounts) before the run: the percentage base.
    pub active_before: u64,
    /// Users the source (scope) holds now.
    pub source_now: u64,
    /// Users it held at the last applied run, if any.
    pub source_before: Option<u64>,
}

/// Which threshold a run crossed (each caller words it for its own command).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crossed {
    /// Fewer users than `min_source_percent` of last time's.
    Shrunk {
        /// Users now.
        now: u64,
        /// Users last time.
        before: u64,
    },
    /// More removals than `max_removals` or `max_removal_percent`.
    TooManyRemovals {
        /// The removals' share of the active users, percent.
        percent: f64,
    },
}

/// The shrinking-source and removal gates, shared by `sync` ([`crate::engine::gate`]) and
/// `push` ([`gate`]): the threshold crossed, if any, unless the operator `confirmed` the
/// removals (`--allow-deletes N` with N at least the removals).
pub fn crossed(limits: &Limits, counts: &Counts, confirmed: bool) -> Option<Crossed> {
    if confirmed {
        return None;
    }
    if let Some(before) = counts.source_before.filter(|p| *p > 0) {
        let floor = before as f64 * limits.min_source_percent / 100.0;
        if (counts.source_now as f64) < floor {
            return Some(Crossed::Shrunk {
                now: counts.source_now,
                before,
            });
        }
    }
    let percent = counts.removals as f64 * 100.0 / counts.active_before.max(1) as f64;
    if counts.removals > 0 && (counts.removals > limits.max_removals || percent > limits.max_removal_percent)
    {
        return Some(Crossed::TooManyRemovals { percent });
    }
    None
}

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
    let limits = Limits {
        max_removals: settings.max_removals,
        max_removal_percent: settings.max_removal_percent,
        min_source_percent: settings.min_source_percent,
    };
    let counts = Counts {
        removals,
        active_before: plan.managed_active_before,
        source_now: in_scope,
        source_before: input.last_in_scope,
    };
    match crossed(&limits, &counts, confirmed)? {
        Crossed::Shrunk { now, before } => Some(format!(
            "blocked: {now} users are in target `{target}`'s scope, fewer than {}% of the {before} of \
             its last push (min_source_percent); this push would deactivate or delete {removals} \
             accounts; {hint}",
            settings.min_source_percent
        )),
        Crossed::TooManyRemovals { percent } => Some(format!(
            "blocked: this push would deactivate or delete {removals} of {} active accounts usersync \
             manages in target `{target}` ({percent:.1}%), above the limit of {} accounts or {}% \
             (max_removals / max_removal_percent of [targets.{target}]); {hint}",
            plan.managed_active_before, settings.max_removals, settings.max_removal_percent
        )),
    }
}
