package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
)

// setLimits gives pool Local limits and copies them into its volumes (as
// `update pool=Local` does).
func (w *world) setLimits(spec catalog.PoolSpec, l catalog.PoolLimits) {
	w.t.Helper()
	spec.Name, spec.Storage = "Local", "sd1"
	if _, err := w.store.SyncPool(w.ctx, spec, l); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.ApplyPoolLimits(w.ctx, "Local"); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) status(volume string) catalog.Status {
	w.t.Helper()
	m, err := w.store.GetMedia(w.ctx, volume)
	if err != nil {
		w.t.Fatal(err)
	}
	return m.Status
}

// A pool with max_volume_bytes: the job that fills V1 past it marks it
// Full at its end, and the next job writes to V2.
func TestMaxVolumeBytesRollsToTheNextVolume(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.setLimits(catalog.PoolSpec{MaxVolumeBytes: 1}, catalog.PoolLimits{Recycle: true})
	j1 := w.run("web1-home", "Full")
	if j1.Status != catalog.JobOK || dedupe(j1.Volumes)[0] != "V1" {
		t.Fatalf("first job: %+v\n%s", j1, w.joblog(j1.ID))
	}
	if st := w.status("V1"); st != catalog.StatusFull {
		t.Fatalf("V1 after the first job: %s\n%s", st, w.joblog(j1.ID))
	}
	if !strings.Contains(w.joblog(j1.ID), "Volume V1 is now Full: max_volume_bytes reached") {
		t.Errorf("job log lacks the change:\n%s", w.joblog(j1.ID))
	}
	j2 := w.run("web2-home", "Full")
	if j2.Status != catalog.JobOK || !slicesEqual(dedupe(j2.Volumes), []string{"V2"}) {
		t.Fatalf("second job: %+v\n%s", j2, w.joblog(j2.ID))
	}
	evs, err := w.store.ListVolumeEvents(w.ctx, "V1")
	if err != nil || len(evs) != 1 || evs[0].Actor != "director" || evs[0].New != catalog.StatusFull {
		t.Fatalf("V1 events: %+v, %v", evs, err)
	}
}

// max_volume_jobs = 1: one job per volume, the volume becomes Used.
func TestMaxVolumeJobsMarksUsed(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.setLimits(catalog.PoolSpec{}, catalog.PoolLimits{MaxVolumeJobs: 1})
	j1 := w.run("web1-home", "Full")
	if j1.Status != catalog.JobOK || w.status("V1") != catalog.StatusUsed {
		t.Fatalf("first job %s, V1 %s\n%s", j1.Status, w.status("V1"), w.joblog(j1.ID))
	}
	j2 := w.run("web1-home", "Full")
	if j2.Status != catalog.JobOK || !slicesEqual(dedupe(j2.Volumes), []string{"V2"}) || w.status("V2") != catalog.StatusUsed {
		t.Fatalf("second job: %+v, V2 %s", j2, w.status("V2"))
	}
	// Nothing left: the error names every volume and why.
	j3 := w.run("web1-home", "Full")
	if j3.Status != catalog.JobError || !strings.Contains(j3.Error, "V1 (Used)") || !strings.Contains(j3.Error, "V2 (Used)") {
		t.Fatalf("third job: %s %q", j3.Status, j3.Error)
	}
}

// volume_use_duration is checked when selecting: V1, first written more
// than the duration ago, is skipped (and becomes Used); the preview
// (WouldWrite) skips it too without changing it.
func TestVolumeUseDurationCheckedAtSelection(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.setLimits(catalog.PoolSpec{}, catalog.PoolLimits{VolumeUseDuration: time.Hour})
	if err := w.store.RecordWritten(w.ctx, "V1", 100, 1); err != nil { // first written at t0
		t.Fatal(err)
	}
	w.clock.Advance(2 * time.Hour)
	v, _, err := w.r.Planner().WouldWrite(w.ctx, "Local", "sd1")
	if err != nil || v != "V2" || w.status("V1") != catalog.StatusAppend {
		t.Fatalf("preview: %q, %v; V1 %s (the preview changes nothing)", v, err, w.status("V1"))
	}
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobOK || !slicesEqual(dedupe(j.Volumes), []string{"V2"}) {
		t.Fatalf("job: %+v\n%s", j, w.joblog(j.ID))
	}
	if st := w.status("V1"); st != catalog.StatusUsed {
		t.Fatalf("V1 after selection: %s", st)
	}
	if !strings.Contains(w.joblog(j.ID), "Volume V1 is now Used: volume_use_duration 1h0m0s passed") {
		t.Errorf("job log:\n%s", w.joblog(j.ID))
	}
}

// Read-Only, Disabled, Archive and Error volumes are never selected; the
// error says which were skipped and why.
func TestSelectionSkipsStatuses(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2", "V3", "V4")
	for v, st := range map[string]catalog.Status{"V1": catalog.StatusReadOnly, "V2": catalog.StatusDisabled, "V3": catalog.StatusArchive, "V4": catalog.StatusError} {
		if _, _, err := w.store.SetVolumeStatus(w.ctx, v, st, "test", "bad tape"); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := w.r.Planner().WouldWrite(w.ctx, "Local", "sd1")
	for _, want := range []string{"V1 (Read-Only)", "V2 (Disabled)", "V3 (Archive)", "V4 (Error: bad tape)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("preview error %v lacks %q", err, want)
		}
	}
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "V1 (Read-Only)") {
		t.Fatalf("job: %s %q", j.Status, j.Error)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
