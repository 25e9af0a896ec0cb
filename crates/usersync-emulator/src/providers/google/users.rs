//! Google Directory users: `users` listing (projections, ordering, paging) and `users/{userKey}`.

use super::*;

pub(super) fn user_json(
    org: &Org,
    u: &User,
    projection: Projection,
    custom_mask: &[String],
    customer: &str,
) -> Value {
    let (suspended, archived, reason) = google_status(u.status);
    let email = primary_email(u);
    let mut v = json!({
        "kind": "admin#directory#user",
        "id": user_id(org.seed, u.ix),
        "etag": etag(&[&u.ix.to_string(), &u.last_updated.to_string()]),
        "primaryEmail": email,
        "name": {
            "givenName": u.first_name,
            "familyName": u.last_name,
            "fullName": format!("{} {}", u.first_name, u.last_name),
            "displayName": u.display_name,
        },
        "isAdmin": u.ix == 0,
        "isDelegatedAdmin": u.ix == 1,
        "lastLoginTime": u.last_login.map(rfc3339_millis).unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into()),
        "creationTime": rfc3339_millis(u.created),
        "agreedToTerms": !matches!(u.status, UserStatus::Staged | UserStatus::Provisioned),
        "suspended": suspended,
        "archived": archived,
        "changePasswordAtNextLogin": matches!(u.status, UserStatus::PasswordExpired | UserStatus::Recovery),
        "ipWhitelisted": false,
        "emails": [{"address": email, "primary": true}],
        "customerId": customer,
        "orgUnitPath": u.department.as_deref().map(|d| format!("/{d}")).unwrap_or_else(|| "/".into()),
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": u.ix % 3 == 0,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true,
    });
    if let Some(r) = reason {
        v["suspensionReason"] = r.into();
    }
    if archived {
        v["archivalTime"] = rfc3339_millis(u.status_changed).into();
    }
    if suspended {
        v["suspensionTime"] = rfc3339_millis(u.status_changed).into();
    }
    if u.department.is_some() || u.title.is_some() {
        let mut o = json!({"primary": true, "customType": ""});
        if let Some(t) = &u.title {
            o["title"] = t.clone().into();
        }
        if let Some(d) = &u.department {
            o["department"] = d.clone().into();
        }
        if let Some((_, cc)) = u.custom.iter().find(|(k, _)| k == "costCenter") {
            o["costCenter"] = cc.clone().into();
        }
        v["organizations"] = json!([o]);
    }
    if let Some(m) = manager_reference(org, u) {
        v["relations"] = json!([{"value": m, "type": "manager"}]);
    }
    let user_aliases = aliases(org, u);
    if !user_aliases.is_empty() {
        v["aliases"] = json!(user_aliases);
    }
    v["nonEditableAliases"] = json!(non_editable_aliases(u));
    if let Some(n) = &u.employee_number {
        v["externalIds"] = json!([{"value": n, "type": "organization"}]);
    }
    if u.has_photo {
        v["thumbnailPhotoUrl"] =
            format!("https://lh3.googleusercontent.com/a-/emulator{}=s96-c", u.ix).into();
        v["thumbnailPhotoEtag"] = etag(&["photo", &u.ix.to_string()]).into();
    }
    let custom_wanted = match projection {
        Projection::Full => true,
        Projection::Custom => custom_mask.iter().any(|m| m == "Employment"),
        Projection::Basic => false,
    };
    if custom_wanted && !u.custom.is_empty() {
        let fields: Map<String, Value> = u
            .custom
            .iter()
            .map(|(k, val)| (k.clone(), Value::from(val.clone())))
            .collect();
        v["customSchemas"] = json!({ "Employment": fields });
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Projection {
    Basic,
    Custom,
    Full,
}

pub(super) fn projection(q: &HashMap<String, String>) -> Result<(Projection, Vec<String>), Response> {
    let p = match q.get("projection").map(String::as_str) {
        None | Some("basic") | Some("BASIC") => Projection::Basic,
        Some("custom") | Some("CUSTOM") => Projection::Custom,
        Some("full") | Some("FULL") => Projection::Full,
        Some(other) => {
            return Err(invalid_param(
                "projection",
                &format!("Invalid value '{other}'. Values must be one of: basic, custom, full"),
            ))
        }
    };
    let mask: Vec<String> = q
        .get("customFieldMask")
        .map(|m| {
            m.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if p == Projection::Custom && mask.is_empty() {
        return Err(gerror(
            400,
            "invalid",
            "Invalid Input: custom fields mask is required for projection custom",
        ));
    }
    Ok((p, mask))
}

/// Checks `customer`/`domain`; returns an error response for an account that is not this one.
pub(super) fn check_scope(org: &Org, q: &HashMap<String, String>) -> Result<(), Response> {
    let customer = q.get("customer").map(String::as_str).filter(|c| !c.is_empty());
    let domain = q.get("domain").map(String::as_str).filter(|d| !d.is_empty());
    match (customer, domain) {
        (None, None) => Err(bad_request()),
        (Some(c), _) if c != "my_customer" && c != customer_id(org.seed) => {
            Err(gerror(403, "forbidden", NOT_AUTHORIZED))
        }
        (None, Some(d)) if !d.eq_ignore_ascii_case(&org.domain) => {
            Err(gerror(403, "forbidden", NOT_AUTHORIZED))
        }
        _ => Ok(()),
    }
}

pub(super) fn max_results(
    q: &HashMap<String, String>,
    default: usize,
    max: Option<usize>,
    clamp: usize,
) -> Result<usize, Response> {
    let Some(raw) = q.get("maxResults") else {
        return Ok(default);
    };
    let n: i64 = raw.trim().parse().map_err(|_| {
        invalid_param(
            "maxResults",
            &format!(
                "Invalid value '{raw}'. Values must be within the range: [1, {}]",
                max.unwrap_or(clamp)
            ),
        )
    })?;
    if n < 1 || max.is_some_and(|m| n as usize > m) {
        return Err(invalid_param(
            "maxResults",
            &format!(
                "Invalid value '{raw}'. Values must be within the range: [1, {}]",
                max.unwrap_or(clamp)
            ),
        ));
    }
    Ok((n as usize).min(clamp))
}

pub(super) fn descending(q: &HashMap<String, String>) -> Result<bool, Response> {
    match q.get("sortOrder").map(|s| s.to_ascii_uppercase()) {
        None => Ok(false),
        Some(s) if s == "ASCENDING" => Ok(false),
        Some(s) if s == "DESCENDING" => Ok(true),
        Some(s) => Err(invalid_param(
            "sortOrder",
            &format!("Invalid value '{s}'. Values must be one of: ASCENDING, DESCENDING"),
        )),
    }
}

/// The keys of a listing in the requested order: ranks `0..n` over `order` (ascending keys for
/// [`paging::page`]), or the indices themselves in index order.
/// The item a listing key stands for: its rank in `order` when the listing is sorted, else itself.
pub(super) fn unrank(sorted: bool, order: &[u32], key: u32) -> Option<u32> {
    if sorted {
        order.get(key as usize).copied()
    } else {
        Some(key)
    }
}

pub(super) fn ranked(order: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
    let keys = (0..order.len() as u32).collect();
    (keys, order)
}

pub(super) async fn list_users(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::UsersList) {
        return r;
    }
    if q.contains_key("query") || q.get("showDeleted").is_some_and(|v| v == "true") {
        // Not emulated: refuse rather than answer with unfiltered data.
        return gerror(
            400,
            "invalid",
            "Invalid Input: query and showDeleted are not supported by the emulator",
        );
    }
    let org = st.ctx.org.read().await;
    if let Err(r) = check_scope(&org, &q) {
        return r;
    }
    let (proj, mask) = or_respond!(projection(&q));
    let limit = or_respond!(max_results(&q, 100, Some(500), 500));
    let desc = or_respond!(descending(&q));
    let domain_filter = q.get("domain").filter(|_| !q.contains_key("customer"));
    let mut users: Vec<&User> = org
        .live_users()
        .filter(|u| is_listed(u))
        .filter(|u| {
            domain_filter.is_none_or(|d| primary_email(u).ends_with(&format!("@{}", d.to_lowercase())))
        })
        .collect();
    let order_by = q.get("orderBy").map(String::as_str);
    match order_by {
        None => {}
        Some("email") => users.sort_by_key(|u| primary_email(u)),
        Some("givenName") => users.sort_by(|a, b| {
            a.first_name
                .to_lowercase()
                .cmp(&b.first_name.to_lowercase())
                .then(a.ix.cmp(&b.ix))
        }),
        Some("familyName") => users.sort_by(|a, b| {
            a.last_name
                .to_lowercase()
                .cmp(&b.last_name.to_lowercase())
                .then(a.ix.cmp(&b.ix))
        }),
        Some(other) => {
            return invalid_param(
                "orderBy",
                &format!("Invalid value '{other}'. Values must be one of: email, familyName, givenName"),
            )
        }
    }
    if desc {
        users.reverse();
    }
    let order: Vec<u32> = users.iter().map(|u| u.ix).collect();
    let (keys, order) = if order_by.is_some() || desc {
        ranked(order)
    } else {
        (order.clone(), order)
    };
    let sorted = order_by.is_some() || desc;
    let tag = paging::listing_tag(&[
        "users",
        order_by.unwrap_or(""),
        &desc.to_string(),
        domain_filter.map(String::as_str).unwrap_or(""),
    ]);
    let page = or_respond!(page_of(&st, &keys, tag, &q, limit));
    let customer = customer_id(org.seed);
    let items: Vec<Value> = page
        .keys
        .iter()
        .filter_map(|&k| unrank(sorted, &order, k))
        .filter_map(|ix| org.user(ix))
        .map(|u| user_json(&org, u, proj, &mask, &customer))
        .collect();
    drop(org);
    list_response("users", &["users"], page, items, &q)
}

pub(super) fn resolve_user(org: &Org, key: &str) -> Option<UserIx> {
    if let Some(ix) = parse_user_id(key, org.seed) {
        return org.user(ix).filter(|u| is_listed(u)).map(|u| u.ix);
    }
    find_user_by_email(org, key)
}

pub(super) fn resolve_group(org: &Org, key: &str) -> Option<u32> {
    if let Some(ix) = parse_group_id(key, org.seed) {
        return org.group(ix).map(|g| g.ix);
    }
    let k = key.trim().to_lowercase();
    org.live_groups()
        .find(|g| group_email(org, g.ix, &g.name) == k)
        .map(|g| g.ix)
}

pub(super) async fn get_user(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Users) {
        return r;
    }
    let (proj, mask) = or_respond!(projection(&q));
    let org = st.ctx.org.read().await;
    let Some(u) = resolve_user(&org, &key).and_then(|ix| org.user(ix)) else {
        return not_found("userKey");
    };
    let v = user_json(&org, u, proj, &mask, &customer_id(org.seed));
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}
