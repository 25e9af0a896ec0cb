//! Unit tests against hand-written expectations from RFC 7644's own examples (§3.3, §3.4.2,
//! §3.5.2) and the profiles' documented limits.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use usersync_sdk::{
    ConnectorError, HttpResponse, Lookup, Method, ObjectKind, Options, Target, TargetChange, TargetOperation,
    TargetResult, TargetSession, TargetUser,
};

use super::*;

const BASE: &str = "https://example.com/v2";

fn options(profile: &str) -> Options {
    let mut v = BTreeMap::new();
    v.insert("base_url".to_string(), json!(BASE));
    v.insert("profile".to_string(), json!(profile));
    Options::from_values(v).with_secret_set(TOKEN_OPTION)
}

/// RFC 7643 §8.5's ServiceProviderConfig, with the features switched as asked.
fn spc(patch: bool, etag: bool, filter: bool) -> HttpResponse {
    HttpResponse::new(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": patch},
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
            "filter": {"supported": filter, "maxResults": 200},
            "changePassword": {"supported": true},
            "sort": {"supported": true},
            "etag": {"supported": etag},
        })
        .to_string(),
    )
}

fn session_with(profile: &str, spc_resp: HttpResponse) -> Box<dyn TargetSession> {
    let mut s = ScimTarget.open(&options(profile)).expect("open");
    s.configure(vec![spc_resp, HttpResponse::new(404, "")])
        .expect("configure");
    s
}

fn session(profile: &str) -> Box<dyn TargetSession> {
    session_with(profile, spc(true, true, true))
}

fn body(r: &usersync_sdk::HttpRequest) -> Value {
    serde_json::from_slice(r.body.as_deref().expect("a body")).expect("json body")
}

fn user() -> TargetUser {
    TargetUser {
        user_name: "bjensen".into(),
        display_name: Some("Babs Jensen".into()),
        given_name: Some("Barbara".into()),
        family_name: Some("Jensen".into()),
        email: Some("bjensen@example.com".into()),
        active: true,
        ..TargetUser::default()
    }
}

#[test]
fn discovery_reads_service_provider_config_resource_types_and_schemas() {
    let s = ScimTarget.open(&options("generic")).expect("open");
    let reqs = s.discovery();
    let urls: Vec<&str> = reqs.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://example.com/v2/ServiceProviderConfig",
            "https://example.com/v2/ResourceTypes",
            "https://example.com/v2/Schemas"
        ]
    );
    assert!(reqs.iter().all(|r| r.method == Method::Get));
    assert_eq!(reqs[0].header("Accept"), Some("application/scim+json"));
    // nothing may be written before discovery
    assert!(matches!(
        s.requests(&TargetChange::DeleteUser {
            app_id: "x".into(),
            etag: None
        }),
        Err(ConnectorError::Protocol { .. })
    ));
}

#[test]
fn discovery_failures_stop_before_any_write() {
    let mut s = ScimTarget.open(&options("generic")).expect("open");
    let e = s
        .configure(vec![HttpResponse::new(
            401,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"bad token","status":"401"}"#,
        )])
        .expect_err("401");
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e}");
    let e = s
        .configure(vec![HttpResponse::new(200, "{\"patch\":")])
        .expect_err("truncated");
    assert!(matches!(e, ConnectorError::Protocol { .. }), "{e}");
    let e = s.configure(vec![HttpResponse::new(404, "")]).expect_err("404");
    assert!(
        matches!(e, ConnectorError::Config { ref option, .. } if option == "base_url"),
        "{e}"
    );
}

#[test]
fn no_patch_when_patch_supported_is_false() {
    let s = session_with("generic", spc(false, false, true));
    let caps = s.capabilities();
    for op in [
        TargetOperation::AddMembers,
        TargetOperation::RemoveMembers,
        TargetOperation::DeactivateUser,
        TargetOperation::RenameGroup,
    ] {
        assert!(!caps.supports(op), "{op} without PATCH");
    }
    assert_eq!(caps.max_members_per_request, 0);
    let reqs = s
        .requests(&TargetChange::UpdateUser {
            app_id: "2819c223".into(),
            etag: None,
            source_key: "src-1".into(),
            user: user(),
        })
        .expect("update");
    // a PUT of the whole resource instead (RFC 7644 §3.5.1)
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, Method::Put);
    assert_eq!(reqs[0].url, "https://example.com/v2/Users/2819c223");
    assert_eq!(body(&reqs[0])["userName"], "bjensen");
    let e = s
        .requests(&TargetChange::AddMembers {
            group_app_id: "g".into(),
            member_app_ids: vec!["u".into()],
        })
        .expect_err("no PATCH");
    assert!(matches!(e, ConnectorError::Unsupported { .. }), "{e}");
}

