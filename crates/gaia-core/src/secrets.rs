//! Encryption of secrets kept at rest, such as the API keys of providers added through the admin API
//! (stored in the `runtime_providers` table).
//!
//! A value is sealed with XChaCha20-Poly1305 (an AEAD: a changed byte makes it fail to open) under a
//! 32-byte key, with a fresh random 24-byte nonce each time, and stored as the versioned text
//! `enc:v1:<base64 of nonce ‖ ciphertext ‖ tag>`. The key is `secrets_key` of the configuration
//! (`GAIA_SECRETS_KEY`, 32 bytes in base64), or one derived with HKDF-SHA256 from a configured
//! `jwt_secret` (see [`crate::Config::secrets`]).
//!
//! ```
//! use gaia_core::secrets::Secrets;
//!
//! let secrets = Secrets::from_base64(&Secrets::generate_key())?;
//! let sealed = secrets.seal("sk-live-123")?;
//! assert!(sealed.starts_with("enc:v1:") && !sealed.contains("sk-live-123"));
//! assert_eq!(secrets.open(&sealed)?.value, "sk-live-123");
//! # Ok::<(), gaia_core::secrets::SecretsError>(())
//! ```

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The prefix of every sealed value (any `enc:` prefix is taken as sealed; `v1` is the only version).
pub const SEALED_PREFIX: &str = "enc:v1:";

/// Length of a secrets key, in bytes.
pub const KEY_LEN: usize = 32;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HKDF_SALT: &[u8] = b"gaia-secrets";

/// Why a secrets key or a sealed value was refused. Messages never contain key material nor the
/// secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The configured key is not 32 bytes in base64.
    #[error(
        "the secrets key must be {KEY_LEN} bytes encoded in base64 (generate one with `openssl rand -base64 32`): {0}"
    )]
    InvalidKey(String),
    /// No key is configured, so a sealed value cannot be opened (nor a new one sealed).
    #[error("no secrets key is configured (set GAIA_SECRETS_KEY)")]
    NoKey,
    /// The value is sealed in a format this version does not know (not `enc:v1:`).
    #[error("the stored secret uses an unknown format (not `enc:v1:`)")]
    UnknownVersion,
    /// The value is not valid sealed text.
    #[error("the stored secret is malformed: {0}")]
    Malformed(&'static str),
    /// Authentication failed: the value was sealed with another key, or altered.
    #[error("the stored secret cannot be decrypted: it was sealed with another key (was the secrets key changed?) or altered")]
    Undecryptable,
}

/// A value opened by [`Secrets::open`].
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The secret in clear.
    pub value: String,
    /// Whether it was sealed with a fallback key rather than the current one, so that it should be
    /// sealed again.
    pub stale: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").field("value", &"<redacted>").field("stale", &self.stale).finish()
    }
}

/// Seals and opens secrets with the current key; opening also tries fallback keys (a previous key
/// during a change of key). Cheap to clone; its [`Debug`](fmt::Debug) shows no key.
#[derive(Clone)]
pub struct Secrets {
    /// The current key first, then the fallbacks. Each cipher wipes its key when dropped.
    ciphers: Vec<Arc<XChaCha20Poly1305>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets").field("keys", &self.ciphers.len()).finish()
    }
}

