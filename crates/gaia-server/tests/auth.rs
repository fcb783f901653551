//! Authentication over HTTP: API keys, JWTs, local users, refresh tokens. SQLite and PostgreSQL.

mod common;

use common::start;
use gaia_core::auth::{Claims, JwtKeys};
use gaia_core::testing::database_urls;
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
        let r: Value = s
            .http
            .post(format!("{}/api/v1/auth/validate", s.url))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
            .sign(&Claims { sub: "u1".into(), exp: 1000, iat: 0, aud: "authenticated".into(), email: None, role: None })
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
        let listed: Value = s.get("/api/v1/keys", &key).send().await.unwrap().json().await.unwrap();
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
