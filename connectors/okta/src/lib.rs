//! usersync connector for Okta (Management API v1).
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O.
//!
//! What this connector does, and why:
//! - Users: `GET /api/v1/users?search=status pr&limit=200`. A plain listing omits
//!   `DEPROVISIONED` users; a `search` that matches every status returns them, so a deactivated
//!   Okta user is seen (and deactivated downstream for that reason) instead of looking like a
//!   user missing from a partial read.
//! - Groups: `GET /api/v1/groups?limit=200`, with a `search` on `type` (and `profile.name` when
//!   group names are configured). Members: `GET /api/v1/groups/{id}/users?limit=200` (the API's
//!   default of 1000 times out on large groups). Okta groups do not nest.
//! - Paging follows `Link: <...>; rel="next"` verbatim, from any of several `Link` header values
//!   or several links in one value, and only to the configured origin (credentials never go to
//!   another host).
//! - Errors: Okta's `errorCode` decides (`E0000047` throttled, `E0000011` invalid token,
//!   `E0000006` forbidden, `E0000007` not found); throttling waits are computed from
//!   `X-Rate-Limit-Reset` against the response's own `Date`.

pub mod api;
pub mod delta;
pub mod map;
mod plugin;

use serde_json::json;
use usersync_sdk::model::Record;
use usersync_sdk::paging::{
    join_url, link_next, parse_json, redact_url, PageParser, PagedCursor, Paging, ParsedPage,
};
use usersync_sdk::query::Operation;
use usersync_sdk::{
    AssertionAlg, AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, Connector, ConnectorError,
    Cursor, Endpoint, HttpRequest, HttpResponse, Manifest, OptionSpec, OptionType, Options, Query, Session,
    ABI_VERSION,
};

use crate::api::{ApiGroup, ApiMember, ApiUser};
use crate::map::{AuthKind, ErrorContext, GROUP_TYPES};

/// The connector id (permanent; config files refer to it).
pub const ID: &str = "okta";

/// Page size for every listing: the documented maximum (and default) for `/api/v1/users`, and
/// Okta's recommended limit for `/api/v1/groups` and `/api/v1/groups/{id}/users`.
pub const DEFAULT_PAGE_SIZE: u64 = 200;

/// Largest page size accepted (the `/api/v1/users` maximum).
pub const MAX_PAGE_SIZE: u64 = 200;

/// The `search` expression that matches users of every status, DEPROVISIONED included.
pub const ALL_USERS_SEARCH: &str = "status pr";

/// OAuth scope for reading users (`/api/v1/users`, `/api/v1/users/{id}`, `/api/v1/users/{id}/groups`).
pub const SCOPE_USERS: &str = "okta.users.read";

/// OAuth scope for reading groups and their members.
pub const SCOPE_GROUPS: &str = "okta.groups.read";

/// Most group names accepted in `group_names` (Okta rejects overly long search expressions).
pub const MAX_GROUP_NAMES: usize = 100;

/// Default of `manager_match`: `profile.managerId` is an Okta user id, else a login.
pub const DEFAULT_MANAGER_MATCH: [&str; 2] = ["id", "login"];

/// The Okta connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct OktaConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(OktaConnector)
}

fn endpoint(method: &str, path: &str, purpose: &str, operation: Operation) -> Endpoint {
    Endpoint {
        method: method.into(),
        url: format!("https://{{oktaDomain}}{path}"),
        purpose: purpose.into(),
        operation,
    }
}

