//! Embeddings: the OpenAI client against the mock's `/v1/embeddings`, a malformed upstream, and
//! routed calls with fallbacks.

use gaia_core::types::Usage;
use gaia_providers::balanced::BalancedProvider;
use gaia_providers::mock::{mock_embedding, MockConfig, MockHandle, MockUpstream};
use gaia_providers::{
    AnthropicConfig, AnthropicProvider, EmbeddingRequest, OpenAiConfig, OpenAiProvider, Provider, ProviderError,
    ProviderRegistry, RetryPolicy,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn mock(cfg: MockConfig) -> MockHandle {
    MockUpstream::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap()
}

fn openai(base_url: String, key: Option<&str>) -> OpenAiProvider {
    let mut c = OpenAiConfig::new(base_url, key.map(str::to_string));
    c.timeout = Duration::from_secs(5);
    OpenAiProvider::new(c)
}

fn embed_req(model: &str, input: &[&str], dimensions: Option<u32>) -> EmbeddingRequest {
    EmbeddingRequest {
        model: model.into(),
        input: input.iter().map(|s| s.to_string()).collect(),
        dimensions,
        user: None,
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f).await.expect("no answer within 15 s")
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Whether two floats are equal or neighbours (a decimal read back through `f64` may round once more).
fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= f32::EPSILON * x.abs().max(y.abs()))
}

#[tokio::test]
async fn the_openai_client_embeds_a_batch_against_the_mock() {
    let m = mock(MockConfig { require_key: Some("sk-e".into()), ..Default::default() }).await;
    let p = openai(m.openai_base_url(), Some("sk-e"));
    let texts = ["The fog rolls over the harbour", "Fog over the harbour at night", "Quarterly tax invoices are due"];
    let e = within(p.embed(&embed_req("text-embedding-3-small", &texts, None))).await.unwrap();
    assert_eq!(e.vectors.len(), 3);
    assert!(e.vectors.iter().all(|v| v.len() == 1536), "text-embedding-3-small's size by default");
    for (v, t) in e.vectors.iter().zip(texts) {
        assert!(close(v, &mock_embedding(t, 1536)), "the mock's vector of {t:?}, in the inputs' order");
    }
    assert!(cos(&e.vectors[0], &e.vectors[1]) > cos(&e.vectors[0], &e.vectors[2]) + 0.3);
    assert_eq!(e.usage, Usage { input_tokens: 6 + 6 + 5, ..Usage::default() }, "one token a word");
    assert_eq!((m.embedding_requests(), m.embedding_inputs()), (1, 3));

    let e = within(p.embed(&embed_req("text-embedding-3-large", &["fog"], Some(256)))).await.unwrap();
    assert_eq!(e.vectors[0].len(), 256, "dimensions honoured");
    let e = within(p.embed(&embed_req("text-embedding-3-large", &["fog"], None))).await.unwrap();
    assert_eq!(e.vectors[0].len(), 3072);
    assert_eq!((m.embedding_requests(), m.embedding_inputs(), m.requests()), (3, 5, 0), "not counted as chat");

    // Vendor errors map as for chat: a wrong key, a fault by model name.
    let wrong = openai(m.openai_base_url(), Some("sk-wrong"));
    let err = within(wrong.embed(&embed_req("text-embedding-3-small", &["fog"], None))).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err:?}");
    let err = within(p.embed(&embed_req("mock-error-429", &["fog"], None))).await.unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { retry_after: Some(_), .. }), "{err:?}");
    let err = within(p.embed(&embed_req("mock-malformed", &["fog"], None))).await.unwrap_err();
    assert!(matches!(err, ProviderError::Stream { .. }), "{err:?}");
}

