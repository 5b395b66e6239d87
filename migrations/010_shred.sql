-- Tapeward catalog, schema version 10: crypto-shredding (issue 11 item 7,
-- architecture.md §4 invariant 7: destroying a key is a separate, explicit,
-- audited act).
--
--   * `shred volume=V yes` destroys every copy of V's keys the catalog
--     holds — media.key_string and every media_keys row — in one
--     transaction (002_key_custody.sql says nothing deletes a row of
--     media_keys: this is that one exception). The volume is then clear in
--     the catalog's sense (no key columns) but its data on tape is
--     encrypted under a key nobody holds: shredded_at and shredded_by say
--     so, and a mount is refused with them.
--     A volume relabelled afterwards (recycling) gets a new key; the
--     shredded_* columns stay as its record.
--   * shred_pushes lists, per storage daemon, the volumes whose keys must
--     still be destroyed in that daemon's crypto cache (it was down, or has
--     not answered yet). A row goes away when the daemon answered
--     ShredKeys; it says hello again to get the ones it missed.
--   * key_events gains 'shredded'.
ALTER TABLE media ADD COLUMN shredded_at timestamptz;
ALTER TABLE media ADD COLUMN shredded_by text;
ALTER TABLE media ADD CONSTRAINT media_shredded_has_actor
    CHECK ((shredded_at IS NULL) = (shredded_by IS NULL) AND (shredded_by IS NULL OR shredded_by <> ''));

CREATE TABLE shred_pushes (
    storage_id   bigint NOT NULL REFERENCES storages (id) ON DELETE CASCADE,
    volume_name  text NOT NULL CHECK (volume_name <> ''),
    queued_at    timestamptz NOT NULL DEFAULT now(),
    reason       text NOT NULL DEFAULT '',
    PRIMARY KEY (storage_id, volume_name)
);

ALTER TABLE key_events DROP CONSTRAINT key_events_event_check;
ALTER TABLE key_events ADD CONSTRAINT key_events_event_check CHECK (event IN (
    'generated', 'fetched', 'loaded', 'verified', 'cleared',
    'rotated', 'rekeyed', 'exported', 'imported',
    'superseded', 'restored', 'pushed', 'interrupted', 'refused',
    -- schema 10: a volume's keys destroyed (catalog, or a storage's cache)
    'shredded'));

---- create above / drop below ----

DELETE FROM key_events WHERE event = 'shredded';
ALTER TABLE key_events DROP CONSTRAINT key_events_event_check;
ALTER TABLE key_events ADD CONSTRAINT key_events_event_check CHECK (event IN (
    'generated', 'fetched', 'loaded', 'verified', 'cleared',
    'rotated', 'rekeyed', 'exported', 'imported',
    'superseded', 'restored', 'pushed', 'interrupted', 'refused'));
DROP TABLE shred_pushes;
ALTER TABLE media DROP CONSTRAINT media_shredded_has_actor;
ALTER TABLE media DROP COLUMN shredded_by, DROP COLUMN shredded_at;
