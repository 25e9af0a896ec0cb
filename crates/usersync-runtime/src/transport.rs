//! HTTP transport: URL policy (https everywhere, plain http only to loopback), TLS trust
//! (web PKI roots plus an optional extra CA bundle; always verified), proxy selection, and
//! classification of network failures.

use std::error::Error as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{RuntimeError, TransportKind};
use crate::settings::ConnectionSettings;

/// A URL without its query string and fragment, for logs and messages (query strings may carry
/// tokens or codes).
pub fn redact_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let base = &url[..cut];
    // drop userinfo (proxy URLs may carry a password)
    match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://[redacted]@{}", &base[..s], &base[at + 1..]),
        _ => base.to_string(),
    }
}

pub use usersync_config::url_policy::is_loopback_host;

/// Check that the runtime may contact `url`: `https://` anywhere, `http://` only on loopback
/// (127.0.0.0/8, ::1, localhost), nothing else. The rule is `usersync_config::url_policy`'s, so
/// `config check` and every request apply the same one.
pub fn check_url_allowed(url: &str) -> Result<url::Url, RuntimeError> {
    usersync_config::url_policy::check_url_allowed(url).map_err(|reason| RuntimeError::UrlNotAllowed {
        url: redact_url(url),
        reason,
    })
}

/// Load PEM certificates from a CA bundle file.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
    let bad = |reason: String| RuntimeError::Setting {
        setting: "ca_bundle".into(),
        reason: format!("`{}`: {reason}", path.display()),
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not a PEM certificate bundle: {e:?}")))?;
    if certs.is_empty() {
        return Err(bad("contains no `BEGIN CERTIFICATE` block".into()));
    }
    Ok(certs)
}

/// The rustls client configuration used for every connection: built-in web PKI roots plus the
/// extra CA bundle, if any. Certificates are always verified.
pub fn tls_config(ca_bundle: Option<&Path>) -> Result<rustls::ClientConfig, RuntimeError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_bundle {
        for cert in load_ca_bundle(path)? {
            roots.add(cert).map_err(|e| RuntimeError::Setting {
                setting: "ca_bundle".into(),
                reason: format!("`{}`: unusable certificate: {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RuntimeError::Setting {
            setting: "tls".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The proxy a connection uses for `url`, if any: the per-connection `proxy` setting, else
/// `HTTPS_PROXY`/`https_proxy` (or `HTTP_PROXY` for http URLs) unless `NO_PROXY` matches.
pub fn proxy_for(settings: &ConnectionSettings, url: &url::Url) -> Option<String> {
    let host = url.host_str().unwrap_or_default();
    if no_proxy_matches(host) {
        return None;
    }
    if let Some(p) = &settings.proxy {
        return Some(p.clone());
    }
    if settings.no_proxy_env {
        return None;
    }
    let names: &[&str] = if url.scheme() == "https" {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

fn no_proxy_matches(host: &str) -> bool {
    let value = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry.to_ascii_lowercase();
            if entry == "*" {
                return true;
            }
            if let (Ok(net_ip), Ok(h)) = (entry.parse::<IpAddr>(), host.parse::<IpAddr>()) {
                return net_ip == h;
            }
            let e = entry.trim_start_matches('.');
            host == e || host.ends_with(&format!(".{e}"))
        })
}

/// A redirect that the runtime refused to follow; found again in the reqwest error's source chain
/// by [`refused_redirect`].
#[derive(Debug)]
pub struct RedirectRefusal {
    /// The redirect's target, without its query string.
    pub location: String,
    /// The redirect status.
    pub status: u16,
    /// Why it was refused.
    pub reason: &'static str,
}

impl std::fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redirect (HTTP {}) to `{}` refused: {}",
            self.status, self.location, self.reason
        )
    }
}

impl std::error::Error for RedirectRefusal {}

/// True when `a` and `b` have the same origin (scheme, host, port), the rule for next links too.
pub fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.origin() == b.origin()
}

/// The redirect rule: follow at most 5 redirects, each within the origin of the request the
/// connector made (scheme, host and port), never to a URL the runtime may not contact. A
/// redirect elsewhere is an error, not a page: the other origin's answer would otherwise be
/// handed to the connector as the provider's (an empty page there ends a listing early).
fn redirect_policy(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let refuse = |reason: &'static str| RedirectRefusal {
        location: redact_url(attempt.url().as_str()),
        status: attempt.status().as_u16(),
        reason,
    };
    let Some(first) = attempt.previous().first() else {
        let e = refuse("no original request");
        return attempt.error(e);
    };
    if !same_origin(first, attempt.url()) {
        let e = refuse("another origin than the request's");
        attempt.error(e)
    } else if attempt.previous().len() >= 5 {
        let e = refuse("too many redirects");
        attempt.error(e)
    } else if check_url_allowed(attempt.url().as_str()).is_err() {
        let e = refuse("a URL that is not allowed (plain http to a non-loopback host)");
        attempt.error(e)
    } else {
        attempt.follow()
    }
}

