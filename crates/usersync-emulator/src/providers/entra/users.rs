//! Graph users: `users`, `users/{id}`, `manager`, `memberOf`, `transitiveMemberOf`.

use super::*;

// ------------------------------------------------------------------------------------ handlers

pub(super) type Ctx = State<Arc<EmuContext>>;

/// What a listing of one object's relations (`members`, `transitiveMembers`, `memberOf`,
/// `transitiveMemberOf`) reads from its request: `/{version}/{users|groups}/{id}/...`.
pub(super) struct RelationRequest {
    pub(super) ctx: Arc<EmuContext>,
    pub(super) base: String,
    pub(super) version: String,
    pub(super) id: String,
    pub(super) raw: Option<String>,
    pub(super) headers: HeaderMap,
}

impl axum::extract::FromRequestParts<Arc<EmuContext>> for RelationRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<EmuContext>,
    ) -> Result<Self, Response> {
        let Ok(BaseUrl(base)) = BaseUrl::from_request_parts(parts, state).await;
        let Path((version, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(RawQuery(raw)) = RawQuery::from_request_parts(parts, state).await;
        Ok(Self {
            ctx: Arc::clone(state),
            base,
            version,
            id,
            raw,
            headers: parts.headers.clone(),
        })
    }
}

pub(super) async fn list_users(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, &[USER_READ_ALL]));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = or_respond!(selection(&od, USER_PROPS, &exts, "user"));
    let manager_select = or_respond!(manager_expansion(&od));
    let clauses = or_respond!(filter_clauses(&od));
    let keys: Vec<u32> = org
        .live_users()
        .filter(|u| wanted(&od, &clauses, || user_full(&org, u)))
        .map(|u| u.ix)
        .collect();
    let mut limit = od.top.unwrap_or(DEFAULT_TOP);
    if manager_select.is_some() {
        limit = limit.min(EXPAND_CAP);
    }
    let context = match &od.select {
        Some(s) => metadata(&base, &version, &format!("users({})", s.join(","))),
        None => metadata(&base, &version, "users"),
    };
    let path = format!("/{version}/users");
    page_response(&ctx, &base, &path, &context, &od, &keys, limit, |ix| {
        let u = org.user(ix)?;
        Some(user_value(&org, u, select.as_deref(), manager_select.as_ref()))
    })
}

/// A user projected, with `manager` expanded when asked (absent when the user has none).
pub(super) fn user_value(
    org: &Org,
    u: &User,
    select: Option<&[String]>,
    manager: Option<&Option<Vec<String>>>,
) -> Value {
    let mut m = project(&user_full(org, u), select, Some(USER_DEFAULT));
    if let Some(msel) = manager {
        if let Some(mgr) = u.manager.and_then(|ix| org.user(ix)) {
            let full = user_full(org, mgr);
            let projected = match msel {
                Some(s) => project(&full, Some(s), None),
                None => project(&full, None, Some(USER_DEFAULT)),
            };
            m.insert("manager".into(), typed("user", projected));
        }
    }
    Value::Object(m)
}

pub(super) async fn get_user(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, &[USER_READ_ALL]));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = or_respond!(selection(&od, USER_PROPS, &exts, "user"));
    let manager_select = or_respond!(manager_expansion(&od));
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let mut v = user_value(&org, u, select.as_deref(), manager_select.as_ref());
    v["@odata.context"] = json!(metadata(&base, &version, "users/$entity"));
    ok(&v)
}

pub(super) async fn get_manager(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, &[USER_READ_ALL]));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let select = or_respond!(selection(&od, USER_PROPS, &exts, "user"));
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let Some(mgr) = u.manager.and_then(|ix| org.user(ix)) else {
        return not_found("manager");
    };
    let mut v = typed(
        "user",
        project(&user_full(&org, mgr), select.as_deref(), Some(USER_DEFAULT)),
    );
    v["@odata.context"] = json!(metadata(&base, &version, "directoryObjects/$entity"));
    ok(&v)
}

pub(super) async fn member_of(req: RelationRequest) -> Response {
    user_memberships(req, false).await
}

pub(super) async fn transitive_member_of(req: RelationRequest) -> Response {
    user_memberships(req, true).await
}

pub(super) async fn user_memberships(req: RelationRequest, transitive: bool) -> Response {
    let RelationRequest {
        ctx,
        base,
        version,
        id,
        raw,
        headers,
    } = req;
    or_respond!(guard(&ctx, &headers, &version, GROUP_READ));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    ctx.vanish_user_by(|org| find_user(org, &id).map(|u| u.ix)).await;
    let org = ctx.org.read().await;
    let select = or_respond!(selection(&od, GROUP_PROPS, &[], "directoryObject"));
    let Some(u) = find_user(&org, &id) else {
        return not_found(&id);
    };
    let direct = org.groups_of(u.ix).to_vec();
    let groups: BTreeSet<u32> = if transitive {
        ancestors(&org, &direct)
    } else {
        direct.into_iter().collect()
    };
    let mut keys: Vec<u32> = groups.into_iter().filter(|g| org.group(*g).is_some()).collect();
    keys.extend(
        org.roles
            .iter()
            .filter(|r| r.members.contains(&u.ix))
            .map(|r| GROUP_KEY | r.ix),
    );
    let rel = if transitive {
        "transitiveMemberOf"
    } else {
        "memberOf"
    };
    let path = format!("/{version}/users/{id}/{rel}");
    let context = metadata(&base, &version, "directoryObjects");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |k| {
            if k >= GROUP_KEY {
                let r = org.roles.get((k & !GROUP_KEY) as usize)?;
                let full = json!({"id": role_id(org.seed, r.ix), "displayName": r.name, "description": format!("Can act as {}.", r.name),
                              "roleTemplateId": ids::guid(org.seed, kind::ROLE, r.ix + 1_000_000), "deletedDateTime": null});
                let m = full.as_object().cloned().unwrap_or_default();
                return Some(typed("directoryRole", project(&m, select.as_deref(), None)));
            }
            let g = org.group(k)?;
            Some(typed(
                "group",
                project(&group_full(&org, g), select.as_deref(), None),
            ))
        },
    )
}
