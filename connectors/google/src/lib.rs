//! usersync connector for Google Workspace (Admin SDK Directory API).
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O.
//!
//! - Users: `GET {base}/users?customer=..&maxResults=500&projection=full&fields=..` paged by
//!   `pageToken`; status from `suspended`/`archived`; manager from `relations[type=manager]`.
//! - Groups: `GET {base}/groups?customer=..&maxResults=200`; a user's direct groups with
//!   `groups?userKey=..`; direct members with `groups/{groupKey}/members?maxResults=200`.
//!   Nested groups are closed by the host (`nested_groups`).
//! - Photos: `GET {base}/users/{userKey}/photos/thumbnail`, web-safe base64 decoded; 404 = none.

pub mod api;
pub mod map;
mod plugin;

use usersync_model::Record;
use usersync_sdk::paging::{join_url, parse_json, redact_url};
use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, Connector, ConnectorError, Cursor, Endpoint,
    HttpRequest, HttpResponse, Manifest, OptionSpec, OptionType, Options, PageParser, PagedCursor, Paging,
    ParsedPage, Query, Session, ABI_VERSION,
};
use usersync_sdk::{Method, Operation};

use crate::api::{GroupsPage, MembersPage, UsersPage, WirePhoto, WireUser};
use crate::map::Needs;

/// Default Directory API base URL (the seed's; `https://admin.googleapis.com/admin/directory/v1`
/// serves the same API).
pub const DEFAULT_BASE_URL: &str = "https://www.googleapis.com/admin/directory/v1";
/// Token endpoint from the seed, used for the authorization code / refresh token flow.
pub const DEFAULT_TOKEN_URL: &str = "https://www.googleapis.com/oauth2/v4/token";
/// Token endpoint of the service-account flow: Google documents that the assertion's `aud`
/// "is always `https://oauth2.googleapis.com/token`" when requesting an access token.
pub const SERVICE_ACCOUNT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Authorization endpoint from the seed.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// `customer` alias for the impersonated admin's own account.
pub const MY_CUSTOMER: &str = "my_customer";

/// Read-only scope for users (list, get, photo).
pub const SCOPE_USER: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// Read-only scope for groups.
pub const SCOPE_GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// Read-only scope for group members.
pub const SCOPE_MEMBER: &str = "https://www.googleapis.com/auth/admin.directory.group.member.readonly";

/// Page size of `users.list` (the documented maximum; default would be 100).
pub const USERS_PAGE_SIZE: u32 = 500;
/// Page size of `groups.list` and `members.list` (documented maximum 200).
pub const GROUPS_PAGE_SIZE: u32 = 200;

/// Fields read from a user (partial response, `fields=`).
pub const USER_FIELDS: &str = "id,primaryEmail,name,suspended,suspensionReason,archived,isAdmin,\
isDelegatedAdmin,orgUnitPath,customerId,creationTime,lastLoginTime,aliases,nonEditableAliases,\
organizations,relations,externalIds,phones,customSchemas,thumbnailPhotoEtag,isEnrolledIn2Sv";

const USERS_NEED: Needs = Needs {
    scope: SCOPE_USER,
    privilege: "Users > Read",
};
const GROUPS_NEED: Needs = Needs {
    scope: SCOPE_GROUP,
    privilege: "Groups > Read",
};
const MEMBERS_NEED: Needs = Needs {
    scope: SCOPE_MEMBER,
    privilege: "Groups > Read",
};

/// The Google Workspace connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoogleConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(GoogleConnector)
}

fn scopes() -> Vec<String> {
    vec![SCOPE_USER.into(), SCOPE_GROUP.into(), SCOPE_MEMBER.into()]
}

fn endpoint(method: Method, path: &str, purpose: &str, operation: Operation) -> Endpoint {
    Endpoint {
        method: method.as_str().into(),
        url: if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{DEFAULT_BASE_URL}{path}")
        },
        purpose: purpose.into(),
        operation,
    }
}

