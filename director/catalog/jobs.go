package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobStatus is a job's status: Bareos' one-letter codes (jobs.md §2).
type JobStatus string

// Job statuses.
const (
	JobCreated   JobStatus = "C"
	JobRunning   JobStatus = "R"
	JobOK        JobStatus = "T"
	JobWarnings  JobStatus = "W"
	JobError     JobStatus = "E"
	JobFatal     JobStatus = "f"
	JobCancelled JobStatus = "A"

	// Waiting states.
	JobWaitClient          JobStatus = "F" // waiting for the client (filed)
	JobWaitStorage         JobStatus = "S" // waiting for the storage daemon
	JobWaitMedia           JobStatus = "m" // waiting for a new volume
	JobWaitMount           JobStatus = "M" // waiting for a mount
	JobWaitStorageResource JobStatus = "s" // waiting for a drive
	JobWaitJobResource     JobStatus = "j" // max concurrent jobs of the job
	JobWaitClientResource  JobStatus = "c" // max concurrent jobs of the client
	JobWaitMaxJobs         JobStatus = "d" // the director's max concurrent jobs
	JobWaitStartTime       JobStatus = "t" // waiting for its start time
	JobWaitPriority        JobStatus = "p" // a higher-priority job runs
)

var jobStatusNames = map[JobStatus]string{
	JobCreated: "created", JobRunning: "running", JobOK: "OK", JobWarnings: "OK with warnings",
	JobError: "error", JobFatal: "fatal error", JobCancelled: "cancelled",
	JobWaitClient: "waiting for the client", JobWaitStorage: "waiting for the storage",
	JobWaitMedia: "waiting for a new volume", JobWaitMount: "waiting for a mount",
	JobWaitStorageResource: "waiting for a drive", JobWaitJobResource: "waiting for the job's max concurrent jobs",
	JobWaitClientResource: "waiting for the client's max concurrent jobs", JobWaitMaxJobs: "waiting for the director's max concurrent jobs",
	JobWaitStartTime: "waiting for its start time", JobWaitPriority: "waiting for a higher-priority job",
}

// String is the code and its meaning, e.g. "W (OK with warnings)".
func (s JobStatus) String() string {
	if n, ok := jobStatusNames[s]; ok {
		return string(s) + " (" + n + ")"
	}
	return string(s)
}

// Terminal reports whether the job has ended (T, W, E, f, A).
func (s JobStatus) Terminal() bool {
	return s == JobOK || s == JobWarnings || s == JobError || s == JobFatal || s == JobCancelled
}

// Successful reports T or W: the jobs a since-time or a restore chain counts.
func (s JobStatus) Successful() bool { return s == JobOK || s == JobWarnings }

// Waiting reports the waiting states.
func (s JobStatus) Waiting() bool {
	_, ok := jobStatusNames[s]
	return ok && !s.Terminal() && s != JobCreated && s != JobRunning
}

// Active reports C, R and the waiting states (what InterruptRunning ends).
func (s JobStatus) Active() bool {
	_, ok := jobStatusNames[s]
	return ok && !s.Terminal()
}

// Job types and levels (the CHECKs of schema 3).
const (
	TypeBackup  = "Backup"
	TypeRestore = "Restore"
	TypeAdmin   = "Admin"
	TypeCatalog = "Catalog"

	LevelFull         = "Full"
	LevelIncremental  = "Incremental"
	LevelDifferential = "Differential"
)

// JobStateError says that a job is not in a status the operation accepts.
type JobStateError struct {
	JobID  int64
	Job    string // job name
	Op     string // e.g. "start", "write file records of"
	Status JobStatus
	Want   []JobStatus
}

func (e *JobStateError) Error() string {
	want := make([]string, len(e.Want))
	for i, w := range e.Want {
		want[i] = w.String()
	}
	return fmt.Sprintf("cannot %s job %d (%s): its status is %s (needs %s)", e.Op, e.JobID, e.Job, e.Status, strings.Join(want, " or "))
}

// JobNew is a job about to be created (status C).
type JobNew struct {
	Name            string // job resource name
	Type            string // TypeBackup, …
	Level           string // requested level (Backup); the effective one is set by StartJob
	Client          string
	Fileset         string // fileset name
	FilesetIdentity string // configs.Fileset.Identity(), 64 hex
	Pool            string // an existing pool, or ""
	Storage         string // an existing storage, or ""
	Priority        int    // 0: 10
	ScheduledAt     *time.Time
}

