//! PATCH (RFC 7644 §3.5.2): paths, operations, member-change limits.

use super::*;

// ---------------------------------------------------------------- PATCH (RFC 7644 §3.5.2)

/// A PATCH path: attribute (lowercased, the enterprise URN folded into `urn` part), optional
/// sub-attribute, optional `[value eq "..."]` filter.
#[derive(Debug, PartialEq)]
pub(super) struct PatchPath {
    extension: bool,
    attr: String,
    sub: Option<String>,
    value_filter: Option<String>,
}

pub(super) fn parse_path(path: &str) -> Option<PatchPath> {
    let (extension, rest) = match path.len() > ENTERPRISE.len() + 1
        && path[..ENTERPRISE.len()].eq_ignore_ascii_case(ENTERPRISE)
        && path.as_bytes()[ENTERPRISE.len()] == b':'
    {
        true => (true, &path[ENTERPRISE.len() + 1..]),
        false => (false, path),
    };
    let (attr_part, value_filter) = match rest.split_once('[') {
        Some((a, f)) => {
            let f = f.strip_suffix(']')?;
            let (attr, v) = parse_filter(f)?;
            if attr != "value" {
                return None;
            }
            (a, Some(v))
        }
        None => (rest, None),
    };
    let (attr, sub) = match attr_part.split_once('.') {
        Some((a, s)) => (a, Some(s.to_string())),
        None => (attr_part, None),
    };
    if attr.is_empty() || attr.contains(|c: char| !c.is_ascii_alphanumeric() && c != '$') {
        return None;
    }
    Some(PatchPath {
        extension,
        attr: attr.to_string(),
        sub,
        value_filter,
    })
}

/// Find an object key case-insensitively (attribute names are case-insensitive, RFC 7643 §2.1).
pub(super) fn key_of(o: &Map<String, Value>, name: &str) -> String {
    o.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

pub(super) fn merge_value(target: &mut Map<String, Value>, key: &str, value: Value, add: bool) {
    let k = key_of(target, key);
    match (target.get_mut(&k), value) {
        (Some(Value::Array(have)), Value::Array(new)) if add => {
            for v in new {
                if !have.contains(&v)
                    && !have
                        .iter()
                        .any(|h| h.get("value").is_some() && h.get("value") == v.get("value"))
                {
                    have.push(v);
                }
            }
        }
        (Some(Value::Object(have)), Value::Object(new)) => {
            for (sk, sv) in new {
                let sk2 = key_of(have, &sk);
                have.insert(sk2, sv);
            }
        }
        (_, v) => {
            target.insert(k, v);
        }
    }
}

/// Member changes an operation makes (for AWS's cap of 100).
pub(super) fn member_changes(op: &str, path: Option<&PatchPath>, value: Option<&Value>) -> usize {
    match path {
        Some(p) if p.attr.eq_ignore_ascii_case("members") => {
            if p.value_filter.is_some() {
                1
            } else {
                value.and_then(Value::as_array).map_or(0, Vec::len)
            }
        }
        None if op != "remove" => value
            .and_then(|v| v.get("members"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        _ => 0,
    }
}

pub(super) fn apply_op(
    st: &ScimState,
    kind: Kind,
    r: &mut Map<String, Value>,
    op: &Value,
) -> Result<usize, Response> {
    let name = op
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(name.as_str(), "add" | "remove" | "replace") {
        return Err(invalid(
            st,
            "invalidSyntax",
            &format!("Unknown PATCH op {}", op.get("op").unwrap_or(&Value::Null)),
        ));
    }
    let value = op.get("value").cloned();
    let path = match op.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(
            parse_path(p).ok_or_else(|| invalid(st, "invalidPath", &format!("Unsupported path `{p}`")))?,
        ),
        Some(_) => return Err(invalid(st, "invalidPath", "`path` is not a string")),
    };
    let aws_group = st.profile == ScimProfile::Aws && kind == Kind::Group;
    let touches = |attr: &str| -> bool {
        match &path {
            Some(p) => p.attr.eq_ignore_ascii_case(attr),
            None => value
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(attr))),
        }
    };
    if aws_group {
        // developer guide, PatchGroup: only displayName, members, externalId; no replace of members
        let allowed = ["displayName", "members", "externalId"];
        let ok = match &path {
            Some(p) => allowed.iter().any(|a| p.attr.eq_ignore_ascii_case(a)),
            None => value.as_ref().and_then(Value::as_object).is_some_and(|o| {
                o.keys()
                    .all(|k| allowed.iter().any(|a| k.eq_ignore_ascii_case(a)))
            }),
        };
        if !ok || (name == "replace" && touches("members")) {
            return Err(error(st.profile, StatusCode::BAD_REQUEST, None, AWS_UNPARSABLE));
        }
        if name == "remove" && path.as_ref().is_some_and(|p| p.value_filter.is_none()) && value.is_none() {
            // removing all members in one request is refused
            return Err(error(st.profile, StatusCode::BAD_REQUEST, None, AWS_UNPARSABLE));
        }
    }
    if st.profile == ScimProfile::Atlassian && kind == Kind::Group && touches("displayName") {
        return Err(invalid(
            st,
            "mutability",
            "Renaming a synced group is not supported",
        ));
    }
    let changes = member_changes(&name, path.as_ref(), value.as_ref());
    match (name.as_str(), path) {
        ("remove", None) => return Err(invalid(st, "noTarget", "`remove` needs a `path`")),
        (_, None) => {
            let Some(Value::Object(o)) = value else {
                return Err(invalid(
                    st,
                    "invalidSyntax",
                    "A PATCH without `path` needs an object `value`",
                ));
            };
            for (k, v) in o {
                check_mutability(st, &k)?;
                if k.eq_ignore_ascii_case(ENTERPRISE) {
                    merge_value(r, ENTERPRISE, v, false);
                    add_schema(r, ENTERPRISE);
                } else if name == "replace" && v.is_array() {
                    let key = key_of(r, &k);
                    r.insert(key, v);
                } else {
                    merge_value(r, &k, v, name == "add");
                }
            }
        }
        (op_name, Some(p)) => {
            check_mutability(st, &p.attr)?;
            let container: &mut Map<String, Value> = if p.extension {
                add_schema(r, ENTERPRISE);
                let key = key_of(r, ENTERPRISE);
                let ext = r.entry(key).or_insert_with(|| json!({}));
                if !ext.is_object() {
                    *ext = json!({});
                }
                ext.as_object_mut()
                    .ok_or_else(|| invalid(st, "invalidPath", "extension"))?
            } else {
                r
            };
            let key = key_of(container, &p.attr);
            match (op_name, p.value_filter, p.sub) {
                ("remove", Some(v), None) => {
                    if let Some(Value::Array(items)) = container.get_mut(&key) {
                        items.retain(|m| m.get("value").and_then(Value::as_str) != Some(v.as_str()));
                    }
                }
                (_, Some(_), _) => {
                    return Err(invalid(
                        st,
                        "invalidPath",
                        "Value filters are supported in `remove` only",
                    ))
                }
                ("remove", None, None) => match (container.get_mut(&key), value) {
                    // Entra style: remove the listed values
                    (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                        let ids: Vec<&Value> = gone.iter().filter_map(|g| g.get("value")).collect();
                        items.retain(|m| m.get("value").is_none_or(|v| !ids.contains(&v)));
                    }
                    _ => {
                        container.remove(&key);
                    }
                },
                ("remove", None, Some(sub)) => {
                    if let Some(Value::Object(o)) = container.get_mut(&key) {
                        let sk = key_of(o, &sub);
                        o.remove(&sk);
                    }
                }
                (op_name, None, None) => {
                    let Some(v) = value else {
                        return Err(invalid(st, "invalidValue", "`value` is required"));
                    };
                    if op_name == "replace" {
                        container.insert(key, v);
                    } else {
                        merge_value(container, &p.attr, v, true);
                    }
                }
                (_, None, Some(sub)) => {
                    let Some(v) = value else {
                        return Err(invalid(st, "invalidValue", "`value` is required"));
                    };
                    let o = container.entry(key).or_insert_with(|| json!({}));
                    if !o.is_object() {
                        *o = json!({});
                    }
                    if let Some(o) = o.as_object_mut() {
                        let sk = key_of(o, &sub);
                        o.insert(sk, v);
                    }
                }
            }
        }
    }
    Ok(changes)
}

