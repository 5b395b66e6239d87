package main

// End-to-end tests of restores (issue 12): real PostgreSQL, vtl,
// storaged, director and filed processes; backups made with run, then
// restored with tapectl "restore …" as an operator would, each restored
// tree compared with the snapshot the test took of the original when it
// was backed up (tools/lib/testtree).

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

var restoreIDRe = regexp.MustCompile(`JobId=(\d+)`)

// restore runs a restore line (yes added) and waits for its job; it
// returns the job row and its report.
func (w *world) restore(line string) (jobRow, string) {
	w.t.Helper()
	out := w.ok(line + " yes")
	m := restoreIDRe.FindStringSubmatch(out)
	if m == nil {
		w.t.Fatalf("%q printed no JobId:\n%s", line+" yes", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return w.waitJob(id, 2*time.Minute)
}

// restoreOK is restore requiring status T.
func (w *world) restoreOK(line string) jobRow {
	w.t.Helper()
	j, report := w.restore(line)
	if j.Status != "T" {
		w.t.Fatalf("restore %q: job %d status %s, want T; error %q\nreport:\n%s\njob log:\n%s\ndirector log:\n%s",
			line, j.ID, j.Status, j.ErrorReason, report, w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", j.ID)), w.dird.Output())
	}
	return j
}

// treeDiff compares the tree restored under got (the original root
// relocated) with the snapshot want of the original root: the same paths,
// types, sizes, modes, data digests, symlink targets and regular files'
// mtimes. It returns one line per difference.
func treeDiff(t testing.TB, got string, want testtree.Snapshot, root string) []string {
	t.Helper()
	snap, err := testtree.Take(got)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for p, e := range want {
		g, ok := snap[got+strings.TrimPrefix(p, root)]
		if !ok {
			out = append(out, fmt.Sprintf("%q (%s) not restored", p, e.Type))
			continue
		}
		switch {
		case g.Type != e.Type:
			out = append(out, fmt.Sprintf("%q restored as %s, want %s", p, g.Type, e.Type))
		case e.Type == "file" && (g.Size != e.Size || g.SHA256 != e.SHA256):
			out = append(out, fmt.Sprintf("%q: %d bytes %x, want %d bytes %x", p, g.Size, g.SHA256[:4], e.Size, e.SHA256[:4]))
		case e.Type == "symlink" && g.Link != e.Link:
			out = append(out, fmt.Sprintf("%q: symlink to %q, want %q", p, g.Link, e.Link))
		case e.Type != "symlink" && g.Mode != e.Mode:
			out = append(out, fmt.Sprintf("%q: mode %04o, want %04o", p, g.Mode, e.Mode))
		case e.Type == "file" && !g.Mtime.Equal(e.Mtime):
			out = append(out, fmt.Sprintf("%q: mtime %s, want %s", p, g.Mtime, e.Mtime))
		}
	}
	for p, g := range snap {
		if _, ok := want[root+strings.TrimPrefix(p, got)]; !ok {
			out = append(out, fmt.Sprintf("%q (%s) restored but not in the tree backed up", p, g.Type))
		}
	}
	slices.Sort(out)
	return out
}

func requireTree(t testing.TB, what, got string, want testtree.Snapshot, root string) {
	t.Helper()
	if d := treeDiff(t, got, want, root); len(d) > 0 {
		if len(d) > 20 {
			d = append(d[:20], fmt.Sprintf("… and %d more", len(d)-20))
		}
		t.Fatalf("%s: the restored tree differs from the one backed up:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// noSuchPath requires that nothing exists at p.
func noSuchPath(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s exists", p)
	}
}

// A Full, an Incremental and a Differential, each restored as it was
// (before= the next job) and as now (current), compared with the
// snapshot taken when it ran: changed files in their version, deleted
// files not resurrected, renamed ones under their new name only.
func TestRestoreChainPointInTime(t *testing.T) {
	w := newBackupWorld(t, backupOpts{})
	root := w.root["web1"]
	snap0 := w.makeTree("web1", testtree.Options{Seed: 11, LargeFiles: 1, LargeSize: 2 << 20, SmallFiles: 120, SmallSize: 1500,
		Links: true, OddNames: true, LongName: true, SparseSize: 4 << 20})
	p := func(rel string) string { return root + "/" + rel }
	rng := testtree.Rand(5)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	full, _ := w.backup("web1-home", "Full", "Full")
	t0 := time.Now().UTC()

	must(testtree.WriteRandom(p("small/d00/s0003.bin"), 2600, rng))
	must(os.Remove(p("small/d00/s0005.bin")))
	must(os.Rename(p("small/d00/s0007.bin"), p("names/renamed.bin")))
	must(os.Chmod(p("big/large-00.bin"), 0o600))
	// A directory moved: its files keep their mtime and ctime (older than
	// the since-time); the Incremental stores them because the catalog
	// has no rows for their new paths.
	must(os.Rename(p("small/d01"), p("names/moved")))
	snap1 := w.snapshot("web1")
	incr, _ := w.backup("web1-home", "Incremental", "Incremental")
	t1 := time.Now().UTC()

	must(testtree.WriteRandom(p("names/moved/s0110.bin"), 300, rng))
	must(testtree.WriteRandom(p("small/d00/s0005.bin"), 700, rng)) // re-created
	must(os.Remove(p("names/renamed.bin")))
	snap2 := w.snapshot("web1")
	diff, _ := w.backup("web1-home", "Differential", "Differential")

	for _, c := range []struct {
		name, sel string
		snap      testtree.Snapshot
		jobs      []int64
	}{
		{"before the Incremental", `before="` + t0.Format(time.RFC3339Nano) + `"`, snap0, []int64{full.ID}},
		{"before the Differential", `before="` + t1.Format(time.RFC3339Nano) + `"`, snap1, []int64{full.ID, incr.ID}},
		{"current", "current", snap2, []int64{full.ID, diff.ID}},
	} {
		where := filepath.Join(w.dir, "r-"+strings.ReplaceAll(c.name, " ", "-"))
		plan := w.ok("restore client=web1 " + c.sel + " all where=" + where)
		for _, id := range c.jobs {
			if !strings.Contains(plan, strconv.FormatInt(id, 10)+" (") {
				t.Errorf("%s: the plan does not name job %d:\n%s", c.name, id, plan)
			}
		}
		if !strings.Contains(plan, "Nothing was run") {
			t.Errorf("%s: a restore without yes does not say it ran nothing:\n%s", c.name, plan)
		}
		noSuchPath(t, where)
		j := w.restoreOK("restore client=web1 " + c.sel + " all where=" + where)
		requireTree(t, c.name, where+root, c.snap, root)
		if n, _ := c.snap.Files(); j.Files < int64(n) {
			t.Errorf("%s: the job counts %d files restored, the tree has %d regular files", c.name, j.Files, n)
		}
	}
	// Deleted and renamed files: not resurrected.
	cur := filepath.Join(w.dir, "r-current")
	noSuchPath(t, cur+p("small/d00/s0007.bin"))
	noSuchPath(t, cur+p("names/renamed.bin"))
	noSuchPath(t, cur+p("small/d01"))
	if log := w.ok(fmt.Sprintf("list joblog jobid=%d", incr.ID)); !strings.Contains(log, "20 files with unchanged times fetched") {
		t.Errorf("the Incremental's log does not say it fetched the moved directory's 20 files:\n%s", log)
	}

	// One file of the Incremental by jobid=, with its parents' attributes.
	where := filepath.Join(w.dir, "r-one")
	w.restoreOK(fmt.Sprintf("restore jobid=%d file=%s where=%s", incr.ID, p("small/d00/s0003.bin"), where))
	requireTree(t, "one file of the Incremental", where+root, snap1.Only(append(testtree.Parents(p("small/d00/s0003.bin"))[:3], p("small/d00/s0003.bin"))...), root)

	if out := w.ok("list jobs type=Restore"); strings.Count(out, "RestoreFiles") != 4 {
		t.Errorf("list jobs type=Restore does not list the 4 restores:\n%s", out)
	}
	w.checkNoKeyMaterialInLogs()
}

// dryrun lists the targets and writes nothing; file=<LIST reads the
// paths on tapectl's side; a restore client other than the backup's gets
// the files; every replace= mode decides per file with what is on disk.
func TestRestoreDryRunOtherClientReplace(t *testing.T) {
	w := newBackupWorld(t, backupOpts{clients: []string{"web1", "web2"}})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 12, SmallFiles: 20, SmallSize: 1000})
	w.backup("web1-home", "Full", "Full")
	a, b := root+"/small/d00/s0001.bin", root+"/small/d00/s0002.bin"

	list := filepath.Join(w.dir, "paths.txt")
	if err := os.WriteFile(list, []byte(a+"\n\n"+b+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	where := filepath.Join(w.dir, "dry")
	out := w.ok("restore client=web1 file=<" + list + " where=" + where + " dryrun")
	for _, f := range []string{a, b} {
		if !strings.Contains(out, f+" -> "+where+f) {
			t.Errorf("dryrun does not say %s goes to %s:\n%s", f, where+f, out)
		}
	}
	noSuchPath(t, where)

	// To web2 (its own filed writes), with strip_prefix and add_prefix.
	other := filepath.Join(w.dir, "on-web2")
	w.restoreOK(fmt.Sprintf("restore client=web1 file=%s restoreclient=web2 strip_prefix=%s add_prefix=%s where=/", a, root, other))
	got, err := testtree.Take(other + "/small/d00")
	if e := got[other+"/small/d00/s0001.bin"]; err != nil || e.SHA256 != snap[a].SHA256 || e.Mode != snap[a].Mode {
		t.Fatalf("the file restored on web2 under %s: %+v, %v; want %+v", other, e, err, snap[a])
	}

	// replace= against a file on disk that is newer, then older.
	dst := filepath.Join(w.dir, "rep")
	target := dst + a
	put := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(target, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	backedUp := snap[a]
	newer, older := backedUp.Mtime.Add(time.Hour), backedUp.Mtime.Add(-time.Hour)
	for _, c := range []struct {
		replace string
		disk    time.Time
		kept    bool
	}{
		{"never", older, true}, {"ifnewer", newer, true}, {"ifnewer", older, false},
		{"ifolder", older, true}, {"ifolder", newer, false}, {"always", newer, false},
	} {
		put("on disk", c.disk)
		w.restoreOK(fmt.Sprintf("restore client=web1 file=%s where=%s replace=%s", a, dst, c.replace))
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if kept := string(got) == "on disk"; kept != c.kept {
			t.Errorf("replace=%s with the file on disk %s the backup's: kept = %v, want %v", c.replace, map[bool]string{true: "newer than", false: "older than"}[c.disk.After(backedUp.Mtime)], kept, c.kept)
		}
	}
}

// A hostile catalog row (a path with ../..): the client refuses it, the
// job fails naming it, and nothing is written outside the target.
func TestRestoreHostileCatalogRow(t *testing.T) {
	w := newBackupWorld(t, backupOpts{})
	root := w.root["web1"]
	w.makeTree("web1", testtree.Options{Seed: 13, SmallFiles: 3, SmallSize: 100})
	full, _ := w.backup("web1-home", "Full", "Full")
	f := root + "/small/d00/s0001.bin"
	evil := "/../../x-escaped"
	if _, err := w.db().Exec(t.Context(), `UPDATE files SET path = $2 WHERE job_id = $1 AND path = $3`, full.ID, []byte(evil), []byte(f)); err != nil {
		t.Fatal(err)
	}
	where := filepath.Join(w.dir, "deep", "er", "target")
	j, report := w.restore("restore client=web1 all where=" + where)
	if j.Status != "E" || !strings.Contains(j.ErrorReason, "x-escaped") {
		t.Fatalf("a restore of a catalog row %q: status %s, error %q, want E naming it\n%s", evil, j.Status, j.ErrorReason, report)
	}
	// storaged finds another path on tape at the row's address and stops
	// the session there: nothing is written outside the target, nor
	// under the hostile name anywhere.
	noSuchPath(t, filepath.Join(w.dir, "x-escaped"))
	noSuchPath(t, filepath.Join(w.dir, "deep", "x-escaped"))
	noSuchPath(t, "/x-escaped")
	filepath.WalkDir(w.dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "x-escaped") {
			t.Errorf("%s was written", p)
		}
		return nil
	})
}

// A volume outside the library: the plan names it; with nowait the job
// fails naming it; without, the job waits (status M, saying which) until
// import brings it back, then restores.
func TestRestoreVolumeNotInLibrary(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{slots: 5, drives: 1, vtlArgs: []string{"--ie-slots", "2"}}, volumes: 2})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 14, SmallFiles: 3, SmallSize: 100})
	full, _ := w.backup("web1-home", "Full", "Full")
	vol := w.jobVolumes(full.ID)[0]
	w.ok("update volume=" + vol + " status=Used")
	w.ok("export volume=" + vol + " yes")
	where := filepath.Join(w.dir, "r")
	plan := w.ok("restore client=web1 all where=" + where)
	if !strings.Contains(plan, vol+" (not in the library)") || !strings.Contains(plan, "NOT IN THE LIBRARY: "+vol) {
		t.Fatalf("the plan does not name %s as not in the library:\n%s", vol, plan)
	}
	j, _ := w.restore("restore client=web1 all where=" + where + " nowait")
	if j.Status != "E" || !strings.Contains(j.ErrorReason, "not in the library") || !strings.Contains(j.ErrorReason, vol) {
		t.Fatalf("restore nowait with %s outside the library: status %s, error %q", vol, j.Status, j.ErrorReason)
	}
	noSuchPath(t, where)

	out := w.ok("restore client=web1 all where=" + where + " yes")
	m := restoreIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JobId:\n%s", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	testenv.WaitFor(t, "the restore to wait for "+vol, func() bool { return w.job(id).Status == "M" })
	if st := w.ok("status director"); !strings.Contains(st, "waiting for volumes not in the library of storage sd1: "+vol) {
		t.Errorf("status director does not say the restore waits for %s:\n%s", vol, st)
	}
	noSuchPath(t, where)
	w.ok("import")
	if j, report := w.waitJob(id, time.Minute); j.Status != "T" {
		t.Fatalf("the restore after import: %s %q\n%s", j.Status, j.ErrorReason, report)
	}
	requireTree(t, "after the volume came back", where+root, snap, root)
}

