//! Seeded organisation generator with realistic skew.
//!
//! Same [`GenConfig`] (including the seed) = same organisation, byte for byte.
//! Shape: group 0 is a built-in "Everyone"; three very large groups (≈50 %, 30 %, 20 % of users); the
//! rest Zipf-sized (many small groups); user 1 is a "power user" in up to 300 groups; ≈5 % imported
//! groups; optional nesting chains to `nesting_depth`, with one cycle when `allow_cycle`.
//! Users: ≈88 % active and every other status represented, ≈2 % guests (`#EXT#` logins), Unicode
//! and case-colliding names, a management tree, photos, custom attributes; five admin roles.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::org::{GroupKind, Org, Role, User, UserStatus};
use crate::timefmt::BASE_EPOCH;

/// Parameters of the generator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenConfig {
    /// Number of users.
    pub users: u32,
    /// Number of groups (including the built-in "Everyone").
    pub groups: u32,
    /// Seed: the same seed gives the same organisation.
    pub seed: u64,
    /// Average number of direct group memberships per user (the budget of the generator).
    pub avg_groups_per_user: u32,
    /// Maximum nesting depth of group-in-group chains; 0 = no nesting (Okta, OneLogin).
    pub nesting_depth: u32,
    /// Whether to close one nesting chain into a cycle (only where the provider allows it).
    pub allow_cycle: bool,
    /// Primary domain of logins and e-mails.
    pub domain: String,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            users: 200,
            groups: 30,
            seed: 42,
            avg_groups_per_user: 10,
            nesting_depth: 3,
            allow_cycle: false,
            domain: "example.com".to_string(),
        }
    }
}

const FIRST: &[&str] = &[
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Émilie",
    "Jürgen",
    "Siobhán",
    "Dmitry",
    "Дмитрий",
    "Aiko",
    "李",
    "Fatima",
    "محمد",
    "Olivia",
    "Liam",
    "Noah",
    "Emma",
    "Mateo",
    "Chloé",
    "Björn",
    "Ingrid",
    "Raj",
    "Priya",
    "Kwame",
    "Amara",
    "Lucas",
    "Mia",
    "Yusuf",
    "Elif",
    "Nguyễn",
    "Hana",
    "Oğuz",
    "Ștefan",
];
const LAST: &[&str] = &[
    "García",
    "Müller",
    "O'Brien",
    "Smith",
    "Nowak",
    "Johansson",
    "Dubois",
    "Rossi",
    "Kowalski",
    "Иванов",
    "田中",
    "Haddad",
    "Brown",
    "Martínez",
    "Van der Berg",
    "Okafor",
    "Patel",
    "Kim",
    "Nguyen",
    "Schmidt",
    "Lefèvre",
    "Jensen",
    "Yılmaz",
    "Ferreira",
    "Costa",
    "Novák",
    "Popescu",
    "Ó Súilleabháin",
    "Lee",
    "Chen",
];
const DEPTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "HR",
    "Legal",
    "Support",
    "Operations",
    "R&D",
    "IT",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Manager",
    "Director",
    "Analyst",
    "Specialist",
    "Consultant",
    "Administrator",
    "Intern",
];
const GROUP_WORDS: &[&str] = &[
    "Project",
    "Team",
    "Office",
    "Committee",
    "Guild",
    "Squad",
    "Working Group",
    "Distribution",
    "Access",
    "Ops",
    "Équipe",
    "Fachbereich",
    "プロジェクト",
];
const ROLES: &[&str] = &[
    "Super Administrator",
    "Helpdesk Administrator",
    "User Administrator",
    "Group Administrator",
    "Read-only Administrator",
];

