-- Tapeward catalog, schema version 7: the vault (issue 11 item 8).
--
-- in_changer says whether a volume's cartridge is in its storage's library
-- (false: exported through the import/export slots, kept offsite);
-- offsite_since is when it left. `export volume=` clears in_changer and
-- the slot; `import` sets them again.
ALTER TABLE media ADD COLUMN in_changer boolean NOT NULL DEFAULT true;
ALTER TABLE media ADD COLUMN offsite_since timestamptz;
ALTER TABLE media ADD CONSTRAINT media_offsite_has_time
    CHECK (in_changer OR offsite_since IS NOT NULL);

---- create above / drop below ----

ALTER TABLE media DROP CONSTRAINT media_offsite_has_time;
ALTER TABLE media DROP COLUMN offsite_since, DROP COLUMN in_changer;
