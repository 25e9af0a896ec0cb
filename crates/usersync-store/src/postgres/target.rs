//! The database a `postgres://` URL names: parsing, the password-masked form every message
//! shows, TLS (rustls) and the error mapping that names the database and the fix.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// How the connection is encrypted (libpq's `sslmode`, without `allow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    /// `disable`: plain TCP.
    Off,
    /// `prefer` (the default) or `require`: TLS without checking the server's certificate
    /// (libpq's meaning of these modes); `prefer` falls back to plain TCP when the server has no TLS.
    Encrypt {
        /// Refuse a server without TLS.
        required: bool,
    },
    /// `verify-ca` or `verify-full`: TLS, the certificate checked against the web PKI roots and
    /// `sslrootcert` (a PEM file), and the host name checked.
    Verify {
        /// Extra trusted roots.
        root: Option<PathBuf>,
    },
}

/// A parsed `postgres://` store URL.
#[derive(Clone)]
pub(crate) struct Target {
    /// The driver's configuration (password included: never printed).
    pub config: postgres::Config,
    /// The URL with its password replaced by `****`: the only form any message shows.
    pub masked: String,
    /// TLS mode.
    pub tls: Tls,
    /// The schema named by the URL's `schema` parameter (created by the first sync).
    pub schema: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.masked).finish()
    }
}