#[test]
fn lookup_by_user_name_is_the_rfc_7644_3_4_2_filter() {
    let s = session("generic");
    let r = s
        .lookup_request(&Lookup::UserByUserName {
            value: "bjensen".into(),
        })
        .expect("lookup");
    // RFC 7644 §3.4.2: GET /Users?filter=userName%20eq%20%22bjensen%22
    assert_eq!(
        r.url,
        "https://example.com/v2/Users?filter=userName%20eq%20%22bjensen%22"
    );
    assert_eq!(r.method, Method::Get);
    let r = s
        .lookup_request(&Lookup::UserByExternalId {
            value: r#"a "quoted" \ key"#.into(),
        })
        .expect("lookup");
    // externalId eq "a \"quoted\" \\ key", percent-encoded
    assert_eq!(
        r.url,
        "https://example.com/v2/Users?filter=externalId%20eq%20%22a%20%5C%22quoted%5C%22%20%5C%5C%20key%22"
    );
    let r = s
        .lookup_request(&Lookup::GroupByDisplayName {
            value: "Tour Guides".into(),
        })
        .expect("lookup");
    assert_eq!(
        r.url,
        "https://example.com/v2/Groups?filter=displayName%20eq%20%22Tour%20Guides%22&excludedAttributes=members"
    );
}

