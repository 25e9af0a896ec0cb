//! `usersync doctor`: for each host a connection needs, DNS resolution, TCP connect, proxy
//! tunnel and TLS handshake (certificate subject and expiry); then the token request; then one
//! minimal call per operation the sync uses. Every failed step gets a plain-language diagnosis
//! and a fix.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use usersync_sdk::{ConnectorError, Operation, Query};

use crate::client::ConnectionClient;
use crate::error::{RuntimeError, TransportKind};
use crate::settings::ConnectionSettings;
use crate::transport::{self, redact_url};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Worked.
    Pass,
    /// Worked, with something to look at.
    Warn,
    /// Failed.
    Fail,
    /// Not run (an earlier step failed, or it does not apply).
    Skip,
}

impl CheckStatus {
    /// Lower-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skip => "skip",
        }
    }
}

/// One step of the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Step: `dns`, `tcp`, `proxy`, `tls`, `token`, or an operation name (`list_users`...).
    pub step: String,
    /// What was checked (`host:port`, a URL without query, an operation).
    pub target: String,
    /// Outcome.
    pub status: CheckStatus,
    /// Whether a failure makes the whole doctor run fail (non-zero exit).
    pub required: bool,
    /// What happened (certificate subject and expiry, token lifetime, record counts, errors).
    pub detail: String,
    /// Plain-language explanation of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(step: &str, target: &str, detail: impl Into<String>) -> Check {
        Check {
            step: step.into(),
            target: target.into(),
            status: CheckStatus::Pass,
            required: true,
            detail: detail.into(),
            diagnosis: None,
            fix: None,
        }
    }

    fn fail(step: &str, target: &str, detail: impl Into<String>, diagnosis: String, fix: String) -> Check {
        Check {
            step: step.into(),
            target: target.into(),
            status: CheckStatus::Fail,
            required: true,
            detail: detail.into(),
            diagnosis: Some(diagnosis),
            fix: Some(fix),
        }
    }

    fn skip(step: &str, target: &str, why: impl Into<String>) -> Check {
        Check {
            step: step.into(),
            target: target.into(),
            status: CheckStatus::Skip,
            required: false,
            detail: why.into(),
            diagnosis: None,
            fix: None,
        }
    }
}

/// The result of `doctor` for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    /// Connection name.
    pub connection: String,
    /// Connector id.
    pub connector: String,
    /// Steps in the order run.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// True when a required check failed.
    pub fn failed(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.required && c.status == CheckStatus::Fail)
    }
}

const HOSTS_HINT: &str = "`usersync connectors endpoints --hosts` lists every host to allow";

/// The operations `doctor` calls by default for a connector: list users and groups, then the
/// membership, manager and role calls its capabilities imply.
pub fn default_operations(client: &ConnectionClient) -> Vec<Operation> {
    let m = client.manifest();
    let mut ops = vec![Operation::ListUsers];
    for op in [
        Operation::ListGroups,
        Operation::GroupMembers,
        Operation::UserGroups,
        Operation::UserManager,
        Operation::ListRoles,
        Operation::RoleMembers,
    ] {
        let wanted = match op {
            Operation::UserManager => m.capabilities.manager,
            Operation::ListRoles | Operation::RoleMembers => m.capabilities.roles_as_groups,
            Operation::UserGroups => !m.supports(Operation::GroupMembers),
            _ => true,
        };
        if wanted && m.supports(op) {
            ops.push(op);
        }
    }
    ops
}

/// What the connection's sync needs beyond users, groups and memberships: a failing call it
/// needs is a failure, one it does not need only a warning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Roles are synced as groups (`roles_as_groups`): `list_roles` and `role_members` must work.
    pub roles: bool,
    /// Photos are synced: `user_photo` must work.
    pub photos: bool,
}

impl Needs {
    /// What a connection's sync policy needs.
    pub fn of(policy: &usersync_config::Policy) -> Needs {
        Needs {
            roles: policy.roles_as_groups,
            photos: policy.photos != usersync_config::PhotoMode::Off,
        }
    }
}