/// Whether `s` names a PostgreSQL store (`postgres://` or `postgresql://`).
pub fn is_postgres_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` with its password (user info and a `password=` parameter) replaced by `****`. A string
/// that is not a URL is shown as `<unparsable store url>`, since it may hold a password anywhere.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "****".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "<unparsable store url>".into(),
    }
}

impl Target {
    /// Parse a store URL. Besides the driver's own parameters it takes `sslmode` (`disable`,
    /// `prefer`, `require`, `verify-ca`, `verify-full`), `sslrootcert` (a PEM file of trusted roots)
    /// and `schema` (the PostgreSQL schema that holds the store's tables; default: the server's
    /// search path, normally `public`). `read_only` makes every transaction read-only.
    pub fn parse(url: &str, read_only: bool) -> Result<Target, StoreError> {
        let masked = mask_url(url);
        let bad = |reason: String| StoreError::Open {
            path: masked.clone(),
            reason,
        };
        let mut u = url::Url::parse(url).map_err(|e| bad(format!("not a valid postgres:// URL: {e}")))?;
        if !is_postgres_url(url) {
            return Err(bad("the URL must start with postgres:// or postgresql://".into()));
        }
        let mut tls = Tls::Encrypt { required: false };
        let (mut root, mut schema, mut verify) = (None, None, false);
        let mut kept = Vec::new();
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "sslmode" => match v.as_ref() {
                    "disable" => tls = Tls::Off,
                    "prefer" => tls = Tls::Encrypt { required: false },
                    "require" => tls = Tls::Encrypt { required: true },
                    "verify-ca" | "verify-full" => verify = true,
                    other => return Err(bad(format!("unknown sslmode `{other}`"))),
                },
                "sslrootcert" => root = Some(PathBuf::from(v.as_ref())),
                "schema" => schema = Some(v.into_owned()),
                _ => kept.push((k.into_owned(), v.into_owned())),
            }
        }
        if verify {
            tls = Tls::Verify { root };
        }
        // percent-encoded by hand: the driver decodes `%20`, not the `+` of form encoding
        let query: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        u.set_query((!query.is_empty()).then(|| query.join("&")).as_deref());
        let mut config: postgres::Config = u
            .as_str()
            .parse()
            .map_err(|e: postgres::Error| bad(e.to_string()))?;
        config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            Tls::Encrypt { required: false } => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut options = config.get_options().unwrap_or("").to_string();
        if let Some(schema) = &schema {
            if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad(format!(
                    "schema `{schema}` must be letters, digits and underscores"
                )));
            }
            options.push_str(&format!(" -c search_path={schema}"));
        }
        if read_only {
            options.push_str(" -c default_transaction_read_only=on");
        }
        if !options.trim().is_empty() {
            config.options(options.trim());
        }
        if config.get_application_name().is_none() {
            config.application_name("usersync");
        }
        Ok(Target {
            config,
            masked,
            tls,
            schema,
        })
    }

    /// The TLS connector for this target (also used, unused, when TLS is off).
    pub fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.open_error(format!("TLS setup: {e}")))?;
        let config = match &self.tls {
            Tls::Verify { root } => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(path) = root {
                    let pem = std::fs::read(path).map_err(|e| {
                        self.open_error(format!("cannot read sslrootcert `{}`: {e}", path.display()))
                    })?;
                    let mut found = 0;
                    for cert in
                        <CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem)
                    {
                        let cert = cert
                            .map_err(|e| self.open_error(format!("sslrootcert `{}`: {e}", path.display())))?;
                        roots
                            .add(cert)
                            .map_err(|e| self.open_error(format!("sslrootcert `{}`: {e}", path.display())))?;
                        found += 1;
                    }
                    if found == 0 {
                        return Err(self.open_error(format!(
                            "sslrootcert `{}` holds no PEM certificate",
                            path.display()
                        )));
                    }
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn open_error(&self, reason: String) -> StoreError {
        StoreError::Open {
            path: self.masked.clone(),
            reason,
        }
    }

    /// A driver error as a store error that names the database (masked) and the fix.
    pub fn error(&self, e: &postgres::Error) -> StoreError {
        use postgres::error::SqlState;
        let url = self.masked.clone();
        let text = describe(e);
        if let Some(code) = e.code() {
            if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
                return StoreError::NotWritable {
                    path: url,
                    detail: format!(
                        "the database refuses writes ({text}): it is a read-only replica or has \
                         default_transaction_read_only on; point [store] url at the primary"
                    ),
                };
            }
            let class = &code.code()[..2];
            if class == "28" || class == "3D" || *code == SqlState::TOO_MANY_CONNECTIONS {
                return StoreError::Open {
                    path: url,
                    reason: text,
                };
            }
            if class == "57" || class == "08" {
                return lost(url, &text);
            }
        }
        if e.is_closed() || text.contains("connection closed") || text.contains("error communicating") {
            return lost(url, &text);
        }
        if e.as_db_error().is_none() && text.contains("error connecting") {
            return StoreError::Open {
                path: url,
                reason: format!("{text} (is the server running and reachable?)"),
            };
        }
        StoreError::Postgres { url, detail: text }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The driver's message with the server's (the driver's own `Display` says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                let more = c.to_string();
                if !s.contains(&more) {
                    s.push_str(&format!(": {more}"));
                }
                src = c.source();
            }
            s
        }
    }
}

fn lost(url: String, text: &str) -> StoreError {
    StoreError::Postgres {
        url,
        detail: format!(
            "the connection to the database was lost ({text}); an unfinished transaction is rolled back by \
             the server, so nothing of it was applied: run again (`usersync runs list` shows what was recorded)"
        ),
    }
}

/// `sslmode=prefer`/`require`: encrypt, but accept any certificate (libpq's meaning); the
/// handshake signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_everywhere() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db:5432/usersync?sslmode=require"),
            "postgres://app:****@db:5432/usersync?sslmode=require"
        );
        assert_eq!(
            mask_url("postgres://app@db/u?password=s3cret&schema=x"),
            "postgres://app@db/u?password=****&schema=x"
        );
        assert_eq!(mask_url("not a url s3cret"), "<unparsable store url>");
        let err = Target::parse("postgres://app:s3cret@db/u?sslmode=bogus", false).expect_err("bad mode");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("sslmode"), "{err}");
    }

    #[test]
    fn our_parameters_are_taken_out_of_the_drivers_url() {
        let t = Target::parse(
            "postgres://app:pw@db/u?sslmode=verify-full&sslrootcert=/etc/ca.pem&schema=tenant_1",
            true,
        )
        .expect("parse");
        assert_eq!(
            t.tls,
            Tls::Verify {
                root: Some(PathBuf::from("/etc/ca.pem"))
            }
        );
        assert_eq!(
            t.config.get_options(),
            Some("-c search_path=tenant_1 -c default_transaction_read_only=on")
        );
        assert!(Target::parse("postgres://db/u?schema=a;drop", false).is_err());
        assert_eq!(
            Target::parse("postgres://db/u", false).expect("default").tls,
            Tls::Encrypt { required: false }
        );
    }
}
