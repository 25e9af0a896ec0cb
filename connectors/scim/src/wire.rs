//! SCIM wire formats (RFC 7643/7644): schema URNs, filter strings, resource and PATCH bodies,
//! error bodies and `/ServiceProviderConfig`. No I/O.

use serde_json::{json, Map, Value};
use usersync_sdk::TargetUser;

/// Core User schema (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// PATCH request message (RFC 7644 §3.5.2).
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// List response message (RFC 7644 §3.4.2).
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Error message (RFC 7644 §3.12).
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of SCIM bodies (RFC 7644 §3.1).
pub const MEDIA_TYPE: &str = "application/scim+json";

/// A filter `<attr> eq "<value>"` (RFC 7644 §3.4.2.2). The value is a JSON string (the ABNF's
/// `compValue` is JSON's `string`), so `"` and `\` are escaped and control characters written
/// as `\uXXXX`.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    // serde_json writes exactly JSON's string syntax
    let quoted = Value::String(value.to_string()).to_string();
    format!("{attribute} eq {quoted}")
}

/// Percent-encode a query parameter value: everything but RFC 3986 unreserved characters
/// (so a space is `%20`, never `+`, which some servers keep literally).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode a path segment (an id from the service provider).
pub fn encode_path_segment(v: &str) -> String {
    encode_query_value(v)
}

/// The user's core and extension attributes as SCIM JSON (no `id`, no `schemas`), with
/// `externalId` = the stable source key. `enterprise`: whether the service provider has the
/// enterprise extension (from `/ResourceTypes`); `schemas`: what `/Schemas` defines (an attribute
/// it does not define, or defines as readOnly, is left out).
pub fn user_attributes(
    source_key: &str,
    u: &TargetUser,
    enterprise: bool,
    schemas: &Schemas,
) -> Map<String, Value> {
    let core = |attr: &str, sub: Option<&str>| schemas.writable(SchemaId::User, attr, sub);
    let ext = |attr: &str, sub: Option<&str>| enterprise && schemas.writable(SchemaId::Enterprise, attr, sub);
    let mut m = Map::new();
    // userName is REQUIRED (RFC 7643 §4.1.1) and externalId a common attribute (§3.1): always sent
    m.insert("userName".into(), json!(u.user_name));
    m.insert("externalId".into(), json!(source_key));
    if let Some(d) = u.display_name.as_ref().filter(|_| core("displayName", None)) {
        m.insert("displayName".into(), json!(d));
    }
    let mut name = Map::new();
    if let Some(g) = u.given_name.as_ref().filter(|_| core("name", Some("givenName"))) {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = u
        .family_name
        .as_ref()
        .filter(|_| core("name", Some("familyName")))
    {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        m.insert("name".into(), Value::Object(name));
    }
    if let Some(e) = u.email.as_ref().filter(|_| core("emails", Some("value"))) {
        // one work email, primary (AWS: one value only, primary true, no `display`)
        m.insert(
            "emails".into(),
            json!([{ "value": e, "type": "work", "primary": true }]),
        );
    }
    if core("active", None) {
        m.insert("active".into(), json!(u.active));
    }
    let mut ent = Map::new();
    if let Some(n) = u.employee_number.as_ref().filter(|_| ext("employeeNumber", None)) {
        ent.insert("employeeNumber".into(), json!(n));
    }
    if let Some(d) = u.department.as_ref().filter(|_| ext("department", None)) {
        ent.insert("department".into(), json!(d));
    }
    if let Some(mgr) = u
        .manager_app_id
        .as_ref()
        .filter(|_| ext("manager", Some("value")))
    {
        // manager.value is the manager's id in the service provider (RFC 7643 §4.3)
        ent.insert("manager".into(), json!({ "value": mgr }));
    }
    if !ent.is_empty() {
        m.insert(ENTERPRISE_SCHEMA.into(), Value::Object(ent));
    }
    m
}

/// Paths of managed, writable user attributes that are empty in `u` (to remove in a PATCH).
pub fn cleared_user_paths(u: &TargetUser, enterprise: bool, schemas: &Schemas) -> Vec<String> {
    let core = |attr: &str, sub: Option<&str>| schemas.writable(SchemaId::User, attr, sub);
    let ext = |attr: &str, sub: Option<&str>| enterprise && schemas.writable(SchemaId::Enterprise, attr, sub);
    let mut out = Vec::new();
    let mut clear = |set: bool, writable: bool, path: String| {
        if !set && writable {
            out.push(path);
        }
    };
    clear(
        u.display_name.is_some(),
        core("displayName", None),
        "displayName".into(),
    );
    clear(
        u.given_name.is_some(),
        core("name", Some("givenName")),
        "name.givenName".into(),
    );
    clear(
        u.family_name.is_some(),
        core("name", Some("familyName")),
        "name.familyName".into(),
    );
    clear(u.email.is_some(), core("emails", Some("value")), "emails".into());
    clear(
        u.employee_number.is_some(),
        ext("employeeNumber", None),
        format!("{ENTERPRISE_SCHEMA}:employeeNumber"),
    );
    clear(
        u.department.is_some(),
        ext("department", None),
        format!("{ENTERPRISE_SCHEMA}:department"),
    );
    clear(
        u.manager_app_id.is_some(),
        ext("manager", Some("value")),
        format!("{ENTERPRISE_SCHEMA}:manager"),
    );
    out
}

/// A full User resource for POST or PUT.
pub fn user_resource(source_key: &str, u: &TargetUser, enterprise: bool, schemas: &Schemas) -> Value {
    let mut attrs = user_attributes(source_key, u, enterprise, schemas);
    let mut schemas = vec![json!(USER_SCHEMA)];
    if attrs.contains_key(ENTERPRISE_SCHEMA) {
        schemas.push(json!(ENTERPRISE_SCHEMA));
    }
    attrs.insert("schemas".into(), Value::Array(schemas));
    Value::Object(attrs)
}

/// A Group resource for POST (created without members; they follow by PATCH).
pub fn group_resource(source_key: &str, display_name: &str) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "externalId": source_key,
    })
}

