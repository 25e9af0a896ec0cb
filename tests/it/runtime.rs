//! Integration tests: runtime (HTTP executor, auth flows, retries and rate limits, doctor,
//! `auth login`, secret hygiene in trace logs). Every server here is local (127.0.0.1) and checks
//! requests the way the provider does.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use usersync_model::{Record, User, UserState, UserStatus};
use usersync_runtime::doctor::{self, CheckStatus};
use usersync_runtime::{
    ConnectionClient, ConnectionSettings, RetryPolicy, RuntimeError, Secret, TransportKind,
};
use usersync_sdk::paging::status_error;
use usersync_sdk::{
    AssertionAlg, AuthFlowKind, AuthFlowSpec, AuthPlan, Batch, Capabilities, ClientAuth, Connector,
    ConnectorError, Cursor, Endpoint, HttpRequest, HttpResponse, Manifest, Operation, Options, PageParser,
    PagedCursor, Paging, ParsedPage, Query, Session, ABI_VERSION,
};

// Test-only RSA key and self-signed certificate (generated for these tests; not used anywhere else).
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDiikr+IHIah79W\nk6/9Gk559WCdOVdhoXUZV+ia7uKmMNVIDr62a18h3G1li3O4GnOyYilC8cu64zSs\nA2/zd5h7vVfwCyKP127TXhMXLrizsj8PXs7DsvpnMjQBELF3DGucXAxsVof1E9KP\nS/kgdjevaBVFqYXKzqbhIGnxOCR3vnvSGrT2dFKSdeKQ7iNkOH9ntOVinFqheLH5\nDCqY4ekzTtx/BEk07GVZwj633dRa9AkO7Y/gfc1MIaiY/IRzpVYBtd0blkNdr5tQ\n4aHqSkMndp0+yswevv9vY/y8C52zQKyHhGLVKa4aqrxkQjguESGzssaytRVWPA0i\nZeGo3Xa5AgMBAAECggEABgNMrUUYMjsTKY2e+LVXiuYn69RnTNiXvpX2PxKDIo0e\nRBzcFARykHgE0VKrviG5m2z+kl/PnATG05/9uzUb74DdkioBf1blAqg3EoDzdxWO\nle5ax5f7DH0pIzQZucKzIoHQ9JkxX6BokNQf5ywsGzREiEZRHkpw5H3TQgtO8Hyp\njJI+IkJH582ZWrxFDB4rTj0vBZmPKrBWNEsIl0foVG/y2OeAujyrTBPe/2ZCnQop\nr4Xtf5lims87WO/w6m3YkvjJKUOtc0gfdo85YcuTqlKSNjCbHIr6kk2meKSqVq+K\nuePWqZoGdFSgFBs3D+zhSt16aXpg80f7grKePOa7QQKBgQD0q7jozOZDW/2t4mzM\n742kr68aaLbNrIC/gYIMaXEQjhuT2g2zKdcARCGexq1D+7LdOqxPHkNg7DvGj4o6\nblRkkc5iAsmlaGwwdbesMz0VP19ylRFdxn4RYG6QZLX8HPMi3pimTlhSBDoqZKvK\nNykIuxpx79+W/6CV1bD+4uCysQKBgQDtB6eGekod6tL8VyRuwU95ToEU9dZtNJ5W\nTURggxtAWThkjfQQmXwKPryAji5H68KSrDVUQS2pyfUEq5V77hk9QX48UnCICTGl\nxTVM6N/ImILQxy9XqKsFkFxmocghkn57+7GY2NY1QZ88dZLfaTEPqdHoKDC/qF6R\nnccSFdS2iQKBgHKTX/oUydfNYlRlbhHiNHBknRk+5CwYlgoYObBaSEo6Yguw1y2J\ncFd9kEjsPQNTAQW8jihWwbLHrY5kdZS7SeX2qbEYIRnGdrOSzLplHDuw+5+K0yEY\n7LxybhRMNTSk0e8IUm++zHlL5Xkov5Holtyx0cZ9UDVD7A1+jm4uDI9hAoGBANWn\nqqgbHyfsfZYb7qku8rZDvzLnjgsN/ROJvnLIew373ks1caRs1VRezIeMoccOimqv\nc7qorcJ4WrWE/M+jBXkjyegR34Gf1/K22p6i4uTsJC6Q/OmlDdOMFt4kQkOQyxZy\n/9joy91hc2mKCYP8S870olMDtz1rRSM49zIkH4MRAoGAUKrLgkbJ6gAAmlEktnVp\n2TWFffFJN+kX5WB1oT3VJZP7Kreg6KTpNg+6TrsraGmwcsQgh8ve/QPUmvmtI6Cb\nEz86I8iSiF6yva54R3CGYF82SryscFvzkqx4atb7BLz5oteGUA5SVdMVBmeiQfyN\n4OrmNxAlB62AJzPMxOYnb5A=\n-----END PRIVATE KEY-----";
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIDITCCAgmgAwIBAgIUDwIomHi5kzjah//gJLZn22BvgqEwDQYJKoZIhvcNAQEL\nBQAwHzEdMBsGA1UEAwwUdXNlcnN5bmMtdGVzdC1jbGllbnQwIBcNMjYxMTI5MjEz\nNjE0WhgPMjEyNjExMDUyMTM2MTRaMB8xHTAbBgNVBAMMFHVzZXJzeW5jLXRlc3Qt\nY2xpZW50MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4opK/iByGoe/\nVpOv/RpOefVgnTlXYaF1GVfomu7ipjDVSA6+tmtfIdxtZYtzuBpzsmIpQvHLuuM0\nrANv83eYe71X8Asij9du014TFy64s7I/D17Ow7L6ZzI0ARCxdwxrnFwMbFaH9RPS\nj0v5IHY3r2gVRamFys6m4SBp8Tgkd7570hq09nRSknXikO4jZDh/Z7TlYpxaoXix\n+QwqmOHpM07cfwRJNOxlWcI+t93UWvQJDu2P4H3NTCGomPyEc6VWAbXdG5ZDXa+b\nUOGh6kpDJ3adPsrMHr7/b2P8vAuds0Csh4Ri1SmuGqq8ZEI4LhEhs7LGsrUVVjwN\nImXhqN12uQIDAQABo1MwUTAdBgNVHQ4EFgQUttob+kkBL3el22chWLCt4iEGfnow\nHwYDVR0jBBgwFoAUttob+kkBL3el22chWLCt4iEGfnowDwYDVR0TAQH/BAUwAwEB\n/zANBgkqhkiG9w0BAQsFAAOCAQEAF3+TZGHmQALBfpn+Si1faI8sD/7Emb7nZq3l\n6oUfz7puWcN/RqNvW+eG6zuuxxvT2NO2Dx6lqiN+mnnlzesZ7z+TFq/urYhXy5Fp\nhgCAbapJVql91YGJF+6rkl+Lj63CspxxMacy3i70nfTLzthhMQCTRJkl8jm11T5N\nNqdJdzz5utJzeM8UrnILZZHjNleSvkZMKTHUtyjdhRxaIKxuKsx02VV1aVVGZhfq\nuPl4mJBbg3FFhzSHwgdJ//t6LGXi8JA7j3LovTtv3wkgbegcNxwpiYwseFnQct+2\n9yeFGc+Bf9dNAEBs41+h2EgL/B8dQcrHv6BgUeqRxEAs/7B3Lw==\n-----END CERTIFICATE-----";
const TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4opK/iByGoe/VpOv/RpO\nefVgnTlXYaF1GVfomu7ipjDVSA6+tmtfIdxtZYtzuBpzsmIpQvHLuuM0rANv83eY\ne71X8Asij9du014TFy64s7I/D17Ow7L6ZzI0ARCxdwxrnFwMbFaH9RPSj0v5IHY3\nr2gVRamFys6m4SBp8Tgkd7570hq09nRSknXikO4jZDh/Z7TlYpxaoXix+QwqmOHp\nM07cfwRJNOxlWcI+t93UWvQJDu2P4H3NTCGomPyEc6VWAbXdG5ZDXa+bUOGh6kpD\nJ3adPsrMHr7/b2P8vAuds0Csh4Ri1SmuGqq8ZEI4LhEhs7LGsrUVVjwNImXhqN12\nuQIDAQAB\n-----END PUBLIC KEY-----";

