package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Key custody (schema 2, architecture.md §4 invariant 7): every key a
// volume had before its current one is kept in media_keys, "holds data" is
// recorded synchronously before a write session (data_since), and a label
// read from a tape is checked against the catalog before a key is handed
// out.

// HistoryKey is one key a volume had before its current one (a media_keys
// row). Key holds the stored (wrapped) string; its String and Format never
// print it.
type HistoryKey struct {
	ID        int64
	Volume    string
	Key       keys.StoredKey
	ValidFrom *time.Time // when it became the volume's key (nil: not recorded)
	ValidTo   time.Time  // when it stopped being it
	Reason    string     // "rotated", "encryption removed", "reverted", …
	HadData   bool       // the volume held data when the key was superseded
	// VerifiedAt is the volume's encryption_verified_at while this key was
	// current.
	VerifiedAt *time.Time
	// SupersededVerifiedAt: for a key recycling superseded, when storaged
	// verified the new label and key-check block on the tape (nil: not
	// yet — the tape may still carry the old label).
	SupersededVerifiedAt *time.Time
	// Current: the key was made current again (RestoreKey); the row stays
	// as the record of its earlier supersession.
	Current bool
}

// KeyHistory returns the keys volume had before its current one, oldest
// supersession first. An unknown volume is a *NotFoundError; a volume with
// no history an empty list.
func (s *Store) KeyHistory(ctx context.Context, volume string) ([]HistoryKey, error) {
	op := "reading the key history of volume " + quoteName(volume)
	var out []HistoryKey
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var (
			id  int64
			cur *string
		)
		err := tx.QueryRow(ctx, `SELECT id, key_fingerprint FROM media WHERE volume_name = $1`, volume).Scan(&id, &cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("volume", volume)
		}
		if err != nil {
			return dbErr(op, err)
		}
		rows, err := tx.Query(ctx, `
			SELECT id, volume_name, key_scheme, kek_id, key_string, key_fingerprint, valid_from, valid_to,
				reason, had_data, encryption_verified_at, superseded_verified_at
			FROM media_keys WHERE media_id = $1 ORDER BY valid_to, id`, id)
		if err != nil {
			return dbErr(op, err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryKey, error) {
			var (
				h      HistoryKey
				scheme string
			)
			err := r.Scan(&h.ID, &h.Volume, &scheme, &h.Key.KEKID, &h.Key.Value, &h.Key.Fingerprint, &h.ValidFrom, &h.ValidTo,
				&h.Reason, &h.HadData, &h.VerifiedAt, &h.SupersededVerifiedAt)
			h.Key.Scheme = keys.Scheme(scheme)
			h.ValidTo = h.ValidTo.UTC()
			h.Current = cur != nil && *cur == h.Key.Fingerprint
			return h, err
		})
		if err != nil {
			return dbErr(op, err)
		}
		return nil
	})
	return out, err
}

// supersedeTx moves the current key of the locked volume k into media_keys
// (valid_to = now, with reason) and records a "superseded" key event whose
// detail names the old key and what replaces it (then: "key F", "no key").
// A key that already has a history row (it was made current again by
// RestoreKey) gets that row updated: same key, so nothing is lost.
func supersedeTx(ctx context.Context, tx pgx.Tx, k lockedKey, volume, reason, then string, now time.Time, actor string) error {
	op := "moving the key of volume " + quoteName(volume) + " to its key history"
	_, err := tx.Exec(ctx, `
		INSERT INTO media_keys (media_id, volume_name, key_string, key_scheme, kek_id, key_fingerprint,
			valid_from, valid_to, reason, had_data, encryption_verified_at, escrow_key_id, escrow_envelope)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (media_id, key_fingerprint) DO UPDATE SET
			key_string = EXCLUDED.key_string, key_scheme = EXCLUDED.key_scheme, kek_id = EXCLUDED.kek_id,
			escrow_key_id = COALESCE(EXCLUDED.escrow_key_id, media_keys.escrow_key_id),
			escrow_envelope = COALESCE(EXCLUDED.escrow_envelope, media_keys.escrow_envelope),
			valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to, reason = EXCLUDED.reason,
			had_data = media_keys.had_data OR EXCLUDED.had_data,
			encryption_verified_at = COALESCE(EXCLUDED.encryption_verified_at, media_keys.encryption_verified_at)`,
		k.id, volume, k.key.Value, string(k.key.Scheme), k.key.KEKID, k.key.Fingerprint,
		k.validFrom, now, reason, k.hasData(), k.verifiedAt, nullIfEmpty(k.escrow.KeyID), nullIfEmpty(k.escrow.Envelope))
	if err != nil {
		return dbErr(op, err)
	}
	detail := fmt.Sprintf("key %s (KEK %s) moved to the key history: %s; now %s", k.key.Fingerprint, k.key.KEKID, reason, then)
	_, _, err = insertEvent(ctx, tx, KeyEvent{At: now, Volume: volume, Event: EventSuperseded, Actor: actor, KEKID: k.key.KEKID, Detail: detail}, k.id)
	return err
}

