//! Game-world tools for the conversation engine (tool source `world`, offered to chat personas that
//! name it): an NPC or game-master persona in chat acts on the same world the game client sees, as the
//! player it talks with, in the experiences that player may play.
//!
//! - `interact_with_experience {experience, action, instance_id?, destination?, target_npc_id?,
//!   quest_id?}`: a fast command (`look`, `go`, `collect_item`, …) as the player; the command's result.
//! - `get_player_inventory {experience}`: what the player carries.
//! - `check_quest_state {experience}`: the player's quests and stats, and the quests the world
//!   declares (what each requires and gives).
//! - `grant_quest_reward {experience, quest_id}`: completes one of the player's active quests and gives
//!   its rewards, once, and only when the game finds what the quest requires (the model's word is not
//!   enough: a player cannot talk an NPC into a reward).
//!
//! Tools never run model commands (`talk`, rules commands) or `@` commands: the chat turn is already
//! the model's, and administration is not a chat persona's.

use crate::command::Action;
use crate::engine::{Caller, Worlds};
use async_trait::async_trait;
use gaia_core::types::ToolSpec;
use gaia_mcp::{McpError, ToolSource};
use serde_json::{json, Value};

/// The tool source's name, as personas name it in `tools`.
pub const WORLD_SOURCE: &str = "world";

/// The game-world tools of one player.
pub struct WorldTools {
    worlds: Worlds,
    user_id: String,
    /// The experiences the player may play.
    experiences: Vec<String>,
}

impl WorldTools {
    /// Tools acting as `user_id` in `experiences` (those they may play; others are refused).
    pub fn new(worlds: Worlds, user_id: impl Into<String>, experiences: Vec<String>) -> Self {
        WorldTools { worlds, user_id: user_id.into(), experiences }
    }

    fn experience(&self, tool: &str, args: &Value) -> Result<String, McpError> {
        let exp = args.get("experience").and_then(Value::as_str).unwrap_or_default();
        if self.experiences.iter().any(|e| e == exp) {
            Ok(exp.to_string())
        } else {
            Err(McpError::Tool {
                tool: tool.into(),
                message: format!("no experience `{exp}` here; known: {}", self.experiences.join(", ")),
            })
        }
    }
}

#[async_trait]
impl ToolSource for WorldTools {
    fn name(&self) -> &str {
        WORLD_SOURCE
    }

    async fn specs(&self) -> gaia_mcp::Result<Vec<ToolSpec>> {
        let exp = json!({"type": "string", "description": "The experience (game world) id", "enum": self.experiences});
        let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: Some(description.into()),
            parameters: parameters.into(),
        };
        Ok(vec![
            spec(
                "interact_with_experience",
                "Do something in the game world as the player: look, go (destination), collect_item, drop_item, \
                 examine, use_item (instance_id), inventory, give_item (instance_id, target_npc_id), accept_quest \
                 (quest_id), complete_quest (quest_id), or simple text such as `pick up the medkit`.",
                json!({"type": "object", "properties": {
                    "experience": exp, "action": {"type": "string", "maxLength": 1000},
                    "instance_id": {"type": "string"}, "destination": {"type": "string"},
                    "target_npc_id": {"type": "string"}, "quest_id": {"type": "string"}
                }, "required": ["experience", "action"]}),
            ),
            spec(
                "get_player_inventory",
                "What the player carries in the game world.",
                json!({"type": "object", "properties": {"experience": exp}, "required": ["experience"]}),
            ),
            spec(
                "check_quest_state",
                "The player's quests, stats and place in the game world, and the quests the world offers \
                 (what each requires and gives).",
                json!({"type": "object", "properties": {"experience": exp.clone()}, "required": ["experience"]}),
            ),
            spec(
                "grant_quest_reward",
                "Complete one of the player's active quests and give its rewards. The game checks what the \
                 quest requires (items carried, place) and refuses when it is not met; a quest is rewarded once.",
                json!({"type": "object", "properties": {
                    "experience": exp, "quest_id": {"type": "string", "maxLength": 128}
                }, "required": ["experience", "quest_id"]}),
            ),
        ])
    }

    async fn call(&self, tool: &str, arguments: &str) -> gaia_mcp::Result<String> {
        let args = gaia_mcp::toolbox::parse_arguments(tool, arguments)?;
        let fail = |e: crate::WorldError| McpError::Tool { tool: tool.into(), message: e.to_string() };
        let exp = self.experience(tool, &args)?;
        match tool {
            "interact_with_experience" => {
                let mut action: Action = serde_json::from_value(args.clone())
                    .map_err(|e| McpError::Tool { tool: tool.into(), message: format!("bad arguments: {e}") })?;
                action.message = None;
                if action.action.trim_start().starts_with('@') {
                    return Err(McpError::Tool {
                        tool: tool.into(),
                        message: "admin commands are not available here".into(),
                    });
                }
                if Worlds::needs_model(&action) {
                    return Err(McpError::Tool {
                        tool: tool.into(),
                        message:
                            "only the game's fast commands (look, go, collect_item, drop_item, examine, use_item, \
                                  inventory, give_item, accept_quest, complete_quest) are available here"
                                .into(),
                    });
                }
                let r = self.worlds.command(&exp, Caller::player(self.user_id.clone()), &action).await.map_err(fail)?;
                Ok(serde_json::to_string(&r).unwrap_or_default())
            }
            "grant_quest_reward" => {
                let quest = args.get("quest_id").and_then(Value::as_str).unwrap_or_default();
                let action = Action { quest_id: Some(quest.to_string()), ..Action::new("complete_quest") };
                let r = self.worlds.command(&exp, Caller::player(self.user_id.clone()), &action).await.map_err(fail)?;
                Ok(serde_json::to_string(&r).unwrap_or_default())
            }
            "get_player_inventory" | "check_quest_state" => {
                let v = self.worlds.view(&exp, &self.user_id).await.map_err(fail)?;
                let p = &v.player;
                let out = if tool == "get_player_inventory" {
                    json!({"inventory": p["inventory"], "snapshot_version": v.snapshot_version})
                } else {
                    let declared = self.worlds.experience(&exp).map(|e| json!(e.quests)).unwrap_or_default();
                    json!({"quests": p["quests"], "stats": p["stats"], "status_effects": p["status_effects"],
                           "current_location": p["current_location"], "current_area": p["current_area"],
                           "world_quests": declared})
                };
                Ok(out.to_string())
            }
            other => Err(McpError::UnknownTool(other.to_string())),
        }
    }
}
