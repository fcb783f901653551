//! Live world state in the database (SQLite or PostgreSQL, the tables of migration `…18_worlds`):
//! world instances with their version, where every item instance is (`world_items.holder`), each
//! player's view and each player's relationship with each NPC.
//!
//! Every change is one transaction that first raises the world's version
//! (`UPDATE world_instances SET version = version + 1 … RETURNING version`): on PostgreSQL that row
//! lock orders the writers of one world, on SQLite the database's write lock does, so two commands
//! never see the same version and a conditional move (`UPDATE world_items … WHERE holder = <where it
//! must be>`) decides races: two players collecting one item, exactly one gets it.

use crate::content::{Experience, ItemInstance, StateModel};
use crate::error::{Result, WorldError};
use gaia_core::storage::Storage;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Where an item is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// In a spot of an area (`spot` empty: in the area itself).
    Area { location: String, area: String, spot: String },
    /// In a player's inventory.
    Player(String),
    /// Given to an NPC.
    Npc(String),
    /// Used up or removed.
    Gone,
}

impl Holder {
    pub(crate) fn encode(&self) -> String {
        match self {
            Holder::Area { location, area, spot } => format!("area:{location}/{area}/{spot}"),
            Holder::Player(u) => format!("player:{u}"),
            Holder::Npc(n) => format!("npc:{n}"),
            Holder::Gone => "gone".into(),
        }
    }

    pub(crate) fn decode(s: &str) -> Holder {
        if let Some(rest) = s.strip_prefix("area:") {
            let mut parts = rest.splitn(3, '/');
            let location = parts.next().unwrap_or_default().to_string();
            let area = parts.next().unwrap_or_default().to_string();
            let spot = parts.next().unwrap_or_default().to_string();
            Holder::Area { location, area, spot }
        } else if let Some(u) = s.strip_prefix("player:") {
            Holder::Player(u.to_string())
        } else if let Some(n) = s.strip_prefix("npc:") {
            Holder::Npc(n.to_string())
        } else {
            Holder::Gone
        }
    }

    /// The location and area of an item held in an area (`world_items.location_id`, `area_id`);
    /// empty for any other holder.
    pub(crate) fn place(&self) -> (&str, &str) {
        match self {
            Holder::Area { location, area, .. } => (location, area),
            _ => ("", ""),
        }
    }
}

/// An item instance of a live world.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveItem {
    pub(crate) instance: ItemInstance,
    pub(crate) holder: Holder,
}

/// A player's view of a world.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerState {
    /// Location id.
    pub current_location: String,
    /// Area id.
    pub current_area: String,
    /// Stats (`health`, `max_health`, …).
    pub stats: Map<String, Value>,
    /// Status effects.
    pub status_effects: Vec<Value>,
    /// Quests by id (`{status, …}`).
    pub quests: Map<String, Value>,
}

/// A player's relationship with an NPC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relationship {
    /// 0–100, 50 to start with.
    pub trust: i64,
    /// 0–100, 50 to start with.
    pub respect: i64,
    /// 0–100, 0 to start with.
    pub familiarity: i64,
    /// What the NPC last felt towards the player.
    pub emotion: crate::content::Emotion,
    /// The last exchanges (`{player, npc, at}`), oldest first, at most 20.
    pub exchanges: Vec<Value>,
    /// Facts the NPC learned.
    pub facts: Vec<String>,
    /// The NPC's goals and actions for this player.
    pub mind: MindState,
}

impl Default for Relationship {
    fn default() -> Relationship {
        Relationship {
            trust: START_TRUST,
            respect: START_RESPECT,
            familiarity: 0,
            emotion: crate::content::Emotion::default(),
            exchanges: Vec::new(),
            facts: Vec::new(),
            mind: MindState::default(),
        }
    }
}

impl Relationship {
    /// Adds `d` to the axes (each kept within 0–100).
    pub fn add(&mut self, d: &crate::content::Axes) {
        self.trust = (self.trust + d.trust.unwrap_or(0)).clamp(0, 100);
        self.respect = (self.respect + d.respect.unwrap_or(0)).clamp(0, 100);
        self.familiarity = (self.familiarity + d.familiarity.unwrap_or(0)).clamp(0, 100);
    }

    /// What `min` requires that the relationship does not reach (`trust 60 needed, 52 now`), if any.
    pub fn unmet(&self, min: &crate::content::Axes) -> Option<String> {
        min.named().find_map(|(name, want)| {
            let have = match name {
                "trust" => self.trust,
                "respect" => self.respect,
                _ => self.familiarity,
            };
            (have < want).then(|| format!("{name} {want} needed, {have} now"))
        })
    }

    /// The axes and emotion, as the player and the game see them.
    pub fn view(&self) -> Value {
        serde_json::json!({"trust": self.trust, "respect": self.respect, "familiarity": self.familiarity,
                           "emotion": self.emotion})
    }
}

/// The state of an NPC's goals and actions for one player.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct MindState {
    /// By goal id.
    #[serde(default)]
    pub goals: std::collections::BTreeMap<String, GoalState>,
    /// Items made for the player by `create` actions, by template.
    #[serde(default)]
    pub made: std::collections::BTreeMap<String, u32>,
}

