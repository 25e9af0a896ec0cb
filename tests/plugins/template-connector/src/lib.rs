//! Template usersync connector for **Acme Directory**, a fictional REST API. Copy this crate to
//! write a connector for a real provider (docs/connector-authoring.md walks through it).
//!
//! The API it talks to (replace with your provider's):
//!
//! ```text
//! GET {base_url}/api/v1/users?limit=N               -> {"users": [ {id, login, email, name, status} ]}
//! GET {base_url}/api/v1/groups?limit=N              -> {"groups": [ {id, name, description} ]}
//! GET {base_url}/api/v1/groups/{groupId}/members    -> {"members": [ {id, type: "user"|"group"} ]}
//! Paging: RFC 8288 `Link: <url>; rel="next"` response header.
//! Auth:   `Authorization: Bearer <api token>` (the host adds it; the connector never sees it).
//! ```
//!
//! A connector is **sans-IO**: it builds requests and parses responses; the host sends them,
//! authenticates, retries and throttles.

mod plugin;

use serde::Deserialize;
use usersync_sdk::model::{Group, Membership, Record, User, UserState, UserStatus};
use usersync_sdk::paging::{join_url, parse_json, set_query_param, status_error};
use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, Connector, ConnectorError, Cursor, Endpoint,
    HttpRequest, HttpResponse, Manifest, Operation, OptionSpec, OptionType, Options, PageParser, PagedCursor,
    Paging, ParsedPage, Query, Session, ABI_VERSION,
};

/// The connector id: permanent, kebab-case; config files refer to it.
pub const ID: &str = "template";

/// The connector as a trait object (used by a host's built-in list and by the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(TemplateConnector)
}

/// The Acme Directory connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct TemplateConnector;

impl Connector for TemplateConnector {
    fn manifest(&self) -> Manifest {
        let ep = |url: &str, purpose: &str, operation| Endpoint {
            method: "GET".into(),
            url: url.into(),
            purpose: purpose.into(),
            operation,
        };
        Manifest {
            id: ID.into(),
            name: "Acme Directory (template)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description:
                    "An API token created in the Acme admin console, sent as `Authorization: Bearer`.".into(),
            }],
            endpoints: vec![
                ep(
                    "https://{acmeDomain}/api/v1/users",
                    "Fetching information for all users",
                    Operation::ListUsers,
                ),
                ep(
                    "https://{acmeDomain}/api/v1/groups",
                    "Fetch all groups",
                    Operation::ListGroups,
                ),
                ep(
                    "https://{acmeDomain}/api/v1/groups/{groupId}/members",
                    "Fetch members of a specific group",
                    Operation::GroupMembers,
                ),
            ],
            capabilities: Capabilities {
                nested_groups: true,
                ..Capabilities::default()
            },
            options: vec![
                OptionSpec::new(
                    "base_url",
                    OptionType::Url,
                    true,
                    "Your Acme tenant, e.g. https://example.acme.test.",
                ),
                OptionSpec::new(
                    "api_token",
                    OptionType::String,
                    true,
                    "API token (Admin > Security > API).",
                )
                .secret(),
                OptionSpec::new(
                    "page_size",
                    OptionType::Integer,
                    false,
                    "Objects per page (1..=500).",
                )
                .default_value(serde_json::json!(200)),
            ],
            default_concurrency: 4,
        }
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        let base_url = options.require_str("base_url")?.trim_end_matches('/').to_string();
        if !base_url.starts_with("https://") && !base_url.starts_with("http://") {
            return Err(ConnectorError::config(
                "base_url",
                format!("`{base_url}` is not an http(s) URL"),
            ));
        }
        let page_size = options.u64("page_size").unwrap_or(200);
        if !(1..=500).contains(&page_size) {
            return Err(ConnectorError::config(
                "page_size",
                format!("{page_size} is not in 1..=500"),
            ));
        }
        Ok(Box::new(TemplateSession { base_url, page_size }))
    }
}

/// A validated connection to one Acme tenant.
#[derive(Debug, Clone)]
pub struct TemplateSession {
    base_url: String,
    page_size: u64,
}

impl TemplateSession {
    fn list(&self, segments: &[&str]) -> Result<HttpRequest, ConnectorError> {
        let url = join_url(&self.base_url, segments)?;
        let url = set_query_param(&url, "limit", &self.page_size.to_string())?;
        Ok(HttpRequest::get(url))
    }
}

impl Session for TemplateSession {
    fn auth_plan(&self) -> AuthPlan {
        AuthPlan::ApiToken {
            header: "Authorization".into(),
            scheme: "Bearer".into(),
            secret_option: "api_token".into(),
        }
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base_url.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let cursor: Box<dyn Cursor> = match query {
            Query::ListUsers => Box::new(PagedCursor::new(
                self.list(&["api", "v1", "users"])?,
                Paging::LinkHeader,
                UsersParser,
            )),
            Query::ListGroups => Box::new(PagedCursor::new(
                self.list(&["api", "v1", "groups"])?,
                Paging::LinkHeader,
                GroupsParser,
            )),
            Query::GroupMembers { group_id } => Box::new(PagedCursor::new(
                self.list(&["api", "v1", "groups", group_id, "members"])?,
                Paging::LinkHeader,
                MembersParser {
                    group_id: group_id.clone(),
                },
            )),
            other => {
                return Err(ConnectorError::Unsupported {
                    operation: other.operation().to_string(),
                })
            }
        };
        Ok(cursor)
    }
}

