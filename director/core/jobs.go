package core

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// The console's job commands (issue 10): run, wait, cancel, estimate,
// list jobs/files/jobmedia/joblog, status client. The jobs themselves run
// in director/jobs.

// progressEvery is how often wait and run … wait print a progress line.
const progressEvery = 2 * time.Second

// JobRow is a job in list jobs --json.
type JobRow struct {
	JobID         int64      `json:"jobid"`
	Job           string     `json:"job"`
	Type          string     `json:"type"`
	Client        string     `json:"client"`
	Fileset       string     `json:"fileset"`
	Level         string     `json:"level"`
	UpgradedFrom  string     `json:"upgraded_from,omitempty"`
	UpgradeReason string     `json:"upgrade_reason,omitempty"`
	Status        string     `json:"status"`
	StatusText    string     `json:"status_text"`
	Pool          string     `json:"pool,omitempty"`
	Files         int64      `json:"files"`
	Bytes         int64      `json:"bytes"`
	Warnings      int        `json:"warnings"`
	Deletions     int64      `json:"deletions"`
	Volumes       []string   `json:"volumes"`
	ScheduledAt   *time.Time `json:"scheduled_at,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	EndedAt       *time.Time `json:"ended_at,omitempty"`
	Error         string     `json:"error,omitempty"`
	PurgedAt      *time.Time `json:"purged_at,omitempty"`
	PurgedReason  string     `json:"purged_reason,omitempty"`
}

func jobRow(j catalog.Job) JobRow {
	return JobRow{JobID: j.ID, Job: j.Name, Type: j.Type, Client: j.Client, Fileset: j.Fileset, Level: j.Level, UpgradedFrom: j.UpgradedFrom,
		UpgradeReason: j.UpgradeReason, Status: string(j.Status), StatusText: j.Status.String(), Pool: j.Pool, Files: j.Files, Bytes: j.Bytes,
		Warnings: j.Warnings, Deletions: j.Deletions, Volumes: j.Volumes, ScheduledAt: j.ScheduledAt, StartedAt: j.StartedAt, EndedAt: j.EndedAt, Error: j.Error,
		PurgedAt: j.PurgedAt, PurgedReason: j.PurgedReason}
}

func jobErr(err error) error {
	var uj *jobs.UnknownJobError
	if errors.As(err, &uj) {
		return status.Error(codes.NotFound, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return catalogStatus(err)
}

// runJob runs "run job= [level=] [yes] [wait]".
func (d *Director) runJob(ctx context.Context, actor string, cmd console.Command, progress Progress) (*Output, error) {
	id, err := d.jobs.Run(ctx, jobs.Request{Job: cmd.Str("job"), Level: cmd.Str("level"), Actor: "console " + actor})
	if err != nil {
		return nil, jobErr(err)
	}
	d.log.Info("job started", "jobid", id, "job", cmd.Str("job"), "console", actor)
	if !cmd.Bool("wait") {
		return &Output{Text: fmt.Sprintf("Job queued. JobId=%d (follow it with: wait jobid=%d)", id, id), JSON: map[string]int64{"jobid": id}}, nil
	}
	progress("Job queued. JobId=%d", id)
	return d.follow(ctx, id, progress)
}

// follow prints a progress line every progressEvery until job id ends,
// then returns its report. The console leaving ends the following, not
// the job.
func (d *Director) follow(ctx context.Context, id int64, progress Progress) (*Output, error) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	done := make(chan error, 1)
	go func() { done <- d.jobs.Wait(ctx, id) }()
	last := ""
	for {
		select {
		case err := <-done:
			if err != nil {
				return nil, status.Errorf(codes.Canceled, "stopped following job %d (it goes on): %v", id, err)
			}
			j, err := d.store.GetJob(ctx, id)
			if err != nil {
				return nil, catalogStatus(err)
			}
			return &Output{Text: jobs.Report(j), JSON: jobRow(j), Partial: !j.Status.Successful()}, nil
		case <-tick.C:
			if s, ok := d.jobs.StatusOf(id); ok {
				if line := progressLine(s, d.clock()); line != last {
					progress("%s", line)
					last = line
				}
			}
		}
	}
}

// progressLine is one line of a job's live state.
func progressLine(s jobs.Status, now time.Time) string {
	if s.State != "running" || s.Why != "" {
		why := s.Why
		if why == "" {
			why = "waiting"
		}
		return fmt.Sprintf("JobId %d %s: %s", s.JobID, s.Job, why)
	}
	line := fmt.Sprintf("JobId %d %s (%s): %d files, %s, %.1f MB/s", s.JobID, s.Job, s.Level, s.Files, jobs.HumanBytes(s.Bytes), s.Rate(now)/1e6)
	if eta := s.ETA(now); eta > 0 {
		line += ", ETA " + eta.Round(time.Second).String()
	}
	if s.Volume != "" {
		line += ", volume " + s.Volume
		if s.Drive != "" {
			line += " in drive " + s.Drive
		}
	}
	if s.Warnings > 0 {
		line += fmt.Sprintf(", %d warnings", s.Warnings)
	}
	return line
}

// waitJob runs "wait jobid=N".
func (d *Director) waitJob(ctx context.Context, cmd console.Command, progress Progress) (*Output, error) {
	id, _ := cmd.Int("jobid")
	if _, err := d.store.GetJob(ctx, int64(id)); err != nil {
		return nil, catalogStatus(err)
	}
	return d.follow(ctx, int64(id), progress)
}

// cancelJob runs "cancel jobid=N": the job ends A; it waits (30 s at
// most) for that.
func (d *Director) cancelJob(ctx context.Context, actor string, cmd console.Command) (*Output, error) {
	id, _ := cmd.Int("jobid")
	if err := d.jobs.Cancel(int64(id), "console "+actor); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	d.log.Info("job cancelled", "jobid", id, "console", actor)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.jobs.Wait(wctx, int64(id)); err != nil {
		return &Output{Text: fmt.Sprintf("JobId %d: cancel requested; it has not ended yet (list jobs shows when it does)", id)}, nil
	}
	j, err := d.store.GetJob(ctx, int64(id))
	if err != nil {
		return nil, catalogStatus(err)
	}
	return &Output{Text: fmt.Sprintf("JobId %d %s cancelled: status %s", j.ID, j.Name, j.Status), JSON: jobRow(j)}, nil
}

// estimate runs "estimate job= [level=] [listing]": the client walks
// the fileset and counts, nothing is written.
func (d *Director) estimate(ctx context.Context, cmd console.Command) (*Output, error) {
	jc, ok := d.cfg.JobNamed(cmd.Str("job"))
	if !ok {
		_, err := d.jobs.Run(ctx, jobs.Request{Job: cmd.Str("job")}) // the unknown-job error, nothing created
		return nil, jobErr(err)
	}
	client, _ := d.cfg.ClientNamed(jc.Client)
	fs, _ := d.cfg.JobFileset(jc)
	if client == nil || fs == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s: its client or fileset is not configured", jc.Name)
	}
	level := cmd.Str("level")
	if level == "" {
		level = catalog.LevelFull
	}
	dec, err := d.store.SinceTime(ctx, jc.Name, client.Name, fs.Identity(), level, d.clock(), jc.MaxFullInterval)
	if err != nil {
		return nil, catalogStatus(err)
	}
	req := &pb.EstimateRequest{Fileset: jobs.FilesetSpec(fs), Listing: cmd.Bool("listing")}
	if dec.Since != nil {
		req.SinceUnixNs = dec.Since.UnixNano()
	}
	fc, err := d.filed.Dial(ctx, client)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	es, err := fc.Estimate(ctx, req)
	if err != nil {
		return nil, clientErr(client.Name, err)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if req.Listing {
		fmt.Fprintln(tw, "PATH\tTYPE\tSIZE\tMODE\tMTIME")
	}
	type entry struct {
		Path  string `json:"path"`
		Type  string `json:"type"`
		Size  int64  `json:"size"`
		Mode  uint32 `json:"mode"`
		Mtime string `json:"mtime"`
	}
	var entries []entry
	var tot *pb.EstimateTotals
	for {
		r, err := es.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, clientErr(client.Name, err)
		}
		for _, e := range r.Entries {
			mt := time.Unix(0, e.MtimeNs).UTC().Format("2006-01-02 15:04:05Z")
			entries = append(entries, entry{catalog.RenderPath(e.Path), e.Type, e.Size, e.Mode, mt})
			fmt.Fprintf(tw, "%s\t%s\t%d\t%04o\t%s\n", catalog.RenderPath(e.Path), e.Type, e.Size, e.Mode, mt)
		}
		if r.Totals != nil {
			tot = r.Totals
		}
	}
	tw.Flush()
	if tot == nil {
		return nil, status.Errorf(codes.Unavailable, "client %s ended the estimate without totals", client.Name)
	}
	lv := dec.Level
	if dec.UpgradedFrom != "" {
		lv += fmt.Sprintf(" (upgraded from %s: %s)", dec.UpgradedFrom, dec.Reason)
	}
	since := ""
	if dec.Since != nil {
		since = ", since " + dec.Since.UTC().Format("2006-01-02 15:04:05Z")
	}
	fmt.Fprintf(&b, "estimate of job %s, client %s, fileset %s, level %s%s: %d files, %s (%d unchanged, %d excluded, %d warnings)",
		jc.Name, client.Name, fs.Name, lv, since, tot.Files, jobs.HumanBytes(tot.Bytes), tot.Unchanged, tot.Excluded, tot.Warnings)
	return &Output{Text: b.String(), JSON: map[string]any{"job": jc.Name, "client": client.Name, "level": dec.Level, "upgraded_from": dec.UpgradedFrom,
		"files": tot.Files, "bytes": tot.Bytes, "unchanged": tot.Unchanged, "excluded": tot.Excluded, "warnings": tot.Warnings, "entries": entries}}, nil
}

func clientErr(name string, err error) error {
	st := status.Convert(err)
	code := st.Code()
	if code == codes.Unknown {
		code = codes.Unavailable
	}
	return status.Errorf(code, "client %s: %s", name, st.Message())
}

// listJobs runs "list jobs [job=] [client=] [jobstatus=] [days=] [last] [limit=]".
func (d *Director) listJobs(ctx context.Context, cmd console.Command) (*Output, error) {
	f := catalog.JobFilter{Name: cmd.Str("job"), Client: cmd.Str("client"), Last: cmd.Bool("last"), Type: cmd.Str("type")}
	if st := cmd.Str("jobstatus"); st != "" {
		if js := catalog.JobStatus(st); !js.Active() && !js.Terminal() {
			return nil, status.Errorf(codes.InvalidArgument, "jobstatus=%s: not a job status letter; use T (OK), W (warnings), E (error), f (fatal), A (cancelled), R (running), C (created) or a waiting letter", st)
		}
		f.Status = catalog.JobStatus(st)
	}
	if n, ok := cmd.Int("days"); ok {
		f.Since = d.clock().Add(-time.Duration(n) * 24 * time.Hour)
	}
	if n, ok := cmd.Int("limit"); ok {
		f.Limit = n
	}
	js, err := d.store.ListJobs(ctx, f)
	if err != nil {
		return nil, catalogStatus(err)
	}
	rows := make([]JobRow, 0, len(js))
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOBID\tJOB\tCLIENT\tLEVEL\tSTATUS\tFILES\tBYTES\tSTARTED\tENDED\tVOLUMES")
	for _, j := range js {
		rows = append(rows, jobRow(j))
		lv := j.Level
		if j.Type != catalog.TypeBackup {
			lv = j.Type // Restore: no level
		}
		if j.UpgradedFrom != "" {
			lv += " (from " + j.UpgradedFrom + ")"
		}
		vols := dash(strings.Join(dedupe(j.Volumes), ","))
		if j.PurgedAt != nil {
			vols = "purged " + j.PurgedAt.UTC().Format(time.DateOnly) // its records are gone (prune/purge)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", j.ID, j.Name, dash(j.Client), dash(lv), j.Status.String(), j.Files, j.Bytes,
			when(j.StartedAt), when(j.EndedAt), vols)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d jobs", len(js))
	return &Output{Text: b.String(), JSON: rows}, nil
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
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

// FileRow is a file in list files --json.
type FileRow struct {
	Path         string `json:"path"` // catalog.RenderPath
	Type         string `json:"type"`
	Size         int64  `json:"size"`
	Mode         uint32 `json:"mode"`
	MtimeNS      int64  `json:"mtime_ns"`
	UID          int64  `json:"uid"`
	GID          int64  `json:"gid"`
	Uname        string `json:"uname,omitempty"`
	Gname        string `json:"gname,omitempty"`
	Link         string `json:"link,omitempty"`   // symlink target or hard link's first path (catalog.RenderPath)
	SHA256       string `json:"sha256,omitempty"` // hex, regular files and hard links
	Volume       string `json:"volume"`
	TapeFile     int    `json:"tape_file"`
	Block        int64  `json:"block"`
	Offset       int    `json:"offset"`
	StreamOffset int64  `json:"stream_offset"`
	Parts        int    `json:"continued_parts,omitempty"`
}

// listFiles runs "list files jobid=N".
func (d *Director) listFiles(ctx context.Context, cmd console.Command) (*Output, error) {
	id, _ := cmd.Int("jobid")
	fs, err := d.store.ListFiles(ctx, int64(id))
	if err != nil {
		return nil, catalogStatus(err)
	}
	rows := make([]FileRow, 0, len(fs))
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tTYPE\tSIZE\tVOLUME\tFILE\tBLOCK\tOFFSET")
	for _, f := range fs {
		p := catalog.RenderPath(f.Path)
		row := FileRow{Path: p, Type: f.Type, Size: f.Size, Mode: f.Mode, MtimeNS: f.MtimeNS, UID: f.UID, GID: f.GID, Uname: f.Uname, Gname: f.Gname,
			Volume: f.At.Volume, TapeFile: f.At.TapeFile, Block: f.At.Block, Offset: f.At.Offset, StreamOffset: f.StreamOffset, Parts: len(f.Parts)}
		if len(f.Link) > 0 {
			row.Link = catalog.RenderPath(f.Link)
		}
		if len(f.SHA256) > 0 {
			row.SHA256 = hex.EncodeToString(f.SHA256)
		}
		rows = append(rows, row)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\n", p, f.Type, f.Size, f.At.Volume, f.At.TapeFile, f.At.Block, f.At.Offset)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d files", len(fs))
	del, err := d.store.Deletions(ctx, int64(id))
	if err == nil && len(del) > 0 {
		fmt.Fprintf(&b, "; %d recorded as deleted in this job:", len(del))
		for _, p := range del {
			fmt.Fprintf(&b, "\n  deleted %s", catalog.RenderPath(p))
		}
	}
	return &Output{Text: b.String(), JSON: rows}, nil
}

// listJobMedia runs "list jobmedia jobid=N".
func (d *Director) listJobMedia(ctx context.Context, cmd console.Command) (*Output, error) {
	id, _ := cmd.Int("jobid")
	ms, err := d.store.ListJobMedia(ctx, int64(id))
	if err != nil {
		return nil, catalogStatus(err)
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tKIND\tVOLUME\tVOLSEQ\tTAPE FILE\tFIRST BLOCK\tLAST BLOCK\tBYTES\tSTREAM OFFSET\tCOMPLETE")
	for _, m := range ms {
		last := "-"
		if m.LastBlock != nil {
			last = fmt.Sprint(*m.LastBlock)
		}
		complete := "yes"
		if !m.Complete {
			complete = "no (partial: a crash or an error cut it)"
		}
		if m.OverwrittenBy != nil {
			complete += fmt.Sprintf(", written over by job %d", *m.OverwrittenBy)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%s\n", m.Part, m.Kind, m.Volume, m.VolumeIndex, m.TapeFile, m.FirstBlock, last, m.Bytes, m.FirstStreamOffset, complete)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d tape files", len(ms))
	return &Output{Text: b.String(), JSON: ms}, nil
}

// listJobLog runs "list joblog jobid=N".
func (d *Director) listJobLog(ctx context.Context, cmd console.Command) (*Output, error) {
	id, _ := cmd.Int("jobid")
	ls, err := d.store.JobLog(ctx, int64(id))
	if err != nil {
		return nil, catalogStatus(err)
	}
	var b strings.Builder
	for _, l := range ls {
		mark := ""
		if l.Level != catalog.LogInfo {
			mark = strings.ToUpper(l.Level) + " "
		}
		fmt.Fprintf(&b, "%s %s%s\n", l.At.Format("2006-01-02 15:04:05Z"), mark, l.Line)
	}
	fmt.Fprintf(&b, "%d lines", len(ls))
	return &Output{Text: b.String(), JSON: ls}, nil
}

// statusClient runs "status client=NAME": filed's hello and this
// director's jobs on it.
func (d *Director) statusClient(ctx context.Context, name string) (*Output, error) {
	c, ok := d.cfg.ClientNamed(name)
	if !ok {
		var names []string
		for _, c := range d.cfg.Clients {
			names = append(names, c.Name)
		}
		return nil, status.Errorf(codes.NotFound, "no [[client]] %q in %s (configured: %s)", name, d.cfg.Path, dash(strings.Join(names, ", ")))
	}
	type clientStatus struct {
		Client  string        `json:"client"`
		Address string        `json:"address"`
		Up      bool          `json:"up"`
		Error   string        `json:"error,omitempty"`
		Version string        `json:"version,omitempty"`
		OS      string        `json:"os,omitempty"`
		Running []int64       `json:"filed_running_jobs,omitempty"`
		Jobs    []jobs.Status `json:"jobs"`
	}
	s := clientStatus{Client: c.Name, Address: c.Address, Jobs: []jobs.Status{}}
	var b strings.Builder
	fc, err := d.filed.Dial(ctx, c)
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var h *pb.FiledHelloReply
		h, err = fc.Hello(hctx, &pb.FiledHelloRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			s.Up, s.Version, s.OS, s.Running = true, h.Version, h.Os, h.RunningJobs
		}
	}
	if err != nil {
		s.Error = status.Convert(err).Message()
		fmt.Fprintf(&b, "client %s at %s: unreachable: %s\n", c.Name, c.Address, s.Error)
	} else {
		fmt.Fprintf(&b, "client %s at %s: up, filed %s on %s", c.Name, c.Address, s.Version, s.OS)
		if len(s.Running) > 0 {
			fmt.Fprintf(&b, ", running jobs %v", s.Running)
		}
		b.WriteString("\n")
	}
	for _, j := range d.jobs.Active() {
		if j.Client == c.Name {
			s.Jobs = append(s.Jobs, j)
			fmt.Fprintf(&b, "  %s\n", progressLine(j, d.clock()))
		}
	}
	if len(s.Jobs) == 0 {
		b.WriteString("no job of this director runs on it")
	}
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: s, Partial: !s.Up}, nil
}

// jobsStatusText is the jobs section of status director.
func (d *Director) jobsStatusText(b *bytes.Buffer, active []jobs.Status) {
	var running, waiting []jobs.Status
	for _, s := range active {
		if s.State == "running" && s.Why == "" {
			running = append(running, s)
		} else {
			waiting = append(waiting, s)
		}
	}
	fmt.Fprintf(b, "\nrunning jobs: %d", len(running))
	for _, s := range running {
		fmt.Fprintf(b, "\n  %s", progressLine(s, d.clock()))
	}
	fmt.Fprintf(b, "\nwaiting jobs: %d", len(waiting))
	for _, s := range waiting {
		fmt.Fprintf(b, "\n  %s", progressLine(s, d.clock()))
	}
}
