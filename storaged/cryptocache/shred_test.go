package cryptocache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Shred removes every stored string of the volume (current and history)
// in one atomic update, leaves the other volumes alone, removes a crashed
// writer's temporary copy, names (and never edits) a corrupt copy that
// holds the volume's lines, and is idempotent.
func TestShredRemovesEveryString(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	c := open(t, path, clk)
	old, cur, other := fx.v1(t), fx.v1(t), fx.v1(t)
	mustPut(t, c, Entry{Volume: "VOL1", Key: old}, Added)
	clk.advance(time.Hour)
	mustPut(t, c, Entry{Volume: "VOL1", Key: cur}, Replaced)
	mustPut(t, c, Entry{Volume: "VOL2", Key: other}, Added)

	// A crashed writer's leftover and a corrupt copy kept aside, both
	// holding VOL1's strings.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp-123"
	if err := os.WriteFile(tmp, before, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := CorruptName(path, clk.now())
	damaged := append(bytes.Clone(before[:len(before)-10]), "garbage"...)
	if err := os.WriteFile(corrupt, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	unrelated := CorruptName(path, clk.now().Add(time.Hour))
	if err := os.WriteFile(unrelated, []byte("tapeward-cryptocache v1\nkey\tVOL9\tbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	res, err := c.Shred("VOL1", "VOL7")
	if err != nil {
		t.Fatal(err)
	}
	if res.Destroyed != 2 || len(res.Absent) != 1 || res.Absent[0] != "VOL7" {
		t.Fatalf("Shred = %+v, want 2 strings destroyed, VOL7 absent", res)
	}
	if len(res.NotEdited) != 1 || res.NotEdited[0] != filepath.Base(corrupt) {
		t.Fatalf("NotEdited = %v, want only %s", res.NotEdited, filepath.Base(corrupt))
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{old.Value, cur.Value, "\tVOL1\t"} {
		if bytes.Contains(after, []byte(s)) {
			t.Fatalf("the cache still holds a line or string of VOL1 after the shred")
		}
	}
	if !bytes.Contains(after, []byte(other.Value)) {
		t.Fatal("the shred removed VOL2's key too")
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("the leftover temporary copy is still there (%v)", err)
	}
	if got, _ := os.ReadFile(corrupt); !bytes.Equal(got, damaged) {
		t.Fatal("the corrupt copy was changed; it must be kept as found")
	}
	checkMode(t, path)
	es, err := ReadFile(path)
	if err != nil || len(es) != 1 || es[0].Volume != "VOL2" {
		t.Fatalf("cache after the shred = %v, %v; want VOL2 only", es, err)
	}
	if _, err := c.Get("VOL1"); err == nil {
		t.Fatal("Get(VOL1) after the shred found an entry")
	}

	// Again: nothing left, nothing written.
	res, err = c.Shred("VOL1")
	if err != nil || res.Destroyed != 0 || strings.Join(res.Absent, ",") != "VOL1" {
		t.Fatalf("second Shred = %+v, %v; want VOL1 absent", res, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, after) {
		t.Fatal("an idempotent shred rewrote the cache")
	}
}
