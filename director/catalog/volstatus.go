package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Volume statuses added by schema 6 (jobs.md §4). Purged and Recycle are
// reached by prune and purge; the others an operator sets with
// SetVolumeStatus.
const (
	StatusRecycle  Status = "Recycle"
	StatusReadOnly Status = "Read-Only"
	StatusDisabled Status = "Disabled"
	StatusArchive  Status = "Archive"
)

// statusMoves lists, for each status, the statuses an operator may move a
// volume to. Labeling (a label in progress or interrupted: relabel it),
// Purged and Recycle (reused only through recycling, with a new key) and
// Error (the label may not match the catalog) never go back to Append
// by hand; a Full volume reached its tape's end or its max_volume_bytes.
var statusMoves = map[Status][]Status{
	StatusAppend:   {StatusFull, StatusUsed, StatusReadOnly, StatusDisabled, StatusArchive, StatusError},
	StatusFull:     {StatusUsed, StatusReadOnly, StatusDisabled, StatusArchive, StatusError},
	StatusUsed:     {StatusAppend, StatusFull, StatusReadOnly, StatusDisabled, StatusArchive, StatusError},
	StatusReadOnly: {StatusAppend, StatusFull, StatusUsed, StatusDisabled, StatusArchive, StatusError},
	StatusDisabled: {StatusAppend, StatusFull, StatusUsed, StatusReadOnly, StatusArchive, StatusError},
	StatusArchive:  {StatusFull, StatusUsed, StatusReadOnly, StatusDisabled, StatusError},
	StatusError:    {StatusFull, StatusUsed, StatusReadOnly, StatusDisabled, StatusArchive},
	StatusPurged:   {StatusDisabled, StatusError},
	StatusRecycle:  {StatusDisabled, StatusError},
	StatusLabeling: nil,
}

// OperatorStatuses are the statuses `update volume status=` accepts.
var OperatorStatuses = []Status{StatusAppend, StatusFull, StatusUsed, StatusReadOnly, StatusDisabled, StatusArchive, StatusError}

// AllowedMoves returns the statuses an operator may move a volume in
// status from to (nil when none).
func AllowedMoves(from Status) []Status { return append([]Status(nil), statusMoves[from]...) }

// TransitionError says that a status change is not allowed, and which are.
type TransitionError struct {
	Volume   string
	From, To Status
	Allowed  []Status
}

func (e *TransitionError) Error() string {
	msg := fmt.Sprintf("volume %q cannot go from %s to %s", e.Volume, e.From, e.To)
	if len(e.Allowed) == 0 {
		switch e.From {
		case StatusLabeling:
			return msg + ": its label is not finished; label it again (label … volume=" + e.Volume + ")"
		}
		return msg + ": no status change is allowed from " + string(e.From)
	}
	allowed := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = string(s)
	}
	return msg + "; from " + string(e.From) + " it may go to " + strings.Join(allowed, ", ")
}

// VolumeEvent is one line of the volume status audit log.
type VolumeEvent struct {
	ID       int64
	At       time.Time
	Volume   string
	Actor    string
	Old, New Status
	Reason   string
}

// SetVolumeStatus moves volume to status to for actor, if statusMoves
// allows it (otherwise a *TransitionError naming the allowed statuses),
// and records a VolumeEvent in the same transaction. reason is kept as
// the volume's error reason when to is Error (required then). Setting
// the status it already has changes nothing and returns changed=false.
func (s *Store) SetVolumeStatus(ctx context.Context, volume string, to Status, actor, reason string) (from Status, changed bool, err error) {
	if actor == "" {
		actor = DefaultActor
	}
	if to == StatusError && reason == "" {
		return "", false, invalid("error reason", "must not be empty: say why volume %q is in error", volume)
	}
	op := "setting the status of volume " + quoteName(volume)
	err = s.inTx(ctx, op, func(tx pgx.Tx) error {
		id, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		from = st
		if st == to {
			return nil
		}
		ok := false
		for _, a := range statusMoves[st] {
			ok = ok || a == to
		}
		if !ok {
			return &TransitionError{Volume: volume, From: st, To: to, Allowed: AllowedMoves(st)}
		}
		changed = true
		return s.moveTx(ctx, tx, id, volume, st, to, actor, reason)
	})
	return from, changed, err
}

