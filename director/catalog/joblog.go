package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job log levels (the job_log.level CHECK of schema 4).
const (
	LogInfo    = "info"
	LogWarning = "warning"
	LogError   = "error"
)

// JobLogLine is one line of a job's log (`list joblog jobid=N`).
type JobLogLine struct {
	Seq   int       `json:"seq"`
	At    time.Time `json:"at"`
	Level string    `json:"level"`
	Line  string    `json:"line"`
}

// AppendJobLog adds a line to job jobID's log (level LogInfo, LogWarning
// or LogError; "" is LogInfo) at the store's clock. A line is one line:
// newlines are kept but never needed (callers render paths with
// RenderPath).
func (s *Store) AppendJobLog(ctx context.Context, jobID int64, level, line string) error {
	if level == "" {
		level = LogInfo
	}
	if level != LogInfo && level != LogWarning && level != LogError {
		return invalid("job log level", "%q is not info, warning or error", level)
	}
	op := fmt.Sprintf("writing the log of job %d", jobID)
	_, err := s.pool.Exec(ctx, `
		INSERT INTO job_log (job_id, seq, at, level, line)
		SELECT $1, COALESCE((SELECT max(seq) FROM job_log WHERE job_id = $1), 0) + 1, $2, $3, $4`,
		jobID, s.nowUTC(), level, line)
	if code, c := pgCode(err); code == "23503" && strings.Contains(c, "job_id") {
		return notFound("job", fmt.Sprint(jobID))
	}
	if code, _ := pgCode(err); code == "23505" { // two writers raced for one seq: once more
		_, err = s.pool.Exec(ctx, `
			INSERT INTO job_log (job_id, seq, at, level, line)
			SELECT $1, COALESCE((SELECT max(seq) FROM job_log WHERE job_id = $1), 0) + 1, $2, $3, $4`,
			jobID, s.nowUTC(), level, line)
	}
	return dbErr(op, err)
}

// JobLog returns a job's log lines in order (an unknown job is a
// *NotFoundError).
func (s *Store) JobLog(ctx context.Context, jobID int64) ([]JobLogLine, error) {
	if _, err := s.GetJob(ctx, jobID); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("reading the log of job %d", jobID)
	rows, err := s.pool.Query(ctx, `SELECT seq, at, level, line FROM job_log WHERE job_id = $1 ORDER BY seq`, jobID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobLogLine, error) {
		var l JobLogLine
		err := r.Scan(&l.Seq, &l.At, &l.Level, &l.Line)
		l.At = l.At.UTC()
		return l, err
	})
	return out, dbErr(op, err)
}

// JobFilter selects jobs for ListJobs; zero fields match everything.
type JobFilter struct {
	Name   string
	Client string
	Status JobStatus
	Type   string    // "" : any; TypeBackup, TypeRestore, …
	Since  time.Time // created at or after
	// Last keeps only the most recent job of each (name, client).
	Last  bool
	Limit int // 0: no limit
}

// ListJobs returns the jobs matching f, newest first.
func (s *Store) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := jobSelect + `
		WHERE ($1 = '' OR j.name = $1) AND ($2 = '' OR j.client = $2) AND ($3 = '' OR j.status = $3)
			AND ($4::timestamptz IS NULL OR j.created_at >= $4) AND ($5 = '' OR j.job_type = $5)`
	if f.Last {
		q += ` AND j.id = (SELECT max(k.id) FROM jobs k WHERE k.name = j.name AND k.client IS NOT DISTINCT FROM j.client)`
	}
	q += ` ORDER BY j.id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	var since *time.Time
	if !f.Since.IsZero() {
		t := f.Since.UTC()
		since = &t
	}
	rows, err := s.pool.Query(ctx, q, f.Name, f.Client, string(f.Status), since, f.Type)
	if err != nil {
		return nil, dbErr("listing jobs", err)
	}
	out, err := pgx.CollectRows(rows, scanJob)
	return out, dbErr("listing jobs", err)
}

// JobMedia is one tape file of a job (`list jobmedia jobid=N`).
type JobMedia struct {
	Part              int    `json:"part"`
	Kind              string `json:"kind"`
	Volume            string `json:"volume"`
	VolumeIndex       int    `json:"volume_index"`
	TapeFile          int    `json:"tape_file"`
	FirstBlock        int64  `json:"first_block"`
	LastBlock         *int64 `json:"last_block,omitempty"`
	Bytes             int64  `json:"bytes"`
	FirstStreamOffset int64  `json:"first_stream_offset"`
	Complete          bool   `json:"complete"`
	OverwrittenBy     *int64 `json:"overwritten_by,omitempty"`
}

// ListJobMedia returns a job's tape files in part order (an unknown job
// is a *NotFoundError).
func (s *Store) ListJobMedia(ctx context.Context, jobID int64) ([]JobMedia, error) {
	if _, err := s.GetJob(ctx, jobID); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("listing the tape files of job %d", jobID)
	rows, err := s.pool.Query(ctx, `
		SELECT jm.part, jm.kind, m.volume_name, jm.volume_index, jm.tape_file, jm.first_block, jm.last_block, jm.bytes,
			jm.first_stream_offset, jm.complete, jm.overwritten_by
		FROM job_media jm JOIN media m ON m.id = jm.media_id WHERE jm.job_id = $1 ORDER BY jm.part`, jobID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobMedia, error) {
		var m JobMedia
		return m, r.Scan(&m.Part, &m.Kind, &m.Volume, &m.VolumeIndex, &m.TapeFile, &m.FirstBlock, &m.LastBlock, &m.Bytes,
			&m.FirstStreamOffset, &m.Complete, &m.OverwrittenBy)
	})
	return out, dbErr(op, err)
}
