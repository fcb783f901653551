//! # gaia-world
//!
//! Game worlds ("experiences") for location-based games: content written by designers in the
//! knowledge-base vault (`experiences/<exp>/…`), live world state held in the database, commands, NPCs.
//! The formats follow Gaia's experience specification (content written for Gaia's existing
//! experience engine loads unchanged).

#![warn(missing_docs)]

mod admin;
pub mod command;
pub mod content;
mod engine;
mod error;
mod places;
mod quests;
mod rules;
mod state;
mod talk;
pub mod tools;

pub use command::{Action, CommandResult, StateChange};
pub use engine::{distance_m, Caller, PlayerView, WeakWorlds, Worlds};
pub use error::{Result, WorldError};
pub use rules::{NARRATIVE_ENDPOINT, RULES_ENDPOINT};
pub use state::{PlayerState, Relationship};
pub use talk::TALK_ENDPOINT;
