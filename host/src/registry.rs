//! The host's connector registry: built-in connectors (cargo features) and dynamic plugins.
//!
//! The logic lives in the `usersync-registry` crate; this module supplies what only the host
//! knows: which connectors are linked in, the command line, the environment and the config path.

use std::path::PathBuf;
use std::sync::Arc;

use usersync_registry::{default_plugin_dir, plugin_dirs, PluginsSection, RegistryConfig};
use usersync_sdk::Connector;

use crate::GlobalArgs;

#[allow(unused_imports)] // part of the module API for other subcommands
pub use usersync_registry::{Entry, Lookup, Registry, Source};

/// Environment variable with extra plugin directories (colon-separated).
pub const PLUGIN_PATH_ENV: &str = "USERSYNC_PLUGIN_PATH";

/// The config file this invocation uses ([`usersync_config::Config::resolve_path`], the one
/// implementation of the lookup), `None` when there is none.
pub fn config_path(global: &GlobalArgs) -> Option<PathBuf> {
    usersync_config::Config::resolve_path(global.config.as_deref()).ok()
}

/// The config file's `[plugins]` table (none without a config file).
pub fn plugins_section(global: &GlobalArgs) -> Result<PluginsSection, usersync_registry::RegistryError> {
    match config_path(global) {
        Some(p) => PluginsSection::read(&p),
        None => Ok(PluginsSection::default()),
    }
}

/// The registry settings for this invocation (search path, pins).
pub fn registry_config(global: &GlobalArgs) -> anyhow::Result<RegistryConfig> {
    Ok(registry_config_with(global, plugins_section(global)?))
}

/// The registry settings for this invocation with the `[plugins]` table already read.
pub fn registry_config_with(global: &GlobalArgs, section: PluginsSection) -> RegistryConfig {
    let env = std::env::var_os(PLUGIN_PATH_ENV);
    let dirs = plugin_dirs(&global.plugin_dirs, env.as_deref(), default_plugin_dir());
    let mut explicit: std::collections::BTreeSet<PathBuf> = global.plugin_dirs.iter().cloned().collect();
    if let Some(env) = &env {
        explicit.extend(std::env::split_paths(env).filter(|p| !p.as_os_str().is_empty()));
    }
    RegistryConfig {
        plugin_dirs: dirs,
        explicit_dirs: explicit,
        pins: section.pins,
        config_file: config_path(global),
    }
}

/// Build the registry for this invocation. A bad plugin never fails this (it is kept as a
/// refused entry); a malformed `[plugins]` table does.
pub fn load(global: &GlobalArgs) -> anyhow::Result<Registry> {
    Ok(load_with(global, plugins_section(global)?))
}

/// [`load`] with the `[plugins]` table already read (`config check` reports a malformed one as
/// a config error and carries on without pins).
pub fn load_with(global: &GlobalArgs, section: PluginsSection) -> Registry {
    let config = registry_config_with(global, section);
    let registry = Registry::build(builtin_connectors(), &config);
    // Refused libraries are logged by the registry itself (one warning each).
    for w in registry.warnings() {
        tracing::warn!("{w}");
    }
    registry
}

/// Connectors linked into this binary, per enabled cargo feature.
#[allow(clippy::vec_init_then_push)] // each push is behind its own cargo feature
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
    #[cfg(feature = "scim")]
    v.push(Arc::from(usersync_connector_scim::connector()));
    v
}
