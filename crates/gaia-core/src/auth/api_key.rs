//! API key generation and hashing.

use rand::distr::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A freshly generated key: show `plaintext` once, store `hash` and `prefix`.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// The key itself (`gaia_` + 40 base62 characters). Never stored.
    pub plaintext: String,
    /// First 12 characters, for display.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("prefix", &self.prefix).field("plaintext", &"<redacted>").finish()
    }
}

/// Generates a random API key from the OS-seeded CSPRNG (about 238 bits of entropy).
pub fn generate_api_key() -> GeneratedKey {
    let body: String = rand::rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    let plaintext = format!("gaia_{body}");
    GeneratedKey { prefix: plaintext[..12].to_string(), hash: hash_api_key(&plaintext), plaintext }
}

/// Hex SHA-256 of a key, as stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("gaia_") && a.plaintext.len() == 45);
        assert_eq!(a.prefix, &a.plaintext[..12]);
        assert_eq!(a.hash, hash_api_key(&a.plaintext));
        assert_eq!(a.hash.len(), 64);
        assert!(!format!("{a:?}").contains(&a.plaintext));
        // SHA-256("abc"), a known vector.
        assert_eq!(hash_api_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
