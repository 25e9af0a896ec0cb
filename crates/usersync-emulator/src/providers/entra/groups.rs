//! Graph groups: `groups`, `groups/{id}`, `members`, `transitiveMembers`.

use super::*;

pub(super) async fn list_groups(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path(version): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, GROUP_READ));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    if let Some(e) = &od.expand {
        let name = e.split('(').next().unwrap_or(e);
        return bad_request(
            "Request_BadRequest",
            &format!("Could not find a property named '{name}' on type 'microsoft.graph.group'."),
        );
    }
    let org = ctx.org.read().await;
    let select = or_respond!(selection(&od, GROUP_PROPS, &[], "group"));
    let clauses = or_respond!(filter_clauses(&od));
    let keys: Vec<u32> = org
        .live_groups()
        .filter(|g| wanted(&od, &clauses, || group_full(&org, g)))
        .map(|g| g.ix)
        .collect();
    let context = match &od.select {
        Some(s) => metadata(&base, &version, &format!("groups({})", s.join(","))),
        None => metadata(&base, &version, "groups"),
    };
    let path = format!("/{version}/groups");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |ix| {
            let g = org.group(ix)?;
            Some(Value::Object(project(
                &group_full(&org, g),
                select.as_deref(),
                None,
            )))
        },
    )
}

pub(super) async fn get_group(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    or_respond!(guard(&ctx, &headers, &version, GROUP_READ));
    let od = or_respond!(parse_odata(raw.as_deref(), &headers));
    let org = ctx.org.read().await;
    let select = or_respond!(selection(&od, GROUP_PROPS, &[], "group"));
    let Some(g) = find_group(&org, &id) else {
        return not_found(&id);
    };
    let mut v = Value::Object(project(&group_full(&org, g), select.as_deref(), None));
    v["@odata.context"] = json!(metadata(&base, &version, "groups/$entity"));
    ok(&v)
}

pub(super) async fn members(req: RelationRequest) -> Response {
    group_members(req, false).await
}

pub(super) async fn transitive_members(req: RelationRequest) -> Response {
    group_members(req, true).await
}

pub(super) async fn group_members(req: RelationRequest, transitive: bool) -> Response {
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
    if od.filter.is_some() && !od.advanced() {
        return advanced_needed("filter");
    }
    ctx.vanish_group_by(|org| find_group(org, &id).map(|g| g.ix))
        .await;
    let org = ctx.org.read().await;
    let exts = extension_names(&org);
    let mut known: Vec<&str> = USER_PROPS.to_vec();
    known.extend(GROUP_PROPS);
    let select = or_respond!(selection(&od, &known, &exts, "directoryObject"));
    let Some(g) = find_group(&org, &id) else {
        return not_found(&id);
    };
    let keys = member_keys(&org, g, transitive);
    let rel = if transitive {
        "transitiveMembers"
    } else {
        "members"
    };
    let path = format!("/{version}/groups/{id}/{rel}");
    let context = metadata(&base, &version, "directoryObjects");
    page_response(
        &ctx,
        &base,
        &path,
        &context,
        &od,
        &keys,
        od.top.unwrap_or(DEFAULT_TOP),
        |k| member_object(&org, k, select.as_deref()),
    )
}
