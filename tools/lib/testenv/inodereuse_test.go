package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBlockDev writes, under a temporary root, sysfs's link for block
// device 254:0 (vda) and, when journal, jbd2's procfs directory for it.
func fakeBlockDev(t *testing.T, journal bool) string {
	root := t.TempDir()
	devs := filepath.Join(root, "sys/dev/block")
	if err := os.MkdirAll(devs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda", filepath.Join(devs, "254:0")); err != nil {
		t.Fatal(err)
	}
	if journal {
		if err := os.MkdirAll(filepath.Join(root, "proc/fs/jbd2/vda-8"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestExt4InodeReuse(t *testing.T) {
	if got, want := ext4InodeReuse(fakeBlockDev(t, false), 254, 0), (InodeReuse{Delayed: true, Device: "vda"}); got != want {
		t.Errorf("no journal: %+v, want %+v", got, want)
	}
	if got, want := ext4InodeReuse(fakeBlockDev(t, true), 254, 0), (InodeReuse{Device: "vda"}); got != want {
		t.Errorf("with a journal: %+v, want %+v", got, want)
	}
	if got := ext4InodeReuse(fakeBlockDev(t, false), 8, 1); got != (InodeReuse{}) {
		t.Errorf("a device sysfs does not list: %+v, want nothing known", got)
	}
}

func TestInodeReuseWarn(t *testing.T) {
	var quiet logTB
	InodeReuse{Dir: "/tmp", Device: "vda"}.Warn(&quiet)
	if len(quiet.lines) != 0 {
		t.Fatalf("a journalled file system logged %q", quiet.lines)
	}
	var loud logTB
	InodeReuse{Dir: "/tmp", Delayed: true, Device: "vda"}.Warn(&loud)
	if len(loud.lines) != 1 || !strings.Contains(loud.lines[0], "/dev/vda") || !strings.Contains(loud.lines[0], "TMPDIR") {
		t.Fatalf("ext4 without a journal logged %q, want one warning naming the device and TMPDIR", loud.lines)
	}
}

func TestOpenFilesUnder(t *testing.T) {
	dir := t.TempDir()
	if open := OpenFilesUnder(t, dir); len(open) != 0 {
		t.Fatalf("open under a new directory: %q", open)
	}
	f, err := os.Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if open := OpenFilesUnder(t, dir); len(open) != 1 || open[0] != filepath.Join(dir, "a") {
		t.Fatalf("open: %q, want %s", open, filepath.Join(dir, "a"))
	}
	os.Remove(f.Name())
	if open := OpenFilesUnder(t, dir); len(open) != 1 || !strings.HasSuffix(open[0], " (deleted)") {
		t.Fatalf("open after the file was removed: %q, want it marked deleted", open)
	}
}
