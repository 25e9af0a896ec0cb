//! The connector conformance suite (crates/usersync-conformance) against the keycloak emulator.

usersync_conformance::emulator_conformance!("keycloak", usersync_connector_keycloak::connector());
