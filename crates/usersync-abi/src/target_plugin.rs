//! Plugin side of the target half: wraps a connector's [`usersync_sdk::Target`] into the FFI
//! traits of [`crate::target_ffi`]. Every entry point runs inside [`guard`]: a panic becomes
//! [`ConnectorError::Plugin`] naming the plugin and the call, and the session (or listing) it
//! happened in refuses every later call, since its state is unknown.

use std::sync::{Arc, Mutex, PoisonError};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, RNone, ROk, ROption, RSome, RStr, RString, RVec},
};
use usersync_sdk::{
    Connector, ConnectorError, Lookup, ObjectKind, Options, Target, TargetChange, TargetListing,
    TargetSession,
};

use crate::convert::{request_to_ffi, response_from_ffi};
use crate::ffi::{FfiHttpRequest, FfiHttpResponse, FfiResult};
use crate::plugin::{error_to_json, from_json, guard, guard_panicked, to_json};
use crate::target_ffi::{
    FfiTarget, FfiTargetBox, FfiTargetListing, FfiTargetListingBox, FfiTargetListing_TO, FfiTargetSession,
    FfiTargetSessionBox, FfiTargetSession_TO, FfiTarget_TO, TargetMod, TargetModRef,
};

/// The connector, kept whole: its target half is borrowed from it on every call.
struct PluginTarget {
    label: Arc<str>,
    connector: Box<dyn Connector>,
}

impl PluginTarget {
    fn target(&self) -> Result<&dyn Target, ConnectorError> {
        self.connector.target().ok_or_else(|| ConnectorError::Plugin {
            detail: format!("plugin `{}` no longer offers a target", self.label),
        })
    }
}

impl FfiTarget for PluginTarget {
    fn manifest_json(&self) -> FfiResult<RString> {
        guard(&self.label, "Target::manifest", || {
            to_json("the target manifest", &self.target()?.manifest())
        })
    }

    fn open(&self, options_json: RString) -> FfiResult<FfiTargetSessionBox> {
        guard(&self.label, "Target::open", || {
            let options: Options = from_json("options", &options_json)?;
            let inner = self.target()?.open(&options)?;
            Ok(FfiTargetSession_TO::from_value(
                PluginTargetSession {
                    label: self.label.clone(),
                    inner,
                    broken: Mutex::new(None),
                },
                TD_Opaque,
            ))
        })
    }
}

struct PluginTargetSession {
    label: Arc<str>,
    inner: Box<dyn TargetSession>,
    /// Set after a panic: the session's state is unknown, every later call fails with this.
    broken: Mutex<Option<RString>>,
}

impl PluginTargetSession {
    /// Run one call: refused when the session is broken; a panic breaks it.
    fn call<T>(
        &self,
        call: &str,
        f: impl FnOnce(&dyn TargetSession) -> Result<T, ConnectorError>,
    ) -> FfiResult<T> {
        if let Some(e) = self.broken.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return RErr(e);
        }
        let (result, panicked) = guard_panicked(&self.label, call, || f(self.inner.as_ref()));
        self.note_panic(&result, panicked);
        result
    }

    /// After a panic, keep its error (marked) for every later call.
    fn note_panic<T>(&self, result: &FfiResult<T>, panicked: bool) {
        if let (RErr(e), true) = (result, panicked) {
            if let Ok(ConnectorError::Plugin { detail }) = serde_json::from_str::<ConnectorError>(e) {
                let broken = error_to_json(&ConnectorError::Plugin {
                    detail: format!("{detail} (the target session is unusable after this failure)"),
                });
                *self.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(broken);
            }
        }
    }
}

fn requests_to_ffi(requests: Vec<usersync_sdk::HttpRequest>) -> RVec<FfiHttpRequest> {
    requests.iter().map(request_to_ffi).collect()
}

impl FfiTargetSession for PluginTargetSession {
    fn discovery(&self) -> FfiResult<RVec<FfiHttpRequest>> {
        self.call("TargetSession::discovery", |s| Ok(requests_to_ffi(s.discovery())))
    }