/// The manifest (see [`Connector::manifest`]).
pub fn manifest() -> Manifest {
    Manifest {
        id: ID.into(),
        name: "Okta".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION,
        auth: vec![
            AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description: "API token (Security > API > Tokens) sent as `Authorization: SSWS <token>`; it acts \
                              with the admin roles of the admin who created it (Read-Only Administrator is enough)"
                    .into(),
            },
            AuthFlowSpec {
                flow: AuthFlowKind::ClientCredentialsAssertion,
                token_url: Some("https://{oktaDomain}/oauth2/v1/token".into()),
                authorize_url: None,
                scopes: vec![SCOPE_USERS.into(), SCOPE_GROUPS.into()],
                description: "OAuth 2.0 service app: client credentials with a private_key_jwt assertion, \
                              DPoP-bound tokens (with the DPoP-Nonce retry) when the app requires DPoP; tokens \
                              last one hour. The app needs the scopes granted and an admin role assigned"
                    .into(),
            },
        ],
        endpoints: vec![
            endpoint(
                "POST",
                "/oauth2/v1/token",
                "Request an access token for the OAuth service app (private_key_jwt client assertion, DPoP proof)",
                Operation::Token,
            ),
            endpoint(
                "GET",
                "/api/v1/users",
                "Fetching information for all users (`search=status pr` so DEPROVISIONED users are included, \
                 `limit=200`, Link rel=\"next\" paging)",
                Operation::ListUsers,
            ),
            endpoint(
                "GET",
                "/api/v1/users/{userid}",
                "Fetching information for a single user",
                Operation::GetUser,
            ),
            endpoint(
                "GET",
                "/api/v1/users/{userid}",
                "Fetch the manager of a specific user (profile.managerId of the single-user read)",
                Operation::UserManager,
            ),
            endpoint(
                "GET",
                "/api/v1/users/{userid}/groups",
                "Fetch groups for specific user",
                Operation::UserGroups,
            ),
            endpoint(
                "GET",
                "/api/v1/groups",
                "Fetch all groups (required for processing the groupnames if required groups are configured; \
                 `limit=200`, `search` on type and profile.name)",
                Operation::ListGroups,
            ),
            endpoint(
                "GET",
                "/api/v1/users",
                "Incremental runs: users changed since the last run (`search=lastUpdated gt \"T\"`, T = Okta's \
                 `Date` at the previous read minus 5 minutes; DEPROVISIONED users included)",
                Operation::UsersDelta,
            ),
            endpoint(
                "GET",
                "/api/v1/groups",
                "Incremental runs: groups changed since the last run (`search=lastUpdated gt \"T\" or \
                 lastMembershipUpdated gt \"T\"`); their members are re-read",
                Operation::GroupsDelta,
            ),
            endpoint(
                "GET",
                "/api/v1/groups/{groupid}/users",
                "Fetch members of a specific group (`limit=200`: the default of 1000 times out on large groups)",
                Operation::GroupMembers,
            ),
        ],
        capabilities: Capabilities {
            transitive_membership: false,
            nested_groups: false,
            roles_as_groups: false,
            manager: true,
            photos: false,
            incremental: true,
            ..Capabilities::default()
        },
        options: vec![
            OptionSpec::new(
                "domain",
                OptionType::String,
                false,
                "Your Okta org domain, e.g. `acme.okta.com` (or a custom domain such as `login.acme.com`): the \
                 address of your Okta sign-in page without `https://` and without `-admin`. Required unless \
                 `base_url` is set",
            ),
            OptionSpec::new(
                "base_url",
                OptionType::Url,
                false,
                "Override of `https://{domain}` for tests, the local emulator or an HTTPS proxy (plain http is \
                 accepted only for localhost)",
            ),
            OptionSpec::new(
                "api_token",
                OptionType::String,
                false,
                "API token (Admin Console > Security > API > Tokens > Create token). Set either this or \
                 `client_id` + `private_key`",
            )
            .secret(),
            OptionSpec::new(
                "client_id",
                OptionType::String,
                false,
                "Client ID of the OAuth 2.0 API Services app (Admin Console > Applications > your app > General)",
            ),
            OptionSpec::new(
                "private_key",
                OptionType::Pem,
                false,
                "PEM private key whose public key is registered in the service app (General > Client \
                 Credentials > Public Keys)",
            )
            .secret(),
            OptionSpec::new(
                "key_id",
                OptionType::String,
                false,
                "The `kid` Okta shows for that public key; sent in the assertion header (needed when the app has \
                 several keys)",
            ),
            OptionSpec::new(
                "signing_alg",
                OptionType::String,
                false,
                "Assertion signature algorithm matching the key: `RS256` (RSA key) or `ES256` (P-256 key)",
            )
            .default_value(json!("RS256")),
            OptionSpec::new(
                "dpop",
                OptionType::Bool,
                false,
                "Bind tokens with DPoP proofs. Keep true when the app's \"Require Demonstrating Proof of \
                 Possession (DPoP) header in token requests\" box is checked (the default for new apps)",
            )
            .default_value(json!(true)),
            OptionSpec::new(
                "scopes",
                OptionType::StringList,
                false,
                "OAuth scopes to request; grant the same ones on the app's Okta API Scopes tab",
            )
            .default_value(json!([SCOPE_USERS, SCOPE_GROUPS])),
            OptionSpec::new(
                "group_types",
                OptionType::StringList,
                false,
                "Group types to sync: OKTA_GROUP (managed in Okta, incl. group rules), APP_GROUP (imported from \
                 AD, LDAP or apps), BUILT_IN (e.g. Everyone)",
            )
            .default_value(json!(["OKTA_GROUP", "APP_GROUP"])),
            OptionSpec::new(
                "group_names",
                OptionType::StringList,
                false,
                "Only sync groups with these names (profile.name, compared without regard to case as Okta's \
                 search does); empty: every group of the selected types. At most 100 names",
            )
            .default_value(json!([])),
            OptionSpec::new(
                "page_size",
                OptionType::Integer,
                false,
                "Objects per page, 1-200 (200 is the users maximum and Okta's recommended limit for groups and \
                 members)",
            )
            .default_value(json!(DEFAULT_PAGE_SIZE)),
            OptionSpec::new(
                "manager_match",
                OptionType::StringList,
                false,
                "How `profile.managerId` names the manager, tried in order: `id` (an Okta user id), `login`, \
                 `email`, or any profile attribute such as `employeeNumber` (real orgs often fill managerId \
                 from HR with an employee number or free text). A value that matches no user (or several) \
                 sets no manager; the raw value stays in attribute `managerId`",
            )
            .default_value(json!(DEFAULT_MANAGER_MATCH)),
        ],
        // Okta has per-endpoint per-minute buckets plus an org-wide concurrency limit shared with
        // every other integration of the org: keep in-flight requests modest.
        default_concurrency: 4,
    }
}

