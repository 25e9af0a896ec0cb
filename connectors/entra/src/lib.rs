//! usersync connector for Microsoft Entra ID, through Microsoft Graph.
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O. App-only access
//! (client credentials with a client secret or a certificate); users, groups, direct and
//! server-side transitive memberships, managers and photos.

pub mod api;
pub mod delta;
pub mod map;
mod plugin;

use serde_json::json;
use usersync_sdk::model::Record;
use usersync_sdk::paging::parse_json;
use usersync_sdk::{
    AssertionAlg, AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, ClientAuth, Connector,
    ConnectorError, Cursor, Endpoint, HttpRequest, HttpResponse, Manifest, Operation, OptionSpec, OptionType,
    Options, PageParser, PagedCursor, Paging, ParsedPage, Query, Session, ABI_VERSION,
};

use crate::api::{CollectionPage, DirectoryObject, GraphGroup, GraphUser, ProfilePhoto};
use crate::map::ErrorContext;

/// Default Microsoft Graph base URL (global cloud).
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
/// Default Microsoft identity platform base URL (global cloud).
pub const DEFAULT_LOGIN_BASE_URL: &str = "https://login.microsoftonline.com";
/// Largest `$top` Graph accepts on users, groups and member lists.
pub const MAX_PAGE_SIZE: u64 = 999;

/// Properties `$select`ed on every user. `accountEnabled`, `department`, `userType` and most
/// others are not returned without `$select`. Kept under ~25 names (very long `$select` lists
/// have produced 400s on next links).
pub const USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "userType",
    "externalUserState",
    "department",
    "jobTitle",
    "employeeId",
    "employeeType",
    "companyName",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "mailNickname",
    "preferredLanguage",
    "usageLocation",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesSyncEnabled",
    "createdDateTime",
];

/// Properties `$select`ed on every group.
pub const GROUP_SELECT: &[&str] = &[
    "id",
    "displayName",
    "description",
    "mail",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "membershipRule",
    "visibility",
    "isAssignableToRole",
    "onPremisesSyncEnabled",
    "onPremisesSamAccountName",
    "createdDateTime",
];

/// Permission names used in `Forbidden` errors and docs.
const PERM_USERS: &str = "User.Read.All";
const PERM_GROUPS: &str = "Group.Read.All (or GroupMember.Read.All)";
const PERM_MEMBERS: &str = "GroupMember.Read.All";
const PERM_MEMBER_OF: &str = "GroupMember.Read.All (Directory.Read.All to see directory roles)";

/// The Microsoft Entra ID connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct EntraConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(EntraConnector)
}

const G: &str = "https://graph.microsoft.com/{apiVersion}";

fn ep(url: &str, purpose: &str, operation: Operation) -> Endpoint {
    Endpoint {
        method: "GET".into(),
        url: url.replace("{G}", G),
        purpose: purpose.into(),
        operation,
    }
}

