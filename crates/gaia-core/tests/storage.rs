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
async fn migrations_applied_tells_a_waiting_instance_and_survives_a_newer_build() {
    for db in database_urls().await {
        let s = Storage::connect(&db.url).await.unwrap();
        assert!(!s.migrations_applied().await.unwrap(), "{}: nothing applied yet", db.backend);
        // Some of them (an older build ran): still not all.
        let dir = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = std::fs::read_dir(&src).unwrap().map(|f| f.unwrap().path()).collect();
        files.sort();
        for f in &files[..files.len() - 1] {
            std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        sqlx::migrate::Migrator::new(dir.path()).await.unwrap().run(s.pool()).await.unwrap();
        assert!(!s.migrations_applied().await.unwrap(), "{}: the last one is missing", db.backend);
        // Another process (`gaia migrate`) runs them while an instance waits.
        let waiting = {
            let s = s.clone();
            tokio::spawn(async move { s.wait_for_migrations(std::time::Duration::from_millis(20)).await })
        };
        Storage::connect(&db.url).await.unwrap().migrate().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), waiting).await.unwrap().unwrap();
        assert!(s.migrations_applied().await.unwrap());
        // A newer build migrated further (a rolling update): this build still counts as migrated, and
        // its own `migrate` (an old instance restarting) does not fail on the migration it lacks.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99991231000000, 'from a newer build', TRUE, $1, 1)",
        )
        .bind(vec![0u8; 48])
        .execute(s.pool())
        .await
        .unwrap();
        assert!(s.migrations_applied().await.unwrap());
        s.migrate().await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    }
}

#[tokio::test]
async fn a_busy_pool_counts_as_ready_and_a_closed_one_does_not() {
    for (db, s) in each_backend().await {
        s.check_ready().await.unwrap();
        // Every connection serving something: the database answers, the instance is only busy.
        let max = s.pool().options().get_max_connections();
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(s.pool().acquire().await.unwrap());
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), s.check_ready())
            .await
            .unwrap_or_else(|_| panic!("{}: a busy pool waited for a connection", db.backend))
            .unwrap();
        drop(held);
        s.close().await;
        assert!(s.check_ready().await.is_err(), "{}: a closed pool is not ready", db.backend);
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
        // Listed oldest first, and found by a part of the email taken literally.
        s.create_user("under_score@example.com", None, None).await.unwrap();
        let all = s.list_users(None, 10, 0).await.unwrap();
        assert_eq!(all.iter().map(|u| u.email.as_str()).collect::<Vec<_>>()[0], "mara@example.com", "{}", db.backend);
        assert_eq!(all.len(), 3);
        assert_eq!(s.list_users(None, 10, 2).await.unwrap().len(), 1);
        let found = s.list_users(Some("  MARA "), 10, 0).await.unwrap();
        assert_eq!(found.len(), 1, "{}", db.backend);
        assert_eq!(s.list_users(Some("a_a"), 10, 0).await.unwrap().len(), 0, "`_` is not a wildcard (mara)");
        assert_eq!(s.list_users(Some("der_sc"), 10, 0).await.unwrap().len(), 1);
        assert_eq!(s.list_users(Some("%"), 10, 0).await.unwrap().len(), 0, "`%` is not a wildcard");
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
            let usage = (role == Role::Assistant).then_some(Usage::new(10, i));
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
            ..Default::default()
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

