//! The one declaration of a connector: identity, auth flows, endpoints, capabilities and
//! options. The CLI, docs, firewall lists and config validation are all derived from it.

use serde::{Deserialize, Serialize};

use crate::query::Operation;

/// A range of accepted plugin ABI versions in words, for messages: `ABI version 1`, or
/// `ABI versions 1 to 3`.
pub fn abi_versions_text(min: u32, max: u32) -> String {
    if min == max {
        format!("ABI version {min}")
    } else {
        format!("ABI versions {min} to {max}")
    }
}

/// The connector ABI version this SDK builds. A host accepts a range of these.
pub const ABI_VERSION: u32 = 1;

/// A connector's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Permanent kebab-case id, e.g. `okta`. Config files refer to it.
    pub id: String,
    /// Human name, e.g. `Okta`.
    pub name: String,
    /// The connector's own semver version (independent of the host).
    pub version: String,
    /// The ABI version it was built for.
    pub abi_version: u32,
    /// Supported authentication flows, preferred first.
    pub auth: Vec<AuthFlowSpec>,
    /// Every HTTP endpoint the connector may call.
    pub endpoints: Vec<Endpoint>,
    /// What the provider can do.
    pub capabilities: Capabilities,
    /// Options a connection sets in config.
    pub options: Vec<OptionSpec>,
    /// A sensible number of concurrent requests for this provider.
    pub default_concurrency: u32,
}

impl Manifest {
    /// Look up an option by name.
    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// Check the manifest's own consistency: kebab-case id, unique option names, endpoints
    /// with absolute https URL templates. Returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let kebab = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.id.starts_with('-')
            && !self.id.ends_with('-');
        if !kebab {
            problems.push(format!("id `{}` is not kebab-case", self.id));
        }
        let mut names = std::collections::BTreeSet::new();
        for o in &self.options {
            if !names.insert(o.name.as_str()) {
                problems.push(format!("option `{}` is declared twice", o.name));
            }
        }
        for e in &self.endpoints {
            if !e.url.starts_with("https://") {
                problems.push(format!("endpoint `{}` is not an https URL template", e.url));
            }
        }
        if self.auth.is_empty() {
            problems.push("no auth flow declared".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Whether some endpoint serves this operation.
    pub fn supports(&self, op: Operation) -> bool {
        self.endpoints.iter().any(|e| e.operation == op)
    }
}

/// The kind of an authentication flow; the host implements each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFlowKind {
    /// OAuth2 client credentials with a client secret.
    ClientCredentialsSecret,
    /// OAuth2 client credentials with a signed JWT assertion (certificate / private_key_jwt).
    ClientCredentialsAssertion,
    /// OAuth2 authorization code, then a stored refresh token.
    AuthorizationCode,
    /// Service-account JWT bearer grant (RFC 7523), e.g. Google domain-wide delegation.
    JwtBearer,
    /// A static API token in a header (Okta `SSWS`).
    ApiToken,
    /// Resource-owner password grant (documented fallback only).
    Password,
}

/// One authentication flow as declared in the manifest (URL templates, not resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFlowSpec {
    /// The flow.
    pub flow: AuthFlowKind,
    /// Token endpoint template, when the flow has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Authorization endpoint template (authorization code flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Scopes requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// One line for humans: when to use this flow.
    pub description: String,
}

/// One HTTP endpoint a connector may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// HTTP method.
    pub method: String,
    /// URL template with the provider's placeholder names, e.g.
    /// `https://graph.microsoft.com/{apiVersion}/users/{userid}/manager`.
    pub url: String,
    /// Why usersync calls it (the seed's "Reason" wording where there is a seed row).
    pub purpose: String,
    /// The operation it serves.
    pub operation: Operation,
}

/// What a provider can do; the fetch planner reads these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// The provider answers transitive membership queries server side.
    pub transitive_membership: bool,
    /// Groups nest and the host must compute the closure itself.
    pub nested_groups: bool,
    /// Roles can be synced as groups.
    pub roles_as_groups: bool,
    /// Users have managers.
    pub manager: bool,
    /// Users have photos.
    pub photos: bool,
    /// The provider offers incremental (delta) listings.
    pub incremental: bool,
    /// The `list_users` listing itself carries each user's group memberships as `Record::Membership`
    /// (OneLogin's single `group_id`), so no per-group or per-user membership queries are needed for them.
    #[serde(default)]
    pub memberships_in_user_listing: bool,
}

/// The type of an option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionType {
    /// Any string.
    String,
    /// An absolute URL.
    Url,
    /// true/false.
    Bool,
    /// A non-negative integer.
    Integer,
    /// A list of strings.
    StringList,
    /// PEM text (a key or certificate); always a secret reference or a file.
    Pem,
}

/// One option a connection may set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionSpec {
    /// Name as written in config (snake_case).
    pub name: String,
    /// One or two sentences: what it is and where to find it.
    pub help: String,
    /// Must be set.
    pub required: bool,
    /// Holds a secret: only accepted as a secret reference, never shown or logged.
    pub secret: bool,
    /// Default value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Value type.
    #[serde(rename = "type")]
    pub kind: OptionType,
}

impl OptionSpec {
    /// A non-secret option.
    pub fn new(name: &str, kind: OptionType, required: bool, help: &str) -> Self {
        OptionSpec {
            name: name.into(),
            help: help.into(),
            required,
            secret: false,
            default: None,
            kind,
        }
    }

    /// Mark as secret (builder style).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Set a default (builder style).
    pub fn default_value(mut self, v: serde_json::Value) -> Self {
        self.default = Some(v);
        self
    }

    /// Check a value against the declared type.
    pub fn check(&self, v: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value as V;
        let ok = match (self.kind, v) {
            (OptionType::String | OptionType::Pem, V::String(_)) => true,
            (OptionType::Url, V::String(s)) => {
                return url::Url::parse(s)
                    .map(|_| ())
                    .map_err(|e| format!("`{s}` is not an absolute URL: {e}"))
            }
            (OptionType::Bool, V::Bool(_)) => true,
            (OptionType::Integer, V::Number(n)) => n.as_u64().is_some(),
            (OptionType::StringList, V::Array(items)) => items.iter().all(|i| i.is_string()),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, found {}",
                type_name(self.kind),
                value_kind(v)
            ))
        }
    }
}

fn type_name(k: OptionType) -> &'static str {
    match k {
        OptionType::String => "a string",
        OptionType::Url => "a URL string",
        OptionType::Bool => "true or false",
        OptionType::Integer => "a non-negative integer",
        OptionType::StringList => "a list of strings",
        OptionType::Pem => "PEM text",
    }
}

fn value_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a table",
    }
}
