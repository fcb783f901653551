//! Structured output across vendors: an OpenAI-format `response_format` sent to a Claude model (a
//! `json_schema` becomes a forced tool whose input comes back as the message text, a `json_object`
//! becomes a system instruction), bad `response_format`s, and an Anthropic-format `tool_result` with
//! `is_error` sent to a GPT model. Real HTTP through the server against the mock upstream, checking
//! both what the upstream received and what the client got.

use crate::common;

use common::{sse_data, start, TestServer};
use gaia_core::testing::sqlite_db;
use gaia_providers::anthropic::{JSON_OBJECT_INSTRUCTION, RESPONSE_TOOL};
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

const CLAUDE: &str = "anthropic/mock-claude";
const GPT: &str = "openai/mock-gpt";

struct Ctx {
    s: TestServer,
    key: String,
}

async fn ctx() -> Ctx {
    let s = start(sqlite_db(), Some(MockConfig { chunks: 3, ..Default::default() })).await;
    let (token, _, _) = s.register("structured@example.com").await;
    let (key, _) = s.api_key(&token).await;
    // Claude calls the tool its `tool_choice` forces; so does the mock, when told to.
    s.mock.as_ref().unwrap().set_honour_tool_choice(true);
    Ctx { s, key }
}

impl Ctx {
    async fn openai(&self, body: Value) -> reqwest::Response {
        self.s.post("/v1/chat/completions", &self.key).json(&body).send().await.unwrap()
    }

    async fn anthropic(&self, body: Value) -> reqwest::Response {
        self.s
            .post("/v1/messages", &self.key)
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

    /// Chat requests the mock upstream received.
    fn upstream_requests(&self) -> u64 {
        self.s.mock.as_ref().unwrap().requests()
    }
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature": {"type": "number"},
            "foggy": {"type": "boolean"},
            "hours": {"type": "array", "items": {"type": "integer"}},
            "wind": {"type": "object", "properties": {"dir": {"enum": ["N", "S"]}}, "required": ["dir"], "additionalProperties": false}
        },
        "required": ["city", "temperature", "foggy", "hours", "wind"],
        "additionalProperties": false
    })
}

/// What the mock answers for [`schema`]: its required properties with placeholder values.
fn placeholder_answer() -> Value {
    json!({"city": "example", "temperature": 0, "foggy": false, "hours": [], "wind": {"dir": "N"}})
}

fn json_schema_format(name: Option<&str>) -> Value {
    let mut js = json!({"schema": schema(), "strict": true});
    if let Some(n) = name {
        js["name"] = json!(n);
    }
    json!({"type": "json_schema", "json_schema": js})
}