// ---------------------------------------------------------------------------------------------
// A small local HTTP server driven by a closure.

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    fn base(&self) -> String {
        format!("http://{}", self.header("host").unwrap_or_default())
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(status: u16, v: serde_json::Value) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string(),
        }
    }

    fn with(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

fn token_ok(token: &str, expires_in: u64) -> Resp {
    Resp::json(
        200,
        serde_json::json!({"token_type": "Bearer", "access_token": token, "expires_in": expires_in}),
    )
}

async fn serve<F>(f: F) -> String
where
    F: Fn(&Req) -> Resp + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let f = f.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            let r = Req {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let resp = f(&r);
            let mut b = axum::http::Response::builder().status(resp.status);
            for (k, v) in resp.headers {
                b = b.header(k, v);
            }
            b.body(axum::body::Body::from(resp.body)).expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn users_page(ids: &[&str]) -> serde_json::Value {
    serde_json::Value::Array(
        ids.iter()
            .map(|i| serde_json::json!({"id": i, "name": format!("{i}@example.test")}))
            .collect(),
    )
}

/// Two pages of users with an RFC 8288 Link header, as Okta pages.
fn users_listing(r: &Req) -> Resp {
    if r.query.contains("after=2") {
        Resp::json(200, users_page(&["u3"]))
    } else {
        Resp::json(200, users_page(&["u1", "u2"]))
            .with("Link", format!("<{}/users?after=2>; rel=\"next\"", r.base()))
    }
}

// ---------------------------------------------------------------------------------------------
// A test connector: the contract exactly as real connectors use it.

struct TestConnector {
    id: &'static str,
    plan: AuthPlan,
    base: String,
    concurrency: u32,
}

impl TestConnector {
    fn shared(id: &'static str, base: &str, plan: AuthPlan) -> Arc<dyn Connector> {
        Arc::new(TestConnector {
            id,
            plan,
            base: base.to_string(),
            concurrency: 4,
        })
    }
}

impl Connector for TestConnector {
    fn manifest(&self) -> Manifest {
        let ep = |path: &str, op| Endpoint {
            method: "GET".into(),
            url: format!("https://idp.example.test{path}"),
            purpose: "test".into(),
            operation: op,
        };
        Manifest {
            id: self.id.into(),
            name: "Test".into(),
            version: "0.0.0".into(),
            abi_version: ABI_VERSION,
            auth: vec![AuthFlowSpec {
                flow: AuthFlowKind::ApiToken,
                token_url: None,
                authorize_url: None,
                scopes: vec![],
                description: "test".into(),
            }],
            endpoints: vec![
                ep("/users", Operation::ListUsers),
                ep("/groups", Operation::ListGroups),
                ep("/groups/{id}/members", Operation::GroupMembers),
                ep("/users/{id}/manager", Operation::UserManager),
            ],
            capabilities: Capabilities {
                manager: true,
                ..Capabilities::default()
            },
            options: vec![],
            default_concurrency: self.concurrency,
        }
    }

    fn open(&self, _options: &Options) -> Result<Box<dyn Session>, ConnectorError> {
        Ok(Box::new(TestSession {
            plan: self.plan.clone(),
            base: self.base.clone(),
        }))
    }
}

struct TestSession {
    plan: AuthPlan,
    base: String,
}

struct UserParser;

impl PageParser for UserParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let items: Vec<serde_json::Value> = usersync_sdk::paging::parse_json(response, "users")?;
        let records = items
            .iter()
            .map(|i| {
                Record::User(User::new(
                    i["id"].as_str().unwrap_or_default(),
                    i["name"].as_str().unwrap_or_default(),
                    UserStatus::new(UserState::Active, "ACTIVE"),
                ))
            })
            .collect();
        Ok(ParsedPage::new(Batch::of(records), None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let body = response.body_snippet(300);
        if response.status == 403 && body.contains("rateLimitExceeded") {
            return Err(ConnectorError::RateLimited {
                retry_after_ms: None,
                detail: "Google rateLimitExceeded".into(),
            });
        }
        if response.status == 400 && body.contains("expired_page_token") {
            return Err(ConnectorError::CursorExpired { detail: body });
        }
        if response.status == 403 {
            return Err(ConnectorError::Forbidden {
                detail: body,
                needed: Some("User.Read.All".into()),
            });
        }
        Err(status_error(response, &body))
    }
}

/// A broken cursor that asks for the same page forever (the host must stop it).
struct LoopingCursor(String);

impl Cursor for LoopingCursor {
    fn next_request(&mut self) -> Option<HttpRequest> {
        Some(HttpRequest::get(self.0.clone()))
    }
    fn on_response(&mut self, _response: HttpResponse) -> Result<Batch, ConnectorError> {
        Ok(Batch::default())
    }
}

impl Session for TestSession {
    fn auth_plan(&self) -> AuthPlan {
        self.plan.clone()
    }

    fn base_urls(&self) -> Vec<String> {
        vec![self.base.clone()]
    }

    fn query(&self, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
        let b = &self.base;
        Ok(match query {
            Query::ListUsers => Box::new(PagedCursor::new(
                HttpRequest::get(format!("{b}/users")),
                Paging::LinkHeader,
                UserParser,
            )),
            Query::ListGroups => Box::new(PagedCursor::new(
                HttpRequest::get(format!("{b}/groups")),
                Paging::Single,
                UserParser,
            )),
            Query::GroupMembers { group_id } => Box::new(PagedCursor::new(
                HttpRequest::get(format!("{b}/groups/{group_id}/members")),
                Paging::LinkHeader,
                UserParser,
            )),
            Query::UserManager { user_id } => Box::new(PagedCursor::new(
                HttpRequest::get(format!("{b}/users/{user_id}/manager")),
                Paging::Single,
                UserParser,
            )),
            Query::GetUser { user_id } if user_id == "loop" => {
                Box::new(LoopingCursor(format!("{b}/users/loop")))
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    operation: other.operation().to_string(),
                })
            }
        })
    }
}

fn fast() -> ConnectionSettings {
    ConnectionSettings {
        no_proxy_env: true,
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 4,
            max_total: Duration::from_secs(5),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_throttle_wait: Duration::from_millis(150),
            slow_down: true,
        },
        ..ConnectionSettings::default()
    }
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(*v)))
        .collect()
}

fn client(id: &'static str, base: &str, plan: AuthPlan, s: &[(&str, &str)]) -> ConnectionClient {
    client_with(id, base, plan, s, fast())
}

fn client_with(
    id: &'static str,
    base: &str,
    plan: AuthPlan,
    s: &[(&str, &str)],
    settings: ConnectionSettings,
) -> ConnectionClient {
    ConnectionClient::new(
        "conn",
        TestConnector::shared(id, base, plan),
        Options::default(),
        secrets(s),
        settings,
    )
    .expect("client")
}

fn ids(out: &usersync_runtime::QueryOutput) -> Vec<String> {
    out.records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some(u.id.clone()),
            _ => None,
        })
        .collect()
}

fn bearer_only(token: &'static str, inner: fn(&Req) -> Resp) -> impl Fn(&Req) -> Resp {
    move |r: &Req| {
        if r.header("authorization") != Some(&format!("Bearer {token}")) {
            return Resp::json(401, serde_json::json!({"error": "invalid_token"}));
        }
        inner(r)
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).expect("pem body")
}

// ---------------------------------------------------------------------------------------------
// Auth flows

#[tokio::test]
async fn entra_client_secret_in_form_body_with_token_cache() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/tenant/oauth2/v2.0/token" => {
            tc.fetch_add(1, Ordering::SeqCst);
            let f = r.form();
            assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
            if f.get("grant_type").map(String::as_str) != Some("client_credentials")
                || f.get("client_id").map(String::as_str) != Some("app-1")
                || f.get("client_secret").map(String::as_str) != Some("s3cret&=+")
                || f.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default")
            {
                return Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}));
            }
            token_ok("tok-entra", 3599)
        }
        _ => bearer_only("tok-entra", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/tenant/oauth2/v2.0/token"),
        client_id: "app-1".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec!["https://graph.microsoft.com/.default".into()],
    };
    let c = client("entra", &base, plan, &[("client_secret", "s3cret&=+")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(ids(&out), ["u1", "u2", "u3"]);
    let again = c.run_query(&Query::ListUsers).await.expect("users again");
    assert_eq!(again.pages, 2);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        1,
        "the token is cached across pages and queries"
    );
    let n = c.counters();
    assert_eq!((n.requests, n.token_requests, n.pages), (5, 1, 4));
    assert!(n.bytes_received > 0);
}

