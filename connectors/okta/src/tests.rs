//! The Okta connector's own tests: manifest, options, auth plans, group selection, parsing.

use std::collections::BTreeMap;

use super::*;

fn opts(pairs: &[(&str, serde_json::Value)], secrets: &[&str]) -> Result<OktaSession, ConnectorError> {
    let values: BTreeMap<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let o = Options::validate(
        &manifest(),
        values,
        secrets.iter().map(|s| s.to_string()).collect(),
    )?;
    OktaSession::new(&o)
}

#[test]
fn manifest_is_valid_and_covers_every_seed_row() {
    let m = manifest();
    m.validate().expect("valid manifest");
    let urls: Vec<&str> = m.endpoints.iter().map(|e| e.url.as_str()).collect();
    for seed in [
        "https://{oktaDomain}/api/v1/users",
        "https://{oktaDomain}/api/v1/users/{userid}",
        "https://{oktaDomain}/api/v1/users/{userid}/groups",
        "https://{oktaDomain}/api/v1/groups",
        "https://{oktaDomain}/api/v1/groups/{groupid}/users",
    ] {
        assert!(urls.contains(&seed), "{seed}");
    }
}

#[test]
fn domain_forms_and_mistakes() {
    let s = opts(&[("domain", json!("acme.okta.com"))], &["api_token"]).unwrap();
    assert_eq!(s.base(), "https://acme.okta.com");
    let s = opts(&[("domain", json!("https://acme.okta.com/"))], &["api_token"]).unwrap();
    assert_eq!(s.base(), "https://acme.okta.com");
    for bad in [
        "acme-admin.okta.com",
        "http://acme.okta.com",
        "acme.okta.com/app",
        "{yourOktaDomain}",
        " ",
    ] {
        let err = opts(&[("domain", json!(bad))], &["api_token"]).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Config { option, .. } if option == "domain"),
            "{bad}: {err}"
        );
    }
    let err = opts(&[], &["api_token"]).unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Config { option, .. } if option == "domain"),
        "{err}"
    );
}

#[test]
fn base_url_override_allows_http_only_on_loopback() {
    let s = opts(&[("base_url", json!("http://127.0.0.1:8080/"))], &["api_token"]).unwrap();
    assert_eq!(s.base(), "http://127.0.0.1:8080");
    assert_eq!(s.base_urls(), vec!["http://127.0.0.1:8080".to_string()]);
    let err = opts(&[("base_url", json!("http://okta.internal"))], &["api_token"]).unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Config { option, .. } if option == "base_url"),
        "{err}"
    );
}

#[test]
fn api_token_plan_names_the_secret_only() {
    let s = opts(&[("domain", json!("acme.okta.com"))], &["api_token"]).unwrap();
    assert_eq!(
        s.auth_plan(),
        AuthPlan::ApiToken {
            header: "Authorization".into(),
            scheme: "SSWS".into(),
            secret_option: "api_token".into()
        }
    );
}

#[test]
fn service_app_plan_is_private_key_jwt_with_dpop() {
    let s = opts(
        &[
            ("domain", json!("acme.okta.com")),
            ("client_id", json!("0oa1svc")),
            ("key_id", json!("kid-1")),
        ],
        &["private_key"],
    )
    .unwrap();
    assert_eq!(
        s.auth_plan(),
        AuthPlan::ClientCredentialsAssertion {
            token_url: "https://acme.okta.com/oauth2/v1/token".into(),
            client_id: "0oa1svc".into(),
            key_option: "private_key".into(),
            cert_option: None,
            key_id: Some("kid-1".into()),
            alg: AssertionAlg::RS256,
            scopes: vec![SCOPE_USERS.into(), SCOPE_GROUPS.into()],
            dpop: true,
        }
    );
    let s = opts(
        &[
            ("domain", json!("acme.okta.com")),
            ("client_id", json!("0oa1svc")),
            ("signing_alg", json!("es256")),
            ("dpop", json!(false)),
        ],
        &["private_key"],
    )
    .unwrap();
    assert!(matches!(
        s.auth_plan(),
        AuthPlan::ClientCredentialsAssertion {
            alg: AssertionAlg::ES256,
            dpop: false,
            key_id: None,
            ..
        }
    ));
}

