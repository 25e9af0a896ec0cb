//! Unit tests of the Entra facade.

//! Fidelity tests: documented Microsoft Graph / identity platform behaviour.

use super::*;
use crate::{start, EmulatorOptions, FaultConfig, RunningEmulator};

/// A token request form, the expected status, OAuth error and AADSTS code.
type TokenCase = (Vec<(&'static str, String)>, u16, &'static str, u64);

async fn emu_with(users: u32, groups: u32, faults: FaultConfig, ttl: i64) -> RunningEmulator {
    let mut opts = EmulatorOptions::new("entra");
    opts.gen = GenConfig {
        users,
        groups,
        seed: 7,
        ..GenConfig::default()
    };
    opts.faults = faults;
    opts.token_ttl_secs = ttl;
    start(opts).await.expect("start")
}

async fn emu() -> RunningEmulator {
    emu_with(250, 30, FaultConfig::default(), 3600).await
}

/// The tenant GUID of the seed-7 organisations these tests start.
fn tenant(_emu: &RunningEmulator) -> String {
    tenant_id(7)
}

async fn token_resp(emu: &RunningEmulator, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), tenant(emu));
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn token_for(emu: &RunningEmulator, id: &str, secret: &str) -> String {
    let (s, v) = token_resp(
        emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().expect("access_token").to_string()
}

async fn token(emu: &RunningEmulator) -> String {
    let c = emu.credentials().clone();
    token_for(emu, &c.client_id, &c.client_secret).await
}

async fn get(emu: &RunningEmulator, tok: &str, path: &str) -> (u16, HeaderMap, Value) {
    get_h(emu, tok, path, &[]).await
}

async fn get_h(emu: &RunningEmulator, tok: &str, path: &str, hs: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", emu.base_url())
    };
    let mut req = reqwest::Client::new().get(url).bearer_auth(tok);
    for (k, v) in hs {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_answers_aadsts_errors() {
    let emu = emu().await;
    let c = emu.credentials().clone();
    let (s, v) = token_resp(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(
        v.get("refresh_token").is_none(),
        "client credentials has no refresh token"
    );

    let base = [
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut f: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.extend(extra.iter().cloned());
        f
    };
    let cases: Vec<TokenCase> = vec![
        (
            with(&[
                ("client_id", c.client_id.clone()),
                ("client_secret", "wrong".into()),
            ]),
            401,
            "invalid_client",
            7000215,
        ),
        (
            with(&[
                ("client_id", "11111111-2222-3333-4444-555555555555".into()),
                ("client_secret", "x".into()),
            ]),
            400,
            "unauthorized_client",
            700016,
        ),
        (
            with(&[
                ("client_id", expired_app(7).0),
                ("client_secret", expired_app(7).1),
            ]),
            401,
            "invalid_client",
            7000222,
        ),
        (
            with(&[("client_id", c.client_id.clone())]),
            401,
            "invalid_client",
            7000218,
        ),
    ];
    for (form, status, error, code) in cases {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, v) = token_resp(&emu, &f).await;
        assert_eq!(
            (s, v["error"].as_str().unwrap_or_default()),
            (status, error),
            "{v}"
        );
        assert_eq!(v["error_codes"], json!([code]));
        assert!(v["error_description"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("AADSTS{code}:")));
        assert!(v["trace_id"].is_string() && v["correlation_id"].is_string());
    }
    let (s, v) = token_resp(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", "https://graph.microsoft.com/User.Read.All"),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_scope")), "{v}");
    let url = format!("{}/not-a-tenant.example/oauth2/v2.0/token", emu.base_url());
    let r = reqwest::Client::new()
        .post(url)
        .form(&base)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error_codes"], json!([90002]));
    // HTTP Basic client authentication (RFC 6749 2.3.1) is accepted too.
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        emu.base_url(),
        emu.ctx.org.read().await.domain
    );
    let r = reqwest::Client::new()
        .post(url)
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&base)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn certificate_assertion_claims_are_checked() {
    let emu = emu().await;
    let c = emu.credentials().clone();
    let aud = format!("{}/{}/oauth2/v2.0/token", emu.base_url(), tenant(&emu));
    let now = now_unix();
    let jwt = |claims: Value| {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "PS256", "typ": "JWT", "x5t#S256": "abc"}).to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{p}.c2ln")
    };
    let good = jwt(
        json!({"aud": aud, "iss": c.client_id, "sub": c.client_id, "jti": "1", "nbf": now, "exp": now + 600}),
    );
    let expired = jwt(
        json!({"aud": aud, "iss": c.client_id, "sub": c.client_id, "jti": "2", "nbf": now - 900, "exp": now - 300}),
    );
    for (assertion, want) in [(good, 200), (expired, 401)] {
        let (s, v) = token_resp(
            &emu,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(s, want, "{v}");
        if want == 401 {
            assert_eq!(v["error_codes"], json!([700024]));
        }
    }
}

#[tokio::test]
async fn users_default_projection_select_and_paging() {
    let emu = emu().await;
    let t = token(&emu).await;
    // Without $select: the default set only; accountEnabled, department, userType are absent.
    let (s, _, v) = get(&emu, &t, "/v1.0/users").await;
    assert_eq!(s, 200);
    let first = v["value"][0].as_object().expect("user");
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, USER_DEFAULT.to_vec());
    assert_eq!(
        v["value"].as_array().map(Vec::len),
        Some(100),
        "default page size is 100"
    );
    assert!(v["@odata.nextLink"]
        .as_str()
        .is_some_and(|l| l.contains("$skiptoken=")));
    // $select returns exactly the selected properties with Graph's JSON types.
    let (_, _, v) = get(
        &emu,
        &t,
        "/v1.0/users?$select=id,accountEnabled,userType,department,businessPhones&$top=5",
    )
    .await;
    let u = &v["value"][0];
    assert!(u["accountEnabled"].is_boolean() && u["businessPhones"].is_array() && u["id"].is_string());
    assert_eq!(u.as_object().map(|o| o.len()), Some(5));
    assert!(v["@odata.context"].as_str().is_some_and(
        |c| c.ends_with("$metadata#users(id,accountEnabled,userType,department,businessPhones)")
    ));
    // Unknown property, out-of-range $top, $skip.
    let (s, _, v) = get(&emu, &t, "/v1.0/users?$select=id,nope").await;
    assert_eq!((s, code(&v)), (400, "Request_BadRequest"));
    let (s, _, v) = get(&emu, &t, "/v1.0/users?$top=1000").await;
    assert_eq!((s, code(&v)), (400, "Request_BadRequest"));
    let (s, _, _) = get(&emu, &t, "/v1.0/users?$skip=10").await;
    assert_eq!(s, 400);
    // A full walk with $top=999 returns every user once; next links keep $select verbatim.
    let mut seen = BTreeSet::new();
    let mut url = "/v1.0/users?$select=id,userPrincipalName&$top=60".to_string();
    let mut pages = 0;
    loop {
        let (s, _, v) = get(&emu, &t, &url).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        for u in v["value"].as_array().expect("value") {
            assert!(
                seen.insert(u["id"].as_str().expect("id").to_string()),
                "duplicate"
            );
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => {
                assert!(
                    n.contains("$select=id,userPrincipalName&$top=60&$skiptoken="),
                    "{n}"
                );
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (250, 5));
}

#[tokio::test]
async fn expand_manager_caps_pages_and_manager_404_means_none() {
    let emu = emu().await;
    let t = token(&emu).await;
    let (s, _, v) = get(
        &emu,
        &t,
        "/v1.0/users?$select=id&$expand=manager($select=id)&$top=999",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["value"].as_array().map(Vec::len),
        Some(100),
        "$expand caps a page at 100"
    );
    let with_mgr = v["value"]
        .as_array()
        .expect("v")
        .iter()
        .find(|u| u.get("manager").is_some())
        .cloned();
    assert_eq!(
        with_mgr.expect("some user has a manager")["manager"]["@odata.type"],
        "#microsoft.graph.user"
    );
    let (root, managed) = {
        let org = emu.ctx.org.read().await;
        let root = org
            .live_users()
            .find(|u| u.manager.is_none())
            .map(|u| user_id(7, u.ix));
        let managed = org
            .live_users()
            .find(|u| u.manager.is_some())
            .map(|u| (user_id(7, u.ix), u.manager));
        (root.expect("root"), managed.expect("managed"))
    };
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{root}/manager")).await;
    assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
    assert!(v["error"]["innerError"]["request-id"].is_string());
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{}/manager?$select=id", managed.0)).await;
    assert_eq!(s, 200);
    assert_eq!(v["@odata.type"], "#microsoft.graph.user");
    assert_eq!(v["id"], json!(user_id(7, managed.1.expect("m"))));
    let (s, _, v) = get(&emu, &t, "/v1.0/users/00000000-0000-4000-8000-000000000000").await;
    assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_on_every_page() {
    let emu = emu().await;
    let t = token(&emu).await;
    let q = "/v1.0/users?$select=id,mail&$filter=endsWith(mail,'.com')&$count=true&$top=50";
    let (s, _, v) = get(&emu, &t, q).await;
    assert_eq!((s, code(&v)), (400, "Request_UnsupportedQuery"));
    let (s, _, v) = get_h(&emu, &t, q, &[("ConsistencyLevel", "eventual")]).await;
    assert_eq!(s, 200, "{v}");
    let total = v["@odata.count"].as_u64().expect("count on page 1");
    assert!(total > 50);
    let next = v["@odata.nextLink"].as_str().expect("next").to_string();
    let (s, _, v) = get(&emu, &t, &next).await;
    assert_eq!(
        (s, code(&v)),
        (400, "Request_UnsupportedQuery"),
        "the header is not part of the next link"
    );
    let (s, _, v) = get_h(&emu, &t, &next, &[("ConsistencyLevel", "eventual")]).await;
    assert_eq!(s, 200);
    assert!(v.get("@odata.count").is_none(), "count only on the first page");
    // $count=true without the header is silently ignored for basic filters.
    let (s, _, v) = get(
        &emu,
        &t,
        "/v1.0/users?$filter=accountEnabled eq false&$count=true&$select=id,accountEnabled",
    )
    .await;
    assert_eq!(s, 200);
    assert!(v.get("@odata.count").is_none());
    assert!(v["value"]
        .as_array()
        .expect("v")
        .iter()
        .all(|u| u["accountEnabled"] == false));
    let (s, _, v) = get(&emu, &t, "/v1.0/users?$search=\"displayName:ana\"").await;
    assert_eq!((s, code(&v)), (400, "Request_UnsupportedQuery"));
}

#[tokio::test]
async fn auth_and_permission_errors() {
    let emu = emu().await;
    let (s, h, v) = get(&emu, "", "/v1.0/users").await;
    assert_eq!((s, code(&v)), (401, "InvalidAuthenticationToken"));
    assert!(h.get("www-authenticate").is_some());
    let c = emu.credentials().clone();
    let limited = token_for(&emu, &c.limited_client_id, &c.limited_client_secret).await;
    assert_eq!(get(&emu, &limited, "/v1.0/users").await.0, 200);
    let (s, _, v) = get(&emu, &limited, "/v1.0/groups").await;
    assert_eq!((s, code(&v)), (403, "Authorization_RequestDenied"));
    let (s, _, v) = get(&emu, &limited, "/v2.0/users").await;
    assert_eq!((s, code(&v)), (400, "BadRequest"));
    let short = emu_with(20, 5, FaultConfig::default(), 0).await;
    let t = token(&short).await;
    let (s, _, v) = get(&short, &t, "/v1.0/users").await;
    assert_eq!((s, code(&v)), (401, "InvalidAuthenticationToken"));
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("expired")));
}

#[tokio::test]
async fn groups_members_and_memberships_carry_odata_types() {
    let emu = emu_with(300, 40, FaultConfig::default(), 3600).await;
    let t = token(&emu).await;
    let (s, _, v) = get(&emu, &t, "/v1.0/groups?$top=999").await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().map(Vec::len), Some(40));
    let g0 = &v["value"][0];
    assert!(
        g0["groupTypes"].is_array() && g0["securityEnabled"].is_boolean() && g0["displayName"].is_string()
    );
    // A group with a service principal among its members (g % 7 == 3).
    let gid = group_id(7, 3);
    let (s, _, v) = get(
        &emu,
        &t,
        &format!("/v1.0/groups/{gid}/members?$select=id&$top=999"),
    )
    .await;
    assert_eq!(s, 200);
    let types: BTreeSet<String> = v["value"]
        .as_array()
        .expect("v")
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(types.contains("#microsoft.graph.servicePrincipal"), "{types:?}");
    assert!(types.contains("#microsoft.graph.user"));
    // transitiveMembers of a parent includes the nested group and its users.
    let (parent, child, child_users) = {
        let org = emu.ctx.org.read().await;
        let p = org
            .live_groups()
            .find(|g| !g.child_groups.is_empty())
            .expect("nesting");
        let c = p.child_groups[0];
        (
            p.ix,
            c,
            org.group(c).map(|g| g.members.clone()).unwrap_or_default(),
        )
    };
    let (_, _, v) = get(
        &emu,
        &t,
        &format!(
            "/v1.0/groups/{}/transitiveMembers?$select=id&$top=999",
            group_id(7, parent)
        ),
    )
    .await;
    let ids: BTreeSet<String> = v["value"]
        .as_array()
        .expect("v")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(ids.contains(&group_id(7, child)));
    assert!(child_users.iter().all(|u| ids.contains(&user_id(7, *u))));
    let (_, _, v) = get(
        &emu,
        &t,
        &format!("/v1.0/groups/{}/members?$select=id&$top=999", group_id(7, parent)),
    )
    .await;
    assert!(v["value"]
        .as_array()
        .expect("v")
        .iter()
        .any(|m| m["@odata.type"] == "#microsoft.graph.group"));
    // memberOf lists groups and directory roles.
    let holder = emu
        .ctx
        .org
        .read()
        .await
        .roles
        .iter()
        .find_map(|r| r.members.first().copied())
        .expect("role holder");
    let (s, _, v) = get(
        &emu,
        &t,
        &format!("/v1.0/users/{}/memberOf?$select=id", user_id(7, holder)),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v["value"]
        .as_array()
        .expect("v")
        .iter()
        .any(|m| m["@odata.type"] == "#microsoft.graph.directoryRole"));
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/groups/{}", group_id(7, 999))).await;
    assert_eq!((s, code(&v)), (404, "Request_ResourceNotFound"));
}

