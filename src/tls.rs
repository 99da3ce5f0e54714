//! TLS client settings shared by every outbound connection that trusts a
//! CA bundle of the admin's (`ca_file`): LDAP servers and the PostgreSQL
//! store. rustls with aws-lc-rs; the server's name is always verified.

use std::sync::Arc;

/// A client config trusting only the PEM certificates in `ca`.
pub fn client_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca_file {}: no PEM certificate found", ca.display()));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}
