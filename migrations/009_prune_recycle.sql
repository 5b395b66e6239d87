-- Tapeward catalog, schema version 9: prune, purge and recycling with a
-- fresh key (issue 11 items 1 and 6, jobs.md §4).
--
--   * A pruned or purged volume's jobs lose their file rows, file parts,
--     deletions and job_media on every volume (a job is restorable whole or
--     not at all, as Bareos removes the whole job); the jobs row stays as
--     history with purged_at and why, and no since-time or restore chain
--     counts it any more.
--   * Recycling moves a volume's key to media_keys (reason 'recycled') and
--     gives it a new one; superseded_verified_at is set on that history row
--     once storaged verified the new label and key-check block on the tape
--     (Director.LabelWritten). The old key stays: the tape's old data may
--     still be read by someone holding an older copy of it.
ALTER TABLE jobs ADD COLUMN purged_at timestamptz;
ALTER TABLE jobs ADD COLUMN purged_reason text;
ALTER TABLE jobs ADD CONSTRAINT jobs_purged_has_reason CHECK (
    purged_at IS NULL OR (purged_reason IS NOT NULL AND purged_reason <> ''));

ALTER TABLE media ADD COLUMN purged_at timestamptz;
ALTER TABLE media ADD COLUMN recycle_count integer NOT NULL DEFAULT 0 CHECK (recycle_count >= 0);

ALTER TABLE media_keys ADD COLUMN superseded_verified_at timestamptz;

---- create above / drop below ----

ALTER TABLE media_keys DROP COLUMN superseded_verified_at;
ALTER TABLE media DROP COLUMN recycle_count, DROP COLUMN purged_at;
ALTER TABLE jobs DROP CONSTRAINT jobs_purged_has_reason;
ALTER TABLE jobs DROP COLUMN purged_reason, DROP COLUMN purged_at;
