//! Authentication primitives: API keys, passwords, JWTs, and the [`Authenticator`] that turns a
//! credential into a [`Principal`].

pub mod api_key;
mod authenticator;
pub mod jwt;
pub mod password;

pub use api_key::{generate_api_key, hash_api_key, GeneratedKey};
pub use authenticator::{AuthMethod, Authenticator, Principal};
pub use jwt::{looks_like_jwt, Claims, JwtKeys};
pub use password::{hash_password, verify_password};