#[test]
fn credential_combinations_are_checked() {
    let d = ("domain", json!("acme.okta.com"));
    let cid = ("client_id", json!("0oa1"));
    let name = |r: Result<OktaSession, ConnectorError>| match r {
        Err(ConnectorError::Config { option, .. }) => option,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(name(opts(std::slice::from_ref(&d), &[])), "api_token");
    assert_eq!(name(opts(&[d.clone(), cid.clone()], &["api_token"])), "api_token");
    assert_eq!(name(opts(&[d.clone(), cid.clone()], &[])), "private_key");
    assert_eq!(
        name(opts(std::slice::from_ref(&d), &["private_key"])),
        "client_id"
    );
    assert_eq!(
        name(opts(
            &[d.clone(), cid, ("signing_alg", json!("PS256"))],
            &["private_key"]
        )),
        "signing_alg"
    );
    assert_eq!(
        name(opts(&[d.clone(), ("page_size", json!(201))], &["api_token"])),
        "page_size"
    );
    assert_eq!(
        name(opts(&[d.clone(), ("page_size", json!(0))], &["api_token"])),
        "page_size"
    );
    assert_eq!(
        name(opts(
            &[d.clone(), ("group_types", json!(["SECURITY"]))],
            &["api_token"]
        )),
        "group_types"
    );
    assert_eq!(
        name(opts(&[d.clone(), ("group_types", json!([]))], &["api_token"])),
        "group_types"
    );
    assert_eq!(
        name(opts(
            &[d.clone(), ("group_names", json!(["ok", " "]))],
            &["api_token"]
        )),
        "group_names"
    );
    for bad in [json!([]), json!(["managerId"]), json!(["id", "employee number"])] {
        assert_eq!(
            name(opts(&[d.clone(), ("manager_match", bad)], &["api_token"])),
            "manager_match"
        );
    }
    let s = opts(
        &[d, ("manager_match", json!(["employeeNumber", "login", "id"]))],
        &["api_token"],
    )
    .unwrap();
    assert_eq!(s.manager_keys, ["attributes.employeeNumber", "username", "id"]);
}

#[test]
fn group_search_expressions() {
    let sel = |types: &[&str], names: &[&str]| GroupSelection {
        types: types.iter().map(|s| s.to_string()).collect(),
        names: names.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(sel(&["OKTA_GROUP", "APP_GROUP", "BUILT_IN"], &[]).search(), None);
    assert_eq!(
        sel(&["OKTA_GROUP", "APP_GROUP"], &[]).search().as_deref(),
        Some(r#"type eq "OKTA_GROUP" or type eq "APP_GROUP""#)
    );
    assert_eq!(
        sel(&["OKTA_GROUP"], &["Sales", r#"R"&D"#]).search().as_deref(),
        Some(r#"(type eq "OKTA_GROUP") and (profile.name eq "Sales" or profile.name eq "R\"&D")"#)
    );
    assert_eq!(
        sel(&["OKTA_GROUP", "APP_GROUP", "BUILT_IN"], &["Everyone"])
            .search()
            .as_deref(),
        Some(r#"profile.name eq "Everyone""#)
    );
}

#[test]
fn client_side_selection_matches_okta_search_semantics() {
    let sel = GroupSelection {
        types: vec!["OKTA_GROUP".into()],
        names: vec!["Staff".into()],
    };
    let g = |t: Option<&str>, name: &str| -> ApiGroup {
        serde_json::from_value(json!({"id": "00g1", "type": t, "profile": {"name": name}})).expect("group")
    };
    assert_eq!(sel.skip_reason(&g(Some("OKTA_GROUP"), "STAFF")), None);
    assert_eq!(sel.skip_reason(&g(None, "staff")), None);
    assert_eq!(
        sel.skip_reason(&g(Some("OKTA_GROUP"), "Staff 2")).as_deref(),
        Some("group_name_not_selected")
    );
    assert_eq!(
        sel.skip_reason(&g(Some("BUILT_IN"), "Staff")).as_deref(),
        Some("group_type:BUILT_IN")
    );
}

#[test]
fn unsupported_operations_say_so() {
    let s = opts(&[("domain", json!("acme.okta.com"))], &["api_token"]).unwrap();
    for q in [
        Query::ListRoles,
        Query::UserPhoto { user_id: "u".into() },
        Query::GroupTransitiveMembers { group_id: "g".into() },
        Query::UserTransitiveGroups { user_id: "u".into() },
        Query::GroupChildren { group_id: "g".into() },
        Query::RoleMembers { role_id: "r".into() },
    ] {
        let op = q.operation();
        assert!(!manifest().supports(op), "{op}");
        match s.query(&q) {
            Err(ConnectorError::Unsupported { operation }) => assert_eq!(operation, op.as_str()),
            Err(other) => panic!("{op}: {other}"),
            Ok(_) => panic!("{op}: unexpectedly supported"),
        }
    }
    for op in Operation::ALL {
        if matches!(op, Operation::Token | Operation::Authorize) {
            continue;
        }
        let supported = manifest().supports(op);
        let q = match op {
            Operation::ListUsers => Query::ListUsers,
            Operation::GetUser => Query::GetUser { user_id: "u".into() },
            Operation::UserManager => Query::UserManager { user_id: "u".into() },
            Operation::UserGroups => Query::UserGroups { user_id: "u".into() },
            Operation::ListGroups => Query::ListGroups,
            Operation::GroupMembers => Query::GroupMembers { group_id: "g".into() },
            _ => continue,
        };
        assert!(supported, "{op} answered but not declared");
        assert!(s.query(&q).is_ok(), "{op}");
    }
}
