-- Images uploaded in chat: stored base64-encoded (the form vision APIs take), owned by a user, attached
-- to the user message they were sent with (NULL until sent).
CREATE TABLE IF NOT EXISTS attachments (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id  TEXT REFERENCES messages(id) ON DELETE CASCADE,
    media_type  TEXT NOT NULL,
    file_name   TEXT,
    size        BIGINT NOT NULL,
    data_base64 TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS attachments_message_idx ON attachments (message_id);
CREATE INDEX IF NOT EXISTS attachments_user_idx ON attachments (user_id);
