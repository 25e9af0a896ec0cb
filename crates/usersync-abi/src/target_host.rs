//! Host side of the target half: a plugin's [`FfiTargetBox`] seen through the SDK's
//! [`Target`] / [`TargetSession`] / [`TargetListing`] traits, so the push engine cannot tell a
//! plugin target from a built-in one.
//!
//! Everything the plugin hands back is checked before the host uses it ([`crate::sanity`]):
//! requests (origin, size, headers; any HTTP method a target needs), the size of every JSON
//! answer, ids of app objects and of created objects. A request may only go to an origin the
//! configuration gave the session (an `http(s)://` option value) or a fixed host the target
//! manifest declares. A failure in a call that has no error channel in the SDK
//! ([`TargetSession::on_response`]) becomes [`TargetResult::Protocol`], which stops the push
//! before anything destructive.

use std::sync::Arc;

use abi_stable::std_types::{RResult, RString, RVec};
use usersync_sdk::{
    AppObject, ConnectorError, HttpRequest, HttpResponse, Lookup, ObjectKind, Options, Target,
    TargetCapabilities, TargetChange, TargetListing, TargetManifest, TargetResult, TargetSession,
};

use crate::convert::{response_to_ffi, target_request_from_ffi};
use crate::ffi::FfiHttpRequest;
use crate::sanity;
use crate::target_ffi::{FfiTargetBox, FfiTargetListingBox, FfiTargetSessionBox};

/// Most requests one change may turn into (a membership change of 1,000,000 members in chunks
/// of 100 is 10,000 requests).
pub const MAX_REQUESTS_PER_CHANGE: usize = 10_000;

