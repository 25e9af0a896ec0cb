//! Sync policy of one connection: scope, filters, mappings, what happens on removal, and
//! the safety thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pattern::{Pattern, Replace};

/// What to do with a local user who disappeared from the source or left the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRemoval {
    /// Keep the record, mark it inactive (the default: reversible).
    #[default]
    Deactivate,
    /// Remove the record and its memberships (irreversible; opt-in).
    Delete,
    /// Leave the local record exactly as it is.
    Keep,
}

/// What to do with a local group that disappeared from the source or is filtered out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRemoval {
    /// Remove the group and its memberships (the default; users are never removed by this).
    #[default]
    Delete,
    /// Leave the local group and its memberships as they are.
    Keep,
}

/// Whether and how profile photos are synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoMode {
    /// No photos are fetched (the default).
    #[default]
    Off,
    /// Photos are fetched; only their SHA-256 and content type are stored.
    Hash,
    /// Photos are fetched and stored with their bytes.
    Bytes,
}

/// How memberships are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipRoute {
    /// Decide from the listing sizes: one query per group when there are fewer groups than
    /// users, else one query per user (the default).
    #[default]
    Auto,
    /// One member listing per group.
    PerGroup,
    /// One group listing per user.
    PerUser,
}

/// Letter case applied to mapped group names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameCase {
    /// Keep the provider's case (the default).
    #[default]
    Preserve,
    /// Lower case.
    Lower,
    /// Upper case.
    Upper,
}

/// How a provider's group name becomes the local group name:
/// regex replacements in order, then the case, then prefix and suffix.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupNameMapping {
    /// Regex replacements, applied in order: `replace = [{ regex = "^grp-", with = "" }]`.
    pub replace: Vec<Replace>,
    /// Letter case.
    pub case: NameCase,
    /// Prepended to every name.
    pub prefix: String,
    /// Appended to every name.
    pub suffix: String,
}

impl GroupNameMapping {
    /// Apply the mapping to a provider group name.
    pub fn apply(&self, name: &str) -> String {
        let mut out = name.to_string();
        for r in &self.replace {
            out = r.regex.replace_all(&out, r.with.as_str()).into_owned();
        }
        out = match self.case {
            NameCase::Preserve => out,
            NameCase::Lower => out.to_lowercase(),
            NameCase::Upper => out.to_uppercase(),
        };
        format!("{}{}{}", self.prefix, out, self.suffix)
    }
}

/// One local attribute: where its value comes from and its default.
///
/// Written either as a source name (`title = "job_title"`) or as a table
/// (`department = { from = "department", default = "Unassigned" }`). Sources: `username`,
/// `email`, `display_name`, `given_name`, `family_name`, `status` (the provider's raw status),
/// or the name of a provider attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeMapping {
    /// Just the source.
    From(String),
    /// Source and default.
    Full {
        /// The source field or provider attribute; when absent only the default is used.
        #[serde(default)]
        from: Option<String>,
        /// Value used when the source is missing or null.
        #[serde(default)]
        default: Option<serde_json::Value>,
    },
}

impl AttributeMapping {
    /// The source field, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            AttributeMapping::From(s) => Some(s),
            AttributeMapping::Full { from, .. } => from.as_deref(),
        }
    }

    /// The default value, if any.
    pub fn default_value(&self) -> Option<&serde_json::Value> {
        match self {
            AttributeMapping::From(_) => None,
            AttributeMapping::Full { default, .. } => default.as_ref(),
        }
    }
}

