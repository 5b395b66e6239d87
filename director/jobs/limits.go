package jobs

import (
	"context"

	"github.com/tapeward/tapeward/director/catalog"
)

// Automatic volume status changes (jobs.md §4): a volume that reached its
// max_volume_bytes becomes Full, one that reached max_volume_jobs or whose
// volume_use_duration has passed since its first write becomes Used. They
// are checked when a job ends (on the volumes it wrote) and when a job
// selects a volume (selectVolume skips them without side effects; the job
// then records the change). storaged is not told a byte limit, so a job
// that crosses max_volume_bytes finishes its part on that volume; the
// next job (or the next volume storaged asks for) goes elsewhere.

// checkLimits applies the limits of volumes j wrote to, logging each
// change in j's log.
func (r *Runner) checkLimits(ctx context.Context, j *job, volumes []string) {
	for _, v := range volumes {
		st, why, err := r.o.Catalog.CheckVolumeLimits(ctx, v, "director", r.o.Clock())
		if err != nil {
			r.log.Warn("checking a volume's limits failed", "volume", v, "error", err.Error())
			continue
		}
		if why != "" {
			r.logf(j, catalog.LogInfo, "Volume %s is now %s: %s", v, st, why)
		}
	}
}

// markOverLimit records the status change of the candidates selection
// skipped because they reached a limit (called with r.mu held; the
// catalog calls do not take it).
func (r *Runner) markOverLimit(ctx context.Context, j *job, c *candidates) {
	var over []string
	for i := range c.media {
		if to, _ := c.overLimit(&c.media[i]); to != "" && !r.volumes[c.media[i].Volume] {
			over = append(over, c.media[i].Volume)
		}
	}
	r.checkLimits(ctx, j, over)
}
