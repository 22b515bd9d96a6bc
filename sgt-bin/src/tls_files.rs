//! The generated TLS certificate: a local CA and a leaf for localhost, ECDSA P-256.
//!
//! `tls/cert.pem` holds the leaf followed by the CA, so it serves both as the server's chain
//! and as the file osquery trusts (`--tls_server_certs`); `tls/ca.pem` is the CA alone, for
//! other clients. The CA's private key is never written: nothing else can be signed with it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the generated TLS files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Leaf certificate then CA certificate, PEM.
    pub cert: PathBuf,
    /// The leaf's private key, PEM (mode 0600).
    pub key: PathBuf,
    /// The CA certificate alone, PEM.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// The files' paths under `data_dir/tls`.
    pub fn under(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca: dir.join("ca.pem"),
        }
    }

    /// Creates the certificate if `cert.pem` or `key.pem` is missing; returns true if it did.
    ///
    /// # Errors
    /// When generation or writing fails.
    pub fn ensure(&self) -> anyhow::Result<bool> {
        if self.cert.exists() && self.key.exists() {
            return Ok(false);
        }
        let (ca_pem, leaf_pem, key_pem) = generate()?;
        let dir = self.cert.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write(&self.key, key_pem.as_bytes(), 0o600)?;
        write(&self.ca, ca_pem.as_bytes(), 0o644)?;
        write(&self.cert, format!("{leaf_pem}{ca_pem}").as_bytes(), 0o644)?;
        Ok(true)
    }
}

fn write(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(())
}

/// (CA PEM, leaf PEM, leaf key PEM)
fn generate() -> anyhow::Result<(String, String, String)> {
    let year = 1970 + (sgt_core::types::now_unix() / 31_556_952) as i32;
    let not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    let not_after = rcgen::date_time_ymd(year + 10, 1, 1);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "sgt local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    Ok((ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem()))
}
