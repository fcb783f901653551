-- API key expiry and rotation. Portable SQL (SQLite and PostgreSQL); times are unix milliseconds.
-- expires_at: the key stops authenticating at this time (NULL: never).
-- rotated_to: id of the key that replaced this one (set by a rotation; the old key then expires after
-- the rotation's overlap).
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;

-- Data retention deletes messages by age, in batches: without this index each batch scans the table.
CREATE INDEX IF NOT EXISTS messages_created_idx ON messages (created_at);
