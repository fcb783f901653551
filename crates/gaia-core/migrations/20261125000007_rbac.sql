-- Role-based access control (gaia-rbac). Built-in roles live in code; custom roles here.
CREATE TABLE IF NOT EXISTS rbac_roles (
    name        TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,   -- JSON array of {resource_type, action, pattern}
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS rbac_teams (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,   -- team | workspace
    name        TEXT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rbac_teams_kind_name_idx ON rbac_teams (kind, name);

CREATE TABLE IF NOT EXISTS rbac_members (
    group_id    TEXT NOT NULL REFERENCES rbac_teams(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS rbac_members_user_idx ON rbac_members (user_id);

CREATE TABLE IF NOT EXISTS rbac_grants (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    group_id    TEXT REFERENCES rbac_teams(id) ON DELETE CASCADE,
    expires_at  BIGINT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rbac_grants_user_idx ON rbac_grants (user_id);

CREATE TABLE IF NOT EXISTS rbac_shares (
    id            TEXT PRIMARY KEY,
    resource_type TEXT NOT NULL,
    path          TEXT NOT NULL,
    user_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
    group_id      TEXT REFERENCES rbac_teams(id) ON DELETE CASCADE,
    access        TEXT NOT NULL,  -- read | write
    created_by    TEXT,
    created_at    BIGINT NOT NULL
);

-- Bumped in the same transaction as every change, so every instance can tell its snapshot is stale.
CREATE TABLE IF NOT EXISTS rbac_state (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO rbac_state (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS rbac_audit (
    id          TEXT PRIMARY KEY,
    actor_id    TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rbac_audit_time_idx ON rbac_audit (created_at);
