//! HTTPS: a rustls server config from PEM files named in `[serve]`.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use usersync_config::serve::TlsFiles;

use crate::ServeError;

/// A TLS acceptor for the certificate chain and key.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| ServeError::Tls(format!("`{}`: {e}", files.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Tls(format!("`{}`: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "`{}` holds no certificate",
            files.cert.display()
        )));
    }
    // the key's own error text could quote key material: say only which file
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| {
        ServeError::Tls(format!(
            "`{}` holds no readable PEM private key",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
