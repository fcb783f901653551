//! Server-Sent Events responses that write every event already available in one body frame.
//!
//! A model's answer often arrives from the provider in bursts: several events parsed out of one read.
//! Writing each as its own frame costs a `writev` and a flush per event; here the events that are
//! ready together are framed together (nothing waits for more), and an idle stream gets a
//! keep-alive comment so that proxies do not time it out.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;

/// How long a stream may stay silent before a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Most events framed together.
const MAX_BATCH: usize = 64;

/// One serialised event.
#[derive(Debug, Clone)]
pub struct SseEvent(Vec<u8>);

impl SseEvent {
    /// An unnamed event (`data: ...`).
    pub fn data(data: &str) -> SseEvent {
        SseEvent::build(None, data)
    }

    /// A named event (`event: NAME`, then `data: ...`).
    pub fn named(name: &str, data: &str) -> SseEvent {
        SseEvent::build(Some(name), data)
    }

    fn build(name: Option<&str>, data: &str) -> SseEvent {
        let mut out = Vec::with_capacity(data.len() + 16 + name.map_or(0, str::len));
        if let Some(n) = name {
            out.extend_from_slice(b"event: ");
            // Line breaks would end the field: event names never contain them, drop any.
            out.extend(n.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
            out.push(b'\n');
        }
        // Each line of the data is a `data:` field; the client joins them with `\n`.
        for line in data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        SseEvent(out)
    }

    /// The event as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A `text/event-stream` response of `events`.
pub fn response<S>(events: S) -> Response
where
    S: Stream<Item = SseEvent> + Send + 'static,
{
    let frames = async_stream::stream! {
        let mut batches = std::pin::pin!(events.ready_chunks(MAX_BATCH));
        loop {
            match tokio::time::timeout(KEEP_ALIVE, batches.next()).await {
                Ok(Some(batch)) => {
                    let frame = if batch.len() == 1 {
                        batch.into_iter().next().map(|e| e.0).unwrap_or_default()
                    } else {
                        let mut buf = Vec::with_capacity(batch.iter().map(|e| e.0.len()).sum());
                        for e in &batch {
                            buf.extend_from_slice(&e.0);
                        }
                        buf
                    };
                    yield Ok::<_, Infallible>(Bytes::from(frame));
                }
                Ok(None) => break,
                Err(_) => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    };
    let mut resp = Body::from_stream(frames).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_as_the_spec_says() {
        assert_eq!(SseEvent::data("{\"a\":1}").as_bytes(), b"data: {\"a\":1}\n\n");
        assert_eq!(SseEvent::named("ping", "{}").as_bytes(), b"event: ping\ndata: {}\n\n");
        assert_eq!(SseEvent::data("one\r\ntwo").as_bytes(), b"data: one\ndata: two\n\n");
        assert_eq!(SseEvent::named("a\nb", "x").as_bytes(), b"event: ab\ndata: x\n\n");
    }

    #[tokio::test]
    async fn ready_events_share_a_frame_and_the_body_is_complete() {
        let events = futures::stream::iter(vec![SseEvent::data("1"), SseEvent::data("2"), SseEvent::data("[DONE]")]);
        let resp = response(events);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = resp.into_body().into_data_stream();
        let mut frames = Vec::new();
        while let Some(f) = body.next().await {
            frames.push(f.unwrap());
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0][..], b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
    }
}
