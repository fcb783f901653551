//! Tokens of other identity providers (`[[auth.jwks]]`): keys the tests generate (RSA, P-256,
//! Ed25519), a key set served on loopback, and the attacks a verifier must refuse.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gaia_core::auth::{AuthMethod, Authenticator, Jwks, JwtKeys};
use gaia_core::cache::MemoryCache;
use gaia_core::config::{Config, JwksProvider};
use gaia_core::storage::Storage;
use gaia_core::testing::{hs256, http_json, jws, sqlite_db, KeySetServer, RecordingListener, SigningKey, TestDb};
use gaia_core::CoreError;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";
const ISSUER: &str = "https://idp.example/auth/v1";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "sub": sub, "aud": "authenticated", "exp": now() + 300, "iat": now(),
           "email": format!("{sub}@players.example"), "role": "authenticated"})
}

fn provider(url: &str) -> JwksProvider {
    JwksProvider {
        name: "studio".into(),
        url: url.into(),
        issuer: ISSUER.into(),
        audiences: vec!["authenticated".into()],
        algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
        subject_prefix: "studio:".into(),
        refresh_secs: 600,
        refetch_secs: 1,
    }
}

async fn authenticator(db: &TestDb, url: &str) -> (Storage, Authenticator) {
    let storage = db.storage().await;
    let auth = Authenticator::new(
        storage.clone(),
        Arc::new(MemoryCache::new(100)),
        JwtKeys::new(SECRET),
        Duration::from_secs(60),
    );
    auth.set_jwks(Jwks::new(&[provider(url)]).unwrap()).unwrap();
    (storage, auth)
}

