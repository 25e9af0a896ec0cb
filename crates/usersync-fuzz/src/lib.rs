//! Shared harness of the usersync fuzz targets.
//!
//! A connector target turns the fuzz input into a conversation with one of the connector's
//! cursors, exactly as the host drives it (see `usersync_sdk::replay`), with no network:
//!
//! ```text
//! input = [option set: u8] [query: u8] response*
//! response = [status: u16 LE] [header count: u8]
//!            ([name length: u8] name [value length: u16 LE] value)*
//!            [body length: u32 LE] body
//! ```
//!
//! The option set and query bytes pick (modulo) from the connector's entry in `targets.json`
//! (valid option sets taken from its replay fixtures, and every query kind); one extra query
//! value feeds the first response to `Session::token_error` instead (the token-endpoint error
//! parsing). Responses are read with [`arbitrary::Unstructured`] from an explicit
//! length-prefixed layout, so `seed.py` can turn the replay fixtures into seed inputs and a
//! truncated input just ends the conversation.
//!
//! Invariants checked (a violation panics, which libFuzzer reports as a crash):
//! - nothing panics while opening, querying, parsing a response or explaining a token error;
//! - every request a cursor asks for stays on the origin of one of the session's base URLs
//!   (a hostile `next` link must never send the host's credentials elsewhere);
//! - a cursor that keeps answering "retry" or "restart" is bounded by the exchange limit
//!   (the host bounds this too; here it keeps one input fast).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use usersync_sdk::{Connector, ConnectorError, HttpResponse, Options, Query};

/// Most exchanges fed to one cursor (retries and restarts included).
pub const MAX_EXCHANGES: usize = 12;
/// Most headers in one response.
pub const MAX_HEADERS: usize = 24;

struct OptionSet {
    options: BTreeMap<String, serde_json::Value>,
    secrets_set: Vec<String>,
}

struct TargetSpec {
    option_sets: Vec<OptionSet>,
    queries: Vec<Query>,
}

fn specs() -> &'static BTreeMap<String, TargetSpec> {
    static SPECS: OnceLock<BTreeMap<String, TargetSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let raw: serde_json::Value =
            serde_json::from_str(include_str!("../targets.json")).expect("targets.json is valid JSON");
        let mut out = BTreeMap::new();
        for (name, spec) in raw.as_object().expect("targets.json: an object") {
            let option_sets = spec["option_sets"]
                .as_array()
                .expect("option_sets")
                .iter()
                .map(|s| OptionSet {
                    options: serde_json::from_value(s["options"].clone()).expect("options"),
                    secrets_set: serde_json::from_value(s["secrets_set"].clone()).expect("secrets_set"),
                })
                .collect();
            let queries = serde_json::from_value(spec["queries"].clone()).expect("queries");
            out.insert(name.clone(), TargetSpec { option_sets, queries });
        }
        out
    })
}