#[tokio::test]
async fn photos_bytes_and_no_photo_errors() {
    let emu = emu().await;
    let t = token(&emu).await;
    let (with, without, guest) = {
        let org = emu.ctx.org.read().await;
        let w = org
            .live_users()
            .find(|u| u.has_photo && !u.guest)
            .map(|u| user_id(7, u.ix));
        let wo = org
            .live_users()
            .find(|u| !u.has_photo && !u.guest)
            .map(|u| user_id(7, u.ix));
        let g = org.live_users().find(|u| u.guest).map(|u| user_id(7, u.ix));
        (w.expect("with"), wo.expect("without"), g.expect("guest"))
    };
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{with}/photos")).await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["@odata.mediaContentType"], "image/png");
    let r = reqwest::Client::new()
        .get(format!("{}/v1.0/users/{with}/photo/$value", emu.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    assert!(r.bytes().await.expect("bytes").starts_with(b"\x89PNG"));
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{without}/photos")).await;
    assert_eq!((s, code(&v)), (404, "ImageNotFound"));
    let (s, _, v) = get(&emu, &t, &format!("/v1.0/users/{guest}/photo/$value")).await;
    assert_eq!((s, code(&v)), (400, "AuthenticationError"));
}

#[tokio::test]
async fn throttling_and_faults_use_graph_shapes() {
    let emu = emu_with(
        250,
        10,
        FaultConfig {
            rate_limit_per_minute: Some(3),
            ..FaultConfig::default()
        },
        3600,
    )
    .await;
    let t = token(&emu).await;
    for _ in 0..3 {
        assert_eq!(get(&emu, &t, "/v1.0/users?$top=1").await.0, 200);
    }
    let (s, h, v) = get(&emu, &t, "/v1.0/users?$top=1").await;
    assert_eq!((s, code(&v)), (429, "TooManyRequests"));
    assert!(h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some());
    assert!(h.get("x-ms-throttle-scope").is_some() && h.get("x-ms-throttle-information").is_some());

    let emu = emu_with(
        250,
        10,
        FaultConfig {
            expire_token_at_page: Some(2),
            ..FaultConfig::default()
        },
        3600,
    )
    .await;
    let t = token(&emu).await;
    let (_, _, v) = get(&emu, &t, "/v1.0/users?$select=id&$top=100").await;
    let next = v["@odata.nextLink"].as_str().expect("next").to_string();
    let (s, _, v) = get(&emu, &t, &next).await;
    assert_eq!((s, code(&v)), (400, "Directory_ExpiredPageToken"));

    let emu = emu_with(
        50,
        5,
        FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![503],
            start_after: 1,
            max_faults: Some(1),
            ..FaultConfig::default()
        },
        3600,
    )
    .await;
    let t = token(&emu).await;
    let (s, h, v) = get(&emu, &t, "/v1.0/users").await;
    assert_eq!((s, code(&v)), (503, "serviceNotAvailable"));
    assert!(h.get("retry-after").is_some());
    assert_eq!(get(&emu, &t, "/v1.0/users").await.0, 200);
}
