package cryptocache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// salvageOK salvages data and checks that no reason quotes a stored string.
func salvageOK(t *testing.T, fx *fixture, data []byte) *SalvageReport {
	t.Helper()
	r, err := Salvage(data)
	if err != nil {
		t.Fatalf("Salvage: %v", err)
	}
	var texts []string
	for _, l := range append(append([]LineNote(nil), r.Lost...), r.Notes...) {
		texts = append(texts, l.String())
	}
	texts = append(texts, r.Summary())
	for _, e := range r.Entries {
		texts = append(texts, fmt.Sprint(e), fmt.Sprintf("%+v %#v", e, e))
		if _, err := normalize(e); err != nil {
			t.Fatalf("salvaged an invalid entry: %v", err)
		}
	}
	fx.noSecrets(t, texts...)
	return r
}

func lostLines(r *SalvageReport) []int {
	var out []int
	for _, l := range r.Lost {
		out = append(out, l.Line)
	}
	return out
}

func TestSalvageIntactFile(t *testing.T) {
	fx := newFixture(t)
	good := goodFile(t, fx, filepath.Join(t.TempDir(), FileName), newClock())
	want, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	r := salvageOK(t, fx, good)
	if !r.Clean() || r.Recovered != 4 {
		t.Fatalf("intact file: %+v", r)
	}
	sameEntries(t, r.Entries, want)
	if !bytes.Equal(Encode(r.Entries), good) {
		t.Fatal("salvaged entries of an intact file do not encode to the file")
	}
}

// A byte changed inside a stored string (still base64): the checksum says
// so, every line is still recovered (the unwrap's integrity check and the
// label's fingerprint catch a damaged string at mount time).
func TestSalvageBadChecksum(t *testing.T) {
	fx := newFixture(t)
	good := goodFile(t, fx, filepath.Join(t.TempDir(), FileName), newClock())
	want, _ := Parse(good)
	bad := replaceLine(good, 2, func(l string) string {
		i := strings.LastIndexByte(l, '\t') + 5
		return l[:i] + flip(l[i]) + l[i+1:]
	})
	if _, err := Parse(bad); err == nil {
		t.Fatal("Parse accepted the changed file")
	}
	r := salvageOK(t, fx, bad)
	if r.Checksum != ChecksumMismatch || len(r.Lost) != 0 || !r.HeaderOK || r.Recovered != 4 || len(r.Entries) != 3 || r.Clean() {
		t.Fatalf("bad checksum: %+v", r)
	}
	if r.Entries[0].Volume != "A1" || r.Entries[0].Key.Value == want[0].Key.Value || len(r.Entries[0].History) != 1 {
		t.Fatalf("the changed line was not recovered as written: %v", r.Entries[0])
	}
	sameEntries(t, r.Entries[1:], want[1:])
	// A malformed checksum line.
	r = salvageOK(t, fx, replaceLine(good, 6, func(l string) string { return l[:20] }))
	if r.Checksum != ChecksumMalformed || len(r.Lost) != 0 || len(r.Entries) != 3 {
		t.Fatalf("malformed checksum line: %+v", r)
	}
}

func TestSalvageTruncated(t *testing.T) {
	fx := newFixture(t)
	good := goodFile(t, fx, filepath.Join(t.TempDir(), FileName), newClock())
	want, _ := Parse(good)
	lines := strings.SplitAfter(string(good), "\n") // header, A1 key, A1 old, B1, C1, trailer, ""
	// Cut in the middle of the last record: that line is lost (a cut
	// stored string can look like a shorter valid one: a 54-character
	// bareos string cut to 43 is never taken).
	for _, cut := range []int{10, len(lines[4]) - 1 - 11, len(lines[4]) - 1} {
		data := []byte(strings.Join(lines[:4], "") + lines[4][:cut])
		r := salvageOK(t, fx, data)
		if r.Checksum != ChecksumMissing || len(r.Lost) != 1 || r.Lost[0].Line != 5 || !strings.Contains(r.Lost[0].Reason, "truncated") {
			t.Fatalf("cut at %d of line 5: %+v", cut, r)
		}
		sameEntries(t, r.Entries, want[:2])
	}
	// Cut after a whole line: every record before it; no checksum.
	r := salvageOK(t, fx, []byte(strings.Join(lines[:5], "")))
	if r.Checksum != ChecksumMissing || len(r.Lost) != 0 || r.Recovered != 4 {
		t.Fatalf("cut after line 5: %+v", r)
	}
	sameEntries(t, r.Entries, want)
	// Cut inside the trailer.
	r = salvageOK(t, fx, []byte(strings.Join(lines[:5], "")+lines[5][:30]))
	if r.Checksum != ChecksumMalformed || len(r.Lost) != 0 || len(r.Entries) != 3 {
		t.Fatalf("cut in the trailer: %+v", r)
	}
	// Only the header, or nothing at all.
	for _, data := range []string{lines[0], lines[0][:8], ""} {
		r = salvageOK(t, fx, []byte(data))
		if len(r.Entries) != 0 || r.Checksum != ChecksumMissing {
			t.Fatalf("salvage of %q: %+v", data, r)
		}
	}
}