/// Operations where "not found" is an answer about the data (no manager, no photo), not a
/// missing endpoint.
fn not_found_is_an_answer(op: Operation) -> bool {
    matches!(op, Operation::UserManager | Operation::UserPhoto)
}

/// Run every check for one connection, for a policy that syncs neither roles nor photos.
pub async fn run(client: &ConnectionClient, operations: &[Operation]) -> DoctorReport {
    run_for(client, operations, Needs::default()).await
}

/// Run every check for one connection whose sync needs `needs`.
pub async fn run_for(client: &ConnectionClient, operations: &[Operation], needs: Needs) -> DoctorReport {
    let mut checks = Vec::new();
    let session = client.session();
    let plan = session.auth_plan();
    let mut urls: Vec<String> = plan.token_url().map(String::from).into_iter().collect();
    urls.extend(session.base_urls());
    let mut seen = BTreeSet::new();
    let mut network_ok = true;
    for u in urls {
        let Ok(parsed) = url::Url::parse(&u) else { continue };
        let key = (
            parsed.scheme().to_string(),
            parsed.host_str().unwrap_or_default().to_string(),
            parsed.port_or_known_default(),
        );
        if !seen.insert(key) {
            continue;
        }
        let host_checks = check_host(client.settings(), &parsed).await;
        network_ok &= !host_checks.iter().any(|c| c.status == CheckStatus::Fail);
        checks.extend(host_checks);
    }
    let connector = client.manifest().id.clone();
    let token_target = plan
        .token_url()
        .map(redact_url)
        .unwrap_or_else(|| "static API token".into());
    let token_ok = match client.fetch_token().await {
        Ok(Some(info)) => {
            let mut detail = format!(
                "{} token issued, valid for {} s",
                info.token_type,
                info.expires_in.as_secs()
            );
            if let Some(s) = info.scope {
                detail.push_str(&format!(", scope: {s}"));
            }
            checks.push(Check::pass("token", &token_target, detail));
            true
        }
        Ok(None) => {
            checks.push(Check::skip(
                "token",
                &token_target,
                "no token endpoint: the token is checked by the calls below",
            ));
            true
        }
        Err(e) => {
            let (diagnosis, fix) = diagnose(&connector, "token", &e);
            checks.push(Check::fail("token", &token_target, e.to_string(), diagnosis, fix));
            false
        }
    };
    if connector == "google" && matches!(plan, usersync_sdk::AuthPlan::RefreshToken { .. }) {
        // Not visible through the API, so always said: the commonest cause of a sync that worked
        // for a week and then fails with `invalid_grant`.
        checks.push(Check {
            step: "refresh token".into(),
            target: token_target.clone(),
            status: CheckStatus::Warn,
            required: false,
            detail: "authorization-code flow with a stored refresh token".into(),
            diagnosis: Some(
                "Google expires the refresh tokens of OAuth apps whose publishing status is \"Testing\" \
                 after 7 days; the sync then fails with invalid_grant"
                    .into(),
            ),
            fix: Some(
                "in Google Cloud console > APIs & Services > OAuth consent screen, set the app to \"In \
                 production\" (an Internal app needs no verification) and run `usersync auth login` again, or \
                 use a service account with domain-wide delegation"
                    .into(),
            ),
        });
    }
    let mut user_id: Option<String> = None;
    let mut group_id: Option<String> = None;
    let mut role_id: Option<String> = None;
    for op in operations {
        let target = op.as_str();
        if !token_ok {
            checks.push(Check::skip(target, target, "skipped: the token request failed"));
            continue;
        }
        let query = match op {
            Operation::ListUsers => Some(Query::ListUsers),
            Operation::ListGroups => Some(Query::ListGroups),
            Operation::ListRoles => Some(Query::ListRoles),
            Operation::GroupMembers => group_id.clone().map(|group_id| Query::GroupMembers { group_id }),
            Operation::GroupTransitiveMembers => group_id
                .clone()
                .map(|group_id| Query::GroupTransitiveMembers { group_id }),
            Operation::GroupChildren => group_id.clone().map(|group_id| Query::GroupChildren { group_id }),
            Operation::UserManager => user_id.clone().map(|user_id| Query::UserManager { user_id }),
            Operation::UserGroups => user_id.clone().map(|user_id| Query::UserGroups { user_id }),
            Operation::UserTransitiveGroups => user_id
                .clone()
                .map(|user_id| Query::UserTransitiveGroups { user_id }),
            Operation::GetUser => user_id.clone().map(|user_id| Query::GetUser { user_id }),
            Operation::UserPhoto => user_id.clone().map(|user_id| Query::UserPhoto { user_id }),
            Operation::RoleMembers => role_id.clone().map(|role_id| Query::RoleMembers { role_id }),
            Operation::UsersDelta => Some(Query::UsersDelta { since: None }),
            Operation::GroupsDelta => Some(Query::GroupsDelta { since: None }),
            Operation::Token | Operation::Authorize => None,
        };
        let Some(query) = query else {
            checks.push(Check::skip(
                target,
                target,
                "skipped: no user, group or role was found to try it on",
            ));
            continue;
        };
        let started = Instant::now();
        match client.first_page(&query).await {
            Ok(out) => {
                for r in &out.records {
                    match r {
                        usersync_model::Record::User(u) if user_id.is_none() => user_id = Some(u.id.clone()),
                        usersync_model::Record::Group(g)
                            if *op == Operation::ListGroups && group_id.is_none() =>
                        {
                            group_id = Some(g.id.clone())
                        }
                        usersync_model::Record::Group(g)
                            if *op == Operation::ListRoles && role_id.is_none() =>
                        {
                            role_id = Some(g.id.clone())
                        }
                        _ => {}
                    }
                }
                checks.push(Check::pass(
                    target,
                    target,
                    format!(
                        "{} record(s) on the first page in {} ms",
                        out.records.len(),
                        started.elapsed().as_millis()
                    ),
                ));
            }
            Err(RuntimeError::Connector {
                source: ConnectorError::NotFound { detail },
                ..
            }) if not_found_is_an_answer(*op) => checks.push(Check::pass(
                target,
                target,
                format!("answered \"not found\" (fine: {detail})"),
            )),
            Err(RuntimeError::Connector {
                source: ConnectorError::Unsupported { .. },
                ..
            }) => checks.push(Check::skip(target, target, "not supported by this connector")),
            Err(e) => {
                let (diagnosis, fix) = diagnose(&connector, target, &e);
                let mut c = Check::fail(target, target, e.to_string(), diagnosis, fix);
                if matches!(e, RuntimeError::RetriesExhausted { .. }) {
                    c.status = CheckStatus::Warn;
                }
                let needed = match op {
                    Operation::ListRoles | Operation::RoleMembers => needs.roles,
                    Operation::UserPhoto => needs.photos,
                    _ => true,
                };
                if !needed {
                    // only needed when the sync policy asks for roles or photos
                    c.status = CheckStatus::Warn;
                    c.required = false;
                    c.diagnosis = c
                        .diagnosis
                        .map(|d| format!("{d} (only needed if roles or photos are synced)"));
                }
                checks.push(c);
            }
        }
    }
    if !network_ok {
        tracing::debug!("network checks failed");
    }
    DoctorReport {
        connection: client.name().to_string(),
        connector,
        checks,
    }
}

