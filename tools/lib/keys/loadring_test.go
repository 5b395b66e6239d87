package keys

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadKeyringFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	var ids []string
	for _, name := range []string{"a.key", "b.key"} {
		k, err := GenerateKEK()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, EncodeKEKHex(k), 0o600); err != nil {
			t.Fatal(err)
		}
		paths, ids = append(paths, p), append(ids, k.ID())
	}
	r, err := LoadKeyringFiles(paths, "", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Active().ID() != ids[0] || !slices.Equal(r.IDs(), sorted(ids)) {
		t.Fatalf("default active %s ids %v; want %s and %v", r.Active().ID(), r.IDs(), ids[0], ids)
	}
	r, err = LoadKeyringFiles(paths, paths[1], LoadOptions{})
	if err != nil || r.Active().ID() != ids[1] {
		t.Fatalf("active = second file: %v, %v", r, err)
	}
	os.Chmod(paths[1], 0o640)
	if _, err := LoadKeyringFiles(paths, "", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "chmod 600 "+paths[1]) {
		t.Fatalf("group-readable KEK file: err = %v", err)
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