// A file larger than a volume, restored from both.
func TestRestoreSpanningTwoVolumes(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{slots: 4, capacity: "8MiB"}, volumes: 3})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 15, LargeFiles: 1, LargeSize: 10 << 20, SmallFiles: 2, SmallSize: 1 << 20})
	full, _ := w.backup("web1-home", "Full", "Full")
	if vols := w.jobVolumes(full.ID); len(vols) < 2 {
		t.Fatalf("the Full wrote volumes %q, want 2", vols)
	}
	where := filepath.Join(w.dir, "r")
	w.restoreOK("restore client=web1 current all where=" + where)
	requireTree(t, "a file over two volumes", where+root, snap, root)
}

// One small file from the middle of a large tape file: storaged LOCATEs
// to its block and reads at most 2 data blocks (the vtl's read counters,
// beyond what mounting the volume reads).
func TestRestoreOneFileReadsFewBlocks(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{drives: 1, capacity: "256MiB"}})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 16, LargeFiles: 3, LargeSize: 12 << 20, SmallFiles: 150, SmallSize: 3000})
	full, _ := w.backup("web1-home", "Full", "Full")
	vol := w.jobVolumes(full.ID)[0]
	f := root + "/small/d00/s0077.bin"
	var block int64
	if err := w.q(`SELECT block FROM files WHERE job_id = $1 AND path = $2`, full.ID, []byte(f)).Scan(&block); err != nil || block < 30 {
		t.Fatalf("%s at block %d (%v): not in the middle of a large tape file", f, block, err)
	}
	var slot int
	if err := w.q(`SELECT slot FROM media WHERE volume_name = $1`, vol).Scan(&slot); err != nil {
		t.Fatal(err)
	}
	// What mounting the volume reads (its label): measured, not assumed.
	w.vtl.Reads(t, true)
	w.ok(fmt.Sprintf("mount storage=sd1 slot=%d drive=0", slot))
	w.ok("unmount storage=sd1 drive=0")
	mountBlocks, _ := w.vtl.Reads(t, true).Cartridge(vol)

	// The directories above the file are restored too, from their
	// catalog records (from_record): nothing is read for them.
	where := filepath.Join(w.dir, "r")
	j := w.restoreOK("restore client=web1 file=" + f + " where=" + where)
	blocks, bytesRead := w.vtl.Reads(t, true).Cartridge(vol)
	t.Logf("one %d-byte file at block %d: %d blocks (%d bytes) read; the mount alone %d",
		snap[f].Size, block, blocks, bytesRead, mountBlocks)
	if data := blocks - mountBlocks; data > 2 || data < 1 {
		t.Fatalf("the restore of one file read %d blocks: the mount %d and %d for the file: want 1 or 2 data blocks\njob log:\n%s",
			blocks, mountBlocks, data, w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", j.ID)))
	}
	// Their recorded attributes (mode, mtime) were applied all the same.
	for _, d := range []string{root + "/small", root + "/small/d00"} {
		st, err := os.Lstat(where + d)
		want := snap[d]
		if err != nil || !st.IsDir() || uint32(st.Mode().Perm()) != want.Mode&0o777 || !st.ModTime().Equal(want.Mtime) {
			t.Errorf("restored parent %s: %v, %v; want a directory with mode %o, mtime %v", where+d, st, err, want.Mode, want.Mtime)
		}
	}
	got, err := os.ReadFile(where + f)
	if err != nil || sha256.Sum256(got) != snap[f].SHA256 {
		t.Fatalf("the restored %s: %d bytes, %v; its digest differs from the original's", where+f, len(got), err)
	}
}

