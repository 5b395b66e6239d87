package cryptocache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// goodFile writes a cache with three entries (one with history) and
// returns its content.
func goodFile(t testing.TB, fx *fixture, path string, clk *fakeClock) []byte {
	t.Helper()
	c := open(t, path, clk)
	mustPut(t, c, Entry{Volume: "A1", Key: fx.v1(t)}, Added)
	mustPut(t, c, Entry{Volume: "A1", Key: fx.v1(t)}, Replaced)
	mustPut(t, c, Entry{Volume: "B1", Key: fx.bareos(t, true)}, Added)
	mustPut(t, c, Entry{Volume: "C1", Key: fx.bareos(t, false)}, Added)
	if err := c.Touch("B1"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// resum replaces the checksum line so that only the edited line is wrong.
func resum(data []byte) []byte {
	i := bytes.LastIndex(data[:len(data)-1], []byte("\n"))
	body := data[:i+1]
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), []byte("sha256 "+hex.EncodeToString(sum[:])+"\n")...)
}

func replaceLine(data []byte, n int, fn func(string) string) []byte {
	lines := strings.Split(string(data), "\n")
	lines[n-1] = fn(lines[n-1])
	return []byte(strings.Join(lines, "\n"))
}

func TestCorruptFileIsKept(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	good := goodFile(t, fx, path, clk)
	nlines := bytes.Count(good, []byte("\n")) // 6: header, 4 records, trailer
	if nlines != 6 {
		t.Fatalf("good file has %d lines:\n%s", nlines, good)
	}
	// The stored string of line 2 is its last field; flip a character
	// in it to another valid base64 character.
	flipStored := replaceLine(good, 2, func(l string) string {
		b := []byte(l)
		i := len(b) - 10
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	})
	cases := []struct {
		name   string
		data   []byte
		line   int
		reason string
	}{
		{"changed stored string", flipStored, 6, "checksum mismatch"},
		{"flipped checksum", replaceLine(good, 6, func(l string) string { return l[:10] + flip(l[10]) + l[11:] }), 6, "checksum mismatch"},
		{"truncated in the trailer", good[:len(good)-20], 6, "truncated"},
		{"truncated mid-line", good[:len(Header)+30], 2, "truncated"},
		{"truncated at a line end", good[:bytes.Index(good, []byte("\nkey\tB1"))+1], 3, "no \"sha256 <hex>\" checksum line"},
		{"wrong version", bytes.Replace(good, []byte("tapeward-cryptocache v1"), []byte("tapeward-cryptocache v2"), 1), 1, `unsupported format version "v2"`},
		{"garbage", []byte("\x00\x01garbage\xff\xfe"), 1, "first line is not"},
		{"empty", []byte{}, 0, "empty"},
		{"bareos file", append([]byte("BAREOS Crypto Cache\n\x00\x00\x00\x00"), make([]byte, 8)...), 1, "import-bareos"},
		{"bad scheme, valid checksum", resum(replaceLine(good, 3, func(l string) string { return strings.Replace(l, "\tv1\t", "\tv9\t", 1) })), 3, `scheme is "v9"`},
		{"bad field count, valid checksum", resum(replaceLine(good, 4, func(l string) string { return l + "\textra" })), 4, "9 tab-separated fields"},
		{"empty field, valid checksum", resum(replaceLine(good, 5, func(l string) string { return strings.Replace(l, "\t-\t", "\t\t", 1) })), 5, "field 4 is empty"},
		{"bad time, valid checksum", resum(replaceLine(good, 4, func(l string) string { return strings.Replace(l, "2026-03-14T15:09:26Z", "2026-03-14 15:09:26", 1) })), 4, "not a UTC time"},
		{"duplicate, valid checksum", resum(replaceLine(good, 5, func(l string) string { return strings.Replace(l, "\tC1\t", "\tB1\t", 1) })), 5, `volume "B1" appears twice`},
		{"orphan history, valid checksum", resum(replaceLine(good, 3, func(l string) string { return strings.Replace(l, "\tA1\t", "\tA0\t", 1) })), 3, "does not follow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// ReadFile reports without moving.
			_, err := ReadFile(path)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.MovedTo != "" || ce.Path != path || ce.Line != tc.line || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("ReadFile: %v (line %d), want line %d and %q", err, lineOf(ce), tc.line, tc.reason)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.data) {
				t.Fatal("ReadFile changed the file")
			}
			clk.advance(time.Second)
			c, err := Open(path, Options{Clock: clk.now})
			if !errors.As(err, &ce) || c != nil {
				t.Fatalf("Open: %v, %v; want a *CorruptError and no cache", c, err)
			}
			want := CorruptName(path, clk.now())
			if ce.Path != path || ce.MovedTo != want || ce.Line != tc.line || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("CorruptError %+v; want moved to %s, line %d, %q", *ce, want, tc.line, tc.reason)
			}
			for _, w := range []string{path, want, tc.reason} {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
			if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("the corrupt file was not kept byte for byte as %s: %v", want, err)
			}
			checkMode(t, want)
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("the corrupt file is still at %s", path)
			}
			fx.noSecrets(t, err.Error())
			// The caller may continue with an empty cache.
			c = open(t, path, clk)
			if l, err := c.List(); err != nil || len(l) != 0 {
				t.Fatalf("after moving aside: %v %v", l, err)
			}
		})
	}
}