/// ASCII-fold a name for use in a login (`José` -> `jose`, `李` -> `x674e`).
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mapped = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'Á' | 'Å' => "a",
            'é' | 'è' | 'ê' | 'ë' | 'É' => "e",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'Ó' | 'Ö' => "o",
            'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ü' => "u",
            'ç' | 'Ç' => "c",
            'ñ' => "n",
            'ł' | 'Ł' => "l",
            'ø' | 'Ø' => "o",
            'ß' => "ss",
            'ğ' | 'Ğ' => "g",
            'ı' | 'İ' => "i",
            'ş' | 'Ş' => "s",
            'ț' | 'Ț' => "t",
            'ă' => "a",
            'ș' | 'Ș' => "s",
            'ý' => "y",
            'ễ' => "e",
            _ => "",
        };
        if !mapped.is_empty() {
            out.push_str(mapped);
        } else if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if c.is_alphabetic() {
            out.push_str(&format!("x{:x}", c as u32));
        }
    }
    out
}

fn pick_status(rng: &mut StdRng) -> UserStatus {
    match rng.gen_range(0..1000) {
        0..=879 => UserStatus::Active,
        880..=899 => UserStatus::Staged,
        900..=909 => UserStatus::Provisioned,
        910..=914 => UserStatus::Recovery,
        915..=919 => UserStatus::PasswordExpired,
        920..=929 => UserStatus::Locked,
        930..=969 => UserStatus::Suspended,
        _ => UserStatus::Deprovisioned,
    }
}

