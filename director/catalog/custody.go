package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Key custody across KEKs (architecture.md §4.8): rekey rewraps the keys
// of the volumes' history too, the storages' crypto caches follow through
// queued pushes (cache_pushes), and what still depends on a KEK can be
// listed before the KEK is retired.

// rekeyHistory queues, in b, the rewrap of every media_keys row not v1
// under the active KEK, with a "rekeyed" event each, and returns how many.
// The rows are locked FOR UPDATE in id order.
func rekeyHistory(ctx context.Context, tx pgx.Tx, b *pgx.Batch, ring *keys.Keyring, active, actor string, now time.Time) (int, error) {
	op := "rekeying the keys of the volumes' history under KEK " + active
	type old struct {
		id, mediaID    int64
		volume, reason string
		validTo        time.Time
		key            keys.StoredKey
	}
	rows, err := tx.Query(ctx, `
		SELECT id, media_id, volume_name, reason, valid_to, key_scheme, kek_id, key_string, key_fingerprint
		FROM media_keys WHERE kek_id <> $1 OR key_scheme <> 'v1'
		ORDER BY id FOR UPDATE`, active)
	if err != nil {
		return 0, dbErr(op, err)
	}
	olds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (old, error) {
		var (
			o      old
			scheme string
		)
		err := r.Scan(&o.id, &o.mediaID, &o.volume, &o.reason, &o.validTo, &scheme, &o.key.KEKID, &o.key.Value, &o.key.Fingerprint)
		o.key.Scheme = keys.Scheme(scheme)
		return o, err
	})
	if err != nil {
		return 0, dbErr(op+": reading the keys to rewrap", err)
	}
	for _, o := range olds {
		nk, err := ring.Rewrap(o.key)
		if err != nil {
			return 0, &RekeyError{Volume: o.volume, KEKID: o.key.KEKID, Err: fmt.Errorf("history key %s: %w", o.key.Fingerprint, err)}
		}
		if nk.Fingerprint != o.key.Fingerprint || nk.KEKID != active || nk.Scheme != keys.SchemeV1 {
			return 0, &RekeyError{Volume: o.volume, KEKID: o.key.KEKID, Err: fmt.Errorf(
				"history key %s: the rewrapped key has fingerprint %s under KEK %s (%s), want the same fingerprint under KEK %s (v1)",
				o.key.Fingerprint, nk.Fingerprint, nk.KEKID, nk.Scheme, active)}
		}
		b.Queue(`UPDATE media_keys SET key_string = $2, key_scheme = 'v1', kek_id = $3 WHERE id = $1`, o.id, nk.Value, nk.KEKID)
		detail := fmt.Sprintf("history key %s (superseded %s, %s) rewrapped from KEK %s to KEK %s",
			o.key.Fingerprint, o.validTo.UTC().Format(time.RFC3339), o.reason, o.key.KEKID, active)
		if o.key.Scheme != keys.SchemeV1 {
			detail += fmt.Sprintf(" (scheme %s -> v1)", o.key.Scheme)
		}
		b.Queue(`INSERT INTO key_events (at, volume_name, media_id, event, actor, kek_id, detail)
			VALUES ($1, $2, $3, 'rekeyed', $4, $5, $6)`, now, o.volume, o.mediaID, actor, active, detail)
	}
	return len(olds), nil
}

// queuePushes queues every volume of every storage that has keys — an
// encrypted volume, or one with a key history (e.g. its encryption was
// removed; its storage's cache may still hold the old key) — for a push
// of its keys into that storage's crypto cache (a volume already queued
// is queued again with the new time and reason) and returns the pending
// pushes per storage.
func queuePushes(ctx context.Context, tx pgx.Tx, now time.Time, reason string) (map[string]int, error) {
	_, err := tx.Exec(ctx, `
		INSERT INTO cache_pushes (storage_id, volume_name, queued_at, reason)
		SELECT storage_id, volume_name, $1, $2 FROM media m
		WHERE storage_id IS NOT NULL AND (encrypted OR EXISTS (SELECT 1 FROM media_keys k WHERE k.media_id = m.id))
		ON CONFLICT (storage_id, volume_name) DO UPDATE SET queued_at = EXCLUDED.queued_at, reason = EXCLUDED.reason`,
		now, reason)
	if err != nil {
		return nil, dbErr("queueing the crypto cache pushes", err)
	}
	return pendingCounts(ctx, tx)
}

