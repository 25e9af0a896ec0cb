//! The connector contract: connector -> session -> cursor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use usersync_model::Record;

use crate::auth::AuthPlan;
use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};
use crate::manifest::Manifest;
use crate::options::Options;
use crate::query::Query;

/// A connector: its manifest and a way to open sessions. Implemented once per provider.
pub trait Connector: Send + Sync {
    /// The manifest (cheap to call; connectors build it once).
    fn manifest(&self) -> Manifest;

    /// Validate options and build a session. No I/O.
    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError>;

    /// The connector's target half, when it can write into the application (see
    /// [`crate::target`]). `None` (the default): a source only.
    fn target(&self) -> Option<&dyn crate::target::Target> {
        None
    }
}

/// A configured connection to one tenant/realm/org.
pub trait Session: Send + Sync {
    /// How the host authenticates this session's requests.
    fn auth_plan(&self) -> AuthPlan;

    /// The base URLs this session will contact (for `doctor` and firewall lists).
    fn base_urls(&self) -> Vec<String>;

    /// Start answering one question. Returns [`ConnectorError::Unsupported`] when the
    /// provider has no such API.
    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError>;

    /// Explain a failed token request (non-2xx from the auth plan's token endpoint) in the
    /// provider's own terms, e.g. Entra's `AADSTS7000215` -> "wrong client secret", so the host
    /// and `doctor` can give advice. `None` (the default): the host uses its generic OAuth2
    /// error mapping.
    fn token_error(&self, response: &HttpResponse) -> Option<ConnectorError> {
        let _ = response;
        None
    }
}

/// A sans-IO state machine answering one query, page by page.
pub trait Cursor: Send {
    /// The next request to send, or `None` when the query is complete.
    fn next_request(&mut self) -> Option<HttpRequest>;

    /// Feed the response to the last request; returns that page's records.
    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError>;
}

/// The records of one page, plus what was seen and deliberately skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Records, in the provider's order.
    pub records: Vec<Record>,
    /// Counts of objects seen and not turned into records, by kind
    /// (e.g. `servicePrincipal`, `device`, `directoryRole`). Reported, never silently dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
}

impl Batch {
    /// A batch of records with nothing skipped.
    pub fn of(records: Vec<Record>) -> Self {
        Batch {
            records,
            skipped: BTreeMap::new(),
        }
    }

    /// Count one skipped object of a kind.
    pub fn skip(&mut self, kind: &str) {
        *self.skipped.entry(kind.to_string()).or_insert(0) += 1;
    }
}
