//! Load-time validation: every rule of `usersync_config::validate`, through `Config::load`,
//! the one entry point every command uses.

use std::path::{Path, PathBuf};

use usersync_config::{Config, ConfigError, ConfigIssue};

const HEAD: &str = "[[connections]]\nname = \"okta-prod\"\nconnector = \"okta\"\n[connections.options]\ndomain = \"acme.okta.com\"\n";

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("usersync.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// Load `text` from a temp dir; the issues (or a panic when it loads).
fn issues(text: &str) -> Vec<ConfigIssue> {
    let dir = tempfile::tempdir().expect("tempdir");
    issues_in(dir.path(), text)
}

fn issues_in(dir: &Path, text: &str) -> Vec<ConfigIssue> {
    match Config::load(&write(dir, text)) {
        Err(ConfigError::Invalid(i)) => i,
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("expected problems in:\n{text}"),
    }
}

fn one(text: &str) -> ConfigIssue {
    let i = issues(text);
    assert_eq!(i.len(), 1, "{i:#?}");
    i.into_iter().next().expect("one")
}

#[test]
fn out_of_range_gates_are_errors_naming_line_option_and_range() {
    let i = issues(&format!(
        "{HEAD}[connections.policy]\nmax_removal_percent = 150\nmin_source_percent = 500.0\nmax_removals = 3\n"
    ));
    assert_eq!(i.len(), 2, "{i:#?}");
    assert_eq!(
        (i[0].line, i[0].option.as_deref()),
        (7, Some("policy.max_removal_percent"))
    );
    assert_eq!(i[0].connection.as_deref(), Some("okta-prod"));
    assert!(
        i[0].to_string()
            .ends_with("150 is out of range: allowed 0 to 100 (a percentage)"),
        "{}",
        i[0]
    );
    assert_eq!(
        (i[1].line, i[1].option.as_deref()),
        (8, Some("policy.min_source_percent"))
    );
    assert!(i[1].message.contains("allowed 0 to 100"), "{}", i[1]);
    assert!(
        i[0].to_string()
            .contains("usersync.toml:7: connection `okta-prod`"),
        "{}",
        i[0]
    );
    let e = one(&format!("{HEAD}[connections.policy]\nmax_removal_percent = -1\n"));
    assert!(e.message.contains("out of range"), "{e}");
    let e = one(&format!(
        "{HEAD}[connections.policy]\nmax_removal_percent = nan\n"
    ));
    assert!(e.message.contains("out of range"), "{e}");
}

#[test]
fn in_range_gates_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{HEAD}[connections.policy]\nmax_removal_percent = 100\nmin_source_percent = 0\n");
    let c = Config::load(&write(dir.path(), &text)).expect("valid");
    assert_eq!(c.connections[0].policy.max_removal_percent, 100.0);
    assert_eq!(c.connections[0].policy.min_source_percent, 0.0);
}

#[test]
fn zero_timeouts_and_concurrency_are_errors_globally_and_per_connection() {
    let i = issues(&format!(
        "[runtime]\nrequest_timeout_secs = 0\n{HEAD}[connections.runtime]\nconcurrency = 0\nconnect_timeout_secs = 5\n"
    ));
    assert_eq!(i.len(), 2, "{i:#?}");
    assert_eq!(
        (i[0].line, i[0].option.as_deref()),
        (2, Some("runtime.request_timeout_secs"))
    );
    assert!(i[0].connection.is_none());
    assert!(i[0].message.contains("allowed 1 to 86400 (seconds)"), "{}", i[0]);
    assert_eq!(
        (i[1].line, i[1].option.as_deref()),
        (9, Some("runtime.concurrency"))
    );
    assert_eq!(i[1].connection.as_deref(), Some("okta-prod"));
}

