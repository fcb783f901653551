//! Quests (declared in `world.json` under `metadata.quests`, [`crate::content::Quest`]): a player takes
//! one (`accept_quest`) and completes it (`complete_quest`, also offered to chat personas as the
//! `grant_quest_reward` tool). Completion is checked by the game, never taken on a model's word: the
//! quest must be active, the player where it requires, carrying what it requires. The required items
//! handed over, the rewards given and the quest marked completed are one versioned change, so a
//! quest is rewarded once however many times it is asked.

use crate::command::{CommandResult, StateChange};
use crate::engine::{add_stats, display_name, merged, Ctx};
use crate::error::Result;
use crate::npc::{relationship_change, WorldEvent};
use crate::state::{Holder, PlayerState};
use serde_json::{json, Value};

/// A quest's status in the player's view (`quests.<id>.status`).
const ACTIVE: &str = "active";
const COMPLETED: &str = "completed";

impl Ctx<'_> {
    pub(crate) async fn accept_quest(&self, quest: Option<&str>) -> Result<CommandResult> {
        let version = self.seen.version;
        let Some(id) = quest.map(str::trim).filter(|q| !q.is_empty()) else {
            return Ok(CommandResult::fail("Accept which quest?", version));
        };
        let Some(def) = self.exp.quests.get(id) else {
            return Ok(CommandResult::fail(format!("There is no quest {id}."), version));
        };
        let mut c = self.store().begin(self.world).await?;
        let mut p = c.player(self.user_id).await?;
        if p.quests.contains_key(id) {
            drop(c);
            return Ok(CommandResult::fail(format!("You already took the quest {id}."), version));
        }
        let title = if def.name.is_empty() { id } else { def.name.as_str() };
        if let Some(giver) = def.giver.as_deref().filter(|_| !def.requires.relationship.is_empty()) {
            let rel = c.relationship(self.user_id, giver).await?;
            if let Some(why) = rel.unmet(&def.requires.relationship) {
                drop(c);
                let who = crate::engine::npc_name(self.exp, giver);
                return Ok(CommandResult::fail(format!("{who} does not offer you {title} yet ({why})."), version));
            }
        }
        let mut changes = vec![start_quest(&mut p, id)];
        c.set_player_data(self.user_id, &p).await?;
        let reactions = self.react(&mut c, WorldEvent::QuestAccepted { quest: id }).await?;
        changes.extend(reactions.changes);
        let mut r = self.finish(c, format!("You accept the quest: {title}."), changes, None).await?;
        let mut meta = json!({"quest_id": id, "status": ACTIVE, "quest": def});
        if !reactions.speech.is_empty() {
            meta["npc_reactions"] = Value::Array(reactions.speech);
        }
        r.metadata = Some(meta);
        Ok(r)
    }

    pub(crate) async fn complete_quest(&self, quest: Option<&str>) -> Result<CommandResult> {
        let version = self.seen.version;
        let Some(id) = quest.map(str::trim).filter(|q| !q.is_empty()) else {
            return Ok(CommandResult::fail("Complete which quest?", version));
        };
        let Some(def) = self.exp.quests.get(id) else {
            return Ok(CommandResult::fail(format!("There is no quest {id}."), version));
        };
        let title = if def.name.is_empty() { id.to_string() } else { def.name.clone() };
        let mut c = self.store().begin(self.world).await?;
        let mut p = c.player(self.user_id).await?;
        let status = p.quests.get(id).and_then(|q| q.get("status")).and_then(Value::as_str).unwrap_or_default();
        let refusal = match status {
            ACTIVE => None,
            COMPLETED => Some(format!("You already completed {title}.")),
            _ => Some(format!("You have not taken the quest {title} (accept_quest {id}).")),
        };
        let refusal = refusal.or_else(|| match (&def.requires.location, &def.requires.area) {
            (Some(l), _) if *l != p.current_location => {
                Some(format!("{title} is completed at {}.", self.place_name(l)))
            }
            (_, Some(a)) if *a != p.current_area => Some(format!("{title} is completed at {}.", self.place_name(a))),
            _ => None,
        });
        if let Some(why) = refusal {
            drop(c);
            return Ok(CommandResult::fail(why, version));
        }
        // One carried instance per required template.
        let mine = c.items_of(&self.me()).await?;
        let mut taken: Vec<&crate::state::LiveItem> = Vec::new();
        let mut missing = Vec::new();
        for template in &def.requires.items {
            let found = mine.iter().find(|i| {
                i.instance.template_id == *template
                    && !taken.iter().any(|t| t.instance.instance_id == i.instance.instance_id)
            });
            match found {
                Some(i) => taken.push(i),
                None => missing.push(
                    self.exp.item_templates.get(template).map(|t| t.name.clone()).unwrap_or_else(|| template.clone()),
                ),
            }
        }
        if !missing.is_empty() {
            drop(c);
            return Ok(CommandResult::fail(format!("{title} needs: {}.", missing.join(", ")), version));
        }
        let mut changes = Vec::new();
        let mut said = Vec::new();
        if def.consume_items {
            let to = def.giver.clone().map_or(Holder::Gone, Holder::Npc);
            for i in &taken {
                if !c.move_item(&i.instance.instance_id, &i.holder, &to).await? {
                    drop(c);
                    return Ok(CommandResult::fail("You no longer carry what it needs.", self.version().await?));
                }
                changes.push(StateChange::in_inventory("remove", &i.instance, None));
                said.push(format!("you hand over the {}", display_name(self.exp, &i.instance)));
            }
        }
        for template in &def.rewards.items {
            let item = c.spawn(template, &self.me()).await?;
            said.push(format!("you receive the {}", display_name(self.exp, &item)));
            changes.push(StateChange::in_inventory("add", &item, Some(merged(self.exp, &item))));
        }
        if !def.rewards.stats.is_empty() {
            said.extend(add_stats(&mut p.stats, &def.rewards.stats));
            changes.push(StateChange::of_player(
                "update",
                "player.stats",
                self.user_id,
                Value::Object(p.stats.clone()),
            ));
        }
        let mut trust = None;
        if let (Some(giver), n) = (&def.giver, def.rewards.trust) {
            if n != 0 {
                let mut rel = c.relationship(self.user_id, giver).await?;
                rel.trust = (rel.trust + n).clamp(0, 100);
                c.set_relationship(self.user_id, giver, &rel).await?;
                changes.push(relationship_change(self.user_id, giver, &rel));
                trust = Some(rel.trust);
            }
        }
        let mut entry = p.quests.get(id).cloned().unwrap_or_else(|| json!({}));
        entry["status"] = COMPLETED.into();
        entry["completed_at"] = chrono::Utc::now().timestamp_millis().into();
        p.quests.insert(id.to_string(), entry.clone());
        c.set_player_data(self.user_id, &p).await?;
        changes.push(quest_change("update", id, entry));
        let reactions = self.react(&mut c, WorldEvent::QuestCompleted { quest: id }).await?;
        changes.extend(reactions.changes);
        let message = if said.is_empty() {
            format!("Quest complete: {title}.")
        } else {
            format!("Quest complete: {title}: {}.", said.join(", "))
        };
        let mut r = self.finish(c, message, changes, None).await?;
        let mut meta = json!({"quest_id": id, "status": COMPLETED, "rewards": def.rewards, "trust": trust});
        if !reactions.speech.is_empty() {
            meta["npc_reactions"] = Value::Array(reactions.speech);
        }
        r.metadata = Some(meta);
        Ok(r)
    }

    /// A location's or area's name, for messages.
    fn place_name(&self, id: &str) -> String {
        let w = &self.exp.world;
        w.locations
            .get(id)
            .map(|l| l.name.clone())
            .or_else(|| w.locations.values().find_map(|l| l.areas.get(id)).map(|a| a.name.clone()))
            .unwrap_or_else(|| id.to_string())
    }
}

/// Starts the quest `id` for the player `p` (the caller checked it is not taken, and writes `p`):
/// the change to publish.
pub(crate) fn start_quest(p: &mut PlayerState, id: &str) -> StateChange {
    let entry = json!({"status": ACTIVE, "accepted_at": chrono::Utc::now().timestamp_millis()});
    p.quests.insert(id.to_string(), entry.clone());
    quest_change("add", id, entry)
}

/// A change of the player's quest `id` (the new entry).
fn quest_change(operation: &str, id: &str, entry: Value) -> StateChange {
    StateChange {
        operation: operation.into(),
        area_id: None,
        path: Some("player.quests".into()),
        instance_id: id.to_string(),
        template_id: None,
        item: Some(entry),
    }
}