// Job is a job's row: what `list jobs` and a job report show.
type Job struct {
	ID              int64
	Name            string
	Type            string
	Level           string
	UpgradedFrom    string // "" unless the level was upgraded to Full
	UpgradeReason   string
	SinceTime       *time.Time
	Status          JobStatus
	Client          string
	Fileset         string
	FilesetIdentity string
	Pool            string
	Storage         string
	Priority        int
	ScheduledAt     *time.Time
	StartedAt       *time.Time
	EndedAt         *time.Time
	Files           int64
	Bytes           int64
	Warnings        int
	Deletions       int64
	Error           string
	FlushedOffset   int64    // stream offset up to which file rows are committed
	Volumes         []string // volumes of its tape files, in part order
	CreatedAt       time.Time
	// PurgedAt: a volume it wrote was pruned or purged and its records
	// removed (PurgedReason says which and why); nil: not purged.
	PurgedAt     *time.Time
	PurgedReason string
}

// Rate is bytes per second between start and end (0 if not ended).
func (j Job) Rate() float64 {
	if j.StartedAt == nil || j.EndedAt == nil {
		return 0
	}
	d := j.EndedAt.Sub(*j.StartedAt).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(j.Bytes) / d
}

// CreateJob inserts a job in status C and returns its id.
func (s *Store) CreateJob(ctx context.Context, n JobNew) (int64, error) {
	if n.Name == "" {
		return 0, invalid("job", "a job needs a name")
	}
	if !slices.Contains([]string{TypeBackup, TypeRestore, TypeAdmin, TypeCatalog}, n.Type) {
		return 0, invalid("job type", "%q is not Backup, Restore, Admin or Catalog", n.Type)
	}
	if n.Level != "" && !slices.Contains([]string{LevelFull, LevelIncremental, LevelDifferential}, n.Level) {
		return 0, invalid("level", "%q is not Full, Incremental or Differential", n.Level)
	}
	if n.Priority == 0 {
		n.Priority = 10
	}
	op := "creating job " + quoteName(n.Name)
	var id int64
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var pool, storage *int64
		if n.Pool != "" {
			p, err := getPool(ctx, tx, n.Pool)
			if err != nil {
				return err
			}
			pool = &p.ID
		}
		if n.Storage != "" {
			st, err := s.GetStorage(ctx, n.Storage)
			if err != nil {
				return err
			}
			storage = &st.ID
		}
		return dbErr(op, tx.QueryRow(ctx, `
			INSERT INTO jobs (name, job_type, level, status, client, fileset, fileset_identity, pool_id, storage_id,
				priority, scheduled_at, created_at)
			VALUES ($1, $2, NULLIF($3, ''), 'C', NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), $7, $8, $9, $10, $11)
			RETURNING id`,
			n.Name, n.Type, n.Level, n.Client, n.Fileset, n.FilesetIdentity, pool, storage, n.Priority, n.ScheduledAt, s.nowUTC()).Scan(&id))
	})
	return id, err
}

