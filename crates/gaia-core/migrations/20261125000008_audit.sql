-- Security-relevant actions: sign-ins (and failures), registrations, API keys created and revoked,
-- knowledge-base writes, provider changes. Access-control changes are in rbac_audit.
CREATE TABLE IF NOT EXISTS audit_log (
    id          TEXT PRIMARY KEY,
    actor_id    TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time_idx ON audit_log (created_at);
