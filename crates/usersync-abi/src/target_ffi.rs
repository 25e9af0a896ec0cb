//! The target half of the plugin boundary (see [`crate::ffi`] for the source half and the
//! rules). It has its **own** root module, [`TargetMod`], exported under its own symbol
//! (`usersync_plugin_target_<crate>`, [`crate::PLUGIN_TARGET_SYMBOL_PREFIX`]) next to the
//! connector's root module, instead of new fields in [`crate::ffi::PluginMod`] or new methods in
//! [`crate::ffi::FfiConnector`].
//!
//! Why a second module: abi_stable refuses a library whose prefix type (root module or trait
//! vtable) has *fewer* fields than the host's copy, so appending to `PluginMod` or `FfiConnector`
//! would make this host refuse every plugin built before the target half existed. A plugin
//! without the target symbol is simply a connector without a target (`Connector::target()` is
//! `None`). Layout rule: `PluginMod` and the source traits are frozen at ABI 1; a later half
//! (like this one) comes as another optional root module with its own symbol; within
//! [`TargetMod`] and the traits below, only append after the `last_prefix_field` (a newer plugin
//! then loads into an older host; an older plugin into a newer host does not).
//!
//! Same mechanism as the source half: `#[sabi_trait]` objects, the SDK's own types as JSON text
//! (manifest, options, capabilities, lookups, changes, results, app objects, errors), HTTP
//! requests and responses as the StableAbi mirrors of [`crate::ffi`].

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RStr, RString, RVec},
    StableAbi,
};

use crate::ffi::{FfiHttpRequest, FfiHttpResponse, FfiResult};

/// A connector's target half inside a plugin (mirror of [`usersync_sdk::Target`]).
#[sabi_trait]
pub trait FfiTarget: Send + Sync {
    /// The `TargetManifest` as JSON.
    fn manifest_json(&self) -> FfiResult<RString>;

    /// Open a target session from options given as JSON.
    #[sabi(last_prefix_field)]
    fn open(&self, options_json: RString) -> FfiResult<FfiTargetSessionBox>;
}

/// A target session inside a plugin (mirror of [`usersync_sdk::TargetSession`]).
#[sabi_trait]
pub trait FfiTargetSession: Send + Sync {
    /// `TargetSession::discovery`.
    fn discovery(&self) -> FfiResult<RVec<FfiHttpRequest>>;

    /// `TargetSession::configure`.
    fn configure(&mut self, responses: RVec<FfiHttpResponse>) -> FfiResult<()>;

    /// `TargetSession::capabilities`, as JSON.
    fn capabilities_json(&self) -> FfiResult<RString>;

    /// `TargetSession::lookup_request` for a `Lookup` given as JSON.
    fn lookup_request(&self, lookup_json: RString) -> FfiResult<FfiHttpRequest>;

    /// `TargetSession::on_lookup`; the found objects as a JSON array of `AppObject`.
    fn on_lookup(&self, lookup_json: RString, response: FfiHttpResponse) -> FfiResult<RString>;

    /// `TargetSession::list` for an `ObjectKind` given as JSON.
    fn list(&self, kind_json: RString) -> FfiResult<FfiTargetListingBox>;

    /// `TargetSession::requests` for a `TargetChange` given as JSON.
    fn requests(&self, change_json: RString) -> FfiResult<RVec<FfiHttpRequest>>;

    /// `TargetSession::on_response`; the `TargetResult` as JSON. An `Err` (a panic, an
    /// unreadable change) becomes `TargetResult::Protocol` on the host side.
    #[sabi(last_prefix_field)]
    fn on_response(&self, change_json: RString, response: FfiHttpResponse) -> FfiResult<RString>;
}

/// A listing inside a plugin (mirror of [`usersync_sdk::TargetListing`]); the plugin computes
/// the next request eagerly, as [`crate::ffi::FfiCursor`] does.
#[sabi_trait]
pub trait FfiTargetListing: Send + Sync {
    /// The request to send next, or `None` when the listing is complete.
    fn pending(&self) -> FfiResult<ROption<FfiHttpRequest>>;

    /// Feed the response to the pending request; that page's objects as a JSON array.
    #[sabi(last_prefix_field)]
    fn on_response(&mut self, response: FfiHttpResponse) -> FfiResult<RString>;
}

/// An owned target trait object.
pub type FfiTargetBox = FfiTarget_TO<'static, RBox<()>>;
/// An owned target session trait object.
pub type FfiTargetSessionBox = FfiTargetSession_TO<'static, RBox<()>>;
/// An owned target listing trait object.
pub type FfiTargetListingBox = FfiTargetListing_TO<'static, RBox<()>>;

/// The target root module: what the host finds behind `usersync_plugin_target_<crate>`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = TargetModRef)))]
#[sabi(missing_field(panic))]
pub struct TargetMod {
    /// The plugin crate's package name (for errors).
    pub package: RStr<'static>,
    /// Build the connector's target half; `None` when the connector is a source only.
    #[sabi(last_prefix_field)]
    pub new_target: extern "C" fn() -> FfiResult<ROption<FfiTargetBox>>,
}

/// abi_stable's name for the target root module.
pub const TARGET_MODULE_NAME: &str = "usersync_target";

/// The target root module's version string. abi_stable requires the plugin's version to be at
/// least the host's within the same major.
pub const TARGET_MODULE_VERSION: &str = "1.0.0";

impl RootModule for TargetModRef {
    declare_root_module_statics! {TargetModRef}
    const BASE_NAME: &'static str = TARGET_MODULE_NAME;
    const NAME: &'static str = TARGET_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(TARGET_MODULE_VERSION);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn target_trait_objects_are_send_sync() {
        send_sync_static::<FfiTargetBox>();
        send_sync_static::<FfiTargetSessionBox>();
        send_sync_static::<FfiTargetListingBox>();
    }
}
