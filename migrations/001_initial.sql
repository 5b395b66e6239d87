-- Tapeward catalog, schema version 1.
--
-- Conventions:
--   * every table has a bigint identity primary key "id" (except link tables);
--   * times are timestamptz; the application passes its (injected) clock's time
--     where it matters, defaults to now() are only a fallback;
--   * status-like columns are text with a CHECK listing the allowed values, so a
--     bad value fails loudly at the database and a psql reader sees words;
--   * NO KEY MATERIAL is ever stored in clear: media.key_string holds the volume
--     key wrapped under a KEK (base64), identified by kek_id; fingerprints are
--     one-way. key_events.detail must never carry key material either.

-- Storage daemons the director dials (one row per [[storage]] it has seen).
CREATE TABLE storages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    address     text NOT NULL DEFAULT '',          -- host:port last used
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Pools group volumes; jobs write to a pool.
CREATE TABLE pools (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name <> ''),
    pool_type          text NOT NULL DEFAULT 'Backup'
                       CHECK (pool_type IN ('Backup', 'Scratch')),
    -- New volumes labeled into this pool get a per-volume key.
    encrypt            boolean NOT NULL DEFAULT true,
    -- How long a Full/Used volume's data must be kept before it may be purged.
    volume_retention   interval,
    -- Upper bound on bytes per volume (NULL: until end of tape).
    max_volume_bytes   bigint CHECK (max_volume_bytes IS NULL OR max_volume_bytes > 0),
    storage_id         bigint REFERENCES storages (id),
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- One row per tape volume (cartridge).
CREATE TABLE media (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Volume name written in the tape label (Bareos allows up to 127 chars).
    volume_name      text NOT NULL UNIQUE
                     CHECK (volume_name ~ '^[A-Za-z0-9._:+-]{1,127}$'),
    -- Barcode read by the changer; NULL for a cartridge without one.
    barcode          text UNIQUE CHECK (barcode IS NULL OR barcode <> ''),
    pool_id          bigint NOT NULL REFERENCES pools (id),
    storage_id       bigint REFERENCES storages (id),
    slot             integer CHECK (slot IS NULL OR slot >= 0),
    media_type       text NOT NULL DEFAULT 'LTO',
    -- Life cycle: Labeling (row and key committed, label not yet verified) ->
    -- Append -> Full/Used -> Purged; Error says why in error_reason.
    status           text NOT NULL DEFAULT 'Labeling'
                     CHECK (status IN ('Labeling', 'Append', 'Full', 'Used', 'Error', 'Purged')),
    bytes_written    bigint NOT NULL DEFAULT 0 CHECK (bytes_written >= 0),
    blocks_written   bigint NOT NULL DEFAULT 0 CHECK (blocks_written >= 0),
    files_written    integer NOT NULL DEFAULT 0 CHECK (files_written >= 0),
    label_time       timestamptz,
    first_written    timestamptz,
    last_written     timestamptz,
    error_reason     text,
    -- Encryption. key_string is the WRAPPED key (scheme v1: AES-256 key wrap of
    -- the 32-byte volume key, base64 without padding; scheme bareos: Bareos'
    -- AES-128-wrapped passphrase). kek_id names the KEK that wrapped it;
    -- key_fingerprint is the one-way fingerprint also used as the drive's U-KAD.
    encrypted               boolean NOT NULL DEFAULT false,
    key_string              text,
    key_scheme              text CHECK (key_scheme IN ('v1', 'bareos')),
    kek_id                  text,
    key_fingerprint         text,
    encryption_verified_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),

    -- An encrypted volume always has everything needed to load its key again.
    CONSTRAINT media_encrypted_has_key CHECK (
        NOT encrypted OR (
            key_string IS NOT NULL AND key_string <> '' AND
            key_scheme IS NOT NULL AND
            kek_id IS NOT NULL AND kek_id <> '' AND
            key_fingerprint IS NOT NULL AND key_fingerprint <> ''
        )
    ),
    -- A clear volume carries no key and cannot have been "encryption verified".
    CONSTRAINT media_clear_has_no_key CHECK (
        encrypted OR (
            key_string IS NULL AND key_scheme IS NULL AND kek_id IS NULL AND
            key_fingerprint IS NULL AND encryption_verified_at IS NULL
        )
    ),
    -- A volume in Error says what failed.
    CONSTRAINT media_error_has_reason CHECK (
        status <> 'Error' OR (error_reason IS NOT NULL AND error_reason <> '')
    )
);
CREATE INDEX media_pool_status_idx ON media (pool_id, status);
CREATE INDEX media_storage_slot_idx ON media (storage_id, slot);
-- rekey walks every key wrapped under an old KEK.
CREATE INDEX media_kek_id_idx ON media (kek_id) WHERE encrypted;