/// Where one goal stands for one player.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct GoalState {
    /// Times it fired.
    #[serde(default)]
    pub fired: u32,
    /// Whether the NPC pursues it (fired, not achieved).
    #[serde(default)]
    pub active: bool,
    /// Whether its `until` happened.
    #[serde(default)]
    pub achieved: bool,
}

/// Exchanges kept per player and NPC.
pub const MAX_EXCHANGES: usize = 20;

/// Starting trust of a relationship.
pub const START_TRUST: i64 = 50;

/// Starting respect of a relationship.
pub const START_RESPECT: i64 = 50;

/// A player's view (`$1` world, `$2` user), read by the store and inside a change alike.
const PLAYER_SQL: &str =
    "SELECT location_id, area_id, stats, status_effects, quests FROM world_players WHERE world_id = $1 AND user_id = $2";

/// The items of a holder (`$1` world, `$2` encoded holder).
const ITEMS_OF_SQL: &str =
    "SELECT template_id, holder, data FROM world_items WHERE world_id = $1 AND holder = $2 ORDER BY item_id";

/// The items in an area, any spot of it (`$1` world, `$2` location, `$3` area).
const ITEMS_IN_AREA_SQL: &str = "SELECT template_id, holder, data FROM world_items \
     WHERE world_id = $1 AND location_id = $2 AND area_id = $3 ORDER BY item_id";

/// What a player sees, in one statement (one snapshot on either database: `$1` world, `$2` user, `$3`
/// the player's encoded holder): the world's versions and the player on every row, with the player's
/// items (a row with no item when they carry nothing), then the items of the player's location.
/// No `ORDER BY`: sorting by item would make SQLite walk the world's items in key order instead of
/// using the holder and place indexes.
const SNAPSHOT_SQL: &str = "\
    SELECT i.version, i.places_version, p.location_id, p.area_id, p.stats, p.status_effects, p.quests, \
           it.item_id, it.template_id, it.holder, it.data \
    FROM world_instances i JOIN world_players p ON p.world_id = i.id AND p.user_id = $2 \
    LEFT JOIN world_items it ON it.world_id = i.id AND it.holder = $3 \
    WHERE i.id = $1 \
    UNION ALL \
    SELECT i.version, i.places_version, p.location_id, p.area_id, p.stats, p.status_effects, p.quests, \
           it.item_id, it.template_id, it.holder, it.data \
    FROM world_instances i JOIN world_players p ON p.world_id = i.id AND p.user_id = $2 \
    JOIN world_items it ON it.world_id = i.id AND it.location_id = p.location_id \
    WHERE i.id = $1 AND p.location_id <> ''";

/// A player's relationship with an NPC (`$1` world, `$2` user, `$3` NPC).
const RELATIONSHIP_SQL: &str = "SELECT trust, respect, familiarity, emotion, exchanges, facts, mind \
     FROM world_npc_relations WHERE world_id = $1 AND user_id = $2 AND npc_id = $3";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn json_text(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// The id of the world a player of `exp` plays in.
pub(crate) fn world_id(exp: &Experience, user_id: &str) -> String {
    match exp.config.state.model {
        StateModel::Shared => exp.config.id.clone(),
        StateModel::Isolated => format!("{}:{user_id}", exp.config.id),
    }
}

/// The live state of worlds, in `storage`.
#[derive(Clone, Debug)]
pub(crate) struct WorldStore {
    storage: Storage,
}

/// What a player sees at one version ([`WorldStore::location_snapshot`]).
pub(crate) struct LocationSnapshot {
    pub(crate) version: i64,
    /// The version of the world's last place edit (0: its places are the content's).
    pub(crate) places_version: i64,
    pub(crate) player: PlayerState,
    /// The items in the player's location (any area, any spot), by id.
    pub(crate) items: Vec<LiveItem>,
    /// The player's items, by id.
    pub(crate) inventory: Vec<LiveItem>,
}

impl LocationSnapshot {
    /// The visible items in `area` of the player's location.
    pub(crate) fn visible_in(&self, area: &str) -> Vec<&LiveItem> {
        self.items.iter().filter(|i| i.holder.place().1 == area && crate::engine::visible(i)).collect()
    }
}

/// A change being made: the transaction and the version it makes.
pub(crate) struct Change {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) world_id: String,
    pub(crate) version: i64,
}

impl WorldStore {
    pub(crate) fn new(storage: Storage) -> Self {
        WorldStore { storage }
    }