fn manifest() -> Manifest {
    let token_url = "https://login.microsoftonline.com/{directoryTenantId}/oauth2/v2.0/token";
    let scopes = vec!["https://graph.microsoft.com/.default".to_string()];
    Manifest {
        id: "entra".into(),
        name: "Microsoft Entra ID".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION,
        auth: vec![
            AuthFlowSpec {
                flow: AuthFlowKind::ClientCredentialsSecret,
                token_url: Some(token_url.into()),
                authorize_url: None,
                scopes: scopes.clone(),
                description: "App-only access with a client secret of the app registration (option `client_secret`)."
                    .into(),
            },
            AuthFlowSpec {
                flow: AuthFlowKind::ClientCredentialsAssertion,
                token_url: Some(token_url.into()),
                authorize_url: None,
                scopes,
                description: "App-only access with a certificate: a PS256 client assertion signed with \
                              `client_certificate_key`, `x5t#S256` from `client_certificate`. Preferred over a secret."
                    .into(),
            },
        ],
        endpoints: vec![
            Endpoint {
                method: "POST".into(),
                url: token_url.into(),
                purpose: "Request and refresh access token".into(),
                operation: Operation::Token,
            },
            ep(
                "{G}/users",
                "Fetching information for all users ($select of the synced attributes, $top=999, \
                 $expand=manager($select=id) so managers come with the listing)",
                Operation::ListUsers,
            ),
            ep("{G}/users/{userid}", "Fetching information for a single user", Operation::GetUser),
            ep(
                "{G}/users/{userid}/manager",
                "Fetch assigned manager of a specific user (404 Request_ResourceNotFound means no manager)",
                Operation::UserManager,
            ),
            ep("{G}/users/{userid}/memberOf", "Fetch groups for specific user", Operation::UserGroups),
            ep(
                "{G}/users/{userid}/photos",
                "Fetch profile picture for specific user (lists the available sizes)",
                Operation::UserPhoto,
            ),
            ep(
                "{G}/users/{userid}/photo/$value",
                "Fetch profile picture for specific user (the image bytes, largest size)",
                Operation::UserPhoto,
            ),
            ep(
                "{G}/users/{userid}/photos/{size}/$value",
                "Fetch profile picture for specific user in the configured `photo_size`",
                Operation::UserPhoto,
            ),
            ep(
                "{G}/users/{userid}/transitiveMemberOf",
                "Fetch groups including transitive group memberships for specific users",
                Operation::UserTransitiveGroups,
            ),
            ep(
                "{G}/groups",
                "Fetch all groups (required for processing the groupnames if required groups are configured)",
                Operation::ListGroups,
            ),
            ep("{G}/groups/{groupid}/members", "Fetch members of a specific group", Operation::GroupMembers),
            ep(
                "{G}/groups/{groupid}/transitiveMembers",
                "Fetch members of a specific group including transitive group memberships",
                Operation::GroupTransitiveMembers,
            ),
            ep(
                "{G}/users/delta",
                "Incremental runs: users changed since the stored delta link ($select of the synced attributes \
                 and manager; $deltatoken=latest before a full run; @removed for deleted users)",
                Operation::UsersDelta,
            ),
            ep(
                "{G}/groups/delta",
                "Incremental runs: groups and their members changed since the stored delta link \
                 ($select=...,members: members@delta; $deltatoken=latest before a full run)",
                Operation::GroupsDelta,
            ),
        ],
        capabilities: Capabilities {
            transitive_membership: true,
            // group member listings return nested groups, stored as group-in-group memberships
            nested_groups: true,
            roles_as_groups: false,
            manager: true,
            photos: true,
            incremental: true,
            memberships_in_user_listing: false,
        },
        options: vec![
            OptionSpec::new(
                "tenant_id",
                OptionType::String,
                true,
                "Directory (tenant) ID: Entra admin center > Identity > Overview, or the app registration's \
                 Overview page. A GUID or a verified domain such as contoso.onmicrosoft.com.",
            ),
            OptionSpec::new(
                "client_id",
                OptionType::String,
                true,
                "Application (client) ID of the app registration (its Overview page).",
            ),
            OptionSpec::new(
                "client_secret",
                OptionType::String,
                false,
                "Client secret Value (not its Secret ID) from the app registration's Certificates & secrets \
                 page. Set this or `client_certificate_key`, not both.",
            )
            .secret(),
            OptionSpec::new(
                "client_certificate_key",
                OptionType::Pem,
                false,
                "PEM private key of a certificate uploaded to the app registration (Certificates & secrets > \
                 Certificates). Needs `client_certificate`.",
            )
            .secret(),
            OptionSpec::new(
                "client_certificate",
                OptionType::Pem,
                false,
                "PEM certificate (public part) matching `client_certificate_key`, usually `{ file = \"app.crt\" }`; \
                 its SHA-256 thumbprint goes into the assertion's `x5t#S256` header.",
            )
            .secret(),
            OptionSpec::new(
                "api_version",
                OptionType::String,
                false,
                "Microsoft Graph version: `v1.0` (recommended) or `beta`.",
            )
            .default_value(json!("v1.0")),
            OptionSpec::new(
                "graph_base_url",
                OptionType::Url,
                false,
                "Microsoft Graph root for the tenant's cloud: https://graph.microsoft.com (global), \
                 https://graph.microsoft.us (US Gov L4), https://dod-graph.microsoft.us (US Gov L5), \
                 https://microsoftgraph.chinacloudapi.cn (21Vianet).",
            )
            .default_value(json!(DEFAULT_GRAPH_BASE_URL)),
            OptionSpec::new(
                "login_base_url",
                OptionType::Url,
                false,
                "Microsoft identity platform root for the tenant's cloud: https://login.microsoftonline.com \
                 (global), https://login.microsoftonline.us (US Gov), https://login.chinacloudapi.cn (21Vianet).",
            )
            .default_value(json!(DEFAULT_LOGIN_BASE_URL)),
            OptionSpec::new(
                "page_size",
                OptionType::Integer,
                false,
                "`$top` for users, groups and member lists, 1-999. Graph caps a users page at 100 while \
                 managers are expanded.",
            )
            .default_value(json!(MAX_PAGE_SIZE)),
            OptionSpec::new(
                "extra_user_attributes",
                OptionType::StringList,
                false,
                "More user properties to $select and keep as attributes, e.g. `extension_<appIdWithoutDashes>_costCenter`, \
                 `onPremisesExtensionAttributes`, `employeeOrgData`.",
            ),
            OptionSpec::new(
                "user_filter",
                OptionType::String,
                false,
                "OData $filter for the user listing, e.g. `userType eq 'Member'`. Users outside it are \
                 treated as gone by the sync (deactivated), so change it with care.",
            ),
            OptionSpec::new(
                "advanced_query",
                OptionType::Bool,
                false,
                "Send `ConsistencyLevel: eventual` and `$count=true` with the user listing (needed for filters \
                 with endsWith, ne, not). Graph cannot expand managers then, so they are fetched per user.",
            )
            .default_value(json!(false)),
            OptionSpec::new(
                "photo_size",
                OptionType::String,
                false,
                "Photo size to download, e.g. `240x240` (48x48 ... 648x648). Default: the largest available.",
            ),
        ],
        default_concurrency: 8,
    }
}

