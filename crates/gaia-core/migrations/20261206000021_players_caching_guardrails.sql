-- End users (the players a caller makes a call for) and request tags on usage records (issue 22).
ALTER TABLE usage_records ADD COLUMN end_user TEXT;
CREATE INDEX IF NOT EXISTS usage_records_end_user_idx ON usage_records (user_id, end_user, created_at);
-- A call's tags, one row per tag (only tagged calls have any), so reports can group by any tag key.
CREATE TABLE IF NOT EXISTS usage_tags (
    usage_id    TEXT NOT NULL,
    tagged_at   BIGINT NOT NULL,
    tag_key     TEXT NOT NULL,
    tag_value   TEXT NOT NULL,
    PRIMARY KEY (usage_id, tag_key)
);
CREATE INDEX IF NOT EXISTS usage_tags_key_idx ON usage_tags (tag_key, tagged_at);
-- Cached input tokens (prompt caching): read from the provider, priced at the cached rate.
ALTER TABLE usage_records ADD COLUMN cached_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_prices ADD COLUMN cached_input_per_million DOUBLE PRECISION;
-- Which guardrail rules apply to the calls of an API key or a persona (issue 22); the rules are
-- in the configuration, by name.
CREATE TABLE IF NOT EXISTS guardrail_bindings (
    scope       TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    rules       TEXT NOT NULL,
    updated_by  TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, subject_id)
);
