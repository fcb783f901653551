-- Stored embeddings, content-addressed: the vector of a text (by its SHA-256) in one embedding space
-- (`space`: the model and its size), within a scope (`kb:<name>` for a knowledge base's chunks,
-- `memory` for persona facts). Every instance sharing the database finds what another embedded, and a
-- text that did not change is never embedded again. The vector is base64 of little-endian f32s.
CREATE TABLE IF NOT EXISTS embeddings (
    scope       TEXT NOT NULL,
    space       TEXT NOT NULL,
    hash        TEXT NOT NULL,
    dims        INTEGER NOT NULL,
    vector      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, space, hash)
);
