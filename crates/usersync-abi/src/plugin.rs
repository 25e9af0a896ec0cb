//! Plugin side: wraps an SDK connector into the FFI traits. Every entry point runs inside
//! [`guard`], so a panic in connector code becomes [`ConnectorError::Plugin`] naming the plugin
//! and the call, instead of abi_stable's `exit(1)` at the FFI boundary.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, ROption, RStr, RString},
};
use serde::{de::DeserializeOwned, Serialize};
use usersync_sdk::{Connector, ConnectorError, Cursor, Options, Query, Session, ABI_VERSION};

use crate::convert::{request_to_ffi, response_from_ffi};
use crate::ffi::{
    FfiConnector, FfiConnectorBox, FfiConnector_TO, FfiCursor, FfiCursorBox, FfiCursor_TO, FfiHttpRequest,
    FfiHttpResponse, FfiResult, FfiSession, FfiSessionBox, FfiSession_TO, PluginMod, PluginModRef,
};

/// Run `f`, turning a panic into [`ConnectorError::Plugin`] naming `plugin` and `call`, and the
/// error into its JSON form for the boundary.
pub fn guard<T>(plugin: &str, call: &str, f: impl FnOnce() -> Result<T, ConnectorError>) -> FfiResult<T> {
    guard_panicked(plugin, call, f).0
}

