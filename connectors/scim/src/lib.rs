//! usersync target connector for SCIM 2.0 service providers (RFC 7643 / RFC 7644).
//!
//! Sans-IO: builds requests and classifies responses; the host does all I/O. A target only:
//! [`Connector::open`] gives a session that carries the auth plan and base URL (the runtime needs
//! them) and answers every source query with `Unsupported`; the writing half is
//! [`Connector::target`] -> [`ScimTarget`] -> [`ScimSession`].
//!
//! What it does, and why (sources in docs/targets.md):
//! - Discovery: `GET /ServiceProviderConfig` (required), `GET /ResourceTypes` and `GET /Schemas`
//!   (optional: 404/501 mean "the RFC defaults"); an attribute `/Schemas` does not define, or
//!   defines as readOnly, is never written. No PATCH when `patch.supported` is false (updates become
//!   PUT of the whole managed user; membership and rename changes are refused); no lookups when
//!   `filter.supported` is false; `If-Match` only when `etag.supported` is true; the enterprise
//!   extension only when the User resource type lists it. Bulk is never sent.
//! - Users: `userName`, `name`, `displayName`, one primary work email, `active`, `externalId` = the
//!   stable source key, enterprise `employeeNumber`, `department`, `manager.value` (the
//!   manager's id in the service provider).
//! - Groups: created with `displayName` and `externalId`, without members; members follow as
//!   PATCH `add` / `remove` (`members[value eq "..."]`) in chunks of the profile's maximum.
//! - Lookups: `GET /Users?filter=userName eq "..."` (or `externalId`), `GET /Groups?filter=...`
//!   with `excludedAttributes=members`, the value escaped as a JSON string.

pub mod profile;
pub mod wire;

use serde_json::{json, Value};
use usersync_sdk::paging::retry_after_seconds;
use usersync_sdk::{
    AppObject, AuthFlowKind, AuthFlowSpec, AuthPlan, Capabilities, Connector, ConnectorError, Cursor,
    HttpRequest, HttpResponse, Lookup, Manifest, Method, ObjectKind, OptionSpec, OptionType, Options, Query,
    Session, Target, TargetCapabilities, TargetChange, TargetEndpoint, TargetListing, TargetManifest,
    TargetOperation, TargetResult, TargetSession, TargetUser, ABI_VERSION,
};

pub use crate::profile::Profile;
use crate::wire::{ResourceTypes, Schemas, ScimError, ServiceProviderConfig};

/// The connector id (permanent; config files refer to it).
pub const ID: &str = "scim";

/// Page size of a listing when `/ServiceProviderConfig` announces no `filter.maxResults`
/// (Atlassian's and Okta's default page).
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// Largest page asked for even when the service allows more (bounds one response's size).
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Option holding the bearer token.
pub const TOKEN_OPTION: &str = "token";

/// Option holding the OAuth client secret (client-credentials flow, instead of `token`).
pub const CLIENT_SECRET_OPTION: &str = "client_secret";

/// The SCIM connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScimConnector;

/// The SCIM target half.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScimTarget;

/// The connector as a trait object (for a host's built-in list).
pub fn connector() -> Box<dyn Connector> {
    Box::new(ScimConnector)
}