// moveTx changes the status and writes the audit line.
func (s *Store) moveTx(ctx context.Context, tx pgx.Tx, id int64, volume string, from, to Status, actor, reason string) error {
	now := s.nowUTC()
	var errReason *string
	if to == StatusError {
		errReason = &reason
	}
	op := "setting the status of volume " + quoteName(volume)
	if _, err := tx.Exec(ctx, `UPDATE media SET status = $2, error_reason = $3, updated_at = $4 WHERE id = $1`,
		id, string(to), errReason, now); err != nil {
		return dbErr(op, err)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO volume_events (at, volume_name, media_id, actor, old_status, new_status, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, now, volume, id, actor, string(from), string(to), reason)
	return dbErr(op+": recording the event", err)
}

// ListVolumeEvents returns volume's status changes, oldest first ("" :
// every volume's).
func (s *Store) ListVolumeEvents(ctx context.Context, volume string) ([]VolumeEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, volume_name, actor, old_status, new_status, reason FROM volume_events
		WHERE $1 = '' OR volume_name = $1 ORDER BY at, id`, volume)
	if err != nil {
		return nil, dbErr("listing volume events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (VolumeEvent, error) {
		var e VolumeEvent
		var o, n string
		err := r.Scan(&e.ID, &e.At, &e.Volume, &e.Actor, &o, &n, &e.Reason)
		e.Old, e.New, e.At = Status(o), Status(n), e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, dbErr("listing volume events", err)
	}
	return out, nil
}

// VolumeLimits are a volume's own copies of its pool's limits, taken when
// it was labelled (or when `update pool=` re-applied them). Zero: no limit.
type VolumeLimits struct {
	VolumeRetention   time.Duration
	MaxVolumeBytes    int64
	MaxVolumeJobs     int
	VolumeUseDuration time.Duration
	Recycle           bool
}

// GetVolumeLimits returns volume's limits, or a *NotFoundError.
func (s *Store) GetVolumeLimits(ctx context.Context, volume string) (VolumeLimits, error) {
	var (
		l        VolumeLimits
		ret, use *time.Duration
		maxBytes *int64
		maxJobs  *int
	)
	err := s.pool.QueryRow(ctx, `
		SELECT volume_retention, max_volume_bytes, max_volume_jobs, volume_use_duration, recycle
		FROM media WHERE volume_name = $1`, volume).Scan(&ret, &maxBytes, &maxJobs, &use, &l.Recycle)
	if errors.Is(err, pgx.ErrNoRows) {
		return VolumeLimits{}, notFound("volume", volume)
	}
	if err != nil {
		return VolumeLimits{}, dbErr("reading the limits of volume "+quoteName(volume), err)
	}
	if ret != nil {
		l.VolumeRetention = *ret
	}
	if use != nil {
		l.VolumeUseDuration = *use
	}
	if maxBytes != nil {
		l.MaxVolumeBytes = *maxBytes
	}
	if maxJobs != nil {
		l.MaxVolumeJobs = *maxJobs
	}
	return l, nil
}

// PoolLimits are the pool attributes schema 6 added (EnsurePool records
// the others).
type PoolLimits struct {
	MaxVolumeJobs     int           // 0: no limit
	VolumeUseDuration time.Duration // 0: no limit
	Recycle           bool
}

// SyncPool records the pool as the configuration describes it: EnsurePool
// with spec, then the schema 6 limits. Volumes keep their own copies
// until ApplyPoolLimits.
func (s *Store) SyncPool(ctx context.Context, spec PoolSpec, l PoolLimits) (Pool, error) {
	if l.MaxVolumeJobs < 0 || l.VolumeUseDuration < 0 {
		return Pool{}, invalid("pool "+quoteName(spec.Name), "maximum volume jobs and volume use duration must not be negative")
	}
	p, err := s.EnsurePool(ctx, spec)
	if err != nil {
		return Pool{}, err
	}
	var maxJobs *int
	if l.MaxVolumeJobs > 0 {
		maxJobs = &l.MaxVolumeJobs
	}
	var use *time.Duration
	if l.VolumeUseDuration > 0 {
		use = &l.VolumeUseDuration
	}
	_, err = s.pool.Exec(ctx, `UPDATE pools SET max_volume_jobs = $2, volume_use_duration = $3, recycle = $4 WHERE id = $1`,
		p.ID, maxJobs, use, l.Recycle)
	if err != nil {
		return Pool{}, dbErr("recording the limits of pool "+quoteName(spec.Name), err)
	}
	return p, nil
}

// ApplyPoolLimits copies pool's current limits into every one of its
// volumes (`update pool=`) and returns how many volumes it changed. An
// unknown pool is a *NotFoundError.
func (s *Store) ApplyPoolLimits(ctx context.Context, pool string) (int64, error) {
	op := "applying the limits of pool " + quoteName(pool) + " to its volumes"
	var n int64
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		p, err := getPool(ctx, tx, pool)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE media m SET volume_retention = p.volume_retention, max_volume_bytes = p.max_volume_bytes,
				max_volume_jobs = p.max_volume_jobs, volume_use_duration = p.volume_use_duration,
				recycle = p.recycle, updated_at = $2
			FROM pools p WHERE p.id = $1 AND m.pool_id = p.id AND (
				m.volume_retention IS DISTINCT FROM p.volume_retention OR
				m.max_volume_bytes IS DISTINCT FROM p.max_volume_bytes OR
				m.max_volume_jobs IS DISTINCT FROM p.max_volume_jobs OR
				m.volume_use_duration IS DISTINCT FROM p.volume_use_duration OR
				m.recycle IS DISTINCT FROM p.recycle)`, p.ID, s.nowUTC())
		if err != nil {
			return dbErr(op, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// PoolVolumeCounts returns, for every pool, how many volumes it has in
// each status.
func (s *Store) PoolVolumeCounts(ctx context.Context) (map[string]map[Status]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT p.name, m.status, count(*) FROM media m JOIN pools p ON p.id = m.pool_id GROUP BY 1, 2`)
	if err != nil {
		return nil, dbErr("counting volumes by pool", err)
	}
	defer rows.Close()
	out := map[string]map[Status]int{}
	for rows.Next() {
		var (
			pool, st string
			n        int
		)
		if err := rows.Scan(&pool, &st, &n); err != nil {
			return nil, dbErr("counting volumes by pool", err)
		}
		if out[pool] == nil {
			out[pool] = map[Status]int{}
		}
		out[pool][Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("counting volumes by pool", err)
	}
	return out, nil
}

// FormatCounts shows counts as "Append 2, Full 1" in a fixed status order.
func FormatCounts(c map[Status]int) string {
	order := []Status{StatusLabeling, StatusAppend, StatusFull, StatusUsed, StatusPurged, StatusRecycle,
		StatusReadOnly, StatusDisabled, StatusArchive, StatusError}
	var parts []string
	seen := map[Status]bool{}
	for _, st := range order {
		seen[st] = true
		if c[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, c[st]))
		}
	}
	var rest []string
	for st, n := range c {
		if !seen[st] && n > 0 {
			rest = append(rest, fmt.Sprintf("%s %d", st, n))
		}
	}
	sort.Strings(rest)
	parts = append(parts, rest...)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// VolumeUsage is what a volume holds against its own limits.
type VolumeUsage struct {
	Volume       string
	Limits       VolumeLimits
	Bytes        int64 // the larger of bytes_written and its jobs' parts
	Jobs         int64 // distinct jobs with a part on it
	FirstWritten *time.Time
}

// OverLimit says whether an Append volume with usage u must stop taking
// data at now: Full when max_volume_bytes is reached, Used when
// max_volume_jobs is or volume_use_duration has passed since its first
// write; "" when it may go on. why says which limit.
func (u VolumeUsage) OverLimit(now time.Time) (to Status, why string) {
	l := u.Limits
	switch {
	case l.MaxVolumeBytes > 0 && u.Bytes >= l.MaxVolumeBytes:
		return StatusFull, fmt.Sprintf("max_volume_bytes reached (%d of %d bytes written)", u.Bytes, l.MaxVolumeBytes)
	case l.MaxVolumeJobs > 0 && u.Jobs >= int64(l.MaxVolumeJobs):
		return StatusUsed, fmt.Sprintf("max_volume_jobs reached (%d of %d jobs)", u.Jobs, l.MaxVolumeJobs)
	case l.VolumeUseDuration > 0 && u.FirstWritten != nil && now.Sub(*u.FirstWritten) > l.VolumeUseDuration:
		return StatusUsed, fmt.Sprintf("volume_use_duration %s passed since its first write at %s",
			l.VolumeUseDuration, u.FirstWritten.UTC().Format(time.RFC3339))
	}
	return "", ""
}

const usageSelect = `
	SELECT m.id, m.volume_name, m.status, m.volume_retention, m.max_volume_bytes, m.max_volume_jobs,
		m.volume_use_duration, m.recycle, m.first_written,
		GREATEST(m.bytes_written, COALESCE((SELECT sum(jm.bytes) FROM job_media jm WHERE jm.media_id = m.id), 0))::bigint,
		(SELECT count(DISTINCT jm.job_id) FROM job_media jm WHERE jm.media_id = m.id)
	FROM media m`

func scanUsage(row pgx.Row) (id int64, st Status, u VolumeUsage, err error) {
	var (
		ret, use *time.Duration
		maxBytes *int64
		maxJobs  *int
		status   string
	)
	err = row.Scan(&id, &u.Volume, &status, &ret, &maxBytes, &maxJobs, &use, &u.Limits.Recycle, &u.FirstWritten, &u.Bytes, &u.Jobs)
	if ret != nil {
		u.Limits.VolumeRetention = *ret
	}
	if use != nil {
		u.Limits.VolumeUseDuration = *use
	}
	if maxBytes != nil {
		u.Limits.MaxVolumeBytes = *maxBytes
	}
	if maxJobs != nil {
		u.Limits.MaxVolumeJobs = *maxJobs
	}
	return id, Status(status), u, err
}

// VolumeUsages returns the usage of each named volume that exists (read
// only: the preview and volume selection use it).
func (s *Store) VolumeUsages(ctx context.Context, volumes []string) (map[string]VolumeUsage, error) {
	rows, err := s.pool.Query(ctx, usageSelect+` WHERE m.volume_name = ANY($1)`, volumes)
	if err != nil {
		return nil, dbErr("reading volume usage", err)
	}
	defer rows.Close()
	out := map[string]VolumeUsage{}
	for rows.Next() {
		_, _, u, err := scanUsage(rows)
		if err != nil {
			return nil, dbErr("reading volume usage", err)
		}
		out[u.Volume] = u
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("reading volume usage", err)
	}
	return out, nil
}

// CheckVolumeLimits applies volume's own limits at now (OverLimit): an
// Append volume over one becomes Full or Used, recorded as a VolumeEvent
// by actor. It returns the status after the check and why it changed
// ("" : unchanged).
func (s *Store) CheckVolumeLimits(ctx context.Context, volume, actor string, now time.Time) (Status, string, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "checking the limits of volume " + quoteName(volume)
	var (
		out    Status
		reason string
	)
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		id, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		out = st
		if st != StatusAppend {
			return nil
		}
		_, _, u, err := scanUsage(tx.QueryRow(ctx, usageSelect+` WHERE m.id = $1`, id))
		if err != nil {
			return dbErr(op, err)
		}
		to, why := u.OverLimit(now)
		if to == "" {
			return nil
		}
		out, reason = to, why
		return s.moveTx(ctx, tx, id, volume, st, to, actor, reason)
	})
	return out, reason, err
}
