//! TEST FIXTURE (not shipped): a **target** connector for *Acme Apps*, a made-up JSON API,
//! written the way docs/connector-authoring.md ("Writing a target connector") tells a third
//! party to. tests/it/plugins_target.rs loads it as a plugin and compares it with itself linked
//! in.
//!
//! The API (all JSON; the host adds `Authorization: Bearer <api_token>`):
//!
//! ```text
//! GET    {base_url}/api/config                 -> {"maxMembersPerRequest": N, "etags": bool}
//! GET    {base_url}/api/users?userName=X       -> {"items": [ {id, name, externalId, version} ]}
//!        (also ?externalId=X; groups: /api/groups?displayName=X or ?externalId=X)
//! GET    {base_url}/api/users?page=N           -> {"items": [...], "nextPage": N+1 | null}
//! POST   {base_url}/api/users                  -> 201 {"id", "version"}
//! PUT    {base_url}/api/users/{id}             -> 200 {"version"}   (If-Match when etags)
//! PATCH  {base_url}/api/users/{id}  {"active": false}
//! DELETE {base_url}/api/users/{id}             -> 204
//! POST   {base_url}/api/groups  {displayName, externalId}; PATCH (rename), DELETE /api/groups/{id}
//! POST   {base_url}/api/groups/{id}/members {"add": [ids]} or {"remove": [ids]}, at most
//!        maxMembersPerRequest ids each
//! errors: {"error": {"code", "field", "message"}} with 400/401/403/404/409/412/429/5xx
//! ```
//!
//! Option `panic_in` (tests only) makes one call panic: `open`, `configure`, `requests`,
//! `on_response`, `lookup` or `listing`.

mod plugin;
mod session;

use usersync_sdk::{
    AuthFlowKind, AuthFlowSpec, AuthPlan, Capabilities, Connector, ConnectorError, Cursor, Manifest,
    OptionSpec, OptionType, Options, Query, Session, Target, TargetCapabilities, TargetEndpoint,
    TargetManifest, TargetOperation, TargetSession, ABI_VERSION,
};

pub use session::AcmeAppsSession;

/// The connector id.
pub const ID: &str = "fixture-target";

/// Member changes per request before discovery says otherwise.
pub const DEFAULT_MAX_MEMBERS: u32 = 50;

/// The connector as a trait object (for a host's built-in list and the plugin export).
pub fn connector() -> Box<dyn Connector> {
    Box::new(AcmeApps)
}

/// The Acme Apps connector: a target only.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcmeApps;

impl Connector for AcmeApps {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: ID.into(),
            name: "Acme Apps (target fixture)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: Vec::new(),
                description: "An Acme Apps provisioning token, sent as `Authorization: Bearer`.".into(),
            }],
            // A target only: it reads nothing from Acme Apps as a source.
            endpoints: Vec::new(),
            capabilities: Capabilities::default(),
            options: vec![
                OptionSpec::new("base_url", OptionType::Url, true, "Acme Apps API base URL."),
                OptionSpec::new("api_token", OptionType::String, true, "Provisioning token.").secret(),
                OptionSpec::new(
                    "panic_in",
                    OptionType::String,
                    false,
                    "Tests only: the call that panics.",
                ),
            ],
            default_concurrency: 1,
        }
    }

    /// The connection-level session: the host's runtime takes the auth plan and base URL from it
    /// (for pushes too); it answers no source query.
    fn open(&self, options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        let base_url = AcmeAppsSession::new(options)?.base_url().to_string();
        Ok(Box::new(ConnectionSession { base_url }))
    }

    fn target(&self) -> Option<&dyn Target> {
        Some(self)
    }
}

/// Auth plan and base URL for the runtime; no source queries (a target only).
#[derive(Debug)]
struct ConnectionSession {
    base_url: String,
}

impl Session for ConnectionSession {
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
        Err(ConnectorError::Unsupported {
            operation: format!("{} (Acme Apps is a target only)", query.operation()),
        })
    }
}

/// The target declaration: the most Acme Apps can do, and every endpoint it may call.
pub fn target_manifest() -> TargetManifest {
    use TargetOperation as Op;
    let ep = |method: &str, url: &str, purpose: &str, operation| TargetEndpoint {
        method: method.into(),
        url: format!("https://{{acmeAppsDomain}}{url}"),
        purpose: purpose.into(),
        operation,
    };
    TargetManifest {
        capabilities: TargetCapabilities {
            operations: Op::ALL.to_vec(),
            max_members_per_request: DEFAULT_MAX_MEMBERS,
            can_filter: true,
            can_list: true,
            etags: true,
            nested_groups: false,
        },
        endpoints: vec![
            ep("GET", "/api/config", "Read the app's limits", Op::Discover),
            ep(
                "GET",
                "/api/users?userName={userName}",
                "Find an existing account",
                Op::Lookup,
            ),
            ep(
                "GET",
                "/api/groups?displayName={name}",
                "Find an existing group",
                Op::Lookup,
            ),
            ep("GET", "/api/users?page={n}", "List accounts", Op::List),
            ep("POST", "/api/users", "Create an account", Op::CreateUser),
            ep("PUT", "/api/users/{id}", "Update an account", Op::UpdateUser),
            ep(
                "PATCH",
                "/api/users/{id}",
                "Deactivate an account",
                Op::DeactivateUser,
            ),
            ep("DELETE", "/api/users/{id}", "Delete an account", Op::DeleteUser),
            ep("POST", "/api/groups", "Create a group", Op::CreateGroup),
            ep("PATCH", "/api/groups/{id}", "Rename a group", Op::RenameGroup),
            ep("DELETE", "/api/groups/{id}", "Delete a group", Op::DeleteGroup),
            ep("POST", "/api/groups/{id}/members", "Add members", Op::AddMembers),
            ep(
                "POST",
                "/api/groups/{id}/members",
                "Remove members",
                Op::RemoveMembers,
            ),
        ],
    }
}

impl Target for AcmeApps {
    fn manifest(&self) -> TargetManifest {
        target_manifest()
    }

    fn open(&self, options: &Options) -> Result<Box<dyn TargetSession>, ConnectorError> {
        let session = AcmeAppsSession::new(options)?;
        if session.panics_in("open") {
            panic!("fixture-target: simulated bug in Target::open");
        }
        Ok(Box::new(session))
    }
}
