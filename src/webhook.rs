//! Standard Webhooks (standardwebhooks.com), the signatures dirsync's
//! deliveries to an application will carry: the signing secret
//! (`whsec_` + base64; a trailing newline ignored; never shown), and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for
//! a delivery's `webhook-id` and `webhook-timestamp`. Plain protocol beside
//! the model, importing nothing else of dirsync.

use aws_lc_rs::hmac;
use base64::Engine as _;

/// The shortest and longest secrets the specification allows (bytes).
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A webhook's signing secret, decoded.
pub struct SigningSecret(hmac::Key);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// Reads a secret as a receiver is given it: `whsec_` and base64 (the
    /// prefix may be left out); `Err` says what is wrong, never the secret.
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let t = text.trim_end_matches(['\n', '\r']).trim();
        let b64 = t.strip_prefix("whsec_").unwrap_or(t);
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| {
            "expected \"whsec_\" followed by base64 (as Standard Webhooks secrets are written)".to_string()
        })?;
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(format!(
                "the secret decodes to {} bytes; Standard Webhooks secrets have {} to {}",
                bytes.len(),
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            ));
        }
        Ok(SigningSecret(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// The `webhook-signature` header's value for one attempt: `v1,` and the
    /// base64 HMAC-SHA256 of `id.timestamp.body`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref()))
    }

    /// Whether a `webhook-signature` header (space-separated signatures, as
    /// during a secret's rotation) holds this secret's signature, compared
    /// in constant time: what a receiver checks.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let mut msg = Vec::with_capacity(id.len() + body.len() + 24);
        msg.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
        msg.extend_from_slice(body);
        header.split_whitespace().filter_map(|s| s.strip_prefix("v1,")).any(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .is_ok_and(|tag| hmac::verify(&self.0, &msg, &tag).is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with the reference implementation (PyPI `standardwebhooks`
    /// 1.3.0, `Webhook(secret).sign(id, timestamp, body)`); the first is the
    /// specification's own example.
    const VECTORS: &[(&str, &str, i64, &str, &str)] = &[
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "dirsync-42-7",
            1796000000,
            r#"{"changes":[],"next":7}"#,
            "v1,kUHXqgY/iTcZCWgy7olcJ09YWUQS8fN339JWiy+kcM0=",
        ),
    ];

    #[test]
    fn signatures_match_the_reference_implementation() {
        for (secret, id, ts, body, want) in VECTORS {
            let s = SigningSecret::parse(secret).unwrap();
            assert_eq!(&s.signature(id, *ts, body.as_bytes()), want, "{id}");
            assert!(s.verify(id, *ts, body.as_bytes(), &format!("v1,bm9wZQ== {want}")), "one of several");
            assert!(!s.verify(id, ts + 1, body.as_bytes(), want), "another timestamp");
            assert!(!s.verify(id, *ts, b"{}", want), "another body");
        }
    }

    #[test]
    fn a_secret_file_with_a_newline_or_without_the_prefix_is_the_same_secret() {
        let body = b"x";
        let a = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        let b = SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(a.signature("i", 1, body), b.signature("i", 1, body));
    }

    #[test]
    fn a_bad_secret_is_refused_without_quoting_it() {
        for bad in ["whsec_not base64!", "whsec_c2hvcnQ="] {
            let e = SigningSecret::parse(bad).unwrap_err();
            assert!(!e.contains(bad.trim_start_matches("whsec_")), "{e}");
        }
        assert!(SigningSecret::parse("").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err().contains("24 to 64"));
        assert_eq!(
            format!("{:?}", SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()),
            "SigningSecret(…)"
        );
    }
}
