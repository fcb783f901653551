-- Generated assets (images, speech, transcriptions, 3D models): one row per asset, its file kept in
-- the asset store (a folder or an S3-compatible bucket) under `object_key`. 3D models are jobs: the
-- row is created `pending` with the provider's task id and moves to `succeeded`, `failed` or
-- `canceled`; a server that restarts picks up the rows still pending.
CREATE TABLE IF NOT EXISTS assets (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_key_id     TEXT,
    end_user       TEXT,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    options        TEXT NOT NULL,
    media_type     TEXT,
    size           BIGINT NOT NULL DEFAULT 0,
    object_key     TEXT,
    thumbnail_key  TEXT,
    task_id        TEXT,
    progress       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    unit           TEXT NOT NULL,
    units          DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_usd       DOUBLE PRECISION NOT NULL DEFAULT 0,
    revenue_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    tags           TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX IF NOT EXISTS assets_owner_idx ON assets (owner_id, created_at);
CREATE INDEX IF NOT EXISTS assets_status_idx ON assets (status);
CREATE INDEX IF NOT EXISTS assets_time_idx ON assets (created_at);

-- Prices of media units (per image, character, second, credit) and sell prices of asset kinds, with
-- the time each takes effect; the latest one in effect applies. `price_kind` is `cost` (provider,
-- model, unit) or `sell` (unit = the asset kind; provider and model empty).
CREATE TABLE IF NOT EXISTS unit_prices (
    id              TEXT PRIMARY KEY,
    price_kind      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    unit            TEXT NOT NULL,
    usd_per_unit    DOUBLE PRECISION NOT NULL,
    effective_from  BIGINT NOT NULL,
    created_by      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS unit_prices_key_idx ON unit_prices (price_kind, provider, model, unit, effective_from);
