//! # gaia-core
//!
//! Shared foundation of Gaia: provider-neutral chat types, configuration, storage (SQLite or PostgreSQL
//! through sqlx), caching (in-process or Redis), authentication primitives (API keys, JWT, passwords),
//! usage recording and an event bus.
//!
//! | Module | What it holds |
//! |---|---|
//! | [`attribution`] | Who a call is for (the end user: a game's player) and its tags, checked and bounded |
//! | [`types`] | Chat messages, roles, tool calls, usage, model descriptions and prices |
//! | [`error`] | [`CoreError`] and [`Result`] |
//! | [`config`] | [`Config`]: defaults ← `gaia.toml` ← `GAIA_*` / vendor environment variables |
//! | [`storage`] | [`Storage`](storage::Storage): users, API keys, refresh tokens, conversations, messages, usage |
//! | [`cache`] | [`Cache`](cache::Cache), [`MemoryCache`](cache::MemoryCache), [`RedisCache`](cache::RedisCache) |
//! | [`auth`] | API keys, argon2 passwords, HS256 JWTs and the cached [`Authenticator`](auth::Authenticator) |
//! | [`usage`] | [`UsageRecorder`](usage::UsageRecorder), writing usage records off the request path |
//! | [`events`] | [`EventBus`](events::EventBus), an in-process broadcast of [`Event`](events::Event)s |
//! | [`retention`] | Data retention: deleting old messages, usage and audit rows, once or in the background |
//! | [`pricing`] | [`PriceBook`](pricing::PriceBook): model prices with the dates they take effect |
//! | [`quota`] | [`Quotas`](quota::Quotas): rate limits and budgets checked before model calls |
//! | [`secrets`] | [`Secrets`](secrets::Secrets): encryption at rest of stored secrets (provider API keys) |
//! | [`ratelimit`] | [`RateLimiter`](ratelimit::RateLimiter): sliding-window limits, in-process or in Redis |
//! | `testing` | (feature `testing`) test databases on SQLite and PostgreSQL, Redis for tests, stand-ins for others' servers (an HTTP listener, an identity provider's key set) |
//!
//! Storage speaks one set of SQL with `$1` placeholders through sqlx's `Any` driver, so the same code
//! and the same embedded migrations run on SQLite (`sqlite://gaia.db`, the default, created on first run)
//! and PostgreSQL (`postgres://…`). Ids are UUID v4 text; times are `DateTime<Utc>` stored as unix
//! milliseconds; flags are 0/1 integers.
//!
//! ```
//! use gaia_core::auth::{hash_password, verify_password, Authenticator, JwtKeys};
//! use gaia_core::cache::MemoryCache;
//! use gaia_core::events::{Event, EventBus};
//! use gaia_core::storage::Storage;
//! use gaia_core::types::{ChatMessage, Role, Usage};
//! use std::{sync::Arc, time::Duration};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let storage = Storage::connect("sqlite::memory:").await?;
//! storage.migrate().await?;
//! let user = storage.create_user("mara@example.com", Some(&hash_password("fog rolls in")?), None).await?;
//!
//! let auth = Authenticator::new(storage.clone(), Arc::new(MemoryCache::new(1000)),
//!     JwtKeys::new(b"a-long-random-secret-for-hs256!!"), Duration::from_secs(60));
//! let (record, key) = auth.create_api_key(&user.id, Some("game server")).await?;
//! assert_eq!(auth.authenticate_api_key(&key).await?.user_id, user.id);
//! assert!(verify_password("fog rolls in", user.password_hash.as_deref().unwrap_or_default()));
//!
//! // A Bearer value is checked as a JWT when it looks like one, else as an API key.
//! let token = auth.jwt().issue(&user.id, Some(&user.email), Duration::from_secs(3600))?;
//! assert_eq!(auth.authenticate_bearer(&token).await?.user_id, user.id);
//!
//! let bus = EventBus::default();
//! let mut events = bus.subscribe();
//! let conv = storage.create_conversation(&user.id, Some("First Light"), None).await?;
//! storage.add_message(&conv.id, Role::User, "Where is the safe house?", None, None).await?;
//! let reply = storage.add_message(&conv.id, Role::Assistant, "Fifth Street.", Some("gpt-4o-mini"),
//!     Some(Usage::new(12, 3))).await?;
//! bus.publish(Event::MessageCreated { conversation_id: conv.id.clone(), message_id: reply.id.clone() });
//! assert_eq!(storage.list_messages(&conv.id).await?.len(), 2);
//! assert!(matches!(events.recv().await, Ok(Event::MessageCreated { .. })));
//!
//! auth.revoke_api_key(&record.id).await?;
//! assert!(auth.authenticate_api_key(&key).await.is_err());
//! # let _ = ChatMessage::user("x");
//! # Ok::<(), gaia_core::CoreError>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

pub mod attribution;
pub mod auth;
pub mod cache;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod kb_area;
pub mod net;
pub mod pricing;
pub mod quota;
pub mod ratelimit;
pub mod retention;
pub mod secrets;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod usage;
pub mod vectors;

pub use config::Config;
pub use error::{CoreError, Result};