impl Connector for OktaConnector {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(OktaSession::new(options)?))
    }
}

/// Which groups a session syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSelection {
    /// Group types, upper case, from [`GROUP_TYPES`].
    pub types: Vec<String>,
    /// Exact group names; empty: all.
    pub names: Vec<String>,
}

impl GroupSelection {
    /// The `search` expression selecting these groups server side; `None` when every group is
    /// wanted (then the plain, strongly consistent listing is used).
    pub fn search(&self) -> Option<String> {
        let all_types = GROUP_TYPES.iter().all(|t| self.types.iter().any(|s| s == t));
        let types = (!all_types).then(|| {
            self.types
                .iter()
                .map(|t| format!("type eq \"{t}\""))
                .collect::<Vec<_>>()
                .join(" or ")
        });
        let names = (!self.names.is_empty()).then(|| {
            self.names
                .iter()
                .map(|n| format!("profile.name eq \"{}\"", escape_search_value(n)))
                .collect::<Vec<_>>()
                .join(" or ")
        });
        match (types, names) {
            (None, None) => None,
            (Some(t), None) => Some(t),
            (None, Some(n)) => Some(n),
            (Some(t), Some(n)) => Some(format!("({t}) and ({n})")),
        }
    }

    /// Why a group the API returned is not synced (a skip-count key), or `None` to keep it.
    /// Also applied client side, so a server that ignored the search cannot widen the sync.
    pub fn skip_reason(&self, group: &ApiGroup) -> Option<String> {
        if let Some(t) = group.group_type.as_deref() {
            if !self.types.iter().any(|s| s == t) {
                return Some(format!("group_type:{t}"));
            }
        }
        if !self.names.is_empty() {
            // Okta's search compares string values without regard to case; so does this check.
            let name = group
                .profile
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_lowercase();
            if !self.names.iter().any(|n| n.to_lowercase() == name) {
                return Some("group_name_not_selected".into());
            }
        }
        None
    }
}

/// Escape a string for a double-quoted value in an Okta (SCIM-style) search expression.
fn escape_search_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A validated connection to one Okta org.
#[derive(Debug, Clone)]
pub struct OktaSession {
    base: String,
    auth: AuthPlan,
    auth_kind: AuthKind,
    page_size: u64,
    groups: GroupSelection,
    /// `manager_match`, as the host's lookup keys (see [`map::manager_keys`]).
    manager_keys: Vec<String>,
}

