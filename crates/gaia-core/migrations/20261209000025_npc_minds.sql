-- NPC minds (issue 26): each player's relationship with an NPC gains respect (0-100, 50 to start),
-- familiarity (0-100, 0 to start), the NPC's current emotion (JSON `{name, intensity}`, '' before the
-- first) and the state of the NPC's goals and actions for that player (JSON `{goals, made}`).
ALTER TABLE world_npc_relations ADD COLUMN respect BIGINT NOT NULL DEFAULT 50;
ALTER TABLE world_npc_relations ADD COLUMN familiarity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE world_npc_relations ADD COLUMN emotion TEXT NOT NULL DEFAULT '';
ALTER TABLE world_npc_relations ADD COLUMN mind TEXT NOT NULL DEFAULT '{}';

-- What NPCs remember of each player: facts drawn from their talks, each with an importance (1-10);
-- `id` is the hash of the text (a fact is kept once).
CREATE TABLE IF NOT EXISTS world_npc_memories (
    world_id   TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    npc_id     TEXT NOT NULL,
    id         TEXT NOT NULL,
    text       TEXT NOT NULL,
    importance BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (world_id, user_id, npc_id, id)
);
CREATE INDEX IF NOT EXISTS world_npc_memories_user ON world_npc_memories (user_id);
-- Changed (to a new random value) with every change of a player's memories of an NPC: instances
-- keeping them in memory check it with one key lookup.
ALTER TABLE world_npc_relations ADD COLUMN memory_stamp TEXT NOT NULL DEFAULT '';
-- What a pair learned since a time (instances keeping memories read only those).
CREATE INDEX IF NOT EXISTS world_npc_memories_time ON world_npc_memories (world_id, user_id, npc_id, created_at);
