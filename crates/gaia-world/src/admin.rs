//! Admin commands (spec §3): they start with `@` and need the experience-admin permission
//! (`experience:admin` on `/experiences/<exp>`; the caller's [`crate::Caller::admin`]).
//!
//! Reading: `@list locations|areas|spots|items|npcs|templates|waypoints|commands`, `@inspect <kind>
//! <id>`, `@where <item id>`, `@find <text>`, `@stats`. Changing the live world (each one versioned
//! change): `@spawn <template_id> [at <area>]` (also `@create item`), `@delete item <id>`, `@edit item
//! <id> <semantic_name|visible|collectible|state.<key>> <value>`; places with `@create`, `@edit`,
//! `@delete`, `@connect` and `@disconnect` (module `places`); `@reset experience`, `@reset player
//! <user id>` (what they replace is kept as a backup) and `@reset undo` (puts the last backup back).
//! Templates and rules are the vault's: designers change them there (a sync re-reads them).

use crate::command::{Action, CommandResult, StateChange};
use crate::engine::{merged, npc_name, Ctx};
use crate::error::Result;
use crate::state::{Holder, LiveItem};
use serde_json::{json, Value};

/// Most entries `@list` and `@find` return.
const MAX_LISTED: usize = 200;

impl Ctx<'_> {
    /// Runs an `@` command.
    pub(crate) async fn admin_command(&self, action: &Action) -> Result<CommandResult> {
        let version = self.seen.version;
        if !self.caller.admin {
            let mut r = CommandResult::fail("Only the experience's administrators may use @ commands.", version);
            r.metadata = Some(json!({"error": "not_allowed"}));
            return Ok(r);
        }
        let text = action.action.trim().trim_start_matches('@');
        let words: Vec<&str> = text.split_whitespace().collect();
        let arg = |i: usize| words.get(i).copied().unwrap_or_default();
        match arg(0).to_lowercase().as_str() {
            "list" => Ok(self.list(arg(1), version)),
            "inspect" => self.inspect(arg(1), arg(2), version).await,
            "where" => self.where_is(arg(1), version).await,
            "find" => Ok(self.find(&words[1.min(words.len())..].join(" "), version)),
            "stats" => self.stats(version).await,
            "spawn" => {
                let at =
                    words.iter().position(|w| w.eq_ignore_ascii_case("at")).and_then(|i| words.get(i + 1)).copied();
                self.spawn(arg(1), at, version).await
            }
            "delete" if arg(1).eq_ignore_ascii_case("item") => self.delete_item(arg(2), version).await,
            "delete" => self.delete_place(arg(1), arg(2), version).await,
            "edit" if arg(1).eq_ignore_ascii_case("item") => self.edit_item(arg(2), arg(3), &words, version).await,
            "edit" => self.edit_place(&words, version).await,
            "create" => self.create_place(&words, version).await,
            "connect" | "disconnect" => {
                self.connect(arg(1), arg(2), arg(0).eq_ignore_ascii_case("connect"), version).await
            }
            "reset" => self.reset(arg(1), arg(2), version).await,
            other => Ok(CommandResult::fail(
                format!(
                    "Unknown admin command @{other}. Try: @list, @inspect, @where, @find, @stats, @spawn, @create, \
                     @edit, @delete, @connect, @disconnect, @reset experience|player <user>|undo."
                ),
                version,
            )),
        }
    }

    fn list(&self, kind: &str, version: i64) -> CommandResult {
        let w = &self.exp.world;
        let ids: Vec<String> = match kind.to_lowercase().as_str() {
            "locations" => w.locations.keys().cloned().collect(),
            "areas" => w.locations.iter().flat_map(|(l, x)| x.areas.keys().map(move |a| format!("{l}/{a}"))).collect(),
            "spots" => w
                .locations
                .iter()
                .flat_map(|(l, x)| {
                    x.areas.iter().flat_map(move |(a, y)| y.spots.keys().map(move |s| format!("{l}/{a}/{s}")))
                })
                .collect(),
            "npcs" => self.exp.npc_templates.keys().chain(w.npcs.keys()).cloned().collect(),
            "templates" => self.exp.item_templates.keys().cloned().collect(),
            "waypoints" => self.exp.waypoints.keys().cloned().collect(),
            "commands" => self.exp.commands.keys().chain(self.exp.admin_commands.keys()).cloned().collect(),
            "items" => crate::state::content_items(self.exp).into_iter().map(|(.., i)| i.instance_id.clone()).collect(),
            _ => {
                return CommandResult::fail(
                    "List what? locations, areas, spots, items, npcs, templates, waypoints or commands.",
                    version,
                )
            }
        };
        let mut ids = ids;
        ids.sort();
        ids.dedup();
        let total = ids.len();
        ids.truncate(MAX_LISTED);
        let mut r = CommandResult::ok(format!("{total} {kind}: {}", ids.join(", ")), version);
        r.metadata = Some(json!({"kind": kind, "ids": ids, "total": total}));
        r
    }

    async fn inspect(&self, kind: &str, id: &str, version: i64) -> Result<CommandResult> {
        let w = &self.exp.world;
        let found: Option<Value> = match kind.to_lowercase().as_str() {
            "location" | "locations" => w.locations.get(id).map(|l| json!(l)),
            "area" | "areas" => w.locations.values().find_map(|l| l.areas.get(id)).map(|a| json!(a)),
            "npc" | "npcs" => self.exp.npc_templates.get(id).map(|n| json!(n)).or_else(|| w.npcs.get(id).cloned()),
            "template" | "templates" => self.exp.item_templates.get(id).map(|t| json!(t)),
            "waypoint" | "waypoints" => self.exp.waypoints.get(id).map(|x| json!(x)),
            "command" | "commands" => {
                self.exp.commands.get(id).or_else(|| self.exp.admin_commands.get(id)).map(|c| json!(c))
            }
            "item" | "items" => self.live_item(id).await?.map(|i| {
                let mut v = merged(self.exp, &i.instance);
                v["holder"] = json!(i.holder.encode());
                v
            }),
            _ => return Ok(CommandResult::fail("Inspect what? @inspect <kind> <id>.", version)),
        };
        Ok(match found {
            Some(v) => {
                let mut r = CommandResult::ok(format!("{kind} {id}"), version);
                r.metadata = Some(v);
                r
            }
            None => CommandResult::fail(format!("There is no {kind} {id}."), version),
        })
    }

    async fn live_item(&self, id: &str) -> Result<Option<LiveItem>> {
        self.store().item(self.world, id).await
    }

    async fn where_is(&self, id: &str, version: i64) -> Result<CommandResult> {
        Ok(match self.live_item(id).await? {
            Some(i) => {
                let place = match &i.holder {
                    Holder::Area { location, area, spot } if spot.is_empty() => format!("in {location}/{area}"),
                    Holder::Area { location, area, spot } => format!("in {location}/{area}, at {spot}"),
                    Holder::Player(u) => format!("carried by player {u}"),
                    Holder::Npc(n) => format!("given to {}", npc_name(self.exp, n)),
                    Holder::Gone => "gone (used up or deleted)".into(),
                };
                let mut r = CommandResult::ok(format!("{id} is {place}."), version);
                r.metadata = Some(json!({"instance_id": id, "holder": i.holder.encode()}));
                r
            }
            None => CommandResult::fail(format!("There is no item {id}."), version),
        })
    }

    fn find(&self, text: &str, version: i64) -> CommandResult {
        let t = text.trim().to_lowercase();
        if t.is_empty() {
            return CommandResult::fail("Find what? @find <text>.", version);
        }
        let mut hits = Vec::new();
        let mut hit = |kind: &str, id: &str, fields: &[&str]| {
            if fields.iter().any(|f| f.to_lowercase().contains(&t)) {
                hits.push(json!({"kind": kind, "id": id}));
            }
        };
        for (lid, l) in &self.exp.world.locations {
            hit("location", lid, &[lid, &l.name, &l.description]);
            for (aid, a) in &l.areas {
                hit("area", aid, &[aid, &a.name, &a.description]);
            }
        }
        for (id, x) in &self.exp.item_templates {
            hit("template", id, &[id, &x.name, &x.description]);
        }
        for (id, x) in &self.exp.npc_templates {
            hit("npc", id, &[id, &x.name]);
        }
        for (_, _, _, i) in crate::state::content_items(self.exp) {
            hit("item", &i.instance_id, &[&i.instance_id, i.semantic_name.as_deref().unwrap_or_default()]);
        }
        for (id, x) in &self.exp.waypoints {
            hit("waypoint", id, &[id, &x.name]);
        }
        let total = hits.len();
        hits.truncate(MAX_LISTED);
        let mut r = CommandResult::ok(format!("{total} found for \"{text}\"."), version);
        r.metadata = Some(json!({"results": hits, "total": total}));
        r
    }

    async fn stats(&self, version: i64) -> Result<CommandResult> {
        let (players, items) = self.store().counts(self.world).await?;
        let mut r = CommandResult::ok(format!("{players} players, {items} items in play, version {version}."), version);
        r.metadata = Some(json!({"players": players, "items": items, "snapshot_version": version,
                                 "locations": self.exp.world.locations.len(), "templates": self.exp.item_templates.len()}));
        Ok(r)
    }

    pub(crate) async fn spawn(&self, template: &str, at: Option<&str>, version: i64) -> Result<CommandResult> {
        if !self.exp.item_templates.contains_key(template) {
            return Ok(CommandResult::fail(format!("There is no item template {template}."), version));
        }
        let p = self.store().player(self.world, self.user_id).await?;
        let (location, area) = match at {
            Some(a) => match self.exp.world.locations.iter().find(|(_, l)| l.areas.contains_key(a)) {
                Some((l, _)) => (l.clone(), a.to_string()),
                None => return Ok(CommandResult::fail(format!("There is no area {a}."), version)),
            },
            None => (p.current_location.clone(), p.current_area.clone()),
        };
        let mut c = self.store().begin(self.world).await?;
        let holder = Holder::Area { location, area: area.clone(), spot: String::new() };
        let item = c.spawn(template, &holder).await?;
        let change = StateChange {
            operation: "add".into(),
            area_id: Some(area.clone()),
            path: None,
            instance_id: item.instance_id.clone(),
            template_id: Some(template.to_string()),
            item: Some(merged(self.exp, &item)),
        };
        let id = item.instance_id.clone();
        self.finish(c, format!("Spawned {id} in {area}."), vec![change], Some(id)).await
    }

    async fn delete_item(&self, id: &str, version: i64) -> Result<CommandResult> {
        let Some(item) = self.live_item(id).await? else {
            return Ok(CommandResult::fail(format!("There is no item {id}."), version));
        };
        let mut c = self.store().begin(self.world).await?;
        c.place_item(id, &Holder::Gone).await?;
        let change = StateChange {
            operation: "remove".into(),
            area_id: match &item.holder {
                Holder::Area { area, .. } => Some(area.clone()),
                _ => None,
            },
            path: matches!(item.holder, Holder::Player(_)).then(|| "player.inventory".to_string()),
            instance_id: id.to_string(),
            template_id: Some(item.instance.template_id.clone()),
            item: None,
        };
        self.finish(c, format!("Deleted {id}."), vec![change], Some(id.to_string())).await
    }

    async fn edit_item(&self, id: &str, field: &str, words: &[&str], version: i64) -> Result<CommandResult> {
        let value = words.get(4..).map(|w| w.join(" ")).unwrap_or_default();
        let Some(item) = self.live_item(id).await? else {
            return Ok(CommandResult::fail(format!("There is no item {id}."), version));
        };
        if value.is_empty() {
            return Ok(CommandResult::fail("@edit item <id> <field> <value>.", version));
        }
        let mut next = item.instance.clone();
        let as_bool = |v: &str| match v.to_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        };
        match field {
            "semantic_name" => next.semantic_name = Some(value.chars().take(200).collect()),
            "visible" | "collectible" => {
                let Some(b) = as_bool(&value) else {
                    return Ok(CommandResult::fail(format!("{field} is true or false."), version));
                };
                if field == "visible" {
                    next.visible = Some(b);
                } else {
                    next.collectible = Some(b);
                }
            }
            f if f.starts_with("state.") && f.len() > 6 && f.len() <= 70 => {
                let v =
                    serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value.chars().take(1_000).collect()));
                next.state.get_or_insert_with(Default::default).insert(f[6..].to_string(), v);
            }
            _ => {
                return Ok(CommandResult::fail(
                    "Editable fields: semantic_name, visible, collectible, state.<key>.",
                    version,
                ))
            }
        }
        let mut c = self.store().begin(self.world).await?;
        c.set_item(&next).await?;
        let change = StateChange {
            operation: "update".into(),
            area_id: match &item.holder {
                Holder::Area { area, .. } => Some(area.clone()),
                _ => None,
            },
            path: matches!(item.holder, Holder::Player(_)).then(|| "player.inventory".to_string()),
            instance_id: id.to_string(),
            template_id: Some(next.template_id.clone()),
            item: Some(merged(self.exp, &next)),
        };
        self.finish(c, format!("{id}: {field} = {value}."), vec![change], Some(id.to_string())).await
    }

    async fn reset(&self, what: &str, who: &str, version: i64) -> Result<CommandResult> {
        let mut c = self.store().begin(self.world).await?;
        let (message, change) = match what.to_lowercase().as_str() {
            "experience" | "world" => {
                c.reset(self.exp, None).await?;
                ("The world is back to its start (@reset undo puts it back).".to_string(), "world")
            }
            "player" if !who.is_empty() => {
                c.reset(self.exp, Some(who)).await?;
                (format!("Player {who} starts again (@reset undo puts them back)."), "player")
            }
            "undo" => {
                if !c.undo_reset().await? {
                    drop(c);
                    return Ok(CommandResult::fail("There is no reset to undo.", version));
                }
                ("The last reset is undone.".to_string(), "undo")
            }
            _ => {
                drop(c);
                return Ok(CommandResult::fail("@reset experience, @reset player <user id> or @reset undo.", version));
            }
        };
        let changes = vec![StateChange {
            operation: "update".into(),
            area_id: None,
            path: Some(format!("reset.{change}")),
            instance_id: self.world.to_string(),
            template_id: None,
            item: None,
        }];
        self.finish(c, message, changes, None).await
    }
}