// MarkHoldsData records that volume holds data (data_since = at, unless
// already set) and returns data_since. After it, the volume's key can no
// longer be changed (UpdateEncryption refuses with a *HasDataError).
func (s *Store) MarkHoldsData(ctx context.Context, volume string, at time.Time) (time.Time, error) {
	var since time.Time
	err := s.pool.QueryRow(ctx, `
		UPDATE media SET data_since = COALESCE(data_since, $2), updated_at = $2
		WHERE volume_name = $1 RETURNING data_since`, volume, at.UTC().Truncate(time.Microsecond)).Scan(&since)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, notFound("volume", volume)
	}
	if err != nil {
		return time.Time{}, dbErr("recording that volume "+quoteName(volume)+" holds data", err)
	}
	return since.UTC(), nil
}

// BeginWrite is called (through Director.BeginWrite) by storage before it
// writes the first data block of a session on volume with the key whose
// fingerprint the drive holds ("" for a clear volume). It commits
// data_since (if not yet set) and returns it; the storage writes only
// after this returned. Refused: a volume of another storage
// (*NotOwnedError), a volume not in status Append, or a drive key that is
// not the volume's current key (*WriteRefusedError: the key changed after
// the mount). It serializes with UpdateEncryption on the media row: either
// the key change sees data_since, or BeginWrite sees the new key.
func (s *Store) BeginWrite(ctx context.Context, volume, storage, fingerprint string) (time.Time, error) {
	op := "beginning a write session on volume " + quoteName(volume)
	var since time.Time
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		m, err := lockOwnedMedia(ctx, tx, op, volume, storage)
		if err != nil {
			return err
		}
		switch cur := m.fingerprint; {
		case m.status != StatusAppend:
			return &WriteRefusedError{Volume: volume, Reason: fmt.Sprintf("its status is %s (only Append volumes take data)", m.status)}
		case m.encrypted && fingerprint == "":
			return &WriteRefusedError{Volume: volume, Reason: fmt.Sprintf("it is encrypted (key %s) but the drive holds no key; mount it again", cur)}
		case m.encrypted && fingerprint != cur:
			return &WriteRefusedError{Volume: volume, Reason: fmt.Sprintf("the drive holds key %s but the volume's current key is %s (its key changed after the mount); unmount it and mount it again", fingerprint, cur)}
		case !m.encrypted && fingerprint != "":
			return &WriteRefusedError{Volume: volume, Reason: fmt.Sprintf("the catalog says it is not encrypted but the drive holds key %s; unmount it and mount it again", fingerprint)}
		}
		err = tx.QueryRow(ctx, `UPDATE media SET data_since = COALESCE(data_since, $2), updated_at = $2 WHERE id = $1 RETURNING data_since`,
			m.id, s.nowUTC()).Scan(&since)
		return dbErr(op, err)
	})
	if err != nil {
		return time.Time{}, err
	}
	return since.UTC(), nil
}

