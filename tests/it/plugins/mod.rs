//! Integration tests: plugins (stable ABI, registry, `plugins list`, `connectors describe`).
//!
//! The plugin libraries and the `usersync` binary are found in the cargo target directory next
//! to this test executable (`.../debug/deps/it-*` -> `.../debug/`), so run
//! `cargo build --workspace` before `cargo test` (the README's test command does). Every library
//! is copied into a fresh directory with modes 0755/0644 before loading, because the
//! permission check is real.

mod faults;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use usersync_abi::{load_plugin, LoadError, ACCEPTED_ABI_MAX, ACCEPTED_ABI_MIN};
use usersync_registry::{Pin, Registry, RegistryConfig, Source};
use usersync_sdk::model::Record;
use usersync_sdk::{
    AuthPlan, Capabilities, Connector, ConnectorError, HttpResponse, Manifest, Options, Query, Session,
    ABI_VERSION,
};

/// `.../target/debug/` (this executable lives in `.../target/debug/deps/`).
/// A built cdylib of a workspace package, e.g. `usersync-fixture-paged`.
fn artifact(package: &str) -> PathBuf {
    crate::support::cdylib(&package.replace('-', "_"))
}

fn usersync_bin() -> PathBuf {
    crate::support::usersync_bin()
}

/// A fresh plugin directory (0755) holding copies (0644) of the given packages' libraries.
fn plugin_dir(packages: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    for p in packages {
        install(dir.path(), p);
    }
    dir
}

fn install(dir: &Path, package: &str) -> PathBuf {
    let src = artifact(package);
    let dst = dir.join(src.file_name().expect("file name"));
    std::fs::copy(&src, &dst).expect("copy library");
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).expect("chmod lib");
    dst
}

