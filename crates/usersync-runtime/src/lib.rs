//! Host runtime: everything a sans-IO connector needs done for it.
//!
//! - [`ConnectionClient`]: one per configured connection. Opens the connector's session, holds the
//!   HTTP client (rustls, TLS always verified, optional extra CA bundle, proxy), the
//!   [`auth`] state (token cache with early refresh, DPoP key and nonce), a concurrency limiter,
//!   a rate-limit pacer and per-run [`RunCounters`]. [`ConnectionClient::run_query`] drives one
//!   query's cursor to the end with retries, backoff, throttle handling and paging guards.
//! - [`doctor`]: step-by-step connectivity and permission checks with plain-language diagnoses.
//! - [`login`]: the interactive OAuth2 authorization-code flow behind `usersync auth login`.
//!
//! No secret value is ever written to a log line, an error or a file other than the credential
//! file `login` writes on purpose (mode 0600).

pub mod auth;
mod client;
pub mod counters;
pub mod doctor;
pub mod error;
pub mod login;
pub mod retry;
pub mod settings;
pub mod transport;

pub use client::{ConnectionClient, Page, PageSink, QueryOutput};
pub use counters::{BudgetSnapshot, RequestCount, RunCounters};
pub use error::{RuntimeError, TransportKind};
pub use settings::{ConnectionSettings, RetryPolicy, THROTTLE_BUDGET_WINDOWS};
pub use usersync_config::Secret;
