package catalog

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// BeginRelabel puts a volume that holds no data back into status Labeling,
// so that storaged can (re)write its label with the key the catalog now
// holds: after a label that failed (Error), or after its encryption
// changed (update volume … encrypt=). Only Error and Append volumes with
// nothing written qualify (*StateError, *HasDataError otherwise); the key
// is untouched.
func (s *Store) BeginRelabel(ctx context.Context, volume string) error {
	op := "relabelling volume " + quoteName(volume)
	return s.inTx(ctx, op, func(tx pgx.Tx) error {
		_, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		if st != StatusError && st != StatusAppend {
			return &StateError{Volume: volume, Op: "relabel", Status: st, Want: []Status{StatusError, StatusAppend}}
		}
		var bytes, blocks int64
		if err := tx.QueryRow(ctx, `SELECT bytes_written, blocks_written FROM media WHERE volume_name = $1`, volume).Scan(&bytes, &blocks); err != nil {
			return dbErr(op, err)
		}
		if bytes != 0 || blocks != 0 {
			return &HasDataError{Volume: volume, Op: "relabel", Bytes: bytes, Blocks: blocks}
		}
		if _, err := tx.Exec(ctx, `UPDATE media SET status = 'Labeling', error_reason = NULL, updated_at = $2 WHERE volume_name = $1`,
			volume, s.nowUTC()); err != nil {
			return dbErr(op, err)
		}
		return nil
	})
}