/// The manifest: options and auth; no source endpoints (see [`target_manifest`]).
pub fn manifest() -> Manifest {
    Manifest {
        id: ID.into(),
        name: "SCIM 2.0 service provider".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        abi_version: ABI_VERSION,
        auth: vec![AuthFlowSpec {
            flow: AuthFlowKind::ApiToken,
            token_url: None,
            authorize_url: None,
            scopes: Vec::new(),
            description:
                "Bearer token issued by the application (AWS IAM Identity Center: SCIM access token; \
                          Atlassian: the directory's SCIM API key), sent as `Authorization: Bearer <token>`"
                    .into(),
        },
        AuthFlowSpec {
            flow: AuthFlowKind::ClientCredentialsSecret,
            token_url: None,
            authorize_url: None,
            scopes: Vec::new(),
            description: "OAuth 2.0 client credentials (`token_url`, `client_id`, `client_secret`, optional \
                          `scopes`), for services that issue SCIM access through an OAuth client; the \
                          host fetches and renews the bearer token"
                .into(),
        }],
        endpoints: Vec::new(),
        capabilities: Capabilities::default(),
        options: vec![
            OptionSpec::new(
                "base_url",
                OptionType::Url,
                true,
                "The SCIM base URL, without a trailing slash: AWS \
                 `https://scim.{region}.amazonaws.com/{tenant_id}/scim/v2`, Atlassian \
                 `https://api.atlassian.com/scim/directory/{directoryId}` (plain http only for localhost)",
            ),
            OptionSpec::new(
                TOKEN_OPTION,
                OptionType::String,
                false,
                "The bearer token the application issued for provisioning (or the OAuth client options)",
            )
            .secret(),
            OptionSpec::new(
                "token_url",
                OptionType::Url,
                false,
                "OAuth client credentials: the token endpoint (with client_id and client_secret, instead of token)",
            ),
            OptionSpec::new("client_id", OptionType::String, false, "OAuth client credentials: the client id"),
            OptionSpec::new(
                CLIENT_SECRET_OPTION,
                OptionType::String,
                false,
                "OAuth client credentials: the client secret (sent with HTTP Basic)",
            )
            .secret(),
            OptionSpec::new(
                "scopes",
                OptionType::String,
                false,
                "OAuth client credentials: scopes to ask for, separated by spaces",
            ),
            OptionSpec::new(
                "profile",
                OptionType::String,
                false,
                "The service's documented limits beyond its /ServiceProviderConfig: `generic` (RFC only), \
                 `aws` (IAM Identity Center), `atlassian` (Atlassian Cloud user provisioning)",
            )
            .default_value(json!("generic")),
        ],
        default_concurrency: 4,
    }
}

fn endpoint(method: &str, path: &str, purpose: &str, operation: TargetOperation) -> TargetEndpoint {
    TargetEndpoint {
        method: method.into(),
        url: format!("{{base_url}}{path}"),
        purpose: purpose.into(),
        operation,
    }
}

/// The target declaration: the most any profile allows.
pub fn target_manifest() -> TargetManifest {
    use TargetOperation as Op;
    TargetManifest {
        capabilities: TargetCapabilities {
            operations: vec![
                Op::Discover,
                Op::Lookup,
                Op::List,
                Op::CreateUser,
                Op::UpdateUser,
                Op::DeactivateUser,
                Op::DeleteUser,
                Op::CreateGroup,
                Op::RenameGroup,
                Op::DeleteGroup,
                Op::AddMembers,
                Op::RemoveMembers,
            ],
            max_members_per_request: profile::DEFAULT_MEMBERS_PER_REQUEST,
            can_filter: true,
            can_list: true,
            etags: true,
            nested_groups: false,
        },
        endpoints: vec![
            endpoint(
                "GET",
                "/ServiceProviderConfig",
                "Read which SCIM features the service offers (PATCH, filter, ETag)",
                Op::Discover,
            ),
            endpoint(
                "GET",
                "/ResourceTypes",
                "Read the User and Group endpoints and whether users carry the enterprise extension",
                Op::Discover,
            ),
            endpoint(
                "GET",
                "/Schemas",
                "Read which User attributes the service defines (attributes it lacks are not sent)",
                Op::Discover,
            ),
            endpoint(
                "GET",
                "/Users?filter={filter}",
                "Find an existing user by userName or externalId (adopt instead of duplicating)",
                Op::Lookup,
            ),
            endpoint(
                "GET",
                "/Groups?filter={filter}&excludedAttributes=members",
                "Find an existing group by displayName or externalId",
                Op::Lookup,
            ),
            endpoint(
                "GET",
                "/Users?startIndex={n}&count={page}",
                "List every user, page by page (page size from filter.maxResults)",
                Op::List,
            ),
            endpoint(
                "GET",
                "/Groups?startIndex={n}&count={page}&excludedAttributes=members",
                "List every group, page by page",
                Op::List,
            ),
            endpoint("POST", "/Users", "Create a user", Op::CreateUser),
            endpoint(
                "PATCH",
                "/Users/{id}",
                "Change a user's attributes; deactivate (active=false)",
                Op::UpdateUser,
            ),
            endpoint(
                "PUT",
                "/Users/{id}",
                "Replace a user's attributes (only when the service offers no PATCH)",
                Op::UpdateUser,
            ),
            endpoint("DELETE", "/Users/{id}", "Delete a user", Op::DeleteUser),
            endpoint(
                "POST",
                "/Groups",
                "Create a group (without members)",
                Op::CreateGroup,
            ),
            endpoint(
                "PATCH",
                "/Groups/{id}",
                "Add or remove members (chunked); rename a group",
                Op::AddMembers,
            ),
            endpoint("DELETE", "/Groups/{id}", "Delete a group", Op::DeleteGroup),
        ],
    }
}

