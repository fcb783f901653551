//! What NPCs remember of each player: facts drawn from each talk in the background (one model call,
//! metered as `world_memory`, off the request path), each with an importance (1–10), kept per world,
//! player and NPC in `world_npc_memories`, embedded with `[embeddings]`' model (the vectors stored
//! under the scope `npcmem:<user>:<world>:<npc>`, shared by every instance), and recalled into the
//! NPC's prompt: all of them while they fit ([`PROMPT_MEMORIES`]), else the best by relevance to the
//! player's message (cosine similarity), importance and recency. Past [`MAX_MEMORIES`] the oldest
//! are consolidated into a few facts (one model call), or, when that fails, the least important of
//! them are forgotten. A player sees and erases what an NPC remembers of them; nobody else does.
//!
//! Recall reads the memories and their vectors once per instance and keeps them
//! (`Recollections`, at most 256 MiB): each talk checks one key, the pair's memory stamp (a new
//! random value whenever memories are removed, on any instance: then they are read again), and
//! reads what was learned since (by time) and the vectors that were not stored yet.

use crate::error::{Result, WorldError};
use gaia_core::vectors::{content_hash, dot, unit, Embedder, VectorStore};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most memories shown in one prompt.
pub const PROMPT_MEMORIES: usize = 12;
/// Most memories an NPC keeps of one player.
pub const MAX_MEMORIES: usize = 10_000;
/// Memories consolidated at a time when there are too many.
const CONSOLIDATE: usize = 64;
/// Longest memory, in characters.
pub const MAX_MEMORY_CHARS: usize = 300;
/// Most facts kept from one exchange.
const MAX_FACTS_PER_EXCHANGE: usize = 5;
/// Player-and-NPC pairs whose memories an instance keeps ready (emptied when full).
const MAX_KEPT: usize = 4_096;
/// Longest wait for the embedding model when recalling.
const RECALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The endpoint memory calls are metered under.
pub const MEMORY_ENDPOINT: &str = "world_memory";

/// A fact an NPC remembers of a player.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpcMemory {
    /// Its id (the hash of its text).
    pub id: String,
    /// The fact.
    pub text: String,
    /// 1 (trivial) to 10 (life-changing).
    pub importance: i64,
    /// When it was learned (ms since the epoch).
    pub created_at: i64,
}

/// The memories of one player and NPC as an instance keeps them, with their vectors.
#[derive(Clone)]
struct Recollection {
    /// The pair's memory stamp when they were read (renewed when memories are removed).
    stamp: String,
    space: String,
    memories: Vec<NpcMemory>,
    /// Their ids, and the newest `created_at` (memories added since are read by time).
    ids: std::collections::HashSet<String>,
    newest: i64,
    /// Their unit vectors, `dims` numbers each, one after the other (zeros for a memory without).
    rows: Vec<f32>,
    dims: usize,
    /// Memories whose vector was not stored yet when read (looked for again at each recall).
    pending: Vec<usize>,
}

impl Recollection {
    fn bytes(&self) -> usize {
        self.rows.len() * 4 + self.memories.iter().map(|m| m.text.len() + 80).sum::<usize>()
    }

    /// Appends `memories` (read since) and fills in the vectors `found` of pending or new ones.
    fn extend(&mut self, memories: Vec<NpcMemory>, mut found: HashMap<String, Vec<f32>>) {
        for m in memories {
            self.newest = self.newest.max(m.created_at);
            self.ids.insert(m.id.clone());
            self.pending.push(self.memories.len());
            self.memories.push(m);
            self.rows.extend(std::iter::repeat_n(0.0, self.dims));
        }
        if self.dims == 0 {
            if let Some(d) = found.values().next().map(Vec::len).filter(|d| *d > 0) {
                self.dims = d;
                self.rows = vec![0.0; d * self.memories.len()];
                self.pending = (0..self.memories.len()).collect();
            }
        }
        let d = self.dims;
        let memories = &self.memories;
        let rows = &mut self.rows;
        self.pending.retain(|&i| match found.remove(&memories[i].id).filter(|v| v.len() == d && d > 0) {
            Some(v) => {
                rows[i * d..(i + 1) * d].copy_from_slice(&v);
                false
            }
            None => true,
        });
    }
}

