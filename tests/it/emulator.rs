//! Integration tests: emulator. `usersync emulator` end to end (the JSON line, serving, Ctrl-C) and
//! the registry's behaviour for every provider id. Fidelity and fault tests of the Okta facade live
//! in crates/usersync-emulator/tests/.

use std::io::BufRead;
use std::process::{Command, Stdio};

use crate::support::usersync_bin;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn emulator_command_prints_one_json_line_and_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Child(
        Command::new(usersync_bin())
            .args([
                "emulator",
                "--provider",
                "okta",
                "--users",
                "120",
                "--groups",
                "8",
                "--seed",
                "3",
                "--tls",
            ])
            .arg("--state-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn usersync emulator"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the JSON line");
    let info: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(info["provider"], "okta");
    assert_eq!(info["org"]["users"], 120);
    let https = info["https_url"].as_str().expect("https_url");
    let http = info["http_url"].as_str().expect("http_url");
    let ca = std::fs::read(info["ca_path"].as_str().expect("ca_path")).expect("CA file written");
    let token = info["credentials"]["api_token"]
        .as_str()
        .expect("api_token")
        .to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
            .build()
            .expect("client");
        for base in [http, https] {
            let r = client
                .get(format!("{base}/api/v1/users?limit=50"))
                .header("Authorization", format!("SSWS {token}"))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "{base}");
            let users: Vec<serde_json::Value> = r.json().await.expect("json");
            assert_eq!(users.len(), 50);
        }
    });
}

#[test]
fn emulator_command_rejects_an_unknown_provider_and_bad_faults() {
    let out = Command::new(usersync_bin())
        .args(["emulator", "--provider", "nosuch"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown provider `nosuch`"));
    let out = Command::new(usersync_bin())
        .args(["emulator", "--provider", "okta", "--error-rate", "1.5"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error_rate"));
}

#[tokio::test]
async fn registry_knows_every_provider() {
    for p in usersync_emulator::providers::PROVIDERS {
        let f = usersync_emulator::providers::facade(p).expect("registered");
        assert_eq!(f.id(), p);
    }
    assert!(matches!(
        usersync_emulator::providers::facade("nope"),
        Err(usersync_emulator::EmulatorError::UnknownProvider(_))
    ));
}

#[test]
fn demo_syncs_the_okta_emulator_into_a_fresh_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(usersync_bin())
        .args([
            "demo",
            "--provider",
            "okta",
            "--users",
            "150",
            "--groups",
            "12",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run usersync demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("okta "))
        .expect("a summary row for okta");
    assert!(row.contains("150 users") && row.ends_with("synced"), "{row}");
    let config = std::fs::read_to_string(dir.path().join("usersync.toml")).expect("config written");
    assert!(config.contains("connector = \"okta\"") && config.contains("api_token = { file = "));
    assert!(
        !config.contains("00emu"),
        "the secret is in secrets/, not in the config"
    );
    assert!(dir.path().join("usersync.db").exists());
}
