//! usersync connector for Keycloak (Admin REST API).
//!
//! Sans-IO: builds requests and parses responses; the host does all I/O, including the token
//! request described by [`Session::auth_plan`].
//!
//! - Users: `GET /admin/realms/{realm}/users?briefRepresentation=false&first=&max=` (full form: the
//!   brief one has no attributes), offset paging that stops on an EMPTY page (pages may come back
//!   short), de-duplicated by id; `enabled` is the status.
//! - Groups: top-level `GET /groups`, then `GET /groups/{id}/children` for every group whose
//!   `subGroupCount` is not covered by embedded `subGroups` (Keycloak 23+ no longer embeds them; older
//!   servers embed the whole tree and are read from it). `path` is the hierarchy; each parent/child
//!   pair is also reported as a direct group-in-group membership, and the host closes the hierarchy
//!   (capability `nested_groups`).
//! - Members: `GET /groups/{id}/members` and `GET /users/{id}/groups` are direct only.
//! - Roles as groups: realm roles from `GET /roles`, holders from `GET /roles/{role-name}/users`.
//! - Manager and photo live in user attributes named by options.

mod api;
mod cursor;
pub mod delta;
pub mod errors;
pub mod map;
mod plugin;

use serde_json::json;
use usersync_sdk::{
    AssertionAlg, AuthFlowKind, AuthFlowSpec, AuthPlan, Capabilities, ClientAuth, Connector, ConnectorError,
    Cursor, Endpoint, Manifest, Operation, OptionSpec, OptionType, Options, Query, Session, ABI_VERSION,
};

use crate::map::{ManagerHolds, MapConfig};

/// Default page size (`max`): Keycloak's own default for users and members.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest page size accepted by the `page_size` option.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The Keycloak connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeycloakConnector;

/// The connector as a trait object (used by the host's built-in registry and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(KeycloakConnector)
}

const BASE: &str = "https://{baseUrl}/admin/realms/{realm}";

fn endpoint(url: &str, purpose: &str, operation: Operation) -> Endpoint {
    Endpoint {
        method: "GET".into(),
        url: url.replace("{admin}", BASE),
        purpose: purpose.into(),
        operation,
    }
}