/// The manifest (also used by tests and docs).
pub fn manifest() -> Manifest {
    use Method::{Get, Post};
    use Operation as Op;
    Manifest {
        id: "google".into(),
        name: "Google Workspace".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION,
        auth: vec![
            AuthFlowSpec {
                flow: AuthFlowKind::JwtBearer,
                token_url: Some(SERVICE_ACCOUNT_TOKEN_URL.into()),
                authorize_url: None,
                scopes: scopes(),
                description: "Service account with domain-wide delegation, impersonating an administrator \
                              (`admin_email`); recommended for unattended sync."
                    .into(),
            },
            AuthFlowSpec {
                flow: AuthFlowKind::AuthorizationCode,
                token_url: Some(DEFAULT_TOKEN_URL.into()),
                authorize_url: Some(DEFAULT_AUTHORIZE_URL.into()),
                scopes: scopes(),
                description: "OAuth client; an administrator signs in once (`usersync auth login`) and the \
                              refresh token is stored. Refresh tokens of apps in \"Testing\" expire after 7 days."
                    .into(),
            },
        ],
        endpoints: vec![
            endpoint(Get, DEFAULT_AUTHORIZE_URL, "Request OAuth2 authorization", Op::Authorize),
            endpoint(Post, DEFAULT_TOKEN_URL, "Request and refresh access token", Op::Token),
            endpoint(
                Post,
                SERVICE_ACCOUNT_TOKEN_URL,
                "Access token for the service account (JWT bearer, domain-wide delegation): Google requires this \
                 URL as the assertion's `aud`",
                Op::Token,
            ),
            endpoint(
                Get,
                "/users",
                "Fetching information for all users (customer or domain, maxResults=500, projection=full, \
                 pageToken)",
                Op::ListUsers,
            ),
            endpoint(Get, "/users/{userid}", "Fetching information for a single user", Op::GetUser),
            endpoint(
                Get,
                "/users/{userid}",
                "Manager of a user (relations[type=manager]), read from the user's record: Google has no \
                 manager endpoint",
                Op::UserManager,
            ),
            endpoint(
                Get,
                "/users/{userid}/photos/thumbnail",
                "Fetch profile picture for specific user",
                Op::UserPhoto,
            ),
            endpoint(
                Get,
                "/groups",
                "Fetch groups for specific user (groups?userKey=..., direct memberships only)",
                Op::UserGroups,
            ),
            endpoint(
                Get,
                "/groups",
                "List every group of the account (groups?customer=...&maxResults=200)",
                Op::ListGroups,
            ),
            endpoint(
                Get,
                "/groups/{groupKey}/members",
                "Direct members of a group (users, nested groups, CUSTOMER = all users)",
                Op::GroupMembers,
            ),
        ],
        capabilities: Capabilities {
            transitive_membership: false,
            nested_groups: true,
            roles_as_groups: false,
            manager: true,
            photos: true,
            incremental: false,
            ..Capabilities::default()
        },
        options: vec![
            OptionSpec::new(
                "auth_flow",
                OptionType::String,
                false,
                "`service_account` (JWT bearer with domain-wide delegation, recommended) or \
                 `authorization_code` (an OAuth client and an administrator's stored refresh token).",
            )
            .default_value("service_account".into()),
            OptionSpec::new(
                "service_account_key",
                OptionType::String,
                false,
                "The service account's JSON key file (Google Cloud console > IAM & Admin > Service accounts > \
                 Keys > Add key > JSON). Required for `service_account`.",
            )
            .secret(),
            OptionSpec::new(
                "service_account_email",
                OptionType::String,
                false,
                "The service account's email (`client_email`); read from the key file when not set.",
            ),
            OptionSpec::new(
                "admin_email",
                OptionType::String,
                false,
                "Email of a Workspace administrator with read access to users and groups, impersonated by the \
                 service account (JWT `sub`). Required for `service_account`; without it Google answers 403 \
                 \"Not Authorized to access this resource/api\".",
            ),
            OptionSpec::new(
                "client_id",
                OptionType::String,
                false,
                "OAuth client id (Google Cloud console > APIs & Services > Credentials). Required for \
                 `authorization_code`.",
            ),
            OptionSpec::new(
                "client_secret",
                OptionType::String,
                false,
                "OAuth client secret of `client_id`. Required for `authorization_code`.",
            )
            .secret(),
            OptionSpec::new(
                "customer",
                OptionType::String,
                false,
                "Customer id (Admin console > Account > Account settings > Customer ID, e.g. `C01abc23d`) or \
                 `my_customer` for the administrator's own account. Lists every domain of the account.",
            )
            .default_value(MY_CUSTOMER.into()),
            OptionSpec::new(
                "domain",
                OptionType::String,
                false,
                "Sync only this domain (e.g. `example.com`) instead of the whole customer account. Do not set \
                 together with a `customer` other than `my_customer`.",
            ),
            OptionSpec::new(
                "base_url",
                OptionType::Url,
                false,
                "Directory API base URL. `https://admin.googleapis.com/admin/directory/v1` serves the same API.",
            )
            .default_value(DEFAULT_BASE_URL.into()),
            OptionSpec::new(
                "token_url",
                OptionType::Url,
                false,
                "OAuth2 token endpoint (also the service account assertion's `aud`). Default: \
                 `https://oauth2.googleapis.com/token` for `service_account`, \
                 `https://www.googleapis.com/oauth2/v4/token` for `authorization_code`.",
            ),
            OptionSpec::new(
                "authorize_url",
                OptionType::Url,
                false,
                "OAuth2 authorization endpoint (used by `usersync auth login` for `authorization_code`).",
            )
            .default_value(DEFAULT_AUTHORIZE_URL.into()),
        ],
        default_concurrency: 6,
    }
}

