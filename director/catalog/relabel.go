package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// BeginRelabel puts a volume that holds no data back into status Labeling,
// so that storaged can (re)write its label with the key the catalog now
// holds: after a label that failed (Error), or after its encryption
// changed (update volume … encrypt=). Only Error and Append volumes with
// nothing written (and no data_since) qualify (*StateError, *HasDataError otherwise); the key
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
		var (
			bytes, blocks int64
			since         *time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT bytes_written, blocks_written, data_since FROM media WHERE volume_name = $1`, volume).Scan(&bytes, &blocks, &since); err != nil {
			return dbErr(op, err)
		}
		if bytes != 0 || blocks != 0 || since != nil {
			return &HasDataError{Volume: volume, Op: "relabel", Bytes: bytes, Blocks: blocks, DataSince: since}
		}
		if _, err := tx.Exec(ctx, `UPDATE media SET status = 'Labeling', error_reason = NULL, updated_at = $2 WHERE volume_name = $1`,
			volume, s.nowUTC()); err != nil {
			return dbErr(op, err)
		}
		return nil
	})
}
