-- Providers added, replaced or removed at runtime through the admin API. At start-up (and on every
-- instance, periodically) they are applied over the `[[providers]]` of the configuration: a row with an
-- entry adds or replaces that provider, a row without one (removed = 1) takes it away.
CREATE TABLE IF NOT EXISTS runtime_providers (
    name        TEXT PRIMARY KEY,
    entry       TEXT,
    removed     INTEGER NOT NULL,
    updated_by  TEXT,
    updated_at  BIGINT NOT NULL
);
