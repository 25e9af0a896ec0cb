//! The connector conformance suite (crates/usersync-conformance) against a small fake of the Acme
//! Directory API: how a third-party author runs it without a usersync emulator. Without a fault
//! control URL the fault checks are skipped; every other check runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

const TOKEN: &str = "acme-test-token";

/// The fake tenant: 7 users, 3 groups (`g2` nested in `g1`).
struct Tenant {
    base: String,
    users: Vec<Value>,
    groups: Vec<Value>,
    members: BTreeMap<String, Vec<Value>>,
}

/// One page of `items` after `after` (an index), with an RFC 8288 next link when more follow.
fn page(t: &Tenant, path: &str, key: &str, items: &[Value], q: &HashMap<String, String>) -> Response {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200).max(1);
    let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let end = (after + limit).min(items.len());
    let body = json!({ key: items.get(after..end).unwrap_or_default() });
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    if end < items.len() {
        let link = format!("<{}{path}?limit={limit}&after={end}>; rel=\"next\"", t.base);
        if let Ok(v) = link.parse() {
            r.headers_mut().insert("link", v);
        }
    }
    r
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn users(
    State(t): State<Arc<Tenant>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    page(&t, "/api/v1/users", "users", &t.users, &q)
}

async fn groups(
    State(t): State<Arc<Tenant>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    page(&t, "/api/v1/groups", "groups", &t.groups, &q)
}

async fn members(
    State(t): State<Arc<Tenant>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match t.members.get(&id) {
        Some(m) => page(&t, &format!("/api/v1/groups/{id}/members"), "members", m, &q),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serve the fake on 127.0.0.1; returns its base URL.
async fn acme_fake() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let user_list = (1..=7)
        .map(|i| json!({"id": format!("u{i}"), "login": format!("user{i}"), "email": format!("user{i}@acme.test"), "name": format!("User {i}"), "status": if i == 7 { "suspended" } else { "active" }}))
        .collect();
    let group_list = (1..=3)
        .map(|i| json!({"id": format!("g{i}"), "name": format!("Group {i}"), "description": null}))
        .collect();
    let mut member_lists = BTreeMap::new();
    member_lists.insert(
        "g1".to_string(),
        vec![
            json!({"id": "u1", "type": "user"}),
            json!({"id": "u2", "type": "user"}),
            json!({"id": "g2", "type": "group"}),
        ],
    );
    member_lists.insert("g2".to_string(), vec![json!({"id": "u3", "type": "user"})]);
    member_lists.insert("g3".to_string(), Vec::new());
    let tenant = Arc::new(Tenant {
        base: base.clone(),
        users: user_list,
        groups: group_list,
        members: member_lists,
    });
    let app = Router::new()
        .route("/api/v1/users", get(users))
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{id}/members", get(members))
        .with_state(tenant);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_passes_the_conformance_suite() {
    let base = acme_fake().await;
    let options = BTreeMap::from([
        ("base_url".to_string(), json!(base)),
        // small pages, so the paging checks see several
        ("page_size".to_string(), json!(2)),
    ]);
    let secrets = BTreeMap::from([("api_token".to_string(), TOKEN.to_string())]);
    let subject =
        usersync_conformance::Subject::new(usersync_connector_template::connector(), options, secrets);
    let report = usersync_conformance::run(&subject).await.expect("the suite runs");
    report.assert_passed();
    assert_eq!(
        report.outcome("requests.one_per_page"),
        Some(&usersync_conformance::Outcome::Passed)
    );
}