/// The memories instances keep ready, by scope.
#[derive(Default)]
pub(crate) struct Recollections(Mutex<HashMap<String, Arc<Recollection>>>);

/// Bytes of memories an instance keeps ready at most (beyond, it starts over).
const MAX_KEPT_BYTES: usize = 256 * 1024 * 1024;

/// The vector scope of a player's memories of an NPC.
fn scope(world: &str, user: &str, npc: &str) -> String {
    format!("npcmem:{user}:{world}:{npc}")
}

fn db(e: sqlx::Error) -> WorldError {
    WorldError::db(e)
}

fn memory_of(r: &sqlx::any::AnyRow) -> Result<NpcMemory> {
    Ok(NpcMemory {
        id: r.try_get("id").map_err(db)?,
        text: r.try_get("text").map_err(db)?,
        importance: r.try_get("importance").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
    })
}

/// The memories of a player and NPC, oldest first.
pub(crate) async fn list(pool: &sqlx::AnyPool, world: &str, user: &str, npc: &str) -> Result<Vec<NpcMemory>> {
    let rows = sqlx::query(
        "SELECT id, text, importance, created_at FROM world_npc_memories \
         WHERE world_id = $1 AND user_id = $2 AND npc_id = $3 ORDER BY created_at, id",
    )
    .bind(world)
    .bind(user)
    .bind(npc)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(memory_of).collect()
}

/// The pair's memory stamp: changed (to a new random value) by every change of its memories, so
/// that an instance knows with one key lookup whether what it keeps is current.
async fn stamp(pool: &sqlx::AnyPool, world: &str, user: &str, npc: &str) -> Result<String> {
    let r: Option<String> = sqlx::query_scalar(
        "SELECT memory_stamp FROM world_npc_relations WHERE world_id = $1 AND user_id = $2 AND npc_id = $3",
    )
    .bind(world)
    .bind(user)
    .bind(npc)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(r.unwrap_or_default())
}

/// Gives the pair a new memory stamp (after its memories changed).
async fn restamp<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    world: &str,
    user: &str,
    npc: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO world_npc_relations (world_id, user_id, npc_id, memory_stamp, updated_at) \
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
         ON CONFLICT (world_id, user_id, npc_id) DO UPDATE SET memory_stamp = excluded.memory_stamp",
    )
    .bind(world)
    .bind(user)
    .bind(npc)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(exec)
    .await
    .map_err(db)?;
    Ok(())
}

/// The memories of a pair learned at or after `since` (ms), oldest first.
async fn since(pool: &sqlx::AnyPool, world: &str, user: &str, npc: &str, since: i64) -> Result<Vec<NpcMemory>> {
    let rows = sqlx::query(
        "SELECT id, text, importance, created_at FROM world_npc_memories \
         WHERE world_id = $1 AND user_id = $2 AND npc_id = $3 AND created_at >= $4 ORDER BY created_at, id",
    )
    .bind(world)
    .bind(user)
    .bind(npc)
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(memory_of).collect()
}

/// How many memories the pair has.
async fn count(pool: &sqlx::AnyPool, world: &str, user: &str, npc: &str) -> Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM world_npc_memories WHERE world_id = $1 AND user_id = $2 AND npc_id = $3",
    )
    .bind(world)
    .bind(user)
    .bind(npc)
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok(n.max(0) as usize)
}

/// Forgets one memory (`Some(id)`) or all of them, with their vectors in `space` (the embedding
/// model's, when there is one); how many were forgotten.
pub(crate) async fn forget(
    pool: &sqlx::AnyPool,
    vectors: Option<(&dyn VectorStore, String)>,
    (world, user, npc): (&str, &str, &str),
    id: Option<&str>,
) -> Result<u64> {
    let q = match id {
        Some(id) => sqlx::query(
            "DELETE FROM world_npc_memories WHERE world_id = $1 AND user_id = $2 AND npc_id = $3 AND id = $4",
        )
        .bind(world)
        .bind(user)
        .bind(npc)
        .bind(id),
        None => sqlx::query("DELETE FROM world_npc_memories WHERE world_id = $1 AND user_id = $2 AND npc_id = $3")
            .bind(world)
            .bind(user)
            .bind(npc),
    };
    let n = q.execute(pool).await.map_err(db)?.rows_affected();
    if n > 0 {
        restamp(pool, world, user, npc).await?;
    }
    // The vectors of what is left are kept; the others go.
    if let Some((store, space)) = vectors {
        let keep: std::collections::HashSet<String> =
            list(pool, world, user, npc).await?.into_iter().map(|m| m.id).collect();
        if let Err(e) = store.retain(&scope(world, user, npc), &space, &keep).await {
            tracing::warn!(error = %e, "cannot remove the vectors of forgotten memories");
        }
    }
    Ok(n)
}

