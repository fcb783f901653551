//! The audit log: sign-ins (and failures), registrations, API keys, provider changes, knowledge-base
//! writes and access-control changes, readable by administrators only, without secrets.
//! SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::database_urls;
use serde_json::{json, Value};

#[tokio::test]
async fn security_actions_are_audited() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let b = s.backend;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);
        let (admin, _, admin_id) = s.register("admin@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (user, _, user_id) = s.register("user@example.com").await;
        // A failed and a good sign-in.
        let r = s
            .http
            .post(url("/auth/login"))
            .json(&json!({"email": "user@example.com", "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = s
            .http
            .post(url("/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": "whatever123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = s
            .http
            .post(url("/auth/login"))
            .json(&json!({"email": "user@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // A key made and revoked.
        let (key, key_id) = s.api_key(&user).await;
        assert_eq!(
            s.http.delete(url(&format!("/keys/{key_id}"))).bearer_auth(&user).send().await.unwrap().status(),
            204
        );
        // A provider added by the admin; an RBAC change.
        let r = s
            .http
            .post(url("/providers"))
            .bearer_auth(&admin)
            .json(&json!({"name": "extra", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret-value", "models": ["m"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{b}");
        // (Records are ordered by millisecond: keep the last one apart.)
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        s.state.rbac().await.grant(Some(&admin_id), &user_id, "viewer", None, None).await.unwrap();

        // Only administrators read it.
        assert_eq!(s.http.get(url("/audit")).bearer_auth(&user).send().await.unwrap().status(), 403);
        let v: Value = s.http.get(url("/audit?limit=50")).bearer_auth(&admin).fetch_json().await;
        let records = v["records"].as_array().unwrap();
        let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
        for want in [
            "auth.register",
            "auth.login_failed",
            "auth.login",
            "key.create",
            "key.revoke",
            "provider.add",
            "grant.create",
        ] {
            assert!(actions.contains(&want), "{b}: {want} in {actions:?}");
        }
        assert_eq!(actions[0], "grant.create", "{b}: newest first");
        let failed: Vec<&Value> = records.iter().filter(|r| r["action"] == "auth.login_failed").collect();
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|r| r["actor_id"].is_null()));
        let key_rec = records.iter().find(|r| r["action"] == "key.create").unwrap();
        assert_eq!(
            (key_rec["actor_id"].as_str(), key_rec["target"].as_str()),
            (Some(user_id.as_str()), Some(key_id.as_str()))
        );
        // No secrets: no password, key or provider key anywhere in the log.
        let text = v.to_string();
        assert!(!text.contains("correct horse") && !text.contains("wrong password") && !text.contains(&key), "{b}");
        assert!(!text.contains("sk-secret-value"), "{b}");
        // Filter by action prefix.
        let v: Value = s.http.get(url("/audit?action=key.")).bearer_auth(&admin).fetch_json().await;
        let mut only: Vec<&str> =
            v["records"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
        only.sort();
        assert_eq!(only, ["key.create", "key.revoke"], "{b}");
    }
}
