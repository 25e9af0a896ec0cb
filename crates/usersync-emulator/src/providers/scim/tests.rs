//! The SCIM service-provider facade, per mode, over real HTTP.

use serde_json::{json, Value};

use crate::{start, EmulatorOptions, FaultConfig, RunningEmulator};

struct Emu {
    emu: RunningEmulator,
    http: reqwest::Client,
}

impl Emu {
    async fn start(provider: &str) -> Emu {
        let emu = start(EmulatorOptions::new(provider)).await.expect("start");
        Emu {
            emu,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.emu.credentials().api_token);
        if let Some(b) = body {
            r = r
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        if let Some(t) = if_match {
            r = r.header("If-Match", t);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, headers, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.send(reqwest::Method::GET, path, None, None).await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self.send(reqwest::Method::POST, path, Some(body), None).await;
        (s, v)
    }

    async fn patch(&self, path: &str, ops: Value) -> (u16, Value) {
        let (s, _, v) = self
            .send(
                reqwest::Method::PATCH,
                path,
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
                ),
                None,
            )
            .await;
        (s, v)
    }

    async fn user(&self, name: &str) -> String {
        let (s, v) = self.post("/Users", user_body(name)).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    async fn group(&self, name: &str) -> String {
        let (s, v) = self
            .post(
                "/Groups",
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().expect("id").to_string()
    }
}

fn user_body(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": format!("ext-{name}"),
        "displayName": format!("{name} display"),
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "active": true,
    })
}

#[tokio::test]
async fn discovery_is_open_and_the_api_needs_the_bearer_token() {
    let e = Emu::start("scim").await;
    let spc: Value = e
        .http
        .get(e.url("/ServiceProviderConfig"))
        .send()
        .await
        .expect("spc")
        .json()
        .await
        .expect("json");
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"]["maxResults"], 200);
    assert_eq!(spc["etag"]["supported"], true);
    let resp = e.http.get(e.url("/Users")).send().await.expect("users");
    assert_eq!(resp.status(), 401);
    let aws = Emu::start("scim-aws").await;
    let (_, spc) = aws.get("/ServiceProviderConfig").await;
    assert_eq!(spc["etag"]["supported"], false);
    assert_eq!(spc["filter"]["maxResults"], 50);
}

#[tokio::test]
async fn generic_create_filter_page_and_uniqueness() {
    let e = Emu::start("scim").await;
    let (s, h, v) = e
        .send(reqwest::Method::POST, "/Users", Some(user_body("bjensen")), None)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(h.get("etag").is_some() && h.get("location").is_some());
    // userName is unique case-insensitively (RFC 7643 §4.1.1): 409 uniqueness
    let (s, v) = e.post("/Users", user_body("BJensen")).await;
    assert_eq!(s, 409);
    assert_eq!(v["scimType"], "uniqueness");
    for n in ["a", "b", "c"] {
        e.user(n).await;
    }
    let (s, v) = e.get("/Users?filter=userName%20eq%20%22BJENSEN%22").await;
    assert_eq!(s, 200);
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["userName"], "bjensen");
    let (_, v) = e.get("/Users?filter=externalId%20eq%20%22ext-b%22").await;
    assert_eq!(v["Resources"][0]["userName"], "b");
    // externalId is caseExact
    let (_, v) = e.get("/Users?filter=externalId%20eq%20%22EXT-B%22").await;
    assert_eq!(v["totalResults"], 0);
    let (s, v) = e.get("/Users?filter=userName%20co%20%22b%22").await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidFilter")));
    // paging: 1-based startIndex, count
    let (_, v) = e.get("/Users?startIndex=2&count=2").await;
    assert_eq!(v["totalResults"], 4);
    assert_eq!(v["itemsPerPage"], 2);
    assert_eq!(v["startIndex"], 2);
    assert_eq!(v["Resources"][0]["userName"], "a");
    let (_, v) = e.get("/Users?count=0").await;
    assert_eq!(
        (
            v["totalResults"].as_u64(),
            v["Resources"].as_array().map(Vec::len)
        ),
        (Some(4), Some(0))
    );
}

#[tokio::test]
async fn generic_invalid_values_and_mutability_are_400() {
    let e = Emu::start("scim").await;
    let mut bad = user_body("x");
    bad["emails"] = json!([{"value": "not-an-address"}]);
    let (s, v) = e.post("/Users", bad).await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidValue")));
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("emails")), "{v}");
    let id = e.user("x").await;
    // Entra's string "False" is not a boolean
    let (s, v) = e
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidValue")));
    let (s, v) = e
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "id", "value": "y"}]),
        )
        .await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("mutability")));
    let (s, v) = e.patch(&format!("/Users/{id}"), json!([{"op": "remove"}])).await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("noTarget")));
    // atomic: the failed requests changed nothing
    let (_, v) = e.get(&format!("/Users/{id}")).await;
    assert_eq!(v["active"], true);
}

