//! Storage tests: each runs on SQLite and, when `GAIA_TEST_DATABASE_URL` is set, on PostgreSQL.

use gaia_core::storage::{Backend, Storage};
use gaia_core::testing::{database_urls, TestDb};
use gaia_core::types::{Role, Usage};
use gaia_core::CoreError;

async fn each_backend() -> Vec<(TestDb, Storage)> {
    let mut out = Vec::new();
    for db in database_urls().await {
        let s = Storage::connect(&db.url).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        s.migrate().await.unwrap();
        out.push((db, s));
    }
    out
}

#[tokio::test]
async fn migrations_are_idempotent_and_backend_is_detected() {
    for (db, s) in each_backend().await {
        s.migrate().await.unwrap();
        s.ping().await.unwrap();
        let want = if db.backend == "sqlite" { Backend::Sqlite } else { Backend::Postgres };
        assert_eq!(s.backend(), want);
    }
}

#[tokio::test]
async fn sqlite_file_is_created_on_first_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    assert!(!path.exists());
    let s = Storage::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    s.migrate().await.unwrap();
    assert!(path.exists());
}

#[tokio::test]
async fn users() {
    for (db, s) in each_backend().await {
        let u = s.create_user("Mara@Example.com", Some("hash"), Some("Mara")).await.unwrap();
        assert_eq!(u.email, "mara@example.com", "{}", db.backend);
        assert!(!u.is_admin);
        let e = s.create_user("mara@example.com", None, None).await.unwrap_err();
        assert!(matches!(e, CoreError::Conflict(_)), "{}: {e}", db.backend);
        assert!(matches!(s.create_user("not-an-email", None, None).await, Err(CoreError::InvalidInput(_))));
        let got = s.get_user_by_email("MARA@example.com").await.unwrap().unwrap();
        assert_eq!(got.id, u.id);
        assert_eq!(got.password_hash.as_deref(), Some("hash"));
        assert_eq!(s.get_user(&u.id).await.unwrap().unwrap().display_name.as_deref(), Some("Mara"));
        assert!(s.get_user("nope").await.unwrap().is_none());
        s.set_admin(&u.id, true).await.unwrap();
        assert!(s.get_user(&u.id).await.unwrap().unwrap().is_admin);
        assert!(matches!(s.set_admin("nope", true).await, Err(CoreError::NotFound(_))));
        assert_eq!(s.count_users().await.unwrap(), 1);
        // ensure_user: external subjects get a row once.
        let ext = s.ensure_user("supabase-sub-1", Some("ext@example.com")).await.unwrap();
        assert_eq!(ext.id, "supabase-sub-1");
        assert_eq!(s.ensure_user("supabase-sub-1", None).await.unwrap().email, "ext@example.com");
        assert_eq!(s.count_users().await.unwrap(), 2);
    }
}

#[tokio::test]
async fn api_keys_and_refresh_tokens() {
    for (db, s) in each_backend().await {
        let u = s.create_user("k@example.com", None, None).await.unwrap();
        let k = s.insert_api_key(&u.id, Some("ci"), "gaia_abcdefg", "hash-1").await.unwrap();
        s.insert_api_key(&u.id, None, "gaia_zzzzzzz", "hash-2").await.unwrap();
        assert!(matches!(s.insert_api_key(&u.id, None, "gaia_dup", "hash-1").await, Err(CoreError::Conflict(_))));
        let found = s.find_api_key_by_hash("hash-1").await.unwrap().unwrap();
        assert_eq!(found.id, k.id, "{}", db.backend);
        assert_eq!(found.name.as_deref(), Some("ci"));
        assert!(found.last_used_at.is_none());
        s.touch_api_key(&k.id).await.unwrap();
        assert!(s.get_api_key(&k.id).await.unwrap().unwrap().last_used_at.is_some());
        assert_eq!(s.list_api_keys(Some(&u.id)).await.unwrap().len(), 2);
        assert_eq!(s.list_api_keys(None).await.unwrap().len(), 2);
        let r = s.revoke_api_key(&k.id).await.unwrap().unwrap();
        assert!(r.is_revoked());
        let first = r.revoked_at;
        assert_eq!(s.revoke_api_key(&k.id).await.unwrap().unwrap().revoked_at, first, "revocation time is kept");
        assert!(s.revoke_api_key("missing").await.unwrap().is_none());

        let exp = chrono::Utc::now() + chrono::Duration::days(1);
        s.insert_refresh_token(&u.id, "rt-1", exp).await.unwrap();
        s.insert_refresh_token(&u.id, "rt-2", exp).await.unwrap();
        let t = s.find_refresh_token("rt-1").await.unwrap().unwrap();
        assert_eq!(t.user_id, u.id);
        assert_eq!(t.expires_at.timestamp_millis(), exp.timestamp_millis());
        assert!(s.revoke_refresh_token("rt-1").await.unwrap());
        assert!(!s.revoke_refresh_token("rt-1").await.unwrap());
        assert_eq!(s.revoke_user_refresh_tokens(&u.id).await.unwrap(), 1);
        assert!(s.find_refresh_token("rt-2").await.unwrap().unwrap().revoked_at.is_some());
    }
}

