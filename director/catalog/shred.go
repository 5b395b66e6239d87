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

// Crypto-shredding (schema 10, architecture.md §4 invariant 7): the one
// explicit, audited exception to "a wrapped key is never deleted".
// ShredVolume destroys every copy of a volume's keys the catalog holds —
// its current key (media.key_string) and every key of its history
// (media_keys) — marks it Purged ("shredded") and queues the destruction
// of its keys in every storage daemon's crypto cache (shred_pushes); the
// director delivers those (Storage.ShredKeys) and CompleteShreds records
// each answer.

// ShreddedReason is the reason of the volume event a shred records.
const ShreddedReason = "shredded"

// ShreddedError says that a volume's keys were destroyed: its data cannot
// be read by anyone. A mount or key request for it is refused with it.
type ShreddedError struct {
	Volume string
	At     time.Time
	By     string
}

func (e *ShreddedError) Error() string {
	return fmt.Sprintf("volume %s was shredded on %s by %s; its data cannot be read (every key it was written under was destroyed)",
		e.Volume, e.At.UTC().Format("2006-01-02 15:04:05Z"), e.By)
}

// ErrShredded is matched (errors.Is) by every *ShreddedError.
var ErrShredded = errors.New("volume was shredded")

// Is makes errors.Is(err, ErrShredded) true.
func (e *ShreddedError) Is(target error) bool { return target == ErrShredded }

// NothingToShredError says that a volume has no key anywhere in the
// catalog (a clear volume, or one already shredded).
type NothingToShredError struct {
	Volume   string
	Shredded *ShreddedError // set when it was shredded before
}

func (e *NothingToShredError) Error() string {
	if e.Shredded != nil {
		return fmt.Sprintf("nothing to shred: %s; the catalog holds no key of it (shreds still pending on storage daemons are delivered when they connect)", e.Shredded.Error())
	}
	return fmt.Sprintf("nothing to shred: volume %s is clear (not encrypted) and the catalog holds no key of it, current or past; its data on tape is readable by anyone holding the cartridge — purge it or destroy the cartridge", e.Volume)
}

// ErrNothingToShred is matched (errors.Is) by every *NothingToShredError.
var ErrNothingToShred = errors.New("nothing to shred")

// Is makes errors.Is(err, ErrNothingToShred) true.
func (e *NothingToShredError) Is(target error) bool { return target == ErrNothingToShred }

// KeyExport is a keys export that included a volume's key: written
// before a shred, out of the system's reach.
type KeyExport struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Detail string    `json:"detail"`
}

// ShredResult is what ShredVolume did. It never holds key material:
// fingerprints only.
type ShredResult struct {
	Volume    string    `json:"volume"`
	At        time.Time `json:"shredded_at"`
	Actor     string    `json:"shredded_by"`
	OldStatus Status    `json:"old_status"`
	// Fingerprints of the keys destroyed (current first, then the
	// history's, oldest first); Strings counts the stored strings removed
	// (a key rewrapped under several KEKs has one string per KEK at most
	// in the catalog, so Strings == len(Fingerprints) there).
	Fingerprints []string `json:"fingerprints"`
	Strings      int      `json:"catalog_strings_destroyed"`
	Scheme       string   `json:"key_scheme,omitempty"` // "bareos" when any key was Bareos-scheme
	// Storages are the storage daemons a shred is queued for.
	Storages []string `json:"storages_queued"`
	// EscrowKeys: the escrow key ids of the envelopes the volume's labels
	// carry (one per key that had one; the catalog's copies are destroyed
	// with the keys). The tape still holds the current one in its label:
	// whoever keeps that escrow private key can still read the data —
	// out of the system's reach, like an export.
	EscrowKeys []string `json:"escrow_envelopes_on_tape"`
	// Exports are the keys exports that included the volume's key
	// (key_events 'exported'), oldest first: copies out of reach.
	Exports []KeyExport `json:"exports_out_of_reach"`
	// Imported: the key came from elsewhere (key_events 'imported', e.g.
	// Bareos): the source may still hold it.
	Imported []KeyExport `json:"imports"`
	// Jobs whose records went with the keys (their data is unreadable),
	// and how many file records that was.
	Jobs  []int64 `json:"jobs_purged"`
	Files int64   `json:"file_records_removed"`
}

