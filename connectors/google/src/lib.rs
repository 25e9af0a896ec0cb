//! usersync connector for Google Workspace.
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O.

mod plugin;

use usersync_sdk::{Capabilities, Connector, ConnectorError, Manifest, Options, Session, ABI_VERSION};

/// The Google Workspace connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoogleConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(GoogleConnector)
}

impl Connector for GoogleConnector {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "google".into(),
            name: "Google Workspace".into(),
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