#[tokio::test]
async fn generic_patch_with_etags_and_members() {
    let e = Emu::start("scim").await;
    let (_, h, created) = e
        .send(reqwest::Method::POST, "/Users", Some(user_body("u1")), None)
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    let etag = h
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"displayName": "New", "name": {"givenName": "G2"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops"}}}]});
    let (s, _, _) = e
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(ops.clone()),
            Some("W/\"999\""),
        )
        .await;
    assert_eq!(s, 412);
    let (s, h2, v) = e
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(ops),
            Some(&etag),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_ne!(h2.get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));
    assert_eq!(v["displayName"], "New");
    // a complex attribute's sub-attributes not given are left unchanged (RFC 7644 §3.5.2.3)
    assert_eq!(v["name"], json!({"givenName": "G2", "familyName": "Family"}));
    assert_eq!(
        v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Ops"
    );
    let (s, v) = e
        .patch(&format!("/Users/{id}"), json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]))
        .await;
    assert_eq!(s, 200);
    assert!(v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
        .get("department")
        .is_none());

    let u2 = e.user("u2").await;
    let g = e.group("G").await;
    let (s, v) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "add", "path": "members", "value": [{"value": id}, {"value": u2}]}]),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(2));
    let (_, v) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        )
        .await;
    assert_eq!(v["members"], json!([{"value": u2}]));
    let (s, v) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}]),
        )
        .await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidValue")));
    let (s, v) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "replace", "path": "members", "value": [{"value": id}]}]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["members"], json!([{"value": id}]));
    // a deleted user leaves every group (RFC 7644 §3.6)
    let (s, _, _) = e
        .send(reqwest::Method::DELETE, &format!("/Users/{id}"), None, None)
        .await;
    assert_eq!(s, 204);
    let (_, v) = e.get(&format!("/Groups/{g}")).await;
    assert_eq!(v["members"], json!([]));
    assert_eq!(e.get(&format!("/Users/{id}")).await.0, 404);
}