/// The refused redirect behind a reqwest error, if that is what it is.
pub fn refused_redirect(err: &reqwest::Error) -> Option<&RedirectRefusal> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = src {
        if let Some(r) = e.downcast_ref::<RedirectRefusal>() {
            return Some(r);
        }
        src = e.source();
    }
    None
}

/// The error of a request that got no usable answer: a refused redirect (never retried) or a
/// classified network failure. `scrub` removes the connection's secrets from the detail.
pub fn send_error(
    e: &reqwest::Error,
    method: &str,
    url: &str,
    via_proxy: bool,
    scrub: impl Fn(&str) -> String,
) -> RuntimeError {
    if let Some(r) = refused_redirect(e) {
        return RuntimeError::RedirectRefused {
            method: method.to_string(),
            url: redact_url(url),
            location: r.location.clone(),
            status: r.status,
        };
    }
    let (kind, detail) = classify(e, via_proxy);
    RuntimeError::Transport {
        method: method.to_string(),
        url: redact_url(url),
        kind,
        detail: scrub(&detail),
    }
}

/// The headers of a response as name/value pairs (values lossily decoded).
pub fn response_headers(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit (declared by Content-Length, or found while reading).
    TooLarge {
        /// The Content-Length, if the server sent one.
        declared: Option<u64>,
    },
    /// The network failed mid-body.
    Net(reqwest::Error),
}

/// Read a response body of at most `limit` bytes, chunk by chunk: a declared Content-Length
/// over the limit is refused before reading, and reading stops at the first chunk past it, so
/// nothing beyond the limit is ever buffered.
pub async fn read_body(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { declared });
    }
    let mut body: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Net)? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge { declared });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Build the reqwest client of one connection.
pub fn http_client(settings: &ConnectionSettings) -> Result<reqwest::Client, RuntimeError> {
    let tls = tls_config(settings.ca_bundle.as_deref())?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .timeout(settings.request_timeout)
        .user_agent(settings.user_agent.clone())
        .redirect(reqwest::redirect::Policy::custom(redirect_policy));
    if let Some(p) = &settings.proxy {
        let proxy = reqwest::Proxy::all(p.as_str())
            .map_err(|e| RuntimeError::Setting {
                setting: "proxy".into(),
                reason: format!(
                    "`{}` is not a usable proxy URL: {}",
                    redact_url(p),
                    e.without_url()
                ),
            })?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(proxy);
    } else if settings.no_proxy_env {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| RuntimeError::Setting {
        setting: "http client".into(),
        reason: e.without_url().to_string(),
    })
}

