//! Replay testing: feed recorded request/response exchanges to a connector's cursor, without a
//! network, and compare what it produced with a golden file.
//!
//! A fixture is JSON:
//! ```json
//! { "query": {"op": "list_users"},
//!   "options": {"base_url": "https://acme.example"},
//!   "secrets_set": ["client_secret"],
//!   "exchanges": [
//!     { "request":  {"method": "GET", "url": "https://...", "headers": [["ConsistencyLevel", "eventual"]]},
//!       "response": {"status": 200, "headers": [["Link", "<...>; rel=\"next\""]], "body": [ ... ] } } ] }
//! ```
//! `body` is JSON (written out compactly) unless `body_text` is given (for malformed bodies).
//! Listed request headers must be present on the cursor's request (others are not checked).
//!
//! The driver behaves like the host: a retryable error or `Unauthorized` means the same request
//! is sent again (the next exchange must match it); `CursorExpired` restarts the query with a
//! fresh cursor and discards its records; any other error ends the replay and is recorded.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use usersync_model::Record;

use crate::connector::Connector;
use crate::error::ConnectorError;
use crate::http::{HttpResponse, Method};
use crate::options::Options;
use crate::query::Query;

/// A recorded conversation for one query.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// The query to run.
    pub query: Query,
    /// Non-secret option values.
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    /// Secret options that are set (their values never reach a connector).
    #[serde(default)]
    pub secrets_set: Vec<String>,
    /// The exchanges, in order.
    pub exchanges: Vec<Exchange>,
}

/// One request the cursor must make and the response it gets.
#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    /// What the cursor must ask for.
    pub request: ExpectedRequest,
    /// What the provider answered.
    pub response: RecordedResponse,
}

/// The expected request.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedRequest {
    /// Method.
    pub method: Method,
    /// Exact URL.
    pub url: String,
    /// Headers that must be present with these values.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// The recorded response.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// JSON body.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Raw text body (takes precedence over `body`).
    #[serde(default)]
    pub body_text: Option<String>,
}

/// What a replay produced; this is what golden files hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Records, in order.
    pub records: Vec<Record>,
    /// Skip counts, summed over pages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
    /// Errors met along the way (retried or final), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ConnectorError>,
    /// Whether the query ended normally.
    pub completed: bool,
    /// Requests made.
    pub requests: usize,
}

/// Run a fixture against a connector. `Err` describes a mismatch between the requests the
/// cursor made and the recording.
pub fn replay(connector: &dyn Connector, fixture: &Fixture) -> Result<Outcome, String> {
    let manifest = connector.manifest();
    let options = Options::validate(&manifest, fixture.options.clone(), fixture.secrets_set.clone())
        .map_err(|e| format!("options rejected: {e}"))?;
    let session = connector
        .open(&options)
        .map_err(|e| format!("open failed: {e}"))?;
    let mut cursor = session
        .query(&fixture.query)
        .map_err(|e| format!("query failed: {e}"))?;
    let mut out = Outcome::default();
    for (i, ex) in fixture.exchanges.iter().enumerate() {
        let req = cursor.next_request().ok_or_else(|| {
            format!("exchange {i}: the cursor finished but the recording has more exchanges")
        })?;
        if req.method != ex.request.method || req.url != ex.request.url {
            return Err(format!(
                "exchange {i}: expected {} {}\n             got      {} {}",
                ex.request.method, ex.request.url, req.method, req.url
            ));
        }
        for (name, value) in &ex.request.headers {
            if req.header(name) != Some(value.as_str()) {
                return Err(format!(
                    "exchange {i}: header `{name}: {value}` missing (request had {:?})",
                    req.headers
                ));
            }
        }
        out.requests += 1;
        let body = match (&ex.response.body_text, &ex.response.body) {
            (Some(t), _) => t.clone().into_bytes(),
            (None, Some(v)) => v.to_string().into_bytes(),
            (None, None) => Vec::new(),
        };
        let resp = HttpResponse {
            status: ex.response.status,
            headers: ex.response.headers.clone(),
            body,
        };
        match cursor.on_response(resp) {
            Ok(batch) => {
                out.records.extend(batch.records);
                for (k, v) in batch.skipped {
                    *out.skipped.entry(k).or_insert(0) += v;
                }
            }
            Err(e @ ConnectorError::CursorExpired { .. }) => {
                out.errors.push(e);
                out.records.clear();
                out.skipped.clear();
                cursor = session
                    .query(&fixture.query)
                    .map_err(|e| format!("restart failed: {e}"))?;
            }
            Err(e) if e.is_retryable() || matches!(e, ConnectorError::Unauthorized { .. }) => {
                out.errors.push(e)
            }
            Err(e) => {
                out.errors.push(e);
                if i + 1 != fixture.exchanges.len() {
                    return Err(format!(
                        "exchange {i}: query ended with an error but the recording goes on"
                    ));
                }
                return Ok(out);
            }
        }
    }
    if let Some(req) = cursor.next_request() {
        return Err(format!(
            "the recording ended but the cursor wants more: {} {}",
            req.method, req.url
        ));
    }
    out.completed = true;
    Ok(out)
}

/// Load a fixture file.
pub fn load_fixture(path: &Path) -> Result<Fixture, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Compare an outcome with a golden JSON file. With `UPDATE_GOLDEN=1` in the environment the
/// file is (re)written instead. Returns a readable diff summary on mismatch.
pub fn check_golden(path: &Path, outcome: &Outcome) -> Result<(), String> {
    let actual = serde_json::to_string_pretty(outcome).map_err(|e| e.to_string())? + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        return std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()));
    }
    let expected = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()))?;
    if expected == actual {
        return Ok(());
    }
    let first_diff = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{} differs from the replay output at line {}:\n  golden: {}\n  actual: {}\n(run with UPDATE_GOLDEN=1 to accept)",
        path.display(),
        first_diff + 1,
        expected.lines().nth(first_diff).unwrap_or("<end>"),
        actual.lines().nth(first_diff).unwrap_or("<end>")
    ))
}

/// Replay every `*.json` fixture in `fixtures_dir` and check each against
/// `golden_dir/<same name>`. Returns all failures at once.
pub fn replay_dir(
    connector: &dyn Connector,
    fixtures_dir: &Path,
    golden_dir: &Path,
) -> Result<usize, String> {
    let mut entries: Vec<_> = std::fs::read_dir(fixtures_dir)
        .map_err(|e| format!("{}: {e}", fixtures_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for path in &entries {
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let result = load_fixture(path)
            .and_then(|f| replay(connector, &f))
            .and_then(|o| check_golden(&golden_dir.join(&name), &o));
        if let Err(e) = result {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    if entries.is_empty() {
        return Err(format!("no fixtures in {}", fixtures_dir.display()));
    }
    if failures.is_empty() {
        Ok(entries.len())
    } else {
        Err(failures.join("\n\n"))
    }
}