#[tokio::test]
async fn keycloak_basic_client_auth_and_early_refresh_of_short_tokens() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/realms/acme/protocol/openid-connect/token" => {
            let n = tc.fetch_add(1, Ordering::SeqCst) + 1;
            let expected = format!("Basic {}", STANDARD.encode("usersync:kc-secret"));
            assert_eq!(r.header("authorization"), Some(expected.as_str()));
            assert_eq!(
                r.form().get("grant_type").map(String::as_str),
                Some("client_credentials")
            );
            assert!(
                !r.body.contains("kc-secret"),
                "Basic auth keeps the secret out of the body"
            );
            // a token that is already inside its early-refresh margin
            token_ok(&format!("kc-{n}"), 0)
        }
        _ => {
            if !r
                .header("authorization")
                .unwrap_or_default()
                .starts_with("Bearer kc-")
            {
                return Resp::json(401, serde_json::json!({"error": "HTTP 401 Unauthorized"}));
            }
            users_listing(r)
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/realms/acme/protocol/openid-connect/token"),
        client_id: "usersync".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::Basic,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan, &[("client_secret", "kc-secret")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        2,
        "a token due for refresh is replaced before each use"
    );
}

#[tokio::test]
async fn onelogin_token_request_uses_its_header_and_json_body() {
    let base = serve(|r| match r.path.as_str() {
        "/auth/oauth2/v2/token" => {
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("authorization"), Some("client_id:ol-id, client_secret:ol-secret"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            let body: serde_json::Value = serde_json::from_str(&r.body).expect("json body");
            assert_eq!(body, serde_json::json!({"grant_type": "client_credentials"}));
            Resp::json(200, serde_json::json!({"access_token": "ol-tok", "created_at": 1630368707239u64, "expires_in": 36000, "refresh_token": "r", "token_type": "bearer", "account_id": 1}))
        }
        _ => bearer_only("ol-tok", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/auth/oauth2/v2/token"),
        client_id: "ol-id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::OneLoginHeader,
        scopes: vec![],
    };
    let c = client("onelogin", &base, plan, &[("client_secret", "ol-secret")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

fn check_assertion(r: &Req, alg: Algorithm, client_id: &str) -> Result<jsonwebtoken::Header, String> {
    let f = r.form();
    if f.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("client_assertion_type".into());
    }
    let jwt = f.get("client_assertion").ok_or("no client_assertion")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    if header.alg != alg {
        return Err(format!("alg {:?}", header.alg));
    }
    let aud = format!("{}{}", r.base(), r.path);
    let mut v = Validation::new(alg);
    v.set_audience(&[aud.as_str()]);
    v.set_issuer(&[client_id]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        jwt,
        &DecodingKey::from_rsa_pem(TEST_PUB.as_bytes()).expect("pub"),
        &v,
    )
    .map_err(|e| format!("signature/claims: {e}"))?;
    let c = data.claims;
    if c["sub"] != client_id || c["jti"].as_str().unwrap_or_default().is_empty() {
        return Err("sub/jti".into());
    }
    let (nbf, exp) = (c["nbf"].as_u64().unwrap_or(0), c["exp"].as_u64().unwrap_or(0));
    if exp <= nbf || exp - nbf > 600 {
        return Err("lifetime".into());
    }
    Ok(header)
}

#[tokio::test]
async fn entra_certificate_assertion_ps256_with_x5t_s256_and_legacy_rs256_with_x5t() {
    let der = der_of(TEST_CERT);
    let s256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der));
    let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &der,
    ));
    for (alg, jalg) in [
        (AssertionAlg::PS256, Algorithm::PS256),
        (AssertionAlg::RS256, Algorithm::RS256),
    ] {
        let (s256, sha1) = (s256.clone(), sha1.clone());
        let base = serve(move |r| match r.path.as_str() {
            "/tenant/oauth2/v2.0/token" => match check_assertion(r, jalg, "app-cert") {
                Ok(h) => {
                    let thumb_ok = if jalg == Algorithm::PS256 {
                        h.x5t_s256.as_deref() == Some(s256.as_str())
                    } else {
                        h.x5t.as_deref() == Some(sha1.as_str())
                    };
                    assert!(thumb_ok, "certificate thumbprint header for {jalg:?}: {h:?}");
                    assert!(!r.form().contains_key("client_secret"));
                    token_ok("tok-cert", 3600)
                }
                Err(e) => Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": format!("AADSTS700027: {e}")})),
            },
            _ => bearer_only("tok-cert", users_listing)(r),
        })
        .await;
        let plan = AuthPlan::ClientCredentialsAssertion {
            token_url: format!("{base}/tenant/oauth2/v2.0/token"),
            client_id: "app-cert".into(),
            key_option: "private_key".into(),
            cert_option: Some("certificate".into()),
            key_id: None,
            alg,
            scopes: vec!["https://graph.microsoft.com/.default".into()],
            dpop: false,
        };
        let c = client(
            "entra",
            &base,
            plan,
            &[("private_key", TEST_KEY), ("certificate", TEST_CERT)],
        );
        let out = c
            .run_query(&Query::ListUsers)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(out.records.len(), 3);
    }
}

fn verify_dpop(
    proof: &str,
    method: &str,
    url: &str,
    nonce: Option<&str>,
    token: Option<&str>,
) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(proof).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("typ".into());
    }
    let jwk = header.jwk.ok_or("no jwk")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.set_required_spec_claims::<&str>(&[]);
    let c = jsonwebtoken::decode::<serde_json::Value>(proof, &key, &v)
        .map_err(|e| format!("proof signature: {e}"))?
        .claims;
    if c["htm"] != method || c["htu"] != url || c["jti"].as_str().unwrap_or_default().is_empty() {
        return Err(format!("htm/htu/jti: {c}"));
    }
    if c["nonce"].as_str() != nonce {
        return Err("nonce".into());
    }
    if let Some(t) = token {
        let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()));
        if c["ath"].as_str() != Some(ath.as_str()) {
            return Err("ath".into());
        }
    }
    Ok(())
}

#[tokio::test]
async fn okta_private_key_jwt_with_dpop_and_the_nonce_dance() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/oauth2/v1/token" => {
            tc.fetch_add(1, Ordering::SeqCst);
            let h = match check_assertion(r, Algorithm::RS256, "0oa-service") {
                Ok(h) => h,
                Err(e) => return Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": e})),
            };
            assert_eq!(h.kid.as_deref(), Some("key-1"));
            assert_eq!(r.form().get("scope").map(String::as_str), Some("okta.users.read okta.groups.read"));
            let url = format!("{}{}", r.base(), r.path);
            let Some(proof) = r.header("dpop") else {
                return Resp::json(400, serde_json::json!({"error": "invalid_dpop_proof", "error_description": "The DPoP proof JWT header is missing."}));
            };
            if verify_dpop(proof, "POST", &url, None, None).is_ok() {
                return Resp::json(400, serde_json::json!({"error": "use_dpop_nonce", "error_description": "Authorization server requires nonce in DPoP proof."}))
                    .with("DPoP-Nonce", "nonce-as-1");
            }
            match verify_dpop(proof, "POST", &url, Some("nonce-as-1"), None) {
                Ok(()) => Resp::json(200, serde_json::json!({"token_type": "DPoP", "expires_in": 3600, "access_token": "okta-dpop-token", "scope": "okta.users.read okta.groups.read"})),
                Err(e) => Resp::json(400, serde_json::json!({"error": "invalid_dpop_proof", "error_description": e})),
            }
        }
        _ => {
            if r.header("authorization") != Some("DPoP okta-dpop-token") {
                return Resp::json(401, serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}));
            }
            let url = format!("{}{}", r.base(), r.path);
            let proof = r.header("dpop").unwrap_or_default();
            if let Err(e) = verify_dpop(proof, "GET", &url, None, Some("okta-dpop-token")) {
                return Resp::json(400, serde_json::json!({"errorCode": "E0000001", "errorSummary": e}));
            }
            users_listing(r)
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: format!("{base}/oauth2/v1/token"),
        client_id: "0oa-service".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: Some("key-1".into()),
        alg: AssertionAlg::RS256,
        scopes: vec!["okta.users.read".into(), "okta.groups.read".into()],
        dpop: true,
    };
    let c = client("okta", &base, plan, &[("private_key", TEST_KEY)]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        2,
        "one nonce challenge, then the token"
    );
    let info = c.fetch_token().await.expect("token").expect("info");
    assert_eq!(info.token_type, "DPoP");
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        3,
        "the stored nonce is reused: no second challenge"
    );
}