/// The sync policy of one connection (`[connections.policy]`). Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Only members of at least one of these groups are in scope (empty: every user is).
    pub required_groups: Vec<Pattern>,
    /// Membership through nested groups counts for `required_groups` (default true).
    pub transitive: bool,
    /// Only groups matching one of these are synced (empty: all groups).
    pub include_groups: Vec<Pattern>,
    /// Groups matching one of these are not synced (applied after `include_groups`).
    pub exclude_groups: Vec<Pattern>,
    /// Group name mapping.
    pub group_names: GroupNameMapping,
    /// Local attributes computed from the provider's fields, with defaults. The provider's
    /// own attributes are kept unless `keep_provider_attributes = false`.
    pub attributes: BTreeMap<String, AttributeMapping>,
    /// Keep the provider's attributes next to the mapped ones (default true).
    pub keep_provider_attributes: bool,
    /// Sync roles as groups, where the connector can (default false).
    pub roles_as_groups: bool,
    /// Fetch each user's manager (default false; one query per user where the listing lacks it).
    pub managers: bool,
    /// Fetch profile photos (default off).
    pub photos: PhotoMode,
    /// How memberships are fetched (default auto).
    pub membership_route: MembershipRoute,
    /// A user who disappeared from the source (default deactivate).
    pub on_user_missing: UserRemoval,
    /// A user still at the source but out of scope (not in a required group, disabled users
    /// stay in scope and are deactivated) (default deactivate).
    pub on_user_out_of_scope: UserRemoval,
    /// A group that disappeared from the source or is filtered out (default delete).
    pub on_group_missing: GroupRemoval,
    /// Users (username or provider id patterns) the sync never changes.
    pub protected_users: Vec<Pattern>,
    /// Groups (local name, provider name or id patterns) the sync never changes.
    pub protected_groups: Vec<Pattern>,
    /// Block a run that would deactivate or delete more than this many users (default 50).
    pub max_removals: u64,
    /// Block a run that would deactivate or delete more than this percentage of the
    /// connection's active users (default 10).
    pub max_removal_percent: f64,
    /// Block a run when the source returns fewer than this percentage of the users it
    /// returned last time (default 50; 0 disables the check).
    pub min_source_percent: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            required_groups: Vec::new(),
            transitive: true,
            include_groups: Vec::new(),
            exclude_groups: Vec::new(),
            group_names: GroupNameMapping::default(),
            attributes: BTreeMap::new(),
            keep_provider_attributes: true,
            roles_as_groups: false,
            managers: false,
            photos: PhotoMode::Off,
            membership_route: MembershipRoute::Auto,
            on_user_missing: UserRemoval::Deactivate,
            on_user_out_of_scope: UserRemoval::Deactivate,
            on_group_missing: GroupRemoval::Delete,
            protected_users: Vec::new(),
            protected_groups: Vec::new(),
            max_removals: 50,
            max_removal_percent: 10.0,
            min_source_percent: 50.0,
        }
    }
}

impl Policy {
    /// Whether a group (by provider name) passes the include/exclude filters.
    pub fn group_selected(&self, name: &str) -> bool {
        let included = self.include_groups.is_empty() || self.include_groups.iter().any(|p| p.matches(name));
        included && !self.exclude_groups.iter().any(|p| p.matches(name))
    }

    /// The first protected-user pattern matching the username or provider id.
    pub fn protected_user(&self, username: &str, id: &str) -> Option<&Pattern> {
        self.protected_users
            .iter()
            .find(|p| p.matches(username) || p.matches(id))
    }

    /// The first protected-group pattern matching any of the given names/ids.
    pub fn protected_group(&self, names: &[&str]) -> Option<&Pattern> {
        self.protected_groups
            .iter()
            .find(|p| names.iter().any(|n| p.matches(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_mapping_order_is_replace_case_affix() {
        let m: GroupNameMapping = toml::from_str(
            "prefix = \"okta-\"\ncase = \"lower\"\nreplace = [{ regex = \"^GRP_\", with = \"\" }]",
        )
        .expect("parse");
        assert_eq!(m.apply("GRP_Engineering"), "okta-engineering");
    }

    #[test]
    fn filters_include_then_exclude() {
        let p: Policy =
            toml::from_str("include_groups = [\"eng-*\"]\nexclude_groups = [\"re:-test$\"]").expect("parse");
        assert!(p.group_selected("eng-platform"));
        assert!(!p.group_selected("eng-platform-test"));
        assert!(!p.group_selected("sales"));
        assert!(Policy::default().group_selected("anything"));
    }

    #[test]
    fn attribute_mapping_forms() {
        let p: Policy = toml::from_str(
            "[attributes]\ntitle = \"job_title\"\ndept = { from = \"department\", default = \"none\" }",
        )
        .expect("parse");
        assert_eq!(p.attributes["title"].source(), Some("job_title"));
        assert_eq!(
            p.attributes["dept"].default_value(),
            Some(&serde_json::json!("none"))
        );
    }
}
