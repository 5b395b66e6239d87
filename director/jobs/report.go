package jobs

import (
	"fmt"
	"strings"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// filesetSpec is a [[fileset]] as filed takes it.
func filesetSpec(f *configs.Fileset) *pb.FileSetSpec {
	return &pb.FileSetSpec{Name: f.Name, Include: f.Include, Exclude: f.Exclude, OneFileSystem: f.StaysOnOneFileSystem(),
		ExcludeCaches: f.ExcludeCaches, Xattrs: f.KeepsXAttrs()}
}

// FilesetSpec is FileSetSpec of a [[fileset]] (for estimate).
func FilesetSpec(f *configs.Fileset) *pb.FileSetSpec { return filesetSpec(f) }

const timeFormat = "2006-01-02 15:04:05Z"

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(timeFormat)
}

// HumanBytes renders n bytes as "1.5 GB (1,500,000,000 B)" for reports.
func HumanBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s (%d B)", f, units[i], n)
}

// Report is the job report a Bareos user knows, from the job's row.
func Report(j catalog.Job) string {
	var b strings.Builder
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "  %-22s %s\n", k+":", fmt.Sprintf(format, a...)) }
	if j.Type == catalog.TypeRestore {
		return restoreReport(j)
	}
	fmt.Fprintf(&b, "Job report of JobId %d\n", j.ID)
	row("JobId", "%d", j.ID)
	row("Job", "%s", j.Name)
	row("Client", "%s", orDash(j.Client))
	row("FileSet", "%s (identity %s)", orDash(j.Fileset), short(j.FilesetIdentity))
	level := j.Level
	if j.UpgradedFrom != "" {
		reason := strings.TrimSuffix(j.UpgradeReason, "; upgraded from "+j.UpgradedFrom)
		level += fmt.Sprintf(" (upgraded from %s: %s)", j.UpgradedFrom, reason)
	}
	row("Backup Level", "%s", level)
	row("Since", "%s", when(j.SinceTime))
	row("Pool", "%s", orDash(j.Pool))
	row("Storage", "%s", orDash(j.Storage))
	vols := strings.Join(dedupe(j.Volumes), ", ")
	row("Volume(s)", "%s", orDash(vols))
	if j.PurgedAt != nil {
		row("Purged", "%s: %s", j.PurgedAt.UTC().Format("2006-01-02 15:04:05Z"), j.PurgedReason)
	}
	if j.ScheduledAt != nil {
		sched := when(j.ScheduledAt)
		if j.StartedAt != nil && j.StartedAt.Sub(*j.ScheduledAt) > lateAfter {
			sched += fmt.Sprintf(" (started %s late)", j.StartedAt.Sub(*j.ScheduledAt).Round(time.Minute))
		}
		row("Scheduled time", "%s", sched)
	}
	row("Start time", "%s", when(j.StartedAt))
	row("End time", "%s", when(j.EndedAt))
	if j.StartedAt != nil && j.EndedAt != nil {
		row("Elapsed time", "%s", j.EndedAt.Sub(*j.StartedAt).Round(time.Second))
	}
	row("Files written", "%d", j.Files)
	row("Bytes written", "%s", HumanBytes(j.Bytes))
	row("Rate", "%.1f kB/s", j.Rate()/1000)
	row("Deleted files", "%d", j.Deletions)
	row("Warnings", "%d", j.Warnings)
	row("Flushed offset", "%d", j.FlushedOffset)
	if j.Error != "" {
		row("Error", "%s", j.Error)
	}
	row("Termination", "%s", terminationText(j.Status))
	return b.String()
}

// restoreReport is a Restore job's report (Bareos' restore report):
// files and bytes restored, the rate, the files not restored (errors).
func restoreReport(j catalog.Job) string {
	var b strings.Builder
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "  %-22s %s\n", k+":", fmt.Sprintf(format, a...)) }
	fmt.Fprintf(&b, "Restore report of JobId %d\n", j.ID)
	row("JobId", "%d", j.ID)
	row("Job", "%s", j.Name)
	row("Restore Client", "%s", orDash(j.Client))
	row("FileSet", "%s", orDash(j.Fileset))
	row("Storage", "%s", orDash(j.Storage))
	row("Start time", "%s", when(j.StartedAt))
	row("End time", "%s", when(j.EndedAt))
	if j.StartedAt != nil && j.EndedAt != nil {
		row("Elapsed time", "%s", j.EndedAt.Sub(*j.StartedAt).Round(time.Second))
	}
	row("Files Restored", "%d", j.Files)
	row("Bytes Restored", "%s", HumanBytes(j.Bytes))
	row("Rate", "%.1f kB/s", j.Rate()/1000)
	row("FD Errors", "%d", j.Warnings)
	if j.Error != "" {
		row("Error", "%s", j.Error)
	}
	t := terminationText(j.Status)
	row("Termination", "%s", strings.Replace(t, "Backup", "Restore", 1))
	return b.String()
}

// terminationText is Bareos' wording of a status, with the letter.
func terminationText(s catalog.JobStatus) string {
	switch s {
	case catalog.JobOK:
		return "Backup OK (T)"
	case catalog.JobWarnings:
		return "Backup OK -- with warnings (W)"
	case catalog.JobError:
		return "*** Backup Error *** (E)"
	case catalog.JobFatal:
		return "*** Backup Fatal Error *** (f)"
	case catalog.JobCancelled:
		return "Backup Canceled (A)"
	}
	return s.String()
}

func dedupe(v []string) []string {
	var out []string
	for _, s := range v {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return orDash(id)
}
