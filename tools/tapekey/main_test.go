package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var tapekeyBin, vtlBin string // built by TestMain (vtl for the drive tests)

// TestMain builds the binary once; the tests drive it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapekey-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err := testenv.Build(dir, "tools/tapekey", "tools/vtl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	tapekeyBin, vtlBin = bins["tapekey"], bins["vtl"]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// tk runs tapekey in dir with stdin and returns what it printed.
func tk(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(tapekeyBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tapekey %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs tapekey, requires exit 0 and an empty stderr, and returns stdout.
func ok(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	r := tk(t, dir, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tapekey %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// fails runs tapekey and requires exit code, a one-line stderr holding
// every want, and no stdout.
func fails(t *testing.T, code int, dir, stdin string, args []string, want ...string) result {
	t.Helper()
	r := tk(t, dir, stdin, args...)
	if r.code != code {
		t.Fatalf("tapekey %v: exit %d, want %d (stderr %q)", args, r.code, code, r.stderr)
	}
	if code == 1 && (strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "tapekey")) {
		t.Fatalf("tapekey %v: stderr is not one line: %q", args, r.stderr)
	}
	if r.stdout != "" && code == 1 {
		t.Fatalf("tapekey %v: failure printed on stdout: %q", args, r.stdout)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("tapekey %v: stderr %q does not contain %q", args, r.stderr, w)
		}
	}
	return r
}

// secretForms lists the ways key bytes could appear in text.
func secretForms(b []byte) []string {
	return []string{hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), string(b)}
}

// noLeak fails if any text contains any form of any secret.
func noLeak(t *testing.T, secrets [][]byte, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range secretForms(s) {
			for _, txt := range texts {
				if strings.Contains(txt, f) {
					t.Fatalf("output contains key material %q: %q", f, txt)
				}
			}
		}
	}
}

// newKEK makes a KEK file with tapekey and returns its path, id and bytes.
func newKEK(t *testing.T, dir, name string) (string, string, []byte) {
	t.Helper()
	id := strings.TrimSpace(ok(t, dir, "", "kek", "new", "--out", name))
	path := filepath.Join(dir, name)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSuffix(string(content), "\n"))
	if err != nil || len(b) != 32 {
		t.Fatalf("KEK file content %q is not 64 hex characters and a newline", content)
	}
	return path, id, b
}

func TestHelp(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out := ok(t, dir, "", args...)
		for _, w := range []string{"kek new", "kek id", "key new", "wrap", "unwrap", "master-keyset new"} {
			if !strings.Contains(out, "tapekey "+w) {
				t.Fatalf("%v does not list %q:\n%s", args, w, out)
			}
		}
	}
	for _, g := range []string{"kek", "key", "master-keyset"} {
		out := ok(t, dir, "", g, "--help")
		if !strings.Contains(out, "tapekey "+g+" new") {
			t.Fatalf("%s --help: %s", g, out)
		}
		if out2 := ok(t, dir, "", "help", g); out2 != out {
			t.Fatalf("help %s differs from %s --help", g, g)
		}
	}
	out := ok(t, dir, "", "wrap", "--help")
	for _, w := range []string{"-kek-hex", "-raw", "-scheme", "-master"} {
		if !strings.Contains(out, w) {
			t.Fatalf("wrap --help does not list %s:\n%s", w, out)
		}
	}
	if out2 := ok(t, dir, "", "help", "wrap"); out2 != out {
		t.Fatalf("help wrap differs from wrap --help:\n%s", out2)
	}
	if out := ok(t, dir, "", "kek", "new", "-h"); !strings.Contains(out, "-seal-with") {
		t.Fatalf("kek new -h: %s", out)
	}
	fails(t, 2, dir, "", nil, "no command")
	fails(t, 2, dir, "", []string{"frobnicate"}, `unknown command "frobnicate"`)
	fails(t, 2, dir, "", []string{"kek"}, "needs a subcommand")
	fails(t, 2, dir, "", []string{"kek", "rotate"}, `unknown command "kek rotate"`)
	fails(t, 2, dir, "", []string{"kek", "new"}, "needs --out")
	fails(t, 2, dir, "", []string{"kek", "new", "--out", "x", "extra"}, "takes no arguments")
	fails(t, 2, dir, "", []string{"kek", "new", "--bogus"}, "flag provided but not defined")
	fails(t, 2, dir, "", []string{"kek", "id"}, "exactly one KEK file")
	fails(t, 2, dir, "", []string{"key", "new"}, "needs --kek")
	fails(t, 2, dir, "", []string{"unwrap"}, "needs --kek")
}

