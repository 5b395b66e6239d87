package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/jobtape"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// The tapes are made as storaged makes them — clear label, key-check
// file, the job's parts and index through storaged/jobtape — on a real
// vtl process; tapextract, tapekey and the vtl run as binaries.

var bins map[string]string

func TestMain(m *testing.M) {
	// The recipe test runs the printed commands with `mt` and `dd` being
	// this binary: they speak SCSI to the vtl drive the way st would.
	switch filepath.Base(os.Args[0]) {
	case "mt":
		os.Exit(shimMT(os.Args[1:]))
	case "dd":
		os.Exit(shimDD(os.Args[1:]))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tapextract-bins")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err = testenv.Build(dir, "tools/tapextract", "tools/vtl", "tools/tapekey")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

const blockSize = 32 << 10

type world struct {
	t       testing.TB
	dir     string
	vtl     *testenv.VTL
	changer string
	drive   string
	kekPath string
	kek     *keys.KEK
	cache   string
	secrets []string // key material and wrapped keys: never in any output
	outs    []string // every output of the tools
}

func newWorld(t testing.TB, capacity string) *world {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "tapextract"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	w := &world{t: t, dir: dir}
	w.vtl = testenv.StartVTL(t, bins["vtl"], dir, "--slots", "6", "--drives", "2", "--capacity", capacity)
	w.changer = "vtl:" + w.vtl.Socket + "#changer"
	w.drive = "vtl:" + w.vtl.Socket + "#drive0"
	w.kekPath = filepath.Join(dir, "kek.key")
	w.kek = testenv.WriteKEK(t, w.kekPath)
	kb, _ := os.ReadFile(w.kekPath)
	w.secrets = append(w.secrets, strings.TrimSpace(string(kb)))
	w.cache = filepath.Join(dir, "storaged.cryptocache")
	t.Cleanup(w.checkNoKeyMaterial)
	return w
}

// checkNoKeyMaterial greps every output for keys, KEKs and wrapped keys.
func (w *world) checkNoKeyMaterial() {
	for _, out := range w.outs {
		for _, s := range w.secrets {
			if s != "" && (strings.Contains(out, s) || strings.Contains(strings.ToLower(out), strings.ToLower(s))) {
				w.t.Errorf("key material in an output:\n%s", out)
			}
		}
	}
}

func barcode(slot int) string { return fmt.Sprintf("TW%04dL6", slot) }

// tapeKey is one volume's key as the catalog and the cache hold it.
type tapeKey struct {
	drive  []byte
	stored keys.StoredKey
}

func (w *world) v1Key() tapeKey {
	k, err := keys.NewVolumeKey()
	if err != nil {
		w.t.Fatal(err)
	}
	sk, err := keys.WrapV1(w.kek, k)
	if err != nil {
		w.t.Fatal(err)
	}
	w.secrets = append(w.secrets, hex.EncodeToString(k), sk.Value)
	return tapeKey{drive: k, stored: sk}
}

// tapes writes tapes the way storaged does, through an exclusive
// connection to the changer and drive 0, closed when done.
type tapes struct {
	w        *world
	ch, d    *scsi.Device
	slots    []scsi.Element
	driveEl  scsi.Element
	loaded   int
	keyFor   func(slot int) tapeKey
	scheme   string
	pool     string
	labelled map[int]bool
	// blockSize of the volumes labelled (0: the tests' 32 KiB).
	blockSize int
	// placed, when not nil, receives every member's record and address
	// as storaged reports them to the director (OnFlushed).
	placed *[]jobtape.Placed
}

func (w *world) openTapes(keyFor func(int) tapeKey) *tapes {
	t := w.t
	ch, err := dial.OpenDevice(w.changer, scsi.TypeMediumChanger)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dial.OpenDevice(w.drive, scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tapes{w: w, ch: ch, d: d, keyFor: keyFor, pool: "Offsite", labelled: map[int]bool{}}
	els, err := ch.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range els {
		switch e.Type {
		case scsi.ElementStorage:
			tp.slots = append(tp.slots, e)
		case scsi.ElementDataTransfer:
			if e.Address < tp.driveEl.Address || tp.driveEl.Address == 0 {
				tp.driveEl = e
			}
		}
	}
	return tp
}

func (tp *tapes) close() {
	tp.unload()
	tp.d.Close()
	tp.ch.Close()
}

func (tp *tapes) unload() {
	if tp.loaded == 0 {
		return
	}
	t := tp.w.t
	if _, err := tp.d.Clear(); err != nil {
		t.Fatal(err)
	}
	if err := tp.d.Unload(); err != nil {
		t.Fatal(err)
	}
	if err := tp.ch.MoveMedium(0, tp.driveEl.Address, tp.slots[tp.loaded-1].Address); err != nil {
		t.Fatal(err)
	}
	tp.loaded = 0
}

// mount loads slot, labels it (clear label, then the key and the
// key-check file, as storaged's label flow) and leaves the drive at end
// of data with the key loaded (encrypt + mixed).
func (tp *tapes) mount(slot int) (*scsi.Device, string) {
	t := tp.w.t
	tp.unload()
	if err := tp.ch.MoveMedium(0, tp.slots[slot-1].Address, tp.driveEl.Address); err != nil {
		t.Fatal(err)
	}
	tp.loaded = slot
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tp.d.WaitReady(ctx, 0); err != nil {
		t.Fatal(err)
	}
	k := tp.keyFor(slot)
	fp := keys.Fingerprint(k.drive)
	name := barcode(slot)
	if !tp.labelled[slot] {
		if _, err := tp.d.Clear(); err != nil {
			t.Fatal(err)
		}
		l := label.Label{Volume: name, Pool: tp.pool, MediaType: "LTO-6", LabelTime: time.Now().UTC(), BlockSize: tp.bs(), Storage: "sd1",
			Encryption: label.Encryption{Encrypted: true, Scheme: string(k.stored.Scheme), KEKID: k.stored.KEKID, Fingerprint: fp}}
		if err := label.Write(tp.d, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tp.d.SetKey(k.drive, scsi.SetKeyOpts{UKAD: []byte(fp), KADFormat: 2}); err != nil {
		t.Fatal(err)
	}
	if !tp.labelled[slot] {
		if _, err := tp.d.Write(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.d.WriteFilemarks(1, false); err != nil {
			t.Fatal(err)
		}
		tp.labelled[slot] = true
	} else if _, err := tp.d.Space(scsi.SpaceEndOfData, 0); err != nil {
		t.Fatal(err)
	}
	return tp.d, name
}

func (tp *tapes) bs() int {
	if tp.blockSize > 0 {
		return tp.blockSize
	}
	return blockSize
}

// backup writes root as job id on the volumes of slots (in order),
// returning the summary.
func (tp *tapes) backup(id int64, root string, slots ...int) jobtape.Summary {
	t := tp.w.t
	d, name := tp.mount(slots[0])
	next := 1
	opts := jobtape.Options{BlockSize: tp.bs(), SpoolDir: t.TempDir(),
		NextVolume: func(ctx context.Context, reason error) (*scsi.Device, string, error) {
			if next >= len(slots) {
				return nil, "", fmt.Errorf("no more volumes (%v)", reason)
			}
			d, name := tp.mount(slots[next])
			next++
			return d, name, nil
		}}
	if tp.placed != nil {
		opts.OnFlushed = func(f jobtape.Flushed) { *tp.placed = append(*tp.placed, f.Records...) }
	}
	jw, err := jobtape.New(d, jobtape.JobInfo{JobID: id, Job: "nightly", Client: "ann-fd", FileSet: "home", Level: "Full", Volume: name}, opts)
	if err != nil {
		t.Fatal(err)
	}
	aw := archive.NewWriter(jw)
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := fi.Sys().(*syscall.Stat_t)
		m := archive.Member{Path: rel, Mode: int64(fi.Mode().Perm()), UID: int64(st.Uid), GID: int64(st.Gid), Mtime: fi.ModTime()}
		var data io.Reader
		switch {
		case fi.IsDir():
			m.Type, m.Path = archive.TypeDir, rel+"/"
		case fi.Mode()&fs.ModeSymlink != 0:
			m.Type = archive.TypeSymlink
			m.Linkname, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			m.Type, m.Size = archive.TypeReg, fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			data = f
		default:
			return nil
		}
		rec, err := aw.WriteMember(m, data)
		if err != nil {
			return err
		}
		return jw.AddRecord(rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := jw.Close()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// putCache records the keys of slots in the Tapeward crypto cache.
func (w *world) putCache(path string, ks map[int]tapeKey) {
	c, err := cryptocache.Open(path, cryptocache.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	for slot, k := range ks {
		sk := k.stored
		sk.Fingerprint = keys.Fingerprint(k.drive)
		if _, err := c.Put(cryptocache.Entry{Volume: barcode(slot), Key: sk}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// makeTree makes a tree of files to back up.
func makeTree(t *testing.T, root string, large int, size int64) {
	t.Helper()
	if err := testtree.Make(root, testtree.Options{Seed: 7, LargeFiles: large, LargeSize: size, SmallFiles: 40, SmallSize: 3000, LongName: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d00", filepath.Join(root, "small", "link")); err != nil {
		t.Fatal(err)
	}
}

// sameTree compares two trees: paths, types, sizes, modes, digests, links
// and file mtimes.
func sameTree(t testing.TB, want, got string) {
	t.Helper()
	a, err := testtree.Take(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := testtree.Take(got)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(s testtree.Snapshot, root string) map[string]testtree.Entry {
		m := map[string]testtree.Entry{}
		for p, e := range s {
			r := strings.TrimPrefix(p, root)
			if r != "" {
				m[r] = e
			}
		}
		return m
	}
	ra, rb := rel(a, want), rel(b, got)
	var diffs []string
	for p, e := range ra {
		g, ok := rb[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.Type != e.Type || g.Size != e.Size || g.Mode != e.Mode || g.SHA256 != e.SHA256 || g.Link != e.Link:
			diffs = append(diffs, fmt.Sprintf("%s: got %s %d %o %x %q, want %s %d %o %x %q", p, g.Type, g.Size, g.Mode, g.SHA256[:4], g.Link, e.Type, e.Size, e.Mode, e.SHA256[:4], e.Link))
		case e.Type == "file" && !g.Mtime.Equal(e.Mtime):
			diffs = append(diffs, fmt.Sprintf("%s: mtime %v, want %v", p, g.Mtime, e.Mtime))
		}
	}
	for p := range rb {
		if _, ok := ra[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = diffs[:20]
		}
		t.Fatalf("restored tree differs from the original:\n%s", strings.Join(diffs, "\n"))
	}
}

// run runs tapextract; it returns stdout, stderr and the exit code.
func (w *world) run(args ...string) (string, string, int) {
	w.t.Helper()
	cmd := exec.Command(bins["tapextract"], args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	w.outs = append(w.outs, out.String(), errb.String())
	return out.String(), errb.String(), code
}

func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errs, code := w.run(args...)
	if code != 0 {
		w.t.Fatalf("tapextract %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (w *world) fails(wantMsg string, args ...string) string {
	w.t.Helper()
	out, errs, code := w.run(args...)
	if code == 0 {
		w.t.Fatalf("tapextract %s succeeded; want an error with %q\n%s", strings.Join(args, " "), wantMsg, out)
	}
	if !strings.Contains(errs, wantMsg) {
		w.t.Fatalf("tapextract %s: stderr lacks %q:\n%s", strings.Join(args, " "), wantMsg, errs)
	}
	w.vtl.RequireNoKey(w.t)
	return errs
}

func (w *world) lib() []string { return []string{"--changer", w.changer, "--drive", w.drive} }

func (w *world) keysV1() []string { return []string{"--cache", w.cache, "--kek", w.kekPath} }

func args(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestSpanningJob: a job over three volumes (the changer loads each in
// turn) is listed from its index and extracted whole, digests checked;
// ls reads at most 1 % of the data; a missing volume, a missing key
// and a wrong KEK each say precisely what is missing.
func TestSpanningJob(t *testing.T) {
	w := newWorld(t, "20MiB")
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 3, 16<<20)
	ks := map[int]tapeKey{1: w.v1Key(), 2: w.v1Key(), 3: w.v1Key()}
	tp := w.openTapes(func(slot int) tapeKey { return ks[slot] })
	sum := tp.backup(42, src, 1, 2, 3)
	tp.close()
	if len(sum.Parts) != 3 || sum.Index.Volume != barcode(3) {
		t.Fatalf("the job should span three volumes with its index on the third: %+v", sum)
	}
	w.putCache(w.cache, ks)

	// A cartridge left in the drive by hand goes back to its slot first.
	if out, err := exec.Command(w.vtl.Bin, "load", "--socket", w.vtl.Socket, "--slot", "2", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	out, errs, code := w.run(args([]string{"volumes"}, w.lib(), w.keysV1())...)
	if code != 0 || !strings.Contains(errs, "cartridge "+barcode(2)+" left in the drive was returned to its slot") {
		t.Fatalf("volumes with a cartridge left in the drive: exit %d\n%s\n%s", code, out, errs)
	}
	for slot := 1; slot <= 3; slot++ {
		if !strings.Contains(out, barcode(slot)) || !strings.Contains(out, keys.Fingerprint(ks[slot].drive)) {
			t.Fatalf("volumes lacks %s and its fingerprint:\n%s", barcode(slot), out)
		}
	}
	if !strings.Contains(out, "42 (part 3; index: ") || !strings.Contains(out, "42 (part 1)") {
		t.Fatalf("volumes does not list job 42's parts and index:\n%s", out)
	}
	t.Logf("tapextract volumes:\n%s", out)
	w.vtl.RequireNoKey(t)

	// Without a key source the labels are still listed, with why no key.
	bare := w.ok(args([]string{"volumes"}, w.lib())...)
	if !strings.Contains(bare, "NO: no key for "+barcode(1)+": no key source was given") || !strings.Contains(bare, keys.Fingerprint(ks[3].drive)) {
		t.Fatalf("volumes without keys:\n%s", bare)
	}

	// ls: every volume, from labels, part headers and the index only.
	w.vtl.Reads(t, true)
	for slot := 1; slot <= 3; slot++ {
		w.ok(args([]string{"ls", "--volume", barcode(slot)}, w.lib(), w.keysV1())...)
	}
	long := w.ok(args([]string{"ls", "-l", "--job", "42", "--volume", barcode(3)}, w.lib(), w.keysV1())...)
	reads := w.vtl.Reads(t, false)
	var read int64
	for slot := 1; slot <= 3; slot++ {
		_, b := reads.Cartridge(barcode(slot))
		read += b
	}
	if data := sum.StreamBytes; read*100 > data {
		t.Fatalf("ls read %d bytes of a %d-byte job (more than 1 %%)", read, data)
	}
	t.Logf("ls of three volumes read %d bytes of a %d-byte job (%.2f %%)", read, sum.StreamBytes, float64(read)*100/float64(sum.StreamBytes))
	snap, _ := testtree.Take(src)
	for p, e := range snap {
		if e.Type == "file" && !strings.Contains(long, hex.EncodeToString(e.SHA256[:])) {
			t.Fatalf("ls -l lacks %s's digest:\n%s", p, long)
		}
	}

	// extract: the changer loads the three volumes in order.
	to := filepath.Join(w.dir, "restore")
	_, errs, code = w.run(args([]string{"extract", "--job", "42", "--to", to}, w.lib(), w.keysV1())...)
	if code != 0 {
		t.Fatalf("extract: exit %d\n%s", code, errs)
	}
	sameTree(t, src, to)
	t.Logf("tapextract extract --job 42:\n%s", errs)
	for slot := 1; slot <= 3; slot++ {
		if !strings.Contains(errs, "volume "+barcode(slot)+" mounted") {
			t.Fatalf("extract did not mount %s:\n%s", barcode(slot), errs)
		}
	}
	if !strings.Contains(errs, "continues on volume "+barcode(2)) || !strings.Contains(errs, "members,") {
		t.Fatalf("extract shows no stitching or progress:\n%s", errs)
	}
	w.vtl.RequireNoKey(t)

	// --include: one file only.
	to2 := filepath.Join(w.dir, "restore2")
	w.ok(args([]string{"extract", "--job", "42", "--include", "/big/large-01*", "--to", to2}, w.lib(), w.keysV1())...)
	ents, _ := os.ReadDir(filepath.Join(to2, "big"))
	if len(ents) != 1 {
		t.Fatalf("--include big/large-01*: got %v", ents)
	}

	// By hand: each volume's recipe reads its parts with mt and dd; GNU
	// tar -M stitches the members cut at the volumes' ends.
	byhand := filepath.Join(w.dir, "byhand")
	for slot := 1; slot <= 3; slot++ {
		recipe := w.ok(args([]string{"recipe", "--volume", barcode(slot), "--tape", w.drive}, w.lib(), w.keysV1())...)
		if slot < 3 && !strings.Contains(recipe, fmt.Sprintf("-f job42-part%d.tar -f job42-part%d.tar", slot, slot+1)) || slot == 3 && !strings.Contains(recipe, "tar -M -xv -f job42-part1.tar -f job42-part2.tar -f job42-part3.tar") {
			t.Fatalf("the recipe of %s does not say how to stitch the next part:\n%s", barcode(slot), recipe)
		}
		w.runRecipe(recipe, slot, byhand)
	}
	os.Mkdir(filepath.Join(byhand, "restore"), 0o755)
	tar := exec.Command("tar", "-M", "-xv", "-f", "job42-part1.tar", "-f", "job42-part2.tar", "-f", "job42-part3.tar", "-C", "restore")
	tar.Dir = byhand
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar -M over the three parts: %v\n%s", err, out)
	}
	sameTree(t, src, filepath.Join(byhand, "restore"))

	// A wrong KEK: the error names the KEK the key needs and the label's.
	other := filepath.Join(w.dir, "other.key")
	otherKEK := testenv.WriteKEK(t, other)
	msg := w.fails("needs KEK "+w.kek.ID(), args([]string{"ls", "--volume", barcode(2)}, w.lib(), []string{"--cache", w.cache, "--kek", other})...)
	if !strings.Contains(msg, "its label names KEK "+w.kek.ID()+" and fingerprint "+keys.Fingerprint(ks[2].drive)) || !strings.Contains(msg, otherKEK.ID()) {
		t.Fatalf("wrong KEK: %s", msg)
	}
	t.Logf("a wrong KEK:\n%s", msg)

	// A cache that lacks the volume.
	partial := filepath.Join(w.dir, "partial.cryptocache")
	w.putCache(partial, map[int]tapeKey{1: ks[1], 3: ks[3]})
	w.fails(fmt.Sprintf("no key for %s in the cache or keys file (the cache %s); its label names KEK %s and fingerprint %s", barcode(2), partial, w.kek.ID(), keys.Fingerprint(ks[2].drive)),
		args([]string{"extract", "--volume", barcode(3), "--to", filepath.Join(w.dir, "r3")}, w.lib(), []string{"--cache", partial, "--kek", w.kekPath})...)

	// A volume out of the library (in the import/export slot).
	if out, err := exec.Command(w.vtl.Bin, "move", "--socket", w.vtl.Socket, "--from", "0x1001", "--to", "0x0010").CombinedOutput(); err != nil {
		t.Fatalf("vtl move: %v\n%s", err, out)
	}
	msg = w.fails(fmt.Sprintf("volume %s continues job 42 but is not in the library (barcode %s)", barcode(2), barcode(2)),
		args([]string{"extract", "--job", "42", "--to", filepath.Join(w.dir, "r4")}, w.lib(), w.keysV1())...)
	t.Logf("a missing volume:\n%s", msg)
}

// TestExportKeysAndRecipe: keys from an `export keys` file; the recipe's
// mt/dd/tar commands, run with the key loaded by tapekey drive set-key,
// restore the tree (GNU tar is the judge).
func TestExportKeysAndRecipe(t *testing.T) {
	w := newWorld(t, "1GiB")
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 2, 1<<20)
	ks := map[int]tapeKey{1: w.v1Key()}
	tp := w.openTapes(func(int) tapeKey { return ks[1] })
	tp.backup(7, src, 1)
	tp.close()
	w.putCache(w.cache, ks)
	export := filepath.Join(w.dir, "keys.tsv")
	os.WriteFile(export, []byte(fmt.Sprintf("# Tapeward keys export\n# VOLUME<TAB>STORED<TAB>SCHEME<TAB>KEK_ID\n%s\t%s\tv1\t%s\n", barcode(1), ks[1].stored.Value, ks[1].stored.KEKID)), 0o600)

	to := filepath.Join(w.dir, "restore")
	w.ok(args([]string{"extract", "--volume", barcode(1), "--to", to}, w.lib(), []string{"--keys", export, "--kek", w.kekPath})...)
	sameTree(t, src, to)

	recipe := w.ok(args([]string{"recipe", "--volume", barcode(1), "--tape", w.drive}, w.lib(), w.keysV1())...)
	t.Logf("tapextract recipe:\n%s", recipe)
	for _, want := range []string{"tapekey drive set-key", "mt -f \"$TAPE\" fsf 2", "dd if=\"$TAPE\" bs=32768 of=job7-part1.tar", "tar -xvf job7-part1.tar -C restore", "tar -xOf - > job7-index.jsonl", "tapekey drive clear"} {
		if !strings.Contains(recipe, want) {
			t.Fatalf("recipe lacks %q:\n%s", want, recipe)
		}
	}
	// Run it: the cartridge loaded by hand, mt and dd speak to the vtl.
	work := filepath.Join(w.dir, "byhand")
	w.runRecipe(recipe, 1, work)
	sameTree(t, src, filepath.Join(work, "restore"))
	idx, _ := os.ReadFile(filepath.Join(work, "job7-index.jsonl"))
	if !bytes.Contains(idx, []byte(`"path":"big/large-00`)) {
		t.Fatalf("the index from the recipe: %.300s", idx)
	}
	w.vtl.RequireNoKey(t)

	// The cartridge is still in the drive, and a key is loaded again (as
	// after a run killed with SIGKILL): tapextract clears the key and
	// returns the cartridge before it reads anything.
	if out, err := exec.Command(bins["tapekey"], "drive", "set-key", w.drive, "--stored", ks[1].stored.Value, "--kek", w.kekPath).CombinedOutput(); err != nil {
		t.Fatalf("tapekey drive set-key: %v\n%s", err, out)
	}
	out2, errs, code := w.run(args([]string{"ls", "--volume", barcode(1)}, w.lib(), w.keysV1())...)
	if code != 0 || !strings.Contains(errs, "a key left in the drive was cleared") || !strings.Contains(out2, "job 7 nightly") {
		t.Fatalf("ls after a key and a cartridge were left in the drive: exit %d\n%s\n%s", code, out2, errs)
	}
	w.vtl.RequireNoKey(t)
	if st := w.vtl.Status(t); !regexp.MustCompile(`(?m)^slot 1\s+0x1000\s+` + barcode(1)).MatchString(st) {
		t.Fatalf("the cartridge is not back in slot 1:\n%s", st)
	}
}

// TestBareosCache: the key comes from a Bareos crypto cache (its KEK
// string file), the volume's key is scheme bareos.
func TestBareosCache(t *testing.T) {
	w := newWorld(t, "1GiB")
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 1, 1<<20)
	bkPath := filepath.Join(w.dir, "bareos-kek.txt")
	os.WriteFile(bkPath, []byte("0123456789abcdefFEDCBA9876543210\n"), 0o600)
	bk, err := keys.LoadBareosKEKFile(bkPath)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := keys.GenerateBareosPassphrase()
	stored, err := keys.WrapBareos(bk, pass)
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := keys.BareosDriveKey(pass)
	w.secrets = append(w.secrets, string(pass[:31]), hex.EncodeToString(dk), stored, base64.RawStdEncoding.EncodeToString(pass))
	k := tapeKey{drive: dk, stored: keys.StoredKey{Scheme: keys.SchemeBareos, KEKID: bk.ID(), Value: stored}}
	tp := w.openTapes(func(int) tapeKey { return k })
	tp.backup(9, src, 1)
	tp.close()
	// The Bareos layout: header, then 280-byte entries.
	b := make([]byte, 32)
	copy(b, "BAREOS Crypto Cache\n\x00")
	binary.LittleEndian.PutUint32(b[24:], 1)
	binary.LittleEndian.PutUint32(b[28:], 1)
	e := make([]byte, 280)
	copy(e[16:], barcode(1))
	copy(e[144:], stored)
	binary.LittleEndian.PutUint64(e[272:], uint64(time.Now().Unix()))
	cache := filepath.Join(w.dir, "bareos-sd.9103.cryptoc")
	os.WriteFile(cache, append(b, e...), 0o600)

	out := w.ok(args([]string{"ls", "-l", "--volume", barcode(1)}, w.lib(), []string{"--cache", cache, "--kek", bkPath})...)
	if !strings.Contains(out, "job 9 nightly") || !strings.Contains(out, "scheme bareos") {
		t.Fatalf("ls with a Bareos cache:\n%s", out)
	}
	to := filepath.Join(w.dir, "restore")
	w.ok(args([]string{"extract", "--job", "9", "--to", to}, w.lib(), []string{"--cache", cache, "--kek", bkPath})...)
	sameTree(t, src, to)
	w.vtl.RequireNoKey(t)
}

// TestSealedKEK: the KEK file is sealed with a Tink master keyset
// (tapekey kek new --seal-with); --master opens it.
func TestSealedKEK(t *testing.T) {
	w := newWorld(t, "1GiB")
	master, sealed := filepath.Join(w.dir, "master.json"), filepath.Join(w.dir, "sealed.kek")
	for _, a := range [][]string{{"master-keyset", "new", "--out", master}, {"kek", "new", "--out", sealed, "--seal-with", master}} {
		if out, err := exec.Command(bins["tapekey"], a...).CombinedOutput(); err != nil {
			t.Fatalf("tapekey %v: %v\n%s", a, err, out)
		}
	}
	kek, err := keys.LoadKEKFile(sealed, keys.LoadOptions{MasterKeysetPath: master})
	if err != nil {
		t.Fatal(err)
	}
	w.kek = kek
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 1, 256<<10)
	ks := map[int]tapeKey{1: w.v1Key()}
	tp := w.openTapes(func(int) tapeKey { return ks[1] })
	tp.backup(11, src, 1)
	tp.close()
	w.putCache(w.cache, ks)
	w.fails("is sealed with Tink; give the master keyset file", args([]string{"ls", "--volume", barcode(1)}, w.lib(), []string{"--cache", w.cache, "--kek", sealed})...)
	to := filepath.Join(w.dir, "restore")
	w.ok(args([]string{"extract", "--job", "11", "--to", to}, w.lib(), []string{"--cache", w.cache, "--kek", sealed, "--master", master})...)
	sameTree(t, src, to)
	w.vtl.RequireNoKey(t)
}

// TestInterruptClearsKey: SIGINT during an extract stops it and leaves no
// key in the drive.
func TestInterruptClearsKey(t *testing.T) {
	w := newWorld(t, "2GiB")
	src := filepath.Join(w.dir, "src")
	makeTree(t, src, 4, 64<<20)
	ks := map[int]tapeKey{1: w.v1Key()}
	tp := w.openTapes(func(int) tapeKey { return ks[1] })
	tp.backup(5, src, 1)
	tp.close()
	w.putCache(w.cache, ks)
	cmd := exec.Command(bins["tapextract"], args([]string{"extract", "--job", "5", "--to", filepath.Join(w.dir, "restore")}, w.lib(), w.keysV1())...)
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "tapextract to extract its first member", func() bool { return strings.Contains(errb.String(), "1/50 members") })
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	w.outs = append(w.outs, errb.String())
	ee, ok := err.(*exec.ExitError)
	t.Logf("SIGINT:\n%s", errb.String())
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("tapextract after SIGINT: %v (want exit 130)\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "interrupted") || !strings.Contains(errb.String(), "cleared") {
		t.Fatalf("stderr after SIGINT:\n%s", errb.String())
	}
	w.vtl.RequireNoKey(t)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runRecipe loads slot's cartridge into drive 0 as an operator would
// (the vtl's panel), runs a recipe in work with mt and dd speaking to the
// vtl and the real tapekey and GNU tar, and unloads the cartridge.
func (w *world) runRecipe(recipe string, slot int, work string) {
	t := w.t
	t.Helper()
	if out, err := exec.Command(w.vtl.Bin, "load", "--socket", w.vtl.Socket, "--slot", strconv.Itoa(slot), "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	shims := filepath.Join(w.dir, "shims")
	if _, err := os.Stat(shims); err != nil {
		os.Mkdir(shims, 0o755)
		self, _ := os.Executable()
		for _, n := range []string{"mt", "dd"} {
			if err := os.Symlink(self, filepath.Join(shims, n)); err != nil {
				t.Fatal(err)
			}
		}
		os.Symlink(bins["tapekey"], filepath.Join(shims, "tapekey"))
	}
	os.MkdirAll(work, 0o755)
	cmd := exec.Command("bash", "-c", recipe)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+shims+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	w.outs = append(w.outs, string(out))
	if err != nil {
		t.Fatalf("the recipe failed: %v\n%s\nrecipe:\n%s", err, out, recipe)
	}
	w.vtl.RequireNoKey(t)
	if out, err := exec.Command(w.vtl.Bin, "unload", "--socket", w.vtl.Socket, "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl unload: %v\n%s", err, out)
	}
}

// shimMT is `mt -f DEVICE rewind|fsf N|setblk N` for a vtl drive.
func shimMT(a []string) int {
	if len(a) < 3 || a[0] != "-f" {
		fmt.Fprintln(os.Stderr, "mt (test shim): usage: mt -f DEVICE rewind|fsf N|setblk N")
		return 2
	}
	d, err := shimOpen(a[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mt:", err)
		return 1
	}
	defer d.Close()
	switch a[2] {
	case "rewind":
		err = d.Rewind(false)
	case "fsf":
		n, _ := strconv.Atoi(a[3])
		_, err = d.Space(scsi.SpaceFilemarks, int64(n))
	case "setblk":
	default:
		err = fmt.Errorf("unknown operation %s", a[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mt:", err)
		return 1
	}
	return 0
}

// shimDD is `dd if=DEVICE bs=N [of=FILE]`: one READ per block to the
// next filemark, as st in variable block mode.
func shimDD(a []string) int {
	var in, of string
	bs := 512
	for _, x := range a {
		k, v, _ := strings.Cut(x, "=")
		switch k {
		case "if":
			in = v
		case "of":
			of = v
		case "bs":
			bs, _ = strconv.Atoi(v)
		}
	}
	d, err := shimOpen(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dd:", err)
		return 1
	}
	defer d.Close()
	var out io.Writer = os.Stdout
	if of != "" {
		f, err := os.Create(of)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dd:", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	buf := make([]byte, bs)
	for {
		r, err := d.Read(buf, true)
		if err != nil {
			if scsi.IsBlankCheck(err) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "dd:", err)
			return 1
		}
		if r.Filemark || r.EOD || r.N == 0 {
			return 0
		}
		if _, err := out.Write(buf[:r.N]); err != nil {
			return 0 // tar closed the pipe
		}
	}
}

func shimOpen(addr string) (*scsi.Device, error) {
	d, err := dial.OpenDevice(addr, scsi.TypeTape)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.WaitReady(ctx, 0); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}
