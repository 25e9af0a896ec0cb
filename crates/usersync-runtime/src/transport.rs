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

/// True when `host` is a loopback address or `localhost`.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

/// Check that the runtime may contact `url`: `https://` anywhere, `http://` only on loopback
/// (127.0.0.0/8, ::1, localhost), nothing else.
pub fn check_url_allowed(url: &str) -> Result<url::Url, RuntimeError> {
    let parsed = url::Url::parse(url).map_err(|e| RuntimeError::UrlNotAllowed {
        url: redact_url(url),
        reason: format!("not an absolute URL ({e})"),
    })?;
    let host = parsed.host().ok_or_else(|| RuntimeError::UrlNotAllowed {
        url: redact_url(url),
        reason: "the URL has no host".into(),
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback_host(&host) => Ok(parsed),
        "http" => Err(RuntimeError::UrlNotAllowed {
            url: redact_url(url),
            reason: format!(
                "plain http:// is only allowed for loopback addresses (127.0.0.0/8, ::1, localhost); \
                 use https://{} instead",
                host
            ),
        }),
        other => Err(RuntimeError::UrlNotAllowed {
            url: redact_url(url),
            reason: format!("unsupported scheme `{other}` (only https, or http on loopback)"),
        }),
    }
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

/// Build the reqwest client of one connection.
pub fn http_client(settings: &ConnectionSettings) -> Result<reqwest::Client, RuntimeError> {
    let tls = tls_config(settings.ca_bundle.as_deref())?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .timeout(settings.request_timeout)
        .user_agent(settings.user_agent.clone())
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if check_url_allowed(attempt.url().as_str()).is_err() {
                attempt.error("redirect to a URL that is not allowed (plain http to a non-loopback host)")
            } else {
                attempt.follow()
            }
        }));
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

    #[test]
    fn bad_ca_bundle_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "nothing here").expect("write");
        let e = tls_config(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("BEGIN CERTIFICATE"), "{e}");
    }
}