#[test]
fn lookup_answers_parse_the_rfc_7644_3_4_2_list_response() {
    let s = session("generic");
    let q = Lookup::UserByUserName {
        value: "bjensen".into(),
    };
    // RFC 7644 §3.4.2 response example
    let found = s
        .on_lookup(
            &q,
            HttpResponse::new(
                200,
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":2,
                    "Resources":[{"id":"2819c223-7f76-453a-919d-413861904646","userName":"bjensen"},
                                 {"id":"c75ad752-64ae-4823-840d-ffa80929976c","userName":"jsmith"}]}"#,
            ),
        )
        .expect("parse");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].app_id, "2819c223-7f76-453a-919d-413861904646");
    assert_eq!(found[1].name, "jsmith");
    // no Resources at all when totalResults is 0; 404 means not found (Okta's guide)
    let none = s
        .on_lookup(&q, HttpResponse::new(200, r#"{"totalResults":0}"#))
        .expect("empty");
    assert!(none.is_empty());
    assert!(s
        .on_lookup(&q, HttpResponse::new(404, ""))
        .expect("404")
        .is_empty());
    let e = s
        .on_lookup(&q, HttpResponse::new(200, r#"{"Resources":[{"userName":"x"}]}"#))
        .expect_err("no id");
    assert!(matches!(e, ConnectorError::Protocol { .. }), "{e}");
    let e = s
        .on_lookup(&q, HttpResponse::new(400, r#"{"scimType":"invalidFilter"}"#))
        .expect_err("400");
    assert!(matches!(e, ConnectorError::Protocol { .. }), "{e}");
}

#[test]
fn lookups_honour_filter_supported_and_the_atlassian_group_filter() {
    let s = session_with("generic", spc(true, true, false));
    assert!(!s.capabilities().supports(TargetOperation::Lookup));
    assert!(s
        .lookup_request(&Lookup::UserByUserName { value: "x".into() })
        .is_err());
    // Atlassian: GET /Groups filters on displayName only
    let s = session("atlassian");
    assert!(matches!(
        s.lookup_request(&Lookup::GroupByExternalId { value: "x".into() }),
        Err(ConnectorError::Unsupported { .. })
    ));
    assert!(s
        .lookup_request(&Lookup::GroupByDisplayName { value: "x".into() })
        .is_ok());
}

#[test]
fn create_user_posts_the_resource_and_reads_the_rfc_7644_3_3_answer() {
    let s = session("generic");
    let change = TargetChange::CreateUser {
        source_key: "00u1".into(),
        user: user(),
    };
    let reqs = s.requests(&change).expect("create");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, Method::Post);
    assert_eq!(reqs[0].url, "https://example.com/v2/Users");
    assert_eq!(reqs[0].header("Content-Type"), Some("application/scim+json"));
    assert_eq!(reqs[0].header("If-Match"), None);
    let b = body(&reqs[0]);
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
    assert_eq!(b["externalId"], "00u1");
    assert_eq!(b["name"], json!({"givenName": "Barbara", "familyName": "Jensen"}));
    assert!(b.get("id").is_none(), "a client never sends id (RFC 7643 §3.1)");
    // RFC 7644 §3.3 response example
    let resp = HttpResponse::new(
        201,
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id":"2819c223-7f76-453a-919d-413861904646","externalId":"bjensen",
            "meta":{"resourceType":"User","created":"2011-08-01T21:32:44.882Z",
                    "lastModified":"2011-08-01T21:32:44.882Z",
                    "location":"https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                    "version":"W\/\"e180ee84f0671b1\""},
            "name":{"formatted":"Ms. Barbara J Jensen III","familyName":"Jensen","givenName":"Barbara"},
            "userName":"bjensen"}"#,
    )
    .with_header(
        "Location",
        "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
    )
    .with_header("ETag", r#"W/"e180ee84f0671b1""#);
    assert_eq!(
        s.on_response(&change, resp),
        TargetResult::Created {
            app_id: "2819c223-7f76-453a-919d-413861904646".into(),
            etag: Some(r#"W/"e180ee84f0671b1""#.into())
        }
    );
    // without an ETag header, meta.version is the version
    let resp = HttpResponse::new(201, r#"{"id":"u1","meta":{"version":"W/\"3\""}}"#);
    assert_eq!(
        s.on_response(&change, resp),
        TargetResult::Created {
            app_id: "u1".into(),
            etag: Some(r#"W/"3""#.into())
        }
    );
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(201, r#"{"userName":"bjensen"}"#)),
        TargetResult::Protocol { .. }
    ));
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(201, r#"{"id":"u1","#)),
        TargetResult::Protocol { .. }
    ));
}

#[test]
fn conflicts_keep_the_scim_type_and_tolerate_aws_bodies() {
    let s = session("generic");
    let change = TargetChange::CreateUser {
        source_key: "k".into(),
        user: user(),
    };
    // RFC 7644 §3.3: 409 with scimType "uniqueness"
    let r = s.on_response(
        &change,
        HttpResponse::new(
            409,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"uniqueness","detail":"One or more of the attribute values are already in use or are reserved.","status":"409"}"#,
        ),
    );
    assert!(
        matches!(&r, TargetResult::Conflict { reason: Some(t), .. } if t == "uniqueness"),
        "{r:?}"
    );
    // AWS: no scimType (slashdevops/idp-scim-sync#45)
    let r = s.on_response(
        &change,
        HttpResponse::new(
            409,
            r#"{"schema":["urn:ietf:params:scim:api:messages:2.0:Error"],"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Refused to create a new, duplicate resource.","status":"409","exceptionRequestId":"1","timeStamp":"2"}"#,
        ),
    );
    assert_eq!(
        r,
        TargetResult::Conflict {
            detail: "HTTP 409: Refused to create a new, duplicate resource.".into(),
            reason: None
        }
    );
}

#[test]
fn error_statuses_become_typed_results() {
    let s = session("aws");
    let change = TargetChange::DeleteUser {
        app_id: "u".into(),
        etag: None,
    };
    let r = s.on_response(
        &change,
        HttpResponse::new(
            400,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"invalidValue","detail":"Attribute 'emails' must have exactly one value","status":400}"#,
        ),
    );
    assert_eq!(
        r,
        TargetResult::Invalid {
            attribute: Some("emails".into()),
            reason: Some("invalidValue".into()),
            detail: "HTTP 400: Attribute 'emails' must have exactly one value".into()
        }
    );
    match s.on_response(&change, HttpResponse::new(403, "{}")) {
        TargetResult::Forbidden { needed: Some(n), .. } => assert!(n.contains("IAM Identity Center"), "{n}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(401, "")),
        TargetResult::Unauthorized { .. }
    ));
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(404, "")),
        TargetResult::NotFound { .. }
    ));
    assert_eq!(
        s.on_response(
            &change,
            HttpResponse::new(429, "").with_header("Retry-After", "7")
        ),
        TargetResult::Throttled {
            retry_after_ms: Some(7000),
            detail: "HTTP 429: ".into()
        }
    );
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(503, "")),
        TargetResult::Transient { .. }
    ));
    // RFC 7644 §3.14: a version mismatch is 412
    assert!(matches!(
        s.on_response(
            &change,
            HttpResponse::new(
                412,
                r#"{"status":"412","detail":"Failed to update. Resource has changed on the server"}"#
            )
        ),
        TargetResult::PreconditionFailed { .. }
    ));
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(302, "")),
        TargetResult::Protocol { .. }
    ));
    // PATCH/DELETE may answer 204 without a body (RFC 7644 §3.5.2, §3.6)
    assert_eq!(
        s.on_response(&change, HttpResponse::new(204, "")),
        TargetResult::Updated { etag: None }
    );
    assert!(matches!(
        s.on_response(&change, HttpResponse::new(200, "<html>")),
        TargetResult::Protocol { .. }
    ));
}

