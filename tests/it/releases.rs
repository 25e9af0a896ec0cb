//! Connector releases end to end: a package of each connector is built from the workspace's own
//! plugin library, installed with `usersync plugins install` into a temporary plugin directory,
//! shows as active over the built-in, and works; tampered packages are refused before anything
//! is written; rollback restores the previous version.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{cdylib, usersync_bin};

const CONNECTORS: [&str; 5] = ["entra", "google", "keycloak", "okta", "onelogin"];

/// Build the package of one connector from its debug plugin library (what `cargo xtask package`
/// does with a release build).
fn package(id: &str, out: &Path) -> PathBuf {
    let lib = cdylib(&format!("usersync_connector_{id}"));
    let manifest = usersync_abi::load_plugin(&lib)
        .expect("connector library loads")
        .connector
        .manifest();
    usersync_release::build_package(&lib, &manifest, usersync_release::HOST_TARGET, out).expect("package")
}

struct Env {
    _tmp: tempfile::TempDir,
    plugins: PathBuf,
    config: PathBuf,
    dist: PathBuf,
}

fn env(pins: &[(&str, &str)]) -> Env {
    let tmp = tempfile::tempdir().expect("tmp");
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = tmp.path().join("usersync.toml");
    let mut text = String::from("[plugins.pin]\n");
    for (id, pin) in pins {
        text.push_str(&format!("{id} = \"{pin}\"\n"));
    }
    std::fs::write(&config, text).expect("config");
    let dist = tmp.path().join("dist");
    Env {
        plugins,
        config,
        dist,
        _tmp: tmp,
    }
}