func pendingCounts(ctx context.Context, q querier) (map[string]int, error) {
	rows, err := q.Query(ctx, `
		SELECT s.name, count(*) FROM cache_pushes p JOIN storages s ON s.id = p.storage_id GROUP BY s.name`)
	if err != nil {
		return nil, dbErr("counting the pending crypto cache pushes", err)
	}
	out := map[string]int{}
	var (
		name string
		n    int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil })
	if err != nil {
		return nil, dbErr("counting the pending crypto cache pushes", err)
	}
	return out, nil
}

// PendingCounts returns, per storage, how many volumes' keys are waiting to
// be pushed into its crypto cache (storages with none are absent).
func (s *Store) PendingCounts(ctx context.Context) (map[string]int, error) {
	return pendingCounts(ctx, s.pool)
}

// PendingPush is one volume whose keys must be pushed into a storage's
// crypto cache. Its String and Format never print stored strings.
type PendingPush struct {
	Volume   string
	QueuedAt time.Time
	Reason   string
	// Current is the volume's current key; nil when the volume is clear
	// now (History may still hold keys) or no longer a volume of this
	// storage (nothing to push: CompletePushes just removes the row).
	Current *keys.StoredKey
	// History lists the keys the volume had before (media_keys), oldest
	// first.
	History []keys.StoredKey
}

// HasKeys says whether there is anything to push for the volume.
func (p PendingPush) HasKeys() bool { return p.Current != nil || len(p.History) > 0 }

// String names the volume, fingerprints and KEK ids only.
func (p PendingPush) String() string {
	cur := "none"
	if p.Current != nil {
		cur = p.Current.String()
	}
	return fmt.Sprintf("PendingPush{volume=%s current=%s history=%d queued=%s}", p.Volume, cur, len(p.History), p.QueuedAt.UTC().Format(time.RFC3339))
}

// GoString is String.
func (p PendingPush) GoString() string { return p.String() }

// Format prints String for every verb.
func (p PendingPush) Format(f fmt.State, _ rune) { fmt.Fprint(f, p.String()) }

