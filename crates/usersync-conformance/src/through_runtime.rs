//! Checks through the real runtime: capability honesty, listings, request counts, credentials.

use crate::*;

/// Listing sanity through the runtime: no duplicates, one request per page.
pub(crate) async fn listing_checks(
    report: &mut Report,
    client: &ConnectionClient,
    users: &QueryOutput,
    user_ids: &[String],
    control: Option<&Control>,
) {
    let unique: BTreeSet<&String> = user_ids.iter().collect();
    report.check("paging.no_duplicates", unique.len() == user_ids.len(), || {
        format!("{} users listed, {} distinct", user_ids.len(), unique.len())
    });
    // the token is warm now: a listing costs exactly one request per page
    let before = client.counters();
    let server_before = match control {
        Some(c) => c.stat("requests").await.ok(),
        None => None,
    };
    match client.run_query(&Query::ListUsers).await {
        Ok(again) => {
            let after = client.counters();
            let sent = after.requests - before.requests;
            let tokens = after.token_requests - before.token_requests;
            let server = match (control, server_before) {
                (Some(c), Some(b)) => c.stat("requests").await.ok().map(|a| a - b),
                _ => None,
            };
            report.check(
                "requests.one_per_page",
                sent == again.pages + tokens && server.is_none_or(|s| s == again.pages + tokens),
                || {
                    format!(
                        "{} pages cost {sent} requests ({tokens} token requests; the server counted {server:?})",
                        again.pages
                    )
                },
            );
            report.check(
                "paging.stable",
                sorted(ids(&again, false)) == sorted(ids(users, false)),
                || "two fault-free listings returned different users".into(),
            );
        }
        Err(e) => report.record(
            "requests.one_per_page",
            Outcome::Failed(format!("second listing: {e}")),
        ),
    }
}

/// A query for an operation, with ids from the reference listings; `None` when no id is known.
pub(crate) fn query_for(
    op: Operation,
    user: Option<&str>,
    group: Option<&str>,
    role: Option<&str>,
) -> Option<Query> {
    let u = || user.map(str::to_string);
    let g = || group.map(str::to_string);
    Some(match op {
        Operation::ListUsers => Query::ListUsers,
        Operation::ListGroups => Query::ListGroups,
        Operation::ListRoles => Query::ListRoles,
        Operation::GetUser => Query::GetUser { user_id: u()? },
        Operation::UserManager => Query::UserManager { user_id: u()? },
        Operation::UserGroups => Query::UserGroups { user_id: u()? },
        Operation::UserTransitiveGroups => Query::UserTransitiveGroups { user_id: u()? },
        Operation::UserPhoto => Query::UserPhoto { user_id: u()? },
        Operation::GroupMembers => Query::GroupMembers { group_id: g()? },
        Operation::GroupTransitiveMembers => Query::GroupTransitiveMembers { group_id: g()? },
        Operation::GroupChildren => Query::GroupChildren { group_id: g()? },
        Operation::RoleMembers => Query::RoleMembers {
            role_id: role?.to_string(),
        },
        _ => return None,
    })
}

pub(crate) const QUERY_OPERATIONS: [Operation; 12] = [
    Operation::ListUsers,
    Operation::GetUser,
    Operation::UserManager,
    Operation::UserGroups,
    Operation::UserTransitiveGroups,
    Operation::UserPhoto,
    Operation::ListGroups,
    Operation::GroupMembers,
    Operation::GroupTransitiveMembers,
    Operation::GroupChildren,
    Operation::ListRoles,
    Operation::RoleMembers,
];