// lockJob reads a job's name and status FOR UPDATE.
func lockJob(ctx context.Context, tx pgx.Tx, id int64) (string, JobStatus, error) {
	var name, status string
	err := tx.QueryRow(ctx, `SELECT name, status FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&name, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", notFound("job", fmt.Sprint(id))
	}
	if err != nil {
		return "", "", dbErr(fmt.Sprintf("reading job %d", id), err)
	}
	return name, JobStatus(status), nil
}

var (
	waitingStates = []JobStatus{JobWaitClient, JobWaitStorage, JobWaitMedia, JobWaitMount, JobWaitStorageResource,
		JobWaitJobResource, JobWaitClientResource, JobWaitMaxJobs, JobWaitStartTime, JobWaitPriority}
	activeStates = append([]JobStatus{JobCreated, JobRunning}, waitingStates...)
)

// StartJob moves a created or waiting job to R, records its start time
// and, for a backup, the level decision (effective level, since-time,
// upgrade and its reason). A job in any other status is a *JobStateError.
func (s *Store) StartJob(ctx context.Context, id int64, d LevelDecision, at time.Time) error {
	op := fmt.Sprintf("starting job %d", id)
	if d.Level != "" && !slices.Contains([]string{LevelFull, LevelIncremental, LevelDifferential}, d.Level) {
		return invalid("level", "%q is not Full, Incremental or Differential", d.Level)
	}
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		name, st, err := lockJob(ctx, tx, id)
		if err != nil {
			return err
		}
		if st != JobCreated && !st.Waiting() {
			return &JobStateError{JobID: id, Job: name, Op: "start", Status: st, Want: append([]JobStatus{JobCreated}, waitingStates...)}
		}
		_, err = tx.Exec(ctx, `
			UPDATE jobs SET status = 'R', started_at = COALESCE(started_at, $2),
				level = COALESCE(NULLIF($3, ''), level), since_time = $4,
				upgraded_from = NULLIF($5, ''), upgrade_reason = NULLIF($6, '')
			WHERE id = $1`, id, at.UTC(), d.Level, d.Since, d.UpgradedFrom, d.Reason)
		return dbErr(op, err)
	})
}

// SetJobStatus moves an active job between R and the waiting states (a
// running job waiting for a new volume: m; then R again). Ending a job is
// EndJob's.
func (s *Store) SetJobStatus(ctx context.Context, id int64, to JobStatus) error {
	if to != JobRunning && !to.Waiting() {
		return invalid("job status", "%s is not R or a waiting state (EndJob ends a job)", to)
	}
	op := fmt.Sprintf("setting the status of job %d", id)
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		name, st, err := lockJob(ctx, tx, id)
		if err != nil {
			return err
		}
		ok := st == JobRunning || st.Waiting() || (st == JobCreated && to.Waiting())
		if !ok {
			return &JobStateError{JobID: id, Job: name, Op: "set to " + to.String(), Status: st, Want: activeStates}
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET status = $2 WHERE id = $1`, id, string(to))
		return dbErr(op, err)
	})
}

// JobSummary is what EndJob records.
type JobSummary struct {
	EndedAt  time.Time // zero: the store's clock
	Files    int64     // 0: keep the count FileBatch.Flush kept
	Bytes    int64     // 0: keep the count FileBatch.Flush kept
	Warnings int
	Error    string // required for E and f
}

// EndJob ends an active job with a terminal status (T, W, E, f or A).
// T with warnings becomes W. An ended job is a *JobStateError; E and f
// need Summary.Error.
func (s *Store) EndJob(ctx context.Context, id int64, status JobStatus, sum JobSummary) error {
	if !status.Terminal() {
		return invalid("job status", "%s does not end a job (T, W, E, f or A)", status)
	}
	if (status == JobError || status == JobFatal) && sum.Error == "" {
		return invalid("job summary", "status %s needs the error text", status)
	}
	if status == JobOK && sum.Warnings > 0 {
		status = JobWarnings
	}
	if sum.EndedAt.IsZero() {
		sum.EndedAt = s.nowUTC()
	}
	op := fmt.Sprintf("ending job %d", id)
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		name, st, err := lockJob(ctx, tx, id)
		if err != nil {
			return err
		}
		if !st.Active() || (st == JobCreated && status.Successful()) {
			want := []JobStatus{JobRunning}
			if !status.Successful() {
				want = activeStates
			}
			return &JobStateError{JobID: id, Job: name, Op: "end with " + status.String(), Status: st, Want: want}
		}
		_, err = tx.Exec(ctx, `
			UPDATE jobs SET status = $2, ended_at = $3,
				files_count = CASE WHEN $4::bigint > 0 THEN $4::bigint ELSE files_count END,
				bytes_count = CASE WHEN $5::bigint > 0 THEN $5::bigint ELSE bytes_count END,
				warnings_count = $6, error_reason = NULLIF($7, '')
			WHERE id = $1`, id, string(status), sum.EndedAt.UTC(), sum.Files, sum.Bytes, sum.Warnings, sum.Error)
		return dbErr(op, err)
	})
	if err != nil {
		return err
	}
	return s.summarizeFiles(ctx, op)
}

