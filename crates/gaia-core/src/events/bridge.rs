//! Bridges from the in-process bus to a broker, so events cross instances: Redis pub/sub
//! ([`EventBus::connect_redis`]) or NATS ([`EventBus::connect_nats`], feature `nats`).

use super::{Envelope, EventBus};
use crate::config::redact_url;
use futures::StreamExt;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::mpsc;

/// A bridge could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The broker's URL is invalid or the broker is unreachable.
    #[error("event bus: cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// This bus is already bridged.
    #[error("event bus: already connected to {0}")]
    AlreadyConnected(&'static str),
}

impl From<BridgeError> for crate::CoreError {
    fn from(e: BridgeError) -> Self {
        crate::CoreError::Config(e.to_string())
    }
}

/// Connects `bus` to Redis pub/sub on `channel` (see [`EventBus::connect_redis`]).
pub async fn connect_redis(bus: &EventBus, url: &str, channel: &str) -> Result<(), BridgeError> {
    bus.connect_redis(url, channel).await
}

/// Connects `bus` to NATS on `subject` (see [`EventBus::connect_nats`]).
#[cfg(feature = "nats")]
pub async fn connect_nats(bus: &EventBus, url: &str, subject: &str) -> Result<(), BridgeError> {
    bus.connect_nats(url, subject).await
}

fn connect_error(url: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Connect { url: redact_url(url), message: e.to_string() }
}

impl EventBus {
    /// Forwards this bus's events to Redis channel `channel` and delivers the events other instances
    /// publish there. Subscribes before returning, so nothing published afterwards is missed. The
    /// connections come back on their own after Redis restarts (events published meanwhile are lost);
    /// the background tasks end when every clone of the bus is dropped.
    pub async fn connect_redis(&self, url: &str, channel: &str) -> Result<(), BridgeError> {
        if let Some(kind) = self.shared.kind.get() {
            return Err(BridgeError::AlreadyConnected(kind));
        }
        let client = redis::Client::open(url).map_err(|e| connect_error(url, e))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), cfg)
            .await
            .map_err(|e| connect_error(url, e))?;
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| connect_error(url, e))?;
        pubsub.subscribe(channel).await.map_err(|e| connect_error(url, e))?;
        let rx = self.attach("redis").ok_or(BridgeError::AlreadyConnected("redis"))?;
        tokio::spawn(redis_publisher(conn, channel.to_string(), rx, std::sync::Arc::downgrade(&self.shared)));
        let weak = std::sync::Arc::downgrade(&self.shared);
        let tx = self.tx.clone();
        let channel = channel.to_string();
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(mut ps) = pubsub.take() {
                    let mut messages = ps.on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(bus) = upgrade(&weak, &tx) else { return };
                        match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                            Ok(env) => bus.deliver_remote(env),
                            Err(e) => tracing::debug!(error = %e, "event bus: ignoring a malformed message"),
                        }
                    }
                }
                tracing::warn!("event bus: lost the Redis subscription; reconnecting");
                if let Some(shared) = weak.upgrade() {
                    shared.set_receiving(false);
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if upgrade(&weak, &tx).is_none() {
                        return;
                    }
                    match client.get_async_pubsub().await {
                        Ok(mut ps) => {
                            if ps.subscribe(&channel).await.is_ok() {
                                tracing::info!("event bus: Redis subscription restored");
                                if let Some(shared) = weak.upgrade() {
                                    shared.set_receiving(true);
                                }
                                pubsub = Some(ps);
                                break;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "event bus: Redis still unreachable"),
                    }
                }
            }
        });
        Ok(())
    }

    /// Forwards this bus's events to NATS subject `subject` and delivers the events other instances
    /// publish there (the NATS client reconnects on its own).
    #[cfg(feature = "nats")]
    pub async fn connect_nats(&self, url: &str, subject: &str) -> Result<(), BridgeError> {
        if let Some(kind) = self.shared.kind.get() {
            return Err(BridgeError::AlreadyConnected(kind));
        }
        // The client reconnects on its own; its connection state is what readiness reports.
        let link = std::sync::Arc::downgrade(&self.shared);
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                if let Some(shared) = link.upgrade() {
                    match event {
                        async_nats::Event::Connected => {
                            shared.set_receiving(true);
                            shared.set_sending(true);
                        }
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            shared.set_receiving(false);
                            shared.set_sending(false);
                        }
                        _ => {}
                    }
                }
                async {}
            })
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .map_err(|e| connect_error(url, e))?;
        let mut sub = client.subscribe(subject.to_string()).await.map_err(|e| connect_error(url, e))?;
        // `subscribe` and `flush` only write to the socket. A message of our own sent through the
        // server and back proves the subscription is in place (the server handles a connection's
        // commands in order) before this instance counts as connected: other instances' events are not
        // missed in between.
        let probe = format!("_GAIA.ready.{}", uuid::Uuid::new_v4().simple());
        let mut ready = client.subscribe(probe.clone()).await.map_err(|e| connect_error(url, e))?;
        client.publish(probe, "".into()).await.map_err(|e| connect_error(url, e))?;
        match tokio::time::timeout(Duration::from_secs(5), ready.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(connect_error(url, "the connection closed while subscribing")),
            Err(_) => return Err(connect_error(url, "the server did not confirm the subscription within 5 s")),
        }
        let _ = ready.unsubscribe().await;
        let mut rx = self.attach("nats").ok_or(BridgeError::AlreadyConnected("nats"))?;
        let publisher = client.clone();
        let subj = subject.to_string();
        tokio::spawn(async move {
            while let Some(env) = rx.recv().await {
                let Ok(bytes) = serde_json::to_vec(&env) else { continue };
                if let Err(e) = publisher.publish(subj.clone(), bytes.into()).await {
                    tracing::debug!(error = %e, "event bus: cannot publish to NATS");
                }
            }
        });
        let weak = std::sync::Arc::downgrade(&self.shared);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(bus) = upgrade(&weak, &tx) else { return };
                match serde_json::from_slice::<Envelope>(&msg.payload) {
                    Ok(env) => bus.deliver_remote(env),
                    Err(e) => tracing::debug!(error = %e, "event bus: ignoring a malformed message"),
                }
            }
        });
        Ok(())
    }
}