/// Generate an organisation. Deterministic in `cfg`.
pub fn generate(cfg: &GenConfig) -> Org {
    let _span = tracing::info_span!("emulator.generate", users = cfg.users, groups = cfg.groups).entered();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let n = cfg.users as usize;
    let mut org = Org {
        seed: cfg.seed,
        domain: cfg.domain.clone(),
        clock: BASE_EPOCH,
        ..Org::default()
    };
    org.users.reserve_exact(n);
    let mut taken = std::collections::HashSet::with_capacity(n);
    let mut next_suffix: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let managers_pool = (n / 20).max(1);
    for i in 0..n {
        let (first, last) = if i % 997 == 1 && i > 1 {
            // Case collision with the previous user's name (a different person).
            let prev = org.users[i - 1]
                .as_ref()
                .map(|u| (u.first_name.clone(), u.last_name.clone()));
            let (f, l) = prev.unwrap_or_default();
            (f.to_uppercase(), l.to_lowercase())
        } else {
            (
                FIRST[rng.gen_range(0..FIRST.len())].to_string(),
                LAST[rng.gen_range(0..LAST.len())].to_string(),
            )
        };
        let base = format!("{}.{}", ascii_fold(&first), ascii_fold(&last));
        // `base`, then `base2`, `base3`, ...: the first free one. Each base remembers where its
        // search ended, so a million users over a few thousand name pairs stay linear.
        let next = next_suffix.entry(base.clone()).or_insert(1u32);
        let mut k = *next;
        let mut local = if k == 1 {
            base.clone()
        } else {
            format!("{base}{k}")
        };
        while !taken.insert(local.clone()) {
            k += 1;
            local = format!("{base}{k}");
        }
        *next = k + 1;
        let guest = rng.gen_range(0..100) < 2 && i > 1;
        let (login, email) = if guest {
            let tenant = cfg.domain.split('.').next().unwrap_or("contoso");
            let partner = ["partner.example", "contoso.test", "fabrikam.test"][rng.gen_range(0..3)];
            (
                format!("{local}_{partner}#EXT#@{tenant}.onmicrosoft.com"),
                format!("{local}@{partner}"),
            )
        } else {
            let e = format!("{local}@{}", cfg.domain);
            (e.clone(), e)
        };
        let status = if i < 2 {
            UserStatus::Active
        } else {
            pick_status(&mut rng)
        };
        let created = BASE_EPOCH - rng.gen_range(86_400..4 * 365 * 86_400);
        let last_updated = created + rng.gen_range(0..(BASE_EPOCH - created).max(1));
        let manager = if i == 0 {
            None
        } else if i < managers_pool {
            Some(rng.gen_range(0..i) as u32)
        } else if rng.gen_range(0..10) < 9 {
            Some(rng.gen_range(0..managers_pool) as u32)
        } else {
            None
        };
        let dept = DEPTS[rng.gen_range(0..DEPTS.len())];
        let mut custom = vec![(
            "costCenter".to_string(),
            format!("CC-{:04}", rng.gen_range(0..200)),
        )];
        if rng.gen_range(0..4) == 0 {
            custom.push(("employeeType".to_string(), "Contractor".to_string()));
        }
        if rng.gen_range(0..3) == 0 {
            custom.push((
                "badgeId".to_string(),
                format!("B{:06}", rng.gen_range(0..1_000_000)),
            ));
        }
        org.users.push(Some(User {
            ix: i as u32,
            display_name: format!("{first} {last}"),
            login,
            email,
            first_name: first,
            last_name: last,
            status,
            guest,
            manager,
            department: Some(dept.to_string()),
            title: Some(TITLES[rng.gen_range(0..TITLES.len())].to_string()),
            employee_number: (!guest).then(|| format!("{:06}", 100_000 + i)),
            custom,
            has_photo: rng.gen_range(0..10) < 6,
            created,
            last_updated,
            status_changed: last_updated,
            last_login: (status == UserStatus::Active).then(|| BASE_EPOCH - rng.gen_range(0..30 * 86_400)),
        }));
    }

    // Groups.
    let g = cfg.groups as usize;
    let mut groups: Vec<(String, GroupKind, Vec<u32>)> = Vec::with_capacity(g);
    let mut names_seen = Vec::new();
    for j in 0..g {
        let (name, kind) = match j {
            0 => ("Everyone".to_string(), GroupKind::BuiltIn),
            1 => ("All Staff".to_string(), GroupKind::Native),
            2 => ("Engineering".to_string(), GroupKind::Native),
            3 => ("Sales".to_string(), GroupKind::Native),
            _ if j % 199 == 0 && names_seen.len() > 4 => {
                // Case-colliding group name.
                let prev: &String = &names_seen[j - 1];
                (prev.to_lowercase(), GroupKind::Native)
            }
            _ => {
                let word = GROUP_WORDS[rng.gen_range(0..GROUP_WORDS.len())];
                let kind = if rng.gen_range(0..100) < 5 {
                    GroupKind::Imported
                } else {
                    GroupKind::Native
                };
                let name = if kind == GroupKind::Imported {
                    format!("AD {} {word} {j}", DEPTS[j % DEPTS.len()])
                } else {
                    format!("{} {word} {j}", DEPTS[j % DEPTS.len()])
                };
                (name, kind)
            }
        };
        names_seen.push(name.clone());
        groups.push((name, kind, Vec::new()));
    }
    if n > 0 {
        let budget = (n as f64) * f64::from(cfg.avg_groups_per_user.max(1));
        let fixed = [1.0, 0.5, 0.3, 0.2];
        let mut used = 0.0;
        for (j, share) in fixed.iter().enumerate().take(g) {
            let k = ((n as f64) * share).round() as usize;
            groups[j].2 = sample_sorted(&mut rng, n, k.clamp(1, n));
            used += k as f64;
        }
        if g > 4 {
            let rest = (budget - used).max((g - 4) as f64);
            let h: f64 = (1..=(g - 4)).map(|r| 1.0 / r as f64).sum();
            for (j, group) in groups.iter_mut().enumerate().skip(4) {
                let rank = (j - 3) as f64;
                let k = (rest / (h * rank)).round() as usize;
                group.2 = sample_sorted(&mut rng, n, k.clamp(1, n));
            }
        }
        // The power user: in up to 300 groups.
        if n > 1 {
            for (_, _, members) in groups.iter_mut().skip(1).take(300) {
                if let Err(pos) = members.binary_search(&1) {
                    members.insert(pos, 1);
                }
            }
        }
    }
    for (j, (name, kind, members)) in groups.into_iter().enumerate() {
        let created = BASE_EPOCH - rng.gen_range(86_400..3 * 365 * 86_400);
        org.groups.push(Some(crate::org::Group {
            ix: j as u32,
            description: Some(format!("{name} (generated)")),
            name,
            kind,
            members,
            child_groups: Vec::new(),
            created,
            last_updated: created,
            last_membership_updated: BASE_EPOCH - rng.gen_range(0..86_400),
        }));
    }
    // Nesting chains among the small groups (index >= 4), depth `nesting_depth`.
    if cfg.nesting_depth > 0 && g > 5 {
        let d = cfg.nesting_depth as usize;
        let chains = ((g - 4) / 10 / (d + 1)).max(1);
        let mut next = 4;
        let mut first_chain: Option<(u32, u32)> = None;
        for _ in 0..chains {
            if next + d >= g {
                break;
            }
            for k in 0..d {
                let (parent, child) = (next + k, next + k + 1);
                if let Some(Some(grp)) = org.groups.get_mut(parent) {
                    grp.child_groups.push(child as u32);
                }
            }
            first_chain.get_or_insert((next as u32, (next + d) as u32));
            next += d + 1;
        }
        if cfg.allow_cycle {
            if let Some((head, tail)) = first_chain {
                if let Some(Some(grp)) = org.groups.get_mut(tail as usize) {
                    grp.child_groups.push(head);
                    grp.child_groups.sort_unstable();
                }
            }
        }
    }
    // Roles: a few admins.
    for (r, name) in ROLES.iter().enumerate() {
        let holders = (n / 2000 + 1).min(n) as u32;
        let members = (0..holders)
            .map(|h| (h * 7 + r as u32) % (n.max(1) as u32))
            .collect::<Vec<_>>();
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        if n > 0 {
            org.roles.push(Role {
                ix: r as u32,
                name: (*name).to_string(),
                members,
            });
        }
    }
    org.rebuild_index();
    org
}

