//! Providers added and removed at runtime, stored so they survive a restart, their literal keys
//! encrypted at rest (SQLite and PostgreSQL).

use gaia_core::config::{Deployment, ModelEntry, ModelSpec, ProviderEntry, ProviderKind};
use gaia_core::secrets::{Secrets, SecretsError};
use gaia_core::storage::{Storage, NO_SECRETS_KEY};
use gaia_core::testing::{database_urls, TestDb};
use gaia_core::CoreError;
use sqlx::Row;

async fn each_backend() -> Vec<(TestDb, Storage)> {
    let mut out = Vec::new();
    for db in database_urls().await {
        let s = Storage::connect(&db.url).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        s.migrate().await.unwrap();
        out.push((db, s));
    }
    out
}

fn entry() -> ProviderEntry {
    let mut e = ProviderEntry::new("local", ProviderKind::Openai);
    e.base_url = Some("http://127.0.0.1:11434/v1".into());
    e.api_key_env = Some("LOCAL_LLM_KEY".into());
    e.deployments = vec![Deployment { base_url: Some("http://127.0.0.1:11435/v1".into()), ..Default::default() }];
    e.models = vec![
        ModelSpec::Id("llama3.2".into()),
        ModelSpec::Entry(ModelEntry {
            id: "qwen".into(),
            context_window: Some(32_000),
            capabilities: vec!["tools".into()],
            input_price: Some(0.1),
            output_price: Some(0.2),
            ..Default::default()
        }),
    ];
    e.first_token_timeout_secs = Some(7);
    e
}

#[tokio::test]
async fn runtime_providers_round_trip_and_are_removed() {
    for (db, s) in each_backend().await {
        let b = db.backend;
        assert!(s.list_runtime_providers().await.unwrap().is_empty(), "{b}");
        s.save_runtime_provider(&entry(), None, Some("admin-1")).await.unwrap();
        let list = s.list_runtime_providers().await.unwrap();
        assert_eq!(list.len(), 1, "{b}");
        assert_eq!(list[0].name, "local");
        assert_eq!(list[0].entry.as_ref(), Some(&entry()), "{b}: the whole entry comes back");
        assert_eq!(list[0].updated_by.as_deref(), Some("admin-1"));
        assert!(!list[0].removed());
        let first_change = list[0].updated_at;

        // Replacing keeps one row per name; a removal is recorded, not forgotten.
        let mut replaced = entry();
        replaced.timeout_secs = 30;
        s.save_runtime_provider(&replaced, None, Some("admin-2")).await.unwrap();
        s.remove_runtime_provider("cloud", Some("admin-2")).await.unwrap();
        let list = s.list_runtime_providers().await.unwrap();
        assert_eq!(list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["cloud", "local"], "{b}");
        assert!(list[0].removed() && list[0].entry.is_none(), "{b}");
        assert_eq!(list[1].entry.as_ref().unwrap().timeout_secs, 30, "{b}");
        assert!(list[1].updated_at > first_change, "{b}: every change moves the time forward");

        s.remove_runtime_provider("local", None).await.unwrap();
        let list = s.list_runtime_providers().await.unwrap();
        assert!(list.iter().all(|r| r.removed()), "{b}");
        // Adding it again brings it back.
        s.save_runtime_provider(&entry(), None, None).await.unwrap();
        let local = s.list_runtime_providers().await.unwrap().into_iter().find(|r| r.name == "local").unwrap();
        assert_eq!(local.entry, Some(entry()), "{b}");

        assert!(s.forget_runtime_provider("cloud").await.unwrap(), "{b}");
        assert!(!s.forget_runtime_provider("cloud").await.unwrap(), "{b}");
        assert_eq!(s.list_runtime_providers().await.unwrap().len(), 1, "{b}");
    }
}

/// The `entry` column of `name`'s row, exactly as stored.
async fn raw_entry(s: &Storage, name: &str) -> String {
    let row = sqlx::query("SELECT entry FROM runtime_providers WHERE name = $1")
        .bind(name)
        .fetch_one(s.pool())
        .await
        .unwrap();
    row.try_get::<Option<String>, _>("entry").unwrap().unwrap()
}

fn keyed() -> ProviderEntry {
    let mut e = ProviderEntry::new("keyed", ProviderKind::Anthropic);
    e.api_key = Some("sk-ant-main-secret-1".into());
    e.deployments = vec![
        Deployment { api_key: Some("sk-ant-second-secret-2".into()), ..Default::default() },
        Deployment { api_key_env: Some("THIRD_KEY".into()), ..Default::default() },
    ];
    e
}

