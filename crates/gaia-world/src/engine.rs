//! The world engine: the experiences loaded from the vault, their live state, and the commands.

use crate::command::{parse, Action, CommandResult, StateChange, Verb, FAST_COMMANDS};
use crate::content::{Area, Catalog, Experience, ItemTemplate, Location};
use crate::error::{Result, WorldError};
use crate::geo::GeoIndex;
use crate::state::{world_id, Change, Holder, LiveItem, LocationSnapshot, PlayerState, WorldStore};
use gaia_core::events::{Event, EventBus};
use gaia_core::storage::Storage;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Game worlds: the experiences and their live state. Cheap to clone.
#[derive(Clone)]
pub struct Worlds {
    inner: Arc<Inner>,
}

struct Inner {
    store: WorldStore,
    events: EventBus,
    catalog: RwLock<Arc<Catalog>>,
    /// Loads started (`begin_load`) and the newest one applied: an older load never replaces a newer one.
    loads: std::sync::atomic::AtomicU64,
    applied: std::sync::Mutex<u64>,
    /// The conversation engine, for the commands that need a model (`talk`, rules commands).
    engine: Option<gaia_chat::Engine>,
    /// The places of worlds their administrators edited ([`crate::places`]), by world id: the content
    /// they were made from, the version of the world's last place edit, and the result.
    edited: std::sync::Mutex<HashMap<String, EditedPlaces>>,
    /// The areas of each location shown lately (`area_of_interest`), by world and location: the
    /// experience and version they were built at.
    zones: std::sync::Mutex<HashMap<(String, String), BuiltZone>>,
    /// The geographic index of each experience, with the experience it was built from.
    geo: std::sync::Mutex<HashMap<String, BuiltIndex>>,
    /// What NPCs remember, as this instance keeps it ready for recall.
    pub(crate) recollections: crate::memory::Recollections,
    /// Whether NPCs learn facts from talks (a background model call after each).
    pub(crate) npc_memory: std::sync::atomic::AtomicBool,
}

/// A geographic index and the experience it was built from.
type BuiltIndex = (Arc<Experience>, Arc<GeoIndex>);

/// A location's areas as shown, the experience and the version they were built at.
type BuiltZone = (Arc<Experience>, i64, Arc<Map<String, Value>>);

struct EditedPlaces {
    base: Arc<Experience>,
    places_version: i64,
    experience: Arc<Experience>,
}

/// Most worlds whose edited places are kept built (the cache is emptied when full).
const MAX_EDITED_WORLDS: usize = 1_024;

/// Who runs a command: the player, whether they may use the experience's admin commands, and their
/// admission to call models (needed by `talk` and the rules commands; without it those answer that
/// they need a model).
#[derive(Clone)]
pub struct Caller {
    /// The player's user id.
    pub user_id: String,
    /// May use the `@` admin commands (`experience:admin` on `/experiences/<exp>`).
    pub admin: bool,
    admitted: Option<gaia_chat::Admitted>,
    /// Where an NPC's answer goes as it is written (a game socket), when somewhere.
    pub(crate) speech: Option<SpeechSink>,
}

/// What an NPC says, as it is written: `(npc_id, text)` pieces of its answer, in order (the emotion
/// tag left out), for a game client to show before the answer is complete.
pub type SpeechSink = std::sync::Arc<dyn Fn(&str, &str) + Send + Sync>;

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user_id", &self.user_id)
            .field("admin", &self.admin)
            .field("admitted", &self.admitted.is_some())
            .field("speech", &self.speech.is_some())
            .finish()
    }
}

impl Caller {
    /// A player without a model: the fast commands only.
    pub fn player(user_id: impl Into<String>) -> Caller {
        Caller { user_id: user_id.into(), admin: false, admitted: None, speech: None }
    }

    /// A player admitted to call models by the conversation engine (`Engine::admit`).
    pub fn admitted(admitted: gaia_chat::Admitted) -> Caller {
        Caller { user_id: admitted.principal().user_id.clone(), admin: false, admitted: Some(admitted), speech: None }
    }

    /// The same caller, whose NPC answers are also streamed to `sink` as the model writes them (the
    /// command's result still carries the whole answer).
    pub fn with_speech(mut self, sink: SpeechSink) -> Caller {
        self.speech = Some(sink);
        self
    }

    /// The same caller, allowed (or not) to use the admin commands.
    pub fn with_admin(mut self, admin: bool) -> Caller {
        self.admin = admin;
        self
    }
}

impl From<&str> for Caller {
    fn from(user_id: &str) -> Caller {
        Caller::player(user_id)
    }
}

impl From<&String> for Caller {
    fn from(user_id: &String) -> Caller {
        Caller::player(user_id.as_str())
    }
}

impl std::fmt::Debug for Worlds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worlds").field("experiences", &self.catalog().experiences.len()).finish_non_exhaustive()
    }
}

/// A reference to a [`Worlds`] that does not keep it alive (for the holders it holds itself, such as
/// the conversation engine's tool catalog, so that no cycle keeps the database pool open).
#[derive(Clone, Debug, Default)]
pub struct WeakWorlds(std::sync::Weak<Inner>);

impl WeakWorlds {
    /// The engine, while it exists.
    pub fn upgrade(&self) -> Option<Worlds> {
        self.0.upgrade().map(|inner| Worlds { inner })
    }
}

/// A player's view of a world (`GET …/state`).
#[derive(Debug, Clone, Serialize)]
pub struct PlayerView {
    /// Experience.
    pub experience: String,
    /// The version the view is at.
    pub snapshot_version: i64,
    /// Where the player is, what they carry, their stats and quests.
    pub player: Value,
}

