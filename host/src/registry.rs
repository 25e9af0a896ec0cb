//! The host's connector registry: built-in connectors (cargo features) and dynamic plugins.

use std::sync::Arc;

use usersync_sdk::Connector;

use crate::GlobalArgs;

/// Every connector the host can use, by id.
pub struct Registry {
    connectors: Vec<Arc<dyn Connector>>,
}

impl Registry {
    /// The active connector with this id.
    pub fn get(&self, id: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.manifest().id == id).cloned()
    }

    /// All active connectors, sorted by id.
    pub fn all(&self) -> Vec<Arc<dyn Connector>> {
        self.connectors.clone()
    }
}

/// Build the registry for this invocation.
pub fn load(_global: &GlobalArgs) -> anyhow::Result<Registry> {
    Ok(Registry {
        connectors: builtin_connectors(),
    })
}

/// Connectors linked into this binary, per enabled cargo feature.
pub fn builtin_connectors() -> Vec<Arc<dyn Connector>> {
    #[allow(unused_mut)]
    let mut v: Vec<Arc<dyn Connector>> = Vec::new();
    #[cfg(feature = "entra")]
    v.push(Arc::from(usersync_connector_entra::connector()));
    #[cfg(feature = "google")]
    v.push(Arc::from(usersync_connector_google::connector()));
    #[cfg(feature = "keycloak")]
    v.push(Arc::from(usersync_connector_keycloak::connector()));
    #[cfg(feature = "okta")]
    v.push(Arc::from(usersync_connector_okta::connector()));
    #[cfg(feature = "onelogin")]
    v.push(Arc::from(usersync_connector_onelogin::connector()));
    v
}
