//! Commands written as rules in prose (`game-logic/<command>.md`, spec §3), in two model passes
//! through the conversation engine:
//!
//! 1. **Rules** (metered as `world_rules`): the model gets the command's rules, the player's view and
//!    what is around them, and must answer a JSON object `{success, state_updates, available_actions,
//!    message}`. The updates are checked — only known entities, only what the rules speak of, within
//!    bounds — and applied as one versioned change, or refused whole. An answer that is not that JSON
//!    changes nothing and is reported (`metadata.error: "invalid_model_answer"`).
//! 2. **Narrative** (metered as `world_narrative`): the model tells the player what happened; if it
//!    fails, the rules' own message stands.
//!
//! `state_updates` may hold: `stats` (`{<stat>: <number>}`: new values of stats the rules name),
//! `add_items` (template ids to put in the player's inventory, at most [`MAX_NEW_ITEMS`]),
//! `remove_items` (instance ids of the player's inventory), `items` (`{<instance id>: {state?, visible?}}`
//! for items the player carries or that are in their area), `status_effects` (strings the rules name).
//!
//! A command that matches no name or alias is given to the model to pick one of the experience's
//! commands (or `look`), when a model is there.

use crate::command::{Action, CommandResult, StateChange, FAST_COMMANDS};
use crate::content::CommandDef;
use crate::engine::{merged, Ctx};
use crate::error::Result;
use crate::state::{Holder, LiveItem};
use gaia_chat::CallSpec;
use gaia_core::types::ChatMessage;
use gaia_providers::ChatRequest;
use serde_json::{json, Map, Value};

/// Most items one rules command may create.
pub const MAX_NEW_ITEMS: usize = 10;
/// Largest rules answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 32 * 1024;
/// Largest absolute value a stat may be set to.
const MAX_STAT: f64 = 1_000_000.0;

/// Endpoints the two passes are metered under.
pub const RULES_ENDPOINT: &str = "world_rules";
/// See [`RULES_ENDPOINT`].
pub const NARRATIVE_ENDPOINT: &str = "world_narrative";

/// The command of `exp` named by the first words of `text` (its name or an alias, any case).
fn command_named<'e>(commands: impl Iterator<Item = &'e CommandDef>, text: &str) -> Option<&'e CommandDef> {
    let t = text.trim().to_lowercase();
    let first = t.split_whitespace().next().unwrap_or_default();
    commands.into_iter().find(|c| {
        std::iter::once(&c.command).chain(&c.aliases).any(|n| {
            let n = n.to_lowercase();
            n == first || t == n || t.starts_with(&format!("{n} "))
        })
    })
}

/// The first JSON object in `text` (models sometimes wrap it in prose or a code fence).
fn json_object(text: &str) -> Option<Map<String, Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end <= start {
        return None;
    }
    match serde_json::from_str::<Value>(&text[start..=end]) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// An item's new state and visibility.
type ItemEdit = (LiveItem, Option<Map<String, Value>>, Option<bool>);

/// The checked updates of a rules answer.
#[derive(Debug, Default)]
struct Updates {
    stats: Vec<(String, f64)>,
    add: Vec<String>,
    remove: Vec<LiveItem>,
    items: Vec<ItemEdit>,
    status_effects: Option<Vec<Value>>,
}