impl Connector for GoogleConnector {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(GoogleSession::from_options(options)?))
    }
}

/// Which users and groups a session lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A customer id or `my_customer` (every domain of the account).
    Customer(String),
    /// One domain.
    Domain(String),
}

/// A validated Google Workspace connection.
#[derive(Debug, Clone)]
pub struct GoogleSession {
    base_url: String,
    scope: Scope,
    auth: AuthPlan,
}

fn url_option(options: &Options, name: &str, default: &str) -> Result<String, ConnectorError> {
    let v = options.str(name).unwrap_or(default).trim();
    let parsed =
        url::Url::parse(v).map_err(|e| ConnectorError::config(name, format!("`{v}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(ConnectorError::config(
            name,
            format!("`{v}` must be an https URL"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConnectorError::config(
            name,
            format!("`{v}` must not have a query or fragment"),
        ));
    }
    Ok(v.trim_end_matches('/').to_string())
}

fn opt_str<'a>(options: &'a Options, name: &str) -> Option<&'a str> {
    options.str(name).map(str::trim).filter(|s| !s.is_empty())
}

fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}

impl GoogleSession {
    /// Validate options (no I/O).
    pub fn from_options(options: &Options) -> Result<Self, ConnectorError> {
        let base_url = url_option(options, "base_url", DEFAULT_BASE_URL)?;
        let authorize_url = url_option(options, "authorize_url", DEFAULT_AUTHORIZE_URL)?;
        let customer = opt_str(options, "customer").unwrap_or(MY_CUSTOMER);
        let scope = match opt_str(options, "domain") {
            Some(domain) if customer != MY_CUSTOMER => {
                return Err(ConnectorError::config(
                    "domain",
                    format!("set either `customer` (`{customer}`) or `domain` (`{domain}`), not both"),
                ))
            }
            Some(domain) if domain.contains(['/', '?', '@', ' ']) || !domain.contains('.') => {
                return Err(ConnectorError::config(
                    "domain",
                    format!("`{domain}` is not a domain name"),
                ))
            }
            Some(domain) => Scope::Domain(domain.to_ascii_lowercase()),
            None if customer.contains(['/', '?', '&', ' ']) => {
                return Err(ConnectorError::config(
                    "customer",
                    format!("`{customer}` is not a customer id"),
                ))
            }
            None => Scope::Customer(customer.to_string()),
        };
        let flow = opt_str(options, "auth_flow").unwrap_or("service_account");
        let auth = match flow {
            "service_account" => {
                let token_url = url_option(options, "token_url", SERVICE_ACCOUNT_TOKEN_URL)?;
                let admin = options.require_str("admin_email").map_err(|_| {
                    ConnectorError::config(
                        "admin_email",
                        "is required for `service_account`: the administrator the service account \
                         impersonates (domain-wide delegation)",
                    )
                })?;
                if !looks_like_email(admin.trim()) {
                    return Err(ConnectorError::config(
                        "admin_email",
                        format!("`{admin}` is not an email address"),
                    ));
                }
                if !options.has_secret("service_account_key") {
                    return Err(ConnectorError::config(
                        "service_account_key",
                        "is required for `service_account`: the service account's JSON key file (as a secret)",
                    ));
                }
                let issuer = opt_str(options, "service_account_email").map(String::from);
                if let Some(iss) = &issuer {
                    if !looks_like_email(iss) {
                        return Err(ConnectorError::config(
                            "service_account_email",
                            format!("`{iss}` is not an email address"),
                        ));
                    }
                }
                AuthPlan::JwtBearer {
                    token_url,
                    key_option: "service_account_key".into(),
                    issuer,
                    subject: admin.trim().to_string(),
                    scopes: scopes(),
                }
            }
            "authorization_code" => {
                let token_url = url_option(options, "token_url", DEFAULT_TOKEN_URL)?;
                let client_id = options.require_str("client_id").map_err(|_| {
                    ConnectorError::config(
                        "client_id",
                        "is required for `authorization_code`: the OAuth client id",
                    )
                })?;
                if !options.has_secret("client_secret") {
                    return Err(ConnectorError::config(
                        "client_secret",
                        "is required for `authorization_code`: the OAuth client secret (as a secret)",
                    ));
                }
                AuthPlan::RefreshToken {
                    authorize_url,
                    token_url,
                    client_id: client_id.trim().to_string(),
                    secret_option: "client_secret".into(),
                    scopes: scopes(),
                }
            }
            other => {
                return Err(ConnectorError::config(
                    "auth_flow",
                    format!("`{other}` is not one of `service_account`, `authorization_code`"),
                ))
            }
        };
        Ok(GoogleSession {
            base_url,
            scope,
            auth,
        })
    }

