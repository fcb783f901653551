//! Conversations over HTTP, and isolation between users. SQLite and PostgreSQL.

use crate::common;

use common::{start, Fetch};
use gaia_core::testing::database_urls;
use serde_json::{json, Value};

#[tokio::test]
async fn crud_and_isolation() {
    for db in database_urls().await {
        let s = start(db, None).await;
        let (a, _, _) = s.register("a@example.com").await;
        let (b, _, _) = s.register("b@example.com").await;
        let url = |p: &str| format!("{}/api/v1/conversations{p}", s.url);

        let r = s.http.post(url("")).bearer_auth(&a).json(&json!({"title": "Night watch"})).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", s.backend);
        let c: Value = r.json().await.unwrap();
        let id = c["id"].as_str().unwrap().to_string();
        assert_eq!(c["title"], "Night watch");
        let r = s.http.post(url("")).bearer_auth(&a).send().await.unwrap();
        assert_eq!(r.status(), 201, "an empty body is fine");

        let list: Value = s.http.get(url("")).bearer_auth(&a).fetch_json().await;
        assert_eq!(list["conversations"].as_array().unwrap().len(), 2);
        let page: Value = s.http.get(url("?limit=1&offset=1")).bearer_auth(&a).fetch_json().await;
        assert_eq!(page["conversations"].as_array().unwrap().len(), 1);
        assert_eq!(s.http.get(url("?limit=0")).bearer_auth(&a).send().await.unwrap().status(), 400);
        assert_eq!(s.http.get(url("?limit=abc")).bearer_auth(&a).send().await.unwrap().status(), 400);

        let got = s.http.get(url(&format!("/{id}"))).bearer_auth(&a).send().await.unwrap();
        assert_eq!(got.status(), 200);
        let msgs: Value = s.http.get(url(&format!("/{id}/messages"))).bearer_auth(&a).fetch_json().await;
        assert_eq!(msgs["messages"], json!([]));

        // B sees nothing of A's: 404s, not 403s, and an empty list.
        for path in [format!("/{id}"), format!("/{id}/messages")] {
            let r = s.http.get(url(&path)).bearer_auth(&b).send().await.unwrap();
            assert_eq!(r.status(), 404);
            assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
        }
        assert_eq!(s.http.delete(url(&format!("/{id}"))).bearer_auth(&b).send().await.unwrap().status(), 404);
        let lb: Value = s.http.get(url("")).bearer_auth(&b).fetch_json().await;
        assert_eq!(lb["conversations"], json!([]));
        let r = s
            .http
            .post(format!("{}/api/v1/chat", s.url))
            .bearer_auth(&b)
            .json(&json!({"message": "hi", "conversation_id": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "cannot chat into someone else's conversation");

        // Delete: 204, then gone.
        assert_eq!(s.http.delete(url(&format!("/{id}"))).bearer_auth(&a).send().await.unwrap().status(), 204);
        assert_eq!(s.http.get(url(&format!("/{id}"))).bearer_auth(&a).send().await.unwrap().status(), 404);
        assert_eq!(s.http.delete(url(&format!("/{id}"))).bearer_auth(&a).send().await.unwrap().status(), 404);
    }
}
