package jobtape

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/scsifault"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

var testTime = time.Date(2026, 1, 2, 7, 0, 0, 123456789, time.UTC)

// newLib starts an in-process vtl (the real emulator) with cartridges of
// capacity bytes, on tmpfs when there is one.
func newLib(t testing.TB, slots, drives int, capacity int64, personalities ...string) *emu.Library {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "jobtape"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	cfg := emu.Config{Dir: dir, Slots: slots, Drives: drives, Capacity: capacity, Personalities: map[int]string{}}
	for i, p := range personalities {
		cfg.Personalities[i] = p
	}
	lib, err := emu.NewLibrary(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	return lib
}

// vol is a mounted volume.
type vol struct {
	name string
	d    *scsi.Device
	f    *scsifault.Transport
	key  []byte // nil: clear
	ukad []byte
}

// mount loads slot into drive, labels the volume (clear label) and, when
// encrypted, loads a random key as storaged/sd would (SetKey, then the
// status page is checked by the first block's VerifyEncrypted): the
// device is left after the label, ready for a job.
func mount(t testing.TB, lib *emu.Library, slot, drive int, name string, encrypted bool, bs int) *vol {
	t.Helper()
	if err := lib.PanelLoad(slot, drive); err != nil {
		t.Fatal(err)
	}
	tr, err := lib.Transport(fmt.Sprintf("drive%d", drive), true)
	if err != nil {
		t.Fatal(err)
	}
	f := scsifault.Wrap(tr)
	d := scsi.NewDevice(f)
	t.Cleanup(func() { d.Clear(); d.Close() })
	for i := 0; ; i++ {
		err := d.TestUnitReady()
		if err == nil {
			break
		}
		if i > 10000 || !scsi.IsUnitAttention(err) && !scsi.IsBecomingReady(err) {
			t.Fatal(err)
		}
	}
	if err := label.Write(d, label.Label{Volume: name, BlockSize: bs, LabelTime: testTime}); err != nil {
		t.Fatal(err)
	}
	v := &vol{name: name, d: d, f: f}
	if encrypted {
		v.key = make([]byte, 32)
		rand.Read(v.key)
		v.ukad = []byte(hex.EncodeToString(v.key[:4]) + "-test")
		if _, err := d.SetKey(v.key, scsi.SetKeyOpts{UKAD: v.ukad}); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// hook is the encryption check of v's first block of each tape file.
func (v *vol) hook() func(*scsi.Device, tapeio.Addr) error {
	if v.key == nil {
		return nil
	}
	return tapeio.VerifyFirstBlock(v.ukad)
}

// file is one member of a test job.
type file struct {
	m    archive.Member
	data []byte
}

// makeFiles builds n members: directories, small and medium files, a
// symlink, a long non-ASCII path; big adds files of those sizes.
func makeFiles(seed uint64, n int, big ...int) []file {
	r := mrand.New(mrand.NewPCG(seed, 7))
	var fs []file
	add := func(m archive.Member, size int) {
		m.Mtime, m.Uname, m.Gname, m.UID, m.GID = testTime, "alice", "users", 1000, 100
		var data []byte
		if m.Type == archive.TypeReg {
			data = make([]byte, size)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			m.Size, m.Mode = int64(size), 0o644
		} else if m.Type == archive.TypeDir {
			m.Mode = 0o755
		} else {
			m.Mode = 0o777
		}
		fs = append(fs, file{m, data})
	}
	for i := 0; len(fs) < n; i++ {
		dir := fmt.Sprintf("d%02d/", i)
		add(archive.Member{Path: dir, Type: archive.TypeDir}, 0)
		for k := 0; k < 20 && len(fs) < n; k++ {
			size := r.IntN(3000)
			if k%7 == 3 {
				size = r.IntN(70000)
			}
			add(archive.Member{Path: fmt.Sprintf("%sf%03d.bin", dir, k), Type: archive.TypeReg}, size)
		}
	}
	add(archive.Member{Path: "d00/link", Type: archive.TypeSymlink, Linkname: "f000.bin"}, 0)
	add(archive.Member{Path: "d00/" + strings.Repeat("ü long dir/", 15) + "end", Type: archive.TypeReg}, 1234)
	for i, b := range big {
		add(archive.Member{Path: fmt.Sprintf("big/b%d.img", i), Type: archive.TypeReg}, b)
	}
	return fs
}

// job is a test job's result.
type job struct {
	reasons []error // what NextVolume was asked with
	sum     Summary
	batches []Flushed
	recs    []archive.Record
	files   []file
	err     error
}

// runJob writes files as one job through a JobWriter on vols[0], going
// on to vols[1…] when full; writeErr stops at the first error.
func runJob(t testing.TB, vols []*vol, files []file, opts Options) *job {
	t.Helper()
	j := &job{files: files}
	next := 1
	opts.NextVolume = func(ctx context.Context, reason error) (*scsi.Device, string, error) {
		j.reasons = append(j.reasons, reason)
		if next >= len(vols) {
			return nil, "", fmt.Errorf("no more volumes (%v)", reason)
		}
		v := vols[next]
		next++
		return v.d, v.name, nil
	}
	byName := map[string]*vol{}
	for _, v := range vols {
		byName[v.name] = v
	}
	opts.VerifyPart = func(volume string) func(*scsi.Device, tapeio.Addr) error { return byName[volume].hook() }
	also := opts.OnFlushed
	opts.OnFlushed = func(f Flushed) {
		j.batches = append(j.batches, f)
		if also != nil {
			also(f)
		}
	}
	jw, err := New(vols[0].d, JobInfo{JobID: 42, Job: "nightly", Client: "c1", FileSet: "home", Level: "Full", Volume: vols[0].name, Created: testTime}, opts)
	if err != nil {
		t.Fatal(err)
	}
	aw := archive.NewWriter(jw)
	for _, f := range files {
		rec, err := aw.WriteMember(f.m, bytes.NewReader(f.data))
		if err != nil {
			j.err = err
			return j
		}
		j.recs = append(j.recs, rec)
		if err := jw.AddRecord(rec); err != nil {
			j.err = err
			return j
		}
	}
	if err := aw.Close(); err != nil {
		j.err = err
		return j
	}
	j.sum, j.err = jw.Close()
	return j
}

// reported is every record OnFlushed gave, in order.
func (j *job) reported() []Placed {
	var all []Placed
	for _, b := range j.batches {
		all = append(all, b.Records...)
	}
	return all
}

// readFile reads tape file p back through the drive.
func readFile(t testing.TB, d *scsi.Device, file, block uint64, bs int) []byte {
	t.Helper()
	r, err := tapeio.NewReader(d, tapeio.Addr{File: file, Block: block}, tapeio.ReaderOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading tape file %d: %v", file, err)
	}
	return b
}

// needTars fails (never skips) when GNU tar or bsdtar is missing.
func needTars(t testing.TB) {
	t.Helper()
	for _, p := range []string{"tar", "bsdtar"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: apt-get install libarchive-tools tar", p)
		}
	}
	out, _ := exec.Command("tar", "--version").Output()
	if !bytes.Contains(out, []byte("GNU tar")) {
		t.Fatalf("tar is not GNU tar (%q): apt-get install libarchive-tools tar", bytes.SplitN(out, []byte("\n"), 2)[0])
	}
}

// tarList pipes b to prog -tvf - and returns its output; wantOK says the
// exit status must be 0.
func tarList(t testing.TB, prog string, b []byte, wantOK bool) string {
	t.Helper()
	cmd := exec.Command(prog, "-tvf", "-")
	cmd.Stdin = bytes.NewReader(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if wantOK && err != nil {
		t.Fatalf("%s -tvf -: %v\n%s", prog, err, errb.String())
	}
	return out.String()
}

// listsAll checks that a tar listing names every member's path.
func listsAll(t testing.TB, prog, listing string, paths []string) {
	t.Helper()
	for _, p := range paths {
		if !strings.Contains(listing, strings.TrimSuffix(p, "/")) {
			t.Errorf("%s does not list %q", prog, p)
		}
	}
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// extractCompare extracts with `tar -xf -` (args before) and compares
// every regular file with the source.
func extractCompare(t testing.TB, files []file, stdin io.Reader, args ...string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", append(append([]string{"-C", dir}, args...), "-x")...)
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, out)
	}
	for _, f := range files {
		if f.m.Type != archive.TypeReg {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, f.m.Path))
		if err != nil {
			t.Errorf("extracted: %v", err)
			continue
		}
		if sum(got) != sum(f.data) {
			t.Errorf("%s: extracted bytes differ (%d bytes, want %d)", f.m.Path, len(got), len(f.data))
		}
	}
}

func readNoKey(v *vol, p Part) ([]byte, error) {
	r, err := tapeio.NewReader(v.d, tapeio.Addr{File: p.TapeFile, Block: p.FirstBlock}, tapeio.ReaderOptions{BlockSize: p.BlockSize})
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
