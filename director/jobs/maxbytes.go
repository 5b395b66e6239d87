package jobs

import (
	"context"

	"github.com/tapeward/tapeward/director/catalog"
)

// maxBytes is JobVolume.max_bytes for volume: its max_volume_bytes less
// what it holds already (0: no limit). A volume at or past its limit gets
// 1 byte — storaged ends the part at the first point it may, and asks for
// the next volume with "max_volume_bytes reached" — though selection does
// not hand out such a volume. If the catalog cannot say, no limit is set
// (the job-end check still marks the volume Full).
func (r *Runner) maxBytes(ctx context.Context, volume string) uint64 {
	us, err := r.o.Catalog.VolumeUsages(ctx, []string{volume})
	if err != nil {
		r.log.Warn("reading a volume's usage for its max_volume_bytes failed; the session writes to early warning", "volume", volume, "error", err.Error())
		return 0
	}
	u, ok := us[volume]
	if !ok {
		return 0
	}
	return bytesLeft(u)
}

// bytesLeft is what u's max_volume_bytes leaves to write (0: no limit;
// at least 1 once reached).
func bytesLeft(u catalog.VolumeUsage) uint64 {
	if u.Limits.MaxVolumeBytes <= 0 {
		return 0
	}
	if left := u.Limits.MaxVolumeBytes - u.Bytes; left > 0 {
		return uint64(left)
	}
	return 1
}
