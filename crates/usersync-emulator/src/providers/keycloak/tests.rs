//! The Keycloak facade's own tests: auth, paging windows, searches, permissions, roles.

use std::collections::BTreeSet;

use super::*;
use crate::gen::GenConfig;
use crate::server::{start, EmulatorOptions, RunningEmulator};

async fn emu(users: u32, groups: u32) -> RunningEmulator {
    let mut opts = EmulatorOptions::new("keycloak");
    opts.gen = GenConfig {
        users,
        groups,
        seed: 3,
        nesting_depth: 3,
        ..GenConfig::default()
    };
    start(opts).await.expect("emulator")
}

fn token_url(e: &RunningEmulator, realm: &str) -> String {
    format!("{}/realms/{realm}/protocol/openid-connect/token", e.http_url)
}

async fn token_for(e: &RunningEmulator, id: &str, secret: &str) -> String {
    let r = reqwest::Client::new()
        .post(token_url(e, REALM))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["access_token"].as_str().expect("access_token").to_string()
}

async fn full_token(e: &RunningEmulator) -> String {
    let c = e.credentials().clone();
    token_for(e, &c.client_id, &c.client_secret).await
}

async fn get(e: &RunningEmulator, token: &str, path: &str) -> (u16, Value, HeaderMap) {
    let r = reqwest::Client::new()
        .get(format!("{}/admin/realms/{REALM}{path}", e.http_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn token_endpoint_errors_follow_current_keycloak() {
    let e = emu(10, 5).await;
    let c = e.credentials().clone();
    let post = |form: Vec<(&'static str, String)>| {
        let url = token_url(&e, REALM);
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    let unknown = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", "nope".into()),
        ("client_secret", "x".into()),
    ])
    .await;
    assert_eq!(unknown.status(), 401);
    let v: Value = unknown.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    let wrong = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", c.client_id.clone()),
        ("client_secret", "wrong".into()),
    ])
    .await;
    assert_eq!(wrong.status(), 401);
    let v: Value = wrong.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(
        v["error_description"],
        "Invalid client or Invalid client credentials"
    );
    let missing = post(vec![("grant_type", "client_credentials".into())]).await;
    assert_eq!(missing.status(), 400);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    // HTTP Basic client authentication works as well
    let basic = reqwest::Client::new()
        .post(token_url(&e, REALM))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let v: Value = basic.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_i64().is_some_and(|s| s > 0));
    assert!(
        v.get("refresh_token").is_none(),
        "client credentials get no refresh token"
    );
    // password grant: admin-cli in master
    let pw = reqwest::Client::new()
        .post(token_url(&e, MASTER))
        .form(&[
            ("grant_type", "password"),
            ("client_id", ADMIN_CLI),
            ("username", ADMIN_USER),
            ("password", &c.api_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(pw.status(), 200);
    let v: Value = pw.json().await.unwrap();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    let bad_pw = reqwest::Client::new()
        .post(token_url(&e, MASTER))
        .form(&[
            ("grant_type", "password"),
            ("client_id", ADMIN_CLI),
            ("username", ADMIN_USER),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_pw.status(), 401);
    assert_eq!(bad_pw.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let refreshed = reqwest::Client::new()
        .post(token_url(&e, MASTER))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", ADMIN_CLI),
            ("refresh_token", &refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let admin = refreshed.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = get(&e, &admin, "/roles/offline_access").await;
    assert_eq!(s, 200, "the master admin may read everything");
    let nowhere = reqwest::Client::new()
        .post(token_url(&e, "nowhere"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
}

#[tokio::test]
async fn users_page_by_first_and_max_with_default_100_and_full_form() {
    let e = emu(260, 8).await;
    let t = full_token(&e).await;
    let (s, first, _) = get(&e, &t, "/users").await;
    assert_eq!(s, 200);
    assert_eq!(first.as_array().unwrap().len(), 100, "max defaults to 100");
    let u = &first[0];
    for f in [
        "id",
        "username",
        "firstName",
        "lastName",
        "email",
        "emailVerified",
        "enabled",
        "createdTimestamp",
    ] {
        assert!(u.get(f).is_some(), "{f} missing");
    }
    assert!(u["enabled"].is_boolean() && u["createdTimestamp"].is_i64());
    assert!(
        u["attributes"].is_object(),
        "briefRepresentation defaults to false: attributes present"
    );
    assert!(
        u["attributes"]["department"].is_array(),
        "attribute values are lists"
    );
    let (_, brief, _) = get(&e, &t, "/users?briefRepresentation=true&max=5").await;
    assert!(
        brief[0].get("attributes").is_none(),
        "the brief form has no attributes"
    );
    // a full walk returns every user once, in username order, and ends with an empty page
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut first_ix = 0;
    loop {
        let (_, page, _) = get(&e, &t, &format!("/users?first={first_ix}&max=70")).await;
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        first_ix += page.len();
        for u in page {
            ids.push(u["id"].as_str().unwrap().to_string());
            names.push(u["username"].as_str().unwrap().to_string());
        }
    }
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let (_, count, _) = get(&e, &t, "/users/count").await;
    assert_eq!(
        count.as_u64(),
        Some(ids.len() as u64),
        "/users/count is a bare integer"
    );
    let org = e.org().read().await;
    let expected = org
        .live_users()
        .filter(|u| u.status != UserStatus::Deprovisioned)
        .count();
    assert_eq!(
        ids.len(),
        expected,
        "deprovisioned users do not exist in Keycloak"
    );
    drop(org);
    let (s, v, _) = get(&e, &t, "/users?first=abc").await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test]
async fn groups_keycloak23_children_and_members() {
    let e = emu(120, 40).await;
    let t = full_token(&e).await;
    let (_, top, _) = get(&e, &t, "/groups").await;
    let top = top.as_array().unwrap().clone();
    assert!(
        top.iter().all(|g| g["subGroups"] == json!([])),
        "KC 23+: subGroups is not filled"
    );
    assert!(
        top.iter().all(|g| g.get("attributes").is_none()),
        "/groups defaults to the brief form"
    );
    let parent = top
        .iter()
        .find(|g| g["subGroupCount"].as_u64().unwrap_or(0) > 0)
        .expect("a nested group");
    let pid = parent["id"].as_str().unwrap();
    let (_, kids, _) = get(&e, &t, &format!("/groups/{pid}/children")).await;
    let kids = kids.as_array().unwrap().clone();
    assert_eq!(
        kids.len() as u64,
        parent["subGroupCount"].as_u64().unwrap().min(10)
    );
    let k = &kids[0];
    assert!(k["attributes"].is_object(), "/children defaults to the full form");
    assert_eq!(k["parentId"], parent["id"]);
    assert_eq!(
        k["path"],
        json!(format!(
            "{}/{}",
            parent["path"].as_str().unwrap(),
            k["name"].as_str().unwrap()
        ))
    );
    let (_, all, _) = get(&e, &t, "/groups/count").await;
    let (_, tops, _) = get(&e, &t, "/groups/count?top=true").await;
    assert_eq!(tops["count"].as_u64(), Some(top.len() as u64));
    assert!(all["count"].as_u64() > tops["count"].as_u64());
    // members: direct only, default max 100, full form by default
    let (_, big, _) = get(&e, &t, "/groups?search=Everyone").await;
    let everyone = big[0]["id"].as_str().unwrap().to_string();
    let (_, members, _) = get(&e, &t, &format!("/groups/{everyone}/members")).await;
    assert_eq!(members.as_array().unwrap().len(), 100);
    assert!(members[0]["attributes"].is_object());
    let org = e.org().read().await;
    let nested = org
        .live_groups()
        .find(|g| !g.child_groups.is_empty())
        .map(|g| g.ix)
        .unwrap();
    let direct = org.group(nested).unwrap().members.len();
    let gid = group_id(&org, nested);
    drop(org);
    let (_, m, _) = get(&e, &t, &format!("/groups/{gid}/members?max=1000")).await;
    assert!(m.as_array().unwrap().len() <= direct, "members are direct only");
    let (s, v, _) = get(&e, &t, "/groups/00000000-0000-4000-8000-000000000000/members").await;
    assert_eq!((s, v), (404, json!({"error": "Could not find group by id"})));
}

#[tokio::test]
async fn permissions_errors_and_trailing_slash() {
    let e = emu(30, 6).await;
    let c = e.credentials().clone();
    let t = full_token(&e).await;
    let (s, _, h) = get(&e, "not-a-token", "/users").await;
    assert_eq!(s, 401);
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");
    let limited = token_for(&e, &c.limited_client_id, &c.limited_client_secret).await;
    let (s, v, _) = get(&e, &limited, "/groups").await;
    assert_eq!((s, v), (403, json!({"error": "HTTP 403 Forbidden"})));
    let (s, v, _) = get(&e, &limited, "/users").await;
    assert_eq!(
        (s, v),
        (200, json!([])),
        "query-users alone: Keycloak filters every user out"
    );
    let (s, v, _) = get(&e, &t, "/users/00000000-0000-4000-8000-000000000000").await;
    assert_eq!((s, v), (404, json!({"error": "User not found"})));
    let r = reqwest::Client::new()
        .get(format!("{}/admin/realms/nowhere/users", e.http_url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a realm's service account may not look at other realms"
    );
    let (s, v, _) = get(&e, &t, "/users/").await;
    assert_eq!(s, 200);
    assert!(!v.as_array().unwrap().is_empty(), "a trailing slash is accepted");
    // roles: default-roles held directly by every user; users of a role by name
    let (_, roles, _) = get(&e, &t, "/roles").await;
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"default-roles-example") && names.contains(&"offline_access"));
    let (_, holders, _) = get(&e, &t, "/roles/default-roles-example/users?max=1000").await;
    let (_, count, _) = get(&e, &t, "/users/count").await;
    assert_eq!(holders.as_array().unwrap().len() as u64, count.as_u64().unwrap());
    let id = roles[0]["id"].as_str().unwrap();
    let (s, r, _) = get(&e, &t, &format!("/roles-by-id/{id}")).await;
    assert_eq!((s, r["name"].clone()), (200, roles[0]["name"].clone()));
    let (s, v, _) = get(&e, &t, "/roles/nope/users").await;
    assert_eq!((s, v), (404, json!({"error": "Could not find role"})));
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let mut opts = EmulatorOptions::new("keycloak");
    opts.gen = GenConfig {
        users: 5,
        groups: 3,
        ..GenConfig::default()
    };
    opts.token_ttl_secs = 0;
    let e = start(opts).await.unwrap();
    let t = full_token(&e).await;
    let (s, v, _) = get(&e, &t, "/users").await;
    assert_eq!((s, v), (401, json!({"error": "HTTP 401 Unauthorized"})));
}

#[tokio::test]
async fn faults_use_keycloak_and_proxy_shapes() {
    let e = emu(250, 5).await;
    let t = full_token(&e).await;
    e.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![500],
        max_faults: Some(1),
        ..FaultConfig::default()
    })
    .unwrap();
    let (s, v, _) = get(&e, &t, "/users").await;
    assert_eq!(s, 500);
    assert_eq!(v["error"], "unknown_error");
    e.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![503],
        max_faults: Some(1),
        ..FaultConfig::default()
    })
    .unwrap();
    let (s, v, _) = get(&e, &t, "/users").await;
    assert_eq!(s, 503);
    assert!(v.as_str().unwrap().contains("nginx"));
    // an empty page mid-listing: indistinguishable from the end, which is why it is a fault
    e.set_faults(FaultConfig {
        empty_page_at: Some(2),
        ..FaultConfig::default()
    })
    .unwrap();
    let (_, p2, _) = get(&e, &t, "/users?first=100&max=100").await;
    assert_eq!(p2, json!([]));
    let (_, p3, _) = get(&e, &t, "/users?first=200&max=100").await;
    assert!(!p3.as_array().unwrap().is_empty());
    // a proxy's rate limit: 429 with Retry-After, no Keycloak headers
    e.set_faults(FaultConfig {
        rate_limit_per_minute: Some(1),
        ..FaultConfig::default()
    })
    .unwrap();
    let mut throttled = None;
    for _ in 0..3 {
        let (s, _, h) = get(&e, &t, "/users?max=1").await;
        if s == 429 {
            throttled = Some(h);
            break;
        }
    }
    let h = throttled.expect("a 429");
    assert!(h.get("retry-after").is_some());
    assert!(h.get("x-ratelimit-remaining").is_none());
}