func TestSalvageMalformedLines(t *testing.T) {
	fx := newFixture(t)
	good := goodFile(t, fx, filepath.Join(t.TempDir(), FileName), newClock())
	want, _ := Parse(good)
	sk := fx.v1(t)
	data := replaceLine(good, 1, func(string) string { return "tapeward-cryptocache v9" })
	// Line 3 (A1's old line): a field lost.
	data = replaceLine(data, 3, func(l string) string { return strings.Replace(l, "\t", "", 1) })
	// Line 4 (B1): a stored string in the scheme field.
	data = replaceLine(data, 4, func(l string) string {
		f := strings.Split(l, "\t")
		f[2] = sk.Value
		return strings.Join(f, "\t")
	})
	// Garbage lines and a checksum line in the middle (the old trailer,
	// line 6, is now one too), then a valid record out of order.
	extra := "key\tZ9\tv1\t" + sk.KEKID + "\t" + sk.Fingerprint + "\t2026-01-01T00:00:00Z\t-\t" + sk.Value + "\n"
	data = append(data, []byte("\x00\x01garbage "+sk.Value+"\nsha256 00\n"+extra)...)
	r := salvageOK(t, fx, data)
	if got := fmt.Sprint(lostLines(r)); got != "[1 3 4 6 7 8]" || r.HeaderOK || r.Checksum != ChecksumMissing {
		t.Fatalf("lost lines %s, want [1 3 4 6 7 8]: %+v", got, r)
	}
	for _, want := range []string{"another format version", "7 tab-separated fields", "looks like a stored key, not shown", "tab-separated fields", "checksum line before the end", "has 1 tab-separated"} {
		found := false
		for _, l := range r.Lost {
			found = found || strings.Contains(l.Reason, want)
		}
		if !found {
			t.Errorf("no lost line says %q: %v", want, r.Lost)
		}
	}
	if len(r.Entries) != 3 || r.Entries[0].Volume != "A1" || len(r.Entries[0].History) != 0 || r.Entries[1].Volume != "C1" || r.Entries[2].Volume != "Z9" || r.Entries[2].Key != sk {
		t.Fatalf("entries: %v", r.Entries)
	}
	sameEntries(t, r.Entries[1:2], want[2:3])
}