fn sample_sorted(rng: &mut StdRng, n: usize, k: usize) -> Vec<u32> {
    let mut v: Vec<u32> = rand::seq::index::sample(rng, n, k.min(n))
        .into_iter()
        .map(|i| i as u32)
        .collect();
    v.sort_unstable();
    v.shrink_to_fit();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_skewed() {
        let cfg = GenConfig {
            users: 2000,
            groups: 200,
            seed: 9,
            ..GenConfig::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.users, b.users);
        assert_eq!(a.groups, b.groups);
        let c = generate(&GenConfig {
            seed: 10,
            ..cfg.clone()
        });
        assert_ne!(a.users, c.users);

        let counts = a.counts();
        assert_eq!(counts.users, 2000);
        assert_eq!(counts.groups, 200);
        // Power user in hundreds of groups (all of them but Everyone here, capped at 300).
        assert!(a.groups_of(1).len() >= 199);
        // Skew: a big group and many small ones.
        let sizes: Vec<usize> = a.live_groups().map(|g| g.members.len()).collect();
        assert!(sizes.iter().filter(|&&s| s >= 1000).count() >= 2);
        assert!(sizes.iter().filter(|&&s| s <= 30).count() >= 100);
        // Every status occurs; guests and case collisions exist.
        for st in UserStatus::ALL {
            assert!(a.live_users().any(|u| u.status == st), "{st:?} missing");
        }
        assert!(a.live_users().any(|u| u.guest && u.login.contains("#EXT#")));
        assert!(a.live_users().any(|u| !u.display_name.is_ascii()));
        let mut lower = std::collections::HashMap::new();
        let collide = a.live_users().any(|u| {
            lower
                .insert(u.display_name.to_lowercase(), u.display_name.clone())
                .is_some_and(|p| p != u.display_name)
        });
        assert!(collide);
        // Logins are unique case-insensitively.
        let mut logins = std::collections::HashSet::new();
        assert!(a.live_users().all(|u| logins.insert(u.login.to_lowercase())));
        // Nesting to depth 3, no cycle by default.
        assert!(a.live_groups().any(|g| !g.child_groups.is_empty()));
    }

    #[test]
    fn cycle_only_when_allowed() {
        let cfg = GenConfig {
            users: 100,
            groups: 50,
            allow_cycle: true,
            ..GenConfig::default()
        };
        let org = generate(&cfg);
        let g4 = org.group(4).expect("group 4");
        // 4 -> 5 -> 6 -> 7 -> 4
        assert_eq!(g4.child_groups, vec![5]);
        assert_eq!(org.group(7).map(|g| g.child_groups.clone()), Some(vec![4]));
        let flat = generate(&GenConfig {
            nesting_depth: 0,
            ..cfg
        });
        assert!(flat.live_groups().all(|g| g.child_groups.is_empty()));
    }
}
