-- Game worlds (gaia-world): the live state of experiences. The content (locations, templates, rules)
-- lives in the vault; these tables hold what play changed. Every change raises the world's version
-- in the same transaction (a player's snapshot_version).

-- A running world: one per shared experience, or one per player of an isolated one.
CREATE TABLE IF NOT EXISTS world_instances (
    id              TEXT PRIMARY KEY,
    experience_id   TEXT NOT NULL,
    owner_id        TEXT REFERENCES users(id) ON DELETE CASCADE,
    content_version TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS world_instances_experience ON world_instances (experience_id);

-- Where each item instance of a world is now: `area:<location>/<area>/<spot>`, `player:<user id>`,
-- `npc:<npc id>`, or `gone` (used up). `data` is the instance as JSON (its overrides of the template).
CREATE TABLE IF NOT EXISTS world_items (
    world_id    TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    item_id     TEXT NOT NULL,
    template_id TEXT NOT NULL,
    holder      TEXT NOT NULL,
    data        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    PRIMARY KEY (world_id, item_id)
);
CREATE INDEX IF NOT EXISTS world_items_holder ON world_items (world_id, holder);

-- Each player's view of a world: where they are, their stats, status effects and quests (JSON).
CREATE TABLE IF NOT EXISTS world_players (
    world_id       TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    location_id    TEXT NOT NULL,
    area_id        TEXT NOT NULL,
    stats          TEXT NOT NULL DEFAULT '{}',
    status_effects TEXT NOT NULL DEFAULT '[]',
    quests         TEXT NOT NULL DEFAULT '{}',
    version        BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (world_id, user_id)
);
CREATE INDEX IF NOT EXISTS world_players_user ON world_players (user_id);

-- Each player's relationship with each NPC: trust (0-100), recent exchanges and facts (JSON).
CREATE TABLE IF NOT EXISTS world_npc_relations (
    world_id   TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    npc_id     TEXT NOT NULL,
    trust      BIGINT NOT NULL DEFAULT 50,
    exchanges  TEXT NOT NULL DEFAULT '[]',
    facts      TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (world_id, user_id, npc_id)
);
CREATE INDEX IF NOT EXISTS world_npc_relations_user ON world_npc_relations (user_id);

-- What `@reset` replaced, for `@reset undo`: the world's rows (or one player's) as JSON, newest last.
CREATE TABLE IF NOT EXISTS world_backups (
    id         TEXT PRIMARY KEY,
    world_id   TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    snapshot   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS world_backups_world ON world_backups (world_id, created_at);
