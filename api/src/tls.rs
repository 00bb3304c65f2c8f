//! HTTPS for a member: its server configuration (rustls with the `ring` provider; `serve` does the handshakes),
//! what it trusts when it calls the other members, and the small CA that `sendan tls init|issue` makes for
//! clusters without a PKI of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use sendan_raft::Trust;

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Certificates(#[from] sendan_raft::TlsError),
    #[error("cannot read the private key in {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate in {cert} and the key in {key} do not make a TLS identity: {reason}")]
    Identity { cert: PathBuf, key: PathBuf, reason: String },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// A member's TLS identity (what it serves) and what it trusts when it calls the other members.
pub struct MemberTls {
    pub server: Arc<ServerConfig>,
    pub trust: Trust,
}

/// Read the member's certificate chain, key and CA.
pub fn load(files: &TlsFiles) -> Result<MemberTls, TlsError> {
    let chain = sendan_raft::tls::read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.clone(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Identity { cert: files.cert.clone(), key: files.key.clone(), reason: e.to_string() })?;
    // The router speaks HTTP/1.1 only.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let trust = Trust::from_pem_file(files.ca.as_deref().unwrap_or(&files.cert))?;
    Ok(MemberTls { server: Arc::new(server), trust })
}

/// The file names `sendan tls init|issue` write in a CA directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
const CA_NAME: &str = "Sendan cluster CA";

fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    use rcgen::{BasicConstraints, DnType, IsCa, KeyUsagePurpose};
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    Ok(params)
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// Write `contents` to `path`, readable by its owner only when `secret`.
fn write(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write { path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)
}

/// Make a CA in `dir` (`ca.pem`, and `ca-key.pem` readable by its owner only); refuses to overwrite one.
pub fn init_ca(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = ca_params()?.self_signed(&key).map_err(gen_err)?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    write(&key_path, &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    Ok((cert_path, key_path))
}

/// Issue `dir/NAME.pem` and `dir/NAME-key.pem`, signed by the CA in `dir`, for `hosts` (DNS names or IP
/// addresses); usable by a server and as a client.
pub fn issue(dir: &Path, name: &str, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    use rcgen::{DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};
    let ca_key_path = dir.join(CA_KEY);
    let ca_key_pem =
        std::fs::read_to_string(&ca_key_path).map_err(|source| TlsError::Read { path: ca_key_path.clone(), source })?;
    let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).map_err(gen_err)?;
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(gen_err)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    write(&key_path, &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_loads_as_a_member_identity_trusting_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = init_ca(dir.path()).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ca_key).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the CA key is its owner's only");
        assert!(init_ca(dir.path()).is_err(), "an existing CA is never overwritten");
        let (cert, key) = issue(dir.path(), "member-1", &["127.0.0.1".into(), "sendan-1.lab".into()]).unwrap();
        let tls = load(&TlsFiles { cert: cert.clone(), key: key.clone(), ca: Some(ca) }).unwrap();
        assert!(tls.trust.is_tls());
        assert_eq!(tls.trust.base_url("127.0.0.1:7770"), "https://127.0.0.1:7770");
        // A key that is not the certificate's is refused with both paths named.
        let (_, other_key) = issue(dir.path(), "member-2", &["127.0.0.1".into()]).unwrap();
        let err = load(&TlsFiles { cert, key: other_key, ca: None }).err().expect("a mismatched key is refused");
        assert!(matches!(err, TlsError::Identity { .. }), "{err}");
    }
}
