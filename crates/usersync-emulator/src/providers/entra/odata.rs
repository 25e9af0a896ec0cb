//! Graph OData query parameters (`$select`, `$expand`, `$top`, ...) and `$filter`/`$search` matching.

use super::*;

// ------------------------------------------------------------------------------ OData parameters

/// The OData system query options of a request.
#[derive(Debug, Default)]
pub(super) struct OData {
    pub(super) select: Option<Vec<String>>,
    pub(super) top: Option<usize>,
    pub(super) expand: Option<String>,
    pub(super) filter: Option<String>,
    pub(super) search: Option<String>,
    pub(super) count: bool,
    pub(super) skiptoken: Option<String>,
    /// Raw `name=value` pairs other than `$skiptoken`, verbatim, for next links.
    pub(super) keep: Vec<String>,
    /// `ConsistencyLevel: eventual` was sent.
    pub(super) eventual: bool,
}

impl OData {
    pub(super) fn advanced(&self) -> bool {
        self.eventual && self.count
    }
}

pub(super) fn parse_odata(raw: Option<&str>, headers: &HeaderMap) -> Result<OData, Response> {
    let mut o = OData {
        eventual: headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        ..OData::default()
    };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .to_string();
        let value = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .to_string();
        if key != "$skiptoken" {
            o.keep.push(pair.to_string());
        }
        match key.to_ascii_lowercase().as_str() {
            "$select" => {
                o.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$top" => {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| bad_request("BadRequest", &format!("Invalid $top value '{value}'.")))?;
                if !(1..=MAX_TOP).contains(&n) {
                    return Err(bad_request(
                        "Request_BadRequest",
                        &format!(
                            "Invalid page size specified: '{n}'. Must be between 1 and {MAX_TOP} inclusive."
                        ),
                    ));
                }
                o.top = Some(n);
            }
            "$expand" => o.expand = Some(value),
            "$filter" => o.filter = Some(value),
            "$search" => o.search = Some(value),
            "$count" => o.count = value.eq_ignore_ascii_case("true"),
            "$skiptoken" => o.skiptoken = Some(value),
            "$skip" => {
                return Err(bad_request(
                    "Request_BadRequest",
                    "'$skip' is not supported by the service.",
                ));
            }
            "$orderby" => {
                return Err(bad_request(
                    "Request_UnsupportedQuery",
                    "Sorting is not supported by this emulator (Graph supports $orderby on displayName and \
                     userPrincipalName).",
                ))
            }
            _ => {}
        }
    }
    if o.search.is_some() && !o.eventual {
        return Err(bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: \
             'ConsistencyLevel: eventual'",
        ));
    }
    if o.expand.is_some() && o.advanced() {
        return Err(bad_request(
            "Request_UnsupportedQuery",
            "$expand is not supported with advanced query capabilities ($count=true and ConsistencyLevel:eventual).",
        ));
    }
    Ok(o)
}

/// Canonical names of the selected properties, or a 400 naming the unknown one.
pub(super) fn validate_select(
    select: &[String],
    known: &[&str],
    extra: &[String],
    type_name: &str,
) -> Result<Vec<String>, Response> {
    select
        .iter()
        .map(|s| {
            known
                .iter()
                .map(|k| k.to_string())
                .chain(extra.iter().cloned())
                .find(|k| k.eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    bad_request(
                        "Request_BadRequest",
                        &format!(
                            "Could not find a property named '{s}' on type 'microsoft.graph.{type_name}'."
                        ),
                    )
                })
        })
        .collect()
}

/// `manager` or `manager($select=a,b)`: the manager's selected properties (`None` = Graph's default).
pub(super) fn parse_expand(expand: &str) -> Result<Option<Vec<String>>, Response> {
    let e = expand.trim();
    if e.eq_ignore_ascii_case("manager") {
        return Ok(None);
    }
    if let Some(inner) = e
        .strip_prefix("manager(")
        .or_else(|| e.strip_prefix("Manager("))
        .and_then(|r| r.strip_suffix(')'))
    {
        let select = inner
            .split(';')
            .find_map(|opt| opt.trim().strip_prefix("$select="))
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect::<Vec<_>>());
        return Ok(select);
    }
    let name = e.split('(').next().unwrap_or(e);
    Err(bad_request(
        "Request_BadRequest",
        &format!("Could not find a property named '{name}' on type 'microsoft.graph.user'."),
    ))
}

// ----------------------------------------------------------------------------------- filtering

/// One comparison of a `$filter`.
#[derive(Debug, Clone)]
pub(super) enum Clause {
    Eq(String, Value),
    Ne(String, Value),
    StartsWith(String, String),
    EndsWith(String, String),
}

pub(super) fn unquote(v: &str) -> Option<Value> {
    let v = v.trim();
    if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Value::String(s.replace("''", "'")));
    }
    match v {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "null" => Some(Value::Null),
        _ => None,
    }
}

pub(super) fn unsupported_filter() -> Response {
    bad_request(
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified.",
    )
}

