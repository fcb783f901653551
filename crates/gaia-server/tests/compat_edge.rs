//! Edge cases of the OpenAI- and Anthropic-compatible endpoints, as a client ported from either API
//! meets them: settings that must reach the provider (checked in what the mock upstream received),
//! `tool_choice` and finish reasons translated both ways, content blocks, auth headers, bad input and
//! upstream faults.

use crate::common;

use common::{named_events, sse_data, start, start_with, TestServer};
use gaia_core::testing::sqlite_db;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

const MODELS: [&str; 2] = ["openai/mock-gpt", "anthropic/mock-claude"];

async fn server() -> (TestServer, String) {
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("edge@example.com").await;
    let (key, _) = s.api_key(&token).await;
    (s, key)
}

fn tools_openai() -> Value {
    json!([
        {"type": "function", "function": {"name": "search_kb", "description": "Search the world",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    ])
}

fn tools_anthropic() -> Value {
    json!([
        {"name": "search_kb", "description": "Search the world",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
        {"name": "lookup", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    ])
}

impl Ctx<'_> {
    async fn openai(&self, body: Value) -> reqwest::Response {
        self.s
            .http
            .post(format!("{}/v1/chat/completions", self.s.url))
            .bearer_auth(self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn anthropic(&self, body: Value) -> reqwest::Response {
        self.s
            .http
            .post(format!("{}/v1/messages", self.s.url))
            .header("x-api-key", self.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    /// The body the mock upstream received last.
    fn upstream(&self) -> Value {
        self.s.mock.as_ref().unwrap().last_request().unwrap()
    }
}

struct Ctx<'a> {
    s: &'a TestServer,
    key: &'a str,
}

/// The chunks of an OpenAI stream (without `[DONE]`), checking it ends with `[DONE]`.
async fn openai_chunks(r: reqwest::Response) -> Vec<Value> {
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect()
}

#[tokio::test]
async fn openai_settings_reach_either_provider() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "call tool search_kb fog rules"}]);
    let body = json!({"model": "openai/mock-gpt", "messages": ask, "temperature": 0.3, "top_p": 0.9, "stop": ["ZZZ"],
        "max_completion_tokens": 40, "response_format": {"type": "json_object"}, "seed": 7, "user": "player-1",
        "tools": tools_openai(), "tool_choice": {"type": "function", "function": {"name": "search_kb"}},
        "parallel_tool_calls": false, "n": 1});
    let r = c.openai(body.clone()).await;
    assert_eq!(r.status(), 200);
    let up = c.upstream();
    assert_eq!(up["model"], "mock-gpt");
    assert_eq!(up["temperature"], 0.3);
    assert_eq!(up["top_p"], 0.9);
    assert_eq!(up["stop"], json!(["ZZZ"]));
    assert_eq!(up["max_completion_tokens"], 40, "the client's name for the limit is kept: {up}");
    assert!(up.get("max_tokens").is_none(), "{up}");
    assert_eq!(up["response_format"], json!({"type": "json_object"}));
    assert_eq!(up["seed"], 7);
    assert_eq!(up["user"], "player-1");
    assert_eq!(up["tool_choice"], json!({"type": "function", "function": {"name": "search_kb"}}));
    assert_eq!(up["parallel_tool_calls"], false);
    assert_eq!(up["tools"][1]["function"]["name"], "lookup");

    // `max_tokens` alone stays `max_tokens`.
    let r = c.openai(json!({"model": "openai/mock-gpt", "messages": ask, "max_tokens": 30})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.upstream()["max_tokens"], 30);
    assert!(c.upstream().get("max_completion_tokens").is_none());

    // The same request to a Claude model, in Anthropic's terms.
    let mut claude = body.clone();
    claude["model"] = json!("anthropic/mock-claude");
    let r = c.openai(claude).await;
    assert_eq!(r.status(), 200);
    let up = c.upstream();
    assert_eq!(up["model"], "mock-claude");
    assert_eq!(up["temperature"], 0.3);
    assert_eq!(up["top_p"], 0.9);
    assert_eq!(up["stop_sequences"], json!(["ZZZ"]));
    assert_eq!(up["max_tokens"], 40);
    assert_eq!(up["metadata"]["user_id"], "player-1");
    assert_eq!(up["tool_choice"], json!({"type": "tool", "name": "search_kb", "disable_parallel_tool_use": true}));
    assert_eq!(up["tools"][0]["input_schema"]["required"], json!(["query"]));
    assert!(up.get("response_format").is_none() && up.get("seed").is_none(), "OpenAI-only fields are not sent: {up}");
}

#[tokio::test]
async fn tool_choice_translates_both_ways() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "hello"}]);
    for (openai, anthropic) in [
        (json!("none"), json!({"type": "none"})),
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!({"type": "function", "function": {"name": "lookup"}}), json!({"type": "tool", "name": "lookup"})),
    ] {
        // OpenAI format to a Claude model.
        let r = c
            .openai(json!({"model": "anthropic/mock-claude", "messages": ask, "tools": tools_openai(), "tool_choice": openai}))
            .await;
        assert_eq!(r.status(), 200, "{openai}");
        assert_eq!(c.upstream()["tool_choice"], anthropic, "{openai}");
        // Anthropic format to a GPT model.
        let r = c
            .anthropic(json!({"model": "openai/mock-gpt", "max_tokens": 50, "messages": ask, "tools": tools_anthropic(), "tool_choice": anthropic}))
            .await;
        assert_eq!(r.status(), 200, "{anthropic}");
        assert_eq!(c.upstream()["tool_choice"], openai, "{anthropic}");
        // And each format to its own vendor, unchanged.
        c.anthropic(json!({"model": "anthropic/mock-claude", "max_tokens": 50, "messages": ask, "tools": tools_anthropic(), "tool_choice": anthropic})).await;
        assert_eq!(c.upstream()["tool_choice"], anthropic);
        c.openai(json!({"model": "openai/mock-gpt", "messages": ask, "tools": tools_openai(), "tool_choice": openai}))
            .await;
        assert_eq!(c.upstream()["tool_choice"], openai);
    }
    // `disable_parallel_tool_use` is OpenAI's `parallel_tool_calls: false`.
    let r = c
        .anthropic(json!({"model": "openai/mock-gpt", "max_tokens": 50, "messages": ask, "tools": tools_anthropic(),
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.upstream()["parallel_tool_calls"], false);
    assert_eq!(c.upstream()["tool_choice"], "auto");

    // A choice without tools is dropped when it means nothing, refused when it cannot be met.
    assert_eq!(
        c.openai(json!({"model": "openai/mock-gpt", "messages": ask, "tool_choice": "auto"})).await.status(),
        200
    );
    assert!(c.upstream().get("tool_choice").is_none());
    for (bad, needle) in [
        (json!("required"), "tools"),
        (json!("sometimes"), "tool_choice"),
        (json!({"type": "function", "function": {"name": "nope"}}), "nope"),
        (json!({"type": "function"}), "name"),
    ] {
        let tools = if needle == "tools" { json!(null) } else { tools_openai() };
        let r =
            c.openai(json!({"model": "openai/mock-gpt", "messages": ask, "tools": tools, "tool_choice": bad})).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    }
    for (bad, needle) in [
        (json!({"type": "tool"}), "name"),
        (json!({"type": "tool", "name": "nope"}), "nope"),
        (json!({"type": "sometimes"}), "tool_choice.type"),
        (json!("auto"), "object"),
    ] {
        let r = c
            .anthropic(json!({"model": "anthropic/mock-claude", "max_tokens": 50, "messages": ask, "tools": tools_anthropic(), "tool_choice": bad}))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    }
}

#[tokio::test]
async fn parallel_tool_call_deltas_keep_their_index() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "call tool search_kb fog call tool lookup rain"}]);
    for model in MODELS {
        let r = c.openai(json!({"model": model, "stream": true, "tools": tools_openai(), "messages": ask})).await;
        let chunks = openai_chunks(r).await;
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for ch in &chunks {
            for tc in ch["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                if let Some(id) = tc["id"].as_str() {
                    assert_eq!(tc["type"], "function", "a call's first delta carries id, type and name");
                    assert!(tc["function"]["name"].is_string());
                    calls[i].0.push_str(id);
                }
                calls[i].1.push_str(tc["function"]["name"].as_str().unwrap_or_default());
                calls[i].2.push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
        assert_eq!(calls.len(), 2, "{model}: {chunks:?}");
        assert_ne!(calls[0].0, calls[1].0);
        assert_eq!((calls[0].1.as_str(), calls[1].1.as_str()), ("search_kb", "lookup"), "{model}");
        assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"query": "fog"}));
        assert_eq!(serde_json::from_str::<Value>(&calls[1].2).unwrap(), json!({"query": "rain"}));
        let finish: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&json!("tool_calls")]);

        let r = c
            .anthropic(
                json!({"model": model, "max_tokens": 100, "stream": true, "tools": tools_anthropic(), "messages": ask}),
            )
            .await;
        let events = named_events(&r.text().await.unwrap());
        let starts: Vec<&Value> = events.iter().filter(|(n, _)| n == "content_block_start").map(|(_, d)| d).collect();
        assert_eq!(starts.len(), 2, "{model}: {events:?}");
        assert_eq!((starts[0]["index"].clone(), starts[1]["index"].clone()), (json!(0), json!(1)));
        assert_eq!(starts[1]["content_block"]["name"], "lookup");
        let input_of = |i: u64| -> Value {
            let s: String = events
                .iter()
                .filter(|(n, d)| n == "content_block_delta" && d["index"] == i)
                .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
                .collect();
            serde_json::from_str(&s).unwrap()
        };
        assert_eq!(input_of(0), json!({"query": "fog"}), "{model}");
        assert_eq!(input_of(1), json!({"query": "rain"}), "{model}");
        // Every started block is stopped, before the message ends.
        let stops = events.iter().filter(|(n, _)| n == "content_block_stop").count();
        assert_eq!(stops, 2);
        assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "tool_use");
    }
}