impl Connector for EntraConnector {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(EntraSession::from_options(options)?))
    }
}

/// How the app authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Secret,
    Certificate,
}

/// A validated connection to one tenant.
#[derive(Debug, Clone)]
pub struct EntraSession {
    tenant_id: String,
    client_id: String,
    credential: Credential,
    /// `https://graph.microsoft.com` (no trailing slash).
    graph_base: String,
    /// `https://login.microsoftonline.com` (no trailing slash).
    login_base: String,
    api_version: String,
    page_size: u64,
    user_select: Vec<String>,
    user_filter: Option<String>,
    advanced_query: bool,
    photo_size: Option<String>,
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base_url(options: &Options, name: &str, default: &str) -> Result<String, ConnectorError> {
    let raw = options.str(name).unwrap_or(default).trim();
    let parsed = url::Url::parse(raw)
        .map_err(|e| ConnectorError::config(name, format!("`{raw}` is not a URL: {e}")))?;
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        other => {
            return Err(ConnectorError::config(
                name,
                format!("must be an https URL (http only for a local emulator), found scheme `{other}`"),
            ))
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConnectorError::config(
            name,
            "must not have a query string or fragment",
        ));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

fn valid_tenant(t: &str) -> bool {
    let is_guid = t.len() == 36
        && t.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let is_domain = t.contains('.')
        && !t.starts_with('.')
        && !t.ends_with('.')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    is_guid || is_domain
}

impl EntraSession {
    /// Validate options (no I/O).
    pub fn from_options(options: &Options) -> Result<Self, ConnectorError> {
        let tenant_id = options.require_str("tenant_id")?.trim().to_string();
        if ["common", "organizations", "consumers"].contains(&tenant_id.to_ascii_lowercase().as_str()) {
            return Err(ConnectorError::config(
                "tenant_id",
                format!(
                    "`{tenant_id}` is a multi-tenant alias; app-only access needs the Directory (tenant) ID"
                ),
            ));
        }
        if !valid_tenant(&tenant_id) {
            return Err(ConnectorError::config(
                "tenant_id",
                format!("`{tenant_id}` is neither a GUID nor a domain name"),
            ));
        }
        let client_id = options.require_str("client_id")?.trim().to_string();
        let has_secret = options.has_secret("client_secret");
        let has_key = options.has_secret("client_certificate_key");
        let has_cert =
            options.str("client_certificate").is_some() || options.has_secret("client_certificate");
        let credential = match (has_secret, has_key) {
            (true, true) => {
                return Err(ConnectorError::config(
                    "client_secret",
                    "set either `client_secret` or `client_certificate_key`, not both",
                ))
            }
            (true, false) => Credential::Secret,
            (false, true) if has_cert => Credential::Certificate,
            (false, true) => {
                return Err(ConnectorError::config(
                    "client_certificate",
                    "is required with `client_certificate_key` (its thumbprint identifies the key to Entra)",
                ))
            }
            (false, false) => return Err(ConnectorError::config(
                "client_secret",
                "no credential: set `client_secret`, or `client_certificate_key` and `client_certificate`",
            )),
        };
        let api_version = options.str("api_version").unwrap_or("v1.0").trim().to_string();
        if api_version != "v1.0" && api_version != "beta" {
            return Err(ConnectorError::config(
                "api_version",
                format!("`{api_version}` is not a Graph version: use `v1.0` or `beta`"),
            ));
        }
        let page_size = options.u64("page_size").unwrap_or(MAX_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ConnectorError::config(
                "page_size",
                format!("{page_size} is outside 1-{MAX_PAGE_SIZE} (Graph's maximum $top)"),
            ));
        }
        let mut user_select: Vec<String> = USER_SELECT.iter().map(|s| s.to_string()).collect();
        for extra in options.list("extra_user_attributes") {
            let extra = extra.trim().to_string();
            if extra.is_empty() || !extra.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConnectorError::config(
                    "extra_user_attributes",
                    format!("`{extra}` is not a property name (letters, digits and `_` only)"),
                ));
            }
            if extra == "manager" {
                return Err(ConnectorError::config(
                    "extra_user_attributes",
                    "`manager` is a relationship, fetched already; remove it",
                ));
            }
            if !user_select.contains(&extra) {
                user_select.push(extra);
            }
        }
        let user_filter = options
            .str("user_filter")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let photo_size = options
            .str("photo_size")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        if let Some(size) = &photo_size {
            let ok = size
                .split_once('x')
                .is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok());
            if !ok {
                return Err(ConnectorError::config(
                    "photo_size",
                    format!("`{size}` is not a size like `240x240`"),
                ));
            }
        }
        Ok(EntraSession {
            tenant_id,
            client_id,
            credential,
            graph_base: base_url(options, "graph_base_url", DEFAULT_GRAPH_BASE_URL)?,
            login_base: base_url(options, "login_base_url", DEFAULT_LOGIN_BASE_URL)?,
            api_version,
            page_size,
            user_select,
            user_filter,
            advanced_query: options.bool("advanced_query").unwrap_or(false),
            photo_size,
        })
    }

    /// `https://graph.microsoft.com/v1.0`.
    fn api_root(&self) -> String {
        format!("{}/{}", self.graph_base, self.api_version)
    }

    /// The token endpoint of the tenant.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.login_base, enc(&self.tenant_id))
    }

    /// Whether the user listing expands managers (not possible with advanced queries).
    pub fn expands_manager(&self) -> bool {
        !self.advanced_query
    }

    fn user_query(&self, with_top: bool) -> String {
        let mut q = format!("$select={}", self.user_select.join(","));
        if self.expands_manager() {
            q.push_str("&$expand=manager($select=id)");
        }
        if with_top {
            q.push_str(&format!("&$top={}", self.page_size));
        }
        q
    }

    fn list_users_request(&self) -> HttpRequest {
        let mut url = format!("{}/users?{}", self.api_root(), self.user_query(true));
        if let Some(f) = &self.user_filter {
            url.push_str(&format!("&$filter={}", enc(f)));
        }
        if self.advanced_query {
            url.push_str("&$count=true");
            HttpRequest::get(url).with_header("ConsistencyLevel", "eventual")
        } else {
            HttpRequest::get(url)
        }
    }

    fn collection(&self, path: String, what: String, permission: &'static str) -> (HttpRequest, Ctx) {
        let url = format!("{}/{path}?$select=id&$top={}", self.api_root(), self.page_size);
        (HttpRequest::get(url), self.ctx(what, permission, None))
    }

    fn ctx(&self, what: String, permission: &'static str, query_option: Option<&'static str>) -> Ctx {
        Ctx {
            err: ErrorContext {
                what,
                permission,
                query_option,
            },
            next_prefix: format!("{}/", self.graph_base),
        }
    }
}