impl OktaSession {
    /// Validate options into a session (no I/O).
    pub fn new(options: &Options) -> Result<Self, ConnectorError> {
        let base = resolve_base(options)?;
        let (auth, auth_kind) = resolve_auth(options, &base)?;
        let page_size = options.u64("page_size").unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ConnectorError::config(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE} (got {page_size})"),
            ));
        }
        let groups = resolve_groups(options)?;
        let manager_keys = match options.values().get("manager_match") {
            Some(_) => options.list("manager_match"),
            None => DEFAULT_MANAGER_MATCH.iter().map(|s| s.to_string()).collect(),
        };
        let manager_keys = map::manager_keys(&manager_keys)
            .map_err(|reason| ConnectorError::config("manager_match", reason))?;
        Ok(OktaSession {
            base,
            auth,
            auth_kind,
            page_size,
            groups,
            manager_keys,
        })
    }

    /// The base URL (`https://{domain}` or the override), without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The group selection.
    pub fn groups(&self) -> &GroupSelection {
        &self.groups
    }

    fn url(&self, segments: &[&str], params: &[(&str, &str)]) -> Result<String, ConnectorError> {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        let joined = join_url(&self.base, &all)?;
        let mut url =
            url::Url::parse(&joined).map_err(|e| ConnectorError::config("base_url", e.to_string()))?;
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(url.to_string())
    }

    fn cursor(
        &self,
        url: String,
        paging: Paging,
        kind: Kind,
        what: String,
        scope: &'static str,
    ) -> Box<dyn Cursor> {
        let origin = url::Url::parse(&self.base)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let parser = OktaParser {
            kind,
            ctx: ErrorContext {
                what,
                scope,
                auth: self.auth_kind,
            },
            origin,
            manager_keys: self.manager_keys.clone(),
        };
        Box::new(PagedCursor::new(HttpRequest::get(url), paging, parser))
    }
}

fn require_id<'a>(what: &str, id: &'a str) -> Result<&'a str, ConnectorError> {
    if id.trim().is_empty() {
        return Err(ConnectorError::protocol(format!("empty {what} id in query")));
    }
    Ok(id)
}

impl Session for OktaSession {
    fn auth_plan(&self) -> AuthPlan {
        self.auth.clone()
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let limit = self.page_size.to_string();
        let limit = limit.as_str();
        Ok(match query {
            Query::ListUsers => self.cursor(
                self.url(&["users"], &[("search", ALL_USERS_SEARCH), ("limit", limit)])?,
                Paging::LinkHeader,
                Kind::Users,
                "GET /api/v1/users".into(),
                SCOPE_USERS,
            ),
            Query::GetUser { user_id } => self.cursor(
                self.url(&["users", require_id("user", user_id)?], &[])?,
                Paging::Single,
                Kind::User,
                format!("GET /api/v1/users/{user_id}"),
                SCOPE_USERS,
            ),
            Query::UserManager { user_id } => self.cursor(
                self.url(&["users", require_id("user", user_id)?], &[])?,
                Paging::Single,
                Kind::Manager {
                    user_id: user_id.clone(),
                },
                format!("GET /api/v1/users/{user_id}"),
                SCOPE_USERS,
            ),
            Query::UserGroups { user_id } => self.cursor(
                self.url(&["users", require_id("user", user_id)?, "groups"], &[])?,
                Paging::LinkHeader,
                Kind::UserGroups {
                    user_id: user_id.clone(),
                    groups: self.groups.clone(),
                },
                format!("GET /api/v1/users/{user_id}/groups"),
                SCOPE_USERS,
            ),
            Query::ListGroups => {
                let search = self.groups.search();
                let mut params = vec![("limit", limit)];
                if let Some(s) = search.as_deref() {
                    params.push(("search", s));
                }
                self.cursor(
                    self.url(&["groups"], &params)?,
                    Paging::LinkHeader,
                    Kind::Groups {
                        groups: self.groups.clone(),
                    },
                    "GET /api/v1/groups".into(),
                    SCOPE_GROUPS,
                )
            }
            Query::GroupMembers { group_id } => self.cursor(
                self.url(
                    &["groups", require_id("group", group_id)?, "users"],
                    &[("limit", limit)],
                )?,
                Paging::LinkHeader,
                Kind::Members {
                    group_id: group_id.clone(),
                },
                format!("GET /api/v1/groups/{group_id}/users"),
                SCOPE_GROUPS,
            ),
            Query::UsersDelta { since } => self.users_delta(since.as_deref(), limit)?,
            Query::GroupsDelta { since } => self.groups_delta(since.as_deref(), limit)?,
            other => {
                return Err(ConnectorError::Unsupported {
                    operation: other.operation().as_str().into(),
                })
            }
        })
    }
}

