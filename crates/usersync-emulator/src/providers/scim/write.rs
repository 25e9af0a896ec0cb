//! Validation of written resources, and create, replace (PUT) and delete.

use super::*;

// ---------------------------------------------------------------- validation

/// Check a whole resource as it would be stored; `self_id` excludes itself from uniqueness.
pub(super) fn validate(
    st: &ScimState,
    store: &Store,
    kind: Kind,
    r: &Value,
    self_id: Option<&str>,
) -> Result<(), Response> {
    let text = |k: &str| r.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    match kind {
        Kind::User => {
            let Some(user_name) = text("userName") else {
                return Err(invalid(st, "invalidValue", "Attribute 'userName' is required"));
            };
            if let Some(a) = r.get("active") {
                if !a.is_boolean() {
                    return Err(invalid(
                        st,
                        "invalidValue",
                        "Attribute 'active' must be a boolean",
                    ));
                }
            }
            let emails = match r.get("emails") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => return Err(invalid(st, "invalidValue", "Attribute 'emails' must be a list")),
            };
            for e in &emails {
                if !e
                    .get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.contains('@'))
                {
                    return Err(invalid(
                        st,
                        "invalidValue",
                        "Attribute 'emails' holds a value that is not an email address",
                    ));
                }
            }
            if st.profile == ScimProfile::Aws {
                // developer guide, CreateUser/PutUser
                for (path, what) in [
                    ("/displayName", "displayName"),
                    ("/name/givenName", "name.givenName"),
                    ("/name/familyName", "name.familyName"),
                ] {
                    if r.pointer(path).and_then(Value::as_str).is_none_or(str::is_empty) {
                        return Err(invalid(
                            st,
                            "invalidValue",
                            &format!("Attribute '{what}' is required"),
                        ));
                    }
                }
                if emails.len() > 1 {
                    return Err(invalid(
                        st,
                        "invalidValue",
                        "Attribute 'emails' takes one value only",
                    ));
                }
                if emails
                    .first()
                    .is_some_and(|e| e.get("primary") != Some(&json!(true)))
                {
                    return Err(invalid(st, "invalidValue", "Attribute 'emails' must be primary"));
                }
            }
            let lower = user_name.to_lowercase();
            if store.users.iter().any(|(id, u)| {
                Some(id.as_str()) != self_id
                    && u.get("userName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.to_lowercase() == lower)
            }) {
                return Err(conflict(st, &format!("userName '{user_name}' is already in use")));
            }
        }
        Kind::Group => {
            let Some(name) = text("displayName") else {
                return Err(invalid(st, "invalidValue", "Attribute 'displayName' is required"));
            };
            let members = match r.get("members") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => return Err(invalid(st, "invalidValue", "Attribute 'members' must be a list")),
            };
            for m in &members {
                let ok = m.get("value").and_then(Value::as_str).is_some_and(|v| {
                    store.users.contains_key(v)
                        || (st.profile == ScimProfile::Generic && store.groups.contains_key(v))
                });
                if !ok {
                    return Err(invalid(
                        st,
                        "invalidValue",
                        &format!(
                            "Attribute 'members' value {} is not a known resource",
                            m.get("value").unwrap_or(&Value::Null)
                        ),
                    ));
                }
            }
            if st.profile.unique_group_names() {
                let lower = name.to_lowercase();
                if store.groups.iter().any(|(id, g)| {
                    Some(id.as_str()) != self_id
                        && g.get("displayName")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.to_lowercase() == lower)
                }) {
                    return Err(conflict(st, &format!("displayName '{name}' is already in use")));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn check_mutability(st: &ScimState, attr: &str) -> Result<(), Response> {
    let top = attr
        .split(['.', '['])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if matches!(top.as_str(), "id" | "meta" | "groups") {
        return Err(invalid(
            st,
            "mutability",
            &format!("Attribute '{attr}' is readOnly"),
        ));
    }
    Ok(())
}

/// The stored form: client attributes (writable ones) + id + meta.
pub(super) fn finish(
    kind: Kind,
    base: &str,
    id: &str,
    mut attrs: Map<String, Value>,
    created: Option<Value>,
    version: String,
) -> Value {
    for k in ["id", "meta", "groups"] {
        attrs.remove(k);
    }
    let now = json!(timefmt::rfc3339(timefmt::now_unix()));
    attrs.insert("id".into(), json!(id));
    attrs.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": created.unwrap_or_else(|| now.clone()),
            "lastModified": now,
            "location": format!("{base}/{}/{id}", kind.endpoint()),
            "version": version,
        }),
    );
    if !attrs.contains_key("schemas") {
        let s = if kind == Kind::User {
            USER_SCHEMA
        } else {
            GROUP_SCHEMA
        };
        attrs.insert("schemas".into(), json!([s]));
    }
    Value::Object(attrs)
}