#[tokio::test]
async fn google_service_account_jwt_bearer_impersonates_the_admin() {
    let key_file = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-123",
        "private_key": TEST_KEY,
        "client_email": "sync@p.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    let base = serve(|r| match r.path.as_str() {
        "/token" => {
            let f = r.form();
            assert_eq!(f.get("grant_type").map(String::as_str), Some("urn:ietf:params:oauth:grant-type:jwt-bearer"));
            let jwt = f.get("assertion").expect("assertion");
            let h = jsonwebtoken::decode_header(jwt).expect("header");
            assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::RS256, Some("kid-123")));
            let aud = format!("{}/token", r.base());
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[aud.as_str()]);
            v.set_issuer(&["sync@p.iam.gserviceaccount.com"]);
            let c = jsonwebtoken::decode::<serde_json::Value>(jwt, &DecodingKey::from_rsa_pem(TEST_PUB.as_bytes()).expect("pub"), &v)
                .expect("valid assertion")
                .claims;
            assert_eq!(c["sub"], "admin@example.test");
            assert_eq!(
                c["scope"],
                "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly"
            );
            assert!(c["exp"].as_u64().unwrap_or(0) - c["iat"].as_u64().unwrap_or(0) <= 3600);
            token_ok("ya29.google", 3599)
        }
        _ => bearer_only("ya29.google", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::JwtBearer {
        token_url: format!("{base}/token"),
        key_option: "service_account_key".into(),
        issuer: None,
        subject: "admin@example.test".into(),
        scopes: vec![
            "https://www.googleapis.com/auth/admin.directory.user.readonly".into(),
            "https://www.googleapis.com/auth/admin.directory.group.readonly".into(),
        ],
    };
    let c = client("google", &base, plan, &[("service_account_key", &key_file)]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

#[tokio::test]
async fn okta_ssws_api_token_header() {
    let base = serve(|r| {
        if r.header("authorization") != Some("SSWS 00abcTOKEN") {
            return Resp::json(401, serde_json::json!({"errorCode": "E0000011"}));
        }
        users_listing(r)
    })
    .await;
    let plan = AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    };
    let c = client("okta", &base, plan, &[("api_token", "00abcTOKEN")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(c.counters().token_requests, 0);
}

#[tokio::test]
async fn missing_secret_and_bad_key_are_named_without_values() {
    let plan = AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    };
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("okta", "https://x.okta.com", plan),
        Options::default(),
        BTreeMap::new(),
        fast(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("`api_token` is not set"), "{e}");
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: "https://login.example.test/token".into(),
        client_id: "c".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: None,
        alg: AssertionAlg::PS256,
        scopes: vec![],
        dpop: false,
    };
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("entra", "https://graph.example.test", plan),
        Options::default(),
        secrets(&[(
            "private_key",
            "-----BEGIN PRIVATE KEY-----\nnotakeyatallXYZ\n-----END PRIVATE KEY-----",
        )]),
        fast(),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("private_key") && !text.contains("notakeyatallXYZ"),
        "{text}"
    );
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh_and_one_retry() {
    let token_calls = Arc::new(AtomicU32::new(0));
    let tc = token_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => {
            let n = tc.fetch_add(1, Ordering::SeqCst) + 1;
            token_ok(&format!("t{n}"), 3600)
        }
        // the first token was revoked server side; the second works
        _ if r.header("authorization") == Some("Bearer t1") => {
            Resp::json(401, serde_json::json!({"error": "invalid_token"}))
        }
        _ => users_listing(r),
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan.clone(), &[("client_secret", "x-secret")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(token_calls.load(Ordering::SeqCst), 2);

    // a credential that never works: one refresh, one retry, then a clear Unauthorized
    let resource_calls = Arc::new(AtomicU32::new(0));
    let rc = resource_calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => token_ok("never-good", 3600),
        _ => {
            rc.fetch_add(1, Ordering::SeqCst);
            Resp::json(401, serde_json::json!({"error": "invalid_token"}))
        }
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("keycloak", &base, plan, &[("client_secret", "x-secret")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(
        matches!(e.connector_error(), Some(ConnectorError::Unauthorized { .. })),
        "{e}"
    );
    assert_eq!(resource_calls.load(Ordering::SeqCst), 2);
    assert_eq!(c.counters().token_requests, 2);
}

#[tokio::test]
async fn keycloak_password_grant_fallback() {
    let base = serve(|r| match r.path.as_str() {
        "/realms/master/protocol/openid-connect/token" => {
            let f = r.form();
            let ok = f.get("grant_type").map(String::as_str) == Some("password")
                && f.get("client_id").map(String::as_str) == Some("admin-cli")
                && f.get("username").map(String::as_str) == Some("sync-admin")
                && f.get("password").map(String::as_str) == Some("pw-1");
            if !ok {
                return Resp::json(
                    401,
                    serde_json::json!({"error": "invalid_grant", "error_description": "Invalid user credentials"}),
                );
            }
            token_ok("kc-admin", 60)
        }
        _ => bearer_only("kc-admin", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::Password {
        token_url: format!("{base}/realms/master/protocol/openid-connect/token"),
        client_id: "admin-cli".into(),
        username: "sync-admin".into(),
        secret_option: "password".into(),
    };
    let c = client("keycloak", &base, plan, &[("password", "pw-1")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
}

#[tokio::test]
async fn a_per_connection_proxy_is_used_with_its_credentials() {
    let proxied = Arc::new(AtomicU32::new(0));
    let p2 = proxied.clone();
    // The "proxy" answers absolute-form requests itself; the origin does not exist.
    let proxy = serve(move |r| {
        let expected = format!("Basic {}", STANDARD.encode("corp:proxy-pw"));
        if r.header("proxy-authorization") != Some(expected.as_str()) {
            return Resp::json(407, serde_json::json!({})).with("Proxy-Authenticate", "Basic realm=\"corp\"");
        }
        p2.fetch_add(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["via-proxy"]))
    })
    .await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut s = fast();
    s.proxy = Some(proxy.replace("http://", "http://corp:proxy-pw@"));
    let c = client_with(
        "okta",
        &format!("http://127.0.0.1:{port}"),
        api_token_plan(),
        &[("api_token", "tok")],
        s,
    );
    assert_eq!(
        ids(&c.run_query(&Query::ListUsers).await.expect("users")),
        ["via-proxy"]
    );
    assert_eq!(proxied.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Retries, throttling, paging guards

fn api_token_plan() -> AuthPlan {
    AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    }
}

#[tokio::test]
async fn transient_5xx_are_retried_and_attempts_are_bounded() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        match n {
            0 => Resp::json(503, serde_json::json!({"error": "unavailable"})),
            1 => Resp::json(502, serde_json::json!({})),
            2 => Resp::json(504, serde_json::json!({})),
            _ => users_listing(r),
        }
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    assert_eq!(c.counters().retries, 3);

    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
        Resp::json(503, serde_json::json!({}))
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(
        matches!(e, RuntimeError::RetriesExhausted { attempts: 4, .. }),
        "{e}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn total_error_retry_time_is_bounded() {
    // a 503 with Retry-After is an error, not throttling: `max_total` bounds it
    let base = serve(|_| Resp::json(503, serde_json::json!({})).with("Retry-After", "1")).await;
    let mut s = fast();
    s.retry.max_attempts = 1000;
    s.retry.max_total = Duration::from_millis(400);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    // bounded by `max_total` (400 ms of waits capped at `max_throttle_wait`), not by the 1000
    // attempts: a handful of attempts (no wall-clock upper bound here: a loaded machine is slow,
    // and a slow machine makes fewer attempts, never more)
    match &e {
        RuntimeError::RetriesExhausted { attempts, .. } => assert!(*attempts <= 10, "{e}"),
        other => panic!("expected RetriesExhausted, got {other}"),
    }
}

#[tokio::test]
async fn okta_429_waits_for_x_rate_limit_reset_measured_against_the_date_header() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            // The server clock says 2015; the reset is 30 s after the server's Date. Measured
            // against the local clock the reset would be long past (no wait at all).
            return Resp::json(429, serde_json::json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."}))
                .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
                .with("X-Rate-Limit-Limit", "600")
                .with("X-Rate-Limit-Remaining", "0")
                .with("X-Rate-Limit-Reset", "1445412510");
        }
        users_listing(r)
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let n = c.counters();
    assert_eq!(n.throttled_responses, 1);
    assert!(
        n.throttled_ms >= 140,
        "waited for the reset (capped at 150 ms in this test): {n:?}"
    );
}

#[tokio::test]
async fn graph_retry_after_http_date_and_onelogin_seconds_remaining() {
    for header in [
        ("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT"),
        ("X-RateLimit-Reset", "900"),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let c2 = calls.clone();
        let base = serve(move |r| {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                return Resp::json(429, serde_json::json!({"error": {"code": "TooManyRequests"}}))
                    .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
                    .with(header.0, header.1);
            }
            users_listing(r)
        })
        .await;
        let c = client("entra", &base, api_token_plan(), &[("api_token", "tok")]);
        c.run_query(&Query::ListUsers).await.expect("users");
        let n = c.counters();
        assert!(
            n.throttled_ms >= 140 && n.throttled_responses == 1,
            "{header:?}: {n:?}"
        );
    }
}

#[tokio::test]
async fn google_403_rate_limit_exceeded_is_throttling_not_a_permission_error() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| {
        if c2.fetch_add(1, Ordering::SeqCst) < 2 {
            return Resp::json(403, serde_json::json!({"error": {"code": 403, "message": "Rate Limit Exceeded", "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}));
        }
        users_listing(r)
    })
    .await;
    let c = client("google", &base, api_token_plan(), &[("api_token", "tok")]);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let n = c.counters();
    assert_eq!((n.throttled_responses, n.retries), (2, 2));
}

#[tokio::test]
async fn slows_down_before_the_budget_runs_out() {
    let base = serve(|r| {
        users_listing(r)
            .with("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .with("X-Rate-Limit-Limit", "600")
            .with("X-Rate-Limit-Remaining", "1")
            .with("X-Rate-Limit-Reset", "1445412540")
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    c.run_query(&Query::ListUsers).await.expect("users");
    let n = c.counters();
    assert_eq!(n.throttled_responses, 0, "never ran into a 429");
    assert!(n.throttled_ms >= 140, "paced the second page: {n:?}");
    assert_eq!(n.lowest_budget.map(|b| b.remaining), Some(1));
}

/// A fixed-window quota shaped like Google's Directory API: `limit` requests per `window`, then
/// 403 `userRateLimitExceeded` without Retry-After until the window ends (or, with `status_429`,
/// a bare 429). Every path pages `pages` times (one record a page). Counts served and denied
/// requests. `limit` 0: the throttle never lifts.
#[derive(Default)]
struct Quota {
    start: Option<std::time::Instant>,
    used: u32,
    served: u32,
    denied: u32,
}

async fn quota_server(
    limit: u32,
    window: Duration,
    pages: u32,
    status_429: bool,
) -> (String, Arc<Mutex<Quota>>) {
    let quota = Arc::new(Mutex::new(Quota::default()));
    let q2 = quota.clone();
    let base = serve(move |r| {
        let mut q = q2.lock().expect("quota");
        let now = std::time::Instant::now();
        if q.start.is_none_or(|s| now.duration_since(s) >= window) {
            q.start = Some(now);
            q.used = 0;
        }
        if q.used >= limit {
            q.denied += 1;
            if status_429 {
                return Resp::json(429, serde_json::json!({"error": "Too Many Requests"}));
            }
            return Resp::json(403, serde_json::json!({"error": {"code": 403,
                "message": "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
                "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}]}}));
        }
        q.used += 1;
        q.served += 1;
        let page: u32 = r
            .query
            .strip_prefix("after=")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let id = format!("{}#{page}", r.path);
        let resp = Resp::json(200, users_page(&[id.as_str()]));
        if page + 1 < pages {
            resp.with("Link", format!("<{}{}?after={}>; rel=\"next\"", r.base(), r.path, page + 1))
        } else {
            resp
        }
    })
    .await;
    // one Directory-API-like prefix: every path falls into the same rate-limit bucket
    (format!("{base}/admin/directory/v1"), quota)
}

/// Settings where error retries alone would give up at once: only the throttle budget lets a
/// throttled listing go on.
fn throttle_settings(window: Duration, budget: Option<Duration>) -> ConnectionSettings {
    let mut s = fast();
    s.retry.max_attempts = 2;
    s.retry.base_delay = Duration::from_millis(10);
    s.retry.max_throttle_wait = window;
    s.max_throttle_total = budget;
    s
}

#[tokio::test]
async fn a_quota_that_refills_after_a_window_is_waited_out_and_the_listing_completes() {
    let window = Duration::from_millis(250);
    let (base, quota) = quota_server(5, window, 6, false).await;
    // the default throttle budget (10 windows) applies
    let s = throttle_settings(window, None);
    let c = client_with("google", &base, api_token_plan(), &[("api_token", "tok")], s);
    let started = std::time::Instant::now();
    let queries = vec![
        Query::ListUsers,
        Query::GroupMembers {
            group_id: "g1".into(),
        },
        Query::GroupMembers {
            group_id: "g2".into(),
        },
        Query::GroupMembers {
            group_id: "g3".into(),
        },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for r in c.run_all(queries).await {
        let out = r.expect("a throttled listing completes once the quota refills");
        assert_eq!(out.pages, 6);
        seen.extend(ids(&out));
    }
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), 24, "every page of every listing, once: {seen:?}");
    let q = quota.lock().expect("quota");
    assert_eq!(q.served, 24, "no page was fetched twice");
    // 24 requests at 5 a window need at least 5 windows: 4 window ends waited out
    assert!(elapsed >= window * 4, "{elapsed:?}");
    let n = c.counters();
    assert_eq!(n.throttled_responses, u64::from(q.denied));
    assert!(q.denied > 0 && n.throttled_ms > 0, "{n:?}");
    // no hammering: the whole bucket pauses with growing backoff, so each window sees a few
    // rounds of the 4 requests in flight, not a tight loop (a local server answers in well
    // under a millisecond)
    let windows = (elapsed.as_secs_f64() / window.as_secs_f64()).ceil() as u32;
    assert!(
        q.denied <= 30 * windows,
        "{} throttle answers in {windows} windows",
        q.denied
    );
}

#[tokio::test]
async fn a_throttle_that_never_lifts_fails_cleanly_within_the_throttle_budget() {
    let window = Duration::from_millis(100);
    let budget = Duration::from_millis(700);
    for status_429 in [false, true] {
        let (base, quota) = quota_server(0, window, 3, status_429).await;
        let s = throttle_settings(window, Some(budget));
        let c = client_with("google", &base, api_token_plan(), &[("api_token", "tok")], s);
        let started = std::time::Instant::now();
        let e = c.run_query(&Query::ListUsers).await.unwrap_err();
        let elapsed = started.elapsed();
        let what = if status_429 {
            "429"
        } else {
            "403 rateLimitExceeded"
        };
        assert!(matches!(e, RuntimeError::RetriesExhausted { .. }), "{what}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("max_throttle_total_secs"),
            "{what}: names the setting: {msg}"
        );
        // gave up by the budget's own arithmetic (a lower bound only: a loaded machine is slow,
        // never fast, so no upper bound on wall time)
        assert!(elapsed >= budget / 2, "{what}: gave up too early: {elapsed:?}");
        let q = quota.lock().expect("quota");
        // more tries than `max_attempts` (throttling is counted apart from errors), yet backed
        // off: 5, 10, 20, 40 ms... up to the 100 ms window
        assert!(q.denied > 3 && q.denied <= 30, "{what}: {} requests", q.denied);
        assert_eq!(c.counters().throttled_responses, u64::from(q.denied), "{what}");
    }
}

#[test]
fn the_throttle_budget_is_configurable_and_defaults_to_ten_throttle_waits() {
    let text = r#"
[runtime]
max_throttle_wait_secs = 5

[[connections]]
name = "a"
connector = "google"
[connections.runtime]
max_throttle_total_secs = 3900

[[connections]]
name = "b"
connector = "google"
"#;
    let c = usersync_config::Config::from_str(text).expect("parse");
    let a = &c.connection("a").expect("a").runtime;
    let b = &c.connection("b").expect("b").runtime;
    assert_eq!(a.max_throttle_total, Some(Duration::from_secs(3900)));
    assert_eq!(b.max_throttle_total, None);
    let mut s = ConnectionSettings::default();
    assert_eq!(
        s.throttle_budget(),
        Duration::from_secs(600),
        "10 x the 60 s default wait"
    );
    s.retry.max_throttle_wait = b.max_throttle_wait;
    assert_eq!(s.throttle_budget(), Duration::from_secs(50));
    s.max_throttle_total = a.max_throttle_total;
    assert_eq!(s.throttle_budget(), Duration::from_secs(3900));
}

#[tokio::test]
async fn a_repeated_page_or_too_many_pages_stop_with_a_protocol_error() {
    let base = serve(|_| Resp::json(200, users_page(&[]))).await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c
        .run_query(&Query::GetUser {
            user_id: "loop".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e.connector_error(), Some(ConnectorError::Protocol { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("already fetched"), "{e}");

    // endless distinct next links
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    let base = serve(move |r| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["x"]))
            .with("Link", format!("<{}/users?after={i}>; rel=\"next\"", r.base()))
    })
    .await;
    let mut s = fast();
    s.max_pages = 5;
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert!(e.to_string().contains("paging stopped after 5 pages"), "{e}");
    assert_eq!(n.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn an_expired_paging_cursor_restarts_the_listing_without_duplicates() {
    let expired_once = Arc::new(AtomicU32::new(0));
    let e2 = expired_once.clone();
    let base = serve(move |r| {
        if r.query.contains("after=2") && e2.fetch_add(1, Ordering::SeqCst) == 0 {
            return Resp::json(400, serde_json::json!({"error": {"code": "Directory_ExpiredPageToken", "message": "expired_page_token"}}));
        }
        users_listing(r)
    })
    .await;
    let c = client("entra", &base, api_token_plan(), &[("api_token", "tok")]);
    let out = c.run_query(&Query::ListUsers).await.expect("users");
    assert_eq!(ids(&out), ["u1", "u2", "u3"]);
    assert_eq!((out.restarts, out.pages), (1, 2));
}

/// A multi-threaded runtime, so the test server really answers several requests at once: on the
/// test's single thread the peak would always be 1 and the bound could not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_holds_across_queries() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let base = serve(move |_| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        f.fetch_sub(1, Ordering::SeqCst);
        Resp::json(200, users_page(&["m"]))
    })
    .await;
    let mut s = fast();
    s.concurrency = Some(2);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    let queries: Vec<Query> = (0..8)
        .map(|i| Query::GroupMembers {
            group_id: format!("g{i}"),
        })
        .collect();
    let results = c.run_all(queries).await;
    assert!(results.iter().all(|r| r.is_ok()));
    // exactly the limit: at most 2 (the bound) and at least 2 (the server could see more)
    assert_eq!(peak.load(Ordering::SeqCst), 2, "peak in flight");
}

/// Issue 17.14: once a request proves the credential refused (401 with nothing to refresh), the
/// connection sends nothing more in this run: before, every remaining query of the run was sent
/// (and refused) too, ~170 requests for an Okta organisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_credential_stops_the_connections_other_queries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let base = serve(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        Resp::json(
            401,
            serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
        )
    })
    .await;
    let mut s = fast();
    s.concurrency = Some(2);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "revoked")], s);
    let queries: Vec<Query> = (0..40)
        .map(|i| Query::GroupMembers {
            group_id: format!("g{i}"),
        })
        .collect();
    let results = c.run_all(queries).await;
    assert!(results.iter().all(|r| r.is_err()), "every query fails");
    let sent = hits.load(Ordering::SeqCst);
    assert!(
        sent <= 3,
        "{sent} requests sent after the credential was refused (2 in flight at most)"
    );
    let halted = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| matches!(e, RuntimeError::ConnectionHalted { .. }))
        .count();
    assert!(halted >= 37, "the others say why they were not sent: {halted}");
    let text = results
        .iter()
        .find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| matches!(e, RuntimeError::ConnectionHalted { .. }))
        })
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        text.contains("credential was refused") && !text.contains("revoked"),
        "{text}"
    );
}

#[tokio::test]
async fn plain_http_is_refused_for_non_loopback_hosts() {
    let e = ConnectionClient::new(
        "c",
        TestConnector::shared("okta", "http://acme.okta.com", api_token_plan()),
        Options::default(),
        secrets(&[("api_token", "tok")]),
        fast(),
    )
    .unwrap_err();
    assert!(matches!(e, RuntimeError::UrlNotAllowed { .. }), "{e}");
    assert!(e.to_string().contains("only allowed for loopback"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TLS

fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("cert");
    let cert_pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.key_pair.serialize_der(),
    ));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .expect("server config");
    (cert_pem, Arc::new(config))
}

/// An HTTPS server answering every request with the users listing (one page).
async fn https_server(config: Arc<rustls::ServerConfig>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = users_page(&["tls-user"]).to_string();
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn https_is_verified_and_an_extra_ca_bundle_is_trusted() {
    let (cert_pem, config) = self_signed();
    let base = https_server(config).await;
    // untrusted: fails with a TLS error, never retried into success
    let c = client("okta", &base, api_token_plan(), &[("api_token", "tok")]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    assert_eq!(e.transport_kind(), Some(TransportKind::Tls), "{e}");
    // trusted through the extra CA bundle
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).expect("write");
    let mut s = fast();
    s.ca_bundle = Some(ca);
    let c = client_with("okta", &base, api_token_plan(), &[("api_token", "tok")], s);
    assert_eq!(
        ids(&c.run_query(&Query::ListUsers).await.expect("users")),
        ["tls-user"]
    );
}

// ---------------------------------------------------------------------------------------------
// Doctor

fn doctor_client(id: &'static str, base: &str, settings: ConnectionSettings) -> ConnectionClient {
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "app".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    client_with(id, base, plan, &[("client_secret", "doc-secret")], settings)
}

fn one_attempt() -> ConnectionSettings {
    let mut s = fast();
    s.retry.max_attempts = 2;
    s
}

fn step<'a>(r: &'a doctor::DoctorReport, name: &str) -> &'a doctor::Check {
    r.checks
        .iter()
        .find(|c| c.step == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {r:#?}"))
}

#[tokio::test]
async fn doctor_passes_on_a_healthy_connection_and_walks_each_operation() {
    let base = serve(|r| match r.path.as_str() {
        "/token" => token_ok("doc-token", 3600),
        "/users/u1/manager" => Resp::json(
            404,
            serde_json::json!({"error": {"code": "Request_ResourceNotFound"}}),
        ),
        _ => bearer_only("doc-token", users_listing)(r),
    })
    .await;
    let c = doctor_client("entra", &base, one_attempt());
    let ops = doctor::default_operations(&c);
    assert_eq!(
        ops,
        [
            Operation::ListUsers,
            Operation::ListGroups,
            Operation::GroupMembers,
            Operation::UserManager
        ]
    );
    let r = doctor::run(&c, &ops).await;
    assert!(!r.failed(), "{r:#?}");
    assert_eq!(step(&r, "tcp").status, CheckStatus::Pass);
    assert_eq!(step(&r, "tls").status, CheckStatus::Skip);
    assert!(step(&r, "token").detail.contains("valid for 3600 s"));
    assert!(step(&r, "list_users")
        .detail
        .contains("record(s) on the first page"));
    assert_eq!(
        step(&r, "user_manager").status,
        CheckStatus::Pass,
        "404 = no manager, fine"
    );
}

#[tokio::test]
async fn doctor_diagnoses_dns_failure() {
    let c = doctor_client(
        "entra",
        "https://login.nonexistent-usersync-host.invalid",
        one_attempt(),
    );
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    let dns = step(&r, "dns");
    assert_eq!(dns.status, CheckStatus::Fail);
    assert!(
        dns.diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("does not resolve"),
        "{dns:?}"
    );
    assert!(step(&r, "token")
        .diagnosis
        .as_deref()
        .unwrap_or_default()
        .contains("does not resolve"));
    assert_eq!(step(&r, "list_users").status, CheckStatus::Skip);
}

#[tokio::test]
async fn doctor_diagnoses_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = doctor_client("okta", &format!("https://127.0.0.1:{port}"), one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    let tcp = step(&r, "tcp");
    assert_eq!(tcp.status, CheckStatus::Fail);
    assert!(
        tcp.diagnosis.as_deref().unwrap_or_default().contains("refused"),
        "{tcp:?}"
    );
}

/// A server that accepts TCP and resets the connection (what a blocking firewall or proxy does
/// to the TLS handshake).
async fn resetting_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_zero_linger();
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(sock);
        }
    });
    port
}

