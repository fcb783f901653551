-- What a persona remembers about a user: facts the user told it and a running summary of older turns.
-- Written by the conversation engine after each exchange (off the request path); bounded in size.
CREATE TABLE IF NOT EXISTS persona_memories (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    persona_id  TEXT NOT NULL,
    facts       TEXT NOT NULL DEFAULT '[]',
    summary     TEXT NOT NULL DEFAULT '',
    turns       BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, persona_id)
);
