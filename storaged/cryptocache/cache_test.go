package cryptocache

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// fakeClock is an injected clock that tests advance by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture holds a keyring and the stored keys made with it.
type fixture struct {
	ring   *keys.Keyring
	kekID  string
	bk     *keys.BareosKEK
	secret []string // every stored string handed out (must never be printed)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	kek, err := keys.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := keys.ParseBareosKEK("0123456789abcdefFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	ring.AddBareos(bk)
	return &fixture{ring: ring, kekID: kek.ID(), bk: bk}
}

func (f *fixture) v1(t testing.TB) keys.StoredKey {
	t.Helper()
	sk, err := f.ring.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	f.secret = append(f.secret, sk.Value)
	return sk
}

// bareos returns a bareos stored key: wrapped (54) or plain (43).
func (f *fixture) bareos(t testing.TB, wrapped bool) keys.StoredKey {
	t.Helper()
	p, err := keys.GenerateBareosPassphrase()
	if err != nil {
		t.Fatal(err)
	}
	var kek *keys.BareosKEK
	if wrapped {
		kek = f.bk
	}
	v, err := keys.WrapBareos(kek, p)
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := keys.BareosDriveKey(p)
	sk := keys.StoredKey{Scheme: keys.SchemeBareos, Value: v, Fingerprint: keys.Fingerprint(dk)}
	if wrapped {
		sk.KEKID = f.bk.ID()
	}
	f.secret = append(f.secret, v, string(p))
	return sk
}

// noSecrets fails if any text holds a stored string handed out.
func (f *fixture) noSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range f.secret {
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Fatalf("text contains a stored string or passphrase: %q", txt)
			}
		}
	}
}