/// A PatchOp body with these operations (lowercase `op`: RFC 7644 §3.5.2).
pub fn patch(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": ops })
}

/// `add` of members (RFC 7644 §3.5.2.1: values already present are no change).
pub fn add_members_op(ids: &[String]) -> Value {
    let values: Vec<Value> = ids.iter().map(|id| json!({ "value": id })).collect();
    json!({ "op": "add", "path": "members", "value": values })
}

/// `remove` of one member by value filter (RFC 7644 §3.5.2.2: `members[value eq "..."]`;
/// `path: "members"` without a filter would remove every member).
pub fn remove_member_op(id: &str) -> Value {
    json!({ "op": "remove", "path": format!("members[{}]", eq_filter("value", id)) })
}

/// A parsed SCIM error body (RFC 7644 §3.12). Tolerates `status` as a number and a missing
/// `scimType` (AWS, Okta, Sentry examples in the notes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimError {
    /// `scimType`, if sent.
    pub scim_type: Option<String>,
    /// `detail`, else the service's own `message`/`error` field, else empty.
    pub detail: String,
}

impl ScimError {
    /// Parse an error body; anything unparsable gives an empty error (the status still decides).
    pub fn parse(body: &[u8]) -> ScimError {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ScimError::default();
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        ScimError {
            scim_type: text("scimType"),
            detail: text("detail")
                .or_else(|| text("message"))
                .or_else(|| text("error"))
                .unwrap_or_default(),
        }
    }
}

/// The attribute a 400's detail names, among those the connector writes (case-insensitive,
/// whole word), longest first so `name.givenName` wins over `name`.
pub fn attribute_named_in(detail: &str) -> Option<String> {
    const ATTRIBUTES: [&str; 14] = [
        "name.familyName",
        "name.givenName",
        "employeeNumber",
        "displayName",
        "familyName",
        "externalId",
        "department",
        "givenName",
        "userName",
        "manager",
        "members",
        "emails",
        "active",
        "name",
    ];
    let lower = detail.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for a in ATTRIBUTES {
        let needle = a.to_ascii_lowercase();
        let mut from = 0;
        while let Some(pos) = lower[from..].find(&needle) {
            let start = from + pos;
            let end = start + needle.len();
            let word = |i: usize| bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.';
            let before_ok = start == 0 || !word(start - 1);
            let after_ok = end == bytes.len() || !word(end);
            if before_ok && after_ok {
                return Some(a.to_string());
            }
            from = end;
        }
    }
    None
}