impl OktaSession {
    fn users_delta(&self, since: Option<&str>, limit: &str) -> Result<Box<dyn Cursor>, ConnectorError> {
        let since = delta::CLOCK.since(since);
        let inner = match since.time() {
            None => self.cursor(
                self.url(&["users"], &[("limit", "1")])?,
                Paging::Single,
                Kind::Users,
                "GET /api/v1/users (the feed's current time)".into(),
                SCOPE_USERS,
            ),
            Some(t) => {
                let search = format!("lastUpdated gt \"{}\"", delta::iso_millis(t));
                self.cursor(
                    self.url(&["users"], &[("search", search.as_str()), ("limit", limit)])?,
                    Paging::LinkHeader,
                    Kind::Users,
                    "GET /api/v1/users (changed since the last run)".into(),
                    SCOPE_USERS,
                )
            }
        };
        Ok(Box::new(delta::TimestampCursor::new(inner, delta::CLOCK, since)))
    }

    fn groups_delta(&self, since: Option<&str>, limit: &str) -> Result<Box<dyn Cursor>, ConnectorError> {
        let since = delta::CLOCK.since(since);
        let inner = match since.time() {
            None => self.cursor(
                self.url(&["groups"], &[("limit", "1")])?,
                Paging::Single,
                Kind::Groups {
                    groups: self.groups.clone(),
                },
                "GET /api/v1/groups (the feed's current time)".into(),
                SCOPE_GROUPS,
            ),
            Some(t) => {
                let at = delta::iso_millis(t);
                let changed = format!("(lastUpdated gt \"{at}\" or lastMembershipUpdated gt \"{at}\")");
                let search = match self.groups.search() {
                    Some(sel) => format!("({sel}) and {changed}"),
                    None => changed,
                };
                self.cursor(
                    self.url(&["groups"], &[("search", search.as_str()), ("limit", limit)])?,
                    Paging::LinkHeader,
                    Kind::Groups {
                        groups: self.groups.clone(),
                    },
                    "GET /api/v1/groups (changed since the last run)".into(),
                    SCOPE_GROUPS,
                )
            }
        };
        Ok(Box::new(
            delta::TimestampCursor::new(inner, delta::CLOCK, since).with_member_rereads(),
        ))
    }
}

/// Resolve `domain` / `base_url` into the base URL.
fn resolve_base(options: &Options) -> Result<String, ConnectorError> {
    if let Some(raw) = options.str("base_url").map(str::trim).filter(|s| !s.is_empty()) {
        let url = url::Url::parse(raw).map_err(|e| {
            ConnectorError::config("base_url", format!("`{raw}` is not an absolute URL: {e}"))
        })?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(ConnectorError::config(
                    "base_url",
                    format!("`{raw}` uses plain http; only https is accepted except for localhost"),
                ))
            }
            s => {
                return Err(ConnectorError::config(
                    "base_url",
                    format!("unsupported scheme `{s}` in `{raw}`"),
                ))
            }
        }
        if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(ConnectorError::config(
                "base_url",
                format!("`{raw}` must be a host (and optional path prefix) without a query or fragment"),
            ));
        }
        return Ok(url.as_str().trim_end_matches('/').to_string());
    }
    let raw = options
        .str("domain")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConnectorError::config(
                "domain",
                "is required (your Okta org domain, e.g. `acme.okta.com`)",
            )
        })?;
    if raw.starts_with("http://") {
        return Err(ConnectorError::config(
            "domain",
            format!("`{raw}`: Okta is only reachable over https"),
        ));
    }
    let host = raw.strip_prefix("https://").unwrap_or(raw).trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ', '{', '}']) {
        return Err(ConnectorError::config(
            "domain",
            format!("`{raw}` is not a domain: give only the host name, e.g. `acme.okta.com`"),
        ));
    }
    if let Some((org, rest)) = host.split_once('.') {
        if let Some(plain) = org.strip_suffix("-admin") {
            return Err(ConnectorError::config(
                "domain",
                format!("`{raw}` is the Admin Console address; the API uses `{plain}.{rest}`"),
            ));
        }
    }
    let url = url::Url::parse(&format!("https://{host}"))
        .map_err(|e| ConnectorError::config("domain", format!("`{raw}` is not a valid domain: {e}")))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Resolve the credentials into an auth plan (secrets only named by option).