// ---------------------------------------------------------------- create / replace / delete

pub(super) async fn create(
    st: Arc<ScimState>,
    kind: Kind,
    base: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    or_respond!(authorize(&st, &headers));
    let attrs = or_respond!(parse_body(&st, &body));
    if kind == Kind::User && attrs.contains_key("groups") && st.profile == ScimProfile::Aws {
        return invalid(&st, "mutability", "Attribute 'groups' is not supported on create");
    }
    if kind == Kind::Group && st.profile == ScimProfile::Aws {
        let n = attrs.get("members").and_then(Value::as_array).map_or(0, Vec::len);
        if n > 100 {
            return invalid(
                &st,
                "invalidValue",
                "Attribute 'members' takes at most 100 values on create",
            );
        }
    }
    let mut store = st.store();
    let candidate = Value::Object(attrs.clone());
    or_respond!(validate(&st, &store, kind, &candidate, None));
    let id = store.new_id(kind);
    let version = store.bump();
    let r = finish(kind, &base, &id, attrs, None, version.clone());
    store.map_mut(kind).insert(id.clone(), r.clone());
    drop(store);
    let mut resp = scim_response(
        StatusCode::CREATED,
        &served(&st, kind, &r, false),
        Some(&version).filter(|_| st.profile.etag()).map(String::as_str),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/{}/{id}", kind.endpoint())) {
        resp.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    resp
}

pub(super) async fn replace(
    st: Arc<ScimState>,
    kind: Kind,
    base: String,
    headers: HeaderMap,
    id: String,
    body: Bytes,
) -> Response {
    or_respond!(authorize(&st, &headers));
    let attrs = or_respond!(parse_body(&st, &body));
    let mut store = st.store();
    let Some(current) = store.map(kind).get(&id).cloned() else {
        return not_found(&st, kind, &id);
    };
    or_respond!(check_if_match(&st, &headers, &current));
    or_respond!(validate(
        &st,
        &store,
        kind,
        &Value::Object(attrs.clone()),
        Some(&id)
    ));
    let version = store.bump();
    let r = finish(
        kind,
        &base,
        &id,
        attrs,
        current.pointer("/meta/created").cloned(),
        version.clone(),
    );
    store.map_mut(kind).insert(id, r.clone());
    drop(store);
    scim_response(
        StatusCode::OK,
        &served(&st, kind, &r, false),
        Some(version.as_str()).filter(|_| st.profile.etag()),
    )
}

pub(super) async fn delete(st: Arc<ScimState>, kind: Kind, headers: HeaderMap, id: String) -> Response {
    or_respond!(authorize(&st, &headers));
    let mut store = st.store();
    let Some(current) = store.map(kind).get(&id).cloned() else {
        return not_found(&st, kind, &id);
    };
    or_respond!(check_if_match(&st, &headers, &current));
    store.map_mut(kind).remove(&id);
    // RFC 7644 §3.6: the resource disappears from every query, group members included
    for g in store.groups.values_mut() {
        if let Some(Value::Array(members)) = g.get_mut("members") {
            members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id.as_str()));
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
