//! `/api/v1/groups`, `/api/v1/groups/{id}`, `/api/v1/groups/{id}/users`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::errors::{not_found, page_token_error};
use super::params::{limit_param, link_headers, param, parse_query, search_and_filter, with_links};
use super::shapes::{app_id, group_id, group_json, group_type, UserOut};
use super::{authorize, Need};
use super::{GROUPS_LIMIT_MAX, GROUPS_Q_LIMIT_DEFAULT, MEMBERS_LIMIT_DEFAULT};
use crate::facade::{json_response, or_respond, BaseUrl, EmuContext};
use crate::ids::{self, kind};
use crate::org::{Group, GroupKind, Org};
use crate::paging;
use crate::timefmt::rfc3339_millis;

fn group_attr(org: &Org, g: &Group, path: &str) -> Option<Value> {
    match path {
        "id" => Some(json!(group_id(org, g.ix))),
        "type" => Some(json!(group_type(g.kind))),
        "created" => Some(json!(rfc3339_millis(g.created))),
        "lastUpdated" => Some(json!(rfc3339_millis(g.last_updated))),
        "lastMembershipUpdated" => Some(json!(rfc3339_millis(g.last_membership_updated))),
        "source.id" => (g.kind == GroupKind::Imported).then(|| json!(app_id(org))),
        "profile.name" => Some(json!(g.name)),
        "profile.description" => g.description.as_ref().map(|d| json!(d)),
        _ => None,
    }
}

const GROUP_FILTER_PROPS: &[&str] = &["id", "type", "lastUpdated", "lastMembershipUpdated"];

#[tracing::instrument(name = "okta.list_groups", skip_all)]
pub(super) async fn list_groups(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let (search, filter) = or_respond!(search_and_filter(
        &q,
        GROUP_FILTER_PROPS,
        &["lastUpdated", "lastMembershipUpdated"]
    ));
    let qprefix = param(&q, "q").map(str::to_lowercase);
    let limit = match limit_param(
        &q,
        if qprefix.is_some() {
            GROUPS_Q_LIMIT_DEFAULT
        } else {
            GROUPS_LIMIT_MAX
        },
        GROUPS_LIMIT_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let stats = param(&q, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let groups_after = |after: Option<u32>| {
        let start = after.map_or(0, |a| a as usize + 1);
        org.groups
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .filter(|g| {
                search
                    .as_ref()
                    .is_none_or(|e| e.eval(&|p| group_attr(&org, g, p)))
            })
            .filter(|g| {
                filter
                    .as_ref()
                    .is_none_or(|e| e.eval(&|p| group_attr(&org, g, p)))
            })
            .filter(|g| {
                qprefix
                    .as_ref()
                    .is_none_or(|p| g.name.to_lowercase().starts_with(p.as_str()))
            })
            .map(|g| g.ix)
    };
    let render = |ix: u32| org.group(ix).map(|g| group_json(&org, g, &base, stats));
    if qprefix.is_some() {
        let items: Vec<Value> = groups_after(None).take(limit).filter_map(render).collect();
        return with_links(
            json_response(StatusCode::OK, &items),
            link_headers(&base, uri.path(), &q, None),
        );
    }
    let tag = paging::listing_tag(&[
        "groups",
        param(&q, "search").unwrap_or(""),
        param(&q, "filter").unwrap_or(""),
    ]);
    let page = match paging::page_lazy(tag, param(&q, "after"), limit, &faults, groups_after) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page.keys.iter().filter_map(|&ix| render(ix)).collect();
    drop(org);
    with_links(
        json_response(StatusCode::OK, &items),
        link_headers(&base, uri.path(), &q, page.next.as_deref()),
    )
}

fn find_group(org: &Org, id: &str) -> Option<u32> {
    ids::parse_okta_id(id, "00g", org.seed, kind::GROUP).filter(|&ix| org.group(ix).is_some())
}

#[tracing::instrument(name = "okta.get_group", skip_all)]
pub(super) async fn get_group(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let stats = param(&q, "expand").is_some_and(|e| e.split(',').any(|x| x == "stats"));
    let org = ctx.org.read().await;
    match find_group(&org, &id).and_then(|ix| org.group(ix)) {
        Some(g) => json_response(StatusCode::OK, &group_json(&org, g, &base, stats)),
        None => not_found(&id, "UserGroup"),
    }
}

#[tracing::instrument(name = "okta.group_users", skip_all)]
pub(super) async fn group_users(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Groups) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let limit = or_respond!(limit_param(&q, MEMBERS_LIMIT_DEFAULT, MEMBERS_LIMIT_DEFAULT));
    ctx.vanish_group_by(|org| find_group(org, &id)).await;
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let Some(gix) = find_group(&org, &id) else {
        return not_found(&id, "UserGroup");
    };
    let members: &[u32] = org.group(gix).map(|g| g.members.as_slice()).unwrap_or(&[]);
    let tag = paging::listing_tag(&["members", &id]);
    let page = match paging::page(members, tag, param(&q, "after"), limit, &faults) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<UserOut> = page
        .keys
        .iter()
        .filter_map(|&ix| org.user(ix))
        .map(|u| UserOut {
            org: &org,
            u,
            base: &base,
        })
        .collect();
    let body = json_response(StatusCode::OK, &items);
    drop(org);
    with_links(body, link_headers(&base, uri.path(), &q, page.next.as_deref()))
}
