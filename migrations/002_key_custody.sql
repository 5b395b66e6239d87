-- Tapeward catalog, schema version 2: key custody (architecture.md §4,
-- invariants 7 and 8).
--
--   * media_keys keeps every key a volume had before its current one. The
--     current key stays in media.key_string (so a mount reads one row); a key
--     change moves the old key here in the same transaction. Nothing deletes a
--     row of media_keys (crypto-shredding, a later and explicit act, will be the
--     only exception). rekey rewraps these rows together with media's.
--   * media.data_since is set synchronously by storaged before it writes the
--     first data block of a session (Director.BeginWrite): "holds data" no
--     longer depends on a best-effort report that may be lost.
--   * cache_pushes lists, per storage daemon, the volumes whose keys must still
--     be pushed into that daemon's crypto cache (after a rekey, when it was
--     down). A row goes away when the push succeeded.

CREATE TABLE media_keys (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    media_id         bigint NOT NULL REFERENCES media (id) ON DELETE RESTRICT,
    volume_name      text NOT NULL CHECK (volume_name <> ''),
    key_string       text NOT NULL CHECK (key_string <> ''),
    key_scheme       text NOT NULL CHECK (key_scheme IN ('v1', 'bareos')),
    kek_id           text NOT NULL CHECK (kek_id <> ''),
    key_fingerprint  text NOT NULL CHECK (key_fingerprint <> ''),
    -- When the key became the volume's key, and when it stopped being it.
    valid_from       timestamptz,
    valid_to         timestamptz NOT NULL,
    -- Why it stopped: 'rotated', 'encryption removed', 'recycled', 'reverted'.
    reason           text NOT NULL CHECK (reason <> ''),
    -- The volume held data when the key was superseded (data on tape may be
    -- encrypted under it).
    had_data         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (media_id, key_fingerprint)
);
CREATE INDEX media_keys_media_idx ON media_keys (media_id, valid_to);
CREATE INDEX media_keys_kek_idx ON media_keys (kek_id);

ALTER TABLE media ADD COLUMN data_since timestamptz;
ALTER TABLE media ADD COLUMN key_valid_from timestamptz;

CREATE TABLE cache_pushes (
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
    -- schema 2: a key moved to the history, a history key made current
    -- again, a key pushed into a storage's crypto cache, a label or data
    -- session interrupted, a label that did not match the catalog.
    'superseded', 'restored', 'pushed', 'interrupted', 'refused'));

---- create above / drop below ----

ALTER TABLE key_events DROP CONSTRAINT key_events_event_check;
ALTER TABLE key_events ADD CONSTRAINT key_events_event_check CHECK (event IN (
    'generated', 'fetched', 'loaded', 'verified', 'cleared',
    'rotated', 'rekeyed', 'exported', 'imported'));
DROP TABLE cache_pushes;
ALTER TABLE media DROP COLUMN key_valid_from;
ALTER TABLE media DROP COLUMN data_since;
DROP TABLE media_keys;
