//! Integration tests: runtime (HTTP executor, auth flows, retries and rate limits, doctor,
//! `auth login`, secret hygiene in trace logs). Every server here is local (127.0.0.1) and checks
//! requests the way the provider does.

mod auth;
mod diagnoses;
mod limits;
mod secrets;

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

fn api_token_plan() -> AuthPlan {
    AuthPlan::ApiToken {
        header: "Authorization".into(),
        scheme: "SSWS".into(),
        secret_option: "api_token".into(),
    }
}
