//! Paging helpers: one generic [`PagedCursor`] driven by a [`Paging`] strategy and a
//! connector-specific [`PageParser`].
//!
//! Contract kept by [`PagedCursor`] (and expected of every cursor): after `on_response`
//! returns an error, the cursor has not advanced, so `next_request` returns the same request
//! again and the host may retry it. A next link that was already fetched, or more pages than
//! the bound, ends the query with [`ConnectorError::Protocol`]: never an endless loop.

use std::collections::HashSet;

use crate::connector::{Batch, Cursor};
use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};

/// Default bound on pages per query (a guard, far above any real listing).
pub const DEFAULT_MAX_PAGES: u64 = 1_000_000;

/// How the next page is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// A single request.
    Single,
    /// OData `@odata.nextLink` from the body (returned by the parser in
    /// [`ParsedPage::next`]), followed verbatim; the first request's headers are re-sent.
    ODataNextLink,
    /// RFC 8288 `Link` header with `rel="next"` (several values and several links per value).
    LinkHeader,
    /// A page token from the body (in [`ParsedPage::next`]) set as query parameter `param` on
    /// the first request's URL (Google `pageToken`).
    PageToken {
        /// Query parameter name.
        param: String,
    },
    /// Offset paging: `first_param` advances by `page_size`; the listing ends on an EMPTY
    /// page (short pages happen and do not end it).
    Offset {
        /// Offset parameter name (Keycloak `first`).
        first_param: String,
        /// Page-size parameter name (Keycloak `max`).
        max_param: String,
        /// Page size requested.
        page_size: u64,
    },
    /// A cursor in a response header (OneLogin v2 `After-Cursor`), sent back as `param`;
    /// `drop_params` are removed from follow-up requests (OneLogin rejects cursor + limit).
    HeaderCursor {
        /// Response header carrying the cursor.
        header: String,
        /// Query parameter to send it in.
        param: String,
        /// Parameters of the first request to drop on later pages.
        drop_params: Vec<String>,
    },
    /// A cursor in the body (in [`ParsedPage::next`]; OneLogin v1 `pagination.after_cursor`),
    /// sent back as query parameter `param`.
    BodyCursor {
        /// Query parameter name.
        param: String,
    },
}

/// One parsed page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedPage {
    /// Records and skip counts.
    pub batch: Batch,
    /// The body's paging value (next link, page token or body cursor), if any.
    pub next: Option<String>,
    /// How many items the page held on the wire (before any filtering); offset paging stops
    /// when this is zero.
    pub item_count: usize,
}

impl ParsedPage {
    /// A page from a batch; `item_count` is the number of records.
    pub fn new(batch: Batch, next: Option<String>) -> Self {
        let item_count = batch.records.len() + batch.skipped.values().sum::<u64>() as usize;
        ParsedPage {
            batch,
            next,
            item_count,
        }
    }
}

/// Connector-specific parsing of one page.
pub trait PageParser: Send {
    /// Parse a 2xx response.
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError>;

    /// Map a non-2xx response. Return `Ok` to turn it into a page (e.g. a 404 that means
    /// "no manager"); the default maps by status with [`status_error`].
    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(status_error(response, &response.body_snippet(300)))
    }
}

/// A generic paged cursor.
pub struct PagedCursor<P: PageParser> {
    first: HttpRequest,
    pending: Option<HttpRequest>,
    paging: Paging,
    parser: P,
    seen: HashSet<String>,
    pages: u64,
    max_pages: u64,
    offset: u64,
}

impl<P: PageParser> PagedCursor<P> {
    /// A cursor starting with `first`.
    pub fn new(first: HttpRequest, paging: Paging, parser: P) -> Self {
        let mut seen = HashSet::new();
        seen.insert(first.url.clone());
        PagedCursor {
            pending: Some(first.clone()),
            first,
            paging,
            parser,
            seen,
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
            offset: 0,
        }
    }

    /// Change the page bound (builder style).
    pub fn max_pages(mut self, max: u64) -> Self {
        self.max_pages = max;
        self
    }