    /// The users/groups scope of this session.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String, ConnectorError> {
        let base = format!("{}/", self.base_url);
        let joined = join_url(&base, segments)?;
        let mut u =
            url::Url::parse(&joined).map_err(|e| ConnectorError::config("base_url", e.to_string()))?;
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(u.to_string())
    }

    fn scope_param(&self) -> (&'static str, &str) {
        match &self.scope {
            Scope::Customer(c) => ("customer", c.as_str()),
            Scope::Domain(d) => ("domain", d.as_str()),
        }
    }

    fn paged(&self, url: String, parser: Parser) -> Box<dyn Cursor> {
        Box::new(PagedCursor::new(
            HttpRequest::get(url),
            Paging::PageToken {
                param: "pageToken".into(),
            },
            parser,
        ))
    }

    fn single(&self, url: String, parser: Parser) -> Box<dyn Cursor> {
        Box::new(PagedCursor::new(HttpRequest::get(url), Paging::Single, parser))
    }
}

fn require_key<'a>(what: &str, key: &'a str) -> Result<&'a str, ConnectorError> {
    let k = key.trim();
    if k.is_empty() {
        return Err(ConnectorError::protocol(format!("{what}: empty key")));
    }
    Ok(k)
}

impl Session for GoogleSession {
    fn auth_plan(&self) -> AuthPlan {
        self.auth.clone()
    }