#[tokio::test]
async fn doctor_diagnoses_connection_reset_during_the_tls_handshake() {
    let port = resetting_server().await;
    let c = doctor_client("entra", &format!("https://127.0.0.1:{port}"), one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    assert!(r.failed());
    assert_eq!(step(&r, "tcp").status, CheckStatus::Pass);
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Fail);
    let diag = tls.diagnosis.clone().unwrap_or_default();
    assert!(
        diag.contains(&format!(
            "connection to 127.0.0.1:{port} was reset during the TLS handshake"
        )),
        "{diag}"
    );
    let fix = tls.fix.clone().unwrap_or_default();
    assert!(
        fix.contains("outbound HTTPS") && fix.contains("usersync connectors endpoints --hosts"),
        "{fix}"
    );
    let token = step(&r, "token");
    assert_eq!(token.status, CheckStatus::Fail);
    assert!(
        token
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("was reset"),
        "{token:?}"
    );
}

#[tokio::test]
async fn doctor_diagnoses_an_untrusted_certificate_and_reports_a_trusted_one() {
    let (cert_pem, config) = self_signed();
    let base = https_server(config).await;
    let c = doctor_client("okta", &base, one_attempt());
    let r = doctor::run(&c, &[]).await;
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Fail);
    assert!(
        tls.diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("not trusted"),
        "{tls:?}"
    );
    assert!(
        tls.fix.as_deref().unwrap_or_default().contains("ca_bundle"),
        "{tls:?}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).expect("write");
    let mut s = one_attempt();
    s.ca_bundle = Some(ca);
    let c = doctor_client("okta", &base, s);
    let r = doctor::run(&c, &[]).await;
    let tls = step(&r, "tls");
    assert_eq!(tls.status, CheckStatus::Pass, "{tls:?}");
    assert!(
        tls.detail.contains("subject") && tls.detail.contains("expires"),
        "{tls:?}"
    );
}

