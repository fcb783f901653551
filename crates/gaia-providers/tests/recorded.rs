//! Parsers against recorded vendor streams (tests as data: `tests/data/*.sse`).

use gaia_core::types::{FinishReason, ToolCall, Usage};
use gaia_providers::anthropic::EventParser;
use gaia_providers::openai::ChunkParser;
use gaia_providers::{collect_stream, ChatEvent, ProviderError};

/// Splits an SSE text into (event, data) pairs.
fn events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut ev = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    ev = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            (ev, data)
        })
        .collect()
}

async fn collect(evs: Vec<ChatEvent>) -> gaia_providers::ChatResponse {
    let s = futures::stream::iter(evs.into_iter().map(Ok::<_, ProviderError>));
    collect_stream(Box::pin(s)).await.unwrap()
}

#[tokio::test]
async fn openai_tool_call_stream() {
    let mut p = ChunkParser::default();
    let mut out = Vec::new();
    for (_, data) in events(include_str!("data/openai_tool_stream.sse")) {
        out.extend(p.push("openai", &data).unwrap());
    }
    assert!(p.is_done());
    let r = collect(out).await;
    assert_eq!(r.id, "chatcmpl-AbC");
    assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(
        r.tool_calls,
        vec![ToolCall { id: "call_qX1".into(), name: "get_weather".into(), arguments: r#"{"city": "Tokyo"}"#.into() }]
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.usage, Usage::new(81, 15));
}

#[tokio::test]
async fn anthropic_tool_call_stream() {
    let mut p = EventParser::default();
    let mut out = Vec::new();
    for (ev, data) in events(include_str!("data/anthropic_tool_stream.sse")) {
        out.extend(p.push("anthropic", &ev, &data).unwrap());
    }
    assert!(p.is_done());
    let r = collect(out).await;
    assert_eq!(r.content, "Okay, checking");
    assert_eq!(
        r.tool_calls,
        vec![ToolCall {
            id: "toolu_01T1x".into(),
            name: "get_weather".into(),
            arguments: r#"{"location": "San Francisco, CA"}"#.into()
        }]
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.usage, Usage::new(472, 89));
}

#[test]
fn malformed_and_error_events_are_errors() {
    let mut p = ChunkParser::default();
    assert!(matches!(p.push("openai", "{not json"), Err(ProviderError::Stream { .. })));
    assert!(matches!(
        p.push("openai", r#"{"error":{"message":"The server had an error"}}"#),
        Err(ProviderError::Stream { ref message, .. }) if message.contains("server had an error")
    ));
    let mut a = EventParser::default();
    assert!(matches!(
        a.push("anthropic", "error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
        Err(ProviderError::Stream { ref message, .. }) if message == "Overloaded"
    ));
    assert!(a.push("anthropic", "ping", r#"{"type":"ping"}"#).unwrap().is_empty());
}