func open(t testing.TB, path string, clk *fakeClock) *Cache {
	t.Helper()
	c, err := Open(path, Options{Clock: clk.now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func mustPut(t testing.TB, c *Cache, e Entry, want PutResult) {
	t.Helper()
	r, err := c.Put(e)
	if err != nil {
		t.Fatalf("Put(%v): %v", e, err)
	}
	if r != want {
		t.Fatalf("Put(%v) = %v, want %v", e, r, want)
	}
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
}

func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	g, w := fmt.Sprint(len(got)), fmt.Sprint(len(want))
	if g != w {
		t.Fatalf("got %s entries, want %s", g, w)
	}
	for i := range got {
		a, b := got[i], want[i]
		if a.Volume != b.Volume || a.Key.Scheme != b.Key.Scheme || a.Key.Value != b.Key.Value || a.Key.KEKID != b.Key.KEKID ||
			a.Key.Fingerprint != b.Key.Fingerprint || !a.Added.Equal(b.Added) || !a.LastUsed.Equal(b.LastUsed) || len(a.History) != len(b.History) {
			t.Fatalf("entry %d: got %v, want %v (values equal: %v)", i, a, b, a.Key.Value == b.Key.Value)
		}
		for j := range a.History {
			x, y := a.History[j], b.History[j]
			if x.Key != y.Key || !x.Added.Equal(y.Added) || !x.Replaced.Equal(y.Replaced) {
				t.Fatalf("entry %d history %d: got %v, want %v", i, j, x, y)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, clk)
	if l, err := c.List(); err != nil || len(l) != 0 {
		t.Fatalf("new cache: %v %v", l, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Open created the file before any update")
	}
	a, b, p := fx.v1(t), fx.bareos(t, true), fx.bareos(t, false)
	mustPut(t, c, Entry{Volume: "VOL002", Key: a}, Added)
	checkMode(t, path)
	clk.advance(time.Hour)
	mustPut(t, c, Entry{Volume: "BAR 001", Key: b}, Added)
	mustPut(t, c, Entry{Volume: "BAR002", Key: keys.StoredKey{Scheme: p.Scheme, Value: p.Value + "="}}, Added)
	clk.advance(time.Minute)
	if err := c.Touch("VOL002"); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path)
	t0 := newClock().now().Truncate(time.Second)
	want := []Entry{
		{Volume: "BAR 001", Key: b, Added: t0.Add(time.Hour)},
		{Volume: "BAR002", Key: keys.StoredKey{Scheme: p.Scheme, Value: p.Value}, Added: t0.Add(time.Hour)},
		{Volume: "VOL002", Key: a, Added: t0, LastUsed: t0.Add(time.Hour + time.Minute)},
	}
	got, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, got, want)
	// Another handle, ReadFile and Parse(Encode) all agree.
	got2, err := open(t, path, clk).List()
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, got2, want)
	got3, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, got3, want)
	data, _ := os.ReadFile(path)
	if !bytes.Equal(Encode(got3), data) {
		t.Fatalf("Encode(ReadFile) differs from the file:\n%s", data)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if lines[0] != "tapeward-cryptocache v1" || len(lines) != 5 || !strings.HasPrefix(lines[4], "sha256 ") {
		t.Fatalf("file:\n%s", data)
	}
	wantLine := "key\tVOL002\tv1\t" + fx.kekID + "\t" + a.Fingerprint + "\t2026-03-14T15:09:26Z\t2026-03-14T16:10:26Z\t" + a.Value
	if lines[3] != wantLine {
		t.Fatalf("line 4 = %q\nwant     %q", lines[3], wantLine)
	}
	if !strings.Contains(lines[2], "\t-\t") {
		t.Fatalf("unwrapped bareos line has no '-' for the missing kek id: %q", lines[2])
	}
	e, err := c.Get("BAR002")
	if err != nil || e.Key.Value != p.Value {
		t.Fatalf("Get: %v %v", e, err)
	}
	// Every entry still unwraps to its fingerprint.
	for _, e := range got {
		k, err := fx.ring.Unwrap(e.Key)
		if err != nil {
			t.Fatalf("%s: %v", e.Volume, err)
		}
		clear(k)
	}
	fx.noSecrets(t, fmt.Sprint(got), fmt.Sprintf("%+v %#v %s", got[0], got[1], got[2]))
}

func TestPutSemantics(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	var logBuf bytes.Buffer
	path := filepath.Join(t.TempDir(), FileName)
	c, err := Open(path, Options{Clock: clk.now, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	k1 := fx.v1(t)
	noFP := k1
	noFP.Fingerprint = ""
	mustPut(t, c, Entry{Volume: "A", Key: noFP}, Added)
	mustPut(t, c, Entry{Volume: "A", Key: noFP}, Unchanged)
	mustPut(t, c, Entry{Volume: "A", Key: k1}, Updated)
	mustPut(t, c, Entry{Volume: "A", Key: noFP}, Unchanged) // does not forget the fingerprint
	if e, _ := c.Get("A"); e.Key.Fingerprint != k1.Fingerprint {
		t.Fatalf("fingerprint not filled in: %v", e)
	}
	before, _ := os.ReadFile(path)
	var errs []string
	wrongFP := k1
	wrongFP.Fingerprint = "0123456789abcdef"
	_, err = c.Put(Entry{Volume: "A", Key: wrongFP})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Field != "fingerprint" || ce.Have != k1.Fingerprint {
		t.Fatalf("conflicting fingerprint: %v", err)
	}
	errs = append(errs, err.Error())
	// A rekey: same drive key, new wrap.
	kek2, _ := keys.GenerateKEK()
	fx.ring.Add(kek2)
	fx.ring.SetActive(kek2.ID())
	k2, err := fx.ring.Rewrap(k1)
	if err != nil {
		t.Fatal(err)
	}
	fx.secret = append(fx.secret, k2.Value)
	// Without replace: refused, nothing written.
	_, err = c.PutMany([]Entry{{Volume: "B", Key: fx.v1(t)}, {Volume: "A", Key: k2}}, false)
	if !errors.As(err, &ce) || ce.Field != "stored key" || ce.Volume != "A" {
		t.Fatalf("PutMany without replace: %v", err)
	}
	errs = append(errs, err.Error())
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused PutMany changed the file")
	}
	clk.advance(24 * time.Hour)
	mustPut(t, c, Entry{Volume: "A", Key: k2}, Replaced)
	e, err := c.Get("A")
	if err != nil || e.Key != k2 || len(e.History) != 1 || e.History[0].Key != k1 ||
		!e.History[0].Replaced.Equal(clk.now().Truncate(time.Second)) || !e.Added.Equal(clk.now().Truncate(time.Second)) {
		t.Fatalf("after rekey: %v %v", e, err)
	}
	if !strings.Contains(logBuf.String(), "rekey") || !strings.Contains(logBuf.String(), "old_kek_id="+fx.kekID) {
		t.Fatalf("the replacement was not logged as a rekey: %s", logBuf.String())
	}
	// Back to the old wrap: it leaves the history instead of appearing twice.
	mustPut(t, c, Entry{Volume: "A", Key: k1}, Replaced)
	e, _ = c.Get("A")
	if e.Key != k1 || len(e.History) != 1 || e.History[0].Key != k2 {
		t.Fatalf("after going back: %v", e)
	}
	// A different key altogether.
	k3 := fx.v1(t)
	mustPut(t, c, Entry{Volume: "A", Key: k3}, Replaced)
	if !strings.Contains(logBuf.String(), "different or unverified key") {
		t.Fatalf("a new key was not logged as such: %s", logBuf.String())
	}
	e, _ = c.Get("A")
	if len(e.History) != 2 {
		t.Fatalf("history: %v", e.History)
	}
	// The history survives a round trip through the file.
	got, _ := ReadFile(path)
	if len(got) != 1 || len(got[0].History) != 2 || got[0].History[1].Key != k1 || got[0].History[0].Key != k2 {
		t.Fatalf("history in the file: %v", got)
	}
	// Invalid entries.
	bad := []struct {
		e     Entry
		field string
	}{
		{Entry{Volume: "", Key: k1}, "volume name"},
		{Entry{Volume: "a\tb", Key: k1}, "volume name"},
		{Entry{Volume: strings.Repeat("x", 128), Key: k1}, "volume name"},
		{Entry{Volume: "-", Key: k1}, "volume name"},
		{Entry{Volume: k1.Value, Key: k1}, "volume name"}, // fine name, but next: scheme
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: "v2", Value: k1.Value, KEKID: fx.kekID}}, "scheme"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeV1, Value: k1.Value}}, "kek id"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeV1, Value: k1.Value, KEKID: "ABC"}}, "kek id"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeV1, Value: k1.Value[:50], KEKID: fx.kekID}}, "stored key"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeV1, Value: k1.Value, KEKID: fx.kekID, Fingerprint: "xyz"}}, "fingerprint"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeBareos, Value: k1.Value[:40]}}, "stored key"},
		{Entry{Volume: "C", Key: keys.StoredKey{Scheme: keys.SchemeBareos, Value: "*" + k1.Value[1:]}}, "stored key"},
		{Entry{Volume: "C", Key: k1, History: []Superseded{{Key: k2}}}, "history"},
	}
	for i, b := range bad {
		_, err := c.Put(b.e)
		var ie *InvalidEntryError
		if i == 4 {
			// A stored string as a volume name is accepted as a name but
			// never printed back.
			if err != nil {
				t.Fatalf("volume named like a key: %v", err)
			}
			c.Remove(k1.Value)
			continue
		}
		if !errors.As(err, &ie) || ie.Field != b.field {
			t.Fatalf("bad entry %d (%v): %v, want field %q", i, b.e, err, b.field)
		}
		errs = append(errs, err.Error())
	}
	if _, err := c.PutMany([]Entry{{Volume: "D", Key: k1}, {Volume: "D", Key: k2}}, true); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("duplicate volume in PutMany: %v", err)
	}
	fx.noSecrets(t, append(errs, logBuf.String())...)
}