func lineOf(ce *CorruptError) int {
	if ce == nil {
		return -1
	}
	return ce.Line
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// A corrupt file found by an update is moved aside, the update is not
// applied, and a second corrupt file at the same second never overwrites
// the first copy.
func TestCorruptDuringUpdateAndNameClash(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	good := goodFile(t, fx, path, clk)
	c := open(t, path, clk)
	bad1 := good[:len(good)-5]
	os.WriteFile(path, bad1, 0o600)
	_, err := c.Put(Entry{Volume: "Z", Key: fx.v1(t)})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.MovedTo != CorruptName(path, clk.now()) {
		t.Fatalf("Put on a corrupt file: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Put wrote a new cache although the old one was corrupt")
	}
	bad2 := []byte("tapeward-cryptocache v7\n")
	os.WriteFile(path, bad2, 0o600)
	if err := c.Touch("A1"); !errors.As(err, &ce) || ce.MovedTo != CorruptName(path, clk.now())+".1" {
		t.Fatalf("second corrupt file at the same time: %v", err)
	}
	if b, _ := os.ReadFile(CorruptName(path, clk.now())); !bytes.Equal(b, bad1) {
		t.Fatal("the first corrupt copy was overwritten")
	}
	if b, _ := os.ReadFile(ce.MovedTo); !bytes.Equal(b, bad2) {
		t.Fatal("the second corrupt copy is not the second file")
	}
	// Then the cache carries on, empty.
	mustPut(t, c, Entry{Volume: "Z", Key: fx.v1(t)}, Added)
	if l, _ := c.List(); len(l) != 1 {
		t.Fatalf("after corruption: %v", l)
	}
}

// Parse(Encode(x)) is x, and Encode is canonical.
func TestEncodeParse(t *testing.T) {
	fx := newFixture(t)
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	es := []Entry{
		{Volume: "ZZ", Key: fx.v1(t), Added: t0},
		{Volume: "AA", Key: fx.bareos(t, false), Added: t0, LastUsed: t0.Add(time.Hour),
			History: []Superseded{{Key: fx.v1(t), Added: t0.Add(-time.Hour), Replaced: t0}}},
	}
	data := Encode(es)
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, got, []Entry{es[1], es[0]})
	if !bytes.Equal(Encode(got), data) {
		t.Fatal("Encode is not canonical")
	}
	if data := Encode(nil); string(data) != "tapeward-cryptocache v1\nsha256 "+hexSum("tapeward-cryptocache v1\n")+"\n" {
		t.Fatalf("empty cache: %q", data)
	}
	if l, err := Parse(Encode(nil)); err != nil || len(l) != 0 {
		t.Fatalf("empty cache: %v %v", l, err)
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A stored string given in a volume field or in a wrong place is never
// quoted by Parse errors.
func TestParseErrorsHideStoredStrings(t *testing.T) {
	fx := newFixture(t)
	sk := fx.v1(t)
	lines := []string{
		"key\t" + sk.Value + "\tv9\t-\t-\t2026-01-01T00:00:00Z\t-\t" + sk.Value,
		"key\tA\t" + sk.Value + "\t-\t-\t2026-01-01T00:00:00Z\t-\t" + sk.Value,
		"key\tA\tv1\t" + sk.Value + "\t-\t2026-01-01T00:00:00Z\t-\t" + sk.Value,
		"key\tA\tv1\t" + fx.kekID + "\t-\t2026-01-01T00:00:00Z\t-\t" + sk.Value[:53] + "*",
		"key\tA\tv1\t" + fx.kekID + "\t-\t" + sk.Value + "\t-\t" + sk.Value,
	}
	for i, l := range lines {
		data := resum([]byte(Header + "\n" + l + "\nsha256 x\n"))
		_, err := Parse(data)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Line != 2 {
			t.Fatalf("line %d: %v", i, err)
		}
		fx.noSecrets(t, err.Error())
		if strings.Contains(err.Error(), sk.Value[:20]) {
			t.Fatalf("error quotes part of a stored string: %v", err)
		}
	}
}

func FuzzParse(f *testing.F) {
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
	f.Add([]byte("BAREOS Crypto Cache\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := Parse(data)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("error is not a *CorruptError with a reason: %v", err)
			}
			return
		}
		// Whatever Parse accepts is canonical and valid.
		if !bytes.Equal(Encode(es), data) {
			t.Fatalf("accepted a non-canonical file:\n%q", data)
		}
		for _, e := range es {
			if _, err := normalize(e); err != nil {
				t.Fatalf("accepted an invalid entry: %v", err)
			}
		}
	})
}

// Stored keys unwrap identically after a trip through the file (the cache
// never alters a stored string, except trimming bareos '=' padding).
func TestStoredStringsSurvive(t *testing.T) {
	fx := newFixture(t)
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, newClock())
	var want []keys.StoredKey
	for i, sk := range []keys.StoredKey{fx.v1(t), fx.bareos(t, true), fx.bareos(t, false)} {
		mustPut(t, c, Entry{Volume: string(rune('a' + i)), Key: sk}, Added)
		want = append(want, sk)
	}
	l, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range l {
		k1, err1 := fx.ring.Unwrap(e.Key)
		k2, err2 := fx.ring.Unwrap(want[i])
		if err1 != nil || err2 != nil || !bytes.Equal(k1, k2) {
			t.Fatalf("%s: %v %v", e.Volume, err1, err2)
		}
	}
}