fn refused(result: Result<impl std::fmt::Debug, CoreError>, why: &str, case: &str) {
    match result {
        Err(CoreError::Unauthorized(m)) => assert!(m.contains(why), "{case}: refused with `{m}`, expected `{why}`"),
        other => panic!("{case}: expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_signed_with_each_kind_of_published_key_sign_players_in() {
    let (r, e, ed) = (SigningKey::rsa("r1"), SigningKey::p256("e1"), SigningKey::ed25519("d1"));
    let idp = KeySetServer::start(&[&r, &e, &ed]).await;
    let db = sqlite_db();
    let (storage, auth) = authenticator(&db, &idp.url()).await;
    for (key, sub) in [(&r, "alice"), (&e, "bob"), (&ed, "carol")] {
        let p = auth.authenticate_bearer(&format!("Bearer {}", key.token(&claims(sub)))).await.unwrap();
        assert_eq!(p.user_id, format!("studio:{sub}"), "{}", key.alg);
        assert_eq!(p.method, AuthMethod::Jwt);
        let user = storage.get_user(&p.user_id).await.unwrap().unwrap();
        assert_eq!(user.email, format!("{sub}@players.example"));
        assert!(!user.is_admin);
    }
    // One fetch served all three keys.
    assert_eq!(idp.fetches(), 1);
    // Gaia's own tokens still work beside the provider's.
    let own = JwtKeys::new(SECRET).issue("local-user", None, Duration::from_secs(60)).unwrap();
    assert_eq!(auth.authenticate_bearer(&own).await.unwrap().user_id, "local-user");
    // An address the provider has not verified is not taken.
    let mut unverified = claims("dave");
    unverified["email_verified"] = json!(false);
    let p = auth.authenticate_bearer(&r.token(&unverified)).await.unwrap();
    assert_ne!(storage.get_user(&p.user_id).await.unwrap().unwrap().email, "dave@players.example");
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused() {
    let (r, ed) = (SigningKey::rsa("r1"), SigningKey::ed25519("d1"));
    let idp = KeySetServer::start(&[&r, &ed]).await;
    let db = sqlite_db();
    let (storage, auth) = authenticator(&db, &idp.url()).await;
    let header = |alg: &str, kid: &str| json!({"alg": alg, "typ": "JWT", "kid": kid});

    // Another issuer: not this provider's, so it is left to the HS256 secret, which refuses it.
    let mut other = claims("victim");
    other["iss"] = json!("https://evil.example");
    refused(auth.authenticate_jwt(&r.token(&other)).await, "invalid", "another issuer");
    // The wrong audience, an expired token, a missing subject.
    let mut aud = claims("victim");
    aud["aud"] = json!("someone-else");
    refused(auth.authenticate_jwt(&r.token(&aud)).await, "audience", "audience");
    let mut old = claims("victim");
    old["exp"] = json!(now() - 120);
    refused(auth.authenticate_jwt(&ed.token(&old)).await, "expired", "expired");
    let mut nobody = claims("victim");
    nobody.as_object_mut().unwrap().remove("sub");
    refused(auth.authenticate_jwt(&ed.token(&nobody)).await, "lacks", "no subject");
    // `alg: none`, unsigned.
    let unsigned = jws(&json!({"alg": "none", "typ": "JWT"}), &claims("victim"), &|_| Vec::new());
    refused(auth.authenticate_jwt(&unsigned).await, "invalid", "alg none");
    // HS256 "signed" with the public key as the secret (the key set is public): both the JWK and the
    // modulus as secrets.
    for secret in [r.jwk.to_string().into_bytes(), URL_SAFE_NO_PAD.decode(r.jwk["n"].as_str().unwrap()).unwrap()] {
        let hs = jws(&header("HS256", "r1"), &claims("victim"), &|m| hs256(&secret, m));
        refused(auth.authenticate_jwt(&hs).await, "algorithm is not accepted", "HS256 with the public key");
    }
    // The payload changed after signing.
    let good = ed.token(&claims("alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(claims("victim").to_string().as_bytes()), parts[2]);
    refused(auth.authenticate_jwt(&tampered).await, "signature", "tampered payload");
    // Signed by a key of the attacker's, naming a published key's `kid`.
    let attacker = SigningKey::ed25519("d1");
    refused(auth.authenticate_jwt(&attacker.token(&claims("victim"))).await, "signature", "kid of another key");
    // An algorithm the named key is not for (an RSA key's kid on an ES256 token).
    let ec = SigningKey::p256("r1");
    refused(auth.authenticate_jwt(&ec.token(&claims("victim"))).await, "unknown", "wrong key type");
    assert!(storage.get_user("studio:victim").await.unwrap().is_none());
    assert!(storage.get_user("victim").await.unwrap().is_none());
    // The good token still works after all that.
    assert_eq!(auth.authenticate_jwt(&good).await.unwrap().user_id, "studio:alice");
}

#[tokio::test]
async fn a_rotation_is_followed_and_made_up_kids_cannot_make_gaia_fetch() {
    let (k1, k2) = (SigningKey::ed25519("2026-01"), SigningKey::ed25519("2026-02"));
    let idp = KeySetServer::start(&[&k1]).await;
    let db = sqlite_db();
    let (_storage, auth) = authenticator(&db, &idp.url()).await;
    auth.authenticate_jwt(&k1.token(&claims("alice"))).await.unwrap();
    assert_eq!(idp.fetches(), 1);

    // A burst of tokens naming keys nobody published: at most one fetch for all of them.
    let made_up: Vec<String> =
        (0..20).map(|i| SigningKey::ed25519(&format!("fake-{i}")).token(&claims("victim"))).collect();
    let results = futures::future::join_all(made_up.iter().map(|t| auth.authenticate_jwt(t))).await;
    for r in results {
        refused(r, "unknown", "made-up kid");
    }
    assert!(idp.fetches() <= 2, "{} fetches", idp.fetches());

    // The provider rotates to a new key: a token signed with it is accepted once the set is fetched
    // again (after `refetch_secs`), and the retired key is gone with the old set.
    idp.serve(&[&k2]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = idp.fetches();
    assert_eq!(auth.authenticate_jwt(&k2.token(&claims("alice"))).await.unwrap().user_id, "studio:alice");
    assert_eq!(idp.fetches(), before + 1);
    refused(auth.authenticate_jwt(&k1.token(&claims("alice"))).await, "unknown", "retired key");
}

#[tokio::test]
async fn an_unreachable_or_hostile_key_server_refuses_tokens_without_harm() {
    let key = SigningKey::ed25519("d1");
    // Nobody listens on that port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", l.local_addr().unwrap())
    };
    // A set larger than 256 KiB, a body that is not JSON, a redirect elsewhere.
    let huge =
        RecordingListener::start(|_| http_json(&format!("{{\"keys\": [\"{}\"]}}", "x".repeat(300 * 1024)))).await;
    let garbage = RecordingListener::start(|_| http_json("<html>not a key set</html>")).await;
    let redirect = RecordingListener::start(|_| {
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_string()
    })
    .await;
    for url in [closed, format!("{}/jwks.json", huge.url), format!("{}/jwks.json", garbage.url), redirect.url.clone()] {
        let db = sqlite_db();
        let (_storage, auth) = authenticator(&db, &url).await;
        refused(auth.authenticate_jwt(&key.token(&claims("alice"))).await, "unknown", &url);
        // Within `refetch_secs` a failed fetch is not tried again.
        refused(auth.authenticate_jwt(&key.token(&claims("alice"))).await, "unknown", &url);
    }
    assert_eq!(huge.requests().len(), 1);
    assert_eq!(garbage.requests().len(), 1);
    assert_eq!(redirect.requests().len(), 1);
}

#[test]
fn the_configuration_refuses_unsafe_providers() {
    let check = |change: &dyn Fn(&mut JwksProvider), why: &str| {
        let mut config = Config::default();
        let mut p = provider("https://idp.example/.well-known/jwks.json");
        change(&mut p);
        config.auth.jwks = vec![p];
        match config.validate() {
            Err(CoreError::Config(m)) => assert!(m.contains(why), "`{m}` lacks `{why}`"),
            other => panic!("expected a configuration error about {why}, got {other:?}"),
        }
    };
    check(&|p| p.url = "http://idp.example/jwks.json".into(), "https");
    check(&|p| p.url = "http://user@127.0.0.1/jwks.json".into(), "https");
    check(&|p| p.url = "ftp://idp.example/jwks.json".into(), "https");
    check(&|p| p.algorithms = vec!["HS256".into()], "HS256");
    check(&|p| p.algorithms = vec!["none".into()], "none");
    check(&|p| p.audiences.clear(), "audiences");
    check(&|p| p.issuer.clear(), "issuer");
    check(&|p| p.refetch_secs = 0, "refetch_secs");
    let mut config = Config::default();
    config.auth.jwks = vec![provider("http://127.0.0.1:9/jwks.json"), provider("http://[::1]:9/jwks.json")];
    config.auth.jwks[1].issuer = "https://other.example".into();
    match config.validate() {
        Err(CoreError::Config(m)) => assert!(m.contains("subject_prefix"), "{m}"),
        other => panic!("two providers with one prefix: {other:?}"),
    }
    config.auth.jwks[1].subject_prefix = "other:".into();
    config.validate().unwrap();
    config.auth.jwks[1].issuer = ISSUER.into();
    assert!(config.validate().is_err(), "two providers with one issuer");
}
