//! # gaia-assets
//!
//! Generated assets for games: images (item icons, textures), speech (NPC voices) and its reverse,
//! transcription (a player speaking), and 3D models (props), made through the provider registry,
//! kept as files in a folder or an S3-compatible bucket ([`AssetStore`]), and accounted for: each
//! generation is admitted against rate limits and hard budgets before any provider is called, metered
//! with its cost at the unit prices in effect (per image by size and quality, per character, per
//! second, per credit), and recorded with what the game charges for it, so reports show cost,
//! revenue and margin ([`Assets::report`]).
//!
//! 3D models are jobs: [`Assets::generate`] answers at once with a `pending` asset, a background task
//! polls the provider, and [`Assets::resume_jobs`] picks pending jobs up again after a restart.
//!
//! ```no_run
//! use gaia_assets::{AssetRequest, AssetStore, Assets};
//! use gaia_core::attribution::Attribution;
//! use gaia_core::storage::AssetKind;
//! # async fn demo(engine: gaia_chat::Engine, principal: gaia_core::auth::Principal) -> Result<(), gaia_assets::AssetError> {
//! let cfg = gaia_core::config::AssetsConfig::default();
//! let assets = Assets::new(engine, AssetStore::from_config(&cfg)?, cfg, b"a 32-byte secret from the server!".to_vec());
//! let req = AssetRequest {
//!     kind: Some(AssetKind::Image),
//!     prompt: "a brass lantern, game icon".into(),
//!     model: Some("openai/gpt-image-1".into()),
//!     ..Default::default()
//! };
//! println!("would cost ${:.4}", assets.estimate(&req).await?.cost_usd);
//! let made = assets.generate(&principal, Attribution::default(), &req).await?;
//! let link = assets.sign_url(&made[0].id, false, Some(600));
//! println!("{} until {}", link.url, link.expires);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod error;
mod jobs;
mod picture;
mod service;
mod sign;
mod store;
pub mod tools;
pub mod visemes;

pub use error::{AssetError, Result};
pub use service::{AssetRequest, Assets, Content, Estimate, SignedUrl, TranscriptionAsk, WeakAssets};
pub use sign::Signer;
pub use store::AssetStore;
