//! The command line as an administrator meets it (issue 18, items 8-10): read commands that fit
//! the terminal and filter, consistent flags, JSON errors for scripts, completions, man page,
//! `config init`, help without the global options repeated, `connectors endpoints --hosts` from
//! the config in use. Everything through the real binary.

use std::path::{Path, PathBuf};

use serde_json::Value;
use usersync_bench::{write_config, Connection};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = crate::support::usersync_command(config);
    c.args(args).env_remove("COLUMNS");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().await.expect("run usersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(config: &Path, args: &[&str]) -> Out {
    run_env(config, args, &[]).await
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", out.stdout, out.stderr))
}

/// An Okta emulator of `users` users synced into a fresh store: (emulator, dir, config).
async fn synced_okta(users: u32) -> (usersync_emulator::RunningEmulator, tempfile::TempDir, PathBuf) {
    let emu = crate::support::start_emulator("okta", users, 20, 18).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::from_emulator_info(&emu.info().await, None).expect("connection");
    let config = write_config(dir.path(), &[conn], "", "").expect("config");
    let sync = run(&config, &["sync", "--no-progress"]).await;
    assert_eq!(sync.code, 0, "{}\n{}", sync.stdout, sync.stderr);
    (emu, dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_filters_limits_and_fits_the_terminal_with_json_unchanged() {
    let (_emu, _dir, config) = synced_okta(120).await;
    let all = json(&run(&config, &["users", "list", "--format", "json"]).await);
    let all = all.as_array().expect("array").clone();
    assert!(all.len() > 100, "{}", all.len());
    // JSON unchanged: every user, with the stored fields
    for key in ["username", "connection", "provider_id", "active", "email"] {
        assert!(all[0].get(key).is_some(), "`{key}` in {}", all[0]);
    }

    // --limit: N rows, the count complete, how to see more
    let limited = run(&config, &["users", "list", "--limit", "5"]).await;
    assert_eq!(limited.code, 0, "{}", limited.stderr);
    let rows = limited.stdout.lines().filter(|l| l.contains("@")).count();
    assert_eq!(rows, 5, "{}", limited.stdout);
    assert!(
        limited.stdout.contains(&format!("{} user(s)", all.len())),
        "{}",
        limited.stdout
    );
    assert!(limited.stdout.contains("--all"), "{}", limited.stdout);
    // the default is bounded too; --all is everything
    let default = run(&config, &["users", "list"]).await;
    assert!(default.stdout.lines().count() < all.len(), "{}", default.stdout);
    let every = run(&config, &["users", "list", "--all"]).await;
    assert_eq!(
        every.stdout.lines().filter(|l| l.contains("@")).count(),
        all.len()
    );

    // sized to the terminal: no line wider than COLUMNS
    let narrow = run_env(&config, &["users", "list", "--all"], &[("COLUMNS", "80")]).await;
    let widest = narrow
        .stdout
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(widest <= 80, "a line of {widest} characters:\n{}", narrow.stdout);
    assert!(
        narrow.stdout.contains('…'),
        "long cells are cut visibly:\n{}",
        narrow.stdout
    );

    // --status, --search, --columns
    // (a first sync creates active users only: the store has none inactive yet)
    for (status, active) in [("active", true), ("inactive", false)] {
        let want = all.iter().filter(|u| u["active"] == active).count();
        let out = json(
            &run(
                &config,
                &["users", "list", "--status", status, "--format", "json"],
            )
            .await,
        );
        assert_eq!(out.as_array().map(Vec::len), Some(want), "--status {status}");
    }
    let who = all[7]["username"].as_str().expect("username").to_string();
    let out = json(
        &run(
            &config,
            &[
                "users",
                "list",
                "--search",
                &who.to_uppercase(),
                "--format",
                "json",
            ],
        )
        .await,
    );
    assert!(
        out.as_array().is_some_and(|a| !a.is_empty()
            && a.iter()
                .all(|u| u.to_string().to_lowercase().contains(&who.to_lowercase()))),
        "{out}"
    );
    let cols = run(
        &config,
        &["users", "list", "--search", &who, "--columns", "email,state"],
    )
    .await;
    assert!(cols.stdout.starts_with("EMAIL"), "{}", cols.stdout);
    assert!(!cols.stdout.contains("PROVIDER ID"), "{}", cols.stdout);

    // --group: the members of one group (direct and nested), as `groups show` has them
    let groups = json(&run(&config, &["groups", "list", "--format", "json"]).await);
    let g = groups
        .as_array()
        .and_then(|a| a.iter().find(|g| g["transitive_users"].as_u64().unwrap_or(0) > 1))
        .expect("a group with members")
        .clone();
    let name = g["provider_id"].as_str().expect("id");
    let show = json(&run(&config, &["groups", "show", name, "--format", "json"]).await);
    let mut expected: Vec<String> = show["transitive_members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect();
    expected.sort();
    let out = json(&run(&config, &["users", "list", "--group", name, "--format", "json"]).await);
    let mut got: Vec<String> = out
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["provider_id"].as_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    let none = run(&config, &["users", "list", "--group", "no-such-group"]).await;
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr.contains("no group `no-such-group`"),
        "{}",
        none.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_show_lists_each_user_once_and_users_show_names_the_manager() {
    let (_emu, _dir, config) = synced_okta(120).await;
    let groups = json(&run(&config, &["groups", "list", "--format", "json"]).await);
    let g = groups
        .as_array()
        .and_then(|a| a.iter().max_by_key(|g| g["direct_members"].as_u64().unwrap_or(0)))
        .expect("a group")
        .clone();
    let id = g["provider_id"].as_str().expect("id");
    let show = json(&run(&config, &["groups", "show", id, "--format", "json"]).await);
    let direct: Vec<String> = show["direct_members"]
        .as_array()
        .expect("direct")
        .iter()
        .filter(|m| m["type"] == "user")
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!direct.is_empty(), "{show}");
    // JSON unchanged: the transitive list still has every user, direct ones included
    let transitive = show["transitive_members"].as_array().expect("transitive");
    assert!(transitive.iter().any(|m| m["name"] == direct[0].as_str()));

    let table = run(&config, &["groups", "show", id, "--all"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    for name in &direct {
        let lines = table
            .stdout
            .lines()
            .filter(|l| {
                let l = l.trim().trim_end_matches(" (inactive)");
                l == format!("user {name}") || l == name || l.starts_with(&format!("{name} via "))
            })
            .count();
        assert_eq!(lines, 1, "`{name}` listed {lines} times:\n{}", table.stdout);
    }
    let limited = run(&config, &["groups", "show", id, "--limit", "1"]).await;
    assert!(
        limited
            .stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("user "))
            .count()
            <= 1,
        "{}",
        limited.stdout
    );

    // users show: the manager by name, not as JSON
    let users = json(&run(&config, &["users", "list", "--format", "json"]).await);
    let users = users.as_array().expect("array");
    let (u, manager) = users
        .iter()
        .find_map(|u| {
            if u["manager"]["by"] != "id" {
                return None;
            }
            let id = u["manager"]["value"].as_str()?;
            Some((u, users.iter().find(|m| m["provider_id"] == id)?))
        })
        .unwrap_or_else(|| {
            let m: Vec<&Value> = users.iter().map(|u| &u["manager"]).take(10).collect();
            panic!("no user whose manager is in the store: {m:?}")
        });
    let out = run(
        &config,
        &["users", "show", u["provider_id"].as_str().expect("id")],
    )
    .await;
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("manager:"))
        .unwrap_or_else(|| panic!("no manager line:\n{}", out.stdout));
    assert!(!line.contains('{'), "{line}");
    assert!(
        line.contains(manager["username"].as_str().expect("username")),
        "{line} names {manager}"
    );
    // the JSON keeps the stored reference
    let out = json(
        &run(
            &config,
            &[
                "users",
                "show",
                u["provider_id"].as_str().expect("id"),
                "--format",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(out["manager"], u["manager"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_are_the_same_everywhere() {
    let (_emu, _dir, config) = synced_okta(30).await;
    // doctor takes -c like sync, users, groups and runs
    let doctor = run(&config, &["doctor", "-c", "okta"]).await;
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);
    // --connection repeats in the list commands as in sync and doctor
    let users = run(
        &config,
        &["users", "list", "-c", "okta", "-c", "other", "--format", "json"],
    )
    .await;
    assert_eq!(users.code, 0, "{}", users.stderr);
    assert!(json(&users).as_array().is_some_and(|a| a.len() > 10));
    let groups = run(
        &config,
        &["groups", "list", "-c", "okta", "-c", "other", "--format", "json"],
    )
    .await;
    assert_eq!(groups.code, 0, "{}", groups.stderr);
    let none = run(&config, &["users", "list", "-c", "other", "--format", "json"]).await;
    assert_eq!(json(&none).as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_error_is_a_json_object_for_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        "[store]\npath = \"s.db\"\n\n[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n[connections.options\n",
    )
    .expect("write");
    for cmd in [
        &["sync", "--format", "json"][..],
        &["doctor", "--format", "json"][..],
    ] {
        let out = run(&config, cmd).await;
        assert_eq!(out.code, 2, "{cmd:?}: {}", out.stderr);
        let v = json(&out);
        assert_eq!(v["error"]["kind"], "config", "{cmd:?}: {v}");
        assert_eq!(v["error"]["issues"][0]["line"], 7, "{cmd:?}: {v}");
        let m = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            m.contains("line 7") && !m.contains('^') && !m.contains('\n'),
            "{v}"
        );
    }
    // config check --format json: toml's message without the caret snippet, once
    let out = run(&config, &["config", "check", "--format", "json"]).await;
    assert_eq!(out.code, 2);
    let v = json(&out);
    let m = v["errors"][0]["message"].as_str().expect("message");
    assert!(!m.contains('^') && !m.contains('\n') && !m.contains(" | "), "{m}");
    assert!(m.starts_with("TOML parse error at line 7, column 21: "), "{m}");
    assert!(
        !m.contains("usersync.toml"),
        "the file is named in `file`, not again: {m}"
    );
    assert_eq!(v["errors"][0]["line"], 7);
    // a literal secret is refused (docs/operations.md says so)
    std::fs::write(
        &config,
        "[store]\npath = \"s.db\"\n\n[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n\
         [connections.options]\ndomain = \"acme.okta.com\"\napi_token = \"abc\"\n",
    )
    .expect("write");
    let out = run(&config, &["config", "check"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let ops = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"))
        .expect("operations.md");
    assert!(
        !ops.contains("warned about"),
        "docs/operations.md must say literal secrets are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_init_writes_templates_that_pass_config_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unused = dir.path().join("unused.toml");
    for ids in [
        &["okta"][..],
        &["entra"],
        &["google"],
        &["keycloak"],
        &["onelogin"],
        &["okta", "okta", "entra"],
    ] {
        let file = dir.path().join(format!("{}.toml", ids.join("-")));
        let f = file.to_str().expect("utf-8");
        let mut args = vec!["config", "init"];
        args.extend_from_slice(ids);
        args.extend(["--output", f]);
        let out = run(&unused, &args).await;
        assert_eq!(out.code, 0, "{ids:?}: {}", out.stderr);
        let text = std::fs::read_to_string(&file).expect("template");
        assert!(
            text.lines().filter(|l| l.trim_start().starts_with('#')).count() > 5,
            "commented:\n{text}"
        );
        let check = run(&file, &["config", "check", "--format", "json"]).await;
        let v = json(&check);
        assert_eq!(check.code, 0, "{ids:?}: {v}\n{text}");
        assert_eq!(v["connections"].as_array().map(Vec::len), Some(ids.len()), "{v}");
        // never overwritten without --force
        let again = run(&unused, &args).await;
        assert_eq!(again.code, 2, "{}", again.stderr);
        assert!(again.stderr.contains("--force"), "{}", again.stderr);
    }
    let unknown = run(&unused, &["config", "init", "nope", "--output", "-"]).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown connector `nope`"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_man_page_and_short_leaf_help() {
    let none = Path::new("/nonexistent/usersync.toml");
    for (shell, needle) in [
        ("bash", "_usersync"),
        ("zsh", "#compdef usersync"),
        ("fish", "complete -c usersync"),
    ] {
        let out = run(none, &["completions", shell]).await;
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(needle), "{shell}:\n{}", out.stdout);
        assert!(out.stdout.contains("users"), "{shell} completes subcommands");
    }
    let man = run(none, &["man"]).await;
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.contains(".TH usersync 1"), "{}", man.stdout);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(none, &["man", "--dir", dir.path().to_str().expect("utf-8")]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.path().join("usersync-users-list.1").is_file());

    let leaf = run(none, &["users", "list", "--help"]).await;
    assert_eq!(leaf.code, 0, "{}", leaf.stderr);
    assert!(!leaf.stdout.contains("--log-format <"), "{}", leaf.stdout);
    assert!(!leaf.stdout.contains("--plugin-dir <"), "{}", leaf.stdout);
    assert!(
        leaf.stdout.contains("usersync --help"),
        "says where the global options are"
    );
    assert!(leaf.stdout.contains("Examples:"), "{}", leaf.stdout);
    for leaf in [
        &["users", "show"][..],
        &["groups", "list"],
        &["groups", "show"],
        &["doctor"],
        &["config", "init"],
        &["config", "check"],
        &["connectors", "endpoints"],
        &["plugins", "list"],
        &["auth", "login"],
        &["completions"],
        &["sync"],
        &["runs", "list"],
        &["explain", "user"],
    ] {
        let mut args = leaf.to_vec();
        args.push("--help");
        let out = run(none, &args).await;
        assert!(
            out.stdout.contains("Examples:") || out.stdout.contains("Example:"),
            "{leaf:?}:\n{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("--log-format <"),
            "{leaf:?}:\n{}",
            out.stdout
        );
    }
    let root = run(none, &["--help"]).await;
    assert!(root.stdout.contains("--log-format <") && root.stdout.contains("Examples:"));
    // the global options still work after a subcommand
    let out = tokio::process::Command::new(crate::support::usersync_bin())
        .args(["config", "path", "--config", "/x/y.toml"])
        .output()
        .await
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/x/y.toml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_hosts_come_from_the_config_and_plugins_list_speaks_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        "[store]\npath = \"s.db\"\n\n[[connections]]\nname = \"prod\"\nconnector = \"okta\"\n\
         [connections.options]\ndomain = \"acme.okta.com\"\napi_token = { env = \"T\" }\n",
    )
    .expect("write");
    let out = run(&config, &["connectors", "endpoints", "--hosts"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("acme.okta.com:443"), "{}", out.stdout);
    assert!(!out.stdout.contains("{oktaDomain}"), "{}", out.stdout);
    let v = json(
        &run(
            &config,
            &["connectors", "endpoints", "--hosts", "--format", "json"],
        )
        .await,
    );
    assert_eq!(v[0]["connection"], "prod");
    assert_eq!(v[0]["hosts"], serde_json::json!(["acme.okta.com:443"]));
    // without a config: the templates, as docs/endpoints.md has them
    let none = Path::new("/nonexistent/usersync.toml");
    let out = tokio::process::Command::new(crate::support::usersync_bin())
        .args(["connectors", "endpoints", "okta", "--hosts"])
        .current_dir(dir.path().join("..")) // no usersync.toml here
        .env_remove("USERSYNC_CONFIG")
        .env("XDG_CONFIG_HOME", dir.path().join("none"))
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("{oktaDomain}:443"), "{stdout}");
    // or, with a config, when asked for
    let out = run(
        &config,
        &["connectors", "endpoints", "okta", "--hosts", "--templates"],
    )
    .await;
    assert!(out.stdout.contains("{oktaDomain}:443"), "{}", out.stdout);

    let plugins = run(none, &["plugins", "list"]).await;
    assert!(!plugins.stdout.contains("..="), "{}", plugins.stdout);
    assert!(plugins.stdout.contains("ABI version 1"), "{}", plugins.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_says_why_fewer_users_are_created_than_the_organisation_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    let none = Path::new("/nonexistent/usersync.toml");
    let d = dir.path().to_str().expect("utf-8");
    let out = run(
        none,
        &[
            "demo",
            "--provider",
            "okta",
            "--users",
            "60",
            "--groups",
            "5",
            "--dir",
            d,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("60 users"), "{}", out.stdout);
    assert!(
        out.stdout.contains("a first sync creates only the active ones"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_purposes_say_what_an_endpoint_is_for() {
    let none = Path::new("/nonexistent/usersync.toml");
    let out = run(none, &["connectors", "describe", "--all", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let all = json(&out);
    for c in all.as_array().expect("array") {
        for e in c["endpoints"].as_array().expect("endpoints") {
            let purpose = e["purpose"].as_str().unwrap_or_default();
            assert!(!purpose.contains("seed"), "{}: {}: {purpose}", c["id"], e["url"]);
        }
        for o in c["options"].as_array().expect("options") {
            let help = o["help"].as_str().unwrap_or_default();
            assert!(
                !help.contains("seed"),
                "{}: option {}: {help}",
                c["id"],
                o["name"]
            );
        }
    }
    let md = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/endpoints.md"))
        .expect("endpoints.md");
    assert!(!md.contains("seed"), "docs/endpoints.md");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reports_a_plugins_table_mistake_as_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    for (table, names) in [
        ("[plugins.pin]\nokta = \"newest\"\n", "plugins.pin.okta"),
        (
            "[plugins]\ntrusted_key = [\"RWQ\"]\n",
            "unknown key `plugins.trusted_key`",
        ),
    ] {
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"s.db\"\n\n[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n\
                 [connections.options]\ndomain = \"acme.okta.com\"\napi_token = {{ env = \"T\" }}\n\n{table}"
            ),
        )
        .expect("write");
        let out = run(&config, &["config", "check", "--format", "json"]).await;
        assert_eq!(out.code, 2, "{table}: {}\n{}", out.stdout, out.stderr);
        let v = json(&out);
        let e = &v["errors"][0];
        assert!(e["message"].as_str().is_some_and(|m| m.contains(names)), "{v}");
        assert_eq!(e["line"], 11, "{v}");
    }
}
