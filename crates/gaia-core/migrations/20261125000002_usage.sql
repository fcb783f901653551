-- Usage and cost of every model call.
CREATE TABLE IF NOT EXISTS usage_records (
    id            TEXT PRIMARY KEY,
    created_at    BIGINT NOT NULL,
    day           TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    api_key_id    TEXT,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    latency_ms    BIGINT NOT NULL,
    ttft_ms       BIGINT,
    status        BIGINT NOT NULL,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS usage_records_user_time_idx ON usage_records (user_id, created_at);
CREATE INDEX IF NOT EXISTS usage_records_time_idx ON usage_records (created_at);
