package core

import (
	"context"

	"github.com/tapeward/tapeward/director/catalog"
)

// volumeFull marks a volume Full after its storage said so. With a detail
// (the volume reached its max_volume_bytes, not the tape's end) the change
// is recorded as a volume event: the catalog's own check names the limit
// (CheckVolumeLimits), else the storage's detail is the reason.
func (d *Director) volumeFull(ctx context.Context, storage, volume, detail string) error {
	if detail == "" {
		return d.store.MarkFull(ctx, volume)
	}
	st, why, err := d.store.CheckVolumeLimits(ctx, volume, storage, d.clock())
	if err != nil || st != catalog.StatusAppend {
		if why != "" {
			d.log.Info("volume reached its limit: Full", "volume", volume, "storage", storage, "why", why)
		}
		return err
	}
	_, _, err = d.store.SetVolumeStatus(ctx, volume, catalog.StatusFull, storage, detail)
	return err
}
