//! Profiles: what a real SCIM service provider refuses although the RFC allows it (limits its
//! `/ServiceProviderConfig` does not announce). Each limit names its source; the sources are the
//! ones collected in the project's API notes (`scim-targets.md`).

use serde::{Deserialize, Serialize};

/// A SCIM service provider profile, chosen with the `profile` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// RFC 7643/7644 only: what `/ServiceProviderConfig` announces is all there is.
    Generic,
    /// AWS IAM Identity Center (`https://scim.{region}.amazonaws.com/{tenant}/scim/v2`).
    Aws,
    /// Atlassian Cloud user provisioning (`https://api.atlassian.com/scim/directory/{directoryId}`).
    Atlassian,
}

/// Every profile, in display order.
pub const PROFILES: [Profile; 3] = [Profile::Generic, Profile::Aws, Profile::Atlassian];

/// Membership changes per PATCH request when nothing lower is documented: AWS's documented cap,
/// which is safe everywhere (notes F3).
pub const DEFAULT_MEMBERS_PER_REQUEST: u32 = 100;

impl Profile {
    /// The option value (`generic`, `aws`, `atlassian`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Aws => "aws",
            Profile::Atlassian => "atlassian",
        }
    }

    /// Parse an option value.
    pub fn parse(s: &str) -> Option<Profile> {
        PROFILES.into_iter().find(|p| p.as_str() == s)
    }

    /// Largest number of member changes in one PATCH.
    ///
    /// - AWS: "≤100 membership changes per request" (AWS IAM Identity Center SCIM developer
    ///   guide, PatchGroup);
    /// - Atlassian: no documented number; the safe default;
    /// - generic: the safe default (RFC 7644 sets no limit; `bulk.maxOperations` is about Bulk).
    pub fn max_members_per_request(self) -> u32 {
        DEFAULT_MEMBERS_PER_REQUEST
    }

    /// Whether a group can be renamed in place.
    ///
    /// - Atlassian: "Renaming a synced group is not supported" (Atlassian user provisioning REST
    ///   reference, PATCH /Groups/{id}); create new, move members, delete old;
    /// - AWS: PatchGroup accepts `displayName` (developer guide, PatchGroup).
    pub fn can_rename_groups(self) -> bool {
        !matches!(self, Profile::Atlassian)
    }

    /// Whether groups can be looked up by `externalId`.
    ///
    /// - Atlassian: `GET /Groups` filters only on `displayName` (Atlassian reference, jira.js
    ///   groups.ts);
    /// - AWS: ListGroups filters on `displayName` and `externalId` (developer guide, ListGroups).
    pub fn can_lookup_groups_by_external_id(self) -> bool {
        !matches!(self, Profile::Atlassian)
    }

    /// Whether every user or group can be listed page by page.
    ///
    /// - AWS: ListUsers/ListGroups return at most 50 results without paging in the older
    ///   developer guide, and page with `cursor`/`nextCursor` in the newer one (not implemented
    ///   here); so AWS is read through lookups only (notes F5: "filter-only lookups then");
    /// - Atlassian: `startIndex`/`count` on GET /Users and /Groups (Atlassian reference);
    /// - generic: `startIndex`/`count` (RFC 7644 §3.4.2.4).
    pub fn can_list(self) -> bool {
        self != Profile::Aws
    }

    /// The permission a 403 means, in the service's own terms.
    pub fn forbidden_hint(self) -> &'static str {
        match self {
            Profile::Generic => "a bearer token the service provider allows to write Users and Groups",
            Profile::Aws => {
                "a current IAM Identity Center SCIM access token for this tenant (console: Settings > \
                 Automatic provisioning; at most two tokens per directory)"
            }
            Profile::Atlassian => {
                "the directory's SCIM API key (admin.atlassian.com, the identity provider directory's \
                 user provisioning settings); keys expire after one year"
            }
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_limits() {
        // AWS PatchGroup: at most 100 membership changes per request
        assert_eq!(Profile::Aws.max_members_per_request(), 100);
        // Atlassian: renaming a synced group is not supported; groups filter on displayName only
        assert!(!Profile::Atlassian.can_rename_groups());
        assert!(!Profile::Atlassian.can_lookup_groups_by_external_id());
        assert!(Profile::Aws.can_rename_groups() && Profile::Aws.can_lookup_groups_by_external_id());
        // AWS lists at most 50 without startIndex paging
        assert!(!Profile::Aws.can_list() && Profile::Generic.can_list() && Profile::Atlassian.can_list());
        for p in PROFILES {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
        assert_eq!(Profile::parse("okta"), None);
    }
}
