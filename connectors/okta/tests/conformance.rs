//! The connector conformance suite (crates/usersync-conformance) against the okta emulator.

usersync_conformance::emulator_conformance!("okta", usersync_connector_okta::connector());
