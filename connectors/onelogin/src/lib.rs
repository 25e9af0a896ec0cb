//! usersync connector for OneLogin (API v1 and v2).
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O.
//!
//! OneLogin differs from the seed endpoint table: the real API lives under `/api/1/...` (groups)
//! and `/api/2/...` (users, roles), a user has ONE group (`group_id`) and MANY roles
//! (`role_ids`), and there is no per-user groups endpoint. Group memberships therefore come
//! from the user listing itself (capability `memberships_in_user_listing`), and roles are
//! synced as groups through `/api/2/roles/{id}/users`, which keeps a full sync far inside the
//! account-wide budget of 5,000 calls per hour.

pub mod api;
pub mod delta;
pub mod map;
mod plugin;

use usersync_model::{ManagerRef, Record};
use usersync_sdk::paging::{join_url, parse_json, status_error, PageParser, PagedCursor, Paging, ParsedPage};
use usersync_sdk::query::Operation;
use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, ClientAuth, Connector, ConnectorError, Cursor,
    Endpoint, HttpRequest, HttpResponse, Manifest, OptionSpec, OptionType, Options, Query, Session,
    ABI_VERSION,
};

/// Largest page OneLogin serves for `/api/2/users` (documented range 1-50).
pub const MAX_USERS_PAGE: u64 = 50;

/// The user fields requested with `fields=` (list responses otherwise omit some).
pub const USER_FIELDS: &str = "id,username,email,firstname,lastname,status,state,group_id,role_ids,\
manager_user_id,custom_attributes,department,title,company,external_id,directory_id";

/// The OneLogin connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct OneLoginConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(OneLoginConnector)
}

fn endpoint(method: &str, path: &str, purpose: &str, operation: Operation) -> Endpoint {
    Endpoint {
        method: method.into(),
        url: format!("https://{{baseUrl}}{path}"),
        purpose: purpose.into(),
        operation,
    }
}