// A byte flipped in a block read (the vtl's fault): the digest does not
// match, the job fails naming the file, and the bad bytes are not left
// under the file's name.
func TestRestoreDigestMismatch(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{drives: 1}})
	root := w.root["web1"]
	w.makeTree("web1", testtree.Options{Seed: 17, LargeFiles: 2, LargeSize: 3 << 20, SmallFiles: 5, SmallSize: 1000})
	full, _ := w.backup("web1-home", "Full", "Full")
	f := root + "/big/large-01.bin"
	var abs int64
	if err := w.q(`SELECT jm.first_block + f.block + 1 FROM files f JOIN job_media jm ON jm.job_id = f.job_id AND jm.media_id = f.media_id AND jm.tape_file = f.tape_file
		WHERE f.job_id = $1 AND f.path = $2`, full.ID, []byte(f)).Scan(&abs); err != nil {
		t.Fatal(err)
	}
	// The block after the member's first: inside its 3 MiB of data.
	w.vtl.Fault(t, fmt.Sprintf("drive0:flip_block=%d,flip_offset=1000", abs))
	where := filepath.Join(w.dir, "r")
	j, report := w.restore("restore client=web1 file=" + f + " where=" + where)
	if j.Status != "E" || !strings.Contains(j.ErrorReason, "large-01.bin") || !strings.Contains(strings.ToLower(j.ErrorReason), "digest") {
		t.Fatalf("a restore reading a flipped byte: status %s, error %q, want E naming the file and its digest\n%s", j.Status, j.ErrorReason, report)
	}
	noSuchPath(t, where+f)
	if rs := w.vtl.Reads(t, false); rs.Drives[0].Flipped < 1 {
		t.Fatalf("the vtl flipped no byte: %+v", rs)
	}
	// Without the fault the same restore is right.
	w.vtl.Fault(t, "drive0:none")
	w.restoreOK("restore client=web1 file=" + f + " where=" + where)
	if _, err := os.Stat(where + f); err != nil {
		t.Fatal(err)
	}
}

