//! Integration tests: a third-party **target** connector as a plugin (tests/plugins/fixture-target,
//! "Acme Apps", a made-up JSON API). The host loads it, `connectors describe` shows its target
//! half, a target session's requests and results cross the ABI exactly as the same connector
//! linked in produces them, a panic in the plugin is a clear error, and a plugin built before the
//! target half existed (tests/plugins/fixture-target/old-abi) still loads, with no target.
//!
//! Like tests/it/plugins.rs, the libraries come from the cargo target directory: run
//! `cargo build --workspace` (or `cargo xtask test`) first.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use usersync_abi::load_plugin;
use usersync_registry::{Registry, RegistryConfig};
use usersync_sdk::{
    Connector, ConnectorError, HttpResponse, Lookup, Method, ObjectKind, Options, TargetChange, TargetResult,
    TargetSession, TargetUser,
};

const BASE: &str = "https://apps.acme.test";

/// A fresh plugin directory (0755) with copies (0644) of the packages' libraries; returns the
/// directory and the copies' paths.
fn plugin_dir(packages: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let mut libs = Vec::new();
    for p in packages {
        let src = crate::support::cdylib(&p.replace('-', "_"));
        let dst = dir.path().join(src.file_name().expect("file name"));
        std::fs::copy(&src, &dst).expect("copy library");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).expect("chmod lib");
        libs.push(dst);
    }
    (dir, libs)
}

fn plugin(package: &str) -> (tempfile::TempDir, Arc<dyn Connector>) {
    let (dir, libs) = plugin_dir(&[package]);
    let loaded = load_plugin(&libs[0]).unwrap_or_else(|e| panic!("{package} loads: {e}"));
    (dir, loaded.connector)
}

fn options(extra: &[(&str, &str)]) -> Options {
    let mut v: BTreeMap<String, Value> = BTreeMap::new();
    v.insert("base_url".into(), BASE.into());
    for (k, val) in extra {
        v.insert(k.to_string(), Value::from(*val));
    }
    Options::from_values(v)
}

fn open(c: &Arc<dyn Connector>, extra: &[(&str, &str)]) -> Result<Box<dyn TargetSession>, ConnectorError> {
    c.target().expect("a target half").open(&options(extra))
}

fn user(name: &str) -> TargetUser {
    TargetUser {
        user_name: name.into(),
        display_name: Some(format!("{name} Lovelace")),
        email: Some(format!("{name}@example.test")),
        active: true,
        department: Some("R&D / Ops".into()),
        ..TargetUser::default()
    }
}

fn changes() -> Vec<TargetChange> {
    let members: Vec<String> = (1..=5).map(|i| format!("u{i}")).collect();
    vec![
        TargetChange::CreateUser {
            source_key: "src-1".into(),
            user: user("ada"),
        },
        TargetChange::UpdateUser {
            app_id: "u 1/ü".into(),
            etag: Some("W/\"3\"".into()),
            source_key: "src-1".into(),
            user: user("ada"),
        },
        TargetChange::DeactivateUser {
            app_id: "u1".into(),
            etag: Some("4".into()),
        },
        TargetChange::DeleteUser {
            app_id: "u1".into(),
            etag: None,
        },
        TargetChange::CreateGroup {
            source_key: "g-src".into(),
            display_name: "Engineering".into(),
        },
        TargetChange::RenameGroup {
            app_id: "g1".into(),
            etag: None,
            display_name: "Eng".into(),
        },
        TargetChange::DeleteGroup {
            app_id: "g1".into(),
            etag: Some("9".into()),
        },
        TargetChange::AddMembers {
            group_app_id: "g1".into(),
            member_app_ids: members.clone(),
        },
        TargetChange::RemoveMembers {
            group_app_id: "g1".into(),
            member_app_ids: members,
        },
    ]
}

