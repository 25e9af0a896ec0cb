//! Integration tests: the SCIM target connector's requests, sent through the real runtime
//! (`ConnectionClient::send`: bearer auth, retries), against the real `scim2-server` (PyPI,
//! pinned in tests/scim/setup.sh) and against the SCIM emulator's modes. The server's own GET
//! answers are the judge.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value};
use usersync_connector_scim::ScimConnector;
use usersync_runtime::{ConnectionClient, Secret};
use usersync_sdk::{
    AppObject, Connector, HttpRequest, Lookup, ObjectKind, Options, TargetChange, TargetResult,
    TargetSession, TargetUser,
};

use crate::support;

/// The command that installs scim2-server where these tests look for it.
const SETUP: &str = "sh tests/scim/setup.sh";
const TOKEN: &str = "scim2-test-token";

/// `scim2-server` from the venv tests/scim/setup.sh creates in the cargo target directory.
fn scim2_server_bin() -> std::path::PathBuf {
    let target = support::profile_dir()
        .parent()
        .map(std::path::PathBuf::from)
        .expect("the profile dir has a parent (the target dir)");
    let bin = target.join("scim2-venv/bin/scim2-server");
    assert!(
        bin.exists(),
        "{} is missing: the SCIM integration tests need the real scim2-server; install it with `{SETUP}` \
         (from the repository root)",
        bin.display()
    );
    bin
}

/// A running scim2-server, killed on drop.
struct Scim2Server {
    child: Child,
    base_url: String,
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_scim2_server() -> Scim2Server {
    let bin = scim2_server_bin();
    // a free port: bind port 0, read it, release it for the server (retried on a lost race)
    for _attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(&bin)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                TOKEN,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e} (install it with `{SETUP}`)", bin.display()));
        let mut server = Scim2Server {
            child,
            base_url: format!("http://127.0.0.1:{port}/v2"),
        };
        // ready when /ServiceProviderConfig answers (it is served without a token)
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http
                .get(format!("{}/ServiceProviderConfig", server.base_url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                eprintln!("scim2-server exited ({status}) on port {port}; retrying on another port");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = server.child.kill();
    }
    panic!("scim2-server did not start (installed by `{SETUP}`)");
}

/// The connector's connection (runtime client) and target session after discovery.
struct Pusher {
    client: ConnectionClient,
    session: Box<dyn TargetSession>,
}

impl Pusher {
    async fn open(base_url: &str, profile: &str, token: &str) -> Pusher {
        let mut values = BTreeMap::new();
        values.insert("base_url".to_string(), json!(base_url));
        values.insert("profile".to_string(), json!(profile));
        let manifest = usersync_connector_scim::manifest();
        let options =
            Options::validate(&manifest, values, vec!["token".to_string()]).expect("options are valid");
        let mut secrets = BTreeMap::new();
        secrets.insert("token".to_string(), Secret::new(token));
        let client = ConnectionClient::new(
            "scim-target",
            Arc::new(ScimConnector),
            options.clone(),
            secrets,
            support::fast_settings(),
        )
        .expect("client");
        let mut session = ScimConnector
            .target()
            .expect("scim is a target")
            .open(&options)
            .expect("target session");
        let mut answers = Vec::new();
        for req in session.discovery() {
            answers.push(client.send(&req).await.expect("discovery request"));
        }
        session.configure(answers).expect("discovery");
        Pusher { client, session }
    }

    async fn apply(&self, change: &TargetChange) -> Vec<TargetResult> {
        let mut out = Vec::new();
        for req in self.session.requests(change).expect("requests") {
            let resp = self.client.send(&req).await.expect("send");
            out.push(self.session.on_response(change, resp));
        }
        out
    }

    async fn apply_one(&self, change: &TargetChange) -> TargetResult {
        let mut r = self.apply(change).await;
        assert_eq!(r.len(), 1, "{change:?} is one request");
        r.remove(0)
    }

    async fn lookup(&self, lookup: Lookup) -> Vec<AppObject> {
        let req = self.session.lookup_request(&lookup).expect("lookup request");
        let resp = self.client.send(&req).await.expect("send lookup");
        self.session.on_lookup(&lookup, resp).expect("lookup answer")
    }

