package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Restore selection and planning (issue 12, jobs.md §5).
//
// A restore reads a view: over the backups of a chain (the last
// successful Full before a time, the last Differential after it, every
// Incremental after that — RestoreChain — or the JobIds given), the
// newest version of every path that no later job of the chain recorded
// deleted. LoadRestoreView reads the whole view in one set-based query
// (viewSQL, joined with each member's tape file's first block and its
// continuation parts'); Select then picks members from it in memory
// (file=, directory=, fileregex=, all, or the tree browser's marks), adds
// the directories above every selected member (their recorded attributes
// are restored too: jobs.md §5's pitfall) and the first path's member of
// a hard link selected without it (planned with write_as). PlanRestore
// orders the members for reading: volume by volume, in tape order.

// RestoreMember is a member of a restore view with what reading it needs.
type RestoreMember struct {
	File
	// TapeFileFirstBlock is the absolute first block of At.TapeFile
	// (job_media.first_block): LOCATE goes to it plus At.Block.
	TapeFileFirstBlock int64
	// PartFirstBlocks[i] is the absolute first block of Parts[i]'s tape file.
	PartFirstBlocks []int64
}

// RestoreView is what a restore may bring back.
type RestoreView struct {
	Client  string
	Fileset string
	Before  time.Time // zero for a jobid= view
	// ByJobIDs: the view is of the jobs named (jobid=), not a chain.
	ByJobIDs bool
	Jobs     []Job // the backups read, oldest first
	Members  []RestoreMember
	// index of Members by path.
	byPath map[string]int
}

// ViewSpec names a restore view: JobIDs, or a client (and fileset) as it
// was before a time (zero: now).
type ViewSpec struct {
	Client  string
	Fileset string // "" : the client's only fileset
	Before  time.Time
	JobIDs  []int64
}

// RestoreFilesetsError says that a client has backups of several
// filesets and the restore did not say which.
type RestoreFilesetsError struct {
	Client   string
	Filesets []string
}

func (e *RestoreFilesetsError) Error() string {
	return fmt.Sprintf("client %s has backups of filesets %s: say which with fileset=", e.Client, strings.Join(e.Filesets, ", "))
}

// LoadRestoreView reads the view spec names.
func (s *Store) LoadRestoreView(ctx context.Context, spec ViewSpec) (*RestoreView, error) {
	v := &RestoreView{Client: spec.Client, Fileset: spec.Fileset}
	var chain []int64
	if len(spec.JobIDs) > 0 {
		jobs, err := s.restoreJobs(ctx, spec.JobIDs)
		if err != nil {
			return nil, err
		}
		v.Jobs, v.ByJobIDs = jobs, true
		v.Client, v.Fileset = jobs[0].Client, jobs[0].Fileset
		if spec.Client != "" && spec.Client != v.Client {
			return nil, invalid("jobid", "job %d is a backup of client %s, not %s", jobs[0].ID, v.Client, spec.Client)
		}
		for _, j := range jobs {
			chain = append(chain, j.ID)
		}
	} else {
		if spec.Client == "" {
			return nil, invalid("restore", "say which client's backups to restore (client=) or which jobs (jobid=)")
		}
		before := spec.Before
		if before.IsZero() {
			before = s.nowUTC().Add(time.Microsecond)
		} else {
			v.Before = before
		}
		if v.Fileset == "" {
			fs, err := s.clientFilesets(ctx, spec.Client, before)
			if err != nil {
				return nil, err
			}
			if len(fs) > 1 {
				return nil, &RestoreFilesetsError{Client: spec.Client, Filesets: fs}
			}
			v.Fileset = fs[0]
		}
		var err error
		chain, err = s.RestoreChain(ctx, Chain{Client: spec.Client, Fileset: v.Fileset}, before)
		if err != nil {
			return nil, err
		}
		for _, id := range chain {
			j, err := s.GetJob(ctx, id)
			if err != nil {
				return nil, err
			}
			v.Jobs = append(v.Jobs, j)
		}
	}
	op := "reading the restore view of client " + v.Client
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		// The view's sorts hold every member (100,000 files: about 30
		// MB each); on disk, with the default 4 MB, they took most of
		// the query's time.
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+restoreWorkMem+"'"); err != nil {
			return dbErr(op, err)
		}
		tfs, err := chainTapeFiles(ctx, tx, chain)
		if err != nil {
			return dbErr(op, err)
		}
		rows, err := tx.Query(ctx, restoreSelect+` FROM (`+viewSQL(true)+`) f ORDER BY f.path`, chain)
		if err != nil {
			return dbErr(op, err)
		}
		// Room for every file of the jobs (the view has at most that
		// many): no copies of a growing slice of every member.
		var most int64
		for _, j := range v.Jobs {
			most += j.Files
		}
		v.Members, err = pgx.AppendRows(make([]RestoreMember, 0, min(most, maxViewPrealloc)), rows,
			func(r pgx.CollectableRow) (RestoreMember, error) { return scanRestoreMember(r, tfs) })
		return dbErr(op, err)
	})
	if err != nil {
		return nil, err
	}
	v.index()
	return v, nil
}