func TestSalvageDuplicateVolumes(t *testing.T) {
	fx := newFixture(t)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour)
	k1, k2, k3, k4 := fx.v1(t), fx.v1(t), fx.v1(t), fx.bareos(t, true)
	k2other := k2
	k2other.Fingerprint = k1.Fingerprint
	line := func(typ, vol string, sk keys.StoredKey, a, b time.Time) string {
		var buf bytes.Buffer
		writeRec(&buf, typ, vol, sk, a, b)
		return buf.String()
	}
	data := Header + "\n" +
		line(recKey, "V1", k2, t2, time.Time{}) + // line 2
		line(recOld, "V1", k1, t1, t2) + //          line 3
		line(recKey, "V1", k3, t3, t3) + //          line 4: a second key line, added later
		line(recKey, "V1", k2other, t2, time.Time{}) + // line 5: repeats line 2 with another fingerprint
		line(recOld, "V2", k1, t1, t2) + //          line 6: V2 has no key line
		line(recOld, "V2", k4, t2, t3) + //          line 7
		line(recKey, "A0", k4, t1, time.Time{}) + // line 8: out of order
		"sha256 " + strings.Repeat("0", 64) + "\n"
	r := salvageOK(t, fx, []byte(data))
	if len(r.Lost) != 0 || r.Checksum != ChecksumMismatch || r.Recovered != 6 || len(r.Notes) != 3 {
		t.Fatalf("report: %+v", r)
	}
	for i, want := range []string{"line 2: volume \"V1\" has another key line (line 4) added later", "line 5: volume \"V1\": repeats the stored key of line 2 (with kek id " + k2.KEKID + ", fingerprint " + k1.Fingerprint + "; line 2 says " + k2.KEKID + ", " + k2.Fingerprint + ": that one is kept); kept once", "line 7: volume \"V2\": its key line is lost"} {
		if !strings.HasPrefix(r.Notes[i].String(), want) {
			t.Errorf("note %d = %q, want %q…", i, r.Notes[i], want)
		}
	}
	want := []Entry{
		{Volume: "A0", Key: k4, Added: t1},
		{Volume: "V1", Key: k3, Added: t3, LastUsed: t3, History: []Superseded{{Key: k1, Added: t1, Replaced: t2}, {Key: k2, Added: t2, Replaced: t3}}},
		{Volume: "V2", Key: k4, Added: t2, History: []Superseded{{Key: k1, Added: t1, Replaced: t2}}},
	}
	sameEntries(t, r.Entries, want)
	// What salvage returns is a valid file.
	if es, err := Parse(Encode(r.Entries)); err != nil || len(es) != 3 {
		t.Fatalf("salvaged entries do not encode to a valid file: %v", err)
	}
}

func TestSalvageRefusesOtherFormats(t *testing.T) {
	_, err := Salvage([]byte("BAREOS Crypto Cache\n\x00\x00\x00\x01"))
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "import-bareos") {
		t.Fatalf("Salvage of a Bareos cache: %v", err)
	}
	if _, err := SalvageFile(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SalvageFile of a missing file: %v", err)
	}
}

