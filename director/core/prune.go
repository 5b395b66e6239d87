package core

// prune volume= and purge volume= (issue 11, jobs.md §4): a volume's data
// is given up in the catalog (its jobs' file records go), the volume
// becomes Purged and reusable through recycling with a new key. The tape
// is never touched and no key is deleted.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/jobs"
)

// PruneResult is the JSON of "prune volume" and "purge volume".
type PruneResult struct {
	Volume       string     `json:"volume"`
	Pruned       bool       `json:"pruned"` // prune (retention checked), else purge
	DryRun       bool       `json:"dry_run"`
	From         string     `json:"from"`
	Changed      bool       `json:"changed"`
	Jobs         []int64    `json:"jobs"`
	Files        int64      `json:"files"`
	OtherVolumes []string   `json:"other_volumes,omitempty"`
	RetentionEnd *time.Time `json:"retention_end,omitempty"`
	MovedTo      string     `json:"moved_to_pool,omitempty"`
}

// pruneVolume prunes (prune) or purges volume for the console actor; without
// yes it only says what it would do.
func (d *Director) pruneVolume(ctx context.Context, actor, volume string, prune, yes bool) (*Output, error) {
	verb := map[bool]string{true: "prune", false: "purge"}[prune]
	m, err := d.store.GetMedia(ctx, volume)
	if err != nil {
		return nil, err
	}
	// No job of this director may take the volume while it changes; one
	// that uses it now makes the command refuse.
	release, ok := d.jobs.HoldVolume(volume)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: a running job is using it; try again when the job has ended", verb, volume)
	}
	defer release()
	res, err := d.store.PurgeVolume(ctx, catalog.PurgeRequest{Volume: volume, Prune: prune, Actor: "console:" + actor,
		RecyclePool: jobs.RecyclePool(d.jobs, m.Pool), DryRun: !yes})
	if err != nil {
		return nil, err
	}
	out := PruneResult{Volume: volume, Pruned: prune, DryRun: !yes, From: string(res.From), Changed: res.Changed, Jobs: res.Jobs,
		Files: res.Files, OtherVolumes: res.OtherVolumes, RetentionEnd: res.RetentionEnd, MovedTo: res.MovedTo}
	if out.Jobs == nil {
		out.Jobs = []int64{}
	}
	jobsText := fmt.Sprintf("%d jobs", len(res.Jobs))
	if len(res.Jobs) > 0 {
		jobsText += " (" + joinIDs(res.Jobs) + ")"
	}
	other := ""
	if len(res.OtherVolumes) > 0 {
		other = "; those jobs also wrote " + strings.Join(res.OtherVolumes, ", ") + ", where their records go too (a job is removed whole)"
	}
	if res.From == catalog.StatusPurged || res.From == catalog.StatusRecycle {
		return &Output{Text: fmt.Sprintf("volume %s is already %s: nothing to %s", volume, res.From, verb), JSON: out}, nil
	}
	if !yes {
		return &Output{Text: fmt.Sprintf("would %s volume %s (%s): %s and %d file records removed from the catalog, status Purged%s; the tape and the keys are not touched; add yes to do it",
			verb, volume, res.From, jobsText, res.Files, other), JSON: out}, nil
	}
	moved := ""
	if res.MovedTo != "" {
		moved = "; moved to recycle pool " + res.MovedTo
	}
	d.log.Info("volume "+verb+"d", "volume", volume, "console", actor, "jobs", len(res.Jobs), "files", res.Files, "moved_to", res.MovedTo)
	return &Output{Text: fmt.Sprintf("volume %s %sd: %s and %d file records removed from the catalog, status %s → Purged%s%s; the tape and the keys are untouched — a job recycles it with a new key",
		volume, verb, jobsText, res.Files, res.From, other, moved), JSON: out}, nil
}

// joinIDs is "41, 42, 57".
func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}