#[test]
fn if_match_only_when_etags_are_offered() {
    let change = TargetChange::DeactivateUser {
        app_id: "2819c223".into(),
        etag: Some(r#"W/"a330bc54f0671c9""#.into()),
    };
    let s = session_with("generic", spc(true, true, true));
    let r = &s.requests(&change).expect("deactivate")[0];
    // RFC 7644 §3.14 example: If-Match: W/"e180ee84f0671b1"
    assert_eq!(r.header("If-Match"), Some(r#"W/"a330bc54f0671c9""#));
    assert_eq!(r.method, Method::Patch);
    assert_eq!(
        body(r),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations":[{"op":"replace","path":"active","value":false}]})
    );
    let s = session_with("generic", spc(true, false, true));
    assert_eq!(
        s.requests(&change).expect("deactivate")[0].header("If-Match"),
        None
    );
    assert!(!s.capabilities().etags);
}

#[test]
fn membership_changes_are_patch_add_remove_in_chunks_of_100() {
    let s = session("aws");
    let ids: Vec<String> = (0..250).map(|i| format!("u{i}")).collect();
    let add = TargetChange::AddMembers {
        group_app_id: "e9e30dba-f08f-4109-8486-d5c6a331660a".into(),
        member_app_ids: ids.clone(),
    };
    let reqs = s.requests(&add).expect("add");
    // AWS PatchGroup: at most 100 membership changes per request
    assert_eq!(reqs.len(), 3);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| body(r)["Operations"][0]["value"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(reqs.iter().all(|r| r.method == Method::Patch
        && r.url == "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a"));
    // RFC 7644 §3.5.2.1 shape
    assert_eq!(
        body(&reqs[2])["Operations"][0]["value"][0],
        json!({"value": "u200"})
    );
    let remove = TargetChange::RemoveMembers {
        group_app_id: "g".into(),
        member_app_ids: ids[..101].to_vec(),
    };
    let reqs = s.requests(&remove).expect("remove");
    assert_eq!(reqs.len(), 2);
    let first = body(&reqs[0]);
    assert_eq!(first["Operations"].as_array().map_or(0, Vec::len), 100);
    // RFC 7644 §3.5.2.2 example path: members[value eq "2819c223-..."]
    assert_eq!(
        first["Operations"][0],
        json!({"op":"remove","path":"members[value eq \"u0\"]"})
    );
    // never a remove of path "members" without a filter (that removes all members)
    assert!(first["Operations"]
        .as_array()
        .is_some_and(|ops| ops.iter().all(|o| o["path"] != "members")));
    assert_eq!(s.capabilities().max_members_per_request, 100);
}

#[test]
fn update_is_one_replace_then_removes_of_emptied_attributes() {
    let s = session("generic");
    let mut u = user();
    u.display_name = None;
    u.department = Some("Tour Operations".into());
    let reqs = s
        .requests(&TargetChange::UpdateUser {
            app_id: "2819c223".into(),
            etag: None,
            source_key: "00u1".into(),
            user: u,
        })
        .expect("update");
    let b = body(&reqs[0]);
    let ops = b["Operations"].as_array().expect("ops");
    assert_eq!(ops[0]["op"], "replace");
    assert!(ops[0].get("path").is_none());
    assert_eq!(ops[0]["value"]["externalId"], "00u1");
    // the enterprise extension is nested under its URN (RFC 7643 §4.3); ResourceTypes was 404,
    // so the RFC default (extension present) applies
    assert_eq!(
        ops[0]["value"]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Tour Operations"
    );
    let removed: Vec<&str> = ops[1..].iter().filter_map(|o| o["path"].as_str()).collect();
    assert_eq!(
        removed,
        [
            "displayName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
        ]
    );
    assert!(ops[1..].iter().all(|o| o["op"] == "remove"));
}

#[test]
fn atlassian_does_not_rename_groups() {
    let s = session("atlassian");
    assert!(!s.capabilities().supports(TargetOperation::RenameGroup));
    let e = s
        .requests(&TargetChange::RenameGroup {
            app_id: "g".into(),
            etag: None,
            display_name: "New".into(),
        })
        .expect_err("rename");
    assert!(matches!(e, ConnectorError::Unsupported { .. }), "{e}");
    let s = session("aws");
    let r = &s
        .requests(&TargetChange::RenameGroup {
            app_id: "g".into(),
            etag: None,
            display_name: "New".into(),
        })
        .expect("rename")[0];
    assert_eq!(
        body(r)["Operations"],
        json!([{"op":"replace","path":"displayName","value":"New"}])
    );
}

#[test]
fn groups_are_created_without_members_and_resource_types_are_honoured() {
    let mut s = ScimTarget.open(&options("generic")).expect("open");
    // a service whose ResourceTypes lists Users only, without the enterprise extension
    s.configure(vec![
        spc(true, false, true),
        HttpResponse::new(
            200,
            r#"{"Resources":[{"endpoint":"/Accounts","schema":"urn:ietf:params:scim:schemas:core:2.0:User"}]}"#,
        ),
    ])
    .expect("configure");
    assert!(!s.capabilities().supports(TargetOperation::CreateGroup));
    let mut u = user();
    u.department = Some("x".into());
    let r = &s
        .requests(&TargetChange::CreateUser {
            source_key: "k".into(),
            user: u,
        })
        .expect("create")[0];
    assert_eq!(r.url, "https://example.com/v2/Accounts");
    assert!(body(r)
        .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        .is_none());
    assert!(s
        .requests(&TargetChange::CreateGroup {
            source_key: "k".into(),
            display_name: "G".into()
        })
        .is_err());
    let s = session("generic");
    let r = &s
        .requests(&TargetChange::CreateGroup {
            source_key: "grp-1".into(),
            display_name: "Tour Guides".into(),
        })
        .expect("create")[0];
    assert_eq!(r.url, "https://example.com/v2/Groups");
    assert_eq!(
        body(r),
        json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Tour Guides","externalId":"grp-1"})
    );
}

#[test]
fn options_are_validated() {
    let mut v = BTreeMap::new();
    v.insert("base_url".to_string(), json!("https://x.test/scim/v2/"));
    v.insert("profile".to_string(), json!("slack"));
    let e = ScimTarget
        .open(&Options::from_values(v.clone()).with_secret_set(TOKEN_OPTION))
        .err()
        .expect("bad profile");
    assert!(
        matches!(e, ConnectorError::Config { ref option, .. } if option == "profile"),
        "{e}"
    );
    v.remove("profile");
    let e = ScimTarget
        .open(&Options::from_values(v.clone()))
        .err()
        .expect("no token");
    assert!(
        matches!(e, ConnectorError::Config { ref option, .. } if option == TOKEN_OPTION),
        "{e}"
    );
    // a trailing slash is dropped; the source half gives the runtime a bearer plan and no queries
    let s = ScimConnector
        .open(&Options::from_values(v).with_secret_set(TOKEN_OPTION))
        .expect("open");
    assert_eq!(s.base_urls(), ["https://x.test/scim/v2"]);
    assert!(matches!(s.auth_plan(), AuthPlan::ApiToken { ref scheme, .. } if scheme == "Bearer"));
    assert!(matches!(
        s.query(&Query::ListUsers),
        Err(ConnectorError::Unsupported { .. })
    ));
    assert!(manifest().validate().is_ok());
    assert!(ScimConnector.target().is_some());
}

fn spc_max_results(max: Option<u64>) -> HttpResponse {
    let mut v =
        json!({"patch": {"supported": true}, "filter": {"supported": true}, "etag": {"supported": false}});
    if let Some(m) = max {
        v["filter"]["maxResults"] = json!(m);
    }
    HttpResponse::new(200, v.to_string())
}

fn users_page(total: u64, start: u64, ids: std::ops::Range<u64>) -> HttpResponse {
    let resources: Vec<Value> = ids
        .map(|i| json!({"id": format!("u{i}"), "userName": format!("user{i}")}))
        .collect();
    HttpResponse::new(
        200,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total, "itemsPerPage": resources.len(), "startIndex": start,
            "Resources": resources,
        })
        .to_string(),
    )
}

#[test]
fn listing_pages_with_start_index_and_count_as_rfc_7644_3_4_2_4() {
    let s = session_with("generic", spc_max_results(Some(10)));
    assert!(s.capabilities().can_list);
    let mut l = s.list(ObjectKind::User).expect("list");
    // RFC 7644 §3.4.2.4: GET /Users?startIndex=1&count=10, 1-based; the page size is filter.maxResults
    let r = l.next_request().expect("first");
    assert_eq!(r.url, "https://example.com/v2/Users?startIndex=1&count=10");
    // ... "totalResults":100, "itemsPerPage":10, "startIndex":1
    let objs = l.on_response(users_page(100, 1, 0..10)).expect("page 1");
    assert_eq!(objs.len(), 10);
    assert_eq!(objs[0].name, "user0");
    assert_eq!(
        l.next_request().expect("second").url,
        "https://example.com/v2/Users?startIndex=11&count=10"
    );
    // a service may return fewer than asked: advance by what came back
    l.on_response(users_page(100, 11, 10..13)).expect("short page");
    assert_eq!(
        l.next_request().expect("third").url,
        "https://example.com/v2/Users?startIndex=14&count=10"
    );
    // an empty page before totalResults would loop: a protocol error, and the listing has not advanced
    let e = l.on_response(users_page(100, 14, 0..0)).expect_err("empty page");
    assert!(matches!(e, ConnectorError::Protocol { .. }), "{e}");
    assert_eq!(
        l.next_request().expect("same").url,
        "https://example.com/v2/Users?startIndex=14&count=10"
    );
    // the last page ends the listing
    l.on_response(users_page(20, 14, 13..20)).expect("last page");
    assert!(l.next_request().is_none());
}

#[test]
fn listing_defaults_guards_and_profiles() {
    // no filter.maxResults: the default page of 100; groups without their members
    let s = session_with("generic", spc_max_results(None));
    let mut l = s.list(ObjectKind::Group).expect("list");
    assert_eq!(
        l.next_request().expect("first").url,
        "https://example.com/v2/Groups?startIndex=1&count=100&excludedAttributes=members"
    );
    let e = l
        .on_response(HttpResponse::new(200, r#"{"Resources":[{"id":"g1"}]}"#))
        .expect_err("no totalResults");
    assert!(matches!(e, ConnectorError::Protocol { .. }), "{e}");
    let e = l.on_response(HttpResponse::new(401, "")).expect_err("401");
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e}");
    // totalResults 0 with no Resources: done at once
    l.on_response(HttpResponse::new(200, r#"{"totalResults":0}"#))
        .expect("empty");
    assert!(l.next_request().is_none());
    // a huge maxResults is capped
    let s = session_with("generic", spc_max_results(Some(1_000_000)));
    let mut l = s.list(ObjectKind::User).expect("list");
    assert!(l.next_request().expect("first").url.ends_with("count=1000"));
    // AWS lists at most 50 without startIndex paging: lookups only
    let s = session("aws");
    assert!(!s.capabilities().can_list);
    assert!(matches!(
        s.list(ObjectKind::User),
        Err(ConnectorError::Unsupported { .. })
    ));
}

#[test]
fn attributes_the_schemas_do_not_define_are_not_written() {
    let mut s = ScimTarget.open(&options("generic")).expect("open");
    // a service whose User schema has no displayName and whose enterprise extension has no manager
    // (RFC 7643 §7 attribute definitions; §8.7.1 shape)
    let schemas = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 2,
        "Resources": [
            {"id": "urn:ietf:params:scim:schemas:core:2.0:User", "name": "User", "attributes": [
                {"name": "userName", "type": "string", "mutability": "readWrite"},
                {"name": "name", "type": "complex", "subAttributes": [
                    {"name": "givenName", "type": "string"}, {"name": "familyName", "type": "string"}]},
                {"name": "emails", "type": "complex", "multiValued": true, "subAttributes": [
                    {"name": "value", "type": "string"}, {"name": "type", "type": "string"}]},
                {"name": "active", "type": "boolean"},
                {"name": "groups", "type": "complex", "mutability": "readOnly"}
            ]},
            {"id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "attributes": [
                {"name": "employeeNumber", "type": "string"}, {"name": "department", "type": "string"}
            ]}
        ]
    });
    s.configure(vec![
        spc(true, false, true),
        HttpResponse::new(404, ""),
        HttpResponse::new(200, schemas.to_string()),
    ])
    .expect("configure");
    let mut u = user();
    u.manager_app_id = Some("m1".into());
    u.department = Some("Ops".into());
    let r = &s
        .requests(&TargetChange::CreateUser {
            source_key: "k".into(),
            user: u.clone(),
        })
        .expect("create")[0];
    let b = body(r);
    assert!(b.get("displayName").is_none(), "{b}");
    assert_eq!(b["name"], json!({"givenName": "Barbara", "familyName": "Jensen"}));
    assert_eq!(
        b["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        json!({"department": "Ops"})
    );
    u.display_name = None;
    u.manager_app_id = None;
    let r = &s
        .requests(&TargetChange::UpdateUser {
            app_id: "a".into(),
            etag: None,
            source_key: "k".into(),
            user: u,
        })
        .expect("update")[0];
    let removed: Vec<String> = body(r)["Operations"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .filter_map(|o| o["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // neither displayName nor manager is removed: the service does not have them
    assert_eq!(
        removed,
        ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"]
    );
    // a refused token on /Schemas stops discovery like on the others
    let mut s = ScimTarget.open(&options("generic")).expect("open");
    let e = s
        .configure(vec![
            spc(true, false, true),
            HttpResponse::new(404, ""),
            HttpResponse::new(401, ""),
        ])
        .expect_err("401");
    assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e}");
}

#[test]
fn oauth_client_credentials_instead_of_a_token() {
    let mut v = BTreeMap::new();
    v.insert("base_url".to_string(), json!("https://x.test/scim/v2"));
    v.insert(
        "token_url".to_string(),
        json!("https://login.x.test/oauth2/token"),
    );
    v.insert("client_id".to_string(), json!("usersync"));
    v.insert("scopes".to_string(), json!("scim.read scim.write"));
    let s = ScimConnector
        .open(&Options::from_values(v.clone()).with_secret_set(CLIENT_SECRET_OPTION))
        .expect("open");
    match s.auth_plan() {
        AuthPlan::ClientCredentialsSecret {
            token_url,
            client_id,
            secret_option,
            scopes,
            ..
        } => {
            assert_eq!(token_url, "https://login.x.test/oauth2/token");
            assert_eq!(client_id, "usersync");
            assert_eq!(secret_option, CLIENT_SECRET_OPTION);
            assert_eq!(scopes, ["scim.read", "scim.write"]);
        }
        other => panic!("expected client credentials, got {other:?}"),
    }
    // both kinds of credential: refused, naming the option
    let e = ScimConnector
        .open(
            &Options::from_values(v.clone())
                .with_secret_set(CLIENT_SECRET_OPTION)
                .with_secret_set(TOKEN_OPTION),
        )
        .err()
        .expect("both");
    assert!(e.to_string().contains("either token or"), "{e}");
    // a client secret without its token endpoint
    v.remove("token_url");
    let e = ScimConnector
        .open(&Options::from_values(v).with_secret_set(CLIENT_SECRET_OPTION))
        .err()
        .expect("no token_url");
    assert!(
        matches!(e, ConnectorError::Config { ref option, .. } if option == "token_url"),
        "{e}"
    );
}
