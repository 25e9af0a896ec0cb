//! The one thing the engine needs from the network: run a query to completion.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};
use usersync_model::Record;
use usersync_sdk::Query;

/// Every record of one query, after all its pages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Records in the provider's order.
    pub records: Vec<Record>,
    /// Objects seen and skipped, by kind.
    pub skipped: BTreeMap<String, u64>,
    /// HTTP requests made (including retries).
    pub requests: u64,
}

/// Why a query did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The object does not exist (e.g. no manager, no photo): "none", not a failure.
    NotFound,
    /// The connector has no such operation.
    Unsupported,
    /// Anything else (network, auth, throttling exhausted, malformed response).
    Failed,
}

/// A query that did not complete. The message never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct QueryFailure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened (the runtime's message).
    pub message: String,
    /// HTTP requests made before it failed.
    pub requests: u64,
}

impl QueryFailure {
    /// A failure of kind [`FailureKind::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        QueryFailure {
            kind: FailureKind::Failed,
            message: message.into(),
            requests: 0,
        }
    }
}

/// What [`QueryRunner::run_pages`] hands its consumer as a query runs.
#[derive(Debug)]
pub enum PageEvent {
    /// The records of the next page, in the provider's order.
    Records(Vec<Record>),
    /// The listing restarted from page one (its paging cursor expired): forget every record
    /// handed over so far for this query.
    Restart,
}

/// The consumer of a query's pages.
pub type PageSink<'a> = dyn FnMut(PageEvent) + Send + 'a;

/// Runs one connector query (all pages, with auth, retries and rate limits) for one
/// connection. The host implements it with the runtime's `ConnectionClient`; tests use
/// in-memory runners.
pub trait QueryRunner: Send + Sync + 'static {
    /// Run `query` to completion.
    fn run(&self, query: Query) -> impl Future<Output = Result<QueryResult, QueryFailure>> + Send;

    /// Run `query` to completion, handing its records to `sink` page by page as they are read
    /// (the result's `records` are empty). On a failure the pages already handed over are the
    /// consumer's to discard. The default runs [`QueryRunner::run`] and hands over its records
    /// as one page; the host's runner streams them from the runtime.
    fn run_pages<'a>(
        &'a self,
        query: Query,
        sink: &'a mut PageSink<'_>,
    ) -> impl Future<Output = Result<QueryResult, QueryFailure>> + Send + 'a {
        async move {
            let mut r = self.run(query).await?;
            sink(PageEvent::Records(std::mem::take(&mut r.records)));
            Ok(r)
        }
    }

    /// HTTP requests made so far through this runner (token requests and retries included),
    /// when the runner counts them itself; `None`: the engine sums [`QueryResult::requests`].
    fn requests(&self) -> Option<u64> {
        None
    }

    /// The provider's rate-limit budget as its headers last reported it (lowest remaining
    /// count seen), when it reports one; shown in the run summary.
    fn rate_budget(&self) -> Option<RateBudget> {
        None
    }
}

/// A provider's rate-limit budget as reported by its response headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RateBudget {
    /// The budget's bucket (host and path prefix).
    pub bucket: String,
    /// Requests left in the window at the lowest point of the run.
    pub remaining: u64,
    /// The window's size, when reported (OneLogin: 5,000 per hour for the whole account).
    pub limit: Option<u64>,
}

/// Progress of a fetch, for progress bars or log lines. Every method has an empty default.
pub trait Progress: Send + Sync {
    /// A phase starts with `total` queries.
    fn phase(&self, _name: &str, _total: u64) {}
    /// A query of the phase ended, having produced `records` records.
    fn query_done(&self, _records: u64) {}
    /// The phase ended.
    fn phase_done(&self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
