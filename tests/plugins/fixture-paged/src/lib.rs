//! TEST FIXTURE (not a connector): a plugin that loads and answers a paged `list_users` query.
//!
//! `GET {base_url}/users` returns `{"users": ["id", ...], "nextPageToken": "..."}`; the token is
//! sent back as `pageToken`. Used by tests/it/plugins.rs to drive a query through the ABI.

mod plugin;

use serde::Deserialize;
use usersync_sdk::model::{Record, User, UserState, UserStatus};
use usersync_sdk::paging::{join_url, parse_json};
use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, Connector, ConnectorError, Cursor, Endpoint,
    HttpRequest, HttpResponse, Manifest, Operation, OptionSpec, OptionType, Options, PageParser, PagedCursor,
    Paging, ParsedPage, Query, Session, ABI_VERSION,
};

/// The fixture connector as a trait object.
pub fn connector() -> Box<dyn Connector> {
    Box::new(Paged)
}

struct Paged;

impl Connector for Paged {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "fixture-paged".into(),
            name: "Paged fixture (tests only)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description: "test token".into(),
            }],
            endpoints: vec![Endpoint {
                method: "GET".into(),
                url: "https://fixture.test:8443/users".into(),
                purpose: "Fetching information for all users".into(),
                operation: Operation::ListUsers,
            }],
            capabilities: Capabilities::default(),
            options: vec![OptionSpec::new(
                "base_url",
                OptionType::Url,
                true,
                "Where the fixture API lives.",
            )],
            default_concurrency: 1,
        }
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(PagedSession {
            base_url: options.require_str("base_url")?.to_string(),
        }))
    }
}

struct PagedSession {
    base_url: String,
}

impl Session for PagedSession {
    fn auth_plan(&self) -> AuthPlan {
        AuthPlan::None
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base_url.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        match query {
            Query::ListUsers => Ok(Box::new(PagedCursor::new(
                HttpRequest::get(join_url(&self.base_url, &["users"])?),
                Paging::PageToken {
                    param: "pageToken".into(),
                },
                Ids,
            ))),
            other => Err(ConnectorError::Unsupported {
                operation: other.operation().to_string(),
            }),
        }
    }
}

struct Ids;

impl PageParser for Ids {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            users: Vec<String>,
            next_page_token: Option<String>,
        }
        let b: Body = parse_json(response, "fixture users")?;
        let records = b
            .users
            .into_iter()
            .map(|id| {
                Record::User(User::new(
                    id.clone(),
                    id,
                    UserStatus::new(UserState::Active, "active"),
                ))
            })
            .collect();
        Ok(ParsedPage::new(Batch::of(records), b.next_page_token))
    }
}