    fn configure(&mut self, responses: RVec<FfiHttpResponse>) -> FfiResult<()> {
        if let Some(e) = self.broken.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return RErr(e);
        }
        let inner = &mut self.inner;
        let (result, panicked) = guard_panicked(&self.label, "TargetSession::configure", || {
            let responses = responses
                .into_iter()
                .map(response_from_ffi)
                .collect::<Result<Vec<_>, _>>()?;
            inner.configure(responses)
        });
        self.note_panic(&result, panicked);
        result
    }

    fn capabilities_json(&self) -> FfiResult<RString> {
        self.call("TargetSession::capabilities", |s| {
            to_json("capabilities", &s.capabilities())
        })
    }

    fn lookup_request(&self, lookup_json: RString) -> FfiResult<FfiHttpRequest> {
        self.call("TargetSession::lookup_request", |s| {
            let lookup: Lookup = from_json("a lookup", &lookup_json)?;
            Ok(request_to_ffi(&s.lookup_request(&lookup)?))
        })
    }

    fn on_lookup(&self, lookup_json: RString, response: FfiHttpResponse) -> FfiResult<RString> {
        self.call("TargetSession::on_lookup", |s| {
            let lookup: Lookup = from_json("a lookup", &lookup_json)?;
            let found = s.on_lookup(&lookup, response_from_ffi(response)?)?;
            to_json("app objects", &found)
        })
    }

    fn list(&self, kind_json: RString) -> FfiResult<FfiTargetListingBox> {
        let label = self.label.clone();
        self.call("TargetSession::list", |s| {
            let kind: ObjectKind = from_json("an object kind", &kind_json)?;
            let mut listing = s.list(kind)?;
            let pending = listing.next_request().map(|r| request_to_ffi(&r));
            Ok(FfiTargetListing_TO::from_value(
                PluginListing {
                    label,
                    inner: Mutex::new(listing),
                    pending,
                    poisoned: None,
                },
                TD_Opaque,
            ))
        })
    }

    fn requests(&self, change_json: RString) -> FfiResult<RVec<FfiHttpRequest>> {
        self.call("TargetSession::requests", |s| {
            let change: TargetChange = from_json("a change", &change_json)?;
            Ok(requests_to_ffi(s.requests(&change)?))
        })
    }

    fn on_response(&self, change_json: RString, response: FfiHttpResponse) -> FfiResult<RString> {
        self.call("TargetSession::on_response", |s| {
            let change: TargetChange = from_json("a change", &change_json)?;
            to_json("a result", &s.on_response(&change, response_from_ffi(response)?))
        })
    }
}

struct PluginListing {
    label: Arc<str>,
    // The SDK listing is Send but not Sync; only `&mut self` methods touch it (`get_mut`).
    inner: Mutex<Box<dyn TargetListing>>,
    pending: Option<FfiHttpRequest>,
    poisoned: Option<RString>,
}

impl FfiTargetListing for PluginListing {
    fn pending(&self) -> FfiResult<ROption<FfiHttpRequest>> {
        if let Some(e) = &self.poisoned {
            return RErr(e.clone());
        }
        ROk(self.pending.clone().into())
    }

    fn on_response(&mut self, response: FfiHttpResponse) -> FfiResult<RString> {
        if let Some(e) = &self.poisoned {
            return RErr(e.clone());
        }
        let inner = &mut self.inner;
        let mut next = None;
        let result = guard(&self.label, "TargetListing::on_response", || {
            let listing = inner.get_mut().unwrap_or_else(PoisonError::into_inner);
            let page = listing.on_response(response_from_ffi(response)?)?;
            next = Some(listing.next_request().map(|r| request_to_ffi(&r)));
            to_json("a page of app objects", &page)
        });
        match (&result, next) {
            (ROk(_), Some(next)) => self.pending = next,
            (RErr(e), _) => {
                if let Ok(ConnectorError::Plugin { detail }) = serde_json::from_str::<ConnectorError>(e) {
                    self.poisoned = Some(error_to_json(&ConnectorError::Plugin {
                        detail: format!("{detail} (the listing is unusable after this failure)"),
                    }));
                }
            }
            (ROk(_), None) => {}
        }
        result
    }
}

/// Build the target half behind the plugin's `new_target` entry (used by
/// [`export_connector!`](crate::export_connector)): `None` when the connector has no target.
pub fn new_target(package: &str, make: fn() -> Box<dyn Connector>) -> FfiResult<ROption<FfiTargetBox>> {
    guard(package, "new_target", || {
        let connector = make();
        if connector.target().is_none() {
            return Ok(RNone);
        }
        let m = connector.manifest();
        let label: Arc<str> = Arc::from(format!("{} {} ({package})", m.id, m.version));
        Ok(RSome(FfiTarget_TO::from_value(
            PluginTarget { label, connector },
            TD_Opaque,
        )))
    })
}

/// Build the target root module value (used by [`export_connector!`](crate::export_connector)).
pub fn target_module(
    package: RStr<'static>,
    new_target: extern "C" fn() -> FfiResult<ROption<FfiTargetBox>>,
) -> TargetModRef {
    TargetMod { package, new_target }.leak_into_prefix()
}