fn tools_openai() -> Value {
    json!([
        {"type": "function", "function": {"name": "search_kb", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    ])
}

fn ask(text: &str) -> Value {
    json!([{"role": "system", "content": "Be Mara."}, {"role": "user", "content": text}])
}

/// The chunks of an OpenAI stream (without `[DONE]`), checking it ends with `[DONE]`.
async fn openai_chunks(r: reqwest::Response) -> Vec<Value> {
    assert_eq!(r.status(), 200);
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect()
}

/// Content of a stream's chunks joined, and its non-null finish reasons.
fn streamed(chunks: &[Value]) -> (String, Vec<Value>) {
    let text = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let finish = chunks.iter().map(|c| c["choices"][0]["finish_reason"].clone()).filter(|f| !f.is_null()).collect();
    (text, finish)
}

fn upstream_tool_names(up: &Value) -> Vec<String> {
    up["tools"].as_array().into_iter().flatten().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn json_schema_on_claude_is_a_forced_tool_whose_input_is_the_answer() {
    let c = ctx().await;
    for (name, tool) in [(Some("weather_report"), "weather_report"), (None, RESPONSE_TOOL)] {
        let body =
            json!({"model": CLAUDE, "messages": ask("Weather in Oslo?"), "response_format": json_schema_format(name)});

        // Whole answer.
        let r = c.openai(body.clone()).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let up = c.upstream();
        assert_eq!(upstream_tool_names(&up), [tool], "{up}");
        assert_eq!(up["tools"][0]["input_schema"], schema(), "the schema is the tool's input schema");
        assert!(up["tools"][0]["description"].is_string());
        assert_eq!(up["tool_choice"], json!({"type": "tool", "name": tool}));
        assert_eq!(up["system"], "Be Mara.");
        assert!(up.get("response_format").is_none(), "{up}");
        let msg = &v["choices"][0]["message"];
        let content = msg["content"].as_str().unwrap_or_else(|| panic!("content is text: {v}"));
        assert_eq!(serde_json::from_str::<Value>(content).unwrap(), placeholder_answer());
        assert!(msg.get("tool_calls").is_none(), "the forced call is not shown as a call: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

        // Streamed: the tool input's fragments are content deltas.
        let mut stream = body.clone();
        stream["stream"] = json!(true);
        stream["stream_options"] = json!({"include_usage": true});
        let chunks = openai_chunks(c.openai(stream).await).await;
        let up = c.upstream();
        assert_eq!(up["stream"], true);
        assert_eq!(up["tool_choice"], json!({"type": "tool", "name": tool}));
        let (text, finish) = streamed(&chunks);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), placeholder_answer(), "{chunks:?}");
        let deltas =
            chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(deltas.count() > 1, "the JSON arrives in pieces: {chunks:?}");
        assert!(!chunks.iter().any(|c| c["choices"][0]["delta"].get("tool_calls").is_some()), "{chunks:?}");
        assert_eq!(finish, [json!("stop")]);
        assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn json_schema_with_the_requests_own_tools_keeps_them() {
    let c = ctx().await;
    let body = |text: &str| {
        json!({"model": CLAUDE, "messages": ask(text), "tools": tools_openai(),
            "response_format": json_schema_format(Some("weather_report"))})
    };

    // The model may call the request's tools, or answer through the response tool: `any` of them.
    let v: Value = c.openai(body("call tool lookup rain in Oslo")).await.json().await.unwrap();
    let up = c.upstream();
    assert_eq!(upstream_tool_names(&up), ["search_kb", "lookup", "weather_report"]);
    assert_eq!(up["tool_choice"], json!({"type": "any"}));
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "lookup", "{v}");
    assert_eq!(msg["tool_calls"].as_array().unwrap().len(), 1);
    assert!(msg["content"].is_null());
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    // The tool result comes back; the model answers through the response tool.
    let mut next = body("unused");
    next["messages"] = json!([
        {"role": "user", "content": "call tool lookup rain in Oslo"},
        {"role": "assistant", "content": null, "tool_calls": msg["tool_calls"]},
        {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "light rain"}
    ]);
    let v: Value = c.openai(next.clone()).await.json().await.unwrap();
    assert_eq!(c.upstream()["messages"][2]["content"][0]["type"], "tool_result");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(serde_json::from_str::<Value>(content).unwrap(), placeholder_answer());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    next["stream"] = json!(true);
    let (text, finish) = streamed(&openai_chunks(c.openai(next).await).await);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), placeholder_answer());
    assert_eq!(finish, [json!("stop")]);

    // `tool_choice: "none"`: only the answer, forced.
    let mut none = body("hello");
    none["tool_choice"] = json!("none");
    let v: Value = c.openai(none).await.json().await.unwrap();
    assert_eq!(c.upstream()["tool_choice"], json!({"type": "tool", "name": "weather_report"}));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|t| t.starts_with('{')), "{v}");

    // A turn that must call the request's tools is a tool call: no response tool on it.
    for (choice, anthropic) in [
        (json!("required"), json!({"type": "any"})),
        (json!({"type": "function", "function": {"name": "lookup"}}), json!({"type": "tool", "name": "lookup"})),
    ] {
        let mut b = body("call tool lookup rain");
        b["tool_choice"] = choice.clone();
        let v: Value = c.openai(b).await.json().await.unwrap();
        let up = c.upstream();
        assert_eq!(upstream_tool_names(&up), ["search_kb", "lookup"], "{choice}");
        assert_eq!(up["tool_choice"], anthropic);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{choice}: {v}");
    }

    // The schema's name may not be one of the request's tools.
    let mut clash = body("hello");
    clash["response_format"] = json_schema_format(Some("lookup"));
    let before = c.upstream_requests();
    let r = c.openai(clash).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("lookup"), "{v}");
    assert_eq!(c.upstream_requests(), before, "nothing was sent");
}

