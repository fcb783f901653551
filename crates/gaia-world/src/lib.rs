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
pub mod geo;
mod memory;
mod npc;
mod places;
mod quests;
mod rules;
mod scene;
mod state;
mod talk;
pub mod tools;
mod view;

pub use command::{commands_schema, Action, CommandResult, CommandSpec, StateChange, FAST_COMMANDS};
pub use engine::{distance_m, Caller, PlayerView, SpeechSink, WeakWorlds, Worlds};
pub use error::{Result, WorldError};
pub use memory::{NpcMemory, MAX_MEMORIES, MEMORY_ENDPOINT, PROMPT_MEMORIES};
pub use rules::{NARRATIVE_ENDPOINT, RULES_ENDPOINT};
pub use scene::SCENE_ENDPOINT;
pub use state::{GoalState, MindState, PlayerState, Relationship};
pub use talk::TALK_ENDPOINT;
pub use view::{AreaOfInterest, Located};