// summarizeFiles brings the BRIN index of files up to date with the rows
// loaded since (migration 003: the ranges a job filled are summarized at
// its end instead of row by row during COPY). It reads only the pages not
// summarized yet. Autosummarize would do it too, later.
func (s *Store) summarizeFiles(ctx context.Context, op string) error {
	_, err := s.pool.Exec(ctx, `SELECT brin_summarize_new_values('files_job_brin'::regclass)`)
	return dbErr(op+" (indexing its file records)", err)
}

// InterruptRunning is for the director's start-up: every job still C, R or
// waiting was cut by a crash. It becomes E with "interrupted at <at>: <reason>;
// file records committed up to stream offset N" (its committed file rows
// stay: storaged had flushed their data; its incomplete tape files stay
// complete = false). It returns the ids it ended.
func (s *Store) InterruptRunning(ctx context.Context, reason string) ([]int64, error) {
	now := s.nowUTC()
	var ids []int64
	err := s.inTx(ctx, "ending jobs interrupted by a restart", func(tx pgx.Tx) error {
		codes := make([]string, len(activeStates))
		for i, c := range activeStates {
			codes[i] = string(c)
		}
		rows, err := tx.Query(ctx, `
			UPDATE jobs SET status = 'E', ended_at = $2,
				error_reason = 'interrupted at ' || to_char($2 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') || ': ' || $3
					|| '; file records committed up to stream offset ' || flushed_offset
			WHERE status = ANY($1) RETURNING id`, codes, now, reason)
		if err != nil {
			return dbErr("ending jobs interrupted by a restart", err)
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return dbErr("ending jobs interrupted by a restart", err)
	})
	slices.Sort(ids)
	if err == nil && len(ids) > 0 {
		err = s.summarizeFiles(ctx, "ending jobs interrupted by a restart")
	}
	return ids, err
}

const jobSelect = `
	SELECT j.id, j.name, j.job_type, COALESCE(j.level, ''), COALESCE(j.upgraded_from, ''), COALESCE(j.upgrade_reason, ''),
		j.since_time, j.status, COALESCE(j.client, ''), COALESCE(j.fileset, ''), COALESCE(j.fileset_identity, ''),
		COALESCE(p.name, ''), COALESCE(s.name, ''), j.priority, j.scheduled_at, j.started_at, j.ended_at,
		j.files_count, j.bytes_count, j.warnings_count, j.deletions_count, COALESCE(j.error_reason, ''), j.flushed_offset,
		ARRAY(SELECT m.volume_name FROM job_media jm JOIN media m ON m.id = jm.media_id WHERE jm.job_id = j.id ORDER BY jm.part),
		j.created_at, j.purged_at, COALESCE(j.purged_reason, '')
	FROM jobs j LEFT JOIN pools p ON p.id = j.pool_id LEFT JOIN storages s ON s.id = j.storage_id`

// GetJob returns a job's row (an unknown id is a *NotFoundError).
func (s *Store) GetJob(ctx context.Context, id int64) (Job, error) {
	rows, err := s.pool.Query(ctx, jobSelect+` WHERE j.id = $1`, id)
	if err != nil {
		return Job{}, dbErr(fmt.Sprintf("reading job %d", id), err)
	}
	j, err := pgx.CollectExactlyOneRow(rows, scanJob)
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, notFound("job", fmt.Sprint(id))
	}
	return j, dbErr(fmt.Sprintf("reading job %d", id), err)
}

func scanJob(r pgx.CollectableRow) (Job, error) {
	var (
		j  Job
		st string
	)
	err := r.Scan(&j.ID, &j.Name, &j.Type, &j.Level, &j.UpgradedFrom, &j.UpgradeReason, &j.SinceTime, &st,
		&j.Client, &j.Fileset, &j.FilesetIdentity, &j.Pool, &j.Storage, &j.Priority, &j.ScheduledAt, &j.StartedAt, &j.EndedAt,
		&j.Files, &j.Bytes, &j.Warnings, &j.Deletions, &j.Error, &j.FlushedOffset, &j.Volumes, &j.CreatedAt, &j.PurgedAt, &j.PurgedReason)
	j.Status = JobStatus(st)
	return j, err
}

// LevelDecision is the level a backup runs at and what it is relative to.
type LevelDecision struct {
	Level        string     // effective level
	Since        *time.Time // nil for Full: start of the job it is relative to
	UpgradedFrom string     // requested level when upgraded to Full, else ""
	Reason       string     // why it was upgraded ("" if not)
	BaseJobID    int64      // the job Since comes from (0 for Full)
}