func TestKEKNewAndID(t *testing.T) {
	dir := t.TempDir()
	path, id, kek := newKEK(t, dir, "kek.key")
	if id != keys.KEKIDOf(kek) || len(id) != 16 {
		t.Fatalf("printed id %q, want KEKIDOf the file's KEK %s", id, keys.KEKIDOf(kek))
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %o", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	r := fails(t, 1, dir, "", []string{"kek", "new", "--out", "kek.key"}, "already exists", "refusing to overwrite")
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("existing KEK file was changed")
	}
	if got := strings.TrimSpace(ok(t, dir, "", "kek", "id", "kek.key")); got != id {
		t.Fatalf("kek id = %q, want %q", got, id)
	}
	var info map[string]any
	js := ok(t, dir, "", "kek", "id", "--json", "kek.key")
	if err := json.Unmarshal([]byte(js), &info); err != nil || info["kek_id"] != id || info["file"] != "kek.key" {
		t.Fatalf("kek id --json = %s (%v)", js, err)
	}
	js2 := ok(t, dir, "", "kek", "new", "--out", "k2.key", "--json")
	if err := json.Unmarshal([]byte(js2), &info); err != nil || info["sealed"] != false || len(info["kek_id"].(string)) != 16 {
		t.Fatalf("kek new --json = %s (%v)", js2, err)
	}
	// Bad permissions: refused with the chmod command.
	os.Chmod(path, 0o644)
	fails(t, 1, dir, "", []string{"kek", "id", "kek.key"},
		"KEK file kek.key is readable by group or others (mode 0644); run: chmod 600 kek.key")
	os.Chmod(path, 0o600)
	fails(t, 1, dir, "", []string{"kek", "id", "missing.key"}, "missing.key does not exist")
	os.WriteFile(filepath.Join(dir, "junk.key"), []byte("not a key\n"), 0o600)
	fails(t, 1, dir, "", []string{"kek", "id", "junk.key"}, "64 hex characters")
	noLeak(t, [][]byte{kek}, id, r.stderr, js, js2)
}

