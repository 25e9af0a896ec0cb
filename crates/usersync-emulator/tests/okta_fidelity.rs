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
async fn manager_id_is_free_text_as_in_real_profiles() {
    use usersync_emulator::providers::okta::{manager_form, user_id, ManagerForm};
    let emu = okta(400, 5, FaultConfig::default()).await;
    let users: Vec<Value> = walk_values(&emu, "/api/v1/users?search=status%20pr").await;
    let org = emu.org().read().await;
    let mut seen = std::collections::BTreeMap::new();
    for v in &users {
        let u = org
            .live_users()
            .find(|u| user_id(&org, u.ix) == v["id"].as_str().expect("id"))
            .expect("listed user is in the org");
        let got = v["profile"]["managerId"].as_str();
        let Some(m) = u.manager.and_then(|m| org.user(m)) else {
            assert!(got.is_none(), "no manager: managerId null");
            continue;
        };
        let form = manager_form(&org, u).expect("a form");
        *seen.entry(format!("{form:?}")).or_insert(0) += 1;
        let want = match form {
            ManagerForm::OktaId => user_id(&org, m.ix),
            ManagerForm::EmployeeNumber => m.employee_number.clone().expect("number"),
            ManagerForm::Login => {
                if m.guest {
                    m.email.clone()
                } else {
                    m.login.clone()
                }
            }
            ManagerForm::FreeText => m.first_name.clone(),
        };
        assert_eq!(got, Some(want.as_str()), "managerId of {}", u.ix);
        assert!(v["profile"]["manager"].is_string(), "manager is a name");
        if form == ManagerForm::FreeText {
            assert!(
                org.live_users().all(|x| user_id(&org, x.ix) != want
                    && x.login != want
                    && x.employee_number.as_deref() != Some(want.as_str())),
                "free text names no user: {want}"
            );
        }
    }
    assert_eq!(seen.len(), 4, "every form occurs: {seen:?}");
}

/// Every item of a listing, following next links.
async fn walk_values(emu: &usersync_emulator::RunningEmulator, first: &str) -> Vec<Value> {
    let mut url = format!("{}{first}", emu.http_url);
    let mut out = Vec::new();
    loop {
        let r = get(emu, &url).await;
        assert_eq!(r.status(), 200, "GET {url}");
        let next = next_link(&r);
        out.extend(r.json::<Vec<Value>>().await.expect("json array"));
        match next {
            Some(n) => url = n,
            None => return out,
        }
    }
}

#[tokio::test]
async fn profiles_rarely_have_a_display_name_and_carry_typed_custom_attributes() {
    let emu = okta(600, 5, FaultConfig::default()).await;
    let users = walk_values(&emu, "/api/v1/users?search=status%20pr").await;
    let with_name = users
        .iter()
        .filter(|u| u["profile"].get("displayName").is_some())
        .count();
    assert!(
        with_name > 0 && with_name * 3 < users.len(),
        "{with_name} of {}",
        users.len()
    );
    assert!(users.iter().any(|u| u["profile"]["isContractor"].is_boolean()));
    assert!(users.iter().any(|u| u["profile"]["badgeId"].is_u64()));
    assert!(users.iter().any(|u| u["profile"]["clearances"].is_array()));
    let transitioning: Vec<(&str, &str)> = users
        .iter()
        .filter_map(|u| Some((u["status"].as_str()?, u.get("transitioningToStatus")?.as_str()?)))
        .collect();
    assert!(
        transitioning.contains(&("PROVISIONED", "ACTIVE")),
        "{transitioning:?}"
    );
    assert!(
        transitioning.contains(&("ACTIVE", "DEPROVISIONED")),
        "{transitioning:?}"
    );
    assert!(
        transitioning.len() * 10 < users.len(),
        "only users in a lifecycle operation carry it"
    );
}

#[tokio::test]
async fn user_groups_are_paged_at_200_with_next_links() {
    let emu = okta(20, 5, FaultConfig::default()).await;
    let (uid, total) = {
        let mut org = emu.org().write().await;
        for i in 0..250 {
            let g = org.add_group(&format!("Extra {i}"), usersync_emulator::GroupKind::Native);
            org.add_member(g, 3);
        }
        (
            usersync_emulator::providers::okta::user_id(&org, 3),
            org.groups_of(3).len(),
        )
    };
    let r = get(&emu, &format!("/api/v1/users/{uid}/groups")).await;
    assert_eq!(r.status(), 200);
    let next = next_link(&r).expect("a next link after 200 groups");
    assert!(next.contains("after="), "{next}");
    let first: Vec<Value> = r.json().await.expect("json");
    assert_eq!(first.len(), 200, "default page size");
    let all = walk(&emu, &format!("/api/v1/users/{uid}/groups")).await;
    assert_eq!(all.len(), total);
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), total, "no group twice");
}

#[tokio::test]
async fn connections_are_kept_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = okta(20, 3, FaultConfig::default()).await;
    let addr = emu.http_url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let token = emu.credentials().api_token.clone();
    for i in 0..3 {
        let req = format!(
            "GET /api/v1/groups?limit=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: SSWS {token}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        // read one response: headers, then Content-Length bytes
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read");
            assert_eq!(n, 1, "request {i}: the server closed the connection");
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "request {i}: {head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.expect("body");
    }
}

#[tokio::test]
async fn a_group_can_vanish_between_the_listing_and_its_members() {
    let emu = okta(50, 6, FaultConfig::default()).await;
    let groups = walk_values(&emu, "/api/v1/groups").await;
    let victim = &groups[1];
    let (gid, name) = (
        victim["id"].as_str().expect("id").to_string(),
        victim["profile"]["name"].as_str().expect("name").to_string(),
    );
    emu.set_faults(FaultConfig {
        vanish_group: Some(name.clone()),
        ..FaultConfig::default()
    })
    .expect("faults");
    let r = get(&emu, &format!("/api/v1/groups/{gid}/users")).await;
    assert_eq!(r.status(), 404);
    assert_okta_error(&r.json().await.expect("json"), "E0000007");
    let stats: Value = common::client()
        .get(format!("{}/_emulator/stats", emu.http_url))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["objects_vanished"], 1, "{stats}");
    assert!(emu.org().read().await.live_groups().all(|g| g.name != name));
    // every other group still answers
    for g in groups.iter().filter(|g| g["id"] != victim["id"]) {
        let r = get(
            &emu,
            &format!("/api/v1/groups/{}/users", g["id"].as_str().expect("id")),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn try_again_later_is_injectable_as_423_e0000239() {
    let emu = okta(
        20,
        3,
        FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![423],
            max_faults: Some(1),
            ..FaultConfig::default()
        },
    )
    .await;
    let r = get(&emu, "/api/v1/users").await;
    assert_eq!(r.status(), 423);
    assert_okta_error(&r.json().await.expect("json"), "E0000239");
    assert_eq!(get(&emu, "/api/v1/users").await.status(), 200);
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