impl Session for EntraSession {
    fn auth_plan(&self) -> AuthPlan {
        let token_url = self.token_url();
        let scopes = vec![format!("{}/.default", self.graph_base)];
        match self.credential {
            Credential::Secret => AuthPlan::ClientCredentialsSecret {
                token_url,
                client_id: self.client_id.clone(),
                secret_option: "client_secret".into(),
                client_auth: ClientAuth::FormBody,
                scopes,
            },
            Credential::Certificate => AuthPlan::ClientCredentialsAssertion {
                token_url,
                client_id: self.client_id.clone(),
                key_option: "client_certificate_key".into(),
                cert_option: Some("client_certificate".into()),
                key_id: None,
                alg: AssertionAlg::PS256,
                scopes,
                dpop: false,
            },
        }
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.login_base.clone(), self.graph_base.clone()]
    }

    fn token_error(&self, response: &HttpResponse) -> Option<ConnectorError> {
        Some(map::token_error(response))
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let cursor: Box<dyn Cursor> = match query {
            Query::ListUsers => {
                let option = self.user_filter.as_ref().map(|_| "user_filter");
                let ctx = self.ctx("listing users".into(), PERM_USERS, option);
                let parser = UsersParser {
                    ctx,
                    manager_expanded: self.expands_manager(),
                    single: false,
                };
                Box::new(PagedCursor::new(
                    self.list_users_request(),
                    Paging::ODataNextLink,
                    parser,
                ))
            }
            Query::GetUser { user_id } => {
                let url = format!(
                    "{}/users/{}?{}",
                    self.api_root(),
                    enc(user_id),
                    self.user_query(false)
                );
                let parser = UsersParser {
                    ctx: self.ctx(format!("reading user `{user_id}`"), PERM_USERS, None),
                    manager_expanded: self.expands_manager(),
                    single: true,
                };
                Box::new(PagedCursor::new(HttpRequest::get(url), Paging::Single, parser))
            }
            Query::UserManager { user_id } => {
                let url = format!("{}/users/{}/manager?$select=id", self.api_root(), enc(user_id));
                let parser = ManagerParser {
                    ctx: self.ctx(
                        format!("reading the manager of user `{user_id}`"),
                        PERM_USERS,
                        None,
                    ),
                    user_id: user_id.clone(),
                };
                Box::new(PagedCursor::new(HttpRequest::get(url), Paging::Single, parser))
            }
            Query::UserGroups { user_id } | Query::UserTransitiveGroups { user_id } => {
                let direct = matches!(query, Query::UserGroups { .. });
                let rel = if direct { "memberOf" } else { "transitiveMemberOf" };
                let (req, ctx) = self.collection(
                    format!("users/{}/{rel}", enc(user_id)),
                    format!("listing {rel} of user `{user_id}`"),
                    PERM_MEMBER_OF,
                );
                let user_id = user_id.clone();
                let parser = CollectionParser::new(ctx, move |obj: DirectoryObject, batch: &mut Batch| {
                    map::member_of(&user_id, obj, direct, batch);
                    Ok(())
                });
                Box::new(PagedCursor::new(req, Paging::ODataNextLink, parser))
            }
            Query::ListGroups => {
                let url = format!(
                    "{}/groups?$select={}&$top={}",
                    self.api_root(),
                    GROUP_SELECT.join(","),
                    self.page_size
                );
                let ctx = self.ctx("listing groups".into(), PERM_GROUPS, None);
                let parser = CollectionParser::new(ctx, |g: GraphGroup, batch: &mut Batch| {
                    batch.records.push(Record::Group(map::group(g)?));
                    Ok(())
                });
                Box::new(PagedCursor::new(
                    HttpRequest::get(url),
                    Paging::ODataNextLink,
                    parser,
                ))
            }
            Query::GroupMembers { group_id } | Query::GroupTransitiveMembers { group_id } => {
                let direct = matches!(query, Query::GroupMembers { .. });
                let rel = if direct { "members" } else { "transitiveMembers" };
                let (req, ctx) = self.collection(
                    format!("groups/{}/{rel}", enc(group_id)),
                    format!("listing {rel} of group `{group_id}`"),
                    PERM_MEMBERS,
                );
                let group_id = group_id.clone();
                let parser = CollectionParser::new(ctx, move |obj: DirectoryObject, batch: &mut Batch| {
                    map::member(&group_id, obj, direct, batch);
                    Ok(())
                });
                Box::new(PagedCursor::new(req, Paging::ODataNextLink, parser))
            }
            Query::UserPhoto { user_id } => Box::new(PhotoCursor::new(self, user_id)),
            Query::UsersDelta { since } | Query::GroupsDelta { since } => {
                delta::cursor(self, query, since.as_deref())
            }
            Query::GroupChildren { .. } | Query::ListRoles | Query::RoleMembers { .. } => {
                return Err(ConnectorError::Unsupported {
                    operation: query.operation().as_str().into(),
                })
            }
        };
        Ok(cursor)
    }
}