pub(super) fn add_schema(r: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(s)) = r.get_mut("schemas") {
        if !s.iter().any(|x| x.as_str() == Some(urn)) {
            s.push(json!(urn));
        }
    }
}

pub(super) async fn patch(
    st: Arc<ScimState>,
    kind: Kind,
    base: String,
    headers: HeaderMap,
    id: String,
    body: Bytes,
) -> Response {
    or_respond!(authorize(&st, &headers));
    let req = or_respond!(parse_body(&st, &body));
    let schema_ok = req
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(PATCH_SCHEMA)));
    let Some(Value::Array(ops)) = req.get("Operations").cloned().filter(|_| schema_ok) else {
        return invalid(
            &st,
            "invalidSyntax",
            "A PatchOp needs its schema and an `Operations` list",
        );
    };
    let mut store = st.store();
    let Some(current) = store.map(kind).get(&id).cloned() else {
        return not_found(&st, kind, &id);
    };
    or_respond!(check_if_match(&st, &headers, &current));
    let Value::Object(mut r) = current.clone() else {
        return not_found(&st, kind, &id);
    };
    // atomic (RFC 7644 §3.5.2): applied to a copy, stored only when every op succeeded
    let mut changes = 0;
    for op in &ops {
        changes += or_respond!(apply_op(&st, kind, &mut r, op));
    }
    if st.profile == ScimProfile::Aws && kind == Kind::Group && changes > 100 {
        return error(st.profile, StatusCode::BAD_REQUEST, None, AWS_UNPARSABLE);
    }
    let candidate = Value::Object(r.clone());
    or_respond!(validate(&st, &store, kind, &candidate, Some(&id)));
    let version = store.bump();
    let stored = finish(
        kind,
        &base,
        &id,
        r,
        current.pointer("/meta/created").cloned(),
        version.clone(),
    );
    store.map_mut(kind).insert(id, stored.clone());
    drop(store);
    if st.profile == ScimProfile::Aws {
        // developer guide, PatchUser/PatchGroup: 204 No Content
        return StatusCode::NO_CONTENT.into_response();
    }
    scim_response(
        StatusCode::OK,
        &served(&st, kind, &stored, false),
        Some(version.as_str()).filter(|_| st.profile.etag()),
    )
}
