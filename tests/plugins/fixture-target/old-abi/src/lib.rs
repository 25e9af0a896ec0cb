//! TEST FIXTURE (not a connector): a plugin as it was built **before** the target half crossed
//! the ABI. It exports only the connector's root module, exactly as `export_connector!` expanded
//! then (the `usersync_plugin_root_<crate>` symbol; no `usersync_plugin_target_<crate>`), so the
//! host must load it, read its source half, and report no target, even though the connector
//! inside has a target half (an old plugin had no way to hand it over).

use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, Capabilities, Connector, ConnectorError, Manifest, Options, Session, Target,
    TargetManifest, TargetSession, ABI_VERSION,
};

/// A connector with a (never exported) target half.
struct OldPlugin;

impl Connector for OldPlugin {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "fixture-old-abi".into(),
            name: "Plugin built before the target half (tests only)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description: "none".into(),
            }],
            endpoints: Vec::new(),
            capabilities: Capabilities::default(),
            options: Vec::new(),
            default_concurrency: 1,
        }
    }

    fn open(&self, _options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: "source".into(),
        })
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(self)
    }
}

impl Target for OldPlugin {
    fn manifest(&self) -> TargetManifest {
        TargetManifest {
            capabilities: Default::default(),
            endpoints: Vec::new(),
        }
    }

    fn open(&self, _options: &Options) -> Result<Box<dyn TargetSession>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: "target".into(),
        })
    }
}

fn connector() -> Box<dyn Connector> {
    Box::new(OldPlugin)
}

// The expansion of `usersync_abi::export_connector!(crate::connector)` at ABI 1.0, before the
// target half: the connector's root module and nothing else.

extern "C" fn __usersync_new_connector() -> usersync_abi::ffi::FfiResult<usersync_abi::ffi::FfiConnectorBox> {
    usersync_abi::plugin::new_connector(env!("CARGO_PKG_NAME"), connector)
}

fn __usersync_root_module() -> usersync_abi::PluginModRef {
    usersync_abi::plugin::root_module(
        usersync_abi::__private::RStr::from_str(env!("CARGO_PKG_NAME")),
        usersync_abi::__private::RStr::from_str(env!("CARGO_PKG_VERSION")),
        __usersync_new_connector,
    )
}

/// The root module header, under the per-crate symbol the host looks for.
#[unsafe(export_name = concat!("usersync_plugin_root_", env!("CARGO_CRATE_NAME")))]
pub static __USERSYNC_PLUGIN_ROOT: usersync_abi::__private::LibHeader = {
    extern "C" fn __sabi_erased_module() -> usersync_abi::__private::RootModuleResult {
        usersync_abi::__private::__call_root_module_loader(__usersync_root_module)
    }
    // SAFETY: the constructor returns the root module of type `PluginModRef`, exactly the type
    // given to `from_constructor`.
    unsafe {
        usersync_abi::__private::LibHeader::from_constructor::<usersync_abi::PluginModRef>(
            __sabi_erased_module,
            usersync_abi::__private::CheckTypeLayout::Yes,
        )
    }
};