/// Error context plus the prefix every next link must start with (the Graph host: a next link
/// elsewhere would receive our bearer token).
#[derive(Debug, Clone)]
struct Ctx {
    err: ErrorContext,
    next_prefix: String,
}

impl Ctx {
    fn next(&self, link: Option<String>) -> Result<Option<String>, ConnectorError> {
        match link {
            Some(l) if l.starts_with(&self.next_prefix) => Ok(Some(l)),
            Some(l) => Err(ConnectorError::protocol(format!(
                "{}: @odata.nextLink `{}` is not on {}; refusing to send credentials there",
                self.err.what,
                usersync_sdk::paging::redact_url(&l),
                self.next_prefix
            ))),
            None => Ok(None),
        }
    }

    fn page<T: serde::de::DeserializeOwned>(
        &self,
        r: &HttpResponse,
    ) -> Result<CollectionPage<T>, ConnectorError> {
        parse_json(r, &self.err.what)
    }
}

/// Pages of `/users` (or one user).
struct UsersParser {
    ctx: Ctx,
    manager_expanded: bool,
    single: bool,
}

impl UsersParser {
    fn push(&self, wire: GraphUser, batch: &mut Batch) -> Result<(), ConnectorError> {
        let (user, manager) = map::user(wire, self.manager_expanded, batch)?;
        batch.records.push(Record::User(user));
        if let Some(m) = manager {
            batch.records.push(m);
        }
        Ok(())
    }
}