// restoreWorkMem is PostgreSQL's work_mem for a restore view's query.
const restoreWorkMem = "128MB"

// maxViewPrealloc bounds the members a view's slice is made for at once
// (a chain's job summaries could be wrong; a larger view grows it).
const maxViewPrealloc = 1_000_000

// tapeFileKey names a tape file a job wrote (job_media's key).
type tapeFileKey struct {
	job, media int64
	tapeFile   int
}

// tapeFileAt is where a job's tape file is: its volume and first block.
type tapeFileAt struct {
	volume string
	first  int64
}

// chainTapeFiles reads the data tape files of the jobs: a handful of
// rows, which each member's media and tape file are looked up in (joined
// in the query, they cost it two more sorts of every member).
func chainTapeFiles(ctx context.Context, db querier, jobs []int64) (map[tapeFileKey]tapeFileAt, error) {
	rows, err := db.Query(ctx, `SELECT jm.job_id, jm.media_id, jm.tape_file, jm.first_block, m.volume_name
		FROM job_media jm JOIN media m ON m.id = jm.media_id
		WHERE jm.job_id = ANY($1) AND jm.kind = 'data'`, jobs)
	if err != nil {
		return nil, err
	}
	out := map[tapeFileKey]tapeFileAt{}
	var k tapeFileKey
	var at tapeFileAt
	_, err = pgx.ForEachRow(rows, []any{&k.job, &k.media, &k.tapeFile, &at.first, &at.volume}, func() error {
		out[k] = at
		return nil
	})
	return out, err
}

// NewRestoreView makes a view of members (sorted here by path), for
// tools and tests that hold members already.
func NewRestoreView(client, fileset string, jobs []Job, members []RestoreMember) *RestoreView {
	v := &RestoreView{Client: client, Fileset: fileset, Jobs: jobs, Members: members}
	slices.SortStableFunc(v.Members, func(a, b RestoreMember) int { return bytes.Compare(a.Path, b.Path) })
	v.index()
	return v
}

func (v *RestoreView) index() {
	v.byPath = make(map[string]int, len(v.Members))
	for i := range v.Members {
		v.byPath[string(v.Members[i].Path)] = i
	}
}

// restoreJobs reads the jobs of a jobid= list: successful backups of one
// client and fileset, returned by start time.
func (s *Store) restoreJobs(ctx context.Context, ids []int64) ([]Job, error) {
	var jobs []Job
	for _, id := range ids {
		j, err := s.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		switch {
		case j.Type != TypeBackup:
			return nil, invalid("jobid", "job %d is a %s job, not a backup", id, j.Type)
		case !j.Status.Successful():
			return nil, invalid("jobid", "job %d ended %s: only successful backups (T, W) are restored from", id, j.Status)
		case j.PurgedAt != nil:
			return nil, invalid("jobid", "job %d was purged %s (%s): its file records are gone, nothing of it can be restored by the director (tapextract reads the tapes themselves while their keys exist)",
				id, j.PurgedAt.UTC().Format("2006-01-02 15:04:05Z"), j.PurgedReason)
		case len(jobs) > 0 && (j.Client != jobs[0].Client || j.Fileset != jobs[0].Fileset):
			return nil, invalid("jobid", "jobs %d and %d back up different clients or filesets (%s/%s, %s/%s): restore them separately",
				jobs[0].ID, id, jobs[0].Client, jobs[0].Fileset, j.Client, j.Fileset)
		}
		jobs = append(jobs, j)
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		sa, sb := jobs[a].StartedAt, jobs[b].StartedAt
		if sa != nil && sb != nil && !sa.Equal(*sb) {
			return sa.Before(*sb)
		}
		return jobs[a].ID < jobs[b].ID
	})
	return jobs, nil
}

