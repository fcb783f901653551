//! Data retention over real storage: old rows go, recent rows stay, 0 keeps forever, a second pass
//! (as another instance would run) deletes nothing more, and backlogs larger than a batch are drained.
//! SQLite, and PostgreSQL when `GAIA_TEST_DATABASE_URL` is set.

use chrono::{DateTime, Duration, Utc};
use gaia_core::config::RetentionConfig;
use gaia_core::retention::{run_once, RetentionReport, BATCH_SIZE};
use gaia_core::storage::{NewUsage, Storage, UsageFilter};
use gaia_core::testing::database_urls;
use gaia_core::types::Role;

/// The smallest valid PNG signature plus some bytes (storage checks the signature only).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-test-bytes";

/// Moves a row back in time.
async fn age(s: &Storage, table: &str, column: &str, id: &str, at: DateTime<Utc>) {
    let sql = format!("UPDATE {table} SET {column} = $1 WHERE id = $2");
    let r = sqlx::query(&sql).bind(at.timestamp_millis()).bind(id).execute(s.pool()).await.unwrap();
    assert_eq!(r.rows_affected(), 1, "{table} {id}");
}

async fn count(s: &Storage, table: &str) -> i64 {
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(s.pool()).await.unwrap();
    sqlx::Row::get(&row, "n")
}

async fn exists(s: &Storage, table: &str, id: &str) -> bool {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_one(s.pool()).await.unwrap();
    sqlx::Row::get::<i64, _>(&row, "n") == 1
}

fn usage(user_id: &str) -> NewUsage {
    NewUsage {
        user_id: user_id.into(),
        provider: "p".into(),
        model: "m".into(),
        endpoint: "chat".into(),
        input_tokens: 1,
        output_tokens: 1,
        status: 200,
        ..Default::default()
    }
}

