//! Plugin faults end to end: broken plugins fail their own connections, by name and with the
//! reason, and never stop the others.

use super::*;

// ---------------------------------------------------------------------------------------------
// Plugin faults end to end (issue 12, fault suite item 5): broken plugins fail their own
// connections, by name and with the reason, and never stop the others.
// ---------------------------------------------------------------------------------------------

/// Upper bound for one `usersync` run in these tests; a hang fails the test.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Run the `usersync` binary (async, so the in-process emulator keeps serving) in a clean
/// environment; returns (exit code, stdout, stderr).
async fn usersync_async(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut c = tokio::process::Command::new(usersync_bin());
    c.args(args)
        .envs(env.iter().copied())
        .current_dir(home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("HOME", home.path())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("USERSYNC_PLUGIN_PATH")
        .env_remove("USERSYNC_CONFIG")
        .env_remove("USERSYNC_FIXTURE_PANIC_ON_LOAD")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, c.output())
        .await
        .unwrap_or_else(|_| panic!("`usersync {args:?}` hung for {RUN_LIMIT:?}"))
        .expect("run usersync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TOML `[[connections]]` block with string/bool options.
fn connection_toml(name: &str, connector: &str, options: &[(&str, Value)]) -> String {
    let mut s =
        format!("\n[[connections]]\nname = \"{name}\"\nconnector = \"{connector}\"\n[connections.options]\n");
    for (k, v) in options {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

/// A config file in `dir` (store `dir/store.db`, short runtime limits) with these blocks.
fn write_plugin_config(dir: &Path, blocks: &[String]) -> PathBuf {
    let store = dir.join("store.db");
    let mut text = format!(
        "[store]\npath = {}\n\n[runtime]\nmax_retries = 1\nrequest_timeout_secs = 10\n",
        Value::from(store.to_string_lossy().into_owned())
    );
    for b in blocks {
        text.push_str(b);
    }
    let path = dir.join("usersync.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The reports of `usersync sync --format json`, by connection name.
fn reports_by_name(stdout: &str, stderr: &str, code: i32) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("sync printed no JSON ({e}); exit {code}\n{stdout}\nstderr: {stderr}"));
    v.as_array()
        .expect("an array of reports")
        .iter()
        .map(|r| {
            (
                r["connection"].as_str().expect("connection").to_string(),
                r.clone(),
            )
        })
        .collect()
}

fn errors_of(r: &Value) -> String {
    r["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "))
        .unwrap_or_default()
}

/// (connection name, `garbage` mode, what the failure must say).
const GARBAGE: &[(&str, &str, &str)] = &[
    (
        "garbage-invalid-json",
        "invalid_json",
        "sent a page the host cannot read",
    ),
    (
        "garbage-wrong-shape",
        "wrong_shape",
        "sent a page the host cannot read",
    ),
    (
        "garbage-not-a-batch",
        "not_a_batch",
        "sent a page the host cannot read",
    ),
    ("garbage-empty-ids", "empty_ids", "has an empty user id"),
    ("garbage-huge-page", "huge_page", "it was not read"),
    ("garbage-absurd-count", "absurd_count", "skipped `device` objects"),
    (
        "garbage-unreadable-error",
        "unreadable_error",
        "returned an unreadable error",
    ),
    (
        "garbage-file-url",
        "file_url",
        "is not an http(s) URL (scheme `file`)",
    ),
    (
        "garbage-foreign-host",
        "foreign_host",
        "is not on a base URL the session declared",
    ),
    (
        "garbage-bad-method",
        "bad_method",
        "unsupported HTTP method `DELETE`",
    ),
    (
        "garbage-header-injection",
        "header_injection",
        "has a line break or NUL",
    ),
    (
        "garbage-bad-auth-plan",
        "bad_auth_plan",
        "sent an auth plan the host cannot read",
    ),
    (
        "garbage-bad-base-urls",
        "bad_base_urls",
        "sent base URLs the host cannot read",
    ),
];

/// A good Okta connection next to a panicking plugin (in `open`, and on a real response), a
/// plugin returning every kind of garbage, and two refused incompatible libraries that
/// connections name (by the file name cargo gives the fixture, and by the name
/// `usersync plugins install` writes). Okta is applied with the organisation's counts; every
/// broken connection fails with its reason; the process survives and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_plugins_fail_their_own_connections_and_okta_still_syncs() {
    let emu = crate::support::start_emulator("okta", 40, 5, 77).await;
    let plugins = plugin_dir(&[
        "usersync-fixture-panics",
        "usersync-fixture-garbage",
        "usersync-fixture-bad-abi",
    ]);
    let so = std::env::consts::DLL_SUFFIX;
    let acme = plugins.path().join(format!("libusersync_connector_acme{so}"));
    std::fs::copy(artifact("usersync-fixture-bad-abi"), &acme).expect("copy");
    std::fs::set_permissions(&acme, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let bad_abi = plugins.path().join(format!("libusersync_fixture_bad_abi{so}"));

    let dir = tempfile::tempdir().expect("tempdir");
    let base = Value::from(emu.http_url.clone());
    let mut blocks = vec![
        connection_toml(
            "okta",
            "okta",
            &[
                ("base_url", base.clone()),
                (
                    "group_types",
                    serde_json::json!(["OKTA_GROUP", "APP_GROUP", "BUILT_IN"]),
                ),
            ],
        ) + "api_token = { env = \"PLUGINS_E2E_OKTA_TOKEN\" }\n",
        connection_toml(
            "panics-in-open",
            "fixture-panics",
            &[("panic_in_open", true.into()), ("base_url", base.clone())],
        ),
        connection_toml("panics-on-page", "fixture-panics", &[("base_url", base.clone())]),
        connection_toml("old-abi", "fixture-bad-abi", &[]),
        connection_toml("acme", "acme", &[]),
    ];
    for (name, mode, _) in GARBAGE {
        blocks.push(connection_toml(
            name,
            "fixture-garbage",
            &[("base_url", base.clone()), ("garbage", Value::from(*mode))],
        ));
    }
    let config = write_plugin_config(dir.path(), &blocks);
    let token = emu.credentials().api_token.clone();
    let (code, stdout, stderr) = usersync_async(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "sync",
            "--format",
            "json",
            "--no-progress",
        ],
        &[("PLUGINS_E2E_OKTA_TOKEN", token.as_str())],
    )
    .await;
    let reports = reports_by_name(&stdout, &stderr, code);
    assert_eq!(reports.len(), blocks.len(), "one report per connection: {stdout}");

    // Okta: applied, with exactly the organisation's users, groups and memberships.
    let okta = &reports["okta"];
    assert_eq!(okta["status"], "applied", "{okta}\n{stderr}");
    {
        let org = emu.org().read().await;
        use usersync_emulator::UserStatus as S;
        let active = |ix| {
            org.user(ix)
                .is_some_and(|u| matches!(u.status, S::Active | S::Recovery | S::PasswordExpired | S::Locked))
        };
        let users = org.live_users().filter(|u| active(u.ix)).count() as u64;
        let edges: u64 = org
            .live_groups()
            .map(|g| g.members.iter().filter(|&&m| active(m)).count() as u64)
            .sum();
        assert!(users > 0 && edges > 0);
        assert_eq!(crate::support::count(okta, "/users/created"), users, "{okta}");
        assert_eq!(crate::support::count(okta, "/groups/created"), 5, "{okta}");
        assert_eq!(crate::support::count(okta, "/memberships/added"), edges, "{okta}");
    }
    assert!(okta["errors"].as_array().is_some_and(Vec::is_empty), "{okta}");

    let failed = |name: &str| {
        let r = &reports[name];
        assert_eq!(r["status"], "failed", "{name}: {r}");
        for (what, n) in [
            ("users", "created"),
            ("users", "deactivated"),
            ("users", "deleted"),
        ] {
            assert_eq!(r[what][n], 0, "{name}: a failed connection changes nobody: {r}");
        }
        errors_of(r)
    };

    // Panics: contained, naming the plugin and the call, in one clean line: the plugin's own copy
    // of std prints no `thread '<unnamed>' panicked at` line or backtrace note (issue 17.10).
    for raw in ["panicked at", "thread '", "RUST_BACKTRACE"] {
        assert!(
            !stderr.contains(raw),
            "raw panic output `{raw}` on stderr:\n{stderr}"
        );
    }
    let e = failed("panics-in-open");
    assert!(
        e.contains("fixture-panics") && e.contains("panicked in Connector::open"),
        "{e}"
    );
    let e = failed("panics-on-page");
    assert!(
        e.contains("panicked in Cursor::on_response") && e.contains("simulated bug while parsing page"),
        "the panic happened on a real response: {e}"
    );
    assert!(
        e.contains("(at ") && e.contains(".rs:"),
        "the one line says where: {e}"
    );

    // Refused libraries that connections name: runtime failures naming the library and why.
    for (name, id, lib) in [("old-abi", "fixture-bad-abi", &bad_abi), ("acme", "acme", &acme)] {
        let e = failed(name);
        assert!(e.contains(&format!("connection `{name}`")), "{e}");
        assert!(e.contains(&format!("connector `{id}` cannot be used")), "{e}");
        assert!(e.contains(&lib.display().to_string()), "names the library: {e}");
        assert!(e.contains("incompatible ABI: plugin ABI version 99"), "{e}");
        assert!(
            e.contains("usersync connectors list") && e.contains("usersync plugins install"),
            "{e}"
        );
        assert!(
            stderr.contains(&format!("connection `{name}`: connector `{id}`")),
            "{stderr}"
        );
    }

    // Garbage: each connection fails with what was wrong, naming the plugin.
    for (name, _, want) in GARBAGE {
        let e = failed(name);
        assert!(e.contains("fixture-garbage"), "{name}: names the plugin: {e}");
        assert!(e.contains(want), "{name}: expected `{want}` in: {e}");
        assert!(
            e.len() < 2000,
            "{name}: a readable message, not a dump ({} bytes)",
            e.len()
        );
    }

    assert_eq!(
        code, 1,
        "failed connections make the run exit 1 (not 2, not a crash)\n{stderr}"
    );

    // The good connection's data is really in the store.
    let (code, out, err) = usersync_async(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "users",
            "list",
            "--connection",
            "okta",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).expect("users list JSON");
    assert_eq!(listed.len() as u64, crate::support::count(okta, "/users/created"));
}

/// A plugin whose second page is garbage after a good first page: the run fails and the users
/// the previous run stored stay exactly as they were (nobody deactivated by a partial read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_page_after_a_good_one_changes_nothing() {
    let emu = crate::support::start_emulator("okta", 3, 1, 5).await;
    let plugins = plugin_dir(&["usersync-fixture-garbage"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Value::from(emu.http_url.clone());
    let run = |mode: &'static str| {
        let config = write_plugin_config(
            dir.path(),
            &[connection_toml(
                "hr",
                "fixture-garbage",
                &[("base_url", base.clone()), ("garbage", Value::from(mode))],
            )],
        );
        let plugins = plugins.path().to_path_buf();
        async move {
            let args = [
                "--config",
                config.to_str().expect("utf-8"),
                "--plugin-dir",
                plugins.to_str().expect("utf-8"),
                "sync",
                "--format",
                "json",
                "--no-progress",
            ];
            let (code, out, err) = usersync_async(&args, &[]).await;
            let r = reports_by_name(&out, &err, code).remove("hr").expect("report");
            let (lc, list, lerr) = usersync_async(
                &[
                    "--config",
                    config.to_str().expect("utf-8"),
                    "users",
                    "list",
                    "--format",
                    "json",
                ],
                &[],
            )
            .await;
            assert_eq!(lc, 0, "{lerr}");
            let mut users: Vec<(String, bool)> = serde_json::from_str::<Vec<Value>>(&list)
                .expect("users list JSON")
                .iter()
                .map(|u| {
                    (
                        u["provider_id"].as_str().expect("provider_id").to_string(),
                        u["active"].as_bool().expect("active"),
                    )
                })
                .collect();
            users.sort();
            (code, r, users)
        }
    };

    let (code, r, before) = run("none").await;
    assert_eq!((code, r["status"].as_str()), (0, Some("applied")), "{r}");
    assert_eq!(crate::support::count(&r, "/users/created"), 3, "{r}");
    let all_active: Vec<(String, bool)> = ["u1", "u2", "u3"].iter().map(|u| (u.to_string(), true)).collect();
    assert_eq!(before, all_active);

    let (code, r, after) = run("second_page_invalid_json").await;
    assert_eq!((code, r["status"].as_str()), (1, Some("failed")), "{r}");
    assert!(errors_of(&r).contains("sent a page the host cannot read"), "{r}");
    assert_eq!(
        crate::support::count(&r, "/requests"),
        2,
        "the good first page was read before the garbage: {r}"
    );
    assert_eq!(after, before, "a partial read changed the store");
}

/// `config check`, `doctor`, `connectors list` and `connectors describe` say the same thing
/// about a connection whose plugin library was refused; a truly unknown id stays a config
/// error (exit 2) and the other connections still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_library_is_reported_alike_by_every_command() {
    let plugins = plugin_dir(&["usersync-fixture-garbage"]);
    let so = std::env::consts::DLL_SUFFIX;
    let acme = plugins.path().join(format!("libusersync_connector_acme{so}"));
    std::fs::copy(artifact("usersync-fixture-bad-abi"), &acme).expect("copy");
    std::fs::set_permissions(&acme, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let dir = tempfile::tempdir().expect("tempdir");
    let pd = plugins.path().to_str().expect("utf-8").to_string();
    let config = write_plugin_config(dir.path(), &[connection_toml("hr", "acme", &[])]);
    let cfg = config.to_str().expect("utf-8").to_string();
    let with = |args: &[&str]| -> Vec<String> {
        ["--config", &cfg, "--plugin-dir", &pd]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    };
    let call = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        usersync_async(&refs, &[]).await
    };
    let says_why = |text: &str| {
        assert!(text.contains("connector `acme` cannot be used"), "{text}");
        assert!(text.contains(&acme.display().to_string()), "{text}");
        assert!(text.contains("incompatible ABI: plugin ABI version 99"), "{text}");
        assert!(text.contains("usersync plugins install"), "{text}");
    };

    // config check: the file is fine, the host cannot load the connector: exit 1.
    let (code, out, err) = call(with(&["config", "check", "--format", "json"])).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["ok"], false);
    let msg = v["errors"][0]["message"].as_str().expect("message").to_string();
    says_why(&msg);
    assert_eq!(v["errors"][0]["connection"], "hr");

    // doctor: a failed `plugin` step, nothing contacted: exit 1.
    let (code, out, err) = call(with(&["doctor", "--format", "json"])).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let check = &v[0]["checks"][0];
    assert_eq!(check["step"], "plugin", "{v}");
    assert_eq!(check["status"], "fail", "{v}");
    says_why(check["detail"].as_str().expect("detail"));

    // sync: the connection fails at run time: exit 1.
    let (code, out, err) = call(with(&["sync", "--format", "json", "--no-progress"])).await;
    assert_eq!(code, 1, "{out}{err}");
    let r = reports_by_name(&out, &err, code).remove("hr").expect("report");
    assert_eq!(r["status"], "failed");
    says_why(&errors_of(&r));

    // connectors list names the refused library; describe explains the id.
    let (code, out, err) = call(with(&["connectors", "list", "--format", "json"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<Vec<Value>>(&out).is_ok(),
        "stdout stays JSON: {out}"
    );
    assert!(
        err.contains("1 plugin library was refused") && err.contains(&acme.display().to_string()),
        "{err}"
    );
    let (code, _, err) = call(with(&["connectors", "describe", "acme"])).await;
    assert_ne!(code, 0);
    says_why(&err);

    // A typo next to it: a config error (exit 2) that points at the refused library too; the
    // refused connection is still reported on its own, and a good connection still syncs.
    let emu = crate::support::start_emulator("okta", 2, 1, 3).await;
    let config = write_plugin_config(
        dir.path(),
        &[
            connection_toml("hr", "acme", &[]),
            connection_toml("crm", "acmee", &[]),
            connection_toml(
                "good",
                "fixture-garbage",
                &[
                    ("base_url", Value::from(emu.http_url.clone())),
                    ("garbage", "none".into()),
                ],
            ),
        ],
    );
    assert_eq!(config.to_str(), Some(cfg.as_str()));
    let (code, out, err) = call(with(&["config", "check", "--format", "json"])).await;
    assert_eq!(code, 2, "{out}{err}");
    let (code, out, err) = call(with(&["sync", "--format", "json", "--no-progress"])).await;
    assert_eq!(code, 2, "{out}{err}");
    let reports = reports_by_name(&out, &err, code);
    says_why(&errors_of(&reports["hr"]));
    let typo = errors_of(&reports["crm"]);
    assert!(typo.contains("unknown connector `acmee`"), "{typo}");
    assert!(typo.contains("1 plugin library was refused"), "{typo}");
    assert_eq!(reports["good"]["status"], "applied", "{out}");
    assert_eq!(crate::support::count(&reports["good"], "/users/created"), 3);
}

/// Every kind of refusal fails the connection that names the refused library (exit 1, naming
/// the library and the reason). The library is matched by the id in its manifest when that was
/// read (an invalid manifest), else by its file name.
#[test]
fn every_kind_of_refused_library_fails_the_connection_that_names_it() {
    let so = std::env::consts::DLL_SUFFIX;
    // (package, file name in the plugin dir, file mode, connector id, environment, expected reason)
    type Case<'a> = (&'a str, String, u32, &'a str, (&'a str, &'a str), &'a str);
    let cases: &[Case<'_>] = &[
        (
            "usersync-fixture-garbage",
            format!("libusersync_fixture_garbage{so}"),
            0o644,
            "fixture-garbage",
            ("USERSYNC_FIXTURE_GARBAGE_MANIFEST", "invalid"),
            "invalid manifest: endpoint `http://garbage.test/garbage/users` is not an https",
        ),
        (
            "usersync-fixture-garbage",
            // renamed: the manifest's id is what matches, not the file name
            format!("libsomething_else{so}"),
            0o644,
            "fixture-garbage",
            ("USERSYNC_FIXTURE_GARBAGE_MANIFEST", "invalid"),
            "invalid manifest",
        ),
        (
            "usersync-fixture-garbage",
            format!("libusersync_fixture_garbage{so}"),
            0o644,
            "fixture-garbage",
            ("USERSYNC_FIXTURE_GARBAGE_MANIFEST", "unreadable"),
            "sent a manifest the host cannot read",
        ),
        (
            "usersync-fixture-garbage",
            format!("libusersync_fixture_garbage{so}"),
            0o666,
            "fixture-garbage",
            ("UNUSED", ""),
            "is writable by group and others (mode 0666)",
        ),
        (
            "usersync-fixture-panics",
            format!("libusersync_fixture_panics{so}"),
            0o644,
            "fixture-panics",
            ("USERSYNC_FIXTURE_PANIC_ON_LOAD", "1"),
            "failed while loading: plugin failure: plugin `usersync-fixture-panics` panicked in new_connector: \
             simulated bug while loading",
        ),
        (
            "usersync-fixture-not-a-plugin",
            format!("libusersync_connector_hr{so}"),
            0o644,
            "hr",
            ("UNUSED", ""),
            "not a usersync plugin",
        ),
        (
            "usersync-fixture-bad-layout",
            format!("libusersync_fixture_bad_layout{so}"),
            0o644,
            "fixture-bad-layout",
            ("UNUSED", ""),
            "but the layouts differ",
        ),
    ];
    for (package, file, mode, id, env, want) in cases {
        let plugins = plugin_dir(&[]);
        let lib = plugins.path().join(file);
        std::fs::copy(artifact(package), &lib).expect("copy");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(*mode)).expect("chmod");
        let dir = tempfile::tempdir().expect("tempdir");
        let options: &[(&str, Value)] = if *id == "fixture-garbage" {
            &[
                ("base_url", Value::String(String::new())),
                ("garbage", Value::String(String::new())),
            ]
        } else {
            &[]
        };
        let config = write_plugin_config(dir.path(), &[connection_toml("conn", id, options)]);
        let home = tempfile::tempdir().expect("tempdir");
        let out = Command::new(usersync_bin())
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "--plugin-dir",
                plugins.path().to_str().expect("utf-8"),
                "sync",
                "--format",
                "json",
                "--no-progress",
            ])
            .current_dir(home.path())
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env(env.0, env.1)
            .env_remove("USERSYNC_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .output()
            .expect("run usersync");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(code, 1, "{file} ({want}): {stdout}\n{stderr}");
        let r = reports_by_name(&stdout, &stderr, code)
            .remove("conn")
            .expect("report");
        let e = errors_of(&r);
        assert_eq!(r["status"], "failed");
        assert!(
            e.contains(&format!("connector `{id}` cannot be used")),
            "{file}: {e}"
        );
        assert!(
            e.contains(&lib.display().to_string()),
            "{file}: names the library: {e}"
        );
        assert!(e.contains(want), "{file}: expected `{want}` in: {e}");
    }
}