fn proxy_display(p: &str) -> String {
    redact_url(p)
}

/// DNS, TCP, proxy and TLS checks for one URL's host.
pub async fn check_host(settings: &ConnectionSettings, url: &url::Url) -> Vec<Check> {
    let mut checks = Vec::new();
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let target = format!("{host}:{port}");
    let timeout = settings.connect_timeout;
    let proxy = transport::proxy_for(settings, url);
    let stream = if let Some(proxy_url) = proxy {
        match open_tunnel(&proxy_url, &host, port, timeout, &mut checks).await {
            Some(s) => s,
            None => return checks,
        }
    } else {
        let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await
        {
            Ok(Ok(a)) => a.collect::<Vec<_>>(),
            Ok(Err(e)) => {
                checks.push(dns_failure(&host, &target, &e.to_string()));
                return checks;
            }
            Err(_) => {
                checks.push(dns_failure(
                    &host,
                    &target,
                    "no answer from the DNS resolver in time",
                ));
                return checks;
            }
        };
        if addrs.is_empty() {
            checks.push(dns_failure(&host, &target, "no addresses"));
            return checks;
        }
        let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        checks.push(Check::pass(
            "dns",
            &host,
            format!("resolves to {}", shown.join(", ")),
        ));
        match connect_any(&addrs, timeout).await {
            Ok(s) => {
                checks.push(Check::pass(
                    "tcp",
                    &target,
                    format!(
                        "connected (no proxy) to {}",
                        s.peer_addr().map(|a| a.to_string()).unwrap_or_default()
                    ),
                ));
                s
            }
            Err(e) => {
                checks.push(tcp_failure(&target, &e, None));
                return checks;
            }
        }
    };
    if url.scheme() != "https" {
        checks.push(Check::skip(
            "tls",
            &target,
            "plain http on a loopback address (emulator or test)",
        ));
        return checks;
    }
    checks.push(tls_check(settings, &host, &target, stream, timeout).await);
    checks
}

