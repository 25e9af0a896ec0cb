//! Query parameters, `Link` paging headers, `fields` projection and filter checks.

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::Value;

use super::errors::{bad_param, bad_search};
use super::search::{self, Expr};

pub(super) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(super) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) fn limit_param(q: &[(String, String)], default: usize, max: usize) -> Result<usize, Response> {
    match param(q, "limit") {
        None | Some("") => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(max)),
            Ok(_) => Err(bad_param("limit", "must be a positive integer")),
            Err(_) => Err(bad_param("limit", "must be an integer")),
        },
    }
}

/// `Link` values: self (the request as received) and next (every parameter kept, `after` replaced).
pub(super) fn link_headers(
    base: &str,
    path: &str,
    q: &[(String, String)],
    next: Option<&str>,
) -> Vec<HeaderValue> {
    let build = |after: Option<&str>| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in q {
            if k != "after" {
                ser.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            ser.append_pair("after", a);
        }
        let qs = ser.finish();
        if qs.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{qs}")
        }
    };
    let mut out = Vec::new();
    let self_after = param(q, "after");
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"self\"", build(self_after))) {
        out.push(v);
    }
    if let Some(n) = next {
        if let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", build(Some(n)))) {
            out.push(v);
        }
    }
    out
}

pub(super) fn with_links(mut r: Response, links: Vec<HeaderValue>) -> Response {
    for l in links {
        r.headers_mut().append(axum::http::header::LINK, l);
    }
    r
}

/// `fields=id,status,profile:(firstName,lastName)`: keep only those (id always kept).
pub(super) fn project(v: &mut Value, fields: &str) {
    let mut top: Vec<String> = vec!["id".into()];
    let mut profile: Option<Vec<String>> = None;
    let mut depth = 0;
    let mut cur = String::new();
    let mut parts = Vec::new();
    for c in fields.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if let Some(inner) = p.strip_prefix("profile:(").and_then(|s| s.strip_suffix(')')) {
            profile = Some(inner.split(',').map(|s| s.trim().to_string()).collect());
            top.push("profile".into());
        } else if !p.is_empty() {
            top.push(p.to_string());
        }
    }
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| top.iter().any(|t| t == k));
        if let (Some(keep), Some(Value::Object(p))) = (profile, obj.get_mut("profile")) {
            p.retain(|k, _| keep.iter().any(|t| t == k));
        }
    }
}

fn check_filter(e: &Expr, allowed: &[&str], inequality_ok: &[&str]) -> Result<(), String> {
    for (attr, op) in e.comparisons() {
        if !allowed.contains(&attr.as_str()) {
            return Err(format!("filter does not support the property `{attr}`"));
        }
        if op != search::Op::Eq && !inequality_ok.contains(&attr.as_str()) {
            return Err(format!("filter supports only `eq` on `{attr}`"));
        }
    }
    Ok(())
}

/// `search` and `filter` parsed; `filter` may name only `props`, and only `inequality_ok` with an
/// inequality. A bad one is answered with Okta's E0000031.
pub(super) fn search_and_filter(
    q: &[(String, String)],
    props: &[&str],
    inequality_ok: &[&str],
) -> Result<(Option<Expr>, Option<Expr>), Response> {
    let search = param(q, "search").map(search::parse).transpose();
    let filter = param(q, "filter").map(search::parse).transpose();
    let (search, filter) = match (search, filter) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => return Err(bad_search(&e)),
    };
    if let Some(f) = &filter {
        check_filter(f, props, inequality_ok).map_err(|e| bad_search(&e))?;
    }
    Ok((search, filter))
}
