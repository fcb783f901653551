//! JWTs signed by other identity providers, verified with the public keys each publishes as a JSON
//! Web Key Set (RFC 7517): Supabase's asymmetric keys (ES256, RS256), a studio's own sign-in service,
//! any OpenID Connect provider (`[[auth.jwks]]`, [`crate::config::JwksProvider`]).
//!
//! A token goes to the provider whose `issuer` its `iss` claim names; a token of no configured issuer
//! is left to Gaia's own HS256 secret ([`super::JwtKeys`]). For a provider's token:
//! - its algorithm must be one the provider accepts, and asymmetric: an `HS256` token "signed" with a
//!   public key as the secret, or `alg: none`, is refused before any key is looked at;
//! - its key is the set's key of the token's `kid` (a token without `kid` is verified only when the
//!   set has a single key for its algorithm), and the key's own type, curve and `alg` must fit the
//!   token's algorithm;
//! - issuer, audience (one of the provider's), expiry (30 s leeway for clock drift) and subject are
//!   required and checked.
//!
//! Key sets are fetched when first needed, again once older than `refresh_secs`, and again when a
//! token names a key the set lacks (a rotation), at most once per `refetch_secs` per provider, one
//! fetch at a time. A fetch that fails keeps the keys already known. A set is read up to 256 KiB and
//! 64 keys within 5 s; keys of other types, for encryption, or unreadable are skipped.

use crate::config::JwksProvider;
use crate::error::{CoreError, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::jwt::{Claims, AUDIENCE};

/// Largest key set read.
const MAX_SET_BYTES: usize = 256 * 1024;
/// Most keys read from a set.
const MAX_KEYS: usize = 64;
/// Time allowed to fetch a key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock drift allowed on `exp` and `nbf` of another issuer's tokens.
const LEEWAY_SECS: u64 = 30;
/// Longest token payload decoded to find its issuer.
const MAX_PAYLOAD_CHARS: usize = 16 * 1024;

/// One usable key of a set.
struct Key {
    kid: Option<String>,
    decoding: DecodingKey,
    /// The algorithms this key may verify: those of its type (and curve, and own `alg`) that the
    /// provider accepts.
    algorithms: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    /// When the keys were fetched; `None` until a fetch succeeded.
    fetched_at: Option<Instant>,
}

struct Provider {
    config: JwksProvider,
    algorithms: Vec<Algorithm>,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching (one fetch at a time); the time of the last attempt, successful or not.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

/// The identity providers of `[[auth.jwks]]` and their key sets. Cheap to clone.
#[derive(Clone)]
pub struct Jwks {
    providers: Arc<Vec<Provider>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.providers.iter().map(|p| &p.config.name)).finish()
    }
}

/// What the token says before it is verified: only used to choose the provider.
#[derive(Deserialize)]
struct Unverified {
    #[serde(default)]
    iss: Option<String>,
}

/// The claims read from another issuer's token.
#[derive(Deserialize)]
struct ForeignClaims {
    #[serde(default)]
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    role: Option<String>,
}

fn unauthorized(why: &str) -> CoreError {
    CoreError::Unauthorized(why.to_string())
}

/// The algorithms a key of this type may verify, before the provider's list is applied.
fn key_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => vec![EdDSA],
        // Symmetric keys are never taken from a key set, nor curves the verifier lacks.
        _ => Vec::new(),
    };
    match jwk.common.key_algorithm {
        None => by_type,
        Some(own) => {
            let own = match own {
                KeyAlgorithm::RS256 => RS256,
                KeyAlgorithm::RS384 => RS384,
                KeyAlgorithm::RS512 => RS512,
                KeyAlgorithm::PS256 => PS256,
                KeyAlgorithm::PS384 => PS384,
                KeyAlgorithm::PS512 => PS512,
                KeyAlgorithm::ES256 => ES256,
                KeyAlgorithm::ES384 => ES384,
                KeyAlgorithm::EdDSA => EdDSA,
                _ => return Vec::new(),
            };
            by_type.into_iter().filter(|a| *a == own).collect()
        }
    }
}