fn dns_failure(host: &str, target: &str, why: &str) -> Check {
    let _ = target;
    Check::fail(
        "dns",
        host,
        format!("cannot resolve `{host}`: {why}"),
        format!("the name `{host}` does not resolve from this machine"),
        format!(
            "check the host name in the connection's options and this machine's DNS settings; if outbound \
             traffic must go through a proxy, set `proxy` for this connection (or HTTPS_PROXY) so the proxy \
             resolves names; {HOSTS_HINT}"
        ),
    )
}

fn tcp_failure(target: &str, e: &std::io::Error, proxy: Option<&str>) -> Check {
    let via = proxy.map(|p| format!(" (proxy {p})")).unwrap_or_default();
    let (diagnosis, fix) = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => (
            format!("nothing accepts connections on {target}{via}: the connection was refused"),
            match proxy {
                Some(_) => "check the proxy address and port in `proxy` / HTTPS_PROXY".to_string(),
                None => format!(
                    "check the URL and port in the connection's options; if this network only allows outbound \
                     traffic through a proxy, set `proxy`; {HOSTS_HINT}"
                ),
            },
        ),
        std::io::ErrorKind::TimedOut => (
            format!("no answer from {target}{via}: a firewall probably drops the traffic"),
            format!("this server needs outbound HTTPS to that host (or the proxy setting); {HOSTS_HINT}"),
        ),
        _ => (
            format!("cannot open a TCP connection to {target}{via}: {e}"),
            format!("this server needs outbound HTTPS to that host (or the proxy setting); {HOSTS_HINT}"),
        ),
    };
    Check::fail(
        if proxy.is_some() { "proxy" } else { "tcp" },
        target,
        e.to_string(),
        diagnosis,
        fix,
    )
}

async fn connect_any(addrs: &[std::net::SocketAddr], timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", timeout.as_secs()),
                )
            }
        }
    }
    Err(last)
}