fn endpoints() -> Vec<Endpoint> {
    let mut v = vec![Endpoint {
        method: "POST".into(),
        url: "https://{baseUrl}/realms/{realm}/protocol/openid-connect/token".into(),
        purpose: "Request and refresh access token".into(),
        operation: Operation::Token,
    }];
    v.extend([
        endpoint(
            "{admin}/users",
            "Fetching information for all users (`briefRepresentation=false&first=&max=`: the full form carries \
             attributes; paged until an empty page)",
            Operation::ListUsers,
        ),
        endpoint(
            "{admin}/users/count",
            "Count all users after listing them, to detect a listing cut short by an empty page",
            Operation::ListUsers,
        ),
        endpoint(
            "{admin}/users/{userid}",
            "Fetching information for a single user (managers come with every user of the listing, from the \
             attribute named by `manager_attribute`: no per-user manager call is needed)",
            Operation::GetUser,
        ),
        endpoint(
            "{admin}/users/{userid}",
            "Manager of a single user (the `user_manager` query), from the attribute named by `manager_attribute` \
             in the user's record: Keycloak has no manager endpoint",
            Operation::UserManager,
        ),
        endpoint(
            "{admin}/users/{userid}",
            "Fetch the profile picture of a specific user from the `data:` URI in the attribute named by \
             `photo_attribute` (Keycloak has no photo endpoint)",
            Operation::UserPhoto,
        ),
        endpoint(
            "{admin}/users/{userid}/groups",
            "Fetch groups for specific user (direct memberships only)",
            Operation::UserGroups,
        ),
        endpoint(
            "{admin}/groups",
            "Fetch all groups (required for processing the groupnames if required groups are configured); \
             top-level groups, whose sub-groups are walked with `/groups/{groupId}/children`",
            Operation::ListGroups,
        ),
        endpoint(
            "{admin}/groups/{groupId}/children",
            "Fetch the sub-groups of a group while listing all groups (Keycloak 23+ no longer embeds \
             `subGroups` in `/groups`), so that the listing returns the whole hierarchy",
            Operation::ListGroups,
        ),
        endpoint(
            "{admin}/groups/{groupId}/children",
            "Fetch the sub-groups of one group (the `group_children` query)",
            Operation::GroupChildren,
        ),
        endpoint(
            "{admin}/groups/count",
            "Count all groups after listing them, to detect a listing cut short by an empty page",
            Operation::ListGroups,
        ),
        endpoint(
            "{admin}/groups/{groupId}/members",
            "Fetch members of a specific group (direct members only)",
            Operation::GroupMembers,
        ),
        endpoint(
            "{admin}/events/config",
            "Check that the realm records admin events (`adminEventsEnabled`) before reading the users change \
             feed; off: a full run",
            Operation::UsersDelta,
        ),
        endpoint(
            "{admin}/admin-events",
            "Users change feed: admin events of types USER and GROUP_MEMBERSHIP since the last run \
             (`resourceTypes=&dateFrom=<epoch ms>&direction=asc&first=&max=`)",
            Operation::UsersDelta,
        ),
        endpoint(
            "{admin}/users/{userid}",
            "Re-read a user named by an admin event",
            Operation::UsersDelta,
        ),
        endpoint(
            "{admin}/users/{userid}/groups",
            "Re-read the direct groups of a user created or whose memberships changed (admin events)",
            Operation::UsersDelta,
        ),
        endpoint(
            "{admin}/events/config",
            "Check that the realm records admin events before reading the groups change feed",
            Operation::GroupsDelta,
        ),
        endpoint(
            "{admin}/admin-events",
            "Groups change feed: admin events of type GROUP since the last run",
            Operation::GroupsDelta,
        ),
        endpoint(
            "{admin}/groups/{groupId}",
            "Re-read a group named by an admin event (with `parentId` and `subGroupCount`)",
            Operation::GroupsDelta,
        ),
        endpoint(
            "{admin}/groups/{groupId}/children",
            "Re-read the sub-groups of a changed group (a rename changes their paths) or of a parent that got \
             a new sub-group",
            Operation::GroupsDelta,
        ),
        endpoint(
            "{admin}/roles",
            "Fetch all realm roles (required for using roles as groupnames)",
            Operation::ListRoles,
        ),
        endpoint(
            "{admin}/roles-by-id/{roleId}",
            "Resolve a realm role's id to its name (role members are listed by name)",
            Operation::RoleMembers,
        ),
        endpoint(
            "{admin}/roles/{roleName}/users",
            "Fetch the users holding a realm role directly (roles as groups)",
            Operation::RoleMembers,
        ),
    ]);
    v
}

