package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Prune, purge and recycling (schema 9, jobs.md §4, Bareos semantics).
//
// Pruning a volume is purging it once its retention has ended; purging
// gives up its data regardless of retention. Either way the jobs with a
// tape file on the volume lose their file rows, file parts, deletions and
// job_media — on every volume they wrote, as Bareos removes a whole job: a
// job spanning another, unexpired volume is not restorable from that
// volume alone, and a since-time or restore chain must not build on it.
// The jobs rows stay as history (purged_at, purged_reason). The volume
// becomes Purged (audited in volume_events), the tape is never touched and
// no key is deleted. Recycling (BeginRecycle) then gives the volume a new
// key before anything is written to it again.

// RetentionError refuses to prune a volume whose retention has not ended
// (or that has none).
type RetentionError struct {
	Volume    string
	Retention time.Duration // 0: the volume has no volume_retention
	From      time.Time     // its last write (or label) the retention counts from
	Ends      time.Time
}

func (e *RetentionError) Error() string {
	if e.Retention == 0 {
		return fmt.Sprintf("cannot prune volume %q: it has no volume_retention (its pool sets none), so its data is kept until purged by hand (purge volume=%s yes)", e.Volume, e.Volume)
	}
	return fmt.Sprintf("cannot prune volume %q: its retention %s ends %s (last written %s); purge volume=%s yes gives its data up now",
		e.Volume, e.Retention, e.Ends.UTC().Format("2006-01-02 15:04:05Z"), e.From.UTC().Format("2006-01-02 15:04:05Z"), e.Volume)
}

// VolumeInUseError refuses to prune, purge or recycle a volume that an
// active (created, running or waiting) job uses.
type VolumeInUseError struct {
	Volume string
	Op     string
	Jobs   []int64
}

