//! SCIM 2.0 service-provider facade (RFC 7643/7644): the application side that usersync pushes
//! into. Unlike the identity-provider facades it does not serve the generated organisation: it
//! starts empty and holds what clients write.
//!
//! Three modes, one provider id each (`usersync emulator --provider scim|scim-aws|scim-atlassian`),
//! enforcing what the real services document beyond the RFC (notes: `scim-targets.md`):
//!
//! | | `scim` (generic RFC) | `scim-aws` (IAM Identity Center) | `scim-atlassian` (Atlassian Cloud) |
//! |---|---|---|---|
//! | users filter | `userName`, `externalId`, `displayName`, `id` | `userName`, `externalId` | `userName`, `externalId` |
//! | groups filter | `displayName`, `externalId`, `id` | `displayName`, `externalId` | `displayName` |
//! | page size cap (`filter.maxResults`) | 200 | 50 | 100 |
//! | ETags / `If-Match` | yes | no | no (not documented) |
//! | group `members` on GET | yes | always empty | yes |
//! | member changes per PATCH | unlimited | ≤ 100; no `replace` of members, no remove-all | unlimited |
//! | rename group | yes | yes | no (400) |
//! | user required | `userName` | `userName`, `displayName`, `name.givenName`, `name.familyName`; one email, primary | `userName` |
//! | 409 body | `scimType: uniqueness` | no `scimType`, AWS fields | `scimType: uniqueness` |
//! | group names unique | no | yes | yes |
//! | PATCH answer | 200 + resource | 204 | 200 + resource |
//! | PUT /Groups/{id} | yes | no (405) | no (405) |
//!
//! Common to all modes: bearer token = `credentials.api_token`; `/ServiceProviderConfig` and
//! `/ResourceTypes` answer without a token; `userName` unique case-insensitively (409);
//! `400 invalidValue` for a missing `userName`/`displayName`, a non-boolean `active`, an email
//! without `@` or a member id that is not a user; `400 mutability` for `id`, `meta`, `groups`;
//! a deleted user disappears from every group (RFC 7644 §3.6); Bulk is not offered.
//! Throttling (rate limit or an injected 429 fault, `error_statuses: [429]`) answers 429 with a
//! SCIM error body and `Retry-After` in delta-seconds.
#![allow(clippy::result_large_err)] // axum handlers answer errors as ready `Response`s

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::facade::{or_respond, BaseUrl, EmuContext, Facade};
use crate::rate::RateDecision;
use crate::timefmt;
use crate::EmulatorError;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// AWS's generic 400 text for a PATCH it refuses (slashdevops/idp-scim-sync#62, #75).
const AWS_UNPARSABLE: &str = "Request is unparsable, syntactically incorrect, or violates schema.";

/// Which service the emulator behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimProfile {
    /// RFC 7643/7644 only.
    Generic,
    /// AWS IAM Identity Center.
    Aws,
    /// Atlassian Cloud user provisioning.
    Atlassian,
}

impl ScimProfile {
    fn id(self) -> &'static str {
        match self {
            ScimProfile::Generic => "scim",
            ScimProfile::Aws => "scim-aws",
            ScimProfile::Atlassian => "scim-atlassian",
        }
    }

    /// `filter.maxResults`: generic as RFC 7643 §8.5's example; AWS 50 (developer guide,
    /// ListUsers/ListGroups, older text); Atlassian 100 (its default page, support KB).
    fn max_results(self) -> usize {
        match self {
            ScimProfile::Generic => 200,
            ScimProfile::Aws => 50,
            ScimProfile::Atlassian => 100,
        }
    }

    fn etag(self) -> bool {
        self == ScimProfile::Generic
    }

    fn user_filters(self) -> &'static [&'static str] {
        match self {
            ScimProfile::Generic => &["username", "externalid", "displayname", "id"],
            ScimProfile::Aws | ScimProfile::Atlassian => &["username", "externalid"],
        }
    }

    fn group_filters(self) -> &'static [&'static str] {
        match self {
            ScimProfile::Generic => &["displayname", "externalid", "id"],
            ScimProfile::Aws => &["displayname", "externalid"],
            ScimProfile::Atlassian => &["displayname"],
        }
    }

    fn unique_group_names(self) -> bool {
        self != ScimProfile::Generic
    }

    fn service_provider_config(self, base: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": match self {
                ScimProfile::Generic => "https://www.rfc-editor.org/rfc/rfc7644",
                ScimProfile::Aws => "https://docs.aws.amazon.com/singlesignon/latest/developerguide/what-is-scim.html",
                ScimProfile::Atlassian => "https://developer.atlassian.com/cloud/admin/user-provisioning/rest/",
            },
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": self.max_results()},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": self.etag()},
            "authenticationSchemes": [{
                "type": "oauthbearertoken", "name": "OAuth Bearer Token",
                "description": "Authentication with a bearer token", "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        })
    }
}

