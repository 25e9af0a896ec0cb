//! Unit tests of the Google facade.

//! Documented behaviour of the Directory API and Google's OAuth endpoints (discovery document
//! `admin.directory_v1`, the Directory API "Limits and quotas" page, the UserPhoto reference and
//! the server-to-server OAuth guide), asserted against the facade over HTTP.

use super::*;
use crate::faults::FaultConfig;
use crate::server::{start, EmulatorOptions, RunningEmulator};

const ALL_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly \
                              https://www.googleapis.com/auth/admin.directory.group.readonly \
                              https://www.googleapis.com/auth/admin.directory.group.member.readonly";

async fn emu(users: u32, groups: u32) -> RunningEmulator {
    emu_with(users, groups, |_| {}).await
}

async fn emu_with(users: u32, groups: u32, f: impl FnOnce(&mut EmulatorOptions)) -> RunningEmulator {
    let mut opts = EmulatorOptions::new("google");
    opts.gen = GenConfig {
        users,
        groups,
        seed: 11,
        ..GenConfig::default()
    };
    f(&mut opts);
    start(opts).await.expect("emulator starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn assertion(
    emu: &RunningEmulator,
    iss: &str,
    sub: Option<&str>,
    scope: &str,
    pem: &str,
    lifetime: i64,
) -> String {
    let now = now_unix();
    let mut claims = json!({
        "iss": iss, "scope": scope, "aud": format!("{}/token", emu.http_url),
        "iat": now, "exp": now + lifetime,
    });
    if let Some(s) = sub {
        claims["sub"] = s.into();
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}

async fn token_response(emu: &RunningEmulator, jwt: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/token", emu.http_url))
        .form(&[("grant_type", JWT_BEARER), ("assertion", jwt)])
        .send()
        .await
        .expect("token request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn token_for(emu: &RunningEmulator, sub: Option<&str>) -> String {
    let iss = sa_email(11, "sync");
    let (status, body) =
        token_response(emu, &assertion(emu, &iss, sub, ALL_SCOPES, SA_PRIVATE_KEY, 3600)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0));
    body["access_token"].as_str().expect("access_token").to_string()
}

async fn admin_token(emu: &RunningEmulator) -> String {
    let admin = emu.org().read().await.user(0).map(primary_email).expect("admin");
    token_for(emu, Some(&admin)).await
}

async fn get(emu: &RunningEmulator, token: &str, path_and_query: &str) -> (u16, HeaderMap, Value) {
    let r = client()
        .get(format!("{}{API}{path_and_query}", emu.http_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

async fn walk(emu: &RunningEmulator, token: &str, first: &str, items: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(t) => format!("{first}&pageToken={t}"),
            None => first.to_string(),
        };
        let (s, _, body) = get(emu, token, &url).await;
        assert_eq!(s, 200, "{body}");
        pages += 1;
        out.extend(body[items].as_array().cloned().unwrap_or_default());
        match body["nextPageToken"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => return (out, pages),
        }
        assert!(pages < 1000, "endless listing");
    }
}

#[tokio::test]
async fn users_page_size_default_100_max_500_and_full_walk() {
    let emu = emu(450, 5).await;
    let tok = admin_token(&emu).await;
    let listed = emu
        .org()
        .read()
        .await
        .live_users()
        .filter(|u| is_listed(u))
        .count();
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!(s, 200);
    assert_eq!(body["kind"], "admin#directory#users");
    assert_eq!(
        body["users"].as_array().map(Vec::len),
        Some(100),
        "default maxResults is 100"
    );
    assert!(body["nextPageToken"].is_string());
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&maxResults=500").await;
    assert_eq!(s, 200);
    assert_eq!(body["users"].as_array().map(Vec::len), Some(listed));
    assert!(
        body.get("nextPageToken").is_none(),
        "last page has no nextPageToken"
    );
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&maxResults=501").await;
    assert_eq!(s, 400, "maximum is 500");
    assert_eq!(reason(&body), "invalid");
    assert_eq!(body["error"]["errors"][0]["location"], "maxResults");
    let (users, pages) = walk(&emu, &tok, "/users?customer=my_customer&maxResults=40", "users").await;
    assert_eq!(pages, listed.div_ceil(40));
    let mut ids: Vec<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), listed, "every user exactly once");
    let (s, _, body) = get(&emu, &tok, "/users?maxResults=10").await;
    assert_eq!(
        (s, reason(&body)),
        (400, "badRequest"),
        "customer or domain is required"
    );
}

#[tokio::test]
async fn user_fields_types_status_manager_and_projection() {
    let emu = emu(300, 5).await;
    {
        let mut org = emu.org().write().await;
        org.set_status(5, UserStatus::Suspended);
        org.set_status(6, UserStatus::Deprovisioned);
        org.set_manager(7, Some(0));
    }
    let tok = admin_token(&emu).await;
    let (domain, u7) = {
        let org = emu.org().read().await;
        (org.domain.clone(), user_id(org.seed, 7))
    };
    let (s, _, u) = get(&emu, &tok, &format!("/users/{u7}?projection=full")).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["kind"], "admin#directory#user");
    assert!(u["id"]
        .as_str()
        .is_some_and(|i| i.len() == 21 && i.bytes().all(|b| b.is_ascii_digit())));
    assert!(u["primaryEmail"]
        .as_str()
        .is_some_and(|e| e.ends_with(&format!("@{domain}"))));
    assert!(u["suspended"].is_boolean() && u["archived"].is_boolean() && u["isAdmin"].is_boolean());
    assert!(u["name"]["givenName"].is_string() && u["name"]["familyName"].is_string());
    let admin_email = emu.org().read().await.user(0).map(primary_email);
    assert_eq!(u["relations"][0]["type"], "manager");
    assert_eq!(u["relations"][0]["value"].as_str(), admin_email.as_deref());
    assert!(
        u["customSchemas"].is_object(),
        "projection=full includes custom schemas"
    );
    let (_, _, basic) = get(&emu, &tok, &format!("/users/{u7}")).await;
    assert!(
        basic.get("customSchemas").is_none(),
        "projection=basic (default) excludes custom schemas"
    );
    let email5 = emu
        .org()
        .read()
        .await
        .user(5)
        .map(primary_email)
        .unwrap_or_default();
    let (_, _, u5) = get(&emu, &tok, &format!("/users/{email5}")).await;
    assert_eq!(
        (u5["suspended"].as_bool(), u5["archived"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(u5["suspensionReason"], "ADMIN");
    let id6 = user_id(11, 6);
    let (_, _, u6) = get(&emu, &tok, &format!("/users/{id6}")).await;
    assert_eq!(u6["archived"], true);
    let (s, _, body) = get(&emu, &tok, "/users/100000000000000000000").await;
    assert_eq!((s, reason(&body)), (404, "notFound"));
    assert_eq!(body["error"]["message"], "Resource Not Found: userKey");
    assert_eq!(body["error"]["code"], 404);
}

#[tokio::test]
async fn partial_responses_and_empty_lists() {
    let emu = emu(30, 5).await;
    let tok = admin_token(&emu).await;
    let (_, _, body) = get(
        &emu,
        &tok,
        "/users?customer=my_customer&maxResults=5&fields=nextPageToken,users(id,name/givenName)",
    )
    .await;
    let first = &body["users"][0];
    assert_eq!(first.as_object().map(|o| o.len()), Some(2), "{first}");
    assert_eq!(first["name"].as_object().map(|o| o.len()), Some(1));
    assert!(body["nextPageToken"].is_string());
    assert!(body.get("kind").is_none());
    // A selector without nextPageToken drops the paging token: Google only returns what is selected.
    let (_, _, body) = get(
        &emu,
        &tok,
        "/users?customer=my_customer&maxResults=5&fields=users(id)",
    )
    .await;
    assert!(body.get("nextPageToken").is_none());
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer&fields=users(id").await;
    assert_eq!((s, reason(&body)), (400, "invalidParameter"));
    {
        let mut org = emu.org().write().await;
        let ixs: Vec<u32> = org.live_users().map(|u| u.ix).collect();
        for ix in ixs {
            org.remove_user(ix);
        }
    }
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!(s, 200);
    assert!(
        body.get("users").is_none(),
        "an empty list omits the `users` key: {body}"
    );
}

#[tokio::test]
async fn groups_members_customer_member_and_user_groups() {
    let emu = emu(500, 260).await;
    let tok = admin_token(&emu).await;
    let (_, _, body) = get(&emu, &tok, "/groups?customer=my_customer").await;
    assert_eq!(
        body["groups"].as_array().map(Vec::len),
        Some(200),
        "default and maximum is 200"
    );
    let (_, _, body) = get(&emu, &tok, "/groups?customer=my_customer&maxResults=1000").await;
    assert_eq!(
        body["groups"].as_array().map(Vec::len),
        Some(200),
        "larger requests are capped at 200"
    );
    let g = &body["groups"][0];
    assert!(g["directMembersCount"].is_string(), "int64 is a JSON string: {g}");
    assert!(g["email"].is_string() && g["id"].is_string() && g["adminCreated"].is_boolean());
    let (groups, _) = walk(&emu, &tok, "/groups?customer=my_customer", "groups").await;
    assert_eq!(groups.len(), 260);
    // The built-in "Everyone" group: one CUSTOMER member whose id is the customer id, no email.
    let everyone = group_id(11, 0);
    let (_, _, m) = get(&emu, &tok, &format!("/groups/{everyone}/members")).await;
    assert_eq!(m["kind"], "admin#directory#members");
    assert_eq!(m["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["members"][0]["type"], "CUSTOMER");
    assert_eq!(m["members"][0]["id"].as_str(), Some(customer_id(11).as_str()));
    assert!(m["members"][0].get("email").is_none());
    // "All Staff" (half the users): paged by 200, every direct member once.
    let all_staff = group_id(11, 1);
    let expected = emu
        .org()
        .read()
        .await
        .group(1)
        .map(|g| g.members.len() + g.child_groups.len())
        .unwrap_or(0);
    assert!(expected > 200);
    let (members, pages) = walk(
        &emu,
        &tok,
        &format!("/groups/{all_staff}/members?maxResults=200"),
        "members",
    )
    .await;
    assert_eq!(members.len(), expected);
    assert_eq!(pages, expected.div_ceil(200));
    assert!(members
        .iter()
        .all(|m| m["type"] == "USER" || m["type"] == "GROUP"));
    // A user's direct groups (the seed's "groups for specific user").
    let u1 = user_id(11, 1);
    let direct = emu.org().read().await.groups_of(1).len();
    let (groups, _) = walk(&emu, &tok, &format!("/groups?userKey={u1}"), "groups").await;
    assert_eq!(
        groups.len(),
        direct,
        "direct groups, the built-in group counted once"
    );
    let (s, _, body) = get(&emu, &tok, &format!("/groups?userKey={u1}&customer=my_customer")).await;
    assert_eq!(
        (s, reason(&body)),
        (400, "badRequest"),
        "userKey cannot be combined with customer"
    );
    let (s, _, body) = get(&emu, &tok, "/groups/0000000000000ff/members").await;
    assert_eq!(
        (s, body["error"]["message"].as_str()),
        (404, Some("Resource Not Found: groupKey"))
    );
}

#[tokio::test]
async fn nested_groups_has_member_and_derived_membership() {
    let emu = emu(60, 12).await;
    let tok = admin_token(&emu).await;
    let (parent, child, user) = {
        let mut org = emu.org().write().await;
        let p = org.add_group("Parent", GroupKind::Native);
        let c = org.add_group("Child", GroupKind::Native);
        org.add_child_group(p, c);
        org.add_member(c, 3);
        (p, c, 3)
    };
    let (pid, cid, uid) = (group_id(11, parent), group_id(11, child), user_id(11, user));
    let (_, _, m) = get(&emu, &tok, &format!("/groups/{pid}/members")).await;
    assert_eq!(m["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["members"][0]["type"], "GROUP");
    assert_eq!(m["members"][0]["id"].as_str(), Some(cid.as_str()));
    let (_, _, h) = get(&emu, &tok, &format!("/groups/{pid}/hasMember/{uid}")).await;
    assert_eq!(h["isMember"], true, "hasMember includes nested membership");
    let (_, _, d) = get(
        &emu,
        &tok,
        &format!("/groups/{pid}/members?includeDerivedMembership=true"),
    )
    .await;
    assert!(d["members"]
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m["id"].as_str() == Some(uid.as_str()))));
    let (_, _, up) = get(&emu, &tok, &format!("/groups?userKey={cid}")).await;
    assert_eq!(
        up["groups"][0]["id"].as_str(),
        Some(pid.as_str()),
        "groups of a group (dex's recursion)"
    );
}

#[tokio::test]
async fn photo_is_web_safe_base64_and_404_without_photo() {
    let emu = emu(40, 3).await;
    let tok = admin_token(&emu).await;
    let (with, without) = {
        let org = emu.org().read().await;
        let with = org
            .live_users()
            .find(|u| u.has_photo && is_listed(u))
            .map(|u| u.ix)
            .expect("a photo");
        let without = org
            .live_users()
            .find(|u| !u.has_photo && is_listed(u))
            .map(|u| u.ix)
            .expect("no photo");
        (with, without)
    };
    let (s, _, p) = get(
        &emu,
        &tok,
        &format!("/users/{}/photos/thumbnail", user_id(11, with)),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(p["kind"], "admin#directory#user#photo");
    let data = p["photoData"].as_str().expect("photoData");
    assert!(
        !data.contains('+') && !data.contains('/') && !data.contains('='),
        "web-safe: {data}"
    );
    let std: String = data
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            '*' | '.' => '=',
            c => c,
        })
        .collect();
    let bytes = STANDARD.decode(std).expect("decodes after mapping back");
    assert_eq!(bytes, crate::photo::png_for(11 ^ u64::from(with)));
    let (s, _, body) = get(
        &emu,
        &tok,
        &format!("/users/{}/photos/thumbnail", user_id(11, without)),
    )
    .await;
    assert_eq!((s, reason(&body)), (404, "notFound"));
    assert_eq!(web_safe_base64(b"A", true), "QQ..");
    assert_eq!(web_safe_base64(b"A", false), "QQ**");
    assert_eq!(web_safe_base64(&[0xfb, 0xff, 0xbf], false), "-_-_");
}

#[tokio::test]
async fn credentials_and_permissions_fail_like_google() {
    let emu = emu(20, 3).await;
    let c = client();
    // No token / unknown token.
    let r = c
        .get(format!("{}{API}/users?customer=my_customer", emu.http_url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(reason(&body), "required");
    let (s, h, body) = get(&emu, "ya29.nonsense", "/users?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (401, "authError"));
    assert_eq!(body["error"]["message"], "Invalid Credentials");
    assert!(h.get("www-authenticate").is_some());
    // Wrong key: the signature check fails at the token endpoint.
    let iss = sa_email(11, "sync");
    let admin = emu
        .org()
        .read()
        .await
        .user(0)
        .map(primary_email)
        .unwrap_or_default();
    let (s, body) = token_response(
        &emu,
        &assertion(&emu, &iss, Some(&admin), ALL_SCOPES, WRONG_PRIVATE_KEY, 3600),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // Scopes not delegated to the client: unauthorized_client.
    let limited = sa_email(11, "limited");
    let (s, body) = token_response(
        &emu,
        &assertion(&emu, &limited, Some(&admin), ALL_SCOPES, SA_PRIVATE_KEY, 3600),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("unauthorized_client")));
    // Assertions live at most one hour.
    let (s, body) = token_response(
        &emu,
        &assertion(&emu, &iss, Some(&admin), ALL_SCOPES, SA_PRIVATE_KEY, 7200),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // Unknown subject.
    let (s, body) = token_response(
        &emu,
        &assertion(
            &emu,
            &iss,
            Some("nobody@nowhere.test"),
            ALL_SCOPES,
            SA_PRIVATE_KEY,
            3600,
        ),
    )
    .await;
    assert_eq!(
        (s, body["error_description"].as_str()),
        (400, Some("Invalid email or User ID"))
    );
    // No `sub`: a token, then 403 "Not Authorized to access this resource/api".
    let bare = token_for(&emu, None).await;
    let (s, _, body) = get(&emu, &bare, "/users?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (403, "forbidden"));
    assert_eq!(body["error"]["message"], NOT_AUTHORIZED);
    // A non-administrator subject: the same 403.
    let user = emu
        .org()
        .read()
        .await
        .live_users()
        .find(|u| u.ix > 1 && is_listed(u))
        .map(primary_email)
        .unwrap_or_default();
    let t = token_for(&emu, Some(&user)).await;
    assert_eq!(get(&emu, &t, "/users?customer=my_customer").await.0, 403);
    // A delegated admin with "Users > Read" only: users yes, groups no.
    let helpdesk = emu
        .org()
        .read()
        .await
        .user(1)
        .map(primary_email)
        .unwrap_or_default();
    let t = token_for(&emu, Some(&helpdesk)).await;
    assert_eq!(get(&emu, &t, "/users?customer=my_customer").await.0, 200);
    let (s, _, body) = get(&emu, &t, "/groups?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (403, "forbidden"));
    // Another customer's account.
    let admin_tok = admin_token(&emu).await;
    let (s, _, body) = get(&emu, &admin_tok, "/users?customer=C0other99").await;
    assert_eq!((s, reason(&body)), (403, "forbidden"));
}

#[tokio::test]
async fn authorization_code_refresh_token_and_granular_consent() {
    let emu = emu(20, 3).await;
    let creds = emu.credentials().clone();
    let c = client();
    let redirect = "http://127.0.0.1:9/callback";
    let code_for = |client_id: String, offline: bool| {
        let c = c.clone();
        let base = emu.http_url.clone();
        async move {
            let mut q = vec![
                ("response_type", "code".to_string()),
                ("client_id", client_id),
                ("redirect_uri", redirect.to_string()),
                ("scope", ALL_SCOPES.to_string()),
                ("state", "xyz".to_string()),
            ];
            if offline {
                q.push(("access_type", "offline".to_string()));
            }
            let r = c
                .get(format!("{base}/o/oauth2/v2/auth"))
                .query(&q)
                .send()
                .await
                .expect("authorize");
            assert_eq!(r.status().as_u16(), 302);
            let loc = url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
            assert!(loc.as_str().starts_with(redirect));
            let pairs: HashMap<String, String> = loc.query_pairs().into_owned().collect();
            assert_eq!(pairs.get("state").map(String::as_str), Some("xyz"));
            pairs.get("code").cloned().expect("code")
        }
    };
    let exchange = |code: String, id: String, secret: String| {
        let c = c.clone();
        let base = emu.http_url.clone();
        async move {
            let r = c
                .post(format!("{base}/oauth2/v4/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .expect("exchange");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Without access_type=offline there is no refresh token.
    let code = code_for(creds.client_id.clone(), false).await;
    let (s, body) = exchange(code, creds.client_id.clone(), creds.client_secret.clone()).await;
    assert_eq!(s, 200);
    assert!(body.get("refresh_token").is_none());
    // Offline: refresh token, usable at the seed's v4 token URL.
    let code = code_for(creds.client_id.clone(), true).await;
    let (s, body) = exchange(code.clone(), creds.client_id.clone(), creds.client_secret.clone()).await;
    assert_eq!(s, 200, "{body}");
    let refresh = body["refresh_token"].as_str().expect("refresh_token").to_string();
    // A code is single-use.
    let (s, body) = exchange(code, creds.client_id.clone(), creds.client_secret.clone()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let r = c
        .post(format!("{}/oauth2/v4/token", emu.http_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status().as_u16(), 200);
    let tok = r.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(get(&emu, &tok, "/groups?customer=my_customer").await.0, 200);
    // Wrong client secret.
    let r = c
        .post(format!("{}/oauth2/v4/token", emu.http_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &creds.client_id),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_client");
    // The limited client's consent covers users only: group reads lack the scope.
    let code = code_for(creds.limited_client_id.clone(), true).await;
    let (_, body) = exchange(
        code,
        creds.limited_client_id.clone(),
        creds.limited_client_secret.clone(),
    )
    .await;
    let tok = body["access_token"].as_str().unwrap_or("").to_string();
    assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
    let (s, _, body) = get(&emu, &tok, "/groups?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (403, "insufficientPermissions"));
}

#[tokio::test]
async fn pkce_code_verifier_is_checked() {
    let emu = emu(10, 2).await;
    let creds = emu.credentials().clone();
    let c = client();
    let verifier = "a-long-random-verifier-string-0123456789abcdef";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:9/cb";
    for (sent, ok) in [("wrong-verifier", false), (verifier, true)] {
        let r = c
            .get(format!("{}/o/oauth2/v2/auth", emu.http_url))
            .query(&[
                ("response_type", "code"),
                ("client_id", creds.client_id.as_str()),
                ("redirect_uri", redirect),
                ("scope", ALL_SCOPES),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("authorize");
        let loc = url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code");
        let r = c
            .post(format!("{}/token", emu.http_url))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", creds.client_id.as_str()),
                ("client_secret", creds.client_secret.as_str()),
                ("redirect_uri", redirect),
                ("code_verifier", sent),
            ])
            .send()
            .await
            .expect("exchange");
        if ok {
            assert_eq!(r.status().as_u16(), 200);
        } else {
            assert_eq!(r.status().as_u16(), 400);
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["error_description"], "Invalid code verifier.");
        }
    }
}

#[tokio::test]
async fn throttling_is_403_user_rate_limit_without_retry_after() {
    let emu = emu_with(10, 2, |o| {
        o.faults = FaultConfig {
            rate_limit_per_minute: Some(2),
            ..FaultConfig::default()
        };
    })
    .await;
    let tok = admin_token(&emu).await;
    assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
    assert_eq!(get(&emu, &tok, "/users?customer=my_customer").await.0, 200);
    let (s, h, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (403, "userRateLimitExceeded"));
    assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
    assert!(h.get("retry-after").is_none());
}

#[tokio::test]
async fn token_expiry_gives_invalid_credentials() {
    let emu = emu_with(10, 2, |o| o.token_ttl_secs = 1).await;
    let tok = admin_token(&emu).await;
    tokio::time::sleep(std::time::Duration::from_millis(1001)).await;
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (401, "authError"));
}

#[tokio::test]
async fn faults_take_google_shapes() {
    let emu = emu(120, 3).await;
    let tok = admin_token(&emu).await;
    let one = |statuses: Vec<u16>| FaultConfig {
        error_rate: 1.0,
        error_statuses: statuses,
        max_faults: Some(1),
        ..FaultConfig::default()
    };
    emu.set_faults(one(vec![503])).expect("faults");
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!((s, reason(&body)), (503, "backendError"));
    emu.set_faults(one(vec![502])).expect("faults");
    let (s, _, body) = get(&emu, &tok, "/users?customer=my_customer").await;
    assert_eq!(s, 502);
    assert!(
        body.as_str().is_some_and(|t| t.contains("Error 502")),
        "Google's HTML error page"
    );
    // Paging faults: loop, expired token, empty page with a token.
    emu.set_faults(FaultConfig {
        paging_loop_at_page: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    let (_, _, p1) = get(&emu, &tok, "/users?customer=my_customer&maxResults=10").await;
    let t1 = p1["nextPageToken"].as_str().unwrap_or_default().to_string();
    let (_, _, p2) = get(
        &emu,
        &tok,
        &format!("/users?customer=my_customer&maxResults=10&pageToken={t1}"),
    )
    .await;
    let t2 = p2["nextPageToken"].as_str().unwrap_or_default().to_string();
    let (_, _, p3) = get(
        &emu,
        &tok,
        &format!("/users?customer=my_customer&maxResults=10&pageToken={t2}"),
    )
    .await;
    assert_eq!(
        p3["nextPageToken"], p2["nextPageToken"],
        "the token points back at the same page"
    );
    emu.set_faults(FaultConfig {
        expire_token_at_page: Some(2),
        ..FaultConfig::default()
    })
    .expect("faults");
    let (s, _, body) = get(
        &emu,
        &tok,
        &format!("/users?customer=my_customer&maxResults=10&pageToken={t1}"),
    )
    .await;
    assert_eq!((s, reason(&body)), (400, "invalid"));
    assert_eq!(body["error"]["errors"][0]["location"], "pageToken");
    emu.set_faults(FaultConfig {
        empty_page_at: Some(1),
        ..FaultConfig::default()
    })
    .expect("faults");
    let (_, _, e) = get(&emu, &tok, "/users?customer=my_customer&maxResults=10").await;
    assert!(e.get("users").is_none() && e["nextPageToken"].is_string(), "{e}");
    emu.set_faults(FaultConfig::default()).expect("faults");
    let (s, _, _) = get(&emu, &tok, "/users?customer=my_customer&pageToken=garbage").await;
    assert_eq!(s, 400);
}

#[test]
fn ids_round_trip() {
    for ix in [0u32, 1, 77, 9_999, 1_000_000] {
        assert_eq!(parse_user_id(&user_id(5, ix), 5), Some(ix));
        assert_eq!(parse_user_id(&user_id(5, ix), 6), None);
        assert_eq!(parse_group_id(&group_id(5, ix), 5), Some(ix));
        assert_eq!(group_id(5, ix).len(), 15);
    }
    assert!(customer_id(5).starts_with("C0") && customer_id(5).len() == 9);
}

#[test]
fn fields_parser_follows_google_syntax() {
    let sel = parse_fields("nextPageToken,users(id,name/givenName),users(primaryEmail)").expect("parses");
    let v = json!({"kind": "k", "nextPageToken": "t", "users": [{"id": "1", "primaryEmail": "a@x", "name": {"givenName": "A", "familyName": "B"}, "suspended": false}]});
    let out = apply_fields(v, &sel);
    assert_eq!(
        out,
        json!({"nextPageToken": "t", "users": [{"id": "1", "primaryEmail": "a@x", "name": {"givenName": "A"}}]})
    );
    assert!(parse_fields("users(id").is_err());
    assert!(parse_fields("users,,id").is_err());
}
