//go:build linux

package fileset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entryOf walks a one-file fileset and returns its entry.
func entryOf(t *testing.T, path string) Entry {
	t.Helper()
	r := walk(t, FileSet{Include: []string{path}}, WalkOptions{})
	if len(r.entries) != 1 {
		t.Fatalf("entries %v", r.paths())
	}
	return r.entries[0]
}

// pattern3 is 3 MiB of non-zero bytes.
func pattern3() []byte {
	b := make([]byte, 3<<20)
	for i := range b {
		b[i] = byte(i%251) + 1
	}
	return b
}

// readWith reads an entry: the first MiB, then lets change() run in
// another goroutine (synchronised by channels), then the rest with
// io.Copy (WriteTo, ChunkSize reads).
func readWith(t *testing.T, e Entry, change func()) ([]byte, error) {
	t.Helper()
	r, err := OpenForBackup(e)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	if _, err := io.CopyN(&out, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	start, done := make(chan struct{}), make(chan struct{})
	go func() {
		<-start
		change()
		close(done)
	}()
	close(start)
	<-done
	n, err := io.Copy(&out, r)
	if err != nil {
		t.Fatal(err)
	}
	if total := int64(out.Len()); total != e.Size || n != e.Size-1<<20 {
		t.Fatalf("read %d bytes (%d after the change), want exactly Size %d", total, n, e.Size)
	}
	return out.Bytes(), r.Changed()
}

func TestReadUnchanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := pattern3()
	os.WriteFile(p, data, 0o644)
	got, changed := readWith(t, entryOf(t, p), func() {})
	if changed != nil || !bytes.Equal(got, data) {
		t.Fatalf("changed %v, equal %t", changed, bytes.Equal(got, data))
	}
}

// TestReadGrowing: a goroutine appends while the file is read: the
// archive gets the Size bytes listed, and Changed says so.
func TestReadGrowing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := pattern3()
	os.WriteFile(p, data, 0o644)
	got, changed := readWith(t, entryOf(t, p), func() {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			panic(err)
		}
		f.Write(bytes.Repeat([]byte("+"), 1<<20))
		f.Close()
	})
	var ce *ChangedError
	if !errors.As(changed, &ce) || ce.Path != p || !strings.Contains(ce.Error(), "size 4194304 after reading, 3145728 when listed") {
		t.Fatalf("changed: %v", changed)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differ")
	}
}

// TestReadShrinking: truncated while read: padded with zeros to Size,
// flagged.
func TestReadShrinking(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := pattern3()
	os.WriteFile(p, data, 0o644)
	const keep = 1<<20 + 12345
	got, changed := readWith(t, entryOf(t, p), func() {
		if err := os.Truncate(p, keep); err != nil {
			panic(err)
		}
	})
	if changed == nil || !strings.Contains(changed.Error(), "shrank while read: only 1060921 of 3145728 bytes") {
		t.Fatalf("changed: %v", changed)
	}
	if !bytes.Equal(got[:keep], data[:keep]) || !bytes.Equal(got[keep:], make([]byte, len(got)-keep)) {
		t.Fatal("want the kept bytes then zeros")
	}
}

// TestReadRewritten: rewritten in place (same size): mtime differs.
func TestReadRewritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, pattern3(), 0o644)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(p, old, old)
	_, changed := readWith(t, entryOf(t, p), func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			panic(err)
		}
		f.WriteAt([]byte("rewritten"), 2<<20)
		f.Close()
	})
	if changed == nil || !strings.Contains(changed.Error(), "modified while read") {
		t.Fatalf("changed: %v", changed)
	}
}

