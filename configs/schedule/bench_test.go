package schedule

import (
	"fmt"
	"testing"
	"time"
)

// previewSchedules is the director's load: 1,000 jobs of 3 Run lines
// (the classic Full/Differential/Incremental rotation, a tenth of them
// hourly), with varied times.
func previewSchedules(b *testing.B) []*Schedule {
	scheds := make([]*Schedule, 1000)
	for i := range scheds {
		h, m := 18+i%6, i%60
		third := fmt.Sprintf("Level=Incremental mon-fri at %d:%02d", h, m)
		if i%10 == 0 {
			third = fmt.Sprintf("Level=Incremental hourly at 0:%02d", m)
		}
		s, _, err := ParseSchedule(fmt.Sprint("job", i), []string{
			fmt.Sprintf("Level=Full Pool=Full 1st sat at %d:%02d", h, m),
			fmt.Sprintf("Level=Differential Pool=Diff 2nd-5th sat at %d:%02d", h, m),
			third,
		})
		if err != nil {
			b.Fatal(err)
		}
		scheds[i] = s
	}
	return scheds
}

// BenchmarkPreview7Days1000Jobs: `status scheduler` for 7 days of 1,000
// jobs × 3 lines, in a DST zone.
func BenchmarkPreview7Days1000Jobs(b *testing.B) {
	scheds := previewSchedules(b)
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 3, 25, 12, 0, 0, 0, loc) // spans the spring-forward day
	to := from.AddDate(0, 0, 7)
	b.ReportAllocs()
	fires := 0
	for b.Loop() {
		fires = 0
		for _, s := range scheds {
			for range s.Between(from, to, loc) {
				fires++
			}
		}
	}
	b.ReportMetric(float64(fires), "fires/op")
}

// BenchmarkNext1000Jobs: the scheduler loop's question, once per job.
func BenchmarkNext1000Jobs(b *testing.B) {
	scheds := previewSchedules(b)
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	after := time.Date(2026, 3, 25, 12, 0, 0, 0, loc)
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range scheds {
			if _, ok := s.Next(after, loc); !ok {
				b.Fatal("no next fire")
			}
		}
	}
}