func TestTouchRemoveNotFound(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, clk)
	for _, v := range []string{"A", "B", "C"} {
		mustPut(t, c, Entry{Volume: v, Key: fx.v1(t)}, Added)
	}
	var nf *NotFoundError
	if err := c.Touch("Z"); !errors.As(err, &nf) || nf.Volume != "Z" || nf.Path != path {
		t.Fatalf("Touch(Z): %v", err)
	}
	if _, err := c.Get("Z"); !errors.As(err, &nf) {
		t.Fatalf("Get(Z): %v", err)
	}
	before, _ := os.ReadFile(path)
	if err := c.Remove("A", "Z", "B"); !errors.As(err, &nf) || nf.Volume != "Z" {
		t.Fatalf("Remove(A, Z, B): %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a failed Remove changed the file")
	}
	if err := c.Remove("A", "B"); err != nil {
		t.Fatal(err)
	}
	l, _ := c.List()
	if len(l) != 1 || l[0].Volume != "C" {
		t.Fatalf("after Remove: %v", l)
	}
	checkMode(t, path)
	// Nothing expires: a year later the entry is still there.
	clk.advance(365 * 24 * time.Hour)
	mustPut(t, c, Entry{Volume: "D", Key: fx.v1(t)}, Added)
	if _, err := c.Get("C"); err != nil {
		t.Fatalf("entry C expired: %v", err)
	}
}