/// The host-side checks on plugin requests and pages (scheme, declared origins, sizes, ids) let
/// every real connector through: each of the five, loaded as a plugin (pinned over its built-in)
/// with small pages so that next links are followed, syncs its emulator's organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_connector_syncs_as_a_plugin_through_the_host_checks() {
    let providers = ["okta", "entra", "google", "keycloak", "onelogin"];
    let packages = providers.map(|p| format!("usersync-connector-{p}"));
    let plugins = plugin_dir(&packages.each_ref().map(String::as_str));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut emulators = Vec::new();
    let mut connections = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        let emu = crate::support::start_emulator(p, 25, 3, 40 + i as u64).await;
        let mut conn =
            usersync_bench::Connection::from_emulator_info(&emu.info().await, None).expect("connection");
        if let Some((opt, _)) = usersync_bench::page_size_option(p) {
            conn.set_option(opt, serde_json::json!(10));
        }
        connections.push(conn);
        emulators.push(emu);
    }
    let config =
        usersync_bench::write_config(dir.path(), &connections, "max_retries = 1", "").expect("config");
    let pins: String = providers.iter().map(|p| format!("{p} = \"plugin\"\n")).collect();
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, format!("[plugins.pin]\n{pins}\n{text}")).expect("write config");

    let (code, stdout, stderr) = usersync_async(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "sync",
            "--format",
            "json",
            "--no-progress",
        ],
        &[],
    )
    .await;
    let reports = reports_by_name(&stdout, &stderr, code);
    for p in providers {
        let r = &reports[p];
        assert_eq!(r["status"], "applied", "{p} as a plugin: {r}\n{stderr}");
        assert!(crate::support::count(r, "/users/created") > 0, "{p}: {r}");
        assert!(
            crate::support::count(r, "/requests") > 3,
            "{p} followed next links: {r}"
        );
    }
    assert_eq!(code, 0, "{stderr}");
}