    /// The parser (for inspection in tests).
    pub fn parser(&self) -> &P {
        &self.parser
    }

    fn follow(&mut self, url: String, keep_headers: bool) -> Result<Option<HttpRequest>, ConnectorError> {
        if !self.seen.insert(url.clone()) {
            return Err(ConnectorError::protocol(format!(
                "paging loop: the next page `{}` was already fetched in this listing",
                redact_url(&url)
            )));
        }
        let mut req = HttpRequest::get(url);
        if keep_headers {
            req.headers = self.first.headers.clone();
        }
        Ok(Some(req))
    }

    fn next_after(
        &mut self,
        response: &HttpResponse,
        page: &ParsedPage,
    ) -> Result<Option<HttpRequest>, ConnectorError> {
        match &self.paging {
            Paging::Single => Ok(None),
            Paging::ODataNextLink => match page.next.clone() {
                Some(url) => self.follow(url, true),
                None => Ok(None),
            },
            Paging::LinkHeader => match link_next(response)? {
                Some(url) => self.follow(url, true),
                None => Ok(None),
            },
            Paging::PageToken { param } => match page.next.as_deref().filter(|t| !t.is_empty()) {
                Some(token) => {
                    let url = set_query_param(&self.first.url, param, token)?;
                    self.follow(url, true)
                }
                None => Ok(None),
            },
            Paging::BodyCursor { param } => match page.next.as_deref().filter(|t| !t.is_empty()) {
                Some(token) => {
                    let url = set_query_param(&self.first.url, param, token)?;
                    self.follow(url, true)
                }
                None => Ok(None),
            },
            Paging::HeaderCursor {
                header,
                param,
                drop_params,
            } => match response.header(header).map(str::trim).filter(|t| !t.is_empty()) {
                Some(token) => {
                    let mut url = remove_query_params(&self.first.url, drop_params)?;
                    url = set_query_param(&url, param, token)?;
                    self.follow(url, true)
                }
                None => Ok(None),
            },
            Paging::Offset {
                first_param,
                max_param,
                page_size,
            } => {
                if page.item_count == 0 {
                    return Ok(None);
                }
                let (first_param, max_param, page_size) =
                    (first_param.clone(), max_param.clone(), *page_size);
                self.offset += page.item_count as u64;
                let url = set_query_param(&self.first.url, &first_param, &self.offset.to_string())?;
                let url = set_query_param(&url, &max_param, &page_size.to_string())?;
                let mut req = HttpRequest::get(url);
                req.headers = self.first.headers.clone();
                Ok(Some(req))
            }
        }
    }
}

impl<P: PageParser> Cursor for PagedCursor<P> {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.pending.clone()
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if self.pending.is_none() {
            return Err(ConnectorError::protocol(
                "response received after the listing ended",
            ));
        }
        let page = if response.is_success() {
            self.parser.parse(&response)?
        } else {
            self.parser.on_error(&response)?
        };
        let next = if response.is_success() {
            self.next_after(&response, &page)?
        } else {
            None
        };
        self.pages += 1;
        if next.is_some() && self.pages >= self.max_pages {
            return Err(ConnectorError::protocol(format!(
                "paging stopped after {} pages (bound reached; the provider keeps returning next pages)",
                self.pages
            )));
        }
        self.pending = next;
        Ok(page.batch)
    }
}

/// Map a non-2xx response to an error by status alone. `detail` should name the request.
pub fn status_error(response: &HttpResponse, detail: &str) -> ConnectorError {
    let detail = format!("HTTP {}: {detail}", response.status);
    match response.status {
        401 => ConnectorError::Unauthorized { detail },
        403 => ConnectorError::Forbidden { detail, needed: None },
        404 | 410 => ConnectorError::NotFound { detail },
        429 => ConnectorError::RateLimited {
            retry_after_ms: retry_after_seconds(response).map(|s| s.saturating_mul(1000)),
            detail,
        },
        500 | 502 | 503 | 504 => ConnectorError::Transient { detail },
        _ => ConnectorError::Protocol { detail },
    }
}

