//! `usersync config check` and configuration errors in the other commands (issues 17.3, 17.8,
//! 18.1, 18.2): every mistake in one run, by line; the same errors, exit code 2, in `sync` and
//! `doctor`; every TOML example in the docs passes the check.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::usersync_bin;

/// Run `usersync --config <config> <args>` with the given environment; (exit code, stdout, stderr).
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(usersync_bin());
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("USERSYNC_PLUGIN_PATH")
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run usersync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("usersync.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// A config with six different mistakes, one per line, in every section.
const MISTAKES: &str = r#"[runtime]
max_retries = "three"
ca_bundle = "no-such-ca.pem"

[[connections]]
name = "okta-prod"
connector = "okta"
[connections.options]
domian = "acme.okta.com"
api_token = { env = "CFGCHECK_OKTA_TOKEN" }
[connections.policy]
required_groups = ["re:("]
on_user_mising = "delete"
on_group_missing = "remove"
max_removal_percent = 150
"#;

#[test]
fn one_run_reports_every_mistake_in_line_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), MISTAKES);
    let (code, out, err) = run(&config, &["config", "check"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let file = config.display().to_string();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    let want = [
        (2, "option `runtime.max_retries`: invalid type: string \"three\", expected u32"),
        (3, "option `runtime.ca_bundle`: cannot read CA bundle"),
        (9, "connection `okta-prod`: option `domian`: unknown option for connector `okta`; did you mean `domain`?"),
        (12, "connection `okta-prod`: option `policy.required_groups`: invalid regex `(`: unclosed group"),
        (13, "connection `okta-prod`: option `policy.on_user_mising`: unknown key in [policy]; did you mean `on_user_missing`?"),
        (14, "connection `okta-prod`: option `policy.on_group_missing`: unknown variant `remove`"),
        (15, "connection `okta-prod`: option `policy.max_removal_percent`: 150 is out of range: allowed 0 to 100"),
    ];
    assert_eq!(errors.len(), want.len(), "{err}");
    for (got, (line, text)) in errors.iter().zip(want) {
        let prefix = format!("error: {file}:{line}: {text}");
        assert!(got.starts_with(&prefix), "want {prefix}\n got {got}");
    }
    assert!(
        err.contains(&format!(
            "warning: {file}:10: connection `okta-prod`: option `api_token`: environment variable `CFGCHECK_OKTA_TOKEN` is not set here"
        )),
        "{err}"
    );
    assert!(out.contains("7 error(s)"), "{out}");

    // JSON: errors and warnings are objects of the same shape.
    let (code, out, _) = run(&config, &["config", "check", "--format", "json"], &[]);
    assert_eq!(code, 2);
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    let lines: Vec<u64> = j["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [2, 3, 9, 12, 13, 14, 15]);
    assert_eq!(j["errors"][6]["option"], "policy.max_removal_percent");
    assert_eq!(j["errors"][6]["connection"], "okta-prod");
    let w = &j["warnings"][0];
    assert_eq!(
        (w["line"].as_u64(), w["option"].as_str(), w["connection"].as_str()),
        (Some(10), Some("api_token"), Some("okta-prod")),
        "{j}"
    );
}

/// The settings `config check` used to pass and every command rejected, or that a run got wrong.
#[test]
fn config_check_refuses_what_commands_refuse_and_sync_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = "[[connections]]\nname = \"ol\"\nconnector = \"onelogin\"\n[connections.options]\n\
                base_url = \"https://acme.onelogin.com\"\nclient_id = \"c\"\n\
                client_secret = { env = \"CFGCHECK_OL_SECRET\" }\n";
    let env = [("CFGCHECK_OL_SECRET", "s3cr3t")];
    let config = write(dir.path(), good);
    let (code, out, err) = run(&config, &["config", "check"], &env);
    assert_eq!(code, 0, "the base config is fine: {out}{err}");
    let store = dir.path().join("usersync.db");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(String, Env, &str, &str)> = vec![
        (
            format!("{good}[connections.policy]\nmax_removal_percent = 150\n"),
            &env,
            ":9: connection `ol`: option `policy.max_removal_percent`",
            "allowed 0 to 100",
        ),
        (
            format!("{good}[connections.policy]\nmin_source_percent = 500\n"),
            &env,
            ":9: connection `ol`: option `policy.min_source_percent`",
            "allowed 0 to 100",
        ),
        (
            good.to_string(),
            &[("CFGCHECK_OL_SECRET", " \t ")],
            ":7: connection `ol`: option `client_secret`",
            "empty or only whitespace",
        ),
        (
            good.to_string(),
            &[("CFGCHECK_OL_SECRET", "s3cr3t\r\n")],
            ":7: connection `ol`: option `client_secret`",
            "line break",
        ),
        (
            good.replace("https://acme", "ftp://acme"),
            &env,
            ":5: connection `ol`: option `base_url`",
            "ftp",
        ),
        (
            format!("[runtime]\nrequest_timeout_secs = 0\n{good}"),
            &env,
            ":2: option `runtime.request_timeout_secs`",
            "allowed 1 to 86400",
        ),
        (
            format!("{good}[connections.runtime]\nconcurrency = 0\nca_bundle = \"missing.pem\"\n"),
            &env,
            ":9: connection `ol`: option `runtime.concurrency`",
            "allowed 1 to 1024",
        ),
        (String::new(), &env, ":1: ", "no [[connections]] are defined"),
    ];
    for (text, env, at, what) in cases {
        let config = write(dir.path(), &text);
        let file = config.display().to_string();
        for cmd in [&["config", "check"][..], &["sync", "--no-progress"], &["doctor"]] {
            let (code, out, err) = run(&config, cmd, env);
            assert_eq!(code, 2, "`{}` on:\n{text}\n{out}{err}", cmd.join(" "));
            // `doctor` reports a connection's configuration error in its table on stdout.
            let all = format!("{err}{out}");
            let line = all
                .lines()
                .find(|l| l.contains(&format!("{file}{at}")))
                .unwrap_or_else(|| panic!("`{}` names {at}:\n{all}", cmd.join(" ")));
            assert!(line.contains(what), "`{}`: {line}", cmd.join(" "));
            assert!(
                !err.contains("s3cr3t") && !out.contains("s3cr3t"),
                "never the secret"
            );
        }
        // Load-time errors stop `sync` before it opens the store; a connection's own errors
        // (its connector's rules, its URLs) stop it before that connection is contacted.
        if !text.contains("ftp://") {
            assert!(!store.exists(), "nothing was synced: {text}");
        }
        let _ = std::fs::remove_file(&store);
    }
}

/// Where an example's file references point (relative to the config), created with plausible
/// content so that the example is checked as if it sat next to its files.
fn create_referenced_files(dir: &Path, block: &str) -> Result<(), String> {
    let doc: toml::Table = toml::from_str(block).map_err(|e| e.to_string())?;
    let mut files: Vec<(String, &'static str)> = Vec::new();
    fn walk(v: &toml::Value, key: &str, files: &mut Vec<(String, &'static str)>) {
        match v {
            toml::Value::Table(t) => {
                if let (1, Some(toml::Value::String(f))) = (t.len(), t.get("file")) {
                    files.push((f.clone(), "secret"));
                }
                for (k, v) in t {
                    walk(v, k, files);
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, key, files)),
            toml::Value::String(s) if key == "ca_bundle" => files.push((s.clone(), "ca")),
            toml::Value::String(s) if key == "credential_file" => files.push((s.clone(), "credential")),
            _ => {}
        }
    }
    walk(&toml::Value::Table(doc), "", &mut files);
    for (f, kind) in files {
        if Path::new(&f).is_absolute() {
            return Err(format!(
                "`{f}` is an absolute path: examples name files relative to the config file"
            ));
        }
        let p = dir.join(&f);
        std::fs::create_dir_all(p.parent().expect("parent")).map_err(|e| e.to_string())?;
        let content = match kind {
            "ca" => "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "credential" => "{\"refresh_token\": \"r\"}\n",
            _ => "example-secret-value\n",
        };
        std::fs::write(&p, content).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every ```toml block of the docs and the README: (file, line, is a fragment, text). A block
/// whose info string is `toml fragment` is a deliberately partial example.
fn toml_blocks(root: &Path) -> Vec<(PathBuf, usize, bool, String)> {
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read docs dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut blocks = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read markdown");
        let mut current: Option<(usize, bool, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start();
            match &mut current {
                None => {
                    if let Some(info) = fence.strip_prefix("```") {
                        let mut words = info.split_whitespace();
                        if words.next() == Some("toml") {
                            current = Some((i + 1, words.any(|w| w == "fragment"), String::new()));
                        }
                    }
                }
                Some((start, fragment, body)) => {
                    if fence.starts_with("```") {
                        blocks.push((f.clone(), *start, *fragment, std::mem::take(body)));
                        current = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_docs_passes_config_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let blocks = toml_blocks(root);
    assert!(
        blocks.iter().filter(|b| !b.2).count() >= 7,
        "the docs' full examples were found: {}",
        blocks.len()
    );
    let mut failures = Vec::new();
    for (file, line, fragment, text) in &blocks {
        let at = format!("{}:{line}", file.strip_prefix(root).unwrap_or(file).display());
        if let Err(e) = toml::from_str::<toml::Table>(text) {
            failures.push(format!("{at}: not TOML: {e}"));
            continue;
        }
        if *fragment {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        if let Err(e) = create_referenced_files(dir.path(), text) {
            failures.push(format!("{at}: {e}"));
            continue;
        }
        let config = write(dir.path(), text);
        let (code, out, err) = run(&config, &["config", "check"], &[]);
        if code != 0 {
            failures.push(format!("{at}: `config check` exit {code}:\n{out}{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// docs/configuration.md shows `config check` on an example file: the output shown is the
/// binary's, line for line.
#[test]
fn the_sample_output_in_the_configuration_reference_is_what_the_binary_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).expect("read doc");
    let section = &doc[doc.find("## Checking the file").expect("section")..];
    let between = |text: &str, start: &str| -> String {
        let from = text.find(start).expect("block start") + start.len();
        text[from..from + text[from..].find("```\n").expect("block end")].to_string()
    };
    let example = between(section, "```toml fragment\n");
    let shown = between(section, "```console\n$ usersync config check\n");
    let shown = shown.split("$ echo $?\n").collect::<Vec<_>>();
    assert_eq!(
        shown.get(1).map(|s| s.trim()),
        Some("2"),
        "the doc shows the exit code"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &example);
    let out = Command::new(usersync_bin())
        .current_dir(dir.path())
        .args(["config", "check"])
        .env_remove("USERSYNC_CONFIG")
        .env_remove("OKTA_API_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        shown[0], printed,
        "docs/configuration.md shows what the binary prints"
    );
}

/// An authorization-code connection runs on the refresh token `auth login` stores: `config
/// check` says so before a run fails on it.
#[test]
fn a_missing_refresh_token_file_is_reported_with_the_login_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "[[connections]]\nname = \"gws\"\nconnector = \"google\"\n[connections.options]\n\
         auth_flow = \"authorization_code\"\nclient_id = \"1234-abc.apps.googleusercontent.com\"\n\
         client_secret = { env = \"CFGCHECK_G_SECRET\" }\n",
    );
    let env = [("CFGCHECK_G_SECRET", "x")];
    let (code, out, err) = run(&config, &["config", "check"], &env);
    assert_eq!(code, 2, "{out}{err}");
    let want = format!(
        "error: {}:3: connection `gws`: option `runtime.credential_file`: no refresh token at `{}` yet: \
         run `usersync auth login gws`",
        config.display(),
        dir.path().join("credentials/gws.json").display()
    );
    assert!(err.contains(&want), "want {want}\n{err}");
    std::fs::create_dir(dir.path().join("credentials")).expect("mkdir");
    std::fs::write(dir.path().join("credentials/gws.json"), "{}").expect("write");
    let (code, out, err) = run(&config, &["config", "check"], &env);
    assert_eq!(code, 0, "{out}{err}");
}

/// A syntax error stops the check (nothing else can be read) and is named once, by line.
#[test]
fn a_syntax_error_is_named_once_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "[[connections]]\nname = \"a\"\nconnector = okta\n");
    let (code, out, err) = run(&config, &["config", "check"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let want = format!(
        "error: {}:3: TOML parse error at line 3, column 13",
        config.display()
    );
    assert!(err.starts_with(&want), "want {want}\n{err}");
    assert_eq!(err.matches(&config.display().to_string()).count(), 1, "{err}");
}