fn resolve_auth(options: &Options, base: &str) -> Result<(AuthPlan, AuthKind), ConnectorError> {
    let token = options.has_secret("api_token");
    let client_id = options.str("client_id").map(str::trim).filter(|s| !s.is_empty());
    let key = options.has_secret("private_key");
    if token && (client_id.is_some() || key) {
        return Err(ConnectorError::config(
            "api_token",
            "set either `api_token` or `client_id` + `private_key` (OAuth service app), not both",
        ));
    }
    if token {
        return Ok((
            AuthPlan::ApiToken {
                header: "Authorization".into(),
                scheme: "SSWS".into(),
                secret_option: "api_token".into(),
            },
            AuthKind::ApiToken,
        ));
    }
    let client_id =
        match (client_id, key) {
            (Some(id), true) => id,
            (Some(_), false) => {
                return Err(ConnectorError::config(
                    "private_key",
                    "is required with `client_id` (the PEM key of the service app's registered public key)",
                ))
            }
            (None, true) => {
                return Err(ConnectorError::config(
                    "client_id",
                    "is required with `private_key`",
                ));
            }
            (None, false) => return Err(ConnectorError::config(
                "api_token",
                "no credentials: set `api_token`, or `client_id` and `private_key` for an OAuth service app",
            )),
        };
    let alg = match options
        .str("signing_alg")
        .unwrap_or("RS256")
        .trim()
        .to_ascii_uppercase()
        .as_str()
    {
        "RS256" => AssertionAlg::RS256,
        "ES256" => AssertionAlg::ES256,
        other => {
            return Err(ConnectorError::config(
                "signing_alg",
                format!("`{other}` is not supported; use RS256 (RSA key) or ES256 (P-256 key)"),
            ))
        }
    };
    let mut scopes = options.list("scopes");
    if scopes.is_empty() {
        scopes = vec![SCOPE_USERS.into(), SCOPE_GROUPS.into()];
    }
    for s in &scopes {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(ConnectorError::config(
                "scopes",
                format!("`{s}` is not a scope name"),
            ));
        }
    }
    let key_id = options
        .str("key_id")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from);
    Ok((
        AuthPlan::ClientCredentialsAssertion {
            token_url: format!("{base}/oauth2/v1/token"),
            client_id: client_id.to_string(),
            key_option: "private_key".into(),
            cert_option: None,
            key_id,
            alg,
            scopes,
            dpop: options.bool("dpop").unwrap_or(true),
        },
        AuthKind::OAuth,
    ))
}

/// Resolve `group_types` and `group_names`.
fn resolve_groups(options: &Options) -> Result<GroupSelection, ConnectorError> {
    let raw_types = match options.values().get("group_types") {
        Some(_) => options.list("group_types"),
        None => vec!["OKTA_GROUP".into(), "APP_GROUP".into()],
    };
    let mut types = Vec::new();
    for t in raw_types {
        let up = t.trim().to_ascii_uppercase();
        if !GROUP_TYPES.contains(&up.as_str()) {
            return Err(ConnectorError::config(
                "group_types",
                format!("unknown group type `{t}` (known: {})", GROUP_TYPES.join(", ")),
            ));
        }
        if !types.contains(&up) {
            types.push(up);
        }
    }
    if types.is_empty() {
        return Err(ConnectorError::config(
            "group_types",
            "must name at least one group type",
        ));
    }
    let names = options.list("group_names");
    if names.len() > MAX_GROUP_NAMES {
        return Err(ConnectorError::config(
            "group_names",
            format!(
                "at most {MAX_GROUP_NAMES} names (got {}); Okta rejects overly long searches",
                names.len()
            ),
        ));
    }
    if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
        return Err(ConnectorError::config(
            "group_names",
            format!("entry {} is empty", i + 1),
        ));
    }
    Ok(GroupSelection { types, names })
}

/// What a cursor is reading.
#[derive(Debug, Clone)]
enum Kind {
    Users,
    User,
    Manager { user_id: String },
    UserGroups { user_id: String, groups: GroupSelection },
    Groups { groups: GroupSelection },
    Members { group_id: String },
}

/// Parses every Okta page; one instance per cursor.
struct OktaParser {
    kind: Kind,
    ctx: ErrorContext,
    /// `scheme://host:port` of the base URL: next links must stay on it.
    origin: String,
    /// How `profile.managerId` is resolved.
    manager_keys: Vec<String>,
}

impl OktaParser {
    fn protocol(&self, msg: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::protocol(format!("{}: {msg}", self.ctx.what))
    }

