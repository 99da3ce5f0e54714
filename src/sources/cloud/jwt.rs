//! RS256-signed JSON Web Tokens (RFC 7515/7519) for the token requests of
//! the cloud kinds: Entra's certificate client assertion and Google's
//! service-account grant. The private key stays inside the [`Signer`]; its
//! `Debug` prints nothing of it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// An RSA private key that signs JWTs.
pub struct Signer {
    key: aws_lc_rs::signature::RsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// Reads a PEM RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA
    /// PRIVATE KEY`). Errors never quote the key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| "expected a PEM RSA private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)".to_string())?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => aws_lc_rs::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => aws_lc_rs::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err("expected an RSA private key, got another kind of key".into()),
        }
        .map_err(|_| "the private key is not a usable RSA key (2048 bits or more)".to_string())?;
        Ok(Signer { key })
    }

    /// `header.claims.signature`, each part base64url without padding.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, String> {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .map_err(|_| "signing the token request failed".to_string())?;
        Ok(format!("{input}.{}", B64.encode(sig)))
    }
}

/// The certificate's SHA-1 thumbprint as Entra wants it in `x5t`
/// (base64url of the DER's digest), from a PEM certificate.
pub fn thumbprint(cert_pem: &[u8]) -> Result<String, String> {
    let der = CertificateDer::from_pem_slice(cert_pem).map_err(|_| "expected a PEM certificate (BEGIN CERTIFICATE)")?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
    Ok(B64.encode(d.as_ref()))
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A fresh random id for `jti`.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = include_bytes!("../../../tests/fixtures/cloud/test-key.pem");
    const CERT: &[u8] = include_bytes!("../../../tests/fixtures/cloud/test-cert.pem");

    #[test]
    fn a_signed_token_verifies_with_the_public_key() {
        let s = Signer::from_pem(KEY).unwrap();
        let t = s.sign(&serde_json::json!({"alg": "RS256"}), &serde_json::json!({"sub": "a"})).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let public = aws_lc_rs::signature::KeyPair::public_key(&s.key).as_ref().to_vec();
        let pk =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, public);
        pk.verify(input.as_bytes(), &B64.decode(sig).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["sub"], "a");
        assert!(!format!("{s:?}").contains("BEGIN"));
    }

    #[test]
    fn keys_that_are_not_rsa_pem_are_refused_without_quoting_them() {
        let e = Signer::from_pem(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        assert!(Signer::from_pem(b"secret").unwrap_err().contains("PEM"));
        assert_eq!(thumbprint(CERT).unwrap().len(), 27);
    }
}