// RestoreKey undoes a key change that must not stand because the tape
// still holds data under the old key (the relabel found data after the
// key-check file): the key with fingerprint (from the volume's history;
// "" : the volume was clear) becomes the current key again, the key the
// change had made current moves to the history (reason "reverted"), and,
// with holdsData, data_since is set. A volume in Labeling or Error goes
// back to Append (its label on tape names the restored key). One "restored"
// key event says what happened and why. A fingerprint the volume never had
// is a *NotFoundError (Kind "history key"). Nothing is deleted.
func (s *Store) RestoreKey(ctx context.Context, volume, fingerprint, why string, holdsData bool, actor string) (Media, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "restoring the previous key of volume " + quoteName(volume)
	var out Media
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		k, err := lockKeyRow(ctx, tx, volume)
		if err != nil {
			return err
		}
		now := s.nowUTC()
		already := (fingerprint == "" && !k.encrypted) || (fingerprint != "" && k.encrypted && k.key.Fingerprint == fingerprint)
		var (
			old     HistoryKey
			eventKK string
			detail  string
		)
		if !already && fingerprint != "" {
			var scheme string
			err := tx.QueryRow(ctx, `
				SELECT key_scheme, kek_id, key_string, key_fingerprint, valid_from, encryption_verified_at
				FROM media_keys WHERE media_id = $1 AND key_fingerprint = $2`, k.id, fingerprint).
				Scan(&scheme, &old.Key.KEKID, &old.Key.Value, &old.Key.Fingerprint, &old.ValidFrom, &old.VerifiedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("history key", fmt.Sprintf("%s of volume %s", fingerprint, volume))
			}
			if err != nil {
				return dbErr(op, err)
			}
			old.Key.Scheme = keys.Scheme(scheme)
		}
		then := "no key (clear)"
		if fingerprint != "" {
			then = "key " + fingerprint + " again"
		}
		if !already && k.encrypted {
			if err := supersedeTx(ctx, tx, k, volume, "reverted", then, now, actor); err != nil {
				return err
			}
		}
		switch {
		case already:
			detail = "the current key stays"
		case fingerprint == "":
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = false, key_string = NULL, escrow_key_id = NULL, escrow_envelope = NULL, key_scheme = NULL, kek_id = NULL,
					key_fingerprint = NULL, encryption_verified_at = NULL, key_valid_from = NULL
				WHERE id = $1`, k.id)
			eventKK = k.key.KEKID
			detail = fmt.Sprintf("volume is clear again; key %s moved to the key history", k.key.Fingerprint)
		default:
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = true, key_string = $2, key_scheme = $3, kek_id = $4, key_fingerprint = $5,
					encryption_verified_at = $6, key_valid_from = $7,
					escrow_key_id = (SELECT h.escrow_key_id FROM media_keys h WHERE h.media_id = $1 AND h.key_fingerprint = $5),
					escrow_envelope = (SELECT h.escrow_envelope FROM media_keys h WHERE h.media_id = $1 AND h.key_fingerprint = $5)
				WHERE id = $1`, k.id, old.Key.Value, string(old.Key.Scheme), old.Key.KEKID, old.Key.Fingerprint, old.VerifiedAt, old.ValidFrom)
			eventKK = old.Key.KEKID
			detail = fmt.Sprintf("key %s (KEK %s) is the current key again", old.Key.Fingerprint, old.Key.KEKID)
			if k.encrypted {
				detail += fmt.Sprintf("; key %s moved to the key history", k.key.Fingerprint)
			} else {
				detail += "; the volume is encrypted again"
			}
		}
		if err != nil {
			return dbErr(op, err)
		}
		var since *time.Time
		if holdsData {
			since = &now
		}
		_, err = tx.Exec(ctx, `
			UPDATE media SET data_since = COALESCE(data_since, $2),
				status = CASE WHEN status IN ('Labeling', 'Error') THEN 'Append' ELSE status END,
				error_reason = CASE WHEN status IN ('Labeling', 'Error') THEN NULL ELSE error_reason END,
				updated_at = $3
			WHERE id = $1`, k.id, since, now)
		if err != nil {
			return dbErr(op, err)
		}
		if why != "" {
			detail += " (" + why + ")"
		}
		if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: volume, Event: EventRestored, Actor: actor, KEKID: eventKK, Detail: detail}, k.id); err != nil {
			return err
		}
		out, err = getMedia(ctx, tx, volume)
		return err
	})
	if err != nil {
		return Media{}, err
	}
	return out, nil
}

