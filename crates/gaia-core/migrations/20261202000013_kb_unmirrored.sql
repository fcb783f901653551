-- Hybrid knowledge bases: documents whose last edit is saved in `kb_documents` but could not be
-- committed to the git working copy yet (one row per knowledge base and path; a later failed edit of
-- the same path replaces the row, and `edited_at` then always grows, so it also tells rows apart). The
-- next sync of any instance commits the database's text of each path (a deletion when it has none)
-- with the recorded author and message, before it takes in remote changes, then removes the row.
CREATE TABLE IF NOT EXISTS kb_unmirrored (
    kb            TEXT NOT NULL,
    path          TEXT NOT NULL,
    author_name   TEXT NOT NULL,
    author_email  TEXT NOT NULL,
    message       TEXT NOT NULL,
    edited_at     BIGINT NOT NULL,
    PRIMARY KEY (kb, path)
);