impl Connector for OneLoginConnector {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "onelogin".into(),
            name: "OneLogin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ClientCredentialsSecret,
                token_url: Some("https://{baseUrl}/auth/oauth2/v2/token".into()),
                authorize_url: None,
                scopes: Vec::new(),
                description: "API credential pair (client id + secret) with the \"Read users\" scope; token \
                              request authenticated with `Authorization: client_id:<id>, client_secret:<secret>`"
                    .into(),
            }],
            endpoints: vec![
                endpoint("POST", "/auth/oauth2/v2/token", "Request and refresh access token", Operation::Token),
                endpoint(
                    "GET",
                    "/api/2/users",
                    "Fetching information for all users (API v2, instead of the older /api/v1/users). Each \
                     user's group_id also gives the group memberships",
                    Operation::ListUsers,
                ),
                endpoint(
                    "GET",
                    "/api/2/users/{userid}",
                    "Fetching information for a single user (API v2, instead of the older /api/v1/users/{userid})",
                    Operation::GetUser,
                ),
                endpoint(
                    "GET",
                    "/api/2/users/{userid}",
                    "Fetch groups for specific user, read from the user: a user has one group_id and many \
                     role_ids (there is no /api/v1/users/{userid}/groups)",
                    Operation::UserGroups,
                ),
                endpoint(
                    "GET",
                    "/api/2/users/{userid}",
                    "Fetch the manager of a specific user (manager_user_id)",
                    Operation::UserManager,
                ),
                endpoint(
                    "GET",
                    "/api/1/groups",
                    "Fetch all groups (required for processing the groupnames; groups exist only in API v1, \
                     /api/v1/groups)",
                    Operation::ListGroups,
                ),
                endpoint(
                    "GET",
                    "/api/2/roles",
                    "Fetch all roles (required for using roles as groupnames; API v2, instead of the older \
                     /api/v1/roles)",
                    Operation::ListRoles,
                ),
                endpoint(
                    "GET",
                    "/api/2/roles/{roleid}/users",
                    "Fetch the users holding a role (roles as groups; one listing per role instead of one call \
                     per user)",
                    Operation::RoleMembers,
                ),
                endpoint(
                    "GET",
                    "/api/2/users",
                    "Incremental runs: users changed since the last run (`updated_since=T`, T = OneLogin's \
                     `Date` at the previous read minus 5 minutes); each user's group_id replaces its group",
                    Operation::UsersDelta,
                ),
                endpoint(
                    "GET",
                    "/api/1/groups",
                    "Incremental runs: every group again (groups have no timestamp and are few): new and \
                     renamed groups",
                    Operation::GroupsDelta,
                ),
            ],
            capabilities: Capabilities {
                transitive_membership: false,
                nested_groups: false,
                roles_as_groups: true,
                manager: true,
                photos: false,
                incremental: true,
                memberships_in_user_listing: true,
            },
            options: vec![
                OptionSpec::new(
                    "base_url",
                    OptionType::Url,
                    true,
                    "Your OneLogin API host: https://<subdomain>.onelogin.com, or the regional \
                     https://api.us.onelogin.com / https://api.eu.onelogin.com",
                ),
                OptionSpec::new(
                    "client_id",
                    OptionType::String,
                    true,
                    "Client ID of the API credential (Administration > Developers > API Credentials)",
                ),
                OptionSpec::new(
                    "client_secret",
                    OptionType::String,
                    true,
                    "Client secret of the same API credential (scope \"Read users\" is enough)",
                )
                .secret(),
                OptionSpec::new(
                    "page_size",
                    OptionType::Integer,
                    false,
                    "Users per page, 1-50 (OneLogin's maximum is 50)",
                )
                .default_value(serde_json::json!(MAX_USERS_PAGE)),
            ],
            default_concurrency: 2,
        }
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        let base = options.require_str("base_url")?.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| ConnectorError::config("base_url", format!("`{base}`: {e}")))?;
        let client_id = options.require_str("client_id")?.to_string();
        let page_size = options.u64("page_size").unwrap_or(MAX_USERS_PAGE);
        if !(1..=MAX_USERS_PAGE).contains(&page_size) {
            return Err(ConnectorError::config(
                "page_size",
                format!("must be 1-{MAX_USERS_PAGE}, got {page_size}"),
            ));
        }
        Ok(Box::new(OneLoginSession {
            base,
            client_id,
            page_size,
        }))
    }
}

/// A configured OneLogin account.
#[derive(Debug, Clone)]
pub struct OneLoginSession {
    base: String,
    client_id: String,
    page_size: u64,
}

impl OneLoginSession {
    fn url(&self, segments: &[&str]) -> Result<String, ConnectorError> {
        join_url(&self.base, segments)
    }

    fn with_query(url: String, pairs: &[(&str, &str)]) -> Result<String, ConnectorError> {
        let mut u = url::Url::parse(&url).map_err(|e| ConnectorError::protocol(format!("bad URL: {e}")))?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        Ok(u.to_string())
    }

    fn header_cursor() -> Paging {
        Paging::HeaderCursor {
            header: "After-Cursor".into(),
            param: "cursor".into(),
            drop_params: vec!["limit".into(), "page".into()],
        }
    }
}

impl OneLoginSession {
    /// Users changed since the watermark (or, without a usable one, one small page for the clock).
    fn users_delta(&self, since: Option<&str>, limit: &str) -> Result<Box<dyn Cursor>, ConnectorError> {
        let since = delta::CLOCK.since(since);
        let inner: Box<dyn Cursor> = match since.time() {
            None => Box::new(PagedCursor::new(
                HttpRequest::get(Self::with_query(
                    self.url(&["api", "2", "users"])?,
                    &[("limit", "1"), ("fields", USER_FIELDS)],
                )?),
                Paging::Single,
                UsersParser,
            )),
            Some(t) => {
                let at = delta::iso_secs(t);
                Box::new(PagedCursor::new(
                    HttpRequest::get(Self::with_query(
                        self.url(&["api", "2", "users"])?,
                        &[("updated_since", &at), ("limit", limit), ("fields", USER_FIELDS)],
                    )?),
                    Self::header_cursor(),
                    UsersParser,
                ))
            }
        };
        Ok(Box::new(delta::TimestampCursor::new(inner, delta::CLOCK, since)))
    }