/// What the manifest declares is what the connector does.
pub(crate) async fn capability_checks(
    report: &mut Report,
    subject: &Subject,
    client: &ConnectionClient,
    declared: &BTreeSet<Operation>,
    users: &QueryOutput,
    groups: &QueryOutput,
) {
    let caps = subject.connector.manifest().capabilities;
    let user_ids = ids(users, false);
    let group_ids = ids(groups, true);
    let roles = if declared.contains(&Operation::ListRoles) {
        client.run_query(&Query::ListRoles).await.ok()
    } else {
        None
    };
    let role_ids = roles.as_ref().map(|r| ids(r, true)).unwrap_or_default();

    // operations: declared ones answer, others are refused as Unsupported without a request
    let mut wrong = Vec::new();
    for op in QUERY_OPERATIONS {
        let Some(q) = query_for(
            op,
            user_ids.first().map(String::as_str),
            group_ids.first().map(String::as_str),
            role_ids.first().map(String::as_str),
        ) else {
            continue;
        };
        let unsupported = match client.run_query(&q).await {
            Err(e) => matches!(e.connector_error(), Some(ConnectorError::Unsupported { .. })),
            Ok(_) => false,
        };
        if declared.contains(&op) == unsupported {
            wrong.push(format!(
                "{op:?} is {} in the manifest's endpoints but the connector {}",
                if declared.contains(&op) {
                    "declared"
                } else {
                    "not declared"
                },
                if unsupported {
                    "refuses it as Unsupported"
                } else {
                    "answers it"
                }
            ));
        }
    }
    report.check("capabilities.operations", wrong.is_empty(), || wrong.join("; "));

    // managers: in the listing, or by UserManager for the first users
    let mut managers = users.records.iter().any(|r| match r {
        Record::User(u) => u.manager.is_some(),
        Record::Manager { manager, .. } => manager.is_some(),
        _ => false,
    });
    if !managers && declared.contains(&Operation::UserManager) {
        for id in user_ids.iter().take(40) {
            if let Ok(out) = client
                .run_query(&Query::UserManager { user_id: id.clone() })
                .await
            {
                if out
                    .records
                    .iter()
                    .any(|r| matches!(r, Record::Manager { manager: Some(_), .. }))
                {
                    managers = true;
                    break;
                }
            }
        }
    }
    flag(report, "capabilities.manager", caps.manager, managers);

    let mut photos = users.records.iter().any(|r| matches!(r, Record::Photo(_)));
    if !photos && declared.contains(&Operation::UserPhoto) {
        for id in user_ids.iter().take(40) {
            if let Ok(out) = client.run_query(&Query::UserPhoto { user_id: id.clone() }).await {
                if out.records.iter().any(|r| matches!(r, Record::Photo(_))) {
                    photos = true;
                    break;
                }
            }
        }
    }
    flag(report, "capabilities.photos", caps.photos, photos);

    let mut nested = groups.records.iter().any(|r| match r {
        Record::Group(g) => g.parent_id.is_some(),
        Record::Membership(m) => matches!(m.member, MemberRef::Group(_)),
        _ => false,
    });
    for g in group_ids.iter().take(60) {
        if nested {
            break;
        }
        for q in [
            Query::GroupMembers { group_id: g.clone() },
            Query::GroupChildren { group_id: g.clone() },
        ] {
            if !declared.contains(&q.operation()) {
                continue;
            }
            if let Ok(out) = client.run_query(&q).await {
                nested |= out.records.iter().any(|r| match r {
                    Record::Group(_) => true,
                    Record::Membership(m) => matches!(m.member, MemberRef::Group(_)),
                    _ => false,
                });
            }
        }
    }
    flag(report, "capabilities.nested_groups", caps.nested_groups, nested);

    // roles as groups: role groups listed, and members read for one of them
    let mut role_groups = false;
    if roles.as_ref().is_some_and(|r| {
        r.records
            .iter()
            .any(|r| matches!(r, Record::Group(g) if g.kind == GroupKind::Role))
    }) && declared.contains(&Operation::RoleMembers)
    {
        for id in role_ids.iter().take(20) {
            if let Ok(out) = client
                .run_query(&Query::RoleMembers { role_id: id.clone() })
                .await
            {
                if out.records.iter().any(|r| matches!(r, Record::Membership(_))) {
                    role_groups = true;
                    break;
                }
            }
        }
    }
    flag(
        report,
        "capabilities.roles_as_groups",
        caps.roles_as_groups,
        role_groups,
    );

    let in_listing = users.records.iter().any(|r| matches!(r, Record::Membership(_)));
    flag(
        report,
        "capabilities.memberships_in_user_listing",
        caps.memberships_in_user_listing,
        in_listing,
    );

    let transitive = declared.contains(&Operation::GroupTransitiveMembers)
        || declared.contains(&Operation::UserTransitiveGroups);
    flag(
        report,
        "capabilities.transitive_membership",
        caps.transitive_membership,
        transitive,
    );
}

pub(crate) fn flag(report: &mut Report, name: &str, declared: bool, done: bool) {
    report.check(name, declared == done, || {
        format!(
            "the manifest says {declared}, the connector's answers say {done} (against a server whose data has it)"
        )
    });
}

/// A wrong credential stops the listing with an authentication error (never data, never an
/// endless retry).
pub(crate) async fn auth_check(report: &mut Report, subject: &Subject) {
    let name = "auth.wrong_credential_refused";
    let wrong: Option<BTreeMap<String, String>> = subject
        .secrets
        .iter()
        .map(|(k, v)| Some((k.clone(), spoil(v)?)))
        .collect();
    let wrong = match wrong {
        Some(w) if !w.is_empty() => w,
        Some(_) => return report.record(name, Outcome::Skipped("the connection has no secret".into())),
        None => {
            return report.record(
                name,
                Outcome::Skipped("a key cannot be spoiled and still parse (a PEM private key)".into()),
            )
        }
    };
    let c = match client(subject, &wrong, "conformance-wrong-credential") {
        Ok(c) => c,
        Err(e) => {
            report.record(
                name,
                Outcome::Skipped(format!("a spoiled secret is refused before any request: {e}")),
            );
            return;
        }
    };
    match c.run_query(&Query::ListUsers).await {
        Ok(out) => report.record(
            name,
            Outcome::Failed(format!("a wrong credential listed {} records", out.records.len())),
        ),
        Err(e) => {
            let auth = matches!(
                e,
                RuntimeError::Token { .. } | RuntimeError::ConnectionHalted { .. } | RuntimeError::Key { .. }
            ) || matches!(
                e.connector_error(),
                Some(ConnectorError::Unauthorized { .. } | ConnectorError::Forbidden { .. })
            );
            report.check(name, auth, || format!("a wrong credential failed as: {e}"));
        }
    }
}

/// A secret changed so the server refuses it but its shape still parses: its last alphanumeric
/// character replaced. `None` for keys (PEM), which would no longer parse.
pub(crate) fn spoil(secret: &str) -> Option<String> {
    if secret.contains("-----BEGIN") {
        return None;
    }
    let mut chars: Vec<char> = secret.chars().collect();
    match chars.iter().rposition(|c| c.is_ascii_alphanumeric()) {
        Some(i) => chars[i] = if chars[i] == 'a' { 'b' } else { 'a' },
        None => chars.push('x'),
    }
    Some(chars.into_iter().collect())
}