fn usersync(e: &Env, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(usersync_bin())
        .arg("--config")
        .arg(&e.config)
        .arg("--plugin-dir")
        .arg(&e.plugins)
        .args(args)
        .env_remove("USERSYNC_PLUGIN_PATH")
        .env("XDG_DATA_HOME", "/nonexistent")
        .output()
        .expect("run usersync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn active_source(e: &Env, id: &str) -> String {
    let (ok, out, err) = usersync(e, &["plugins", "list", "--format", "json"]);
    assert!(ok, "{err}");
    let entries: Vec<Value> = serde_json::from_str(&out).expect("json");
    entries
        .iter()
        .find(|x| x["id"] == id && x["active"] == true)
        .and_then(|x| x["source"].as_str())
        .unwrap_or("none")
        .to_string()
}

#[test]
fn every_connector_packages_installs_and_becomes_active_over_the_builtin() {
    let pins: Vec<(&str, &str)> = CONNECTORS.iter().map(|c| (*c, "plugin")).collect();
    let e = env(&pins);
    for id in CONNECTORS {
        let pkg = package(id, &e.dist);
        let (ok, out, err) = usersync(&e, &["plugins", "install", pkg.to_str().expect("utf8")]);
        assert!(ok, "install {id}: {out}{err}");
        assert!(out.contains(&format!("installed {id} ")), "{out}");
        let source = active_source(&e, id);
        assert!(
            source.starts_with(e.plugins.to_str().expect("utf8")),
            "{id} active from {source}"
        );
        // it works: the installed plugin describes itself through the host
        let (ok, out, err) = usersync(&e, &["connectors", "describe", id, "--format", "json"]);
        assert!(ok, "{err}");
        let described: Vec<Value> = serde_json::from_str(&out).expect("json");
        assert_eq!(described[0]["id"], id);
        assert!(
            described[0]["source"].as_str().is_some_and(|s| s != "builtin"),
            "{out}"
        );
    }
    let sums = std::fs::read_to_string(e.dist.join("SHA256SUMS")).expect("sums");
    assert_eq!(sums.lines().count(), CONNECTORS.len());
}

#[test]
fn tampered_package_is_refused_and_nothing_is_written() {
    let e = env(&[("onelogin", "plugin")]);
    let pkg = package("onelogin", &e.dist);
    let mut bytes = std::fs::read(&pkg).expect("read");
    let i = bytes.len() / 3;
    bytes[i] ^= 0x20;
    std::fs::write(&pkg, bytes).expect("write");
    let (ok, _out, err) = usersync(&e, &["plugins", "install", pkg.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("checksum mismatch"), "{err}");
    let written: Vec<_> = std::fs::read_dir(&e.plugins).expect("ls").collect();
    assert!(written.is_empty(), "nothing may be written: {written:?}");
    assert_eq!(
        active_source(&e, "onelogin"),
        "none",
        "pinned to a plugin that is not installed"
    );
}

#[test]
fn unsigned_package_is_refused_once_keys_are_trusted() {
    let e = env(&[]);
    let pkg = package("okta", &e.dist);
    let mut cfg = std::fs::read_to_string(&e.config).expect("read");
    cfg = format!(
        "[plugins]\ntrusted_keys = [\"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\"]\n\n{cfg}"
    );
    cfg = cfg.replace("[plugins.pin]\n", "");
    std::fs::write(&e.config, cfg).expect("write");
    let (ok, _out, err) = usersync(&e, &["plugins", "install", pkg.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(err.contains("unsigned packages are refused"), "{err}");
    assert!(std::fs::read_dir(&e.plugins).expect("ls").next().is_none());
}

#[test]
fn rollback_restores_the_previous_install_and_remove_falls_back_to_the_builtin() {
    let e = env(&[("keycloak", "plugin")]);
    let pkg = package("keycloak", &e.dist);
    let p = pkg.to_str().expect("utf8");
    assert!(usersync(&e, &["plugins", "install", p]).0);
    let installed = usersync_release::installed_path(&e.plugins, "keycloak");
    let first = std::fs::read(&installed).expect("read");
    // a second install keeps the first as the previous version
    let (ok, out, _) = usersync(&e, &["plugins", "install", p]);
    assert!(ok && out.contains("previous version kept"), "{out}");
    let prev = usersync_release::previous_path(&e.plugins, "keycloak");
    std::fs::write(&prev, b"marker: the previous version").expect("mark previous");
    let (ok, _, err) = usersync(&e, &["plugins", "rollback", "keycloak"]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(&installed).expect("read"),
        b"marker: the previous version"
    );
    assert_eq!(
        std::fs::read(&prev).expect("read"),
        first,
        "rollback swaps, so it can be undone"
    );
    let (ok, _, err) = usersync(&e, &["plugins", "rollback", "keycloak"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&installed).expect("read"), first);

    let (ok, _, err) = usersync(&e, &["plugins", "remove", "keycloak"]);
    assert!(ok, "{err}");
    assert!(!installed.exists() && !prev.exists());
    let e2 = env(&[]);
    assert_eq!(active_source(&e2, "keycloak"), "builtin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_runs_through_an_installed_plugin_package() {
    let e = env(&[("onelogin", "plugin")]);
    let pkg = package("onelogin", &e.dist);
    let (ok, out, err) = usersync(&e, &["plugins", "install", pkg.to_str().expect("utf8")]);
    assert!(ok, "{out}{err}");
    assert!(active_source(&e, "onelogin").starts_with(e.plugins.to_str().expect("utf8")));

    let mut opts = usersync_emulator::EmulatorOptions::new("onelogin");
    opts.gen = usersync_emulator::GenConfig {
        users: 300,
        groups: 12,
        seed: 4,
        ..usersync_emulator::GenConfig::default()
    };
    let emu = usersync_emulator::start(opts).await.expect("emulator");
    let store = e.config.with_file_name("plugin-sync.db");
    let text = format!(
        "[plugins.pin]\nonelogin = \"plugin\"\n\n[store]\npath = \"{}\"\n\n[[connections]]\nname = \"ol\"\nconnector = \"onelogin\"\n\n\
         [connections.options]\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ env = \"OL_PLUGIN_SECRET\" }}\n",
        store.display(),
        emu.http_url,
        emu.credentials().client_id
    );
    std::fs::write(&e.config, text).expect("config");
    let out = tokio::process::Command::new(usersync_bin())
        .arg("--config")
        .arg(&e.config)
        .arg("--plugin-dir")
        .arg(&e.plugins)
        .args(["sync", "--format", "json", "--no-progress"])
        .env("OL_PLUGIN_SECRET", &emu.credentials().client_secret)
        .env_remove("USERSYNC_PLUGIN_PATH")
        .env("XDG_DATA_HOME", "/nonexistent")
        .output()
        .await
        .expect("sync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = serde_json::from_str(&stdout).expect("json");
    assert_eq!(reports[0]["status"], "applied", "{stdout}");
    assert!(
        reports[0]["users"]["created"].as_u64().is_some_and(|n| n > 100),
        "{stdout}"
    );
}