/// Parse the `$filter` subset this facade supports: clauses joined by `and`; `p eq v`, `p ne v`,
/// `startswith(p,'x')`, `endswith(p,'x')`. `ne` and `endswith` are advanced queries.
pub(super) fn parse_filter(filter: &str, advanced: bool) -> Result<Vec<Clause>, Response> {
    let mut out = Vec::new();
    for part in filter.split(" and ") {
        let p = part.trim();
        let lower = p.to_ascii_lowercase();
        let func = |name: &str| -> Option<(String, String)> {
            if !lower.starts_with(name) {
                return None;
            }
            let inner = p[name.len()..].strip_suffix(')')?;
            let (prop, val) = inner.split_once(',')?;
            match unquote(val)? {
                Value::String(s) => Some((prop.trim().to_string(), s)),
                _ => None,
            }
        };
        if let Some((prop, v)) = func("startswith(") {
            out.push(Clause::StartsWith(prop, v));
        } else if let Some((prop, v)) = func("endswith(") {
            if !advanced {
                return Err(advanced_needed("endsWith"));
            }
            out.push(Clause::EndsWith(prop, v));
        } else if let Some((prop, v)) = p.split_once(" eq ") {
            out.push(Clause::Eq(
                prop.trim().to_string(),
                unquote(v).ok_or_else(unsupported_filter)?,
            ));
        } else if let Some((prop, v)) = p.split_once(" ne ") {
            if !advanced {
                return Err(advanced_needed("ne"));
            }
            out.push(Clause::Ne(
                prop.trim().to_string(),
                unquote(v).ok_or_else(unsupported_filter)?,
            ));
        } else if lower.starts_with("not(") || lower.starts_with("not ") {
            if !advanced {
                return Err(advanced_needed("not"));
            }
            return Err(unsupported_filter());
        } else {
            return Err(unsupported_filter());
        }
    }
    Ok(out)
}

pub(super) fn matches(obj: &Map<String, Value>, clauses: &[Clause]) -> bool {
    let get = |p: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(p))
            .map(|(_, v)| v)
    };
    let text = |p: &str| get(p).and_then(|v| v.as_str()).map(str::to_lowercase);
    clauses.iter().all(|c| match c {
        Clause::Eq(p, v) => match (get(p), v) {
            (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (Some(a), b) => a == b,
            (None, Value::Null) => true,
            (None, _) => false,
        },
        Clause::Ne(p, v) => match (get(p), v) {
            (Some(Value::String(a)), Value::String(b)) => !a.eq_ignore_ascii_case(b),
            (Some(a), b) => a != b,
            (None, b) => !b.is_null(),
        },
        Clause::StartsWith(p, s) => text(p).is_some_and(|t| t.starts_with(&s.to_lowercase())),
        Clause::EndsWith(p, s) => text(p).is_some_and(|t| t.ends_with(&s.to_lowercase())),
    })
}

/// `$search="prop:value"` (tokens joined by OR/AND), a word-prefix match as Graph's tokenized search.
pub(super) fn search_matches(obj: &Map<String, Value>, search: &str) -> bool {
    let s = search.trim().trim_matches('"');
    s.split(" OR ").any(|term| {
        let term = term.trim().trim_matches('"');
        let (prop, val) = term.split_once(':').unwrap_or(("displayName", term));
        let val = val.to_lowercase();
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(prop.trim()))
            .and_then(|(_, v)| v.as_str())
            .is_some_and(|t| {
                t.to_lowercase()
                    .split([' ', '.', '@', '_'])
                    .any(|w| w.starts_with(&val))
            })
    })
}

/// The request's `$select` validated against the type's properties (`known`, plus `extra`
/// extension names); `None` when the request has none.
pub(super) fn selection(
    od: &OData,
    known: &[&str],
    extra: &[String],
    type_name: &str,
) -> Result<Option<Vec<String>>, Response> {
    od.select
        .as_deref()
        .map(|s| validate_select(s, known, extra, type_name))
        .transpose()
}

/// The request's `$expand=manager[(...)]`: `None` without `$expand`, `Some(None)` for the whole
/// manager, `Some(Some(select))` for a projected one.
pub(super) fn manager_expansion(od: &OData) -> Result<Option<Option<Vec<String>>>, Response> {
    od.expand.as_deref().map(parse_expand).transpose()
}

/// The request's `$filter` clauses (none without `$filter`).
pub(super) fn filter_clauses(od: &OData) -> Result<Vec<Clause>, Response> {
    Ok(od
        .filter
        .as_deref()
        .map(|f| parse_filter(f, od.advanced()))
        .transpose()?
        .unwrap_or_default())
}

/// Whether an object (its full projection, computed only when needed) passes the request's
/// `$filter` and `$search`.
pub(super) fn wanted(od: &OData, clauses: &[Clause], full: impl FnOnce() -> Map<String, Value>) -> bool {
    if clauses.is_empty() && od.search.is_none() {
        return true;
    }
    let full = full();
    matches(&full, clauses) && od.search.as_deref().is_none_or(|s| search_matches(&full, s))
}
