-- Tapeward catalog, schema version 3: jobs as Bareos users know them, and
-- file records with exact tape addresses, loaded with COPY while the tape
-- streams (issue 10, architecture.md §3, §4 invariant 9, §9).
--
-- jobs: status is Bareos' one-letter code (C created, R running, T OK,
--   W OK with warnings, E error, f fatal, A cancelled; waiting states
--   F client, S storage, m new media, M mount, s storage resource,
--   j job resource, c client resource, d max concurrent jobs, t start
--   time, p higher priority). Schema 1's words are mapped (Created → C,
--   Running → R, Terminated → T, Error → E, Canceled → A). level,
--   upgraded_from and upgrade_reason record a level upgrade ("no prior Full
--   of job X for client Y; upgraded from Incremental"); since_time is the
--   start of the job the level is relative to; fileset_identity is the
--   fileset's Identity() (64 hex) that decides "same fileset".
--   flushed_offset is the stream offset up to which storaged reported the
--   data written and flushed, and up to which file rows are committed.
--
-- job_media: one row per tape file the job wrote (part 1, 2, … over its
--   data tape files, then its index tape file), complete = false until the
--   tape file was closed with a filemark. A crash leaves the partial tape
--   file recorded as such; the next job appends after the last complete
--   tape file (file rows of the partial file are only those storaged had
--   flushed, so they are readable).
--
-- files: one row per member of the job's pax stream, addressed exactly:
--   the member's first header block is at byte block_offset of logical
--   block block (counted from the start of tape file tape_file) of volume
--   media_id, and at stream_offset in the job's stream. Members cut by the
--   end of a volume have their continuations in file_parts.
--
--   path is bytea: the exact bytes the kernel returned (newlines, invalid
--   UTF-8 and any byte but NUL). Byte order is the walker's order and no
--   collation is involved. Programs render it with catalog.RenderPath (the
--   text if valid UTF-8 without control characters, else a Go-quoted
--   string); in psql: convert_from(path, 'UTF8') for valid paths, or
--   encode(path, 'escape') for any.
--
--   Load strategy (measured by director/catalog BenchmarkFileRows, which
--   loads the same rows several ways in one run; PG 15 on the shared 2-core
--   machine; figures in director/catalog/files.go): files has no btree at
--   all, only a BRIN index on job_id. Rows arrive job by job in stream
--   order, so a job's rows sit in a few contiguous page ranges and the BRIN
--   index finds them; maintaining it costs almost nothing during COPY
--   (new pages stay unsummarized until autosummarize or EndJob's
--   brin_summarize_new_values, and unsummarized ranges are simply read).
--   With 1,000,000 rows FileBatch into this table ran at 383k-393k rows/s,
--   0.83-0.87× a raw COPY into an unindexed table (no index at all:
--   0.92-0.98×); with a primary key (job_id, stream_offset) instead
--   0.65×, with a (job_id, path) btree 0.29-0.33× (the wave-1 design);
--   the text_pattern_ops path index is gone. What restore and `list files`
--   need is "the rows of these jobs" (ListFiles, CurrentView read whole
--   jobs); a path lookup filters those rows. No foreign key either (a
--   trigger per row): FileBatch checks every row's tape file against the
--   job's job_media rows before COPY, and whoever deletes a job deletes its
--   files rows first. (job_id, stream_offset) is unique by construction:
--   FileBatch only accepts increasing stream offsets after the job's
--   flushed offset.

-- file_deletions: paths that an Incremental or Differential saw gone
--   (RecordDeletions), so that a point-in-time restore does not resurrect
--   them. Few rows per job: an ordinary primary key.

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ALTER COLUMN status DROP DEFAULT;
UPDATE jobs SET status = CASE status
    WHEN 'Created' THEN 'C' WHEN 'Running' THEN 'R' WHEN 'Terminated' THEN 'T'
    WHEN 'Error' THEN 'E' WHEN 'Canceled' THEN 'A' ELSE status END;
ALTER TABLE jobs ALTER COLUMN status SET DEFAULT 'C';
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'C', 'R', 'T', 'W', 'E', 'f', 'A',
    'F', 'S', 'm', 'M', 's', 'j', 'c', 'd', 't', 'p'));
