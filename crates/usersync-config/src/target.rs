//! Targets (`[targets.NAME]`): applications usersync provisions the store into (issue 19).
//!
//! ```toml
//! [targets.aws]
//! connector = "scim"
//! sources = ["google-prod"]          # connections feeding it (default: all)
//! required_groups = ["aws-*"]        # only members of these groups are provisioned (default: all users)
//! deprovision = "deactivate"         # or "delete"
//! max_removals = 50                  # the same gates as a connection's policy
//! max_removal_percent = 10
//! min_source_percent = 50
//! [targets.aws.options]              # checked against the connector's manifest
//! base_url = "https://scim.eu-west-1.amazonaws.com/TENANT/scim/v2"
//! profile = "aws"
//! token = { env = "AWS_SCIM_TOKEN" }
//! [targets.aws.mapping]
//! user_name = "email"                # the app's userName: the store's username (default) or email
//! [targets.aws.runtime]              # as [connections.runtime]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::file::{ConnectionConfig, RuntimeSettings};
use crate::pattern::Pattern;
use crate::policy::Policy;
use crate::secret::SecretRef;

/// What a push does to an account whose user left the target's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deprovision {
    /// `active = false`: the account stays, sign-in is blocked (the default: reversible).
    #[default]
    Deactivate,
    /// Delete the account (irreversible; opt-in).
    Delete,
}

/// Which store value becomes the application's sign-in name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserNameSource {
    /// The store's username (the default).
    #[default]
    Username,
    /// The user's email (users without one are not provisioned).
    Email,
}

/// Attribute mapping of a target (`[targets.NAME.mapping]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetMapping {
    /// Where the application's sign-in name comes from.
    pub user_name: UserNameSource,
    /// The store attribute written as the enterprise `department` (empty: not written).
    pub department: String,
    /// The store attribute written as the enterprise `employeeNumber` (empty: not written).
    pub employee_number: String,
    /// Write the manager (when the manager is provisioned too).
    pub manager: bool,
}

impl Default for TargetMapping {
    fn default() -> Self {
        TargetMapping {
            user_name: UserNameSource::Username,
            department: "department".into(),
            employee_number: "employeeNumber".into(),
            manager: true,
        }
    }
}

/// The typed keys of a `[targets.NAME]` table (besides `connector`, `options`, `runtime`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSettings {
    /// Connections feeding the target; empty: all.
    pub sources: Vec<String>,
    /// Only users who are (effective) members of a group matching one of these are provisioned,
    /// and only matching groups are pushed; empty: every user and group of the sources.
    pub required_groups: Vec<Pattern>,
    /// Deactivate (default) or delete accounts that leave the scope.
    pub deprovision: Deprovision,
    /// Gate: most deactivations+deletions one push may make.
    pub max_removals: u64,
    /// Gate: most deactivations+deletions one push may make, as a percentage of the accounts
    /// usersync manages in the app.
    pub max_removal_percent: f64,
    /// Gate: block when the users in scope shrank below this percentage of the last push's.
    pub min_source_percent: f64,
    /// Attribute mapping.
    pub mapping: TargetMapping,
}

impl Default for TargetSettings {
    fn default() -> Self {
        let p = Policy::default();
        TargetSettings {
            sources: Vec::new(),
            required_groups: Vec::new(),
            deprovision: Deprovision::Deactivate,
            max_removals: p.max_removals,
            max_removal_percent: p.max_removal_percent,
            min_source_percent: p.min_source_percent,
            mapping: TargetMapping::default(),
        }
    }
}

/// One target: a connector (with options and secrets), what feeds it, and its gates.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// The target's name (`[targets.NAME]`), used on the command line and in run history.
    pub name: String,
    /// The settings.
    pub settings: TargetSettings,
    /// The connection form of the target: connector, options, secrets and runtime settings,
    /// so the target is checked against its manifest and opened like a connection.
    pub connection: ConnectionConfig,
}

impl TargetConfig {
    /// Whether a connection feeds this target.
    pub fn fed_by(&self, connection: &str) -> bool {
        self.settings.sources.is_empty()
            || self
                .settings
                .sources
                .iter()
                .any(|s| s.eq_ignore_ascii_case(connection))
    }

    /// The key of this target's runs in run history (`push:NAME`; connection names cannot
    /// hold `:`, so it never collides with a connection's).
    pub fn run_key(&self) -> String {
        format!("push:{}", self.name)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        settings: TargetSettings,
        connector: String,
        connector_line: usize,
        line: usize,
        options: BTreeMap<String, serde_json::Value>,
        secrets: BTreeMap<String, SecretRef>,
        option_lines: BTreeMap<String, usize>,
        runtime: RuntimeSettings,
    ) -> TargetConfig {
        let connection = ConnectionConfig {
            // issues about the target's options read "connection `targets.NAME`: option ..."
            name: format!("targets.{name}"),
            connector,
            options,
            secrets,
            policy: Policy::default(),
            runtime,
            priority: usize::MAX,
            line,
            option_lines,
            connector_line,
            full_every: crate::file::DEFAULT_FULL_EVERY,
            incremental: Some(false),
        };
        TargetConfig {
            name,
            settings,
            connection,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Deprovision, UserNameSource};

    const BASE: &str = r#"
[[connections]]
name = "okta-prod"
connector = "okta"

[targets.aws]
connector = "scim"
sources = ["okta-prod"]
required_groups = ["aws-*"]
deprovision = "delete"
max_removals = 5
[targets.aws.options]
base_url = "https://scim.example.com/v2"
profile = "aws"
token = { env = "AWS_SCIM_TOKEN" }
[targets.aws.mapping]
user_name = "email"
"#;

    #[test]
    fn parses_a_target_with_options_secrets_and_gates() {
        let c = Config::from_str(BASE).expect("parse");
        let t = c.target("AWS").expect("target");
        assert_eq!(t.connection.connector, "scim");
        assert_eq!(t.settings.deprovision, Deprovision::Delete);
        assert_eq!(t.settings.max_removals, 5);
        assert_eq!(t.settings.max_removal_percent, 10.0);
        assert_eq!(t.settings.mapping.user_name, UserNameSource::Email);
        assert!(t.connection.secrets.contains_key("token"));
        assert_eq!(t.connection.options["profile"], serde_json::json!("aws"));
        assert!(t.fed_by("OKTA-prod") && !t.fed_by("other"));
        assert_eq!(t.run_key(), "push:aws");
    }

    #[test]
    fn target_problems_name_their_line_and_suggest() {
        let text = BASE
            .replace("deprovision = \"delete\"", "deprovison = \"delete\"")
            .replace("sources = [\"okta-prod\"]", "sources = [\"okta-prd\"]")
            .replace("max_removals = 5", "max_removal_percent = 150");
        let err = Config::from_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("<string>:10:") && err.contains("did you mean `deprovision`"),
            "{err}"
        );
        assert!(
            err.contains("<string>:8:") && err.contains("`okta-prd`") && err.contains("okta-prod"),
            "{err}"
        );
        assert!(
            err.contains("<string>:11:") && err.contains("out of range"),
            "{err}"
        );
        let err = Config::from_str(&BASE.replace("connector = \"scim\"", "")).unwrap_err();
        assert!(err.to_string().contains("needs `connector`"), "{err}");
    }

    #[test]
    fn a_file_without_targets_has_none() {
        let c = Config::from_str(&BASE[..BASE.find("[targets.aws]").expect("section")]).expect("parse");
        assert!(c.targets.is_empty());
    }
}