func TestKeyNewWrapUnwrap(t *testing.T) {
	dir := t.TempDir()
	_, id, kek := newKEK(t, dir, "kek.key")
	out := ok(t, dir, "", "key", "new", "--kek", "kek.key")
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.TrimSpace(v)
	}
	stored := fields["stored_key"]
	if len(stored) != 54 || fields["kek_id"] != id || fields["scheme"] != "v1" || len(fields["fingerprint"]) != 16 {
		t.Fatalf("key new printed %q", out)
	}
	keyHex := strings.TrimSpace(ok(t, dir, stored+"\n", "unwrap", "--kek", "kek.key"))
	key, err := hex.DecodeString(keyHex)
	if err != nil || len(key) != 32 {
		t.Fatalf("unwrap printed %q", keyHex)
	}
	if keys.Fingerprint(key) != fields["fingerprint"] {
		t.Fatal("fingerprint printed by key new is not the fingerprint of the unwrapped key")
	}
	// wrap is deterministic: wrapping the key again gives the stored string.
	if got := strings.TrimSpace(ok(t, dir, keyHex, "wrap", "--kek", "kek.key")); got != stored {
		t.Fatalf("wrap = %q, want %q", got, stored)
	}
	if got := strings.TrimSpace(ok(t, dir, strings.ToUpper(keyHex)+"\r\n", "wrap", "--kek", "kek.key")); got != stored {
		t.Fatalf("wrap of upper-case hex = %q", got)
	}
	js := ok(t, dir, "", "key", "new", "--kek", "kek.key", "--json")
	var info map[string]string
	if err := json.Unmarshal([]byte(js), &info); err != nil || len(info["stored_key"]) != 54 || info["kek_id"] != id || info["scheme"] != "v1" {
		t.Fatalf("key new --json = %s", js)
	}
	key2Hex := strings.TrimSpace(ok(t, dir, info["stored_key"], "unwrap", "--kek", "kek.key"))
	key2, _ := hex.DecodeString(key2Hex)
	if keys.Fingerprint(key2) != info["fingerprint"] || key2Hex == keyHex {
		t.Fatal("second key: bad fingerprint or same key")
	}
	noLeak(t, [][]byte{kek, key, key2}, out, js)

	// Bad inputs.
	_, otherID, other := newKEK(t, dir, "other.key")
	var errs []string
	add := func(r result) { errs = append(errs, r.stdout, r.stderr) }
	add(fails(t, 1, dir, stored, []string{"unwrap", "--kek", "other.key"},
		"unwrap failed: this string was not wrapped with KEK "+otherID+" (integrity check failed) — or it is corrupt"))
	add(fails(t, 1, dir, stored[:12], []string{"unwrap", "--kek", "kek.key"},
		"stored v1 key must be 54 base64 characters (40 bytes); got 12"))
	add(fails(t, 1, dir, stored+"==", []string{"unwrap", "--kek", "kek.key"}, "padding", "remove the trailing '='"))
	add(fails(t, 1, dir, "*"+stored[1:], []string{"unwrap", "--kek", "kek.key"}, "not valid base64", "position 1"))
	add(fails(t, 1, dir, stored[:20]+flip(stored[20])+stored[21:], []string{"unwrap", "--kek", "kek.key"}, "not wrapped with KEK "+id))
	add(fails(t, 1, dir, "", []string{"unwrap", "--kek", "kek.key"}, "no stored v1 key", "echo"))
	add(fails(t, 1, dir, stored+"\n"+stored+"\n", []string{"unwrap", "--kek", "kek.key"}, "2 lines"))
	// A bareos string is not a v1 key, and a v1 key is not a bareos string.
	add(fails(t, 1, dir, "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g", []string{"unwrap", "--kek", "kek.key"}, "not wrapped with KEK "+id))
	os.WriteFile(filepath.Join(dir, "bk.txt"), []byte("0123456789abcdefFEDCBA9876543210\n"), 0o600)
	bkID := strings.TrimSpace(ok(t, dir, "", "kek", "id", "--scheme", "bareos", "bk.txt"))
	add(fails(t, 1, dir, stored, []string{"unwrap", "--scheme", "bareos", "--kek", "bk.txt"}, "not wrapped with KEK "+bkID))
	add(fails(t, 2, dir, stored, []string{"unwrap", "--scheme", "v2", "--kek", "kek.key"}, `unknown key scheme "v2"`))
	add(fails(t, 1, dir, keyHex[:62]+"zz", []string{"wrap", "--kek", "kek.key"}, "not hex", "position 63"))
	add(fails(t, 1, dir, keyHex[:40], []string{"wrap", "--kek", "kek.key"}, "must be 64 hex characters (32 bytes); got 40"))
	add(fails(t, 1, dir, keyHex+"00", []string{"wrap", "--kek", "kek.key"}, "got 66"))
	os.Chmod(filepath.Join(dir, "kek.key"), 0o640)
	add(fails(t, 1, dir, stored, []string{"unwrap", "--kek", "kek.key"}, "run: chmod 600 kek.key"))
	add(fails(t, 1, dir, keyHex, []string{"wrap", "--kek", "kek.key"}, "(mode 0640)"))
	add(fails(t, 1, dir, "", []string{"key", "new", "--kek", "kek.key"}, "readable by group or others"))
	noLeak(t, [][]byte{kek, other, key, key2}, errs...)
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// The six RFC 3394 §4 vectors through --raw.
func TestRawRFC3394(t *testing.T) {
	dir := t.TempDir()
	const kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
	vectors := []struct{ kek, data, wrapped string }{
		{kek256[:32], "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"},
		{kek256[:48], "00112233445566778899AABBCCDDEEFF", "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"},
		{kek256, "00112233445566778899AABBCCDDEEFF", "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"},
		{kek256[:48], "00112233445566778899AABBCCDDEEFF0001020304050607", "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"},
		{kek256, "00112233445566778899AABBCCDDEEFF0001020304050607", "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"},
		{kek256, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F", "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	}
	for i, v := range vectors {
		kekFile := filepath.Join(dir, fmt.Sprintf("kek%d.hex", i))
		if err := os.WriteFile(kekFile, []byte(v.kek+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(ok(t, dir, v.data+"\n", "wrap", "--raw", "--kek-hex-file", kekFile)); got != strings.ToLower(v.wrapped) {
			t.Fatalf("wrap --raw %d-byte KEK = %s, want %s", len(v.kek)/2, got, v.wrapped)
		}
		if got := strings.TrimSpace(ok(t, dir, v.wrapped, "unwrap", "--raw", "--kek-hex-file", kekFile)); got != strings.ToLower(v.data) {
			t.Fatalf("unwrap --raw = %s, want %s", got, v.data)
		}
		// The KEK on the command line still works, with a warning.
		r := tk(t, dir, v.wrapped, "unwrap", "--raw", "--kek-hex", strings.ToLower(v.kek))
		if r.code != 0 || strings.TrimSpace(r.stdout) != strings.ToLower(v.data) || !strings.Contains(r.stderr, "warning: --kek-hex puts the KEK on the command line") ||
			!strings.Contains(r.stderr, "--kek-hex-file") || strings.Contains(r.stderr, v.kek) {
			t.Fatalf("unwrap --raw --kek-hex: exit %d, stdout %q, stderr %q; want the data and one warning naming --kek-hex-file", r.code, r.stdout, r.stderr)
		}
	}
	fails(t, 2, dir, "00", []string{"wrap", "--raw", "--kek-hex-file", filepath.Join(dir, "kek0.hex"), "--kek-hex", kek256}, "give the KEK once")
	fails(t, 1, dir, "00", []string{"wrap", "--raw", "--kek-hex-file", filepath.Join(dir, "missing.hex")}, "missing.hex", "no such file")
	if out := ok(t, dir, "", "wrap", "--help"); !strings.Contains(out, "--kek-hex-file FILE") || !strings.Contains(out, "process list") {
		t.Fatalf("wrap --help does not say to use --kek-hex-file and why:\n%s", out)
	}
	kekBytes, _ := hex.DecodeString(kek256)
	tampered := "29" + vectors[5].wrapped[2:]
	kf := filepath.Join(dir, "kek2.hex") // kek256
	short, notHex := filepath.Join(dir, "short.hex"), filepath.Join(dir, "nothex.hex")
	os.WriteFile(short, []byte(kek256[:30]), 0o600)
	os.WriteFile(notHex, []byte("zz"+kek256[2:]), 0o600)
	r := fails(t, 1, dir, tampered, []string{"unwrap", "--raw", "--kek-hex-file", kf}, "not wrapped with KEK "+keys.KEKIDOf(kekBytes))
	r2 := fails(t, 2, dir, "00", []string{"wrap", "--raw", "--kek-hex-file", short}, "short.hex must be 32, 48 or 64 hex characters")
	r3 := fails(t, 2, dir, "00", []string{"wrap", "--raw", "--kek-hex-file", notHex}, "nothex.hex is not hex")
	r4 := fails(t, 1, dir, "0011", []string{"wrap", "--raw", "--kek-hex-file", kf}, "at least 16 bytes")
	r5 := fails(t, 1, dir, vectors[5].wrapped[:46], []string{"unwrap", "--raw", "--kek-hex-file", kf}, "at least 24 bytes")
	fails(t, 2, dir, "", []string{"wrap", "--raw"}, "needs --kek-hex")
	fails(t, 2, dir, "", []string{"wrap", "--kek-hex", kek256}, "only for --raw")
	fails(t, 2, dir, "", []string{"unwrap", "--raw", "--kek-hex", kek256, "--scheme", "bareos"}, "--raw takes only --kek-hex")
	noLeak(t, [][]byte{kekBytes}, r.stderr, r2.stderr, r3.stderr, r4.stderr, r5.stderr)
}

func TestBareos(t *testing.T) {
	dir := t.TempDir()
	const (
		kekString = "0123456789abcdefFEDCBA9876543210"
		pass      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
		stored    = "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g"
	)
	os.WriteFile(filepath.Join(dir, "bk.txt"), []byte(kekString+"\n"), 0o600)
	if got := strings.TrimSpace(ok(t, dir, pass+"\n", "wrap", "--scheme", "bareos", "--kek", "bk.txt")); got != stored {
		t.Fatalf("wrap bareos = %q, want %q", got, stored)
	}
	for _, in := range []string{stored, stored + "==", stored + "=\n"} {
		if got := ok(t, dir, in, "unwrap", "--scheme", "bareos", "--kek", "bk.txt"); got != pass+"\n" {
			t.Fatalf("unwrap bareos %q = %q", in, got)
		}
	}
	plain := base64.RawStdEncoding.EncodeToString([]byte(pass))
	if got := ok(t, dir, plain, "unwrap", "--scheme", "bareos"); got != pass+"\n" {
		t.Fatalf("unwrap of the 43-character form = %q", got)
	}
	var errs []string
	add := func(r result) { errs = append(errs, r.stdout, r.stderr) }
	add(fails(t, 1, dir, stored, []string{"unwrap", "--scheme", "bareos"}, "needs the Bareos KEK", "--kek"))
	add(fails(t, 1, dir, stored[:50], []string{"unwrap", "--scheme", "bareos", "--kek", "bk.txt"}, "54", "43", "got 50"))
	add(fails(t, 1, dir, pass[:20], []string{"wrap", "--scheme", "bareos", "--kek", "bk.txt"}, "32 characters; got 20"))
	os.WriteFile(filepath.Join(dir, "short.txt"), []byte("0123456789abc\n"), 0o600)
	add(fails(t, 1, dir, stored, []string{"unwrap", "--scheme", "bareos", "--kek", "short.txt"}, "at least 16 bytes", "got 13"))
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("fedcba9876543210\n"), 0o600)
	otherID := strings.TrimSpace(ok(t, dir, "", "kek", "id", "other.txt", "--scheme", "bareos"))
	add(fails(t, 1, dir, stored, []string{"unwrap", "--scheme", "bareos", "--kek", "other.txt"}, "not wrapped with KEK "+otherID))
	os.Chmod(filepath.Join(dir, "bk.txt"), 0o644)
	add(fails(t, 1, dir, stored, []string{"unwrap", "--scheme", "bareos", "--kek", "bk.txt"}, "Bareos KEK file bk.txt is readable by group or others (mode 0644); run: chmod 600 bk.txt"))
	noLeak(t, [][]byte{[]byte(kekString), []byte(kekString[:16]), []byte(pass)}, errs...)
	noLeak(t, [][]byte{[]byte(kekString[:16])}, otherID)
}

func TestMasterKeysetAndSealedKEK(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "", "master-keyset", "new", "--out", "master.json")
	if !strings.Contains(out, "master.json") {
		t.Fatalf("master-keyset new printed %q", out)
	}
	fi, err := os.Stat(filepath.Join(dir, "master.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master keyset file: %v mode %v", err, fi)
	}
	var ks map[string]any
	mk, _ := os.ReadFile(filepath.Join(dir, "master.json"))
	if err := json.Unmarshal(mk, &ks); err != nil || ks["primaryKeyId"] == nil {
		t.Fatalf("master keyset is not a Tink JSON keyset: %v", err)
	}
	fails(t, 1, dir, "", []string{"master-keyset", "new", "--out", "master.json"}, "already exists")

	id := strings.TrimSpace(ok(t, dir, "", "kek", "new", "--out", "kek.sealed", "--seal-with", "master.json"))
	sealed, _ := os.ReadFile(filepath.Join(dir, "kek.sealed"))
	lines := strings.Split(strings.TrimSpace(string(sealed)), "\n")
	if len(lines) != 2 || lines[0] != "tapeward-sealed-kek v1 "+id {
		t.Fatalf("sealed KEK file:\n%s", sealed)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "kek.sealed")); fi.Mode().Perm() != 0o600 {
		t.Fatal("sealed KEK file is not mode 0600")
	}
	js := ok(t, dir, "", "kek", "new", "--out", "kek2.sealed", "--seal-with", "master.json", "--json")
	if !strings.Contains(js, `"sealed":true`) {
		t.Fatalf("kek new --seal-with --json = %s", js)
	}
	// kek id: --master before or after the file.
	for _, args := range [][]string{{"kek", "id", "kek.sealed", "--master", "master.json"}, {"kek", "id", "--master", "master.json", "kek.sealed"}} {
		if got := strings.TrimSpace(ok(t, dir, "", args...)); got != id {
			t.Fatalf("%v = %q, want %q", args, got, id)
		}
	}
	fails(t, 1, dir, "", []string{"kek", "id", "kek.sealed"}, "sealed with Tink", "--master")
	js = ok(t, dir, "", "kek", "id", "--json", "kek.sealed", "--master", "master.json")
	if !strings.Contains(js, `"sealed":true`) || !strings.Contains(js, id) {
		t.Fatalf("kek id --json of a sealed file = %s", js)
	}
	ok(t, dir, "", "kek", "new", "--out", "plain.key")
	if js := ok(t, dir, "", "kek", "id", "--json", "plain.key", "--master", "master.json"); !strings.Contains(js, `"sealed":false`) {
		t.Fatalf("kek id --json of a plain file with --master = %s", js)
	}
	fails(t, 1, dir, "", []string{"kek", "new", "--out", "no/such/dir/k.key"}, "cannot create KEK file no/such/dir/k.key: no such file or directory")
	// Volume keys under the sealed KEK.
	outKey := ok(t, dir, "", "key", "new", "--kek", "kek.sealed", "--master", "master.json", "--json")
	var info map[string]string
	json.Unmarshal([]byte(outKey), &info)
	if info["kek_id"] != id {
		t.Fatalf("key new with sealed KEK: %s", outKey)
	}
	keyHex := strings.TrimSpace(ok(t, dir, info["stored_key"], "unwrap", "--kek", "kek.sealed", "--master", "master.json"))
	key, _ := hex.DecodeString(keyHex)
	if keys.Fingerprint(key) != info["fingerprint"] {
		t.Fatal("sealed KEK round trip: fingerprint mismatch")
	}
	// Another master keyset, a swapped id, bad permissions.
	ok(t, dir, "", "master-keyset", "new", "--out", "other.json")
	r1 := fails(t, 1, dir, info["stored_key"], []string{"unwrap", "--kek", "kek.sealed", "--master", "other.json"}, "cannot be opened", "another master keyset")
	kek2ID := strings.TrimSpace(ok(t, dir, "", "kek", "id", "kek2.sealed", "--master", "master.json"))
	swapped := strings.Replace(string(sealed), id, kek2ID, 1)
	os.WriteFile(filepath.Join(dir, "swapped.sealed"), []byte(swapped), 0o600)
	r2 := fails(t, 1, dir, "", []string{"kek", "id", "swapped.sealed", "--master", "master.json"}, "altered")
	os.Chmod(filepath.Join(dir, "master.json"), 0o640)
	r3 := fails(t, 1, dir, "", []string{"kek", "id", "kek.sealed", "--master", "master.json"}, "master keyset file master.json is readable by group or others (mode 0640); run: chmod 600 master.json")
	r4 := fails(t, 1, dir, "", []string{"kek", "new", "--out", "kek3.sealed", "--seal-with", "master.json"}, "chmod 600 master.json")
	if _, err := os.Stat(filepath.Join(dir, "kek3.sealed")); !os.IsNotExist(err) {
		t.Fatal("kek new left a file behind after failing")
	}
	noLeak(t, [][]byte{key}, outKey, r1.stderr, r2.stderr, r3.stderr, r4.stderr)
}