// ShredVolume destroys every copy of volume's keys the catalog holds, in
// one transaction: media.key_string (and the key columns: the volume is
// clear in the catalog from now on, shredded_at/shredded_by say why) and
// every media_keys row; the volume goes to status Purged with a volume
// event (reason "shredded"), a "shredded" key event names the
// fingerprints destroyed, its pending cache pushes are dropped and a shred
// is queued for every storage daemon in the catalog (shred_pushes). A
// volume in status Labeling is refused (*StateError: a label is being
// written with its key); a volume with no key at all is a
// *NothingToShredError. The caller must have made sure no job session has
// it mounted.
func (s *Store) ShredVolume(ctx context.Context, volume, actor string) (ShredResult, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "shredding the keys of volume " + quoteName(volume)
	res := ShredResult{Volume: volume, Actor: actor}
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		// Exclusive with rekey and key exports: neither sees half a shred.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, rekeyLock); err != nil {
			return dbErr(op, err)
		}
		var (
			id                       int64
			status                   string
			encrypted                bool
			scheme, fp, kek, shredBy *string
			shredAt                  *time.Time
		)
		err := tx.QueryRow(ctx, `
			SELECT id, status, encrypted, key_scheme, key_fingerprint, kek_id, shredded_at, shredded_by
			FROM media WHERE volume_name = $1 FOR UPDATE`, volume).
			Scan(&id, &status, &encrypted, &scheme, &fp, &kek, &shredAt, &shredBy)
		if err == nil {
			// Before the key rows go: which escrow envelopes stay on tape.
			var erows pgx.Rows
			erows, err = tx.Query(ctx, `
				SELECT DISTINCT escrow_key_id FROM (
					SELECT escrow_key_id FROM media WHERE id = $1
					UNION ALL SELECT escrow_key_id FROM media_keys WHERE media_id = $1) e
				WHERE escrow_key_id IS NOT NULL ORDER BY 1`, id)
			if err == nil {
				res.EscrowKeys, err = pgx.CollectRows(erows, pgx.RowTo[string])
			}
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("volume", volume)
		}
		if err != nil {
			return dbErr(op, err)
		}
		res.OldStatus = Status(status)
		if res.OldStatus == StatusLabeling {
			return &StateError{Volume: volume, Op: "shred", Status: res.OldStatus,
				Want: []Status{StatusAppend, StatusFull, StatusUsed, StatusError, StatusPurged, StatusRecycle, StatusReadOnly, StatusDisabled, StatusArchive}}
		}
		if encrypted {
			res.Fingerprints = append(res.Fingerprints, deref(fp))
			if deref(scheme) == "bareos" {
				res.Scheme = "bareos"
			}
		}
		rows, err := tx.Query(ctx, `SELECT key_fingerprint, key_scheme FROM media_keys WHERE media_id = $1 ORDER BY valid_to, id`, id)
		if err != nil {
			return dbErr(op, err)
		}
		var hfp, hscheme string
		_, err = pgx.ForEachRow(rows, []any{&hfp, &hscheme}, func() error {
			res.Strings++
			if hscheme == "bareos" {
				res.Scheme = "bareos"
			}
			for _, f := range res.Fingerprints {
				if f == hfp {
					return nil
				}
			}
			res.Fingerprints = append(res.Fingerprints, hfp)
			return nil
		})
		if err != nil {
			return dbErr(op+": reading the key history", err)
		}
		if encrypted {
			res.Strings++
		}
		if res.Strings == 0 {
			ne := &NothingToShredError{Volume: volume}
			if shredAt != nil {
				ne.Shredded = &ShreddedError{Volume: volume, At: *shredAt, By: deref(shredBy)}
			}
			return ne
		}
		now := s.nowUTC()
		res.At = now
		// The data is unreadable from now on: the records of the jobs on
		// the volume go as a purge's do (on every volume those jobs
		// wrote), so no restore selects a file nobody can read.
		jrows, err := tx.Query(ctx, `SELECT DISTINCT job_id FROM job_media WHERE media_id = $1 ORDER BY 1`, id)
		if err != nil {
			return dbErr(op, err)
		}
		if res.Jobs, err = pgx.CollectRows(jrows, pgx.RowTo[int64]); err != nil {
			return dbErr(op, err)
		}
		if res.Files, err = dropJobRowsTx(ctx, tx, op, res.Jobs, now, "volume "+volume+" shredded by "+actor+": its data cannot be read"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM media_keys WHERE media_id = $1`, id); err != nil {
			return dbErr(op+": destroying the key history", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE media SET encrypted = false, key_string = NULL, escrow_key_id = NULL, escrow_envelope = NULL, key_scheme = NULL, kek_id = NULL,
				key_fingerprint = NULL, encryption_verified_at = NULL, key_valid_from = NULL,
				status = 'Purged', error_reason = NULL, shredded_at = $2, shredded_by = $3, updated_at = $2
			WHERE id = $1`, id, now, actor); err != nil {
			return dbErr(op+": destroying the current key", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM cache_pushes WHERE volume_name = $1`, volume); err != nil {
			return dbErr(op+": dropping its pending cache pushes", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO volume_events (at, volume_name, media_id, actor, old_status, new_status, reason)
			VALUES ($1, $2, $3, $4, $5, 'Purged', $6)`, now, volume, id, actor, status, ShreddedReason); err != nil {
			return dbErr(op+": recording the volume event", err)
		}
		reason := "shred volume=" + volume + " by " + actor
		rows, err = tx.Query(ctx, `
			INSERT INTO shred_pushes (storage_id, volume_name, queued_at, reason)
			SELECT id, $1, $2, $3 FROM storages
			ON CONFLICT (storage_id, volume_name) DO UPDATE SET queued_at = EXCLUDED.queued_at, reason = EXCLUDED.reason
			RETURNING (SELECT name FROM storages s WHERE s.id = storage_id)`, volume, now, reason)
		if err != nil {
			return dbErr(op+": queueing the shreds of the crypto caches", err)
		}
		if res.Storages, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return dbErr(op+": queueing the shreds of the crypto caches", err)
		}
		slices.Sort(res.Storages)
		detail := fmt.Sprintf("every key of the volume destroyed in the catalog (%d stored strings; keys %s); was %s; shred queued for storages %s; %d jobs and %d file records purged",
			res.Strings, strings.Join(res.Fingerprints, ", "), status, orDash(strings.Join(res.Storages, ", ")), len(res.Jobs), res.Files)
		if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: volume, Event: EventShredded, Actor: actor, KEKID: deref(kek), Detail: detail}, id); err != nil {
			return err
		}
		res.Exports, err = keyEventsOf(ctx, tx, volume, EventExported)
		if err != nil {
			return err
		}
		res.Imported, err = keyEventsOf(ctx, tx, volume, EventImported)
		return err
	})
	if err != nil {
		return ShredResult{}, err
	}
	return res, nil
}

