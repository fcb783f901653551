//! Provider client overhead: a streamed answer from the mock upstream read as raw bytes (baseline)
//! against the same answer through Gaia's OpenAI and Anthropic clients (SSE parsing into typed events),
//! in the same run.
//!
//! `cargo bench -p gaia-benches --bench providers`

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use gaia_core::types::ChatMessage;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{AnthropicConfig, AnthropicProvider, ChatRequest, OpenAiConfig, OpenAiProvider, Provider};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(async {
        MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig { chunks: 64, ..Default::default() })
            .await
            .unwrap()
    });
    let prompt = "Describe the safe house on Fifth Street, its supplies and its dangers in fog, in detail.";
    let req = ChatRequest::new("mock-gpt", vec![ChatMessage::user(prompt)]);
    let raw_body = serde_json::json!({"model": "mock-gpt", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": prompt}]});
    let http = reqwest::Client::new();
    let openai = OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), None));
    let anthropic = AnthropicProvider::new(AnthropicConfig::new(mock.base_url(), None));
    let url = format!("{}/chat/completions", mock.openai_base_url());

    let mut g = c.benchmark_group("stream_64_chunks");
    g.bench_function("raw_http_bytes_baseline", |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = http.post(&url).json(&raw_body).send().await.unwrap().bytes_stream();
            let mut n = 0;
            while let Some(c) = s.next().await {
                n += c.unwrap().len();
            }
            n
        })
    });
    for (name, p) in [("gaia_openai_client", &openai as &dyn Provider), ("gaia_anthropic_client", &anthropic)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut s = p.chat_stream(&req).await.unwrap();
                let mut n = 0;
                while let Some(e) = s.next().await {
                    e.unwrap();
                    n += 1;
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