// clientFilesets lists the filesets of a client's successful backups
// started before a time (none: a *NotFoundError).
func (s *Store) clientFilesets(ctx context.Context, client string, before time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT fileset FROM jobs
		WHERE client = $1 AND job_type = 'Backup' AND status IN ('T', 'W') AND started_at < $2 AND fileset IS NOT NULL
		ORDER BY fileset`, client, before.UTC())
	if err != nil {
		return nil, dbErr("listing the filesets of client "+client, err)
	}
	fs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("listing the filesets of client "+client, err)
	}
	if len(fs) == 0 {
		return nil, notFound("backup", fmt.Sprintf("successful backup of client %q before %s", client, before.UTC().Format("2006-01-02 15:04:05Z")))
	}
	return fs, nil
}

// restoreSelect is fileSelect with the member's media id in place of
// its volume name (chainTapeFiles gives the volume and the first block
// of its tape file) and, per continuation part, [part, tape file, block,
// offset, data offset, first block of its tape file] with the part
// volumes.
const restoreSelect = `
	SELECT f.job_id, f.path, f.type, f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime_ns, f.link, f.sha256,
		f.media_id, f.tape_file, f.block, f.block_offset, f.stream_offset, COALESCE(f.stored_size, f.size),
		CASE WHEN f.parts = 0 THEN NULL ELSE (
			SELECT array_agg(ARRAY[p.part, p.tape_file, p.block, p.block_offset, p.data_offset, pj.first_block] ORDER BY p.part)
			FROM file_parts p JOIN job_media pj ON pj.job_id = p.job_id AND pj.media_id = p.media_id AND pj.tape_file = p.tape_file AND pj.kind = 'data'
			WHERE p.job_id = f.job_id AND p.stream_offset = f.stream_offset) END,
		CASE WHEN f.parts = 0 THEN NULL ELSE (
			SELECT array_agg(pm.volume_name ORDER BY p.part)
			FROM file_parts p JOIN media pm ON pm.id = p.media_id
			WHERE p.job_id = f.job_id AND p.stream_offset = f.stream_offset) END`

func scanRestoreMember(r pgx.CollectableRow, tfs map[tapeFileKey]tapeFileAt) (RestoreMember, error) {
	var (
		m     RestoreMember
		mode  int32
		media int64
		parts [][]int64
		vols  []string
	)
	err := r.Scan(&m.JobID, &m.Path, &m.Type, &m.Size, &mode, &m.UID, &m.GID, &m.Uname, &m.Gname, &m.MtimeNS, &m.Link, &m.SHA256,
		&media, &m.At.TapeFile, &m.At.Block, &m.At.Offset, &m.StreamOffset, &m.StoredSize, &parts, &vols)
	m.Mode = uint32(mode)
	if err == nil {
		at, ok := tfs[tapeFileKey{m.JobID, media, m.At.TapeFile}]
		if !ok {
			return m, fmt.Errorf("file %s of job %d is in tape file %d of media %d, which the job's tape files (job_media) do not list, so it cannot be located: the catalog is inconsistent (restore the catalog from its backup, or leave job %d out with jobid=)", RenderPath(m.Path), m.JobID, m.At.TapeFile, media, m.JobID)
		}
		m.At.Volume, m.TapeFileFirstBlock = at.volume, at.first
	}
	if err == nil && len(parts) != len(vols) {
		err = fmt.Errorf("file %s of job %d: %d parts but %d part volumes", RenderPath(m.Path), m.JobID, len(parts), len(vols))
	}
	for i, p := range parts {
		if err != nil {
			break
		}
		m.Parts = append(m.Parts, FilePart{Part: int(p[0]), At: Address{Volume: vols[i], TapeFile: int(p[1]), Block: p[2], Offset: int(p[3])}, DataOffset: p[4]})
		m.PartFirstBlocks = append(m.PartFirstBlocks, p[5])
	}
	return m, err
}

// Lookup returns the view's member at path (nil: none).
func (v *RestoreView) Lookup(path []byte) *RestoreMember {
	if i, ok := v.byPath[string(path)]; ok {
		return &v.Members[i]
	}
	return nil
}

// Criteria pick members of a view (their union; All takes everything).
type Criteria struct {
	Files       [][]byte // exact paths; a directory's takes its subtree (with or without the trailing '/')
	Directories [][]byte // a directory and everything under it
	Regex       *regexp.Regexp
	All         bool
}

// Empty reports whether c picks nothing at all.
func (c Criteria) Empty() bool {
	return !c.All && len(c.Files) == 0 && len(c.Directories) == 0 && c.Regex == nil
}

// Selection is what a restore brings back: members of the view in path
// order.
type Selection struct {
	Members []SelectedMember
	// Missing lists file= and directory= paths the view does not hold.
	Missing []string
	Files   int64 // members chosen by the criteria (ancestors not counted)
	Bytes   int64 // their regular files' sizes
}

// SelectedMember is a member a restore reads.
type SelectedMember struct {
	*RestoreMember
	// Ancestor: not picked itself; a directory above a picked member,
	// restored for its attributes.
	Ancestor bool
	// WriteAs: the member is the first path of a hard link picked without
	// it; its data is written under this stored path instead.
	WriteAs []byte
}

// IsDir reports a directory member (its path ends in '/').
func isDirPath(p []byte) bool { return len(p) > 0 && p[len(p)-1] == '/' }

// Marks is a set of picked paths (the criteria's result, or the tree
// browser's marks), keyed by stored path.
type Marks map[string]bool

// Mark picks the members c names into a new set. Paths c names that the
// view does not hold are returned.
func (v *RestoreView) Mark(c Criteria) (Marks, []string) {
	m := Marks{}
	var missing []string
	if c.All {
		for i := range v.Members {
			m[string(v.Members[i].Path)] = true
		}
		return m, nil
	}
	var prefixes [][]byte
	for _, f := range c.Files {
		if len(f) == 0 {
			continue
		}
		if v.Lookup(f) != nil && !isDirPath(f) {
			m[string(f)] = true
			continue
		}
		d := append(bytes.TrimRight(bytes.Clone(f), "/"), '/')
		if v.Lookup(d) != nil || v.hasUnder(d) {
			prefixes = append(prefixes, d)
			continue
		}
		missing = append(missing, RenderPath(f))
	}
	for _, f := range c.Directories {
		d := append(bytes.TrimRight(bytes.Clone(f), "/"), '/')
		if v.Lookup(d) != nil || v.hasUnder(d) {
			prefixes = append(prefixes, d)
			continue
		}
		missing = append(missing, RenderPath(f))
	}
	for _, d := range prefixes {
		// Members are in path byte order: a prefix's members are one run.
		i := sort.Search(len(v.Members), func(i int) bool { return bytes.Compare(v.Members[i].Path, d) >= 0 })
		for ; i < len(v.Members) && bytes.HasPrefix(v.Members[i].Path, d); i++ {
			m[string(v.Members[i].Path)] = true
		}
	}
	if c.Regex != nil {
		for i := range v.Members {
			if c.Regex.Match(v.Members[i].Path) {
				m[string(v.Members[i].Path)] = true
			}
		}
	}
	return m, missing
}

// hasUnder reports a member under directory d (which ends in '/').
func (v *RestoreView) hasUnder(d []byte) bool {
	i := sort.Search(len(v.Members), func(i int) bool { return bytes.Compare(v.Members[i].Path, d) >= 0 })
	return i < len(v.Members) && bytes.HasPrefix(v.Members[i].Path, d)
}

// Ancestors returns the stored paths of the directories above p, nearest
// last ("/a/b/c" → "/", "/a/", "/a/b/").
func Ancestors(p []byte) [][]byte {
	p = bytes.TrimRight(p, "/")
	var out [][]byte
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i+1])
		}
	}
	return out
}

// Select turns marks into a Selection: the marked members, the
// directories above them that the view holds, and for a hard link
// marked without its first path, that path's member with WriteAs (the
// link itself is then left out: its data goes under its own path). A
// hard link's first path the view does not hold (a later job changed
// it) is looked up in the link's own job by the caller: see
// Store.LinkTargets.
func (v *RestoreView) Select(marks Marks, targets map[linkKey]*RestoreMember) Selection {
	var sel Selection
	// Members are taken once each, by identity (a view member, or a
	// hard link's first path from another job).
	at := map[*RestoreMember]int{}
	add := func(rm *RestoreMember, ancestor bool) *SelectedMember {
		if i, ok := at[rm]; ok {
			if !ancestor {
				sel.Members[i].Ancestor = false
			}
			return &sel.Members[i]
		}
		at[rm] = len(sel.Members)
		sel.Members = append(sel.Members, SelectedMember{RestoreMember: rm, Ancestor: ancestor})
		return &sel.Members[len(sel.Members)-1]
	}
	ancestors := func(p []byte) {
		for _, a := range Ancestors(p) {
			if d := v.Lookup(a); d != nil {
				add(d, true)
			}
		}
	}
	for i := range v.Members {
		rm := &v.Members[i]
		if !marks[string(rm.Path)] {
			continue
		}
		sel.Files++
		if rm.Type == FileRegular {
			sel.Bytes += rm.Size
		}
		if rm.Type == FileLink && len(rm.Link) > 0 && !marks[string(rm.Link)] {
			t := v.Lookup(rm.Link)
			if t == nil || t.JobID != rm.JobID {
				t = targets[linkKey{rm.JobID, string(rm.Link)}]
			}
			if t != nil {
				if j, ok := at[t]; !ok || sel.Members[j].WriteAs == nil {
					sm := add(t, false)
					sm.WriteAs = rm.Path
					sel.Bytes += t.Size
					ancestors(rm.Path)
					continue
				}
			}
		}
		add(rm, false)
		ancestors(rm.Path)
	}
	slices.SortStableFunc(sel.Members, func(a, b SelectedMember) int { return bytes.Compare(a.Path, b.Path) })
	return sel
}

type linkKey struct {
	job  int64
	path string
}

// LinkTargets returns, for the hard links among marks whose first path
// is not the same job's member in the view, that member from the link's
// own job (one query for all of them).
func (s *Store) LinkTargets(ctx context.Context, v *RestoreView, marks Marks) (map[linkKey]*RestoreMember, error) {
	var jobs []int64
	var paths [][]byte
	for i := range v.Members {
		rm := &v.Members[i]
		if rm.Type != FileLink || len(rm.Link) == 0 || !marks[string(rm.Path)] || marks[string(rm.Link)] {
			continue
		}
		if t := v.Lookup(rm.Link); t != nil && t.JobID == rm.JobID {
			continue
		}
		jobs, paths = append(jobs, rm.JobID), append(paths, rm.Link)
	}
	out := map[linkKey]*RestoreMember{}
	if len(jobs) == 0 {
		return out, nil
	}
	op := "reading the first paths of hard links"
	tfs, err := chainTapeFiles(ctx, s.pool, jobs)
	if err != nil {
		return nil, dbErr(op, err)
	}
	rows, err := s.pool.Query(ctx, restoreSelect+`
		FROM files f JOIN unnest($1::bigint[], $2::bytea[]) AS w(job_id, path) ON w.job_id = f.job_id AND w.path = f.path`, jobs, paths)
	if err != nil {
		return nil, dbErr(op, err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RestoreMember, error) { return scanRestoreMember(r, tfs) })
	if err != nil {
		return nil, dbErr(op, err)
	}
	for i := range ms {
		out[linkKey{ms[i].JobID, string(ms[i].Path)}] = &ms[i]
	}
	return out, nil
}

// SelectCriteria marks c in v and selects (hard link first paths read
// from the catalog when needed). No member picked is an *InvalidError
// naming what was asked.
func (s *Store) SelectCriteria(ctx context.Context, v *RestoreView, c Criteria) (Selection, error) {
	marks, missing := v.Mark(c)
	targets, err := s.LinkTargets(ctx, v, marks)
	if err != nil {
		return Selection{}, err
	}
	sel := v.Select(marks, targets)
	sel.Missing = missing
	if len(sel.Members) == 0 {
		what := "nothing"
		if len(missing) > 0 {
			what = "none of " + strings.Join(missing, ", ")
		}
		return sel, invalid("restore selection", "the backups of client %s (fileset %s, jobs %s) hold %s: see list files jobid=N",
			v.Client, v.Fileset, jobList(v.Jobs), what)
	}
	return sel, nil
}

func jobList(js []Job) string {
	ids := make([]string, len(js))
	for i, j := range js {
		ids[i] = fmt.Sprint(j.ID)
	}
	return strings.Join(ids, ",")
}

// PlanEntry is one member to read on one volume.
type PlanEntry struct {
	Seq    uint64 // 1, 2, … in plan order; a continuation has its member's
	Member *SelectedMember
	// ContinuationPart: 0 for the member's first part; else which of
	// Member.Parts this entry reads (1: Parts[0]), whose tape file starts
	// at PartFirstBlock.
	ContinuationPart int
	PartFirstBlock   int64
	TapeFile         int
	Block            int64
}

// PlanVolume is a visit of one volume: the entries to read on it, in
// reading order. A volume may be visited again later in a plan.
type PlanVolume struct {
	Volume  string
	Entries []PlanEntry
}

// PlanRestore orders a selection for reading: job order (the chain's),
// then tape order within a job (its stream order: tape file, block,
// offset), a new visit whenever the volume changes. A member cut by the
// end of a volume is followed at once by its continuations, each first
// on the next volume (storaged stitches them), with the member's Seq.
// Consecutive members of later jobs on the same volume share the visit.
func PlanRestore(sel Selection, jobOrder []int64) []PlanVolume {
	rank := map[int64]int{}
	for i, id := range jobOrder {
		rank[id] = i
	}
	type ranked struct {
		rank int
		m    *SelectedMember
	}
	rs := make([]ranked, len(sel.Members))
	for i := range sel.Members {
		rs[i] = ranked{rank[sel.Members[i].JobID], &sel.Members[i]}
	}
	slices.SortStableFunc(rs, func(x, y ranked) int {
		if x.rank != y.rank {
			return x.rank - y.rank
		}
		return cmpInt64(x.m.StreamOffset, y.m.StreamOffset)
	})
	var out []PlanVolume
	add := func(vol string, e PlanEntry) {
		if n := len(out); n == 0 || out[n-1].Volume != vol {
			out = append(out, PlanVolume{Volume: vol})
		}
		out[len(out)-1].Entries = append(out[len(out)-1].Entries, e)
	}
	for i, r := range rs {
		m, seq := r.m, uint64(i+1)
		add(m.At.Volume, PlanEntry{Seq: seq, Member: m, TapeFile: m.At.TapeFile, Block: m.At.Block})
		for k, p := range m.Parts {
			add(p.At.Volume, PlanEntry{Seq: seq, Member: m, ContinuationPart: k + 1, PartFirstBlock: m.PartFirstBlocks[k],
				TapeFile: p.At.TapeFile, Block: p.At.Block})
		}
	}
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ParseRestoreTime reads a before= time in the director's time zone loc:
// "2026-11-30 12:00[:05]", "2026-11-30T12:00[:05]" (also with a zone, RFC
// 3339), "2026-11-30" (midnight: before that day) or "2026-11" (before
// that month).
func ParseRestoreTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, invalid("before", "%q is not a time: write 2026-11-30 12:00, 2026-11-30 or 2026-11 (quoted when it holds a space)", s)
}

// ParseJobIDs reads a jobid= list ("41,42").
func ParseJobIDs(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		var n int64
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 || fmt.Sprint(n) != strings.TrimLeft(f, "0") {
			return nil, invalid("jobid", "%q is not a JobId: write jobid=41 or jobid=41,42", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// IsRestoreFilesetsError reports a *RestoreFilesetsError.
func IsRestoreFilesetsError(err error) bool {
	var e *RestoreFilesetsError
	return errors.As(err, &e)
}