-- Jobs (backup, restore, admin work such as labeling).
CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),       -- job resource name
    job_type      text NOT NULL CHECK (job_type IN ('Backup', 'Restore', 'Admin')),
    level         text CHECK (level IN ('Full', 'Incremental', 'Differential')),
    status        text NOT NULL DEFAULT 'Created'
                  CHECK (status IN ('Created', 'Running', 'Terminated', 'Error', 'Canceled')),
    client        text,
    fileset       text,
    pool_id       bigint REFERENCES pools (id),
    storage_id    bigint REFERENCES storages (id),
    scheduled_at  timestamptz,
    started_at    timestamptz,
    ended_at      timestamptz,
    files_count   bigint NOT NULL DEFAULT 0 CHECK (files_count >= 0),
    bytes_count   bigint NOT NULL DEFAULT 0 CHECK (bytes_count >= 0),
    error_reason  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX jobs_name_started_idx ON jobs (name, started_at);
CREATE INDEX jobs_status_idx ON jobs (status);

-- Which volumes a job wrote: one row per tape file (job session) on a volume.
-- A job that spans volumes has one row per volume, in volume_index order.
CREATE TABLE job_media (
    job_id        bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    media_id      bigint NOT NULL REFERENCES media (id),
    volume_index  integer NOT NULL CHECK (volume_index >= 1),
    tape_file     integer NOT NULL CHECK (tape_file >= 0),  -- file number (filemarks before it)
    first_block   bigint NOT NULL CHECK (first_block >= 0), -- logical block address
    last_block    bigint CHECK (last_block IS NULL OR last_block >= first_block),
    bytes         bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (job_id, media_id, tape_file),
    UNIQUE (job_id, volume_index)
);
CREATE INDEX job_media_media_idx ON job_media (media_id);

-- File records of backup jobs (streamed in with COPY). A file's tar header
-- starts at block_address inside tape file tape_file of volume media_id, so a
-- restore can LOCATE straight to it.
CREATE TABLE files (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id         bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path           text NOT NULL CHECK (path <> ''),
    size           bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    mtime          timestamptz,
    mode           integer NOT NULL DEFAULT 0,   -- st_mode: type and permission bits
    owner_name     text,
    group_name     text,
    uid            integer,
    gid            integer,
    media_id       bigint NOT NULL REFERENCES media (id),
    tape_file      integer NOT NULL CHECK (tape_file >= 0),
    block_address  bigint NOT NULL CHECK (block_address >= 0)
);
CREATE INDEX files_job_path_idx ON files (job_id, path);
-- prefix searches ("restore everything under /etc/") use text_pattern_ops.
CREATE INDEX files_path_idx ON files (path text_pattern_ops);
CREATE INDEX files_media_idx ON files (media_id, tape_file, block_address);

-- Audit log of everything done with a volume key. Never holds key material:
-- detail is free text for humans (fingerprints at most).
CREATE TABLE key_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    -- The volume name is kept as text so the log outlives a deleted media row.
    volume_name  text NOT NULL CHECK (volume_name <> ''),
    media_id     bigint REFERENCES media (id) ON DELETE SET NULL,
    event        text NOT NULL CHECK (event IN (
                     'generated', 'fetched', 'loaded', 'verified', 'cleared',
                     'rotated', 'rekeyed', 'exported', 'imported')),
    actor        text NOT NULL CHECK (actor <> ''),  -- console, storage or tool name
    kek_id       text,
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX key_events_volume_at_idx ON key_events (volume_name, at);
CREATE INDEX key_events_at_idx ON key_events (at);
CREATE INDEX key_events_media_idx ON key_events (media_id);

---- create above / drop below ----

DROP TABLE key_events;
DROP TABLE files;
DROP TABLE job_media;
DROP TABLE jobs;
DROP TABLE media;
DROP TABLE pools;
DROP TABLE storages;
