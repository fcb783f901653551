//! What Gaia adds to a media call: speech and a small image asked of the mock upstream directly
//! (baseline) against the same through Gaia's OpenAI-compatible `/v1/audio/speech` and
//! `/v1/images/generations` (authentication, admission with a priced estimate and a hard budget,
//! the vendor call, the image checked, decoded and thumbnailed, the file written to the asset folder,
//! the asset row, the usage record), in the same run, over loopback HTTP.
//!
//! `cargo bench -p gaia-benches --bench assets`

use criterion::{criterion_group, criterion_main, Criterion};
use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget, NewUnitPrice, Storage, UnitPriceKind};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mock, gaia, key) = rt.block_on(async {
        let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
        let registry = ProviderRegistry::new();
        registry.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None))));
        let storage = Storage::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await.unwrap();
        storage.migrate().await.unwrap();
        let mut config =
            gaia_core::Config { jwt_secret: Some("bench-secret-0123456789abcdef".into()), ..Default::default() };
        config.assets.store = dir.path().join("assets").display().to_string();
        config.chat.auto_title = false;
        config.chat.memory = false;
        for (model, unit, usd) in [("tts-1", "character", 0.000015), ("gpt-image-1", "image", 0.04)] {
            let p = NewUnitPrice {
                kind: UnitPriceKind::Cost,
                provider: "openai".into(),
                model: model.into(),
                unit: unit.into(),
                usd_per_unit: usd,
                effective_from: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
            };
            storage.add_unit_price(&p, None).await.unwrap();
        }
        let cache = Arc::new(gaia_core::cache::MemoryCache::new(1000));
        let state = gaia_server::AppState::new(config, storage.clone(), cache, registry);
        state.quotas().reload_prices().await.unwrap();
        let user = storage.create_user("bench-assets@example.com", None, None).await.unwrap();
        let (_, key) = state.auth().create_api_key(&user.id, None).await.unwrap();
        // A hard budget in force: every generation is checked against its priced estimate.
        let budget = NewBudget {
            scope: LimitScope::User,
            subject_id: user.id,
            period: BudgetPeriod::Monthly,
            limit_usd: 1e9,
            hard: true,
        };
        storage.create_budget(&budget, None).await.unwrap();
        let listener = gaia_core::net::listen("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { gaia_server::serve(listener, state, std::future::pending()).await });
        (mock, url, key)
    });
    let http = reqwest::Client::new();
    let speech = json!({"model": "tts-1", "voice": "alloy", "response_format": "wav",
                        "input": "Halt, traveller. The gate opens at dawn, not before."});
    let gaia_speech = json!({"model": "openai/tts-1", "voice": "alloy", "response_format": "wav",
                             "input": "Halt, traveller. The gate opens at dawn, not before."});
    let image = json!({"model": "gpt-image-1", "prompt": "a brass lantern icon", "size": "256x256"});
    let gaia_image = json!({"model": "openai/gpt-image-1", "prompt": "a brass lantern icon", "size": "256x256"});
    let post = |url: String, body: serde_json::Value, key: Option<String>| {
        let http = http.clone();
        async move {
            let mut r = http.post(url).json(&body);
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            let resp = r.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.bytes().await.unwrap().len()
        }
    };

    let mut g = c.benchmark_group("speech_wav_52_chars");
    g.bench_function("mock_direct_baseline", |b| {
        b.to_async(&rt).iter(|| post(format!("{}/audio/speech", mock.openai_base_url()), speech.clone(), None))
    });
    g.bench_function("through_gaia", |b| {
        b.to_async(&rt).iter(|| post(format!("{gaia}/v1/audio/speech"), gaia_speech.clone(), Some(key.clone())))
    });
    g.finish();

    let mut g = c.benchmark_group("image_256px_b64");
    g.bench_function("mock_direct_baseline", |b| {
        b.to_async(&rt).iter(|| post(format!("{}/images/generations", mock.openai_base_url()), image.clone(), None))
    });
    g.bench_function("through_gaia", |b| {
        b.to_async(&rt).iter(|| post(format!("{gaia}/v1/images/generations"), gaia_image.clone(), Some(key.clone())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
