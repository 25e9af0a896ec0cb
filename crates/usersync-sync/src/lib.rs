//! Sync engine: a pipeline of plain data.
//!
//! ```text
//! fetch (runner) -> Snapshot -> desired (policy) -> Plan (diff against the store)
//!     -> safety gates -> apply (one store transaction) -> run record
//! ```
//! [`engine::run_connection`] runs it for one connection; a dry run is the same call with
//! `dry_run = true`, which stops before the apply.

pub mod closure;
pub mod delta;
pub mod desired;
pub mod engine;
pub mod fetch;
pub mod links;
pub mod plan;
pub mod push;
pub mod runner;

pub use engine::{run_connection, run_connection_with_feeds, RunReport, RunSpec};
pub use fetch::{fetch, FetchContext, Snapshot};
pub use plan::{Plan, UserAction};
pub use runner::{FailureKind, NoProgress, Progress, QueryFailure, QueryResult, QueryRunner};

#[cfg(test)]
mod tests;
