//! The official OpenAI and Anthropic Python SDKs against the compatible endpoints, changing only
//! `base_url` and `api_key`. Needs a Python with the `openai` and `anthropic` packages
//! (`GAIA_TEST_PYTHON`, default `python3`); `.ci/run` installs them. Without them the test is skipped,
//! unless `GAIA_REQUIRE_SERVICES=1`, where it fails.

use crate::common;

use common::start;
use gaia_core::testing::{services_required, sqlite_db};
use gaia_providers::mock::MockConfig;

/// The Python with the SDKs, or `None` (the test is skipped) when there is none and services are not
/// required.
fn python() -> Option<String> {
    let python = std::env::var("GAIA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdks = std::process::Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_sdks {
        assert!(!services_required(), "{python} lacks the openai/anthropic packages but GAIA_REQUIRE_SERVICES=1");
        eprintln!("note: {python} lacks the openai/anthropic packages; skipping the SDK check");
        return None;
    }
    Some(python)
}

/// Runs `tests/sdk/<script>` against `s` with `key`; its standard output.
async fn run_script(python: &str, script: &str, s: &common::TestServer, key: &str) -> String {
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("GAIA_URL", &s.url)
        .env("GAIA_KEY", key)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK check failed:\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn official_sdks_work_unchanged() {
    let Some(python) = python() else { return };
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("sdk-check@example.com").await;
    let (key, _) = s.api_key(&token).await;
    assert!(run_script(&python, "check_sdks.py", &s, &key).await.contains("official SDKs ok"));
}

#[tokio::test]
async fn the_sdks_name_players_and_a_players_budget_stops_only_them() {
    use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget, UsageFilter, UsageGroupBy};
    let Some(python) = python() else { return };
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    for (p, m) in [("openai", "mock-gpt"), ("anthropic", "mock-claude")] {
        s.state.providers().set_price(p, m, gaia_core::types::ModelPrice::new(1000.0, 1000.0));
    }
    let (token, _, user_id) = s.register("sdk-players@example.com").await;
    let (key, key_id) = s.api_key(&token).await;
    let each = NewBudget {
        scope: LimitScope::KeyEndUsers,
        subject_id: key_id,
        period: BudgetPeriod::Daily,
        limit_usd: 0.03,
        hard: true,
    };
    s.state.storage().create_budget(&each, None).await.unwrap();
    assert!(run_script(&python, "end_users.py", &s, &key).await.contains("end users ok"));
    s.state.usage().flush().await;
    let mine = UsageFilter { user_id: Some(user_id), ..Default::default() };
    let groups = s.state.storage().usage_grouped(&mine, UsageGroupBy::EndUser).await.unwrap();
    let keys: Vec<&str> = groups.iter().map(|g| g.key.as_str()).collect();
    assert!(keys.contains(&"spender") && keys.contains(&"saver"), "{keys:?}");
}

#[tokio::test]
async fn the_openai_sdk_makes_images_speech_and_transcriptions() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config();
    config.assets.store = dir.path().display().to_string();
    let s = common::start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let (token, _, user_id) = s.register("sdk-media@example.com").await;
    let (key, _) = s.api_key(&token).await;
    assert!(run_script(&python, "media.py", &s, &key).await.contains("media ok"));
    // Each call made a stored, owned asset.
    let made = s.state.assets().list(Some(&user_id), None, None, 50).await.unwrap();
    let kinds: Vec<&str> = made.iter().map(|a| a.kind.as_str()).collect();
    for k in ["image", "speech", "transcription"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
}

#[tokio::test]
async fn the_openai_sdk_makes_embeddings() {
    let Some(python) = python() else { return };
    let s = start(sqlite_db(), Some(MockConfig::default())).await;
    let (token, _, _) = s.register("sdk-embeddings@example.com").await;
    let (key, _) = s.api_key(&token).await;
    assert!(run_script(&python, "embeddings.py", &s, &key).await.contains("embeddings ok"));
}