ALTER TABLE jobs DROP CONSTRAINT jobs_job_type_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_job_type_check CHECK (job_type IN ('Backup', 'Restore', 'Admin', 'Catalog'));
ALTER TABLE jobs ADD COLUMN upgraded_from text CHECK (upgraded_from IN ('Incremental', 'Differential'));
ALTER TABLE jobs ADD COLUMN upgrade_reason text;
ALTER TABLE jobs ADD COLUMN since_time timestamptz;
ALTER TABLE jobs ADD COLUMN fileset_identity text;
ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 10;
ALTER TABLE jobs ADD COLUMN warnings_count integer NOT NULL DEFAULT 0 CHECK (warnings_count >= 0);
ALTER TABLE jobs ADD COLUMN flushed_offset bigint NOT NULL DEFAULT 0 CHECK (flushed_offset >= 0);
ALTER TABLE jobs ADD COLUMN deletions_count bigint NOT NULL DEFAULT 0 CHECK (deletions_count >= 0);
ALTER TABLE jobs ADD CONSTRAINT jobs_upgrade_has_reason CHECK (
    upgraded_from IS NULL OR (level = 'Full' AND upgrade_reason IS NOT NULL AND upgrade_reason <> ''));
-- Since-time and restore chains: the successful jobs of a (job, client,
-- fileset) by start time.
CREATE INDEX jobs_chain_idx ON jobs (name, client, started_at);
CREATE INDEX jobs_client_fileset_idx ON jobs (client, fileset, started_at);

-- job_media: one row per tape file part.
ALTER TABLE job_media DROP CONSTRAINT job_media_pkey;
ALTER TABLE job_media DROP CONSTRAINT job_media_job_id_volume_index_key;
ALTER TABLE job_media ADD COLUMN part integer;
UPDATE job_media SET part = volume_index;
ALTER TABLE job_media ALTER COLUMN part SET NOT NULL;
ALTER TABLE job_media ADD CONSTRAINT job_media_part_check CHECK (part >= 1);
ALTER TABLE job_media ADD COLUMN kind text NOT NULL DEFAULT 'data' CHECK (kind IN ('data', 'index'));
ALTER TABLE job_media ADD COLUMN first_stream_offset bigint NOT NULL DEFAULT 0 CHECK (first_stream_offset >= 0);
ALTER TABLE job_media ADD COLUMN complete boolean NOT NULL DEFAULT false;
-- Rows of schema 2 name tape files already written: never write over them.
UPDATE job_media SET complete = true;
-- An incomplete tape file that a later job wrote over (it starts at the
-- same tape file number): its file rows are gone, the row stays.
ALTER TABLE job_media ADD COLUMN overwritten_by bigint REFERENCES jobs (id) ON DELETE SET NULL;
ALTER TABLE job_media ADD PRIMARY KEY (job_id, part);
CREATE INDEX job_media_media_file_idx ON job_media (media_id, tape_file);

-- files: redesigned (schema 1's rows had no exact address; none exist yet
-- outside tests).
DROP TABLE files;
CREATE TABLE files (
    job_id         bigint NOT NULL,
    path           bytea NOT NULL CHECK (path <> ''::bytea),
    type           text NOT NULL CHECK (type IN ('file', 'dir', 'symlink', 'link', 'char', 'block', 'fifo')),
    size           bigint NOT NULL,
    mode           integer NOT NULL,
    uid            bigint NOT NULL,
    gid            bigint NOT NULL,
    uname          text NOT NULL,
    gname          text NOT NULL,
    mtime_ns       bigint NOT NULL,
    link           bytea,
    sha256         bytea CHECK (octet_length(sha256) = 32),
    media_id       bigint NOT NULL,
    tape_file      integer NOT NULL,
    block          bigint NOT NULL,
    block_offset   integer NOT NULL,
    stream_offset  bigint NOT NULL,
    parts          smallint NOT NULL DEFAULT 0   -- number of file_parts rows
);
CREATE INDEX files_job_brin ON files USING brin (job_id) WITH (pages_per_range = 32, autosummarize = on);