#[tokio::test]
async fn dollar_placeholders_bind_by_number_on_every_backend() {
    use sqlx::Row;
    for (db, s) in each_backend().await {
        // Out of order and repeated: SQLite must bind `$N` by number, not by position of appearance.
        let row = sqlx::query("SELECT $2 AS b, $1 AS a, $2 AS b2, $3 AS n")
            .bind("first")
            .bind("second")
            .bind(42_i64)
            .fetch_one(s.pool())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        assert_eq!(row.get::<String, _>("a"), "first", "{}", db.backend);
        assert_eq!(row.get::<String, _>("b"), "second", "{}", db.backend);
        assert_eq!(row.get::<String, _>("b2"), "second", "{}", db.backend);
        assert_eq!(row.get::<i64, _>("n"), 42, "{}", db.backend);

        sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, is_admin, created_at) \
             VALUES ($3, $1, $2, NULL, 0, $4)",
        )
        .bind("dollar@example.com")
        .bind("Dollar")
        .bind("user-dollar")
        .bind(1_700_000_000_000_i64)
        .execute(s.pool())
        .await
        .unwrap();
        let u = s.get_user("user-dollar").await.unwrap().unwrap();
        assert_eq!((u.email.as_str(), u.display_name.as_deref()), ("dollar@example.com", Some("Dollar")));
        assert_eq!(u.created_at.timestamp_millis(), 1_700_000_000_000);
    }
}

#[tokio::test]
async fn missing_references_are_not_found() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let err = |r: Result<(), CoreError>| r.expect_err(b);
        let e = err(s.create_conversation("ghost", None, None).await.map(drop));
        assert!(matches!(e, CoreError::NotFound(ref m) if m.contains("ghost")), "{b}: {e}");
        let e = err(s.insert_api_key("ghost", None, "gaia_ghost00", "h").await.map(drop));
        assert!(matches!(e, CoreError::NotFound(_)), "{b}: {e}");
        let exp = chrono::Utc::now() + chrono::Duration::hours(1);
        let e = err(s.insert_refresh_token("ghost", "rt", exp).await);
        assert!(matches!(e, CoreError::NotFound(_)), "{b}: {e}");
        let e = err(s.add_message("no-such-conversation", Role::User, "hi", None, None).await.map(drop));
        assert!(matches!(e, CoreError::NotFound(_)), "{b}: {e}");

        let u = s.create_user("owner@example.com", None, None).await.unwrap();
        let c = s.create_conversation(&u.id, None, None).await.unwrap();
        s.add_message(&c.id, Role::User, "before", None, None).await.unwrap();
        assert!(s.delete_conversation(&u.id, &c.id).await.unwrap());
        let e = err(s.add_message(&c.id, Role::User, "after", None, None).await.map(drop));
        assert!(matches!(e, CoreError::NotFound(_)), "{b}: a deleted conversation takes no messages: {e}");
        assert_eq!(s.list_messages(&c.id).await.unwrap().len(), 1, "{b}: the failed append left nothing");
    }
}

#[tokio::test]
async fn user_input_is_validated_and_stored_faithfully() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        for bad in ["", "plain", "a@", "@b", "a@b@c", "a b@c", "x\u{7}@y"] {
            assert!(matches!(s.create_user(bad, None, None).await, Err(CoreError::InvalidInput(_))), "{b}: {bad:?}");
        }
        let long = "n".repeat(gaia_core::storage::MAX_DISPLAY_NAME + 1);
        assert!(matches!(s.create_user("long@example.com", None, Some(&long)).await, Err(CoreError::InvalidInput(_))));
        assert!(matches!(
            s.create_user(&format!("{}@x.y", "a".repeat(400)), None, None).await,
            Err(CoreError::InvalidInput(_))
        ));

        let u = s.create_user("  Text@Example.COM ", None, Some("Zoë 🐉")).await.unwrap();
        assert_eq!(u.email, "text@example.com");
        let got = s.get_user(&u.id).await.unwrap().unwrap();
        assert_eq!(got, u, "{b}: what is returned is what is stored (times to the millisecond)");

        let c = s.create_conversation(&u.id, Some("Ünïcode \u{0} title"), Some("m")).await.unwrap();
        let text = "Line one\nLine two — “quotes”, 'apostrophes', \\backslash, 日本語, NUL:\u{0}.";
        let m = s.add_message(&c.id, Role::User, text, None, None).await.unwrap_or_else(|e| panic!("{b}: {e}"));
        let stored = s.list_messages(&c.id).await.unwrap();
        assert_eq!(stored, vec![m.clone()], "{b}");
        assert_eq!(m.content, text.replace('\0', "\u{FFFD}"));
        assert_eq!(
            s.get_conversation(&u.id, &c.id).await.unwrap().unwrap().title.as_deref(),
            Some("Ünïcode \u{FFFD} title")
        );

        let big = Usage::new(u64::MAX, 7);
        let m = s.add_message(&c.id, Role::Assistant, "", Some("m"), Some(big)).await.unwrap();
        assert_eq!(m.input_tokens, Some(i64::MAX), "{b}: token counts saturate instead of wrapping");
    }
}

