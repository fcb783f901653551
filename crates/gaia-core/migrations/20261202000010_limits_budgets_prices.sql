-- Rate limits set for one user or API key (replacing the configured defaults for them).
CREATE TABLE IF NOT EXISTS rate_limits (
    scope                TEXT NOT NULL,
    subject_id           TEXT NOT NULL,
    requests_per_minute  BIGINT,
    tokens_per_minute    BIGINT,
    updated_by           TEXT,
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (scope, subject_id)
);

-- Spending limits per user, team or API key, per day or month, in US dollars.
CREATE TABLE IF NOT EXISTS budgets (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    period      TEXT NOT NULL,
    limit_usd   DOUBLE PRECISION NOT NULL,
    hard        INTEGER NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS budgets_subject_idx ON budgets (scope, subject_id);

-- Model prices with the time they take effect; the latest one in effect applies.
CREATE TABLE IF NOT EXISTS model_prices (
    id                   TEXT PRIMARY KEY,
    provider             TEXT NOT NULL,
    model                TEXT NOT NULL,
    input_per_million    DOUBLE PRECISION NOT NULL,
    output_per_million   DOUBLE PRECISION NOT NULL,
    effective_from       BIGINT NOT NULL,
    created_by           TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS model_prices_model_idx ON model_prices (provider, model, effective_from);

-- Spend queries by key and by time.
CREATE INDEX IF NOT EXISTS usage_records_key_time_idx ON usage_records (api_key_id, created_at);