    /// The database (the vector store too).
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Makes the world of `exp` for `user_id` (and the player in it) when they do not exist yet;
    /// returns the world's id and the version of its last place edit (0: its places are the content's).
    pub(crate) async fn ensure(&self, exp: &Experience, user_id: &str) -> Result<(String, i64)> {
        let id = world_id(exp, user_id);
        let pool = self.storage.pool();
        let places_version = |row: Option<AnyRow>| -> Result<Option<i64>> {
            row.map(|r| r.try_get::<i64, _>("places_version").map_err(WorldError::db)).transpose()
        };
        let exists = sqlx::query(
            "SELECT i.places_version FROM world_players p JOIN world_instances i ON i.id = p.world_id \
             WHERE p.world_id = $1 AND p.user_id = $2",
        )
        .bind(&id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(WorldError::db)?;
        if let Some(v) = places_version(exists)? {
            return Ok((id, v));
        }
        let mut tx = pool.begin().await.map_err(WorldError::db)?;
        let now = now_ms();
        let owner = (exp.config.state.model == StateModel::Isolated).then_some(user_id);
        let created = sqlx::query(
            "INSERT INTO world_instances (id, experience_id, owner_id, content_version, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&exp.config.id)
        .bind(owner)
        .bind(&exp.config.version)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(WorldError::db)?
        .rows_affected()
            == 1;
        if created {
            for (location, area, spot, item) in content_items(exp) {
                let holder = Holder::Area { location, area, spot };
                insert_item(&mut tx, &id, item, &holder, 0).await?;
            }
        }
        let (location, area) = starting_place(exp);
        let mut stats = Map::new();
        stats.insert("health".into(), 100.into());
        stats.insert("max_health".into(), 100.into());
        let joined = sqlx::query(
            "INSERT INTO world_players (world_id, user_id, location_id, area_id, stats, status_effects, quests, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, '[]', '{}', 0, $6) ON CONFLICT (world_id, user_id) DO NOTHING",
        )
        .bind(&id)
        .bind(user_id)
        .bind(&location)
        .bind(&area)
        .bind(json_text(&stats))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(WorldError::db)?
        .rows_affected()
            == 1;
        if joined {
            // The starting inventory: new instances of the templates, held by the player.
            for template in &exp.config.bootstrap.player_starting_inventory {
                let item = ItemInstance {
                    instance_id: format!("{template}-{}", short_id()),
                    template_id: template.clone(),
                    semantic_name: None,
                    collectible: None,
                    visible: None,
                    state: None,
                    extra: Map::new(),
                };
                insert_item(&mut tx, &id, &item, &Holder::Player(user_id.to_string()), 0).await?;
            }
        }
        tx.commit().await.map_err(WorldError::db)?;
        let row = sqlx::query("SELECT places_version FROM world_instances WHERE id = $1")
            .bind(&id)
            .fetch_optional(pool)
            .await
            .map_err(WorldError::db)?;
        Ok((id, places_version(row)?.unwrap_or(0)))
    }

    /// What a player sees, read at one version in one statement: the world's version and places
    /// version, the player, the items in the player's location (any area) and the player's
    /// inventory. `None` when the world or the player is not there (yet: [`WorldStore::ensure`]).
    pub(crate) async fn location_snapshot(&self, world_id: &str, user_id: &str) -> Result<Option<LocationSnapshot>> {
        let me = Holder::Player(user_id.to_string()).encode();
        let rows = sqlx::query(SNAPSHOT_SQL)
            .bind(world_id)
            .bind(user_id)
            .bind(&me)
            .fetch_all(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        let Some(first) = rows.first() else { return Ok(None) };
        let mut snap = LocationSnapshot {
            version: first.try_get("version").map_err(WorldError::db)?,
            places_version: first.try_get("places_version").map_err(WorldError::db)?,
            player: player_of(first)?,
            items: Vec::new(),
            inventory: Vec::new(),
        };
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(id) = r.try_get::<Option<String>, _>("item_id").map_err(WorldError::db)? else { continue };
            let item = item_of(r)?;
            ids.push((id, matches!(item.holder, Holder::Player(_)), item));
        }
        ids.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mine, item) in ids {
            if mine {
                snap.inventory.push(item);
            } else {
                snap.items.push(item);
            }
        }
        Ok(Some(snap))
    }

    /// The place edits of a world (`world_places`): `(place key, edit)`.
    pub(crate) async fn place_edits(&self, world_id: &str) -> Result<Vec<(String, Value)>> {
        let rows = sqlx::query("SELECT place, data FROM world_places WHERE world_id = $1 ORDER BY place")
            .bind(world_id)
            .fetch_all(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        rows.iter()
            .map(|r| {
                let place: String = r.try_get("place").map_err(WorldError::db)?;
                let data: String = r.try_get("data").map_err(WorldError::db)?;
                Ok((place, serde_json::from_str(&data).unwrap_or(Value::Null)))
            })
            .collect()
    }

    /// The world's current version.
    pub(crate) async fn version(&self, world_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT version FROM world_instances WHERE id = $1")
            .bind(world_id)
            .fetch_optional(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        match row {
            Some(r) => r.try_get::<i64, _>("version").map_err(WorldError::db),
            None => Err(WorldError::NotFound(format!("world {world_id}"))),
        }
    }

    /// A player's view.
    pub(crate) async fn player(&self, world_id: &str, user_id: &str) -> Result<PlayerState> {
        let row = sqlx::query(PLAYER_SQL)
            .bind(world_id)
            .bind(user_id)
            .fetch_optional(self.storage.pool())
            .await
            .map_err(WorldError::db)?
            .ok_or_else(|| WorldError::NotFound(format!("player {user_id} in world {world_id}")))?;
        player_of(&row)
    }

    /// Items held by `holder`.
    pub(crate) async fn items_of(&self, world_id: &str, holder: &Holder) -> Result<Vec<LiveItem>> {
        let rows = sqlx::query(ITEMS_OF_SQL)
            .bind(world_id)
            .bind(holder.encode())
            .fetch_all(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        rows.iter().map(item_of).collect()
    }

    /// Items in an area (any of its spots, or the area itself).
    pub(crate) async fn items_in_area(&self, world_id: &str, location: &str, area: &str) -> Result<Vec<LiveItem>> {
        let rows = sqlx::query(ITEMS_IN_AREA_SQL)
            .bind(world_id)
            .bind(location)
            .bind(area)
            .fetch_all(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        rows.iter().map(item_of).collect()
    }

    /// One item, wherever it is.
    pub(crate) async fn item(&self, world_id: &str, item_id: &str) -> Result<Option<LiveItem>> {
        let row = sqlx::query("SELECT template_id, holder, data FROM world_items WHERE world_id = $1 AND item_id = $2")
            .bind(world_id)
            .bind(item_id)
            .fetch_optional(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        row.as_ref().map(item_of).transpose()
    }

    /// How many players the world has, and how many items are in play (not gone).
    pub(crate) async fn counts(&self, world_id: &str) -> Result<(i64, i64)> {
        let pool = self.storage.pool();
        let players: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM world_players WHERE world_id = $1")
            .bind(world_id)
            .fetch_one(pool)
            .await
            .map_err(WorldError::db)?;
        let items: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM world_items WHERE world_id = $1 AND holder <> 'gone'")
                .bind(world_id)
                .fetch_one(pool)
                .await
                .map_err(WorldError::db)?;
        Ok((players, items))
    }

    /// A player's relationship with an NPC (the starting one when they never met).
    pub(crate) async fn relationship(&self, world_id: &str, user_id: &str, npc_id: &str) -> Result<Relationship> {
        let row = sqlx::query(RELATIONSHIP_SQL)
            .bind(world_id)
            .bind(user_id)
            .bind(npc_id)
            .fetch_optional(self.storage.pool())
            .await
            .map_err(WorldError::db)?;
        relationship_of(row.as_ref())
    }

    /// Starts a change of `world_id`: its version raised, in a transaction the caller commits (or
    /// drops, which changes nothing).
    pub(crate) async fn begin(&self, world_id: &str) -> Result<Change> {
        let mut tx = self.storage.pool().begin().await.map_err(WorldError::db)?;
        let row = sqlx::query(
            "UPDATE world_instances SET version = version + 1, updated_at = $2 WHERE id = $1 RETURNING version",
        )
        .bind(world_id)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(WorldError::db)?
        .ok_or_else(|| WorldError::NotFound(format!("world {world_id}")))?;
        let version = row.try_get::<i64, _>("version").map_err(WorldError::db)?;
        Ok(Change { tx, world_id: world_id.to_string(), version })
    }
}

impl Change {
    /// Moves an item from `from` to `to`; `false` (nothing changed) when it is not at `from` now.
    pub(crate) async fn move_item(&mut self, item_id: &str, from: &Holder, to: &Holder) -> Result<bool> {
        self.set_holder(item_id, Some(from), to).await
    }

    /// Puts an item at `to`: only when it is at `from` now, if given (of two players racing for it,
    /// one gets it), else wherever it is. `false` when nothing changed.
    async fn set_holder(&mut self, item_id: &str, from: Option<&Holder>, to: &Holder) -> Result<bool> {
        let sql = match from {
            Some(_) => {
                "UPDATE world_items SET holder = $3, location_id = $4, area_id = $5, version = $6 \
                 WHERE world_id = $1 AND item_id = $2 AND holder = $7"
            }
            None => {
                "UPDATE world_items SET holder = $3, location_id = $4, area_id = $5, version = $6 \
                 WHERE world_id = $1 AND item_id = $2"
            }
        };
        let (location, area) = to.place();
        let mut q = sqlx::query(sql)
            .bind(&self.world_id)
            .bind(item_id)
            .bind(to.encode())
            .bind(location)
            .bind(area)
            .bind(self.version);
        if let Some(from) = from {
            q = q.bind(from.encode());
        }
        let n = q.execute(&mut *self.tx).await.map_err(WorldError::db)?.rows_affected();
        Ok(n == 1)
    }

    /// Items held by `holder`, read inside the change.
    pub(crate) async fn items_of(&mut self, holder: &Holder) -> Result<Vec<LiveItem>> {
        let rows = sqlx::query(ITEMS_OF_SQL)
            .bind(&self.world_id)
            .bind(holder.encode())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        rows.iter().map(item_of).collect()
    }

    /// The edit of place `key`, read inside the change.
    pub(crate) async fn place_edit(&mut self, key: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT data FROM world_places WHERE world_id = $1 AND place = $2")
            .bind(&self.world_id)
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        Ok(match row {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("data").map_err(WorldError::db)?).ok(),
            None => None,
        })
    }

    /// Every place edit of the world, as this change sees it.
    pub(crate) async fn place_edits(&mut self) -> Result<Vec<(String, Value)>> {
        let rows = sqlx::query("SELECT place, data FROM world_places WHERE world_id = $1 ORDER BY place")
            .bind(&self.world_id)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let key: String = r.try_get("place").ok()?;
                let data: String = r.try_get("data").ok()?;
                Some((key, serde_json::from_str(&data).ok()?))
            })
            .collect())
    }

    /// Writes the edit of place `key` (`None`: removes it) and marks the world's places changed.
    pub(crate) async fn set_place_edit(&mut self, key: &str, edit: Option<&Value>) -> Result<()> {
        match edit {
            Some(e) => sqlx::query(
                "INSERT INTO world_places (world_id, place, data, version) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (world_id, place) DO UPDATE SET data = excluded.data, version = excluded.version",
            )
            .bind(&self.world_id)
            .bind(key)
            .bind(e.to_string())
            .bind(self.version),
            None => sqlx::query("DELETE FROM world_places WHERE world_id = $1 AND place = $2")
                .bind(&self.world_id)
                .bind(key),
        }
        .execute(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        self.places_changed().await
    }

    /// Removes the edits of places whose keys start with one of `prefixes` (the places inside a
    /// deleted one).
    pub(crate) async fn remove_place_edits(&mut self, prefixes: &[String]) -> Result<()> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT place FROM world_places WHERE world_id = $1")
            .bind(&self.world_id)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        for key in keys.iter().filter(|k| prefixes.iter().any(|p| k.starts_with(p.as_str()))) {
            sqlx::query("DELETE FROM world_places WHERE world_id = $1 AND place = $2")
                .bind(&self.world_id)
                .bind(key)
                .execute(&mut *self.tx)
                .await
                .map_err(WorldError::db)?;
        }
        self.places_changed().await
    }

    async fn places_changed(&mut self) -> Result<()> {
        sqlx::query("UPDATE world_instances SET places_version = $2 WHERE id = $1")
            .bind(&self.world_id)
            .bind(self.version)
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        Ok(())
    }

    /// How many items are in `location` (in `area` of it, when given; in that spot of it, when
    /// given too), inside the change.
    pub(crate) async fn count_items_in(
        &mut self,
        location: &str,
        area: Option<&str>,
        spot: Option<&str>,
    ) -> Result<i64> {
        let q = match (area, spot) {
            (Some(area), Some(spot)) => {
                let at = Holder::Area { location: location.into(), area: area.into(), spot: spot.into() };
                sqlx::query_scalar("SELECT COUNT(*) FROM world_items WHERE world_id = $1 AND holder = $2")
                    .bind(&self.world_id)
                    .bind(at.encode())
            }
            (Some(area), None) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM world_items WHERE world_id = $1 AND location_id = $2 AND area_id = $3",
            )
            .bind(&self.world_id)
            .bind(location)
            .bind(area),
            (None, _) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM world_items WHERE world_id = $1 AND location_id = $2")
                    .bind(&self.world_id)
                    .bind(location)
            }
        };
        q.fetch_one(&mut *self.tx).await.map_err(WorldError::db)
    }

