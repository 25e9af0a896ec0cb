//! The connector conformance suite (crates/usersync-conformance) against the onelogin emulator.

usersync_conformance::emulator_conformance!("onelogin", usersync_connector_onelogin::connector());
