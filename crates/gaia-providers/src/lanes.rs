//! Connection lanes: the HTTP clients of one provider, each with a connection pool of its own, so
//! that no more than [`STREAMS_PER_LANE`] calls share one HTTP/2 connection.
//!
//! An HTTP/2 client multiplexes every request to an origin onto one connection and, once the server's
//! limit of concurrent streams is reached (commonly 100 to 256), it queues further requests instead
//! of opening another connection (RFC 9113, section 9.1, asks clients not to). A gateway holding
//! thousands of long streams to one provider would keep all but the first hundred or so waiting in
//! that queue. Lanes put at most [`STREAMS_PER_LANE`] calls in flight on each client and add clients
//! as needed (at most [`MAX_LANES`]). Over HTTP/1.1 every call has a connection of its own anyway, and
//! lanes only split the pool. A lane is chosen lowest first, so light traffic stays on the first
//! lane's warm connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most calls in flight on one lane (one HTTP/2 connection): below the limit of concurrent streams
/// servers usually announce.
pub(crate) const STREAMS_PER_LANE: usize = 96;

/// Most lanes of one provider (past that, calls share the least busy lane).
pub(crate) const MAX_LANES: usize = 1024;

/// How a provider's HTTP clients are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    /// Speak HTTP/2 without TLS from the first byte (h2c with prior knowledge).
    pub(crate) http2_prior_knowledge: bool,
}

struct Lane {
    client: reqwest::Client,
    busy: Arc<AtomicUsize>,
}

/// The lanes of one provider.
pub(crate) struct Lanes {
    settings: ClientSettings,
    lanes: Mutex<Vec<Lane>>,
    /// The first lane's client, for calls not counted (model lists, probes).
    first: reqwest::Client,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").field("settings", &self.settings).field("lanes", &self.len()).finish()
    }
}

/// A call's place in a lane, given back when dropped (keep it until the call's body has been read).
#[derive(Debug)]
pub(crate) struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lanes {
    /// One lane, built with `settings`.
    pub(crate) fn new(settings: ClientSettings) -> Self {
        let first = crate::http::client(settings);
        let lane = Lane { client: first.clone(), busy: Arc::default() };
        Lanes { settings, lanes: Mutex::new(vec![lane]), first }
    }

    /// A client for one call, and the ticket that holds its place until dropped.
    pub(crate) fn client(&self) -> (reqwest::Client, Ticket) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let free = lanes.iter().position(|l| l.busy.load(Ordering::Relaxed) < STREAMS_PER_LANE);
        let i = match free {
            Some(i) => i,
            None if lanes.len() < MAX_LANES => {
                lanes.push(Lane { client: crate::http::client(self.settings), busy: Arc::default() });
                lanes.len() - 1
            }
            None => {
                let least = lanes.iter().enumerate().min_by_key(|(_, l)| l.busy.load(Ordering::Relaxed));
                least.map(|(i, _)| i).unwrap_or(0)
            }
        };
        let lane = &lanes[i];
        lane.busy.fetch_add(1, Ordering::Relaxed);
        (lane.client.clone(), Ticket(lane.busy.clone()))
    }

    /// The first lane's client, for a call not counted in any lane.
    pub(crate) fn any(&self) -> &reqwest::Client {
        &self.first
    }

    /// Number of lanes.
    pub(crate) fn len(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Calls in flight, over all lanes.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|l| l.busy.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_spread_over_lanes_and_give_their_place_back() {
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            http2_prior_knowledge: false,
        };
        let lanes = Lanes::new(settings);
        let held: Vec<Ticket> = (0..STREAMS_PER_LANE * 2 + 1).map(|_| lanes.client().1).collect();
        assert_eq!(lanes.len(), 3, "a lane is added each time the others are full");
        assert_eq!(lanes.in_flight(), held.len());
        drop(held);
        assert_eq!(lanes.in_flight(), 0);
        // Light traffic goes back to the first lane.
        let (_, t) = lanes.client();
        assert_eq!(lanes.lanes.lock().unwrap()[0].busy.load(Ordering::Relaxed), 1);
        drop(t);
        assert_eq!(lanes.len(), 3, "lanes are kept (their idle connections close on their own)");
    }

    /// Streams over HTTP/2 to the mock (h2c): each lane is one connection, and more streams than a
    /// lane holds are all under way at once, spread over lanes, none waiting for another to end.
    #[tokio::test]
    async fn concurrent_streams_over_http2_spread_over_lanes() {
        use crate::mock::{MockConfig, MockUpstream};
        use crate::{OpenAiConfig, OpenAiProvider, Provider};
        use futures::StreamExt;
        let mock = MockUpstream::start(
            "127.0.0.1:0".parse().unwrap(),
            MockConfig { chunk_delay: Duration::from_millis(20), ..Default::default() },
        )
        .await
        .unwrap();
        let mut cfg = OpenAiConfig::new(mock.openai_base_url(), None);
        cfg.models = vec!["mock-gpt".into()];
        cfg.http2_prior_knowledge = true;
        let provider = std::sync::Arc::new(OpenAiProvider::new(cfg));
        let n = STREAMS_PER_LANE * 2 + 10;
        let req = crate::ChatRequest::new("mock-gpt", vec![gaia_core::types::ChatMessage::user("hi")]);
        // Every stream is opened and has produced its first event before any is read further.
        let mut open = Vec::new();
        for _ in 0..n {
            let mut s = provider.chat_stream(&req).await.unwrap();
            assert!(s.next().await.unwrap().is_ok());
            open.push(s);
        }
        assert_eq!(provider.lanes().len(), 3);
        assert_eq!(provider.lanes().in_flight(), n);
        let ends = futures::future::join_all(open.into_iter().map(|s| s.collect::<Vec<_>>())).await;
        assert!(ends.iter().all(|events| events.iter().all(Result::is_ok)));
        assert_eq!(provider.lanes().in_flight(), 0, "every stream gave its place back");
    }
}
