package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// VaultVolume is a volume as the vault view sees it: where it is, whether
// it may leave the library, and for how long its data must be kept.
type VaultVolume struct {
	Volume       string
	Barcode      string // "" when none
	Pool         string
	Storage      string
	Status       Status
	Slot         int // NoSlot when none
	InChanger    bool
	OffsiteSince *time.Time
	Encrypted    bool
	PoolEncrypt  bool
	VerifiedAt   *time.Time
	LastWritten  *time.Time
	// Retention is the volume's retention (0: none set).
	Retention time.Duration
	// ActiveJobs are the created, running or waiting jobs that use it.
	ActiveJobs []int64
}

// VaultVolumes lists the volumes of pool ("" : every pool) for the vault
// view, by name.
func (s *Store) VaultVolumes(ctx context.Context, pool string) ([]VaultVolume, error) {
	active := make([]string, len(activeStates))
	for i, st := range activeStates {
		active[i] = string(st)
	}
	rows, err := s.pool.Query(ctx, `
SELECT m.volume_name, coalesce(m.barcode, ''), p.name, coalesce(st.name, ''), m.status, m.slot,
       m.in_changer, m.offsite_since, m.encrypted, p.encrypt, m.encryption_verified_at, m.last_written,
       coalesce(extract(epoch FROM m.volume_retention), 0)::float8,
       array(SELECT DISTINCT jm.job_id FROM job_media jm JOIN jobs j ON j.id = jm.job_id
             WHERE jm.media_id = m.id AND j.status = ANY($2) ORDER BY jm.job_id)
FROM media m JOIN pools p ON p.id = m.pool_id LEFT JOIN storages st ON st.id = m.storage_id
WHERE $1 = '' OR p.name = $1
ORDER BY m.volume_name`, pool, active)
	if err != nil {
		return nil, dbErr("listing volumes for the vault", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VaultVolume, error) {
		var (
			v      VaultVolume
			status string
			slot   *int
			secs   float64
		)
		err := row.Scan(&v.Volume, &v.Barcode, &v.Pool, &v.Storage, &status, &slot, &v.InChanger, &v.OffsiteSince,
			&v.Encrypted, &v.PoolEncrypt, &v.VerifiedAt, &v.LastWritten, &secs, &v.ActiveJobs)
		v.Status, v.Slot, v.Retention = Status(status), NoSlot, time.Duration(secs*float64(time.Second))
		if slot != nil {
			v.Slot = *slot
		}
		for _, tp := range []*time.Time{v.OffsiteSince, v.VerifiedAt, v.LastWritten} {
			if tp != nil {
				*tp = tp.UTC()
			}
		}
		return v, err
	})
	if err != nil {
		return nil, dbErr("listing volumes for the vault", err)
	}
	if pool != "" && len(out) == 0 {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pools WHERE name = $1`, pool).Scan(&n); err != nil {
			return nil, dbErr("reading pool "+quoteName(pool), err)
		}
		if n == 0 {
			return nil, notFound("pool", pool)
		}
	}
	return out, nil
}

// MarkOffsite records that volume's cartridge left the library at at
// (exported through an import/export slot): not in the changer, no slot.
// A volume event by actor (its status unchanged) says why, e.g.
// "exported to I/E slot 1" ("" : DefaultActor, "exported").
func (s *Store) MarkOffsite(ctx context.Context, volume string, at time.Time, actor, why string) error {
	return s.inTx(ctx, "marking volume "+quoteName(volume)+" offsite", func(tx pgx.Tx) error {
		id, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `UPDATE media SET in_changer = false, offsite_since = $2, slot = NULL, updated_at = now() WHERE id = $1`, id, at); err != nil {
			return err
		}
		return movedEvent(ctx, tx, id, volume, st, at, actor, why, "exported")
	})
}

// movedEvent records a cartridge's move (export, import) as a volume
// event that keeps its status.
func movedEvent(ctx context.Context, tx pgx.Tx, id int64, volume string, st Status, at time.Time, actor, why, def string) error {
	if actor == "" {
		actor = DefaultActor
	}
	if why == "" {
		why = def
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO volume_events (at, volume_name, media_id, actor, old_status, new_status, reason)
		VALUES ($1, $2, $3, $4, $5, $5, $6)`, at.UTC(), volume, id, actor, string(st), why)
	return dbErr("recording the move of volume "+quoteName(volume), err)
}

// MarkInChanger records that volume's cartridge is in the library again,
// in slot of storage, with a volume event by actor (its status unchanged)
// saying why, e.g. "imported into slot 3" ("" : "imported into slot N").
func (s *Store) MarkInChanger(ctx context.Context, volume, storage string, slot int, actor, why string) error {
	if slot < 1 {
		return invalid("slot", "slot %d: slots count from 1", slot)
	}
	return s.inTx(ctx, "marking volume "+quoteName(volume)+" in the library", func(tx pgx.Tx) error {
		id, st, _, err := lockMedia(ctx, tx, volume)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE media SET in_changer = true, offsite_since = NULL, slot = $2,
			storage_id = coalesce((SELECT id FROM storages WHERE name = $3), storage_id), updated_at = now() WHERE id = $1`, id, slot, storage)
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("volume %s: no row updated", quoteName(volume))
		}
		if err != nil {
			return err
		}
		return movedEvent(ctx, tx, id, volume, st, s.nowUTC(), actor, why, fmt.Sprintf("imported into slot %d", slot))
	})
}