#[tokio::test]
async fn ensure_user_survives_taken_emails_and_races() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        s.create_user("taken@example.com", None, None).await.unwrap();
        let u = s.ensure_user("ext-taken", Some("taken@example.com")).await.unwrap();
        assert_eq!(u.email, "ext-taken@external.invalid", "{b}");
        let u = s.ensure_user("ext-none", None).await.unwrap();
        assert_eq!(u.email, "ext-none@external.invalid", "{b}");
        assert!(matches!(s.ensure_user("", None).await, Err(CoreError::InvalidInput(_))), "{b}");

        let mut tasks = Vec::new();
        for _ in 0..6 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.ensure_user("ext-race", Some("race@example.com")).await }));
        }
        for t in tasks {
            let u = t.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e}"));
            assert_eq!((u.id.as_str(), u.email.as_str()), ("ext-race", "race@example.com"), "{b}");
        }
        assert_eq!(s.count_users().await.unwrap(), 4, "{b}");
    }
}

#[tokio::test]
async fn conversations_can_be_renamed_and_paged() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let u = s.create_user("pages@example.com", None, None).await.unwrap();
        let other = s.create_user("other@example.com", None, None).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(s.create_conversation(&u.id, Some(&format!("c{i}")), None).await.unwrap().id);
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let page: Vec<_> = s.list_conversations(&u.id, 2, 1).await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(page, [ids[3].clone(), ids[2].clone()], "{b}: newest first");
        assert!(s.list_conversations(&u.id, 0, 0).await.unwrap().is_empty());
        assert_eq!(s.list_conversations(&u.id, 10, -5).await.unwrap().len(), 5, "{b}: negative offsets clamp");

        assert!(s.rename_conversation(&u.id, &ids[0], Some("renamed")).await.unwrap());
        assert!(!s.rename_conversation(&other.id, &ids[0], Some("hijacked")).await.unwrap(), "{b}");
        let c = s.get_conversation(&u.id, &ids[0]).await.unwrap().unwrap();
        assert_eq!(c.title.as_deref(), Some("renamed"));
        assert_eq!(s.list_conversations(&u.id, 1, 0).await.unwrap()[0].id, ids[0], "{b}: renaming bumps it");
        // Times are in milliseconds: a touch in the rename's millisecond would tie with it.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        s.touch_conversation(&ids[1]).await.unwrap();
        assert_eq!(s.list_conversations(&u.id, 1, 0).await.unwrap()[0].id, ids[1], "{b}");
    }
}

#[tokio::test]
async fn concurrent_appends_keep_a_gap_free_order() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let u = s.create_user("order@example.com", None, None).await.unwrap();
        let c1 = s.create_conversation(&u.id, None, None).await.unwrap();
        let c2 = s.create_conversation(&u.id, None, None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..24 {
            let s = s.clone();
            let conv = if i % 3 == 0 { c2.id.clone() } else { c1.id.clone() };
            tasks.push(tokio::spawn(async move { s.add_message(&conv, Role::User, &i.to_string(), None, None).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e}"));
        }
        for (conv, n) in [(&c1.id, 16), (&c2.id, 8)] {
            let msgs = s.list_messages(conv).await.unwrap();
            assert_eq!(msgs.len(), n, "{b}");
            let mut seen: Vec<i32> = msgs.iter().map(|m| m.content.parse().unwrap()).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), n, "{b}: every message stored once");
            assert!(msgs.windows(2).all(|w| w[0].created_at <= w[1].created_at), "{b}: oldest first");
        }
    }
}