/// `Retry-After` in its delta-seconds form (the host also handles the HTTP-date form).
pub fn retry_after_seconds(response: &HttpResponse) -> Option<u64> {
    response
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Parse every `Link` header value and return the `rel="next"` target, if any.
///
/// Handles several `Link` header values, several comma-separated links per value, quoted or
/// bare `rel`, and `rel` with several space-separated relation types.
pub fn link_next(response: &HttpResponse) -> Result<Option<String>, ConnectorError> {
    for value in response.header_values("Link") {
        for link in parse_link_value(value)? {
            if link.rels.iter().any(|r| r.eq_ignore_ascii_case("next")) {
                return Ok(Some(link.target));
            }
        }
    }
    Ok(None)
}

/// One link of an RFC 8288 `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Target URI.
    pub target: String,
    /// Relation types.
    pub rels: Vec<String>,
}

/// Parse one `Link` header value into its links.
pub fn parse_link_value(value: &str) -> Result<Vec<Link>, ConnectorError> {
    let mut links = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let open = rest.strip_prefix('<').ok_or_else(|| {
            ConnectorError::protocol(format!("malformed Link header `{value}`: expected `<`"))
        })?;
        let close = open.find('>').ok_or_else(|| {
            ConnectorError::protocol(format!("malformed Link header `{value}`: missing `>`"))
        })?;
        let target = open[..close].to_string();
        rest = &open[close + 1..];
        let mut rels = Vec::new();
        // parameters until the next top-level comma
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                break;
            }
            if rest.is_empty() {
                break;
            }
            let r = rest
                .strip_prefix(';')
                .ok_or_else(|| ConnectorError::protocol(format!("malformed Link header `{value}`")))?
                .trim_start();
            let eq = r.find('=').unwrap_or(r.len());
            let name = r[..eq].trim().to_ascii_lowercase();
            let mut after = &r[eq.min(r.len())..];
            after = after.strip_prefix('=').unwrap_or(after).trim_start();
            let (param_value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"').ok_or_else(|| {
                    ConnectorError::protocol(format!("malformed Link header `{value}`: open quote"))
                })?;
                (&q[..end], &q[end + 1..])
            } else {
                let end = after.find([';', ',']).unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            };
            if name == "rel" {
                rels.extend(param_value.split_whitespace().map(String::from));
            }
            rest = remaining;
        }
        links.push(Link { target, rels });
    }
    Ok(links)
}

/// Set (or replace) a query parameter on an absolute URL.
pub fn set_query_param(url: &str, name: &str, value: &str) -> Result<String, ConnectorError> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| ConnectorError::protocol(format!("invalid URL `{}`: {e}", redact_url(url))))?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair(name, value);
    }
    Ok(parsed.to_string())
}

/// Remove query parameters from an absolute URL.
pub fn remove_query_params(url: &str, names: &[String]) -> Result<String, ConnectorError> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| ConnectorError::protocol(format!("invalid URL `{}`: {e}", redact_url(url))))?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| !names.iter().any(|n| n == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
    }
    Ok(parsed.to_string())
}

/// A URL without its query string, for messages (query strings may carry tokens).
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => url.to_string(),
    }
}

/// Build `base` + `/` + path segments, percent-encoding each segment.
pub fn join_url(base: &str, segments: &[&str]) -> Result<String, ConnectorError> {
    let mut parsed = url::Url::parse(base)
        .map_err(|e| ConnectorError::config("base_url", format!("`{base}` is not an absolute URL: {e}")))?;
    {
        let mut segs = parsed
            .path_segments_mut()
            .map_err(|_| ConnectorError::config("base_url", format!("`{base}` cannot be a base URL")))?;
        segs.pop_if_empty();
        for s in segments {
            segs.push(s);
        }
    }
    Ok(parsed.to_string())
}

