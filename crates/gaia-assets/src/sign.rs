//! Signed, time-limited URLs for game clients: `/media/<id>?variant=file&expires=<unix>&sig=<hex>`,
//! where `sig` is an HMAC-SHA256 of the asset id, the variant and the expiry under a key only the
//! servers know. A URL cannot be moved to another asset or variant, nor its expiry extended.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks content URLs.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A signer with `key` (at least 32 bytes of secret; derive it from the server's secret).
    pub fn new(key: impl Into<Vec<u8>>) -> Signer {
        Signer { key: key.into() }
    }

    fn mac(&self, id: &str, variant: &str, expires: i64) -> HmacSha256 {
        // The key is any length for HMAC: `new_from_slice` cannot fail.
        let mut m = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        m.update(b"gaia asset url v1\0");
        m.update(id.as_bytes());
        m.update(b"\0");
        m.update(variant.as_bytes());
        m.update(b"\0");
        m.update(expires.to_string().as_bytes());
        m
    }

    /// The signature of asset `id`'s `variant` until `expires` (unix seconds).
    pub fn sign(&self, id: &str, variant: &str, expires: i64) -> String {
        hex::encode(self.mac(id, variant, expires).finalize().into_bytes())
    }

    /// Whether `sig` signs `id`'s `variant` until `expires`, and `expires` is not past (compared in
    /// constant time).
    pub fn verify(&self, id: &str, variant: &str, expires: i64, sig: &str, now: i64) -> bool {
        let Ok(sig) = hex::decode(sig) else { return false };
        expires >= now && self.mac(id, variant, expires).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_asset_variant_and_expiry() {
        let s = Signer::new(vec![7u8; 32]);
        let sig = s.sign("a1", "file", 2000);
        assert!(s.verify("a1", "file", 2000, &sig, 1999));
        assert!(s.verify("a1", "file", 2000, &sig, 2000));
        assert!(!s.verify("a1", "file", 2000, &sig, 2001), "expired");
        assert!(!s.verify("a2", "file", 2000, &sig, 0), "another asset");
        assert!(!s.verify("a1", "thumbnail", 2000, &sig, 0), "another variant");
        assert!(!s.verify("a1", "file", 3000, &sig, 0), "a later expiry");
        assert!(!s.verify("a1", "file", 2000, "zz", 0));
        assert!(!Signer::new(vec![8u8; 32]).verify("a1", "file", 2000, &sig, 0), "another key");
    }
}