/// Connect to the proxy and open a CONNECT tunnel to `host:port`.
async fn open_tunnel(
    proxy_url: &str,
    host: &str,
    port: u16,
    timeout: Duration,
    checks: &mut Vec<Check>,
) -> Option<TcpStream> {
    let shown = proxy_display(proxy_url);
    let target = format!("{host}:{port}");
    let with_scheme = if proxy_url.contains("://") {
        proxy_url.to_string()
    } else {
        format!("http://{proxy_url}")
    };
    let Ok(p) = url::Url::parse(&with_scheme) else {
        checks.push(Check::fail(
            "proxy",
            &shown,
            "not a URL",
            format!("the proxy setting `{shown}` is not a URL"),
            "write it as http://host:port (user:password@ allowed)".into(),
        ));
        return None;
    };
    let phost = p
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let pport = p.port_or_known_default().unwrap_or(3128);
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((phost.as_str(), pport))).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                format!("cannot resolve the proxy host `{phost}`: {e}"),
                format!("the proxy host `{phost}` does not resolve"),
                "check `proxy` / HTTPS_PROXY".into(),
            ));
            return None;
        }
        Err(_) => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                "DNS timeout",
                format!("the proxy host `{phost}` does not resolve in time"),
                "check `proxy` / HTTPS_PROXY and DNS".into(),
            ));
            return None;
        }
    };
    let mut stream = match connect_any(&addrs, timeout).await {
        Ok(s) => s,
        Err(e) => {
            checks.push(tcp_failure(&format!("{phost}:{pport}"), &e, Some(&shown)));
            return None;
        }
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !p.username().is_empty() {
        use base64::Engine as _;
        let user = percent_decode(p.username());
        let pass = percent_decode(p.password().unwrap_or_default());
        request.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        ));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut byte).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection",
                ));
            }
            buf.push(byte[0]);
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    let head = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                format!("CONNECT {target}: {e}"),
                format!("the proxy {shown} dropped the tunnel request to {target}"),
                format!("ask the proxy administrators to allow CONNECT to {target}; {HOSTS_HINT}"),
            ));
            return None;
        }
        Err(_) => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                format!("CONNECT {target}: no answer"),
                format!("the proxy {shown} did not answer the tunnel request"),
                "check the proxy address".into(),
            ));
            return None;
        }
    };
    let status_line = head.lines().next().unwrap_or_default().to_string();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    match code {
        200..=299 => {
            checks.push(Check::pass(
                "proxy",
                &shown,
                format!("tunnel to {target} opened ({status_line})"),
            ));
            Some(stream)
        }
        407 => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                status_line,
                format!("the proxy {shown} requires authentication"),
                "put the proxy credentials in the proxy URL (http://user:password@proxy:port), from a secret"
                    .into(),
            ));
            None
        }
        _ => {
            checks.push(Check::fail(
                "proxy",
                &shown,
                status_line.clone(),
                format!("the proxy {shown} refused the tunnel to {target} ({status_line})"),
                format!("ask the proxy administrators to allow HTTPS (CONNECT) to {target}; {HOSTS_HINT}"),
            ));
            None
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn tls_check(
    settings: &ConnectionSettings,
    host: &str,
    target: &str,
    stream: TcpStream,
    timeout: Duration,
) -> Check {
    let config = match transport::tls_config(settings.ca_bundle.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            return Check::fail(
                "tls",
                target,
                e.to_string(),
                "the extra CA bundle cannot be used".into(),
                "fix `ca_bundle`".into(),
            )
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(name) = rustls_pki_types::ServerName::try_from(host.to_string()) else {
        return Check::fail(
            "tls",
            target,
            "invalid server name",
            format!("`{host}` is not a valid TLS server name"),
            "check the URL".into(),
        );
    };
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
                return Check::pass("tls", target, "handshake ok");
            };
            match x509_parser::parse_x509_certificate(cert.as_ref()) {
                Ok((_, parsed)) => {
                    let not_after = parsed.validity().not_after;
                    let left = not_after.timestamp() - crate::auth::jwt::now_epoch() as i64;
                    let detail = format!(
                        "certificate subject `{}`, issuer `{}`, expires {} ({} days left)",
                        parsed.subject(),
                        parsed.issuer(),
                        not_after,
                        left / 86_400
                    );
                    let mut c = Check::pass("tls", target, detail);
                    if left < 14 * 86_400 {
                        c.status = CheckStatus::Warn;
                        c.diagnosis = Some("the server certificate expires within 14 days".into());
                        c.fix = Some(
                            "nothing to do here unless it is your own server or proxy; tell its owner".into(),
                        );
                    }
                    c
                }
                Err(_) => Check::pass("tls", target, "handshake ok (certificate not parsed)"),
            }
        }
        Ok(Err(e)) => {
            let tls_err = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            match tls_err {
                Some(err) => Check::fail(
                    "tls",
                    target,
                    format!("TLS handshake failed: {err}"),
                    format!("the certificate presented for {target} is not trusted or not valid for that name ({err})"),
                    "if a corporate proxy inspects TLS, add its CA certificate with `ca_bundle = \"/path/ca.pem\"`; \
                     certificate verification is never disabled"
                        .into(),
                ),
                None => reset_during_handshake(target, &e.to_string()),
            }
        }
        Err(_) => Check::fail(
            "tls",
            target,
            "TLS handshake timed out",
            format!("{target} accepted the TCP connection but never completed the TLS handshake"),
            format!("this server needs outbound HTTPS to that host (or the proxy setting); {HOSTS_HINT}"),
        ),
    }
}