    fn base_urls(&self) -> Vec<String> {
        let mut urls = vec![self.base_url.clone()];
        match &self.auth {
            AuthPlan::JwtBearer { token_url, .. } => urls.push(token_url.clone()),
            AuthPlan::RefreshToken {
                authorize_url,
                token_url,
                ..
            } => {
                urls.push(token_url.clone());
                urls.push(authorize_url.clone());
            }
            _ => {}
        }
        urls
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let max_users = USERS_PAGE_SIZE.to_string();
        let max_groups = GROUPS_PAGE_SIZE.to_string();
        match query {
            Query::ListUsers => {
                let (k, v) = self.scope_param();
                let fields = format!("nextPageToken,users({USER_FIELDS})");
                let url = self.url(
                    &["users"],
                    &[
                        (k, v),
                        ("maxResults", &max_users),
                        ("projection", "full"),
                        ("fields", &fields),
                    ],
                )?;
                Ok(self.paged(url, Parser::Users))
            }
            Query::GetUser { user_id } => {
                let key = require_key("get_user", user_id)?;
                let url = self.url(
                    &["users", key],
                    &[("projection", "full"), ("fields", USER_FIELDS)],
                )?;
                Ok(self.single(url, Parser::User))
            }
            Query::UserManager { user_id } => {
                let key = require_key("user_manager", user_id)?;
                let url = self.url(
                    &["users", key],
                    &[("projection", "full"), ("fields", "id,relations")],
                )?;
                Ok(self.single(url, Parser::Manager { user_id: key.into() }))
            }
            Query::UserPhoto { user_id } => {
                let key = require_key("user_photo", user_id)?;
                let url = self.url(&["users", key, "photos", "thumbnail"], &[])?;
                Ok(self.single(url, Parser::Photo { user_id: key.into() }))
            }
            Query::ListGroups => {
                let (k, v) = self.scope_param();
                let fields =
                    "nextPageToken,groups(id,email,name,description,directMembersCount,adminCreated,\
                              aliases,nonEditableAliases)";
                let url = self.url(
                    &["groups"],
                    &[(k, v), ("maxResults", &max_groups), ("fields", fields)],
                )?;
                Ok(self.paged(url, Parser::Groups))
            }
            Query::UserGroups { user_id } => {
                let key = require_key("user_groups", user_id)?;
                // `userKey` cannot be combined with `customer` (discovery doc).
                let url = self.url(
                    &["groups"],
                    &[
                        ("userKey", key),
                        ("maxResults", &max_groups),
                        ("fields", "nextPageToken,groups(id)"),
                    ],
                )?;
                Ok(self.paged(url, Parser::UserGroups { user_id: key.into() }))
            }
            Query::GroupMembers { group_id } => {
                let key = require_key("group_members", group_id)?;
                let url = self.url(
                    &["groups", key, "members"],
                    &[
                        ("maxResults", &max_groups),
                        ("fields", "nextPageToken,members(id,email,role,type,status)"),
                    ],
                )?;
                Ok(self.paged(url, Parser::Members { group_id: key.into() }))
            }
            other => Err(ConnectorError::Unsupported {
                operation: other.operation().as_str().into(),
            }),
        }
    }
}

/// The page parser of each query.
#[derive(Debug, Clone)]
enum Parser {
    Users,
    User,
    Manager { user_id: String },
    Photo { user_id: String },
    Groups,
    UserGroups { user_id: String },
    Members { group_id: String },
}

impl Parser {
    fn what(&self) -> String {
        match self {
            Parser::Users => "GET users (list)".into(),
            Parser::User => "GET users/{userKey}".into(),
            Parser::Manager { user_id } => format!("GET users/{user_id} (manager)"),
            Parser::Photo { user_id } => format!("GET users/{user_id}/photos/thumbnail"),
            Parser::Groups => "GET groups (list)".into(),
            Parser::UserGroups { user_id } => format!("GET groups?userKey={user_id}"),
            Parser::Members { group_id } => format!("GET groups/{group_id}/members"),
        }
    }

    fn needs(&self) -> Needs {
        match self {
            Parser::Users | Parser::User | Parser::Manager { .. } | Parser::Photo { .. } => USERS_NEED,
            Parser::Groups | Parser::UserGroups { .. } => GROUPS_NEED,
            Parser::Members { .. } => MEMBERS_NEED,
        }
    }
}