    /// Every object of a kind, through the connector's listing.
    async fn list(&self, kind: ObjectKind) -> Vec<AppObject> {
        let mut listing = self.session.list(kind).expect("listing");
        let mut out = Vec::new();
        while let Some(req) = listing.next_request() {
            let resp = self.client.send(&req).await.expect("send page");
            out.extend(listing.on_response(resp).expect("page"));
        }
        out
    }

    /// The server's own answer to `GET <base><path>`.
    async fn get(&self, base_url: &str, path: &str) -> Value {
        let resp = self
            .client
            .send(&HttpRequest::get(format!("{base_url}{path}")))
            .await
            .expect("GET");
        assert_eq!(resp.status, 200, "GET {path}: {}", resp.body_snippet(300));
        serde_json::from_slice(&resp.body).expect("JSON")
    }
}

fn created(r: TargetResult) -> String {
    match r {
        TargetResult::Created { app_id, .. } => app_id,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn person(user_name: &str) -> TargetUser {
    TargetUser {
        user_name: user_name.into(),
        display_name: Some("Barbara Jensen".into()),
        given_name: Some("Barbara".into()),
        family_name: Some("Jensen".into()),
        email: Some(format!("{user_name}@example.com")),
        active: true,
        employee_number: Some("701984".into()),
        department: None,
        manager_app_id: None,
    }
}

/// Create, find by filter, update, adopt on conflict, add to a group, deactivate, remove from the
/// group; after each step the server's own GET is compared.
async fn create_find_update_group(base: &str, profile: &str, token: &str) {
    let p = Pusher::open(base, profile, token).await;
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert!(p
        .lookup(Lookup::UserByUserName {
            value: "bjensen".into()
        })
        .await
        .is_empty());

    let user_id = created(
        p.apply_one(&TargetChange::CreateUser {
            source_key: "00u-src-1".into(),
            user: person("bjensen"),
        })
        .await,
    );
    let server = p.get(base, &format!("/Users/{user_id}")).await;
    assert_eq!(server["userName"], "bjensen");
    assert_eq!(server["externalId"], "00u-src-1");
    assert_eq!(server["name"]["familyName"], "Jensen");
    assert_eq!(server["emails"][0]["value"], "bjensen@example.com");
    assert_eq!(server[ent]["employeeNumber"], "701984");

    // found by filter: userName case-insensitively, externalId exactly (with a quote to escape)
    let found = p
        .lookup(Lookup::UserByUserName {
            value: "BJensen".into(),
        })
        .await;
    assert_eq!(
        found.iter().map(|o| o.app_id.as_str()).collect::<Vec<_>>(),
        [user_id.as_str()]
    );
    let found = p
        .lookup(Lookup::UserByExternalId {
            value: "00u-src-1".into(),
        })
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].external_id.as_deref(), Some("00u-src-1"));
    assert!(p
        .lookup(Lookup::UserByExternalId {
            value: "00u-src-1\" or \"".into()
        })
        .await
        .is_empty());

    // a second create of the same userName is a conflict; the lookup adopts the existing one
    let again = p
        .apply_one(&TargetChange::CreateUser {
            source_key: "00u-src-1".into(),
            user: person("BJENSEN"),
        })
        .await;
    assert!(matches!(again, TargetResult::Conflict { .. }), "{again:?}");
    let adopted = p
        .lookup(Lookup::UserByUserName {
            value: "BJENSEN".into(),
        })
        .await;
    assert_eq!(adopted[0].app_id, user_id);
    let listing = p.get(base, "/Users").await;
    assert_eq!(listing["totalResults"], 1, "no duplicate: {listing}");
    let listed = p.list(ObjectKind::User).await;
    assert_eq!(
        listed.iter().map(|o| o.app_id.as_str()).collect::<Vec<_>>(),
        [user_id.as_str()]
    );

    // update: new display name, a department, no employee number any more
    let mut changed = person("bjensen");
    changed.display_name = Some("Babs Jensen".into());
    changed.department = Some("Tour Operations".into());
    changed.employee_number = None;
    let etag = adopted[0].etag.clone();
    let r = p
        .apply_one(&TargetChange::UpdateUser {
            app_id: user_id.clone(),
            etag,
            source_key: "00u-src-1".into(),
            user: changed,
        })
        .await;
    assert!(matches!(r, TargetResult::Updated { .. }), "{r:?}");
    let server = p.get(base, &format!("/Users/{user_id}")).await;
    assert_eq!(server["displayName"], "Babs Jensen");
    assert_eq!(server[ent]["department"], "Tour Operations");
    assert!(server[ent].get("employeeNumber").is_none(), "{server}");
    assert_eq!(server["name"]["givenName"], "Barbara");

    // group with the user as member
    let group_id = created(
        p.apply_one(&TargetChange::CreateGroup {
            source_key: "grp-src-1".into(),
            display_name: "Tour Guides".into(),
        })
        .await,
    );
    let found = p
        .lookup(Lookup::GroupByDisplayName {
            value: "Tour Guides".into(),
        })
        .await;
    assert_eq!(found[0].app_id, group_id);
    let r = p
        .apply(&TargetChange::AddMembers {
            group_app_id: group_id.clone(),
            member_app_ids: vec![user_id.clone()],
        })
        .await;
    assert!(r.iter().all(TargetResult::is_success), "{r:?}");
    let group = p.get(base, &format!("/Groups/{group_id}")).await;
    assert_eq!(group["displayName"], "Tour Guides");
    assert_eq!(group["externalId"], "grp-src-1");
    let members: Vec<&str> = group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["value"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(members, [user_id.as_str()]);

    // deactivate with the current version; a stale version is refused (412)
    let current = p.get(base, &format!("/Users/{user_id}")).await;
    let version = current["meta"]["version"].as_str().map(str::to_string);
    let stale = p
        .apply_one(&TargetChange::DeactivateUser {
            app_id: user_id.clone(),
            etag: Some("W/\"stale\"".into()),
        })
        .await;
    assert!(
        matches!(stale, TargetResult::PreconditionFailed { .. }),
        "{stale:?}"
    );
    let r = p
        .apply_one(&TargetChange::DeactivateUser {
            app_id: user_id.clone(),
            etag: version,
        })
        .await;
    assert!(r.is_success(), "{r:?}");
    assert_eq!(p.get(base, &format!("/Users/{user_id}")).await["active"], false);

    let r = p
        .apply(&TargetChange::RemoveMembers {
            group_app_id: group_id.clone(),
            member_app_ids: vec![user_id.clone()],
        })
        .await;
    assert!(r.iter().all(TargetResult::is_success), "{r:?}");
    let group = p.get(base, &format!("/Groups/{group_id}")).await;
    assert!(
        group
            .get("members")
            .is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
        "{group}"
    );
}

#[tokio::test]
async fn scim2_server_create_find_update_and_group_membership() {
    let server = start_scim2_server().await;
    create_find_update_group(&server.base_url, "generic", TOKEN).await;
}

#[tokio::test]
async fn scim2_server_wrong_token_stops_at_discovery() {
    let server = start_scim2_server().await;
    let mut values = BTreeMap::new();
    values.insert("base_url".to_string(), json!(server.base_url));
    let options = Options::validate(&usersync_connector_scim::manifest(), values, vec!["token".into()])
        .expect("options");
    let mut secrets = BTreeMap::new();
    secrets.insert("token".to_string(), Secret::new("wrong"));
    let client = ConnectionClient::new(
        "scim-target",
        Arc::new(ScimConnector),
        options.clone(),
        secrets,
        support::fast_settings(),
    )
    .expect("client");
    let mut session = ScimConnector
        .target()
        .expect("target")
        .open(&options)
        .expect("session");
    let mut answers = Vec::new();
    // scim2-server serves /ServiceProviderConfig without a token; /ResourceTypes needs one
    for req in session.discovery() {
        answers.push(client.send(&req).await.expect("sent"));
    }
    let e = session
        .configure(answers)
        .expect_err("a refused token stops discovery");
    assert!(
        matches!(e, usersync_sdk::ConnectorError::Unauthorized { .. }),
        "{e}"
    );
}

#[tokio::test]
async fn emulator_generic_mode_create_find_update_and_group_membership() {
    let emu = support::start_emulator("scim", 0, 0, 1).await;
    let token = emu.credentials().api_token.clone();
    create_find_update_group(emu.base_url(), "generic", &token).await;
}

#[tokio::test]
async fn emulator_aws_mode_accepts_the_connectors_chunked_membership() {
    let emu = support::start_emulator("scim-aws", 0, 0, 1).await;
    let token = emu.credentials().api_token.clone();
    let base = emu.base_url().to_string();
    let p = Pusher::open(&base, "aws", &token).await;
    let mut ids = Vec::new();
    for i in 0..150 {
        let mut u = person(&format!("user{i}"));
        u.employee_number = None;
        ids.push(created(
            p.apply_one(&TargetChange::CreateUser {
                source_key: format!("src-{i}"),
                user: u,
            })
            .await,
        ));
    }
    let g = created(
        p.apply_one(&TargetChange::CreateGroup {
            source_key: "g".into(),
            display_name: "AWS-ish".into(),
        })
        .await,
    );
    let before = emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst);
    let r = p
        .apply(&TargetChange::AddMembers {
            group_app_id: g.clone(),
            member_app_ids: ids.clone(),
        })
        .await;
    // two PATCHes (100 + 50), both accepted by a service that refuses more than 100
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(TargetResult::is_success), "{r:?}");
    assert_eq!(
        emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst) - before,
        2
    );
    // AWS answers groups without members: membership is checked from the user side instead
    let group = p.get(&base, &format!("/Groups/{g}")).await;
    assert_eq!(group["members"], json!([]));
    let r = p
        .apply(&TargetChange::RemoveMembers {
            group_app_id: g,
            member_app_ids: ids,
        })
        .await;
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(TargetResult::is_success), "{r:?}");
    // AWS's 409 has no scimType: still a conflict
    let again = p
        .apply_one(&TargetChange::CreateUser {
            source_key: "src-0".into(),
            user: person("user0"),
        })
        .await;
    assert!(
        matches!(again, TargetResult::Conflict { reason: None, .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn emulator_listing_reads_every_page() {
    let emu = support::start_emulator("scim", 0, 0, 1).await;
    let token = emu.credentials().api_token.clone();
    let base = emu.base_url().to_string();
    let p = Pusher::open(&base, "generic", &token).await;
    for i in 0..205 {
        let mut u = person(&format!("user{i:03}"));
        u.employee_number = None;
        created(
            p.apply_one(&TargetChange::CreateUser {
                source_key: format!("src-{i}"),
                user: u,
            })
            .await,
        );
    }
    let before = emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst);
    let listed = p.list(ObjectKind::User).await;
    // filter.maxResults is 200 in the generic mode: two pages, every user once
    assert_eq!(
        emu.ctx.stats.requests.load(std::sync::atomic::Ordering::SeqCst) - before,
        2
    );
    let mut names: Vec<String> = listed.iter().map(|o| o.name.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 205);
    assert_eq!(names[204], "user204");
    assert!(listed
        .iter()
        .all(|o| o.external_id.as_deref().is_some_and(|e| e.starts_with("src-"))));
}

#[test]
fn emulator_command_serves_the_scim_modes() {
    use std::io::BufRead;
    for (provider, profile, etag) in [("scim", "generic", true), ("scim-aws", "aws", false)] {
        // killed below, so it cannot clean up: its state goes to a directory the test removes
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(support::usersync_bin())
            .args(["emulator", "--provider", provider])
            .arg("--state-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn usersync emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        let info: Result<Value, _> = serde_json::from_str(&line);
        let spc = info
            .as_ref()
            .ok()
            .and_then(|i| i["base_url"].as_str())
            .map(|base| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async {
                        reqwest::get(format!("{base}/ServiceProviderConfig"))
                            .await
                            .expect("GET /ServiceProviderConfig")
                            .json::<Value>()
                            .await
                            .expect("JSON")
                    })
            });
        let _ = child.kill();
        let _ = child.wait();
        read.expect("read the JSON line");
        let info = info.expect("one JSON line");
        assert_eq!(info["provider"], provider);
        assert_eq!(info["client"]["profile"], profile);
        assert_eq!(
            info["client"]["connector_secrets"]["token"],
            info["credentials"]["api_token"]
        );
        assert_eq!(info["org"]["users"], 0, "a service provider starts empty");
        assert_eq!(spc.expect("served")["etag"]["supported"], etag);
    }
}
