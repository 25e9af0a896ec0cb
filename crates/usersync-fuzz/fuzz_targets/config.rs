//! Fuzz target: the configuration parser (TOML, connections, secret references, policy patterns)
//! and the check of each connection's options against its connector's manifest, then opening a
//! session from options that pass. See `src/lib.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usersync_sdk::Connector;

fn connectors() -> &'static [Box<dyn Connector>] {
    static C: OnceLock<Vec<Box<dyn Connector>>> = OnceLock::new();
    C.get_or_init(usersync_fuzz::connectors)
}

fuzz_target!(|data: &[u8]| {
    usersync_fuzz::run_config(connectors(), data);
});
