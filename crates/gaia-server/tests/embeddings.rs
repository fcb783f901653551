//! Embeddings: `POST /v1/embeddings` (batches, `dimensions`, base64, the cache by content hash,
//! metering and prices, errors in OpenAI's shape), the knowledge base's semantic and hybrid search
//! through the API on the mock's vectors (similarity follows shared words), access to private notes,
//! and persona memory recalling facts by similarity once they no longer all fit in the prompt.

use crate::common::{eventually_async, start_with, test_config, TestServer};
use gaia_core::storage::{PersonaMemory, UsageFilter};
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_providers::mock::{mock_embedding, MockConfig};
use serde_json::{json, Value};

const MODEL: &str = "openai/text-embedding-3-small";

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn embed(s: &TestServer, key: &str, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s.post("/v1/embeddings", key).json(&body).send().await.unwrap();
    let headers = r.headers().clone();
    let (st, v) = json_of(r).await;
    (st, v, headers)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (n(a) * n(b))
}

#[tokio::test]
async fn embeddings_are_routed_cached_metered_and_checked() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), test_config()).await;
        let b = s.backend;
        s.state.providers().set_price("openai", "text-embedding-3-small", ModelPrice::new(20.0, 0.0));
        let (token, _, user_id) = s.register("embedder@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let texts = ["the fog rolls over the harbour", "fog over the harbour at night", "a recipe for apple pie"];
        let (st, v, h) = embed(&s, &key, json!({"model": MODEL, "input": texts, "dimensions": 32})).await;
        assert_eq!(st, 200, "{b}: {v}");
        assert_eq!((v["object"].as_str(), v["model"].as_str()), (Some("list"), Some(MODEL)), "{b}");
        let vs: Vec<Vec<f32>> = v["data"].as_array().unwrap().iter().map(|d| floats(&d["embedding"])).collect();
        assert_eq!(vs.len(), 3);
        assert!(vs.iter().all(|v| v.len() == 32), "{b}: dimensions honoured");
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(v["data"][i]["index"], i, "{b}");
            assert!(cos(&vs[i], &mock_embedding(t, 32)) > 0.9999, "{b}: the upstream's vector, in order");
        }
        assert!(cos(&vs[0], &vs[1]) > cos(&vs[0], &vs[2]), "{b}: similarity follows shared words");
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{b}: {v}");
        assert_eq!(h["x-gaia-cache"], "miss");
        let upstream = s.mock.as_ref().unwrap().embedding_inputs();
        assert_eq!(upstream, 3, "{b}");

        // The same texts again come from the cache; a new one with them goes upstream alone.
        let (st, again, h) = embed(&s, &key, json!({"model": MODEL, "input": texts, "dimensions": 32})).await;
        assert_eq!((st, h["x-gaia-cache"].to_str().unwrap()), (200, "hit"), "{b}");
        assert_eq!(again["data"], v["data"], "{b}");
        assert_eq!(again["usage"]["prompt_tokens"], 0, "{b}: nothing was read upstream");
        let (_, _, h) =
            embed(&s, &key, json!({"model": MODEL, "input": [texts[0], "lanterns"], "dimensions": 32})).await;
        assert_eq!(h["x-gaia-cached-inputs"], "1", "{b}");
        assert_eq!(s.mock.as_ref().unwrap().embedding_inputs(), 4, "{b}: only the new text went upstream");
        // Another size is another vector; `x-gaia-cache: off` goes upstream.
        let r = s
            .post("/v1/embeddings", &key)
            .header("x-gaia-cache", "off")
            .json(&json!({"model": MODEL, "input": texts[0], "dimensions": 32}));
        assert_eq!(r.send().await.unwrap().headers()["x-gaia-cache"], "miss", "{b}");

        // base64, as the official SDK asks by default: the same numbers.
        let (st, b64, _) =
            embed(&s, &key, json!({"model": MODEL, "input": texts[0], "dimensions": 32, "encoding_format": "base64"}))
                .await;
        assert_eq!(st, 200, "{b}");
        use base64::Engine as _;
        let raw =
            base64::engine::general_purpose::STANDARD.decode(b64["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let decoded: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(decoded, vs[0], "{b}");

        // Errors, in OpenAI's shape, and nothing sent upstream.
        let before = s.mock.as_ref().unwrap().embedding_inputs();
        for (body, says) in [
            (json!({"model": MODEL}), "`input` is required"),
            (json!({"model": MODEL, "input": []}), "must not be empty"),
            (json!({"model": MODEL, "input": [[1, 2, 3]]}), "token ids"),
            (json!({"model": MODEL, "input": [1, 2, 3]}), "token ids"),
            (json!({"model": MODEL, "input": ["ok", {"x": 1}]}), "array of strings"),
            (json!({"model": MODEL, "input": ["ok", ""]}), "input 1 is empty"),
            (json!({"model": MODEL, "input": "x", "dimensions": 0}), "dimensions"),
            (json!({"model": MODEL, "input": "x", "dimensions": -3}), "dimensions"),
            (json!({"model": MODEL, "input": "x", "encoding_format": "hex"}), "encoding_format"),
            (json!({"input": "x"}), "`model` is required"),
            (json!({"model": MODEL, "input": vec!["w"; 2049]}), "at most 2048"),
            (json!({"model": MODEL, "input": "x".repeat(40_000)}), "longer than"),
        ] {
            let (st, v, _) = embed(&s, &key, body).await;
            assert_eq!(st, 400, "{b}: {v}");
            let m = v["error"]["message"].as_str().unwrap_or_default();
            assert!(m.contains(says), "{b}: {m:?} should say {says:?}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{b}");
        }
        let (st, v, _) = embed(&s, &key, json!({"model": "nowhere/embedder", "input": "x"})).await;
        assert_eq!((st, v["error"]["code"].as_str()), (404, Some("model_not_found")), "{b}: {v}");
        assert_eq!(s.mock.as_ref().unwrap().embedding_inputs(), before, "{b}: refused before any upstream call");
        let r = s
            .http
            .post(format!("{}/v1/embeddings", s.url))
            .json(&json!({"model": MODEL, "input": "x"}))
            .send()
            .await
            .unwrap();
        let (st, v) = json_of(r).await;
        assert_eq!((st, v["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{b}: {v}");

        // Metered and priced like any call.
        s.state.usage().flush().await;
        let mine = UsageFilter { user_id: Some(user_id), ..Default::default() };
        let records = s.state.storage().list_usage(&mine, 100).await.unwrap();
        let embedded: Vec<_> =
            records.iter().filter(|r| r.usage.endpoint == "embeddings" && r.usage.status == 200).collect();
        assert!(
            embedded.iter().any(|r| r.usage.provider == "openai" && r.usage.input_tokens > 0 && r.usage.cost_usd > 0.0),
            "{b}"
        );
        assert!(
            embedded.iter().any(|r| r.usage.provider == "cache" && r.usage.cost_usd == 0.0),
            "{b}: cache hits cost nothing"
        );
        assert!(
            records.iter().any(|r| r.usage.endpoint == "embeddings" && r.usage.status == 400),
            "{b}: refusals are recorded"
        );
    }
}

fn semantic_config(model: bool) -> gaia_core::Config {
    let mut c = test_config();
    if model {
        c.embeddings.model = Some(MODEL.into());
        c.embeddings.dimensions = Some(64);
    }
    c
}

async fn world_kb(s: &TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("vault");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world");
    gaia_core::testing::copy_dir(&fixture, &root);
    assert!(std::process::Command::new("git").arg("-C").arg(&root).args(["init", "-q"]).status().unwrap().success());
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig { root: root.clone(), sync_interval_secs: 0, ..Default::default() })
        .await
        .unwrap();
    assert!(s.state.set_kb(kb));
    root
}

async fn search(s: &TestServer, key: &str, q: &str, mode: &str) -> (u16, Value) {
    let url = format!("/api/v1/kb/search?q={}&mode={mode}&limit=20", urlencode(q));
    json_of(s.get(&url, key).send().await.unwrap()).await
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn paths(v: &Value) -> Vec<String> {
    v["response"].as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_kb_finds_by_meaning_through_the_api_and_hides_private_chunks() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), semantic_config(true)).await;
        let b = s.backend;
        let (token, _, owner) = s.register("reader@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let (other_token, _, _) = s.register("stranger@example.com").await;
        let (other, _) = s.api_key(&other_token).await;
        let dir = tempfile::tempdir().unwrap();
        world_kb(&s, dir.path()).await;
        let status = || async {
            let (_, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
            v["response"]["semantic"].clone()
        };
        assert!(eventually_async(|| async { status().await["state"] == "ready" }).await, "{b}: {}", status().await);
        let st = status().await;
        assert_eq!(
            (st["model"].as_str(), st["test_fallback"].as_bool()),
            (Some(&*format!("{MODEL}@64")), Some(false)),
            "{b}"
        );
        assert!(st["chunks"].as_u64().unwrap() > st["notes"].as_u64().unwrap(), "{b}: {st}");

        for mode in ["semantic", "hybrid"] {
            let (code, v) = search(&s, &key, "zombie speed visibility weather fog rain", mode).await;
            assert_eq!(code, 200, "{b}: {v}");
            assert_eq!(paths(&v)[0], "Rules/Weather Effects.md", "{b} {mode}: {v}");
            assert_eq!(v["metadata"]["mode"], mode);
        }
        // The index is kept in the database: the vectors are there, under the knowledge base's scope.
        use gaia_core::vectors::VectorStore;
        let stored = s.state.storage().all("kb:default", &format!("{MODEL}@64")).await.unwrap();
        assert_eq!(stored.len() as u64, st["chunks"].as_u64().unwrap(), "{b}");

        // A note in the owner's private area: found by them, never by another reader.
        let private = format!("users/{owner}/diary.md");
        let body = json!({"path": private, "content": "# Confession\nthe lighthouse keeper hides the necromancer\n"});
        let (code, v) = json_of(s.post("/api/v1/kb/write", &key).json(&body).send().await.unwrap()).await;
        assert_eq!(code, 201, "{b}: {v}");
        let q = "lighthouse keeper necromancer";
        assert!(
            eventually_async(|| async { paths(&search(&s, &key, q, "semantic").await.1).first() == Some(&private) })
                .await,
            "{b}: the owner finds their note"
        );
        for mode in ["semantic", "hybrid"] {
            let (code, v) = search(&s, &other, q, mode).await;
            assert_eq!(code, 200, "{b}: {v}");
            assert!(!v.to_string().contains("users/"), "{b} {mode}: a private chunk leaked: {v}");
            assert!(!v.to_string().contains("necromancer"), "{b} {mode}: {v}");
        }
        let (code, v) = search(&s, &key, q, "vectors").await;
        assert_eq!(code, 400, "{b}: {v}");
    }
}

#[tokio::test]
async fn without_a_model_semantic_search_says_how_to_configure_one() {
    let s = start_with(gaia_core::testing::sqlite_db(), Some(MockConfig::default()), semantic_config(false)).await;
    let (token, _, _) = s.register("noembed@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let dir = tempfile::tempdir().unwrap();
    world_kb(&s, dir.path()).await;
    for mode in ["semantic", "hybrid"] {
        let (code, v) = search(&s, &key, "fog", mode).await;
        assert_eq!(code, 503, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("[embeddings] model"), "{v}");
    }
    let (_, v) = json_of(s.get("/api/v1/kb/status", &key).send().await.unwrap()).await;
    assert!(v["response"].get("semantic").is_none(), "{v}");
    // The ranked search is unaffected.
    assert_eq!(search(&s, &key, "fog", "ranked").await.0, 200);
}

#[tokio::test]
async fn persona_memory_recalls_the_facts_nearest_the_message_once_they_do_not_all_fit() {
    for db in database_urls().await {
        let mut c = semantic_config(true);
        c.chat.memory = true;
        c.rbac.first_user_admin = false;
        let s = start_with(db, Some(MockConfig::default()), c).await;
        let b = s.backend;
        let (token, _, user) = s.register("rememberer@example.com").await;
        let (key, _) = s.api_key(&token).await;
        // Sixty facts: more than a prompt shows.
        let mut facts: Vec<String> = (0..59).map(|i| format!("The user collected stamp number {i}")).collect();
        facts.insert(7, "The user keeps a pet raven called Morrow".into());
        let m = PersonaMemory { facts, summary: "Long talks about stamps.".into(), ..Default::default() };
        s.state.storage().put_persona_memory(&user, "default", m).await.unwrap();
        let body = json!({"message": "Tell me about my pet raven", "model": "openai/mock-gpt"});
        let (code, v) = json_of(s.post("/api/v1/chat", &key).json(&body).send().await.unwrap()).await;
        assert_eq!(code, 200, "{b}: {v}");
        let sent = s.mock.as_ref().unwrap().last_request().unwrap_or_default();
        let system = sent.to_string();
        assert!(system.contains("pet raven called Morrow"), "{b}: the nearest fact was recalled: {system}");
        let shown = system.matches("stamp number").count();
        assert!(shown < 59, "{b}: not every fact is put in the prompt ({shown})");
        // The facts' vectors are kept under the user's scope, and go with their data.
        use gaia_core::vectors::VectorStore;
        assert!(
            eventually_async(|| async {
                s.state.storage().all(&format!("memory:{user}"), &format!("{MODEL}@64")).await.unwrap().len() >= 60
            })
            .await,
            "{b}"
        );
    }
}
