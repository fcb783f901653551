-- Knowledge-base documents (storage modes `database` and `hybrid`).
CREATE TABLE IF NOT EXISTS kb_documents (
    kb          TEXT NOT NULL,
    path        TEXT NOT NULL,
    content     TEXT NOT NULL,
    hash        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT,
    PRIMARY KEY (kb, path)
);