// keyEventsOf lists volume's key events of type ev, oldest first.
func keyEventsOf(ctx context.Context, q querier, volume string, ev KeyEventType) ([]KeyExport, error) {
	rows, err := q.Query(ctx, `SELECT at, actor, detail FROM key_events WHERE volume_name = $1 AND event = $2 ORDER BY at, id`, volume, string(ev))
	if err != nil {
		return nil, dbErr("listing the "+string(ev)+" key events of volume "+quoteName(volume), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyExport, error) {
		var e KeyExport
		err := r.Scan(&e.At, &e.Actor, &e.Detail)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, dbErr("listing the "+string(ev)+" key events of volume "+quoteName(volume), err)
	}
	return out, nil
}

// Shredded returns when and by whom volume was shredded (nil: never).
func (s *Store) Shredded(ctx context.Context, volume string) (*ShreddedError, error) {
	var (
		at *time.Time
		by *string
	)
	err := s.pool.QueryRow(ctx, `SELECT shredded_at, shredded_by FROM media WHERE volume_name = $1`, volume).Scan(&at, &by)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("volume", volume)
	}
	if err != nil {
		return nil, dbErr("reading whether volume "+quoteName(volume)+" was shredded", err)
	}
	if at == nil {
		return nil, nil
	}
	return &ShreddedError{Volume: volume, At: at.UTC(), By: deref(by)}, nil
}

