//! The sans-IO target session of Acme Apps: changes -> requests, responses -> results.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};
use usersync_sdk::{
    AppObject, ConnectorError, HttpRequest, HttpResponse, Lookup, Method, ObjectKind, Options,
    TargetCapabilities, TargetChange, TargetListing, TargetResult, TargetSession, TargetUser,
};

/// A configured Acme Apps session.
#[derive(Debug, Clone)]
pub struct AcmeAppsSession {
    base: String,
    panic_in: Option<String>,
    max_members: u32,
    etags: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    max_members_per_request: u32,
    #[serde(default)]
    etags: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    name: String,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Items {
    items: Vec<Item>,
    #[serde(default)]
    next_page: Option<u32>,
}

#[derive(Deserialize)]
struct Written {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn objects(items: Vec<Item>) -> Vec<AppObject> {
    items
        .into_iter()
        .map(|i| AppObject {
            app_id: i.id,
            etag: i.version,
            external_id: i.external_id,
            name: i.name,
        })
        .collect()
}

fn parse<'a, T: Deserialize<'a>>(what: &str, body: &'a [u8]) -> Result<T, ConnectorError> {
    serde_json::from_slice(body)
        .map_err(|e| ConnectorError::protocol(format!("Acme Apps sent {what} that is not valid: {e}")))
}

/// An error status as the SDK's source error (lookups, listings, discovery).
fn status_error(r: &HttpResponse) -> ConnectorError {
    let detail = format!("Acme Apps answered HTTP {}", r.status);
    match r.status {
        401 => ConnectorError::Unauthorized { detail },
        403 => ConnectorError::Forbidden { detail, needed: None },
        404 => ConnectorError::NotFound { detail },
        429 => ConnectorError::RateLimited {
            retry_after_ms: retry_after_ms(r),
            detail,
        },
        s if s >= 500 => ConnectorError::Transient { detail },
        _ => ConnectorError::protocol(detail),
    }
}

fn retry_after_ms(r: &HttpResponse) -> Option<u64> {
    r.header("Retry-After")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s * 1000)
}

impl AcmeAppsSession {
    /// Validate the options (no I/O).
    pub fn new(options: &Options) -> Result<Self, ConnectorError> {
        let base = options.require_str("base_url")?.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConnectorError::config("base_url", "must be an http(s) URL"));
        }
        Ok(AcmeAppsSession {
            base,
            panic_in: options.str("panic_in").map(str::to_string),
            max_members: crate::DEFAULT_MAX_MEMBERS,
            etags: false,
        })
    }

    /// The API base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Whether the tests asked this call to panic.
    pub fn panics_in(&self, call: &str) -> bool {
        self.panic_in.as_deref() == Some(call)
    }

    fn boom(&self, call: &str) {
        if self.panics_in(call) {
            panic!("fixture-target: simulated bug in {call}");
        }
    }

    fn json_request(&self, method: Method, path: &str, body: Value, etag: Option<&String>) -> HttpRequest {
        let mut r =
            HttpRequest::get(format!("{}{path}", self.base)).with_header("Content-Type", "application/json");
        r.method = method;
        r.body = Some(body.to_string().into_bytes());
        if let (true, Some(etag)) = (self.etags, etag) {
            r = r.with_header("If-Match", etag.as_str());
        }
        r
    }

    fn bare_request(&self, method: Method, path: &str, etag: Option<&String>) -> HttpRequest {
        let mut r = HttpRequest::get(format!("{}{path}", self.base));
        r.method = method;
        if let (true, Some(etag)) = (self.etags, etag) {
            r = r.with_header("If-Match", etag.as_str());
        }
        r
    }
}

fn user_body(source_key: &str, u: &TargetUser) -> Value {
    json!({
        "userName": u.user_name, "displayName": u.display_name, "givenName": u.given_name,
        "familyName": u.family_name, "email": u.email, "active": u.active, "externalId": source_key,
        "employeeNumber": u.employee_number, "department": u.department, "managerId": u.manager_app_id,
    })
}

/// Classify a write's response (the host decides what to do with each result).
fn classify(change: &TargetChange, r: &HttpResponse) -> TargetResult {
    let error = serde_json::from_slice::<Value>(&r.body).ok();
    let field = |k: &str| {
        error
            .as_ref()
            .and_then(|v| v["error"][k].as_str())
            .map(str::to_string)
    };
    let detail = field("message").unwrap_or_else(|| format!("HTTP {}", r.status));
    match r.status {
        200..=299 => {
            let written: Written = if r.body.is_empty() {
                Written {
                    id: None,
                    version: None,
                }
            } else {
                match serde_json::from_slice(&r.body) {
                    Ok(w) => w,
                    Err(e) => {
                        return TargetResult::Protocol {
                            detail: format!("Acme Apps sent invalid JSON: {e}"),
                        }
                    }
                }
            };
            match change {
                TargetChange::CreateUser { .. } | TargetChange::CreateGroup { .. } => match written.id {
                    Some(app_id) if !app_id.is_empty() => TargetResult::Created {
                        app_id,
                        etag: written.version,
                    },
                    _ => TargetResult::Protocol {
                        detail: "Acme Apps created an object without an id".into(),
                    },
                },
                _ => TargetResult::Updated {
                    etag: written.version,
                },
            }
        }
        400 => TargetResult::Invalid {
            attribute: field("field"),
            reason: field("code"),
            detail,
        },
        401 => TargetResult::Unauthorized { detail },
        403 => TargetResult::Forbidden {
            detail,
            needed: field("code"),
        },
        404 => TargetResult::NotFound { detail },
        409 => TargetResult::Conflict {
            detail,
            reason: field("code"),
        },
        412 => TargetResult::PreconditionFailed { detail },
        429 => TargetResult::Throttled {
            retry_after_ms: retry_after_ms(r),
            detail,
        },
        s if s >= 500 => TargetResult::Transient { detail },
        s => TargetResult::Protocol {
            detail: format!("unexpected HTTP {s}: {detail}"),
        },
    }
}