#[tokio::test]
async fn personas_and_user_settings() {
    use gaia_core::storage::{PersonaInput, UserSettings, DEFAULT_PERSONA_ID};
    for (db, s) in each_backend().await {
        let b = db.backend;
        let a = s.create_user("a@example.com", None, None).await.unwrap();
        let o = s.create_user("o@example.com", None, None).await.unwrap();
        // The built-in persona is there for everyone and cannot be changed.
        let all = s.list_personas(&a.id).await.unwrap();
        assert_eq!(all.len(), 1, "{b}");
        assert_eq!(all[0].id, DEFAULT_PERSONA_ID);
        assert!(all[0].is_builtin());
        let e = s.update_persona(&a.id, DEFAULT_PERSONA_ID, &PersonaInput::default()).await.unwrap_err();
        assert!(matches!(e, CoreError::Forbidden(_)), "{b}: {e}");
        assert!(matches!(s.delete_persona(&a.id, DEFAULT_PERSONA_ID).await, Err(CoreError::Forbidden(_))));
        // Create: name and prompt are required; values are checked.
        let mut input = PersonaInput { name: Some("Scout".into()), ..Default::default() };
        assert!(matches!(s.create_persona(&a.id, &input).await, Err(CoreError::InvalidInput(_))));
        input.system_prompt = Some("You are a scout. 🧭".into());
        input.temperature = Some(3.0);
        assert!(matches!(s.create_persona(&a.id, &input).await, Err(CoreError::InvalidInput(_))));
        input.temperature = Some(0.25);
        input.model = Some("gpt-4o-mini".into());
        let scout = s.create_persona(&a.id, &input).await.unwrap();
        assert_eq!(scout.user_id.as_deref(), Some(a.id.as_str()));
        assert_eq!(scout.temperature, Some(0.25), "{b}");
        assert_eq!(scout.system_prompt, "You are a scout. 🧭");
        // Another user neither sees nor touches it.
        assert_eq!(s.list_personas(&o.id).await.unwrap().len(), 1);
        assert!(s.get_persona(&o.id, &scout.id).await.unwrap().is_none());
        assert!(matches!(s.update_persona(&o.id, &scout.id, &input).await, Err(CoreError::NotFound(_))));
        assert!(matches!(s.delete_persona(&o.id, &scout.id).await, Err(CoreError::NotFound(_))));
        // Update: only the given fields; empty clears, negative temperature clears.
        let upd = PersonaInput { model: Some(String::new()), temperature: Some(-1.0), ..Default::default() };
        let scout2 = s.update_persona(&a.id, &scout.id, &upd).await.unwrap();
        assert_eq!((scout2.name.as_str(), scout2.model.as_deref(), scout2.temperature), ("Scout", None, None), "{b}");
        // Tools: the default (the knowledge base) until named; a list replaces it, duplicates dropped;
        // an update without a list keeps it; bad names are refused.
        assert_eq!((scout2.tools.clone(), scout2.tool_sources()), (None, vec!["kb".to_string()]), "{b}");
        let tools = PersonaInput { tools: Some(vec!["game".into(), "kb".into(), "game".into()]), ..Default::default() };
        let scout3 = s.update_persona(&a.id, &scout.id, &tools).await.unwrap();
        assert_eq!(scout3.tools, Some(vec!["game".to_string(), "kb".to_string()]), "{b}");
        let renamed = PersonaInput { name: Some("Ranger".into()), ..Default::default() };
        assert_eq!(s.update_persona(&a.id, &scout.id, &renamed).await.unwrap().tools, scout3.tools, "{b}");
        let none = PersonaInput { tools: Some(Vec::new()), ..Default::default() };
        let mute = s.update_persona(&a.id, &scout.id, &none).await.unwrap();
        assert_eq!((mute.tools.clone(), mute.tool_sources()), (Some(Vec::new()), Vec::new()), "{b}");
        for bad in [vec!["a b".to_string()], vec!["x".repeat(65)], (0..33).map(|i| format!("t{i}")).collect()] {
            let input = PersonaInput { tools: Some(bad), ..Default::default() };
            assert!(matches!(s.update_persona(&a.id, &scout.id, &input).await, Err(CoreError::InvalidInput(_))));
        }
        // Settings: default persona must be visible; theme dark or light.
        let set = UserSettings {
            default_persona_id: Some(scout.id.clone()),
            theme: Some("dark".into()),
            ..Default::default()
        };
        let got = s.update_user_settings(&a.id, &set).await.unwrap();
        assert_eq!(got.default_persona_id.as_deref(), Some(scout.id.as_str()));
        assert_eq!(s.user_settings(&a.id).await.unwrap().theme.as_deref(), Some("dark"));
        let bad = UserSettings { theme: Some("neon".into()), ..Default::default() };
        assert!(matches!(s.update_user_settings(&a.id, &bad).await, Err(CoreError::InvalidInput(_))));
        let foreign = UserSettings { default_persona_id: Some(scout.id.clone()), ..Default::default() };
        assert!(matches!(s.update_user_settings(&o.id, &foreign).await, Err(CoreError::NotFound(_))));
        // Deleting a persona resets what used it.
        let c = s.create_conversation_with_persona(&a.id, Some("t"), None, Some(&scout.id)).await.unwrap();
        assert_eq!(c.persona_id.as_deref(), Some(scout.id.as_str()));
        s.delete_persona(&a.id, &scout.id).await.unwrap();
        assert_eq!(s.user_settings(&a.id).await.unwrap().default_persona_id, None, "{b}");
        assert_eq!(s.get_conversation(&a.id, &c.id).await.unwrap().unwrap().persona_id, None);
        assert_eq!(s.list_personas(&a.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn conversation_search_over_titles_and_messages() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let a = s.create_user("a@example.com", None, None).await.unwrap();
        let o = s.create_user("o@example.com", None, None).await.unwrap();
        let c1 = s.create_conversation(&a.id, Some("Dragon lore"), None).await.unwrap();
        let c2 = s.create_conversation(&a.id, Some("Shopping"), None).await.unwrap();
        s.add_message(&c2.id, Role::User, "Where is the DRAGON's cave? 100% sure it's near_here", None, None)
            .await
            .unwrap();
        let c3 = s.create_conversation(&a.id, Some("Other"), None).await.unwrap();
        s.add_message(&c3.id, Role::User, "nothing to see", None, None).await.unwrap();
        let theirs = s.create_conversation(&o.id, Some("dragon of someone else"), None).await.unwrap();
        let hits = s.search_conversations(&a.id, "dragon", 50).await.unwrap();
        let ids: Vec<_> = hits.iter().map(|h| h.conversation.id.as_str()).collect();
        assert_eq!(ids, [c2.id.as_str(), c1.id.as_str()], "{b}");
        assert!(!ids.contains(&theirs.id.as_str()));
        assert!(!hits[0].title_match && hits[0].snippet.as_deref().unwrap().contains("DRAGON"));
        assert!(hits[1].title_match && hits[1].snippet.is_none());
        // LIKE wildcards in the query are literal.
        let pct = s.search_conversations(&a.id, "100%", 50).await.unwrap();
        assert_eq!(pct.len(), 1, "{b}");
        assert_eq!(s.search_conversations(&a.id, "near_h", 50).await.unwrap().len(), 1);
        assert!(s.search_conversations(&a.id, "near%h", 50).await.unwrap().is_empty());
        assert_eq!(s.search_conversations(&a.id, "e_h", 50).await.unwrap().len(), 0, "{b}");
        assert!(matches!(s.search_conversations(&a.id, "  ", 50).await, Err(CoreError::InvalidInput(_))));
        // Deleted conversations are not found.
        s.delete_conversation(&a.id, &c1.id).await.unwrap();
        assert_eq!(s.search_conversations(&a.id, "dragon", 50).await.unwrap().len(), 1);
    }
}

/// The smallest valid PNG signature plus some bytes (storage checks the signature only).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-test-bytes";

#[tokio::test]
async fn attachments_belong_to_their_uploader_and_message() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let a = s.create_user("a@example.com", None, None).await.unwrap();
        let o = s.create_user("o@example.com", None, None).await.unwrap();
        let not_image = s.create_attachment(&a.id, Some("x.png"), b"<svg onload=alert(1)>").await;
        assert!(matches!(not_image, Err(CoreError::InvalidInput(_))), "{b}");
        let up = s.create_attachment(&a.id, Some("../maps/cave.png"), PNG).await.unwrap();
        assert_eq!(
            (up.media_type.as_str(), up.file_name.as_deref(), up.size),
            ("image/png", Some("cave.png"), PNG.len() as i64)
        );
        // Only the uploader sees it.
        assert!(s.get_attachment(&o.id, &up.id).await.unwrap().is_none(), "{b}");
        assert!(s.attachment_bytes(&o.id, &up.id).await.unwrap().is_none());
        let (meta, bytes) = s.attachment_bytes(&a.id, &up.id).await.unwrap().unwrap();
        assert_eq!((meta, bytes.as_slice()), (up.clone(), PNG));
        // Sending: images come back base64, then the upload is tied to the message.
        let images = s.unsent_images(&a.id, std::slice::from_ref(&up.id)).await.unwrap();
        assert_eq!(images, vec![gaia_core::types::ImagePart::from_bytes("image/png", PNG)]);
        assert!(matches!(s.unsent_images(&o.id, std::slice::from_ref(&up.id)).await, Err(CoreError::NotFound(_))));
        let c = s.create_conversation(&a.id, None, None).await.unwrap();
        let m = s.add_message(&c.id, Role::User, "look", None, None).await.unwrap();
        let theirs = s.attach_to_message(&o.id, std::slice::from_ref(&up.id), &m.id).await;
        assert!(matches!(theirs, Err(CoreError::NotFound(_))), "{b}");
        s.attach_to_message(&a.id, std::slice::from_ref(&up.id), &m.id).await.unwrap();
        // A sent upload cannot be sent again.
        assert!(matches!(s.unsent_images(&a.id, std::slice::from_ref(&up.id)).await, Err(CoreError::InvalidInput(_))));
        assert!(s.attach_to_message(&a.id, std::slice::from_ref(&up.id), &m.id).await.is_err());
        let msgs = s.list_messages(&c.id).await.unwrap();
        assert_eq!(msgs[0].attachments.len(), 1, "{b}");
        assert_eq!(msgs[0].attachments[0].message_id.as_deref(), Some(m.id.as_str()));
        let imgs = s.conversation_images(&c.id).await.unwrap();
        assert_eq!(imgs, vec![(m.id.clone(), gaia_core::types::ImagePart::from_bytes("image/png", PNG))]);
    }
}