// TestReadChmod: a chmod while read changes only ctime: still flagged
// (the archive's attributes are stale).
func TestReadChmod(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, pattern3(), 0o644)
	e := entryOf(t, p)
	_, changed := readWith(t, e, func() {
		// ctime has a coarse clock: chmod until it shows a later tick.
		for i := 0; ; i++ {
			os.Chmod(p, os.FileMode(0o600|i&1<<2))
			var st = statT(t, p)
			if !time.Unix(st.Ctim.Unix()).Equal(e.Ctime) {
				return
			}
			if i > 10_000_000 {
				panic("the file system clock does not advance")
			}
		}
	})
	if changed == nil || !strings.Contains(changed.Error(), "ctime") {
		t.Fatalf("changed: %v", changed)
	}
}

// TestReadReplaced: the path names another file by open time.
func TestReadReplaced(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("one"), 0o644)
	e := entryOf(t, p)
	os.WriteFile(p+".new", []byte("two"), 0o644)
	os.Rename(p+".new", p)
	r, err := OpenForBackup(e)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	if err := r.Changed(); err == nil || !strings.Contains(err.Error(), "replaced by another file") || len(b) != 3 {
		t.Fatalf("read %q, changed %v", b, err)
	}
}

// TestOpenForBackupErrors: not a regular file, or gone.
func TestOpenForBackupErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenForBackup(entryOf(t, dir)); err == nil || !strings.Contains(err.Error(), "a dir, not a regular file") {
		t.Fatalf("dir: %v", err)
	}
	p := filepath.Join(dir, "gone")
	os.WriteFile(p, nil, 0o644)
	e := entryOf(t, p)
	os.Remove(p)
	_, err := OpenForBackup(e)
	var w *Warning
	if !errors.As(err, &w) || w.Op != "open" || w.Path != p || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gone: %v", err)
	}
}

// TestOpenFromAnotherGoroutine: a reader goroutine lagging behind the
// walk opens entries whose directory the walk may have closed (and
// whose descriptor number may be reused): it must get the right file.
func TestOpenFromAnotherGoroutine(t *testing.T) {
	root := t.TempDir()
	var names []string
	for d := 0; d < 40; d++ {
		for f := 0; f < 5; f++ {
			names = append(names, fmt.Sprintf("d%02d/f%d", d, f))
		}
	}
	mk(t, root, names...)
	entries := make(chan Entry, len(names))
	done := make(chan []string)
	go func() {
		var bad []string
		for e := range entries {
			r, err := OpenForBackup(e)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			b, err := io.ReadAll(r)
			r.Close()
			if want := "data of " + strings.TrimPrefix(e.Path, root+"/"); err != nil || string(b) != want || r.Changed() != nil {
				bad = append(bad, fmt.Sprintf("%s: %q, %v, %v", e.Path, b, err, r.Changed()))
			}
		}
		done <- bad
	}()
	_, err := Walk(context.Background(), FileSet{Name: "t", Include: []string{root}}, WalkOptions{}, func(e Entry) error {
		if e.Type == TypeRegular {
			entries <- e
		}
		return nil
	})
	close(entries)
	bad := <-done
	if err != nil || len(bad) != 0 {
		t.Fatalf("walk %v; reads: %v", err, bad)
	}
}

// TestOpenReplacedByFIFO: a regular file replaced by a FIFO after it
// was listed is refused at open (O_NONBLOCK: the open does not wait for
// a writer), as an "open" warning, not read.
func TestOpenReplacedByFIFO(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("one"), 0o644)
	e := entryOf(t, p)
	os.Remove(p)
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	r, err := OpenForBackup(e)
	var w *Warning
	if !errors.As(err, &w) || w.Op != "open" || w.Path != p || !strings.Contains(err.Error(), "no longer a regular file") {
		if r != nil {
			r.Close()
		}
		t.Fatalf("open of a FIFO swapped in: %v", err)
	}
}

// TestReaderCloseTwice: the descriptor is closed once; a second Close
// is an error, not the close of a descriptor reused meanwhile.
func TestReaderCloseTwice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("data"), 0o644)
	r, err := OpenForBackup(entryOf(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := r.Close(); err == nil {
		t.Fatalf("second close: no error")
	}
}