fn reset_during_handshake(target: &str, detail: &str) -> Check {
    Check::fail(
        "tls",
        target,
        format!("TLS handshake failed: {detail}"),
        format!("connection to {target} was reset during the TLS handshake (typically a firewall or proxy cutting HTTPS to this host)"),
        format!("this server needs outbound HTTPS to that host (or the proxy setting); {HOSTS_HINT}"),
    )
}

/// What a provider needs when a call is rejected with 401 or 403.
pub fn permission_hint(connector: &str, status: u16) -> String {
    match (connector, status) {
        ("entra", 401) => "the token was rejected: check tenant_id and client_id, and that the client secret or certificate is current (Entra admin center > App registrations > Certificates & secrets)".into(),
        ("entra", _) => "the app registration needs Microsoft Graph application permissions User.Read.All and GroupMember.Read.All (or Group.Read.All / Directory.Read.All) with admin consent granted (App registrations > API permissions > Grant admin consent)".into(),
        ("google", _) => "the service account needs domain-wide delegation for the scopes admin.directory.user.readonly, admin.directory.group.readonly and admin.directory.group.member.readonly (Admin console > Security > API controls > Domain-wide delegation, using the service account's client ID), and the impersonated `sub` must be an administrator's email".into(),
        ("keycloak", 401) => "the token was rejected: check client_id and the client secret (or the signed-JWT key) of the confidential client, and that \"Service accounts roles\" is enabled".into(),
        ("keycloak", _) => "the client's service account needs the realm-management client roles view-users, query-users and query-groups (Clients > your client > Service accounts roles > Assign role)".into(),
        ("okta", 401) => "the credential was rejected: for an API token check it has not expired or been revoked (Security > API > Tokens); for an OAuth service app check client_id, the key and DPoP".into(),
        ("okta", _) => "the OAuth service app needs the scopes okta.users.read and okta.groups.read granted (Okta API Scopes tab) and an admin role such as Read-Only Administrator; an API token acts with its creator's admin role, which must be able to read users and groups".into(),
        ("onelogin", 401) => "the token request was refused: check client_id and client_secret of the API credential (Developers > API Credentials; a regenerated secret replaces the old one, and deleting the user who created the credential invalidates it)".into(),
        ("onelogin", _) => "the API credential needs the scope \"Read users\" (or \"Read all\"); create or edit it under Developers > API Credentials".into(),
        (_, 401) => "the credentials were rejected".into(),
        _ => "the credential lacks a permission this call needs".into(),
    }
}

