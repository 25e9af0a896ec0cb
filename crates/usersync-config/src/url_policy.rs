//! The URL rule of every connection: `https://` anywhere, plain `http://` only to loopback
//! (127.0.0.0/8, ::1, `localhost`), nothing else.
//!
//! It lives here, below the runtime, so that `config check` (which never opens a connection)
//! and the runtime (which enforces it on every request) apply the same rule.

/// True when `host` is a loopback address or `localhost` (or a `*.localhost` name).
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

/// Check that a connection may contact `url`. On refusal returns the reason (without the URL,
/// which the caller names, redacted as it sees fit).
pub fn check_url_allowed(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not an absolute URL ({e})"))?;
    let host = parsed.host().ok_or_else(|| "the URL has no host".to_string())?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback_host(&host) => Ok(parsed),
        "http" => Err(format!(
            "plain http:// is only allowed for loopback addresses (127.0.0.0/8, ::1, localhost); \
             use https://{host} instead"
        )),
        other => Err(format!(
            "unsupported scheme `{other}` (only https, or http on loopback)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_url_allowed;

    #[test]
    fn https_anywhere_http_only_on_loopback_nothing_else() {
        assert!(check_url_allowed("https://graph.microsoft.com/v1.0/users").is_ok());
        assert!(check_url_allowed("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url_allowed("http://127.8.9.10/x").is_ok());
        assert!(check_url_allowed("http://[::1]:9/x").is_ok());
        assert!(check_url_allowed("http://localhost:9/x").is_ok());
        let e = check_url_allowed("http://acme.okta.com/api").unwrap_err();
        assert!(e.contains("https://acme.okta.com"), "{e}");
        let e = check_url_allowed("ftp://acme.okta.com/").unwrap_err();
        assert!(e.contains("unsupported scheme `ftp`"), "{e}");
        assert!(check_url_allowed("acme.okta.com").is_err());
        assert!(check_url_allowed("file:///etc/passwd").is_err());
    }
}
