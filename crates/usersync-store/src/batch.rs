//! Many memberships in one change, in compact form (issue 20): an initial sync adds a direct
//! and an effective membership per (user, group), about 20 rows per user; as one
//! [`crate::Change`] each, with their ids as strings, they were most of a large plan's memory.
//! Here every provider id and path is kept once and every row is a pair or triple of indices.

use serde::{Deserialize, Serialize};

/// Direct user memberships to add and effective memberships to insert or re-path, by index
/// into the batch's own id and path tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBatch {
    /// Group provider ids.
    pub groups: Vec<String>,
    /// User provider ids.
    pub users: Vec<String>,
    /// Effective paths (see [`crate::EffectiveMembership::path`]).
    pub paths: Vec<Vec<String>>,
    /// Direct user memberships to add: (group, user).
    pub user_links: Vec<(u32, u32)>,
    /// Effective memberships to insert or re-path: (group, user, path).
    pub effective: Vec<(u32, u32, u32)>,
}

/// An index of a [`LinkBatch`] row that points past its table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a membership batch refers to {what} #{index}, past the end of its table")]
pub struct BadIndex {
    /// `group`, `user` or `path`.
    pub what: &'static str,
    /// The index.
    pub index: u32,
}

fn at<'a, T>(v: &'a [T], what: &'static str, index: u32) -> Result<&'a T, BadIndex> {
    v.get(index as usize).ok_or(BadIndex { what, index })
}

impl LinkBatch {
    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.user_links.is_empty() && self.effective.is_empty()
    }

    /// The direct user memberships as (group id, user id).
    pub fn user_links(&self) -> impl Iterator<Item = Result<(&str, &str), BadIndex>> + '_ {
        self.user_links.iter().map(|&(g, u)| {
            Ok((
                at(&self.groups, "group", g)?.as_str(),
                at(&self.users, "user", u)?.as_str(),
            ))
        })
    }

    /// The effective memberships as (group id, user id, path).
    pub fn effective(&self) -> impl Iterator<Item = Result<(&str, &str, &[String]), BadIndex>> + '_ {
        self.effective.iter().map(|&(g, u, p)| {
            Ok((
                at(&self.groups, "group", g)?.as_str(),
                at(&self.users, "user", u)?.as_str(),
                at(&self.paths, "path", p)?.as_slice(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_resolve_through_the_tables_and_a_bad_index_is_an_error() {
        let b = LinkBatch {
            groups: vec!["g1".into()],
            users: vec!["u1".into(), "u2".into()],
            paths: vec![vec!["Staff".into()]],
            user_links: vec![(0, 1), (0, 2)],
            effective: vec![(0, 0, 0)],
        };
        let links: Vec<_> = b.user_links().collect();
        assert_eq!(links[0], Ok(("g1", "u2")));
        assert_eq!(
            links[1],
            Err(BadIndex {
                what: "user",
                index: 2
            })
        );
        let eff: Vec<_> = b.effective().collect();
        assert_eq!(eff, vec![Ok(("g1", "u1", &["Staff".to_string()][..]))]);
        assert!(!b.is_empty());
        assert!(LinkBatch::default().is_empty());
    }
}
