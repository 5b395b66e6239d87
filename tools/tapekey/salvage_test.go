package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The DR recipe for a damaged crypto cache: dump --salvage lists what can
// be recovered (lost lines by number and reason, the checksum), salvage
// --into merges it into a new or existing cache (nothing replaced,
// conflicts reported), the damaged file is never changed, and no output
// holds a stored string.
func TestCacheSalvage(t *testing.T) {
	dir := t.TempDir()
	var outs cacheOutputs
	_, kekID, kek := newKEK(t, dir, "kek.key")
	s1, fp1 := newStored(t, dir, "kek.key")
	s2, _ := newStored(t, dir, "kek.key")
	s3, fp3 := newStored(t, dir, "kek.key")
	s4, fp4 := newStored(t, dir, "kek.key")
	s5, fp5 := newStored(t, dir, "kek.key")
	secrets := append([]string{s1, s2, s3, s4, s5}, secretForms(kek)...)
	ok(t, dir, "VOL1\t"+s1+"\nVOL2\t"+s2+"\nVOL3\t"+s3+"\n", "cache", "add", "c.cache", "--kek", "kek.key")
	if r := tk(t, dir, "VOL3\t"+s4+"\n", "cache", "add", "c.cache", "--kek", "kek.key", "--replace"); r.code != 0 {
		t.Fatalf("add --replace: %+v", r)
	}
	// header, VOL1, VOL2, VOL3 key (s4), VOL3 old (s3), trailer
	lines := strings.SplitAfter(string(readFile(t, filepath.Join(dir, "c.cache"))), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[4], "old\tVOL3\t") {
		t.Fatalf("unexpected cache:\n%s", strings.Join(lines, ""))
	}
	// Line 3 (VOL2) loses a tab; the stored string of line 2 moves into
	// the scheme field of a copy appended; the file is cut in the trailer.
	lines[2] = strings.Replace(lines[2], "\t", "", 1)
	f := strings.Split(strings.TrimSuffix(lines[1], "\n"), "\t")
	f[2] = s1
	damaged := []byte(strings.Join(lines[:5], "") + strings.Join(f, "\t") + "\n" + lines[5][:40])
	bad := filepath.Join(dir, "c.cache.corrupt-20261202T000000Z")
	if err := os.WriteFile(bad, damaged, 0o600); err != nil {
		t.Fatal(err)
	}

	// Plain dump refuses and says what to run.
	outs.add(fails(t, 1, dir, "", []string{"cache", "dump", bad}, "is corrupt at line 7", "tapekey cache dump "+bad+" --salvage"))
	// dump --salvage lists what can be recovered.
	d := outs.add(tk(t, dir, "", "cache", "dump", bad, "--salvage"))
	for _, want := range []string{"VOL1    v1      " + kekID + "  " + fp1, "VOL3    v1      " + kekID + "  " + fp4,
		"lost      line 3: has 7 tab-separated fields", "lost      line 6: volume \"VOL1\": scheme is (a value that looks like a stored key, not shown)",
		bad + ": salvage: 2 volumes (3 key lines) recovered, 2 lines lost, checksum malformed", "tapekey cache salvage " + bad + " --into CACHE"} {
		if d.code != 0 || !strings.Contains(d.stdout, want) {
			t.Fatalf("dump --salvage lacks %q: %+v", want, d)
		}
	}
	if strings.Contains(d.stdout, "VOL2") {
		t.Fatalf("dump --salvage lists the lost volume: %s", d.stdout)
	}
	js := outs.add(tk(t, dir, "", "cache", "dump", bad, "--salvage", "--json"))
	var doc struct {
		Salvage struct {
			Checksum string `json:"checksum"`
			Lost     []struct {
				Line   int    `json:"line"`
				Reason string `json:"reason"`
			} `json:"lines_lost"`
			Recovered int `json:"lines_recovered"`
		} `json:"salvage"`
		Entries []struct {
			Volume  string            `json:"volume"`
			History []json.RawMessage `json:"history"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &doc); err != nil || doc.Salvage.Checksum != "malformed" || len(doc.Salvage.Lost) != 2 ||
		doc.Salvage.Lost[0].Line != 3 || doc.Salvage.Lost[1].Line != 6 || doc.Salvage.Recovered != 3 || len(doc.Entries) != 2 || len(doc.Entries[1].History) != 1 {
		t.Fatalf("dump --salvage --json: %v %s", err, js.stdout)
	}

	// salvage into a new cache: a valid cache, mode 0600, every key unwraps.
	r := outs.add(tk(t, dir, "", "cache", "salvage", bad, "--into", "new.cache"))
	if r.code != 0 || !strings.Contains(r.stdout, "new.cache: merged 2 added, 0 updated, 0 unchanged, 0 conflicts") || !strings.Contains(r.stdout, "lost      line 3") {
		t.Fatalf("salvage --into a new cache: %+v", r)
	}
	mode0600(t, filepath.Join(dir, "new.cache"))
	v := outs.add(tk(t, dir, "", "cache", "verify", "new.cache", "--kek", "kek.key"))
	if v.code != 0 || !strings.Contains(v.stdout, "all 2 entries unwrap") || !strings.Contains(v.stdout, ": v1, kek "+kekID+": unwraps") {
		t.Fatalf("verify of the salvaged cache: %+v", v)
	}

	// salvage into an existing cache where VOL1 has another key: that key
	// stays current, the salvaged one joins the history, the conflict is
	// reported; VOL3 is added with its history.
	ok(t, dir, "VOL1\t"+s5+"\n", "cache", "add", "live.cache", "--kek", "kek.key")
	r = outs.add(tk(t, dir, "", "cache", "salvage", bad, "--into", "live.cache"))
	if r.code != 0 || !strings.Contains(r.stdout, "updated  VOL1") || !strings.Contains(r.stdout, "+1 earlier keys") ||
		!strings.Contains(r.stdout, "conflict  VOL1: the cache's current key (scheme v1, kek "+kekID+", fingerprint "+fp5+") is not the salvaged one") ||
		!strings.Contains(r.stdout, "live.cache: merged 1 added, 1 updated, 0 unchanged, 1 conflicts") {
		t.Fatalf("salvage --into an existing cache: %+v", r)
	}
	d = outs.add(tk(t, dir, "", "cache", "dump", "live.cache", "--json"))
	var live struct {
		Entries []struct {
			Volume      string `json:"volume"`
			Fingerprint string `json:"fingerprint"`
			History     []struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"history"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(d.stdout), &live); err != nil || len(live.Entries) != 2 || live.Entries[0].Fingerprint != fp5 ||
		len(live.Entries[0].History) != 1 || live.Entries[0].History[0].Fingerprint != fp1 || live.Entries[1].Fingerprint != fp4 ||
		live.Entries[1].History[0].Fingerprint != fp3 {
		t.Fatalf("live cache after the salvage: %v %s", err, d.stdout)
	}
	// Again: nothing changes.
	before := readFile(t, filepath.Join(dir, "live.cache"))
	r = outs.add(tk(t, dir, "", "cache", "salvage", bad, "--into", "live.cache"))
	if r.code != 0 || !strings.Contains(r.stdout, "merged 0 added, 0 updated, 2 unchanged") || !bytes.Equal(before, readFile(t, filepath.Join(dir, "live.cache"))) {
		t.Fatalf("second salvage: %+v", r)
	}

	// Refusals: the same file, nothing to salvage, no --into.
	outs.add(fails(t, 1, dir, "", []string{"cache", "salvage", bad, "--into", bad}, "are the same file"))
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	outs.add(fails(t, 1, dir, "", []string{"cache", "salvage", "empty", "--into", "x.cache"}, "nothing to salvage", "x.cache was not changed"))
	if _, err := os.Stat(filepath.Join(dir, "x.cache")); !os.IsNotExist(err) {
		t.Fatal("a salvage of nothing created the cache")
	}
	fails(t, 2, dir, "", []string{"cache", "salvage", bad}, "needs --into")
	// A corrupt --into is kept aside as any corrupt cache, and nothing is merged.
	os.WriteFile(filepath.Join(dir, "junk.cache"), []byte("junk\n"), 0o600)
	outs.add(fails(t, 1, dir, "", []string{"cache", "salvage", bad, "--into", "junk.cache"}, "junk.cache is corrupt at line 1", "it was kept as junk.cache.corrupt-", "nothing was merged from"))
	if m, _ := filepath.Glob(filepath.Join(dir, "junk.cache.corrupt-*")); len(m) != 1 {
		t.Fatalf("corrupt --into kept as %v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "junk.cache")); !os.IsNotExist(err) {
		t.Fatal("a salvage into a corrupt cache wrote a new one")
	}

	// The damaged file was never changed.
	if !bytes.Equal(readFile(t, bad), damaged) {
		t.Fatal("the damaged file changed")
	}
	outs.noSecrets(t, secrets...)
}
