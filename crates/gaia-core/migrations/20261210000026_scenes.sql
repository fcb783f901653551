-- Scenes (issue 26): conversations of several NPCs and players in one area, authored in the vault
-- (`experiences/<exp>/scenes/<id>.md`). A world's running or ended scenes: `data` is the scene's
-- state as JSON (`{status, section, turns, section_turns, tokens, cost_usd, last_npc, ...}`).
CREATE TABLE IF NOT EXISTS world_scenes (
    world_id   TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    scene_id   TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (world_id, scene_id)
);

-- What was said aloud in a scene, in order: authored lines and narration (`user_id` NULL), a
-- player's line and the NPC's answer to it (`user_id`: whose turn it was; erased with them).
-- `speaker` is `player`, `narrator` or the NPC's id.
CREATE TABLE IF NOT EXISTS world_scene_lines (
    world_id   TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    scene_id   TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    speaker    TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (world_id, scene_id, seq)
);
CREATE INDEX IF NOT EXISTS world_scene_lines_user ON world_scene_lines (user_id);