// PendingPushes returns the pushes queued for storage, by volume name, with
// the keys to push (read under Rekey's advisory lock, shared: never half
// before and half after a rekey). Stored strings leave the package here,
// for the storage that owns the volumes.
func (s *Store) PendingPushes(ctx context.Context, storage string) ([]PendingPush, error) {
	op := "reading the crypto cache pushes pending for storage " + quoteName(storage)
	var out []PendingPush
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, rekeyLock); err != nil {
			return dbErr(op, err)
		}
		if _, err := storageIDTx(ctx, tx, storage); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT p.volume_name, p.queued_at, p.reason, m.id, coalesce(m.encrypted, false), m.key_scheme, m.kek_id, m.key_string, m.key_fingerprint
			FROM cache_pushes p JOIN storages s ON s.id = p.storage_id
			LEFT JOIN media m ON m.volume_name = p.volume_name AND m.storage_id = p.storage_id
			WHERE s.name = $1 ORDER BY p.volume_name`, storage)
		if err != nil {
			return dbErr(op, err)
		}
		idx := map[int64]int{} // media id → index in out
		var ids []int64
		type row struct {
			p  PendingPush
			id *int64
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var (
				x                      row
				encrypted              bool
				scheme, kek, value, fp *string
			)
			if err := r.Scan(&x.p.Volume, &x.p.QueuedAt, &x.p.Reason, &x.id, &encrypted, &scheme, &kek, &value, &fp); err != nil {
				return x, err
			}
			x.p.QueuedAt = x.p.QueuedAt.UTC()
			if encrypted {
				x.p.Current = &keys.StoredKey{Scheme: keys.Scheme(deref(scheme)), KEKID: deref(kek), Value: deref(value), Fingerprint: deref(fp)}
			}
			return x, nil
		})
		if err != nil {
			return dbErr(op, err)
		}
		for i, x := range got {
			out = append(out, x.p)
			if x.id != nil {
				idx[*x.id] = i
				ids = append(ids, *x.id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `
			SELECT media_id, key_scheme, kek_id, key_string, key_fingerprint FROM media_keys
			WHERE media_id = ANY($1) ORDER BY media_id, valid_to, id`, ids)
		if err != nil {
			return dbErr(op+": reading the keys' history", err)
		}
		var (
			mid    int64
			scheme string
			sk     keys.StoredKey
		)
		_, err = pgx.ForEachRow(rows, []any{&mid, &scheme, &sk.KEKID, &sk.Value, &sk.Fingerprint}, func() error {
			sk.Scheme = keys.Scheme(scheme)
			i := idx[mid]
			out[i].History = append(out[i].History, sk)
			return nil
		})
		return dbErr(op+": reading the keys' history", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompletePushes records that the keys of done were pushed into storage's
// crypto cache: in one transaction, each pending row is removed — unless
// it was queued again since it was read (a newer rekey: it stays
// pending) — and a "pushed" key event is added per volume that had keys.
// It returns how many rows were removed.
func (s *Store) CompletePushes(ctx context.Context, storage string, done []PendingPush, actor string) (int, error) {
	if actor == "" {
		actor = DefaultActor
	}
	op := "recording the crypto cache pushes to storage " + quoteName(storage)
	removed := 0
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		sid, err := storageIDTx(ctx, tx, storage)
		if err != nil {
			return err
		}
		now := s.nowUTC()
		for _, p := range done {
			tag, err := tx.Exec(ctx, `DELETE FROM cache_pushes WHERE storage_id = $1 AND volume_name = $2 AND queued_at = $3`,
				sid, p.Volume, p.QueuedAt)
			if err != nil {
				return dbErr(op, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			removed++
			if !p.HasKeys() {
				continue
			}
			fps := make([]string, 0, len(p.History))
			for _, h := range p.History {
				fps = append(fps, h.Fingerprint+" (KEK "+h.KEKID+")")
			}
			detail := "pushed into the crypto cache of storage " + storage + ":"
			kekID := ""
			if p.Current != nil {
				detail += fmt.Sprintf(" current key %s (KEK %s)", p.Current.Fingerprint, p.Current.KEKID)
				kekID = p.Current.KEKID
				if len(fps) > 0 {
					detail += " and"
				}
			} else {
				kekID = p.History[0].KEKID
			}
			if len(fps) > 0 {
				detail += fmt.Sprintf(" %d history keys: %s", len(fps), strings.Join(fps, ", "))
			}
			if p.Reason != "" {
				detail += "; " + p.Reason
			}
			var mediaID int64
			if err := tx.QueryRow(ctx, `SELECT id FROM media WHERE volume_name = $1`, p.Volume).Scan(&mediaID); err != nil {
				return dbErr(op, err)
			}
			if _, _, err := insertEvent(ctx, tx, KeyEvent{At: now, Volume: p.Volume, Event: EventPushed, Actor: actor, KEKID: kekID, Detail: detail}, mediaID); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}

// KEKUse is what the catalog holds under one KEK id.
type KEKUse struct {
	KEKID   string
	Current int // volumes' current keys wrapped under it
	History int // history keys (media_keys) wrapped under it
	// Sole lists the keys whose only wrapping in the catalog is under this
	// KEK: retiring the KEK loses them.
	Sole []SoleKey
}

// SoleKey is a key the catalog holds wrapped under one KEK only.
type SoleKey struct {
	Volume      string
	Fingerprint string
	History     bool // a key from the volume's history, not its current key
}

// KEKUsage returns, per KEK id (sorted), what the catalog holds wrapped
// under it: current keys, history keys, and the keys (a volume's
// fingerprint) whose every wrapping is under that KEK.
func (s *Store) KEKUsage(ctx context.Context) ([]KEKUse, error) {
	op := "counting the catalog's keys by KEK"
	const all = `
		WITH k AS (
			SELECT id AS media_id, volume_name, key_fingerprint AS fp, kek_id, false AS hist FROM media WHERE encrypted
			UNION ALL
			SELECT media_id, volume_name, key_fingerprint, kek_id, true FROM media_keys)`
	rows, err := s.pool.Query(ctx, all+`
		SELECT kek_id, count(*) FILTER (WHERE NOT hist), count(*) FILTER (WHERE hist) FROM k GROUP BY kek_id ORDER BY kek_id`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	var (
		out   []KEKUse
		u     KEKUse
		index = map[string]int{}
	)
	_, err = pgx.ForEachRow(rows, []any{&u.KEKID, &u.Current, &u.History}, func() error {
		index[u.KEKID] = len(out)
		out = append(out, KEKUse{KEKID: u.KEKID, Current: u.Current, History: u.History})
		return nil
	})
	if err != nil {
		return nil, dbErr(op, err)
	}
	rows, err = s.pool.Query(ctx, all+`
		SELECT min(kek_id), min(volume_name), fp, bool_and(hist) FROM k
		GROUP BY media_id, fp HAVING count(DISTINCT kek_id) = 1 ORDER BY min(volume_name), fp`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	var (
		kek string
		sk  SoleKey
	)
	_, err = pgx.ForEachRow(rows, []any{&kek, &sk.Volume, &sk.Fingerprint, &sk.History}, func() error {
		if i, ok := index[kek]; ok {
			out[i].Sole = append(out[i].Sole, sk)
		}
		return nil
	})
	if err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}
