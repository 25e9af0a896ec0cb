//! The provider-neutral, in-memory organisation every facade serves.
//!
//! Users, groups and roles are addressed by dense `u32` indices (`UserIx`, `GroupIx`, `RoleIx`);
//! each facade formats them into its provider's id shape with [`crate::ids`]. Deleted entries
//! leave a tombstone (`None`) so indices stay stable across mutations.
//!
//! Memory: a user is ~300 bytes plus its strings, a membership is 8 bytes (forward + reverse
//! index), so 100k users, 10k groups and 1M memberships stay far below 1 GB.

use std::sync::Arc;

use tokio::sync::RwLock;

/// Index of a user in [`Org::users`].
pub type UserIx = u32;
/// Index of a group in [`Org::groups`].
pub type GroupIx = u32;
/// Index of a role in [`Org::roles`].
pub type RoleIx = u32;

/// The shared handle facades read and tests mutate.
pub type SharedOrg = Arc<RwLock<Org>>;

/// Provider-neutral lifecycle status. Facades map it to the provider's vocabulary
/// (e.g. Okta `SUSPENDED`, Graph `accountEnabled: false`, Google `suspended: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Normal, can sign in.
    Active,
    /// Created, never activated.
    Staged,
    /// Activated, but the user has not set a password yet (Okta `PROVISIONED`).
    Provisioned,
    /// Password reset in progress (Okta `RECOVERY`).
    Recovery,
    /// Password expired (Okta `PASSWORD_EXPIRED`).
    PasswordExpired,
    /// Locked out after failed sign-ins.
    Locked,
    /// Disabled/suspended by an administrator.
    Suspended,
    /// Deactivated / deprovisioned (still listed by providers that keep such users).
    Deprovisioned,
}

impl UserStatus {
    /// Every status, in declaration order.
    pub const ALL: [UserStatus; 8] = [
        UserStatus::Active,
        UserStatus::Staged,
        UserStatus::Provisioned,
        UserStatus::Recovery,
        UserStatus::PasswordExpired,
        UserStatus::Locked,
        UserStatus::Suspended,
        UserStatus::Deprovisioned,
    ];

    /// Whether the account can be used to sign in (roughly "enabled").
    pub fn is_enabled(self) -> bool {
        !matches!(
            self,
            UserStatus::Suspended | UserStatus::Deprovisioned | UserStatus::Staged
        )
    }
}

/// One user of the organisation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct User {
    /// Stable index (also the seed of the provider-specific id).
    pub ix: UserIx,
    /// Sign-in name, e.g. `ana.garcia@example.com`; guests: `jo_partner.org#EXT#@example.onmicrosoft.com`.
    pub login: String,
    /// Primary e-mail address.
    pub email: String,
    /// Given name (may contain any Unicode).
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Display name.
    pub display_name: String,
    /// Lifecycle status.
    pub status: UserStatus,
    /// External (B2B) guest account.
    pub guest: bool,
    /// Manager, if any.
    pub manager: Option<UserIx>,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Employee number (a typical custom-ish attribute).
    pub employee_number: Option<String>,
    /// Custom attributes (name, value), provider-neutral.
    pub custom: Vec<(String, String)>,
    /// Whether the user has a profile photo ([`crate::photo::png_for`] renders it).
    pub has_photo: bool,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Last change of anything about the user, Unix seconds.
    pub last_updated: i64,
    /// Last status change, Unix seconds.
    pub status_changed: i64,
    /// Last sign-in, Unix seconds.
    pub last_login: Option<i64>,
}

/// The provider-neutral kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Managed in the provider (Okta `OKTA_GROUP`, Graph security group, ...).
    Native,
    /// Imported from another directory or app (Okta `APP_GROUP`).
    Imported,
    /// Built in, e.g. Okta `Everyone` (contains every user).
    BuiltIn,
}

/// One group of the organisation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    /// Stable index.
    pub ix: GroupIx,
    /// Display name (case collisions and Unicode happen on purpose).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Kind.
    pub kind: GroupKind,
    /// Direct user members, sorted ascending, no duplicates.
    pub members: Vec<UserIx>,
    /// Direct member groups (nesting), sorted ascending. Providers without nesting ignore it.
    pub child_groups: Vec<GroupIx>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Last profile change, Unix seconds.
    pub last_updated: i64,
    /// Last membership change, Unix seconds.
    pub last_membership_updated: i64,
}