impl PageParser for Parser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let what = self.what();
        match self {
            Parser::Users => {
                let page: UsersPage = parse_json(response, &what)?;
                let n = page.users.len();
                let records = page
                    .users
                    .into_iter()
                    .map(|u| map::map_user(u).map(Record::User))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(Batch::of(records), page.next_page_token, n))
            }
            Parser::User => {
                let user: WireUser = parse_json(response, &what)?;
                Ok(ParsedPage::new(
                    Batch::of(vec![Record::User(map::map_user(user)?)]),
                    None,
                ))
            }
            Parser::Manager { user_id } => {
                let user: WireUser = parse_json(response, &what)?;
                let record = Record::Manager {
                    user_id: user_id.clone(),
                    manager: map::manager_of(&user),
                };
                Ok(ParsedPage::new(Batch::of(vec![record]), None))
            }
            Parser::Photo { user_id } => {
                let photo: WirePhoto = parse_json(response, &what)?;
                let records = map::map_photo(user_id, photo)?
                    .map(Record::Photo)
                    .into_iter()
                    .collect();
                Ok(ParsedPage::new(Batch::of(records), None))
            }
            Parser::Groups => {
                let page: GroupsPage = parse_json(response, &what)?;
                let n = page.groups.len();
                let records = page
                    .groups
                    .into_iter()
                    .map(|g| map::map_group(g).map(Record::Group))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(Batch::of(records), page.next_page_token, n))
            }
            Parser::UserGroups { user_id } => {
                let page: GroupsPage = parse_json(response, &what)?;
                let n = page.groups.len();
                let mut batch = Batch::default();
                for g in page.groups {
                    match g.id.filter(|id| !id.is_empty()) {
                        Some(gid) => {
                            batch
                                .records
                                .push(Record::Membership(usersync_model::Membership::direct_user(
                                    gid,
                                    user_id.clone(),
                                )))
                        }
                        None => {
                            return Err(ConnectorError::protocol(format!(
                                "{what}: a group in the response has no `id`"
                            )))
                        }
                    }
                }
                Ok(page_of(batch, page.next_page_token, n))
            }
            Parser::Members { group_id } => {
                let page: MembersPage = parse_json(response, &what)?;
                let n = page.members.len();
                let mut batch = Batch::default();
                for m in &page.members {
                    match map::map_member(group_id, m) {
                        Ok(ms) => batch.records.push(Record::Membership(ms)),
                        Err(kind) => batch.skip(&kind),
                    }
                }
                Ok(page_of(batch, page.next_page_token, n))
            }
        }
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        // A user without a photo: 404 means "no photo", not an error.
        if matches!(self, Parser::Photo { .. }) && response.status == 404 {
            return Ok(ParsedPage::new(Batch::default(), None));
        }
        Err(map::map_error(response, &redact_url(&self.what()), self.needs()))
    }
}