    /// Every group again (OneLogin groups carry no timestamp), or one page for the clock.
    fn groups_delta(&self, since: Option<&str>) -> Result<Box<dyn Cursor>, ConnectorError> {
        let since = delta::CLOCK.since(since);
        let paging = if since.time().is_some() {
            Paging::BodyCursor {
                param: "after_cursor".into(),
            }
        } else {
            Paging::Single
        };
        let inner = PagedCursor::new(
            HttpRequest::get(self.url(&["api", "1", "groups"])?),
            paging,
            GroupsParser,
        );
        Ok(Box::new(delta::TimestampCursor::new(
            Box::new(inner),
            delta::CLOCK,
            since,
        )))
    }
}

impl Session for OneLoginSession {
    fn auth_plan(&self) -> AuthPlan {
        AuthPlan::ClientCredentialsSecret {
            token_url: format!("{}/auth/oauth2/v2/token", self.base),
            client_id: self.client_id.clone(),
            secret_option: "client_secret".into(),
            client_auth: ClientAuth::OneLoginHeader,
            scopes: Vec::new(),
        }
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let limit = self.page_size.to_string();
        Ok(match query {
            Query::ListUsers => {
                let url = Self::with_query(
                    self.url(&["api", "2", "users"])?,
                    &[("limit", &limit), ("fields", USER_FIELDS)],
                )?;
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Self::header_cursor(),
                    UsersParser,
                ))
            }
            Query::GetUser { user_id } | Query::UserGroups { user_id } | Query::UserManager { user_id } => {
                let url = self.url(&["api", "2", "users", user_id])?;
                let mode = match query {
                    Query::GetUser { .. } => SingleUserMode::User,
                    Query::UserGroups { .. } => SingleUserMode::Groups,
                    _ => SingleUserMode::Manager,
                };
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Paging::Single,
                    SingleUserParser {
                        mode,
                        user_id: user_id.clone(),
                    },
                ))
            }
            Query::ListGroups => {
                let url = self.url(&["api", "1", "groups"])?;
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Paging::BodyCursor {
                        param: "after_cursor".into(),
                    },
                    GroupsParser,
                ))
            }
            Query::ListRoles => {
                let url = Self::with_query(self.url(&["api", "2", "roles"])?, &[("limit", &limit)])?;
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Self::header_cursor(),
                    RolesParser,
                ))
            }
            Query::RoleMembers { role_id } => {
                let numeric = role_id.strip_prefix("role:").unwrap_or(role_id);
                let url = Self::with_query(
                    self.url(&["api", "2", "roles", numeric, "users"])?,
                    &[("limit", &limit)],
                )?;
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Self::header_cursor(),
                    RoleUsersParser {
                        group_id: map::role_group_id(numeric.parse::<u64>().map_err(|_| {
                            ConnectorError::protocol(format!("OneLogin role id `{role_id}` is not numeric"))
                        })?),
                    },
                ))
            }
            Query::UsersDelta { since } => self.users_delta(since.as_deref(), &limit)?,
            Query::GroupsDelta { since } => self.groups_delta(since.as_deref())?,
            other => {
                return Err(ConnectorError::Unsupported {
                    operation: other.operation().to_string(),
                })
            }
        })
    }
}