fn responses() -> Vec<HttpResponse> {
    let err = |status: u16, code: &str, field: &str| {
        HttpResponse::new(
            status,
            json!({"error": {"code": code, "field": field, "message": format!("{code} on {field}")}})
                .to_string(),
        )
    };
    vec![
        HttpResponse::new(201, r#"{"id":"new-1","version":"1"}"#),
        HttpResponse::new(200, r#"{"version":"2"}"#),
        HttpResponse::new(204, ""),
        err(400, "invalidValue", "email"),
        err(401, "badToken", ""),
        err(403, "users:write", ""),
        err(404, "notFound", "id"),
        err(409, "uniqueness", "userName"),
        err(412, "versionMismatch", ""),
        HttpResponse::new(429, "{}").with_header("Retry-After", "7"),
        HttpResponse::new(503, "down"),
        HttpResponse::new(200, "{not json"),
        HttpResponse::new(201, r#"{"version":"1"}"#),
    ]
}

/// Everything a push would ask of a target session, written down as text.
fn drive(session: &mut Box<dyn TargetSession>) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!("discovery {:?}", session.discovery()));
    out.push(format!("before {:?}", session.capabilities()));
    let configured = session.configure(vec![HttpResponse::new(
        200,
        r#"{"maxMembersPerRequest":2,"etags":true}"#,
    )]);
    out.push(format!("configure {configured:?}"));
    out.push(format!("after {:?}", session.capabilities()));
    for change in changes() {
        out.push(format!("requests {:?}", session.requests(&change)));
        for r in responses() {
            out.push(format!("result {:?}", session.on_response(&change, r)));
        }
    }
    let lookups = [
        Lookup::UserByUserName {
            value: "ada \"x\"&y".into(),
        },
        Lookup::UserByExternalId {
            value: "src-1".into(),
        },
        Lookup::GroupByDisplayName { value: "Eng".into() },
        Lookup::GroupByExternalId {
            value: "g-src".into(),
        },
    ];
    for l in &lookups {
        out.push(format!("lookup {:?}", session.lookup_request(l)));
        let found = HttpResponse::new(
            200,
            r#"{"items":[{"id":"u9","name":"ada","externalId":"src-1","version":"5"}]}"#,
        );
        out.push(format!("found {:?}", session.on_lookup(l, found)));
        out.push(format!(
            "lookup 500 {:?}",
            session.on_lookup(l, HttpResponse::new(500, "x"))
        ));
    }
    let mut listing = session.list(ObjectKind::Group).expect("list");
    let pages = [
        r#"{"items":[{"id":"g1","name":"Eng"}],"nextPage":2}"#,
        r#"{"items":[{"id":"g2","name":"Ops","externalId":"k"}],"nextPage":null}"#,
    ];
    for p in pages {
        out.push(format!("list {:?}", listing.next_request()));
        out.push(format!(
            "page {:?}",
            listing.on_response(HttpResponse::new(200, p))
        ));
    }
    out.push(format!("list end {:?}", listing.next_request()));
    out
}

#[test]
fn a_target_session_round_trips_through_the_abi_exactly_as_linked_in() {
    let (_dir, plugin) = plugin("usersync-fixture-target");
    let builtin: Arc<dyn Connector> = Arc::from(usersync_fixture_target::connector());
    assert_eq!(plugin.manifest(), builtin.manifest());
    let (pt, bt) = (
        plugin.target().expect("plugin target"),
        builtin.target().expect("target"),
    );
    assert_eq!(pt.manifest(), bt.manifest());
    assert_eq!(pt.manifest(), usersync_fixture_target::target_manifest());

    let via_abi = drive(&mut open(&plugin, &[]).expect("open plugin target"));
    let linked_in = drive(&mut open(&builtin, &[]).expect("open built-in target"));
    assert_eq!(via_abi.len(), linked_in.len());
    for (a, b) in via_abi.iter().zip(&linked_in) {
        assert_eq!(a, b);
    }

    // What crossed is what a push needs (not just equal on both sides): write methods, If-Match,
    // chunks of the discovered size, typed results.
    let mut s = open(&plugin, &[]).expect("open");
    s.configure(vec![HttpResponse::new(
        200,
        r#"{"maxMembersPerRequest":2,"etags":true}"#,
    )])
    .expect("configure");
    let all = changes();
    let add = s.requests(&all[7]).expect("add members");
    assert_eq!(add.len(), 3, "5 members in chunks of 2");
    assert!(add
        .iter()
        .all(|r| r.method == Method::Post && r.url == format!("{BASE}/api/groups/g1/members")));
    assert_eq!(add[2].body.as_deref(), Some(br#"{"add":["u5"]}"#.as_slice()));
    let update = s.requests(&all[1]).expect("update");
    assert_eq!(update[0].method, Method::Put);
    assert_eq!(update[0].url, format!("{BASE}/api/users/u%201%2F%C3%BC"));
    assert_eq!(update[0].header("If-Match"), Some("W/\"3\""));
    assert_eq!(s.requests(&all[2]).expect("deactivate")[0].method, Method::Patch);
    assert_eq!(s.requests(&all[3]).expect("delete")[0].method, Method::Delete);
    let r = responses();
    assert_eq!(
        s.on_response(&all[0], r[0].clone()),
        TargetResult::Created {
            app_id: "new-1".into(),
            etag: Some("1".into())
        }
    );
    assert_eq!(
        s.on_response(&all[0], r[3].clone()),
        TargetResult::Invalid {
            attribute: Some("email".into()),
            reason: Some("invalidValue".into()),
            detail: "invalidValue on email".into()
        }
    );
    assert_eq!(
        s.on_response(&all[0], r[9].clone()),
        TargetResult::Throttled {
            retry_after_ms: Some(7000),
            detail: "HTTP 429".into()
        }
    );
    assert!(
        s.on_response(&all[0], r[11].clone()).stops_the_push(),
        "garbage JSON stops the push"
    );
    assert_eq!(s.capabilities().max_members_per_request, 2);
    assert!(s.capabilities().etags);
}

#[test]
fn a_panic_in_the_plugin_target_is_a_clear_error_and_the_host_carries_on() {
    let (_dir, plugin) = plugin("usersync-fixture-target");
    let clear = |e: &str, call: &str| {
        assert!(
            e.contains("fixture-target 1.0.0")
                && e.contains(&format!("panicked in {call}"))
                && e.contains("simulated bug")
                && !e.contains('\n'),
            "{e}"
        );
    };

    let e = open(&plugin, &[("panic_in", "open")]).err().expect("open fails");
    assert!(matches!(e, ConnectorError::Plugin { .. }), "{e}");
    clear(&e.to_string(), "Target::open");

    let mut s = open(&plugin, &[("panic_in", "configure")]).expect("open");
    let e = s
        .configure(vec![HttpResponse::new(200, "{}")])
        .expect_err("configure fails");
    clear(&e.to_string(), "TargetSession::configure");

    let s = open(&plugin, &[("panic_in", "requests")]).expect("open");
    let change = &changes()[0];
    let e = s.requests(change).expect_err("requests fails").to_string();
    clear(&e, "TargetSession::requests");
    // The session's state is unknown after a panic: every later call fails, naming why.
    let again = s.lookup_request(&Lookup::UserByUserName { value: "ada".into() });
    let again = again.expect_err("session unusable").to_string();
    assert!(again.contains("unusable after this failure"), "{again}");

    // `on_response` has no error channel: the panic becomes a result that stops the push.
    let s = open(&plugin, &[("panic_in", "on_response")]).expect("open");
    match s.on_response(change, HttpResponse::new(201, r#"{"id":"x"}"#)) {
        r @ TargetResult::Protocol { .. } => {
            assert!(r.stops_the_push() && !r.is_success());
            let TargetResult::Protocol { detail } = r else {
                unreachable!()
            };
            clear(&detail, "TargetSession::on_response");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }

    // A listing that panics on page 2 fails there and asks for nothing more.
    let s = open(&plugin, &[("panic_in", "listing")]).expect("open");
    let mut l = s.list(ObjectKind::User).expect("list");
    l.on_response(HttpResponse::new(
        200,
        r#"{"items":[{"id":"u1","name":"a"}],"nextPage":2}"#,
    ))
    .expect("page 1");
    let e = l
        .on_response(HttpResponse::new(200, "{}"))
        .expect_err("page 2")
        .to_string();
    clear(&e, "TargetListing::on_response");
    assert!(l.next_request().is_none());

    // And the plugin still works for a session that does not panic.
    let s = open(&plugin, &[]).expect("open");
    assert_eq!(s.requests(change).expect("requests").len(), 1);
}

#[test]
fn a_plugin_built_before_the_target_half_still_loads_without_a_target() {
    let (dir, libs) = plugin_dir(&["usersync-fixture-target-old-abi", "usersync-fixture-target"]);
    // The old plugin exports the connector's root module only; the new one both modules.
    let symbols =
        |p: &Path| usersync_abi::elf::defined_dynamic_symbols(&std::fs::read(p).expect("read")).expect("ELF");
    let old = symbols(&libs[0]);
    assert!(
        old.iter()
            .any(|s| s.starts_with(usersync_abi::PLUGIN_SYMBOL_PREFIX)),
        "{old:?}"
    );
    assert!(
        !old.iter()
            .any(|s| s.starts_with(usersync_abi::PLUGIN_TARGET_SYMBOL_PREFIX)),
        "{old:?}"
    );
    let new = symbols(&libs[1]);
    assert!(
        new.iter()
            .any(|s| s.starts_with(usersync_abi::PLUGIN_TARGET_SYMBOL_PREFIX)),
        "{new:?}"
    );

    let loaded = load_plugin(&libs[0]).expect("an old plugin loads");
    assert_eq!(loaded.connector.manifest().id, "fixture-old-abi");
    assert!(
        loaded.connector.target().is_none(),
        "an old plugin has no target half"
    );
    // Its source half still answers across the ABI.
    let e = loaded
        .connector
        .open(&Options::default())
        .err()
        .expect("source unsupported");
    assert!(matches!(e, ConnectorError::Unsupported { .. }), "{e}");

    // Through the registry both are active, side by side.
    let reg = Registry::build(
        Vec::new(),
        &RegistryConfig {
            plugin_dirs: vec![dir.path().to_path_buf()],
            ..RegistryConfig::default()
        },
    );
    assert!(reg.get("fixture-old-abi").expect("old active").target().is_none());
    assert!(reg.get("fixture-target").expect("new active").target().is_some());
    // A source-only plugin built now (its connector has no target) exports the module, answering None.
    let (_d, paged) = plugin("usersync-fixture-paged");
    assert!(paged.target().is_none());
}

fn usersync(args: &[&str]) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(crate::support::usersync_bin())
        .args(args)
        .current_dir(home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("HOME", home.path())
        .env_remove("USERSYNC_PLUGIN_PATH")
        .env_remove("USERSYNC_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run usersync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn connectors_describe_shows_the_plugin_target_capabilities_and_endpoints() {
    let (dir, _) = plugin_dir(&["usersync-fixture-target", "usersync-fixture-target-old-abi"]);
    let d = dir.path().to_str().expect("utf-8 path");

    let (ok, out, err) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "describe",
        "--all",
        "--format",
        "json",
    ]);
    assert!(ok, "describe failed: {err}");
    let all: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    let by_id = |id: &str| {
        all.iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {out}"))
    };
    let t = &by_id("fixture-target")["target"];
    let expected = serde_json::to_value(usersync_fixture_target::target_manifest()).expect("json");
    assert_eq!(t, &expected, "describe shows the manifest the plugin declared");
    assert_eq!(t["capabilities"]["max_members_per_request"], 50);
    assert!(t["capabilities"]["operations"]
        .as_array()
        .expect("ops")
        .contains(&json!("remove_members")));
    assert!(t["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .any(|e| e["method"] == "DELETE"));
    assert_eq!(by_id("fixture-old-abi")["target"], Value::Null);

    let (ok, out, err) = usersync(&["--plugin-dir", d, "connectors", "describe", "fixture-target"]);
    assert!(ok, "{err}");
    assert!(out.contains("  target:\n"), "{out}");
    assert!(
        out.contains("members per request: 50; lookup by filter: yes; list: yes; etags: yes"),
        "{out}"
    );
    assert!(
        out.contains("DELETE https://{acmeAppsDomain}/api/users/{id}"),
        "{out}"
    );

    let (ok, out, err) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "describe",
        "--all",
        "--format",
        "markdown",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("| PATCH https://{acmeAppsDomain}/api/groups/{id} | Rename a group (target) |"),
        "{out}"
    );
    assert!(out.contains("Hosts to allow: `{acmeAppsDomain}:443`."), "{out}");

    let (ok, out, err) = usersync(&["--plugin-dir", d, "connectors", "endpoints", "fixture-target"]);
    assert!(ok, "{err}");
    assert!(out.contains("target add_members"), "{out}");
    let (ok, out, err) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "endpoints",
        "--hosts",
        "fixture-target",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("{acmeAppsDomain}:443"), "{out}");
}

/// A tiny in-memory Acme Apps (the API of the fixture's crate docs), enforcing what the fixture
/// relies on: the bearer token, unique `userName`, at most 2 member ids per request.
mod acme_apps {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::{json, Value};

    pub const TOKEN: &str = "acme-apps-token";
    pub const MAX_MEMBERS: usize = 2;

    #[derive(Default)]
    pub struct Data {
        pub users: BTreeMap<String, Value>,
        pub groups: BTreeMap<String, Value>,
        pub members: BTreeMap<String, BTreeSet<String>>,
        pub writes: u64,
        next: u64,
    }

    pub type Shared = Arc<Mutex<Data>>;

    fn error(status: StatusCode, code: &str, message: &str) -> Response {
        (
            status,
            Json(json!({"error": {"code": code, "field": null, "message": message}})),
        )
            .into_response()
    }

    fn authorized(h: &HeaderMap) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
    }

    fn item(id: &str, v: &Value, name_key: &str) -> Value {
        json!({"id": id, "name": v[name_key], "externalId": v["externalId"], "version": v["version"]})
    }

    async fn config(h: HeaderMap) -> Response {
        if !authorized(&h) {
            return error(StatusCode::UNAUTHORIZED, "badToken", "no token");
        }
        Json(json!({"maxMembersPerRequest": MAX_MEMBERS, "etags": false})).into_response()
    }

    async fn collection(
        State(s): State<Shared>,
        Path(kind): Path<String>,
        Query(q): Query<BTreeMap<String, String>>,
        method: Method,
        h: HeaderMap,
        body: Option<Json<Value>>,
    ) -> Response {
        if !authorized(&h) {
            return error(StatusCode::UNAUTHORIZED, "badToken", "no token");
        }
        let mut d = s.lock().expect("lock");
        let name_key = if kind == "users" {
            "userName"
        } else {
            "displayName"
        };
        if method == Method::POST {
            let Some(Json(mut v)) = body else {
                return error(StatusCode::BAD_REQUEST, "invalidJson", "no body");
            };
            d.writes += 1;
            let map = if kind == "users" { &d.users } else { &d.groups };
            if kind == "users" && map.values().any(|u| u[name_key] == v[name_key]) {
                return error(StatusCode::CONFLICT, "uniqueness", "userName taken");
            }
            d.next += 1;
            let id = format!("{}{}", &kind[..1], d.next);
            v["version"] = json!("1");
            if kind == "users" {
                d.users.insert(id.clone(), v);
            } else {
                d.groups.insert(id.clone(), v);
                d.members.insert(id.clone(), BTreeSet::new());
            }
            return (StatusCode::CREATED, Json(json!({"id": id, "version": "1"}))).into_response();
        }
        let map = if kind == "users" { &d.users } else { &d.groups };
        let filtered: Vec<Value> = map
            .iter()
            .filter(|(_, v)| {
                q.iter().all(|(k, want)| match k.as_str() {
                    "page" => true,
                    "userName" | "displayName" => v[k.as_str()]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(want)),
                    _ => v[k.as_str()].as_str() == Some(want.as_str()),
                })
            })
            .map(|(id, v)| item(id, v, name_key))
            .collect();
        // One page of everything (the listing test drives paging elsewhere).
        Json(json!({"items": filtered, "nextPage": null})).into_response()
    }

    async fn object(
        State(s): State<Shared>,
        Path((kind, id)): Path<(String, String)>,
        method: Method,
        h: HeaderMap,
        body: Option<Json<Value>>,
    ) -> Response {
        if !authorized(&h) {
            return error(StatusCode::UNAUTHORIZED, "badToken", "no token");
        }
        let mut d = s.lock().expect("lock");
        d.writes += 1;
        let d = &mut *d;
        let map = if kind == "users" {
            &mut d.users
        } else {
            &mut d.groups
        };
        let Some(current) = map.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "notFound", "no such object");
        };
        let version = current["version"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        match (method, body) {
            (Method::DELETE, _) => {
                map.remove(&id);
                d.members.remove(&id);
                for m in d.members.values_mut() {
                    m.remove(&id);
                }
                StatusCode::NO_CONTENT.into_response()
            }
            (Method::PUT, Some(Json(mut v))) => {
                v["version"] = json!(version.to_string());
                *current = v;
                Json(json!({"version": version.to_string()})).into_response()
            }
            (Method::PATCH, Some(Json(v))) => {
                for (k, val) in v.as_object().cloned().unwrap_or_default() {
                    current[k.as_str()] = val;
                }
                current["version"] = json!(version.to_string());
                Json(json!({"version": version.to_string()})).into_response()
            }
            _ => error(StatusCode::BAD_REQUEST, "invalidJson", "no body"),
        }
    }

    async fn members(
        State(s): State<Shared>,
        Path(id): Path<String>,
        h: HeaderMap,
        Json(v): Json<Value>,
    ) -> Response {
        if !authorized(&h) {
            return error(StatusCode::UNAUTHORIZED, "badToken", "no token");
        }
        let mut d = s.lock().expect("lock");
        d.writes += 1;
        let (add, ids) = match (v["add"].as_array(), v["remove"].as_array()) {
            (Some(a), None) => (true, a.clone()),
            (None, Some(r)) => (false, r.clone()),
            _ => return error(StatusCode::BAD_REQUEST, "invalidValue", "add or remove"),
        };
        if ids.len() > MAX_MEMBERS {
            return error(
                StatusCode::BAD_REQUEST,
                "tooMany",
                "too many members in one request",
            );
        }
        let ids: Vec<String> = ids
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        if ids.iter().any(|u| !d.users.contains_key(u)) {
            return error(StatusCode::BAD_REQUEST, "invalidValue", "unknown member");
        }
        let Some(set) = d.members.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "notFound", "no such group");
        };
        for u in ids {
            if add {
                set.insert(u);
            } else {
                set.remove(&u);
            }
        }
        Json(json!({})).into_response()
    }

    /// Serve it on a free port; returns its base URL and its data.
    pub async fn start() -> (String, Shared) {
        let data: Shared = Arc::default();
        let app = Router::new()
            .route("/api/config", get(config))
            .route("/api/groups/{id}/members", post(members))
            .route("/api/{kind}", get(collection).post(collection))
            .route(
                "/api/{kind}/{id}",
                axum::routing::put(object).patch(object).delete(object),
            )
            .with_state(data.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, data)
    }
}

