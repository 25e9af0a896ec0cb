//! Fidelity tests of the Okta facade against the documented behaviour (Okta management OpenAPI spec,
//! api-notes section B), not against what any connector expects.

mod common;

use common::{get, get_with, links, next_link, okta, walk};
use serde_json::Value;
use usersync_emulator::{FaultConfig, UserStatus};

fn assert_okta_error(v: &Value, code: &str) {
    assert_eq!(v["errorCode"], code, "{v}");
    assert!(v["errorSummary"].is_string(), "{v}");
    assert_eq!(v["errorLink"], code, "{v}");
    assert!(v["errorId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v["errorCauses"].is_array(), "{v}");
}

#[tokio::test]
async fn users_page_size_default_200_and_capped_at_200() {
    let emu = okta(600, 10, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 200);
    let page: Vec<Value> = r.json().await.expect("json");
    assert_eq!(page.len(), 200, "default limit is 200");
    let r = get(&emu, "/api/v1/users?limit=500").await;
    assert_eq!(r.status(), 200);
    let page: Vec<Value> = r.json().await.expect("json");
    assert_eq!(page.len(), 200, "limit above the maximum is capped at 200");
    let r = get(&emu, "/api/v1/users?limit=abc").await;
    assert_eq!(r.status(), 400);
    assert_okta_error(&r.json().await.expect("json"), "E0000001");
}

#[tokio::test]
async fn link_headers_are_separate_values_and_next_keeps_every_parameter() {
    let emu = okta(450, 10, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users?limit=100&search=status%20pr").await;
    let l = links(&r);
    assert_eq!(
        r.headers().get_all("link").iter().count(),
        2,
        "self and next are two header values"
    );
    assert_eq!(l[0].1, "self");
    assert_eq!(l[1].1, "next");
    let next = url::Url::parse(&l[1].0).expect("absolute next URL");
    let q: Vec<(String, String)> = next.query_pairs().into_owned().collect();
    assert!(q.contains(&("limit".into(), "100".into())), "{q:?}");
    assert!(q.contains(&("search".into(), "status pr".into())), "{q:?}");
    assert!(q.iter().any(|(k, v)| k == "after" && !v.is_empty()), "{q:?}");
    assert!(l[0].0.contains("search=status"), "self link is the request");
}

#[tokio::test]
async fn plain_listing_omits_deprovisioned_search_includes_everyone_once() {
    let emu = okta(700, 10, FaultConfig::default()).await;
    let (total, deprovisioned) = {
        let org = emu.org().read().await;
        let total = org.live_users().count();
        let d = org
            .live_users()
            .filter(|u| u.status == UserStatus::Deprovisioned)
            .count();
        (total, d)
    };
    assert!(deprovisioned > 0, "the generator makes deprovisioned users");
    let plain = walk(&emu, "/api/v1/users").await;
    assert_eq!(plain.len(), total - deprovisioned);
    let all = walk(&emu, "/api/v1/users?search=status%20pr&limit=200").await;
    assert_eq!(all.len(), total);
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), total, "no duplicates");
    let filtered = walk(&emu, "/api/v1/users?filter=status%20eq%20%22DEPROVISIONED%22").await;
    assert_eq!(filtered.len(), deprovisioned);
}

#[tokio::test]
async fn user_shape_matches_the_spec() {
    let emu = okta(50, 5, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users?limit=5").await;
    let users: Vec<Value> = r.json().await.expect("json");
    let u = &users[0];
    let id = u["id"].as_str().expect("id");
    assert!(id.starts_with("00u") && id.len() == 20, "{id}");
    let statuses = [
        "ACTIVE",
        "DEPROVISIONED",
        "LOCKED_OUT",
        "PASSWORD_EXPIRED",
        "PROVISIONED",
        "RECOVERY",
        "STAGED",
        "SUSPENDED",
    ];
    assert!(statuses.contains(&u["status"].as_str().expect("status")));
    for f in ["created", "lastUpdated", "statusChanged"] {
        let t = u[f].as_str().expect(f);
        assert!(
            t.len() == 24 && t.ends_with(".000Z") && t.as_bytes()[10] == b'T',
            "{f}={t}"
        );
    }
    for f in ["activated", "lastLogin", "passwordChanged"] {
        assert!(u.get(f).is_some(), "{f} present (string or null)");
    }
    assert!(u["type"]["id"].is_string());
    for f in ["login", "email", "firstName", "lastName"] {
        assert!(u["profile"][f].is_string(), "profile.{f}");
    }
    assert!(u["profile"].get("managerId").is_some());
    assert_eq!(u["credentials"]["provider"]["type"], "OKTA");
    assert_eq!(
        u["_links"]["self"]["href"].as_str(),
        Some(format!("{}/api/v1/users/{id}", emu.http_url).as_str())
    );
    // Projection: only requested fields (id always).
    let r = get(&emu, "/api/v1/users?limit=1&fields=status,profile:(firstName)").await;
    let p: Vec<Value> = r.json().await.expect("json");
    let keys: Vec<&String> = p[0].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(p[0]["profile"].as_object().map(|o| o.len()), Some(1));
    // A user by id and by login.
    let login = u["profile"]["login"].as_str().expect("login").to_string();
    let by_id: Value = get(&emu, &format!("/api/v1/users/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let by_login: Value = get(&emu, &format!("/api/v1/users/{login}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(by_id["id"], by_login["id"]);
}

#[tokio::test]
async fn manager_is_profile_manager_id() {
    let emu = okta(100, 5, FaultConfig::default()).await;
    let (ix, mgr) = {
        let org = emu.org().read().await;
        let u = org
            .live_users()
            .find(|u| u.manager.is_some())
            .expect("a managed user");
        (u.ix, u.manager.expect("manager"))
    };
    let (uid, mid) = {
        let org = emu.org().read().await;
        (
            usersync_emulator::providers::okta::user_id(&org, ix),
            usersync_emulator::providers::okta::user_id(&org, mgr),
        )
    };
    let v: Value = get(&emu, &format!("/api/v1/users/{uid}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["profile"]["managerId"], mid.as_str());
    assert!(v["profile"]["manager"].is_string());
}

#[tokio::test]
async fn errors_have_the_okta_shape() {
    let emu = okta(20, 5, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users/00uDOESNOTEXIST000000").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_okta_error(&v, "E0000007");
    assert!(v["errorSummary"]
        .as_str()
        .is_some_and(|s| s.starts_with("Not found: Resource not found:")));

    let r = common::client()
        .get(format!("{}/api/v1/users", emu.http_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_okta_error(&r.json().await.expect("json"), "E0000011");
    let r = get_with(&emu, "/api/v1/users", "wrong-token").await;
    assert_eq!(r.status(), 401);
    assert_okta_error(&r.json().await.expect("json"), "E0000011");

    let limited = emu.credentials().limited_api_token.clone();
    assert_eq!(get_with(&emu, "/api/v1/users", &limited).await.status(), 200);
    let r = get_with(&emu, "/api/v1/groups", &limited).await;
    assert_eq!(r.status(), 403);
    assert_okta_error(&r.json().await.expect("json"), "E0000006");

    let r = get(&emu, "/api/v1/users?filter=profile.city%20eq%20%22X%22").await;
    assert_eq!(r.status(), 400, "filter supports only a few properties");
    assert_okta_error(&r.json().await.expect("json"), "E0000031");
    let r = get(&emu, "/api/v1/users?search=status%20ne%20%22ACTIVE%22").await;
    assert_eq!(r.status(), 400, "no `ne` operator");
}

#[tokio::test]
async fn rate_limit_headers_on_every_response() {
    let emu = okta(20, 5, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users").await;
    let h = r.headers();
    let num = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let (limit, remaining, reset) = (
        num("x-rate-limit-limit"),
        num("x-rate-limit-remaining"),
        num("x-rate-limit-reset"),
    );
    assert!(limit.is_some() && remaining.is_some(), "{h:?}");
    assert_eq!(remaining, limit.map(|l| l - 1));
    let date = h.get("date").and_then(|v| v.to_str().ok()).expect("Date header");
    let date = httpdate::parse_http_date(date).expect("HTTP date");
    let date = date
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_secs() as i64;
    let reset = reset.expect("reset");
    assert!(
        reset > date && reset <= date + 61,
        "Reset is epoch seconds within the minute: {reset} vs {date}"
    );
}

#[tokio::test]
async fn groups_types_search_stats_and_members() {
    let emu = okta(1200, 60, FaultConfig::default()).await;
    let groups = walk(&emu, "/api/v1/groups?limit=7").await;
    assert_eq!(groups.len(), 60);
    let r = get(&emu, "/api/v1/groups?limit=200&expand=stats").await;
    let gs: Vec<Value> = r.json().await.expect("json");
    let everyone = gs.iter().find(|g| g["type"] == "BUILT_IN").expect("Everyone");
    assert_eq!(everyone["profile"]["name"], "Everyone");
    assert_eq!(everyone["_embedded"]["stats"]["usersCount"], 1200);
    for g in &gs {
        assert!(["OKTA_GROUP", "APP_GROUP", "BUILT_IN"].contains(&g["type"].as_str().expect("type")));
        assert!(g["objectClass"].is_array() && g["lastMembershipUpdated"].is_string());
        assert!(g["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("00g") && i.len() == 20));
    }
    let app: Vec<Value> = get(&emu, "/api/v1/groups?search=type%20eq%20%22APP_GROUP%22")
        .await
        .json()
        .await
        .expect("json");
    assert!(app
        .iter()
        .all(|g| g["type"] == "APP_GROUP" && g["_links"]["source"].is_object()));
    let named: Vec<Value> = get(&emu, "/api/v1/groups?search=profile.name%20eq%20%22everyone%22")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(named.len(), 1, "string values compare case-insensitively");

    // Members: default page 1000.
    let eid = everyone["id"].as_str().expect("id");
    let r = get(&emu, &format!("/api/v1/groups/{eid}/users")).await;
    assert!(next_link(&r).is_some());
    let page: Vec<Value> = r.json().await.expect("json");
    assert_eq!(page.len(), 1000, "members default limit is 1000");
    let members = walk(&emu, &format!("/api/v1/groups/{eid}/users?limit=200")).await;
    assert_eq!(members.len(), 1200);
    // A user's groups.
    let uid = &members[1];
    let ug: Vec<Value> = get(&emu, &format!("/api/v1/users/{uid}/groups"))
        .await
        .json()
        .await
        .expect("json");
    assert!(ug.iter().any(|g| g["id"] == eid));
    // Unknown group.
    let r = get(&emu, "/api/v1/groups/00gNOPE00000000000000/users").await;
    assert_eq!(r.status(), 404);
    assert_okta_error(&r.json().await.expect("json"), "E0000007");
}

#[tokio::test]
async fn mutations_show_up_and_listings_survive_them() {
    let emu = okta(300, 5, FaultConfig::default()).await;
    let r = get(&emu, "/api/v1/users?search=status%20pr&limit=100").await;
    let next = next_link(&r).expect("next");
    let first: Vec<Value> = r.json().await.expect("json");
    {
        let mut org = emu.org().write().await;
        org.remove_user(150);
        org.set_status(200, UserStatus::Suspended);
        org.rename_user(201, "Zoë", "Renamed");
    }
    let mut rest = walk(&emu, next.trim_start_matches(&emu.http_url)).await;
    rest.extend(first.iter().map(|u| u["id"].as_str().expect("id").to_string()));
    assert_eq!(rest.len(), 299);
    let uid = {
        let org = emu.org().read().await;
        usersync_emulator::providers::okta::user_id(&org, 201)
    };
    let v: Value = get(&emu, &format!("/api/v1/users/{uid}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["profile"]["lastName"], "Renamed");
}

#[tokio::test]
async fn https_with_the_private_ca() {
    let mut o = usersync_emulator::EmulatorOptions::new("okta");
    o.gen.users = 300;
    o.tls = true;
    let emu = usersync_emulator::start(o).await.expect("start");
    let ca = std::fs::read(emu.ca_path.as_ref().expect("ca path")).expect("ca file");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .build()
        .expect("client");
    let base = emu.https_url.clone().expect("https url");
    let r = client
        .get(format!("{base}/api/v1/users"))
        .header("Authorization", format!("SSWS {}", emu.credentials().api_token))
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status(), 200);
    assert!(
        next_link(&r).is_some_and(|n| n.starts_with("https://localhost:")),
        "links keep the scheme"
    );
    // A client without the CA refuses the connection.
    let plain = reqwest::Client::new()
        .get(format!("{base}/api/v1/users"))
        .send()
        .await;
    assert!(plain.is_err());
}