/// Adds facts (text, importance) learned now; those already known are skipped. Returns the new ones.
pub(crate) async fn add(
    pool: &sqlx::AnyPool,
    world: &str,
    user: &str,
    npc: &str,
    facts: &[(String, i64)],
) -> Result<Vec<NpcMemory>> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::new();
    for (text, importance) in facts {
        let m = NpcMemory { id: content_hash(text), text: text.clone(), importance: *importance, created_at: now };
        let done = sqlx::query(
            "INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
             ON CONFLICT (world_id, user_id, npc_id, id) DO NOTHING",
        )
        .bind(world)
        .bind(user)
        .bind(npc)
        .bind(&m.id)
        .bind(&m.text)
        .bind(m.importance)
        .bind(m.created_at)
        .execute(pool)
        .await
        .map_err(db)?;
        if done.rows_affected() > 0 {
            out.push(m);
        }
    }
    if !out.is_empty() {
        restamp(pool, world, user, npc).await?;
    }
    Ok(out)
}

/// The facts of a model's answer (`{"facts": [{"fact", "importance"}]}`): at most
/// [`MAX_FACTS_PER_EXCHANGE`], each cut to [`MAX_MEMORY_CHARS`], importance within 1–10 (5 when
/// missing); `None` when the answer is not such an object.
pub(crate) fn parse_facts(answer: &str) -> Option<Vec<(String, i64)>> {
    let v = gaia_mcp::json_object(answer)?;
    let list = v.get("facts")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|f| {
                let text = f.get("fact").and_then(|t| t.as_str()).or_else(|| f.as_str())?.trim();
                let importance = f.get("importance").and_then(|i| i.as_f64()).unwrap_or(5.0);
                let importance = if importance.is_finite() { importance.round().clamp(1.0, 10.0) as i64 } else { 5 };
                (!text.is_empty()).then(|| (text.chars().take(MAX_MEMORY_CHARS).collect::<String>(), importance))
            })
            .take(MAX_FACTS_PER_EXCHANGE)
            .collect(),
    )
}

/// How much a memory matters for a message: relevance (cosine similarity, 0 without vectors) first,
/// then importance and recency (halved every week).
fn score(m: &NpcMemory, relevance: f32, now: i64) -> f32 {
    let weeks = ((now - m.created_at).max(0) as f64 / (7.0 * 86_400_000.0)) as f32;
    relevance + 0.3 * (m.importance as f32 / 10.0) + 0.2 * 0.5f32.powf(weeks)
}