// SinceTime decides the level of a backup of (job, client, fileset
// identity) requested at level, at time now (jobs.md §2):
//
//   - Full: since nothing.
//   - Differential: since the start of the last successful (T/W) Full of the
//     same triple.
//   - Incremental: since the start of the last successful job of any level
//     of the same triple.
//   - No successful Full of the triple: upgraded to Full, with the reason
//     "no prior Full of job X for client Y; upgraded from L", or, when a
//     Full of (job, client) exists under another fileset identity, "fileset
//     F of job X changed since the last Full (identity a… → b…); upgraded
//     from L".
//   - maxFullInterval > 0 and the last Full started more than that before
//     now: upgraded ("the last Full of job X for client Y started at T,
//     more than max_full_interval D ago; upgraded from L").
func (s *Store) SinceTime(ctx context.Context, job, client, filesetIdentity, level string, now time.Time, maxFullInterval time.Duration) (LevelDecision, error) {
	switch level {
	case LevelFull:
		return LevelDecision{Level: LevelFull}, nil
	case LevelIncremental, LevelDifferential:
	default:
		return LevelDecision{}, invalid("level", "%q is not Full, Incremental or Differential", level)
	}
	op := fmt.Sprintf("deciding the since-time of job %q for client %q", job, client)
	upgrade := func(reason string) LevelDecision {
		return LevelDecision{Level: LevelFull, UpgradedFrom: level, Reason: reason + "; upgraded from " + level}
	}
	var (
		fullID    int64
		fullStart time.Time
	)
	err := s.pool.QueryRow(ctx, `
		SELECT id, started_at FROM jobs
		WHERE name = $1 AND client = $2 AND fileset_identity = $3 AND job_type = 'Backup' AND level = 'Full'
			AND status IN ('T', 'W') AND started_at IS NOT NULL AND purged_at IS NULL
		ORDER BY started_at DESC, id DESC LIMIT 1`, job, client, filesetIdentity).Scan(&fullID, &fullStart)
	if errors.Is(err, pgx.ErrNoRows) {
		var (
			otherIdentity, fileset string
		)
		err := s.pool.QueryRow(ctx, `
			SELECT fileset_identity, COALESCE(fileset, '') FROM jobs
			WHERE name = $1 AND client = $2 AND job_type = 'Backup' AND level = 'Full' AND status IN ('T', 'W')
				AND started_at IS NOT NULL AND purged_at IS NULL AND fileset_identity IS NOT NULL
			ORDER BY started_at DESC, id DESC LIMIT 1`, job, client).Scan(&otherIdentity, &fileset)
		if err == nil {
			return upgrade(fmt.Sprintf("fileset %q of job %q changed since the last Full for client %q (identity %s → %s)",
				fileset, job, client, short(otherIdentity), short(filesetIdentity))), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return LevelDecision{}, dbErr(op, err)
		}
		return upgrade(fmt.Sprintf("no prior Full of job %q for client %q", job, client)), nil
	}
	if err != nil {
		return LevelDecision{}, dbErr(op, err)
	}
	if maxFullInterval > 0 && now.Sub(fullStart) > maxFullInterval {
		return upgrade(fmt.Sprintf("the last Full of job %q for client %q (job %d) started at %s, more than max_full_interval %s ago",
			job, client, fullID, fullStart.UTC().Format("2006-01-02 15:04:05Z"), maxFullInterval)), nil
	}
	if level == LevelDifferential {
		t := fullStart.UTC()
		return LevelDecision{Level: level, Since: &t, BaseJobID: fullID}, nil
	}
	var (
		id    int64
		start time.Time
	)
	err = s.pool.QueryRow(ctx, `
		SELECT id, started_at FROM jobs
		WHERE name = $1 AND client = $2 AND fileset_identity = $3 AND job_type = 'Backup'
			AND status IN ('T', 'W') AND started_at IS NOT NULL AND purged_at IS NULL AND started_at >= $4
		ORDER BY started_at DESC, id DESC LIMIT 1`, job, client, filesetIdentity, fullStart).Scan(&id, &start)
	if err != nil {
		return LevelDecision{}, dbErr(op, err)
	}
	t := start.UTC()
	return LevelDecision{Level: level, Since: &t, BaseJobID: id}, nil
}