#[tokio::test]
async fn literal_keys_are_encrypted_at_rest() {
    let secrets = Secrets::from_base64(&Secrets::generate_key()).unwrap();
    let other = Secrets::from_base64(&Secrets::generate_key()).unwrap();
    for (db, s) in each_backend().await {
        let b = db.backend;
        // Without a secrets key a literal key is refused, and nothing is stored.
        let e = s.save_runtime_provider(&keyed(), None, Some("admin")).await.unwrap_err();
        assert!(matches!(&e, CoreError::InvalidInput(m) if m == NO_SECRETS_KEY), "{b}: {e}");
        assert!(s.list_runtime_providers().await.unwrap().is_empty(), "{b}");

        s.save_runtime_provider(&keyed(), Some(&secrets), Some("admin")).await.unwrap();
        let raw = raw_entry(&s, "keyed").await;
        assert!(!raw.contains("sk-ant-main-secret-1") && !raw.contains("sk-ant-second-secret-2"), "{b}: {raw}");
        assert_eq!(raw.matches("enc:v1:").count(), 2, "{b}: {raw}");
        assert!(raw.contains("THIRD_KEY"), "{b}: only the variable's name of api_key_env");
        let change = s.list_runtime_providers().await.unwrap().remove(0);
        let stored = change.entry.clone().unwrap();
        assert!(Secrets::is_sealed(stored.api_key.as_deref().unwrap()), "{b}: listed as stored");

        // The right key opens it, as it was given.
        let opened = change.open_entry(Some(&secrets)).unwrap().unwrap();
        assert_eq!(opened.entry, keyed(), "{b}");
        assert!(!opened.reseal, "{b}");
        // Another key, or none, cannot.
        assert_eq!(change.open_entry(Some(&other)).unwrap_err(), SecretsError::Undecryptable, "{b}");
        assert_eq!(change.open_entry(None).unwrap_err(), SecretsError::NoKey, "{b}");
        // Each write seals with a fresh nonce: the same key never gives the same text twice.
        s.save_runtime_provider(&keyed(), Some(&secrets), Some("admin")).await.unwrap();
        assert_ne!(raw_entry(&s, "keyed").await, raw, "{b}");
    }
}

#[tokio::test]
async fn keys_stored_in_clear_still_load_and_are_encrypted_in_place() {
    let secrets = Secrets::from_base64(&Secrets::generate_key()).unwrap();
    for (db, s) in each_backend().await {
        let b = db.backend;
        // A row as written before keys were encrypted.
        let clear = serde_json::to_string(&keyed()).unwrap();
        sqlx::query(
            "INSERT INTO runtime_providers (name, entry, removed, updated_by, updated_at) VALUES ($1, $2, 0, $3, $4)",
        )
        .bind("keyed")
        .bind(&clear)
        .bind("old-admin")
        .bind(1_700_000_000_000i64)
        .execute(s.pool())
        .await
        .unwrap();
        let change = s.list_runtime_providers().await.unwrap().remove(0);
        assert!(change.has_clear_keys(), "{b}");
        // Without a key it loads as it is; with one it loads too, flagged to be encrypted.
        let as_is = change.open_entry(None).unwrap().unwrap();
        assert_eq!((as_is.entry.clone(), as_is.reseal), (keyed(), false), "{b}");
        let opened = change.open_entry(Some(&secrets)).unwrap().unwrap();
        assert_eq!((opened.entry.clone(), opened.reseal), (keyed(), true), "{b}");

        assert!(s.reseal_runtime_provider(&change, &opened.entry, &secrets).await.unwrap(), "{b}");
        let raw = raw_entry(&s, "keyed").await;
        assert!(!raw.contains("sk-ant-main-secret-1") && !raw.contains("sk-ant-second-secret-2"), "{b}: {raw}");
        let resealed = s.list_runtime_providers().await.unwrap().remove(0);
        assert!(!resealed.has_clear_keys(), "{b}");
        assert_eq!(
            (resealed.updated_at, resealed.updated_by.as_deref()),
            (change.updated_at, Some("old-admin")),
            "{b}: not a new change"
        );
        let again = resealed.open_entry(Some(&secrets)).unwrap().unwrap();
        assert_eq!((again.entry, again.reseal), (keyed(), false), "{b}");

        // A row changed meanwhile is left alone (its new change was stored encrypted by its writer).
        let mut newer = keyed();
        newer.api_key = Some("sk-ant-rotated-3".into());
        s.save_runtime_provider(&newer, Some(&secrets), None).await.unwrap();
        assert!(!s.reseal_runtime_provider(&change, &opened.entry, &secrets).await.unwrap(), "{b}");
        let latest = s.list_runtime_providers().await.unwrap().remove(0);
        assert_eq!(
            latest.open_entry(Some(&secrets)).unwrap().unwrap().entry.api_key.as_deref(),
            Some("sk-ant-rotated-3")
        );
    }
}