/// An administrative role and who holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Role {
    /// Stable index.
    pub ix: RoleIx,
    /// Name, e.g. `Helpdesk Administrator`.
    pub name: String,
    /// Users holding the role, sorted.
    pub members: Vec<UserIx>,
}

/// The whole organisation. Read it through [`SharedOrg`]; mutate it through the methods here
/// so that the reverse indices and timestamps stay consistent.
#[derive(Debug, Clone, Default)]
pub struct Org {
    /// The generator seed (facades derive their provider-specific ids from it).
    pub seed: u64,
    /// Primary domain, e.g. `example.com`.
    pub domain: String,
    /// Users by index; `None` is a deleted user.
    pub users: Vec<Option<User>>,
    /// Groups by index; `None` is a deleted group.
    pub groups: Vec<Option<Group>>,
    /// Roles by index.
    pub roles: Vec<Role>,
    /// Reverse index: the groups each user is a direct member of, sorted.
    pub user_groups: Vec<Vec<GroupIx>>,
    /// Logical clock, Unix seconds, advanced by every mutation.
    pub clock: i64,
    /// When each user's direct group memberships last changed (users whose memberships never
    /// changed since generation are absent). Providers where a user's group is a user attribute
    /// (OneLogin's `group_id`) stamp `updated_at` with it (issue 21).
    pub user_groups_changed: std::collections::HashMap<UserIx, i64>,
}

/// A summary of the organisation's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OrgCounts {
    /// Live users.
    pub users: usize,
    /// Live groups.
    pub groups: usize,
    /// Direct user memberships.
    pub memberships: usize,
    /// Direct group-in-group edges.
    pub nested: usize,
}

impl Org {
    /// Wrap into the shared handle facades use.
    pub fn shared(self) -> SharedOrg {
        Arc::new(RwLock::new(self))
    }

    /// A live user by index.
    pub fn user(&self, ix: UserIx) -> Option<&User> {
        self.users.get(ix as usize).and_then(Option::as_ref)
    }

    /// A live group by index.
    pub fn group(&self, ix: GroupIx) -> Option<&Group> {
        self.groups.get(ix as usize).and_then(Option::as_ref)
    }

