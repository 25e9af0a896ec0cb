//! The usersync connector SDK.
//!
//! A connector is **sans-IO**: it never opens a socket, reads the clock, sleeps or sees a
//! secret. It declares what it can do in a [`Manifest`], validates its options into a
//! [`Session`], and answers each [`Query`] with a [`Cursor`]: a state machine that emits
//! [`HttpRequest`]s and turns [`HttpResponse`]s into pages of records. The host does all I/O
//! (HTTP, auth, retries, rate limits) and attaches credentials to every request.
//!
//! ```text
//! Connector --open(options)--> Session --query(q)--> Cursor
//!     loop { next_request() -> host sends it -> on_response(resp) -> Batch }
//! ```

pub mod auth;
pub mod connector;
pub mod error;
pub mod feed;
pub mod http;
pub mod manifest;
pub mod options;
pub mod paging;
pub mod query;
pub mod replay;
pub mod target;
pub mod time;

pub use auth::{AssertionAlg, AuthPlan, ClientAuth};
pub use connector::{Batch, Connector, Cursor, Session};
pub use error::ConnectorError;
pub use http::{HttpRequest, HttpResponse, Method};
pub use manifest::{
    AuthFlowKind, AuthFlowSpec, Capabilities, Endpoint, Manifest, OptionSpec, OptionType, ABI_VERSION,
};
pub use options::Options;
pub use paging::{PageParser, PagedCursor, Paging, ParsedPage};
pub use query::{Operation, Query};
pub use target::{
    AppObject, Lookup, ObjectKind, Target, TargetCapabilities, TargetChange, TargetEndpoint, TargetListing,
    TargetManifest, TargetOperation, TargetResult, TargetSession, TargetUser,
};
pub use usersync_model as model;
