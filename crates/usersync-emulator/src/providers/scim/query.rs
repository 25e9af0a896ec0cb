//! Discovery (`/ServiceProviderConfig`, `/ResourceTypes`) and reads: filtered, paged listings and
//! single resources.

use super::*;

// ---------------------------------------------------------------- discovery

pub(super) async fn service_provider_config(State(st): St, BaseUrl(base): BaseUrl) -> Response {
    scim_response(StatusCode::OK, &st.profile.service_provider_config(&base), None)
}

pub(super) async fn resource_types(State(_st): St) -> Response {
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": 2, "startIndex": 1, "itemsPerPage": 2,
        "Resources": [
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User",
             "endpoint": "/Users", "schema": USER_SCHEMA,
             "schemaExtensions": [{"schema": ENTERPRISE, "required": false}]},
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "Group", "name": "Group",
             "endpoint": "/Groups", "schema": GROUP_SCHEMA},
        ],
    });
    scim_response(StatusCode::OK, &body, None)
}

// ---------------------------------------------------------------- query

/// Parse `<attr> eq "<JSON string>"` (RFC 7644 §3.4.2.2); anything else is `invalidFilter`.
pub(super) fn parse_filter(filter: &str) -> Option<(String, String)> {
    let f = filter.trim();
    let (attr, rest) = f.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (op, value) = rest.split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value: String = serde_json::from_str(value.trim()).ok()?;
    Some((attr.to_ascii_lowercase(), value))
}

pub(super) fn matches(r: &Value, attr: &str, value: &str) -> bool {
    let field = match attr {
        "username" => "userName",
        "externalid" => "externalId",
        "displayname" => "displayName",
        _ => "id",
    };
    let Some(have) = r.get(field).and_then(Value::as_str) else {
        return false;
    };
    // userName and displayName are caseExact false (RFC 7643 §4.1.1); id, externalId caseExact
    if matches!(attr, "username" | "displayname") {
        have.to_lowercase() == value.to_lowercase()
    } else {
        have == value
    }
}

pub(super) async fn list(
    st: Arc<ScimState>,
    kind: Kind,
    headers: HeaderMap,
    q: HashMap<String, String>,
) -> Response {
    or_respond!(authorize(&st, &headers));
    let allowed = match kind {
        Kind::User => st.profile.user_filters(),
        Kind::Group => st.profile.group_filters(),
    };
    let filter = match q.get("filter") {
        None => None,
        Some(f) => match parse_filter(f) {
            Some((attr, value)) if allowed.contains(&attr.as_str()) => Some((attr, value)),
            Some((attr, _)) => {
                return invalid(
                    &st,
                    "invalidFilter",
                    &format!("Filtering on `{attr}` is not supported"),
                )
            }
            None => return invalid(&st, "invalidFilter", &format!("Unsupported filter `{f}`")),
        },
    };
    let number = |k: &str| -> Result<Option<i64>, Response> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(&st, "invalidValue", &format!("`{k}` is not an integer")))
            })
            .transpose()
    };
    let start = or_respond!(number("startIndex")).unwrap_or(1).max(1) as usize;
    let max = st.profile.max_results();
    let count = or_respond!(number("count")).map_or(max, |c| (c.max(0) as usize).min(max));
    let exclude_members = q
        .get("excludedAttributes")
        .is_some_and(|e| e.split(',').any(|a| a.trim().eq_ignore_ascii_case("members")));
    let store = st.store();
    let hits: Vec<&Value> = store
        .map(kind)
        .values()
        .filter(|r| filter.as_ref().is_none_or(|(a, v)| matches(r, a, v)))
        .collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|r| served(&st, kind, r, exclude_members))
        .collect();
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": hits.len(),
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    });
    scim_response(StatusCode::OK, &body, None)
}

pub(super) async fn get_one(st: Arc<ScimState>, kind: Kind, headers: HeaderMap, id: String) -> Response {
    or_respond!(authorize(&st, &headers));
    let store = st.store();
    match store.map(kind).get(&id) {
        Some(r) => {
            let etag = r
                .pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_string);
            scim_response(
                StatusCode::OK,
                &served(&st, kind, r, false),
                etag.as_deref().filter(|_| st.profile.etag()),
            )
        }
        None => not_found(&st, kind, &id),
    }
}
