package catalog

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// KeyMatch is what a fingerprint a storage reports is to a volume.
type KeyMatch int

// The answers of MatchFingerprint.
const (
	KeyUnknown KeyMatch = iota // neither the current key nor one of its history
	KeyCurrent                 // the volume's current key
	KeyHistory                 // a key the volume had before (media_keys)
)

// MatchFingerprint says whether fp is volume's current key or a key of
// its history. An unknown volume is a *NotFoundError.
func (s *Store) MatchFingerprint(ctx context.Context, volume, fp string) (KeyMatch, error) {
	op := "checking a key fingerprint of volume " + quoteName(volume)
	var current, history bool
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(m.key_fingerprint = $2, false),
		       EXISTS (SELECT 1 FROM media_keys k WHERE k.media_id = m.id AND k.key_fingerprint = $2)
		FROM media m WHERE m.volume_name = $1`, volume, fp).Scan(&current, &history)
	switch {
	case err == pgx.ErrNoRows:
		return KeyUnknown, notFound("volume", volume)
	case err != nil:
		return KeyUnknown, dbErr(op, err)
	case current:
		return KeyCurrent, nil
	case history:
		return KeyHistory, nil
	}
	return KeyUnknown, nil
}

// StoredKeyOf is one stored key of a volume: its current key or one of
// its history. Its String and Format never print the stored string.
type StoredKeyOf struct {
	Volume  string
	History bool // a key the volume had before (media_keys)
	Key     keys.StoredKey
}

// AllStoredKeys returns every stored key, current and history, ordered by
// volume (current first), for checks that must try each one (rekey's dry
// run unwraps them all).
func (s *Store) AllStoredKeys(ctx context.Context) ([]StoredKeyOf, error) {
	op := "reading every stored key"
	rows, err := s.pool.Query(ctx, `
		SELECT volume_name, false, key_scheme, kek_id, key_string, key_fingerprint, 0 FROM media WHERE encrypted AND key_string IS NOT NULL
		UNION ALL
		SELECT volume_name, true, key_scheme, kek_id, key_string, key_fingerprint, id FROM media_keys
		ORDER BY 1, 2, 7`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredKeyOf, error) {
		var (
			k      StoredKeyOf
			scheme string
			id     int64
		)
		err := r.Scan(&k.Volume, &k.History, &scheme, &k.Key.KEKID, &k.Key.Value, &k.Key.Fingerprint, &id)
		k.Key.Scheme = keys.Scheme(scheme)
		return k, err
	})
	if err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}