/// `usersync push` through the plugin: Okta emulator -> `usersync sync` -> store -> the
/// fixture-target plugin -> a tiny Acme Apps. The app's own data is the judge; a second push
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usersync_push_writes_through_the_plugin_target() {
    let (dir, _) = plugin_dir(&["usersync-fixture-target"]);
    let plugins = dir.path().to_str().expect("utf-8").to_string();
    let idp = crate::support::start_emulator("okta", 12, 3, 19).await;
    let (app_url, app) = acme_apps::start().await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "store.db"

[[connections]]
name = "okta"
connector = "okta"
[connections.options]
base_url = "{}"
api_token = {{ env = "OKTA_TOKEN" }}

[targets.acme]
connector = "fixture-target"
[targets.acme.options]
base_url = "{app_url}"
api_token = {{ env = "ACME_TOKEN" }}
"#,
            idp.http_url
        ),
    )
    .expect("write config");
    let run = |args: &[&str]| {
        let mut c = crate::support::usersync_command(&config);
        c.arg("--plugin-dir")
            .arg(&plugins)
            .args(args)
            .env("OKTA_TOKEN", &idp.credentials().api_token)
            .env("ACME_TOKEN", acme_apps::TOKEN)
            .env_remove("USERSYNC_PLUGIN_PATH");
        async move {
            let out = c.output().await.expect("run usersync");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, out, err) = run(&["sync", "--no-progress", "--format", "json"]).await;
    assert_eq!(code, 0, "sync: {out}{err}");

    let (code, out, err) = run(&["push", "--format", "json"]).await;
    assert_eq!(code, 0, "push: {out}\n{err}");
    let reports: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(reports[0]["status"], "applied", "{out}");

    let st = crate::support::store_state(&work.path().join("store.db"), "okta");
    assert_app_matches_store(&st, &app.lock().expect("lock"));

    // The firewall list of this config names the app's host, for the target too.
    let (code, out, err) = run(&["connectors", "endpoints", "--hosts"]).await;
    assert_eq!(code, 0, "{err}");
    let app_host = app_url.trim_start_matches("http://");
    assert!(
        out.contains("target acme (fixture-target") && out.contains(app_host),
        "{out}"
    );

    let writes = app.lock().expect("lock").writes;
    let (code, out, err) = run(&["push", "--format", "json"]).await;
    assert_eq!(code, 0, "second push: {out}\n{err}");
    let reports: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(reports[0]["writes"], 0, "a second push writes nothing: {out}");
    assert_eq!(app.lock().expect("lock").writes, writes, "the app saw no write");
}

