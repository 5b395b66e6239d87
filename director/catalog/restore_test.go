package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mrow is a member of type typ at stream offset off; link for links.
func mrow(path, typ, link string, off int64) FileRow {
	r := row(path, "V00001", off)
	r.Type = typ
	if typ != FileRegular {
		r.SHA256 = nil
		r.Size = 0
	}
	if link != "" {
		r.Link = []byte(link)
	}
	return r
}

// storeJob runs a backup of nightly/web1/home at level storing rows (on
// V00001 from block 10 of tape file tf, first block firstBlock; rows with
// Parts continue on V00002 part 2), having seen seen, and ends it T.
func (f *fixture) storeJob(t *testing.T, level string, rows []FileRow, seen []string) int64 {
	t.Helper()
	job, d := f.backup(t, "nightly", "web1", idHome, level, 0)
	if d.Level != level {
		t.Fatalf("level %s ran as %s", level, d.Level)
	}
	dels, err := f.s.BeginDeletions(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	var ps [][]byte
	for _, p := range seen {
		ps = append(ps, []byte(p))
	}
	if err := dels.Add(ps, nil, nil); err != nil {
		t.Fatal(err)
	}
	tf := f.part(t, job, "V00001")
	var parts bool
	for _, r := range rows {
		parts = parts || len(r.Parts) > 0
	}
	if parts {
		if _, err := f.s.GetMedia(f.ctx, "V00002"); errors.Is(err, ErrNotFound) {
			f.label(t, "V00002", "", "sd1", NoSlot, f.testRing(t))
		}
		tf2, _ := f.s.NextTapeFile(f.ctx, "V00002")
		if err := f.s.RecordPart(f.ctx, job, Part{Part: 2, Volume: "V00002", VolumeIndex: 2, TapeFile: tf2, FirstBlock: 7}); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			for k := range rows[i].Parts {
				rows[i].Parts[k].At.TapeFile = tf2
			}
		}
	}
	b, err := f.s.BeginFiles(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, r := range rows {
		r.At.TapeFile = tf
		if err := b.Add(f.ctx, r); err != nil {
			t.Fatal(err)
		}
		end = r.EndOffset
	}
	if _, err := b.Flush(f.ctx, end); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CompletePart(f.ctx, job, 1, 1, end); err != nil {
		t.Fatal(err)
	}
	if parts {
		if err := f.s.CompletePart(f.ctx, job, 2, 8, 1024); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dels.Finish(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.end(t, job, JobOK)
	return job
}

func selPaths(s Selection) string {
	var out []string
	for _, m := range s.Members {
		p := string(m.Path)
		if m.Ancestor {
			p += "(a)"
		}
		if m.WriteAs != nil {
			p += "->" + string(m.WriteAs)
		}
		out = append(out, p)
	}
	return strings.Join(out, " ")
}

func TestRestoreSelectAndPlan(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	if _, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a client without backups: %v", err)
	}
	big := mrow("/d/sub/big", FileRegular, "", 5*1024)
	big.Size, big.StoredSize = 5000, 4000 // sparse: its stored data is smaller
	big.Parts = []FilePart{{Part: 2, At: Address{Volume: "V00002", Block: 0, Offset: 0}, DataOffset: 3000}}
	big.StreamOffset, big.EndOffset = 7*1024, 8*1024
	full := f.storeJob(t, LevelFull, []FileRow{
		mrow("/d/", FileDir, "", 0), mrow("/d/a", FileRegular, "", 1024), mrow("/d/h", FileRegular, "", 2*1024),
		mrow("/d/sub/", FileDir, "", 3*1024), mrow("/d/sub/b.pdf", FileRegular, "", 4*1024),
		mrow("/d/sub/l", FileLink, "/d/h", 5*1024), mrow("/d/x", FileRegular, "", 6*1024), big,
	}, nil)
	afterFull := f.clock.Now()
	// Incremental: /d/a changed, /d/x deleted, /d/c new.
	inc := f.storeJob(t, LevelIncremental, []FileRow{mrow("/d/", FileDir, "", 0), mrow("/d/a", FileRegular, "", 1024), mrow("/d/c", FileRegular, "", 2*1024)},
		[]string{"/d/", "/d/a", "/d/c", "/d/h", "/d/sub/", "/d/sub/b.pdf", "/d/sub/big", "/d/sub/l"})

	v, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Fileset != "home" || len(v.Jobs) != 2 || v.Jobs[0].ID != full || v.Jobs[1].ID != inc {
		t.Fatalf("view: fileset %q jobs %+v", v.Fileset, v.Jobs)
	}
	var got []string
	for _, m := range v.Members {
		got = append(got, fmt.Sprintf("%s@%d", m.Path, m.JobID))
	}
	want := fmt.Sprintf("/d/@%[2]d /d/a@%[2]d /d/c@%[2]d /d/h@%[1]d /d/sub/@%[1]d /d/sub/b.pdf@%[1]d /d/sub/big@%[1]d /d/sub/l@%[1]d", full, inc)
	if strings.Join(got, " ") != want {
		t.Fatalf("current view:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	big2 := v.Lookup([]byte("/d/sub/big"))
	if a := v.Lookup([]byte("/d/a")); a == nil || a.StoredSize != a.Size {
		t.Fatalf("stored size of /d/a: %+v", a)
	}
	if big2 == nil || big2.StoredSize != 4000 || len(big2.Parts) != 1 || big2.PartFirstBlocks[0] != 7 || big2.Parts[0].At.Volume != "V00002" {
		t.Fatalf("continuation part of /d/sub/big: %+v", big2)
	}

	cases := []struct {
		c    Criteria
		want string
	}{
		{Criteria{Files: [][]byte{[]byte("/d/sub/b.pdf")}}, "/d/(a) /d/sub/(a) /d/sub/b.pdf"},
		// A hard link without its first path: the first path's member is
		// planned with write_as, the link itself is not.
		{Criteria{Files: [][]byte{[]byte("/d/sub/l")}}, "/d/(a) /d/h->/d/sub/l /d/sub/(a)"},
		{Criteria{Files: [][]byte{[]byte("/d/sub/l"), []byte("/d/h")}}, "/d/(a) /d/h /d/sub/(a) /d/sub/l"},
		{Criteria{Directories: [][]byte{[]byte("/d/sub")}}, "/d/(a) /d/h->/d/sub/l /d/sub/ /d/sub/b.pdf /d/sub/big"},
		{Criteria{Files: [][]byte{[]byte("/d/sub")}}, "/d/(a) /d/h->/d/sub/l /d/sub/ /d/sub/b.pdf /d/sub/big"},
		{Criteria{Regex: regexp.MustCompile(`\.pdf$`)}, "/d/(a) /d/sub/(a) /d/sub/b.pdf"},
		{Criteria{All: true}, "/d/ /d/a /d/c /d/h /d/sub/ /d/sub/b.pdf /d/sub/big /d/sub/l"},
	}
	for _, c := range cases {
		sel, err := f.s.SelectCriteria(ctx, v, c.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := selPaths(sel); got != c.want {
			t.Errorf("select %+v:\n got %s\nwant %s", c.c, got, c.want)
		}
	}
	sel, err := f.s.SelectCriteria(ctx, v, Criteria{Files: [][]byte{[]byte("/d/x"), []byte("/nope"), []byte("/d/a")}})
	if err != nil || strings.Join(sel.Missing, ",") != "/d/x,/nope" || sel.Files != 1 {
		t.Fatalf("deleted and unknown paths: missing %v files %d, %v", sel.Missing, sel.Files, err)
	}
	var ie *InvalidError
	if _, err := f.s.SelectCriteria(ctx, v, Criteria{Files: [][]byte{[]byte("/d/x")}}); !errors.As(err, &ie) || !strings.Contains(err.Error(), "/d/x") {
		t.Fatalf("a deleted file alone: %v", err)
	}

	// The plan: job order, then tape order; the continuation of
	// /d/sub/big right after it, first on V00002 with the same seq; the
	// Incremental's members on V00001 again.
	sel, _ = f.s.SelectCriteria(ctx, v, Criteria{All: true})
	plan := PlanRestore(sel, []int64{full, inc})
	var visits []string
	var last uint64
	for _, pv := range plan {
		var es []string
		for _, e := range pv.Entries {
			s := fmt.Sprintf("%s@%d", e.Member.Path, e.TapeFile)
			if e.ContinuationPart != 0 {
				s += fmt.Sprintf("+part%d@%d", e.ContinuationPart, e.PartFirstBlock)
				if e.Seq != last {
					t.Errorf("continuation seq %d, its member's %d", e.Seq, last)
				}
			} else if e.Seq <= last {
				t.Errorf("seq %d after %d", e.Seq, last)
			}
			last = e.Seq
			es = append(es, s)
		}
		visits = append(visits, pv.Volume+": "+strings.Join(es, " "))
	}
	tfFull, tfInc := v.Lookup([]byte("/d/h")).At.TapeFile, v.Lookup([]byte("/d/c")).At.TapeFile
	tfCont := big2.Parts[0].At.TapeFile
	want = fmt.Sprintf("V00001: /d/h@%[1]d /d/sub/@%[1]d /d/sub/b.pdf@%[1]d /d/sub/l@%[1]d /d/sub/big@%[1]d | V00002: /d/sub/big@%[3]d+part1@7 | V00001: /d/@%[2]d /d/a@%[2]d /d/c@%[2]d",
		tfFull, tfInc, tfCont)
	if got := strings.Join(visits, " | "); got != want {
		t.Fatalf("plan:\n got %s\nwant %s", got, want)
	}

	// before= the Incremental: the Full's view (/d/x back, no /d/c).
	v2, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1", Before: afterFull})
	if err != nil || v2.Lookup([]byte("/d/x")) == nil || v2.Lookup([]byte("/d/c")) != nil || len(v2.Jobs) != 1 {
		t.Fatalf("view before the Incremental: %v", err)
	}
	// jobid= the Incremental alone.
	v3, err := f.s.LoadRestoreView(ctx, ViewSpec{JobIDs: []int64{inc}})
	if err != nil || len(v3.Members) != 3 || v3.Client != "web1" {
		t.Fatalf("jobid view: %d members, %v", len(v3.Members), err)
	}
	// Another fileset of the same client: fileset= is needed.
	j, err := f.s.CreateJob(ctx, JobNew{Name: "etc", Type: TypeBackup, Level: LevelFull, Client: "web1", Fileset: "etc", FilesetIdentity: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.StartJob(ctx, j, LevelDecision{Level: LevelFull}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.end(t, j, JobOK)
	var fe *RestoreFilesetsError
	if _, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1"}); !errors.As(err, &fe) || !strings.Contains(err.Error(), "etc, home") {
		t.Fatalf("two filesets: %v", err)
	}
	if v4, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1", Fileset: "home"}); err != nil || len(v4.Members) != 8 {
		t.Fatalf("fileset=home: %v", err)
	}
	if _, err := f.s.LoadRestoreView(ctx, ViewSpec{JobIDs: []int64{inc, j}}); !errors.As(err, &ie) {
		t.Fatalf("jobs of two filesets: %v", err)
	}
}

func TestParseRestoreTimeAndJobIDs(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-30 12:00":     "2026-11-30T12:00:00Z",
		"2026-11-30 12:00:05":  "2026-11-30T12:00:05Z",
		"2026-11-30":           "2026-11-30T00:00:00Z",
		"2026-11":              "2026-11-01T00:00:00Z",
		"2026-11-30T12:00:00Z": "2026-11-30T12:00:00Z",
	} {
		got, err := ParseRestoreTime(in, time.UTC)
		if err != nil || got.UTC().Format(time.RFC3339) != want {
			t.Errorf("ParseRestoreTime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseRestoreTime("yesterday", time.UTC); err == nil || !strings.Contains(err.Error(), "2026-11-30 12:00") {
		t.Errorf("a bad time: %v", err)
	}
	if ids, err := ParseJobIDs("41,42,41"); err != nil || fmt.Sprint(ids) != "[41 42]" {
		t.Errorf("ParseJobIDs = %v, %v", ids, err)
	}
	for _, bad := range []string{"", "41,", "x", "-3", "0"} {
		if _, err := ParseJobIDs(bad); err == nil {
			t.Errorf("ParseJobIDs(%q) accepted", bad)
		}
	}
}

// TestRestoreViewTapeFileUnlisted: a file whose tape file its job's tape
// files (job_media) do not list cannot be located: the view fails naming
// it, where joining the two dropped the file from the restore unsaid.
// The view's members also carry their tape file's first block.
func TestRestoreViewTapeFileUnlisted(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	full := f.storeJob(t, LevelFull, []FileRow{mrow("/d/", FileDir, "", 0), mrow("/d/a", FileRegular, "", 1024)}, nil)
	v, err := f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1"})
	if err != nil || len(v.Members) != 2 {
		t.Fatalf("view: %v, %v", v, err)
	}
	var first int64
	if err := f.s.pool.QueryRow(ctx, `SELECT first_block FROM job_media WHERE job_id = $1 AND kind = 'data'`, full).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for _, m := range v.Members {
		if m.TapeFileFirstBlock != first || m.At.Volume == "" {
			t.Fatalf("%s: at %+v, first block %d; want the tape file's %d", m.Path, m.At, m.TapeFileFirstBlock, first)
		}
	}
	if _, err := f.s.pool.Exec(ctx, `DELETE FROM job_media WHERE job_id = $1`, full); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.LoadRestoreView(ctx, ViewSpec{Client: "web1"})
	if err == nil || !strings.Contains(err.Error(), "file /d/") || !strings.Contains(err.Error(), "job_media") {
		t.Fatalf("view with the job's tape files gone: %v; want an error naming /d/ and job_media", err)
	}
}
