//! What an HTTP client of a member trusts: plain HTTP, or HTTPS verified against given roots (the cluster's CA).
//!
//! Every `reqwest` client of the workspace is built here, with rustls over the `ring` provider configured
//! explicitly, so nothing depends on a process-wide default crypto provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificates in {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
}

/// How to reach members: `http://`, or `https://` trusting `roots` only.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    roots: Option<Arc<RootCertStore>>,
}

impl Trust {
    /// Plain HTTP.
    pub fn plain() -> Trust {
        Trust::default()
    }

    /// HTTPS, trusting exactly the certificates in the PEM file at `path` (a CA, or self-signed member
    /// certificates).
    pub fn from_pem_file(path: &Path) -> Result<Trust, TlsError> {
        let certs = read_certificates(path)?;
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            return Err(TlsError::Certificates {
                path: path.to_owned(),
                reason: format!("none of its {ignored} certificate(s) can be a trust anchor"),
            });
        }
        Ok(Trust { roots: Some(Arc::new(roots)) })
    }

    pub fn is_tls(&self) -> bool {
        self.roots.is_some()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// `addr` as a base URL: kept when it names a scheme, else with this trust's scheme.
    pub fn base_url(&self, addr: &str) -> String {
        if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("{}://{}", self.scheme(), addr.trim_end_matches('/'))
        }
    }

    /// A client builder that verifies servers against these roots (none for plain HTTP: an `https://` URL
    /// then fails to verify, it is never accepted unverified).
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        let roots = self.roots.clone().unwrap_or_else(|| Arc::new(RootCertStore::empty()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder().use_preconfigured_tls(config)
    }
}

/// Every certificate in a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificates { path: path.to_owned(), reason };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
    let certs = iter.collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}
