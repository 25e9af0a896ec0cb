//! The types that cross the plugin boundary. Everything here is `#[repr(C)]` + `StableAbi`, so
//! abi_stable checks the whole type graph when a plugin is loaded.
//!
//! Rules (see docs/architecture.md): the SDK's own types cross as JSON text (manifest, options,
//! query, auth plan, batch, errors) so that they can evolve with serde defaults; HTTP requests and
//! responses cross as StableAbi mirrors (bodies as bytes). Only ever **append** methods to the
//! traits below (after the method marked `last_prefix_field`) and fields to [`PluginMod`].

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// The result of a call across the boundary: `Ok` value, or a `ConnectorError` as JSON text.
pub type FfiResult<T> = RResult<T, RString>;

/// Headers as ordered name/value pairs (a repeated header appears several times).
pub type FfiHeaders = RVec<Tuple2<RString, RString>>;

/// StableAbi mirror of [`usersync_sdk::HttpRequest`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiHttpRequest {
    /// Method as written on the wire (`GET`, `POST`).
    pub method: RString,
    /// Absolute URL.
    pub url: RString,
    /// Headers, in order.
    pub headers: FfiHeaders,
    /// Body, if any.
    pub body: ROption<RVec<u8>>,
}

/// StableAbi mirror of [`usersync_sdk::HttpResponse`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiHttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: FfiHeaders,
    /// Body bytes.
    pub body: RVec<u8>,
}

/// A connector inside a plugin (mirror of [`usersync_sdk::Connector`]).
#[sabi_trait]
pub trait FfiConnector: Send + Sync {
    /// The manifest as JSON.
    fn manifest_json(&self) -> FfiResult<RString>;

    /// Open a session from options given as JSON.
    #[sabi(last_prefix_field)]
    fn open(&self, options_json: RString) -> FfiResult<FfiSessionBox>;
}

/// A session inside a plugin (mirror of [`usersync_sdk::Session`]).
#[sabi_trait]
pub trait FfiSession: Send + Sync {
    /// The auth plan as JSON.
    fn auth_plan_json(&self) -> FfiResult<RString>;

    /// The base URLs as a JSON array of strings.
    fn base_urls_json(&self) -> FfiResult<RString>;

    /// Start a query given as JSON.
    fn query(&self, query_json: RString) -> FfiResult<FfiCursorBox>;

    /// The provider's reading of a failed token response (`Session::token_error`), as the JSON of
    /// an optional `ConnectorError` (`null`: use the host's generic OAuth2 mapping).
    #[sabi(last_prefix_field)]
    fn token_error_json(&self, response: FfiHttpResponse) -> FfiResult<RString>;
}

/// A cursor inside a plugin (mirror of [`usersync_sdk::Cursor`]).
///
/// The plugin computes the next request eagerly (when the cursor is created and after each
/// response), so a panic in the connector's `next_request` surfaces as an error of the call that
/// caused it instead of a silently truncated listing.
#[sabi_trait]
pub trait FfiCursor: Send + Sync {
    /// The request to send next, or `None` when the query is complete.
    fn pending(&self) -> FfiResult<ROption<FfiHttpRequest>>;

    /// Feed the response to the pending request; returns the page (a `Batch`) as JSON.
    #[sabi(last_prefix_field)]
    fn on_response(&mut self, response: FfiHttpResponse) -> FfiResult<RString>;
}

/// An owned connector trait object.
pub type FfiConnectorBox = FfiConnector_TO<'static, RBox<()>>;
/// An owned session trait object.
pub type FfiSessionBox = FfiSession_TO<'static, RBox<()>>;
/// An owned cursor trait object.
pub type FfiCursorBox = FfiCursor_TO<'static, RBox<()>>;

/// The plugin's root module: what the host finds behind the library's single exported symbol.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The usersync ABI version the plugin was built for (`usersync_sdk::ABI_VERSION`).
    pub abi_version: u32,
    /// The plugin crate's package name, used to name the plugin in errors before its manifest
    /// is known.
    pub package: RStr<'static>,
    /// The plugin crate's package version.
    pub package_version: RStr<'static>,
    /// Build the connector.
    #[sabi(last_prefix_field)]
    pub new_connector: extern "C" fn() -> FfiResult<FfiConnectorBox>,
}

/// abi_stable's name for the usersync root module; a library exporting another root module is
/// "not a usersync plugin".
pub const ROOT_MODULE_NAME: &str = "usersync_connector";

/// The root module's version string: `1.<ABI_VERSION>.0`. abi_stable only requires the major
/// (always 1) to match; the host checks the minor against its accepted ABI range itself, so that
/// a refusal can say which versions it accepts.
pub const ROOT_MODULE_VERSION: &str = "1.1.0";

const fn minor_of(v: &str) -> u32 {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] != b'.' {
        i += 1;
    }
    i += 1;
    let mut n = 0u32;
    while i < b.len() && b[i] != b'.' {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const _: () = assert!(
    minor_of(ROOT_MODULE_VERSION) == usersync_sdk::ABI_VERSION,
    "ROOT_MODULE_VERSION must be 1.<usersync_sdk::ABI_VERSION>.0"
);

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "usersync_connector";
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ROOT_MODULE_VERSION);
}

/// Parse the ABI version out of a root module version string (`1.<abi>.0`).
pub fn abi_version_of(version: &str) -> Option<u32> {
    let mut parts = version.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    if major != "1" {
        return None;
    }
    minor.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn trait_objects_are_send_sync_and_the_version_parses() {
        send_sync_static::<FfiConnectorBox>();
        send_sync_static::<FfiSessionBox>();
        send_sync_static::<FfiCursorBox>();
        assert_eq!(
            abi_version_of(ROOT_MODULE_VERSION),
            Some(usersync_sdk::ABI_VERSION)
        );
        assert_eq!(abi_version_of("1.99.0"), Some(99));
        assert_eq!(abi_version_of("0.1.0"), None);
        assert_eq!(abi_version_of("garbage"), None);
    }
}