func (e *VolumeInUseError) Error() string {
	ids := make([]string, len(e.Jobs))
	for i, id := range e.Jobs {
		ids[i] = fmt.Sprint(id)
	}
	what := "a job"
	if len(ids) > 0 {
		what = "job " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("cannot %s volume %q: it is in use by %s; try again when the job has ended", e.Op, e.Volume, what)
}

// PurgeRequest is what PurgeVolume does.
type PurgeRequest struct {
	Volume string
	// Prune: only when the volume's retention has ended (a
	// *RetentionError otherwise); else purge regardless.
	Prune  bool
	Actor  string // "console:NAME" or "director"; "" : DefaultActor
	Reason string // recorded with the event ("" : pruned/purged by Actor)
	// RecyclePool: the purged volume moves into this pool (its limits
	// re-copied); "" : it stays in its pool.
	RecyclePool string
	// DryRun: check and count, change nothing.
	DryRun bool
}

// PurgeResult says what PurgeVolume did (or would do).
type PurgeResult struct {
	Volume  string
	From    Status
	Changed bool // false: already Purged (or a dry run)
	// Jobs whose records were removed, and how many file rows went.
	Jobs  []int64
	Files int64
	// OtherVolumes lost the job_media of those jobs too (jobs spanning
	// volumes are removed whole).
	OtherVolumes []string
	RetentionEnd *time.Time // nil: no retention
	MovedTo      string     // the recycle pool it moved to ("" : none)
}

// Statuses prune and purge accept.
var (
	pruneFrom = []Status{StatusAppend, StatusFull, StatusUsed}
	purgeFrom = []Status{StatusAppend, StatusFull, StatusUsed, StatusError, StatusReadOnly, StatusDisabled}
)

// PurgeVolume prunes (req.Prune) or purges a volume as the file comment
// says, in one transaction with its audit lines. A volume already Purged
// (or Recycle) is left alone (Changed false). Refused: a volume in use by
// an active job (*VolumeInUseError), an Archive or Labeling volume, or
// for prune a status other than Append, Full, Used (*StateError), and a
// prune before the retention ended (*RetentionError).
func (s *Store) PurgeVolume(ctx context.Context, req PurgeRequest) (PurgeResult, error) {
	if req.Actor == "" {
		req.Actor = DefaultActor
	}
	verb := "purge"
	if req.Prune {
		verb = "prune"
	}
	op := verb + " of volume " + quoteName(req.Volume)
	res := PurgeResult{Volume: req.Volume}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var (
			id                     int64
			status, pool           string
			ret                    *time.Duration
			lastWritten, labelTime *time.Time
			created                time.Time
		)
		err := tx.QueryRow(ctx, `
			SELECT m.id, m.status, p.name, m.volume_retention, m.last_written, m.label_time, m.created_at
			FROM media m JOIN pools p ON p.id = m.pool_id WHERE m.volume_name = $1 FOR UPDATE OF m`, req.Volume).
			Scan(&id, &status, &pool, &ret, &lastWritten, &labelTime, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("volume", req.Volume)
		}
		if err != nil {
			return dbErr(op, err)
		}
		res.From = Status(status)
		from := lastWritten
		if from == nil {
			from = labelTime
		}
		if from == nil {
			from = &created
		}
		if ret != nil && *ret > 0 {
			end := from.Add(*ret).UTC()
			res.RetentionEnd = &end
		}
		if res.From == StatusPurged || res.From == StatusRecycle {
			return nil
		}
		allowed := purgeFrom
		if req.Prune {
			allowed = pruneFrom
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == res.From
		}
		if !ok {
			return &StateError{Volume: req.Volume, Op: verb, Status: res.From, Want: allowed}
		}
		active := make([]string, len(activeStates))
		for i, st := range activeStates {
			active[i] = string(st)
		}
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT jm.job_id FROM job_media jm JOIN jobs j ON j.id = jm.job_id
			WHERE jm.media_id = $1 AND j.status = ANY($2) ORDER BY 1`, id, active)
		if err != nil {
			return dbErr(op, err)
		}
		busy, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return dbErr(op, err)
		}
		if len(busy) > 0 {
			return &VolumeInUseError{Volume: req.Volume, Op: verb, Jobs: busy}
		}
		now := s.nowUTC()
		if req.Prune {
			if res.RetentionEnd == nil {
				return &RetentionError{Volume: req.Volume, From: *from}
			}
			if now.Before(*res.RetentionEnd) {
				return &RetentionError{Volume: req.Volume, Retention: *ret, From: *from, Ends: *res.RetentionEnd}
			}
		}
		rows, err = tx.Query(ctx, `SELECT DISTINCT job_id FROM job_media WHERE media_id = $1 ORDER BY 1`, id)
		if err != nil {
			return dbErr(op, err)
		}
		if res.Jobs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return dbErr(op, err)
		}
		rows, err = tx.Query(ctx, `
			SELECT DISTINCT m.volume_name FROM job_media jm JOIN media m ON m.id = jm.media_id
			WHERE jm.job_id = ANY($1) AND jm.media_id <> $2 ORDER BY 1`, res.Jobs, id)
		if err != nil {
			return dbErr(op, err)
		}
		if res.OtherVolumes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return dbErr(op, err)
		}
		if req.DryRun {
			return tx.QueryRow(ctx, `SELECT count(*) FROM files WHERE job_id = ANY($1)`, res.Jobs).Scan(&res.Files)
		}
		reason := req.Reason
		if reason == "" {
			reason = verb + "d by " + req.Actor
			if req.Prune && res.RetentionEnd != nil {
				reason += fmt.Sprintf(" (retention %s ended %s)", *ret, res.RetentionEnd.Format("2006-01-02 15:04:05Z"))
			}
		}
		if res.Files, err = dropJobRowsTx(ctx, tx, op, res.Jobs, now, fmt.Sprintf("volume %s %sd: %s", req.Volume, verb, reason)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE media SET purged_at = $2 WHERE id = $1`, id, now); err != nil {
			return dbErr(op, err)
		}
		detail := fmt.Sprintf("%s; %d jobs and %d file records removed", reason, len(res.Jobs), res.Files)
		if len(res.OtherVolumes) > 0 {
			detail += " (the jobs also had tape files on " + strings.Join(res.OtherVolumes, ", ") + ")"
		}
		if err := s.moveTx(ctx, tx, id, req.Volume, res.From, StatusPurged, req.Actor, detail); err != nil {
			return err
		}
		res.Changed = true
		if req.RecyclePool != "" && req.RecyclePool != pool {
			if err := s.movePoolTx(ctx, tx, id, req.Volume, StatusPurged, pool, req.RecyclePool, req.Actor, "recycle pool of pool "+pool); err != nil {
				return err
			}
			res.MovedTo = req.RecyclePool
		}
		return nil
	})
	if err != nil {
		return PurgeResult{}, err
	}
	return res, nil
}