#[tokio::test]
async fn finish_reasons_map_both_ways() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "Is it foggy tonight?"}]);
    for model in MODELS {
        // A stop sequence cuts the answer: OpenAI says `stop`.
        let v: Value = c.openai(json!({"model": model, "messages": ask, "stop": "foggy"})).await.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: Is it ", "{model}: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        // The token limit: `length`, whole and streamed.
        let v: Value = c.openai(json!({"model": model, "messages": ask, "max_tokens": 2})).await.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Mock reply", "{model}: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 2);
        let chunks = openai_chunks(
            c.openai(json!({"model": model, "messages": ask, "max_completion_tokens": 2, "stream": true})).await,
        )
        .await;
        let finish: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&json!("length")], "{model}");

        // Anthropic's words: `max_tokens`, whole and streamed.
        let v: Value =
            c.anthropic(json!({"model": model, "max_tokens": 2, "messages": ask})).await.json().await.unwrap();
        assert_eq!(v["stop_reason"], "max_tokens", "{model}: {v}");
        assert_eq!(v["content"][0]["text"], "Mock reply");
        let r = c.anthropic(json!({"model": model, "max_tokens": 2, "stream": true, "messages": ask})).await;
        let events = named_events(&r.text().await.unwrap());
        assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "max_tokens", "{model}");
    }
    // A Claude model says which stop sequence it hit; Anthropic's format passes that on, whole and
    // streamed. (OpenAI does not say, so a GPT model's stop reads `end_turn`.)
    let stop = json!({"model": "anthropic/mock-claude", "max_tokens": 50, "stop_sequences": ["tonight", "foggy"], "messages": ask});
    let v: Value = c.anthropic(stop.clone()).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence", "{v}");
    assert_eq!(v["stop_sequence"], "foggy");
    assert_eq!(v["content"][0]["text"], "Mock reply to: Is it ");
    let mut streamed = stop.clone();
    streamed["stream"] = json!(true);
    let events = named_events(&c.anthropic(streamed).await.text().await.unwrap());
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "foggy"}));
    // A Claude model counts the input up front, and `message_start` passes that on.
    assert_eq!(events[0].0, "message_start");
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 4, "{:?}", events[0]);
    assert_eq!(delta["usage"]["input_tokens"], 4);
    let mut gpt = stop.clone();
    gpt["model"] = json!("openai/mock-gpt");
    let v: Value = c.anthropic(gpt).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["content"][0]["text"], "Mock reply to: Is it ");

    // `n`: one choice only, said clearly.
    for n in [json!(2), json!(0), json!("2")] {
        let r = c.openai(json!({"model": "mock-gpt", "messages": ask, "n": n})).await;
        assert_eq!(r.status(), 400, "{n}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("`n` must be 1"), "{v}");
    }
}

