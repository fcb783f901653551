//! HS256 JWTs, compatible with Supabase's: audience `authenticated`, `sub` is the user id.

use crate::error::{CoreError, Result};
use base64::Engine;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The audience Gaia issues and requires.
pub const AUDIENCE: &str = "authenticated";

/// Claims Gaia reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// Expiry (unix seconds); always checked.
    pub exp: u64,
    /// Issued at (unix seconds).
    #[serde(default)]
    pub iat: u64,
    /// Audience; must be `authenticated`.
    pub aud: String,
    /// Email, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Role (`authenticated` for users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The sign-in session the token was issued for (Gaia's own tokens, claim `gaia_sid`): revoking the
    /// session (logout, refresh-token theft) makes the token unusable before it expires. Tokens of
    /// other issuers sharing the secret have none; a standard OIDC `sid` claim they carry (Supabase and
    /// others set one) is not Gaia's and is not read.
    #[serde(rename = "gaia_sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Signing and verification keys for one HS256 secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

fn now_secs() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

impl JwtKeys {
    /// Keys for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = true;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        JwtKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// Keys for a random secret (tokens do not survive a restart).
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::new(&secret)
    }

    /// Issues a token for `user_id` valid for `ttl`.
    pub fn issue(&self, user_id: &str, email: Option<&str>, ttl: Duration) -> Result<String> {
        self.issue_for_session(user_id, email, None, ttl)
    }

    /// Issues a token for `user_id` valid for `ttl`, bound to sign-in session `sid` (its `sid` claim).
    pub fn issue_for_session(
        &self,
        user_id: &str,
        email: Option<&str>,
        sid: Option<&str>,
        ttl: Duration,
    ) -> Result<String> {
        let now = now_secs();
        self.sign(&Claims {
            sub: user_id.to_string(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
            aud: AUDIENCE.to_string(),
            email: email.map(str::to_string),
            role: Some("authenticated".to_string()),
            sid: sid.map(str::to_string),
        })
    }

    /// Signs arbitrary claims (for tests and tools).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| CoreError::Internal(format!("cannot sign token: {e}")))
    }

    /// Verifies signature, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidAudience => "token audience is not `authenticated`",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token is invalid",
            };
            CoreError::Unauthorized(why.to_string())
        })
    }
}

/// Whether `s` has the shape of a JWT: three base64url segments whose first decodes to a JSON header.
pub fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    segment_json::<serde_json::Value>(h).is_some_and(|v| v.get("alg").is_some())
}

/// One segment of a compact JWT (header or payload) read as JSON, without verifying anything.
pub(crate) fn segment_json<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_verify() {
        let k = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let t = k.issue("user-1", Some("a@b.c"), Duration::from_secs(60)).unwrap();
        assert!(looks_like_jwt(&t));
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.aud, "authenticated");
        assert_eq!(c.email.as_deref(), Some("a@b.c"));
    }

    #[test]
    fn rejects_bad_tokens() {
        let k = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let other = JwtKeys::new(b"another-secret-another-secret-xx");
        let t = other.issue("u", None, Duration::from_secs(60)).unwrap();
        assert!(k.verify(&t).unwrap_err().to_string().contains("signature"));
        let expired = k
            .sign(&Claims { sub: "u".into(), exp: 1, iat: 0, aud: AUDIENCE.into(), email: None, role: None, sid: None })
            .unwrap();
        assert!(k.verify(&expired).unwrap_err().to_string().contains("expired"));
        let wrong_aud = k
            .sign(&Claims {
                sub: "u".into(),
                exp: now_secs() + 60,
                iat: 0,
                aud: "x".into(),
                email: None,
                role: None,
                sid: None,
            })
            .unwrap();
        assert!(k.verify(&wrong_aud).unwrap_err().to_string().contains("audience"));
        assert!(k.verify("garbage").is_err());
    }

    #[test]
    fn jwt_shape() {
        assert!(!looks_like_jwt("gaia_abcdef"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(""));
    }
}