#[tokio::test]
async fn rewinding_drops_the_answers_after_the_last_user_message() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        let a = s.create_user("a@example.com", None, None).await.unwrap();
        let c = s.create_conversation(&a.id, None, None).await.unwrap();
        assert!(s.rewind_to_last_user_message(&c.id).await.unwrap().is_none(), "{b}");
        s.add_message(&c.id, Role::User, "one", None, None).await.unwrap();
        s.add_message(&c.id, Role::Assistant, "first answer", None, None).await.unwrap();
        let two = s.add_message(&c.id, Role::User, "two", None, None).await.unwrap();
        s.add_message(&c.id, Role::Assistant, "partial", None, None).await.unwrap();
        s.add_message(&c.id, Role::Assistant, "second answer", None, None).await.unwrap();
        let last = s.rewind_to_last_user_message(&c.id).await.unwrap().unwrap();
        assert_eq!((last.id.as_str(), last.content.as_str()), (two.id.as_str(), "two"), "{b}");
        let left: Vec<_> = s.list_messages(&c.id).await.unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(left, ["one", "first answer", "two"], "{b}");
        // New messages continue the order.
        s.add_message(&c.id, Role::Assistant, "again", None, None).await.unwrap();
        assert_eq!(s.list_messages(&c.id).await.unwrap().last().unwrap().content, "again");
        s.delete_conversation(&a.id, &c.id).await.unwrap();
        assert!(s.rewind_to_last_user_message(&c.id).await.unwrap().is_none(), "{b}");
    }
}