impl TargetSession for AcmeAppsSession {
    fn discovery(&self) -> Vec<HttpRequest> {
        vec![HttpRequest::get(format!("{}/api/config", self.base))]
    }

    fn configure(&mut self, responses: Vec<HttpResponse>) -> Result<(), ConnectorError> {
        self.boom("configure");
        let r = responses
            .first()
            .ok_or_else(|| ConnectorError::protocol("no answer to /api/config"))?;
        if r.status != 200 {
            return Err(status_error(r));
        }
        let c: Config = parse("its config", &r.body)?;
        if c.max_members_per_request == 0 {
            return Err(ConnectorError::protocol("Acme Apps allows 0 members per request"));
        }
        self.max_members = c.max_members_per_request;
        self.etags = c.etags;
        Ok(())
    }

    fn capabilities(&self) -> TargetCapabilities {
        TargetCapabilities {
            max_members_per_request: self.max_members,
            etags: self.etags,
            ..crate::target_manifest().capabilities
        }
    }

    fn lookup_request(&self, lookup: &Lookup) -> Result<HttpRequest, ConnectorError> {
        self.boom("lookup");
        let (kind, key, value) = match lookup {
            Lookup::UserByUserName { value } => ("users", "userName", value),
            Lookup::UserByExternalId { value } => ("users", "externalId", value),
            Lookup::GroupByDisplayName { value } => ("groups", "displayName", value),
            Lookup::GroupByExternalId { value } => ("groups", "externalId", value),
        };
        Ok(HttpRequest::get(format!(
            "{}/api/{kind}?{key}={}",
            self.base,
            seg(value)
        )))
    }

    fn on_lookup(&self, _lookup: &Lookup, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        if response.status != 200 {
            return Err(status_error(&response));
        }
        Ok(objects(parse::<Items>("a lookup answer", &response.body)?.items))
    }

    fn list(&self, kind: ObjectKind) -> Result<Box<dyn TargetListing>, ConnectorError> {
        let kind = match kind {
            ObjectKind::User => "users",
            ObjectKind::Group => "groups",
        };
        Ok(Box::new(Listing {
            url: format!("{}/api/{kind}", self.base),
            next_page: Some(1),
            panic: self.panics_in("listing"),
        }))
    }

    fn requests(&self, change: &TargetChange) -> Result<Vec<HttpRequest>, ConnectorError> {
        self.boom("requests");
        use TargetChange as C;
        Ok(match change {
            C::CreateUser { source_key, user } => {
                vec![self.json_request(Method::Post, "/api/users", user_body(source_key, user), None)]
            }
            C::UpdateUser {
                app_id,
                etag,
                source_key,
                user,
            } => vec![self.json_request(
                Method::Put,
                &format!("/api/users/{}", seg(app_id)),
                user_body(source_key, user),
                etag.as_ref(),
            )],
            C::DeactivateUser { app_id, etag } => vec![self.json_request(
                Method::Patch,
                &format!("/api/users/{}", seg(app_id)),
                json!({"active": false}),
                etag.as_ref(),
            )],
            C::DeleteUser { app_id, etag } => {
                vec![self.bare_request(
                    Method::Delete,
                    &format!("/api/users/{}", seg(app_id)),
                    etag.as_ref(),
                )]
            }
            C::CreateGroup {
                source_key,
                display_name,
            } => vec![self.json_request(
                Method::Post,
                "/api/groups",
                json!({"displayName": display_name, "externalId": source_key}),
                None,
            )],
            C::RenameGroup {
                app_id,
                etag,
                display_name,
            } => vec![self.json_request(
                Method::Patch,
                &format!("/api/groups/{}", seg(app_id)),
                json!({"displayName": display_name}),
                etag.as_ref(),
            )],
            C::DeleteGroup { app_id, etag } => {
                vec![self.bare_request(
                    Method::Delete,
                    &format!("/api/groups/{}", seg(app_id)),
                    etag.as_ref(),
                )]
            }
            C::AddMembers {
                group_app_id,
                member_app_ids,
            }
            | C::RemoveMembers {
                group_app_id,
                member_app_ids,
            } => {
                let verb = if matches!(change, C::AddMembers { .. }) {
                    "add"
                } else {
                    "remove"
                };
                member_app_ids
                    .chunks(self.max_members as usize)
                    .map(|chunk| {
                        self.json_request(
                            Method::Post,
                            &format!("/api/groups/{}/members", seg(group_app_id)),
                            json!({ verb: chunk }),
                            None,
                        )
                    })
                    .collect()
            }
        })
    }

    fn on_response(&self, change: &TargetChange, response: HttpResponse) -> TargetResult {
        self.boom("on_response");
        classify(change, &response)
    }
}

/// `GET {url}?page=N` until `nextPage` is null.
struct Listing {
    url: String,
    next_page: Option<u32>,
    panic: bool,
}

impl TargetListing for Listing {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.next_page
            .map(|n| HttpRequest::get(format!("{}?page={n}", self.url)))
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Vec<AppObject>, ConnectorError> {
        if self.panic && self.next_page == Some(2) {
            panic!("fixture-target: simulated bug in TargetListing::on_response (page 2)");
        }
        if response.status != 200 {
            return Err(status_error(&response));
        }
        let page: Items = parse("a page", &response.body)?;
        self.next_page = page.next_page;
        Ok(objects(page.items))
    }
}