/// Parse a JSON body into `T`, with an error naming what and where.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    response: &HttpResponse,
    what: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_slice(&response.body).map_err(|e| {
        ConnectorError::protocol(format!(
            "malformed {what} response (HTTP {}, {} bytes): {e}",
            response.status,
            response.body.len(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use usersync_model::{Record, User, UserState, UserStatus};

    struct Ids;
    impl PageParser for Ids {
        fn parse(&mut self, r: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
            #[derive(serde::Deserialize)]
            struct Body {
                ids: Vec<String>,
                next: Option<String>,
            }
            let b: Body = parse_json(r, "test")?;
            let records = b
                .ids
                .into_iter()
                .map(|i| Record::User(User::new(i.clone(), i, UserStatus::new(UserState::Active, "a"))))
                .collect();
            Ok(ParsedPage::new(Batch::of(records), b.next))
        }
    }

    fn drive(
        cursor: &mut dyn Cursor,
        pages: &[HttpResponse],
    ) -> Result<(Vec<String>, usize), ConnectorError> {
        let mut urls = Vec::new();
        let mut n = 0;
        for p in pages {
            let Some(req) = cursor.next_request() else { break };
            urls.push(req.url);
            n += cursor.on_response(p.clone())?.records.len();
        }
        assert!(cursor.next_request().is_none(), "cursor should be done");
        Ok((urls, n))
    }

    #[test]
    fn link_header_several_values_and_several_links_per_value() {
        let r = HttpResponse::new(200, "")
            .with_header("link", "<https://x/api/v1/users?limit=2>; rel=\"self\"")
            .with_header("Link", "<https://x/api/v1/users?after=abc&limit=2>; rel=\"next\"");
        assert_eq!(
            link_next(&r).unwrap().as_deref(),
            Some("https://x/api/v1/users?after=abc&limit=2")
        );
        let r = HttpResponse::new(200, "").with_header(
            "Link",
            "<https://x/a?limit=2>; rel=\"self\", <https://x/a?after=q%2C1&limit=2>; rel=next",
        );
        assert_eq!(
            link_next(&r).unwrap().as_deref(),
            Some("https://x/a?after=q%2C1&limit=2")
        );
        let r = HttpResponse::new(200, "").with_header("Link", "<https://x/a>; rel=\"prev self\"");
        assert_eq!(link_next(&r).unwrap(), None);
        let bad = HttpResponse::new(200, "").with_header("Link", "https://x/a; rel=next");
        assert!(matches!(link_next(&bad), Err(ConnectorError::Protocol { .. })));
    }

    #[test]
    fn odata_next_link_is_followed_verbatim_with_headers() {
        let first =
            HttpRequest::get("https://g/v1.0/users?$top=2").with_header("ConsistencyLevel", "eventual");
        let mut c = PagedCursor::new(first, Paging::ODataNextLink, Ids);
        let p1 = HttpResponse::new(
            200,
            r#"{"ids":["a","b"],"next":"https://g/v1.0/users?$top=2&$skiptoken=X%27"}"#,
        );
        c.on_response(p1).unwrap();
        let req = c.next_request().unwrap();
        assert_eq!(req.url, "https://g/v1.0/users?$top=2&$skiptoken=X%27");
        assert_eq!(req.header("consistencylevel"), Some("eventual"));
    }

    #[test]
    fn paging_loop_is_a_protocol_error() {
        let mut c = PagedCursor::new(HttpRequest::get("https://g/u"), Paging::ODataNextLink, Ids);
        let looped = HttpResponse::new(200, r#"{"ids":["a"],"next":"https://g/u"}"#);
        assert!(matches!(
            c.on_response(looped),
            Err(ConnectorError::Protocol { .. })
        ));
    }

    #[test]
    fn error_leaves_cursor_on_same_request() {
        let mut c = PagedCursor::new(HttpRequest::get("https://g/u"), Paging::ODataNextLink, Ids);
        let before = c.next_request();
        let err = c.on_response(HttpResponse::new(503, "busy")).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(c.next_request(), before);
        let err = c.on_response(HttpResponse::new(200, "{not json")).unwrap_err();
        assert!(matches!(err, ConnectorError::Protocol { .. }), "{err}");
        assert_eq!(c.next_request(), before);
    }

    #[test]
    fn offset_stops_on_empty_page_not_short_page() {
        let first = HttpRequest::get("https://k/users?first=0&max=3");
        let paging = Paging::Offset {
            first_param: "first".into(),
            max_param: "max".into(),
            page_size: 3,
        };
        let mut c = PagedCursor::new(first, paging, Ids);
        let (urls, n) = drive(
            &mut c,
            &[
                HttpResponse::new(200, r#"{"ids":["a","b"]}"#),
                HttpResponse::new(200, r#"{"ids":["c"]}"#),
                HttpResponse::new(200, r#"{"ids":[]}"#),
            ],
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(urls[1], "https://k/users?first=2&max=3");
        assert_eq!(urls[2], "https://k/users?first=3&max=3");
    }

    #[test]
    fn header_cursor_drops_limit_and_ends_on_empty_cursor() {
        let paging = Paging::HeaderCursor {
            header: "After-Cursor".into(),
            param: "cursor".into(),
            drop_params: vec!["limit".into(), "page".into()],
        };
        let mut c = PagedCursor::new(
            HttpRequest::get("https://o/api/2/users?limit=2&fields=id"),
            paging,
            Ids,
        );
        let (urls, _) = drive(
            &mut c,
            &[
                HttpResponse::new(200, r#"{"ids":["a","b"]}"#).with_header("After-Cursor", "c1"),
                HttpResponse::new(200, r#"{"ids":["c"]}"#).with_header("After-Cursor", ""),
            ],
        )
        .unwrap();
        assert_eq!(urls[1], "https://o/api/2/users?fields=id&cursor=c1");
    }

    #[test]
    fn page_token_replaces_previous_token() {
        let paging = Paging::PageToken {
            param: "pageToken".into(),
        };
        let mut c = PagedCursor::new(HttpRequest::get("https://w/users?maxResults=2"), paging, Ids);
        let (urls, n) = drive(
            &mut c,
            &[
                HttpResponse::new(200, r#"{"ids":["a"],"next":"t1"}"#),
                HttpResponse::new(200, r#"{"ids":["b"],"next":"t2"}"#),
                HttpResponse::new(200, r#"{"ids":["c"]}"#),
            ],
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(urls[2], "https://w/users?maxResults=2&pageToken=t2");
    }

    #[test]
    fn empty_page_with_next_link_continues() {
        let mut c = PagedCursor::new(HttpRequest::get("https://g/u"), Paging::ODataNextLink, Ids);
        let (_, n) = drive(
            &mut c,
            &[
                HttpResponse::new(200, r#"{"ids":[],"next":"https://g/u?p=2"}"#),
                HttpResponse::new(200, r#"{"ids":["z"]}"#),
            ],
        )
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn page_bound_stops_endless_listing() {
        let mut c =
            PagedCursor::new(HttpRequest::get("https://g/u"), Paging::ODataNextLink, Ids).max_pages(2);
        c.on_response(HttpResponse::new(200, r#"{"ids":[],"next":"https://g/u?p=2"}"#))
            .unwrap();
        let err = c
            .on_response(HttpResponse::new(200, r#"{"ids":[],"next":"https://g/u?p=3"}"#))
            .unwrap_err();
        assert!(err.to_string().contains("bound"), "{err}");
    }

    #[test]
    fn status_errors_name_the_next_step() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "7");
        assert_eq!(
            status_error(&r, "x"),
            ConnectorError::RateLimited {
                retry_after_ms: Some(7000),
                detail: "HTTP 429: x".into()
            }
        );
        assert!(matches!(
            status_error(&HttpResponse::new(401, ""), "x"),
            ConnectorError::Unauthorized { .. }
        ));
        assert!(matches!(
            status_error(&HttpResponse::new(404, ""), "x"),
            ConnectorError::NotFound { .. }
        ));
        assert!(matches!(
            status_error(&HttpResponse::new(418, ""), "x"),
            ConnectorError::Protocol { .. }
        ));
    }

    #[test]
    fn join_url_encodes_segments() {
        assert_eq!(
            join_url("https://h/admin/realms/", &["my realm", "users"]).unwrap(),
            "https://h/admin/realms/my%20realm/users"
        );
    }
}