/// Map a OneLogin error response (v1 or v2 envelope) to a connector error.
pub fn error_for(response: &HttpResponse) -> ConnectorError {
    let body: api::ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
    let summary = body.summary();
    let detail = if summary.is_empty() {
        response.body_snippet(200)
    } else {
        summary
    };
    match response.status {
        // v1 answers 401 "Insufficient Permission" for a credential without the needed scope.
        401 if detail.contains("Insufficient Permission") => ConnectorError::Forbidden {
            detail: format!("HTTP 401: {detail}"),
            needed: Some("an API credential with the \"Read users\" scope (or higher)".into()),
        },
        403 => ConnectorError::Forbidden {
            detail: format!("HTTP 403: {detail}"),
            needed: Some("an API credential with the \"Read users\" scope (or higher)".into()),
        },
        429 => ConnectorError::RateLimited {
            // OneLogin's X-RateLimit-Reset is SECONDS REMAINING, not an epoch.
            retry_after_ms: response
                .header("X-RateLimit-Reset")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| s.saturating_mul(1000)),
            detail: format!("HTTP 429: {detail}"),
        },
        _ => status_error(response, &detail),
    }
}

struct UsersParser;

impl PageParser for UsersParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let users: Vec<api::User> = parse_json(response, "OneLogin /api/2/users")?;
        let mut records = Vec::with_capacity(users.len() * 2);
        for u in &users {
            records.push(Record::User(map::user(u)?));
            if let Some(m) = map::group_membership(u) {
                records.push(Record::Membership(m));
            }
        }
        let mut page = ParsedPage::new(Batch::of(records), None);
        page.item_count = users.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(error_for(response))
    }
}

#[derive(Debug, Clone, Copy)]
enum SingleUserMode {
    User,
    Groups,
    Manager,
}

struct SingleUserParser {
    mode: SingleUserMode,
    user_id: String,
}

impl PageParser for SingleUserParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let u: api::User = parse_json(response, "OneLogin /api/2/users/{id}")?;
        let records = match self.mode {
            SingleUserMode::User => vec![Record::User(map::user(&u)?)],
            SingleUserMode::Groups => map::group_membership(&u)
                .into_iter()
                .chain(map::role_memberships(&u))
                .map(Record::Membership)
                .collect(),
            SingleUserMode::Manager => vec![Record::Manager {
                user_id: u.id.to_string(),
                manager: u
                    .manager_user_id
                    .flatten()
                    .filter(|m| *m != 0)
                    .map(|m| ManagerRef::Id(m.to_string())),
            }],
        };
        Ok(ParsedPage::new(Batch::of(records), None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        match error_for(response) {
            ConnectorError::NotFound { detail } => Err(ConnectorError::NotFound {
                detail: format!("OneLogin user {}: {detail}", self.user_id),
            }),
            other => Err(other),
        }
    }
}

struct GroupsParser;

impl PageParser for GroupsParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let env: api::V1Envelope<api::Group> = parse_json(response, "OneLogin /api/1/groups")?;
        let next = env
            .pagination
            .and_then(|p| p.after_cursor)
            .filter(|c| !c.is_empty());
        let records = env.data.iter().map(|g| Record::Group(map::group(g))).collect();
        Ok(ParsedPage::new(Batch::of(records), next))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(error_for(response))
    }
}

struct RolesParser;

impl PageParser for RolesParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let roles: Vec<api::Role> = parse_json(response, "OneLogin /api/2/roles")?;
        let records = roles.iter().map(|r| Record::Group(map::role(r))).collect();
        Ok(ParsedPage::new(Batch::of(records), None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(error_for(response))
    }
}

struct RoleUsersParser {
    group_id: String,
}

impl PageParser for RoleUsersParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let users: Vec<api::RoleUser> = parse_json(response, "OneLogin /api/2/roles/{id}/users")?;
        let mut batch = Batch::default();
        for u in &users {
            if u.assigned {
                batch
                    .records
                    .push(Record::Membership(usersync_model::Membership::direct_user(
                        self.group_id.clone(),
                        u.id.to_string(),
                    )));
            } else {
                batch.skip("unassigned");
            }
        }
        let mut page = ParsedPage::new(batch, None);
        page.item_count = users.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(error_for(response))
    }
}
