package jobs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func (w *world) sql(q string, args ...any) {
	w.t.Helper()
	if _, err := w.store.Pool().Exec(w.ctx, q, args...); err != nil {
		w.t.Fatal(err)
	}
}

// drainOpens returns the opens the fake storage saw so far.
func (w *world) drainOpens() []string {
	var out []string
	for {
		select {
		case o := <-w.sd.Opens:
			s := o.Volume.Volume
			if o.Volume.Recycle {
				s += " recycle"
			}
			out = append(out, s)
		default:
			return out
		}
	}
}

// A volume past its retention: the preview says it would be recycled
// after auto-prune and changes nothing; the job prunes it (the earlier
// job's records go), recycles it (JobVolume.recycle, tape file 1 of this
// clear volume) and writes there; the fake storage never reports the new
// label, so the volume ends in Error with its reason.
func TestAutoPruneThenRecycle(t *testing.T) {
	w := newWorld(t, 1, "V1")
	first := w.run("web1-home", "Full")
	if first.Status != catalog.JobOK {
		t.Fatalf("first job: %+v", first)
	}
	w.drainOpens()
	w.sql(`UPDATE media SET status = 'Full', volume_retention = '1 day' WHERE volume_name = 'V1'`)

	// Before the retention ends: no volume, and the preview says why.
	_, _, err := w.r.Planner().WouldWrite(w.ctx, "Local", "sd1")
	var nv *NoVolumeError
	if !errors.As(err, &nv) || !strings.Contains(err.Error(), "V1 (Full)") {
		t.Fatalf("preview before the retention ended: %v", err)
	}
	w.clock.Advance(2 * 24 * time.Hour)
	pl, err := w.r.Planner().WouldTake(w.ctx, "Local", "sd1")
	if err != nil || pl.Volume != "V1" || !strings.Contains(pl.How, "recycled after auto-prune") {
		t.Fatalf("preview: %+v, %v", pl, err)
	}
	if st := w.status("V1"); st != catalog.StatusFull {
		t.Fatalf("the preview changed V1 to %s", st)
	}
	j := w.run("web1-home", "Full")
	if opens := w.drainOpens(); len(opens) != 1 || opens[0] != "V1 recycle" {
		t.Fatalf("opens: %v", opens)
	}
	log := w.joblog(j.ID)
	for _, want := range []string{"Auto-prune: volume V1 of pool Local pruned", "1 jobs and 3 file records removed", "Recycling volume V1 (purged",
		"clear (the pool does not encrypt)", "its recycled label was not written; status Error"} {
		if !strings.Contains(log, want) {
			t.Errorf("job log lacks %q:\n%s", want, log)
		}
	}
	if got := w.files(first.ID); len(got) != 0 {
		t.Errorf("the pruned job keeps files %v", got)
	}
	m, _ := w.store.GetMedia(w.ctx, "V1")
	if m.Status != catalog.StatusError || m.RecycleCount != 1 {
		t.Errorf("V1 after a recycling whose label storage never reported: %s (%s), recycled %d", m.Status, m.ErrorReason, m.RecycleCount)
	}
	evs, _ := w.store.ListVolumeEvents(w.ctx, "V1")
	var trail []string
	for _, e := range evs {
		trail = append(trail, string(e.New)+"/"+e.Actor)
	}
	if got := strings.Join(trail, " "); !strings.HasPrefix(got, "Purged/director Labeling/director") {
		t.Errorf("volume events: %s", got)
	}
}

