//! Authentication primitives: API keys ([`generate_api_key`], [`hash_api_key`]), passwords
//! ([`hash_password`], [`verify_password`]), HS256 JWTs ([`JwtKeys`]), other identity providers' JWTs
//! verified with their published keys ([`Jwks`]), and the [`Authenticator`] that turns a credential
//! into a [`Principal`].
//!
//! ```
//! use gaia_core::auth::{generate_api_key, hash_api_key, looks_like_jwt, JwtKeys};
//! use std::time::Duration;
//!
//! let key = generate_api_key();
//! assert!(key.plaintext.starts_with("gaia_"));
//! assert_eq!(hash_api_key(&key.plaintext), key.hash);
//!
//! let jwt = JwtKeys::new(b"a-long-random-secret-for-hs256!!");
//! let token = jwt.issue("user-1", None, Duration::from_secs(60)).unwrap();
//! assert!(looks_like_jwt(&token) && !looks_like_jwt(&key.plaintext));
//! assert_eq!(jwt.verify(&token).unwrap().sub, "user-1");
//! ```

pub mod api_key;
mod authenticator;
pub mod jwks;
pub mod jwt;
pub mod password;
pub mod sign_in;

pub use api_key::{generate_api_key, hash_api_key, GeneratedKey};
pub use authenticator::{
    AuthMethod, Authenticator, Principal, RotatedKey, DEFAULT_ROTATION_OVERLAP, MAX_KEY_LIFETIME, MAX_KEY_NAME,
    MAX_ROTATION_OVERLAP, TOUCH_INTERVAL,
};
pub use jwks::Jwks;
pub use jwt::{looks_like_jwt, Claims, JwtKeys};
pub use password::{hash_password, verify_password, GateError, PasswordGate, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