impl Ctx<'_> {
    /// Runs a command that is none of the fast ones: a rules command, or an unknown one.
    pub(crate) async fn rules_command(&self, action: &Action) -> Result<CommandResult> {
        let version = self.seen.version;
        let text = action.action.trim();
        let mut def = command_named(self.exp.commands.values(), text);
        if def.is_none() && !self.exp.commands.is_empty() {
            match self.pick_command(text).await {
                Some(Picked::Look) => return Ok(self.look()),
                Some(Picked::Command(name)) => def = self.exp.commands.values().find(|c| c.command == name),
                None => {}
            }
        }
        let Some(def) = def else {
            let mut names: Vec<String> = FAST_COMMANDS.iter().map(|c| c.name.to_string()).collect();
            names.extend(self.exp.commands.values().map(|c| c.command.clone()));
            let mut r = CommandResult::fail(format!("Unknown command \"{text}\". Try: {}.", names.join(", ")), version);
            r.available_actions = Some(names);
            return Ok(r);
        };
        if def.requires_admin && !self.caller.admin {
            return Ok(CommandResult::fail(
                format!("Only the experience's administrators may {}.", def.command),
                version,
            ));
        }
        let Some((engine, admitted)) = self.model() else {
            return Ok(CommandResult::fail(
                format!("\"{}\" needs a model; none is available here.", def.command),
                version,
            ));
        };

        // Pass 1: the rules.
        let p = self.store().player(self.world, self.user_id).await?;
        let inventory = self.store().items_of(self.world, &self.me()).await?;
        let around = match self.place(&p) {
            Some((l, a)) => self.store().items_in_area(self.world, &l.id, &a.id).await?,
            None => Vec::new(),
        };
        let view = json!({
            "location": p.current_location, "area": p.current_area, "stats": p.stats,
            "status_effects": p.status_effects, "quests": p.quests,
            "inventory": inventory.iter().map(|i| merged(self.exp, &i.instance)).collect::<Vec<_>>(),
            "items_here": around.iter().filter(|i| i.instance.visible.unwrap_or(true)).map(|i| merged(self.exp, &i.instance)).collect::<Vec<_>>(),
            "item_templates": self.exp.item_templates.keys().collect::<Vec<_>>(),
        });
        let system = format!(
            "You are the rules engine of the game \"{}\". Apply the rules of the command `{}` to the player's \
             request. Answer with one JSON object only: {{\"success\": true|false, \"state_updates\": {{\"stats\": \
             {{}}, \"add_items\": [], \"remove_items\": [], \"items\": {{}}, \"status_effects\": []}}, \
             \"available_actions\": [], \"message\": \"...\"}}. Change only what the rules allow.\n\nRules:\n{}",
            self.exp.config.name,
            def.command,
            def.rules.trim()
        );
        let user = format!("Player state: {view}\n\nPlayer's request: {text}");
        let mut req = ChatRequest::new("", vec![ChatMessage::system(system), ChatMessage::user(user)]);
        req.user = Some(self.user_id.to_string());
        req.extra.insert("response_format".into(), json!({"type": "json_object"}));
        let rules = self.guard_rules(engine, &[]);
        let answer = match engine
            .complete(admitted, CallSpec { rules: Some(&rules), ..CallSpec::new(RULES_ENDPOINT, "") }, &req)
            .await
        {
            Ok((r, _)) => r.content,
            Err(e) => {
                return Ok(CommandResult::fail(
                    format!("The rules could not be applied ({e}); nothing changed."),
                    version,
                ))
            }
        };
        let invalid = |why: String| {
            let mut r = CommandResult::fail(
                format!("The rules engine gave an invalid answer ({why}); nothing changed."),
                version,
            );
            r.metadata = Some(json!({"error": "invalid_model_answer", "command": def.command}));
            r
        };
        if answer.len() > MAX_ANSWER_BYTES {
            return Ok(invalid("too long".into()));
        }
        let Some(answer) = json_object(&answer) else {
            return Ok(invalid("not a JSON object".into()));
        };
        let success = answer.get("success").and_then(Value::as_bool).unwrap_or(false);
        let message =
            answer.get("message").and_then(Value::as_str).unwrap_or_default().chars().take(2_000).collect::<String>();
        let actions: Option<Vec<String>> = answer
            .get("available_actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).take(20).map(|s| s.chars().take(100).collect()).collect());
        if !success {
            let mut r = CommandResult::fail(
                if message.is_empty() { "You cannot do that now.".into() } else { message },
                version,
            );
            r.available_actions = actions;
            return Ok(r);
        }
        let updates = match self.check_updates(def, answer.get("state_updates"), &inventory, &around) {
            Ok(u) => u,
            Err(why) => return Ok(invalid(why)),
        };

        // Apply, as one change.
        let mut c = self.store().begin(self.world).await?;
        let mut changes = Vec::new();
        let mut player = c.player(self.user_id).await?;
        if !updates.stats.is_empty() || updates.status_effects.is_some() {
            for (k, v) in &updates.stats {
                player.stats.insert(k.clone(), json!(v));
            }
            if let Some(e) = &updates.status_effects {
                player.status_effects = e.clone();
            }
            c.set_player_data(self.user_id, &player).await?;
            changes.push(StateChange::of_player(
                "update",
                "player.stats",
                self.user_id,
                json!({"stats": player.stats, "status_effects": player.status_effects}),
            ));
        }
        for item in &updates.remove {
            if !c.move_item(&item.instance.instance_id, &item.holder, &Holder::Gone).await? {
                return Ok(invalid(format!("{} is no longer there", item.instance.instance_id)));
            }
            changes.push(StateChange::in_inventory("remove", &item.instance, None));
        }
        for template in &updates.add {
            let item = c.spawn(template, &self.me()).await?;
            changes.push(StateChange {
                operation: "add".into(),
                area_id: None,
                path: Some("player.inventory".into()),
                instance_id: item.instance_id.clone(),
                template_id: Some(template.clone()),
                item: Some(merged(self.exp, &item)),
            });
        }
        for (item, state, visible) in &updates.items {
            let mut next = item.instance.clone();
            if let Some(s) = state {
                next.state.get_or_insert_with(Map::new).extend(s.clone());
            }
            if let Some(v) = visible {
                next.visible = Some(*v);
            }
            c.set_item(&next).await?;
            let area_id = match &item.holder {
                Holder::Area { area, .. } => Some(area.clone()),
                _ => None,
            };
            changes.push(StateChange {
                operation: "update".into(),
                path: area_id.is_none().then(|| "player.inventory".to_string()),
                area_id,
                instance_id: next.instance_id.clone(),
                template_id: Some(next.template_id.clone()),
                item: Some(merged(self.exp, &next)),
            });
        }
        let mut r = self.finish(c, message.clone(), changes, None).await?;
        r.available_actions = actions;

        // Pass 2: the narrative.
        let summary: Vec<String> = r
            .state_changes
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c.operation,
                    c.item.as_ref().and_then(|i| i.get("name")).and_then(Value::as_str).unwrap_or(&c.instance_id)
                )
            })
            .collect();
        let prompt = format!(
            "In two or three sentences, in the second person, tell the player of \"{}\" what happened when they \
             did `{}`. Outcome: {message}. Changes: {}.",
            self.exp.config.name,
            def.command,
            if summary.is_empty() { "none".to_string() } else { summary.join(", ") }
        );
        let mut req = ChatRequest::new("", vec![ChatMessage::user(prompt)]);
        req.user = Some(self.user_id.to_string());
        req.max_tokens = Some(200);
        let rules = self.guard_rules(engine, &[]);
        let spec = CallSpec { rules: Some(&rules), ..CallSpec::new(NARRATIVE_ENDPOINT, "") };
        if let Ok((n, _)) = engine.complete(admitted, spec, &req).await {
            let narrative = n.content.trim();
            if !narrative.is_empty() {
                r.message = narrative.chars().take(2_000).collect();
            }
        }
        r.metadata = Some(json!({"command": def.command, "rules_message": message}));
        Ok(r)
    }

    /// Checks a rules answer's `state_updates`: only known entities, only stats the rules name, within
    /// bounds. `Err`: why not (nothing is applied).
    fn check_updates(
        &self,
        def: &CommandDef,
        updates: Option<&Value>,
        inventory: &[LiveItem],
        around: &[LiveItem],
    ) -> std::result::Result<Updates, String> {
        let mut out = Updates::default();
        let Some(u) = updates.filter(|v| !v.is_null()) else { return Ok(out) };
        let u = u.as_object().ok_or("`state_updates` is not an object")?;
        let rules = def.rules.to_lowercase();
        for key in u.keys() {
            if !["stats", "add_items", "remove_items", "items", "status_effects"].contains(&key.as_str()) {
                return Err(format!("`state_updates.{key}` is not something a command may change"));
            }
        }
        if let Some(stats) = u.get("stats").filter(|v| !v.is_null()) {
            for (k, v) in stats.as_object().ok_or("`stats` is not an object")? {
                let n = v
                    .as_f64()
                    .filter(|n| n.is_finite() && n.abs() <= MAX_STAT)
                    .ok_or(format!("stat `{k}` is not a number"))?;
                if !rules.contains(&k.to_lowercase()) {
                    return Err(format!("the rules of {} do not speak of the stat `{k}`", def.command));
                }
                out.stats.push((k.clone(), n));
            }
        }
        if let Some(add) = u.get("add_items").filter(|v| !v.is_null()) {
            let add = add.as_array().ok_or("`add_items` is not a list")?;
            if add.len() > MAX_NEW_ITEMS {
                return Err(format!("at most {MAX_NEW_ITEMS} new items at once"));
            }
            for t in add {
                let t = t.as_str().ok_or("`add_items` holds template ids")?;
                if !self.exp.item_templates.contains_key(t) {
                    return Err(format!("there is no item template `{t}`"));
                }
                out.add.push(t.to_string());
            }
        }
        if let Some(remove) = u.get("remove_items").filter(|v| !v.is_null()) {
            for id in remove.as_array().ok_or("`remove_items` is not a list")? {
                let id = id.as_str().ok_or("`remove_items` holds instance ids")?;
                let item = inventory
                    .iter()
                    .find(|i| i.instance.instance_id == id)
                    .ok_or(format!("the player does not carry `{id}`"))?;
                out.remove.push(item.clone());
            }
        }
        if let Some(items) = u.get("items").filter(|v| !v.is_null()) {
            for (id, change) in items.as_object().ok_or("`items` is not an object")? {
                let item = inventory
                    .iter()
                    .chain(around)
                    .find(|i| i.instance.instance_id == *id)
                    .ok_or(format!("there is no item `{id}` here or in the inventory"))?;
                let change = change.as_object().ok_or(format!("`items.{id}` is not an object"))?;
                if let Some(k) = change.keys().find(|k| !["state", "visible"].contains(&k.as_str())) {
                    return Err(format!("`items.{id}.{k}` cannot be changed by a command"));
                }
                let state = match change.get("state") {
                    Some(Value::Object(m)) if serde_json::to_string(m).map_or(0, |s| s.len()) <= 4_096 => {
                        Some(m.clone())
                    }
                    Some(Value::Null) | None => None,
                    Some(_) => return Err(format!("`items.{id}.state` must be a small object")),
                };
                let visible = match change.get("visible") {
                    Some(Value::Bool(b)) => Some(*b),
                    Some(Value::Null) | None => None,
                    Some(_) => return Err(format!("`items.{id}.visible` must be true or false")),
                };
                out.items.push((item.clone(), state, visible));
            }
        }
        if let Some(effects) = u.get("status_effects").filter(|v| !v.is_null()) {
            let effects = effects.as_array().ok_or("`status_effects` is not a list")?;
            if effects.len() > 20 {
                return Err("at most 20 status effects".into());
            }
            for e in effects {
                let e = e.as_str().ok_or("`status_effects` holds names")?;
                if !rules.contains(&e.to_lowercase()) {
                    return Err(format!("the rules of {} do not speak of the status effect `{e}`", def.command));
                }
            }
            out.status_effects = Some(effects.clone());
        }
        Ok(out)
    }

    /// Asks the model which of the experience's commands (or `look`) the player's text means.
    async fn pick_command(&self, text: &str) -> Option<Picked> {
        let (engine, admitted) = self.model()?;
        let names: Vec<&str> =
            self.exp.commands.values().filter(|c| !c.requires_admin).map(|c| c.command.as_str()).collect();
        if names.is_empty() {
            return None;
        }
        let prompt = format!(
            "A player of a game typed: \"{text}\". Which of these commands do they mean: {}, or look? Answer with \
             the command's name only, or `none`.",
            names.join(", ")
        );
        let mut req = ChatRequest::new("", vec![ChatMessage::user(prompt)]);
        req.user = Some(self.user_id.to_string());
        req.max_tokens = Some(10);
        let rules = self.guard_rules(engine, &[]);
        let spec = CallSpec { rules: Some(&rules), ..CallSpec::new(RULES_ENDPOINT, "") };
        let (r, _) = engine.complete(admitted, spec, &req).await.ok()?;
        let answer =
            r.content.trim().trim_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '-').to_lowercase();
        if answer == "look" {
            return Some(Picked::Look);
        }
        names.into_iter().find(|n| n.to_lowercase() == answer).map(|n| Picked::Command(n.to_string()))
    }
}

/// What the model picked for a command it did not recognise.
enum Picked {
    Look,
    Command(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_matched_by_name_or_alias_and_json_is_found_in_prose() {
        let c = CommandDef {
            command: "scavenge".into(),
            aliases: vec!["loot".into(), "search".into()],
            ..Default::default()
        };
        let all = [c];
        assert!(command_named(all.iter(), "Scavenge the shelves").is_some());
        assert!(command_named(all.iter(), "loot").is_some());
        assert!(command_named(all.iter(), "looting party").is_none());
        assert_eq!(json_object("Sure! ```json\n{\"success\": true}\n```").unwrap()["success"], true);
        assert!(json_object("no json here").is_none());
        assert!(json_object("{not json}").is_none());
    }
}
