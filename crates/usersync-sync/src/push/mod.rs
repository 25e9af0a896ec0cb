//! Push: a sync with the arrows reversed (issue 19). The store's users, groups and memberships
//! of the connections feeding a target are the desired state; what usersync created or adopted
//! in the application ([`usersync_store::TargetState`]) is the current one.
//!
//! ```text
//! store (feeding connections) -> desired (scope, mapping, flattening) -> PushPlan (diff with
//!     the target state, hash compare) -> gates -> executor (TargetSession + TargetSender, each
//!     success recorded at once) -> run record (`push:NAME` in the runs table)
//! ```

pub mod desired;
pub mod exec;
pub mod gate;
pub mod plan;
pub mod run;

pub use exec::{ExecOutcome, Executor, TargetSender};
pub use plan::{PushCounts, PushPlan, PushStep};
pub use run::{desired_state, push_target, PushReport, PushSpec};

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod tests;
