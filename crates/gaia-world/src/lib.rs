//! # gaia-world
//!
//! Game worlds ("experiences") for location-based games: content written by designers in the
//! knowledge-base vault (`experiences/<exp>/…`), live world state held in the database, commands, NPCs.
//! The formats follow Gaia's experience specification (content written for Gaia's existing
//! experience engine loads unchanged).

#![warn(missing_docs)]

pub mod command;
pub mod content;
mod engine;
mod error;
mod state;

pub use command::{Action, CommandResult, StateChange};
pub use engine::{world_of, PlayerView, Worlds};
pub use error::{Result, WorldError};
pub use state::{PlayerState, Relationship};