func short(identity string) string {
	if len(identity) > 12 {
		return identity[:12] + "…"
	}
	return identity
}

// RecordPart records a tape file the job is writing (before any file row
// on it is added): part number, volume, volume sequence, tape file number,
// first block and the stream offset of its first stream byte. complete is
// false until CompletePart.
type Part struct {
	Part              int
	Kind              string // "data" (default) or "index"
	Volume            string
	VolumeIndex       int // 1, 2, … over the job's volumes
	TapeFile          int
	FirstBlock        int64
	FirstStreamOffset int64
}

// RecordPart inserts the job_media row of a tape file the running job
// starts writing.
func (s *Store) RecordPart(ctx context.Context, jobID int64, p Part) error {
	if p.Kind == "" {
		p.Kind = "data"
	}
	op := fmt.Sprintf("recording part %d of job %d on volume %s", p.Part, jobID, quoteName(p.Volume))
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		name, st, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if st != JobRunning && !st.Waiting() {
			return &JobStateError{JobID: jobID, Job: name, Op: "record a tape file of", Status: st, Want: []JobStatus{JobRunning}}
		}
		var mediaID int64
		err = tx.QueryRow(ctx, `SELECT id FROM media WHERE volume_name = $1 FOR UPDATE`, p.Volume).Scan(&mediaID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("volume", p.Volume)
		}
		if err != nil {
			return dbErr(op, err)
		}
		// Recorded already (storaged records each tape file synchronously
		// before writing it, and the job's event stream reports it too):
		// the same part again is a no-op, another one a refusal.
		var have Part
		err = tx.QueryRow(ctx, `SELECT m.volume_name, jm.tape_file, jm.kind FROM job_media jm JOIN media m ON m.id = jm.media_id
			WHERE jm.job_id = $1 AND jm.part = $2`, jobID, p.Part).Scan(&have.Volume, &have.TapeFile, &have.Kind)
		switch {
		case err == nil && have.Volume == p.Volume && have.TapeFile == p.TapeFile && have.Kind == p.Kind:
			return nil
		case err == nil:
			return invalid("job part", "job %d part %d is recorded as %s tape file %d of volume %s, not %s tape file %d of %s",
				jobID, p.Part, have.Kind, have.TapeFile, quoteName(have.Volume), p.Kind, p.TapeFile, quoteName(p.Volume))
		case !errors.Is(err, pgx.ErrNoRows):
			return dbErr(op, err)
		}
		if err := overwriteTx(ctx, tx, jobID, mediaID, p, s.nowUTC()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO job_media (job_id, media_id, volume_index, part, kind, tape_file, first_block, first_stream_offset)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			jobID, mediaID, p.VolumeIndex, p.Part, p.Kind, p.TapeFile, p.FirstBlock, p.FirstStreamOffset)
		return dbErr(op, err)
	})
}

