//! TLS on the one port: rustls (ring provider) offering both `h2` and `http/1.1` by
//! ALPN, so gRPC clients and browsers both connect. (tonic's own TLS offers only
//! `h2`, which turns away HTTP/1.1 clients.) The handshakes are made where
//! connections are accepted (`incoming.rs`).

use count_core::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The chain in `cert` and the key in `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Reads both files into an acceptor.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the file that cannot be read or holds no
    /// usable certificate or key, or the pair rustls refuses.
    pub(crate) fn acceptor(&self) -> count_core::Result<TlsAcceptor> {
        let refused = |field: &'static str, path: &Path, why: String| {
            Error::invalid(field, path.display().to_string(), why)
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| refused("TLS certificate", &self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(refused(
                "TLS certificate",
                &self.cert,
                "holds no PEM certificate".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| refused("TLS key", &self.key, e.to_string()))?;
        // An explicit provider: never depends on which of ring / aws-lc-rs the
        // dependency graph enables (the default builder panics when both are).
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| refused("TLS certificate", &self.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            refused(
                "TLS key",
                &self.key,
                format!("does not go with {}: {e}", self.cert.display()),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
