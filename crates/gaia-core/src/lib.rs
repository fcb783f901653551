//! # gaia-core
//!
//! Shared foundation of Gaia: provider-neutral chat types, configuration, storage (SQLite or PostgreSQL
//! through sqlx), caching (in-process or Redis), authentication primitives (API keys, JWT, passwords) and
//! an event bus.
//!
//! ```
//! use gaia_core::auth::{hash_password, verify_password, Authenticator, JwtKeys};
//! use gaia_core::cache::MemoryCache;
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
//!
//! let conv = storage.create_conversation(&user.id, Some("First Light"), None).await?;
//! storage.add_message(&conv.id, Role::User, "Where is the safe house?", None, None).await?;
//! storage.add_message(&conv.id, Role::Assistant, "Fifth Street.", Some("gpt-4o-mini"),
//!     Some(Usage { input_tokens: 12, output_tokens: 3 })).await?;
//! assert_eq!(storage.list_messages(&conv.id).await?.len(), 2);
//!
//! auth.revoke_api_key(&record.id).await?;
//! assert!(auth.authenticate_api_key(&key).await.is_err());
//! # let _ = ChatMessage::user("x");
//! # Ok::<(), gaia_core::CoreError>(())
//! # }).unwrap();
//! ```

pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod events;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod usage;

pub use config::Config;
pub use error::{CoreError, Result};
