//! usersync connector for Keycloak.
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O.

mod plugin;

use usersync_sdk::{Capabilities, Connector, ConnectorError, Manifest, Options, Session, ABI_VERSION};

/// The Keycloak connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeycloakConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(KeycloakConnector)
}

impl Connector for KeycloakConnector {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "keycloak".into(),
            name: "Keycloak".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: Vec::new(),
            endpoints: Vec::new(),
            capabilities: Capabilities::default(),
            options: Vec::new(),
            default_concurrency: 4,
        }
    }

    fn open(&self, _options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: "open".into(),
        })
    }
}
