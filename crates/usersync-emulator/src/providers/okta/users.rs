//! `/api/v1/users`, `/api/v1/users/{id}`, `/api/v1/users/{id}/groups`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::errors::{not_found, page_token_error};
use super::params::{limit_param, link_headers, param, parse_query, project, search_and_filter, with_links};
use super::shapes::{group_json, status_str, user_id, user_json, user_profile, user_type_id, UserOut};
use super::{authorize, Need};
use super::{USERS_LIMIT_DEFAULT, USERS_LIMIT_MAX, USERS_Q_LIMIT_DEFAULT, USER_GROUPS_LIMIT_DEFAULT};
use crate::facade::{json_response, or_respond, BaseUrl, EmuContext};
use crate::ids::{self, kind};
use crate::org::{Org, User, UserStatus};
use crate::paging;
use crate::timefmt::rfc3339_millis;

fn user_attr(org: &Org, u: &User, path: &str) -> Option<Value> {
    match path {
        "id" => Some(json!(user_id(org, u.ix))),
        "status" => Some(json!(status_str(u.status))),
        "created" => Some(json!(rfc3339_millis(u.created))),
        "activated" => (u.status != UserStatus::Staged).then(|| json!(rfc3339_millis(u.created + 60))),
        "statusChanged" => Some(json!(rfc3339_millis(u.status_changed))),
        "lastUpdated" => Some(json!(rfc3339_millis(u.last_updated))),
        "type.id" => Some(json!(user_type_id(org))),
        p => {
            let name = p.strip_prefix("profile.")?;
            user_profile(org, u).remove(name).filter(|v| !v.is_null())
        }
    }
}

const USER_FILTER_PROPS: &[&str] = &[
    "status",
    "lastUpdated",
    "id",
    "profile.login",
    "profile.email",
    "profile.firstName",
    "profile.lastName",
];

#[tracing::instrument(name = "okta.list_users", skip_all)]
pub(super) async fn list_users(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let (search, filter) = or_respond!(search_and_filter(&q, USER_FILTER_PROPS, &["lastUpdated"]));
    let qprefix = param(&q, "q").map(str::to_lowercase);
    let limit = match limit_param(
        &q,
        if qprefix.is_some() {
            USERS_Q_LIMIT_DEFAULT
        } else {
            USERS_LIMIT_DEFAULT
        },
        USERS_LIMIT_MAX,
    ) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let include_deprovisioned = search.is_some() || filter.is_some();
    // Lazily: users with an index above `after` that match (O(page), not O(org), per request).
    let users_after = |after: Option<u32>| {
        let start = after.map_or(0, |a| a as usize + 1);
        org.users
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .flatten()
            .filter(|u| include_deprovisioned || u.status != UserStatus::Deprovisioned)
            .filter(|u| search.as_ref().is_none_or(|e| e.eval(&|p| user_attr(&org, u, p))))
            .filter(|u| filter.as_ref().is_none_or(|e| e.eval(&|p| user_attr(&org, u, p))))
            .filter(|u| {
                qprefix.as_ref().is_none_or(|p| {
                    [&u.first_name, &u.last_name, &u.email]
                        .iter()
                        .any(|s| s.to_lowercase().starts_with(p.as_str()))
                })
            })
            .map(|u| u.ix)
    };
    let fields = param(&q, "fields");
    let render = |ix: u32| {
        org.user(ix).map(|u| {
            let mut v = user_json(&org, u, &base);
            if let Some(f) = fields {
                project(&mut v, f);
            }
            v
        })
    };
    if qprefix.is_some() {
        // `q` is not paged: the first `limit` matches, no next link.
        let items: Vec<Value> = users_after(None).take(limit).filter_map(render).collect();
        return with_links(
            json_response(StatusCode::OK, &items),
            link_headers(&base, uri.path(), &q, None),
        );
    }
    let tag = paging::listing_tag(&[
        "users",
        param(&q, "search").unwrap_or(""),
        param(&q, "filter").unwrap_or(""),
    ]);
    let page = match paging::page_lazy(tag, param(&q, "after"), limit, &faults, users_after) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let body = if fields.is_some() {
        let items: Vec<Value> = page.keys.iter().filter_map(|&ix| render(ix)).collect();
        json_response(StatusCode::OK, &items)
    } else {
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
        json_response(StatusCode::OK, &items)
    };
    drop(org);
    with_links(body, link_headers(&base, uri.path(), &q, page.next.as_deref()))
}

fn find_user(org: &Org, id_or_login: &str) -> Option<u32> {
    if let Some(ix) = ids::parse_okta_id(id_or_login, "00u", org.seed, kind::USER) {
        return org.user(ix).map(|u| u.ix);
    }
    let needle = id_or_login.to_lowercase();
    org.live_users()
        .find(|u| u.login.to_lowercase() == needle || (u.guest && u.email.to_lowercase() == needle))
        .map(|u| u.ix)
}

#[tracing::instrument(name = "okta.get_user", skip_all)]
pub(super) async fn get_user(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let org = ctx.org.read().await;
    match find_user(&org, &id).and_then(|ix| org.user(ix)) {
        Some(u) => json_response(StatusCode::OK, &user_json(&org, u, &base)),
        None => not_found(&id, "User"),
    }
}

#[tracing::instrument(name = "okta.user_groups", skip_all)]
pub(super) async fn user_groups(
    State(ctx): State<Arc<EmuContext>>,
    BaseUrl(base): BaseUrl,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = authorize(&ctx, &method, &uri, &headers, &base, Need::Users) {
        return r;
    }
    let q = parse_query(raw.as_deref());
    let limit = or_respond!(limit_param(
        &q,
        USER_GROUPS_LIMIT_DEFAULT,
        USER_GROUPS_LIMIT_DEFAULT
    ));
    ctx.vanish_user_by(|org| find_user(org, &id)).await;
    let faults = ctx.faults.config();
    let org = ctx.org.read().await;
    let Some(ix) = find_user(&org, &id) else {
        return not_found(&id, "User");
    };
    // The spec declares no paging parameters here, but real Okta pages this list like the
    // others: 200 groups a page, then a `rel="next"` link carrying `after`.
    let tag = paging::listing_tag(&["user-groups", &id]);
    let page = match paging::page(org.groups_of(ix), tag, param(&q, "after"), limit, &faults) {
        Ok(p) => p,
        Err(e) => return page_token_error(e),
    };
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&g| org.group(g))
        .map(|g| group_json(&org, g, &base, false))
        .collect();
    drop(org);
    with_links(
        json_response(StatusCode::OK, &items),
        link_headers(&base, uri.path(), &q, page.next.as_deref()),
    )
}