#[tokio::test]
async fn doctor_diagnoses_a_proxy_that_refuses_the_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if let Ok(mut s) = seen2.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = sock
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let mut s = one_attempt();
    s.proxy = Some(format!("http://proxyuser:proxy-pass-123@127.0.0.1:{port}"));
    let c = doctor_client("entra", "https://login.idp.example.test", s);
    let r = doctor::run(&c, &[]).await;
    assert!(r.failed());
    let proxy = step(&r, "proxy");
    assert_eq!(proxy.status, CheckStatus::Fail);
    assert!(
        proxy
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("refused the tunnel to login.idp.example.test:443"),
        "{proxy:?}"
    );
    assert!(seen
        .lock()
        .expect("seen")
        .starts_with("CONNECT login.idp.example.test:443 HTTP/1.1"));
    let json = serde_json::to_string(&r).expect("json");
    assert!(
        !json.contains("proxy-pass-123"),
        "the proxy password never appears: {json}"
    );
}

#[tokio::test]
async fn doctor_names_the_missing_permission_on_401_and_403() {
    for (status, id, words) in [
        (401u16, "okta", "API token"),
        (403, "entra", "User.Read.All"),
        (403, "keycloak", "view-users"),
        (403, "google", "domain-wide delegation"),
        (403, "onelogin", "Read users"),
    ] {
        let base = serve(move |r| match r.path.as_str() {
            "/token" => token_ok("tok", 3600),
            _ => Resp::json(status, serde_json::json!({"error": "denied"})),
        })
        .await;
        let c = doctor_client(id, &base, one_attempt());
        let r = doctor::run(&c, &[Operation::ListUsers]).await;
        assert!(r.failed(), "{id}");
        let check = step(&r, "list_users");
        let text = format!("{:?} {:?}", check.diagnosis, check.fix);
        assert!(
            text.contains(&format!("HTTP {status}")) && text.contains(words),
            "{id} {status}: {text}"
        );
    }
}

