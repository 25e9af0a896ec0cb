//! The connector conformance suite (crates/usersync-conformance) against the google emulator.

usersync_conformance::emulator_conformance!("google", usersync_connector_google::connector());