impl PageParser for UsersParser {
    fn parse(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let mut batch = Batch::default();
        if self.single {
            let wire: GraphUser = parse_json(r, &self.ctx.err.what)?;
            self.push(wire, &mut batch)?;
            return Ok(ParsedPage {
                batch,
                next: None,
                item_count: 1,
            });
        }
        let page: CollectionPage<GraphUser> = self.ctx.page(r)?;
        let item_count = page.value.len();
        for wire in page.value {
            self.push(wire, &mut batch)?;
        }
        Ok(ParsedPage {
            batch,
            next: self.ctx.next(page.next_link)?,
            item_count,
        })
    }

    fn on_error(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(map::graph_error(r, &self.ctx.err))
    }
}

/// Pages of a Graph collection (`/groups`, `/members`, `/memberOf`, ...): `each` turns one item
/// into records (or skip counts).
struct CollectionParser<T, F> {
    ctx: Ctx,
    each: F,
    item: std::marker::PhantomData<fn() -> T>,
}

impl<T, F> CollectionParser<T, F>
where
    T: serde::de::DeserializeOwned,
    F: FnMut(T, &mut Batch) -> Result<(), ConnectorError> + Send,
{
    fn new(ctx: Ctx, each: F) -> Self {
        CollectionParser {
            ctx,
            each,
            item: std::marker::PhantomData,
        }
    }
}

impl<T, F> PageParser for CollectionParser<T, F>
where
    T: serde::de::DeserializeOwned,
    F: FnMut(T, &mut Batch) -> Result<(), ConnectorError> + Send,
{
    fn parse(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let page: CollectionPage<T> = self.ctx.page(r)?;
        let item_count = page.value.len();
        let mut batch = Batch::default();
        for item in page.value {
            (self.each)(item, &mut batch)?;
        }
        Ok(ParsedPage {
            batch,
            next: self.ctx.next(page.next_link)?,
            item_count,
        })
    }

    fn on_error(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(map::graph_error(r, &self.ctx.err))
    }
}

/// `/users/{id}/manager`: one `Record::Manager`; 404 means "no manager".
struct ManagerParser {
    ctx: Ctx,
    user_id: String,
}

impl PageParser for ManagerParser {
    fn parse(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let obj: DirectoryObject = parse_json(r, &self.ctx.err.what)?;
        let mut batch = Batch::default();
        let manager = map::manager_ref(&obj, &mut batch);
        batch.records.push(Record::Manager {
            user_id: self.user_id.clone(),
            manager,
        });
        Ok(ParsedPage {
            batch,
            next: None,
            item_count: 1,
        })
    }