#[test]
fn every_mistake_is_reported_in_one_pass_in_line_order() {
    let text = format!(
        "[runtime]\nmax_retries = \"three\"\n{HEAD}[connections.policy]\nrequired_groups = [\"re:(\"]\non_user_mising = \"delete\"\non_group_missing = \"remove\"\n[connections.runtime]\nconcurency = 4\n"
    );
    let i = issues(&text);
    let got: Vec<(usize, &str)> = i
        .iter()
        .map(|i| (i.line, i.option.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "runtime.max_retries"),
            (9, "policy.required_groups"),
            (10, "policy.on_user_mising"),
            (11, "policy.on_group_missing"),
            (13, "runtime.concurency"),
        ],
        "{i:#?}"
    );
    assert!(i[0].message.contains("expected u32"), "{}", i[0]);
    assert!(
        i[1].message.contains("invalid regex `(`: unclosed group"),
        "{}",
        i[1]
    );
    assert!(!i[1].message.contains('\n'), "one line: {}", i[1]);
    assert!(
        i[2].message.contains("did you mean `on_user_missing`?") && !i[2].message.contains("max_removals"),
        "a suggestion, not the list of every key: {}",
        i[2]
    );
    assert!(i[3].message.contains("unknown variant `remove`"), "{}", i[3]);
    assert!(i[4].message.contains("did you mean `concurrency`?"), "{}", i[4]);
}

