//! The stable plugin ABI (abi_stable): root module, export macro, panic guard, loader.
//!
//! abi_stable is confined to this crate. A connector crate becomes a drop-in plugin with one line
//! in its `src/plugin.rs`:
//!
//! ```ignore
//! usersync_abi::export_connector!(crate::connector);
//! ```
//!
//! where `crate::connector` is `fn() -> Box<dyn usersync_sdk::Connector>`. The host loads plugins
//! with [`load_plugin`] and gets an `Arc<dyn Connector>` that behaves exactly like a built-in,
//! target half included (`Connector::target()`, see [`target_ffi`]).
//!
//! What crosses the boundary is defined in [`ffi`]; see docs/architecture.md for the versioning
//! rules.
#![allow(non_local_definitions)] // sabi_trait codegen trips this rustc lint

pub mod convert;
pub mod elf;
pub mod ffi;
pub mod host;
pub mod plugin;
pub mod sanity;
pub mod target_ffi;
mod target_host;
pub mod target_plugin;

pub use ffi::{PluginMod, PluginModRef, ROOT_MODULE_NAME, ROOT_MODULE_VERSION};
pub use host::{
    load_plugin, summarize_layout_report, LoadError, LoadedPlugin, ACCEPTED_ABI_MAX, ACCEPTED_ABI_MIN,
};

/// Implementation details of [`export_connector!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult};
    pub use abi_stable::std_types::{ROption, RStr};
}

/// Every plugin exports its root module header under `PLUGIN_SYMBOL_PREFIX` + its crate name
/// (instead of abi_stable's one fixed symbol name, which would clash when several connector
/// crates are linked into one binary as built-ins). The host finds it in the library's dynamic
/// symbol table.
pub const PLUGIN_SYMBOL_PREFIX: &str = "usersync_plugin_root_";

/// The optional target root module ([`target_ffi::TargetMod`]) is exported under this prefix +
/// the crate name. A library without it has no target half (see [`target_ffi`] for why it is a
/// module of its own).
pub const PLUGIN_TARGET_SYMBOL_PREFIX: &str = "usersync_plugin_target_";

/// Export a connector from a `cdylib` crate as a usersync plugin.
///
/// `$ctor` is a path to `fn() -> Box<dyn usersync_sdk::Connector>`. Expands to the library's
/// two exported symbols: the connector's root module and the target root module (whose
/// `new_target` answers `None` when the connector's `target()` is `None`). Every call into the
/// connector runs inside `catch_unwind`: a panic becomes `ConnectorError::Plugin` naming the
/// plugin and the call.
///
/// Use it once per library, in a crate whose `crate-type` includes `cdylib`.
#[macro_export]
macro_rules! export_connector {
    ($ctor:path) => {
        #[doc(hidden)]
        extern "C" fn __usersync_new_connector() -> $crate::ffi::FfiResult<$crate::ffi::FfiConnectorBox> {
            $crate::plugin::new_connector(env!("CARGO_PKG_NAME"), || $ctor())
        }

        #[doc(hidden)]
        fn __usersync_root_module() -> $crate::PluginModRef {
            $crate::plugin::root_module(
                $crate::__private::RStr::from_str(env!("CARGO_PKG_NAME")),
                $crate::__private::RStr::from_str(env!("CARGO_PKG_VERSION")),
                __usersync_new_connector,
            )
        }

        /// The plugin's root module header. Its symbol name is unique per crate
        /// (`usersync_plugin_root_<crate>`, see `usersync_abi::PLUGIN_SYMBOL_PREFIX`), so several
        /// connector crates can be linked into one host as built-ins without duplicate symbols.
        #[doc(hidden)]
        #[unsafe(export_name = concat!("usersync_plugin_root_", env!("CARGO_CRATE_NAME")))]
        pub static __USERSYNC_PLUGIN_ROOT: $crate::__private::LibHeader = {
            extern "C" fn __sabi_erased_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(__usersync_root_module)
            }
            // SAFETY: the constructor returns the root module of type `PluginModRef`, exactly
            // the type given to `from_constructor`.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::PluginModRef>(
                    __sabi_erased_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };

        #[doc(hidden)]
        extern "C" fn __usersync_new_target(
        ) -> $crate::ffi::FfiResult<$crate::__private::ROption<$crate::target_ffi::FfiTargetBox>> {
            $crate::target_plugin::new_target(env!("CARGO_PKG_NAME"), || $ctor())
        }

        #[doc(hidden)]
        fn __usersync_target_module() -> $crate::target_ffi::TargetModRef {
            $crate::target_plugin::target_module(
                $crate::__private::RStr::from_str(env!("CARGO_PKG_NAME")),
                __usersync_new_target,
            )
        }

        /// The plugin's target root module header (`usersync_plugin_target_<crate>`, see
        /// `usersync_abi::PLUGIN_TARGET_SYMBOL_PREFIX`).
        #[doc(hidden)]
        #[unsafe(export_name = concat!("usersync_plugin_target_", env!("CARGO_CRATE_NAME")))]
        pub static __USERSYNC_PLUGIN_TARGET: $crate::__private::LibHeader = {
            extern "C" fn __sabi_erased_target_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(__usersync_target_module)
            }
            // SAFETY: the constructor returns the root module of type `TargetModRef`, exactly
            // the type given to `from_constructor`.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::target_ffi::TargetModRef>(
                    __sabi_erased_target_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
