//! `[worlds]`: the game client's WebSocket (`/ws/experience`): how positions are trusted, how long a
//! dropped player may resume.

use serde::{Deserialize, Serialize};

/// What a position that cannot be trusted does (`worlds.gps_response`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GpsResponse {
    /// Counted and audited, and used like any other.
    Flag,
    /// Counted and audited, not used (the player stays where they were), and actions that need the
    /// player there (collect, give, talk, completing a quest) are refused until a plausible position
    /// arrives.
    #[default]
    Refuse,
}

/// Game sockets' settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorldsConfig {
    /// Fastest plausible movement between two positions, in metres per second (default 70, about
    /// 250 km/h): faster is a jump that is not trusted.
    pub gps_max_speed_mps: f64,
    /// Worst reported accuracy (`accuracy`, metres) still trusted (default 200).
    pub gps_max_accuracy_m: f64,
    /// What an untrusted position does: `flag` or `refuse` (default).
    pub gps_response: GpsResponse,
    /// Seconds a player whose socket dropped stays present, and may resume with the deltas missed
    /// (default 30).
    pub resume_grace_secs: u64,
    /// Whether NPCs learn facts about each player from their talks (default true: one background
    /// model call after each talk, metered as `world_memory`).
    pub npc_memory: bool,
}

impl Default for WorldsConfig {
    fn default() -> Self {
        WorldsConfig {
            gps_max_speed_mps: 70.0,
            gps_max_accuracy_m: 200.0,
            gps_response: GpsResponse::Refuse,
            resume_grace_secs: 30,
            npc_memory: true,
        }
    }
}

impl WorldsConfig {
    /// Checks the values: positive finite limits.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.gps_max_speed_mps.is_finite() && self.gps_max_speed_mps > 0.0) {
            return Err("key `worlds.gps_max_speed_mps`: must be a positive number".into());
        }
        if !(self.gps_max_accuracy_m.is_finite() && self.gps_max_accuracy_m > 0.0) {
            return Err("key `worlds.gps_max_accuracy_m`: must be a positive number".into());
        }
        if self.resume_grace_secs > 3600 {
            return Err("key `worlds.resume_grace_secs`: at most 3600".into());
        }
        Ok(())
    }
}
