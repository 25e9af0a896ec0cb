//! Helpers shared by the integration-test modules.
#![allow(dead_code)]

use std::path::PathBuf;

/// The cargo profile directory holding the built binaries and plugins (`target/debug`).
/// Derived from this test executable's path (`target/debug/deps/it-*`), so it works with any
/// `CARGO_TARGET_DIR`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test executable lives in <target>/<profile>/deps")
}

/// Path of the `usersync` binary built by `cargo build --workspace`.
pub fn usersync_bin() -> PathBuf {
    let p = profile_dir().join("usersync");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before `cargo test` (see README)",
        p.display()
    );
    p
}

/// Path of a cdylib built by `cargo build --workspace`, e.g. `cdylib("usersync_connector_okta")`.
pub fn cdylib(crate_name: &str) -> PathBuf {
    let dir = profile_dir();
    let file = format!("lib{crate_name}.so");
    for candidate in [dir.join(&file), dir.join("deps").join(&file)] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "{file} not found under {}: run `cargo build --workspace` first",
        dir.display()
    );
}
