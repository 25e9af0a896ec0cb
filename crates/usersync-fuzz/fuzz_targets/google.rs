//! Fuzz target: the google connector's response parsing (every query, several pages, retries and
//! restarts as the host does them) and its token-endpoint error parsing. See `src/lib.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usersync_sdk::Connector;

fn connector() -> &'static dyn Connector {
    static C: OnceLock<Box<dyn Connector>> = OnceLock::new();
    C.get_or_init(usersync_connector_google::connector).as_ref()
}

fuzz_target!(|data: &[u8]| {
    usersync_fuzz::run_connector("google", connector(), data);
});
