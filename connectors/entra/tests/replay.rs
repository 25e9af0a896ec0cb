//! Replay tests: recorded request/response exchanges (written from Microsoft Graph's documented
//! examples) are fed to the connector's cursors; the expected requests are asserted exchange by
//! exchange and the records out are compared with golden JSON files under `tests/golden/`.
//!
//! Fixture format (`tests/fixtures/<name>.json`):
//! `{"options": {..}, "secrets": [..], "query": {"op": ..}, "exchanges": [{"request": {"url", "headers"?},
//! "response": {"status", "headers"?, "body"? (JSON) | "body_text"? | "body_bytes"?}}]}`.
//! After an error the cursor must re-emit the same request (the next exchange may then retry it).
//! Regenerate goldens after a deliberate change with `UPDATE_GOLDEN=1 cargo test -p usersync-connector-entra`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use usersync_sdk::{HttpResponse, Options, Query};

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(sub)
}

fn options_from(fixture: &Value) -> Options {
    let values: BTreeMap<String, Value> = fixture
        .get("options")
        .and_then(|o| o.as_object())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let secrets: Vec<String> = fixture
        .get("secrets")
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_else(|| vec!["client_secret".into()]);
    let manifest = usersync_connector_entra::connector().manifest();
    Options::validate(&manifest, values, secrets).expect("fixture options are valid")
}

fn response_from(v: &Value) -> HttpResponse {
    let status = v["status"].as_u64().expect("response.status") as u16;
    let body: Vec<u8> = if let Some(b) = v.get("body") {
        serde_json::to_vec(b).expect("body")
    } else if let Some(t) = v.get("body_text") {
        t.as_str().expect("body_text").as_bytes().to_vec()
    } else if let Some(bytes) = v.get("body_bytes") {
        bytes
            .as_array()
            .expect("body_bytes")
            .iter()
            .map(|b| b.as_u64().expect("byte") as u8)
            .collect()
    } else {
        Vec::new()
    };
    let mut r = HttpResponse::new(status, body);
    if let Some(h) = v.get("headers").and_then(|h| h.as_object()) {
        for (k, val) in h {
            r = r.with_header(k.clone(), val.as_str().expect("header value"));
        }
    }
    r
}

/// Run one fixture; returns the transcript compared with the golden file.
fn run(name: &str) -> Value {
    let path = dir("fixtures").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let query: Query = serde_json::from_value(fixture["query"].clone()).expect("query");
    let session = usersync_connector_entra::connector()
        .open(&options_from(&fixture))
        .expect("open");
    let mut cursor = match session.query(&query) {
        Ok(c) => c,
        Err(e) => return json!({ "query_error": e }),
    };
    let mut steps = Vec::new();
    let exchanges = fixture["exchanges"].as_array().expect("exchanges");
    for (i, ex) in exchanges.iter().enumerate() {
        let req = cursor
            .next_request()
            .unwrap_or_else(|| panic!("{name}: exchange {i}: cursor ended early"));
        let want_url = ex["request"]["url"].as_str().expect("request.url");
        assert_eq!(req.url, want_url, "{name}: exchange {i}: request URL");
        assert_eq!(
            req.method.as_str(),
            ex["request"]
                .get("method")
                .and_then(|m| m.as_str())
                .unwrap_or("GET")
        );
        let want_headers = ex["request"].get("headers").and_then(|h| h.as_object());
        for (k, v) in want_headers.into_iter().flatten() {
            assert_eq!(req.header(k), v.as_str(), "{name}: exchange {i}: header {k}");
        }
        if want_headers.is_some_and(|h| !h.contains_key("ConsistencyLevel")) || want_headers.is_none() {
            assert_eq!(
                req.header("ConsistencyLevel"),
                None,
                "{name}: exchange {i}: unexpected ConsistencyLevel"
            );
        }
        match cursor.on_response(response_from(&ex["response"])) {
            Ok(batch) => steps.push(json!({ "ok": batch })),
            Err(e) => {
                assert_eq!(
                    cursor.next_request(),
                    Some(req),
                    "{name}: exchange {i}: error must leave the request"
                );
                steps.push(json!({ "error": e }));
            }
        }
    }
    let done = cursor.next_request().is_none();
    json!({ "steps": steps, "done": done })
}

fn check(name: &str) {
    let got = run(name);
    let golden = dir("golden").join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(&got).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &pretty).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    });
    assert_eq!(pretty, want, "{name}: output differs from {}", golden.display());
}

macro_rules! replay {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        #[test]
        fn every_fixture_has_a_test() {
            let known = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(dir("fixtures")).expect("fixtures dir") {
                let path = entry.expect("entry").path();
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
                assert!(known.contains(&stem.as_str()), "fixture {stem} has no replay test");
            }
        }
    };
}

replay!(
    list_users_paged,
    list_users_advanced_query,
    list_users_expired_page_token,
    list_users_throttled_then_ok,
    list_users_server_errors,
    list_users_forbidden,
    list_users_unauthorized,
    list_users_bad_filter,
    list_users_missing_account_enabled,
    list_users_foreign_next_link,
    list_users_malformed_body,
    list_users_beta_national_cloud,
    get_user,
    get_user_not_found,
    user_manager,
    user_manager_none,
    user_manager_org_contact,
    user_groups,
    user_transitive_groups_paged,
    list_groups_paged,
    group_members_paged,
    group_members_forbidden,
    group_transitive_members,
    user_photo,
    user_photo_sized,
    user_photo_none,
    user_photo_no_mailbox,
    user_photo_placeholder_only,
    list_roles_unsupported,
);