fn options() -> Vec<OptionSpec> {
    vec![
        OptionSpec::new(
            "base_url",
            OptionType::Url,
            true,
            "Root URL of the Keycloak server, e.g. `https://sso.example.com`: the address in your browser before \
             `/admin` or `/realms`. Include a reverse-proxy path if Keycloak is served under one.",
        ),
        OptionSpec::new(
            "realm",
            OptionType::String,
            true,
            "Name of the realm to sync, as shown in the admin console's realm selector (the realm's name, not its \
             display name), e.g. `acme`.",
        ),
        OptionSpec::new(
            "path_prefix",
            OptionType::String,
            false,
            "Path before `/realms` and `/admin`: empty for Keycloak 17 and later, `/auth` for Keycloak 16 and \
             older (WildFly) or servers started with `--http-relative-path=/auth`.",
        )
        .default_value(json!("")),
        OptionSpec::new(
            "grant",
            OptionType::String,
            false,
            "`client_credentials` (recommended: a confidential client with a service account) or `password` (a \
             documented fallback: an admin user with the public `admin-cli` client).",
        )
        .default_value(json!("client_credentials")),
        OptionSpec::new(
            "client_id",
            OptionType::String,
            false,
            "Client ID of the confidential client (Clients > your client > Settings > Client ID). Required for \
             `client_credentials`; defaults to `admin-cli` for the password grant.",
        ),
        OptionSpec::new(
            "client_secret",
            OptionType::String,
            false,
            "Secret of that client (Clients > your client > Credentials > Client Secret), for the \
             \"Client Id and Secret\" authenticator; give it as a secret reference. `client_credentials` needs \
             this or `client_key`.",
        )
        .secret(),
        OptionSpec::new(
            "client_key",
            OptionType::String,
            false,
            "Private key (PEM) for the \"Signed JWT\" client authenticator (Clients > your client > Credentials > \
             Client Authenticator: Signed JWT; its public key or certificate imported under Keys, or served from \
             a JWKS URL). Instead of `client_secret`; give it as a secret reference (e.g. `{ file = \"...\" }`).",
        )
        .secret(),
        OptionSpec::new(
            "client_key_id",
            OptionType::String,
            false,
            "`kid` to put in the signed JWT's header, when the client's keys come from a JWKS URL holding \
             several keys. Unset: no `kid` (Keycloak then uses the client's only key).",
        ),
        OptionSpec::new(
            "signing_alg",
            OptionType::String,
            false,
            "Signed JWT signature algorithm, matching the key and the client's \"Signature algorithm\" setting: \
             `RS256` (RSA key, Keycloak's default), `PS256` (RSA key) or `ES256` (P-256 key).",
        )
        .default_value(json!("RS256")),
        OptionSpec::new(
            "username",
            OptionType::String,
            false,
            "Password grant only: the admin user's username.",
        ),
        OptionSpec::new(
            "password",
            OptionType::String,
            false,
            "Password grant only: the admin user's password, as a secret reference.",
        )
        .secret(),
        OptionSpec::new(
            "token_realm",
            OptionType::String,
            false,
            "Realm whose token endpoint issues the token, when it is not `realm`: usually `master` for the \
             password grant with an admin of the master realm. Defaults to `realm`.",
        ),
        OptionSpec::new(
            "page_size",
            OptionType::Integer,
            false,
            "Objects per request (`max`), 1 to 1000. Keycloak's own default is 100; larger pages mean fewer \
             requests but heavier ones (each LDAP-federated user may cost an LDAP lookup).",
        )
        .default_value(json!(DEFAULT_PAGE_SIZE)),
        OptionSpec::new(
            "manager_attribute",
            OptionType::String,
            false,
            "Name of the user attribute holding each user's manager (Keycloak has no built-in manager), e.g. \
             `manager`. Unset: no managers.",
        ),
        OptionSpec::new(
            "manager_attribute_holds",
            OptionType::String,
            false,
            "What `manager_attribute` holds: `username` (the manager's Keycloak username), `id` (the manager's \
             Keycloak user id) or `email`.",
        )
        .default_value(json!("username")),
        OptionSpec::new(
            "photo_attribute",
            OptionType::String,
            false,
            "Name of the user attribute holding a profile picture as a `data:image/...;base64,` URI (Keycloak has \
             no photo API). URLs are kept as attributes but not downloaded. Unset: no photos.",
        ),
        OptionSpec::new(
            "verify_counts",
            OptionType::Bool,
            false,
            "After listing users and groups, compare with `/users/count` and `/groups/count` and fail the \
             listing when fewer objects were read than Keycloak counts (an empty page ends a Keycloak listing, \
             so a page lost mid-way would otherwise look like the end). Turn off only if counts are known to \
             disagree on your server.",
        )
        .default_value(json!(true)),
        OptionSpec::new(
            "include_service_accounts",
            OptionType::Bool,
            false,
            "Also sync the technical `service-account-*` users behind clients (skipped and counted otherwise).",
        )
        .default_value(json!(false)),
    ]
}

