-- Where an item lies, as columns: `location_id` and `area_id` of an item in an area (any spot of it),
-- '' for an item a player or an NPC holds or one used up. The items of an area or of a location are
-- then an equality lookup on an index, the same on both databases whatever their collation (a range
-- of `holder` strings depends on the collation's order of `/`, and an index in byte order cannot be
-- declared the same way on both). `holder` stays the item's exact place (with its spot).
ALTER TABLE world_items ADD COLUMN location_id TEXT NOT NULL DEFAULT '';
ALTER TABLE world_items ADD COLUMN area_id TEXT NOT NULL DEFAULT '';

-- `area:<location>/<area>/<spot>`: the location is what comes before the first `/` (`ltrim` by every
-- character but `/` leaves the rest from the first `/`), then the area likewise. Functions both
-- databases have.
UPDATE world_items
SET location_id = substr(substr(holder, 6), 1,
        length(substr(holder, 6)) - length(ltrim(substr(holder, 6), replace(substr(holder, 6), '/', '')))),
    area_id = substr(ltrim(substr(holder, 6), replace(substr(holder, 6), '/', '')), 2)
WHERE holder LIKE 'area:%';
UPDATE world_items
SET area_id = substr(area_id, 1, length(area_id) - length(ltrim(area_id, replace(area_id, '/', ''))))
WHERE holder LIKE 'area:%';

-- A holder's items in item order without a sort, and a place's items.
DROP INDEX IF EXISTS world_items_holder;
CREATE INDEX IF NOT EXISTS world_items_holder ON world_items (world_id, holder, item_id);
CREATE INDEX IF NOT EXISTS world_items_place ON world_items (world_id, location_id, area_id, item_id);