#[tokio::test]
async fn doctor_explains_a_rejected_client_secret() {
    let base = serve(|_| {
        Resp::json(401, serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is doc-secret\r\nTrace ID: 1"}))
    })
    .await;
    let c = doctor_client("entra", &base, one_attempt());
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    let token = step(&r, "token");
    assert_eq!(token.status, CheckStatus::Fail);
    assert!(
        token.detail.contains("invalid_client") && token.detail.contains("AADSTS7000215"),
        "{token:?}"
    );
    assert!(
        !token.detail.contains("doc-secret"),
        "an echoed secret is scrubbed: {token:?}"
    );
    assert!(token
        .diagnosis
        .as_deref()
        .unwrap_or_default()
        .contains("rejected the client credentials"));
}

// ---------------------------------------------------------------------------------------------
// auth login (authorization code + refresh token)

#[tokio::test]
async fn auth_login_stores_the_refresh_token_0600_and_the_flow_uses_it() {
    let challenge = Arc::new(Mutex::new(String::new()));
    let ch = challenge.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => {
            let f = r.form();
            assert_eq!(f.get("client_id").map(String::as_str), Some("web-client"));
            assert_eq!(f.get("client_secret").map(String::as_str), Some("web-secret"));
            match f.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    assert_eq!(f.get("code").map(String::as_str), Some("the-code"));
                    let verifier = f.get("code_verifier").expect("pkce verifier");
                    let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
                    assert_eq!(*ch.lock().expect("challenge"), expected);
                    assert!(f.get("redirect_uri").expect("redirect").starts_with("http://127.0.0.1:"));
                    Resp::json(200, serde_json::json!({"access_token": "at-0", "expires_in": 3599, "token_type": "Bearer", "refresh_token": "rt-1"}))
                }
                Some("refresh_token") => {
                    assert_eq!(f.get("refresh_token").map(String::as_str), Some("rt-1"));
                    // the provider rotates the refresh token
                    Resp::json(200, serde_json::json!({"access_token": "at-1", "expires_in": 3599, "token_type": "Bearer", "refresh_token": "rt-2"}))
                }
                other => panic!("grant {other:?}"),
            }
        }
        _ => bearer_only("at-1", users_listing)(r),
    })
    .await;
    let plan = AuthPlan::RefreshToken {
        authorize_url: format!("{base}/authorize"),
        token_url: format!("{base}/token"),
        client_id: "web-client".into(),
        secret_option: "client_secret".into(),
        scopes: vec!["https://www.googleapis.com/auth/admin.directory.user.readonly".into()],
    };
    let dir = tempfile::tempdir().expect("dir");
    let cred_path = dir.path().join("creds").join("conn.json");
    let secret = Secret::new("web-secret");
    let settings = fast();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let browser = tokio::spawn(async move {
        let url = url::Url::parse(&rx.await.expect("url")).expect("authorize url");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["access_type"], "offline");
        *challenge.lock().expect("challenge") = q["code_challenge"].clone();
        let redirect = format!("{}?code=the-code&state={}", q["redirect_uri"], q["state"]);
        let page = reqwest::get(&redirect)
            .await
            .expect("redirect")
            .text()
            .await
            .expect("page");
        assert!(page.contains("You can close this window"));
    });
    let cred = usersync_runtime::login::login(
        usersync_runtime::login::LoginRequest {
            connection: "conn",
            plan: &plan,
            client_secret: &secret,
            credential_file: &cred_path,
            settings: &settings,
            listen: "127.0.0.1:0".parse().expect("addr"),
            timeout: Duration::from_secs(10),
        },
        move |u| {
            let _ = tx.send(u.to_string());
        },
    )
    .await
    .expect("login");
    browser.await.expect("browser");
    assert!(!format!("{cred:?}").contains("rt-1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cred_path).expect("file").permissions().mode() & 0o777,
        0o600
    );
    let mut s = fast();
    s.credential_file = Some(cred_path.clone());
    let c = client_with("google", &base, plan, &[("client_secret", "web-secret")], s);
    assert_eq!(
        c.run_query(&Query::ListUsers).await.expect("users").records.len(),
        3
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cred_path).expect("read")).expect("json");
    assert_eq!(
        stored["refresh_token"], "rt-2",
        "a rotated refresh token is stored"
    );
    assert_eq!(
        std::fs::metadata(&cred_path).expect("file").permissions().mode() & 0o777,
        0o600
    );
}

