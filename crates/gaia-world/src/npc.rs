//! NPC minds at play (the template's [`Mind`](crate::content::Mind)): goals fired by game events with
//! no model call, actions checked and applied as world changes (taken by goals, or proposed by the
//! model as tool calls while a player talks), and the relationship's axes and the NPC's emotion,
//! changed in the same versioned change as the event that moved them.

use crate::command::StateChange;
use crate::content::{ActionCommand, EventKind, NpcTemplate, Trigger};
use crate::engine::{display_name, merged, npc_name, Ctx};
use crate::error::Result;
use crate::state::{Change, Holder, Relationship};
use gaia_core::types::ToolSpec;
use serde_json::{json, Map, Value};

/// Tool calls of one NPC answer that are looked at (the rest are refused).
pub(crate) const MAX_ACTION_CALLS: usize = 4;
/// Longest arguments of an action call, in bytes.
pub(crate) const MAX_ACTION_ARGS: usize = 4_096;

/// A game event NPCs may react to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorldEvent<'a> {
    /// The player arrived in `area` of `location`.
    EntersArea { location: &'a str, area: &'a str },
    /// The player gave `npc` an item of `template`.
    ItemGiven { npc: &'a str, template: &'a str },
    /// The player took `quest`.
    QuestAccepted { quest: &'a str },
    /// The player completed `quest`.
    QuestCompleted { quest: &'a str },
    /// The player said `text` to `npc`; `meant`: how similar it is to each `means` of the triggers
    /// that could match ([`Ctx::meanings`]).
    PlayerSays { npc: &'a str, text: &'a str, meant: &'a [(String, f64)] },
}

impl WorldEvent<'_> {
    fn kind(&self) -> EventKind {
        match self {
            WorldEvent::EntersArea { .. } => EventKind::EntersArea,
            WorldEvent::ItemGiven { .. } => EventKind::ItemGiven,
            WorldEvent::QuestAccepted { .. } => EventKind::QuestAccepted,
            WorldEvent::QuestCompleted { .. } => EventKind::QuestCompleted,
            WorldEvent::PlayerSays { .. } => EventKind::PlayerSays,
        }
    }
}

/// Whether `t` matches `ev` for a player whose relationship with the NPC is `rel`.
pub(crate) fn matches(t: &Trigger, ev: &WorldEvent<'_>, rel: &Relationship) -> bool {
    let same = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
    t.event == ev.kind()
        && match ev {
            WorldEvent::EntersArea { area, .. } => same(&t.area, area),
            WorldEvent::ItemGiven { template, .. } => same(&t.item, template),
            WorldEvent::QuestAccepted { quest } | WorldEvent::QuestCompleted { quest } => same(&t.quest, quest),
            WorldEvent::PlayerSays { text, meant, .. } => {
                let by_words = t.says.as_deref().map(|w| text.to_lowercase().contains(&w.to_lowercase()));
                let by_meaning = t.means.as_deref().map(|m| {
                    let least = t.similarity.unwrap_or(crate::content::DEFAULT_SIMILARITY);
                    meant.iter().any(|(phrase, sim)| phrase == m && *sim >= least)
                });
                match (by_words, by_meaning) {
                    (None, None) => true,
                    (w, m) => w.unwrap_or(false) || m.unwrap_or(false),
                }
            }
        }
        && rel.unmet(&t.requires).is_none()
}

/// What NPCs did in reaction to an event, inside the event's change.
#[derive(Debug, Default)]
pub(crate) struct Reactions {
    /// World changes (items given, quests started, relationships).
    pub changes: Vec<StateChange>,
    /// Lines NPCs said: `{npc_id, npc_name, text, voice, emotion, goal}`.
    pub speech: Vec<Value>,
    /// The relationships the goals wrote, by NPC.
    pub relations: Vec<(String, Relationship)>,
}

impl Reactions {
    /// The relationship with `npc` as the goals left it, else `before` (what the event wrote).
    pub(crate) fn relationship(&mut self, npc: &str, before: Relationship) -> Relationship {
        match self.relations.iter().position(|(n, _)| n == npc) {
            Some(i) => self.relations.swap_remove(i).1,
            None => before,
        }
    }

    /// `metadata.npc_reactions` of a command's result, when NPCs said something.
    pub(crate) fn metadata(&self) -> Option<Value> {
        (!self.speech.is_empty()).then(|| json!({"npc_reactions": self.speech}))
    }
}

/// The change of a player's relationship with `npc`, as the player sees it.
pub(crate) fn relationship_change(user_id: &str, npc: &str, rel: &Relationship) -> StateChange {
    StateChange::of_player("update", format!("player.relationships.{npc}"), user_id, rel.view())
}

/// The model's tools for the actions of `t`.
pub(crate) fn action_tools(t: &NpcTemplate) -> Vec<ToolSpec> {
    t.actions
        .iter()
        .map(|(name, a)| ToolSpec {
            name: name.clone(),
            description: Some(if a.description.is_empty() { name.replace('_', " ") } else { a.description.clone() }),
            parameters: std::sync::Arc::new(a.parameters()),
        })
        .collect()
}

/// An action's outcome: what changed and what to say of it, or why it was refused (nothing changed).
pub(crate) type Outcome = std::result::Result<(Vec<StateChange>, String), String>;

impl Ctx<'_> {
    /// The NPCs an event concerns: the one it names, or those where the player is (and a quest's giver).
    fn concerned(&self, ev: &WorldEvent<'_>) -> Vec<String> {
        let here = || self.place(&self.seen.player).map(|(_, a)| Self::npcs_here(a)).unwrap_or_default();
        let mut npcs = match ev {
            WorldEvent::ItemGiven { npc, .. } | WorldEvent::PlayerSays { npc, .. } => vec![npc.to_string()],
            WorldEvent::EntersArea { location, area } => self
                .exp
                .world
                .locations
                .get(*location)
                .and_then(|l| l.areas.get(*area))
                .map(Self::npcs_here)
                .unwrap_or_default(),
            WorldEvent::QuestAccepted { quest } | WorldEvent::QuestCompleted { quest } => {
                let mut v = here();
                v.extend(self.exp.quests.get(*quest).and_then(|q| q.giver.clone()));
                v
            }
        };
        npcs.sort();
        npcs.dedup();
        npcs.retain(|n| self.exp.npc_templates.get(n).is_some_and(|t| !t.goals.is_empty()));
        npcs
    }

    /// Fires the goals `ev` activates (and ends those it achieves), inside `c`: their lines, emotions,
    /// relationship effects and actions; then the scenes it starts or moves on. A goal whose action is refused (the NPC no longer holds the
    /// item, say) does not fire (the actions before it stay taken) and may fire later. No model call.
    pub(crate) async fn react(&self, c: &mut Change, ev: WorldEvent<'_>) -> Result<Reactions> {
        let mut out = Reactions::default();
        for npc in self.concerned(&ev) {
            let Some(t) = self.exp.npc_templates.get(&npc) else { continue };
            let mut rel = c.relationship(self.user_id, &npc).await?;
            let mut changed = false;
            for g in &t.goals {
                let active = rel.mind.goals.get(&g.id).is_some_and(|s| s.active);
                if active && g.until.as_ref().is_some_and(|u| matches(u, &ev, &rel)) {
                    let s = rel.mind.goals.entry(g.id.clone()).or_default();
                    s.active = false;
                    s.achieved = true;
                    changed = true;
                }
                let fired = rel.mind.goals.get(&g.id).map_or(0, |s| s.fired);
                if (fired > 0 && !g.repeat) || !matches(&g.when, &ev, &rel) {
                    continue;
                }
                let mut taken = Vec::new();
                let mut refused = None;
                for a in &g.actions {
                    match self.take_action(c, &npc, t, &a.action, &a.args, &mut rel).await? {
                        Ok((changes, _)) => taken.extend(changes),
                        Err(why) => {
                            refused = Some(why);
                            break;
                        }
                    }
                }
                // What the actions before a refusal did stays (and the relationship they moved).
                changed |= !taken.is_empty();
                out.changes.extend(taken);
                if let Some(why) = refused {
                    tracing::info!(npc, goal = %g.id, why, "a goal's action was refused; the goal waits");
                    continue;
                }
                rel.add(&g.effects);
                if let Some(e) = &g.emotion {
                    rel.emotion = e.clone();
                }
                let s = rel.mind.goals.entry(g.id.clone()).or_default();
                s.fired += 1;
                s.active = !s.achieved && (g.aim.is_some() || g.until.is_some());
                changed = true;
                if let Some(line) = &g.say {
                    out.speech.push(json!({
                        "npc_id": npc, "npc_name": t.name, "text": line, "voice": t.voice,
                        "emotion": rel.emotion, "goal": g.id,
                    }));
                }
            }
            if changed {
                c.set_relationship(self.user_id, &npc, &rel).await?;
                out.changes.push(relationship_change(self.user_id, &npc, &rel));
                out.relations.push((npc, rel));
            }
        }
        // Scenes the event starts or moves on.
        let (changes, speech) = self.scene_events(c, &ev).await?;
        out.changes.extend(changes);
        out.speech.extend(speech);
        Ok(out)
    }

    /// How similar `message` is to each `means` that a `player_says` trigger could match here (the
    /// goals of `t`, the transitions of the scenes where the player is): one embedding call of the
    /// message and the phrases (cached), only when there are such triggers and an embedding model;
    /// nothing when it fails (word triggers still work).
    pub(crate) async fn meanings(&self, t: Option<&NpcTemplate>, message: &str) -> Vec<(String, f64)> {
        let goals = t.into_iter().flat_map(|t| &t.goals).flat_map(|g| std::iter::once(&g.when).chain(&g.until));
        let scenes = self.scenes_here().into_iter().flat_map(|s| &s.sections).flat_map(|sec| &sec.next);
        let mut phrases: Vec<String> = goals
            .chain(scenes.filter_map(|tr| tr.when.as_ref()))
            .filter(|tr| tr.event == EventKind::PlayerSays)
            .filter_map(|tr| tr.means.clone())
            .collect();
        phrases.sort();
        phrases.dedup();
        let Some((engine, admitted)) = self.model().filter(|_| !phrases.is_empty()) else { return Vec::new() };
        let Some(embedder) = engine.embedder(admitted.clone(), crate::talk::TALK_ENDPOINT) else { return Vec::new() };
        let mut texts = vec![message.to_string()];
        texts.extend(phrases.iter().cloned());
        let vectors = match gaia_core::vectors::Embedder::embed(&embedder, &texts).await {
            Ok(v) if v.len() == texts.len() => v,
            Ok(_) => return Vec::new(),
            Err(e) => {
                tracing::info!(error = %e, "cannot judge what a player's words mean; word triggers only");
                return Vec::new();
            }
        };
        let said = gaia_core::vectors::unit(vectors[0].clone());
        phrases
            .into_iter()
            .zip(&vectors[1..])
            .map(|(p, v)| (p, f64::from(gaia_core::vectors::dot(&said, &gaia_core::vectors::unit(v.clone())))))
            .collect()
    }

    /// The aims of the goals of `t` active for the player (given to the model).
    pub(crate) fn aims(t: &NpcTemplate, rel: &Relationship) -> Vec<String> {
        t.goals
            .iter()
            .filter(|g| rel.mind.goals.get(&g.id).is_some_and(|s| s.active))
            .filter_map(|g| g.aim.clone())
            .collect()
    }

    /// Takes the action `name` of `t` with `args`, inside `c`, when the template declares it, the
    /// arguments are the ones it allows, the relationship meets what it requires and the world
    /// allows it; else refuses it, changing nothing. `rel` (the relationship, read in `c`) gets the
    /// action's effects; the caller writes it.
    pub(crate) async fn take_action(
        &self,
        c: &mut Change,
        npc: &str,
        t: &NpcTemplate,
        name: &str,
        args: &Map<String, Value>,
        rel: &mut Relationship,
    ) -> Result<Outcome> {
        let who = npc_name(self.exp, npc);
        let Some(a) = t.actions.get(name) else {
            return Ok(Err(format!("{who} cannot do that ({name} is not one of {who}'s actions).")));
        };
        let (arg, allowed) = a.argument();
        let value = match (args.len(), args.get(arg).and_then(Value::as_str)) {
            (1, Some(v)) => v,
            _ => return Ok(Err(format!("{name} takes one argument, {arg}."))),
        };
        if !allowed.contains(&value) {
            return Ok(Err(format!("{who} cannot {} {value}.", name.replace('_', " "))));
        }
        if let Some(why) = rel.unmet(&a.requires) {
            return Ok(Err(format!("{who} will not do that yet ({why}).")));
        }
        let me = self.me();
        let out = match a.command {
            ActionCommand::GiveItem => {
                let label = self.exp.item_templates.get(value).map(|i| i.name.clone()).unwrap_or_else(|| value.into());
                let held = c.items_of(&Holder::Npc(npc.to_string())).await?;
                if let Some(i) = held.iter().find(|i| i.instance.template_id == value) {
                    if !c.move_item(&i.instance.instance_id, &i.holder, &me).await? {
                        return Ok(Err(format!("{who} no longer has the {label}.")));
                    }
                    let change = StateChange::in_inventory("add", &i.instance, Some(merged(self.exp, &i.instance)));
                    (vec![change], format!("{who} gives you the {}.", display_name(self.exp, &i.instance)))
                } else if a.create {
                    let made = rel.mind.made.get(value).copied().unwrap_or(0);
                    if made >= a.per_player {
                        return Ok(Err(format!("{who} has no more {label} for you.")));
                    }
                    let item = c.spawn(value, &me).await?;
                    *rel.mind.made.entry(value.to_string()).or_default() += 1;
                    let change = StateChange::in_inventory("add", &item, Some(merged(self.exp, &item)));
                    (vec![change], format!("{who} gives you the {}.", display_name(self.exp, &item)))
                } else {
                    return Ok(Err(format!("{who} has no {label} to give.")));
                }
            }
            ActionCommand::StartQuest => {
                let Some(def) = self.exp.quests.get(value) else {
                    return Ok(Err(format!("There is no quest {value}.")));
                };
                // The relationship the quest needs is with its giver: this NPC's (as it is now), or
                // another's.
                let unmet = match def.giver.as_deref() {
                    Some(g) if g != npc => c.relationship(self.user_id, g).await?.unmet(&def.requires.relationship),
                    _ => rel.unmet(&def.requires.relationship),
                };
                if let Some(why) = unmet {
                    return Ok(Err(format!("{who} cannot give you that quest yet ({why}).")));
                }
                let mut p = c.player(self.user_id).await?;
                if p.quests.contains_key(value) {
                    return Ok(Err(format!("You already took the quest {value}.")));
                }
                let change = crate::quests::start_quest(&mut p, value);
                c.set_player_data(self.user_id, &p).await?;
                let title = if def.name.is_empty() { value } else { def.name.as_str() };
                (vec![change], format!("{who} gives you a quest: {title}."))
            }
            ActionCommand::MoveNpc => match self.move_npc(c, npc, value).await? {
                Ok(changes) => {
                    let area = value.rsplit('/').next().unwrap_or(value);
                    let name =
                        self.exp.world.locations.values().find_map(|l| l.areas.get(area)).map(|a| a.name.clone());
                    (changes, format!("{who} goes to {}.", name.unwrap_or_else(|| area.to_string())))
                }
                Err(why) => return Ok(Err(format!("{who} cannot go there: {why}"))),
            },
            ActionCommand::OpenDoor | ActionCommand::CloseDoor => {
                let open = a.command == ActionCommand::OpenDoor;
                let (x, y) = &a.doors[value];
                let door = value.replace('_', " ");
                match self.link(c, x, y, open).await? {
                    Ok(changes) => (changes, format!("{who} {} the {door}.", if open { "opens" } else { "closes" })),
                    Err(_) if open => return Ok(Err(format!("The {door} is open already."))),
                    Err(_) => return Ok(Err(format!("The {door} is closed already."))),
                }
            }
        };
        rel.add(&a.effects);
        Ok(Ok(out))
    }
}
