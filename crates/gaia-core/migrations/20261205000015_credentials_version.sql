-- Bumped in the same transaction as every revocation of a credential, so every running instance,
-- whatever its cache, can tell that the validations it cached before are stale (polled about every
-- half second). Two counters, so that frequent sign-outs do not outdate every cached API-key validation:
-- version: an API key revoked or rotated, a user's administrator flag changed (API keys, JWT users);
-- sessions_version: a sign-in session ended (logout, a refresh token reused).
CREATE TABLE IF NOT EXISTS credentials_state (
    id               INTEGER PRIMARY KEY,
    version          BIGINT NOT NULL,
    sessions_version BIGINT NOT NULL
);
INSERT INTO credentials_state (id, version, sessions_version) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;