/// [`guard`], also saying whether `f` panicked (the caller's state is then unknown).
pub fn guard_panicked<T>(
    plugin: &str,
    call: &str,
    f: impl FnOnce() -> Result<T, ConnectorError>,
) -> (FfiResult<T>, bool) {
    quiet_panics();
    let outer = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(outer));
    match result {
        Ok(Ok(v)) => (ROk(v), false),
        Ok(Err(e)) => (RErr(error_to_json(&e)), false),
        Err(payload) => {
            let at = PANIC_LOCATION
                .with(|l| l.borrow_mut().take())
                .map(|l| format!(" (at {l})"))
                .unwrap_or_default();
            let e = ConnectorError::Plugin {
                detail: format!(
                    "plugin `{plugin}` panicked in {call}: {}{at}",
                    panic_message(payload.as_ref())
                ),
            };
            (RErr(error_to_json(&e)), true)
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened, for [`guard`]'s one-line report.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// True while this thread runs inside [`guard`].
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A plugin links its own copy of `std`, with its own panic hook: the default one prints
/// `thread '<unnamed>' panicked at ...` and a backtrace note to the host's stderr before [`guard`]
/// turns the panic into one error line. Wrap it (once per copy of `std`) with a hook that, inside
/// a guarded call, keeps the location for that line and prints nothing; panics anywhere else
/// (a host bug, when the same code is linked into the host) still reach the previous hook.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(|g| g.get()) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// A `ConnectorError` as JSON text (never fails: falls back to a plain `plugin` error).
pub fn error_to_json(e: &ConnectorError) -> RString {
    serde_json::to_string(e)
        .unwrap_or_else(|_| {
            r#"{"kind":"plugin","detail":"the plugin could not serialise its error"}"#.to_string()
        })
        .into()
}

pub(crate) fn to_json<T: Serialize>(what: &str, v: &T) -> Result<RString, ConnectorError> {
    serde_json::to_string(v)
        .map(RString::from)
        .map_err(|e| ConnectorError::Plugin {
            detail: format!("cannot serialise {what}: {e}"),
        })
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(s).map_err(|e| ConnectorError::Plugin {
        detail: format!("host sent {what} the plugin cannot read: {e}"),
    })
}

struct PluginConnector {
    label: Arc<str>,
    inner: Box<dyn Connector>,
}

impl FfiConnector for PluginConnector {
    fn manifest_json(&self) -> FfiResult<RString> {
        guard(&self.label, "Connector::manifest", || {
            to_json("the manifest", &self.inner.manifest())
        })
    }

    fn open(&self, options_json: RString) -> FfiResult<FfiSessionBox> {
        guard(&self.label, "Connector::open", || {
            let options: Options = from_json("options", &options_json)?;
            let session = self.inner.open(&options)?;
            Ok(FfiSession_TO::from_value(
                PluginSession {
                    label: self.label.clone(),
                    inner: session,
                },
                TD_Opaque,
            ))
        })
    }
}

struct PluginSession {
    label: Arc<str>,
    inner: Box<dyn Session>,
}

impl FfiSession for PluginSession {
    fn auth_plan_json(&self) -> FfiResult<RString> {
        guard(&self.label, "Session::auth_plan", || {
            to_json("the auth plan", &self.inner.auth_plan())
        })
    }

    fn base_urls_json(&self) -> FfiResult<RString> {
        guard(&self.label, "Session::base_urls", || {
            to_json("the base URLs", &self.inner.base_urls())
        })
    }

    fn token_error_json(&self, response: FfiHttpResponse) -> FfiResult<RString> {
        guard(&self.label, "Session::token_error", || {
            let response = response_from_ffi(response)?;
            to_json("a token error", &self.inner.token_error(&response))
        })
    }

    fn query(&self, query_json: RString) -> FfiResult<FfiCursorBox> {
        guard(&self.label, "Session::query", || {
            let query: Query = from_json("a query", &query_json)?;
            let mut cursor = self.inner.query(&query)?;
            let pending = cursor.next_request().map(|r| request_to_ffi(&r));
            Ok(FfiCursor_TO::from_value(
                PluginCursor {
                    label: self.label.clone(),
                    inner: Mutex::new(cursor),
                    pending,
                    poisoned: None,
                },
                TD_Opaque,
            ))
        })
    }
}

struct PluginCursor {
    label: Arc<str>,
    // The SDK cursor is Send but not Sync; the FFI cursor is Send + Sync. Only `&mut self`
    // methods touch it (through `get_mut`, no locking).
    inner: Mutex<Box<dyn Cursor>>,
    pending: Option<FfiHttpRequest>,
    poisoned: Option<ConnectorError>,
}

impl FfiCursor for PluginCursor {
    fn pending(&self) -> FfiResult<ROption<FfiHttpRequest>> {
        if let Some(e) = &self.poisoned {
            return RErr(error_to_json(e));
        }
        ROk(self.pending.clone().into())
    }

    fn on_response(&mut self, response: FfiHttpResponse) -> FfiResult<RString> {
        if let Some(e) = &self.poisoned {
            return RErr(error_to_json(e));
        }
        let label = self.label.clone();
        let inner = &mut self.inner;
        let mut next = None;
        let result = guard(&label, "Cursor::on_response", || {
            let cursor = inner.get_mut().unwrap_or_else(|p| p.into_inner());
            let batch = cursor.on_response(response_from_ffi(response)?)?;
            next = Some(cursor.next_request().map(|r| request_to_ffi(&r)));
            to_json("a batch", &batch)
        });
        match (&result, next) {
            (ROk(_), Some(next)) => self.pending = next,
            (RErr(e), _) => {
                // A panic leaves the connector's state unknown: refuse every later call.
                if let Ok(ConnectorError::Plugin { detail }) = serde_json::from_str::<ConnectorError>(e) {
                    self.poisoned = Some(ConnectorError::Plugin {
                        detail: format!("{detail} (the cursor is unusable after this failure)"),
                    });
                }
            }
            (ROk(_), None) => {}
        }
        result
    }
}

/// Build the connector behind the plugin's `new_connector` entry (used by
/// [`export_connector!`](crate::export_connector)).
pub fn new_connector(package: &str, make: fn() -> Box<dyn Connector>) -> FfiResult<FfiConnectorBox> {
    guard(package, "new_connector", || {
        let inner = make();
        let m = inner.manifest();
        let label: Arc<str> = Arc::from(format!("{} {} ({package})", m.id, m.version));
        Ok(FfiConnector_TO::from_value(
            PluginConnector { label, inner },
            TD_Opaque,
        ))
    })
}

/// Build the root module value (used by [`export_connector!`](crate::export_connector)).
pub fn root_module(
    package: RStr<'static>,
    package_version: RStr<'static>,
    new_connector: extern "C" fn() -> FfiResult<FfiConnectorBox>,
) -> PluginModRef {
    PluginMod {
        abi_version: ABI_VERSION,
        package,
        package_version,
        new_connector,
    }
    .leak_into_prefix()
}