#[test]
fn misspelt_keys_get_a_suggestion_at_every_level() {
    let text = HEAD.replace(
        "[connections.options]",
        "conector = \"okta\"\n[connections.options]",
    );
    let i = issues(&format!(
        "[stroe]\npath = \"x.db\"\n{text}[connections.policy.group_names]\nprefx = \"okta-\"\n"
    ));
    let msgs: Vec<String> = i.iter().map(|i| i.to_string()).collect();
    assert!(
        msgs[0].contains(":1:") && msgs[0].contains("did you mean `store`?"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains(":6:") && msgs[1].contains("did you mean `connector`?"),
        "{msgs:?}"
    );
    assert!(
        msgs[2].contains(":10:")
            && msgs[2].contains("`policy.group_names.prefx`")
            && msgs[2].contains("did you mean `prefix`?"),
        "{msgs:?}"
    );
    let far = one(&format!("{HEAD}[connections.policy]\nzzzzzzzz = 1\n"));
    assert!(
        far.message
            .contains("none of its 19 keys is close (see docs/configuration.md)"),
        "no close key: where the keys are listed, not all 19 of them: {far}"
    );
}

#[test]
fn files_named_by_the_config_must_be_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[runtime]\nca_bundle = \"corp-ca.pem\"\n{HEAD}api_token = {{ file = \"secrets/okta-token\" }}\n"
    );
    let i = issues_in(dir.path(), &text);
    assert_eq!(i.len(), 2, "{i:#?}");
    assert_eq!(
        (i[0].line, i[0].option.as_deref()),
        (2, Some("runtime.ca_bundle"))
    );
    assert!(
        i[0].message.contains("corp-ca.pem") && i[0].message.contains("cannot read"),
        "{}",
        i[0]
    );
    assert_eq!((i[1].line, i[1].option.as_deref()), (8, Some("api_token")));
    assert!(i[1].message.contains("secrets/okta-token"), "{}", i[1]);
    // Relative to the config file's directory, not the working directory.
    std::fs::write(dir.path().join("corp-ca.pem"), "not a certificate").expect("w");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/okta-token"), "00abc\n").expect("w");
    let i = issues_in(dir.path(), &text);
    assert_eq!(i.len(), 1, "{i:#?}");
    assert!(
        i[0].message.contains("no `-----BEGIN CERTIFICATE-----` block"),
        "{}",
        i[0]
    );
    std::fs::write(
        dir.path().join("corp-ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .expect("w");
    let c = Config::load(&dir.path().join("usersync.toml")).expect("valid now");
    let conn = &c.connections[0];
    assert_eq!(conn.runtime.ca_bundle, Some(dir.path().join("corp-ca.pem")));
    assert_eq!(
        conn.secrets["api_token"].resolve().expect("secret").expose(),
        "00abc"
    );
}

#[test]
fn unusable_secret_values_are_errors_naming_connection_and_option_never_the_value() {
    // Unique names: tests run in parallel threads of one process.
    std::env::set_var("USERSYNC_CFGTEST_BLANK", "  \t ");
    std::env::set_var("USERSYNC_CFGTEST_CRLF", "s3cr3t-token\r\n");
    let text = format!(
        "{HEAD}api_token = {{ env = \"USERSYNC_CFGTEST_BLANK\" }}\n\n[[connections]]\nname = \"ol\"\nconnector = \"onelogin\"\n[connections.options]\nclient_secret = {{ env = \"USERSYNC_CFGTEST_CRLF\" }}\nclient_id = {{ env = \"USERSYNC_CFGTEST_SURELY_UNSET\" }}\n"
    );
    let i = issues(&text);
    assert_eq!(i.len(), 2, "an unset variable is not a load error: {i:#?}");
    assert_eq!(
        i[0].to_string().split(": ").take(3).collect::<Vec<_>>()[1..],
        ["connection `okta-prod`", "option `api_token`"]
    );
    assert!(i[0].message.contains("empty or only whitespace"), "{}", i[0]);
    assert_eq!(
        (i[1].connection.as_deref(), i[1].option.as_deref()),
        (Some("ol"), Some("client_secret"))
    );
    assert!(i[1].message.contains("line break"), "{}", i[1]);
    assert!(!format!("{i:?}").contains("s3cr3t"), "never the value");
}

#[test]
fn empty_file_and_bad_proxy_are_errors() {
    let e = one("");
    assert!(e.message.contains("no [[connections]]"), "{e}");
    let e = one("# only a comment\n[store]\npath = \"x.db\"\n");
    assert!(e.message.contains("no [[connections]]"), "{e}");
    let e = one(&format!("[runtime]\nproxy = \"ftp://proxy:21\"\n{HEAD}"));
    assert_eq!(e.option.as_deref(), Some("runtime.proxy"));
    assert!(e.message.contains("unsupported proxy scheme `ftp`"), "{e}");
}

#[test]
fn connection_problems_are_collected_too() {
    let i = issues("[[connections]]\nconnector = 3\n[[connections]]\nname = \"a b\"\nconnector = \"okta\"\n");
    let got: Vec<String> = i.iter().map(|i| format!("{}:{}", i.line, i.message)).collect();
    assert_eq!(i.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("1:every [[connections]] needs `name`"),
        "{got:?}"
    );
    assert!(got[1].starts_with("2:must be a string"), "{got:?}");
    assert!(got[2].starts_with("4:a connection name may use only"), "{got:?}");
}

#[test]
fn dotted_keys_and_inline_tables_keep_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{HEAD}runtime.concurrency = 3\npolicy.group_names.prefix = \"x-\"\n");
    let text = text.replace(
        "[connections.options]\ndomain = \"acme.okta.com\"\n",
        "options = { domain = \"acme.okta.com\" }\n",
    );
    let c = Config::load(&write(dir.path(), &text)).expect("valid");
    assert_eq!(c.connections[0].runtime.concurrency, Some(3));
    assert_eq!(c.connections[0].policy.group_names.prefix, "x-");
    assert_eq!(
        c.connections[0].options["domain"],
        serde_json::json!("acme.okta.com")
    );
    let e = one(&text.replace("concurrency = 3", "concurrency = 0"));
    assert_eq!((e.line, e.option.as_deref()), (5, Some("runtime.concurrency")));
}

#[test]
fn files_are_checked_even_when_another_key_of_the_section_is_wrong() {
    let i = issues(&format!(
        "[runtime]\nca_bundle = \"missing.pem\"\nrequest_timeout_secs = 0\nproxy = \"ftp://p:21\"\n{HEAD}"
    ));
    let got: Vec<(usize, Option<&str>)> = i.iter().map(|i| (i.line, i.option.as_deref())).collect();
    assert_eq!(
        got,
        [
            (2, Some("runtime.ca_bundle")),
            (3, Some("runtime.request_timeout_secs")),
            (4, Some("runtime.proxy"))
        ],
        "{i:#?}"
    );
}
