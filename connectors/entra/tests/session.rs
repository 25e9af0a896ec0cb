//! Manifest, option validation, auth plan and token-error mapping.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use usersync_connector_entra::token_error;
use usersync_sdk::{AssertionAlg, AuthPlan, ConnectorError, HttpResponse, Operation, Options, Query};

const TENANT: &str = "b2a1c3d4-0000-4000-8000-00000000c0de";
const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

fn opts(extra: Value, secrets: &[&str]) -> Result<Options, ConnectorError> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    values.insert("tenant_id".into(), json!(TENANT));
    values.insert("client_id".into(), json!(CLIENT));
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        values.insert(k, v);
    }
    let manifest = usersync_connector_entra::connector().manifest();
    Options::validate(&manifest, values, secrets.iter().map(|s| s.to_string()).collect())
}

fn open(extra: Value, secrets: &[&str]) -> Result<Box<dyn usersync_sdk::Session>, ConnectorError> {
    usersync_connector_entra::connector().open(&opts(extra, secrets)?)
}

fn config_option(r: Result<Box<dyn usersync_sdk::Session>, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Config { option, .. }) => option,
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("expected a config error, got a session"),
    }
}

#[test]
fn manifest_declares_every_seed_endpoint_and_is_valid() {
    let m = usersync_connector_entra::connector().manifest();
    m.validate().expect("manifest is valid");
    assert_eq!(m.id, "entra");
    let seed = [
        (
            "https://login.microsoftonline.com/{directoryTenantId}/oauth2/v2.0/token",
            Operation::Token,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users",
            Operation::ListUsers,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users/{userid}",
            Operation::GetUser,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users/{userid}/manager",
            Operation::UserManager,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users/{userid}/memberOf",
            Operation::UserGroups,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users/{userid}/photos",
            Operation::UserPhoto,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/users/{userid}/transitiveMemberOf",
            Operation::UserTransitiveGroups,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/groups",
            Operation::ListGroups,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/groups/{groupid}/members",
            Operation::GroupMembers,
        ),
        (
            "https://graph.microsoft.com/{apiVersion}/groups/{groupid}/transitiveMembers",
            Operation::GroupTransitiveMembers,
        ),
    ];
    for (url, op) in seed {
        assert!(
            m.endpoints.iter().any(|e| e.url == url && e.operation == op),
            "seed endpoint {url} ({op}) missing"
        );
    }
    assert!(m.capabilities.transitive_membership && m.capabilities.manager && m.capabilities.photos);
    assert!(
        m.capabilities.incremental
            && m.supports(usersync_sdk::Operation::UsersDelta)
            && m.supports(usersync_sdk::Operation::GroupsDelta),
        "delta queries (issue 21) are declared"
    );
    // Every operation in the manifest answers a query; the others are Unsupported.
    let s = open(json!({}), &["client_secret"]).expect("open");
    let queries = [
        Query::ListUsers,
        Query::GetUser { user_id: "u".into() },
        Query::UserManager { user_id: "u".into() },
        Query::UserGroups { user_id: "u".into() },
        Query::UserTransitiveGroups { user_id: "u".into() },
        Query::UserPhoto { user_id: "u".into() },
        Query::ListGroups,
        Query::GroupMembers { group_id: "g".into() },
        Query::GroupTransitiveMembers { group_id: "g".into() },
        Query::GroupChildren { group_id: "g".into() },
        Query::ListRoles,
        Query::RoleMembers { role_id: "r".into() },
    ];
    for q in queries {
        let declared = m.supports(q.operation());
        match s.query(&q) {
            Ok(mut c) => {
                assert!(declared, "{q:?} answered but not declared");
                assert!(c.next_request().is_some());
            }
            Err(ConnectorError::Unsupported { .. }) => assert!(!declared, "{q:?} declared but unsupported"),
            Err(e) => panic!("{q:?}: {e}"),
        }
    }
}

#[test]
fn secret_auth_plan_has_tenant_token_url_and_default_scope() {
    let s = open(json!({}), &["client_secret"]).expect("open");
    assert_eq!(
        s.auth_plan(),
        AuthPlan::ClientCredentialsSecret {
            token_url: format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
            client_id: CLIENT.into(),
            secret_option: "client_secret".into(),
            client_auth: usersync_sdk::ClientAuth::FormBody,
            scopes: vec!["https://graph.microsoft.com/.default".into()],
        }
    );
    assert_eq!(
        s.base_urls(),
        vec![
            "https://login.microsoftonline.com".to_string(),
            "https://graph.microsoft.com".to_string()
        ]
    );
}