/// What `/ServiceProviderConfig` announces (RFC 7643 §5), the parts the connector honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProviderConfig {
    /// `patch.supported`.
    pub patch: bool,
    /// `bulk.supported` (read and reported; the connector does not send Bulk requests).
    pub bulk: bool,
    /// `filter.supported`.
    pub filter: bool,
    /// `filter.maxResults`, if given.
    pub filter_max_results: Option<u64>,
    /// `etag.supported`.
    pub etag: bool,
}

impl ServiceProviderConfig {
    /// Parse the document. A missing feature object reads as "not supported" (never assume a
    /// feature the service does not announce: notes A8); a body that is not a JSON object is an
    /// error naming what was wrong.
    pub fn parse(body: &[u8]) -> Result<ServiceProviderConfig, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("/ServiceProviderConfig is not JSON: {e}"))?;
        if !v.is_object() {
            return Err("/ServiceProviderConfig is not a JSON object".into());
        }
        let supported = |feature: &str| -> Result<bool, String> {
            match v.get(feature).map(|f| f.get("supported")) {
                None | Some(None) => Ok(false),
                Some(Some(Value::Bool(b))) => Ok(*b),
                Some(Some(other)) => Err(format!(
                    "/ServiceProviderConfig `{feature}.supported` is {other}, not a boolean"
                )),
            }
        };
        Ok(ServiceProviderConfig {
            patch: supported("patch")?,
            bulk: supported("bulk")?,
            filter: supported("filter")?,
            filter_max_results: v.pointer("/filter/maxResults").and_then(Value::as_u64),
            etag: supported("etag")?,
        })
    }
}

/// Which attributes the service defines, from `/Schemas` (RFC 7643 §7, RFC 7644 §4): an attribute
/// the service does not define, or defines as `readOnly`, is never written (a strict service
/// answers 400 to an unknown attribute: scim2-server's "Extra inputs are not permitted").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schemas {
    /// The core User schema's attributes; `None`: not published (everything the RFC defines).
    user: Option<AttrSet>,
    /// The enterprise extension's attributes; `None`: not published.
    enterprise: Option<AttrSet>,
}

/// Attribute name (lowercase) -> (mutability, sub-attribute name (lowercase) -> mutability).
type AttrSet = std::collections::BTreeMap<String, (String, std::collections::BTreeMap<String, String>)>;

/// Which schema an attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaId {
    /// `urn:ietf:params:scim:schemas:core:2.0:User`.
    User,
    /// The enterprise User extension.
    Enterprise,
}

