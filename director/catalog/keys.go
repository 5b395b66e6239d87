package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// VolumeKey returns the wrapped key of volume for the storage daemon
// storage. Only the storage the volume belongs to gets it: any other
// storage (or a volume with no storage) is a *NotOwnedError, checked before
// anything else is revealed (the key string does not even leave the
// database then). An unknown volume is a *NotFoundError, a clear one a
// *NotEncryptedError, a shredded one (no key since) a *ShreddedError.
// VolumeKey only reads: the caller records the
// "fetched" key event (AddKeyEvent) if it wants one.
func (s *Store) VolumeKey(ctx context.Context, volume, storage string) (keys.StoredKey, error) {
	var (
		owner, scheme, kekID, value, fp *string
		shredBy                         *string
		shredAt                         *time.Time
		encrypted                       bool
	)
	err := s.pool.QueryRow(ctx, `
		SELECT s.name, m.encrypted,
			CASE WHEN s.name = $2 THEN m.key_scheme END,
			CASE WHEN s.name = $2 THEN m.kek_id END,
			CASE WHEN s.name = $2 THEN m.key_string END,
			CASE WHEN s.name = $2 THEN m.key_fingerprint END,
			m.shredded_at, m.shredded_by
		FROM media m LEFT JOIN storages s ON s.id = m.storage_id
		WHERE m.volume_name = $1`, volume, storage).Scan(&owner, &encrypted, &scheme, &kekID, &value, &fp, &shredAt, &shredBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return keys.StoredKey{}, notFound("volume", volume)
	}
	if err != nil {
		return keys.StoredKey{}, dbErr("reading the key of volume "+quoteName(volume), err)
	}
	if storage == "" || owner == nil || *owner != storage {
		return keys.StoredKey{}, &NotOwnedError{Volume: volume, Storage: storage, Owner: deref(owner)}
	}
	if !encrypted && shredAt != nil {
		return keys.StoredKey{}, &ShreddedError{Volume: volume, At: shredAt.UTC(), By: deref(shredBy)}
	}
	if !encrypted {
		return keys.StoredKey{}, &NotEncryptedError{Volume: volume}
	}
	return keys.StoredKey{Scheme: keys.Scheme(deref(scheme)), KEKID: deref(kekID), Value: deref(value), Fingerprint: deref(fp)}, nil
}

// EncryptionMode is what UpdateEncryption does to a volume.
type EncryptionMode string

// Encryption modes (the console's "update volume=… encrypt=yes|no|rotate").
const (
	EncryptYes    EncryptionMode = "yes"    // give a clear volume a new key
	EncryptNo     EncryptionMode = "no"     // drop an encrypted volume's key
	EncryptRotate EncryptionMode = "rotate" // replace an encrypted volume's key by a new one
)

// ParseEncryptionMode accepts "yes", "no" or "rotate".
func ParseEncryptionMode(s string) (EncryptionMode, error) {
	switch m := EncryptionMode(s); m {
	case EncryptYes, EncryptNo, EncryptRotate:
		return m, nil
	}
	return "", invalid("encryption mode", "%q is not yes, no or rotate", s)
}

// lockedKey is a volume row read FOR UPDATE for a key change.
type lockedKey struct {
	id                         int64
	status                     Status
	encrypted                  bool
	key                        keys.StoredKey // zero for a clear volume
	escrow                     keys.Escrow    // the key's escrow envelope, if any
	pool                       string
	verifiedAt, validFrom      *time.Time
	dataSince                  *time.Time
	bytes, blocks, jobs, files int64
}