/// The bus again, while any clone of it is alive.
fn upgrade(weak: &Weak<super::Shared>, tx: &tokio::sync::broadcast::Sender<super::Event>) -> Option<EventBus> {
    weak.upgrade().map(|shared| EventBus { tx: tx.clone(), shared })
}

/// How often a publisher whose last `PUBLISH` failed checks Redis again (with `PING`), so that its
/// readiness comes back with Redis even when no event is published meanwhile.
const RECHECK: Duration = Duration::from_secs(2);

async fn redis_publisher(
    mut conn: redis::aio::ConnectionManager,
    channel: String,
    mut rx: mpsc::Receiver<Envelope>,
    shared: Weak<super::Shared>,
) {
    let mut healthy = true;
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        let r: redis::RedisResult<()> = tokio::select! {
            env = rx.recv() => {
                let Some(env) = env else { return };
                let Ok(bytes) = serde_json::to_vec(&env) else { continue };
                redis::cmd("PUBLISH").arg(&channel).arg(bytes).query_async::<i64>(&mut conn).await.map(|_| ())
            }
            _ = recheck.tick(), if !healthy => redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()),
        };
        if let Some(shared) = shared.upgrade() {
            shared.set_sending(r.is_ok());
        }
        match r {
            Ok(()) if !healthy => {
                healthy = true;
                tracing::info!("event bus: publishing to Redis again");
            }
            Ok(()) => {}
            Err(e) if healthy => {
                healthy = false;
                recheck.reset();
                tracing::warn!(error = %e, "event bus: cannot publish to Redis; events are not reaching other instances");
            }
            Err(_) => {}
        }
    }
}