fn error_from_json(label: &str, e: &RString) -> ConnectorError {
    serde_json::from_str::<ConnectorError>(e).unwrap_or_else(|_| ConnectorError::Plugin {
        detail: format!(
            "plugin `{label}` returned an unreadable error: {}",
            e.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    })
}

fn result<T>(label: &str, r: RResult<T, RString>) -> Result<T, ConnectorError> {
    match r {
        RResult::ROk(v) => Ok(v),
        RResult::RErr(e) => Err(error_from_json(label, &e)),
    }
}

fn parse<T: serde::de::DeserializeOwned>(label: &str, what: &str, s: &str) -> Result<T, ConnectorError> {
    sanity::check_page_size(label, s.len())?;
    serde_json::from_str(s).map_err(|e| ConnectorError::Plugin {
        detail: format!("plugin `{label}` sent {what} the host cannot read: {e}"),
    })
}

fn to_json<T: serde::Serialize>(label: &str, what: &str, v: &T) -> Result<RString, ConnectorError> {
    serde_json::to_string(v)
        .map(RString::from)
        .map_err(|e| ConnectorError::Plugin {
            detail: format!("cannot serialise {what} for `{label}`: {e}"),
        })
}

/// A plugin's target half, loaded. Its manifest is read once, at load.
pub(crate) struct HostTarget {
    pub(crate) label: Arc<str>,
    pub(crate) inner: FfiTargetBox,
    pub(crate) manifest: TargetManifest,
}

impl HostTarget {
    /// Build it, reading (and checking the size of) the target manifest.
    pub(crate) fn new(label: Arc<str>, inner: FfiTargetBox) -> Result<HostTarget, ConnectorError> {
        let json = result(&label, inner.manifest_json())?;
        let manifest: TargetManifest = parse(&label, "a target manifest", &json)?;
        Ok(HostTarget {
            label,
            inner,
            manifest,
        })
    }

    /// Origins a session opened with `options` may send requests to.
    fn origins(&self, options: &Options) -> Vec<url::Origin> {
        let configured = options
            .values()
            .values()
            .filter_map(|v| v.as_str())
            .filter(|s| s.starts_with("https://") || s.starts_with("http://"))
            .map(str::to_string);
        let declared = self
            .manifest
            .endpoints
            .iter()
            .filter(|e| !e.url.contains('{'))
            .map(|e| e.url.clone());
        sanity::origins(&configured.chain(declared).collect::<Vec<_>>())
    }
}

impl Target for HostTarget {
    fn manifest(&self) -> TargetManifest {
        self.manifest.clone()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn TargetSession>, ConnectorError> {
        let _span = tracing::debug_span!("plugin_target_open", plugin = %self.label).entered();
        let json = to_json(&self.label, "options", options)?;
        let inner: FfiTargetSessionBox = result(&self.label, self.inner.open(json))?;
        let mut session = HostTargetSession {
            label: self.label.clone(),
            inner,
            origins: Arc::new(self.origins(options)),
            discovery: Vec::new(),
            capabilities: TargetCapabilities::default(),
        };
        session.discovery = session.checked_requests(result(&self.label, session.inner.discovery())?)?;
        session.refresh_capabilities()?;
        Ok(Box::new(session))
    }
}

/// The discovery requests and capabilities are read from the plugin when the session opens (and
/// the capabilities again after `configure`), so the SDK methods without an error channel never
/// have to fail.
struct HostTargetSession {
    label: Arc<str>,
    inner: FfiTargetSessionBox,
    origins: Arc<Vec<url::Origin>>,
    discovery: Vec<HttpRequest>,
    capabilities: TargetCapabilities,
}

impl HostTargetSession {
    fn checked_request(&self, r: FfiHttpRequest) -> Result<HttpRequest, ConnectorError> {
        checked_request(&self.label, &self.origins, r)
    }

    fn checked_requests(&self, rs: RVec<FfiHttpRequest>) -> Result<Vec<HttpRequest>, ConnectorError> {
        if rs.len() > MAX_REQUESTS_PER_CHANGE {
            return Err(ConnectorError::Plugin {
                detail: format!(
                    "plugin `{}` asked for {} requests at once (limit {MAX_REQUESTS_PER_CHANGE})",
                    self.label,
                    rs.len()
                ),
            });
        }
        rs.into_iter().map(|r| self.checked_request(r)).collect()
    }

    fn refresh_capabilities(&mut self) -> Result<(), ConnectorError> {
        let json = result(&self.label, self.inner.capabilities_json())?;
        self.capabilities = parse(&self.label, "capabilities", &json)?;
        Ok(())
    }

    fn lookup_json(&self, lookup: &Lookup) -> Result<RString, ConnectorError> {
        to_json(&self.label, "a lookup", lookup)
    }

    fn result_of(
        &self,
        change: &TargetChange,
        response: HttpResponse,
    ) -> Result<TargetResult, ConnectorError> {
        let change = to_json(&self.label, "a change", change)?;
        let json = result(
            &self.label,
            self.inner.on_response(change, response_to_ffi(response)),
        )?;
        let r: TargetResult = parse(&self.label, "a result", &json)?;
        sanity::check_target_result(&self.label, &r)?;
        Ok(r)
    }
}

fn checked_request(
    label: &str,
    origins: &[url::Origin],
    r: FfiHttpRequest,
) -> Result<HttpRequest, ConnectorError> {
    let req = target_request_from_ffi(r).map_err(|e| ConnectorError::Plugin {
        detail: format!("plugin `{label}`: {e}"),
    })?;
    sanity::check_request(label, &req, origins)?;
    Ok(req)
}

impl TargetSession for HostTargetSession {
    fn discovery(&self) -> Vec<HttpRequest> {
        self.discovery.clone()
    }

    fn configure(&mut self, responses: Vec<HttpResponse>) -> Result<(), ConnectorError> {
        let _span = tracing::debug_span!("plugin_target_configure", plugin = %self.label).entered();
        let responses: RVec<_> = responses.into_iter().map(response_to_ffi).collect();
        result(&self.label, self.inner.configure(responses))?;
        self.refresh_capabilities()
    }

    fn capabilities(&self) -> TargetCapabilities {
        self.capabilities.clone()
    }

    fn lookup_request(&self, lookup: &Lookup) -> Result<HttpRequest, ConnectorError> {
        let r = result(&self.label, self.inner.lookup_request(self.lookup_json(lookup)?))?;
        self.checked_request(r)
    }

    fn on_lookup(&self, lookup: &Lookup, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let json = result(
            &self.label,
            self.inner
                .on_lookup(self.lookup_json(lookup)?, response_to_ffi(response)),
        )?;
        let found: Vec<AppObject> = parse(&self.label, "app objects", &json)?;
        sanity::check_app_objects(&self.label, &found)?;
        Ok(found)
    }

    fn list(&self, kind: ObjectKind) -> Result<Box<dyn TargetListing>, ConnectorError> {
        let inner = result(
            &self.label,
            self.inner.list(to_json(&self.label, "an object kind", &kind)?),
        )?;
        let mut listing = HostListing {
            label: self.label.clone(),
            inner,
            origins: self.origins.clone(),
            pending: None,
        };
        listing.refresh_pending()?;
        Ok(Box::new(listing))
    }

    fn requests(&self, change: &TargetChange) -> Result<Vec<HttpRequest>, ConnectorError> {
        let json = to_json(&self.label, "a change", change)?;
        let rs = result(&self.label, self.inner.requests(json))?;
        self.checked_requests(rs)
    }

    fn on_response(&self, change: &TargetChange, response: HttpResponse) -> TargetResult {
        self.result_of(change, response)
            .unwrap_or_else(|e| TargetResult::Protocol {
                detail: e.to_string(),
            })
    }
}

/// Like the source cursor: a converted, checked copy of the pending request; after a failed
/// check or a plugin failure the listing ends (nothing more is asked of it).
struct HostListing {
    label: Arc<str>,
    inner: FfiTargetListingBox,
    origins: Arc<Vec<url::Origin>>,
    pending: Option<HttpRequest>,
}

impl HostListing {
    fn refresh_pending(&mut self) -> Result<(), ConnectorError> {
        self.pending = None;
        let next = result(&self.label, self.inner.pending())?;
        if let Some(r) = next.into_option() {
            self.pending = Some(checked_request(&self.label, &self.origins, r)?);
        }
        Ok(())
    }

    fn page(&mut self, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let json = result(&self.label, self.inner.on_response(response_to_ffi(response)))?;
        let page: Vec<AppObject> = parse(&self.label, "a page of app objects", &json)?;
        drop(json);
        sanity::check_app_objects(&self.label, &page)?;
        self.refresh_pending()?;
        Ok(page)
    }
}

impl TargetListing for HostListing {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.pending.clone()
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let page = self.page(response);
        if let Err(ConnectorError::Plugin { .. }) = &page {
            self.pending = None;
        }
        page
    }
}

#[cfg(test)]
#[path = "target_host_tests.rs"]
mod tests;