#[tokio::test]
async fn json_object_on_claude_is_a_system_instruction() {
    let c = ctx().await;
    let body = json!({"model": CLAUDE, "messages": ask("Weather?"), "response_format": {"type": "json_object"}});
    let r = c.openai(body.clone()).await;
    assert_eq!(r.status(), 200);
    let up = c.upstream();
    assert_eq!(up["system"], format!("Be Mara.\n\n{JSON_OBJECT_INSTRUCTION}"));
    assert!(up.get("tools").is_none() && up.get("tool_choice").is_none(), "no tool for json_object: {up}");
    assert!(up.get("response_format").is_none());
    // Without a system prompt of its own, the instruction is the system prompt.
    let mut bare = body.clone();
    bare["messages"] = json!([{"role": "user", "content": "Weather?"}]);
    let mut streamed_body = bare.clone();
    streamed_body["stream"] = json!(true);
    assert_eq!(c.openai(streamed_body).await.status(), 200);
    assert_eq!(c.upstream()["system"], JSON_OBJECT_INSTRUCTION);

    // `text` changes nothing.
    bare["response_format"] = json!({"type": "text"});
    assert_eq!(c.openai(bare).await.status(), 200);
    let up = c.upstream();
    assert!(up.get("system").is_none() && up.get("tools").is_none(), "{up}");

    // GPT models get `response_format` as sent, whichever type.
    for rf in [json!({"type": "json_object"}), json_schema_format(Some("weather_report"))] {
        let r = c.openai(json!({"model": GPT, "messages": ask("Weather?"), "response_format": rf})).await;
        assert_eq!(r.status(), 200);
        let up = c.upstream();
        assert_eq!(up["response_format"], rf);
        assert_eq!(up["messages"][0]["content"], "Be Mara.", "no instruction added for OpenAI: {up}");
        assert!(up.get("tools").is_none());
    }
}

#[tokio::test]
async fn bad_response_formats_are_refused_in_openais_shape() {
    let c = ctx().await;
    for model in [CLAUDE, GPT] {
        for (bad, needle) in [
            (json!({"type": "xml"}), "`xml` is not supported"),
            (json!({"type": "json_schema"}), "json_schema"),
            (json!({"type": "json_schema", "json_schema": {"name": "w"}}), "schema"),
            (
                json!({"type": "json_schema", "json_schema": {"name": "w", "schema": "{\"type\": \"object\"}"}}),
                "schema",
            ),
            (json!({"type": "json_schema", "json_schema": {"name": "no spaces", "schema": {}}}), "name"),
            (json!({"json_schema": {"schema": {}}}), "type"),
            (json!("json_object"), "response_format"),
        ] {
            let before = c.upstream_requests();
            let r = c.openai(json!({"model": model, "messages": ask("x"), "response_format": bad})).await;
            assert_eq!(r.status(), 400, "{model} {bad}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            assert!(v["error"]["param"].is_null() && v["error"].get("code").is_some(), "OpenAI's error shape: {v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(needle) && msg.contains("response_format"), "{bad}: {msg}");
            assert_eq!(c.upstream_requests(), before, "{model} {bad}: refused before any upstream call");
        }
    }
    // A schema whose root is not an object cannot be a Claude tool's input: refused for Claude, passed
    // on to GPT models.
    let array = json!({"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array", "items": {"type": "string"}}}});
    let r = c.openai(json!({"model": CLAUDE, "messages": ask("x"), "response_format": array})).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("root"), "{v}");
    let mut streamed = json!({"model": CLAUDE, "messages": ask("x"), "response_format": array, "stream": true});
    assert_eq!(c.openai(streamed.clone()).await.status(), 400);
    streamed["model"] = json!(GPT);
    assert_eq!(c.openai(streamed).await.status(), 200);
    assert_eq!(c.upstream()["response_format"], array);
}

#[tokio::test]
async fn a_failed_tool_result_reaches_gpt_as_error_text() {
    let c = ctx().await;
    let body = |result: Value| {
        json!({"model": GPT, "max_tokens": 100, "messages": [
            {"role": "user", "content": "Weather in Atlantis?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "wx", "input": {"city": "Atlantis"}}]},
            {"role": "user", "content": [result]}
        ], "tools": [{"name": "wx", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]})
    };
    let failed = json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
        "content": [{"type": "text", "text": "no such city"}]});
    let r = c.anthropic(body(failed.clone())).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let up = c.upstream();
    let tool_msg = up["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(tool_msg, json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Error: no such city"}));
    assert!(up.get("is_error").is_none());
    // The mock echoes the tool result it saw.
    assert_eq!(v["content"][0]["text"], "Tool result received: Error: no such city");

    // Streamed the same way.
    let mut streamed = body(failed);
    streamed["stream"] = json!(true);
    assert_eq!(c.anthropic(streamed).await.status(), 200);
    assert_eq!(c.upstream()["messages"][2]["content"], "Error: no such city");

    // A successful result (or `is_error: false`) is unchanged.
    let ok = json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": false, "content": "fog"});
    assert_eq!(c.anthropic(body(ok)).await.status(), 200);
    assert_eq!(c.upstream()["messages"][2]["content"], "fog");

    // A non-boolean flag is refused in Anthropic's shape.
    let bad = json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": "yes", "content": "fog"});
    let r = c.anthropic(body(bad)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("is_error"), "{v}");
}
