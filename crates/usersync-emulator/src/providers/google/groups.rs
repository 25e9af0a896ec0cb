//! Google Directory groups: `groups` listing (customer, domain, userKey) and `groups/{groupKey}`.

use super::*;

pub(super) fn group_json(org: &Org, ix: u32) -> Option<Value> {
    let g = org.group(ix)?;
    let email = group_email(org, ix, &g.name);
    let direct = if g.kind == GroupKind::BuiltIn {
        1
    } else {
        g.members.len() + g.child_groups.len()
    };
    let mut v = json!({
        "kind": "admin#directory#group",
        "id": group_id(org.seed, ix),
        "etag": etag(&["group", &ix.to_string(), &g.last_updated.to_string()]),
        "email": email,
        "name": g.name,
        "directMembersCount": direct.to_string(),
        "description": g.description.clone().unwrap_or_default(),
        "adminCreated": g.kind != GroupKind::Imported,
        "nonEditableAliases": [format!("{}.test-google-a.com", email)],
    });
    if g.kind == GroupKind::Imported {
        v["aliases"] = json!([format!("ad-{}", email)]);
    }
    Some(v)
}

pub(super) async fn list_groups(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Groups) {
        return r;
    }
    if q.contains_key("query") {
        return gerror(
            400,
            "invalid",
            "Invalid Input: query is not supported by the emulator",
        );
    }
    let limit = or_respond!(max_results(&q, 200, None, 200));
    let desc = or_respond!(descending(&q));
    let org = st.ctx.org.read().await;
    let user_key = q.get("userKey").map(String::as_str).filter(|k| !k.is_empty());
    let mut ixs: Vec<u32> = match user_key {
        Some(_) if q.contains_key("customer") => return bad_request(),
        Some(key) => {
            if let Some(uix) = resolve_user(&org, key).or_else(|| {
                // External members (guests) are keyed by their id or address too.
                parse_user_id(key, org.seed)
                    .filter(|&i| org.user(i).is_some())
                    .or_else(|| {
                        org.live_users()
                            .find(|u| !is_listed(u) && u.email.eq_ignore_ascii_case(key))
                            .map(|u| u.ix)
                    })
            }) {
                let mut v: Vec<u32> = org
                    .groups_of(uix)
                    .iter()
                    .copied()
                    .filter(|&g| org.group(g).is_some_and(|gr| gr.kind != GroupKind::BuiltIn))
                    .collect();
                // The built-in group's only member is CUSTOMER: every listed user belongs directly.
                if org.user(uix).is_some_and(is_listed) {
                    v.extend(
                        org.live_groups()
                            .filter(|g| g.kind == GroupKind::BuiltIn)
                            .map(|g| g.ix),
                    );
                }
                v.sort_unstable();
                v.dedup();
                v
            } else if let Some(gix) = resolve_group(&org, key) {
                org.live_groups()
                    .filter(|g| g.child_groups.contains(&gix))
                    .map(|g| g.ix)
                    .collect()
            } else {
                return not_found("userKey");
            }
        }
        None => {
            if let Err(r) = check_scope(&org, &q) {
                return r;
            }
            org.live_groups().map(|g| g.ix).collect()
        }
    };
    let order_by = q.get("orderBy").map(String::as_str);
    match order_by {
        None => {}
        Some("email") => ixs.sort_by_key(|&g| {
            org.group(g)
                .map(|gr| group_email(&org, g, &gr.name))
                .unwrap_or_default()
        }),
        Some(other) => {
            return invalid_param(
                "orderBy",
                &format!("Invalid value '{other}'. Values must be one of: email"),
            )
        }
    }
    let sorted = order_by.is_some();
    if sorted && desc {
        ixs.reverse();
    }
    let (keys, order) = if sorted { ranked(ixs) } else { (ixs.clone(), ixs) };
    let tag = paging::listing_tag(&[
        "groups",
        user_key.unwrap_or(""),
        order_by.unwrap_or(""),
        &desc.to_string(),
    ]);
    let page = or_respond!(page_of(&st, &keys, tag, &q, limit));
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| unrank(sorted, &order, k))
        .filter_map(|g| group_json(&org, g))
        .collect();
    drop(org);
    list_response("groups", &["groups"], page, items, &q)
}

pub(super) async fn get_group(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Groups) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(v) = resolve_group(&org, &key).and_then(|g| group_json(&org, g)) else {
        return not_found("groupKey");
    };
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}
