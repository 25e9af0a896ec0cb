//! Seeded random changes to an organisation between sync runs (issue 21): what an administrator
//! does during a day (create, update, rename, move between groups, deactivate, delete users and
//! groups). The org itself is the truth afterwards: a full read of it is what the directory must be.

use crate::org::{GroupKind, Org, UserStatus};

/// One change made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// A new user (login).
    CreateUser(String),
    /// A user's names changed.
    RenameUser(u32),
    /// A user's status changed.
    SetStatus(u32, UserStatus),
    /// A user's manager changed.
    SetManager(u32, Option<u32>),
    /// A user was deleted for good.
    DeleteUser(u32),
    /// A user moved from one group to another (`None`: added only / removed only).
    MoveUser(u32, Option<u32>, Option<u32>),
    /// A new group.
    CreateGroup(String),
    /// A group renamed.
    RenameGroup(u32),
    /// A group deleted.
    DeleteGroup(u32),
}

/// A small deterministic generator (xorshift64*), so a sequence is replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> Option<T> {
    (!v.is_empty()).then(|| v[rng.below(v.len())])
}

/// Make `count` random changes to `org`; returns them in order. `tag` keeps new names unique
/// across calls (e.g. the step number). `deletes`: users and groups may be deleted for good (a
/// feed that cannot see deletions, such as Okta's timestamps, leaves them to the full runs).
pub fn random_mutations(
    org: &mut Org,
    rng: &mut Rng,
    count: usize,
    tag: u64,
    deletes: bool,
) -> Vec<Mutation> {
    let mut done = Vec::new();
    for i in 0..count {
        let users: Vec<u32> = org.live_users().map(|u| u.ix).collect();
        let groups: Vec<u32> = org
            .live_groups()
            .filter(|g| g.kind == GroupKind::Native)
            .map(|g| g.ix)
            .collect();
        let mut roll = rng.below(12);
        if !deletes && (roll == 5 || roll == 11) {
            roll = 1;
        }
        let m = match roll {
            0 => {
                let login = format!("new{tag}x{i}@{}", org.domain);
                org.add_user(&login, &format!("New{tag}"), &format!("Person{i}"));
                Some(Mutation::CreateUser(login))
            }
            1 | 2 => pick(rng, &users).map(|u| {
                org.rename_user(u, &format!("Renamed{tag}"), &format!("Name{i}"));
                Mutation::RenameUser(u)
            }),
            3 => pick(rng, &users).map(|u| {
                let s = if rng.below(2) == 0 {
                    UserStatus::Suspended
                } else {
                    UserStatus::Active
                };
                org.set_status(u, s);
                Mutation::SetStatus(u, s)
            }),
            4 => pick(rng, &users).map(|u| {
                let m = pick(rng, &users).filter(|m| *m != u);
                org.set_manager(u, m);
                Mutation::SetManager(u, m)
            }),
            5 => pick(rng, &users).map(|u| {
                org.remove_user(u);
                Mutation::DeleteUser(u)
            }),
            6..=8 => pick(rng, &users).map(|u| {
                let from = org.groups_of(u).first().copied();
                let to = pick(rng, &groups).filter(|g| Some(*g) != from);
                if let Some(f) = from {
                    org.remove_member(f, u);
                }
                if let Some(t) = to {
                    org.add_member(t, u);
                }
                Mutation::MoveUser(u, from, to)
            }),
            9 => {
                let name = format!("Team {tag}-{i}");
                let g = org.add_group(&name, GroupKind::Native);
                for _ in 0..3 {
                    if let Some(u) = pick(rng, &users) {
                        org.add_member(g, u);
                    }
                }
                Some(Mutation::CreateGroup(name))
            }
            10 => pick(rng, &groups).map(|g| {
                org.rename_group(g, &format!("Renamed group {tag}-{i}"));
                Mutation::RenameGroup(g)
            }),
            _ => pick(rng, &groups).map(|g| {
                org.remove_group(g);
                Mutation::DeleteGroup(g)
            }),
        };
        done.extend(m);
    }
    done
}
