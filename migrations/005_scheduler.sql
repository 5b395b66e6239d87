-- Tapeward catalog, schema version 5: the scheduler (issue 11).
-- scheduler_state holds each director's last scheduler tick: every Run
-- up to it was fired (or judged), so at start-up the director knows what
-- it missed while it was down. scheduler_missed lists the runs it did
-- not start (director down longer than the job's catch_up, or not the
-- latest missed run of its job), for `status scheduler`.
CREATE TABLE scheduler_state (
    director   text PRIMARY KEY,
    last_tick  timestamptz NOT NULL
);

CREATE TABLE scheduler_missed (
    id            bigserial PRIMARY KEY,
    director      text NOT NULL,
    job           text NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    level         text NOT NULL DEFAULT '',
    pool          text NOT NULL DEFAULT '',
    reason        text NOT NULL,
    recorded_at   timestamptz NOT NULL
);
CREATE INDEX scheduler_missed_at ON scheduler_missed (director, scheduled_at);

---- create above / drop below ----

DROP TABLE scheduler_missed;
DROP TABLE scheduler_state;
