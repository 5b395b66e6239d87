-- Tapeward catalog, schema version 8: each key of a volume's history keeps
-- when storaged last verified a drive encrypting with it while it was
-- current (media.encryption_verified_at), so that a key made current again
-- (RestoreKey) keeps its verification.
--
-- (An earlier build added this column in 002_key_custody.sql itself; a
-- catalog that ran that build has it already, hence IF NOT EXISTS. 002 is
-- back as catalogs in the field first ran it.)
ALTER TABLE media_keys ADD COLUMN IF NOT EXISTS encryption_verified_at timestamptz;

---- create above / drop below ----

ALTER TABLE media_keys DROP COLUMN encryption_verified_at;