impl Worlds {
    /// An engine over `storage` (migrated), publishing changes on `events`, with no experience yet
    /// ([`Worlds::set_catalog`]).
    pub fn new(storage: Storage, events: EventBus) -> Worlds {
        Worlds::build(storage, events, None)
    }

    /// An engine whose `talk` and rules commands call models through `engine` (the conversation
    /// engine: admitted, routed and metered like every model call).
    pub fn with_engine(storage: Storage, events: EventBus, engine: gaia_chat::Engine) -> Worlds {
        Worlds::build(storage, events, Some(engine))
    }

    fn build(storage: Storage, events: EventBus, engine: Option<gaia_chat::Engine>) -> Worlds {
        Worlds {
            inner: Arc::new(Inner {
                store: WorldStore::new(storage),
                events,
                catalog: RwLock::new(Arc::new(Catalog::default())),
                loads: Default::default(),
                applied: Default::default(),
                engine,
                edited: Default::default(),
                geo: Default::default(),
                zones: Default::default(),
                recollections: Default::default(),
                npc_memory: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    /// What NPC `npc_id` of experience `exp` remembers of the caller that matters for `message`: the
    /// memories its next answer to that message is given (at most [`crate::PROMPT_MEMORIES`]; by
    /// relevance with the caller's admission to the embedding model, else by importance and recency).
    pub async fn recall_npc_memories(
        &self,
        exp: &str,
        caller: impl Into<Caller>,
        npc_id: &str,
        message: &str,
    ) -> Result<Vec<crate::NpcMemory>> {
        let caller = caller.into();
        let exp = self.experience(exp)?;
        let world = world_id(&exp, &caller.user_id);
        self.recall_in(&world, &caller, npc_id, message).await
    }

    async fn recall_in(&self, world: &str, caller: &Caller, npc: &str, message: &str) -> Result<Vec<crate::NpcMemory>> {
        let storage = self.inner.store.storage();
        let embedder = self
            .inner
            .engine
            .as_ref()
            .zip(caller.admitted.as_ref())
            .and_then(|(e, a)| e.embedder(a.clone(), crate::MEMORY_ENDPOINT));
        let embedder = embedder.as_ref().map(|e| e as &dyn gaia_core::vectors::Embedder);
        let who = (world, caller.user_id.as_str(), npc);
        self.inner.recollections.recall(storage.pool(), embedder, storage, who, message).await
    }

    /// Whether NPCs learn facts from each talk (on by default; a background model call after each
    /// talk, metered as `world_memory`). What they already remember is recalled either way.
    pub fn set_npc_memory(&self, on: bool) {
        self.inner.npc_memory.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// What NPC `npc_id` of experience `exp` remembers of `user_id`, oldest first.
    pub async fn npc_memories(&self, exp: &str, user_id: &str, npc_id: &str) -> Result<Vec<crate::NpcMemory>> {
        let exp = self.experience(exp)?;
        let world = world_id(&exp, user_id);
        crate::memory::list(self.inner.store.storage().pool(), &world, user_id, npc_id).await
    }

    /// Makes NPC `npc_id` forget what it remembers of `user_id`: one memory (`Some(id)`) or all;
    /// how many were forgotten.
    pub async fn forget_npc_memories(&self, exp: &str, user_id: &str, npc_id: &str, id: Option<&str>) -> Result<u64> {
        let exp = self.experience(exp)?;
        let world = world_id(&exp, user_id);
        let storage = self.inner.store.storage();
        let space = self
            .inner
            .engine
            .as_ref()
            .and_then(|e| e.embedder(gaia_chat::Admitted::internal("world_memory"), crate::MEMORY_ENDPOINT))
            .map(|e| gaia_core::vectors::Embedder::space(&e));
        let vectors = space.map(|s| (storage as &dyn gaia_core::vectors::VectorStore, s));
        let n = crate::memory::forget(storage.pool(), vectors, (&world, user_id, npc_id), id).await?;
        self.inner.recollections.drop_kept(&world, user_id, npc_id);
        Ok(n)
    }

    /// A reference that does not keep the engine alive.
    pub fn downgrade(&self) -> WeakWorlds {
        WeakWorlds(Arc::downgrade(&self.inner))
    }

    /// Replaces the experiences (after loading them from the vault, and again after each sync).
    /// Live state stays: worlds already started keep their items; places and templates are read from
    /// the new content.
    pub fn set_catalog(&self, catalog: Catalog) {
        for e in &catalog.errors {
            tracing::warn!(experience = %e.experience, file = %e.file, field = %e.field, "experience skipped: {}", e.message);
        }
        *self.inner.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    /// Marks the start of a load of the experiences (reading the vault takes a while): pass the
    /// number to [`Worlds::set_catalog_from`], so that a load that started earlier and ends later does
    /// not replace a newer one.
    pub fn begin_load(&self) -> u64 {
        self.inner.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Sets the catalog of load `load` ([`Worlds::begin_load`]) unless a newer load was applied.
    pub fn set_catalog_from(&self, load: u64, catalog: Catalog) {
        let mut applied = self.inner.applied.lock().unwrap_or_else(|e| e.into_inner());
        if load < *applied {
            return;
        }
        *applied = load;
        self.set_catalog(catalog);
    }

    /// The experiences loaded, and the problems of those that were not.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One experience.
    pub fn experience(&self, id: &str) -> Result<Arc<Experience>> {
        self.catalog().experiences.get(id).cloned().ok_or_else(|| WorldError::NotFound(format!("experience {id}")))
    }

    /// The view of `user_id` in experience `exp` (they join it when new: starting place and inventory).
    pub async fn view(&self, exp: &str, user_id: &str) -> Result<PlayerView> {
        let (exp, _, seen) = self.enter(exp, user_id).await?;
        Ok(PlayerView {
            experience: exp.config.id.clone(),
            snapshot_version: seen.version,
            player: player_json(&exp, &seen.player, &seen.inventory),
        })
    }

    /// The id of the world `user_id` plays in experience `exp` (they join it when new: the starting
    /// place and inventory). One query for a returning player.
    pub async fn join(&self, exp: &str, user_id: &str) -> Result<String> {
        let base = self.experience(exp)?;
        Ok(self.inner.store.ensure(&base, user_id).await?.0)
    }

    /// The world `user_id` plays in experience `exp` (they join it when new), the experience as
    /// that world has it (its content with the places its administrators edited) and what the
    /// player sees there now: for a returning player, one database statement.
    pub(crate) async fn enter(&self, exp: &str, user_id: &str) -> Result<(Arc<Experience>, String, LocationSnapshot)> {
        let base = self.experience(exp)?;
        let world = world_id(&base, user_id);
        let seen = match self.inner.store.location_snapshot(&world, user_id).await? {
            Some(seen) => seen,
            None => {
                self.inner.store.ensure(&base, user_id).await?;
                self.inner
                    .store
                    .location_snapshot(&world, user_id)
                    .await?
                    .ok_or_else(|| WorldError::NotFound(format!("player {user_id} in world {world}")))?
            }
        };
        let exp = self.places(base, &world, seen.places_version).await?;
        Ok((exp, world, seen))
    }

    /// Experience `base` as world `world` has it at `places_version`: its content with the places
    /// its administrators edited (rebuilt when that version changes, kept per world).
    async fn places(&self, base: Arc<Experience>, world: &str, places_version: i64) -> Result<Arc<Experience>> {
        if places_version == 0 {
            return Ok(base);
        }
        let cached = {
            let edited = self.inner.edited.lock().unwrap_or_else(|e| e.into_inner());
            edited
                .get(world)
                .filter(|e| e.places_version == places_version && Arc::ptr_eq(&e.base, &base))
                .map(|e| e.experience.clone())
        };
        if let Some(experience) = cached {
            return Ok(experience);
        }
        let edits = self.inner.store.place_edits(world).await?;
        let experience = Arc::new(crate::places::apply(&base, &edits));
        let mut edited = self.inner.edited.lock().unwrap_or_else(|e| e.into_inner());
        if edited.len() >= MAX_EDITED_WORLDS {
            edited.clear();
        }
        edited.insert(world.to_string(), EditedPlaces { base, places_version, experience: experience.clone() });
        Ok(experience)
    }

    /// The waypoints of experience `exp` within `radius_m` metres of `at` (at most 10 km), nearest
    /// first, with their distance; `pathway` waypoints are left out (spec §5).
    pub fn nearby(
        &self,
        exp: &str,
        at: crate::content::Gps,
        radius_m: f64,
    ) -> Result<Vec<(f64, crate::content::Waypoint)>> {
        let exp = self.experience(exp)?;
        let geo = self.geo(&exp);
        Ok(geo.waypoints_near(at, radius_m).into_iter().map(|(d, w)| (d, w.clone())).collect())
    }

    /// The commands a player of `exp` may send, as JSON Schemas by name (`commands_schema.commands`):
    /// the fast commands, `talk`, the rules commands, and for administrators (`admin`) the `@` ones.
    pub fn commands_schema(&self, exp: &str, admin: bool) -> Result<Value> {
        Ok(crate::command::commands_schema(&*self.experience(exp)?, admin))
    }

    /// The geographic index of `exp` (built once per loaded or edited experience).
    pub(crate) fn geo(&self, exp: &Arc<Experience>) -> Arc<GeoIndex> {
        let mut geo = self.inner.geo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_from, index)) = geo.get(&exp.config.id) {
            if Arc::ptr_eq(built_from, exp) {
                return index.clone();
            }
        }
        let index = Arc::new(GeoIndex::build(exp));
        if geo.len() >= MAX_EDITED_WORLDS {
            geo.clear();
        }
        geo.insert(exp.config.id.clone(), (exp.clone(), index.clone()));
        index
    }

    pub(crate) fn store(&self) -> &WorldStore {
        &self.inner.store
    }

    /// The areas of `location` of `world` as built at `version` from `exp`, if they are kept.
    pub(crate) fn zone_cached(
        &self,
        exp: &Arc<Experience>,
        world: &str,
        location: &str,
        version: i64,
    ) -> Option<Arc<Map<String, Value>>> {
        let zones = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        let (built_from, at, areas) = zones.get(&(world.to_string(), location.to_string()))?;
        (*at == version && Arc::ptr_eq(built_from, exp)).then(|| areas.clone())
    }

    pub(crate) fn cache_zone(
        &self,
        exp: &Arc<Experience>,
        world: &str,
        location: &str,
        version: i64,
        areas: Arc<Map<String, Value>>,
    ) {
        let mut zones = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        if zones.len() >= MAX_EDITED_WORLDS {
            zones.clear();
        }
        let key = (world.to_string(), location.to_string());
        // Never replace a newer version by an older one.
        if zones.get(&key).is_some_and(|(_, at, _)| *at > version) {
            return;
        }
        zones.insert(key, (exp.clone(), version, areas));
    }

    /// Whether `action` may call a model (`talk`, a rules command, or text that is none of the fast
    /// commands): a server admits the caller to call models only then ([`Caller::admitted`]).
    pub fn needs_model(action: &Action) -> bool {
        let text = action.action.trim();
        !text.starts_with('@')
            && match crate::scene::scene_kind(action) {
                Some(turn) => turn,
                None => crate::talk::is_talk(action) || parse(text).is_none(),
            }
    }

    /// Whether `action` needs the player to be where they are said to be (collecting, giving,
    /// talking to an NPC, completing a quest): a game client whose position is not trusted is
    /// refused these.
    pub fn location_bound(action: &Action) -> bool {
        crate::talk::is_talk(action)
            || crate::scene::scene_kind(action).is_some()
            || parse(&action.action).is_some_and(|p| matches!(p.verb, Verb::Collect | Verb::Give | Verb::CompleteQuest))
    }

    /// What NPC `npc_id` of experience `exp` thinks of `user_id` (trust, recent exchanges, facts).
    pub async fn relationship(&self, exp: &str, user_id: &str, npc_id: &str) -> Result<crate::Relationship> {
        let exp = self.experience(exp)?;
        let world = world_id(&exp, user_id);
        self.inner.store.relationship(&world, user_id, npc_id).await
    }

    /// Runs a command of `user_id` in experience `exp`: a fast command (`look`, `go`, `collect_item`,
    /// `drop_item`, `examine`, `use_item`, `inventory`, `give_item`, `accept_quest`, `complete_quest`, or simple text
    /// naming one). A command that cannot be done here is a result with `success: false` and nothing
    /// changed; an error is only bad input (400), an unknown experience (404) or the database.
    pub async fn command(&self, exp: &str, caller: impl Into<Caller>, action: &Action) -> Result<CommandResult> {
        action.check().map_err(WorldError::Invalid)?;
        let caller = caller.into();
        let user_id = caller.user_id.as_str();
        let (exp, world, seen) = self.enter(exp, user_id).await?;
        let ctx = Ctx { worlds: self, exp: &exp, world: &world, user_id, caller: &caller, seen: &seen };
        if action.action.trim_start().starts_with('@') {
            return ctx.admin_command(action).await;
        }
        if let Some(r) = ctx.talk_if_asked(action).await? {
            return Ok(r);
        }
        if let Some(r) = ctx.scene_if_asked(action).await? {
            return Ok(r);
        }
        let Some(parsed) = parse(&action.action) else {
            return ctx.rules_command(action).await;
        };
        let object = action.instance_id.clone().or(parsed.object.clone());
        let result = match parsed.verb {
            Verb::Look => ctx.look(),
            Verb::Inventory => ctx.inventory(),
            Verb::Examine => ctx.examine(object.as_deref()),
            Verb::Go => ctx.go(action.destination.as_deref().or(parsed.object.as_deref())).await?,
            Verb::Collect => ctx.collect(object.as_deref()).await?,
            Verb::Drop => ctx.drop_item(object.as_deref()).await?,
            Verb::Use => ctx.use_item(object.as_deref()).await?,
            Verb::Give => {
                ctx.give(object.as_deref(), action.target_npc_id.as_deref().or(parsed.npc.as_deref())).await?
            }
            Verb::AcceptQuest => ctx.accept_quest(action.quest_id.as_deref().or(parsed.object.as_deref())).await?,
            Verb::CompleteQuest => ctx.complete_quest(action.quest_id.as_deref().or(parsed.object.as_deref())).await?,
        };
        Ok(result)
    }

    /// Publishes a change as a `world_update` (every change, even one with nothing a client shows, so
    /// that the versions on the bus have no holes: a hole means events were lost).
    pub(crate) fn publish(&self, exp: &Experience, world: &str, user_id: &str, version: i64, changes: &[StateChange]) {
        self.inner.events.publish(Event::WorldUpdate {
            experience: exp.config.id.clone(),
            world_id: world.to_string(),
            user_id: Some(user_id.to_string()),
            base_version: version - 1,
            snapshot_version: version,
            changes: changes.iter().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect(),
        });
    }
}

/// The great-circle distance between two points, in metres (haversine, mean Earth radius).
pub fn distance_m(a: crate::content::Gps, b: crate::content::Gps) -> f64 {
    const R: f64 = 6_371_008.8;
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlng = (b.lng - a.lng).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlng / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

/// An area as players are shown it (`look`'s `area`, the areas of an area of interest): its spots,
/// each with its items, and the items in no spot. `items`: the visible items in the area.
pub(crate) fn area_json(exp: &Experience, id: &str, a: &Area, items: &[&LiveItem]) -> Value {
    let in_spot = |sid: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|i| matches!(&i.holder, Holder::Area { spot, .. } if spot == sid))
            .map(|i| merged(exp, &i.instance))
            .collect()
    };
    let spots: Map<String, Value> = a
        .spots
        .iter()
        .map(|(sid, s)| {
            (
                sid.clone(),
                json!({"id": sid, "name": s.name, "description": s.description, "items": in_spot(sid), "npcs": s.npcs}),
            )
        })
        .collect();
    json!({"id": id, "name": a.name, "description": a.description, "spots": spots, "items": in_spot(""), "npcs": a.npcs})
}

/// Adds `deltas` to `stats` (a stat stays within 0 and its `max_<stat>`, when there is one); says
/// what changed (`health 80 → 100`).
pub(crate) fn add_stats(stats: &mut Map<String, Value>, deltas: &BTreeMap<String, f64>) -> Vec<String> {
    let mut said = Vec::new();
    for (stat, delta) in deltas {
        let now = stats.get(stat).and_then(Value::as_f64).unwrap_or(0.0);
        let max = stats.get(&format!("max_{stat}")).and_then(Value::as_f64);
        let next = (now + delta).max(0.0);
        let next = max.map_or(next, |m| next.min(m));
        stats.insert(stat.clone(), json!(next.round() as i64));
        said.push(format!("{stat} {now:.0} → {next:.0}"));
    }
    said
}

/// The item as shown: its template's fields, overridden by the instance's.
pub(crate) fn merged(exp: &Experience, item: &crate::content::ItemInstance) -> Value {
    let t = exp.item_templates.get(&item.template_id);
    let mut v = Map::new();
    v.insert("instance_id".into(), item.instance_id.clone().into());
    v.insert("template_id".into(), item.template_id.clone().into());
    v.insert("name".into(), t.map(|t| t.name.clone()).unwrap_or_else(|| item.template_id.clone()).into());
    v.insert("description".into(), t.map(|t| t.description.clone()).unwrap_or_default().into());
    v.insert("collectible".into(), is_collectible(t, item).into());
    v.insert("consumable".into(), t.is_some_and(|t| t.consumable).into());
    if let Some(t) = t.filter(|t| !t.effects.is_empty()) {
        v.insert("effects".into(), json!(t.effects));
    }
    if let Some(s) = &item.semantic_name {
        v.insert("semantic_name".into(), s.clone().into());
    }
    if let Some(s) = &item.state {
        v.insert("state".into(), Value::Object(s.clone()));
    }
    for (k, x) in &item.extra {
        v.insert(k.clone(), x.clone());
    }
    Value::Object(v)
}

fn is_collectible(t: Option<&ItemTemplate>, item: &crate::content::ItemInstance) -> bool {
    item.collectible.unwrap_or_else(|| t.is_some_and(|t| t.collectible))
}

pub(crate) fn visible(item: &LiveItem) -> bool {
    item.instance.visible.unwrap_or(true)
}

pub(crate) fn display_name(exp: &Experience, item: &crate::content::ItemInstance) -> String {
    item.semantic_name
        .clone()
        .or_else(|| exp.item_templates.get(&item.template_id).map(|t| t.name.clone()))
        .unwrap_or_else(|| item.template_id.clone())
}

pub(crate) fn npc_name(exp: &Experience, id: &str) -> String {
    exp.npc_templates
        .get(id)
        .map(|t| t.name.clone())
        .or_else(|| exp.world.npcs.get(id).and_then(|n| n.get("name")).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| id.to_string())
}

pub(crate) fn player_json(exp: &Experience, p: &PlayerState, inventory: &[LiveItem]) -> Value {
    json!({
        "current_location": p.current_location,
        "current_area": p.current_area,
        "inventory": inventory.iter().map(|i| merged(exp, &i.instance)).collect::<Vec<_>>(),
        "stats": p.stats,
        "status_effects": p.status_effects,
        "quests": p.quests,
    })
}

/// Finds the item named by `name` (an instance id, a semantic name, a template name, or a unique
/// part of one) among `items`.
pub(crate) fn find_item<'a>(exp: &Experience, items: &[&'a LiveItem], name: &str) -> Option<&'a LiveItem> {
    let n = crate::command::strip_articles(&name.to_lowercase());
    let n = n.as_str();
    let by = |f: &dyn Fn(&LiveItem) -> bool| items.iter().copied().find(|i| f(i));
    by(&|i| i.instance.instance_id.to_lowercase() == n)
        .or_else(|| by(&|i| i.instance.semantic_name.as_deref().is_some_and(|s| s.to_lowercase() == n)))
        .or_else(|| {
            by(&|i| exp.item_templates.get(&i.instance.template_id).is_some_and(|t| t.name.to_lowercase() == n))
        })
        .or_else(|| by(&|i| i.instance.template_id.to_lowercase() == n))
        .or_else(|| {
            let hits: Vec<&LiveItem> =
                items.iter().copied().filter(|i| display_name(exp, &i.instance).to_lowercase().contains(n)).collect();
            (hits.len() == 1).then(|| hits[0])
        })
}

/// One command's context.
pub(crate) struct Ctx<'a> {
    pub(crate) worlds: &'a Worlds,
    pub(crate) exp: &'a Experience,
    pub(crate) world: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) caller: &'a Caller,
    /// What the player saw when the command began (one snapshot: the version, the player, the items
    /// of their location and their own). A change re-checks what it relies on inside its
    /// transaction (an item is moved only from where it was seen).
    pub(crate) seen: &'a LocationSnapshot,
}

