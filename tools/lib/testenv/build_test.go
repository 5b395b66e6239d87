package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Build puts a working binary into each caller's directory; a second
// build of an unchanged command leaves the shared copy in place (the same
// inode: go build replaces a target it links, and only touches one that is
// up to date) and removing one caller's directory leaves the others'
// binaries in place.
func TestBuildSharesUnchangedBinaries(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	first, err := Build(a, "tools/tapekey")
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(BinCache(), "tapekey")
	before, err := os.Stat(cache)
	if err != nil {
		t.Fatalf("the shared copy: %v", err)
	}
	second, err := Build(b, "tools/tapekey")
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if bi, ai := before.Sys().(*syscall.Stat_t).Ino, after.Sys().(*syscall.Stat_t).Ino; bi != ai {
		t.Errorf("the unchanged tapekey was linked again: inode %d, then %d", bi, ai)
	}
	if first["tapekey"] != filepath.Join(a, "tapekey") || second["tapekey"] != filepath.Join(b, "tapekey") {
		t.Fatalf("paths %v, %v", first, second)
	}
	if err := os.RemoveAll(a); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(second["tapekey"], "--help").CombinedOutput(); len(out) == 0 {
		t.Fatalf("%s after removing the first caller's directory: %v, no output", second["tapekey"], err)
	}
}