#[test]
fn certificate_auth_plan_uses_ps256_and_the_certificate_thumbprint() {
    let s = open(
        json!({"graph_base_url": "https://graph.microsoft.us", "login_base_url": "https://login.microsoftonline.us/"}),
        &["client_certificate_key", "client_certificate"],
    )
    .expect("open");
    match s.auth_plan() {
        AuthPlan::ClientCredentialsAssertion {
            token_url,
            key_option,
            cert_option,
            alg,
            scopes,
            ..
        } => {
            assert_eq!(
                token_url,
                format!("https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token")
            );
            assert_eq!(key_option, "client_certificate_key");
            assert_eq!(cert_option.as_deref(), Some("client_certificate"));
            assert_eq!(alg, AssertionAlg::PS256);
            assert_eq!(scopes, vec!["https://graph.microsoft.us/.default".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn emulator_base_urls_on_loopback_are_accepted_and_plain_http_elsewhere_is_not() {
    let s = open(
        json!({"graph_base_url": "http://127.0.0.1:8080", "login_base_url": "http://127.0.0.1:8080"}),
        &["client_secret"],
    )
    .expect("loopback http is fine");
    assert_eq!(
        s.auth_plan().token_url(),
        Some(format!("http://127.0.0.1:8080/{TENANT}/oauth2/v2.0/token").as_str())
    );
    let opt = config_option(open(
        json!({"graph_base_url": "http://graph.example.com"}),
        &["client_secret"],
    ));
    assert_eq!(opt, "graph_base_url");
}

#[test]
fn bad_options_name_the_option() {
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (json!({}), vec![], "client_secret"),
        (
            json!({}),
            vec!["client_secret", "client_certificate_key"],
            "client_secret",
        ),
        (json!({}), vec!["client_certificate_key"], "client_certificate"),
        (json!({"tenant_id": "common"}), vec!["client_secret"], "tenant_id"),
        (
            json!({"tenant_id": "not a tenant"}),
            vec!["client_secret"],
            "tenant_id",
        ),
        (
            json!({"api_version": "v2.0"}),
            vec!["client_secret"],
            "api_version",
        ),
        (json!({"page_size": 1000}), vec!["client_secret"], "page_size"),
        (json!({"page_size": 0}), vec!["client_secret"], "page_size"),
        (
            json!({"extra_user_attributes": ["bad,name"]}),
            vec!["client_secret"],
            "extra_user_attributes",
        ),
        (
            json!({"photo_size": "large"}),
            vec!["client_secret"],
            "photo_size",
        ),
    ];
    for (extra, secrets, want) in cases {
        assert_eq!(
            config_option(open(extra.clone(), &secrets)),
            want,
            "{extra} {secrets:?}"
        );
    }
    // A domain name is a valid tenant.
    open(
        json!({"tenant_id": "contoso.onmicrosoft.com"}),
        &["client_secret"],
    )
    .expect("domain tenant");
}

fn token_response(status: u16, body: Value) -> HttpResponse {
    HttpResponse::new(status, serde_json::to_vec(&body).expect("json"))
}

fn aadsts(error: &str, code: u64, text: &str) -> Value {
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-11-29 10:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-11-29 10:00:00Z",
        "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
        "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd"
    })
}

#[test]
fn token_errors_become_advice() {
    let wrong = token_error(&token_response(
        401,
        aadsts("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '6731de76-14a6-49ae-97bc-6eba6914391e'."),
    ));
    match &wrong {
        ConnectorError::Unauthorized { detail } => {
            assert!(detail.contains("AADSTS7000215"), "{detail}");
            assert!(detail.contains("not its Secret ID"), "{detail}");
            assert!(
                !detail.contains("Correlation ID"),
                "only the first line: {detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    let expired = token_error(&token_response(
        401,
        aadsts(
            "invalid_client",
            7000222,
            "The provided client secret keys for app '6731de76-14a6-49ae-97bc-6eba6914391e' are expired.",
        ),
    ));
    assert!(
        matches!(&expired, ConnectorError::Unauthorized { detail } if detail.contains("expired")),
        "{expired:?}"
    );
    let no_app = token_error(&token_response(
        400,
        aadsts("unauthorized_client", 700016, "Application with identifier '6731de76-14a6-49ae-97bc-6eba6914391e' was not found in the directory 'Contoso'."),
    ));
    assert!(
        matches!(&no_app, ConnectorError::Config { option, .. } if option == "client_id"),
        "{no_app:?}"
    );
    let no_tenant = token_error(&token_response(
        400,
        aadsts("invalid_request", 90002, "Tenant 'x' not found."),
    ));
    assert!(
        matches!(&no_tenant, ConnectorError::Config { option, .. } if option == "tenant_id"),
        "{no_tenant:?}"
    );
    let busy = token_error(&HttpResponse::new(503, "<html>busy</html>"));
    assert!(busy.is_retryable(), "{busy:?}");
}

#[test]
fn session_explains_token_errors_for_the_host() {
    let s = open(json!({}), &["client_secret"]).expect("open");
    let e = s
        .token_error(&token_response(
            401,
            aadsts("invalid_client", 7000215, "Invalid client secret provided."),
        ))
        .expect("entra explains its token errors");
    assert!(e.to_string().contains("Secret ID"), "{e}");
}

/// A delta page that ends the round without `@odata.deltaLink` (and has no `@odata.nextLink`)
/// is a protocol error, never an answer: there is no watermark to store, so the run must not
/// be taken for complete ("nothing changed" would skip changes; issue 21).
#[test]
fn a_delta_page_without_a_delta_link_is_a_protocol_error() {
    let s = open(json!({}), &["client_secret"]).expect("open");
    let since = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc".to_string();
    for (query, body) in [
        (
            Query::UsersDelta {
                since: Some(since.clone()),
            },
            json!({"value": []}),
        ),
        (
            Query::GroupsDelta {
                since: Some(since.replace("users", "groups")),
            },
            json!({"value": []}),
        ),
    ] {
        let mut cursor = s.query(&query).expect("delta query");
        let first = cursor.next_request().expect("a first request");
        assert!(first.url.contains("delta"), "{}", first.url);
        match cursor.on_response(HttpResponse::new(200, serde_json::to_vec(&body).expect("json"))) {
            Err(ConnectorError::Protocol { detail }) => assert!(
                detail.contains("neither @odata.nextLink nor @odata.deltaLink"),
                "{detail}"
            ),
            other => panic!("{query:?}: expected a protocol error, got {other:?}"),
        }
    }
}
