package core

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin wherever the tests run

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/jobs"
)

const scheduledTOML = `
[[schedule]]
name = "WeeklyCycle"
timezone = "Europe/Berlin"
run = ["Full Pool=Offsite 1st sat at 21:00", "Differential 2nd-5th sat at 21:00", "Incremental mon-fri at 21:00"]

[[schedule]]
name = "Daily"
timezone = "Europe/Berlin"
run = ["Level=Full at 23:00"]

[[pool]]
name = "Offsite"
storage = "sd1"

[[job]]
name = "web1-nightly"
client = "web1"
fileset = "home"
pool = "Local"
schedule = "WeeklyCycle"

[[job]]
name = "web1-daily"
client = "web1"
fileset = "home"
pool = "Local"
schedule = "Daily"

[[job]]
name = "web1-off"
client = "web1"
fileset = "home"
pool = "Local"
schedule = "Daily"
enabled = false
`

// flat joins a text's words with single blanks, line by line (tables are
// aligned with runs of blanks).
func flat(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(out, "\n")
}

// status scheduler lists every run of the window with its level and pool
// (the Run line's overrides applied) and the missed runs; status
// director shows the next 24 h with the volume each run would write to,
// or *no volume* and the fix.
func TestStatusSchedulerAndPreview(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 8, 1, 8, 0, 0, 0, loc) // Saturday 1 August, the first Saturday
	d, _, _, _ := jobDirectorWith(t, scheduledTOML, func() time.Time { return now })
	defer d.Close()
	ctx := context.Background()
	if err := d.store.RecordMissed(ctx, "director", []catalog.MissedRun{{Job: "web1-nightly", ScheduledAt: time.Date(2026, 7, 30, 21, 0, 0, 0, loc),
		Level: "Incremental", Pool: "Local", Reason: "the director was down; catch_up is 0: missed runs are skipped"}}); err != nil {
		t.Fatal(err)
	}

	text := flat(mustExec(t, d, "reader", "status scheduler days=2"))
	for _, want := range []string{
		"scheduled runs from 2026-08-01 08:00 CEST to 2026-08-03 08:00 CEST (2 days): 3",
		"TIME JOB CLIENT LEVEL POOL STORAGE PRIORITY SCHEDULE",
		"2026-08-01 21:00 CEST web1-nightly web1 Full Offsite sd1 10 WeeklyCycle line 1",
		"2026-08-01 23:00 CEST web1-daily web1 Full Local sd1 10 Daily line 1",
		"2026-08-02 23:00 CEST web1-daily web1 Full Local sd1 10 Daily line 1",
		"not scheduled (enabled = false): web1-off",
		"missed runs in the last 2 days: 1",
		"2026-07-30 21:00 CEST web1-nightly Incremental Local the director was down; catch_up is 0: missed runs are skipped",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status scheduler lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "web1-off web1") {
		t.Errorf("a disabled job is listed:\n%s", text)
	}
	text = flat(mustExec(t, d, "reader", "status scheduler days=4 job=web1-nightly"))
	for _, want := range []string{"(4 days): 3", "2026-08-03 21:00 CEST web1-nightly web1 Incremental Local sd1 10 WeeklyCycle line 3"} {
		if !strings.Contains(text, want) || strings.Contains(text, "web1-daily") {
			t.Errorf("status scheduler job=web1-nightly lacks %q:\n%s", want, text)
		}
	}
	if text := mustExec(t, d, "reader", "status scheduler schedule=Daily days=1"); !strings.Contains(text, "(1 days): 1") {
		t.Errorf("schedule=Daily:\n%s", text)
	}
	_, _, err = exec(t, d, "reader", "status scheduler job=nope")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `no [[job]] "nope"`) || !strings.Contains(err.Error(), "web1-nightly") {
		t.Errorf("unknown job: %v", err)
	}

	// status director: the Full into Offsite has no volume (none was
	// labelled into it); the Daily Full takes V1 of Local.
	text = flat(mustExec(t, d, "reader", "status director"))
	for _, want := range []string{
		"scheduled jobs in the next 24 h: 2",
		"2026-08-01 21:00 CEST web1-nightly Full Offsite sd1 *no volume*: pool Offsite has no appendable volume: label one (label storage=sd1 pool=Offsite slots=N barcodes encrypt), or add scratch volumes (a scratch_pool for pool Offsite in director.toml)",
		"2026-08-01 23:00 CEST web1-daily Full Local sd1 V1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status director lacks %q:\n%s", want, text)
		}
	}
	// The preview reserved nothing: a job takes V1.
	id, err := d.jobs.Run(ctx, jobsRequest("web1-daily"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.jobs.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if j, err := d.store.GetJob(ctx, id); err != nil || j.Status != catalog.JobOK || len(j.Volumes) == 0 || j.Volumes[0] != "V1" {
		t.Fatalf("job after the preview: %+v %v", j, err)
	}

	// prune waits for a retention V1 does not have; purge (an operator's)
	// says what it would do, then does it: the preview then recycles V1.
	_, _, err = exec(t, d, "ops", "prune volume=V1 yes")
	if err == nil || !strings.Contains(err.Error(), "no volume_retention") {
		t.Errorf("prune without retention: %v", err)
	}
	if _, _, err := exec(t, d, "reader", "purge volume=V1 yes"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("purge as reader: %v", err)
	}
	mustExec(t, d, "ops", "purge volume=V1", "would purge volume V1 (Append): 1 jobs ("+fmt.Sprint(id)+")", "add yes to do it")
	if m, _ := d.store.GetMedia(ctx, "V1"); m.Status != catalog.StatusAppend {
		t.Fatalf("purge without yes changed V1 to %s", m.Status)
	}
	mustExec(t, d, "ops", "purge volume=V1 yes", "volume V1 purged: 1 jobs", "status Append → Purged", "the tape and the keys are untouched")
	mustExec(t, d, "ops", "purge volume=V1 yes", "volume V1 is already Purged")
	evs, _ := d.store.ListVolumeEvents(ctx, "V1")
	if last := evs[len(evs)-1]; last.New != catalog.StatusPurged || last.Actor != "console:ops" {
		t.Errorf("purge audit: %+v", last)
	}
	text = flat(mustExec(t, d, "reader", "status director"))
	if !strings.Contains(text, "web1-daily Full Local sd1 V1 (recycled: purged 2026-08-01") || !strings.Contains(text, "relabelled with a new key)") {
		t.Errorf("status director after the purge:\n%s", text)
	}
}

func jobsRequest(job string) jobs.Request { return jobs.Request{Job: job, Actor: "test"} }
