//! TEST FIXTURE (not a connector): a plugin whose code panics inside calls, to prove that the
//! host survives and that the error names the plugin and the call.
//!
//! * loading (`connector()`) panics when `USERSYNC_FIXTURE_PANIC_ON_LOAD` is set;
//! * `open` panics when option `panic_in_open` is true;
//! * `list_users`: the cursor panics in `on_response` ("simulated bug while parsing page");
//! * `list_groups`: the cursor panics in `next_request`.
//!
//! Requests go to option `base_url` (default `https://panics.test`), so a test can point them at
//! a server that answers and the panic happens on a real response.

mod plugin;

use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, Connector, ConnectorError, Cursor,
    HttpRequest, HttpResponse, Manifest, OptionSpec, OptionType, Options, Query, Session, ABI_VERSION,
};

/// The fixture connector as a trait object. Panics (a bug while loading) when the environment
/// variable `USERSYNC_FIXTURE_PANIC_ON_LOAD` is set.
pub fn connector() -> Box<dyn Connector> {
    if std::env::var_os("USERSYNC_FIXTURE_PANIC_ON_LOAD").is_some() {
        panic!("simulated bug while loading");
    }
    Box::new(Panics)
}

struct Panics;

impl Connector for Panics {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "fixture-panics".into(),
            name: "Panicking fixture (tests only)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description: "test token".into(),
            }],
            endpoints: Vec::new(),
            capabilities: Capabilities::default(),
            options: vec![
                OptionSpec::new("panic_in_open", OptionType::Bool, false, "Panic in open."),
                OptionSpec::new(
                    "base_url",
                    OptionType::Url,
                    false,
                    "Where requests go (default https://panics.test).",
                ),
            ],
            default_concurrency: 1,
        }
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        if options.bool("panic_in_open") == Some(true) {
            panic!("simulated bug in open");
        }
        let base = options.str("base_url").unwrap_or("https://panics.test");
        Ok(Box::new(PanicSession {
            base: base.trim_end_matches('/').to_string(),
        }))
    }
}

struct PanicSession {
    base: String,
}

impl Session for PanicSession {
    fn auth_plan(&self) -> AuthPlan {
        AuthPlan::None
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        Ok(Box::new(PanicCursor {
            in_next_request: matches!(query, Query::ListGroups),
            url: format!("{}/users", self.base),
        }))
    }
}

struct PanicCursor {
    in_next_request: bool,
    url: String,
}

impl Cursor for PanicCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        if self.in_next_request {
            panic!("simulated bug in next_request");
        }
        Some(HttpRequest::get(self.url.clone()))
    }

    fn on_response(&mut self, _response: HttpResponse) -> Result<Batch, ConnectorError> {
        panic!("simulated bug while parsing page");
    }
}