impl Recollections {
    /// The memories to show for `message`: all of them, oldest first, while they fit in
    /// [`PROMPT_MEMORIES`]; else the best by [`score`] (the most important and newest when there is no
    /// embedding model, or it fails), in the order they were learned.
    pub(crate) async fn recall(
        &self,
        pool: &sqlx::AnyPool,
        embedder: Option<&dyn Embedder>,
        store: &dyn VectorStore,
        (world, user, npc): (&str, &str, &str),
        message: &str,
    ) -> Result<Vec<NpcMemory>> {
        let key = scope(world, user, npc);
        let mut now_stamp = stamp(pool, world, user, npc).await?;
        if now_stamp.is_empty() {
            // No stamp: no memory, or memories whose relationship row was reset since.
            if count(pool, world, user, npc).await? == 0 {
                return Ok(Vec::new());
            }
            restamp(pool, world, user, npc).await?;
            now_stamp = stamp(pool, world, user, npc).await?;
        }
        let space = embedder.map(|e| e.space()).unwrap_or_default();
        let (key_ref, space_ref) = (&key, &space);
        let vectors_of = |ids: Vec<String>| async move {
            let (key, space) = (key_ref, space_ref);
            if space.is_empty() || ids.is_empty() {
                return HashMap::new();
            }
            store.get(key, space, &ids).await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "cannot read the vectors of NPC memories");
                HashMap::new()
            })
        };
        let kept = self.0.lock().expect("memory lock").get(&key).cloned();
        let r = match kept.filter(|r| r.stamp == now_stamp && r.space == space) {
            // Kept and current: what was learned since, and the vectors that were missing.
            Some(r) => {
                let new: Vec<NpcMemory> = since(pool, world, user, npc, r.newest)
                    .await?
                    .into_iter()
                    .filter(|m| !r.ids.contains(&m.id))
                    .collect();
                let wanted: Vec<String> = r
                    .pending
                    .iter()
                    .map(|&i| r.memories[i].id.clone())
                    .chain(new.iter().map(|m| m.id.clone()))
                    .collect();
                let found = vectors_of(wanted).await;
                if new.is_empty() && found.is_empty() {
                    r
                } else {
                    let mut fresh = (*r).clone();
                    fresh.extend(new, found);
                    self.keep(key.clone(), fresh)
                }
            }
            None => {
                let memories = list(pool, world, user, npc).await?;
                let found = vectors_of(memories.iter().map(|m| m.id.clone()).collect()).await;
                let mut fresh = Recollection {
                    stamp: now_stamp,
                    space: space.clone(),
                    memories: Vec::new(),
                    ids: Default::default(),
                    newest: 0,
                    rows: Vec::new(),
                    dims: found.values().next().map_or(0, Vec::len),
                    pending: Vec::new(),
                };
                fresh.extend(memories, found);
                self.keep(key.clone(), fresh)
            }
        };
        if r.memories.len() <= PROMPT_MEMORIES {
            return Ok(r.memories.clone());
        }
        let query = match embedder {
            Some(e) => {
                let text: String =
                    message.chars().take(gaia_providers::embeddings::MAX_EMBEDDING_INPUT_CHARS).collect();
                match tokio::time::timeout(RECALL_TIMEOUT, e.embed(&[text])).await {
                    Ok(Ok(mut v)) if v.len() == 1 => v.pop().map(unit),
                    Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                        tracing::debug!("cannot embed a message to recall NPC memories; using importance and recency");
                        None
                    }
                }
            }
            None => None,
        };
        let now = chrono::Utc::now().timestamp_millis();
        let query = query.filter(|q| q.len() == r.dims && r.dims > 0);
        let mut scored: Vec<(f32, usize)> = r
            .memories
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let relevance = query.as_ref().map_or(0.0, |q| dot(q, &r.rows[i * r.dims..(i + 1) * r.dims]));
                (score(m, relevance, now), i)
            })
            .collect();
        let n = PROMPT_MEMORIES.min(scored.len());
        if n > 0 && scored.len() > n {
            scored.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
            scored.truncate(n);
        }
        let mut chosen: Vec<usize> = scored.into_iter().map(|(_, i)| i).collect();
        chosen.sort_unstable();
        Ok(chosen.into_iter().map(|i| r.memories[i].clone()).collect())
    }

    /// Keeps `r` ready for `key` (starting over when too much is kept).
    fn keep(&self, key: String, r: Recollection) -> Arc<Recollection> {
        let r = Arc::new(r);
        let mut kept = self.0.lock().expect("memory lock");
        let bytes: usize = kept.values().map(|k| k.bytes()).sum();
        if kept.len() >= MAX_KEPT || bytes + r.bytes() > MAX_KEPT_BYTES {
            kept.clear();
        }
        kept.insert(key, r.clone());
        r
    }

    /// Forgets what this instance keeps of `scope`'s pair (after a change it made).
    pub(crate) fn drop_kept(&self, world: &str, user: &str, npc: &str) {
        self.0.lock().expect("memory lock").remove(&scope(world, user, npc));
    }
}

/// Embeds `memories` and stores their vectors (a failing model leaves them without: they are then
/// recalled by importance and recency only).
pub(crate) async fn embed(
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    (world, user, npc): (&str, &str, &str),
    memories: &[NpcMemory],
) {
    if memories.is_empty() {
        return;
    }
    let texts: Vec<String> = memories.iter().map(|m| m.text.clone()).collect();
    match embedder.embed(&texts).await {
        Ok(v) if v.len() == texts.len() => {
            let items: Vec<(String, Vec<f32>)> = memories.iter().zip(v).map(|(m, v)| (m.id.clone(), unit(v))).collect();
            if let Err(e) = store.put(&scope(world, user, npc), &embedder.space(), &items).await {
                tracing::warn!(error = %e, "cannot store the vectors of NPC memories");
            }
        }
        Ok(_) => tracing::warn!("the embedding model answered a wrong number of vectors for NPC memories"),
        Err(e) => tracing::warn!(error = %e, "cannot embed NPC memories"),
    }
}