/// Classify a reqwest error and describe it without URL or secrets.
pub fn classify(err: &reqwest::Error, via_proxy: bool) -> (TransportKind, String) {
    let mut chain = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut kind = None;
    while let Some(e) = src {
        chain.push(e.to_string());
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            kind = kind.or(match io.kind() {
                K::ConnectionRefused => Some(TransportKind::ConnectRefused),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    Some(TransportKind::Reset)
                }
                K::TimedOut => Some(TransportKind::Timeout),
                _ => None,
            });
            if let Some(inner) = io.get_ref() {
                if inner.downcast_ref::<rustls::Error>().is_some() {
                    kind = Some(TransportKind::Tls);
                }
            }
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            kind = Some(TransportKind::Tls);
        }
        src = e.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    let kind = kind.unwrap_or_else(|| {
        if err.is_timeout() {
            TransportKind::Timeout
        } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
            TransportKind::Dns
        } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            TransportKind::Tls
        } else if lower.contains("connection refused") {
            TransportKind::ConnectRefused
        } else if lower.contains("reset") || lower.contains("connection closed") || lower.contains("eof") {
            TransportKind::Reset
        } else if via_proxy && (lower.contains("proxy") || lower.contains("tunnel")) {
            TransportKind::Proxy
        } else {
            TransportKind::Other
        }
    });
    // a body cut short: hyper's "end of file before message length reached" / incomplete message
    let truncated = lower.contains("end of file before message length");
    let kind = if truncated { TransportKind::Truncated } else { kind };
    let kind =
        if via_proxy && (lower.contains("proxy") || lower.contains("tunnel")) && kind != TransportKind::Tls {
            TransportKind::Proxy
        } else {
            kind
        };
    let detail = if text.is_empty() { err.to_string() } else { text };
    (kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_on_loopback() {
        assert!(check_url_allowed("https://graph.microsoft.com/v1.0/users").is_ok());
        assert!(check_url_allowed("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url_allowed("http://127.8.9.10/x").is_ok());
        assert!(check_url_allowed("http://[::1]:9/x").is_ok());
        assert!(check_url_allowed("http://localhost:3000/").is_ok());
        let err = check_url_allowed("http://example.okta.com/api/v1/users?token=abc").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("only allowed for loopback"), "{text}");
        assert!(!text.contains("token=abc"), "{text}");
        assert!(check_url_allowed("http://10.0.0.1/").is_err());
        assert!(check_url_allowed("ftp://127.0.0.1/").is_err());
        assert!(check_url_allowed("not a url").is_err());
    }

    #[test]
    fn redaction_drops_query_and_userinfo() {
        assert_eq!(redact_url("https://h/p?a=secret"), "https://h/p");
        assert_eq!(
            redact_url("http://u:pw@proxy:3128"),
            "http://[redacted]@proxy:3128"
        );
        assert_eq!(redact_url("https://h/p#frag"), "https://h/p");
    }

    /// A one-shot HTTP server on loopback that sends `head` and then `body_len` bytes of `x`
    /// (in 64 KiB writes, so a reader that stops early stops the writer too).
    async fn serve_once(head: String, body_len: u64) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let head = head.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let _ = sock.read(&mut buf).await;
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if sock.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        });
        url
    }

    fn client() -> reqwest::Client {
        http_client(&ConnectionSettings {
            no_proxy_env: true,
            ..ConnectionSettings::default()
        })
        .expect("client")
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_refused_and_named() {
        let elsewhere = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".into(), 2).await;
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}/api/v1/users?after=x\r\nContent-Length: 0\r\n\r\n"
        );
        let origin = serve_once(head, 0).await;
        let err = client()
            .get(format!("{origin}/api/v1/users?after=1"))
            .send()
            .await
            .expect_err("a cross-origin redirect must not be followed");
        let refusal = refused_redirect(&err).expect("the refusal is in the error chain");
        assert_eq!(refusal.status, 307);
        assert_eq!(refusal.location, format!("{elsewhere}/api/v1/users"));
        let e = send_error(
            &err,
            "GET",
            &format!("{origin}/api/v1/users?after=1"),
            false,
            |d| d.into(),
        );
        assert!(matches!(e, RuntimeError::RedirectRefused { .. }), "{e}");
        assert!(
            e.transport_kind().is_none(),
            "a refused redirect is not a retryable transport failure"
        );
        let text = e.to_string();
        assert!(text.contains(&elsewhere) && !text.contains("after=x"), "{text}");
    }

    #[tokio::test]
    async fn a_redirect_within_the_origin_is_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let to = origin.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut sock, _)) = listener.accept().await {
                let to = to.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let resp = if req.starts_with("GET /old") {
                        format!("HTTP/1.1 302 Found\r\nLocation: {to}/new\r\nContent-Length: 0\r\n\r\n")
                    } else {
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]".to_string()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        let resp = client()
            .get(format!("{origin}/old"))
            .send()
            .await
            .expect("followed");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.url().path(), "/new");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_truncated_not_reset() {
        // Content-Length promises 5000 bytes, 100 arrive, then the connection closes
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n".into(),
            100,
        )
        .await;
        let resp = client()
            .get(format!("{url}/cut"))
            .send()
            .await
            .expect("response head");
        let Err(BodyError::Net(e)) = read_body(resp, 1 << 20).await else {
            panic!("a truncated body must fail to read");
        };
        let (kind, detail) = classify(&e, false);
        assert_eq!(kind, TransportKind::Truncated, "{detail}");
        assert!(kind.is_retryable());
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused_while_reading() {
        // no Content-Length: the size is only found by reading; 1 GiB would be sent if read
        let url = serve_once("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(), 1 << 30).await;
        let resp = client().get(format!("{url}/big")).send().await.expect("response");
        match read_body(resp, 1024 * 1024).await {
            Err(BodyError::TooLarge { declared: None }) => {}
            other => panic!("expected TooLarge, got {:?}", other.map(|b| b.len())),
        }
        // a declared length over the limit is refused before reading
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n".into(),
            5_000_000,
        )
        .await;
        let resp = client().get(format!("{url}/big")).send().await.expect("response");
        assert!(matches!(
            read_body(resp, 1024 * 1024).await,
            Err(BodyError::TooLarge {
                declared: Some(5_000_000)
            })
        ));
        // at the limit is fine
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".into(),
            1 << 20,
        )
        .await;
        let resp = client().get(format!("{url}/ok")).send().await.expect("response");
        assert_eq!(
            read_body(resp, 1 << 20).await.map(|b| b.len()).ok(),
            Some(1 << 20)
        );
    }

    #[test]
    fn bad_ca_bundle_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "nothing here").expect("write");
        let e = tls_config(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("BEGIN CERTIFICATE"), "{e}");
    }
}