/// The app holds the store's active users (externalId = the source key) and its groups with
/// their transitive active members (the fake refused any membership request over 2 ids).
fn assert_app_matches_store(st: &usersync_store::ConnectionState, d: &acme_apps::Data) {
    let (users, members) = (&d.users, &d.members);
    let groups: BTreeMap<&String, &Value> = d.groups.iter().map(|(id, v)| (id, &v["displayName"])).collect();
    let active: Vec<_> = st.users.iter().filter(|u| u.active).collect();
    assert!(active.len() >= 5, "the org has active users");
    let mut app_names: Vec<String> = users
        .values()
        .filter(|u| u["active"] == true)
        .map(|u| u["userName"].as_str().expect("userName").to_string())
        .collect();
    app_names.sort();
    let mut store_names: Vec<String> = active.iter().map(|u| u.username.clone()).collect();
    store_names.sort();
    assert_eq!(app_names, store_names);
    for u in &active {
        let held = users
            .values()
            .find(|v| v["userName"] == u.username.as_str())
            .expect("held");
        assert_eq!(held["externalId"], format!("okta/{}", u.provider_id), "{held}");
    }
    let mut group_names: Vec<String> = groups
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    group_names.sort();
    let mut store_groups: Vec<String> = st.groups.iter().map(|g| g.name.clone()).collect();
    store_groups.sort();
    assert_eq!(group_names, store_groups);
    let user_of: BTreeMap<&String, &str> = users
        .iter()
        .map(|(id, v)| (id, v["userName"].as_str().unwrap_or("")))
        .collect();
    let memberships: usize = members.values().map(|m| m.len()).sum();
    assert!(memberships > 0, "members were pushed: {members:?}");
    for g in &st.groups {
        let gid = *groups
            .iter()
            .find(|(_, n)| n.as_str() == Some(g.name.as_str()))
            .map(|(id, _)| id)
            .expect("group");
        let mut held: Vec<&str> = members[gid].iter().map(|id| user_of[id]).collect();
        held.sort();
        let mut want: Vec<&str> = st
            .effective
            .iter()
            .filter(|m| m.group == g.provider_id)
            .filter_map(|m| {
                active
                    .iter()
                    .find(|u| u.provider_id == m.user)
                    .map(|u| u.username.as_str())
            })
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(held, want, "members of {}", g.name);
    }
}