    fn on_error(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        if r.status == 404 {
            // `Request_ResourceNotFound`: no manager is set (Microsoft: "by design").
            return Ok(ParsedPage::new(
                Batch::of(vec![Record::Manager {
                    user_id: self.user_id.clone(),
                    manager: None,
                }]),
                None,
            ));
        }
        Err(map::graph_error(r, &self.ctx.err))
    }
}

/// Graph error codes that mean "this user has no photo" (no photo uploaded, or no mailbox).
const NO_PHOTO_CODES: &[&str] = &[
    "ImageNotFound",
    "ErrorItemNotFound",
    "ResourceNotFound",
    "Request_ResourceNotFound",
    "GetUserPhoto",
    "MailboxNotEnabledForRESTAPI",
    "ErrorMailboxNotEnabledForRESTAPI",
    "AuthenticationError",
    "ErrorNonExistentMailbox",
];

/// Two steps: `GET /users/{id}/photos` (which sizes exist; none: no photo), then the bytes
/// from `/photo/$value` (largest) or `/photos/{size}/$value`.
struct PhotoCursor {
    ctx: Ctx,
    user_id: String,
    api_root: String,
    preferred_size: Option<String>,
    pending: Option<HttpRequest>,
    fetching_bytes: bool,
}

impl PhotoCursor {
    fn new(session: &EntraSession, user_id: &str) -> Self {
        let api_root = session.api_root();
        let url = format!("{api_root}/users/{}/photos", enc(user_id));
        PhotoCursor {
            ctx: session.ctx(format!("reading the photo of user `{user_id}`"), PERM_USERS, None),
            user_id: user_id.to_string(),
            api_root,
            preferred_size: session.photo_size.clone(),
            pending: Some(HttpRequest::get(url)),
            fetching_bytes: false,
        }
    }

    /// 404, or 400 with a "no mailbox" code, is "no photo".
    fn no_photo(r: &HttpResponse) -> bool {
        let code = map::graph_error_code(r);
        match r.status {
            404 => true,
            400 => code.is_some_and(|c| NO_PHOTO_CODES.contains(&c.as_str())),
            _ => false,
        }
    }
}

impl Cursor for PhotoCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.pending.clone()
    }

    fn on_response(&mut self, r: HttpResponse) -> Result<Batch, ConnectorError> {
        if self.pending.is_none() {
            return Err(ConnectorError::protocol(
                "response received after the photo was read",
            ));
        }
        if !r.is_success() {
            if Self::no_photo(&r) {
                self.pending = None;
                return Ok(Batch::default());
            }
            return Err(map::graph_error(&r, &self.ctx.err));
        }
        if !self.fetching_bytes {
            let page: CollectionPage<ProfilePhoto> = self.ctx.page(&r)?;
            // `1x1` is the placeholder Graph reports when no real size exists.
            let sizes: Vec<String> = page
                .value
                .iter()
                .filter_map(|p| p.id.clone())
                .filter(|id| id != "1x1")
                .collect();
            if sizes.is_empty() {
                self.pending = None;
                return Ok(Batch::default());
            }
            let uid = enc(&self.user_id);
            let url = match &self.preferred_size {
                Some(size) if sizes.contains(size) => {
                    format!("{}/users/{uid}/photos/{}/$value", self.api_root, enc(size))
                }
                _ => format!("{}/users/{uid}/photo/$value", self.api_root),
            };
            let mut req = HttpRequest::get(url);
            req.headers = vec![("Accept".into(), "image/*".into())];
            self.pending = Some(req);
            self.fetching_bytes = true;
            return Ok(Batch::default());
        }
        let content_type = r
            .header("Content-Type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "image/jpeg".into());
        if !content_type.starts_with("image/") {
            return Err(ConnectorError::protocol(format!(
                "{}: expected image bytes, got Content-Type `{content_type}`",
                self.ctx.err.what
            )));
        }
        self.pending = None;
        if r.body.is_empty() {
            return Ok(Batch::default());
        }
        Ok(Batch::of(vec![Record::Photo(usersync_sdk::model::Photo {
            user_id: self.user_id.clone(),
            content_type,
            bytes: r.body,
        })]))
    }
}

/// Map a token endpoint error (for the host's token flow and `usersync doctor`); see
/// [`map::token_error`].
pub fn token_error(response: &HttpResponse) -> ConnectorError {
    map::token_error(response)
}
