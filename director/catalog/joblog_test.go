package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestJobLogListJobsAndJobMedia(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	a, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	f.part(t, a, "V00001")
	if err := f.s.CompletePart(ctx, a, 1, 9, 40960); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ level, line string }{{"", "Start Backup JobId 1"}, {LogWarning, "/x: changed while read"}, {LogError, "boom"}} {
		if err := f.s.AppendJobLog(ctx, a, l.level, l.line); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
	}
	if err := f.s.AppendJobLog(ctx, a, "debug", "x"); !errors.As(err, new(*InvalidError)) {
		t.Errorf("level debug: %v", err)
	}
	if err := f.s.AppendJobLog(ctx, 999, "", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
	log, err := f.s.JobLog(ctx, a)
	if err != nil || len(log) != 3 {
		t.Fatalf("JobLog = %v, %v", log, err)
	}
	if log[0].Seq != 1 || log[0].Level != LogInfo || log[1].Level != LogWarning || log[2].Line != "boom" || !log[1].At.After(log[0].At) {
		t.Errorf("JobLog = %+v", log)
	}
	f.end(t, a, JobOK)
	b, _ := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	f.end(t, b, JobError)
	c, _ := f.backup(t, "weekly", "db1", idHome, LevelFull, 0)

	ids := func(js []Job, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, j := range js {
			s = append(s, itoa(j.ID))
		}
		return strings.Join(s, ",")
	}
	all := itoa(c) + "," + itoa(b) + "," + itoa(a)
	for _, tc := range []struct {
		f    JobFilter
		want string
	}{
		{JobFilter{}, all},
		{JobFilter{Name: "nightly"}, itoa(b) + "," + itoa(a)},
		{JobFilter{Client: "db1"}, itoa(c)},
		{JobFilter{Status: JobError}, itoa(b)},
		{JobFilter{Last: true}, itoa(c) + "," + itoa(b)},
		{JobFilter{Limit: 1}, itoa(c)},
		{JobFilter{Since: f.clock.Now().Add(-30 * time.Minute)}, itoa(c)},
	} {
		if got := ids(f.s.ListJobs(ctx, tc.f)); got != tc.want {
			t.Errorf("ListJobs(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	jm, err := f.s.ListJobMedia(ctx, a)
	if err != nil || len(jm) != 1 || jm[0].Volume != "V00001" || jm[0].TapeFile != 2 || !jm[0].Complete || jm[0].LastBlock == nil || *jm[0].LastBlock != 9 || jm[0].Bytes != 40960 {
		t.Fatalf("ListJobMedia = %+v, %v", jm, err)
	}
	if _, err := f.s.ListJobMedia(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
}