impl Secrets {
    /// Secrets under a raw 32-byte key.
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        Secrets { ciphers: vec![Arc::new(XChaCha20Poly1305::new(key.into()))] }
    }

    /// Secrets under a key given as base64 (standard alphabet, padding optional; surrounding
    /// whitespace ignored), as in `GAIA_SECRETS_KEY`.
    pub fn from_base64(key: &str) -> Result<Self, SecretsError> {
        let key = key.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(key)
                .or_else(|_| STANDARD_NO_PAD.decode(key))
                .map_err(|_| SecretsError::InvalidKey("not valid base64".into()))?,
        );
        let key: &[u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretsError::InvalidKey(format!("it decodes to {} bytes", bytes.len())))?;
        Ok(Self::from_key(key))
    }

    /// Secrets under a key derived with HKDF-SHA256 from `material` (a long, stable secret such as
    /// the JWT secret), for the purpose named by `info`. The same inputs always give the same key,
    /// and different `info` give unrelated keys.
    pub fn derive(material: &[u8], info: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        // HKDF-SHA256 only refuses outputs longer than 255 × 32 bytes; 32 always succeeds.
        if Hkdf::<Sha256>::new(Some(HKDF_SALT), material).expand(info, key.as_mut_slice()).is_err() {
            unreachable!("HKDF-SHA256 always expands to 32 bytes");
        }
        Self::from_key(&key)
    }

    /// These secrets, also opening values sealed under the keys of `fallback` (which never seal).
    pub fn with_fallback(mut self, fallback: &Secrets) -> Self {
        self.ciphers.extend(fallback.ciphers.iter().cloned());
        self
    }

    /// A new random key, in base64 (what `GAIA_SECRETS_KEY` expects).
    pub fn generate_key() -> String {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut_slice());
        STANDARD.encode(key.as_slice())
    }

    /// Whether `value` is a sealed value (rather than a secret in clear).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with("enc:")
    }

    /// Seals `secret` under the current key with a fresh random nonce, as `enc:v1:…`.
    pub fn seal(&self, secret: &str) -> Result<String, SecretsError> {
        let cipher = self.ciphers.first().ok_or(SecretsError::NoKey)?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Only inputs beyond the cipher's 256 GiB limit fail.
        let ciphertext =
            cipher.encrypt(&nonce, secret.as_bytes()).map_err(|_| SecretsError::Malformed("too long to seal"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value made by [`Secrets::seal`] with the current key, or a fallback one.
    pub fn open(&self, sealed: &str) -> Result<Opened, SecretsError> {
        let body = match sealed.strip_prefix(SEALED_PREFIX) {
            Some(body) => body,
            None if Self::is_sealed(sealed) => return Err(SecretsError::UnknownVersion),
            None => return Err(SecretsError::Malformed("it does not start with `enc:v1:`")),
        };
        let bytes = STANDARD.decode(body.trim()).map_err(|_| SecretsError::Malformed("not valid base64"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretsError::Malformed("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        for (i, cipher) in self.ciphers.iter().enumerate() {
            if let Ok(plain) = cipher.decrypt(nonce, ciphertext) {
                let value = String::from_utf8(plain).map_err(|_| SecretsError::Malformed("not UTF-8 text"))?;
                return Ok(Opened { value, stale: i > 0 });
            }
        }
        Err(SecretsError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::from_key(&[7u8; KEY_LEN])
    }

    #[test]
    fn round_trip() {
        let s = secrets();
        for secret in ["sk-live-123", "", "clé 🔑 with unicode", &"x".repeat(10_000)] {
            let sealed = s.seal(secret).unwrap();
            assert!(sealed.starts_with(SEALED_PREFIX), "{sealed}");
            assert!(Secrets::is_sealed(&sealed));
            if !secret.is_empty() {
                assert!(!sealed.contains(secret));
            }
            let opened = s.open(&sealed).unwrap();
            assert_eq!(opened.value, secret);
            assert!(!opened.stale);
        }
        // The same key from base64 (padded or not, with stray whitespace) opens it too.
        let b64 = STANDARD.encode([7u8; KEY_LEN]);
        let sealed = s.seal("sk-1").unwrap();
        for k in [b64.clone(), b64.trim_end_matches('=').to_string(), format!("  {b64}\n")] {
            assert_eq!(Secrets::from_base64(&k).unwrap().open(&sealed).unwrap().value, "sk-1", "{k:?}");
        }
    }

    #[test]
    fn nonce_differs_per_call() {
        let s = secrets();
        let a = s.seal("same secret").unwrap();
        let b = s.seal("same secret").unwrap();
        assert_ne!(a, b);
        let nonce = |v: &str| STANDARD.decode(v.strip_prefix(SEALED_PREFIX).unwrap()).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
        assert_eq!(s.open(&a).unwrap().value, s.open(&b).unwrap().value);
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = secrets().seal("sk-live-123").unwrap();
        let other = Secrets::from_key(&[8u8; KEY_LEN]);
        assert_eq!(other.open(&sealed), Err(SecretsError::Undecryptable));
        let msg = SecretsError::Undecryptable.to_string();
        assert!(msg.contains("another key"), "{msg}");
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let s = secrets();
        let sealed = s.seal("sk-live-123").unwrap();
        let mut bytes = STANDARD.decode(sealed.strip_prefix(SEALED_PREFIX).unwrap()).unwrap();
        // A flipped bit anywhere (nonce, ciphertext or tag) is detected.
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = format!("{SEALED_PREFIX}{}", STANDARD.encode(&bytes));
            assert_eq!(s.open(&tampered), Err(SecretsError::Undecryptable), "byte {i}");
            bytes[i] ^= 1;
        }
        // Truncated or garbled text is refused without panicking.
        assert_eq!(s.open(&sealed[..sealed.len() - 8]), Err(SecretsError::Undecryptable), "tag cut short");
        assert_eq!(s.open(&sealed[..sealed.len() - 1]), Err(SecretsError::Malformed("not valid base64")));
        assert_eq!(s.open("enc:v1:AAAA"), Err(SecretsError::Malformed("too short")));
        assert_eq!(s.open("enc:v1:***"), Err(SecretsError::Malformed("not valid base64")));
        assert_eq!(s.open("enc:v9:AAAA"), Err(SecretsError::UnknownVersion));
        assert!(matches!(s.open("sk-in-clear"), Err(SecretsError::Malformed(_))));
    }

    #[test]
    fn fallback_keys_open_but_never_seal() {
        let old = Secrets::from_key(&[1u8; KEY_LEN]);
        let new = Secrets::from_key(&[2u8; KEY_LEN]);
        let sealed_old = old.seal("sk-old").unwrap();
        let both = new.clone().with_fallback(&old);
        let opened = both.open(&sealed_old).unwrap();
        assert_eq!((opened.value.as_str(), opened.stale), ("sk-old", true));
        let sealed_new = both.seal("sk-new").unwrap();
        assert!(!both.open(&sealed_new).unwrap().stale);
        assert_eq!(new.open(&sealed_new).unwrap().value, "sk-new", "sealed under the current key");
        assert_eq!(old.open(&sealed_new), Err(SecretsError::Undecryptable));
    }

    #[test]
    fn derivation_is_stable_and_separated() {
        let a = Secrets::derive(b"a-long-jwt-secret-0123456789", b"purpose one");
        let sealed = a.seal("sk").unwrap();
        assert_eq!(Secrets::derive(b"a-long-jwt-secret-0123456789", b"purpose one").open(&sealed).unwrap().value, "sk");
        assert!(Secrets::derive(b"a-long-jwt-secret-0123456789", b"purpose two").open(&sealed).is_err());
        assert!(Secrets::derive(b"another-jwt-secret-0123456789", b"purpose one").open(&sealed).is_err());
    }

    #[test]
    fn invalid_keys_are_refused_and_nothing_leaks() {
        for bad in ["", "not base64!", &STANDARD.encode([0u8; 16]), &STANDARD.encode([0u8; 33])] {
            assert!(matches!(Secrets::from_base64(bad), Err(SecretsError::InvalidKey(_))), "{bad:?}");
        }
        let key = Secrets::generate_key();
        assert_eq!(STANDARD.decode(&key).unwrap().len(), KEY_LEN);
        assert_ne!(key, Secrets::generate_key());
        let s = Secrets::from_base64(&key).unwrap();
        assert_eq!(format!("{s:?}"), "Secrets { keys: 1 }");
        let opened = s.open(&s.seal("sk-hidden").unwrap()).unwrap();
        assert!(!format!("{opened:?}").contains("sk-hidden"));
    }
}
