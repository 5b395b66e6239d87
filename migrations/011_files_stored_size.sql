-- Tapeward catalog, schema version 11: files.stored_size, how many data
-- bytes a member has in the stream when that differs from its size (a
-- sparse file stores only its data, not its holes). NULL: the same as
-- size (every other member). A restore of a member cut by the end of a
-- volume needs it: storaged checks that the continuation on the next
-- volume holds exactly the rest of the member's stored bytes (issue 12).
ALTER TABLE files ADD COLUMN stored_size bigint CHECK (stored_size >= 0);

---- create above / drop below ----

ALTER TABLE files DROP COLUMN stored_size;