fn options(pairs: &[(&str, Value)]) -> Options {
    Options::from_values(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn user_ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some(u.id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn dlopen_loads_a_plugin_and_drives_a_paged_query() {
    let dir = plugin_dir(&["usersync-fixture-paged"]);
    let lib = dir.path().join(format!(
        "libusersync_fixture_paged{}",
        std::env::consts::DLL_SUFFIX
    ));
    let plugin = load_plugin(&lib).expect("fixture loads");
    assert_eq!(plugin.abi_version, ABI_VERSION);
    let m = plugin.connector.manifest();
    assert_eq!((m.id.as_str(), m.version.as_str()), ("fixture-paged", "1.0.0"));

    let session = plugin
        .connector
        .open(&options(&[("base_url", "https://fixture.test:8443".into())]))
        .expect("open");
    assert_eq!(session.auth_plan(), AuthPlan::None);
    assert_eq!(session.base_urls(), vec!["https://fixture.test:8443".to_string()]);
    let mut cursor = session.query(&Query::ListUsers).expect("query");
    let first = cursor.next_request().expect("first request");
    assert_eq!(first.url, "https://fixture.test:8443/users");
    assert_eq!(first.header("accept"), Some("application/json"));
    // The SDK contract survives the boundary: asking twice gives the same request.
    assert_eq!(cursor.next_request(), Some(first));

    let page1 = HttpResponse::new(200, r#"{"users":["u1","u2"],"nextPageToken":"p2"}"#);
    let b1 = cursor.on_response(page1).expect("page 1");
    assert_eq!(user_ids(&b1.records), ["u1", "u2"]);
    let second = cursor.next_request().expect("second request");
    assert_eq!(second.url, "https://fixture.test:8443/users?pageToken=p2");

    // An error response crosses back as the SDK's typed error, and the cursor did not advance.
    let throttled = HttpResponse::new(429, "slow down").with_header("Retry-After", "7");
    match cursor.on_response(throttled) {
        Err(ConnectorError::RateLimited { retry_after_ms, .. }) => assert_eq!(retry_after_ms, Some(7000)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(cursor.next_request(), Some(second));

    let b2 = cursor
        .on_response(HttpResponse::new(200, r#"{"users":["u3"]}"#))
        .expect("page 2");
    assert_eq!(user_ids(&b2.records), ["u3"]);
    assert!(cursor.next_request().is_none(), "listing complete");

    let unsupported = session.query(&Query::ListGroups).err().expect("unsupported");
    assert!(
        matches!(unsupported, ConnectorError::Unsupported { .. }),
        "{unsupported}"
    );

    // A second copy under another name is a separate library (no per-type caching).
    let other = tempfile::tempdir().expect("tempdir");
    let copy = install(other.path(), "usersync-fixture-paged");
    let again = load_plugin(&copy).expect("second copy loads");
    assert_eq!(again.connector.manifest(), m);
}

#[test]
fn a_panicking_plugin_is_contained_and_named() {
    let dir = plugin_dir(&["usersync-fixture-panics", "usersync-fixture-paged"]);
    let so = std::env::consts::DLL_SUFFIX;
    let plugin = load_plugin(&dir.path().join(format!("libusersync_fixture_panics{so}"))).expect("loads");
    let session = plugin.connector.open(&Options::default()).expect("open");

    let mut cursor = session.query(&Query::ListUsers).expect("query");
    assert!(cursor.next_request().is_some());
    let err = cursor
        .on_response(HttpResponse::new(200, "{}"))
        .expect_err("panic becomes an error");
    let ConnectorError::Plugin { detail } = &err else {
        panic!("expected a plugin error, got {err:?}")
    };
    assert!(detail.contains("fixture-panics"), "names the plugin: {detail}");
    assert!(detail.contains("Cursor::on_response"), "names the call: {detail}");
    assert!(detail.contains("simulated bug while parsing page"), "{detail}");
    // The cursor is unusable afterwards, never half-working.
    let again = cursor
        .on_response(HttpResponse::new(200, "{}"))
        .expect_err("poisoned");
    assert!(matches!(again, ConnectorError::Plugin { .. }));

    // A panic in next_request surfaces from the call that triggered it (no silent truncation).
    let err = session.query(&Query::ListGroups).err().expect("query fails");
    assert!(err.to_string().contains("simulated bug in next_request"), "{err}");
    assert!(err.to_string().contains("fixture-panics"), "{err}");

    let err = plugin
        .connector
        .open(&options(&[("panic_in_open", true.into())]))
        .err()
        .expect("open fails");
    assert!(err.to_string().contains("Connector::open"), "{err}");

    // The host lives on and other plugins still work.
    let paged = load_plugin(&dir.path().join(format!("libusersync_fixture_paged{so}"))).expect("loads");
    let s = paged
        .connector
        .open(&options(&[("base_url", "https://x.test".into())]))
        .expect("open");
    let mut c = s.query(&Query::ListUsers).expect("query");
    let b = c
        .on_response(HttpResponse::new(200, r#"{"users":["a"]}"#))
        .expect("page");
    assert_eq!(user_ids(&b.records), ["a"]);
}

#[test]
fn an_incompatible_abi_is_refused_with_one_readable_line() {
    let dir = plugin_dir(&["usersync-fixture-bad-abi", "usersync-fixture-bad-layout"]);
    let so = std::env::consts::DLL_SUFFIX;
    let err = load_plugin(&dir.path().join(format!("libusersync_fixture_bad_abi{so}"))).expect_err("refused");
    assert_eq!(
        err,
        LoadError::IncompatibleAbi {
            found: 99,
            min: ACCEPTED_ABI_MIN,
            max: ACCEPTED_ABI_MAX
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "incompatible ABI: plugin ABI version 99; this usersync accepts {}",
            usersync_sdk::manifest::abi_versions_text(ACCEPTED_ABI_MIN, ACCEPTED_ABI_MAX)
        )
    );

    // Same declared version, different layout: abi_stable's long report, summarised.
    let err =
        load_plugin(&dir.path().join(format!("libusersync_fixture_bad_layout{so}"))).expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, LoadError::Layout { found: 1, .. }), "{err:?}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.len() < 800, "short: {} chars", text.len());
    assert!(
        text.starts_with("incompatible ABI: plugin ABI version 1, which this usersync accepts"),
        "{text}"
    );
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let dir = plugin_dir(&["usersync-fixture-not-a-plugin"]);
    let so = std::env::consts::DLL_SUFFIX;
    let err =
        load_plugin(&dir.path().join(format!("libusersync_fixture_not_a_plugin{so}"))).expect_err("refused");
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    assert!(err.to_string().starts_with("not a usersync plugin"), "{err}");

    // Garbage with a library's name: refused, no crash, one line.
    let junk = dir.path().join(format!("libjunk{so}"));
    std::fs::write(&junk, b"#!/bin/sh\necho not a library\n").expect("write");
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = load_plugin(&junk).expect_err("refused");
    assert!(!err.to_string().contains('\n'), "{err}");
}

fn registry_for(dir: &Path, builtins: Vec<Arc<dyn Connector>>, pins: &[(&str, &str)]) -> Registry {
    let config = RegistryConfig {
        plugin_dirs: vec![dir.to_path_buf()],
        explicit_dirs: [dir.to_path_buf()].into_iter().collect(),
        pins: pins
            .iter()
            .map(|(k, v)| (k.to_string(), Pin::parse(v).expect("pin")))
            .collect(),
        config_file: Some(PathBuf::from("usersync.toml")),
    };
    Registry::build(builtins, &config)
}

#[test]
fn unsafe_permissions_are_refused() {
    let dir = plugin_dir(&["usersync-fixture-paged"]);
    let lib = dir.path().join(format!(
        "libusersync_fixture_paged{}",
        std::env::consts::DLL_SUFFIX
    ));
    let reason = |reg: &Registry| {
        let e = reg
            .entries()
            .into_iter()
            .find(|e| e.source == Source::Plugin(lib.clone()))
            .cloned();
        e.expect("entry for the library")
    };

    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let reg = registry_for(dir.path(), Vec::new(), &[]);
    let e = reason(&reg);
    assert!(!e.active && e.connector.is_none());
    assert!(e.reason.contains("writable by group and others"), "{}", e.reason);
    assert!(reg.get("fixture-paged").is_none());

    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let e = reason(&registry_for(dir.path(), Vec::new(), &[]));
    assert!(
        e.reason.contains("directory") && e.reason.contains("writable by group"),
        "{}",
        e.reason
    );

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(reason(&registry_for(dir.path(), Vec::new(), &[])).active);

    // Owned by another, non-root user (only root can hand a file to someone else).
    if std::os::unix::fs::chown(&lib, Some(54_321), None).is_ok() {
        let e = reason(&registry_for(dir.path(), Vec::new(), &[]));
        assert!(e.reason.contains("owned by uid 54321"), "{}", e.reason);
    }
}

/// A built-in stand-in with the same id as the paged fixture and a chosen version.
struct FakeBuiltin(&'static str);

impl Connector for FakeBuiltin {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "fixture-paged".into(),
            name: "built-in stand-in".into(),
            version: self.0.into(),
            abi_version: ABI_VERSION,
            auth: Vec::new(),
            endpoints: Vec::new(),
            capabilities: Capabilities::default(),
            options: Vec::new(),
            default_concurrency: 1,
        }
    }

    fn open(&self, _options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: "open".into(),
        })
    }
}

fn active_source(reg: &Registry) -> Source {
    reg.active_entry("fixture-paged")
        .expect("an active candidate")
        .source
        .clone()
}

#[test]
fn registry_precedence_newer_wins_unless_pinned() {
    let dir = plugin_dir(&["usersync-fixture-paged"]);
    let lib = dir.path().join(format!(
        "libusersync_fixture_paged{}",
        std::env::consts::DLL_SUFFIX
    ));
    let older: Arc<dyn Connector> = Arc::new(FakeBuiltin("0.9.0"));
    let newer: Arc<dyn Connector> = Arc::new(FakeBuiltin("2.0.0"));
    let same: Arc<dyn Connector> = Arc::new(FakeBuiltin("1.0.0"));

    // A newer plugin (1.0.0) overrides an older built-in.
    let reg = registry_for(dir.path(), vec![older.clone()], &[]);
    assert_eq!(active_source(&reg), Source::Plugin(lib.clone()));
    assert_eq!(
        reg.get("fixture-paged").expect("active").manifest().version,
        "1.0.0"
    );
    let builtin = reg
        .entries()
        .into_iter()
        .find(|e| e.source == Source::Builtin)
        .cloned()
        .expect("builtin");
    assert!(!builtin.active);
    assert!(
        builtin.reason.contains("overridden by") && builtin.reason.contains("higher version"),
        "{}",
        builtin.reason
    );

    // A newer built-in beats the plugin; on a tie the built-in wins.
    assert_eq!(
        active_source(&registry_for(dir.path(), vec![newer.clone()], &[])),
        Source::Builtin
    );
    assert_eq!(
        active_source(&registry_for(dir.path(), vec![same], &[])),
        Source::Builtin
    );

    // Pins win over versions.
    let reg = registry_for(dir.path(), vec![older], &[("fixture-paged", "builtin")]);
    assert_eq!(active_source(&reg), Source::Builtin);
    assert!(reg
        .active_entry("fixture-paged")
        .expect("active")
        .reason
        .contains("pinned"));
    let reg = registry_for(dir.path(), vec![newer.clone()], &[("fixture-paged", "1.0.0")]);
    assert_eq!(active_source(&reg), Source::Plugin(lib.clone()));
    let reg = registry_for(dir.path(), vec![newer], &[("fixture-paged", "plugin")]);
    assert_eq!(active_source(&reg), Source::Plugin(lib));

    // A pin nothing satisfies leaves the id without a connector, and says why.
    let reg = registry_for(dir.path(), Vec::new(), &[("fixture-paged", "builtin")]);
    assert!(reg.get("fixture-paged").is_none());
    assert!(reg
        .entries()
        .iter()
        .any(|e| e.reason.contains("matches no candidate")));
}

#[test]
fn the_same_connector_works_linked_in_and_as_a_plugin() {
    let dir = plugin_dir(&["usersync-connector-template"]);
    let lib = dir.path().join(format!(
        "libusersync_connector_template{}",
        std::env::consts::DLL_SUFFIX
    ));
    let plugin = load_plugin(&lib).expect("template loads").connector;
    let builtin: Arc<dyn Connector> = Arc::from(usersync_connector_template::connector());
    assert_eq!(plugin.manifest(), builtin.manifest());

    let opts = Options::validate(
        &builtin.manifest(),
        [("base_url".to_string(), Value::from("https://acme.test"))]
            .into_iter()
            .collect(),
        vec!["api_token".into()],
    )
    .expect("options");
    let pages = [
        HttpResponse::new(200, r#"{"users":[{"id":"u1","login":"ada","status":"active"}]}"#).with_header(
            "Link",
            r#"<https://acme.test/api/v1/users?limit=200&after=u1>; rel="next""#,
        ),
        HttpResponse::new(200, r#"{"users":[{"id":"u2","login":"bob","status":"locked"}]}"#),
    ];
    let run = |c: &Arc<dyn Connector>| {
        let s = c.open(&opts).expect("open");
        let mut cur = s.query(&Query::ListUsers).expect("query");
        let mut out = Vec::new();
        for p in pages.clone() {
            out.push(format!("{:?}", cur.next_request().expect("request")));
            out.push(format!("{:?}", cur.on_response(p).expect("page").records));
        }
        assert!(cur.next_request().is_none());
        (s.auth_plan(), format!("{out:?}"))
    };
    assert_eq!(run(&plugin), run(&builtin));
}

/// Run the `usersync` binary in a clean environment (no default plugins, no config file).
fn usersync(args: &[&str]) -> (bool, String, String) {
    usersync_env(args, &[])
}

fn usersync_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(usersync_bin())
        .args(args)
        .envs(env.iter().copied())
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
fn the_template_dropped_into_a_plugin_dir_shows_in_the_cli() {
    let dir = plugin_dir(&["usersync-connector-template", "usersync-fixture-bad-abi"]);
    let d = dir.path().to_str().expect("utf-8 path");
    let lib = dir.path().join(format!(
        "libusersync_connector_template{}",
        std::env::consts::DLL_SUFFIX
    ));

    let (ok, out, err) = usersync(&["--plugin-dir", d, "plugins", "list", "--format", "json"]);
    assert!(ok, "plugins list failed: {err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    let template = rows
        .iter()
        .find(|r| r["id"] == "template")
        .expect("template listed");
    assert_eq!(template["source"], lib.display().to_string());
    assert_eq!(template["active"], true);
    assert_eq!(template["abi_version"], ABI_VERSION);
    assert_eq!(template["version"], "0.1.0");
    let refused = rows
        .iter()
        .find(|r| {
            r["source"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("bad_abi{}", std::env::consts::DLL_SUFFIX)))
        })
        .expect("refused library listed");
    assert_eq!(refused["active"], false);
    assert!(refused["reason"]
        .as_str()
        .is_some_and(|r| r.contains("plugin ABI version 99")));
    for r in &rows {
        for key in ["id", "version", "abi_version", "source", "active", "reason"] {
            assert!(r.get(key).is_some(), "row lacks `{key}`: {r}");
        }
    }

    let (ok, out, err) = usersync(&["--plugin-dir", d, "plugins", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("template") && out.contains("ACTIVE"), "{out}");

    let (ok, out, err) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "describe",
        "template",
        "--format",
        "json",
    ]);
    assert!(ok, "describe failed: {err}");
    let described: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    assert_eq!(described.len(), 1);
    let t = &described[0];
    assert_eq!(t["id"], "template");
    assert_eq!(t["source"], lib.display().to_string());
    assert_eq!(t["auth"][0]["flow"], "api_token");
    assert_eq!(t["endpoints"].as_array().map(Vec::len), Some(3));
    assert_eq!(t["endpoints"][0]["operation"], "list_users");
    assert_eq!(t["capabilities"]["nested_groups"], true);
    assert!(t["options"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o["name"] == "api_token" && o["secret"] == true)));

    let (ok, out, _) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "describe",
        "--all",
        "--format",
        "json",
    ]);
    assert!(ok);
    let all: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    assert!(all.iter().any(|c| c["id"] == "template"));
    assert!(all.iter().any(|c| c["source"] == "builtin"));

    let (ok, out, _) = usersync(&[
        "--plugin-dir",
        d,
        "connectors",
        "endpoints",
        "template",
        "--hosts",
        "--format",
        "json",
    ]);
    assert!(ok);
    let hosts: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    assert_eq!(hosts[0]["hosts"], serde_json::json!(["{acmeDomain}:443"]));

    // Without the plugin directory the template is unknown, with a helpful error.
    let (ok, _, err) = usersync(&["connectors", "describe", "template"]);
    assert!(!ok);
    assert!(err.contains("no active connector `template`"), "{err}");
}

#[test]
fn a_plugin_that_panics_while_loading_is_refused_and_the_host_carries_on() {
    let dir = plugin_dir(&["usersync-fixture-panics", "usersync-connector-template"]);
    let d = dir.path().to_str().expect("utf-8 path");
    let (ok, out, err) = usersync_env(
        &["--plugin-dir", d, "plugins", "list", "--format", "json"],
        &[("USERSYNC_FIXTURE_PANIC_ON_LOAD", "1")],
    );
    assert!(ok, "the host must survive: {err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("JSON array");
    let panics = rows
        .iter()
        .find(|r| r["source"].as_str().is_some_and(|s| s.contains("fixture_panics")))
        .expect("listed");
    let reason = panics["reason"].as_str().unwrap_or_default();
    assert_eq!(panics["active"], false);
    assert!(reason.starts_with("refused: failed while loading"), "{reason}");
    assert!(
        reason.contains("simulated bug while loading") && !reason.contains('\n'),
        "{reason}"
    );
    assert!(rows.iter().any(|r| r["id"] == "template" && r["active"] == true));
}

#[test]
fn docs_endpoints_md_matches_the_generated_markdown() {
    let (ok, out, err) = usersync(&["connectors", "describe", "--all", "--format", "markdown"]);
    assert!(ok, "describe failed: {err}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/endpoints.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == out,
        "docs/endpoints.md is stale. Regenerate it from the workspace root with:\n  env -u USERSYNC_PLUGIN_PATH \
         XDG_DATA_HOME=/nonexistent cargo run -q -p usersync -- connectors describe --all --format markdown > \
         docs/endpoints.md"
    );
}

#[test]
fn provider_token_errors_cross_the_abi() {
    // Entra reads AADSTS codes from a failed token response; as a plugin it must say the same.
    let dir = plugin_dir(&["usersync-connector-entra"]);
    let lib = dir.path().join(format!(
        "libusersync_connector_entra{}",
        std::env::consts::DLL_SUFFIX
    ));
    let plugin = load_plugin(&lib).expect("entra loads as a plugin").connector;
    let builtin: Arc<dyn Connector> = Arc::from(usersync_connector_entra::connector());
    let opts = Options::validate(
        &builtin.manifest(),
        [
            (
                "tenant_id".to_string(),
                Value::from("11111111-2222-3333-4444-555555555555"),
            ),
            (
                "client_id".to_string(),
                Value::from("66666666-7777-8888-9999-000000000000"),
            ),
        ]
        .into_iter()
        .collect(),
        vec!["client_secret".into()],
    )
    .expect("options");
    let failed = HttpResponse::new(
        401,
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#,
    );
    let from_plugin = plugin.open(&opts).expect("open plugin").token_error(&failed);
    let from_builtin = builtin.open(&opts).expect("open builtin").token_error(&failed);
    assert!(from_builtin.is_some(), "Entra maps its own token errors");
    assert_eq!(from_plugin, from_builtin);
}
