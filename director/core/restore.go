package core

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// The console's restore command (issue 12): select, plan, show the plan,
// and with yes run a Restore job (director/jobs).

// DefaultRestoreWhere is where= when a restore does not say (Bareos'
// /tmp/bareos-restores).
const DefaultRestoreWhere = "/tmp/tapeward-restores"

// RestorePlan is the plan in restore --json.
type RestorePlan struct {
	Client        string              `json:"client"`
	Fileset       string              `json:"fileset"`
	Before        *time.Time          `json:"before,omitempty"`
	Jobs          []int64             `json:"jobs"`
	Files         int64               `json:"files"`
	Bytes         int64               `json:"bytes"`
	Directories   int                 `json:"parent_directories"` // added for their attributes
	Missing       []string            `json:"missing,omitempty"`
	Volumes       []jobs.VolumeWhere  `json:"volumes"`
	NotInLibrary  []string            `json:"not_in_library,omitempty"`
	Storage       string              `json:"storage"`
	RestoreClient string              `json:"restore_client"`
	Relocation    map[string]string   `json:"relocation"`
	Replace       string              `json:"replace"`
	JobID         int64               `json:"jobid,omitempty"`
	DryRun        []RestoreDryRunFile `json:"dryrun,omitempty"`
}

// RestoreDryRunFile is one member of a dryrun: where it would be written.
type RestoreDryRunFile struct {
	Path   string `json:"path"`
	Target string `json:"target"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Volume string `json:"volume"`
	Error  string `json:"error,omitempty"`
}

// restoreArgs is a restore command's selection, checked.
type restoreArgs struct {
	view     catalog.ViewSpec
	criteria catalog.Criteria
}

// parseRestoreArgs checks what the keywords ask for and reads them.
func (d *Director) parseRestoreArgs(cmd console.Command) (restoreArgs, error) {
	var a restoreArgs
	bad := func(format string, x ...any) (restoreArgs, error) {
		return a, status.Errorf(codes.InvalidArgument, "restore: "+format, x...)
	}
	n := 0
	for _, k := range []string{"current", "before", "jobid"} {
		if cmd.Has(k) {
			n++
		}
	}
	if n > 1 {
		return bad("current, before= and jobid= exclude each other: say one")
	}
	a.view.Client, a.view.Fileset = cmd.Str("client"), cmd.Str("fileset")
	if cmd.Has("jobid") {
		ids, err := catalog.ParseJobIDs(cmd.Str("jobid"))
		if err != nil {
			return a, status.Error(codes.InvalidArgument, err.Error())
		}
		a.view.JobIDs = ids
	} else if a.view.Client == "" {
		return bad("say which client's backups to restore (client=NAME) or which jobs (jobid=41,42)")
	}
	if cmd.Has("before") {
		loc := time.Local
		t, err := catalog.ParseRestoreTime(cmd.Str("before"), loc)
		if err != nil {
			return a, status.Error(codes.InvalidArgument, err.Error())
		}
		a.view.Before = t
	}
	for _, f := range cmd.Strs("file") {
		if strings.HasPrefix(f, "<") {
			return bad("file=%s: a list file is read by tapectl on the console's machine (one path a line); this console sent it unread", f)
		}
		a.criteria.Files = append(a.criteria.Files, []byte(f))
	}
	for _, f := range cmd.Strs("directory") {
		a.criteria.Directories = append(a.criteria.Directories, []byte(f))
	}
	if re := cmd.Str("fileregex"); cmd.Has("fileregex") {
		x, err := regexp.Compile(re)
		if err != nil {
			return bad("fileregex=%s is not a regular expression (RE2 syntax): %v", re, err)
		}
		a.criteria.Regex = x
	}
	a.criteria.All = cmd.Bool("all")
	if a.criteria.Empty() && !cmd.Bool("select") {
		return bad("say what to restore: all, file=PATH, directory=DIR, fileregex=RE (or select in tapectl)")
	}
	return a, nil
}

// restore runs "restore …": the plan; with yes the job; with dryrun the
// targets.
func (d *Director) restore(ctx context.Context, actor string, cmd console.Command, progress Progress) (*Output, error) {
	a, err := d.parseRestoreArgs(cmd)
	if err != nil {
		return nil, err
	}
	if cmd.Bool("select") {
		return d.browseStart(ctx, actor, cmd, a)
	}
	view, err := d.store.LoadRestoreView(ctx, a.view)
	if err != nil {
		if catalog.IsRestoreFilesetsError(err) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, catalogStatus(err)
	}
	sel, err := d.store.SelectCriteria(ctx, view, a.criteria)
	if err != nil {
		return nil, catalogStatus(err)
	}
	return d.planAndRun(ctx, actor, cmd, view, sel, progress)
}

// planAndRun plans a selection, shows it, and runs it (yes) or lists
// its targets (dryrun).
func (d *Director) planAndRun(ctx context.Context, actor string, cmd console.Command, view *catalog.RestoreView, sel catalog.Selection, progress Progress) (*Output, error) {
	var jobIDs []int64
	for _, j := range view.Jobs {
		jobIDs = append(jobIDs, j.ID)
	}
	plan := catalog.PlanRestore(sel, jobIDs)
	var vols []string
	for _, pv := range plan {
		if !slices.Contains(vols, pv.Volume) {
			vols = append(vols, pv.Volume)
		}
	}
	rclientName := cmd.Str("restoreclient")
	if rclientName == "" {
		rclientName = view.Client
	}
	rclient, ok := d.cfg.ClientNamed(rclientName)
	if !ok {
		var names []string
		for _, c := range d.cfg.Clients {
			names = append(names, c.Name)
		}
		return nil, status.Errorf(codes.NotFound, "restore client %q is not a [[client]] of %s (configured: %s); name one with restoreclient=", rclientName, d.cfg.Path, dash(strings.Join(names, ", ")))
	}
	storage, err := d.restoreStorage(ctx, cmd.Str("storage"), vols)
	if err != nil {
		return nil, err
	}
	p := RestorePlan{Client: view.Client, Fileset: view.Fileset, Jobs: jobIDs, Files: sel.Files, Bytes: sel.Bytes, Missing: sel.Missing,
		Storage: storage, RestoreClient: rclient.Name, Replace: cmd.Str("replace")}
	if p.Replace == "" {
		p.Replace = "always"
	}
	if !view.Before.IsZero() {
		t := view.Before
		p.Before = &t
	}
	for _, m := range sel.Members {
		if m.Ancestor {
			p.Directories++
		}
	}
	rel := &pb.Relocation{Where: cmd.Str("where"), StripPrefix: cmd.Str("strip_prefix"), AddPrefix: cmd.Str("add_prefix"),
		AddSuffix: cmd.Str("add_suffix"), Regexwhere: cmd.Str("regexwhere")}
	if rel.Where == "" && rel.Regexwhere == "" {
		rel.Where = DefaultRestoreWhere
	}
	if _, err := relocator(rel); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "restore: %v", err)
	}
	p.Relocation = map[string]string{"where": rel.Where, "strip_prefix": rel.StripPrefix, "add_prefix": rel.AddPrefix, "add_suffix": rel.AddSuffix, "regexwhere": rel.Regexwhere}
	locs, lerr := d.jobs.LocateVolumes(ctx, storage, vols)
	if lerr != nil {
		for _, v := range vols {
			p.Volumes = append(p.Volumes, jobs.VolumeWhere{Volume: v})
		}
	} else {
		p.Volumes = locs
		for _, w := range locs {
			if !w.InLibrary() {
				p.NotInLibrary = append(p.NotInLibrary, w.Volume)
			}
		}
	}
	var b strings.Builder
	d.planText(&b, &p, view, rel, lerr)
	if cmd.Bool("dryrun") {
		files, err := dryRun(sel, rel)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		p.DryRun = files
		fmt.Fprintf(&b, "\ndryrun: nothing is written; %s would write:\n", rclient.Name)
		for _, f := range files {
			if f.Error != "" {
				fmt.Fprintf(&b, "  %s  REFUSED: %s\n", f.Path, f.Error)
				continue
			}
			fmt.Fprintf(&b, "  %s -> %s\n", f.Path, f.Target)
		}
		return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: p}, nil
	}
	if !cmd.Bool("yes") {
		b.WriteString("\nNothing was run: add yes to run this restore (tapectl asks).")
		return &Output{Text: b.String(), JSON: p}, nil
	}
	id, err := d.jobs.Restore(ctx, jobs.RestoreRequest{Actor: "console " + actor, Client: rclient, BackupClient: view.Client, Fileset: view.Fileset,
		Storage: storage, Plan: plan, Files: sel.Files, Bytes: sel.Bytes, Relocation: rel, Replace: p.Replace, Jobs: jobIDs,
		NoWait: cmd.Bool("nowait")})
	if err != nil {
		return nil, jobErr(err)
	}
	p.JobID = id
	d.log.Info("restore started", "jobid", id, "client", view.Client, "restore_client", rclient.Name, "console", actor)
	if !cmd.Bool("wait") {
		fmt.Fprintf(&b, "\nRestore job queued. JobId=%d (follow it with: wait jobid=%d)", id, id)
		return &Output{Text: b.String(), JSON: p}, nil
	}
	progress("%s", strings.TrimRight(b.String(), "\n"))
	progress("Restore job queued. JobId=%d", id)
	return d.follow(ctx, id, progress)
}

// restoreStorage is the storage a restore reads with: storage=, else the
// storage the catalog records for the plan's volumes, else the only one
// configured.
func (d *Director) restoreStorage(ctx context.Context, named string, vols []string) (string, error) {
	if named != "" {
		if _, ok := d.storages[named]; !ok {
			return "", status.Errorf(codes.NotFound, "storage %q is not a [[storage]] of %s", named, d.cfg.Path)
		}
		return named, nil
	}
	for _, v := range vols {
		if m, err := d.store.GetMedia(ctx, v); err == nil && m.Storage != "" {
			if _, ok := d.storages[m.Storage]; ok {
				return m.Storage, nil
			}
		}
	}
	if len(d.cfg.Storages) == 1 {
		return d.cfg.Storages[0].Name, nil
	}
	return "", status.Errorf(codes.InvalidArgument, "the volumes %s record no configured storage: say which with storage=", strings.Join(vols, ", "))
}

// planText writes the plan a user reads before yes.
func (d *Director) planText(b *strings.Builder, p *RestorePlan, view *catalog.RestoreView, rel *pb.Relocation, lerr error) {
	as := "current"
	if p.Before != nil {
		as = "before " + p.Before.Format("2006-01-02 15:04:05 MST")
	}
	if view.ByJobIDs {
		as = "the jobs given"
	}
	fmt.Fprintf(b, "Restore plan: client %s, fileset %s (%s)\n", p.Client, p.Fileset, as)
	fmt.Fprintf(b, "  Jobs used:      ")
	for i, j := range view.Jobs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%d (%s, %s)", j.ID, orDashStr(j.Level), when(j.StartedAt))
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "  Files:          %d (and %d parent directories, restored with their recorded attributes)\n", p.Files, p.Directories)
	fmt.Fprintf(b, "  Bytes:          %s\n", jobs.HumanBytes(p.Bytes))
	if len(p.Missing) > 0 {
		fmt.Fprintf(b, "  Not in these backups (not restored): %s\n", strings.Join(p.Missing, ", "))
	}
	fmt.Fprintf(b, "  Volumes:        ")
	for i, w := range p.Volumes {
		if i > 0 {
			b.WriteString(", ")
		}
		where := w.String()
		if lerr != nil {
			where = "unknown"
		}
		fmt.Fprintf(b, "%s (%s)", w.Volume, where)
	}
	b.WriteString("\n")
	if lerr != nil {
		fmt.Fprintf(b, "  Storage %s did not say where its cartridges are: %s\n", p.Storage, status.Convert(lerr).Message())
	}
	if len(p.NotInLibrary) > 0 {
		fmt.Fprintf(b, "  NOT IN THE LIBRARY: %s — the job waits for them (put them in and run import), or fails at once with nowait\n", strings.Join(p.NotInLibrary, ", "))
	}
	fmt.Fprintf(b, "  Storage:        %s\n", p.Storage)
	fmt.Fprintf(b, "  Restore client: %s\n", p.RestoreClient)
	if rel.Regexwhere != "" {
		fmt.Fprintf(b, "  Regexwhere:     %s\n", rel.Regexwhere)
	} else {
		fmt.Fprintf(b, "  Where:          %s\n", rel.Where)
		for _, kv := range [][2]string{{"Strip prefix", rel.StripPrefix}, {"Add prefix", rel.AddPrefix}, {"Add suffix", rel.AddSuffix}} {
			if kv[1] != "" {
				fmt.Fprintf(b, "  %-15s %s\n", kv[0]+":", kv[1])
			}
		}
	}
	fmt.Fprintf(b, "  Replace:        %s\n", p.Replace)
}

func orDashStr(s string) string { return dash(s) }