// movePoolTx moves the locked volume id into pool to, re-copying that
// pool's limits into it, and records a volume_events line (the status
// does not change).
func (s *Store) movePoolTx(ctx context.Context, tx pgx.Tx, id int64, volume string, st Status, from, to, actor, why string) error {
	op := fmt.Sprintf("moving volume %s from pool %s to pool %s", quoteName(volume), quoteName(from), quoteName(to))
	p, err := getPool(ctx, tx, to)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		UPDATE media m SET pool_id = p.id, volume_retention = p.volume_retention, max_volume_bytes = p.max_volume_bytes,
			max_volume_jobs = p.max_volume_jobs, volume_use_duration = p.volume_use_duration, recycle = p.recycle, updated_at = $3
		FROM pools p WHERE p.id = $2 AND m.id = $1`, id, p.ID, s.nowUTC())
	if err != nil {
		return dbErr(op, err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO volume_events (at, volume_name, media_id, actor, old_status, new_status, reason)
		VALUES ($1, $2, $3, $4, $5, $5, $6)`, s.nowUTC(), volume, id, actor, string(st),
		fmt.Sprintf("moved from pool %s to pool %s (%s); limits of pool %s copied", from, to, why, to))
	return dbErr(op+": recording the event", err)
}

// MoveVolumeToPool moves volume into pool (a scratch volume taken by a
// job, or a purged one to its recycle pool): the pool's limits are copied
// into it and the move is recorded in volume_events by actor with why.
// Moving it to the pool it is in changes nothing.
func (s *Store) MoveVolumeToPool(ctx context.Context, volume, pool, actor, why string) error {
	if actor == "" {
		actor = DefaultActor
	}
	return s.inTx(ctx, "moving volume "+quoteName(volume)+" to pool "+quoteName(pool), func(tx pgx.Tx) error {
		id, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		var from string
		if err := tx.QueryRow(ctx, `SELECT p.name FROM media m JOIN pools p ON p.id = m.pool_id WHERE m.id = $1`, id).Scan(&from); err != nil {
			return dbErr("reading the pool of volume "+quoteName(volume), err)
		}
		if from == pool {
			return nil
		}
		return s.movePoolTx(ctx, tx, id, volume, st, from, pool, actor, why)
	})
}