/// Validated options shared by both halves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    base_url: String,
    profile: Profile,
    auth: AuthPlan,
}

fn settings(options: &Options) -> Result<Settings, ConnectorError> {
    let raw = options.require_str("base_url")?;
    let parsed = url::Url::parse(raw)
        .map_err(|e| ConnectorError::config("base_url", format!("`{raw}` is not an absolute URL: {e}")))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConnectorError::config(
            "base_url",
            format!("`{raw}` must not carry a query or fragment"),
        ));
    }
    let profile_name = options.str("profile").unwrap_or("generic");
    let profile = Profile::parse(profile_name).ok_or_else(|| {
        ConnectorError::config(
            "profile",
            format!("`{profile_name}` is not one of generic, aws, atlassian"),
        )
    })?;
    let auth = if options.has_secret(CLIENT_SECRET_OPTION) {
        if options.has_secret(TOKEN_OPTION) {
            return Err(ConnectorError::config(
                TOKEN_OPTION,
                "give either token or the OAuth client options (token_url, client_id, client_secret), not both",
            ));
        }
        let token_url = options.require_str("token_url")?.to_string();
        let client_id = options.require_str("client_id")?.to_string();
        AuthPlan::ClientCredentialsSecret {
            token_url,
            client_id,
            secret_option: CLIENT_SECRET_OPTION.into(),
            client_auth: usersync_sdk::ClientAuth::Basic,
            scopes: options
                .str("scopes")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    } else if options.has_secret(TOKEN_OPTION) {
        AuthPlan::ApiToken {
            header: "Authorization".into(),
            scheme: "Bearer".into(),
            secret_option: TOKEN_OPTION.into(),
        }
    } else {
        return Err(ConnectorError::config(
            TOKEN_OPTION,
            "is required but not set (or give the OAuth client options: token_url, client_id, client_secret)",
        ));
    };
    Ok(Settings {
        base_url: raw.trim_end_matches('/').to_string(),
        profile,
        auth,
    })
}

impl Connector for ScimConnector {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(ConnectionSession {
            settings: settings(options)?,
        }))
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(&ScimTarget)
    }
}

impl Target for ScimTarget {
    fn manifest(&self) -> TargetManifest {
        target_manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn TargetSession>, ConnectorError> {
        Ok(Box::new(ScimSession::new(settings(options)?)))
    }
}

/// The connection-level session: auth plan and base URL for the runtime; no source queries.
#[derive(Debug)]
struct ConnectionSession {
    settings: Settings,
}

impl Session for ConnectionSession {
    fn auth_plan(&self) -> AuthPlan {
        self.settings.auth.clone()
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.settings.base_url.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            operation: format!(
                "{} (scim is a target connector: it writes, it does not read a directory)",
                query.operation()
            ),
        })
    }
}

/// What discovery found (before it ran: nothing is assumed beyond the RFC's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Discovered {
    spc: ServiceProviderConfig,
    types: ResourceTypes,
    schemas: Schemas,
}

/// A SCIM target session for one service provider.
#[derive(Debug, Clone)]
pub struct ScimSession {
    settings: Settings,
    discovered: Option<Discovered>,
}

