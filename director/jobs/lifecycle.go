package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// The volume life cycle as jobs see it (jobs.md §4): auto-prune of a
// pool's expired volumes when a job finds nothing else, and recycling a
// purged volume with a fresh key inside the job's own storage session.

// HoldVolume keeps this runner's jobs from taking volume until release is
// called (prune and purge hold it while they change it). ok is false when
// a job of this runner uses it now; the caller then refuses.
func (r *Runner) HoldVolume(volume string) (release func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.volumes[volume] {
		return nil, false
	}
	r.volumes[volume] = true
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.volumes, volume)
		r.broadcast()
	}, true
}

// RecyclePool is where a volume of pool goes when it is purged: its
// recycle_pool in director.toml ("" : it stays).
func RecyclePool(r *Runner, pool string) string {
	if p, ok := r.o.Config.PoolNamed(pool); ok {
		return p.RecyclePool
	}
	return ""
}

// autoPrune prunes the expired volumes of c's pool that no job of this
// runner uses (called with r.mu held) and returns how many it pruned.
// Each is logged in j's log; a failure is logged and skipped.
func (r *Runner) autoPrune(ctx context.Context, j *job, c *candidates) int {
	n := 0
	rp := RecyclePool(r, c.pool)
	for _, m := range c.expired {
		if r.volumes[m.Volume] {
			continue
		}
		res, err := r.o.Catalog.PurgeVolume(ctx, catalog.PurgeRequest{Volume: m.Volume, Prune: true, Actor: "director",
			Reason: fmt.Sprintf("auto-prune of pool %s for job %d (retention ended)", c.pool, j.id), RecyclePool: rp})
		if err != nil {
			r.logf(j, catalog.LogWarning, "Auto-prune of volume %s failed: %v", m.Volume, err)
			continue
		}
		if !res.Changed {
			continue
		}
		n++
		moved := ""
		if res.MovedTo != "" {
			moved = "; moved to recycle pool " + res.MovedTo
		}
		r.logf(j, catalog.LogInfo, "Auto-prune: volume %s of pool %s pruned (retention ended %s): %d jobs and %d file records removed, status Purged%s",
			m.Volume, c.pool, res.RetentionEnd.Format("2006-01-02 15:04:05Z"), len(res.Jobs), res.Files, moved)
	}
	return n
}

// recycle gives the purged volume m a new key (BeginRecycle: the old key
// moves to its key history, the new one is committed before storaged
// touches the tape) and fills jv so that storaged rewrites its label in
// the job's own drive before any data. Called with r.mu held.
func (r *Runner) recycle(ctx context.Context, j *job, s *session, c *candidates, m *catalog.Media, jv *pb.JobVolume) error {
	if c.encrypt && r.o.Keyring == nil {
		return fail("volume", "volume %s would be recycled with a new key, but the director has no keyring", m.Volume)
	}
	if m.Pool != s.pool {
		why := fmt.Sprintf("purged volume of pool %s recycled into pool %s by job %d", m.Pool, s.pool, j.id)
		if err := r.o.Catalog.MoveVolumeToPool(ctx, m.Volume, s.pool, "director", why); err != nil {
			return fail("catalog", "%v", err)
		}
	}
	nm, err := r.o.Catalog.BeginRecycle(ctx, catalog.RecycleRequest{Volume: m.Volume, Encrypt: c.encrypt, Ring: r.o.Keyring,
		Actor: "director", Reason: fmt.Sprintf("recycled for job %d", j.id)})
	if err != nil {
		return fail("catalog", "recycling volume %s: %v", m.Volume, err)
	}
	s.recycled = append(s.recycled, m.Volume)
	key := "clear (the pool does not encrypt)"
	if nm.Encrypted {
		key = "new key " + nm.KeyFingerprint
		if m.Encrypted {
			key += " (old key " + m.KeyFingerprint + " kept in its key history)"
		}
	}
	from := ""
	if m.Pool != s.pool {
		from = " from pool " + m.Pool
	}
	r.logf(j, catalog.LogInfo, "Recycling volume %s%s (purged, last written %s): %s; storage %s rewrites its label before any data",
		m.Volume, from, dateOf(m), key, s.storage)
	jv.Recycle = true
	jv.TapeFile, jv.KnownTapeFiles = 1, 1
	if nm.Encrypted {
		jv.TapeFile, jv.KnownTapeFiles = 2, 2
	}
	return nil
}

func dateOf(m *catalog.Media) string {
	if m.LastWritten == nil {
		return "never"
	}
	return m.LastWritten.Format("2006-01-02")
}

// endRecycling puts the volumes j recycled whose new label storaged did
// not report written (still Labeling) in status Error, their new key kept:
// relabelling them (or the next recycling) takes it from there.
func (r *Runner) endRecycling(ctx context.Context, j *job, s *session) {
	if len(s.recycled) == 0 {
		return
	}
	vols := slices.Clone(s.recycled)
	if s.retryRecycle != nil && !slices.Contains(vols, s.retryRecycle.Volume) {
		vols = append(vols, s.retryRecycle.Volume)
	}
	got, err := r.o.Catalog.InterruptLabeling(ctx, "director", vols...)
	if err != nil {
		r.log.Warn("ending unfinished recycled labels failed", "jobid", j.id, "volumes", strings.Join(vols, ","), "error", err.Error())
		return
	}
	for _, v := range got {
		r.logf(j, catalog.LogWarning, "Volume %s: its recycled label was not written; status Error, its new key kept (label it again to retry)", v)
	}
}

// VolumesChanged tells waiting jobs that volumes may have become
// available (a label, import, status update, prune or purge): a job
// waiting for a volume tries again now.
func (r *Runner) VolumesChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.volChanged)
	r.volChanged = make(chan struct{})
}

// volumeRetry is how often a job waiting for a volume tries again without
// being told that volumes changed.
const volumeRetry = time.Minute

// waitVolume decides what a job does when pickVolume failed with err: with
// no volume to be had (a *NoVolumeError) and the job's max_volume_wait not
// yet over (since *since, set at the first wait), it gives its drive
// back, waits (status m, saying why and until when) for volumes to change
// or a minute, and returns true (try again). Otherwise false: the job
// fails with err (after a wait, saying how long it waited).
func (r *Runner) waitVolume(j *job, s *session, err error, since *time.Time) bool {
	var nv *NoVolumeError
	if j.cfg.MaxVolumeWait <= 0 || !errors.As(err, &nv) {
		return false
	}
	now := r.o.Clock()
	if since.IsZero() {
		*since = now
	}
	until := since.Add(j.cfg.MaxVolumeWait)
	left := until.Sub(now)
	if left <= 0 {
		r.logf(j, catalog.LogError, "No volume within max_volume_wait %s (waited since %s)", j.cfg.MaxVolumeWait, since.UTC().Format("2006-01-02 15:04:05Z"))
		return false
	}
	r.mu.Lock()
	ch := r.volChanged
	r.mu.Unlock()
	r.release(j, s)
	r.setWaiting(j, catalog.JobWaitMedia, fmt.Sprintf("waiting for a volume until %s (max_volume_wait %s): %s",
		until.UTC().Format("2006-01-02 15:04:05Z"), j.cfg.MaxVolumeWait, nv.Error()))
	select {
	case <-ch:
	case <-r.o.After(min(volumeRetry, left)):
	case <-j.ctx.Done():
		return false
	}
	return true
}