/// The oldest [`CONSOLIDATE`] memories, when there are more than [`MAX_MEMORIES`].
pub(crate) async fn overflow(pool: &sqlx::AnyPool, world: &str, user: &str, npc: &str) -> Result<Vec<NpcMemory>> {
    if count(pool, world, user, npc).await? <= MAX_MEMORIES {
        return Ok(Vec::new());
    }
    let all = list(pool, world, user, npc).await?;
    Ok(all.into_iter().take(CONSOLIDATE).collect())
}

/// Replaces `old` by `new` (their consolidation), in one transaction; `false` (nothing changed)
/// when some of `old` are gone already (another task consolidated them).
pub(crate) async fn replace(
    pool: &sqlx::AnyPool,
    (world, user, npc): (&str, &str, &str),
    old: &[NpcMemory],
    new: &[(String, i64)],
) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db)?;
    let mut removed = 0;
    for m in old {
        removed += sqlx::query(
            "DELETE FROM world_npc_memories WHERE world_id = $1 AND user_id = $2 AND npc_id = $3 AND id = $4",
        )
        .bind(world)
        .bind(user)
        .bind(npc)
        .bind(&m.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
    }
    if removed != old.len() as u64 {
        return Ok(false);
    }
    let at = old.iter().map(|m| m.created_at).max().unwrap_or(0);
    for (text, importance) in new {
        sqlx::query(
            "INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (world_id, user_id, npc_id, id) DO NOTHING",
        )
        .bind(world)
        .bind(user)
        .bind(npc)
        .bind(content_hash(text))
        .bind(text)
        .bind(importance)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    restamp(&mut *tx, world, user, npc).await?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// Learns from an exchange in the background: the facts the model draws from it are added, embedded,
/// and, past [`MAX_MEMORIES`], the oldest consolidated. Failures are logged; the talk is not touched.
#[allow(clippy::too_many_arguments)]
pub(crate) fn learn(
    engine: gaia_chat::Engine,
    admitted: gaia_chat::Admitted,
    storage: gaia_core::storage::Storage,
    (world, user, npc, name): (String, String, String, String),
    rules: gaia_chat::guardrails::RuleSet,
    message: String,
    answer: String,
) {
    tokio::spawn(async move {
        let who = (world.as_str(), user.as_str(), npc.as_str());
        let exchange = format!("Player: {message}\n{name}: {answer}");
        let asked = ask(&engine, &admitted, &rules, &user, learn_instructions(&name), exchange).await;
        let Some(facts) = asked else { return };
        let pool = storage.pool();
        let new = match add(pool, who.0, who.1, who.2, &facts).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store what an NPC learned");
                return;
            }
        };
        let embedder = engine.embedder(admitted.clone(), MEMORY_ENDPOINT);
        if let Some(e) = &embedder {
            embed(e, &storage, who, &new).await;
        }
        // Too many: the oldest become a few facts (or, failing that, the least important go).
        let old = match overflow(pool, who.0, who.1, who.2).await {
            Ok(o) if !o.is_empty() => o,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count what an NPC remembers");
                return;
            }
        };
        let listing: String = old.iter().map(|m| format!("- {} (importance {})\n", m.text, m.importance)).collect();
        let instructions = format!(
            "You keep what {name} remembers about a player. Condense the memories below into at most \
             {MAX_FACTS_PER_EXCHANGE} facts, keeping what matters most. Reply with JSON only: \
             {{\"facts\": [{{\"fact\": \"...\", \"importance\": 1-10}}]}}."
        );
        let (drop, keep): (Vec<NpcMemory>, Vec<(String, i64)>) =
            match ask(&engine, &admitted, &rules, &user, instructions, listing).await {
                Some(f) if !f.is_empty() => (old, f),
                _ => {
                    let mut by_importance = old;
                    by_importance.sort_by_key(|m| m.importance);
                    (by_importance.into_iter().take(CONSOLIDATE / 2).collect(), Vec::new())
                }
            };
        match replace(pool, who, &drop, &keep).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot consolidate what an NPC remembers");
                return;
            }
        }
        if let Some(e) = &embedder {
            embed(e, &storage, who, &list_new(&keep)).await;
            // The vectors of the memories consolidated go.
            match list(pool, who.0, who.1, who.2).await {
                Ok(all) => {
                    let keep: std::collections::HashSet<String> = all.into_iter().map(|m| m.id).collect();
                    if let Err(err) = storage.retain(&scope(who.0, who.1, who.2), &e.space(), &keep).await {
                        tracing::warn!(error = %err, "cannot remove the vectors of consolidated memories");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot list what an NPC remembers"),
            }
        }
    });
}