#[derive(Deserialize)]
struct AcmeUser {
    id: String,
    login: String,
    email: Option<String>,
    name: Option<String>,
    status: String,
}

struct UsersParser;

impl PageParser for UsersParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        #[derive(Deserialize)]
        struct Body {
            users: Vec<AcmeUser>,
        }
        let body: Body = parse_json(response, "Acme user listing")?;
        let mut records = Vec::with_capacity(body.users.len());
        for u in body.users {
            let state = match u.status.as_str() {
                "active" => UserState::Active,
                "suspended" => UserState::Disabled,
                "locked" => UserState::Locked,
                "invited" => UserState::Staged,
                "deleted" => UserState::Deprovisioned,
                other => {
                    // Never guess a status: an unknown one stops the run instead of (de)activating.
                    return Err(ConnectorError::protocol(format!(
                        "Acme user `{}` has unknown status `{other}`",
                        u.id
                    )));
                }
            };
            let mut user = User::new(u.id, u.login, UserStatus::new(state, u.status));
            user.email = u.email;
            user.display_name = u.name;
            records.push(Record::User(user));
        }
        Ok(ParsedPage::new(Batch::of(records), None))
    }
}

struct GroupsParser;

impl PageParser for GroupsParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        #[derive(Deserialize)]
        struct AcmeGroup {
            id: String,
            name: String,
            description: Option<String>,
        }
        #[derive(Deserialize)]
        struct Body {
            groups: Vec<AcmeGroup>,
        }
        let body: Body = parse_json(response, "Acme group listing")?;
        let records = body
            .groups
            .into_iter()
            .map(|g| {
                let mut group = Group::new(g.id, g.name);
                group.description = g.description;
                Record::Group(group)
            })
            .collect();
        Ok(ParsedPage::new(Batch::of(records), None))
    }
}

struct MembersParser {
    group_id: String,
}

impl PageParser for MembersParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        #[derive(Deserialize)]
        struct Member {
            id: String,
            #[serde(rename = "type")]
            kind: String,
        }
        #[derive(Deserialize)]
        struct Body {
            members: Vec<Member>,
        }
        let body: Body = parse_json(response, "Acme group members")?;
        let mut batch = Batch::default();
        for m in body.members {
            match m.kind.as_str() {
                "user" => batch
                    .records
                    .push(Record::Membership(Membership::direct_user(&self.group_id, m.id))),
                "group" => batch
                    .records
                    .push(Record::Membership(Membership::direct_group(&self.group_id, m.id))),
                other => batch.skip(other), // e.g. service accounts: counted, never silently dropped
            }
        }
        Ok(ParsedPage::new(batch, None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(status_error(
            response,
            &format!("members of Acme group `{}`", self.group_id),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn session() -> Box<dyn Session> {
        let m = TemplateConnector.manifest();
        let values = BTreeMap::from([("base_url".to_string(), serde_json::json!("https://acme.test"))]);
        let options = Options::validate(&m, values, vec!["api_token".into()]).expect("valid options");
        TemplateConnector.open(&options).expect("session")
    }

    #[test]
    fn manifest_is_consistent() {
        TemplateConnector.manifest().validate().expect("valid manifest");
    }

    #[test]
    fn lists_users_across_link_header_pages() {
        let mut cursor = session().query(&Query::ListUsers).expect("cursor");
        let first = cursor.next_request().expect("first request");
        assert_eq!(first.url, "https://acme.test/api/v1/users?limit=200");
        let page1 = HttpResponse::new(
            200,
            r#"{"users":[{"id":"u1","login":"ada","email":"ada@acme.test","name":"Ada","status":"active"}]}"#,
        )
        .with_header(
            "Link",
            r#"<https://acme.test/api/v1/users?limit=200&after=u1>; rel="next""#,
        );
        assert_eq!(cursor.on_response(page1).expect("page 1").records.len(), 1);
        let second = cursor.next_request().expect("second request");
        assert!(second.url.ends_with("after=u1"), "{}", second.url);
        let page2 = HttpResponse::new(
            200,
            r#"{"users":[{"id":"u2","login":"bob","status":"suspended"}]}"#,
        );
        let batch = cursor.on_response(page2).expect("page 2");
        let Record::User(u) = &batch.records[0] else {
            panic!("expected a user")
        };
        assert_eq!(u.status.state, UserState::Disabled);
        assert_eq!(u.status.raw, "suspended");
        assert!(cursor.next_request().is_none());
    }

    #[test]
    fn unknown_status_and_errors_stop_the_listing() {
        let mut cursor = session().query(&Query::ListUsers).expect("cursor");
        let bad = HttpResponse::new(200, r#"{"users":[{"id":"u1","login":"x","status":"weird"}]}"#);
        assert!(matches!(
            cursor.on_response(bad),
            Err(ConnectorError::Protocol { .. })
        ));
        let throttled = HttpResponse::new(429, "slow down").with_header("Retry-After", "2");
        assert!(matches!(
            cursor.on_response(throttled),
            Err(ConnectorError::RateLimited {
                retry_after_ms: Some(2000),
                ..
            })
        ));
        // The cursor did not advance: the host may retry the same request.
        assert!(cursor.next_request().is_some());
    }

    // Status mapping, "an error does not advance the cursor" and "undeclared queries are
    // Unsupported" are checked for every connector by the conformance suite
    // (tests/conformance.rs, crates/usersync-conformance).
}