impl Connector for KeycloakConnector {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "keycloak".into(),
            name: "Keycloak".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![
                AuthFlowSpec {
                    flow: AuthFlowKind::ClientCredentialsSecret,
                    token_url: Some("https://{baseUrl}/realms/{realm}/protocol/openid-connect/token".into()),
                    authorize_url: None,
                    scopes: Vec::new(),
                    description: "Confidential client with a service account holding realm-management roles \
                                  `view-users` and `query-groups` (and `view-events` for incremental runs; recommended)"
                        .into(),
                },
                AuthFlowSpec {
                    flow: AuthFlowKind::ClientCredentialsAssertion,
                    token_url: Some("https://{baseUrl}/realms/{realm}/protocol/openid-connect/token".into()),
                    authorize_url: None,
                    scopes: Vec::new(),
                    description: "The same confidential client with the \"Signed JWT\" authenticator: a \
                                  private key instead of a secret (`client_key`)"
                        .into(),
                },
                AuthFlowSpec {
                    flow: AuthFlowKind::Password,
                    token_url: Some("https://{baseUrl}/realms/{realm}/protocol/openid-connect/token".into()),
                    authorize_url: None,
                    scopes: Vec::new(),
                    description: "Fallback: an admin user's password with the public `admin-cli` client \
                                  (`grant = \"password\"`)"
                        .into(),
                },
            ],
            endpoints: endpoints(),
            capabilities: Capabilities {
                transitive_membership: false,
                nested_groups: true,
                roles_as_groups: true,
                manager: true,
                photos: true,
                incremental: true,
                memberships_in_user_listing: false,
            },
            options: options(),
            default_concurrency: 4,
        }
    }

    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(KeycloakSession::new(options)?))
    }
}

/// The `signing_alg` option.
fn signing_alg(options: &Options) -> Result<AssertionAlg, ConnectorError> {
    match opt_str(options, "signing_alg")
        .unwrap_or("RS256")
        .trim()
        .to_ascii_uppercase()
        .as_str()
    {
        "RS256" => Ok(AssertionAlg::RS256),
        "PS256" => Ok(AssertionAlg::PS256),
        "ES256" => Ok(AssertionAlg::ES256),
        other => Err(ConnectorError::config(
            "signing_alg",
            format!("`{other}` is not supported: use RS256 or PS256 (RSA key) or ES256 (P-256 key)"),
        )),
    }
}

/// How the session authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    ClientCredentials {
        client_id: String,
    },
    SignedJwt {
        client_id: String,
        key_id: Option<String>,
        alg: AssertionAlg,
    },
    Password {
        client_id: String,
        username: String,
    },
}

/// A validated Keycloak connection.
#[derive(Debug, Clone)]
pub struct KeycloakSession {
    /// `{base_url}{path_prefix}` without a trailing slash.
    root: String,
    /// `{root}/admin/realms/{realm}` (realm percent-encoded).
    admin: String,
    /// Token endpoint.
    token_url: String,
    grant: Grant,
    page_size: u64,
    verify_counts: bool,
    map: MapConfig,
}

fn opt_str<'a>(options: &'a Options, name: &str) -> Option<&'a str> {
    options.str(name).map(str::trim).filter(|s| !s.is_empty())
}