/// Memories made of consolidated facts, for embedding (their ids are their texts' hashes).
fn list_new(facts: &[(String, i64)]) -> Vec<NpcMemory> {
    facts
        .iter()
        .map(|(t, i)| NpcMemory { id: content_hash(t), text: t.clone(), importance: *i, created_at: 0 })
        .collect()
}

fn learn_instructions(name: &str) -> String {
    format!(
        "You keep what {name} remembers about a player. From the exchange below, list what the player \
         revealed about themselves or did (name, plans, promises, likes, what they own or want), each \
         fact short and on its own, with an importance from 1 (trivial) to 10 (life-changing). Reply \
         with JSON only: {{\"facts\": [{{\"fact\": \"...\", \"importance\": 5}}]}}, an empty list when \
         there is nothing worth keeping."
    )
}

/// One memory call (instructions, then the text): the facts of its answer, `None` when it fails or
/// answers something else.
async fn ask(
    engine: &gaia_chat::Engine,
    admitted: &gaia_chat::Admitted,
    rules: &gaia_chat::guardrails::RuleSet,
    user: &str,
    instructions: String,
    text: String,
) -> Option<Vec<(String, i64)>> {
    use gaia_core::types::ChatMessage;
    let mut req =
        gaia_providers::ChatRequest::new("", vec![ChatMessage::system(instructions), ChatMessage::user(text)]);
    req.temperature = Some(0.0);
    req.max_tokens = Some(400);
    req.user = Some(user.to_string());
    // Guarded like the talk (the experience's and the NPC's rules too): what a rule would redact or
    // refuse is not kept.
    let spec = gaia_chat::CallSpec { rules: Some(rules), ..gaia_chat::CallSpec::new(MEMORY_ENDPOINT, "") };
    match engine.complete(admitted, spec, &req).await {
        Ok((r, _)) => {
            let facts = parse_facts(&r.content);
            if facts.is_none() {
                tracing::debug!("a memory call answered something else than facts");
            }
            facts
        }
        Err(e) => {
            tracing::debug!(error = %e, "a memory call failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_the_model_s_answer_and_bounded() {
        let a = r#"Sure: {"facts": [{"fact": "The player's dog is Biscuit", "importance": 7},
                    {"fact": "  ", "importance": 3}, "Likes rain", {"fact": "x", "importance": 99}]}"#;
        assert_eq!(
            parse_facts(a),
            Some(vec![("The player's dog is Biscuit".into(), 7), ("Likes rain".into(), 5), ("x".into(), 10)])
        );
        let many =
            serde_json::json!({"facts": (0..20).map(|i| format!("fact {i} {}", "y".repeat(500))).collect::<Vec<_>>()});
        let got = parse_facts(&many.to_string()).unwrap();
        assert_eq!(got.len(), MAX_FACTS_PER_EXCHANGE);
        assert!(got.iter().all(|(t, _)| t.chars().count() == MAX_MEMORY_CHARS));
        assert_eq!(parse_facts("no JSON here"), None);
    }

    #[test]
    fn relevance_comes_first_then_importance_and_recency() {
        let now = 1_000_000_000_000;
        let m = |importance, days: i64| NpcMemory {
            id: String::new(),
            text: String::new(),
            importance,
            created_at: now - days * 86_400_000,
        };
        assert!(score(&m(1, 30), 0.9, now) > score(&m(10, 0), 0.1, now));
        assert!(score(&m(8, 3), 0.5, now) > score(&m(2, 3), 0.5, now));
        assert!(score(&m(5, 1), 0.5, now) > score(&m(5, 60), 0.5, now));
    }
}