#[tokio::test]
async fn anthropic_content_blocks_reach_either_provider() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let messages = json!([
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "text", "text": "call tool search_kb fog", "cache_control": {"type": "ephemeral"}}
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants fog.", "signature": "sig"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "search_kb", "input": {"query": "fog"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Fog: zombies 1.2x"}]}
        ]}
    ]);
    for model in MODELS {
        let r = c
            .anthropic(json!({"model": model, "max_tokens": 100, "tools": tools_anthropic(), "messages": messages,
                "system": [{"type": "text", "text": "Be Mara."}, {"type": "text", "text": " Be brief."}]}))
            .await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["content"][0]["text"], "Tool result received: Fog: zombies 1.2x", "{model}: {v}");
        let up = c.upstream();
        if model.starts_with("openai") {
            let m = up["messages"].as_array().unwrap();
            assert_eq!(m[0], json!({"role": "system", "content": "Be Mara. Be brief."}));
            assert_eq!(m[1]["content"][0], json!({"type": "text", "text": "call tool search_kb fog"}));
            assert_eq!(m[1]["content"][1]["image_url"]["url"], format!("data:image/png;base64,{png}"));
            assert_eq!(m[2]["content"], "Looking.");
            assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_1");
            assert_eq!(
                serde_json::from_str::<Value>(m[2]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
                    .unwrap(),
                json!({"query": "fog"})
            );
            assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Fog: zombies 1.2x"}));
        } else {
            assert_eq!(up["system"], "Be Mara. Be brief.");
            let m = up["messages"].as_array().unwrap();
            assert_eq!(m[0]["content"][0]["source"]["media_type"], "image/png");
            assert_eq!(m[1]["content"][1]["type"], "tool_use");
            assert_eq!(m[1]["content"][1]["input"], json!({"query": "fog"}));
            assert_eq!(m[2]["content"][0]["tool_use_id"], "toolu_1");
        }
    }
    // Blocks that have no place are refused in Anthropic's shape.
    let r = c
        .anthropic(json!({"model": "mock-gpt", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "t", "input": {}}]}]}))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    let r = c.anthropic(json!({"model": "mock-gpt", "max_tokens": 10, "temperature": "hot", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("temperature"));
}

#[tokio::test]
async fn either_auth_header_on_either_endpoint() {
    let (s, key) = server().await;
    let ask = json!([{"role": "user", "content": "hi"}]);
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .header("x-api-key", &key)
        .json(&json!({"model": "mock-claude", "messages": ask}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .bearer_auth(&key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-04-04")
        .json(&json!({"model": "mock-gpt", "max_tokens": 10, "messages": ask}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .bearer_auth("gaia_wrong")
        .json(&json!({"model": "mock-gpt", "max_tokens": 10, "messages": ask}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(v["error"]["message"].is_string());
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .header("x-api-key", "gaia_wrong")
        .json(&json!({"model": "mock-gpt", "messages": ask}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    let e = v["error"].as_object().unwrap();
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "param", "type"], "OpenAI's error shape: {v}");
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn bad_input_is_refused_in_each_apis_shape() {
    let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.rbac.first_user_admin = false;
    config.server.body_limit_bytes = 16 * 1024;
    let s = start_with(sqlite_db(), Some(MockConfig::default()), config).await;
    let (token, _, _) = s.register("bad@example.com").await;
    let (key, _) = s.api_key(&token).await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "hi"}]);

    // The configured body limit, in each shape.
    let big = "x".repeat(20 * 1024);
    let r = c.openai(json!({"model": "mock-gpt", "messages": [{"role": "user", "content": big}]})).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let r = c
        .anthropic(json!({"model": "mock-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": big}]}))
        .await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("request_too_large")));
    // Under the limit is fine.
    let r =
        c.openai(json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x".repeat(8 * 1024)}]})).await;
    assert_eq!(r.status(), 200);

    // Malformed JSON on the Anthropic endpoint.
    let r = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(v["error"]["message"].as_str().unwrap().contains("JSON"));

    // Missing or empty messages.
    for body in [json!({"model": "mock-gpt"}), json!({"model": "mock-gpt", "messages": []})] {
        let r = c.openai(body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("messages"));
        let mut an = body.clone();
        an["max_tokens"] = json!(5);
        let r = c.anthropic(an).await;
        assert_eq!(r.status(), 400, "{body}");
        assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("messages"));
    }

    // Invalid tool schemas.
    for tool in [
        json!({"type": "function", "function": {"parameters": {"type": "object"}}}),
        json!({"type": "function", "function": {"name": "t", "parameters": "object"}}),
        json!({"type": "function", "function": {"name": "t", "parameters": {"type": "string"}}}),
        json!({"type": "function", "function": {"name": "bad name!"}}),
        json!({"type": "function"}),
        json!({"type": "custom", "custom": {"name": "t"}}),
    ] {
        let r = c.openai(json!({"model": "mock-gpt", "messages": ask, "tools": [tool]})).await;
        assert_eq!(r.status(), 400, "{tool}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    }
    for tool in [
        json!({"input_schema": {"type": "object"}}),
        json!({"name": "t"}),
        json!({"name": "t", "input_schema": []}),
        json!({"name": "t", "input_schema": {"type": "array"}}),
    ] {
        let r = c.anthropic(json!({"model": "mock-gpt", "max_tokens": 5, "messages": ask, "tools": [tool]})).await;
        assert_eq!(r.status(), 400, "{tool}");
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    }

    // Unknown model, in Anthropic's shape.
    let r = c.anthropic(json!({"model": "claude-9", "max_tokens": 5, "messages": ask})).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("claude-9"));
}

#[tokio::test]
async fn upstream_faults_are_mapped_and_streams_end() {
    let (s, key) = server().await;
    let c = Ctx { s: &s, key: &key };
    let ask = json!([{"role": "user", "content": "a long story about the fog please"}]);

    // A rate limit keeps the provider's `retry-after`, in either shape.
    let r = c.openai(json!({"model": "openai/mock-error-429", "messages": ask})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (Some("rate_limit_error"), Some("rate_limit_exceeded"))
    );
    let r = c.anthropic(json!({"model": "anthropic/mock-error-429", "max_tokens": 5, "messages": ask})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
    // Overloaded upstream (after retries): a 5xx the SDKs retry, in shape.
    let r = c.anthropic(json!({"model": "openai/mock-error-503", "max_tokens": 5, "messages": ask})).await;
    assert!(r.status().is_server_error());
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");

    // A stream cut after bytes were sent, to and from either vendor: an error at the end, never a
    // clean finish.
    for model in ["openai/mock-disconnect", "anthropic/mock-disconnect"] {
        let chunks = openai_chunks(c.openai(json!({"model": model, "stream": true, "messages": ask})).await).await;
        assert!(
            chunks.iter().any(|c| c["choices"][0]["delta"]["content"].is_string()),
            "{model}: some text came first"
        );
        let last = chunks.last().unwrap();
        assert!(last["error"]["message"].is_string(), "{model}: {last}");
        assert!(chunks.iter().all(|c| c["choices"][0]["finish_reason"].is_null()), "{model}");
        let r = c.anthropic(json!({"model": model, "max_tokens": 100, "stream": true, "messages": ask})).await;
        let events = named_events(&r.text().await.unwrap());
        assert!(events.iter().any(|(n, _)| n == "content_block_delta"), "{model}");
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{model}: {events:?}");
        assert_eq!(data["type"], "error");
        assert!(data["error"]["type"].is_string() && data["error"]["message"].is_string());
        assert!(events.iter().all(|(n, _)| n != "message_stop"));
    }

    // An upstream that goes silent mid-stream (connection kept open) is given up on after the
    // provider's read timeout: the client still gets an error and the end of the stream.
    let openai = async {
        openai_chunks(c.openai(json!({"model": "anthropic/mock-stall", "stream": true, "messages": ask})).await).await
    };
    let anthropic = async {
        let r = c
            .anthropic(json!({"model": "openai/mock-stall", "max_tokens": 100, "stream": true, "messages": ask}))
            .await;
        named_events(&r.text().await.unwrap())
    };
    let (chunks, events) = tokio::join!(openai, anthropic);
    assert!(chunks.last().unwrap()["error"]["message"].as_str().unwrap().contains("timed out"), "{chunks:?}");
    assert_eq!(events.last().unwrap().0, "error", "{events:?}");
    assert_eq!(events.last().unwrap().1["error"]["type"], "api_error");
}

#[tokio::test]
async fn model_lookup_by_id_in_either_shape() {
    let (s, key) = server().await;
    let get = |path: &str, anthropic: bool| {
        let mut r = s.http.get(format!("{}/v1/models/{path}", s.url)).header("x-api-key", &key);
        if anthropic {
            r = r.header("anthropic-version", "2023-06-01");
        }
        r.send()
    };
    let v: Value = get("mock-gpt", false).await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({"id": "mock-gpt", "object": "model", "created": 0, "owned_by": "openai"}));
    let r = get("anthropic/mock-claude", true).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["id"].as_str()), (Some("model"), Some("anthropic/mock-claude")));
    let r = get("anthropic/claude-9", true).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("not_found_error")));
}

#[tokio::test]
async fn unknown_vendor_routes_answer_in_the_vendors_shape() {
    let (s, key) = server().await;
    // OpenAI clients reaching a route Gaia does not serve get OpenAI's error body.
    let r =
        s.http.post(format!("{}/v1/fine_tuning/jobs", s.url)).bearer_auth(&key).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid URL (POST /v1/fine_tuning/jobs)", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["code"].is_null() && v["error"]["param"].is_null(), "{v}");
    // Anthropic clients (they send `anthropic-version`) get Anthropic's.
    let r = s
        .http
        .post(format!("{}/v1/messages/count_tokens", s.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    // A wrong method on a vendor route: 405 in the vendor's shape.
    let r = s.http.get(format!("{}/v1/chat/completions", s.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid URL (GET /v1/chat/completions)", "{v}");
    // Gaia's own routes keep Gaia's shape.
    let r = s.http.get(format!("{}/api/v1/no-such-thing", s.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("error").is_none_or(|e| !e.is_object()), "{v}");
}