    /// How many players are in `location` (in `area` of it, when given), inside the change.
    pub(crate) async fn count_players_in(&mut self, location: &str, area: Option<&str>) -> Result<i64> {
        let q = match area {
            Some(a) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM world_players WHERE world_id = $1 AND location_id = $2 AND area_id = $3",
            )
            .bind(&self.world_id)
            .bind(location)
            .bind(a),
            None => sqlx::query_scalar("SELECT COUNT(*) FROM world_players WHERE world_id = $1 AND location_id = $2")
                .bind(&self.world_id)
                .bind(location),
        };
        q.fetch_one(&mut *self.tx).await.map_err(WorldError::db)
    }

    /// Sets a player's place.
    pub(crate) async fn set_place(&mut self, user_id: &str, location: &str, area: &str) -> Result<()> {
        sqlx::query(
            "UPDATE world_players SET location_id = $3, area_id = $4, version = $5, updated_at = $6 \
             WHERE world_id = $1 AND user_id = $2",
        )
        .bind(&self.world_id)
        .bind(user_id)
        .bind(location)
        .bind(area)
        .bind(self.version)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        Ok(())
    }

    /// Reads a player's view inside the change (locked with the world on PostgreSQL).
    pub(crate) async fn player(&mut self, user_id: &str) -> Result<PlayerState> {
        let row = sqlx::query(PLAYER_SQL)
            .bind(&self.world_id)
            .bind(user_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(WorldError::db)?
            .ok_or_else(|| WorldError::NotFound(format!("player {user_id}")))?;
        player_of(&row)
    }

    /// Writes a player's stats, status effects and quests.
    pub(crate) async fn set_player_data(&mut self, user_id: &str, p: &PlayerState) -> Result<()> {
        sqlx::query(
            "UPDATE world_players SET stats = $3, status_effects = $4, quests = $5, version = $6, updated_at = $7 \
             WHERE world_id = $1 AND user_id = $2",
        )
        .bind(&self.world_id)
        .bind(user_id)
        .bind(json_text(&p.stats))
        .bind(json_text(&p.status_effects))
        .bind(json_text(&p.quests))
        .bind(self.version)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        Ok(())
    }

    /// A player's relationship with an NPC, read inside the change.
    pub(crate) async fn relationship(&mut self, user_id: &str, npc_id: &str) -> Result<Relationship> {
        let row = sqlx::query(RELATIONSHIP_SQL)
            .bind(&self.world_id)
            .bind(user_id)
            .bind(npc_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        relationship_of(row.as_ref())
    }

    /// Writes a player's relationship with an NPC.
    pub(crate) async fn set_relationship(&mut self, user_id: &str, npc_id: &str, r: &Relationship) -> Result<()> {
        let keep = r.exchanges.len().saturating_sub(MAX_EXCHANGES);
        sqlx::query(
            "INSERT INTO world_npc_relations (world_id, user_id, npc_id, trust, respect, familiarity, emotion, \
             exchanges, facts, mind, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (world_id, user_id, npc_id) DO UPDATE SET trust = excluded.trust, respect = excluded.respect, \
             familiarity = excluded.familiarity, emotion = excluded.emotion, exchanges = excluded.exchanges, \
             facts = excluded.facts, mind = excluded.mind, updated_at = excluded.updated_at",
        )
        .bind(&self.world_id)
        .bind(user_id)
        .bind(npc_id)
        .bind(r.trust.clamp(0, 100))
        .bind(r.respect.clamp(0, 100))
        .bind(r.familiarity.clamp(0, 100))
        .bind(json_text(&r.emotion))
        .bind(json_text(&r.exchanges[keep..].to_vec()))
        .bind(json_text(&r.facts))
        .bind(json_text(&r.mind))
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        Ok(())
    }

    /// A new instance of `template` at `holder` (an id of its own: `<template>-<random>`).
    pub(crate) async fn spawn(&mut self, template: &str, holder: &Holder) -> Result<ItemInstance> {
        let item = ItemInstance {
            instance_id: format!("{template}-{}", short_id()),
            template_id: template.to_string(),
            semantic_name: None,
            collectible: None,
            visible: None,
            state: None,
            extra: Map::new(),
        };
        insert_item(&mut self.tx, &self.world_id, &item, holder, self.version).await?;
        Ok(item)
    }

    /// Rewrites an item's own fields (its state, visibility), where it is.
    pub(crate) async fn set_item(&mut self, item: &ItemInstance) -> Result<()> {
        sqlx::query("UPDATE world_items SET data = $3, version = $4 WHERE world_id = $1 AND item_id = $2")
            .bind(&self.world_id)
            .bind(&item.instance_id)
            .bind(json_text(item))
            .bind(self.version)
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        Ok(())
    }

    /// Moves an item wherever it is (an administrator's edit); `false` when it does not exist.
    pub(crate) async fn place_item(&mut self, item_id: &str, to: &Holder) -> Result<bool> {
        self.set_holder(item_id, None, to).await
    }

    /// Keeps the world's rows (or one player's, `user`) as a backup, then removes them: the world
    /// starts again from its content (or the player joins again) on the next command.
    pub(crate) async fn reset(&mut self, exp: &Experience, user: Option<&str>) -> Result<()> {
        let snapshot = self.snapshot(user).await?;
        sqlx::query(
            "INSERT INTO world_backups (id, world_id, user_id, snapshot, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&self.world_id)
        .bind(user)
        .bind(snapshot.to_string())
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        match user {
            Some(u) => {
                self.remove_player_rows(u).await?;
            }
            None => {
                self.remove_world_rows().await?;
                self.places_changed().await?;
                for (location, area, spot, item) in content_items(exp) {
                    insert_item(
                        &mut self.tx,
                        &self.world_id,
                        item,
                        &Holder::Area { location, area, spot },
                        self.version,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Empties the world: its items, players and relationships.
    async fn remove_world_rows(&mut self) -> Result<()> {
        for sql in [
            "DELETE FROM world_items WHERE world_id = $1",
            "DELETE FROM world_players WHERE world_id = $1",
            "DELETE FROM world_npc_relations WHERE world_id = $1",
            "DELETE FROM world_places WHERE world_id = $1",
            // Scenes end with a reset (they are not kept in the backup).
            "DELETE FROM world_scene_lines WHERE world_id = $1",
            "DELETE FROM world_scenes WHERE world_id = $1",
        ] {
            sqlx::query(sql).bind(&self.world_id).execute(&mut *self.tx).await.map_err(WorldError::db)?;
        }
        Ok(())
    }

    /// Removes a player from the world: their view, relationships and what they carry.
    async fn remove_player_rows(&mut self, user: &str) -> Result<()> {
        let holder = Holder::Player(user.to_string()).encode();
        for (sql, second) in [
            ("DELETE FROM world_items WHERE world_id = $1 AND holder = $2", holder.as_str()),
            ("DELETE FROM world_players WHERE world_id = $1 AND user_id = $2", user),
            ("DELETE FROM world_npc_relations WHERE world_id = $1 AND user_id = $2", user),
            ("DELETE FROM world_scene_lines WHERE world_id = $1 AND user_id = $2", user),
        ] {
            sqlx::query(sql).bind(&self.world_id).bind(second).execute(&mut *self.tx).await.map_err(WorldError::db)?;
        }
        Ok(())
    }

    /// Puts back what the last `@reset` of this world replaced; `false` when there is no backup.
    pub(crate) async fn undo_reset(&mut self) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id, user_id, snapshot FROM world_backups WHERE world_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(&self.world_id)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(WorldError::db)?;
        let Some(row) = row else { return Ok(false) };
        let id: String = row.try_get("id").map_err(WorldError::db)?;
        let user: Option<String> = row.try_get("user_id").map_err(WorldError::db)?;
        let snapshot: Value = serde_json::from_str(&row.try_get::<String, _>("snapshot").map_err(WorldError::db)?)
            .map_err(|e| WorldError::Invalid(format!("a backup is not valid: {e}")))?;
        // What replaced it goes first.
        match &user {
            Some(u) => {
                self.remove_player_rows(u).await?;
            }
            None => {
                self.remove_world_rows().await?;
            }
        }
        let list = |k: &str| snapshot.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        for i in list("items") {
            let holder = Holder::decode(&text(&i, "holder"));
            sqlx::query(
                "INSERT INTO world_items (world_id, item_id, template_id, holder, location_id, area_id, data, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (world_id, item_id) DO UPDATE SET holder = excluded.holder, location_id = excluded.location_id, \
                 area_id = excluded.area_id, data = excluded.data, version = excluded.version",
            )
            .bind(&self.world_id)
            .bind(text(&i, "item_id"))
            .bind(text(&i, "template_id"))
            .bind(holder.encode())
            .bind(holder.place().0)
            .bind(holder.place().1)
            .bind(text(&i, "data"))
            .bind(self.version)
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        }
        for p in list("players") {
            sqlx::query(
                "INSERT INTO world_players (world_id, user_id, location_id, area_id, stats, status_effects, quests, version, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
            )
            .bind(&self.world_id)
            .bind(text(&p, "user_id"))
            .bind(text(&p, "location_id"))
            .bind(text(&p, "area_id"))
            .bind(text(&p, "stats"))
            .bind(text(&p, "status_effects"))
            .bind(text(&p, "quests"))
            .bind(self.version)
            .bind(now_ms())
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        }
        for r in list("relations") {
            sqlx::query(
                "INSERT INTO world_npc_relations (world_id, user_id, npc_id, trust, respect, familiarity, emotion, \
                 exchanges, facts, mind, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
            )
            .bind(&self.world_id)
            .bind(text(&r, "user_id"))
            .bind(text(&r, "npc_id"))
            .bind(r.get("trust").and_then(Value::as_i64).unwrap_or(START_TRUST))
            .bind(r.get("respect").and_then(Value::as_i64).unwrap_or(START_RESPECT))
            .bind(r.get("familiarity").and_then(Value::as_i64).unwrap_or(0))
            .bind(text(&r, "emotion"))
            .bind(text(&r, "exchanges"))
            .bind(text(&r, "facts"))
            .bind(r.get("mind").and_then(Value::as_str).unwrap_or("{}"))
            .bind(now_ms())
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        }
        for e in list("places") {
            sqlx::query("INSERT INTO world_places (world_id, place, data, version) VALUES ($1, $2, $3, $4)")
                .bind(&self.world_id)
                .bind(text(&e, "place"))
                .bind(text(&e, "data"))
                .bind(self.version)
                .execute(&mut *self.tx)
                .await
                .map_err(WorldError::db)?;
        }
        if user.is_none() {
            self.places_changed().await?;
        }
        sqlx::query("DELETE FROM world_backups WHERE id = $1")
            .bind(&id)
            .execute(&mut *self.tx)
            .await
            .map_err(WorldError::db)?;
        Ok(true)
    }

    /// The world's rows (or one player's) as JSON.
    async fn snapshot(&mut self, user: Option<&str>) -> Result<Value> {
        let w = self.world_id.clone();
        type Query<'q> = (&'q str, Vec<String>);
        let (items, players, relations, places): (Query, Query, Query, Query) = match user {
            Some(u) => (
                ("SELECT item_id, template_id, holder, data FROM world_items WHERE world_id = $1 AND holder = $2",
                 vec![w.clone(), Holder::Player(u.to_string()).encode()]),
                ("SELECT user_id, location_id, area_id, stats, status_effects, quests FROM world_players \
                  WHERE world_id = $1 AND user_id = $2", vec![w.clone(), u.to_string()]),
                ("SELECT user_id, npc_id, trust, respect, familiarity, emotion, exchanges, facts, mind FROM world_npc_relations \
                  WHERE world_id = $1 AND user_id = $2",
                 vec![w.clone(), u.to_string()]),
                // A player's reset leaves the places as they are.
                ("SELECT place, data FROM world_places WHERE 1 = 0", vec![]),
            ),
            None => (
                ("SELECT item_id, template_id, holder, data FROM world_items WHERE world_id = $1", vec![w.clone()]),
                ("SELECT user_id, location_id, area_id, stats, status_effects, quests FROM world_players WHERE world_id = $1",
                 vec![w.clone()]),
                ("SELECT user_id, npc_id, trust, respect, familiarity, emotion, exchanges, facts, mind FROM world_npc_relations \
                  WHERE world_id = $1", vec![w.clone()]),
                ("SELECT place, data FROM world_places WHERE world_id = $1", vec![w.clone()]),
            ),
        };
        let mut out = Map::new();
        for (key, (sql, params), cols) in [
            ("items", items, &["item_id", "template_id", "holder", "data"][..]),
            ("players", players, &["user_id", "location_id", "area_id", "stats", "status_effects", "quests"][..]),
            ("relations", relations, &["user_id", "npc_id", "emotion", "exchanges", "facts", "mind"][..]),
            ("places", places, &["place", "data"][..]),
        ] {
            let mut q = sqlx::query(sql);
            for p in &params {
                q = q.bind(p);
            }
            let rows = q.fetch_all(&mut *self.tx).await.map_err(WorldError::db)?;
            let mut list = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut o = Map::new();
                for c in cols {
                    o.insert(c.to_string(), Value::String(r.try_get::<String, _>(*c).map_err(WorldError::db)?));
                }
                if key == "relations" {
                    for axis in ["trust", "respect", "familiarity"] {
                        o.insert(axis.into(), Value::from(r.try_get::<i64, _>(axis).map_err(WorldError::db)?));
                    }
                }
                list.push(Value::Object(o));
            }
            out.insert(key.to_string(), Value::Array(list));
        }
        Ok(Value::Object(out))
    }

    /// Makes the change.
    pub(crate) async fn commit(self) -> Result<i64> {
        self.tx.commit().await.map_err(WorldError::db)?;
        Ok(self.version)
    }
}

async fn insert_item(
    tx: &mut Transaction<'static, Any>,
    world_id: &str,
    item: &ItemInstance,
    holder: &Holder,
    version: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO world_items (world_id, item_id, template_id, holder, location_id, area_id, data, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (world_id, item_id) DO NOTHING",
    )
    .bind(world_id)
    .bind(&item.instance_id)
    .bind(&item.template_id)
    .bind(holder.encode())
    .bind(holder.place().0)
    .bind(holder.place().1)
    .bind(json_text(item))
    .bind(version)
    .execute(&mut **tx)
    .await
    .map_err(WorldError::db)?;
    Ok(())
}

fn item_of(r: &AnyRow) -> Result<LiveItem> {
    let data: String = r.try_get("data").map_err(WorldError::db)?;
    let holder: String = r.try_get("holder").map_err(WorldError::db)?;
    let instance: ItemInstance =
        serde_json::from_str(&data).map_err(|e| WorldError::Invalid(format!("a stored item is not valid: {e}")))?;
    Ok(LiveItem { instance, holder: Holder::decode(&holder) })
}

fn relationship_of(row: Option<&AnyRow>) -> Result<Relationship> {
    Ok(match row {
        Some(r) => {
            let text = |c: &str| r.try_get::<String, _>(c).map_err(WorldError::db);
            let emotion = text("emotion")?;
            Relationship {
                trust: r.try_get("trust").map_err(WorldError::db)?,
                respect: r.try_get("respect").map_err(WorldError::db)?,
                familiarity: r.try_get("familiarity").map_err(WorldError::db)?,
                emotion: parse_json(&emotion),
                exchanges: parse_json(&text("exchanges")?),
                facts: parse_json(&text("facts")?),
                mind: parse_json(&text("mind")?),
            }
        }
        None => Relationship::default(),
    })
}

fn player_of(r: &AnyRow) -> Result<PlayerState> {
    let text = |c: &str| r.try_get::<String, _>(c).map_err(WorldError::db);
    Ok(PlayerState {
        current_location: text("location_id")?,
        current_area: text("area_id")?,
        stats: parse_json(&text("stats")?),
        status_effects: parse_json(&text("status_effects")?),
        quests: parse_json(&text("quests")?),
    })
}

/// Where a new player starts: the bootstrap location, and its area where a player entering it
/// arrives ([`first_area`]).
pub(crate) fn starting_place(exp: &Experience) -> (String, String) {
    let location = exp.config.bootstrap.player_starting_location.clone();
    let area = first_area(exp, &location).unwrap_or_default();
    (location, area)
}

/// Where a player entering `location` arrives: the bootstrap area when it is the starting location,
/// else its first area.
pub(crate) fn first_area(exp: &Experience, location: &str) -> Option<String> {
    let l = exp.world.locations.get(location)?;
    let b = &exp.config.bootstrap;
    if b.player_starting_location == location {
        if let Some(a) = b.player_starting_area.as_ref().filter(|a| l.areas.contains_key(*a)) {
            return Some(a.clone());
        }
    }
    l.areas.keys().next().cloned()
}

/// Every item instance of the content with where it starts (area-level items: spot "").
pub(crate) fn content_items(exp: &Experience) -> Vec<(String, String, String, &ItemInstance)> {
    let mut out = Vec::new();
    for (lid, l) in &exp.world.locations {
        for (aid, a) in &l.areas {
            for item in &a.items {
                out.push((lid.clone(), aid.clone(), String::new(), item));
            }
            for (sid, s) in &a.spots {
                for item in &s.items {
                    out.push((lid.clone(), aid.clone(), sid.clone(), item));
                }
            }
        }
    }
    out
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_and_name_their_place() {
        for h in [
            Holder::Area { location: "safe_house".into(), area: "main_room".into(), spot: "table".into() },
            Holder::Area { location: "l".into(), area: "a".into(), spot: String::new() },
            Holder::Player("u1".into()),
            Holder::Npc("sam".into()),
            Holder::Gone,
        ] {
            assert_eq!(Holder::decode(&h.encode()), h);
        }
        let at = Holder::Area { location: "safe_house".into(), area: "main_room".into(), spot: "table".into() };
        assert_eq!(at.place(), ("safe_house", "main_room"));
        assert_eq!(Holder::Player("u1".into()).place(), ("", ""));
        assert_eq!(Holder::Gone.place(), ("", ""));
    }
}
