//! The official OpenAI and Anthropic Python SDKs against the compatible endpoints, changing only
//! `base_url` and `api_key`. Needs a Python with the `openai` and `anthropic` packages
//! (`GAIA_TEST_PYTHON`, default `python3`); `.ci/run` installs them. Without them the test is skipped,
//! unless `GAIA_REQUIRE_SERVICES=1`, where it fails.

use crate::common;

use common::start;
use gaia_core::testing::{services_required, sqlite_db};
use gaia_providers::mock::MockConfig;

#[tokio::test]
async fn official_sdks_work_unchanged() {
    let python = std::env::var("GAIA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_sdks = std::process::Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_sdks {
        assert!(!services_required(), "{python} lacks the openai/anthropic packages but GAIA_REQUIRE_SERVICES=1");
        eprintln!("note: {python} lacks the openai/anthropic packages; skipping the SDK check");
        return;
    }
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("sdk-check@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/check_sdks.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("GAIA_URL", &s.url)
        .env("GAIA_KEY", &key)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK check failed:\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("official SDKs ok"));
}
