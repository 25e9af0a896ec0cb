//! Google Directory members: `groups/{groupKey}/members`, `members/{memberKey}` and `hasMember/{memberKey}`.

use super::*;

/// Member keys of a group in one ascending key space: user `u` -> `2u`, group `g` -> `2g + 1`;
/// the built-in group has the single key `u32::MAX` (its `CUSTOMER` member).
pub(super) fn member_keys(org: &Org, gix: u32, derived: bool) -> Vec<u32> {
    let Some(g) = org.group(gix) else {
        return Vec::new();
    };
    if g.kind == GroupKind::BuiltIn {
        return vec![u32::MAX];
    }
    let mut keys: Vec<u32> = g.members.iter().map(|&u| u.saturating_mul(2)).collect();
    keys.extend(
        g.child_groups
            .iter()
            .map(|&c| c.saturating_mul(2).saturating_add(1)),
    );
    if derived {
        keys.extend(
            org.transitive_members(gix)
                .into_iter()
                .map(|u| u.saturating_mul(2)),
        );
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

pub(super) fn member_json(org: &Org, gix: u32, key: u32) -> Option<Value> {
    if key == u32::MAX {
        return Some(json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), "customer"]),
            "id": customer_id(org.seed),
            "role": "MEMBER",
            "type": "CUSTOMER",
            "status": "ACTIVE",
        }));
    }
    let g = org.group(gix)?;
    if key % 2 == 0 {
        let u = org.user(key / 2)?;
        let (suspended, archived, _) = google_status(u.status);
        let owner = g.members.first() == Some(&u.ix);
        let mut v = json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), &key.to_string()]),
            "id": user_id(org.seed, u.ix),
            "email": if is_listed(u) { primary_email(u) } else { u.email.to_lowercase() },
            "role": if owner { "OWNER" } else { "MEMBER" },
            "type": "USER",
        });
        if is_listed(u) {
            v["status"] = if suspended || archived {
                "SUSPENDED"
            } else {
                "ACTIVE"
            }
            .into();
        }
        Some(v)
    } else {
        let c = org.group(key / 2)?;
        Some(json!({
            "kind": "admin#directory#member",
            "etag": etag(&["member", &gix.to_string(), &key.to_string()]),
            "id": group_id(org.seed, c.ix),
            "email": group_email(org, c.ix, &c.name),
            "role": "MEMBER",
            "type": "GROUP",
            "status": "ACTIVE",
        }))
    }
}

pub(super) fn member_role(v: &Value) -> &str {
    v.get("role").and_then(Value::as_str).unwrap_or("MEMBER")
}

pub(super) async fn list_members(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let limit = or_respond!(max_results(&q, 200, None, 200));
    let roles: Option<Vec<String>> = q.get("roles").map(|r| {
        r.split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(bad) = roles
        .iter()
        .flatten()
        .find(|r| !matches!(r.as_str(), "OWNER" | "MANAGER" | "MEMBER"))
    {
        return invalid_param(
            "roles",
            &format!("Invalid value '{bad}'. Values must be OWNER, MANAGER or MEMBER"),
        );
    }
    let derived = match q.get("includeDerivedMembership").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return invalid_param(
                "includeDerivedMembership",
                &format!("Invalid value '{other}'. Values must be true or false"),
            )
        }
    };
    st.ctx.vanish_group_by(|org| resolve_group(org, &key)).await;
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let mut keys = member_keys(&org, gix, derived);
    if let Some(roles) = &roles {
        keys.retain(|&k| {
            member_json(&org, gix, k).is_some_and(|v| roles.iter().any(|r| r == member_role(&v)))
        });
    }
    let tag = paging::listing_tag(&[
        "members",
        &gix.to_string(),
        &derived.to_string(),
        q.get("roles").map(String::as_str).unwrap_or(""),
    ]);
    let page = or_respond!(page_of(&st, &keys, tag, &q, limit));
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| member_json(&org, gix, k))
        .collect();
    drop(org);
    list_response("members", &["members", &gix.to_string()], page, items, &q)
}

pub(super) fn member_key_of(org: &Org, gix: u32, member: &str) -> Option<u32> {
    if member == customer_id(org.seed) {
        return org
            .group(gix)
            .filter(|g| g.kind == GroupKind::BuiltIn)
            .map(|_| u32::MAX);
    }
    if let Some(u) = parse_user_id(member, org.seed)
        .filter(|&u| org.user(u).is_some())
        .or_else(|| {
            let m = member.to_lowercase();
            org.live_users()
                .find(|u| primary_email(u) == m || u.email.eq_ignore_ascii_case(&m))
                .map(|u| u.ix)
        })
    {
        return Some(u.saturating_mul(2));
    }
    resolve_group(org, member).map(|c| c.saturating_mul(2).saturating_add(1))
}

pub(super) async fn get_member(
    State(st): St,
    headers: HeaderMap,
    Path((key, member)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let keys = member_keys(&org, gix, false);
    let Some(v) = member_key_of(&org, gix, &member)
        .filter(|k| keys.binary_search(k).is_ok())
        .and_then(|k| member_json(&org, gix, k))
    else {
        return not_found("memberKey");
    };
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

pub(super) async fn has_member(
    State(st): St,
    headers: HeaderMap,
    Path((key, member)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Members) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(gix) = resolve_group(&org, &key) else {
        return not_found("groupKey");
    };
    let Some(mk) = member_key_of(&org, gix, &member).filter(|k| k % 2 == 0 && *k != u32::MAX) else {
        return not_found("memberKey");
    };
    let uix = mk / 2;
    let builtin = org.group(gix).is_some_and(|g| g.kind == GroupKind::BuiltIn);
    let is_member = (builtin && org.user(uix).is_some_and(is_listed))
        || org.transitive_members(gix).binary_search(&uix).is_ok();
    drop(org);
    json_response(StatusCode::OK, &json!({"isMember": is_member}))
}

// ------------------------------------------------------------------ OAuth 2.0