impl Schemas {
    /// Parse a ListResponse of Schema resources (or a bare list). Attribute names compare
    /// case-insensitively (RFC 7643 §2.1).
    pub fn parse(body: &[u8]) -> Result<Schemas, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("/Schemas is not JSON: {e}"))?;
        let items = match &v {
            Value::Array(a) => a.as_slice(),
            Value::Object(o) => match o.get("Resources") {
                Some(Value::Array(a)) => a.as_slice(),
                None => &[],
                Some(_) => return Err("/Schemas `Resources` is not a list".into()),
            },
            _ => return Err("/Schemas is neither a ListResponse nor a list".into()),
        };
        let mut out = Schemas::default();
        for schema in items {
            let id = schema.get("id").and_then(Value::as_str).unwrap_or_default();
            let slot = if id.eq_ignore_ascii_case(USER_SCHEMA) {
                &mut out.user
            } else if id.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) {
                &mut out.enterprise
            } else {
                continue;
            };
            let attrs = schema
                .get("attributes")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("/Schemas: schema `{id}` has no `attributes` list"))?;
            let mut set = AttrSet::new();
            for a in attrs {
                let Some(name) = a.get("name").and_then(Value::as_str) else {
                    return Err(format!("/Schemas: an attribute of `{id}` has no `name`"));
                };
                let subs = a
                    .get("subAttributes")
                    .and_then(Value::as_array)
                    .map(|subs| {
                        subs.iter()
                            .filter_map(|sa| {
                                let n = sa.get("name").and_then(Value::as_str)?;
                                Some((n.to_ascii_lowercase(), mutability(sa)))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                set.insert(name.to_ascii_lowercase(), (mutability(a), subs));
            }
            *slot = Some(set);
        }
        Ok(out)
    }

    /// Whether `attr` (or its sub-attribute `sub`) may be written. Without a published schema:
    /// yes. The enterprise extension's absence from a published `/Schemas` is decided by
    /// `/ResourceTypes`, not here.
    pub fn writable(&self, schema: SchemaId, attr: &str, sub: Option<&str>) -> bool {
        let set = match schema {
            SchemaId::User => &self.user,
            SchemaId::Enterprise => &self.enterprise,
        };
        let Some(set) = set else {
            return true;
        };
        let Some((m, subs)) = set.get(&attr.to_ascii_lowercase()) else {
            return false;
        };
        if m == "readonly" {
            return false;
        }
        match sub {
            None => true,
            // a complex attribute published without sub-attributes: trust the RFC's
            Some(_) if subs.is_empty() => true,
            Some(s) => subs.get(&s.to_ascii_lowercase()).is_some_and(|m| m != "readonly"),
        }
    }
}

/// An attribute definition's `mutability`, lowercase (`readWrite` when absent: RFC 7643 §7).
fn mutability(a: &Value) -> String {
    a.get("mutability")
        .and_then(Value::as_str)
        .unwrap_or("readWrite")
        .to_ascii_lowercase()
}

/// What `/ResourceTypes` says (RFC 7644 §4): whether Users/Groups exist, their endpoints, and
/// whether User carries the enterprise extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTypes {
    /// The User endpoint (`/Users`).
    pub users_endpoint: String,
    /// The Group endpoint, when the service has groups.
    pub groups_endpoint: Option<String>,
    /// The User resource type lists the enterprise extension.
    pub enterprise: bool,
}

impl Default for ResourceTypes {
    /// The RFC's defaults, for a service that does not publish `/ResourceTypes`.
    fn default() -> Self {
        ResourceTypes {
            users_endpoint: "/Users".into(),
            groups_endpoint: Some("/Groups".into()),
            enterprise: true,
        }
    }
}

