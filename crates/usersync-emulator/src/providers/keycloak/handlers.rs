//! The Keycloak admin API's listings: users, groups (tree, children, members) and realm roles.

use super::*;

// ------------------------------------------------------------------------------------------------
// users

/// Keycloak's user filters: `search` (prefix by default, `*` wildcards, `exact`), `username`,
/// `email`, `firstName`, `lastName` (substring unless `exact`), `enabled`.
pub(super) fn user_matches(u: &crate::org::User, p: &Params) -> bool {
    let exact = p.boolean("exact", false);
    let field = |value: &str, wanted: &str| {
        let (v, w) = (value.to_lowercase(), wanted.to_lowercase());
        if exact {
            v == w
        } else {
            v.contains(&w)
        }
    };
    if let Some(s) = p.str("search") {
        let s = s.trim().to_lowercase();
        let hay = [
            username(u),
            u.email.to_lowercase(),
            u.first_name.to_lowercase(),
            u.last_name.to_lowercase(),
        ];
        let ok = if s == "*" {
            true
        } else if let Some(inner) = s.strip_prefix('*').and_then(|x| x.strip_suffix('*')) {
            hay.iter().any(|h| h.contains(inner))
        } else if exact {
            hay.contains(&s)
        } else {
            let s = s.trim_end_matches('*');
            hay.iter().any(|h| h.starts_with(s))
        };
        if !ok {
            return false;
        }
    }
    for (name, value) in [
        ("username", username(u)),
        ("email", u.email.clone()),
        ("firstName", u.first_name.clone()),
        ("lastName", u.last_name.clone()),
    ] {
        if let Some(w) = p.str(name) {
            if !field(&value, w) {
                return false;
            }
        }
    }
    if let Some(e) = p.str("enabled") {
        if e.eq_ignore_ascii_case("true") != (u.status != UserStatus::Suspended) {
            return false;
        }
    }
    true
}

pub(super) fn filtered_users(org: &Org, caller: &Caller, p: &Params) -> Vec<UserIx> {
    if !caller.can_view_users() {
        // query-users without view-users: Keycloak filters out every user the caller may not view
        return Vec::new();
    }
    users_sorted(org)
        .into_iter()
        .filter(|(_, ix)| org.user(*ix).is_some_and(|u| user_matches(u, p)))
        .map(|(_, ix)| ix)
        .collect()
}

