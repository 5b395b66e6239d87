package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The scheduler's state (schema 5): each director's last tick and the
// runs it did not start.

// SchedulerTick returns the last tick director's scheduler recorded;
// false when it never ran against this catalog.
func (s *Store) SchedulerTick(ctx context.Context, director string) (time.Time, bool, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_tick FROM scheduler_state WHERE director = $1`, director).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, dbErr("reading the scheduler's last tick", err)
	}
	return t, true, nil
}

// SetSchedulerTick records director's scheduler tick: every run up to
// and including at was fired or judged missed.
func (s *Store) SetSchedulerTick(ctx context.Context, director string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO scheduler_state (director, last_tick) VALUES ($1, $2)
		ON CONFLICT (director) DO UPDATE SET last_tick = EXCLUDED.last_tick`, director, at.UTC())
	return dbErr("recording the scheduler's tick", err)
}

// MissedRun is a scheduled run the director did not start (it was down
// at the time, longer than the job's catch_up, or a later run of the
// same job was started instead).
type MissedRun struct {
	Job         string    `json:"job"`
	ScheduledAt time.Time `json:"scheduled_at"`
	Level       string    `json:"level"`
	Pool        string    `json:"pool"`
	Reason      string    `json:"reason"`
	RecordedAt  time.Time `json:"recorded_at"`
}

// RecordMissed adds missed runs of director's scheduler.
func (s *Store) RecordMissed(ctx context.Context, director string, runs []MissedRun) error {
	if len(runs) == 0 {
		return nil
	}
	return s.inTx(ctx, "recording missed runs", func(tx pgx.Tx) error {
		now := s.nowUTC()
		for _, m := range runs {
			if _, err := tx.Exec(ctx, `
				INSERT INTO scheduler_missed (director, job, scheduled_at, level, pool, reason, recorded_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, director, m.Job, m.ScheduledAt.UTC(), m.Level, m.Pool, m.Reason, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// MissedRuns returns director's missed runs scheduled at or after since,
// oldest first.
func (s *Store) MissedRuns(ctx context.Context, director string, since time.Time) ([]MissedRun, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT job, scheduled_at, level, pool, reason, recorded_at FROM scheduler_missed
		WHERE director = $1 AND scheduled_at >= $2 ORDER BY scheduled_at, job, id`, director, since.UTC())
	if err != nil {
		return nil, dbErr("reading missed runs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MissedRun, error) {
		var m MissedRun
		err := r.Scan(&m.Job, &m.ScheduledAt, &m.Level, &m.Pool, &m.Reason, &m.RecordedAt)
		return m, err
	})
	return out, dbErr("reading missed runs", err)
}
