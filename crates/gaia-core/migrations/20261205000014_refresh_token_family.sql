-- Sign-in sessions and invitations. Portable SQL (SQLite and PostgreSQL); times are unix milliseconds.
--
-- auth_sessions: one row per sign-in (login or registration). Every refresh token descends from one
-- sign-in (refresh_tokens.family_id) and access tokens carry its id (the JWT `sid` claim). Revoking the
-- row (logout, or a refresh token used twice: theft) ends every refresh token of the family and makes
-- the access tokens carrying its id unusable.
CREATE TABLE IF NOT EXISTS auth_sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS auth_sessions_user_idx ON auth_sessions (user_id);

-- The sign-in a refresh token belongs to (NULL for tokens issued before sign-in sessions existed).
ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT;
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Invitations to register (auth.registration = "invite"): single use, expiring, stored hashed.
CREATE TABLE IF NOT EXISTS auth_invites (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    email      TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    used_by    TEXT
);