#[tokio::test]
async fn conversations_and_messages() {
    for (db, s) in each_backend().await {
        let a = s.create_user("a@example.com", None, None).await.unwrap();
        let b = s.create_user("b@example.com", None, None).await.unwrap();
        let c1 = s.create_conversation(&a.id, Some("one"), None).await.unwrap();
        let c2 = s.create_conversation(&a.id, None, Some("mock-gpt")).await.unwrap();
        // Foreign conversations are invisible.
        assert!(s.get_conversation(&b.id, &c1.id).await.unwrap().is_none(), "{}", db.backend);
        assert!(!s.delete_conversation(&b.id, &c1.id).await.unwrap());

        for i in 0..5 {
            let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
            let usage = (role == Role::Assistant).then_some(Usage { input_tokens: 10, output_tokens: i });
            s.add_message(&c1.id, role, &format!("m{i}"), Some("mock-gpt"), usage).await.unwrap();
        }
        let msgs = s.list_messages(&c1.id).await.unwrap();
        let texts: Vec<_> = msgs.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"], "same-millisecond inserts keep their order");
        assert_eq!(msgs[1].role, Role::Assistant);
        assert_eq!(msgs[1].output_tokens, Some(1));
        assert_eq!(msgs[0].input_tokens, None);

        // c1 got messages after c2 was created, so it is the most recently updated.
        let list = s.list_conversations(&a.id, 10, 0).await.unwrap();
        assert_eq!(list.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [c1.id.as_str(), c2.id.as_str()]);
        assert_eq!(s.list_conversations(&a.id, 1, 1).await.unwrap()[0].id, c2.id);
        assert!(s.list_conversations(&b.id, 10, 0).await.unwrap().is_empty());
        assert_eq!(s.get_conversation(&a.id, &c1.id).await.unwrap().unwrap().model.as_deref(), Some("mock-gpt"));

        assert!(s.delete_conversation(&a.id, &c2.id).await.unwrap());
        assert!(s.get_conversation(&a.id, &c2.id).await.unwrap().is_none());
        assert!(!s.delete_conversation(&a.id, &c2.id).await.unwrap(), "already deleted");
        assert_eq!(s.list_conversations(&a.id, 10, 0).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn concurrent_messages_get_distinct_positions() {
    for (db, s) in each_backend().await {
        let u = s.create_user("c@example.com", None, None).await.unwrap();
        let c = s.create_conversation(&u.id, None, None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            let id = c.id.clone();
            tasks.push(tokio::spawn(async move { s.add_message(&id, Role::User, &format!("{i}"), None, None).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        }
        assert_eq!(s.list_messages(&c.id).await.unwrap().len(), 8);
    }
}

#[tokio::test]
async fn usage_records_and_summaries() {
    use gaia_core::storage::{NewUsage, UsageFilter};
    for (db, s) in each_backend().await {
        let rec = |user: &str, model: &str, provider: &str, input: u64, output: u64, cost: f64, status: u16| NewUsage {
            user_id: user.into(),
            api_key_id: Some("k1".into()),
            provider: provider.into(),
            model: model.into(),
            endpoint: "openai".into(),
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            latency_ms: 12,
            ttft_ms: Some(3),
            status,
            error: (status >= 400).then(|| "upstream error 500, with, commas".to_string()),
        };
        s.insert_usage(&[
            rec("u1", "gpt", "openai", 10, 20, 0.5, 200),
            rec("u1", "claude", "anthropic", 5, 5, 1.25, 200),
            rec("u1", "gpt", "openai", 1, 0, 0.0, 502),
            rec("u2", "gpt", "openai", 100, 100, 9.0, 200),
        ])
        .await
        .unwrap();
        s.insert_usage(&[]).await.unwrap();
        let mine = UsageFilter { user_id: Some("u1".into()), ..Default::default() };
        let sum = s.usage_summary(&mine).await.unwrap();
        assert_eq!(sum.totals.requests, 3, "{}", db.backend);
        assert_eq!(sum.totals.errors, 1);
        assert_eq!(sum.totals.input_tokens, 16);
        assert_eq!(sum.totals.output_tokens, 25);
        assert!((sum.totals.cost_usd - 1.75).abs() < 1e-9);
        assert_eq!(sum.by_day.len(), 1);
        assert_eq!(sum.by_day[0].key, chrono::Utc::now().format("%Y-%m-%d").to_string());
        assert_eq!(
            sum.by_model.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
            ["claude", "gpt"],
            "most expensive first"
        );
        assert_eq!(sum.by_provider[1].totals.requests, 2);
        let all = s.usage_summary(&UsageFilter::default()).await.unwrap();
        assert_eq!(all.totals.requests, 4);
        let list = s.list_usage(&mine, 100).await.unwrap();
        assert_eq!(list.len(), 3);
        let failed: Vec<_> = list.iter().filter(|r| r.usage.status >= 400).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].usage.error.as_deref(), Some("upstream error 500, with, commas"));
        assert_eq!(list[0].usage.ttft_ms, Some(3));
        let future = UsageFilter { since: Some(chrono::Utc::now() + chrono::Duration::hours(1)), ..Default::default() };
        assert_eq!(s.usage_summary(&future).await.unwrap().totals.requests, 0);
        assert!(s.list_usage(&future, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn usage_recorder_batches_and_flushes() {
    use gaia_core::storage::{NewUsage, UsageFilter};
    use gaia_core::usage::UsageRecorder;
    for (db, s) in each_backend().await {
        let r = UsageRecorder::spawn(s.clone());
        for i in 0..600 {
            r.record(NewUsage {
                user_id: "u".into(),
                provider: "p".into(),
                model: "m".into(),
                endpoint: "chat".into(),
                input_tokens: i,
                status: 200,
                ..Default::default()
            });
        }
        r.flush().await;
        let sum = s.usage_summary(&UsageFilter::default()).await.unwrap();
        assert_eq!(sum.totals.requests, 600, "{}", db.backend);
        assert_eq!(sum.totals.input_tokens, (0..600).sum::<i64>());
    }
}