    /// Live users in index order.
    pub fn live_users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().filter_map(Option::as_ref)
    }

    /// Live groups in index order.
    pub fn live_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter_map(Option::as_ref)
    }

    /// Direct groups of a user (empty for unknown users).
    pub fn groups_of(&self, user: UserIx) -> &[GroupIx] {
        self.user_groups
            .get(user as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Counts of live objects and edges.
    pub fn counts(&self) -> OrgCounts {
        let groups: Vec<&Group> = self.live_groups().collect();
        OrgCounts {
            users: self.live_users().count(),
            groups: groups.len(),
            memberships: groups.iter().map(|g| g.members.len()).sum(),
            nested: groups.iter().map(|g| g.child_groups.len()).sum(),
        }
    }

    /// Transitive user members of a group (through nested groups, cycle-safe), sorted.
    pub fn transitive_members(&self, group: GroupIx) -> Vec<UserIx> {
        let mut seen_groups = std::collections::HashSet::new();
        let mut stack = vec![group];
        let mut out = std::collections::BTreeSet::new();
        while let Some(g) = stack.pop() {
            if !seen_groups.insert(g) {
                continue;
            }
            if let Some(gr) = self.group(g) {
                out.extend(gr.members.iter().copied());
                stack.extend(gr.child_groups.iter().copied());
            }
        }
        out.into_iter().collect()
    }

    /// The time of a mutation: one second after the previous one, and never before the real
    /// time (providers stamp changes with their own clock: Okta's `lastUpdated` must be comparable
    /// with its `Date` header for change feeds, issue 21).
    fn tick(&mut self) -> i64 {
        self.clock = (self.clock + 1).max(crate::timefmt::now_unix());
        self.clock
    }

    // ---------------------------------------------------------------- mutation API (tests, demo)

    /// Add a user; returns its index. `login` must be unique (case-insensitively) for most providers:
    /// the caller's job.
    pub fn add_user(&mut self, login: &str, first_name: &str, last_name: &str) -> UserIx {
        let now = self.tick();
        let ix = self.users.len() as UserIx;
        self.users.push(Some(User {
            ix,
            login: login.to_string(),
            email: login.to_string(),
            first_name: first_name.to_string(),
            last_name: last_name.to_string(),
            display_name: format!("{first_name} {last_name}"),
            status: UserStatus::Active,
            guest: false,
            manager: None,
            department: None,
            title: None,
            employee_number: None,
            custom: Vec::new(),
            has_photo: false,
            created: now,
            last_updated: now,
            status_changed: now,
            last_login: None,
        }));
        self.user_groups.push(Vec::new());
        ix
    }

    /// Delete a user for good (removes memberships, roles and manager links). Returns false if unknown.
    pub fn remove_user(&mut self, ix: UserIx) -> bool {
        if self.user(ix).is_none() {
            return false;
        }
        let now = self.tick();
        let groups = std::mem::take(&mut self.user_groups[ix as usize]);
        for g in groups {
            if let Some(Some(gr)) = self.groups.get_mut(g as usize) {
                if let Ok(pos) = gr.members.binary_search(&ix) {
                    gr.members.remove(pos);
                    gr.last_membership_updated = now;
                }
            }
        }
        for role in &mut self.roles {
            role.members.retain(|&m| m != ix);
        }
        for u in self.users.iter_mut().flatten() {
            if u.manager == Some(ix) {
                u.manager = None;
                u.last_updated = now;
            }
        }
        self.users[ix as usize] = None;
        true
    }

    /// Rename a user (display, first and last name). Returns false if unknown.
    pub fn rename_user(&mut self, ix: UserIx, first_name: &str, last_name: &str) -> bool {
        let now = self.tick();
        match self.users.get_mut(ix as usize) {
            Some(Some(u)) => {
                u.first_name = first_name.to_string();
                u.last_name = last_name.to_string();
                u.display_name = format!("{first_name} {last_name}");
                u.last_updated = now;
                true
            }
            _ => false,
        }
    }

    /// Set a user's status (disable = [`UserStatus::Suspended`], deprovision, ...). Returns false if unknown.
    pub fn set_status(&mut self, ix: UserIx, status: UserStatus) -> bool {
        let now = self.tick();
        match self.users.get_mut(ix as usize) {
            Some(Some(u)) => {
                if u.status != status {
                    u.status = status;
                    u.status_changed = now;
                }
                u.last_updated = now;
                true
            }
            _ => false,
        }
    }

    /// Set or clear a user's manager. Returns false if either user is unknown.
    pub fn set_manager(&mut self, ix: UserIx, manager: Option<UserIx>) -> bool {
        if manager.is_some_and(|m| self.user(m).is_none()) {
            return false;
        }
        let now = self.tick();
        match self.users.get_mut(ix as usize) {
            Some(Some(u)) => {
                u.manager = manager;
                u.last_updated = now;
                true
            }
            _ => false,
        }
    }

    /// Add a group; returns its index.
    pub fn add_group(&mut self, name: &str, kind: GroupKind) -> GroupIx {
        let now = self.tick();
        let ix = self.groups.len() as GroupIx;
        self.groups.push(Some(Group {
            ix,
            name: name.to_string(),
            description: None,
            kind,
            members: Vec::new(),
            child_groups: Vec::new(),
            created: now,
            last_updated: now,
            last_membership_updated: now,
        }));
        ix
    }

    /// Delete a group (and every edge to it). Returns false if unknown.
    pub fn remove_group(&mut self, ix: GroupIx) -> bool {
        let Some(Some(group)) = self.groups.get_mut(ix as usize).map(Option::take) else {
            return false;
        };
        let now = self.tick();
        for u in group.members {
            if let Some(list) = self.user_groups.get_mut(u as usize) {
                list.retain(|&g| g != ix);
            }
            self.user_groups_changed.insert(u, now);
        }
        for g in self.groups.iter_mut().flatten() {
            if let Ok(pos) = g.child_groups.binary_search(&ix) {
                g.child_groups.remove(pos);
                g.last_membership_updated = now;
            }
        }
        true
    }

    /// Rename a group. Returns false if unknown.
    pub fn rename_group(&mut self, ix: GroupIx, name: &str) -> bool {
        let now = self.tick();
        match self.groups.get_mut(ix as usize) {
            Some(Some(g)) => {
                g.name = name.to_string();
                g.last_updated = now;
                true
            }
            _ => false,
        }
    }

    /// Add a user to a group. Returns true if the membership is new.
    pub fn add_member(&mut self, group: GroupIx, user: UserIx) -> bool {
        if self.user(user).is_none() {
            return false;
        }
        let now = self.tick();
        let Some(Some(g)) = self.groups.get_mut(group as usize) else {
            return false;
        };
        match g.members.binary_search(&user) {
            Ok(_) => false,
            Err(pos) => {
                g.members.insert(pos, user);
                g.last_membership_updated = now;
                self.user_groups_changed.insert(user, now);
                let list = &mut self.user_groups[user as usize];
                if let Err(p) = list.binary_search(&group) {
                    list.insert(p, group);
                }
                true
            }
        }
    }

    /// Remove a user from a group. Returns true if the membership existed.
    pub fn remove_member(&mut self, group: GroupIx, user: UserIx) -> bool {
        let now = self.tick();
        let Some(Some(g)) = self.groups.get_mut(group as usize) else {
            return false;
        };
        match g.members.binary_search(&user) {
            Ok(pos) => {
                g.members.remove(pos);
                g.last_membership_updated = now;
                self.user_groups_changed.insert(user, now);
                if let Some(list) = self.user_groups.get_mut(user as usize) {
                    list.retain(|&x| x != group);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Nest `child` inside `parent`. Returns true if the edge is new.
    pub fn add_child_group(&mut self, parent: GroupIx, child: GroupIx) -> bool {
        if self.group(child).is_none() {
            return false;
        }
        let now = self.tick();
        let Some(Some(g)) = self.groups.get_mut(parent as usize) else {
            return false;
        };
        match g.child_groups.binary_search(&child) {
            Ok(_) => false,
            Err(pos) => {
                g.child_groups.insert(pos, child);
                g.last_membership_updated = now;
                true
            }
        }
    }

    /// Rebuild [`Org::user_groups`] from the groups (after bulk edits of `members`).
    pub fn rebuild_index(&mut self) {
        let mut idx: Vec<Vec<GroupIx>> = vec![Vec::new(); self.users.len()];
        for g in self.groups.iter().flatten() {
            for &u in &g.members {
                if let Some(list) = idx.get_mut(u as usize) {
                    list.push(g.ix);
                }
            }
        }
        for list in &mut idx {
            list.shrink_to_fit();
        }
        self.user_groups = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_keep_the_reverse_index_consistent() {
        let mut org = Org::default();
        let a = org.add_user("a@x.test", "A", "One");
        let b = org.add_user("b@x.test", "B", "Two");
        let g = org.add_group("G", GroupKind::Native);
        assert!(org.add_member(g, a));
        assert!(!org.add_member(g, a));
        assert!(org.add_member(g, b));
        assert_eq!(org.groups_of(a), &[g]);
        assert!(org.remove_member(g, a));
        assert!(org.groups_of(a).is_empty());
        assert!(org.set_manager(b, Some(a)));
        assert!(org.remove_user(a));
        assert_eq!(org.user(b).map(|u| u.manager), Some(None));
        assert_eq!(org.counts().users, 1);
        assert_eq!(org.counts().memberships, 1);
    }

    #[test]
    fn transitive_members_survive_cycles() {
        let mut org = Org::default();
        let a = org.add_user("a@x.test", "A", "One");
        let b = org.add_user("b@x.test", "B", "Two");
        let g1 = org.add_group("G1", GroupKind::Native);
        let g2 = org.add_group("G2", GroupKind::Native);
        org.add_member(g1, a);
        org.add_member(g2, b);
        org.add_child_group(g1, g2);
        org.add_child_group(g2, g1);
        assert_eq!(org.transitive_members(g1), vec![a, b]);
        assert_eq!(org.transitive_members(g2), vec![a, b]);
    }
}