// ExpiredVolumes returns the Full and Used volumes of pool whose retention
// has ended at now (the ones auto-prune takes), oldest last write first.
func (s *Store) ExpiredVolumes(ctx context.Context, pool string, now time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.volume_name FROM media m JOIN pools p ON p.id = m.pool_id
		WHERE p.name = $1 AND m.status IN ('Full', 'Used') AND m.volume_retention IS NOT NULL AND m.volume_retention > '0'
			AND COALESCE(m.last_written, m.label_time, m.created_at) + m.volume_retention <= $2
		ORDER BY COALESCE(m.last_written, m.label_time, m.created_at), m.volume_name`, pool, now.UTC())
	if err != nil {
		return nil, dbErr("listing the expired volumes of pool "+quoteName(pool), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("listing the expired volumes of pool "+quoteName(pool), err)
	}
	return out, nil
}

// RecycleRequest is what BeginRecycle does.
type RecycleRequest struct {
	Volume string
	// Encrypt: the volume's pool encrypts; the volume gets a new key from
	// Ring (required then). false: the volume becomes clear.
	Encrypt bool
	Ring    *keys.Keyring
	Actor   string
	Reason  string // e.g. "recycled for job 12"
}

// BeginRecycle makes a Purged (or Recycle) volume ready to be written
// again, in one transaction: its current key moves to the key history
// (reason "recycled", had_data true; never deleted), a NEW random key from
// the keyring's active KEK becomes current (for an encrypted pool), its
// counters and data_since are reset and it goes to status Labeling. Its
// label must then be rewritten with the new key (storaged, then
// MarkRecycleLabeled) before any data. Refused: another status
// (*StateError), a volume in use by an active job (*VolumeInUseError).
func (s *Store) BeginRecycle(ctx context.Context, req RecycleRequest) (Media, error) {
	if req.Encrypt && (req.Ring == nil || req.Ring.Active() == nil) {
		return Media{}, invalid("keyring", "recycling an encrypted volume needs a keyring with an active KEK")
	}
	if req.Actor == "" {
		req.Actor = DefaultActor
	}
	op := "recycling volume " + quoteName(req.Volume)
	var out Media
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		k, err := lockKeyRow(ctx, tx, req.Volume)
		if err != nil {
			return err
		}
		if k.status != StatusPurged && k.status != StatusRecycle {
			return &StateError{Volume: req.Volume, Op: "recycle", Status: k.status, Want: []Status{StatusPurged, StatusRecycle}}
		}
		if k.jobs > 0 {
			// Purge removed them; a job_media row now is a job that wrote
			// since (never: BeginWrite refuses a Purged volume).
			return &HasDataError{Volume: req.Volume, Op: "recycle", JobSessions: k.jobs, Files: k.files, Bytes: k.bytes, Blocks: k.blocks, DataSince: k.dataSince}
		}
		now := s.nowUTC()
		var (
			nk keys.StoredKey
			ne keys.Escrow
		)
		if req.Encrypt {
			if nk, ne, err = req.Ring.WrapNewEscrow(req.Volume, s.escrowFor(k.pool)); err != nil {
				return fmt.Errorf("%s: making a new key: %w", op, err)
			}
			if k.encrypted && nk.Fingerprint == k.key.Fingerprint {
				return fmt.Errorf("%s: the new key has the fingerprint of the old one (%s); refusing", op, nk.Fingerprint)
			}
		}
		then := "no key (clear)"
		if req.Encrypt {
			then = "key " + nk.Fingerprint
		}
		if k.encrypted {
			if err := supersedeTx(ctx, tx, k, req.Volume, "recycled", then, now, req.Actor); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE media_keys SET had_data = true, superseded_verified_at = NULL WHERE media_id = $1 AND key_fingerprint = $2`,
				k.id, k.key.Fingerprint); err != nil {
				return dbErr(op, err)
			}
		}
		if req.Encrypt {
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = true, key_string = $2, key_scheme = $3, kek_id = $4, key_fingerprint = $5,
					key_valid_from = $6, encryption_verified_at = NULL, escrow_key_id = $7, escrow_envelope = $8
				WHERE id = $1`, k.id, nk.Value, string(nk.Scheme), nk.KEKID, nk.Fingerprint, now, nullIfEmpty(ne.KeyID), nullIfEmpty(ne.Envelope))
		} else {
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = false, key_string = NULL, escrow_key_id = NULL, escrow_envelope = NULL, key_scheme = NULL, kek_id = NULL,
					key_fingerprint = NULL, key_valid_from = NULL, encryption_verified_at = NULL WHERE id = $1`, k.id)
		}
		if err != nil {
			return dbErr(op, err)
		}
		_, err = tx.Exec(ctx, `
			UPDATE media SET status = 'Labeling', encryption_verified_at = NULL, bytes_written = 0, blocks_written = 0,
				files_written = 0, first_written = NULL, last_written = NULL, data_since = NULL, error_reason = NULL,
				purged_at = NULL, recycle_count = recycle_count + 1, updated_at = $2
			WHERE id = $1`, k.id, now)
		if err != nil {
			return dbErr(op, err)
		}
		why := req.Reason
		if why == "" {
			why = "recycled"
		}
		if req.Encrypt {
			detail := nk.Fingerprint + " (" + why + ": a new key for the reused volume"
			if k.encrypted {
				detail += "; key " + k.key.Fingerprint + " moved to the key history"
			}
			if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: req.Volume, Event: EventGenerated, Actor: req.Actor, KEKID: nk.KEKID, Detail: detail + ")"}, k.id); err != nil {
				return err
			}
		}
		detail := why + "; new key " + then[len("key "):]
		if !req.Encrypt {
			detail = why + "; clear (its pool does not encrypt)"
		}
		if err := s.moveTx(ctx, tx, k.id, req.Volume, k.status, StatusLabeling, req.Actor, detail+"; its label is rewritten before any data"); err != nil {
			return err
		}
		out, err = getMedia(ctx, tx, req.Volume)
		return err
	})
	if err != nil {
		return Media{}, err
	}
	return out, nil
}

