-- Live edits of a world's places by its administrators (`@create`, `@edit`, `@delete`, `@connect`,
-- `@disconnect`): one row per edited location (`location:<id>`), area (`area:<location>/<id>`) or spot
-- (`spot:<location>/<area>/<id>`), `data` the edit as JSON (the fields set, `fresh` for a place made
-- anew, or `deleted`). The vault's content stays as written; a world's places are its content with
-- these edits on top. `places_version` is the world version of the last edit (0: never edited), read
-- with every command so that each instance rebuilds its view of the places when it changes.
CREATE TABLE IF NOT EXISTS world_places (
    world_id TEXT NOT NULL REFERENCES world_instances(id) ON DELETE CASCADE,
    place    TEXT NOT NULL,
    data     TEXT NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (world_id, place)
);

ALTER TABLE world_instances ADD COLUMN places_version BIGINT NOT NULL DEFAULT 0;
