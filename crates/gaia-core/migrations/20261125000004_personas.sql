-- Personas, per-user settings, a conversation's persona. Portable SQL (SQLite and PostgreSQL).
CREATE TABLE IF NOT EXISTS personas (
    id            TEXT PRIMARY KEY,
    user_id       TEXT REFERENCES users(id) ON DELETE CASCADE, -- NULL: built in, visible to everyone
    name          TEXT NOT NULL,
    description   TEXT,
    system_prompt TEXT NOT NULL,
    model         TEXT,
    temperature   DOUBLE PRECISION,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS personas_user_idx ON personas (user_id);

INSERT INTO personas (id, user_id, name, description, system_prompt, model, temperature, created_at, updated_at)
VALUES ('default', NULL, 'Gaia', 'A helpful, concise companion.',
        'You are Gaia, a helpful and friendly companion in a game that mixes the real world and AI. Answer concisely and accurately; use Markdown when it helps.',
        NULL, NULL, 0, 0)
ON CONFLICT (id) DO NOTHING;

ALTER TABLE users ADD COLUMN default_persona_id TEXT;
ALTER TABLE users ADD COLUMN default_model TEXT;
ALTER TABLE users ADD COLUMN theme TEXT;
ALTER TABLE conversations ADD COLUMN persona_id TEXT;