// overwriteTx handles a tape file about to be written at p.TapeFile of a
// volume that holds incomplete tape files of earlier jobs at or after that
// number (a crash left them; NextTapeFile points before them): their bytes
// are about to be written over, so their file rows (and the rows of
// members continued on them) are deleted and their job_media rows marked
// overwritten_by. An incomplete tape file of a job still active is a
// *JobStateError (two jobs never write one volume at once).
func overwriteTx(ctx context.Context, tx pgx.Tx, jobID, mediaID int64, p Part, now time.Time) error {
	op := fmt.Sprintf("job %d writing tape file %d of volume %s over earlier incomplete tape files", jobID, p.TapeFile, quoteName(p.Volume))
	rows, err := tx.Query(ctx, `
		SELECT jm.job_id, j.name, j.status, jm.part, jm.tape_file FROM job_media jm JOIN jobs j ON j.id = jm.job_id
		WHERE jm.media_id = $1 AND NOT jm.complete AND jm.overwritten_by IS NULL AND jm.tape_file >= $2 AND jm.job_id <> $3
		ORDER BY jm.tape_file`, mediaID, p.TapeFile, jobID)
	if err != nil {
		return dbErr(op, err)
	}
	type old struct {
		job            int64
		name, status   string
		part, tapeFile int
	}
	olds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (old, error) {
		var o old
		return o, r.Scan(&o.job, &o.name, &o.status, &o.part, &o.tapeFile)
	})
	if err != nil {
		return dbErr(op, err)
	}
	for _, o := range olds {
		if JobStatus(o.status).Active() {
			return &JobStateError{JobID: o.job, Job: o.name, Op: fmt.Sprintf("let job %d write over tape file %d of volume %s, being written by", jobID, o.tapeFile, quoteName(p.Volume)),
				Status: JobStatus(o.status), Want: []JobStatus{JobOK, JobWarnings, JobError, JobFatal, JobCancelled}}
		}
		_, err := tx.Exec(ctx, `
			WITH gone AS (
				DELETE FROM files f WHERE f.job_id = $1 AND (
					(f.media_id = $2 AND f.tape_file = $3) OR
					EXISTS (SELECT 1 FROM file_parts fp WHERE fp.job_id = $1 AND fp.stream_offset = f.stream_offset
						AND fp.media_id = $2 AND fp.tape_file = $3))
				RETURNING f.stream_offset)
			DELETE FROM file_parts fp WHERE fp.job_id = $1 AND fp.stream_offset IN (SELECT stream_offset FROM gone)`,
			o.job, mediaID, o.tapeFile)
		if err != nil {
			return dbErr(op, err)
		}
		var left int64 // the job's files_count becomes what is left
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM files WHERE job_id = $1`, o.job).Scan(&left); err != nil {
			return dbErr(op, err)
		}
		_, err = tx.Exec(ctx, `
			UPDATE jobs SET error_reason = COALESCE(error_reason, '') || '; its incomplete tape file ' || $2 || ' of volume ' || $3
				|| ' was written over by job ' || $4 || ' at ' || to_char($5 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"')
				|| ' and its file records there removed',
				files_count = $6
			WHERE id = $1`, o.job, fmt.Sprint(o.tapeFile), p.Volume, fmt.Sprint(jobID), now, left)
		if err != nil {
			return dbErr(op, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE job_media SET overwritten_by = $3 WHERE job_id = $1 AND part = $2`, o.job, o.part, jobID); err != nil {
			return dbErr(op, err)
		}
	}
	return nil
}

// CompletePart records that the tape file of part was closed (filemark
// written): its last block and byte count.
func (s *Store) CompletePart(ctx context.Context, jobID int64, part int, lastBlock, bytes int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE job_media SET complete = true, last_block = $3, bytes = $4 WHERE job_id = $1 AND part = $2`,
		jobID, part, lastBlock, bytes)
	if err != nil {
		return dbErr(fmt.Sprintf("completing part %d of job %d", part, jobID), err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("job part", fmt.Sprintf("job %d part %d", jobID, part))
	}
	return nil
}

// NextTapeFile is where the next job appends on volume: after the last
// complete tape file any job recorded on it (on a volume with none: 2,
// after the label and the key-check file, or 1 on a clear volume, which
// has no key-check file). A tape file left incomplete by a crash is not
// counted: it is overwritten.
func (s *Store) NextTapeFile(ctx context.Context, volume string) (int, error) {
	next, _, err := s.TapeFiles(ctx, volume)
	return next, err
}

// TapeFiles returns NextTapeFile and known: how many tape files the
// catalog knows on volume, complete or not (the label and key-check files
// included). A tape holding more than known tape files holds data the
// catalog does not know; storaged refuses to write over it.
func (s *Store) TapeFiles(ctx context.Context, volume string) (next, known int, err error) {
	var (
		encrypted        bool
		complete, anyJob *int
	)
	err = s.pool.QueryRow(ctx, `
		SELECT m.encrypted,
			(SELECT max(jm.tape_file) + 1 FROM job_media jm WHERE jm.media_id = m.id AND jm.complete),
			(SELECT max(jm.tape_file) + 1 FROM job_media jm WHERE jm.media_id = m.id)
		FROM media m WHERE m.volume_name = $1`, volume).Scan(&encrypted, &complete, &anyJob)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, notFound("volume", volume)
	}
	if err != nil {
		return 0, 0, dbErr("reading where volume "+quoteName(volume)+" ends", err)
	}
	meta := 1
	if encrypted {
		meta = 2
	}
	next, known = meta, meta
	if complete != nil {
		next = *complete
	}
	if anyJob != nil {
		known = *anyJob
	}
	return next, max(next, known), nil
}