func TestModeIsFixed(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, clk)
	mustPut(t, c, Entry{Volume: "A", Key: fx.v1(t)}, Added)
	os.Chmod(path, 0o644)
	var logBuf bytes.Buffer
	c2, err := Open(path, Options{Clock: clk.now, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	checkMode(t, path)
	if !strings.Contains(logBuf.String(), "old_mode=0644") {
		t.Fatalf("mode fix not logged: %q", logBuf.String())
	}
	old := syscallUmask(0)
	defer syscallUmask(old)
	mustPut(t, c2, Entry{Volume: "B", Key: fx.v1(t)}, Added)
	checkMode(t, path)
	checkMode(t, path+".lock")
}

// TestCrashBeforeRename simulates a crash between writing the temporary
// file and renaming it: a child process exits in the hook. The cache file
// is byte for byte what it was, and the next writer removes the leftover.
func TestCrashBeforeRename(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	c := open(t, path, clk)
	mustPut(t, c, Entry{Volume: "A", Key: fx.v1(t)}, Added)
	before, _ := os.ReadFile(path)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "CRYPTOCACHE_HELPER=crash", "CRYPTOCACHE_PATH="+path, "CRYPTOCACHE_KEY="+fx.v1(t).Value, "CRYPTOCACHE_KEKID="+fx.kekID)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the cache changed although the writer crashed before the rename")
	}
	temps, _ := filepath.Glob(path + ".tmp-*")
	if len(temps) != 1 {
		t.Fatalf("expected the crashed writer's temporary file, found %v", temps)
	}
	l, err := open(t, path, clk).List()
	if err != nil || len(l) != 1 || l[0].Volume != "A" {
		t.Fatalf("after the crash: %v %v", l, err)
	}
	mustPut(t, c, Entry{Volume: "B", Key: fx.v1(t)}, Added)
	if temps, _ := filepath.Glob(path + ".tmp-*"); len(temps) != 0 {
		t.Fatalf("leftover temporary files: %v", temps)
	}
	// In process: a failing hook leaves the file as it was, and says so.
	before, _ = os.ReadFile(path)
	testHookBeforeRename = func(string) error { return errors.New("disk on fire") }
	defer func() { testHookBeforeRename = nil }()
	if _, err := c.Put(Entry{Volume: "C", Key: fx.v1(t)}); err == nil || !strings.Contains(err.Error(), "was not changed") {
		t.Fatalf("Put with failing rename: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("failed update changed the file")
	}
	if temps, _ := filepath.Glob(path + ".tmp-*"); len(temps) != 0 {
		t.Fatalf("failed update left %v", temps)
	}
}

// TestHelperProcess is the child of the multi-process tests.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("CRYPTOCACHE_HELPER")
	if mode == "" {
		t.Skip("helper process only")
	}
	path := os.Getenv("CRYPTOCACHE_PATH")
	c, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sk := keys.StoredKey{Scheme: keys.SchemeV1, Value: os.Getenv("CRYPTOCACHE_KEY"), KEKID: os.Getenv("CRYPTOCACHE_KEKID")}
	switch mode {
	case "crash":
		testHookBeforeRename = func(string) error { os.Exit(7); return nil }
		c.Put(Entry{Volume: "CRASH", Key: sk})
		os.Exit(3)
	case "writer":
		n, _ := strconv.Atoi(os.Getenv("CRYPTOCACHE_N"))
		prefix := os.Getenv("CRYPTOCACHE_PREFIX")
		for i := 0; i < n; i++ {
			if _, err := c.Put(Entry{Volume: fmt.Sprintf("%s%03d", prefix, i), Key: sk}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(4)
			}
			if i%5 == 0 {
				if err := c.Touch(fmt.Sprintf("%s%03d", prefix, i)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(5)
				}
			}
		}
		os.Exit(0)
	}
	os.Exit(9)
}

// TestConcurrentWriters: two processes and two goroutines (each with its
// own Open handle) add entries at the same time; none is lost.
func TestConcurrentWriters(t *testing.T) {
	fx := newFixture(t)
	path := filepath.Join(t.TempDir(), FileName)
	sk := fx.v1(t)
	const n = 40
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for _, p := range []string{"P", "Q"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "CRYPTOCACHE_HELPER=writer", "CRYPTOCACHE_PATH="+path, "CRYPTOCACHE_KEY="+sk.Value,
			"CRYPTOCACHE_KEKID="+sk.KEKID, "CRYPTOCACHE_N="+strconv.Itoa(n), "CRYPTOCACHE_PREFIX="+p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := cmd.CombinedOutput(); err != nil {
				errc <- fmt.Errorf("writer %s: %v: %s", p, err, out)
			}
		}()
	}
	for _, p := range []string{"G", "H"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Open(path, Options{})
			if err != nil {
				errc <- err
				return
			}
			for i := 0; i < n; i++ {
				if _, err := c.Put(Entry{Volume: fmt.Sprintf("%s%03d", p, i), Key: sk}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	l, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 4*n {
		t.Fatalf("%d entries, want %d: entries were lost", len(l), 4*n)
	}
	touched := 0
	for _, e := range l {
		if !e.LastUsed.IsZero() {
			touched++
		}
	}
	if touched != 2*(n/5) {
		t.Fatalf("%d entries touched, want %d", touched, 2*(n/5))
	}
	checkMode(t, path)
}

func syscallUmask(m int) int { return unix.Umask(m) }

// b64 of 32 bytes, for tests that need a syntactically valid bareos string.
func plainBareos(p string) string { return base64.RawStdEncoding.EncodeToString([]byte(p)) }

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", FileName), Options{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, FileName), 0o700)
	if _, err := Open(filepath.Join(dir, FileName), Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Open of a directory: %v", err)
	}
}
