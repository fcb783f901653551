//! Authentication over HTTP: API keys, JWTs, local users, refresh tokens. SQLite and PostgreSQL.

use crate::common;

use common::{start, start_with, test_config, Fetch};
use gaia_core::auth::{Claims, JwtKeys};
use gaia_core::config::JwksProvider;
use gaia_core::testing::{database_urls, hs256, jws, sqlite_db, KeySetServer, SigningKey};
use serde_json::{json, Value};

#[tokio::test]
async fn credentials_are_required_and_checked() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let url = format!("{}/api/v1/conversations", s.url);
        // No credentials, bad key, bad bearer, wrong scheme: 401 with a JSON body.
        for req in [
            s.http.get(&url),
            s.http.get(&url).header("X-API-Key", "gaia_notakey"),
            s.http.get(&url).header("x-api-key", ""),
            s.http.get(&url).bearer_auth("gaia_notakey"),
            s.http.get(&url).bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.bad"),
            s.http.get(&url).header("Authorization", "Basic dXNlcjpwdw=="),
        ] {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{}", s.backend);
            let v: Value = r.json().await.unwrap();
            assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
        }
    }
}

#[tokio::test]
async fn register_login_refresh_logout_validate() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let (access, refresh, user_id) = s.register("Mara@Example.com").await;

        // Duplicate email: 409. Short password: 400. Malformed JSON: 400.
        let dup = s
            .http
            .post(format!("{}/api/v1/auth/register", s.url))
            .json(&json!({"email": "mara@example.com", "password": "another password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(dup.status(), 409, "{}", s.backend);
        let short = s
            .http
            .post(format!("{}/api/v1/auth/register", s.url))
            .json(&json!({"email": "x@example.com", "password": "short"}))
            .send()
            .await
            .unwrap();
        assert_eq!(short.status(), 400);
        let bad = s
            .http
            .post(format!("{}/api/v1/auth/register", s.url))
            .header("content-type", "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        assert!(bad.json::<Value>().await.unwrap()["detail"].is_string());

        // The JWT works as a bearer token.
        let r = s.http.get(format!("{}/api/v1/conversations", s.url)).bearer_auth(&access).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // Login: wrong password 401, right one 200.
        let login = |pw: &'static str| {
            s.http
                .post(format!("{}/api/v1/auth/login", s.url))
                .json(&json!({"email": "MARA@example.com", "password": pw}))
                .send()
        };
        assert_eq!(login("wrong password!").await.unwrap().status(), 401);
        let unknown = s
            .http
            .post(format!("{}/api/v1/auth/login", s.url))
            .json(&json!({"email": "nobody@example.com", "password": "whatever1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 401);
        let v: Value = login("correct horse battery").await.unwrap().json().await.unwrap();
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["user"]["id"], user_id.as_str());
        assert!(v["user"].get("password_hash").is_none(), "never expose the hash");

        // Validate: by header and by body.
        let r: Value = s.http.post(format!("{}/api/v1/auth/validate", s.url)).bearer_auth(&access).fetch_json().await;
        assert_eq!(r["valid"], true);
        assert_eq!(r["user_id"], user_id.as_str());
        let r = s
            .http
            .post(format!("{}/api/v1/auth/validate", s.url))
            .json(&json!({"token": access}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s
            .http
            .post(format!("{}/api/v1/auth/validate", s.url))
            .json(&json!({"token": "gaia_bad"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        // Refresh rotates: the old refresh token stops working.
        let r = s
            .http
            .post(format!("{}/api/v1/auth/refresh", s.url))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let refresh2 = v["refresh_token"].as_str().unwrap().to_string();
        let again = s
            .http
            .post(format!("{}/api/v1/auth/refresh", s.url))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 401);

        // Logout revokes.
        let r = s
            .http
            .post(format!("{}/api/v1/auth/logout", s.url))
            .json(&json!({"refresh_token": refresh2}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = s
            .http
            .post(format!("{}/api/v1/auth/refresh", s.url))
            .json(&json!({"refresh_token": refresh2}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test]
async fn expired_and_foreign_jwts_are_refused() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let keys = JwtKeys::new(b"integration-test-secret-0123456789");
        let expired = keys
            .sign(&Claims {
                sub: "u1".into(),
                exp: 1000,
                iat: 0,
                aud: "authenticated".into(),
                email: None,
                role: None,
                sid: None,
            })
            .unwrap();
        let r = s.http.get(format!("{}/api/v1/conversations", s.url)).bearer_auth(&expired).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("expired"));
        let forged = JwtKeys::new(b"not-the-server-secret-0123456789")
            .issue("u1", None, std::time::Duration::from_secs(60))
            .unwrap();
        let r = s.http.get(format!("{}/api/v1/conversations", s.url)).bearer_auth(&forged).send().await.unwrap();
        assert_eq!(r.status(), 401);
        // A valid Supabase-style token for an unknown subject creates the user.
        let ext = keys.issue("supabase-user-7", Some("p7@example.com"), std::time::Duration::from_secs(60)).unwrap();
        let r = s.http.get(format!("{}/api/v1/conversations", s.url)).bearer_auth(&ext).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", s.backend);
    }
}

#[tokio::test]
async fn a_studios_identity_provider_signs_players_in_with_its_published_keys() {
    let key = SigningKey::p256("2026-12");
    let idp = KeySetServer::start(&[&key]).await;
    let mut config = test_config();
    config.auth.jwks = vec![JwksProvider {
        name: "studio".into(),
        url: idp.url(),
        issuer: "https://login.studio.example".into(),
        audiences: vec!["my-game".into()],
        algorithms: vec!["ES256".into()],
        subject_prefix: "studio:".into(),
        refresh_secs: 600,
        refetch_secs: 30,
    }];
    config.validate().unwrap();
    let s = start_with(sqlite_db(), None, config).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://login.studio.example", "sub": "player-9", "aud": "my-game", "exp": now + 300});
    let r = s.http.get(format!("{}/api/v1/rbac/me", s.url)).bearer_auth(key.token(&claims)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["user_id"], "studio:player-9");
    assert_eq!(me["is_admin"], false);
    // The key set is public: an HS256 token keyed with it is refused, with the reason.
    let forged =
        jws(&json!({"alg": "HS256", "kid": "2026-12"}), &claims, &|m| hs256(key.jwk.to_string().as_bytes(), m));
    let r = s.http.get(format!("{}/api/v1/rbac/me", s.url)).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("algorithm"));
    // Another audience: refused.
    let mut other = claims.clone();
    other["aud"] = json!("another-game");
    let r = s.http.get(format!("{}/api/v1/rbac/me", s.url)).bearer_auth(key.token(&other)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn api_keys_work_in_every_header_and_revoke_at_once() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let (access, _, _) = s.register("keys@example.com").await;
        let (key, id) = s.api_key(&access).await;
        let url = format!("{}/api/v1/conversations", s.url);
        for req in [
            s.http.get(&url).header("X-API-Key", &key),
            s.http.get(&url).header("x-api-key", &key),
            s.http.get(&url).bearer_auth(&key),
        ] {
            assert_eq!(req.send().await.unwrap().status(), 200, "{}", s.backend);
        }
        let listed: Value = s.get("/api/v1/keys", &key).fetch_json().await;
        let keys = listed["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].get("key_hash").is_none() && keys[0].get("key").is_none(), "no secrets in listings");

        // Another user cannot revoke it (404), its owner can, and it stops working at once
        // even though it is cached.
        let (other, _, _) = s.register("other@example.com").await;
        let r = s.http.delete(format!("{}/api/v1/keys/{id}", s.url)).bearer_auth(&other).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = s.http.delete(format!("{}/api/v1/keys/{id}", s.url)).bearer_auth(&access).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = s.http.get(&url).header("X-API-Key", &key).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("revoked"));
    }
}

#[tokio::test]
async fn api_keys_expire_and_rotate_over_http() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let b = s.backend;
        let (access, _, user_id) = s.register("rotate@example.com").await;
        let keys_url = format!("{}/api/v1/keys", s.url);
        let create = |body: Value| s.http.post(&keys_url).bearer_auth(&access).json(&body).send();

        // Expiry on creation: in days or at a time; in the past, zero days or both: a clear 400.
        let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        for (body, want) in [
            (json!({"expires_at": past}), "future"),
            (json!({"expires_in_days": 0}), "at least 1"),
            (json!({"expires_in_days": 3, "expires_at": past}), "not both"),
        ] {
            let r = create(body.clone()).await.unwrap();
            assert_eq!(r.status(), 400, "{b}: {body}");
            let v: Value = r.json().await.unwrap();
            assert!(v["detail"].as_str().unwrap().contains(want), "{b}: {body}: {v}");
        }
        let r = create(json!({"name": "game", "expires_in_days": 7})).await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let v: Value = r.json().await.unwrap();
        let (key, id) = (v["key"].as_str().unwrap().to_string(), v["id"].as_str().unwrap().to_string());
        let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(v["expires_at"].clone()).unwrap();
        let days = (expires - chrono::Utc::now()).num_hours();
        assert!((7 * 24 - 1..=7 * 24).contains(&days), "{b}: {v}");
        let convs = format!("{}/api/v1/conversations", s.url);
        assert_eq!(s.http.get(&convs).header("X-API-Key", &key).send().await.unwrap().status(), 200);
        let listed: Value = s.get("/api/v1/keys", &key).fetch_json().await;
        assert_eq!(listed["keys"][0]["expires_at"], v["expires_at"], "{b}");

        // Rotation with the default overlap: a new key (shown once), both work for now.
        let rotate = |id: &str, token: &str, body: Option<Value>| {
            let req = s.http.post(format!("{keys_url}/{id}/rotate")).bearer_auth(token.to_string());
            match body {
                Some(body) => req.json(&body).send(),
                None => req.send(),
            }
        };
        let r = rotate(&id, &access, None).await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let rot: Value = r.json().await.unwrap();
        let (key2, id2) = (rot["key"].as_str().unwrap().to_string(), rot["id"].as_str().unwrap().to_string());
        assert_eq!(rot["name"], "game");
        assert_eq!(rot["rotated"]["id"], id.as_str());
        let old_until: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(rot["rotated"]["expires_at"].clone()).unwrap();
        let overlap = (old_until - chrono::Utc::now()).num_minutes();
        assert!((23 * 60..=24 * 60).contains(&overlap), "{b}: default overlap of a day: {rot}");
        for k in [&key, &key2] {
            assert_eq!(s.http.get(&convs).header("X-API-Key", k).send().await.unwrap().status(), 200, "{b}");
        }
        // Rotated already, another user's, unknown: 409, 404, 404.
        let r = rotate(&id, &access, None).await.unwrap();
        assert_eq!(r.status(), 409, "{b}");
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("already rotated"));
        let (other, _, _) = s.register("stranger@example.com").await;
        assert_eq!(rotate(&id2, &other, None).await.unwrap().status(), 404, "{b}");
        assert_eq!(rotate("no-such-key", &access, None).await.unwrap().status(), 404, "{b}");
        // Bad overlaps are a 400.
        let r = rotate(&id2, &access, Some(json!({"overlap_secs": 31 * 24 * 3600}))).await.unwrap();
        assert_eq!(r.status(), 400, "{b}");
        assert_eq!(rotate(&id2, &access, Some(json!({"overlap": 5}))).await.unwrap().status(), 400, "{b}");

        // Immediate rotation (overlap 0): the old key stops at once, though its validation is cached.
        let r = rotate(&id2, &access, Some(json!({"overlap_secs": 0}))).await.unwrap();
        assert_eq!(r.status(), 201, "{b}");
        let key3 = r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
        let r = s.http.get(&convs).header("X-API-Key", &key2).send().await.unwrap();
        assert_eq!(r.status(), 401, "{b}");
        assert_eq!(r.json::<Value>().await.unwrap()["detail"], "API key has expired");
        assert_eq!(s.http.get(&convs).header("X-API-Key", &key3).send().await.unwrap().status(), 200, "{b}");
        // A revoked key cannot be rotated (409).
        let (_, revoked) = s.api_key(&access).await;
        assert_eq!(
            s.http.delete(format!("{keys_url}/{revoked}")).bearer_auth(&access).send().await.unwrap().status(),
            204
        );
        let r = rotate(&revoked, &access, None).await.unwrap();
        assert_eq!(r.status(), 409, "{b}");
        assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("revoked"));

        // Both rotations are audited, without any key.
        let audit = s.state.storage().audit_records(Some("key.rotate"), 10).await.unwrap();
        assert_eq!(audit.len(), 2, "{b}");
        assert!(audit.iter().all(|a| a.actor_id.as_deref() == Some(user_id.as_str())));
        let text = serde_json::to_string(&audit).unwrap();
        assert!(!text.contains(&key2) && !text.contains(&key3), "{b}: no key in the audit log");
    }
}