-- Continuations of members cut by the end of a volume (archive README §5).
CREATE TABLE file_parts (
    job_id         bigint NOT NULL,
    stream_offset  bigint NOT NULL,            -- of the member it continues
    part           integer NOT NULL CHECK (part >= 2),
    media_id       bigint NOT NULL,
    tape_file      integer NOT NULL,
    block          bigint NOT NULL,
    block_offset   integer NOT NULL,
    data_offset    bigint NOT NULL CHECK (data_offset >= 0),  -- offset in the member's stored data
    PRIMARY KEY (job_id, stream_offset, part)
);

CREATE TABLE file_deletions (
    job_id  bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path    bytea NOT NULL CHECK (path <> ''::bytea),
    PRIMARY KEY (job_id, path)
);

---- create above / drop below ----

DROP TABLE file_deletions;
DROP TABLE file_parts;
DROP TABLE files;
CREATE TABLE files (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id         bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path           text NOT NULL CHECK (path <> ''),
    size           bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    mtime          timestamptz,
    mode           integer NOT NULL DEFAULT 0,
    owner_name     text,
    group_name     text,
    uid            integer,
    gid            integer,
    media_id       bigint NOT NULL REFERENCES media (id),
    tape_file      integer NOT NULL CHECK (tape_file >= 0),
    block_address  bigint NOT NULL CHECK (block_address >= 0)
);
CREATE INDEX files_job_path_idx ON files (job_id, path);
CREATE INDEX files_path_idx ON files (path text_pattern_ops);
CREATE INDEX files_media_idx ON files (media_id, tape_file, block_address);

DROP INDEX job_media_media_file_idx;
ALTER TABLE job_media DROP CONSTRAINT job_media_pkey;
DELETE FROM job_media WHERE kind = 'index';
ALTER TABLE job_media DROP COLUMN overwritten_by;
ALTER TABLE job_media DROP COLUMN complete;
ALTER TABLE job_media DROP COLUMN first_stream_offset;
ALTER TABLE job_media DROP COLUMN kind;
ALTER TABLE job_media DROP COLUMN part;
ALTER TABLE job_media ADD PRIMARY KEY (job_id, media_id, tape_file);
ALTER TABLE job_media ADD CONSTRAINT job_media_job_id_volume_index_key UNIQUE (job_id, volume_index);

DROP INDEX jobs_client_fileset_idx;
DROP INDEX jobs_chain_idx;
ALTER TABLE jobs DROP CONSTRAINT jobs_upgrade_has_reason;
ALTER TABLE jobs DROP COLUMN deletions_count;
ALTER TABLE jobs DROP COLUMN flushed_offset;
ALTER TABLE jobs DROP COLUMN warnings_count;
ALTER TABLE jobs DROP COLUMN priority;
ALTER TABLE jobs DROP COLUMN fileset_identity;
ALTER TABLE jobs DROP COLUMN since_time;
ALTER TABLE jobs DROP COLUMN upgrade_reason;
ALTER TABLE jobs DROP COLUMN upgraded_from;
ALTER TABLE jobs DROP CONSTRAINT jobs_job_type_check;
UPDATE jobs SET job_type = 'Admin' WHERE job_type = 'Catalog';
ALTER TABLE jobs ADD CONSTRAINT jobs_job_type_check CHECK (job_type IN ('Backup', 'Restore', 'Admin'));
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ALTER COLUMN status DROP DEFAULT;
UPDATE jobs SET status = CASE status
    WHEN 'C' THEN 'Created' WHEN 'R' THEN 'Running' WHEN 'T' THEN 'Terminated' WHEN 'W' THEN 'Terminated'
    WHEN 'A' THEN 'Canceled' WHEN 'E' THEN 'Error' WHEN 'f' THEN 'Error' ELSE 'Created' END;
ALTER TABLE jobs ALTER COLUMN status SET DEFAULT 'Created';
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN ('Created', 'Running', 'Terminated', 'Error', 'Canceled'));