    /// Refuse a next link to another origin before the cursor follows it: the host attaches
    /// credentials to every request.
    fn check_next(&self, response: &HttpResponse) -> Result<(), ConnectorError> {
        let Some(next) = link_next(response)? else {
            return Ok(());
        };
        let url = url::Url::parse(&next).map_err(|e| {
            self.protocol(format!(
                "next link `{}` is not an absolute URL: {e}",
                redact_url(&next)
            ))
        })?;
        let origin = url.origin().ascii_serialization();
        if origin != self.origin {
            return Err(self.protocol(format!(
                "next link points to `{origin}`, not the configured `{}`; refusing to send credentials there",
                self.origin
            )));
        }
        Ok(())
    }

    fn items(&self, response: &HttpResponse) -> Result<Vec<serde_json::Value>, ConnectorError> {
        parse_json::<Vec<serde_json::Value>>(response, &self.ctx.what)
    }

    fn item<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        v: serde_json::Value,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let id = v.get("id").and_then(|x| x.as_str()).unwrap_or("?").to_string();
        serde_json::from_value(v)
            .map_err(|e| self.protocol(format!("{what} #{i} (id `{id}`) is malformed: {e}")))
    }

    fn users(&self, response: &HttpResponse) -> Result<Batch, ConnectorError> {
        let mut records = Vec::new();
        for (i, v) in self.items(response)?.into_iter().enumerate() {
            let api: ApiUser = self.item(i, v, "user")?;
            records.push(Record::User(
                map::user(api, &self.manager_keys).map_err(|e| self.protocol(e))?,
            ));
        }
        Ok(Batch::of(records))
    }

    fn groups(&self, response: &HttpResponse, selection: &GroupSelection) -> Result<Batch, ConnectorError> {
        let mut batch = Batch::default();
        for (i, v) in self.items(response)?.into_iter().enumerate() {
            let api: ApiGroup = self.item(i, v, "group")?;
            if let Some(reason) = selection.skip_reason(&api) {
                batch.skip(&reason);
                continue;
            }
            batch
                .records
                .push(Record::Group(map::group(api).map_err(|e| self.protocol(e))?));
        }
        Ok(batch)
    }
}

impl PageParser for OktaParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let batch = match &self.kind {
            Kind::Users => {
                self.check_next(response)?;
                self.users(response)?
            }
            Kind::User => {
                let api: ApiUser = parse_json(response, &self.ctx.what)?;
                Batch::of(vec![Record::User(
                    map::user(api, &self.manager_keys).map_err(|e| self.protocol(e))?,
                )])
            }
            Kind::Manager { user_id } => {
                let api: ApiUser = parse_json(response, &self.ctx.what)?;
                Batch::of(vec![Record::Manager {
                    user_id: user_id.clone(),
                    manager: map::manager(&api, &self.manager_keys),
                }])
            }
            Kind::Groups { groups } => {
                self.check_next(response)?;
                self.groups(response, groups)?
            }
            Kind::UserGroups { user_id, groups } => {
                self.check_next(response)?;
                let mut batch = Batch::default();
                for (i, v) in self.items(response)?.into_iter().enumerate() {
                    let api: ApiGroup = self.item(i, v, "group")?;
                    if let Some(reason) = groups.skip_reason(&api) {
                        batch.skip(&reason);
                        continue;
                    }
                    batch
                        .records
                        .push(Record::Membership(usersync_sdk::model::Membership::direct_user(
                            api.id, user_id,
                        )));
                }
                batch
            }
            Kind::Members { group_id } => {
                self.check_next(response)?;
                let mut records = Vec::new();
                for (i, v) in self.items(response)?.into_iter().enumerate() {
                    let m: ApiMember = self.item(i, v, "member")?;
                    if m.id.trim().is_empty() {
                        return Err(self.protocol(format!("member #{i} has an empty id")));
                    }
                    records.push(Record::Membership(usersync_sdk::model::Membership::direct_user(
                        group_id, m.id,
                    )));
                }
                Batch::of(records)
            }
        };
        Ok(ParsedPage::new(batch, None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        match (map::error(response, &self.ctx), &self.kind) {
            // "Not found" is harmless for one object (a user or group deleted meanwhile), but a
            // whole listing cannot be missing: read as "no users" it would deactivate everyone.
            (ConnectorError::NotFound { detail }, Kind::Users | Kind::Groups { .. }) => Err(self.protocol(
                format!("the listing endpoint does not exist ({detail}); check `domain` / `base_url`"),
            )),
            (e, _) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
