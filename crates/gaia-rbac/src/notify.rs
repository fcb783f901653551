//! Immediate cross-instance invalidation through Redis pub/sub: every change is announced on the
//! channel [`CHANNEL`], and every instance listening reloads its policy at once (the database poll of
//! [`Rbac::spawn_refresh`](crate::Rbac::spawn_refresh) remains the safety net when a message is lost).

use crate::engine::Rbac;
use crate::error::{RbacError, Result};
use futures::StreamExt;
use std::time::Duration;

/// The Redis channel policy changes are announced on.
pub const CHANNEL: &str = "gaia:rbac:changed";

/// Publishes change announcements.
#[derive(Clone)]
pub(crate) struct Publisher {
    conn: redis::aio::ConnectionManager,
}

impl Publisher {
    pub(crate) async fn announce(&self, version: i64) {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<i64> = redis::cmd("PUBLISH").arg(CHANNEL).arg(version).query_async(&mut c).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot announce an RBAC change on Redis; other instances will poll");
        }
    }
}

fn redis_error(e: redis::RedisError) -> RbacError {
    RbacError::Storage(gaia_core::CoreError::Config(format!("redis: {e}")))
}

impl Rbac {
    /// Announces this engine's changes on Redis and reloads when another instance announces one.
    /// The listener reconnects on its own; it ends when every clone of this engine is dropped.
    pub async fn connect_redis(&self, url: &str) -> Result<tokio::task::JoinHandle<()>> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let conn = redis::aio::ConnectionManager::new(client.clone()).await.map_err(redis_error)?;
        self.set_publisher(Publisher { conn });
        // Subscribe before returning, so no announcement made after this call is missed.
        let mut pubsub = client.get_async_pubsub().await.map_err(redis_error)?;
        pubsub.subscribe(CHANNEL).await.map_err(redis_error)?;
        let weak = self.downgrade();
        Ok(tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(mut ps) = pubsub.take() {
                    let mut messages = ps.on_message();
                    while messages.next().await.is_some() {
                        let Some(rbac) = Rbac::upgrade(&weak) else { return };
                        if let Err(e) = rbac.refresh().await {
                            tracing::warn!(error = %e, "cannot reload the RBAC policy after an announcement");
                        }
                    }
                }
                // Disconnected: retry, then reload in case announcements were missed meanwhile.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(rbac) = Rbac::upgrade(&weak) else { return };
                match client.get_async_pubsub().await {
                    Ok(mut ps) => {
                        if ps.subscribe(CHANNEL).await.is_ok() {
                            pubsub = Some(ps);
                            let _ = rbac.refresh().await;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "RBAC listener: Redis still unreachable"),
                }
            }
        }))
    }
}