impl Ctx<'_> {
    pub(crate) fn store(&self) -> &WorldStore {
        self.worlds.store()
    }

    /// The conversation engine and the caller's admission, when both are there.
    pub(crate) fn model(&self) -> Option<(&gaia_chat::Engine, &gaia_chat::Admitted)> {
        Some((self.worlds.inner.engine.as_ref()?, self.caller.admitted.as_ref()?))
    }

    /// What NPC `npc` remembers of the player that matters for `message` (nothing when it cannot be
    /// read: the talk goes on without).
    pub(crate) async fn recall(&self, npc: &str, message: &str) -> Vec<crate::NpcMemory> {
        match self.worlds.recall_in(self.world, self.caller, npc, message).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot recall what an NPC remembers");
                Vec::new()
            }
        }
    }

    /// The guardrail rules the experience names, and `more` (an NPC's), compiled by `engine`; a name
    /// the server does not configure is left out (and logged).
    pub(crate) fn guard_rules(&self, engine: &gaia_chat::Engine, more: &[String]) -> gaia_chat::guardrails::RuleSet {
        let g = engine.guardrails();
        let names: Vec<String> = self
            .exp
            .config
            .guardrails
            .iter()
            .chain(more)
            .filter(|n| {
                let known = g.named(std::slice::from_ref(*n)).is_ok();
                if !known {
                    tracing::warn!(experience = %self.exp.config.id, rule = %n, "the experience names a guardrail rule the server does not configure");
                }
                known
            })
            .cloned()
            .collect();
        g.named(&names).unwrap_or_default()
    }

    /// Whether NPCs learn facts from talks here.
    pub(crate) fn learns(&self) -> bool {
        self.worlds.inner.npc_memory.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn place(&self, p: &PlayerState) -> Option<(&Location, &Area)> {
        let l = self.exp.world.locations.get(&p.current_location)?;
        let a = l.areas.get(&p.current_area)?;
        Some((l, a))
    }

    pub(crate) fn me(&self) -> Holder {
        Holder::Player(self.user_id.to_string())
    }

    pub(crate) async fn version(&self) -> Result<i64> {
        self.store().version(self.world).await
    }

    /// Area ids reachable from where the player is: the area's exits, the location's, its other areas.
    fn exits(&self, l: &Location, a: &Area) -> Vec<String> {
        let mut out: Vec<String> = a.exits.iter().chain(&l.exits).cloned().collect();
        out.extend(l.areas.keys().filter(|k| **k != a.id && !a.id.is_empty()).cloned());
        out.retain(|x| *x != a.id);
        out.sort();
        out.dedup();
        out
    }

    /// The location holding area `area` (the current location first).
    fn location_of(&self, area: &str, current: &str) -> Option<String> {
        if self.exp.world.locations.get(current).is_some_and(|l| l.areas.contains_key(area)) {
            return Some(current.to_string());
        }
        self.exp.world.locations.iter().find(|(_, l)| l.areas.contains_key(area)).map(|(id, _)| id.clone())
    }

    pub(crate) fn npcs_here(a: &Area) -> Vec<String> {
        let mut v: Vec<String> = a.npcs.iter().chain(a.spots.values().flat_map(|s| s.npcs.iter())).cloned().collect();
        v.dedup();
        v
    }

    pub(crate) fn look(&self) -> CommandResult {
        let version = self.seen.version;
        let Some((l, a)) = self.place(&self.seen.player) else {
            return CommandResult::fail("You are nowhere this world knows; go somewhere first.", version);
        };
        let items = self.seen.visible_in(&a.id);
        let npcs = Self::npcs_here(a);
        let exits = self.exits(l, a);
        let mut text = format!("{} — {}. {}", l.name, a.name, a.description.trim());
        if !items.is_empty() {
            let names: Vec<String> = items.iter().map(|i| display_name(self.exp, &i.instance)).collect();
            text.push_str(&format!(" You see: {}.", names.join(", ")));
        }
        if !npcs.is_empty() {
            let names: Vec<String> = npcs.iter().map(|n| npc_name(self.exp, n)).collect();
            text.push_str(&format!(" Here: {}.", names.join(", ")));
        }
        if !exits.is_empty() {
            text.push_str(&format!(" Exits: {}.", exits.join(", ")));
        }
        let mut r = CommandResult::ok(text, version);
        r.metadata = Some(json!({
            "location": {"id": l.id, "name": l.name, "description": l.description, "gps": l.gps},
            "area": area_json(self.exp, &a.id, a, &items),
            "npcs": npcs, "exits": exits,
        }));
        r.available_actions = Some(FAST_COMMANDS.iter().map(|c| c.name.to_string()).collect());
        r
    }

    fn inventory(&self) -> CommandResult {
        let version = self.seen.version;
        let items = &self.seen.inventory;
        let text = if items.is_empty() {
            "You carry nothing.".to_string()
        } else {
            let names: Vec<String> = items.iter().map(|i| display_name(self.exp, &i.instance)).collect();
            format!("You carry: {}.", names.join(", "))
        };
        let mut r = CommandResult::ok(text, version);
        r.metadata =
            Some(json!({"inventory": items.iter().map(|i| merged(self.exp, &i.instance)).collect::<Vec<_>>()}));
        r
    }

    fn examine(&self, name: Option<&str>) -> CommandResult {
        let version = self.seen.version;
        let Some(name) = name else {
            return CommandResult::fail("Examine what? Name an item.", version);
        };
        // The inventory, then the area, then the rest of the location.
        let mine: Vec<&LiveItem> = self.seen.inventory.iter().collect();
        let mut found = find_item(self.exp, &mine, name);
        if let Some((l, a)) = self.place(&self.seen.player).filter(|_| found.is_none()) {
            let areas = std::iter::once(&a.id).chain(l.areas.keys().filter(|k| **k != a.id));
            found = areas.into_iter().find_map(|area| find_item(self.exp, &self.seen.visible_in(area), name));
        }
        let Some(item) = found else {
            return CommandResult::fail(format!("There is no {name} here or in your inventory."), version);
        };
        let t = self.exp.item_templates.get(&item.instance.template_id);
        let body = t.map(|t| t.body.trim().to_string()).filter(|b| !b.is_empty());
        let text = body.unwrap_or_else(|| {
            t.map(|t| t.description.clone()).unwrap_or_else(|| display_name(self.exp, &item.instance))
        });
        let mut r = CommandResult::ok(text, version);
        r.metadata = Some(json!({"item": merged(self.exp, &item.instance)}));
        r.item_id = Some(item.instance.instance_id.clone());
        r
    }

    async fn go(&self, destination: Option<&str>) -> Result<CommandResult> {
        let version = self.seen.version;
        let Some(dest) = destination.map(str::trim).filter(|d| !d.is_empty()) else {
            return Ok(CommandResult::fail("Go where? Name an area or a place.", version));
        };
        let Some((l, a)) = self.place(&self.seen.player) else {
            return Ok(CommandResult::fail("You are nowhere this world knows.", version));
        };
        let exits = self.exits(l, a);
        let dest_l = dest.to_lowercase();
        // An area reachable from here (by id or name), or a location one of the exits leads into.
        let target = exits
            .iter()
            .find(|x| x.to_lowercase() == dest_l)
            .cloned()
            .or_else(|| {
                exits
                    .iter()
                    .find(|x| {
                        self.location_of(x, &l.id)
                            .and_then(|lid| self.exp.world.locations.get(&lid))
                            .and_then(|loc| loc.areas.get(*x))
                            .is_some_and(|ar| ar.name.to_lowercase() == dest_l)
                    })
                    .cloned()
            })
            .or_else(|| {
                let loc = self
                    .exp
                    .world
                    .locations
                    .iter()
                    .find(|(id, loc)| id.to_lowercase() == dest_l || loc.name.to_lowercase() == dest_l)?;
                exits.iter().find(|x| loc.1.areas.contains_key(*x)).cloned()
            });
        let Some(area) = target else {
            return Ok(CommandResult::fail(
                format!("You cannot go to {dest} from here. Exits: {}.", exits.join(", ")),
                version,
            ));
        };
        let Some(location) = self.location_of(&area, &l.id) else {
            return Ok(CommandResult::fail(format!("There is no {dest}."), version));
        };
        self.move_to(&location, &area).await
    }

    /// Moves the player to `area` of `location`: one change, published.
    pub(crate) async fn move_to(&self, location: &str, area: &str) -> Result<CommandResult> {
        let mut c = self.store().begin(self.world).await?;
        c.set_place(self.user_id, location, area).await?;
        let mut changes = vec![StateChange::of_player(
            "update",
            "player.location",
            self.user_id,
            json!({"current_location": location, "current_area": area}),
        )];
        // NPCs there may react to the arrival, in the same change.
        let mut reactions = self.react(&mut c, crate::npc::WorldEvent::EntersArea { location, area }).await?;
        changes.extend(std::mem::take(&mut reactions.changes));
        let name = self.exp.world.locations.get(location).and_then(|x| x.areas.get(area)).map(|x| x.name.clone());
        let mut r =
            self.finish(c, format!("You go to {}.", name.unwrap_or_else(|| area.to_string())), changes, None).await?;
        r.metadata = reactions.metadata();
        Ok(r)
    }

    pub(crate) async fn finish(
        &self,
        c: Change,
        message: String,
        changes: Vec<StateChange>,
        item_id: Option<String>,
    ) -> Result<CommandResult> {
        let version = c.commit().await?;
        self.worlds.publish(self.exp, self.world, self.user_id, version, &changes);
        let mut r = CommandResult::ok(message, version);
        r.state_changes = changes;
        r.item_id = item_id;
        Ok(r)
    }

    async fn collect(&self, name: Option<&str>) -> Result<CommandResult> {
        let version = self.seen.version;
        let Some(name) = name else {
            return Ok(CommandResult::fail("Collect what? Name an item.", version));
        };
        let Some((_, a)) = self.place(&self.seen.player) else {
            return Ok(CommandResult::fail("You are nowhere this world knows.", version));
        };
        let Some(item) = find_item(self.exp, &self.seen.visible_in(&a.id), name).cloned() else {
            return Ok(CommandResult::fail(format!("There is no {name} here."), version));
        };
        let template = self.exp.item_templates.get(&item.instance.template_id);
        let label = display_name(self.exp, &item.instance);
        if !is_collectible(template, &item.instance) {
            return Ok(CommandResult::fail(format!("The {label} cannot be collected."), version));
        }
        let mut c = self.store().begin(self.world).await?;
        // Taken only if it is still where it was seen: of two players racing for it, one gets it.
        if !c.move_item(&item.instance.instance_id, &item.holder, &self.me()).await? {
            drop(c);
            return Ok(CommandResult::fail(format!("The {label} is no longer here."), self.version().await?));
        }
        let shown = merged(self.exp, &item.instance);
        let changes = vec![
            StateChange::in_area("remove", &a.id, &item.instance, None),
            StateChange::in_inventory("add", &item.instance, Some(shown)),
        ];
        let id = item.instance.instance_id.clone();
        self.finish(c, format!("You collect the {label}."), changes, Some(id)).await
    }

    /// The item named `name` that the player carries, or the answer saying they do not.
    fn held(&self, name: Option<&str>, what: &str) -> std::result::Result<LiveItem, Box<CommandResult>> {
        let version = self.seen.version;
        let Some(name) = name else {
            return Err(Box::new(CommandResult::fail(format!("{what} what? Name an item you carry."), version)));
        };
        let mine: Vec<&LiveItem> = self.seen.inventory.iter().collect();
        match find_item(self.exp, &mine, name) {
            Some(i) => Ok(i.clone()),
            None => Err(Box::new(CommandResult::fail(format!("You do not carry any {name}."), version))),
        }
    }

    async fn drop_item(&self, name: Option<&str>) -> Result<CommandResult> {
        let item = match self.held(name, "Drop") {
            Ok(i) => i,
            Err(r) => return Ok(*r),
        };
        let Some((l, a)) = self.place(&self.seen.player) else {
            return Ok(CommandResult::fail("You are nowhere this world knows.", self.seen.version));
        };
        let to = Holder::Area { location: l.id.clone(), area: a.id.clone(), spot: String::new() };
        let mut c = self.store().begin(self.world).await?;
        if !c.move_item(&item.instance.instance_id, &item.holder, &to).await? {
            drop(c);
            return Ok(CommandResult::fail("You no longer carry it.", self.version().await?));
        }
        let label = display_name(self.exp, &item.instance);
        let changes = vec![
            StateChange::in_inventory("remove", &item.instance, None),
            StateChange::in_area("add", &a.id, &item.instance, Some(merged(self.exp, &item.instance))),
        ];
        let id = item.instance.instance_id.clone();
        self.finish(c, format!("You drop the {label}."), changes, Some(id)).await
    }

    async fn use_item(&self, name: Option<&str>) -> Result<CommandResult> {
        let item = match self.held(name, "Use") {
            Ok(i) => i,
            Err(r) => return Ok(*r),
        };
        let label = display_name(self.exp, &item.instance);
        let Some(t) = self.exp.item_templates.get(&item.instance.template_id) else {
            return Ok(CommandResult::fail(format!("Nothing happens with the {label}."), self.seen.version));
        };
        if t.effects.is_empty() && !t.consumable {
            return Ok(CommandResult::fail(format!("Nothing happens with the {label}."), self.seen.version));
        }
        let mut c = self.store().begin(self.world).await?;
        let mut p = c.player(self.user_id).await?;
        let said = add_stats(&mut p.stats, &t.effects);
        c.set_player_data(self.user_id, &p).await?;
        let mut changes =
            vec![StateChange::of_player("update", "player.stats", self.user_id, Value::Object(p.stats.clone()))];
        if t.consumable {
            if !c.move_item(&item.instance.instance_id, &item.holder, &Holder::Gone).await? {
                drop(c);
                return Ok(CommandResult::fail("You no longer carry it.", self.version().await?));
            }
            changes.push(StateChange::in_inventory("remove", &item.instance, None));
        }
        let text = if said.is_empty() {
            format!("You use the {label}.")
        } else {
            format!("You use the {label}: {}.", said.join(", "))
        };
        let id = item.instance.instance_id.clone();
        self.finish(c, text, changes, Some(id)).await
    }

    async fn give(&self, name: Option<&str>, npc: Option<&str>) -> Result<CommandResult> {
        let item = match self.held(name, "Give") {
            Ok(i) => i,
            Err(r) => return Ok(*r),
        };
        let version = self.seen.version;
        let Some(npc) = npc.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(CommandResult::fail("Give it to whom? Name someone here.", version));
        };
        let Some((_, a)) = self.place(&self.seen.player) else {
            return Ok(CommandResult::fail("You are nowhere this world knows.", version));
        };
        let want = npc.to_lowercase();
        let Some(npc_id) = Self::npcs_here(a)
            .into_iter()
            .find(|n| n.to_lowercase() == want || npc_name(self.exp, n).to_lowercase() == want)
        else {
            return Ok(CommandResult::fail(format!("There is no {npc} here."), version));
        };
        let mut c = self.store().begin(self.world).await?;
        if !c.move_item(&item.instance.instance_id, &item.holder, &Holder::Npc(npc_id.clone())).await? {
            drop(c);
            return Ok(CommandResult::fail("You no longer carry it.", self.version().await?));
        }
        // A gift raises the NPC's trust in the player (by the template's `gift_effects`), and their
        // goals may react to it.
        let mut rel = c.relationship(self.user_id, &npc_id).await?;
        let gift = self.exp.npc_templates.get(&npc_id).map_or_else(crate::content::gift_effects, |t| t.gift_effects);
        rel.add(&gift);
        c.set_relationship(self.user_id, &npc_id, &rel).await?;
        let label = display_name(self.exp, &item.instance);
        let mut changes = vec![StateChange::in_inventory("remove", &item.instance, None)];
        let template = item.instance.template_id.clone();
        let ev = crate::npc::WorldEvent::ItemGiven { npc: &npc_id, template: &template };
        let mut reactions = self.react(&mut c, ev).await?;
        // The relationship as the gift and the goals left it, once.
        let rel = reactions.relationship(&npc_id, rel);
        let mine = crate::npc::relationship_change(self.user_id, &npc_id, &rel);
        changes.extend(reactions.changes.into_iter().filter(|ch| ch.path != mine.path));
        changes.push(mine);
        let id = item.instance.instance_id.clone();
        let mut r = self
            .finish(c, format!("You give the {label} to {}.", npc_name(self.exp, &npc_id)), changes, Some(id))
            .await?;
        let mut meta = json!({"npc_id": npc_id, "trust": rel.trust, "relationship": rel.view()});
        if !reactions.speech.is_empty() {
            meta["npc_reactions"] = Value::Array(reactions.speech);
        }
        r.metadata = Some(meta);
        Ok(r)
    }
}
