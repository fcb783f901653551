-- NPC minds (issue 26): each player's relationship with an NPC gains respect (0-100, 50 to start),
-- familiarity (0-100, 0 to start), the NPC's current emotion (JSON `{name, intensity}`, '' before the
-- first) and the state of the NPC's goals and actions for that player (JSON `{goals, made}`).
ALTER TABLE world_npc_relations ADD COLUMN respect BIGINT NOT NULL DEFAULT 50;
ALTER TABLE world_npc_relations ADD COLUMN familiarity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE world_npc_relations ADD COLUMN emotion TEXT NOT NULL DEFAULT '';
ALTER TABLE world_npc_relations ADD COLUMN mind TEXT NOT NULL DEFAULT '{}';