// LabelView is what a volume label read from a tape says, for CheckLabel.
type LabelView struct {
	Volume      string
	Barcode     string // the cartridge's barcode from the changer ("" : none)
	Encrypted   bool
	KEKID       string
	Fingerprint string
	Storage     string // the storage daemon that wrote the label ("" : not recorded)
	Pool        string
}

// LabelKey is CheckLabel's answer: the key the label names, and where it
// comes from.
type LabelKey struct {
	Encrypted bool
	Key       keys.StoredKey // zero for a clear volume
	// Source is "current", or "history: superseded <time> (<reason>)".
	Source  string
	Barcode string // the catalog's
	Pool    string // the catalog's
}

// Key sources of LabelKey.Source.
const SourceCurrent = "current"

// CheckLabel compares a label that storage read from a tape with the
// catalog, in one query, and returns the key the label names: the current
// key, or a key from the volume's history (Source says which). Only the
// storage the volume belongs to gets an answer (*NotOwnedError, checked
// first); an unknown volume is a *NotFoundError. A label that differs from
// the catalog in its barcode, storage, encryption flag or key fingerprint
// (neither current nor in the history) is a *LabelMismatchError naming both
// sides. A label naming a key that a shred destroyed is a *ShreddedError.
// CheckLabel only reads: the caller records the key events.
func (s *Store) CheckLabel(ctx context.Context, storage string, lv LabelView) (LabelKey, error) {
	var (
		owner, barcode, scheme, kekID, value, fp *string
		hScheme, hKEK, hValue, hReason           *string
		hValidTo, shredAt                        *time.Time
		shredBy                                  *string
		pool                                     string
		encrypted                                bool
	)
	err := s.pool.QueryRow(ctx, `
		SELECT s.name, m.barcode, p.name, m.encrypted,
			CASE WHEN s.name = $2 THEN m.key_scheme END,
			CASE WHEN s.name = $2 THEN m.kek_id END,
			CASE WHEN s.name = $2 THEN m.key_string END,
			CASE WHEN s.name = $2 THEN m.key_fingerprint END,
			h.key_scheme, h.kek_id, h.key_string, h.valid_to, h.reason, m.shredded_at, m.shredded_by
		FROM media m JOIN pools p ON p.id = m.pool_id LEFT JOIN storages s ON s.id = m.storage_id
		LEFT JOIN media_keys h ON $3 <> '' AND s.name = $2 AND h.media_id = m.id AND h.key_fingerprint = $3
			AND m.key_fingerprint IS DISTINCT FROM $3
		WHERE m.volume_name = $1`, lv.Volume, storage, lv.Fingerprint).
		Scan(&owner, &barcode, &pool, &encrypted, &scheme, &kekID, &value, &fp, &hScheme, &hKEK, &hValue, &hValidTo, &hReason, &shredAt, &shredBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return LabelKey{}, notFound("volume", lv.Volume)
	}
	if err != nil {
		return LabelKey{}, dbErr("checking the label of volume "+quoteName(lv.Volume), err)
	}
	if storage == "" || owner == nil || *owner != storage {
		return LabelKey{}, &NotOwnedError{Volume: lv.Volume, Storage: storage, Owner: deref(owner)}
	}
	if shredAt != nil && lv.Encrypted && hValue == nil && (!encrypted || lv.Fingerprint != deref(fp)) {
		// The label names a key the shred destroyed (no key the catalog
		// holds now): nothing can read this tape's data.
		return LabelKey{}, &ShreddedError{Volume: lv.Volume, At: shredAt.UTC(), By: deref(shredBy)}
	}
	out := LabelKey{Barcode: deref(barcode), Pool: pool}
	var bad []string
	if lv.Barcode != "" && out.Barcode != "" && lv.Barcode != out.Barcode {
		bad = append(bad, fmt.Sprintf("barcode: the cartridge is %q, the catalog says volume %q is %q", lv.Barcode, lv.Volume, out.Barcode))
	}
	if lv.Storage != "" && lv.Storage != *owner {
		bad = append(bad, fmt.Sprintf("storage: the label was written by %q, the catalog says the volume belongs to %q", lv.Storage, *owner))
	}
	catalogSide := "no (clear)"
	if encrypted {
		catalogSide = fmt.Sprintf("yes (key %s under KEK %s)", deref(fp), deref(kekID))
	}
	switch {
	case !lv.Encrypted && encrypted:
		bad = append(bad, "encrypted: the label says no, the catalog says "+catalogSide)
	case lv.Encrypted && encrypted && lv.Fingerprint == deref(fp):
		out.Encrypted, out.Source = true, SourceCurrent
		out.Key = keys.StoredKey{Scheme: keys.Scheme(deref(scheme)), KEKID: deref(kekID), Value: deref(value), Fingerprint: deref(fp)}
	case lv.Encrypted && hValue != nil:
		// A key the volume had before (a change that did not reach the
		// tape, or data written under it): hand it out, saying so.
		out.Encrypted = true
		out.Source = fmt.Sprintf("history: superseded %s (%s)", hValidTo.UTC().Format("2006-01-02 15:04:05Z"), deref(hReason))
		out.Key = keys.StoredKey{Scheme: keys.Scheme(deref(hScheme)), KEKID: deref(hKEK), Value: *hValue, Fingerprint: lv.Fingerprint}
	case lv.Encrypted && encrypted:
		bad = append(bad, fmt.Sprintf("key fingerprint: the label names key %s (KEK %s), the catalog's key is %s and its key history has no key %s",
			orDash(lv.Fingerprint), orDash(lv.KEKID), deref(fp), orDash(lv.Fingerprint)))
	case lv.Encrypted:
		bad = append(bad, fmt.Sprintf("encrypted: the label says yes (key %s under KEK %s), the catalog says no and its key history has no such key",
			orDash(lv.Fingerprint), orDash(lv.KEKID)))
	default:
		out.Source = SourceCurrent
	}
	if len(bad) > 0 {
		return LabelKey{}, &LabelMismatchError{Volume: lv.Volume, Storage: storage, Mismatches: bad}
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// InterruptedReason is the error reason InterruptLabeling gives.
const InterruptedReason = "interrupted: labelling did not finish; label the slot again to retry with the same key"

// InterruptLabeling ends labels that cannot be running any more: at
// director start-up every volume in status Labeling (no volumes given), or
// the given volumes if they are in status Labeling (a label the running
// director is not doing, e.g. its catalog commit failed). Each goes to
// status Error with InterruptedReason and gets an "interrupted" key event
// (its key is kept; labelling the slot again retries with it). It returns
// the volumes it changed, in name order.
func (s *Store) InterruptLabeling(ctx context.Context, actor string, volumes ...string) ([]string, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "ending interrupted labels"
	var out []string
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		now := s.nowUTC()
		rows, err := tx.Query(ctx, `
			UPDATE media SET status = 'Error', error_reason = $1, updated_at = $2
			WHERE status = 'Labeling' AND (coalesce(cardinality($3::text[]), 0) = 0 OR volume_name = ANY($3))
			RETURNING id, volume_name, kek_id, key_fingerprint`, InterruptedReason, now, volumes)
		if err != nil {
			return dbErr(op, err)
		}
		type row struct {
			id         int64
			volume     string
			kek, keyFP *string
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.volume, &x.kek, &x.keyFP)
		})
		if err != nil {
			return dbErr(op, err)
		}
		for _, x := range got {
			detail := "labelling did not finish (the director stopped, or could not record its end); status Error"
			if x.keyFP != nil {
				detail += "; key " + *x.keyFP + " kept: labelling the slot again retries with it"
			}
			if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: x.volume, Event: EventInterrupted, Actor: actor, KEKID: deref(x.kek), Detail: detail}, x.id); err != nil {
				return err
			}
			out = append(out, x.volume)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