// MarkRecycleLabeled records that storage rewrote the label of a volume
// BeginRecycle made ready (Director.LabelWritten): status Labeling →
// Append with labelTime and, for an encrypted volume, verifiedAt (the
// key-check block read back encrypted with the key whose fingerprint the
// label names, which must be the current key). The key history rows the
// recycling superseded get superseded_verified_at. Refused: another
// storage (*NotOwnedError), another status (*StateError), a fingerprint
// that is not the current key (*WriteRefusedError).
func (s *Store) MarkRecycleLabeled(ctx context.Context, volume, storage, fingerprint string, labelTime time.Time, verifiedAt *time.Time, actor string) error {
	if actor == "" {
		actor = storage
	}
	op := "recording the recycled label of volume " + quoteName(volume)
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		m, err := lockOwnedMedia(ctx, tx, op, volume, storage)
		if err != nil {
			return err
		}
		if m.status != StatusLabeling {
			return &StateError{Volume: volume, Op: "record the recycled label of", Status: m.status, Want: []Status{StatusLabeling}}
		}
		switch {
		case m.encrypted && (fingerprint != m.fingerprint || verifiedAt == nil):
			return &WriteRefusedError{Volume: volume, Reason: fmt.Sprintf("the label was written with key %s (verified: %t) but the volume's current key is %s",
				orDash(fingerprint), verifiedAt != nil, m.fingerprint)}
		case !m.encrypted && fingerprint != "":
			return &WriteRefusedError{Volume: volume, Reason: "the label names key " + fingerprint + " but the catalog says the volume is clear"}
		}
		var va *time.Time
		if m.encrypted {
			t := verifiedAt.UTC()
			va = &t
		}
		if _, err := tx.Exec(ctx, `UPDATE media SET label_time = $2, encryption_verified_at = $3 WHERE id = $1`, m.id, labelTime.UTC(), va); err != nil {
			return dbErr(op, err)
		}
		mark := labelTime.UTC()
		if va != nil {
			mark = *va
		}
		if _, err := tx.Exec(ctx, `UPDATE media_keys SET superseded_verified_at = $2
			WHERE media_id = $1 AND reason = 'recycled' AND superseded_verified_at IS NULL`, m.id, mark); err != nil {
			return dbErr(op, err)
		}
		detail := "recycled label written by storage " + storage
		if m.encrypted {
			detail += "; key-check block verified with the new key " + m.fingerprint
		}
		return s.moveTx(ctx, tx, m.id, volume, StatusLabeling, StatusAppend, actor, detail)
	})
}

// RecyclingUnverified says whether volume was recycled and its new label
// not verified yet (a media_keys row of reason "recycled" without
// superseded_verified_at): a label of it may then write over the data of
// its old key, which the catalog gave up.
func (s *Store) RecyclingUnverified(ctx context.Context, volume string) (bool, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM media_keys k JOIN media m ON m.id = k.media_id
		WHERE m.volume_name = $1 AND k.reason = 'recycled' AND k.superseded_verified_at IS NULL`, volume).Scan(&n)
	if err != nil {
		return false, dbErr("reading the key history of volume "+quoteName(volume), err)
	}
	return n > 0, nil
}

// dropJobRowsTx removes the records of jobs (files, file parts,
// deletions, job media) on every volume they wrote, and marks the job
// rows purged with why (the rows stay as history that no since-time or
// restore chain counts). It returns how many file records went.
func dropJobRowsTx(ctx context.Context, tx pgx.Tx, op string, jobs []int64, now time.Time, why string) (int64, error) {
	if len(jobs) == 0 {
		return 0, nil
	}
	tag, err := tx.Exec(ctx, `DELETE FROM files WHERE job_id = ANY($1)`, jobs)
	if err != nil {
		return 0, dbErr(op, err)
	}
	for _, q := range []string{
		`DELETE FROM file_parts WHERE job_id = ANY($1)`,
		`DELETE FROM file_deletions WHERE job_id = ANY($1)`,
		`DELETE FROM job_media WHERE job_id = ANY($1)`,
	} {
		if _, err := tx.Exec(ctx, q, jobs); err != nil {
			return 0, dbErr(op, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE jobs SET purged_at = COALESCE(purged_at, $2), purged_reason = COALESCE(purged_reason, $3)
		WHERE id = ANY($1)`, jobs, now, why); err != nil {
		return 0, dbErr(op, err)
	}
	return tag.RowsAffected(), nil
}