// Merge adds, never replaces: a new volume gets its salvaged entry (times
// and history), a volume the cache has keeps its current key and gains
// the salvaged strings it lacks as history (a conflict is reported), and
// the same string with another fingerprint is reported and not changed.
func TestMerge(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	t0 := time.Date(2025, 5, 5, 5, 5, 5, 0, time.UTC)
	a, b, c1, c2, old := fx.v1(t), fx.v1(t), fx.v1(t), fx.v1(t), fx.v1(t)
	cache := open(t, path, clk)
	mustPut(t, cache, Entry{Volume: "A", Key: a}, Added)
	mustPut(t, cache, Entry{Volume: "C", Key: c1}, Added)
	wrongFP := a
	wrongFP.Fingerprint = b.Fingerprint
	salv := []Entry{
		{Volume: "A", Key: wrongFP, Added: t0},
		{Volume: "B", Key: b, Added: t0, LastUsed: t0, History: []Superseded{{Key: old, Added: t0, Replaced: t0}}},
		{Volume: "C", Key: c2, Added: t0, History: []Superseded{{Key: c1, Added: t0, Replaced: t0}, {Key: old, Added: t0, Replaced: t0}}},
	}
	var logs bytes.Buffer
	cache.log = slog.New(slog.NewTextHandler(&logs, nil))
	res, err := cache.Merge(salv)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(res[0].Result, res[0].HistoryAdded, len(res[0].Conflicts), res[1].Result, res[2].Result, res[2].HistoryAdded, len(res[2].Conflicts))
	if got != "unchanged 0 1 added updated 2 1" || !strings.Contains(res[0].Conflicts[0], "fingerprint "+a.Fingerprint) ||
		!strings.Contains(res[2].Conflicts[0], "the cache's stays current") {
		t.Fatalf("merge results = %s %v", got, res)
	}
	es, err := cache.List()
	if err != nil {
		t.Fatal(err)
	}
	now := normTime(clk.now())
	sameEntries(t, es, []Entry{
		{Volume: "A", Key: a, Added: now},
		salv[1],
		{Volume: "C", Key: c1, Added: now, History: []Superseded{{Key: c2, Added: t0, Replaced: now}, {Key: old, Added: t0, Replaced: t0}}},
	})
	// Idempotent: a second merge changes nothing (conflicts said again).
	before, _ := os.ReadFile(path)
	res, err = cache.Merge(salv)
	if err != nil || res[1].Result != Unchanged || res[2].Result != Unchanged || res[2].HistoryAdded != 0 {
		t.Fatalf("second merge: %v %v", res, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a second merge changed the file")
	}
	// All or nothing: an invalid entry writes nothing.
	_, err = cache.Merge([]Entry{{Volume: "D", Key: fx.v1(t), Added: t0}, {Volume: "-", Key: b, Added: t0}})
	var ie *InvalidEntryError
	if !errors.As(err, &ie) {
		t.Fatalf("merge with an invalid entry: %v", err)
	}
	if _, err := cache.Get("D"); err == nil {
		t.Fatal("a refused merge wrote an entry")
	}
	checkMode(t, path)
	fx.noSecrets(t, logs.String())
	if !strings.Contains(logs.String(), "salvaged entry disagrees with the cache") {
		t.Fatalf("conflicts not logged:\n%s", logs.String())
	}
}

// recordLog keeps the log records of a test (level and text).
type recordLog struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	h.recs = append(h.recs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *recordLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordLog) WithGroup(string) slog.Handler      { return h }

// OpenRecover: a corrupt cache is kept byte for byte, its good lines are
// in the fresh cache, the Recovery and an ERROR say so. An intact cache
// gives no Recovery.
func TestOpenRecover(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	good := goodFile(t, fx, path, clk)
	want, _ := Parse(good)
	c, rec, err := OpenRecover(path, Options{Clock: clk.now})
	if err != nil || rec != nil || c == nil {
		t.Fatalf("OpenRecover of an intact cache: %v %v", rec, err)
	}
	// Line 4 (B1) damaged, and the file truncated in the trailer.
	bad := replaceLine(good, 4, func(l string) string { return strings.Replace(l, "\t", " ", 2) })
	bad = bad[:len(bad)-10]
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	h := &recordLog{}
	c, rec, err = OpenRecover(path, Options{Clock: clk.now, Logger: slog.New(h)})
	if err != nil || rec == nil {
		t.Fatalf("OpenRecover of a corrupt cache: %v %v", rec, err)
	}
	kept := CorruptName(path, clk.now())
	if rec.Corrupt.MovedTo != kept || rec.SalvageErr != nil || rec.LostLines() != 1 || rec.Salvage.Checksum != ChecksumMalformed ||
		len(rec.Merged) != 2 || rec.Conflicts != 0 || !rec.Time.Equal(normTime(clk.now())) {
		t.Fatalf("recovery = %+v", rec)
	}
	if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, bad) {
		t.Fatalf("the kept file is not the corrupt one byte for byte (%v)", err)
	}
	es, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, es, []Entry{want[0], want[2]})
	checkMode(t, path)
	var errLine string
	for _, r := range h.recs {
		if strings.HasPrefix(r, "ERROR CRYPTO CACHE CORRUPT") {
			errLine = r
		}
	}
	for _, w := range []string{"kept_as=" + kept, "2 volumes (3 key lines) recovered, 1 lines lost, checksum malformed", "lost_lines=4", "tapekey cache verify"} {
		if !strings.Contains(errLine, w) {
			t.Fatalf("the ERROR line lacks %q: %q\nall: %v", w, errLine, h.recs)
		}
	}
	fx.noSecrets(t, h.recs...)
	// The next start reads the salvaged cache normally.
	if _, rec, err := OpenRecover(path, Options{Clock: clk.now}); err != nil || rec != nil {
		t.Fatalf("OpenRecover after the recovery: %v %v", rec, err)
	}
}

func FuzzSalvage(f *testing.F) {
	fx := newFixture(f)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	good := Encode([]Entry{
		{Volume: "A", Key: fx.v1(f), Added: t0, LastUsed: t0,
			History: []Superseded{{Key: fx.bareos(f, true), Added: t0, Replaced: t0}}},
		{Volume: "B", Key: fx.bareos(f, false), Added: t0},
	})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(Encode(nil))
	f.Add([]byte("tapeward-cryptocache v2\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Salvage(data)
		if err != nil {
			return
		}
		for _, e := range r.Entries {
			if _, err := normalize(e); err != nil {
				t.Fatalf("salvaged an invalid entry: %v", err)
			}
		}
		if _, err := Parse(Encode(r.Entries)); err != nil {
			t.Fatalf("salvaged entries do not encode to a valid file: %v", err)
		}
		if es, err := Parse(data); err == nil && (!r.Clean() || !bytes.Equal(Encode(es), Encode(r.Entries))) {
			t.Fatalf("an intact file was not salvaged as it is: %+v", r)
		}
	})
}