// The tree browser driven by a tapectl script (stdin): after restore …
// select the lines are the browser's until done and yes; what was marked
// is restored, with the parents, and nothing else.
func TestRestoreTreeBrowser(t *testing.T) {
	w := newBackupWorld(t, backupOpts{})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 18, SmallFiles: 120, SmallSize: 500, Links: true})
	w.backup("web1-home", "Full", "Full")
	where := filepath.Join(w.dir, "r")
	script := strings.Join([]string{
		"restore client=web1 select where=" + where,
		"pwd",
		"cd small/d01",
		"mark s011*",
		"cd ..",
		"ls",
		"cd /" + strings.TrimPrefix(root, "/") + "/links",
		"mark target.txt",
		"unmark target.txt",
		"markdir .",
		"lsmark",
		"count",
		"estimate",
		"find s0115.bin",
		"done",
		"yes",
	}, "\n") + "\n"
	cmd := exec.Command(bins["tapectl"], "-c", w.conPath)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the browser script: %v\n%s", err, out)
	}
	o := string(out)
	for _, want := range []string{"Tree browser session", "cwd is: " + root + "/", "10 files marked.", "1 files unmarked.",
		"*d01/", " d00/", root + "/small/d01/s0115.bin", "marked to be restored", "Restore plan", "Restore job queued"} {
		if !strings.Contains(o, want) {
			t.Errorf("the browser's output lacks %q:\n%s", want, o)
		}
	}
	var id int64
	if err := w.q(`SELECT max(id) FROM jobs WHERE job_type = 'Restore'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if j, _ := w.waitJob(id, time.Minute); j.Status != "T" {
		t.Fatalf("the browser's restore: %s %s", j.Status, j.ErrorReason)
	}
	var want []string
	for i := 110; i < 120; i++ {
		want = append(want, fmt.Sprintf("%s/small/d01/s%04d.bin", root, i))
	}
	marked := snap.Only(append(want, root+"/small/d01")...)
	requireTree(t, "the files marked in the browser", where+root+"/small/d01", marked, root+"/small/d01")
	noSuchPath(t, where+root+"/small/d00")
	noSuchPath(t, where+root+"/links/target.txt")
	if st, err := os.Stat(where + root + "/links"); err != nil || st.Mode().Perm() != os.FileMode(snap[root+"/links"].Mode&0o777) {
		t.Errorf("markdir links: %v, %v", st, err)
	}

	// A hard link restored without its first path gets the data (the
	// first path's member is read and written under the link's name).
	a, b := root+"/"+testtree.HardA, root+"/"+testtree.HardB
	var typ string
	if err := w.q(`SELECT type FROM files WHERE path = $1`, []byte(b)).Scan(&typ); err != nil || typ != "link" {
		t.Fatalf("%s is stored as %q (%v), want a hard link to %s", b, typ, err, a)
	}
	where2 := filepath.Join(w.dir, "r2")
	w.restoreOK("restore client=web1 file=" + b + " where=" + where2)
	got, err := os.ReadFile(where2 + b)
	if err != nil || sha256.Sum256(got) != snap[b].SHA256 {
		t.Fatalf("the hard link restored alone: %d bytes, %v; want the data of %s", len(got), err, a)
	}
	noSuchPath(t, where2+a)
}

// A running restore shows in status director and ends A when
// cancelled; the drive's key is cleared.
func TestRestoreCancel(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB"}, bandwidth: slowBandwidth})
	w.makeTree("web1", bigTree)
	w.backup("web1-home", "Full", "Full")
	fd := w.filed["web1"]
	out := w.ok("restore client=web1 all where=" + filepath.Join(w.dir, "r") + " yes")
	m := restoreIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no JobId:\n%s", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	testenv.WaitFor(t, "the restore to run", func() bool {
		st := w.job(id).Status
		return st == "R" || terminal(st)
	})
	fd.proc.Cmd.Process.Signal(syscall.SIGSTOP)
	st := w.ok("status director")
	out, errs, code := w.tapectl(fmt.Sprintf("cancel jobid=%d", id))
	fd.proc.Cmd.Process.Signal(syscall.SIGCONT)
	if j := w.job(id); terminal(j.Status) && j.Status != "A" {
		t.Fatalf("the restore ended %s (%q) before it could be cancelled: give it a larger tree", j.Status, j.ErrorReason)
	}
	if !strings.Contains(st, fmt.Sprintf("JobId %d RestoreFiles", id)) {
		t.Errorf("status director does not show the running restore %d:\n%s", id, st)
	}
	if code != 0 {
		t.Errorf("cancel jobid=%d: exit %d\n%s%s", id, code, out, errs)
	}
	j, report := w.waitJob(id, time.Minute)
	if j.Status != "A" {
		t.Fatalf("cancelled restore %d: status %s (%q), want A\n%s", id, j.Status, j.ErrorReason, report)
	}
	w.waitNoKey()
}

// A restore whose plan is larger than what storaged queues (8192
// members): storaged's Control waits with the rest until the tape
// goroutine, reading for the client, takes volumes off the plan; every
// file arrives. (At 100,000 files, BenchmarkRestoreSmallFiles, the
// director's sends then wait on the stream's flow control: it sends the
// plan while the client reads.)
func TestRestoreLargerThanStoragedPlanBacklog(t *testing.T) {
	w := newBackupWorld(t, backupOpts{})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 23, SmallFiles: 9000, SmallSize: 16})
	w.backup("web1-home", "Full", "Full")
	where := filepath.Join(w.dir, "r-all")
	j := w.restoreOK("restore client=web1 current all where=" + where)
	requireTree(t, "9000 files", where+root, snap, root)
	if n, _ := snap.Files(); j.Files < int64(n) || n < 9000 {
		t.Errorf("the job counts %d files restored, the tree has %d regular files", j.Files, n)
	}
	w.checkNoKeyMaterialInLogs()
}