#[tokio::test]
async fn base64_answers_decode_to_the_float_answers() {
    use base64::Engine as _;
    let m = mock(MockConfig::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/embeddings", m.openai_base_url());
    let ask = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let input = json!(["fog in the harbour", "lanterns at the pier"]);
    let (_, float) = ask(json!({"model": "text-embedding-3-small", "input": input, "dimensions": 64})).await;
    let (status, b64) =
        ask(json!({"model": "text-embedding-3-small", "input": input, "dimensions": 64, "encoding_format": "base64"}))
            .await;
    assert_eq!(status, 200);
    assert_eq!(b64["object"], "list");
    assert_eq!(b64["model"], "text-embedding-3-small");
    assert_eq!(b64["usage"], json!({"prompt_tokens": 8, "total_tokens": 8}));
    for i in 0..2 {
        assert_eq!(b64["data"][i]["object"], "embedding");
        assert_eq!(b64["data"][i]["index"], i);
        let raw =
            base64::engine::general_purpose::STANDARD.decode(b64["data"][i]["embedding"].as_str().unwrap()).unwrap();
        let decoded: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let floats: Vec<f32> =
            float["data"][i]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(decoded, mock_embedding(input[i].as_str().unwrap(), 64), "base64 is the exact vector");
        assert!(close(&decoded, &floats));
    }

    // A single string and token ids (as words `t<id>`) are inputs too.
    let (_, one) = ask(json!({"model": "e", "input": "fog", "encoding_format": "float"})).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    let (_, tokens) = ask(json!({"model": "e", "input": [[11, 12], [13]], "dimensions": 32})).await;
    let t0: Vec<f32> =
        tokens["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert!(close(&t0, &mock_embedding("t11 t12", 32)));
    assert_eq!(tokens["usage"]["prompt_tokens"], 3);

    // Errors in OpenAI's shape.
    for (body, want) in [
        (json!({"model": "e", "input": []}), "'$.input' is invalid"),
        (json!({"input": ["x"]}), "model parameter"),
        (json!({"model": "e"}), "'input' is a required property"),
        (json!({"model": "e", "input": ["x"], "dimensions": 0}), "'dimensions' = 0"),
        (json!({"model": "e", "input": ["x"], "dimensions": 8193}), "'dimensions' = 8193"),
        (json!({"model": "e", "input": ["x"], "encoding_format": "int8"}), "'encoding_format'"),
        (json!({"model": "e", "input": vec!["x"; 2049]}), "at most 2048 inputs"),
    ] {
        let (status, v) = ask(body).await;
        assert_eq!(status, 400, "{want}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{want}: {v}");
    }
    let (status, v) = ask(json!({"model": "mock-error-503", "input": ["x"]})).await;
    assert_eq!((status, v["error"]["type"].as_str()), (503, Some("server_error")));
}

#[tokio::test]
async fn invalid_embedding_requests_are_refused_before_sending() {
    let m = mock(MockConfig::default()).await;
    let p = openai(m.openai_base_url(), None);
    let many: Vec<&str> = vec!["x"; 2049];
    let long = "a".repeat(32_769);
    for (r, want) in [
        (embed_req("e", &[], None), "at least one input"),
        (embed_req("e", &many, None), "at most 2048 inputs"),
        (embed_req("e", &["x"], Some(0)), "dimensions must be between 1 and 8192"),
        (embed_req("e", &["x"], Some(8193)), "dimensions must be between 1 and 8192"),
        (embed_req("e", &["x", &long], None), "input 1 has 32769 characters"),
    ] {
        match within(p.embed(&r)).await {
            Err(ProviderError::InvalidRequest(m)) => assert!(m.contains(want), "{want}: {m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    assert_eq!(m.embedding_requests(), 0, "nothing was sent");
    // Providers that cannot embed refuse.
    let a = AnthropicProvider::new(AnthropicConfig::new(m.base_url(), None));
    let err = a.embed(&embed_req("e", &["x"], None)).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidRequest(ref m) if m.contains("embeddings")), "{err:?}");
}

/// An upstream answering `answer` to every embedding request.
async fn fake_upstream(answer: Value) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/v1/embeddings",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

#[tokio::test]
async fn a_malformed_upstream_answer_is_refused() {
    // One embedding for two inputs.
    let (url, server) = fake_upstream(json!({"object": "list", "model": "e",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
    .await;
    let p = openai(url, None);
    let err = within(p.embed(&embed_req("e", &["a", "b"], None))).await.unwrap_err();
    match err {
        ProviderError::Stream { message, .. } => assert!(message.contains("1 embeddings for 2 inputs"), "{message}"),
        other => panic!("{other:?}"),
    }
    server.abort();
}

fn registry() -> ProviderRegistry {
    let reg = ProviderRegistry::new();
    reg.set_retry_policy(RetryPolicy {
        max_retries: 2,
        base_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        first_token_timeout: Duration::from_millis(500),
    });
    reg
}

#[tokio::test]
async fn embed_routed_falls_back_to_a_provider_that_answers() {
    let m = mock(MockConfig::default()).await;
    let reg = registry();
    reg.register(Arc::new(AnthropicProvider::new(AnthropicConfig::new(m.base_url(), None))));
    reg.register(Arc::new(openai(m.openai_base_url(), None)));
    let req = embed_req("ignored", &["fog at the pier", "tax forms"], Some(32));

    // A provider that does not embed is skipped at once; one failing is retried, then left.
    let c = reg.candidates("anthropic/mock-claude,openai/mock-error-503,openai/text-embedding-3-small").await.unwrap();
    let r = within(reg.embed_routed(&c, &req)).await.map_err(|f| f.error).unwrap();
    assert_eq!((r.provider.name(), r.model.as_str()), ("openai", "text-embedding-3-small"));
    assert_eq!(r.attempts, 1 + 3 + 1);
    assert_eq!(r.value.vectors.len(), 2);
    assert!(close(&r.value.vectors[0], &mock_embedding("fog at the pier", 32)));
    assert_eq!(m.embedding_requests(), 4, "three tries of the failing model, one of the good one");
    assert_eq!(reg.stats("anthropic").snapshot().total_errors, 0, "not embedding says nothing of its health");
    let s = reg.stats("openai").snapshot();
    assert_eq!((s.total_requests, s.total_errors), (4, 3));

    // Everywhere refused: the last error; an error of the request itself: no fallback.
    let c = reg.candidates("anthropic/mock-claude").await.unwrap();
    let f = within(reg.embed_routed(&c, &req)).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::InvalidRequest(_)), "{:?}", f.error);
    let c = reg.candidates("openai/mock-error-400,openai/text-embedding-3-small").await.unwrap();
    let f = within(reg.embed_routed(&c, &req)).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::Upstream { status: 400, .. }), "{:?}", f.error);
    assert_eq!(f.attempts, 1);
    let c = reg.candidates("openai/text-embedding-3-small").await.unwrap();
    let f = within(reg.embed_routed(&c, &embed_req("e", &[], None))).await.err().unwrap();
    assert!(matches!(f.error, ProviderError::InvalidRequest(_)) && f.attempts == 0, "{:?}", f.error);
}

#[tokio::test]
async fn a_balanced_provider_embeds_through_a_live_deployment() {
    let m = mock(MockConfig::default()).await;
    // Nothing listens on port 9 of loopback: that deployment cannot be reached.
    let dead: Arc<dyn Provider> = Arc::new(openai("http://127.0.0.1:9/v1".into(), None));
    let live: Arc<dyn Provider> = Arc::new(openai(m.openai_base_url(), None));
    let b = BalancedProvider::new("pool", vec![dead, live]).unwrap();
    for _ in 0..2 {
        let e = within(b.embed(&embed_req("text-embedding-3-small", &["fog"], Some(8)))).await.unwrap();
        assert!(close(&e.vectors[0], &mock_embedding("fog", 8)));
    }
}