/// The SCIM service-provider facade in one of its modes.
#[derive(Debug, Clone, Copy)]
pub struct Scim(pub ScimProfile);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

#[derive(Debug, Default)]
struct Store {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    next_id: u64,
    version: u64,
}

impl Store {
    fn map(&self, kind: Kind) -> &BTreeMap<String, Value> {
        match kind {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }
    fn map_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, Value> {
        match kind {
            Kind::User => &mut self.users,
            Kind::Group => &mut self.groups,
        }
    }
    fn new_id(&mut self, kind: Kind) -> String {
        self.next_id += 1;
        // UUID-shaped, ordered by creation (listings are in creation order)
        let tag = if kind == Kind::User { 1 } else { 2 };
        format!(
            "{:08x}-0000-4000-8000-{tag:04x}{:08x}",
            self.next_id, self.next_id
        )
    }
    fn bump(&mut self) -> String {
        self.version += 1;
        format!("W/\"{}\"", self.version)
    }
}

struct ScimState {
    ctx: Arc<EmuContext>,
    profile: ScimProfile,
    store: Mutex<Store>,
}

impl ScimState {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // a handler that panicked mid-write leaves the map consistent (writes are whole inserts)
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type St = State<Arc<ScimState>>;
type Id = Path<String>;
type Params = Query<HashMap<String, String>>;

mod patch;
mod query;
mod write;

use patch::*;
use query::*;
use write::*;

/// `GET` (list) and `POST` (create) on a resource collection.
fn collection(kind: Kind) -> MethodRouter<Arc<ScimState>> {
    get(move |State(st): St, headers: HeaderMap, Query(q): Params| list(st, kind, headers, q)).post(
        move |State(st): St, BaseUrl(base): BaseUrl, headers: HeaderMap, body: Bytes| {
            create(st, kind, base, headers, body)
        },
    )
}

/// `GET`, `PATCH`, `DELETE` and (where the mode allows it) `PUT` on one resource.
fn item(kind: Kind, with_put: bool) -> MethodRouter<Arc<ScimState>> {
    let route = get(move |State(st): St, headers: HeaderMap, Path(id): Id| get_one(st, kind, headers, id))
        .patch(
            move |State(st): St, BaseUrl(base): BaseUrl, headers: HeaderMap, Path(id): Id, body: Bytes| {
                patch(st, kind, base, headers, id, body)
            },
        )
        .delete(move |State(st): St, headers: HeaderMap, Path(id): Id| delete(st, kind, headers, id));
    if with_put {
        route.put(
            move |State(st): St, BaseUrl(base): BaseUrl, headers: HeaderMap, Path(id): Id, body: Bytes| {
                replace(st, kind, base, headers, id, body)
            },
        )
    } else {
        route
    }
}

impl Facade for Scim {
    fn id(&self) -> &'static str {
        self.0.id()
    }

    fn adjust_gen(&self, cfg: &mut crate::gen::GenConfig) {
        // a service provider starts empty: usersync writes into it
        cfg.users = 0;
        cfg.groups = 0;
    }

    fn router(&self, ctx: Arc<EmuContext>) -> Result<Router, EmulatorError> {
        let state = Arc::new(ScimState {
            ctx,
            profile: self.0,
            store: Mutex::new(Store::default()),
        });
        let put_groups = self.0 == ScimProfile::Generic;
        Ok(Router::new()
            .route("/ServiceProviderConfig", get(service_provider_config))
            .route("/ResourceTypes", get(resource_types))
            .route("/Users", collection(Kind::User))
            .route("/Users/{id}", item(Kind::User, true))
            .route("/Groups", collection(Kind::Group))
            .route("/Groups/{id}", item(Kind::Group, put_groups))
            .with_state(state))
    }

