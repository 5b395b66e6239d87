package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// newStored makes a v1 volume key with tapekey and returns stored string
// and fingerprint.
func newStored(t *testing.T, dir, kek string) (string, string) {
	t.Helper()
	var info map[string]string
	if err := json.Unmarshal([]byte(ok(t, dir, "", "key", "new", "--kek", kek, "--json")), &info); err != nil {
		t.Fatal(err)
	}
	return info["stored_key"], info["fingerprint"]
}

// cacheOutputs collects every output of the cache commands of a test, to
// check at the end that none holds a secret.
type cacheOutputs []string

func (o *cacheOutputs) add(r result) result { *o = append(*o, r.stdout, r.stderr); return r }

func (o *cacheOutputs) noSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, txt := range *o {
			if strings.Contains(txt, s) {
				t.Fatalf("output contains a stored string or key: %q", txt)
			}
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mode0600(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, %v; want 0600", p, fi, err)
	}
}

const (
	vecBareosKEK    = "0123456789abcdefFEDCBA9876543210"
	vecBareosPass   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
	vecBareosStored = "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g"
)

func TestCacheCommands(t *testing.T) {
	dir := t.TempDir()
	var outs cacheOutputs
	_, kekID, kek := newKEK(t, dir, "kek.key")
	s1, fp1 := newStored(t, dir, "kek.key")
	s2, fp2 := newStored(t, dir, "kek.key")
	s3, _ := newStored(t, dir, "kek.key")
	os.WriteFile(filepath.Join(dir, "bk.txt"), []byte(vecBareosKEK+"\n"), 0o600)
	ok(t, dir, "", "kek", "id", "--scheme", "bareos", "bk.txt")
	plain := base64.RawStdEncoding.EncodeToString([]byte("zyxwvutsrqponmlkjihgfedcba012345"))
	secrets := []string{s1, s2, s3, vecBareosStored, plain, vecBareosPass, "zyxwvutsrqponmlkjihgfedcba01234"}
	for _, f := range secretForms(kek) {
		secrets = append(secrets, f)
	}

	// add without KEKs: the v1 KEK id is given, nothing is unwrapped.
	in := "VOL001\t" + s1 + "\tv1\t" + kekID + "\n" +
		"# a comment\n\n" +
		"BAR001\t" + vecBareosStored + " bareos\n" +
		"BAR002\t" + plain + "\tbareos\n"
	out := outs.add(tk(t, dir, in, "cache", "add", "c.cache"))
	if out.code != 0 || !strings.Contains(out.stdout, "3 added") || !strings.Contains(out.stdout, "added     VOL001  v1  kek "+kekID+"  fingerprint -") {
		t.Fatalf("cache add: %+v", out)
	}
	path := filepath.Join(dir, "c.cache")
	mode0600(t, path)
	// add with --kek: KEK id and fingerprint computed and checked.
	out = outs.add(tk(t, dir, "VOL 002\t"+s2+"\r\n", "cache", "add", "c.cache", "--kek", "kek.key"))
	if out.code != 0 || !strings.Contains(out.stdout, "added     VOL 002  v1  kek "+kekID+"  fingerprint "+fp2) {
		t.Fatalf("cache add --kek: %+v", out)
	}
	// Same key again with --kek: the fingerprint of VOL001 is filled in.
	out = outs.add(tk(t, dir, "VOL001\t"+s1+"\n", "cache", "add", "--kek", "kek.key", "c.cache"))
	if out.code != 0 || !strings.Contains(out.stdout, "updated   VOL001") {
		t.Fatalf("cache add (fill in): %+v", out)
	}
	mode0600(t, path)

	// dump
	dump := outs.add(tk(t, dir, "", "cache", "dump", "c.cache"))
	if dump.code != 0 || !strings.Contains(dump.stdout, "4 entries in c.cache") {
		t.Fatalf("dump: %+v", dump)
	}
	var bar001 string
	for _, l := range strings.Split(dump.stdout, "\n") {
		if strings.HasPrefix(l, "BAR001") {
			bar001 = l
		}
	}
	if f := strings.Fields(bar001); len(f) != 7 || f[1] != "bareos" || f[2] != "-" || f[3] != "-" || f[5] != "-" {
		t.Fatalf("dump line of BAR001: %q", bar001)
	}
	js := outs.add(tk(t, dir, "", "cache", "dump", "--json", "c.cache"))
	var doc struct {
		Format  string `json:"format"`
		Entries []struct {
			Volume, Scheme, Added string
			KEKID                 string `json:"kek_id"`
			Fingerprint           string `json:"fingerprint"`
			LastUsed              string `json:"last_used"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &doc); err != nil || doc.Format != "tapeward-cryptocache v1" || len(doc.Entries) != 4 {
		t.Fatalf("dump --json: %v %s", err, js.stdout)
	}
	got := map[string]string{}
	for _, e := range doc.Entries {
		got[e.Volume] = e.Scheme + " " + e.KEKID + " " + e.Fingerprint
		if len(e.Added) != 20 || e.LastUsed != "" {
			t.Fatalf("dump --json times: %+v", e)
		}
	}
	if got["VOL001"] != "v1 "+kekID+" "+fp1 || got["VOL 002"] != "v1 "+kekID+" "+fp2 || got["BAR001"] != "bareos  " || !strings.HasPrefix(got["BAR002"], "bareos  ") {
		t.Fatalf("dump --json entries: %v", got)
	}

	// verify: file only; with every KEK; with a missing KEK.
	v := outs.add(tk(t, dir, "", "cache", "verify", "c.cache"))
	if v.code != 0 || !strings.Contains(v.stdout, "checksum ok, 4 entries; keys not unwrapped") {
		t.Fatalf("verify: %+v", v)
	}
	v = outs.add(tk(t, dir, "", "cache", "verify", "c.cache", "--kek", "kek.key", "--bareos-kek", "bk.txt"))
	if v.code != 0 || !strings.Contains(v.stdout, "all 4 entries unwrap") || strings.Count(v.stdout, "\nok ") != 3 {
		t.Fatalf("verify with KEKs: %+v", v)
	}
	kd := filepath.Join(dir, "keks")
	os.Mkdir(kd, 0o700)
	os.Rename(filepath.Join(dir, "kek.key"), filepath.Join(kd, "kek.key"))
	os.WriteFile(filepath.Join(kd, "README"), []byte("not a key\n"), 0o600)
	v = outs.add(tk(t, dir, "", "cache", "verify", "c.cache", "--kek-dir", "keks", "--bareos-kek", "bk.txt"))
	if v.code != 0 || !strings.Contains(v.stdout, "all 4 entries unwrap") || !strings.Contains(v.stderr, "skipped keks/README") {
		t.Fatalf("verify --kek-dir: %+v", v)
	}
	os.Rename(filepath.Join(kd, "kek.key"), filepath.Join(dir, "kek.key"))
	_, otherID, other := newKEK(t, dir, "other.key")
	for _, f := range secretForms(other) {
		secrets = append(secrets, f)
	}
	v = outs.add(tk(t, dir, "", "cache", "verify", "c.cache", "--kek", "other.key"))
	if v.code != 1 || !strings.Contains(v.stderr, "3 of 4 entries do not unwrap") ||
		!strings.Contains(v.stderr, "VOL001 (needs KEK "+kekID+")") || !strings.Contains(v.stderr, "VOL 002 (needs KEK "+kekID+")") ||
		!strings.Contains(v.stderr, "BAR001 (needs the Bareos KEK") || !strings.Contains(v.stdout, "FAIL  VOL001  needs KEK "+kekID) {
		t.Fatalf("verify with the wrong KEK: %+v", v)
	}
	// A stored string changed by hand (checksum recomputed): the entry
	// no longer unwraps under its KEK.
	_ = otherID
	v = outs.add(tk(t, dir, "", "cache", "verify", "c.cache", "--bareos-kek", "other.key"))
	if v.code != 1 || !strings.Contains(v.stderr, "BAR001") {
		t.Fatalf("verify with a wrong Bareos KEK: %+v", v)
	}

	// Replace, with and without --replace.
	before := readFile(t, path)
	r := outs.add(fails(t, 1, dir, "VOL001\t"+s3+"\tv1\t"+kekID+"\n", []string{"cache", "add", "c.cache"}, `volume "VOL001"`, "use --replace", "nothing was written"))
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("a refused add changed the file")
	}
	_ = r
	out = outs.add(tk(t, dir, "VOL001\t"+s3+"\n", "cache", "add", "c.cache", "--kek", "kek.key", "--replace"))
	if out.code != 0 || !strings.Contains(out.stdout, "replaced  VOL001") {
		t.Fatalf("add --replace: %+v", out)
	}
	dump = outs.add(tk(t, dir, "", "cache", "dump", "c.cache"))
	if !strings.Contains(dump.stdout, "VOL001") || !strings.Contains(dump.stdout, "  1\n") {
		t.Fatalf("dump after replace does not show the earlier key: %s", dump.stdout)
	}
	v = outs.add(tk(t, dir, "", "cache", "verify", "c.cache", "--kek", "kek.key", "--bareos-kek", "bk.txt"))
	if v.code != 0 || !strings.Contains(v.stdout, "      earlier key replaced ") || !strings.Contains(v.stdout, ": v1, kek "+kekID+": unwraps\n") {
		t.Fatalf("verify does not report the earlier key: %+v", v)
	}

	// remove: all or nothing.
	before = readFile(t, path)
	outs.add(fails(t, 1, dir, "", []string{"cache", "remove", "c.cache", "BAR001", "NOPE"}, `no entry for volume "NOPE"`, "nothing was removed"))
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("a failed remove changed the file")
	}
	out = outs.add(tk(t, dir, "", "cache", "remove", "c.cache", "BAR001", "VOL 002"))
	if out.code != 0 || !strings.Contains(out.stdout, "removed 2 entries") {
		t.Fatalf("remove: %+v", out)
	}
	js = outs.add(tk(t, dir, "", "cache", "dump", "--json", "c.cache"))
	if strings.Contains(js.stdout, "BAR001") || strings.Contains(js.stdout, "VOL 002") || !strings.Contains(js.stdout, "VOL001") {
		t.Fatalf("after remove: %s", js.stdout)
	}
	mode0600(t, path)
	outs.add(fails(t, 1, dir, "", []string{"cache", "remove", "nosuch.cache", "X"}, "nosuch.cache", "no such file"))
	outs.add(fails(t, 1, dir, "", []string{"cache", "dump", "nosuch.cache"}, "nosuch.cache does not exist"))
	fails(t, 2, dir, "", []string{"cache", "remove", "c.cache"}, "at least one volume")
	fails(t, 2, dir, "", []string{"cache", "dump"}, "exactly one cache file")
	outs.noSecrets(t, secrets...)
}

func TestCacheAddBadLines(t *testing.T) {
	dir := t.TempDir()
	var outs cacheOutputs
	_, kekID, _ := newKEK(t, dir, "kek.key")
	newKEK(t, dir, "other.key")
	s1, _ := newStored(t, dir, "kek.key")
	s2, _ := newStored(t, dir, "kek.key")
	ok(t, dir, "A\t"+s1+"\tv1\t"+kekID+"\n", "cache", "add", "c.cache")
	path := filepath.Join(dir, "c.cache")
	before := readFile(t, path)
	good := "B\t" + s2 + "\tv1\t" + kekID + "\n"
	cases := []struct {
		name, in string
		flags    []string
		want     []string
	}{
		{"no tab", good + "C " + s2 + "\n", nil, []string{"stdin line 2", "no tab after the volume name", "VOLUME<TAB>STORED"}},
		{"too many fields", good + "\n" + "C\t" + s2 + " v1 " + kekID + " extra\n", nil, []string{"stdin line 3", "4 fields after the volume name"}},
		{"bad scheme", good + "C\t" + s2 + "\tv2\t" + kekID + "\n", nil, []string{"stdin line 2", "field 3 (scheme)"}},
		{"no kek id", good + "C\t" + s2 + "\n", nil, []string{"stdin line 2", "needs its KEK id", "--kek"}},
		{"short string", good + "C\t" + s2[:40] + "\tv1\t" + kekID + "\n", nil, []string{"stdin line 2", "stored key", "got 40"}},
		{"bad kek id", good + "C\t" + s2 + "\tv1\tXYZ\n", nil, []string{"stdin line 2", "kek id must be 16 lower-case hex"}},
		{"duplicate", good + good, nil, []string{"stdin line 2", `volume "B" was already given on line 1`}},
		{"wrong KEK", good, []string{"--kek", "other.key"}, []string{"stdin line 1", "KEK " + kekID + ", which is not in the keyring"}},
		{"no match", "C\t" + s2 + "\n", []string{"--kek", "other.key"}, []string{"stdin line 1", "does not unwrap with any v1 KEK given"}},
		{"bad bareos", good + "C\t" + s2[:50] + "\tbareos\n", nil, []string{"stdin line 2", "54 (wrapped) or 43 (unwrapped)"}},
		{"empty", "\n# nothing\n", nil, []string{"no entries on stdin"}},
	}
	for _, tc := range cases {
		r := outs.add(fails(t, 1, dir, tc.in, append([]string{"cache", "add", "c.cache"}, tc.flags...), tc.want...))
		if !bytes.Equal(before, readFile(t, path)) {
			t.Fatalf("%s: a bad input line changed the cache (stderr %q)", tc.name, r.stderr)
		}
	}
	outs.noSecrets(t, s1, s2, s2[:40], s2[:50])
}

func TestCacheCorruptFile(t *testing.T) {
	dir := t.TempDir()
	var outs cacheOutputs
	_, kekID, _ := newKEK(t, dir, "kek.key")
	s1, _ := newStored(t, dir, "kek.key")
	s2, _ := newStored(t, dir, "kek.key")
	ok(t, dir, "A\t"+s1+"\tv1\t"+kekID+"\n", "cache", "add", "c.cache")
	path := filepath.Join(dir, "c.cache")
	data := readFile(t, path)
	i := bytes.Index(data, []byte(s1)) + 5
	if data[i] == 'x' {
		data[i] = 'y'
	} else {
		data[i] = 'x'
	}
	os.WriteFile(path, data, 0o600)
	// dump and verify report and leave the file where it is.
	for _, args := range [][]string{{"cache", "dump", "c.cache"}, {"cache", "verify", "c.cache", "--kek", "kek.key"}} {
		outs.add(fails(t, 1, dir, "", args, "crypto cache c.cache is corrupt at line 3", "checksum mismatch"))
		if !bytes.Equal(readFile(t, path), data) {
			t.Fatalf("%v changed the corrupt file", args)
		}
	}
	// add moves it aside, keeps it byte for byte, and writes nothing.
	r := outs.add(fails(t, 1, dir, "B\t"+s2+"\tv1\t"+kekID+"\n", []string{"cache", "add", "c.cache"}, "checksum mismatch", "it was kept as c.cache.corrupt-"))
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 || !strings.Contains(r.stderr, filepath.Base(matches[0])) {
		t.Fatalf("corrupt copies %v; stderr %q", matches, r.stderr)
	}
	if !bytes.Equal(readFile(t, matches[0]), data) {
		t.Fatal("the corrupt file was not kept byte for byte")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("add wrote a cache although the old one was corrupt")
	}
	// Running add again starts a new cache; the corrupt copy stays.
	ok(t, dir, "B\t"+s2+"\tv1\t"+kekID+"\n", "cache", "add", "c.cache")
	if !bytes.Equal(readFile(t, matches[0]), data) {
		t.Fatal("the corrupt copy changed")
	}
	// A file that is not a cache at all.
	os.WriteFile(filepath.Join(dir, "junk"), []byte("hello\n"), 0o600)
	outs.add(fails(t, 1, dir, "", []string{"cache", "dump", "junk"}, "junk is corrupt at line 1", `first line is not "tapeward-cryptocache v1"`))
	outs.noSecrets(t, s1, s2, string(data[i-5:i+20]))
}

// bareosCacheFile builds a Bareos crypto cache (entry size 280 or 272).
func bareosCacheFile(entrySize int, vols, strs []string, added []int64) []byte {
	ptrs := entrySize - 264
	b := make([]byte, 32)
	copy(b, "BAREOS Crypto Cache\n\x00")
	binary.LittleEndian.PutUint32(b[24:], 1)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(vols)))
	for i := range vols {
		e := make([]byte, entrySize)
		copy(e[ptrs:], vols[i])
		copy(e[ptrs+128:], strs[i])
		binary.LittleEndian.PutUint64(e[ptrs+256:], uint64(added[i]))
		b = append(b, e...)
	}
	return b
}

func TestCacheImportBareos(t *testing.T) {
	dir := t.TempDir()
	var outs cacheOutputs
	os.WriteFile(filepath.Join(dir, "bk.txt"), []byte(vecBareosKEK+"\n"), 0o600)
	bkID := strings.TrimSpace(ok(t, dir, "", "kek", "id", "--scheme", "bareos", "bk.txt"))
	plain := base64.RawStdEncoding.EncodeToString([]byte(vecBareosPass)) + "="
	dk, _ := keys.BareosDriveKey([]byte(vecBareosPass))
	fp := keys.Fingerprint(dk)
	vols := []string{"Full-0001", "Incr-0002"}
	strs := []string{vecBareosStored, plain}
	added := []int64{1700000000, 1700003600}
	for _, tc := range []struct {
		size   int
		layout string
	}{{280, "x86-64 (280-byte entries)"}, {272, "32-bit (272-byte entries)"}} {
		src := filepath.Join(dir, "bareos-sd.9103.cryptoc")
		os.WriteFile(src, bareosCacheFile(tc.size, vols, strs, added), 0o600)
		dst := "c" + tc.layout[:2] + ".cache"
		out := outs.add(tk(t, dir, "", "cache", "import-bareos", "bareos-sd.9103.cryptoc", dst))
		if out.code != 0 || !strings.Contains(out.stdout, tc.layout) || !strings.Contains(out.stdout, "2 added") {
			t.Fatalf("import-bareos %d: %+v", tc.size, out)
		}
		js := outs.add(tk(t, dir, "", "cache", "dump", "--json", dst))
		if !strings.Contains(js.stdout, `{"volume":"Full-0001","scheme":"bareos","kek_id":"","fingerprint":"","added":"2023-11-14T22:13:20Z"`) ||
			!strings.Contains(js.stdout, `{"volume":"Incr-0002","scheme":"bareos","kek_id":"","fingerprint":"`+fp+`","added":"2023-11-14T23:13:20Z"`) {
			t.Fatalf("dump after import: %s", js.stdout)
		}
		// The wrapped entry needs the Bareos KEK; with it, both verify.
		outs.add(fails(t, 1, dir, "", []string{"cache", "verify", dst, "--bareos-kek", "nonexistent"}, "nonexistent"))
		v := outs.add(tk(t, dir, "", "cache", "verify", dst, "--bareos-kek", "bk.txt"))
		if v.code != 0 || !strings.Contains(v.stdout, "fingerprint "+fp+"  no fingerprint recorded") {
			t.Fatalf("verify imported: %+v", v)
		}
		// With --bareos-kek the KEK id and fingerprint are recorded.
		out = outs.add(tk(t, dir, "", "cache", "import-bareos", "--bareos-kek", "bk.txt", "bareos-sd.9103.cryptoc", dst))
		if out.code != 0 || !strings.Contains(out.stdout, "updated   Full-0001  bareos  kek "+bkID+"  fingerprint "+fp) {
			t.Fatalf("import-bareos --bareos-kek: %+v", out)
		}
	}
	// Bad Bareos files: nothing is written.
	src := filepath.Join(dir, "bad.cryptoc")
	full := bareosCacheFile(280, vols, strs, added)
	os.WriteFile(src, full[:len(full)-7], 0o600)
	outs.add(fails(t, 1, dir, "", []string{"cache", "import-bareos", "bad.cryptoc", "n.cache"}, "2 entries, which take 560 bytes", "but 553 bytes follow"))
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("fedcba9876543210\n"), 0o600)
	os.WriteFile(src, full, 0o600)
	outs.add(fails(t, 1, dir, "", []string{"cache", "import-bareos", "--bareos-kek", "other.txt", "bad.cryptoc", "n.cache"}, `volume "Full-0001"`, "nothing was written"))
	if _, err := os.Stat(filepath.Join(dir, "n.cache")); !os.IsNotExist(err) {
		t.Fatal("a failed import wrote a cache")
	}
	fails(t, 2, dir, "", []string{"cache", "import-bareos", "bad.cryptoc"}, "takes the Bareos cache file and the Tapeward cache file")
	outs.noSecrets(t, vecBareosStored, plain, strings.TrimSuffix(plain, "="), vecBareosPass, vecBareosPass[:31], vecBareosKEK[:16])
}

func TestCacheHelp(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "", "help")
	for _, w := range []string{"cache dump", "cache verify", "cache add", "cache remove", "cache import-bareos"} {
		if !strings.Contains(out, "tapekey "+w) {
			t.Fatalf("help does not list %q", w)
		}
	}
	if out := ok(t, dir, "", "cache", "add", "--help"); !strings.Contains(out, "-replace") || !strings.Contains(out, "VOLUME<TAB>STORED") {
		t.Fatalf("cache add --help: %s", out)
	}
}

func TestCacheModeWarnings(t *testing.T) {
	dir := t.TempDir()
	_, kekID, _ := newKEK(t, dir, "kek.key")
	s1, _ := newStored(t, dir, "kek.key")
	s2, _ := newStored(t, dir, "kek.key")
	s3, _ := newStored(t, dir, "kek.key")
	ok(t, dir, "A\t"+s1+"\tv1\t"+kekID+"\n", "cache", "add", "c.cache")
	path := filepath.Join(dir, "c.cache")
	os.Chmod(path, 0o644)
	r := tk(t, dir, "", "cache", "dump", "c.cache")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: crypto cache c.cache is accessible by group or others (mode 0644)") || !strings.Contains(r.stderr, "chmod 600 c.cache") {
		t.Fatalf("dump of a 0644 cache: %+v", r)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatal("dump changed the mode")
	}
	r = tk(t, dir, "B\t"+s2+"\tv1\t"+kekID+"\n", "cache", "add", "c.cache")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: crypto cache was accessible by group or others; changed it to mode 0600") {
		t.Fatalf("add to a 0644 cache: %+v", r)
	}
	mode0600(t, path)
	// A replacement is reported on stderr too, without stored strings.
	r = tk(t, dir, "B\t"+s3+"\tv1\t"+kekID+"\n", "cache", "add", "--replace", "c.cache")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: crypto cache: stored key of volume replaced") || !strings.Contains(r.stderr, "volume=B") {
		t.Fatalf("add --replace: %+v", r)
	}
	for _, s := range []string{s1, s2, s3} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatal("a stored string was printed")
		}
	}
}