impl ResourceTypes {
    /// Parse a ListResponse of ResourceType resources (or a bare JSON array, which some
    /// services send).
    pub fn parse(body: &[u8]) -> Result<ResourceTypes, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("/ResourceTypes is not JSON: {e}"))?;
        let items = match &v {
            Value::Array(a) => a.clone(),
            Value::Object(o) => match o.get("Resources") {
                Some(Value::Array(a)) => a.clone(),
                None => Vec::new(),
                Some(_) => return Err("/ResourceTypes `Resources` is not a list".into()),
            },
            _ => return Err("/ResourceTypes is neither a ListResponse nor a list".into()),
        };
        let mut out = ResourceTypes {
            users_endpoint: String::new(),
            groups_endpoint: None,
            enterprise: false,
        };
        for item in &items {
            let schema = item.get("schema").and_then(Value::as_str).unwrap_or_default();
            let endpoint = item.get("endpoint").and_then(Value::as_str).map(str::to_string);
            if schema.eq_ignore_ascii_case(USER_SCHEMA) {
                out.users_endpoint = endpoint.unwrap_or_else(|| "/Users".into());
                out.enterprise = item
                    .get("schemaExtensions")
                    .and_then(Value::as_array)
                    .is_some_and(|exts| {
                        exts.iter().any(|e| {
                            e.get("schema")
                                .and_then(Value::as_str)
                                .is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_SCHEMA))
                        })
                    });
            } else if schema.eq_ignore_ascii_case(GROUP_SCHEMA) {
                out.groups_endpoint = Some(endpoint.unwrap_or_else(|| "/Groups".into()));
            }
        }
        if out.users_endpoint.is_empty() {
            return Err("/ResourceTypes lists no User resource type".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_rfc_7644_3_4_2_2() {
        // RFC 7644 §3.4.2.2 example: filter=userName eq "bjensen"
        assert_eq!(eq_filter("userName", "bjensen"), r#"userName eq "bjensen""#);
        // compValue is a JSON string: quotes and backslashes escaped, control chars as \u
        assert_eq!(eq_filter("userName", r#"a"b\c"#), r#"userName eq "a\"b\\c""#);
        assert_eq!(eq_filter("externalId", "x\ny"), r#"externalId eq "x\ny""#);
        assert_eq!(eq_filter("displayName", "\u{1}"), r#"displayName eq "\u0001""#);
        // RFC 7644 §3.4.2 example URL: ?filter=userName%20eq%20%22bjensen%22 (space as %20)
        assert_eq!(
            encode_query_value(&eq_filter("userName", "bjensen")),
            "userName%20eq%20%22bjensen%22"
        );
        assert_eq!(encode_query_value("a+b&c=d/é"), "a%2Bb%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn membership_ops_match_rfc_7644_3_5_2() {
        // §3.5.2.1 example: add members with a list of {"value": id}
        assert_eq!(
            add_members_op(&["2819c223-7f76-453a-919d-413861904646".into()]),
            json!({"op":"add","path":"members","value":[{"value":"2819c223-7f76-453a-919d-413861904646"}]})
        );
        // §3.5.2.2 example: "path":"members[value eq \"2819c223-7f76-...\"]"
        assert_eq!(
            remove_member_op("2819c223-7f76-453a-919d-413861904646"),
            json!({"op":"remove","path":"members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"})
        );
        assert_eq!(
            patch(vec![])["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"])
        );
    }

    #[test]
    fn user_resource_has_the_rfc_7643_shape() {
        let u = TargetUser {
            user_name: "bjensen@example.com".into(),
            display_name: Some("Babs Jensen".into()),
            given_name: Some("Barbara".into()),
            family_name: Some("Jensen".into()),
            email: Some("bjensen@example.com".into()),
            active: true,
            employee_number: Some("701984".into()),
            department: Some("Tour Operations".into()),
            manager_app_id: Some("26118915-6090-4610-87e4-49d8ca9f808d".into()),
        };
        let r = user_resource("src-1", &u, true, &Schemas::default());
        // RFC 7643 §8.3 (enterprise user example) field names and nesting
        assert_eq!(
            r,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
                "userName": "bjensen@example.com",
                "externalId": "src-1",
                "displayName": "Babs Jensen",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE_SCHEMA: {
                    "employeeNumber": "701984",
                    "department": "Tour Operations",
                    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
                }
            })
        );
        // without the extension on the service, nothing of it is sent
        let r = user_resource("src-1", &u, false, &Schemas::default());
        assert!(r.get(ENTERPRISE_SCHEMA).is_none());
        assert_eq!(r["schemas"], json!([USER_SCHEMA]));
        let bare = TargetUser {
            user_name: "x".into(),
            ..TargetUser::default()
        };
        assert_eq!(
            cleared_user_paths(&bare, false, &Schemas::default()),
            ["displayName", "name.givenName", "name.familyName", "emails"]
        );
    }

    #[test]
    fn errors_parse_with_string_or_number_status_and_without_scim_type() {
        // RFC 7644 §3.12 example body
        let e = ScimError::parse(
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"mutability","detail":"Attribute 'id' is readOnly","status":"400"}"#,
        );
        assert_eq!(e.scim_type.as_deref(), Some("mutability"));
        assert_eq!(e.detail, "Attribute 'id' is readOnly");
        // AWS 409: no scimType, "schema" and "schemas", numeric-looking fields
        let e = ScimError::parse(
            br#"{"schema":["urn:ietf:params:scim:api:messages:2.0:Error"],"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Refused to create a new, duplicate resource.","status":"409","exceptionRequestId":"x","timeStamp":"y"}"#,
        );
        assert_eq!(e.scim_type, None);
        assert_eq!(e.detail, "Refused to create a new, duplicate resource.");
        assert_eq!(ScimError::parse(br#"{"status":409}"#), ScimError::default());
        assert_eq!(ScimError::parse(b"<html>"), ScimError::default());
    }

    #[test]
    fn the_attribute_a_detail_names_is_found_as_a_whole_word() {
        assert_eq!(
            attribute_named_in("Attribute 'userName' is required").as_deref(),
            Some("userName")
        );
        assert_eq!(
            attribute_named_in("invalid name.givenName").as_deref(),
            Some("name.givenName")
        );
        assert_eq!(
            attribute_named_in("emails: one value only").as_deref(),
            Some("emails")
        );
        assert_eq!(attribute_named_in("usernames are hard"), None);
        assert_eq!(attribute_named_in("Request is unparsable"), None);
    }

    #[test]
    fn service_provider_config_is_honoured_as_announced() {
        // RFC 7643 §8.5 example (abridged): patch true, bulk true (1000 ops), filter 200, etag true
        let spc = ServiceProviderConfig::parse(
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch":{"supported":true},
                "bulk":{"supported":true,"maxOperations":1000,"maxPayloadSize":1048576},
                "filter":{"supported":true,"maxResults":200},
                "changePassword":{"supported":true},"sort":{"supported":true},
                "etag":{"supported":true}}"#,
        )
        .expect("parse");
        assert!(spc.patch && spc.bulk && spc.filter && spc.etag);
        assert_eq!(spc.filter_max_results, Some(200));
        // features not announced are not assumed
        let spc = ServiceProviderConfig::parse(br#"{"patch":{"supported":false}}"#).expect("parse");
        assert!(!spc.patch && !spc.bulk && !spc.filter && !spc.etag);
        assert!(ServiceProviderConfig::parse(br#"{"patch":{"supported":"yes"}}"#).is_err());
        assert!(ServiceProviderConfig::parse(b"{trunc").is_err());
    }

    #[test]
    fn schemas_decide_what_is_writable() {
        // RFC 7643 §8.7.1 excerpt: userName readWrite, groups readOnly, name with sub-attributes
        let s = Schemas::parse(
            br#"[{"id":"urn:ietf:params:scim:schemas:core:2.0:User","attributes":[
                   {"name":"userName","mutability":"readWrite"},
                   {"name":"name","subAttributes":[{"name":"familyName"},{"name":"givenName","mutability":"readOnly"}]},
                   {"name":"groups","mutability":"readOnly","subAttributes":[{"name":"value"}]},
                   {"name":"emails"}]}]"#,
        )
        .expect("parse");
        assert!(s.writable(SchemaId::User, "USERNAME", None));
        assert!(s.writable(SchemaId::User, "name", Some("familyName")));
        assert!(!s.writable(SchemaId::User, "name", Some("givenName")));
        assert!(!s.writable(SchemaId::User, "groups", None));
        assert!(!s.writable(SchemaId::User, "displayName", None));
        // published without sub-attributes: the RFC's are assumed
        assert!(s.writable(SchemaId::User, "emails", Some("value")));
        // no enterprise schema published: decided by /ResourceTypes, not here
        assert!(s.writable(SchemaId::Enterprise, "manager", Some("value")));
        assert!(Schemas::default().writable(SchemaId::User, "anything", None));
        assert!(
            Schemas::parse(br#"{"Resources":[{"id":"urn:ietf:params:scim:schemas:core:2.0:User"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn resource_types_name_endpoints_and_the_extension() {
        // RFC 7643 §8.6 example
        let rt = ResourceTypes::parse(
            br#"[{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],"id":"User","name":"User",
                "endpoint":"/Users","schema":"urn:ietf:params:scim:schemas:core:2.0:User",
                "schemaExtensions":[{"schema":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","required":true}]},
               {"schemas":["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],"id":"Group","name":"Group",
                "endpoint":"/Groups","schema":"urn:ietf:params:scim:schemas:core:2.0:Group"}]"#,
        )
        .expect("parse");
        assert_eq!(rt, ResourceTypes::default());
        let rt = ResourceTypes::parse(
            br#"{"totalResults":1,"Resources":[{"endpoint":"/Users","schema":"urn:ietf:params:scim:schemas:core:2.0:User"}]}"#,
        )
        .expect("parse");
        assert!(!rt.enterprise && rt.groups_endpoint.is_none());
        assert!(ResourceTypes::parse(br#"{"Resources":[]}"#).is_err());
    }
}