// PendingShred is a volume whose keys must still be destroyed in a
// storage daemon's crypto cache.
type PendingShred struct {
	Volume   string    `json:"volume"`
	QueuedAt time.Time `json:"queued_at"`
	Reason   string    `json:"reason"`
}

// PendingShreds returns the shreds queued for storage, by volume name.
func (s *Store) PendingShreds(ctx context.Context, storage string) ([]PendingShred, error) {
	op := "reading the shreds pending for storage " + quoteName(storage)
	rows, err := s.pool.Query(ctx, `
		SELECT p.volume_name, p.queued_at, p.reason FROM shred_pushes p JOIN storages s ON s.id = p.storage_id
		WHERE s.name = $1 ORDER BY p.volume_name`, storage)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PendingShred, error) {
		var p PendingShred
		err := r.Scan(&p.Volume, &p.QueuedAt, &p.Reason)
		p.QueuedAt = p.QueuedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}

// PendingShredStorages returns, for volume, the storages whose crypto
// cache has not yet confirmed the shred, sorted ("" volume: per storage,
// every pending volume is counted instead — see PendingShredCounts).
func (s *Store) PendingShredStorages(ctx context.Context, volume string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.name FROM shred_pushes p JOIN storages s ON s.id = p.storage_id
		WHERE p.volume_name = $1 ORDER BY s.name`, volume)
	if err != nil {
		return nil, dbErr("reading the shreds pending for volume "+quoteName(volume), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("reading the shreds pending for volume "+quoteName(volume), err)
	}
	return out, nil
}

// PendingShredCounts returns, per storage, how many shreds wait for it.
func (s *Store) PendingShredCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.name, count(*) FROM shred_pushes p JOIN storages s ON s.id = p.storage_id GROUP BY s.name`)
	if err != nil {
		return nil, dbErr("counting the pending shreds", err)
	}
	out := map[string]int{}
	var (
		name string
		n    int
	)
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil }); err != nil {
		return nil, dbErr("counting the pending shreds", err)
	}
	return out, nil
}

// ShredDone is one storage daemon's answer to a shred of one volume.
type ShredDone struct {
	PendingShred
	// Destroyed: stored strings the storage removed from its cache (and
	// its backups); 0 with Absent when it held none.
	Destroyed int
	Absent    bool
	// NotEdited names cache copies the storage keeps but could not edit
	// (corrupt files kept aside), which may still hold the volume's keys.
	NotEdited []string
}

// CompleteShreds records storage's answers: in one transaction each
// pending row is removed (unless queued again since it was read) with a
// "shredded" key event saying what the storage destroyed. It returns how
// many rows were removed.
func (s *Store) CompleteShreds(ctx context.Context, storage string, done []ShredDone, actor string) (int, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "recording the shreds in the crypto cache of storage " + quoteName(storage)
	removed := 0
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		sid, err := storageIDTx(ctx, tx, storage)
		if err != nil {
			return err
		}
		now := s.nowUTC()
		for _, d := range done {
			tag, err := tx.Exec(ctx, `DELETE FROM shred_pushes WHERE storage_id = $1 AND volume_name = $2 AND queued_at = $3`,
				sid, d.Volume, d.QueuedAt)
			if err != nil {
				return dbErr(op, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			removed++
			detail := fmt.Sprintf("destroyed in the crypto cache of storage %s: %d stored strings", storage, d.Destroyed)
			if d.Absent {
				detail = fmt.Sprintf("the crypto cache of storage %s held no key of the volume", storage)
			}
			if len(d.NotEdited) > 0 {
				detail += "; NOT EDITED (corrupt copies kept aside, may still hold its keys: destroy them by hand): " + strings.Join(d.NotEdited, ", ")
			}
			var mediaID int64
			err = tx.QueryRow(ctx, `SELECT id FROM media WHERE volume_name = $1`, d.Volume).Scan(&mediaID)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return dbErr(op, err)
			}
			if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: d.Volume, Event: EventShredded, Actor: actor, Detail: detail}, mediaID); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}