func lockKeyRow(ctx context.Context, tx pgx.Tx, volume string) (lockedKey, error) {
	var (
		k                      lockedKey
		status                 string
		scheme, kek, fp, value *string
		escrowID, escrowEnv    *string
	)
	err := tx.QueryRow(ctx, `
		SELECT m.id, m.status, m.encrypted, m.key_scheme, m.kek_id, m.key_fingerprint, m.key_string,
			m.encryption_verified_at, m.key_valid_from, m.data_since, m.bytes_written, m.blocks_written,
			m.escrow_key_id, m.escrow_envelope, (SELECT p.name FROM pools p WHERE p.id = m.pool_id)
		FROM media m WHERE m.volume_name = $1 FOR UPDATE OF m`, volume).
		Scan(&k.id, &status, &k.encrypted, &scheme, &kek, &fp, &value, &k.verifiedAt, &k.validFrom, &k.dataSince, &k.bytes, &k.blocks,
			&escrowID, &escrowEnv, &k.pool)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, notFound("volume", volume)
	}
	if err != nil {
		return k, dbErr("reading volume "+quoteName(volume), err)
	}
	k.status = Status(status)
	k.key = keys.StoredKey{Scheme: keys.Scheme(deref(scheme)), KEKID: deref(kek), Fingerprint: deref(fp), Value: deref(value)}
	k.escrow = keys.Escrow{KeyID: deref(escrowID), Envelope: deref(escrowEnv)}
	// Inserting a job_media row takes a KEY SHARE lock on the media row,
	// which our FOR UPDATE excludes: these counts cannot change before we
	// commit (file rows have no foreign key, but FileBatch only writes rows
	// on a tape file that has a job_media row, so a volume without
	// job_media rows has no file rows; files are found through the jobs'
	// primary key, not by a scan).
	err = tx.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM job_media WHERE media_id = $1),
			(SELECT count(*) FROM files f WHERE f.media_id = $1
				AND f.job_id IN (SELECT job_id FROM job_media WHERE media_id = $1))`, k.id).
		Scan(&k.jobs, &k.files)
	if err != nil {
		return k, dbErr("reading what volume "+quoteName(volume)+" holds", err)
	}
	return k, nil
}

func (k lockedKey) hasData() bool {
	return k.dataSince != nil || k.bytes > 0 || k.blocks > 0 || k.jobs > 0 || k.files > 0
}

func (k lockedKey) hasDataError(volume, op string) *HasDataError {
	return &HasDataError{Volume: volume, Op: op, Bytes: k.bytes, Blocks: k.blocks, JobSessions: k.jobs, Files: k.files, DataSince: k.dataSince}
}

// UpdateEncryption changes the encryption of a volume that holds no data
// (no data_since, bytes_written = 0, blocks_written = 0, no job_media and
// no file rows; otherwise a *HasDataError), in one transaction with its key
// events:
//
//   - EncryptYes: a clear volume gets a new key from ring.WrapNew ("generated").
//     An already encrypted volume is left alone (no event).
//   - EncryptNo: an encrypted volume's key moves to its key history
//     (media_keys, reason "encryption removed"; event "superseded") and
//     its key columns are cleared (event "rotated", detail says encryption
//     was removed). A clear volume is left alone.
//   - EncryptRotate: an encrypted volume's key moves to its key history
//     (reason "rotated"; "superseded") and it gets a new key ("rotated",
//     detail "old fingerprint -> new fingerprint"); a clear one is a
//     *NotEncryptedError.
//
// No wrapped key is deleted or overwritten here: RestoreKey makes a
// history key current again (only ShredVolume, an explicit and audited act,
// destroys keys). A volume in status Labeling is refused (*StateError):
// storaged may be labeling it with the current key. A changed key is not
// verified yet, so encryption_verified_at is cleared. The caller must have
// made sure the volume is not mounted (the storage daemon's VolumeState).
// It returns the volume's row after the change.
func (s *Store) UpdateEncryption(ctx context.Context, volume string, mode EncryptionMode, ring *keys.Keyring, actor string) (Media, error) {
	if _, err := ParseEncryptionMode(string(mode)); err != nil {
		return Media{}, err
	}
	if mode != EncryptNo && (ring == nil || ring.Active() == nil) {
		return Media{}, invalid("keyring", "a new volume key needs a keyring with an active KEK")
	}
	if actor == "" {
		actor = DefaultActor
	}
	op := fmt.Sprintf("setting encryption of volume %s to %s", quoteName(volume), mode)
	var out Media
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		k, err := lockKeyRow(ctx, tx, volume)
		if err != nil {
			return err
		}
		if (mode == EncryptYes && k.encrypted) || (mode == EncryptNo && !k.encrypted) {
			out, err = getMedia(ctx, tx, volume)
			return err
		}
		if mode == EncryptRotate && !k.encrypted {
			return &NotEncryptedError{Volume: volume}
		}
		if k.status == StatusLabeling {
			return &StateError{Volume: volume, Op: "change the encryption of", Status: k.status,
				Want: []Status{StatusAppend, StatusFull, StatusUsed, StatusError, StatusPurged}}
		}
		if k.hasData() {
			what := map[EncryptionMode]string{EncryptYes: "encrypt", EncryptNo: "remove the encryption of", EncryptRotate: "rotate the key of"}[mode]
			return k.hasDataError(volume, what)
		}
		now := s.nowUTC()
		var (
			event, eventKEK, detail string
			nk                      keys.StoredKey
			ne                      keys.Escrow
		)
		if mode != EncryptNo {
			if nk, ne, err = ring.WrapNewEscrow(volume, s.escrowFor(k.pool)); err != nil {
				return fmt.Errorf("%s: making a new key: %w", op, err)
			}
		}
		if k.encrypted {
			reason, then := "rotated", "key "+nk.Fingerprint
			if mode == EncryptNo {
				reason, then = "encryption removed", "no key (clear)"
			}
			if err := supersedeTx(ctx, tx, k, volume, reason, then, now, actor); err != nil {
				return err
			}
		}
		if mode == EncryptNo {
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = false, key_string = NULL, escrow_key_id = NULL, escrow_envelope = NULL, key_scheme = NULL, kek_id = NULL,
					key_fingerprint = NULL, encryption_verified_at = NULL, key_valid_from = NULL, updated_at = $2
				WHERE id = $1`, k.id, now)
			event, eventKEK = string(EventRotated), k.key.KEKID
			detail = fmt.Sprintf("encryption removed: key %s moved to the key history (volume held no data)", k.key.Fingerprint)
		} else {
			_, err = tx.Exec(ctx, `
				UPDATE media SET encrypted = true, key_string = $2, key_scheme = $3, kek_id = $4,
					key_fingerprint = $5, encryption_verified_at = NULL, key_valid_from = $6, updated_at = $6,
					escrow_key_id = $7, escrow_envelope = $8
				WHERE id = $1`, k.id, nk.Value, string(nk.Scheme), nk.KEKID, nk.Fingerprint, now, nullIfEmpty(ne.KeyID), nullIfEmpty(ne.Envelope))
			eventKEK = nk.KEKID
			if mode == EncryptYes {
				event, detail = string(EventGenerated), nk.Fingerprint
			} else {
				event, detail = string(EventRotated), k.key.Fingerprint+" -> "+nk.Fingerprint
			}
		}
		if err != nil {
			return dbErr(op, err)
		}
		if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: volume, Event: KeyEventType(event), Actor: actor, KEKID: eventKEK, Detail: detail}, k.id); err != nil {
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

// RekeyResult counts what Rekey did.
type RekeyResult struct {
	Rewrapped      int // current keys rewrapped under the active KEK
	AlreadyCurrent int // encrypted volumes whose key already was v1 under the active KEK
	// HistoryRewrapped counts media_keys rows (keys volumes had before
	// their current one) rewrapped under the active KEK.
	HistoryRewrapped int
	// Pending is, per storage, how many volumes' keys are queued to be
	// pushed into its crypto cache (cache_pushes) after the rekey.
	Pending map[string]int
}

// rekeyLock is the transaction-level advisory lock that serializes Rekey
// calls (on top of the row locks), so that a second rekey waits for the
// first and then finds nothing left to do.
const rekeyLock int64 = 0x7461706552454b59 // "tapeREKY"

// testHookRekeyLocked, when set by a test, runs inside Rekey's transaction
// right after the rows to rewrap were read and locked (to widen the window
// in which concurrent calls could interleave).
var testHookRekeyLocked func()

// Rekey rewraps every stored key that is not v1 under ring's active KEK
// (kek_id ≠ active id, or scheme bareos) under the active KEK, in ONE
// transaction: the volumes' current keys (media) and every key of their
// history (media_keys). The rows are locked (SELECT … FOR UPDATE, in id
// order), each key is unwrapped with the KEK its row names and wrapped
// again (the fingerprint must not change), updated, and a "rekeyed" key
// event (actor, new KEK id, detail with fingerprint and old KEK) is added
// per key. In the same transaction every volume of every storage that has
// keys (current or history) is queued in cache_pushes (the crypto caches must follow, §4.8;
// the caller pushes them and CompletePushes removes the rows). No tape is
// touched. Any failure — e.g. a KEK missing from the ring — rolls
// everything back and is a *RekeyError naming the volume and KEK id
// (errors.As also finds the *keys.UnwrapError / *keys.KEKNotFoundError).
// Concurrent calls are serialized; the later one finds the keys current.
func (s *Store) Rekey(ctx context.Context, ring *keys.Keyring, actor string) (RekeyResult, error) {
	if ring == nil || ring.Active() == nil {
		return RekeyResult{}, invalid("keyring", "rekey needs a keyring with an active KEK")
	}
	if actor == "" {
		actor = DefaultActor
	}
	active := ring.Active().ID()
	op := "rekeying under KEK " + active
	var res RekeyResult
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, rekeyLock); err != nil {
			return dbErr(op, err)
		}
		type old struct {
			id     int64
			volume string
			key    keys.StoredKey
		}
		rows, err := tx.Query(ctx, `
			SELECT id, volume_name, key_scheme, kek_id, key_string, key_fingerprint
			FROM media WHERE encrypted AND (kek_id <> $1 OR key_scheme <> 'v1')
			ORDER BY id FOR UPDATE`, active)
		if err != nil {
			return dbErr(op, err)
		}
		olds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (old, error) {
			var (
				o      old
				scheme string
			)
			err := r.Scan(&o.id, &o.volume, &scheme, &o.key.KEKID, &o.key.Value, &o.key.Fingerprint)
			o.key.Scheme = keys.Scheme(scheme)
			return o, err
		})
		if err != nil {
			return dbErr(op+": reading the keys to rewrap", err)
		}
		if testHookRekeyLocked != nil {
			testHookRekeyLocked()
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM media WHERE encrypted AND kek_id = $1 AND key_scheme = 'v1'`, active).
			Scan(&res.AlreadyCurrent); err != nil {
			return dbErr(op, err)
		}
		now := s.nowUTC()
		b := &pgx.Batch{}
		for _, o := range olds {
			nk, err := ring.Rewrap(o.key)
			if err != nil {
				return &RekeyError{Volume: o.volume, KEKID: o.key.KEKID, Err: err}
			}
			if nk.Fingerprint != o.key.Fingerprint || nk.KEKID != active || nk.Scheme != keys.SchemeV1 {
				return &RekeyError{Volume: o.volume, KEKID: o.key.KEKID, Err: fmt.Errorf(
					"the rewrapped key has fingerprint %s under KEK %s (%s), want fingerprint %s under KEK %s (v1)",
					nk.Fingerprint, nk.KEKID, nk.Scheme, o.key.Fingerprint, active)}
			}
			b.Queue(`UPDATE media SET key_string = $2, key_scheme = 'v1', kek_id = $3, updated_at = $4 WHERE id = $1`,
				o.id, nk.Value, nk.KEKID, now)
			detail := fmt.Sprintf("key %s rewrapped from KEK %s to KEK %s", o.key.Fingerprint, o.key.KEKID, active)
			if o.key.Scheme != keys.SchemeV1 {
				detail += fmt.Sprintf(" (scheme %s -> v1)", o.key.Scheme)
			}
			b.Queue(`INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
				VALUES ($1, $2, $3, 'rekeyed', $4, $5, $6)`, now, o.volume, o.id, actor, active, detail)
		}
		hist, err := rekeyHistory(ctx, tx, b, ring, active, actor, now)
		if err != nil {
			return err
		}
		if len(olds) > 0 || hist > 0 {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return dbErr(op+": writing the rewrapped keys", err)
			}
		}
		res.Rewrapped, res.HistoryRewrapped = len(olds), hist
		res.Pending, err = queuePushes(ctx, tx, now, "rekey to KEK "+active)
		return err
	})
	if err != nil {
		return RekeyResult{}, err
	}
	return res, nil
}

// ExportFilter selects the volumes ExportKeys exports; empty fields match
// all encrypted volumes.
type ExportFilter struct {
	Pool   string // an existing pool (unknown: *NotFoundError)
	Volume string // one volume
	// Detail, when set, starts each "exported" event's detail (then
	// "; fingerprint FP"), e.g. "sent to console admin": say where the
	// keys went. Empty: the detail is the fingerprint alone.
	Detail string
}

// ExportedKey is one line of a keys export: everything needed to load a
// volume's key with the KEK and no catalog. Its String and Format never
// print Stored.
type ExportedKey struct {
	Volume      string
	Scheme      keys.Scheme
	KEKID       string
	Fingerprint string
	Stored      string // the wrapped key string
}

// StoredKey returns the key in the keys package's form.
func (e ExportedKey) StoredKey() keys.StoredKey {
	return keys.StoredKey{Scheme: e.Scheme, KEKID: e.KEKID, Value: e.Stored, Fingerprint: e.Fingerprint}
}

// String names the volume, scheme, KEK id and fingerprint only.
func (e ExportedKey) String() string {
	return fmt.Sprintf("ExportedKey{volume=%s scheme=%s kek=%s fingerprint=%s}", e.Volume, e.Scheme, e.KEKID, e.Fingerprint)
}

// GoString is String.
func (e ExportedKey) GoString() string { return e.String() }

// Format prints String for every verb.
func (e ExportedKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, e.String()) }

// ExportKeys returns the stored keys of the encrypted volumes matching f,
// ordered by volume name, and adds an "exported" key event (actor, KEK id,
// detail = fingerprint) per volume, in one transaction. The rows are read
// FOR SHARE and under Rekey's advisory lock (shared), so an export never
// interleaves with a rekey: it has all keys from before or all from after.
func (s *Store) ExportKeys(ctx context.Context, f ExportFilter, actor string) ([]ExportedKey, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "exporting keys"
	var out []ExportedKey
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		// Shared with other exports, exclusive with Rekey: an export sees
		// every key either before or after a rekey, and the two never
		// take row locks in different orders (no deadlock).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, rekeyLock); err != nil {
			return dbErr(op, err)
		}
		if f.Pool != "" {
			if _, err := getPool(ctx, tx, f.Pool); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `
			SELECT m.id, m.volume_name, m.key_scheme, m.kek_id, m.key_fingerprint, m.key_string
			FROM media m JOIN pools p ON p.id = m.pool_id
			WHERE m.encrypted AND ($1 = '' OR p.name = $1) AND ($2 = '' OR m.volume_name = $2)
			ORDER BY m.volume_name FOR SHARE OF m`, f.Pool, f.Volume)
		if err != nil {
			return dbErr(op, err)
		}
		var ids []int64
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExportedKey, error) {
			var (
				e      ExportedKey
				id     int64
				scheme string
			)
			err := r.Scan(&id, &e.Volume, &scheme, &e.KEKID, &e.Fingerprint, &e.Stored)
			e.Scheme = keys.Scheme(scheme)
			ids = append(ids, id)
			return e, err
		})
		if err != nil {
			return dbErr(op, err)
		}
		if len(ids) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
			SELECT $1, volume_name, id, 'exported', $2, kek_id,
				CASE WHEN $4 = '' THEN key_fingerprint ELSE $4 || '; fingerprint ' || key_fingerprint END
			FROM media WHERE id = ANY($3)
			ORDER BY volume_name`, s.nowUTC(), actor, ids, f.Detail)
		return dbErr(op+": recording the key events", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VolumeEscrow returns the escrow envelope stored with the key of volume
// whose fingerprint is given (its current key, or one in its history);
// the zero Escrow when that key has none (or is not known).
func (s *Store) VolumeEscrow(ctx context.Context, volume, fingerprint string) (keys.Escrow, error) {
	var id, env *string
	err := s.pool.QueryRow(ctx, `
		SELECT escrow_key_id, escrow_envelope FROM media WHERE volume_name = $1 AND key_fingerprint = $2
		UNION ALL
		SELECT escrow_key_id, escrow_envelope FROM media_keys WHERE volume_name = $1 AND key_fingerprint = $2
		LIMIT 1`, volume, fingerprint).Scan(&id, &env)
	if errors.Is(err, pgx.ErrNoRows) {
		return keys.Escrow{}, nil
	}
	if err != nil {
		return keys.Escrow{}, dbErr("reading the escrow envelope of volume "+quoteName(volume), err)
	}
	return keys.Escrow{KeyID: deref(id), Envelope: deref(env)}, nil
}
