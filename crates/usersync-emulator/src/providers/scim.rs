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
#![allow(clippy::result_large_err)] // axum handlers answer errors as ready `Response`s

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
        let mut group_item = get(get_group).patch(patch_group).delete(delete_group);
        if self.0 == ScimProfile::Generic {
            group_item = group_item.put(put_group);
        }
        Ok(Router::new()
            .route("/ServiceProviderConfig", get(service_provider_config))
            .route("/ResourceTypes", get(resource_types))
            .route("/Users", get(list_users).post(create_user))
            .route(
                "/Users/{id}",
                get(get_user).put(put_user).patch(patch_user).delete(delete_user),
            )
            .route("/Groups", get(list_groups).post(create_group))
            .route("/Groups/{id}", group_item)
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

// ---------------------------------------------------------------- discovery

async fn service_provider_config(State(st): St, BaseUrl(base): BaseUrl) -> Response {
    scim_response(StatusCode::OK, &st.profile.service_provider_config(&base), None)
}

async fn resource_types(State(_st): St) -> Response {
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
fn parse_filter(filter: &str) -> Option<(String, String)> {
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

fn matches(r: &Value, attr: &str, value: &str) -> bool {
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

async fn list(st: Arc<ScimState>, kind: Kind, headers: HeaderMap, q: HashMap<String, String>) -> Response {
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

async fn list_users(State(st): St, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    list(st, Kind::User, headers, q).await
}

async fn list_groups(
    State(st): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list(st, Kind::Group, headers, q).await
}

async fn get_one(st: Arc<ScimState>, kind: Kind, headers: HeaderMap, id: String) -> Response {
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

async fn get_user(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    get_one(st, Kind::User, headers, id).await
}

async fn get_group(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    get_one(st, Kind::Group, headers, id).await
}

// ---------------------------------------------------------------- validation

/// Check a whole resource as it would be stored; `self_id` excludes itself from uniqueness.
fn validate(
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

fn check_mutability(st: &ScimState, attr: &str) -> Result<(), Response> {
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
fn finish(
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

async fn create(st: Arc<ScimState>, kind: Kind, base: String, headers: HeaderMap, body: Bytes) -> Response {
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

async fn create_user(State(st): St, BaseUrl(base): BaseUrl, headers: HeaderMap, body: Bytes) -> Response {
    create(st, Kind::User, base, headers, body).await
}

async fn create_group(State(st): St, BaseUrl(base): BaseUrl, headers: HeaderMap, body: Bytes) -> Response {
    create(st, Kind::Group, base, headers, body).await
}

async fn replace(
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

async fn put_user(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    replace(st, Kind::User, base, headers, id, body).await
}

async fn put_group(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    replace(st, Kind::Group, base, headers, id, body).await
}

async fn delete(st: Arc<ScimState>, kind: Kind, headers: HeaderMap, id: String) -> Response {
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

async fn delete_user(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    delete(st, Kind::User, headers, id).await
}

async fn delete_group(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    delete(st, Kind::Group, headers, id).await
}

// ---------------------------------------------------------------- PATCH (RFC 7644 §3.5.2)

/// A PATCH path: attribute (lowercased, the enterprise URN folded into `urn` part), optional
/// sub-attribute, optional `[value eq "..."]` filter.
#[derive(Debug, PartialEq)]
struct PatchPath {
    extension: bool,
    attr: String,
    sub: Option<String>,
    value_filter: Option<String>,
}

fn parse_path(path: &str) -> Option<PatchPath> {
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
fn key_of(o: &Map<String, Value>, name: &str) -> String {
    o.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn merge_value(target: &mut Map<String, Value>, key: &str, value: Value, add: bool) {
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
fn member_changes(op: &str, path: Option<&PatchPath>, value: Option<&Value>) -> usize {
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

fn apply_op(st: &ScimState, kind: Kind, r: &mut Map<String, Value>, op: &Value) -> Result<usize, Response> {
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

fn add_schema(r: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(s)) = r.get_mut("schemas") {
        if !s.iter().any(|x| x.as_str() == Some(urn)) {
            s.push(json!(urn));
        }
    }
}

async fn patch(
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

async fn patch_user(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    patch(st, Kind::User, base, headers, id, body).await
}

async fn patch_group(
    State(st): St,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    patch(st, Kind::Group, base, headers, id, body).await
}

#[cfg(test)]
mod tests;
