package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
)

// The scheduler's console views (issue 11): status scheduler, and the
// next 24 hours in status director.

// SchedulerStatus is status scheduler --json.
type SchedulerStatus struct {
	From    time.Time           `json:"from"`
	To      time.Time           `json:"to"`
	Runs    []jobs.Planned      `json:"runs"`
	Missed  []catalog.MissedRun `json:"missed"`
	Problem string              `json:"problem,omitempty"` // the missed runs could not be read
}

// schedulerFilter checks job=, client= and schedule= against the
// configuration: a name that is not configured is an error naming the
// configured ones.
func (d *Director) schedulerFilter(cmd console.Command) (jobs.PreviewFilter, error) {
	f := jobs.PreviewFilter{Job: cmd.Str("job"), Client: cmd.Str("client"), Schedule: cmd.Str("schedule")}
	check := func(kind, v string, known []string) error {
		if v == "" {
			return nil
		}
		for _, k := range known {
			if k == v {
				return nil
			}
		}
		if len(known) == 0 {
			known = []string{"none"}
		}
		return status.Errorf(codes.NotFound, "no [[%s]] %q in %s (configured: %s)", kind, v, d.cfg.Path, strings.Join(known, ", "))
	}
	var js, cs, ss []string
	for _, j := range d.cfg.Jobs {
		js = append(js, j.Name)
	}
	for _, c := range d.cfg.Clients {
		cs = append(cs, c.Name)
	}
	for _, s := range d.cfg.Schedules {
		ss = append(ss, s.Name)
	}
	return f, errors.Join(check("job", f.Job, js), check("client", f.Client, cs), check("schedule", f.Schedule, ss))
}

// statusScheduler lists every run of the next days= (default 7) and the
// runs missed in the last as many days.
func (d *Director) statusScheduler(ctx context.Context, cmd console.Command) (*Output, error) {
	f, err := d.schedulerFilter(cmd)
	if err != nil {
		return nil, err
	}
	days := 7
	if n, ok := cmd.Int("days"); ok {
		days = n
	}
	now := d.clock()
	s := SchedulerStatus{From: now, To: now.AddDate(0, 0, days)}
	s.Runs = jobs.Preview(d.cfg, s.From, s.To, f)
	missed, err := d.store.MissedRuns(ctx, d.cfg.Name, now.AddDate(0, 0, -days))
	if err != nil {
		s.Problem = "missed runs unknown: " + err.Error()
	}
	s.Missed = []catalog.MissedRun{}
	for _, m := range missed {
		if f.Job != "" && m.Job != f.Job {
			continue
		}
		if jc, ok := d.cfg.JobNamed(m.Job); ok && (f.Client != "" && jc.Client != f.Client || f.Schedule != "" && jc.Schedule != f.Schedule) {
			continue
		}
		s.Missed = append(s.Missed, m)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "scheduled runs from %s to %s (%d days): %d\n", now.Format("2006-01-02 15:04 MST"), s.To.Format("2006-01-02 15:04 MST"), days, len(s.Runs))
	if len(s.Runs) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tJOB\tCLIENT\tLEVEL\tPOOL\tSTORAGE\tPRIORITY\tSCHEDULE")
		for _, p := range s.Runs {
			at := jobs.LocalTime(d.cfg, p.Schedule, p.At)
			if p.Moved {
				at += " (moved: clocks sprang forward)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s line %d\n", at, p.Job, p.Client, p.Level, p.Pool, p.Storage, p.Priority, p.Schedule, p.Line)
		}
		tw.Flush()
	}
	var off []string
	for _, j := range d.cfg.Jobs {
		if !j.Enabled && j.Schedule != "" && (f.Job == "" || f.Job == j.Name) {
			off = append(off, j.Name)
		}
	}
	if len(off) > 0 {
		fmt.Fprintf(&b, "not scheduled (enabled = false): %s\n", strings.Join(off, ", "))
	}
	if s.Problem != "" {
		fmt.Fprintf(&b, "%s\n", s.Problem)
	} else {
		fmt.Fprintf(&b, "missed runs in the last %d days: %d\n", days, len(s.Missed))
		if len(s.Missed) > 0 {
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCHEDULED\tJOB\tLEVEL\tPOOL\tWHY")
			for _, m := range s.Missed {
				sched := ""
				if jc, ok := d.cfg.JobNamed(m.Job); ok {
					sched = jc.Schedule
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", jobs.LocalTime(d.cfg, sched, m.ScheduledAt), m.Job, m.Level, m.Pool, m.Reason)
			}
			tw.Flush()
		}
	}
	if s.Runs == nil {
		s.Runs = []jobs.Planned{}
	}
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: s, Partial: s.Problem != ""}, nil
}

// ScheduledRun is a run of the next 24 hours in status director, with
// the volume it would write to ("" : none; NoVolume says why and how to
// get one).
type ScheduledRun struct {
	jobs.Planned
	Volume string `json:"volume,omitempty"`
	// VolumeFrom says how the volume would come to the job: "" (an
	// Append volume of the pool), "from scratch pool X", "recycled: …".
	VolumeFrom string `json:"volume_from,omitempty"`
	NoVolume   string `json:"no_volume,omitempty"`
	Note       string `json:"note,omitempty"`
}

// nextRuns is the next 24 hours of scheduled runs, each resolved as the
// runner would run it now (level decision, pool) with the volume the
// runner's own selection would take — nothing is reserved or changed.
func (d *Director) nextRuns(ctx context.Context) []ScheduledRun {
	now := d.clock()
	out := []ScheduledRun{}
	if d.jobs == nil {
		return out
	}
	planner := d.jobs.Planner()
	for _, p := range jobs.Preview(d.cfg, now, now.Add(24*time.Hour), jobs.PreviewFilter{}) {
		r := ScheduledRun{Planned: p}
		rp, err := d.jobs.Resolve(ctx, p)
		if err != nil {
			r.NoVolume = "unknown: " + err.Error()
			out = append(out, r)
			continue
		}
		r.Planned = rp
		pl, err := planner.WouldTake(ctx, rp.Pool, rp.Storage)
		var nv *jobs.NoVolumeError
		switch {
		case errors.As(err, &nv):
			r.NoVolume = nv.Short()
		case err != nil:
			r.NoVolume = "unknown: " + err.Error()
		default:
			r.Volume, r.VolumeFrom = pl.Volume, pl.How
		}
		r.Note = pl.Note
		out = append(out, r)
	}
	return out
}

// nextRunsText is status director's section of the next 24 hours.
func (d *Director) nextRunsText(b *bytes.Buffer, runs []ScheduledRun) {
	fmt.Fprintf(b, "\nscheduled jobs in the next 24 h: %d", len(runs))
	if len(runs) == 0 {
		return
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tJOB\tLEVEL\tPOOL\tSTORAGE\tVOLUME")
	notes := map[string]bool{}
	for _, r := range runs {
		vol := r.Volume
		if vol == "" {
			vol = "*no volume*: " + r.NoVolume
		} else if r.VolumeFrom != "" {
			vol += " (" + r.VolumeFrom + ")"
		}
		level := r.Level
		if r.Upgraded != "" {
			level += " (upgraded)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", jobs.LocalTime(d.cfg, r.Schedule, r.At), r.Job, level, r.Pool, r.Storage, vol)
		if r.Note != "" {
			notes[r.Note] = true
		}
	}
	tw.Flush()
	for n := range notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
	b.Truncate(len(bytes.TrimRight(b.Bytes(), "\n")))
}
