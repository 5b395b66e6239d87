package bootstrap

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

func sample(t *testing.T) *File {
	t.Helper()
	wrapped := bytes.Repeat([]byte{0xA5}, 40)
	return &File{
		Format: Format, Job: 42, JobName: "CatalogBackup", Status: "T",
		Written: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC),
		Dump: Dump{Path: "/var/lib/tapeward/catalog-dump/tapeward.dump", Database: "tapeward", Size: 123456,
			SHA256: strings.Repeat("ab", 32), At: Address{Volume: "TW0005L6", File: 1, Block: 3, Offset: 1024}},
		Volumes: []Volume{
			{Name: "TW0004L6", Barcode: "TW0004L6", Sequence: 1, FirstFile: 3, LastFile: 3, FirstBlock: 0, LastBlock: 9,
				Key: &Key{Stored: keys.EncodeV1(wrapped), Scheme: "v1", KEKID: "3f9a00", Fingerprint: "8c1d00"}},
			{Name: "TW0005L6", Barcode: "TW0005L6", Sequence: 2, FirstFile: 1, LastFile: 2, FirstBlock: 0, LastBlock: 4},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	f := sample(t)
	data, err := Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"job = 42", `name = "TW0004L6"`, `kek_id = "3f9a00"`, "[dump.at]", "useless without it"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("bootstrap text lacks %q:\n%s", want, data)
		}
	}
	g, err := Parse("test.bsr", data)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", g, f)
	}
	if v := g.Volume("TW0005L6"); v == nil || v.Key != nil || v.Sequence != 2 {
		t.Fatalf("Volume(TW0005L6) = %+v", v)
	}
	if sk := g.Volumes[0].Key.StoredKey(); sk.Scheme != keys.SchemeV1 || sk.Value != f.Volumes[0].Key.Stored {
		t.Fatalf("StoredKey = %v", sk)
	}
}

func TestKeyStringHidesStored(t *testing.T) {
	k := sample(t).Volumes[0].Key
	if s := k.String(); strings.Contains(s, k.Stored) || !strings.Contains(s, k.Fingerprint) {
		t.Fatalf("Key.String() = %q", s)
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		name   string
		change func(*File)
		want   string
	}{
		{"format", func(f *File) { f.Format = 2 }, "bootstrap format 1"},
		{"job", func(f *File) { f.Job = 0 }, "catalog job's id"},
		{"status", func(f *File) { f.Status = "E" }, "ends T or W"},
		{"path", func(f *File) { f.Dump.Path = "" }, "[dump] path is missing"},
		{"sha", func(f *File) { f.Dump.SHA256 = "abc" }, "64 hex characters"},
		{"no volumes", func(f *File) { f.Volumes = nil }, "no [[volume]]"},
		{"twice", func(f *File) { f.Volumes[1].Name = "TW0004L6" }, "listed twice"},
		{"sequence", func(f *File) { f.Volumes[1].Sequence = 3 }, "sequence = 3, want 2"},
		{"files", func(f *File) { f.Volumes[0].FirstFile = 0 }, "file 0 is the label"},
		{"blocks", func(f *File) { f.Volumes[0].LastBlock = -1 }, "last_block ≥ first_block"},
		{"at volume", func(f *File) { f.Dump.At.Volume = "TW0009L6" }, `"TW0009L6" is not one of`},
		{"at file", func(f *File) { f.Dump.At.File = 3 }, "outside volume TW0005L6's files 1..2"},
		{"scheme", func(f *File) { f.Volumes[0].Key.Scheme = "v9" }, "unknown key scheme"},
		{"kek id", func(f *File) { f.Volumes[0].Key.KEKID = "" }, "kek_id is missing"},
		{"fingerprint", func(f *File) { f.Volumes[0].Key.Fingerprint = "" }, "fingerprint is missing"},
		{"bad v1", func(f *File) { f.Volumes[0].Key.Stored = "short" }, "stored v1 key"},
		{"unwrapped bareos", func(f *File) {
			f.Volumes[0].Key = &Key{Stored: strings.Repeat("A", keys.BareosPlainLen), Scheme: "bareos", Fingerprint: "8c1d00"}
		}, "never written to a bootstrap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sample(t)
			c.change(f)
			_, err := Marshal(f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, c.want)
			}
			if c.name == "unwrapped bareos" && strings.Contains(err.Error(), f.Volumes[0].Key.Stored) {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
}

func TestParseStrict(t *testing.T) {
	data, err := Marshal(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("x.bsr", append(data, []byte("\n[extra]\nthing = 1\n")...))
	if err == nil || !strings.Contains(err.Error(), "unknown keys extra.thing") {
		t.Fatalf("unknown key: err = %v", err)
	}
	_, err = Parse("x.bsr", []byte("job = 42\n"))
	if err == nil || !strings.Contains(err.Error(), "bootstrap x.bsr: format = 0") {
		t.Fatalf("empty: err = %v", err)
	}
	_, err = Parse("x.bsr", []byte("not toml ["))
	if err == nil || !strings.Contains(err.Error(), "not a Tapeward bootstrap file") {
		t.Fatalf("garbage: err = %v", err)
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bsr")
	f := sample(t)
	path, err := WriteDir(dir, f)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "catalog-42.bsr") {
		t.Fatalf("path = %s", path)
	}
	f2 := sample(t)
	f2.Job = 43
	if _, err := WriteDir(dir, f2); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", st.Mode(), err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if want := []string{"catalog-42.bsr", "catalog-43.bsr", "catalog-latest.bsr"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("files = %v, want %v (no temporaries left)", names, want)
	}
	latest, err := ReadFile(filepath.Join(dir, LatestName))
	if err != nil {
		t.Fatal(err)
	}
	if latest.Job != 43 {
		t.Fatalf("latest names job %d, want 43", latest.Job)
	}
	old, err := ReadFile(path)
	if err != nil || old.Job != 42 {
		t.Fatalf("catalog-42.bsr: %v %v", old, err)
	}
	bad := sample(t)
	bad.Status = ""
	if _, err := WriteDir(dir, bad); err == nil {
		t.Fatal("an invalid bootstrap was written")
	}
}