// ---------------------------------------------------------------------------------------------
// No secret in trace-level logs

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_appears_in_trace_level_logs_or_errors() {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let buf = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish();
    let _guard = subscriber.set_default();

    let client_secret = "cs-VERY-SECRET-1";
    let api_token = "ssws-VERY-SECRET-2";
    let access = "at-VERY-SECRET-3";
    let key_line = TEST_KEY.lines().nth(3).expect("key line").to_string();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    // client secret flow with a 401 refresh, a 503 retry and a 429 wait
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let base = serve(move |r| match r.path.as_str() {
        "/token" => token_ok(access, 3600),
        _ => match c2.fetch_add(1, Ordering::SeqCst) {
            0 => Resp::json(401, serde_json::json!({})),
            1 => Resp::json(503, serde_json::json!({})),
            2 => Resp::json(429, serde_json::json!({})).with("Retry-After", "0"),
            _ => users_listing(r),
        },
    })
    .await;
    let plan = AuthPlan::ClientCredentialsSecret {
        token_url: format!("{base}/token"),
        client_id: "id".into(),
        secret_option: "client_secret".into(),
        client_auth: ClientAuth::FormBody,
        scopes: vec![],
    };
    let c = client("entra", &base, plan, &[("client_secret", client_secret)]);
    c.run_query(&Query::ListUsers).await.expect("users");

    // API token, and an endpoint that echoes the credential back in an error body
    let base = serve(|r| {
        Resp::json(403, serde_json::json!({"message": format!("forbidden for {}", r.header("authorization").unwrap_or_default())}))
    })
    .await;
    let c = client("okta", &base, api_token_plan(), &[("api_token", api_token)]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    errors.lock().expect("errors").push(format!("{e} {e:?}"));

    // assertion flow against a token endpoint that rejects it and echoes the assertion
    let base = serve(|r| {
        Resp::json(
            401,
            serde_json::json!({"error": "invalid_client", "error_description": r.body.clone()}),
        )
    })
    .await;
    let plan = AuthPlan::ClientCredentialsAssertion {
        token_url: format!("{base}/token"),
        client_id: "c".into(),
        key_option: "private_key".into(),
        cert_option: None,
        key_id: None,
        alg: AssertionAlg::RS256,
        scopes: vec![],
        dpop: false,
    };
    let c = client("okta", &base, plan, &[("private_key", TEST_KEY)]);
    let e = c.run_query(&Query::ListUsers).await.unwrap_err();
    errors.lock().expect("errors").push(format!("{e} {e:?}"));
    let r = doctor::run(&c, &[Operation::ListUsers]).await;
    errors
        .lock()
        .expect("errors")
        .push(serde_json::to_string(&r).expect("json"));

    let logs = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf8");
    assert!(logs.contains("http_request"), "trace logs were captured");
    assert!(logs.contains("token_request"));
    let errors = errors.lock().expect("errors").join("\n");
    for secret in [client_secret, api_token, access, key_line.as_str()] {
        assert!(!logs.contains(secret), "secret `{secret}` leaked into the logs");
        assert!(
            !errors.contains(secret),
            "secret `{secret}` leaked into an error: {errors}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// End to end through the CLI: `usersync -vvv doctor` against the Okta emulator

/// Kills the emulator process when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cli_doctor_checks_each_okta_flow_and_trace_logs_hold_no_secret() {
    use std::io::BufRead as _;
    let bin = crate::support::usersync_bin();
    let dir = tempfile::tempdir().expect("dir");
    let mut emu = Child(
        std::process::Command::new(&bin)
            .args([
                "emulator",
                "--provider",
                "okta",
                "--users",
                "12",
                "--groups",
                "4",
                "--tls",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("emu"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the emulator"),
    );
    let mut line = String::new();
    std::io::BufReader::new(emu.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("emulator banner");
    let j: serde_json::Value = serde_json::from_str(&line).expect("emulator JSON");
    let https = j["https_url"].as_str().expect("https url");
    let ca = j["ca_path"].as_str().expect("ca path");
    let key_path = j["client"]["auth"]["oauth"]["private_key_path"]
        .as_str()
        .expect("key");
    let client_id = j["credentials"]["client_id"].as_str().expect("client id");
    let token = j["credentials"]["api_token"].as_str().expect("token").to_string();
    let limited = j["credentials"]["limited_api_token"]
        .as_str()
        .expect("limited")
        .to_string();
    let config = dir.path().join("usersync.toml");
    std::fs::write(
        &config,
        format!(
            r#"[runtime]
ca_bundle = "{ca}"

[[connections]]
name = "okta-token"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
api_token = {{ env = "RT_OKTA_TOKEN" }}

[[connections]]
name = "okta-service-app"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
client_id = "{client_id}"
private_key = {{ file = "{key_path}" }}
signing_alg = "ES256"
dpop = true

[[connections]]
name = "okta-limited"
connector = "okta"
[connections.options]
base_url = "{https}"
domain = "{https}"
api_token = {{ env = "RT_OKTA_LIMITED" }}
"#
        ),
    )
    .expect("config");
    let out = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["-vvv", "doctor"])
        .env("RT_OKTA_TOKEN", &token)
        .env("RT_OKTA_LIMITED", &limited)
        .env_remove("RUST_LOG")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the limited token fails a required check\n{stdout}\n{stderr}"
    );
    let section = |name: &str| {
        let start = stdout
            .find(&format!("connection `{name}`"))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        let rest = &stdout[start + 1..];
        rest[..rest.find("\nconnection `").unwrap_or(rest.len())].to_string()
    };
    let service = section("okta-service-app");
    assert!(!service.contains("FAIL"), "{service}");
    assert!(
        service.contains("DPoP token issued") && service.contains("issuer `CN=usersync emulator"),
        "{service}"
    );
    assert!(!section("okta-token").contains("FAIL"), "{stdout}");
    let limited_out = section("okta-limited");
    assert!(
        limited_out.contains("FAIL")
            && limited_out.contains("HTTP 403")
            && limited_out.contains("okta.groups.read"),
        "{limited_out}"
    );
    assert!(
        stderr.contains("http_request") && stderr.contains("token_request"),
        "trace logs were written"
    );
    let key = std::fs::read_to_string(key_path).expect("key");
    let mut secrets = vec![token, limited];
    secrets.extend(
        key.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(String::from),
    );
    for s in secrets {
        assert!(
            !stdout.contains(&s) && !stderr.contains(&s),
            "a secret leaked into the doctor output or its trace logs"
        );
    }
}
