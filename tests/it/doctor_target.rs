//! `usersync doctor` checks each configured target (issue 19) against the SCIM emulator:
//! reachability, discovery and what it announces, the token (a lookup that needs it), and
//! whether the application allows what the target's configuration needs. A refused token is a
//! failure naming the target; the token itself is never printed.

use usersync_emulator::{start, EmulatorOptions};

use crate::support;

const WRONG: &str = "wrong-token-do-not-print-7f3a";

async fn doctor(token: &str, format: &str) -> (i32, String, String) {
    let emu = start(EmulatorOptions::new("scim"))
        .await
        .expect("start the SCIM emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"store.db\"\n\n[[connections]]\nname = \"okta\"\nconnector = \"okta\"\n\
             [connections.options]\nbase_url = \"https://example.okta.com\"\napi_token = {{ env = \"OKTA_TOKEN\" }}\n\n\
             [targets.app]\nconnector = \"scim\"\n[targets.app.options]\n\
             base_url = \"{}\"\nprofile = \"generic\"\ntoken = {{ env = \"SCIM_TOKEN\" }}\n",
            emu.base_url()
        ),
    )
    .expect("write config");
    let token = if token.is_empty() {
        emu.credentials().api_token.clone()
    } else {
        token.to_string()
    };
    let out = support::usersync_command(&config)
        .args(["doctor", "--target", "app", "--format", format])
        .env("SCIM_TOKEN", &token)
        .env("OKTA_TOKEN", "unused")
        .output()
        .await
        .expect("run usersync doctor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn doctor_passes_a_target_whose_token_is_accepted() {
    let (code, stdout, stderr) = doctor("", "table").await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("target `app` (scim)"), "{stdout}");
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(step))
            .unwrap_or_else(|| panic!("a `{step}` check:\n{stdout}"))
            .to_string()
    };
    assert!(line("tcp").starts_with("  pass"), "{stdout}");
    let discovery = line("discovery");
    assert!(
        discovery.starts_with("  pass")
            && discovery.contains("patch yes")
            && discovery.contains("max results 200")
            && discovery.contains("bulk no"),
        "{discovery}"
    );
    assert!(line("auth").contains("token accepted"), "{stdout}");
    assert!(line("needs").starts_with("  pass"), "{stdout}");
}

#[tokio::test]
async fn doctor_names_the_target_whose_token_is_refused_and_never_prints_the_token() {
    let (code, stdout, stderr) = doctor(WRONG, "table").await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let auth = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("auth"))
        .unwrap_or_else(|| panic!("an auth check:\n{stdout}"));
    assert!(
        auth.starts_with("  FAIL") && auth.contains("token refused"),
        "{auth}"
    );
    assert!(
        stdout.contains("diagnosis: target `app`: token refused (HTTP 401)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[targets.app]"),
        "the fix names the config table: {stdout}"
    );
    assert!(
        !stdout.contains(WRONG) && !stderr.contains(WRONG),
        "the token leaked:\n{stdout}\n{stderr}"
    );

    let (code, json, stderr) = doctor(WRONG, "json").await;
    assert_eq!(code, 1, "{json}\n{stderr}");
    assert!(
        !json.contains(WRONG) && !stderr.contains(WRONG),
        "the token leaked:\n{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let report = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["connection"] == "app"))
        .unwrap_or_else(|| panic!("a report for target app: {v}"));
    assert!(
        report["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["step"] == "auth" && c["status"] == "fail")),
        "{report}"
    );
}