#[tokio::test]
async fn aws_mode_enforces_identity_center_limits() {
    let e = Emu::start("scim-aws").await;
    // required: givenName, familyName, displayName
    let mut bad = user_body("x");
    bad["name"] = json!({"givenName": "G"});
    let (s, v) = e.post("/Users", bad).await;
    assert_eq!(s, 400);
    assert!(v.get("scimType").is_none(), "AWS sends no scimType: {v}");
    let mut two = user_body("y");
    two["emails"] = json!([{"value": "a@x.test", "primary": true}, {"value": "b@x.test"}]);
    assert_eq!(e.post("/Users", two).await.0, 400);
    let mut users = Vec::new();
    for i in 0..101 {
        users.push(e.user(&format!("u{i}")).await);
    }
    // 409 without scimType, with AWS's own fields
    let (s, v) = e.post("/Users", user_body("u0")).await;
    assert_eq!(s, 409);
    assert!(
        v.get("scimType").is_none() && v.get("schema").is_some() && v.get("exceptionRequestId").is_some(),
        "{v}"
    );
    assert_eq!(v["detail"], "Refused to create a new, duplicate resource.");
    let g = e.group("G").await;
    let members = |ids: &[String]| ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>();
    // at most 100 member changes per PATCH
    let (s, _) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "add", "path": "members", "value": members(&users)}]),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "add", "path": "members", "value": members(&users[..100])}]),
        )
        .await;
    assert_eq!((s, &v), (204, &Value::Null));
    // no replace of members, no remove of all members
    let (s, _) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "replace", "path": "members", "value": members(&users[..1])}]),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "remove", "path": "members"}]),
        )
        .await;
    assert_eq!(s, 400);
    // GET answers groups without members
    let (_, v) = e.get(&format!("/Groups/{g}")).await;
    assert_eq!(v["members"], json!([]));
    // filters: userName/externalId for users only
    let (s, _) = e.get("/Users?filter=displayName%20eq%20%22x%22").await;
    assert_eq!(s, 400);
    // group names are unique
    assert_eq!(e.post("/Groups", json!({"displayName": "g"})).await.0, 409);
    // no PUT /Groups/{id}
    let (s, _, _) = e
        .send(
            reqwest::Method::PUT,
            &format!("/Groups/{g}"),
            Some(json!({"displayName": "H"})),
            None,
        )
        .await;
    assert_eq!(s, 405);
    // no ETags offered: If-Match is not checked
    let (s, _, _) = e
        .send(
            reqwest::Method::DELETE,
            &format!("/Users/{}", users[0]),
            None,
            Some("W/\"nope\""),
        )
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn atlassian_mode_refuses_group_renames_and_external_id_group_filters() {
    let e = Emu::start("scim-atlassian").await;
    let g = e.group("jira-users").await;
    let (s, _) = e
        .patch(
            &format!("/Groups/{g}"),
            json!([{"op": "replace", "path": "displayName", "value": "x"}]),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = e.get("/Groups?filter=externalId%20eq%20%22x%22").await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidFilter")));
    let (s, v) = e.get("/Groups?filter=displayName%20eq%20%22JIRA-USERS%22").await;
    assert_eq!((s, v["totalResults"].as_u64()), (200, Some(1)));
    let (s, v) = e.post("/Groups", json!({"displayName": "jira-users"})).await;
    assert_eq!((s, v["scimType"].as_str()), (409, Some("uniqueness")));
    let (_, v) = e.get("/ServiceProviderConfig").await;
    assert_eq!(v["filter"]["maxResults"], 100);
}

#[tokio::test]
async fn injected_faults_answer_scim_error_bodies() {
    let e = Emu::start("scim").await;
    e.emu
        .set_faults(FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![503],
            ..FaultConfig::default()
        })
        .expect("faults");
    let (s, v) = e.get("/Users").await;
    assert_eq!(s, 503);
    assert_eq!(
        v["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(v["status"], "503");
    e.emu
        .set_faults(FaultConfig {
            rate_limit_per_minute: Some(1),
            ..FaultConfig::default()
        })
        .expect("faults");
    let _ = e.get("/Users").await;
    let (s, h, _) = e.send(reqwest::Method::GET, "/Users", None, None).await;
    assert_eq!(s, 429);
    assert!(h.get("retry-after").is_some());
    assert!(
        e.emu
            .ctx
            .stats
            .throttled
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
}

#[tokio::test]
async fn generic_patch_accepts_what_idp_clients_send() {
    let e = Emu::start("scim").await;
    let u = e.user("u").await;
    let g = e.group("G").await;
    let path = format!("/Groups/{g}");
    // Entra without the aadOptscim062020 flag: capitalised ops (ENTRA-SCIM, notes A4/D1)
    let (s, v) = e
        .patch(
            &path,
            json!([{"op": "Add", "path": "members", "value": [{"value": u}]}]),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // RFC 7644 §3.5.2.1: a value already present is no change, and success
    let (s, v) = e
        .patch(
            &path,
            json!([{"op": "add", "path": "members", "value": [{"value": u}]}]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["members"], json!([{"value": u}]));
    // Entra's remove with a value list instead of a path filter
    let (s, v) = e
        .patch(
            &path,
            json!([{"op": "Remove", "path": "members", "value": [{"value": u}]}]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["members"], json!([]));
    // Okta's deactivation: replace without a path
    let (s, v) = e
        .patch(
            &format!("/Users/{u}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
    assert_eq!((s, &v["active"]), (200, &json!(false)));
    // value filters other than in `remove` are refused as unsupported paths
    let (s, v) = e
        .patch(
            &format!("/Users/{u}"),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x@y.z"}]),
        )
        .await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidPath")));
    let (s, v) = e.patch(&path, json!([{"op": "move", "path": "members"}])).await;
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidSyntax")));
}

#[tokio::test]
async fn injected_429s_carry_retry_after_in_every_mode_and_are_counted() {
    for mode in ["scim", "scim-aws", "scim-atlassian"] {
        let e = Emu::start(mode).await;
        e.emu
            .set_faults(FaultConfig {
                error_rate: 1.0,
                error_statuses: vec![429],
                retry_after_secs: 3,
                max_faults: Some(2),
                ..FaultConfig::default()
            })
            .expect("faults");
        let (s, h, v) = e.send(reqwest::Method::GET, "/Users", None, None).await;
        assert_eq!(s, 429, "{mode}");
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("3"),
            "{mode}: delta-seconds"
        );
        assert_eq!(v["status"], "429", "{mode}: a SCIM error body");
        // asked again at once: a second 429, and an arrival inside the first one's wait
        let (s, _, _) = e.send(reqwest::Method::GET, "/Users", None, None).await;
        assert_eq!(s, 429, "{mode}");
        let (s, _, _) = e.send(reqwest::Method::GET, "/Users", None, None).await;
        assert_eq!(s, 200, "{mode}: max_faults reached, healthy again");
        let f = &e.emu.ctx.faults;
        assert_eq!((f.throttles(), f.early_retries()), (2, 2), "{mode}");
        let stats: Value = e
            .http
            .get(format!("{}/_emulator/stats", e.emu.http_url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        assert_eq!(stats["throttle_faults"], 2, "{mode}: {stats}");
        assert_eq!(stats["early_retries"], 2, "{mode}: {stats}");
        assert!(stats["throttled"].as_u64() >= Some(2), "{mode}: {stats}");
    }
}
