//! Exact-match response cache for deterministic requests: the same model chain and the same request
//! (messages, tools, settings) give the same answer, served from the in-process cache or Redis for a
//! TTL. A cached answer can be replayed as a stream of events, so streaming clients get a real stream.

use crate::types::{ChatEvent, ChatRequest, ChatResponse, ChatStream};
use gaia_core::cache::SharedCache;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Caches complete answers by a hash of what was asked.
#[derive(Clone)]
pub struct ResponseCache {
    cache: SharedCache,
    ttl: Duration,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("backend", &self.cache.kind()).field("ttl", &self.ttl).finish()
    }
}

/// Whether a request may be answered from the cache: when the client opts in, or when the request is
/// deterministic (temperature 0), unless the client opts out.
pub fn cacheable(req: &ChatRequest, opt: Option<bool>) -> bool {
    match opt {
        Some(v) => v,
        None => req.temperature == Some(0.0),
    }
}

impl ResponseCache {
    /// A cache over `cache` keeping answers for `ttl`.
    pub fn new(cache: SharedCache, ttl: Duration) -> Self {
        ResponseCache { cache, ttl }
    }

    /// The key for `spec` (the model or fallback chain as asked) and `req`.
    pub fn key(spec: &str, req: &ChatRequest) -> String {
        let mut h = Sha256::new();
        h.update(spec.as_bytes());
        h.update([0u8]);
        // ChatRequest serialises deterministically (fixed field order, sorted maps).
        h.update(serde_json::to_vec(req).unwrap_or_default());
        format!("resp:{}", hex::encode(h.finalize()))
    }

    /// A cached answer, if any (cache failures read as a miss).
    pub async fn get(&self, key: &str) -> Option<ChatResponse> {
        match self.cache.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "response cache unavailable");
                None
            }
        }
    }

    /// Stores an answer (failures are logged, never fatal).
    pub async fn put(&self, key: &str, resp: &ChatResponse) {
        if let Ok(bytes) = serde_json::to_vec(resp) {
            if let Err(e) = self.cache.set(key, &bytes, self.ttl).await {
                tracing::warn!(error = %e, "cannot store a cached response");
            }
        }
    }
}

/// Replays a complete answer as the events a provider stream would have produced.
pub fn replay(resp: ChatResponse) -> ChatStream {
    let mut events = vec![ChatEvent::Start { id: resp.id, model: resp.model }];
    if !resp.content.is_empty() {
        events.push(ChatEvent::TextDelta(resp.content));
    }
    for (i, t) in resp.tool_calls.into_iter().enumerate() {
        events.push(ChatEvent::ToolCallDelta {
            index: i as u32,
            id: Some(t.id),
            name: Some(t.name),
            arguments: t.arguments,
        });
    }
    events.push(ChatEvent::Usage(resp.usage));
    events.push(ChatEvent::Finish(resp.finish_reason));
    Box::pin(futures::stream::iter(events.into_iter().map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::collect_stream;
    use gaia_core::cache::MemoryCache;
    use gaia_core::types::{ChatMessage, FinishReason, ToolCall, Usage};
    use std::sync::Arc;

    fn resp() -> ChatResponse {
        ChatResponse {
            id: "r1".into(),
            model: "m".into(),
            content: "hello".into(),
            tool_calls: vec![ToolCall { id: "c".into(), name: "t".into(), arguments: "{}".into() }],
            finish_reason: FinishReason::ToolCalls,
            usage: Usage::new(3, 2),
        }
    }

    #[tokio::test]
    async fn stores_and_replays() {
        let c = ResponseCache::new(Arc::new(MemoryCache::new(10)), Duration::from_secs(60));
        let mut req = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
        let k = ResponseCache::key("openai/m", &req);
        assert_eq!(k, ResponseCache::key("openai/m", &req.clone()), "stable");
        assert_ne!(k, ResponseCache::key("anthropic/m", &req), "the chain is part of the key");
        req.temperature = Some(0.5);
        assert_ne!(k, ResponseCache::key("openai/m", &req), "settings are part of the key");
        assert!(c.get(&k).await.is_none());
        c.put(&k, &resp()).await;
        let got = c.get(&k).await.unwrap();
        assert_eq!(got, resp());
        assert_eq!(collect_stream(replay(got)).await.unwrap(), resp());
    }

    #[test]
    fn the_key_covers_everything_that_changes_the_answer() {
        use gaia_core::types::{ImagePart, ToolSpec};
        use serde_json::json;
        let base = || {
            let mut r = ChatRequest::new("m", vec![ChatMessage::system("be brief"), ChatMessage::user("hi")]);
            r.temperature = Some(0.0);
            r
        };
        type Change = fn(&mut ChatRequest);
        let changes: Vec<(&str, Change)> = vec![
            ("model", |r| r.model = "other".into()),
            ("last message", |r| r.messages[1].content = "hello".into()),
            ("system prompt", |r| r.messages[0].content = "be long".into()),
            ("one more turn", |r| r.messages.push(ChatMessage::user("again"))),
            ("images", |r| r.messages[1].images.push(ImagePart::Url { url: "https://x/y.png".into() })),
            ("tools", |r| {
                r.tools.push(ToolSpec { name: "lookup".into(), description: None, parameters: json!({}).into() })
            }),
            ("tool_choice", |r| r.tool_choice = Some(json!("required"))),
            ("max_tokens", |r| r.max_tokens = Some(5)),
            ("stop", |r| r.stop.push("\n".into())),
            ("temperature", |r| r.temperature = Some(0.5)),
            ("top_p", |r| r.top_p = Some(0.9)),
            ("user", |r| r.user = Some("u1".into())),
            ("response_format", |r| {
                r.extra.insert("response_format".into(), json!({"type": "json_object"}));
            }),
            ("seed", |r| {
                r.extra.insert("seed".into(), json!(7));
            }),
        ];
        let mut keys = std::collections::HashSet::new();
        keys.insert(ResponseCache::key("p/m", &base()));
        for (what, change) in changes {
            let mut r = base();
            change(&mut r);
            assert!(keys.insert(ResponseCache::key("p/m", &r)), "{what} must change the key");
        }
        assert!(keys.insert(ResponseCache::key("p/m,q/m", &base())), "the fallback chain too");
        // The order in which pass-through fields were given does not matter.
        let (mut a, mut b) = (base(), base());
        a.extra.insert("seed".into(), json!(1));
        a.extra.insert("response_format".into(), json!({"type": "json_schema", "json_schema": {"a": 1, "b": 2}}));
        b.extra.insert("response_format".into(), json!({"json_schema": {"b": 2, "a": 1}, "type": "json_schema"}));
        b.extra.insert("seed".into(), json!(1));
        assert_eq!(ResponseCache::key("p/m", &a), ResponseCache::key("p/m", &b));
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let c = ResponseCache::new(Arc::new(MemoryCache::new(10)), Duration::from_millis(200));
        c.put("k", &resp()).await;
        assert!(c.get("k").await.is_some());
        let mut gone = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if c.get("k").await.is_none() {
                gone = true;
                break;
            }
        }
        assert!(gone, "still cached long after the TTL");
    }

    #[test]
    fn what_is_cacheable() {
        let mut req = ChatRequest::new("m", vec![]);
        assert!(!cacheable(&req, None));
        req.temperature = Some(0.0);
        assert!(cacheable(&req, None));
        assert!(!cacheable(&req, Some(false)));
        req.temperature = Some(0.7);
        assert!(cacheable(&req, Some(true)));
    }
}