async fn rbac_audit_row(s: &Storage, id: &str, at: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO rbac_audit (id, actor_id, action, target, details, created_at) VALUES ($1, NULL, 'grant.create', 't', '{}', $2)",
    )
    .bind(id)
    .bind(at.timestamp_millis())
    .execute(s.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn old_rows_go_recent_rows_stay_and_zero_keeps_forever() {
    for db in database_urls().await {
        let b = db.backend;
        let s = db.storage().await;
        let now = Utc::now();
        let old = now - Duration::days(40);
        let u = s.create_user("keeper@example.com", None, None).await.unwrap();

        // A conversation with an old message (and its image) and a recent one.
        let mixed = s.create_conversation(&u.id, Some("mixed"), None).await.unwrap();
        let m_old = s.add_message(&mixed.id, Role::User, "long ago", None, None).await.unwrap();
        let img_old = s.create_attachment(&u.id, Some("old.png"), PNG).await.unwrap();
        s.attach_to_message(&u.id, std::slice::from_ref(&img_old.id), &m_old.id).await.unwrap();
        age(&s, "messages", "created_at", &m_old.id, old).await;
        let m_new = s.add_message(&mixed.id, Role::Assistant, "just now", None, None).await.unwrap();
        let img_new = s.create_attachment(&u.id, Some("new.png"), PNG).await.unwrap();
        s.attach_to_message(&u.id, std::slice::from_ref(&img_new.id), &m_new.id).await.unwrap();
        // A conversation whose every message is old, idle as long: it goes entirely.
        let stale = s.create_conversation(&u.id, Some("stale"), None).await.unwrap();
        let m_stale = s.add_message(&stale.id, Role::User, "hello?", None, None).await.unwrap();
        age(&s, "messages", "created_at", &m_stale.id, old).await;
        age(&s, "conversations", "updated_at", &stale.id, old).await;
        // An empty conversation created just now stays.
        let fresh = s.create_conversation(&u.id, Some("fresh"), None).await.unwrap();
        // Uploads never sent: an old one goes, a recent one stays.
        let unsent_old = s.create_attachment(&u.id, Some("u1.png"), PNG).await.unwrap();
        age(&s, "attachments", "created_at", &unsent_old.id, old).await;
        let unsent_new = s.create_attachment(&u.id, Some("u2.png"), PNG).await.unwrap();
        // Usage records and audit rows, old and recent.
        s.insert_usage(&[usage(&u.id), usage(&u.id)]).await.unwrap();
        let recs = s.list_usage(&UsageFilter::default(), 10).await.unwrap();
        age(&s, "usage_records", "created_at", &recs[0].id, old).await;
        s.record_audit(Some(&u.id), "key.create", "k1", &serde_json::json!({})).await.unwrap();
        s.record_audit(Some(&u.id), "key.create", "k2", &serde_json::json!({})).await.unwrap();
        let audits = s.audit_records(Some("key."), 10).await.unwrap();
        age(&s, "audit_log", "created_at", &audits[0].id, old).await;
        rbac_audit_row(&s, "ra-old", old).await;
        rbac_audit_row(&s, "ra-new", now).await;

        // 0 days everywhere (the default): nothing is deleted.
        let r = run_once(&s, &RetentionConfig::default(), now).await.unwrap();
        assert_eq!(r, RetentionReport::default(), "{b}");
        assert_eq!(count(&s, "messages").await, 3, "{b}");
        // Only usage retention: messages and audit rows are kept forever.
        let only_usage = RetentionConfig { usage_days: 30, ..Default::default() };
        let r = run_once(&s, &only_usage, now).await.unwrap();
        assert_eq!(r, RetentionReport { usage_records: 1, ..Default::default() }, "{b}");
        assert!(!exists(&s, "usage_records", &recs[0].id).await && exists(&s, "usage_records", &recs[1].id).await);
        assert_eq!(count(&s, "messages").await, 3, "{b}");
        assert_eq!(count(&s, "audit_log").await, 2, "{b}");

        // Everything at 30 days.
        let all = RetentionConfig { messages_days: 30, usage_days: 30, audit_days: 30, ..Default::default() };
        let r = run_once(&s, &all, now).await.unwrap();
        assert_eq!(
            r,
            RetentionReport {
                messages: 2,
                attachments: 2,
                conversations: 1,
                usage_records: 0,
                audit_records: 1,
                rbac_audit_records: 1,
                ..Default::default()
            },
            "{b}"
        );
        assert!(!exists(&s, "messages", &m_old.id).await, "{b}");
        assert!(!exists(&s, "messages", &m_stale.id).await, "{b}");
        assert!(exists(&s, "messages", &m_new.id).await, "{b}");
        assert!(!exists(&s, "attachments", &img_old.id).await && !exists(&s, "attachments", &unsent_old.id).await);
        assert!(exists(&s, "attachments", &img_new.id).await && exists(&s, "attachments", &unsent_new.id).await);
        assert!(!exists(&s, "conversations", &stale.id).await, "{b}: left empty and idle");
        assert!(exists(&s, "conversations", &mixed.id).await, "{b}: still has a message");
        assert!(exists(&s, "conversations", &fresh.id).await, "{b}: empty but recent");
        assert!(!exists(&s, "audit_log", &audits[0].id).await && exists(&s, "audit_log", &audits[1].id).await);
        assert!(!exists(&s, "rbac_audit", "ra-old").await && exists(&s, "rbac_audit", "ra-new").await);
        let left = s.list_messages(&mixed.id).await.unwrap();
        assert_eq!(left.len(), 1, "{b}");
        assert_eq!(left[0].id, m_new.id);

        // Another pass, as a second instance would run: nothing more to delete.
        assert_eq!(run_once(&s, &all, now).await.unwrap(), RetentionReport::default(), "{b}");
        // New messages still get appended to the trimmed conversation.
        s.add_message(&mixed.id, Role::User, "still here", None, None).await.unwrap();
        assert_eq!(s.list_messages(&mixed.id).await.unwrap().len(), 2, "{b}");
    }
}

#[tokio::test]
async fn backlogs_larger_than_a_batch_are_drained() {
    for db in database_urls().await {
        let b = db.backend;
        let s = db.storage().await;
        let now = Utc::now();
        let n = i64::from(BATCH_SIZE) * 2 + 5;
        // Old audit rows, generated in one statement.
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) \
             INSERT INTO audit_log (id, actor_id, action, target, details, created_at) \
             SELECT 'old-' || CAST(i AS TEXT), NULL, 'auth.login', 't', '{}', $2 FROM seq",
        )
        .bind(n)
        .bind((now - Duration::days(10)).timestamp_millis())
        .execute(s.pool())
        .await
        .unwrap();
        s.record_audit(None, "auth.login", "recent", &serde_json::json!({})).await.unwrap();
        assert_eq!(count(&s, "audit_log").await, n + 1, "{b}");
        let cfg = RetentionConfig { audit_days: 7, ..Default::default() };
        let r = run_once(&s, &cfg, now).await.unwrap();
        assert_eq!(r.audit_records, n as u64, "{b}");
        assert_eq!(count(&s, "audit_log").await, 1, "{b}");
    }
}

