package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// TestEscrowNewPaperUnpaper: tapekey escrow new makes the pair (0600 private,
// public readable), paper writes the groups, typed back by unpaper they give
// the same key; a typo is named by its group.
func TestEscrowNewPaperUnpaper(t *testing.T) {
	dir := t.TempDir()
	r := tk(t, dir, "", "escrow", "new", "--out", "escrow.key", "--public", "escrow.pub")
	if r.code != 0 {
		t.Fatalf("escrow new: %d %s", r.code, r.stderr)
	}
	id := regexp.MustCompile(`escrow key ([0-9a-f]{16})`).FindStringSubmatch(r.stdout)
	if id == nil {
		t.Fatalf("no id in %q", r.stdout)
	}
	fi, err := os.Stat(filepath.Join(dir, "escrow.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private file mode: %v %v", fi, err)
	}
	pub, err := keys.LoadEscrowPublic(filepath.Join(dir, "escrow.pub"))
	if err != nil || pub.ID() != id[1] {
		t.Fatalf("public file: %v (id %v)", err, pub)
	}
	if r := tk(t, dir, "", "escrow", "id", "escrow.pub"); r.code != 0 || !strings.Contains(r.stdout, id[1]+" (public)") {
		t.Fatalf("escrow id: %+v", r)
	}
	if r := tk(t, dir, "", "escrow", "new", "--out", "escrow.key", "--public", "other.pub"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("overwrite: %+v", r)
	}

	r = tk(t, dir, "", "escrow", "paper", "escrow.key", "--out", "paper.html")
	if r.code != 0 {
		t.Fatalf("escrow paper: %d %s", r.code, r.stderr)
	}
	page, err := os.ReadFile(filepath.Join(dir, "paper.html"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.LoadEscrowPrivate(filepath.Join(dir, "escrow.key"))
	if err != nil {
		t.Fatal(err)
	}
	text := priv.PaperText()
	for _, g := range keys.PaperGroups(text) {
		if !strings.Contains(string(page), g) {
			t.Fatalf("page lacks group %d", len(g))
		}
		if strings.Contains(r.stdout+r.stderr, g) {
			t.Fatal("paper printed a group on the terminal")
		}
	}
	// Type it back (lower case, as a person might).
	os.WriteFile(filepath.Join(dir, "typed.txt"), []byte(strings.ToLower(text)), 0o600)
	r = tk(t, dir, "", "escrow", "unpaper", "typed.txt", "--out", "back.key")
	if r.code != 0 || !strings.Contains(r.stdout, id[1]) {
		t.Fatalf("unpaper: %+v", r)
	}
	back, err := keys.LoadEscrowPrivate(filepath.Join(dir, "back.key"))
	if err != nil || back.ID() != id[1] {
		t.Fatalf("unpapered key: %v", err)
	}
	// A typo in group 2.
	g := keys.PaperGroups(text)[1]
	c := "A"
	if g[0] == 'A' {
		c = "B"
	}
	os.WriteFile(filepath.Join(dir, "typo.txt"), []byte(strings.Replace(text, g, c+g[1:], 1)), 0o600)
	r = tk(t, dir, "", "escrow", "unpaper", "typo.txt", "--out", "typo.key")
	if r.code != 1 || !strings.Contains(r.stderr, "group 2 (line 1, group 2 of the line)") {
		t.Fatalf("typo: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.key")); err == nil {
		t.Fatal("a key file was written from a typo")
	}
}
