-- Input tokens written to a provider's prompt cache (Anthropic's `cache_creation_input_tokens`),
-- metered and priced at the cache-write rate (Anthropic: 1.25 times the input price).
ALTER TABLE usage_records ADD COLUMN cache_write_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_prices ADD COLUMN cache_write_input_per_million DOUBLE PRECISION;