/// A diagnosis and a fix for an error of `step`.
pub fn diagnose(connector: &str, step: &str, e: &RuntimeError) -> (String, String) {
    match e {
        RuntimeError::Transport {
            kind, url, detail, ..
        } => {
            let host = url::Url::parse(url)
                .ok()
                .map(|u| {
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or_default(),
                        u.port_or_known_default().unwrap_or(443)
                    )
                })
                .unwrap_or_else(|| url.clone());
            let fix =
                format!("this server needs outbound HTTPS to that host (or the proxy setting); {HOSTS_HINT}");
            match kind {
                TransportKind::Dns => (format!("the name in {url} does not resolve"), fix),
                TransportKind::ConnectRefused => (format!("nothing accepts connections on {host} (connection refused)"), fix),
                TransportKind::Reset => (
                    format!("connection to {host} was reset{}", if detail.to_ascii_lowercase().contains("tls") || detail.contains("handshake") { " during the TLS handshake" } else { "" }),
                    fix,
                ),
                TransportKind::Tls => (
                    format!("the TLS certificate of {host} is not trusted or not valid"),
                    "if a corporate proxy inspects TLS, add its CA with `ca_bundle`; verification is never disabled".into(),
                ),
                TransportKind::Timeout => (format!("{host} did not answer in time"), fix),
                TransportKind::Truncated => (
                    format!("{host} cut its answer short (the body ended before its announced length)"),
                    "a proxy or load balancer in between may be closing connections early; check its timeouts and body size limits".into(),
                ),
                TransportKind::Proxy => ("the proxy refused or failed the connection".into(), "check `proxy` / HTTPS_PROXY and that the proxy allows this host".into()),
                TransportKind::Other => (format!("the request to {host} failed: {detail}"), fix),
            }
        }
        RuntimeError::Token {
            status,
            error,
            advice,
            ..
        } => {
            let err = error.as_deref().unwrap_or_default();
            let generic = match err {
                "invalid_client" | "unauthorized_client" if connector == "google" => permission_hint("google", 403),
                "invalid_client" | "unauthorized_client" => format!(
                    "the token endpoint rejected the client credentials ({err}): the client id, secret or key is wrong, expired or not registered; {}",
                    permission_hint(connector, 401)
                ),
                "invalid_grant" => "the grant was rejected (invalid_grant): an assertion signed with the wrong key or with a skewed clock, a revoked refresh token (run `usersync auth login <connection>` again), or wrong user credentials".into(),
                "invalid_scope" => "a requested scope is not granted to this client".into(),
                "invalid_dpop_proof" | "use_dpop_nonce" => "the DPoP proof was rejected; check the service app's DPoP setting".into(),
                _ if *status == 401 || *status == 403 => permission_hint(connector, 401),
                _ => format!("the token endpoint answered HTTP {status}"),
            };
            // The connector's reading (e.g. Entra's AADSTS code advice) is the most specific.
            let base = match advice {
                Some(a) => format!("{a}; {generic}"),
                None => generic,
            };
            (
                base,
                "fix the credentials in the connection's options and run `usersync doctor` again".into(),
            )
        }
        RuntimeError::Connector { source, .. } => match source {
            ConnectorError::Unauthorized { .. } => (
                format!("{step}: the provider rejected the credentials (HTTP 401)"),
                permission_hint(connector, 401),
            ),
            ConnectorError::Forbidden { needed, .. } => (
                format!(
                    "{step}: the credentials work but lack a permission (HTTP 403){}",
                    needed
                        .as_deref()
                        .map(|n| format!(" (needed: {n})"))
                        .unwrap_or_default()
                ),
                permission_hint(connector, 403),
            ),
            ConnectorError::NotFound { detail } => (
                format!(
                    "{step}: the provider answered \"not found\" (HTTP 404) on an endpoint the sync needs: {detail}"
                ),
                format!(
                    "check the base URL{} in the connection's options, and that the provider's version offers this \
                     endpoint (`usersync connectors endpoints {connector}` lists the calls the sync makes); a proxy \
                     that rewrites paths also answers 404",
                    if connector == "keycloak" { " and realm" } else { "" }
                ),
            ),
            ConnectorError::Config { option, reason } => (
                format!("option `{option}`: {reason}"),
                "fix the connection's options".into(),
            ),
            other => (
                other.to_string(),
                "see the detail; run again with -vv for the request log".into(),
            ),
        },
        RuntimeError::MissingSecret { option } => (
            format!("secret `{option}` is not set"),
            "set it as { env = \"...\" } or { file = \"...\" }".into(),
        ),
        RuntimeError::Credential { reason, .. } => {
            (reason.clone(), "run `usersync auth login <connection>`".into())
        }
        other => (other.to_string(), "see the detail".into()),
    }
}
