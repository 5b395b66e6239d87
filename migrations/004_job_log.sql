-- Tapeward catalog, schema version 4: the job log (issue 10). One row per
-- line a job writes while it runs ("Start Backup JobId 42, Job=web1-home",
-- "Using volume OFF007 in drive 0 of sd1", warnings, the report), as a
-- Bareos user reads them with `list joblog jobid=N`. Lines are kept with
-- their job (deleted with it) and read in (job_id, seq) order.
CREATE TABLE job_log (
    job_id  bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     integer NOT NULL CHECK (seq >= 1),
    at      timestamptz NOT NULL,
    level   text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warning', 'error')),
    line    text NOT NULL,
    PRIMARY KEY (job_id, seq)
);

---- create above / drop below ----

DROP TABLE job_log;
