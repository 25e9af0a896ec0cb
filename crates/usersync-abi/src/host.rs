//! Host side: load a plugin library and adapt it to the SDK's traits, so the rest of the host
//! cannot tell a plugin from a built-in connector.

use std::path::Path;
use std::sync::Arc;

use abi_stable::{
    library::{lib_header_from_path, AbiHeaderRef, LibHeader, LibraryError, RawLibrary, RootModuleError},
    std_types::{RResult, RString},
};
use usersync_sdk::{
    AuthPlan, Batch, Connector, ConnectorError, Cursor, HttpRequest, HttpResponse, Manifest, Options, Query,
    Session, Target,
};

use crate::convert::{request_from_ffi, response_to_ffi};
use crate::ffi::{
    abi_version_of, FfiConnectorBox, FfiCursorBox, FfiSessionBox, PluginModRef, ROOT_MODULE_NAME,
};
use crate::target_ffi::{TargetModRef, TARGET_MODULE_NAME};
use crate::target_host::HostTarget;

/// Oldest plugin ABI version this host accepts.
pub const ACCEPTED_ABI_MIN: u32 = 1;
/// Newest plugin ABI version this host accepts (the SDK's own).
pub const ACCEPTED_ABI_MAX: u32 = usersync_sdk::ABI_VERSION;

/// Why a library was refused. Every variant displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The library could not be opened at all (missing, unreadable, wrong architecture).
    #[error("cannot open library: {detail}")]
    Open {
        /// The loader's message, on one line.
        detail: String,
    },
    /// The library is not a usersync plugin.
    #[error("not a usersync plugin: {detail}")]
    NotAPlugin {
        /// Why.
        detail: String,
    },
    /// The plugin was built for an ABI version outside the accepted range.
    #[error("incompatible ABI: plugin ABI version {found}; this usersync accepts {}", usersync_sdk::manifest::abi_versions_text(*.min, *.max))]
    IncompatibleAbi {
        /// The plugin's ABI version.
        found: u32,
        /// Oldest accepted.
        min: u32,
        /// Newest accepted.
        max: u32,
    },
    /// The plugin claims an accepted ABI version but its types do not match (summarised
    /// abi_stable layout report).
    #[error("incompatible ABI: plugin ABI version {found}, which this usersync accepts ({}), but the layouts differ: {summary}", usersync_sdk::manifest::abi_versions_text(*.min, *.max))]
    Layout {
        /// The plugin's declared ABI version.
        found: u32,
        /// Oldest accepted.
        min: u32,
        /// Newest accepted.
        max: u32,
        /// abi_stable's `Error:` lines, joined.
        summary: String,
    },
    /// The plugin panicked or failed while it was being loaded.
    #[error("failed while loading: {detail}")]
    Init {
        /// What happened.
        detail: String,
    },
}