impl KeycloakSession {
    /// Validate options (no I/O).
    pub fn new(options: &Options) -> Result<Self, ConnectorError> {
        let base = options.require_str("base_url")?.trim();
        let parsed = url::Url::parse(base).map_err(|e| {
            ConnectorError::config("base_url", format!("`{base}` is not an absolute URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ConnectorError::config(
                "base_url",
                format!("`{base}` must start with https:// (or http:// for a local test server)"),
            ));
        }
        if parsed.host_str().is_none() {
            return Err(ConnectorError::config(
                "base_url",
                format!("`{base}` has no host"),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
            return Err(ConnectorError::config(
                "base_url",
                format!("`{base}` must be the server root without query, fragment or credentials"),
            ));
        }
        let base_path = parsed.path().trim_end_matches('/');
        if base_path.split('/').any(|s| s == "admin" || s == "realms") {
            return Err(ConnectorError::config(
                "base_url",
                format!(
                    "`{base}` looks like a console or realm address: give the server root only, e.g. `{}://{}`",
                    parsed.scheme(),
                    parsed.host_str().unwrap_or("sso.example.com")
                ),
            ));
        }
        let prefix = opt_str(options, "path_prefix")
            .unwrap_or("")
            .trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_string()
        } else {
            format!("/{prefix}")
        };
        if prefix.contains(['?', '#']) {
            return Err(ConnectorError::config(
                "path_prefix",
                format!("`{prefix}` must be a plain path like `/auth`"),
            ));
        }
        if !prefix.is_empty() && base_path.ends_with(&prefix) {
            return Err(ConnectorError::config(
                "path_prefix",
                format!("`base_url` already ends with `{prefix}`: set it in one place only"),
            ));
        }
        let root = format!("{}{}", base.trim_end_matches('/'), prefix);

        let realm = options.require_str("realm")?.trim();
        if realm.contains('/') {
            return Err(ConnectorError::config(
                "realm",
                format!("`{realm}` contains `/`: give the realm's name only, e.g. `acme`"),
            ));
        }
        let token_realm = opt_str(options, "token_realm").unwrap_or(realm);
        let admin = usersync_sdk::paging::join_url(&root, &["admin", "realms", realm])?;
        let token_url = usersync_sdk::paging::join_url(
            &root,
            &["realms", token_realm, "protocol", "openid-connect", "token"],
        )?;

        let grant =
            match opt_str(options, "grant").unwrap_or("client_credentials") {
                "client_credentials" => {
                    let client_id = opt_str(options, "client_id").ok_or_else(|| {
                        ConnectorError::config("client_id", "is required for the `client_credentials` grant")
                    })?;
                    match (
                        options.has_secret("client_secret"),
                        options.has_secret("client_key"),
                    ) {
                        (true, false) => Grant::ClientCredentials {
                            client_id: client_id.to_string(),
                        },
                        (false, true) => Grant::SignedJwt {
                            client_id: client_id.to_string(),
                            key_id: opt_str(options, "client_key_id").map(String::from),
                            alg: signing_alg(options)?,
                        },
                        (true, true) => return Err(ConnectorError::config(
                            "client_key",
                            "and `client_secret` are both set: a Keycloak client uses one authenticator, \
                             give only the one it is configured with",
                        )),
                        (false, false) => return Err(ConnectorError::config(
                            "client_secret",
                            "is required for the `client_credentials` grant, or `client_key` for a client \
                             using \"Signed JWT\" (give either as a secret reference)",
                        )),
                    }
                }
                "password" => {
                    let username = opt_str(options, "username").ok_or_else(|| {
                        ConnectorError::config("username", "is required for the `password` grant")
                    })?;
                    if !options.has_secret("password") {
                        return Err(ConnectorError::config(
                            "password",
                            "is required for the `password` grant (give it as a secret reference)",
                        ));
                    }
                    Grant::Password {
                        client_id: opt_str(options, "client_id").unwrap_or("admin-cli").to_string(),
                        username: username.to_string(),
                    }
                }
                other => {
                    return Err(ConnectorError::config(
                        "grant",
                        format!(
                        "`{other}` is not a grant usersync supports: use `client_credentials` or `password`"
                    ),
                    ))
                }
            };

        let page_size = options.u64("page_size").unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ConnectorError::config(
                "page_size",
                format!("{page_size} is out of range: use 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        let manager_holds = match opt_str(options, "manager_attribute_holds").unwrap_or("username") {
            "username" => ManagerHolds::Username,
            "id" => ManagerHolds::Id,
            "email" => ManagerHolds::Email,
            other => {
                return Err(ConnectorError::config(
                    "manager_attribute_holds",
                    format!("`{other}` is not one of `username`, `id`, `email`"),
                ))
            }
        };
        let map = MapConfig {
            manager_attribute: opt_str(options, "manager_attribute").map(String::from),
            manager_holds,
            photo_attribute: opt_str(options, "photo_attribute").map(String::from),
            include_service_accounts: options.bool("include_service_accounts").unwrap_or(false),
        };
        Ok(KeycloakSession {
            root,
            admin,
            token_url,
            grant,
            page_size,
            verify_counts: options.bool("verify_counts").unwrap_or(true),
            map,
        })
    }

    /// `{admin}/segments...` with each segment percent-encoded.
    fn admin_url(&self, segments: &[&str]) -> Result<String, ConnectorError> {
        usersync_sdk::paging::join_url(&self.admin, segments)
    }
}

impl Session for KeycloakSession {
    fn auth_plan(&self) -> AuthPlan {
        match &self.grant {
            Grant::ClientCredentials { client_id } => AuthPlan::ClientCredentialsSecret {
                token_url: self.token_url.clone(),
                client_id: client_id.clone(),
                secret_option: "client_secret".into(),
                client_auth: ClientAuth::FormBody,
                scopes: Vec::new(),
            },
            Grant::SignedJwt {
                client_id,
                key_id,
                alg,
            } => AuthPlan::ClientCredentialsAssertion {
                token_url: self.token_url.clone(),
                client_id: client_id.clone(),
                key_option: "client_key".into(),
                cert_option: None,
                key_id: key_id.clone(),
                alg: *alg,
                scopes: Vec::new(),
                dpop: false,
            },
            Grant::Password { client_id, username } => AuthPlan::Password {
                token_url: self.token_url.clone(),
                client_id: client_id.clone(),
                username: username.clone(),
                secret_option: "password".into(),
            },
        }
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.root.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        cursor::open(self, query)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn opts(pairs: &[(&str, serde_json::Value)]) -> Options {
        let values: BTreeMap<String, serde_json::Value> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Options::from_values(values)
    }

    #[test]
    fn manifest_is_valid_and_covers_the_seed() {
        let m = KeycloakConnector.manifest();
        m.validate().expect("valid manifest");
        let seed = [
            "https://{baseUrl}/realms/{realm}/protocol/openid-connect/token",
            "https://{baseUrl}/admin/realms/{realm}/users",
            "https://{baseUrl}/admin/realms/{realm}/users/{userid}",
            "https://{baseUrl}/admin/realms/{realm}/users/{userid}/groups",
            "https://{baseUrl}/admin/realms/{realm}/groups",
            "https://{baseUrl}/admin/realms/{realm}/groups/{groupId}/members",
        ];
        for url in seed {
            assert!(
                m.endpoints.iter().any(|e| e.url == url),
                "seed endpoint {url} missing"
            );
        }
        let options = Options::validate(&m, BTreeMap::new(), vec![]);
        assert!(options.is_err(), "base_url and realm are required");
    }

    #[test]
    fn open_resolves_urls_and_auth_plan() {
        let o = opts(&[
            ("base_url", json!("https://sso.example.com/")),
            ("realm", json!("my realm")),
            ("path_prefix", json!("auth")),
            ("client_id", json!("usersync")),
        ])
        .with_secret_set("client_secret");
        let s = KeycloakSession::new(&o).expect("session");
        assert_eq!(s.admin, "https://sso.example.com/auth/admin/realms/my%20realm");
        assert_eq!(
            s.auth_plan(),
            AuthPlan::ClientCredentialsSecret {
                token_url: "https://sso.example.com/auth/realms/my%20realm/protocol/openid-connect/token"
                    .into(),
                client_id: "usersync".into(),
                secret_option: "client_secret".into(),
                client_auth: ClientAuth::FormBody,
                scopes: vec![],
            }
        );
        assert_eq!(s.base_urls(), vec!["https://sso.example.com/auth".to_string()]);
    }

    #[test]
    fn a_client_key_selects_signed_jwt_client_authentication() {
        let o = opts(&[
            ("base_url", json!("https://sso.example.com")),
            ("realm", json!("acme")),
            ("client_id", json!("usersync")),
            ("client_key_id", json!("k1")),
            ("signing_alg", json!("es256")),
        ])
        .with_secret_set("client_key");
        let s = KeycloakSession::new(&o).expect("session");
        assert_eq!(
            s.auth_plan(),
            AuthPlan::ClientCredentialsAssertion {
                token_url: "https://sso.example.com/realms/acme/protocol/openid-connect/token".into(),
                client_id: "usersync".into(),
                key_option: "client_key".into(),
                cert_option: None,
                key_id: Some("k1".into()),
                alg: AssertionAlg::ES256,
                scopes: vec![],
                dpop: false,
            }
        );
        let bad = opts(&[
            ("base_url", json!("https://sso.example.com")),
            ("realm", json!("acme")),
            ("client_id", json!("usersync")),
            ("signing_alg", json!("HS256")),
        ])
        .with_secret_set("client_key");
        let err = KeycloakSession::new(&bad).expect_err("HS256 is not a key algorithm");
        assert!(err.to_string().contains("signing_alg"), "{err}");
    }

    #[test]
    fn password_grant_defaults_to_admin_cli_in_token_realm() {
        let o = opts(&[
            ("base_url", json!("https://sso.example.com")),
            ("realm", json!("acme")),
            ("grant", json!("password")),
            ("username", json!("admin")),
            ("token_realm", json!("master")),
        ])
        .with_secret_set("password");
        let s = KeycloakSession::new(&o).expect("session");
        let AuthPlan::Password {
            token_url, client_id, ..
        } = s.auth_plan()
        else {
            panic!("password plan expected")
        };
        assert_eq!(
            token_url,
            "https://sso.example.com/realms/master/protocol/openid-connect/token"
        );
        assert_eq!(client_id, "admin-cli");
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases: Vec<(Vec<(&str, serde_json::Value)>, &str)> = vec![
            (
                vec![
                    ("base_url", json!("https://k/admin/master/console/")),
                    ("realm", json!("a")),
                ],
                "base_url",
            ),
            (
                vec![("base_url", json!("ftp://k")), ("realm", json!("a"))],
                "base_url",
            ),
            (
                vec![("base_url", json!("https://k")), ("realm", json!("a/b"))],
                "realm",
            ),
            (
                vec![("base_url", json!("https://k")), ("realm", json!("a"))],
                "client_id",
            ),
            (
                vec![
                    ("base_url", json!("https://k/auth")),
                    ("realm", json!("a")),
                    ("path_prefix", json!("/auth")),
                ],
                "path_prefix",
            ),
            (
                vec![
                    ("base_url", json!("https://k")),
                    ("realm", json!("a")),
                    ("grant", json!("implicit")),
                ],
                "grant",
            ),
            (
                vec![
                    ("base_url", json!("https://k")),
                    ("realm", json!("a")),
                    ("client_id", json!("c")),
                    ("page_size", json!(0)),
                ],
                "page_size",
            ),
        ];
        for (pairs, option) in cases {
            let err = KeycloakSession::new(&opts(&pairs).with_secret_set("client_secret")).unwrap_err();
            assert!(
                matches!(&err, ConnectorError::Config { option: o, .. } if o == option),
                "{pairs:?}: {err}"
            );
        }
        let err = KeycloakSession::new(&opts(&[
            ("base_url", json!("https://k")),
            ("realm", json!("a")),
            ("client_id", json!("c")),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Config { option, .. } if option == "client_secret"),
            "{err}"
        );
    }
}
