-- Spend and calls per user and per API key per UTC day, kept up to date with every batch of usage
-- records, so budgets are checked against a few rows instead of every call of the period.
CREATE TABLE IF NOT EXISTS usage_daily (
    scope       TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    day         TEXT NOT NULL,
    requests    BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, subject_id, day)
);
INSERT INTO usage_daily (scope, subject_id, day, requests, cost_usd)
    SELECT 'user', user_id, day, COUNT(*), SUM(cost_usd) FROM usage_records GROUP BY user_id, day;
INSERT INTO usage_daily (scope, subject_id, day, requests, cost_usd)
    SELECT 'key', api_key_id, day, COUNT(*), SUM(cost_usd) FROM usage_records
    WHERE api_key_id IS NOT NULL GROUP BY api_key_id, day;
