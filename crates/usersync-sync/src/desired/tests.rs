//! Table tests of the desired state: scope, attributes, managers, photos, vanished objects.

use std::collections::BTreeSet;

use usersync_model::{Group, Membership, UserState, UserStatus};

use super::*;

/// The compact closure gives exactly what the string-keyed [`Graph`] gives (paths, ties,
/// cycles, "everyone" members), and scope picks the same group chain.
#[test]
fn compact_links_match_the_reference_closure() {
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut snap = Snapshot {
        complete: true,
        ..Snapshot::default()
    };
    for i in 0..60 {
        let id = format!("u{:02}", 59 - i);
        let state = if i % 7 == 0 {
            UserState::Disabled
        } else {
            UserState::Active
        };
        let mut u = User::new(&id, format!("n{id}"), UserStatus::new(state, "x"));
        u.attributes
            .insert("dept".into(), serde_json::json!(format!("d{}", i % 3)));
        u.attributes.insert("cost".into(), serde_json::json!(i));
        snap.users.insert(id.clone(), u);
    }
    for j in 0..25 {
        let id = format!("g{}", 24 - j);
        snap.groups
            .insert(id.clone(), Group::new(&id, format!("Group {}", j % 20)));
    }
    for _ in 0..300 {
        let g = format!("g{}", next(25));
        snap.direct
            .insert(Membership::direct_user(g, format!("u{:02}", next(60))));
    }
    for _ in 0..40 {
        let (p, c) = (format!("g{}", next(25)), format!("g{}", next(25)));
        snap.direct.insert(Membership::direct_group(p, c));
    }
    snap.direct.insert(Membership::direct_group("g3", "g-unknown"));
    snap.direct.insert(Membership {
        group_id: "g5".into(),
        member: MemberRef::AllUsers,
        direct: true,
    });
    let mut policy = Policy {
        required_groups: vec![usersync_config::Pattern::parse("Group 1*").expect("pattern")],
        ..Policy::default()
    };
    policy.attributes.insert(
        "department".into(),
        usersync_config::policy::AttributeMapping::From("attributes.dept".into()),
    );
    policy.attributes.insert(
        "dept".into(),
        usersync_config::policy::AttributeMapping::From("cost".into()),
    );
    let d = build(&snap, &policy, "c");
    // moving the attributes out of the snapshot gives the same wanted users
    for keep in [true, false] {
        let p = Policy {
            keep_provider_attributes: keep,
            ..policy.clone()
        };
        let copied = build(&snap, &p, "c");
        let (moved, rest) = build_consuming(snap.clone(), &p, "c");
        assert_eq!(moved.users, copied.users);
        assert_eq!(moved.decisions, copied.decisions);
        assert!(rest.users.values().all(|u| u.attributes.is_empty()));
    }
    let Some(Target::Put { user, .. }) = d.users.get("u01") else {
        panic!("u01 wanted");
    };
    assert_eq!(user.attributes["department"], serde_json::json!("d1"));
    assert_eq!(user.attributes["dept"], serde_json::json!(58));

    let mut graph = Graph::default();
    for m in &snap.direct {
        match &m.member {
            MemberRef::User(u) => graph.add_user(&m.group_id, u),
            MemberRef::Group(c) => graph.add_group(&m.group_id, c),
            MemberRef::AllUsers => {
                for u in snap.users.keys() {
                    graph.add_user(&m.group_id, u);
                }
            }
        }
    }
    let name = |g: &str| {
        snap.groups
            .get(g)
            .map(|x| x.name.clone())
            .unwrap_or(g.to_string())
    };
    let present = |u: &str| matches!(d.users.get(u), Some(Target::Put { .. }));
    let reference: BTreeSet<(String, String, Vec<String>)> = graph
        .effective()
        .into_iter()
        .filter(|((u, g), _)| d.groups.contains_key(g) && present(u))
        .map(|((u, g), p)| (g, u, p.iter().map(|x| name(x)).collect()))
        .collect();
    let compact: BTreeSet<(String, String, Vec<String>)> = d
        .links
        .effective_iter()
        .map(|(g, u, p)| (g.to_string(), u.to_string(), p.to_vec()))
        .collect();
    assert!(reference.len() > 300, "{}", reference.len());
    assert_eq!(compact, reference);
    for (g, users) in &graph.user_members {
        for u in users {
            let want = d.groups.contains_key(g) && present(u);
            assert_eq!(d.links.has_user_edge(g, u), want, "{g} {u}");
        }
    }
    for (c, parents) in &graph.parents {
        for p in parents {
            let want = d.groups.contains_key(p) && d.groups.contains_key(c);
            assert_eq!(d.links.has_group_edge(p, c), want, "{p} {c}");
        }
    }
    // scope: the shortest chain to a required group, the first in group id order on ties
    let eff = graph.effective();
    for u in snap.users.keys() {
        let mut best: Option<Vec<String>> = None;
        for ((uu, g), p) in &eff {
            if uu == u && name(g).starts_with("Group 1") && best.as_ref().is_none_or(|b| p.len() < b.len()) {
                best = Some(p.iter().map(|x| name(x)).collect());
            }
        }
        let dec = &d.decisions[u];
        assert_eq!(dec.in_scope, best.is_some(), "{u}");
        assert_eq!(dec.path, best.unwrap_or_default(), "{u}");
    }
}