#[tokio::test]
async fn rate_limits_budgets_prices_and_daily_spend() {
    use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget, NewUsage, UsageFilter, UsageGroupBy};
    use gaia_core::types::ModelPrice;
    for (db, s) in each_backend().await {
        let b = db.backend;
        // Rate limits set per user or key; setting again replaces.
        s.set_rate_limit(LimitScope::Key, "k1", Some(10), None, Some("admin")).await.unwrap();
        let l = s.set_rate_limit(LimitScope::Key, "k1", Some(20), Some(500), None).await.unwrap();
        assert_eq!((l.requests_per_minute, l.tokens_per_minute), (Some(20), Some(500)), "{b}");
        assert!(s.set_rate_limit(LimitScope::Team, "t", Some(1), None, None).await.is_err());
        assert_eq!(s.list_rate_limits().await.unwrap().len(), 1);
        assert!(s.delete_rate_limit(LimitScope::Key, "k1").await.unwrap());
        assert!(s.rate_limit(LimitScope::Key, "k1").await.unwrap().is_none());

        // Budgets.
        let nb = NewBudget {
            scope: LimitScope::User,
            subject_id: "u1".into(),
            period: BudgetPeriod::Monthly,
            limit_usd: 5.0,
            hard: true,
        };
        let budget = s.create_budget(&nb, Some("admin")).await.unwrap();
        assert_eq!(s.budget(&budget.id).await.unwrap().unwrap(), budget, "{b}");
        assert!(s.create_budget(&NewBudget { limit_usd: f64::NAN, ..nb.clone() }, None).await.is_err());
        assert_eq!(s.list_budgets(Some((LimitScope::User, "u1"))).await.unwrap().len(), 1);
        assert!(s.list_budgets(Some((LimitScope::Key, "u1"))).await.unwrap().is_empty());

        // Spend from the daily totals, which follow the usage records.
        let rec = |user: &str, key: Option<&str>, model: &str, cost: f64| NewUsage {
            user_id: user.into(),
            api_key_id: key.map(Into::into),
            model: model.into(),
            provider: "p".into(),
            cost_usd: cost,
            input_tokens: 10,
            status: 200,
            ..Default::default()
        };
        s.insert_usage(&[rec("u1", Some("k1"), "m1", 0.25), rec("u1", None, "m2", 0.5)]).await.unwrap();
        s.insert_usage(&[rec("u2", Some("k2"), "m1", 1.0), rec("u1", Some("k1"), "m1", f64::NAN)]).await.unwrap();
        let month = BudgetPeriod::Monthly.start(chrono::Utc::now());
        assert!((s.spent_since(&["u1"], None, month).await.unwrap() - 0.75).abs() < 1e-9, "{b}");
        assert!((s.spent_since(&["u1", "u2"], None, month).await.unwrap() - 1.75).abs() < 1e-9);
        assert!((s.spent_since(&[], Some("k1"), month).await.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(s.spent_since(&[], None, month).await.unwrap(), 0.0);
        let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
        assert_eq!(s.spent_since(&["u1"], None, tomorrow).await.unwrap(), 0.0);
        let by_user = s.usage_grouped(&UsageFilter::default(), UsageGroupBy::User).await.unwrap();
        assert_eq!(by_user[0].key, "u2", "{b}: most expensive first");
        assert_eq!(by_user[1].totals.requests, 3);
        let by_key = s.usage_grouped(&UsageFilter::default(), UsageGroupBy::Key).await.unwrap();
        assert!(by_key.iter().any(|g| g.key == "-" && g.totals.requests == 1), "{b}: {by_key:?}");
        // A batch for many players: their daily totals are written in gathered upserts, and a
        // second batch adds to them.
        let players: Vec<NewUsage> = (0..70)
            .map(|i| NewUsage { end_user: Some(format!("p{i}")), ..rec("u3", Some("k3"), "m1", 0.01 * f64::from(i)) })
            .collect();
        s.insert_usage(&players).await.unwrap();
        s.insert_usage(&players[..5]).await.unwrap();
        let subject = |p: &str| gaia_core::attribution::end_user_subject("u3", p);
        assert!((s.spent_by_end_user_since(&subject("p69"), month).await.unwrap() - 0.69).abs() < 1e-9, "{b}");
        assert!((s.spent_by_end_user_since(&subject("p4"), month).await.unwrap() - 0.08).abs() < 1e-9, "{b}");
        let all: f64 = (0..70).map(|i| 0.01 * f64::from(i)).sum::<f64>() + 0.10;
        assert!((s.spent_since(&["u3"], None, month).await.unwrap() - all).abs() < 1e-9, "{b}");
        assert!((s.spent_since(&[], Some("k3"), month).await.unwrap() - all).abs() < 1e-9, "{b}");
        // Budgets change in place.
        let changed = s.update_budget(&budget.id, 2.5, false).await.unwrap().unwrap();
        assert_eq!((changed.limit_usd, changed.hard, changed.id.as_str()), (2.5, false, budget.id.as_str()), "{b}");
        assert!(s.update_budget(&budget.id, 0.0, true).await.is_err());
        assert!(s.update_budget("nope", 1.0, true).await.unwrap().is_none());
        assert!(s.delete_budget(&budget.id).await.unwrap());
        assert!(!s.delete_budget(&budget.id).await.unwrap());

        // Prices with effective dates.
        let now = chrono::Utc::now();
        let p = s.add_price("p", "m1", ModelPrice::new(1.0, 2.0), now, Some("admin")).await.unwrap();
        assert!(s.add_price("p", "", ModelPrice::default(), now, None).await.is_err());
        assert!(s.add_price("p", "m1", ModelPrice::new(-1.0, 0.0), now, None).await.is_err());
        let all = s.list_prices().await.unwrap();
        assert_eq!(all, vec![p.clone()], "{b}");
        assert_eq!(all[0].effective_from.timestamp_millis(), now.timestamp_millis());
        assert!(s.delete_price(&p.id).await.unwrap());
    }
}

/// Migration 20 fills `world_items.location_id` and `area_id` from the holders of items placed
/// before it, with string functions both databases have.
#[tokio::test]
async fn item_places_are_filled_from_their_holders_by_the_migration() {
    const BEFORE: &str = "20261205000020";
    for db in database_urls().await {
        let s = Storage::connect(&db.url).await.unwrap();
        // The migrations before it, from a copy of their files (same bytes: same checksums).
        let dir = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().as_ref() < BEFORE {
                std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
            }
        }
        sqlx::migrate::Migrator::new(dir.path()).await.unwrap().run(s.pool()).await.unwrap();
        sqlx::query(
            "INSERT INTO world_instances (id, experience_id, content_version, version, created_at, updated_at) \
             VALUES ('w', 'e', '1', 0, 0, 0)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        let holders = [
            ("i1", "area:safe_house/main_room/table"),
            ("i2", "area:l/a/"),
            ("i3", "player:u"),
            ("i4", "area:l.1/a-2/spot/with/slashes"),
            ("i5", "gone"),
            ("i6", "npc:sam"),
        ];
        for (id, holder) in holders {
            sqlx::query(
                "INSERT INTO world_items (world_id, item_id, template_id, holder, data, version) \
                 VALUES ('w', $1, 't', $2, '{}', 0)",
            )
            .bind(id)
            .bind(holder)
            .execute(s.pool())
            .await
            .unwrap();
        }
        s.migrate().await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT item_id, location_id, area_id FROM world_items ORDER BY item_id")
                .fetch_all(s.pool())
                .await
                .unwrap();
        let want = [
            ("i1", "safe_house", "main_room"),
            ("i2", "l", "a"),
            ("i3", "", ""),
            ("i4", "l.1", "a-2"),
            ("i5", "", ""),
            ("i6", "", ""),
        ];
        let got: Vec<(&str, &str, &str)> = rows.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
        assert_eq!(got, want, "{}", db.backend);
    }
}