/// The usable keys of a key set's JSON, each for the algorithms of `accepted` it fits.
fn parse_set(body: &[u8], accepted: &[Algorithm]) -> Result<Vec<Key>> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(body).map_err(|e| CoreError::Internal(format!("the key set is not a JWKS: {e}")))?;
    let mut keys = Vec::new();
    for value in raw.keys.into_iter().take(MAX_KEYS) {
        // A key of a type this version cannot read is skipped, not the whole set.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
            continue;
        }
        let algorithms: Vec<Algorithm> = key_algorithms(&jwk).into_iter().filter(|a| accepted.contains(a)).collect();
        if algorithms.is_empty() {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        keys.push(Key { kid: jwk.common.key_id.clone(), decoding, algorithms });
    }
    Ok(keys)
}

impl Provider {
    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_fresh(&self, set: &KeySet) -> bool {
        set.fetched_at.is_some_and(|t| t.elapsed() < Duration::from_secs(self.config.refresh_secs))
    }

    /// Fetches the key set again unless another request did meanwhile or the last attempt was less
    /// than `refetch_secs` ago. With `wait`, waits for a fetch in progress (the token's key may come
    /// with it); without, leaves it to that fetch (the keys at hand are still usable).
    async fn refresh(&self, client: &reqwest::Client, seen: &Arc<KeySet>, wait: bool) {
        let mut last_attempt = if wait {
            self.fetching.lock().await
        } else {
            match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        if !Arc::ptr_eq(&self.current(), seen) {
            return; // fetched by another request while this one waited
        }
        if last_attempt.is_some_and(|t| t.elapsed() < Duration::from_secs(self.config.refetch_secs)) {
            return;
        }
        *last_attempt = Some(Instant::now());
        match self.fetch(client).await {
            Ok(keys) => {
                let set = Arc::new(KeySet { keys, fetched_at: Some(Instant::now()) });
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = set;
            }
            Err(e) => {
                tracing::warn!(provider = %self.config.name, url = %self.config.url, error = %e,
                    "cannot fetch the identity provider's keys; keeping those already known");
            }
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Vec<Key>> {
        let fail = |e: String| CoreError::Internal(e);
        let mut response = client.get(&self.config.url).send().await.map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n > MAX_SET_BYTES as u64) {
            return Err(fail(format!("the key set is larger than {MAX_SET_BYTES} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > MAX_SET_BYTES {
                return Err(fail(format!("the key set is larger than {MAX_SET_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse_set(&body, &self.algorithms)
    }

    /// The key to verify a token of `alg` naming `kid` with, if the set has exactly one.
    fn find(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let mut fitting = set.keys.iter().filter(|k| k.algorithms.contains(&alg));
        match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)).map(|k| k.decoding.clone()),
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only.decoding.clone()),
                _ => None,
            },
        }
    }
}

impl Jwks {
    /// The providers of `[[auth.jwks]]` (already validated with the configuration). Nothing is
    /// fetched until a token needs it.
    pub fn new(providers: &[JwksProvider]) -> Result<Jwks> {
        let providers = providers
            .iter()
            .map(|config| {
                let algorithms = config
                    .algorithms
                    .iter()
                    .map(|a| Algorithm::from_str(a))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| CoreError::Config(format!("`[[auth.jwks]]` `{}`: unknown algorithm", config.name)))?;
                if algorithms.iter().any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) {
                    return Err(CoreError::Config(format!(
                        "`[[auth.jwks]]` `{}`: symmetric algorithms are not accepted",
                        config.name
                    )));
                }
                Ok(Provider {
                    config: config.clone(),
                    algorithms,
                    keys: RwLock::new(Arc::new(KeySet::default())),
                    fetching: tokio::sync::Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CoreError::Config(format!("cannot make the key set client: {e}")))?;
        Ok(Jwks { providers: Arc::new(providers), client })
    }

    /// Verifies `token` if its issuer is one of the providers: `Ok(None)` when it names none of them
    /// (the token is then Gaia's own, or nobody's), the claims when it is valid, `Unauthorized` with
    /// the reason otherwise. The subject returned carries the provider's `subject_prefix`.
    pub async fn verify(&self, token: &str) -> Result<Option<Claims>> {
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Ok(None);
        };
        if payload.len() > MAX_PAYLOAD_CHARS {
            return Ok(None);
        }
        let Some(iss) = super::jwt::segment_json::<Unverified>(payload).and_then(|u| u.iss) else {
            return Ok(None);
        };
        let Some(provider) = self.providers.iter().find(|p| p.config.issuer == iss) else {
            return Ok(None);
        };
        // The header is parsed by the JWT library: an algorithm it does not know (`none`) fails here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("token header is invalid"))?;
        if !provider.algorithms.contains(&header.alg) {
            return Err(unauthorized("token algorithm is not accepted for its issuer"));
        }
        let kid = header.kid.as_deref();
        let mut set = provider.current();
        if !provider.is_fresh(&set) {
            // The first fetch is waited for; a stale set is refreshed by one request, the others
            // go on with it.
            provider.refresh(&self.client, &set, set.fetched_at.is_none()).await;
            set = provider.current();
        }
        let key = match Provider::find(&set, kid, header.alg) {
            Some(k) => k,
            None => {
                provider.refresh(&self.client, &set, true).await;
                Provider::find(&provider.current(), kid, header.alg)
                    .ok_or_else(|| unauthorized("token signing key is unknown"))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&provider.config.issuer]);
        validation.set_audience(&provider.config.audiences);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<ForeignClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token is not valid yet",
                ErrorKind::InvalidAudience => "token audience is not accepted",
                ErrorKind::InvalidIssuer => "token issuer is not accepted",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token is invalid",
            })
        })?;
        let c = claims.claims;
        if c.sub.is_empty() {
            return Err(unauthorized("token lacks a subject"));
        }
        Ok(Some(Claims {
            sub: format!("{}{}", provider.config.subject_prefix, c.sub),
            exp: c.exp,
            iat: c.iat.map_or(0, |t| t.max(0.0) as u64),
            aud: provider.config.audiences.first().cloned().unwrap_or_else(|| AUDIENCE.to_string()),
            // An address the provider says it has not verified is not taken for the user's.
            email: c.email.filter(|_| c.email_verified != Some(false)),
            role: c.role,
            // Sign-in sessions are Gaia's own; another issuer's token never names one.
            sid: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sets_usable_keys() {
        let accepted = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
        let set = serde_json::json!({"keys": [
            // Ed25519 (RFC 8037's example public key)
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // a symmetric key: never taken from a set
            {"kty": "oct", "kid": "hs", "k": "c2VjcmV0"},
            // an encryption key
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // its own alg is not one accepted
            {"kty": "OKP", "crv": "Ed25519", "kid": "other", "alg": "ES256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // a type this version does not read
            {"kty": "XYZ", "kid": "new"},
            "not even an object"
        ]});
        let keys = parse_set(set.to_string().as_bytes(), &accepted).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap_or_default()).collect();
        assert_eq!(kids, ["ed"]);
        assert_eq!(keys[0].algorithms, [Algorithm::EdDSA]);
        assert!(parse_set(b"{\"nope\": 1}", &accepted).is_err());
        assert!(parse_set(b"[", &accepted).is_err());
    }

    #[test]
    fn a_token_without_kid_needs_a_single_fitting_key() {
        let key = || Key {
            kid: None,
            decoding: DecodingKey::from_ed_components("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap(),
            algorithms: vec![Algorithm::EdDSA],
        };
        let one = KeySet { keys: vec![key()], fetched_at: None };
        assert!(Provider::find(&one, None, Algorithm::EdDSA).is_some());
        assert!(Provider::find(&one, None, Algorithm::ES256).is_none());
        assert!(Provider::find(&one, Some("x"), Algorithm::EdDSA).is_none());
        let two = KeySet { keys: vec![key(), key()], fetched_at: None };
        assert!(Provider::find(&two, None, Algorithm::EdDSA).is_none());
    }
}
