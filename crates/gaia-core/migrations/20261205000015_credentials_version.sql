-- Bumped in the same transaction as every revocation of a credential (an API key revoked or rotated, a
-- user's tokens or administrator flag changed), so every running instance, whatever its cache, can tell
-- that the validations it cached before are stale (polled about every second).
CREATE TABLE IF NOT EXISTS credentials_state (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO credentials_state (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