impl ScimSession {
    fn new(settings: Settings) -> Self {
        ScimSession {
            settings,
            discovered: None,
        }
    }

    /// The profile in use.
    pub fn profile(&self) -> Profile {
        self.settings.profile
    }

    /// Whether `/ServiceProviderConfig` announced Bulk (reported only: the connector never
    /// sends Bulk requests, so it works on services without it, such as AWS).
    pub fn bulk_offered(&self) -> bool {
        self.discovered.as_ref().is_some_and(|d| d.spc.bulk)
    }

    /// `filter.maxResults`, the most results one query returns, when announced.
    pub fn filter_max_results(&self) -> Option<u64> {
        self.discovered.as_ref().and_then(|d| d.spc.filter_max_results)
    }

    /// The page size of a listing: `filter.maxResults` when announced (a page never holds more,
    /// RFC 7643 §5), else [`DEFAULT_PAGE_SIZE`]; at most [`MAX_PAGE_SIZE`].
    pub fn page_size(&self) -> u64 {
        self.filter_max_results()
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE)
    }

    fn discovered(&self) -> Result<&Discovered, ConnectorError> {
        self.discovered.as_ref().ok_or_else(|| {
            ConnectorError::protocol("the SCIM session was used before discovery (configure) completed")
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    fn users_url(&self, d: &Discovered) -> String {
        self.url(&d.types.users_endpoint)
    }

    fn groups_url(&self, d: &Discovered, op: TargetOperation) -> Result<String, ConnectorError> {
        d.types
            .groups_endpoint
            .as_deref()
            .map(|p| self.url(p))
            .ok_or_else(|| {
                unsupported(
                    op,
                    "the service provider's /ResourceTypes lists no Group resource",
                )
            })
    }

    fn request(&self, method: Method, url: String, body: Option<&Value>, etag: Option<&str>) -> HttpRequest {
        let mut r = HttpRequest {
            method,
            url,
            headers: vec![("Accept".into(), wire::MEDIA_TYPE.into())],
            body: body.map(|b| b.to_string().into_bytes()),
        };
        if body.is_some() {
            r.headers.push(("Content-Type".into(), wire::MEDIA_TYPE.into()));
        }
        if let (Some(tag), true) = (etag, self.discovered.as_ref().is_some_and(|d| d.spc.etag)) {
            r.headers.push(("If-Match".into(), tag.to_string()));
        }
        r
    }

    fn patch_request(&self, url: String, ops: Vec<Value>, etag: Option<&str>) -> HttpRequest {
        self.request(Method::Patch, url, Some(&wire::patch(ops)), etag)
    }

    fn require_patch(&self, d: &Discovered, op: TargetOperation) -> Result<(), ConnectorError> {
        if d.spc.patch {
            Ok(())
        } else {
            Err(unsupported(
                op,
                "the service provider's /ServiceProviderConfig says patch.supported=false",
            ))
        }
    }
}

fn unsupported(op: TargetOperation, why: &str) -> ConnectorError {
    ConnectorError::Unsupported {
        operation: format!("{op} ({why})"),
    }
}

fn item_url(collection: &str, id: &str) -> String {
    format!("{collection}/{}", wire::encode_path_segment(id))
}

impl TargetSession for ScimSession {
    fn discovery(&self) -> Vec<HttpRequest> {
        vec![
            self.request(Method::Get, self.url("/ServiceProviderConfig"), None, None),
            self.request(Method::Get, self.url("/ResourceTypes"), None, None),
            self.request(Method::Get, self.url("/Schemas"), None, None),
        ]
    }

    fn configure(&mut self, responses: Vec<HttpResponse>) -> Result<(), ConnectorError> {
        let mut it = responses.into_iter();
        let spc = it
            .next()
            .ok_or_else(|| ConnectorError::protocol("no response to GET /ServiceProviderConfig"))?;
        if !spc.is_success() {
            return Err(self.discovery_error(&spc, "/ServiceProviderConfig"));
        }
        let spc = ServiceProviderConfig::parse(&spc.body).map_err(ConnectorError::protocol)?;
        let types = match it.next() {
            None => ResourceTypes::default(),
            // a service without /ResourceTypes: the RFC's endpoints
            Some(r) if matches!(r.status, 404 | 501) => ResourceTypes::default(),
            Some(r) if r.is_success() => ResourceTypes::parse(&r.body).map_err(ConnectorError::protocol)?,
            Some(r) => return Err(self.discovery_error(&r, "/ResourceTypes")),
        };
        let schemas = match it.next() {
            None => Schemas::default(),
            // a service without /Schemas: every attribute the RFC defines
            Some(r) if matches!(r.status, 404 | 501) => Schemas::default(),
            Some(r) if r.is_success() => Schemas::parse(&r.body).map_err(ConnectorError::protocol)?,
            Some(r) => return Err(self.discovery_error(&r, "/Schemas")),
        };
        self.discovered = Some(Discovered { spc, types, schemas });
        Ok(())
    }

    fn capabilities(&self) -> TargetCapabilities {
        use TargetOperation as Op;
        let Some(d) = &self.discovered else {
            return TargetCapabilities {
                operations: vec![Op::Discover],
                ..TargetCapabilities::default()
            };
        };
        let mut ops = vec![Op::Discover, Op::CreateUser, Op::UpdateUser, Op::DeleteUser];
        if d.spc.filter {
            ops.push(Op::Lookup);
        }
        let can_list = self.settings.profile.can_list();
        if can_list {
            ops.push(Op::List);
        }
        if d.spc.patch {
            ops.push(Op::DeactivateUser);
        }
        let groups = d.types.groups_endpoint.is_some();
        if groups {
            ops.extend([Op::CreateGroup, Op::DeleteGroup]);
            if d.spc.patch {
                ops.extend([Op::AddMembers, Op::RemoveMembers]);
                if self.settings.profile.can_rename_groups() {
                    ops.push(Op::RenameGroup);
                }
            }
        }
        TargetCapabilities {
            operations: ops,
            max_members_per_request: if groups && d.spc.patch {
                self.settings.profile.max_members_per_request()
            } else {
                0
            },
            can_filter: d.spc.filter,
            can_list,
            etags: d.spc.etag,
            nested_groups: false,
        }
    }

    fn lookup_request(&self, lookup: &Lookup) -> Result<HttpRequest, ConnectorError> {
        let d = self.discovered()?;
        if !d.spc.filter {
            return Err(unsupported(
                TargetOperation::Lookup,
                "the service provider's /ServiceProviderConfig says filter.supported=false",
            ));
        }
        let (base, filter, groups) = match lookup {
            Lookup::UserByUserName { value } => {
                (self.users_url(d), wire::eq_filter("userName", value), false)
            }
            Lookup::UserByExternalId { value } => {
                (self.users_url(d), wire::eq_filter("externalId", value), false)
            }
            Lookup::GroupByDisplayName { value } => (
                self.groups_url(d, TargetOperation::Lookup)?,
                wire::eq_filter("displayName", value),
                true,
            ),
            Lookup::GroupByExternalId { value } => {
                if !self.settings.profile.can_lookup_groups_by_external_id() {
                    return Err(unsupported(
                        TargetOperation::Lookup,
                        "this profile's service filters groups on displayName only",
                    ));
                }
                (
                    self.groups_url(d, TargetOperation::Lookup)?,
                    wire::eq_filter("externalId", value),
                    true,
                )
            }
        };
        let mut url = format!("{base}?filter={}", wire::encode_query_value(&filter));
        if groups {
            url.push_str("&excludedAttributes=members");
        }
        Ok(self.request(Method::Get, url, None, None))
    }

    fn on_lookup(&self, lookup: &Lookup, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let what = || format!("lookup {lookup:?}");
        if response.status == 404 {
            // Okta's SCIM guide: 404 and an empty list both mean "not found"
            return Ok(Vec::new());
        }
        if !response.is_success() {
            return Err(self.status_error(&response, &what()));
        }
        let name_attr = match lookup {
            Lookup::UserByUserName { .. } | Lookup::UserByExternalId { .. } => "userName",
            Lookup::GroupByDisplayName { .. } | Lookup::GroupByExternalId { .. } => "displayName",
        };
        parse_list(&response.body, name_attr, &what()).map(|page| page.objects)
    }

    fn list(&self, kind: ObjectKind) -> Result<Box<dyn TargetListing>, ConnectorError> {
        let d = self.discovered()?;
        if !self.settings.profile.can_list() {
            return Err(unsupported(
                TargetOperation::List,
                "this profile's service caps listings without paging; use lookups",
            ));
        }
        let (base, name_attr) = match kind {
            ObjectKind::User => (self.users_url(d), "userName"),
            ObjectKind::Group => (self.groups_url(d, TargetOperation::List)?, "displayName"),
        };
        Ok(Box::new(ScimListing {
            session: self.clone(),
            base,
            groups: kind == ObjectKind::Group,
            name_attr,
            page_size: self.page_size(),
            next_start: Some(1),
        }))
    }

    fn requests(&self, change: &TargetChange) -> Result<Vec<HttpRequest>, ConnectorError> {
        let d = self.discovered()?;
        let enterprise = d.types.enterprise;
        let schemas = &d.schemas;
        let op = change.operation();
        Ok(match change {
            TargetChange::CreateUser { source_key, user } => vec![self.request(
                Method::Post,
                self.users_url(d),
                Some(&wire::user_resource(source_key, user, enterprise, schemas)),
                None,
            )],
            TargetChange::UpdateUser {
                app_id,
                etag,
                source_key,
                user,
            } => {
                let url = item_url(&self.users_url(d), app_id);
                if d.spc.patch {
                    vec![self.patch_request(
                        url,
                        update_ops(source_key, user, enterprise, schemas),
                        etag.as_deref(),
                    )]
                } else {
                    // PUT replaces every attribute: the whole managed user is sent (RFC 7644 §3.5.1)
                    vec![self.request(
                        Method::Put,
                        url,
                        Some(&wire::user_resource(source_key, user, enterprise, schemas)),
                        etag.as_deref(),
                    )]
                }
            }
            TargetChange::DeactivateUser { app_id, etag } => {
                self.require_patch(d, op)?;
                vec![self.patch_request(
                    item_url(&self.users_url(d), app_id),
                    vec![json!({"op": "replace", "path": "active", "value": false})],
                    etag.as_deref(),
                )]
            }
            TargetChange::DeleteUser { app_id, etag } => vec![self.request(
                Method::Delete,
                item_url(&self.users_url(d), app_id),
                None,
                etag.as_deref(),
            )],
            TargetChange::CreateGroup {
                source_key,
                display_name,
            } => vec![self.request(
                Method::Post,
                self.groups_url(d, op)?,
                Some(&wire::group_resource(source_key, display_name)),
                None,
            )],
            TargetChange::RenameGroup {
                app_id,
                etag,
                display_name,
            } => {
                if !self.settings.profile.can_rename_groups() {
                    return Err(unsupported(
                        op,
                        "this profile's service does not rename synced groups (create new, move members, delete old)",
                    ));
                }
                self.require_patch(d, op)?;
                vec![self.patch_request(
                    item_url(&self.groups_url(d, op)?, app_id),
                    vec![json!({"op": "replace", "path": "displayName", "value": display_name})],
                    etag.as_deref(),
                )]
            }
            TargetChange::DeleteGroup { app_id, etag } => vec![self.request(
                Method::Delete,
                item_url(&self.groups_url(d, op)?, app_id),
                None,
                etag.as_deref(),
            )],
            TargetChange::AddMembers {
                group_app_id,
                member_app_ids,
            }
            | TargetChange::RemoveMembers {
                group_app_id,
                member_app_ids,
            } => {
                self.require_patch(d, op)?;
                let url = item_url(&self.groups_url(d, op)?, group_app_id);
                let chunk = self.settings.profile.max_members_per_request().max(1) as usize;
                member_app_ids
                    .chunks(chunk)
                    .map(|ids| {
                        let ops = if op == TargetOperation::AddMembers {
                            vec![wire::add_members_op(ids)]
                        } else {
                            ids.iter().map(|id| wire::remove_member_op(id)).collect()
                        };
                        // no If-Match: membership deltas commute, and the group's version changes
                        // with every chunk
                        self.patch_request(url.clone(), ops, None)
                    })
                    .collect()
            }
        })
    }

    fn on_response(&self, change: &TargetChange, response: HttpResponse) -> TargetResult {
        if response.is_success() {
            return self.success(change, &response);
        }
        let err = ScimError::parse(&response.body);
        let detail = if err.detail.is_empty() {
            format!("HTTP {}: {}", response.status, response.body_snippet(200))
        } else {
            format!("HTTP {}: {}", response.status, err.detail)
        };
        match response.status {
            400 | 413 => TargetResult::Invalid {
                attribute: wire::attribute_named_in(&err.detail),
                reason: err.scim_type,
                detail,
            },
            401 => TargetResult::Unauthorized { detail },
            403 => TargetResult::Forbidden {
                detail,
                needed: Some(self.settings.profile.forbidden_hint().to_string()),
            },
            404 => TargetResult::NotFound { detail },
            409 => TargetResult::Conflict {
                detail,
                reason: err.scim_type,
            },
            412 => TargetResult::PreconditionFailed { detail },
            429 => TargetResult::Throttled {
                retry_after_ms: retry_after_seconds(&response).map(|s| s.saturating_mul(1000)),
                detail,
            },
            500 | 502 | 503 | 504 => TargetResult::Transient { detail },
            _ => TargetResult::Protocol {
                detail: format!(
                    "{detail} (not a status SCIM documents for {})",
                    change.operation()
                ),
            },
        }
    }
}

/// One page of a ListResponse (RFC 7644 §3.4.2).
struct ListPage {
    objects: Vec<AppObject>,
    /// `totalResults` (REQUIRED by the RFC; `None` when a lenient service left it out).
    total: Option<u64>,
}

fn parse_list(body: &[u8], name_attr: &str, what: &str) -> Result<ListPage, ConnectorError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ConnectorError::protocol(format!("{what}: the ListResponse is not JSON: {e}")))?;
    let resources = match v.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(ConnectorError::protocol(format!(
                "{what}: `Resources` is not a list"
            )))
        }
    };
    let total = match v.get("totalResults") {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_u64().ok_or_else(|| {
            ConnectorError::protocol(format!(
                "{what}: `totalResults` is {t}, not a non-negative integer"
            ))
        })?),
    };
    let objects = resources
        .iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_str).ok_or_else(|| {
                ConnectorError::protocol(format!("{what}: a resource without a string `id`"))
            })?;
            Ok(AppObject {
                app_id: id.to_string(),
                etag: r
                    .pointer("/meta/version")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                external_id: r.get("externalId").and_then(Value::as_str).map(str::to_string),
                name: r
                    .get(name_attr)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect::<Result<Vec<_>, ConnectorError>>()?;
    Ok(ListPage { objects, total })
}

/// A `startIndex`/`count` listing (RFC 7644 §3.4.2.4): 1-based, advanced by the number of
/// resources actually returned (a service may return fewer than `count`), done when
/// `startIndex - 1 + returned >= totalResults`; an empty page before that is a protocol error
/// (it would loop forever), as is a page without `totalResults`.
struct ScimListing {
    session: ScimSession,
    base: String,
    groups: bool,
    name_attr: &'static str,
    page_size: u64,
    next_start: Option<u64>,
}

impl TargetListing for ScimListing {
    fn next_request(&mut self) -> Option<HttpRequest> {
        let start = self.next_start?;
        let mut url = format!("{}?startIndex={start}&count={}", self.base, self.page_size);
        if self.groups {
            url.push_str("&excludedAttributes=members");
        }
        Some(self.session.request(Method::Get, url, None, None))
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        let Some(start) = self.next_start else {
            return Err(ConnectorError::protocol(
                "a listing page arrived after the listing ended",
            ));
        };
        let what = format!("list {}?startIndex={start}", self.base);
        if !response.is_success() {
            return Err(self.session.status_error(&response, &what));
        }
        let page = parse_list(&response.body, self.name_attr, &what)?;
        let total = page.total.ok_or_else(|| {
            ConnectorError::protocol(format!("{what}: no `totalResults` (RFC 7644 §3.4.2)"))
        })?;
        let got = page.objects.len() as u64;
        let read = start - 1 + got;
        if read >= total {
            self.next_start = None;
        } else if got == 0 {
            return Err(ConnectorError::protocol(format!(
                "{what}: an empty page although totalResults is {total} and {} were read",
                start - 1
            )));
        } else {
            self.next_start = Some(read + 1);
        }
        Ok(page.objects)
    }
}

/// PATCH operations that set a user's managed attributes to `user`: one `replace` with a value
/// object (RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged), then a `remove` per
/// managed attribute that is now empty.
fn update_ops(source_key: &str, user: &TargetUser, enterprise: bool, schemas: &Schemas) -> Vec<Value> {
    let mut ops = vec![json!({
        "op": "replace",
        "value": Value::Object(wire::user_attributes(source_key, user, enterprise, schemas)),
    })];
    ops.extend(
        wire::cleared_user_paths(user, enterprise, schemas)
            .into_iter()
            .map(|p| json!({"op": "remove", "path": p})),
    );
    ops
}

impl ScimSession {
    fn success(&self, change: &TargetChange, response: &HttpResponse) -> TargetResult {
        let body: Option<Value> = if response.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(&response.body) {
                Ok(v) => Some(v),
                Err(e) => {
                    return TargetResult::Protocol {
                        detail: format!(
                            "HTTP {} to {}: the body is not JSON: {e}",
                            response.status,
                            change.operation()
                        ),
                    }
                }
            }
        };
        let etag = response.header("ETag").map(str::to_string).or_else(|| {
            body.as_ref()
                .and_then(|b| b.pointer("/meta/version"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match change {
            TargetChange::CreateUser { .. } | TargetChange::CreateGroup { .. } => {
                match body.as_ref().and_then(|b| b.get("id")).and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => TargetResult::Created {
                        app_id: id.to_string(),
                        etag,
                    },
                    _ => TargetResult::Protocol {
                        detail: format!(
                            "HTTP {} to {}: the created resource has no `id` (RFC 7643 §3.1: always returned)",
                            response.status,
                            change.operation()
                        ),
                    },
                }
            }
            _ => TargetResult::Updated { etag },
        }
    }

    fn status_error(&self, response: &HttpResponse, what: &str) -> ConnectorError {
        let err = ScimError::parse(&response.body);
        let detail = format!(
            "{what}: HTTP {}: {}",
            response.status,
            if err.detail.is_empty() {
                response.body_snippet(200)
            } else {
                err.detail
            }
        );
        match response.status {
            401 => ConnectorError::Unauthorized { detail },
            403 => ConnectorError::Forbidden {
                detail,
                needed: Some(self.settings.profile.forbidden_hint().to_string()),
            },
            404 => ConnectorError::NotFound { detail },
            429 => ConnectorError::RateLimited {
                retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
                detail,
            },
            500 | 502 | 503 | 504 => ConnectorError::Transient { detail },
            _ => ConnectorError::Protocol { detail },
        }
    }

    fn discovery_error(&self, response: &HttpResponse, path: &str) -> ConnectorError {
        if response.status == 404 {
            // no SCIM service at this address: a wrong base URL, not a missing object
            return ConnectorError::config(
                "base_url",
                format!(
                    "GET {}{path} answered HTTP 404: is `{}` the SCIM base URL?",
                    self.settings.base_url, self.settings.base_url
                ),
            );
        }
        self.status_error(response, &format!("GET {}{path}", self.settings.base_url))
    }
}

#[cfg(test)]
mod tests;