/// Ended sign-ins are pruned (issue 17): sign-in sessions revoked or run out long ago, their refresh
/// tokens, and used or expired invitations; live ones, and the used-up tokens of a live session (which
/// still reveal a theft when presented again), stay.
#[tokio::test]
async fn ended_sign_ins_and_invitations_are_pruned() {
    for db in database_urls().await {
        let b = db.backend;
        let s = db.storage().await;
        let now = Utc::now();
        let (long_ago, soon) = (now - Duration::days(40), now + Duration::days(20));
        let u = s.create_user("retained@example.com", None, None).await.unwrap();
        let age_col = |table: &'static str, column: &'static str, key: &'static str, id: String| {
            let s = s.clone();
            async move {
                let sql = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2");
                sqlx::query(&sql).bind(long_ago.timestamp_millis()).bind(id).execute(s.pool()).await.unwrap();
            }
        };
        // Revoked 40 days ago.
        let revoked = s.create_sign_in(&u.id, "rt-revoked", soon).await.unwrap();
        s.revoke_sign_in(&revoked, "signed out").await.unwrap();
        age_col("auth_sessions", "revoked_at", "id", revoked.clone()).await;
        // Never revoked, but its refresh token expired 40 days ago.
        let lapsed = s.create_sign_in(&u.id, "rt-lapsed", soon).await.unwrap();
        age_col("auth_sessions", "created_at", "id", lapsed.clone()).await;
        age_col("refresh_tokens", "expires_at", "token_hash", "rt-lapsed".into()).await;
        // Live, with a token used up 40 days ago (kept: replaying it must still end the session).
        let live = s.create_sign_in(&u.id, "rt-live-1", soon).await.unwrap();
        s.rotate_refresh_token("rt-live-1", "rt-live-2", soon).await.unwrap();
        age_col("auth_sessions", "created_at", "id", live.clone()).await;
        age_col("refresh_tokens", "revoked_at", "token_hash", "rt-live-1".into()).await;
        // Revoked just now.
        let recent = s.create_sign_in(&u.id, "rt-recent", soon).await.unwrap();
        s.revoke_sign_in(&recent, "signed out").await.unwrap();
        // Invitations: expired long ago, used long ago, pending.
        let expired = s.create_invite("inv-expired", None, None, long_ago).await.unwrap();
        let used = s.create_invite("inv-used", None, None, soon).await.unwrap();
        s.create_user_with_invite("inv-used", "invited@example.com", None, None).await.unwrap();
        age_col("auth_invites", "used_at", "id", used.id.clone()).await;
        let pending = s.create_invite("inv-pending", None, None, soon).await.unwrap();

        // Off by default: nothing goes.
        assert_eq!(run_once(&s, &RetentionConfig::default(), now).await.unwrap(), RetentionReport::default());
        let cfg = RetentionConfig { sign_ins_days: 30, ..Default::default() };
        let r = run_once(&s, &cfg, now).await.unwrap();
        assert_eq!(r, RetentionReport { sign_ins: 2, refresh_tokens: 2, invites: 2, ..Default::default() }, "{b}: {r}");
        assert!(!exists(&s, "auth_sessions", &revoked).await && !exists(&s, "auth_sessions", &lapsed).await, "{b}");
        assert!(exists(&s, "auth_sessions", &live).await && exists(&s, "auth_sessions", &recent).await, "{b}");
        assert!(!exists(&s, "auth_invites", &expired.id).await && !exists(&s, "auth_invites", &used.id).await);
        assert!(exists(&s, "auth_invites", &pending.id).await, "{b}");
        assert_eq!(count(&s, "refresh_tokens").await, 3, "{b}: the live session's two and the recent one");
        // The used-up token of the live session still reveals a theft.
        let replay = s.rotate_refresh_token("rt-live-1", "rt-live-3", soon).await.unwrap();
        assert!(matches!(replay, gaia_core::storage::RefreshOutcome::Reused { .. }), "{b}: {replay:?}");
        assert_eq!(run_once(&s, &cfg, now).await.unwrap(), RetentionReport::default(), "{b}: a second pass");
    }
}