fn take_u16(u: &mut Unstructured<'_>) -> Option<u16> {
    let b = u.bytes(2).ok()?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn take_u32(u: &mut Unstructured<'_>) -> Option<u32> {
    let b = u.bytes(4).ok()?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_u8(u: &mut Unstructured<'_>) -> Option<u8> {
    u.bytes(1).ok().map(|b| b[0])
}

/// Read one response; `None` when the input is used up.
pub fn take_response(u: &mut Unstructured<'_>) -> Option<HttpResponse> {
    let status = take_u16(u)?;
    let n = usize::from(take_u8(u)?).min(MAX_HEADERS);
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        let name_len = usize::from(take_u8(u)?);
        let name = String::from_utf8_lossy(u.bytes(name_len.min(u.len())).ok()?).into_owned();
        let value_len = usize::from(take_u16(u)?);
        let value = String::from_utf8_lossy(u.bytes(value_len.min(u.len())).ok()?).into_owned();
        headers.push((name, value));
    }
    // A body length beyond the input takes the rest (so a cut input still has a body).
    let body_len = take_u32(u).map(|l| l as usize).unwrap_or(0).min(u.len());
    let body = u.bytes(body_len).ok()?.to_vec();
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// Check a connector error is well formed (every variant carries its text; formatting must not
/// panic either).
fn touch(e: &ConnectorError) {
    let _ = e.to_string();
    let _ = e.is_retryable();
}

/// Drive the connector named `target` (a key of `targets.json`) with one fuzz input.
pub fn run_connector(target: &str, connector: &dyn Connector, data: &[u8]) {
    let spec = specs().get(target).expect("target listed in targets.json");
    let mut u = Unstructured::new(data);
    let Some(set_ix) = take_u8(&mut u) else { return };
    let Some(query_ix) = take_u8(&mut u) else { return };
    let set = &spec.option_sets[usize::from(set_ix) % spec.option_sets.len()];
    let manifest = connector.manifest();
    let options = Options::validate(&manifest, set.options.clone(), set.secrets_set.clone())
        .expect("targets.json option sets are valid");
    let session = connector.open(&options).expect("targets.json option sets open");
    let _ = session.auth_plan();
    let origins: Vec<String> = session.base_urls().iter().filter_map(|b| origin(b)).collect();
    assert!(!origins.is_empty(), "{target}: a session without base URLs");

    let q = usize::from(query_ix) % (spec.queries.len() + 1);
    let Some(query) = spec.queries.get(q) else {
        // token endpoint error parsing
        if let Some(resp) = take_response(&mut u) {
            if let Some(e) = session.token_error(&resp) {
                touch(&e);
            }
        }
        return;
    };
    let mut cursor = match session.query(query) {
        Ok(c) => c,
        Err(e) => {
            touch(&e);
            return;
        }
    };
    for _ in 0..MAX_EXCHANGES {
        let Some(req) = cursor.next_request() else { return };
        let o = origin(&req.url).unwrap_or_else(|| {
            panic!(
                "{target} {query:?}: the cursor asked for a URL that does not parse: {}",
                req.url
            )
        });
        assert!(
            origins.contains(&o),
            "{target} {query:?}: the cursor asked for {} outside the session's base URLs {origins:?}",
            req.url
        );
        let Some(resp) = take_response(&mut u) else { return };
        match cursor.on_response(resp) {
            Ok(batch) => {
                let _ = batch.records.len();
            }
            Err(e @ ConnectorError::CursorExpired { .. }) => {
                touch(&e);
                match session.query(query) {
                    Ok(c) => cursor = c,
                    Err(e) => {
                        touch(&e);
                        return;
                    }
                }
            }
            Err(e) if e.is_retryable() || matches!(e, ConnectorError::Unauthorized { .. }) => touch(&e),
            Err(e) => {
                touch(&e);
                return;
            }
        }
    }
}

/// Every connector the config target checks connections against.
pub fn connectors() -> Vec<Box<dyn Connector>> {
    vec![
        usersync_connector_entra::connector(),
        usersync_connector_google::connector(),
        usersync_connector_keycloak::connector(),
        usersync_connector_okta::connector(),
        usersync_connector_onelogin::connector(),
    ]
}

/// The config target: parse the text as a configuration file, check every connection against
/// its connector's manifest, and open a session from the options that pass (as `usersync
/// config check` and `sync` do).
pub fn run_config(connectors: &[Box<dyn Connector>], data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match usersync_config::Config::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for conn in &config.connections {
        let Some(connector) = connectors.iter().find(|c| c.manifest().id == conn.connector) else {
            continue;
        };
        let manifest = connector.manifest();
        match conn.check(&manifest, std::path::Path::new("fuzz.toml")) {
            Ok(options) => match connector.open(&options) {
                Ok(session) => {
                    let _ = session.auth_plan();
                    let _ = session.base_urls();
                }
                Err(e) => touch(&e),
            },
            Err(issues) => {
                for i in issues {
                    let _ = i.to_string();
                }
            }
        }
        for pattern_user in ["alice@example.com", "Admin", ""] {
            let _ = conn.policy.protected_user(pattern_user, "id-1");
            let _ = conn.policy.group_selected(pattern_user);
        }
    }
}