    fn rate_bucket(&self, _method: &Method, _path: &str) -> Option<(String, u32)> {
        // no documented numeric SCIM limit (AWS: UNCONFIRMED); generous so `--rate-limit` can set one
        Some(("scim".to_string(), 100_000))
    }

    fn throttled(&self, d: &RateDecision, _concurrency: bool) -> Response {
        let mut r = error(self.0, StatusCode::TOO_MANY_REQUESTS, None, "Too many requests");
        if let Ok(v) = HeaderValue::from_str(&d.retry_after_secs.to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    }

    fn server_error(&self, status: StatusCode) -> Response {
        error(self.0, status, None, status.canonical_reason().unwrap_or("error"))
    }

    fn client_info(&self, ctx: &EmuContext, base_url: &str) -> Value {
        json!({
            "base_url": base_url,
            "profile": match self.0 {
                ScimProfile::Generic => "generic",
                ScimProfile::Aws => "aws",
                ScimProfile::Atlassian => "atlassian",
            },
            "connector_options": { "base_url": base_url },
            "connector_secrets": { "token": ctx.creds.api_token },
        })
    }
}

// ---------------------------------------------------------------- responses

/// A SCIM error (RFC 7644 §3.12); AWS's shape: `schema` and `schemas`, its request id and time,
/// never a `scimType` (slashdevops/idp-scim-sync#45).
fn error(profile: ScimProfile, status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if profile == ScimProfile::Aws {
        body["schema"] = json!([ERROR_SCHEMA]);
        body["exceptionRequestId"] = json!("00000000-0000-4000-8000-000000000000");
        body["timeStamp"] = json!(timefmt::rfc3339(timefmt::now_unix()));
    } else if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim_response(status, &body, None)
}

fn scim_response(status: StatusCode, body: &Value, etag: Option<&str>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        r.headers_mut().insert(axum::http::header::ETAG, v);
    }
    r
}

fn invalid(st: &ScimState, scim_type: &str, detail: &str) -> Response {
    let detail = if st.profile == ScimProfile::Aws {
        format!("{AWS_UNPARSABLE} {detail}")
    } else {
        detail.to_string()
    };
    error(st.profile, StatusCode::BAD_REQUEST, Some(scim_type), &detail)
}

fn not_found(st: &ScimState, kind: Kind, id: &str) -> Response {
    error(
        st.profile,
        StatusCode::NOT_FOUND,
        None,
        &format!("Resource {} {id} not found", kind.name()),
    )
}

fn conflict(st: &ScimState, detail: &str) -> Response {
    let detail = if st.profile == ScimProfile::Aws {
        "Refused to create a new, duplicate resource."
    } else {
        detail
    };
    error(st.profile, StatusCode::CONFLICT, Some("uniqueness"), detail)
}

fn authorize(st: &ScimState, headers: &HeaderMap) -> Result<(), Response> {
    let want = format!("Bearer {}", st.ctx.creds.api_token);
    match headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(got) if got == want => Ok(()),
        _ => Err(error(
            st.profile,
            StatusCode::UNAUTHORIZED,
            None,
            "Authorization failure. The authorization header is invalid or missing.",
        )),
    }
}

/// Check `If-Match` (RFC 7644 §3.14) where ETags are offered.
fn check_if_match(st: &ScimState, headers: &HeaderMap, current: &Value) -> Result<(), Response> {
    if !st.profile.etag() {
        return Ok(());
    }
    let Some(want) = headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let have = current
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if want.trim() == "*" || want.split(',').any(|t| t.trim() == have) {
        Ok(())
    } else {
        Err(error(
            st.profile,
            StatusCode::PRECONDITION_FAILED,
            None,
            "Failed to update. Resource has changed on the server",
        ))
    }
}

/// The resource as served: AWS answers groups with an empty `members` list (developer guide,
/// GetGroup/ListGroups "Not supported").
fn served(st: &ScimState, kind: Kind, r: &Value, exclude_members: bool) -> Value {
    let mut r = r.clone();
    if kind == Kind::Group {
        if exclude_members {
            if let Some(o) = r.as_object_mut() {
                o.remove("members");
            }
        } else if st.profile == ScimProfile::Aws {
            r["members"] = json!([]);
        }
    }
    r
}

fn parse_body(st: &ScimState, body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid(
            st,
            "invalidSyntax",
            "The request body is not a JSON object",
        )),
        Err(e) => Err(invalid(
            st,
            "invalidSyntax",
            &format!("The request body is not JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests;
