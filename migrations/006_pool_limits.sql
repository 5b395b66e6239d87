-- Tapeward catalog, schema version 6: pools' volume limits and the full
-- volume life cycle (issue 11, jobs.md §4).
--
-- A pool's limits (volume_retention, max_volume_bytes, max_volume_jobs,
-- volume_use_duration, recycle) are copied into each volume when it is
-- labelled (trigger media_copy_pool_limits): changing the pool later does
-- not change existing volumes until `update pool=` re-applies them.
-- media.status gains Recycle, Read-Only, Disabled and Archive, and every
-- status change an operator makes is recorded in volume_events.
ALTER TABLE pools ADD COLUMN max_volume_jobs integer
    CHECK (max_volume_jobs IS NULL OR max_volume_jobs > 0);
ALTER TABLE pools ADD COLUMN volume_use_duration interval;
ALTER TABLE pools ADD COLUMN recycle boolean NOT NULL DEFAULT true;

ALTER TABLE media ADD COLUMN volume_retention interval;
ALTER TABLE media ADD COLUMN max_volume_bytes bigint
    CHECK (max_volume_bytes IS NULL OR max_volume_bytes > 0);
ALTER TABLE media ADD COLUMN max_volume_jobs integer
    CHECK (max_volume_jobs IS NULL OR max_volume_jobs > 0);
ALTER TABLE media ADD COLUMN volume_use_duration interval;
ALTER TABLE media ADD COLUMN recycle boolean NOT NULL DEFAULT true;

-- Volumes labelled before this schema take their pool's current limits.
UPDATE media m SET volume_retention = p.volume_retention, max_volume_bytes = p.max_volume_bytes,
    max_volume_jobs = p.max_volume_jobs, volume_use_duration = p.volume_use_duration, recycle = p.recycle
FROM pools p WHERE p.id = m.pool_id;

CREATE FUNCTION media_copy_pool_limits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT p.volume_retention, p.max_volume_bytes, p.max_volume_jobs, p.volume_use_duration, p.recycle
    INTO NEW.volume_retention, NEW.max_volume_bytes, NEW.max_volume_jobs, NEW.volume_use_duration, NEW.recycle
    FROM pools p WHERE p.id = NEW.pool_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER media_copy_pool_limits BEFORE INSERT ON media
    FOR EACH ROW EXECUTE FUNCTION media_copy_pool_limits();

ALTER TABLE media DROP CONSTRAINT media_status_check;
ALTER TABLE media ADD CONSTRAINT media_status_check CHECK (status IN (
    'Labeling', 'Append', 'Full', 'Used', 'Error', 'Purged',
    'Recycle', 'Read-Only', 'Disabled', 'Archive'));

-- Audit log of volume status changes (by an operator, or automatic: a
-- limit reached).
CREATE TABLE volume_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    volume_name  text NOT NULL CHECK (volume_name <> ''),
    media_id     bigint REFERENCES media (id) ON DELETE SET NULL,
    actor        text NOT NULL CHECK (actor <> ''),
    old_status   text NOT NULL,
    new_status   text NOT NULL,
    reason       text NOT NULL DEFAULT ''
);
CREATE INDEX volume_events_volume_at_idx ON volume_events (volume_name, at);

---- create above / drop below ----

DROP TABLE volume_events;
UPDATE media SET status = 'Full' WHERE status IN ('Read-Only', 'Archive');
UPDATE media SET status = 'Used' WHERE status = 'Disabled';
UPDATE media SET status = 'Purged' WHERE status = 'Recycle';
ALTER TABLE media DROP CONSTRAINT media_status_check;
ALTER TABLE media ADD CONSTRAINT media_status_check CHECK (status IN (
    'Labeling', 'Append', 'Full', 'Used', 'Error', 'Purged'));
DROP TRIGGER media_copy_pool_limits ON media;
DROP FUNCTION media_copy_pool_limits();
ALTER TABLE media DROP COLUMN recycle, DROP COLUMN volume_use_duration, DROP COLUMN max_volume_jobs,
    DROP COLUMN max_volume_bytes, DROP COLUMN volume_retention;
ALTER TABLE pools DROP COLUMN recycle, DROP COLUMN volume_use_duration, DROP COLUMN max_volume_jobs;