/// A loaded plugin: its declared ABI version and the connector adapter.
pub struct LoadedPlugin {
    /// The ABI version the plugin was built for.
    pub abi_version: u32,
    /// The plugin crate's package name and version (`name version`).
    pub package: String,
    /// The connector, behaving exactly like a built-in one.
    pub connector: Arc<dyn Connector>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("abi_version", &self.abi_version)
            .field("package", &self.package)
            .finish_non_exhaustive()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Summarise abi_stable's layout report (thousands of lines) to its `Error:` blocks: each
/// `Error:` line plus the lines that follow it up to the next blank line (at most 4), joined on
/// one line, duplicates dropped, capped at 600 characters.
pub fn summarize_layout_report(report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let mut blocks: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix("Error:") {
            let mut block = vec![rest.trim().to_string()];
            let mut j = i + 1;
            while j < lines.len() && j <= i + 4 {
                let next = lines[j].trim();
                if next.is_empty() || next.starts_with("Error:") || next.starts_with("---") {
                    break;
                }
                block.push(next.to_string());
                j += 1;
            }
            let text = one_line(&block.join(" "));
            if !blocks.contains(&text) {
                blocks.push(text);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    if blocks.is_empty() {
        return "abi_stable reported a layout mismatch without details".into();
    }
    let mut out = blocks.join("; ");
    if out.chars().count() > 600 {
        out = out.chars().take(600).collect::<String>() + "...";
    }
    out
}

fn library_error(e: LibraryError, abi: u32) -> LoadError {
    match e {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            detail: one_line(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin {
            detail: "the library exports no usersync root module (was it built with \
                     `usersync_abi::export_connector!`?)"
                .into(),
        },
        LibraryError::InvalidAbiHeader(h) => LoadError::NotAPlugin {
            detail: format!(
                "its abi_stable header is incompatible (abi_stable {}.{} library)",
                h.abi_major, h.abi_minor
            ),
        },
        LibraryError::AbiInstability(report) => LoadError::Layout {
            found: abi,
            min: ACCEPTED_ABI_MIN,
            max: ACCEPTED_ABI_MAX,
            summary: summarize_layout_report(&report.to_string()),
        },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => LoadError::NotAPlugin {
            detail: format!("unrecognised root module version {actual_version}"),
        },
        LibraryError::ParseVersionError(v) => LoadError::NotAPlugin {
            detail: format!("unreadable root module version: {}", one_line(&v.to_string())),
        },
        LibraryError::RootModule { err, .. } => match err {
            RootModuleError::Unwound => LoadError::Init {
                detail: "the plugin panicked while building its root module".into(),
            },
            other => LoadError::Init {
                detail: one_line(&other.to_string()),
            },
        },
        other => LoadError::Init {
            detail: one_line(&other.to_string()),
        },
    }
}

/// Load a plugin library: open it (never unloaded), check that it is a usersync plugin, check
/// its ABI version against [`ACCEPTED_ABI_MIN`]`..=`[`ACCEPTED_ABI_MAX`] and its layout, build
/// its connector and read its manifest. Never panics on a bad library; the error is one line.
///
/// The caller is responsible for checking the file's ownership and permissions first.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let _span = tracing::debug_span!("load_plugin", path = %path.display()).entered();
    // Open the library and take its header (never `RootModule::load_from_file`, which caches one
    // library per root module type), then `init_root_module`. The library is never unloaded.
    let (header, crate_name) = lib_header(path)?;
    let consts = header.root_mod_consts();
    if consts.name().as_str() != ROOT_MODULE_NAME {
        return Err(LoadError::NotAPlugin {
            detail: format!("it is an abi_stable library for `{}`", consts.name()),
        });
    }
    let version = header.version_strings().version.as_str().to_string();
    let abi = abi_version_of(&version).ok_or_else(|| LoadError::NotAPlugin {
        detail: format!("unrecognised root module version `{version}`"),
    })?;
    if !(ACCEPTED_ABI_MIN..=ACCEPTED_ABI_MAX).contains(&abi) {
        return Err(LoadError::IncompatibleAbi {
            found: abi,
            min: ACCEPTED_ABI_MIN,
            max: ACCEPTED_ABI_MAX,
        });
    }
    let module: PluginModRef = header.init_root_module().map_err(|e| library_error(e, abi))?;
    if module.abi_version() != abi {
        return Err(LoadError::NotAPlugin {
            detail: format!(
                "root module declares ABI version {} but its header says {abi}",
                module.abi_version()
            ),
        });
    }
    let package = format!("{} {}", module.package(), module.package_version());
    let label: Arc<str> = Arc::from(format!("{} ({})", module.package(), path.display()));
    let inner = match (module.new_connector())() {
        RResult::ROk(c) => c,
        RResult::RErr(e) => {
            return Err(LoadError::Init {
                detail: error_from_json(&label, &e).to_string(),
            })
        }
    };
    let manifest = fetch_manifest(&label, &inner).map_err(|e| LoadError::Init {
        detail: one_line(&e.to_string()),
    })?;
    if manifest.abi_version != abi {
        return Err(LoadError::NotAPlugin {
            detail: format!(
                "its manifest declares ABI version {} but the library was built for {abi}",
                manifest.abi_version
            ),
        });
    }
    let label: Arc<str> = Arc::from(format!(
        "{} {} ({})",
        manifest.id,
        manifest.version,
        path.display()
    ));
    let target = match crate_name {
        Some(crate_name) => load_target(path, &crate_name, &label, abi)?,
        None => None,
    };
    tracing::debug!(id = %manifest.id, version = %manifest.version, abi, target = target.is_some(), "plugin loaded");
    Ok(LoadedPlugin {
        abi_version: abi,
        package,
        connector: Arc::new(HostConnector {
            label,
            inner,
            manifest,
            target,
        }),
    })
}

/// The plugin's target half, from its optional target root module
/// (`usersync_plugin_target_<crate>`, see [`crate::target_ffi`]). No such symbol (a plugin built
/// before the target half existed, or by hand without it): `None`, the plugin loads as a source.
/// A target module that is there but broken (layout, version, panic, unreadable manifest) refuses
/// the whole library: it claims to be a target and cannot be one.
fn load_target(
    path: &Path,
    crate_name: &str,
    label: &Arc<str>,
    abi: u32,
) -> Result<Option<HostTarget>, LoadError> {
    let symbol = format!("{}{crate_name}", crate::PLUGIN_TARGET_SYMBOL_PREFIX);
    if !exported_symbols(path)?.contains(&symbol) {
        return Ok(None);
    }
    let header = header_at(path, symbol)?;
    let consts = header.root_mod_consts();
    if consts.name().as_str() != TARGET_MODULE_NAME {
        return Err(LoadError::NotAPlugin {
            detail: format!(
                "its target module is an abi_stable library for `{}`",
                consts.name()
            ),
        });
    }
    let module: TargetModRef = header
        .init_root_module()
        .map_err(|e| match library_error(e, abi) {
            LoadError::Layout {
                found,
                min,
                max,
                summary,
            } => LoadError::Layout {
                found,
                min,
                max,
                summary: format!("target half: {summary}"),
            },
            LoadError::NotAPlugin { detail } => LoadError::NotAPlugin {
                detail: format!("target half: {detail}"),
            },
            other => other,
        })?;
    let init = |e: ConnectorError| LoadError::Init {
        detail: format!("target half: {}", one_line(&e.to_string())),
    };
    let inner = match (module.new_target())() {
        RResult::ROk(t) => t.into_option(),
        RResult::RErr(e) => return Err(init(error_from_json(label, &e))),
    };
    inner
        .map(|inner| HostTarget::new(label.clone(), inner).map_err(init))
        .transpose()
}

/// The library's defined dynamic symbols (empty when it is not an ELF file we can read).
fn exported_symbols(path: &Path) -> Result<Vec<String>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Open {
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(crate::elf::defined_dynamic_symbols(&bytes).unwrap_or_default())
}

/// The library's root module header: under its per-crate usersync symbol when it has one (found
/// in the dynamic symbol table), else under abi_stable's standard symbol (`lib_header_from_path`).
/// Also returns the crate name the symbol carries (`None` for the standard symbol).
fn lib_header(path: &Path) -> Result<(&'static LibHeader, Option<String>), LoadError> {
    let mut symbols: Vec<String> = exported_symbols(path)?
        .into_iter()
        .filter(|n| n.starts_with(crate::PLUGIN_SYMBOL_PREFIX))
        .collect();
    if symbols.len() > 1 {
        // A cdylib that links other connector crates re-exports their symbols too: take the one
        // named after the library file (`lib<crate>.so`).
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let own = format!(
            "{}{}",
            crate::PLUGIN_SYMBOL_PREFIX,
            stem.trim_start_matches("lib")
        );
        if symbols.contains(&own) {
            symbols = vec![own];
        } else {
            return Err(LoadError::NotAPlugin {
                detail: format!(
                    "it exports several usersync root modules ({}); one per library",
                    symbols.join(", ")
                ),
            });
        }
    }
    let Some(symbol) = symbols.pop() else {
        return Ok((lib_header_from_path(path).map_err(|e| library_error(e, 0))?, None));
    };
    let crate_name = symbol[crate::PLUGIN_SYMBOL_PREFIX.len()..].to_string();
    Ok((header_at(path, symbol)?, Some(crate_name)))
}

/// The abi_stable header behind one of our exported symbols.
fn header_at(path: &Path, symbol: String) -> Result<&'static LibHeader, LoadError> {
    let raw = RawLibrary::load_at(path).map_err(|e| library_error(e, 0))?;
    let mut name = symbol.into_bytes();
    name.push(0);
    // SAFETY: the symbol is the `LibHeader` static emitted by `export_connector!` (its name
    // carries our prefix); abi_stable's `lib_header_from_raw_library` reads its fixed symbol the
    // same way. `upgrade` validates the header before anything else is read.
    let abi_header: AbiHeaderRef = unsafe {
        match raw.get::<AbiHeaderRef>(&name) {
            Ok(sym) => *sym,
            Err(e) => return Err(library_error(e, 0)),
        }
    };
    let header = abi_header.upgrade().map_err(|e| library_error(e, 0))?;
    std::mem::forget(raw); // never unloaded: vtables and statics live in the library
    Ok(header)
}

fn error_from_json(label: &str, e: &RString) -> ConnectorError {
    serde_json::from_str::<ConnectorError>(e).unwrap_or_else(|_| ConnectorError::Plugin {
        detail: format!("plugin `{label}` returned an unreadable error: {}", one_line(e)),
    })
}

fn result<T>(label: &str, r: RResult<T, RString>) -> Result<T, ConnectorError> {
    match r {
        RResult::ROk(v) => Ok(v),
        RResult::RErr(e) => Err(error_from_json(label, &e)),
    }
}

fn parse<T: serde::de::DeserializeOwned>(label: &str, what: &str, s: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(s).map_err(|e| ConnectorError::Plugin {
        detail: format!("plugin `{label}` sent {what} the host cannot read: {e}"),
    })
}

fn fetch_manifest(label: &str, inner: &FfiConnectorBox) -> Result<Manifest, ConnectorError> {
    let json = result(label, inner.manifest_json())?;
    parse(label, "a manifest", &json)
}

/// A plugin connector seen through the SDK's [`Connector`] trait.
struct HostConnector {
    label: Arc<str>,
    inner: FfiConnectorBox,
    manifest: Manifest,
    target: Option<HostTarget>,
}

impl Connector for HostConnector {
    fn manifest(&self) -> Manifest {
        self.manifest.clone()
    }

    fn target(&self) -> Option<&dyn Target> {
        self.target.as_ref().map(|t| t as &dyn Target)
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        let json = serde_json::to_string(options).map_err(|e| ConnectorError::Plugin {
            detail: format!("cannot serialise options for `{}`: {e}", self.label),
        })?;
        let inner: FfiSessionBox = result(&self.label, self.inner.open(json.into()))?;
        let auth_plan: AuthPlan = parse(
            &self.label,
            "an auth plan",
            &result(&self.label, inner.auth_plan_json())?,
        )?;
        let base_urls: Vec<String> = parse(
            &self.label,
            "base URLs",
            &result(&self.label, inner.base_urls_json())?,
        )?;
        let origins = Arc::new(crate::sanity::origins(&base_urls));
        Ok(Box::new(HostSession {
            label: self.label.clone(),
            inner,
            auth_plan,
            base_urls,
            origins,
        }))
    }
}

struct HostSession {
    label: Arc<str>,
    inner: FfiSessionBox,
    auth_plan: AuthPlan,
    base_urls: Vec<String>,
    /// Origins of `base_urls`: the only ones a cursor's request may go to.
    origins: Arc<Vec<url::Origin>>,
}

impl Session for HostSession {
    fn auth_plan(&self) -> AuthPlan {
        self.auth_plan.clone()
    }

    fn base_urls(&self) -> Vec<String> {
        self.base_urls.clone()
    }

    fn token_error(&self, response: &HttpResponse) -> Option<ConnectorError> {
        let json = match result(
            &self.label,
            self.inner.token_error_json(response_to_ffi(response.clone())),
        ) {
            Ok(json) => json,
            Err(e) => return Some(e),
        };
        parse::<Option<ConnectorError>>(&self.label, "a token error", &json).unwrap_or_else(Some)
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let json = serde_json::to_string(query).map_err(|e| ConnectorError::Plugin {
            detail: format!("cannot serialise a query for `{}`: {e}", self.label),
        })?;
        let inner: FfiCursorBox = result(&self.label, self.inner.query(json.into()))?;
        let mut cursor = HostCursor {
            label: self.label.clone(),
            inner,
            pending: None,
            origins: self.origins.clone(),
        };
        cursor.refresh_pending()?;
        Ok(Box::new(cursor))
    }
}

/// The host keeps a converted copy of the plugin's pending request, refreshed after each call
/// that can change it, so `next_request` (which has no error channel) never has to fail.
///
/// Every request and page is checked ([`crate::sanity`]) before the host uses it; after a
/// failed check the cursor refuses every later call, so a listing never continues past garbage.
struct HostCursor {
    label: Arc<str>,
    inner: FfiCursorBox,
    pending: Option<HttpRequest>,
    origins: Arc<Vec<url::Origin>>,
}

impl HostCursor {
    fn refresh_pending(&mut self) -> Result<(), ConnectorError> {
        self.pending = None;
        let next = result(&self.label, self.inner.pending())?;
        let Some(r) = next.into_option() else {
            return Ok(());
        };
        let req = request_from_ffi(r).map_err(|e| ConnectorError::Plugin {
            detail: format!("plugin `{}`: {e}", self.label),
        })?;
        crate::sanity::check_request(&self.label, &req, &self.origins)?;
        self.pending = Some(req);
        Ok(())
    }

    fn page(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        let json = result(&self.label, self.inner.on_response(response_to_ffi(response)))?;
        crate::sanity::check_page_size(&self.label, json.len())?;
        let batch: Batch = parse(&self.label, "a page", &json)?;
        drop(json);
        crate::sanity::check_batch(&self.label, &batch)?;
        self.refresh_pending()?;
        Ok(batch)
    }
}

impl Cursor for HostCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.pending.clone()
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        let page = self.page(response);
        if let Err(ConnectorError::Plugin { .. }) = &page {
            // The plugin's state is unknown: nothing more is asked of this cursor.
            self.pending = None;
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_report_is_summarised_to_its_error_lines() {
        let mut report = String::from("Compared <this>:\n --- Type Layout ---\n");
        for _ in 0..2000 {
            report.push_str("   field: x type: RString\n");
        }
        report.push_str("Error:incompatible type size\n  Expected:\n    104\n  Found:\n    112\n\n");
        report.push_str("Error:mismatched type\nExpected: RString\nFound: ROption\n\n");
        report.push_str("Error:incompatible type size\n  Expected:\n    104\n  Found:\n    112\n");
        let s = summarize_layout_report(&report);
        assert_eq!(
            s,
            "incompatible type size Expected: 104 Found: 112; mismatched type Expected: RString Found: ROption"
        );
        assert!(!s.contains('\n'));
    }

    #[test]
    fn refusals_are_one_line() {
        let e = LoadError::IncompatibleAbi {
            found: 2,
            min: 1,
            max: 1,
        };
        assert_eq!(
            e.to_string(),
            "incompatible ABI: plugin ABI version 2; this usersync accepts ABI version 1"
        );
    }
}