pub(super) async fn list_users(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_query_users() {
        return forbidden();
    }
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", false);
    let org = ctx.org.read().await;
    let all = filtered_users(&org, &caller, &p);
    let page = or_respond!(window(&all, &p, Some(DEFAULT_MAX), &ctx.faults.config()));
    let body: Vec<Value> = page.iter().map(|ix| user_json(&org, *ix, full)).collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn count_users(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_query_users() {
        return forbidden();
    }
    let org = ctx.org.read().await;
    let n = filtered_users(&org, &caller, &Params(q)).len();
    drop(org);
    // a bare integer, not an object
    json_response(StatusCode::OK, &n)
}

/// The user behind `{id}` for a caller who must be able to view users (`Err`: the response).
pub(super) fn viewable_user(org: &Org, caller: &Caller, id: &str) -> Result<UserIx, Response> {
    match find_user(org, id) {
        Some(ix) if caller.can_view_users() => Ok(ix),
        Some(_) => Err(forbidden()),
        // unknown id: 404 for a caller who may query users, 403 otherwise
        None if caller.can_query_users() => Err(error(StatusCode::NOT_FOUND, "User not found")),
        None => Err(forbidden()),
    }
}

pub(super) async fn get_user(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let org = ctx.org.read().await;
    let ix = or_respond!(viewable_user(&org, &caller, &id));
    let body = user_json(&org, ix, true);
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) fn user_group_list(org: &Org, ix: UserIx, p: &Params) -> Vec<GroupIx> {
    let mut v: Vec<GroupIx> = org
        .groups_of(ix)
        .iter()
        .copied()
        .filter(|g| org.group(*g).is_some())
        .filter(|g| match p.str("search") {
            Some(s) => org
                .group(*g)
                .is_some_and(|gr| gr.name.to_lowercase().contains(&s.to_lowercase())),
            None => true,
        })
        .collect();
    v.sort_by(|a, b| {
        let na = org.group(*a).map(|g| g.name.as_str()).unwrap_or("");
        let nb = org.group(*b).map(|g| g.name.as_str()).unwrap_or("");
        na.cmp(nb).then(a.cmp(b))
    });
    v
}

pub(super) async fn user_groups(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", true);
    ctx.vanish_user_by(|org| viewable_user(org, &caller, &id).ok())
        .await;
    let org = ctx.org.read().await;
    let ix = or_respond!(viewable_user(&org, &caller, &id));
    let t = tree(&org);
    let groups = user_group_list(&org, ix, &p);
    let page = or_respond!(window(&groups, &p, None, &ctx.faults.config()));
    let body: Vec<Value> = page
        .iter()
        .map(|g| group_json(&org, &t, *g, full, false, Vec::new()))
        .collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn user_groups_count(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let org = ctx.org.read().await;
    let ix = or_respond!(viewable_user(&org, &caller, &id));
    let n = user_group_list(&org, ix, &Params(q)).len();
    drop(org);
    json_response(StatusCode::OK, &json!({ "count": n }))
}

// ------------------------------------------------------------------------------------------------
// groups

/// `search`/`q` on `/groups`: top-level groups that are or contain a match, with `subGroups` filled
/// down to the matches (`populateHierarchy`, the default).
pub(super) fn search_tree(
    org: &Org,
    t: &Tree,
    g: GroupIx,
    needle: &str,
    exact: bool,
    full: bool,
    count: bool,
) -> Option<Value> {
    let name = org.group(g)?.name.to_lowercase();
    let hit = if exact {
        name == needle
    } else {
        name.contains(needle)
    };
    let subs: Vec<Value> = t
        .children_of(g)
        .iter()
        .filter_map(|c| search_tree(org, t, *c, needle, exact, full, count))
        .collect();
    (hit || !subs.is_empty()).then(|| group_json(org, t, g, full, count, subs))
}

pub(super) async fn list_groups(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_list_groups() {
        return forbidden();
    }
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", true);
    let count = p.boolean("subGroupsCount", true);
    let org = ctx.org.read().await;
    let t = tree(&org);
    let body: Vec<Value> = if let Some(needle) = p.str("search").or(p.str("q")).map(str::to_lowercase) {
        let exact = p.boolean("exact", false);
        let hits: Vec<Value> = t
            .top
            .iter()
            .filter_map(|g| search_tree(&org, &t, *g, &needle, exact, full, count))
            .collect();
        or_respond!(window(&hits, &p, None, &ctx.faults.config()))
    } else {
        // Keycloak 23+: top-level groups only, `subGroups` left empty
        let page = or_respond!(window(&t.top, &p, None, &ctx.faults.config()));
        page.iter()
            .map(|g| group_json(&org, &t, *g, full, count, Vec::new()))
            .collect()
    };
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn count_groups(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_list_groups() {
        return forbidden();
    }
    let p = Params(q);
    let org = ctx.org.read().await;
    let t = tree(&org);
    let n = if let Some(s) = p.str("search").map(str::to_lowercase) {
        org.live_groups()
            .filter(|g| g.name.to_lowercase().contains(&s))
            .count()
    } else if p.boolean("top", false) {
        t.top.len()
    } else {
        org.live_groups().count()
    };
    drop(org);
    json_response(StatusCode::OK, &json!({ "count": n }))
}

pub(super) fn viewable_group(org: &Org, caller: &Caller, id: &str) -> Result<GroupIx, Response> {
    if !caller.can_view_users() {
        return Err(forbidden());
    }
    find_group(org, id).ok_or_else(|| error(StatusCode::NOT_FOUND, "Could not find group by id"))
}

pub(super) async fn get_group(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let org = ctx.org.read().await;
    let g = or_respond!(viewable_group(&org, &caller, &id));
    let t = tree(&org);
    let body = group_json(&org, &t, g, true, true, Vec::new());
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn group_children(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let p = Params(q);
    // the defaults of this endpoint differ from /groups: max 10, full representation
    let full = !p.boolean("briefRepresentation", false);
    let count = p.boolean("subGroupsCount", true);
    ctx.vanish_group_by(|org| viewable_group(org, &caller, &id).ok())
        .await;
    let org = ctx.org.read().await;
    let g = or_respond!(viewable_group(&org, &caller, &id));
    let t = tree(&org);
    let exact = p.boolean("exact", false);
    let kids: Vec<GroupIx> = t
        .children_of(g)
        .iter()
        .copied()
        .filter(|c| match p.str("search").map(str::to_lowercase) {
            Some(s) => org.group(*c).is_some_and(|x| {
                let n = x.name.to_lowercase();
                if exact {
                    n == s
                } else {
                    n.contains(&s)
                }
            }),
            None => true,
        })
        .collect();
    let page = or_respond!(window(
        &kids,
        &p,
        Some(CHILDREN_DEFAULT_MAX),
        &ctx.faults.config()
    ));
    let body: Vec<Value> = page
        .iter()
        .map(|c| group_json(&org, &t, *c, full, count, Vec::new()))
        .collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn group_members(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", false);
    ctx.vanish_group_by(|org| viewable_group(org, &caller, &id).ok())
        .await;
    let org = ctx.org.read().await;
    let g = or_respond!(viewable_group(&org, &caller, &id));
    // direct members only
    let members = sort_by_username(
        &org,
        org.group(g)
            .map(|x| x.members.clone())
            .unwrap_or_default()
            .into_iter(),
    );
    let page = or_respond!(window(&members, &p, Some(DEFAULT_MAX), &ctx.faults.config()));
    let body: Vec<Value> = page.iter().map(|ix| user_json(&org, *ix, full)).collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}

// ------------------------------------------------------------------------------------------------
// roles

pub(super) async fn list_roles(
    State(ctx): St,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.is_admin() {
        return forbidden();
    }
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", true);
    let org = ctx.org.read().await;
    let all: Vec<RoleView> = roles(&org)
        .into_iter()
        .filter(|r| match p.str("search") {
            Some(s) => r.name.to_lowercase().contains(&s.to_lowercase()),
            None => true,
        })
        .collect();
    let idx: Vec<usize> = (0..all.len()).collect();
    let page = or_respond!(window(&idx, &p, None, &ctx.faults.config()));
    let body: Vec<Value> = page.iter().map(|i| role_json(&org, &all[*i], full)).collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) fn find_role(all: &[RoleView], by: impl Fn(&RoleView) -> bool) -> Option<&RoleView> {
    all.iter().find(|r| by(r))
}

pub(super) async fn get_role(
    State(ctx): St,
    Path((realm, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_view_realm() {
        return forbidden();
    }
    let org = ctx.org.read().await;
    let all = roles(&org);
    let body = match find_role(&all, |r| r.name == name) {
        Some(r) => role_json(&org, r, true),
        None => return error(StatusCode::NOT_FOUND, "Could not find role"),
    };
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn role_by_id(
    State(ctx): St,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_view_realm() {
        return forbidden();
    }
    let org = ctx.org.read().await;
    let all = roles(&org);
    let body = match find_role(&all, |r| {
        ids::guid(org.seed, kind::ROLE, r.ix).eq_ignore_ascii_case(&id)
    }) {
        Some(r) => role_json(&org, r, true),
        None => return error(StatusCode::NOT_FOUND, "Could not find role with id"),
    };
    drop(org);
    json_response(StatusCode::OK, &body)
}

pub(super) async fn role_users(
    State(ctx): St,
    Path((realm, name)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = or_respond!(admin_auth(&ctx, &headers, &realm).await);
    if !caller.can_view_realm() || !caller.can_query_users() {
        return forbidden();
    }
    let p = Params(q);
    let full = !p.boolean("briefRepresentation", false);
    let org = ctx.org.read().await;
    let all = roles(&org);
    let Some(role) = find_role(&all, |r| r.name == name) else {
        return error(StatusCode::NOT_FOUND, "Could not find role");
    };
    // direct holders only (not through groups or composite roles)
    let page = or_respond!(window(&role.members, &p, Some(DEFAULT_MAX), &ctx.faults.config()));
    let body: Vec<Value> = page.iter().map(|ix| user_json(&org, *ix, full)).collect();
    drop(org);
    json_response(StatusCode::OK, &body)
}
