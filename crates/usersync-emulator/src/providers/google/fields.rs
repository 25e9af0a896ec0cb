//! Google partial responses: the `fields=` selector, parsed and applied.

use super::*;

/// A `fields=` selection: names with an optional sub-selection (`None` = the whole value).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Selection(BTreeMap<String, Option<Selection>>);

/// Parse Google's partial-response syntax: `a,b/c,d(e,f/g)`.
pub(super) fn parse_fields(s: &str) -> Result<Selection, String> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let sel = parse_list(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(format!("Invalid field selection {s}"));
    }
    Ok(sel)
}

pub(super) fn parse_list(c: &[char], pos: &mut usize) -> Result<Selection, String> {
    let mut sel = Selection::default();
    loop {
        let (name, sub) = parse_item(c, pos)?;
        merge(&mut sel, name, sub);
        if *pos < c.len() && c[*pos] == ',' {
            *pos += 1;
            continue;
        }
        return Ok(sel);
    }
}

pub(super) fn merge(sel: &mut Selection, name: String, sub: Option<Selection>) {
    match (sel.0.get_mut(&name), sub) {
        (None, sub) => {
            sel.0.insert(name, sub);
        }
        (Some(existing), None) => *existing = None,
        (Some(Some(a)), Some(b)) => {
            for (k, v) in b.0 {
                merge(a, k, v);
            }
        }
        (Some(None), Some(_)) => {}
    }
}

pub(super) fn parse_item(c: &[char], pos: &mut usize) -> Result<(String, Option<Selection>), String> {
    let start = *pos;
    while *pos < c.len() && (c[*pos].is_alphanumeric() || matches!(c[*pos], '_' | '$' | '*' | '.' | '-')) {
        *pos += 1;
    }
    if *pos == start {
        return Err("Invalid field selection".into());
    }
    let name: String = c[start..*pos].iter().collect();
    if *pos < c.len() && c[*pos] == '/' {
        *pos += 1;
        let (n, sub) = parse_item(c, pos)?;
        let mut inner = Selection::default();
        inner.0.insert(n, sub);
        return Ok((name, Some(inner)));
    }
    if *pos < c.len() && c[*pos] == '(' {
        *pos += 1;
        let inner = parse_list(c, pos)?;
        if *pos >= c.len() || c[*pos] != ')' {
            return Err("Invalid field selection: missing `)`".into());
        }
        *pos += 1;
        return Ok((name, Some(inner)));
    }
    Ok((name, None))
}

pub(super) fn apply_fields(v: Value, sel: &Selection) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(|i| apply_fields(i, sel)).collect()),
        Value::Object(mut obj) => {
            if sel.0.contains_key("*") {
                return Value::Object(obj);
            }
            let mut out = Map::new();
            for (k, sub) in &sel.0 {
                if let Some(val) = obj.remove(k) {
                    out.insert(
                        k.clone(),
                        match sub {
                            Some(s) => apply_fields(val, s),
                            None => val,
                        },
                    );
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Answer 200 with `value` after applying the request's `fields=` selection.
pub(super) fn ok_with_fields(value: Value, fields: Option<&str>) -> Response {
    let value = match fields.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => match parse_fields(f) {
            Ok(sel) => apply_fields(value, &sel),
            Err(msg) => {
                return gerror_full(
                    400,
                    "invalidParameter",
                    &msg,
                    "global",
                    Some(("fields", "parameter")),
                )
            }
        },
        None => value,
    };
    let mut r = json_response(StatusCode::OK, &value);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

// ------------------------------------------------------------------ authorization of API calls
