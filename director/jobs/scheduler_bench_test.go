package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
)

// benchConfig: n jobs, each with its own schedule of three Run lines
// (the worst case: no schedule is shared).
func benchConfig(b *testing.B, n int) *configs.Director {
	loc := berlin(b)
	cfg := &configs.Director{Name: "director"}
	for i := range n {
		name := fmt.Sprintf("s%04d", i)
		cfg.Schedules = append(cfg.Schedules, testSchedule(b, name, loc, "Full Pool=Monthly 1st sat at 21:00",
			fmt.Sprintf("Differential 2nd-5th sat at 21:%02d", i%60), fmt.Sprintf("Incremental mon-fri at %d:%02d", 18+i%6, i%60)))
		cfg.Jobs = append(cfg.Jobs, configs.Job{Name: fmt.Sprintf("job%04d", i), Client: "c", Level: configs.LevelIncremental, Pool: "Local",
			Storage: "sd1", Schedule: name, Enabled: true, Priority: 10, CatchUp: 12 * time.Hour})
	}
	return cfg
}

// Preview of 7 days for 1,000 jobs with 3 Run lines each (status
// scheduler days=7 without filters).
func BenchmarkPreview7Days1000Jobs(b *testing.B) {
	cfg := benchConfig(b, 1000)
	from := time.Date(2026, 8, 1, 0, 0, 0, 0, berlin(b))
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = len(Preview(cfg, from, from.AddDate(0, 0, 7), PreviewFilter{}))
	}
	b.ReportMetric(float64(n), "runs")
}

// The scheduler's own cost per fired job: 1,000 jobs fire at 21:00 and
// the tick that fires them runs (the runner's Run replaced by a recorder;
// no state kept).
func BenchmarkSchedulerPerFiredJob(b *testing.B) {
	cfg := benchConfig(b, 1000)
	for i := range cfg.Jobs {
		cfg.Schedules[i] = testSchedule(b, cfg.Schedules[i].Name, cfg.Schedules[i].Location, "Incremental mon-fri at 21:00")
	}
	loc := berlin(b)
	before, at := time.Date(2026, 8, 3, 20, 59, 0, 0, loc), time.Date(2026, 8, 3, 21, 0, 0, 0, loc)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fired := 0
	b.ResetTimer()
	for b.Loop() {
		rec := &recorder{}
		s := &Scheduler{cfg: cfg, director: "director", log: log, start: rec.start}
		s.tick = before
		s.fireDue(context.Background(), at, "bench")
		fired += len(rec.reqs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(fired), "ns/fired-job")
}
