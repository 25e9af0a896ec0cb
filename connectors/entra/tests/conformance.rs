//! The connector conformance suite (crates/usersync-conformance) against the entra emulator.

usersync_conformance::emulator_conformance!("entra", usersync_connector_entra::connector());