fn page_of(batch: Batch, next: Option<String>, item_count: usize) -> ParsedPage {
    ParsedPage {
        batch,
        next: next.filter(|t| !t.is_empty()),
        item_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_valid_and_covers_the_seed() {
        let m = manifest();
        m.validate().expect("valid manifest");
        let seed = [
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://www.googleapis.com/oauth2/v4/token",
            "https://www.googleapis.com/admin/directory/v1/users",
            "https://www.googleapis.com/admin/directory/v1/users/{userid}",
            "https://www.googleapis.com/admin/directory/v1/users/{userid}/photos/thumbnail",
            "https://www.googleapis.com/admin/directory/v1/groups",
        ];
        for url in seed {
            assert!(
                m.endpoints.iter().any(|e| e.url == url),
                "seed endpoint {url} missing"
            );
        }
    }

    fn opts(pairs: &[(&str, &str)], secrets: &[&str]) -> Result<Options, ConnectorError> {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        Options::validate(
            &manifest(),
            values,
            secrets.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn open(pairs: &[(&str, &str)], secrets: &[&str]) -> Result<Box<dyn Session>, ConnectorError> {
        GoogleConnector.open(&opts(pairs, secrets)?)
    }

    fn config_option(r: Result<Box<dyn Session>, ConnectorError>) -> String {
        match r {
            Err(ConnectorError::Config { option, .. }) => option,
            Err(e) => panic!("expected a config error, got {e}"),
            Ok(_) => panic!("expected a config error, got a session"),
        }
    }

    #[test]
    fn service_account_plan_impersonates_the_admin() {
        let s = open(&[("admin_email", "admin@example.com")], &["service_account_key"]).unwrap();
        assert_eq!(
            s.auth_plan(),
            AuthPlan::JwtBearer {
                token_url: SERVICE_ACCOUNT_TOKEN_URL.into(),
                key_option: "service_account_key".into(),
                issuer: None,
                subject: "admin@example.com".into(),
                scopes: scopes(),
            }
        );
        assert_eq!(
            s.base_urls(),
            vec![
                DEFAULT_BASE_URL.to_string(),
                SERVICE_ACCOUNT_TOKEN_URL.to_string()
            ]
        );
    }

    #[test]
    fn authorization_code_plan_uses_the_seed_urls() {
        let s = open(
            &[
                ("auth_flow", "authorization_code"),
                ("client_id", "123.apps.googleusercontent.com"),
            ],
            &["client_secret"],
        )
        .unwrap();
        match s.auth_plan() {
            AuthPlan::RefreshToken {
                authorize_url,
                token_url,
                client_id,
                secret_option,
                scopes: sc,
            } => {
                assert_eq!(authorize_url, DEFAULT_AUTHORIZE_URL);
                assert_eq!(token_url, DEFAULT_TOKEN_URL);
                assert_eq!(client_id, "123.apps.googleusercontent.com");
                assert_eq!(secret_option, "client_secret");
                assert_eq!(sc, scopes());
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }

    #[test]
    fn bad_options_are_config_errors_naming_the_option() {
        assert_eq!(config_option(open(&[], &["service_account_key"])), "admin_email");
        assert_eq!(
            config_option(open(&[("admin_email", "admin")], &["service_account_key"])),
            "admin_email"
        );
        assert_eq!(
            config_option(open(&[("admin_email", "a@example.com")], &[])),
            "service_account_key"
        );
        assert_eq!(
            config_option(open(
                &[("admin_email", "a@example.com"), ("auth_flow", "magic")],
                &[]
            )),
            "auth_flow"
        );
        assert_eq!(
            config_option(open(
                &[("auth_flow", "authorization_code"), ("client_id", "x")],
                &[]
            )),
            "client_secret"
        );
        assert_eq!(
            config_option(open(&[("auth_flow", "authorization_code")], &["client_secret"])),
            "client_id"
        );
        let both = [
            ("admin_email", "a@example.com"),
            ("customer", "C01"),
            ("domain", "example.com"),
        ];
        assert_eq!(config_option(open(&both, &["service_account_key"])), "domain");
        let bad_domain = [("admin_email", "a@example.com"), ("domain", "example")];
        assert_eq!(
            config_option(open(&bad_domain, &["service_account_key"])),
            "domain"
        );
        let bad_url = [
            ("admin_email", "a@example.com"),
            ("base_url", "ftp://x.example/v1"),
        ];
        assert_eq!(
            config_option(open(&bad_url, &["service_account_key"])),
            "base_url"
        );
    }

    #[test]
    fn base_url_override_is_used_for_every_request() {
        let s = open(
            &[
                ("admin_email", "a@example.com"),
                ("base_url", "http://127.0.0.1:9/admin/directory/v1/"),
            ],
            &["service_account_key"],
        )
        .unwrap();
        let mut c = s
            .query(&Query::GroupMembers {
                group_id: "g 1".into(),
            })
            .unwrap();
        let url = c.next_request().unwrap().url;
        assert!(
            url.starts_with("http://127.0.0.1:9/admin/directory/v1/groups/g%201/members?maxResults=200"),
            "{url}"
        );
    }

    #[test]
    fn server_side_transitive_queries_are_unsupported() {
        let s = open(&[("admin_email", "a@example.com")], &["service_account_key"]).unwrap();
        for q in [
            Query::UserTransitiveGroups { user_id: "u".into() },
            Query::GroupTransitiveMembers { group_id: "g".into() },
            Query::GroupChildren { group_id: "g".into() },
            Query::ListRoles,
            Query::RoleMembers { role_id: "r".into() },
        ] {
            assert!(
                matches!(s.query(&q), Err(ConnectorError::Unsupported { .. })),
                "{q:?}"
            );
        }
        for q in [
            Query::ListUsers,
            Query::GetUser { user_id: "u".into() },
            Query::UserManager { user_id: "u".into() },
            Query::UserGroups { user_id: "u".into() },
            Query::UserPhoto { user_id: "u".into() },
            Query::ListGroups,
            Query::GroupMembers { group_id: "g".into() },
        ] {
            assert!(s.query(&q).is_ok(), "{q:?}");
            assert!(manifest().supports(q.operation()), "{q:?} not in manifest");
        }
    }

    #[test]
    fn error_leaves_the_cursor_on_the_same_request() {
        let s = open(&[("admin_email", "a@example.com")], &["service_account_key"]).unwrap();
        let mut c = s.query(&Query::ListUsers).unwrap();
        let first = c.next_request();
        let throttled = HttpResponse::new(
            403,
            r#"{"error":{"code":403,"message":"x","errors":[{"reason":"userRateLimitExceeded","domain":"usageLimits"}]}}"#,
        );
        assert!(c.on_response(throttled).unwrap_err().is_retryable());
        assert_eq!(c.next_request(), first);
    }
}