// A pool with a scratch pool takes a never-written scratch volume when it
// has no Append volume of its own, moving it in (audited); the preview
// says so.
func TestScratchPool(t *testing.T) {
	w := newWorld(t, 1, "V1", "S1", "S2")
	if _, err := w.store.EnsurePool(w.ctx, catalog.PoolSpec{Name: "Scratch", Type: catalog.PoolScratch, Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"S1", "S2"} {
		if err := w.store.MoveVolumeToPool(w.ctx, v, "Scratch", "test", "setup"); err != nil {
			t.Fatal(err)
		}
	}
	// S1 was written once: not a scratch volume any more.
	if err := w.store.RecordWritten(w.ctx, "S1", 100, 1); err != nil {
		t.Fatal(err)
	}
	w.cfg.Pools[0].ScratchPool = "Scratch"
	if _, _, err := w.store.SetVolumeStatus(w.ctx, "V1", catalog.StatusFull, "test", ""); err != nil {
		t.Fatal(err)
	}
	pl, err := w.r.Planner().WouldTake(w.ctx, "Local", "sd1")
	if err != nil || pl.Volume != "S2" || pl.How != "from scratch pool Scratch" {
		t.Fatalf("preview: %+v, %v", pl, err)
	}
	if m, _ := w.store.GetMedia(w.ctx, "S2"); m.Pool != "Scratch" {
		t.Fatalf("the preview moved S2 to %s", m.Pool)
	}
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobOK || !slicesEqual(dedupe(j.Volumes), []string{"S2"}) {
		t.Fatalf("job: %+v\n%s", j, w.joblog(j.ID))
	}
	if m, _ := w.store.GetMedia(w.ctx, "S2"); m.Pool != "Local" {
		t.Errorf("S2 is in pool %s after the job", m.Pool)
	}
	evs, _ := w.store.ListVolumeEvents(w.ctx, "S2")
	if last := evs[len(evs)-1]; last.Actor != "director" || !strings.Contains(last.Reason, "moved from pool Scratch to pool Local (scratch pool of pool Local, taken by job") {
		t.Errorf("audit: %+v", last)
	}
	if !strings.Contains(w.joblog(j.ID), "Volume S2 moved from scratch pool Scratch into pool Local") {
		t.Errorf("job log:\n%s", w.joblog(j.ID))
	}
}

// Offsite volumes are skipped saying so, purged volumes of a recycle =
// false pool are never reused, and the preview's *no volume* names the
// fixes.
func TestNoVolumeSaysWhy(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	if err := w.store.MarkOffsite(w.ctx, "V1", t0, "console:admin", "exported to I/E slot 1"); err != nil {
		t.Fatal(err)
	}
	w.sql(`UPDATE media SET status = 'Purged' WHERE volume_name = 'V2'`)
	no := false
	w.cfg.Pools[0].Recycle = &no
	_, _, err := w.r.Planner().WouldWrite(w.ctx, "Local", "sd1")
	var nv *NoVolumeError
	if !errors.As(err, &nv) {
		t.Fatalf("preview: %v", err)
	}
	short := nv.Short()
	for _, want := range []string{"pool Local has no appendable volume", "V1 (offsite since 2026-12-01, not in the library)",
		"recycle = false", "V2 (Purged)", "label one (label storage=sd1 pool=Local", "add scratch volumes"} {
		if !strings.Contains(short, want) {
			t.Errorf("%q lacks %q", short, want)
		}
	}
	// With recycling allowed, V2 is recycled.
	w.cfg.Pools[0].Recycle = nil
	pl, err := w.r.Planner().WouldTake(w.ctx, "Local", "sd1")
	if err != nil || pl.Volume != "V2" || !strings.HasPrefix(pl.How, "recycled: purged") {
		t.Fatalf("preview with recycling: %+v, %v", pl, err)
	}
}

// With max_volume_wait a job that finds no volume waits (status m, saying
// why and until when) instead of failing; a volume made available (and
// VolumesChanged) lets it run; once the wait is over it fails with the
// fix.
func TestJobWaitsForAVolume(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.cfg.Jobs[0].MaxVolumeWait = time.Hour
	if _, _, err := w.store.SetVolumeStatus(w.ctx, "V1", catalog.StatusUsed, "test", ""); err != nil {
		t.Fatal(err)
	}
	waiting := func(id int64) {
		t.Helper()
		testenv.WaitFor(t, "the job to wait for a volume", func() bool {
			s, ok := w.r.StatusOf(id)
			return ok && strings.Contains(s.Why, "waiting for a volume until 2026-12-01 22:00:00Z (max_volume_wait 1h0m0s): no appendable clear volume of pool Local")
		})
		testenv.WaitFor(t, "status m in the catalog", func() bool {
			j, _ := w.store.GetJob(w.ctx, id)
			return j.Status == catalog.JobWaitMedia
		})
	}
	id := w.start("web1-home", "Full")
	waiting(id)
	if _, _, err := w.store.SetVolumeStatus(w.ctx, "V1", catalog.StatusAppend, "test", ""); err != nil {
		t.Fatal(err)
	}
	w.r.VolumesChanged()
	if j := w.wait(id); j.Status != catalog.JobOK || !slicesEqual(dedupe(j.Volumes), []string{"V1"}) {
		t.Fatalf("job after the volume came: %+v\n%s", j, w.joblog(id))
	}
	if !strings.Contains(w.joblog(id), "waiting for a volume until") {
		t.Errorf("job log:\n%s", w.joblog(id))
	}

	// No volume comes: after max_volume_wait the job fails with the fix.
	if _, _, err := w.store.SetVolumeStatus(w.ctx, "V1", catalog.StatusUsed, "test", ""); err != nil {
		t.Fatal(err)
	}
	id = w.start("web1-home", "Full")
	testenv.WaitFor(t, "the second job to wait", func() bool {
		j, _ := w.store.GetJob(w.ctx, id)
		return j.Status == catalog.JobWaitMedia
	})
	w.clock.Advance(2 * time.Hour)
	w.after <- w.clock.Now()
	j := w.wait(id)
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "no appendable clear volume of pool Local") || !strings.Contains(j.Error, "label one with") {
		t.Fatalf("job after max_volume_wait: %s %q", j.Status, j.Error)
	}
	if !strings.Contains(w.joblog(id), "No volume within max_volume_wait 1h0m0s") {
		t.Errorf("job log:\n%s", w.joblog(id))
	}
}
