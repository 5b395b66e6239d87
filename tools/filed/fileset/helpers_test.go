//go:build linux

package fileset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// result is what a walk produced.
type result struct {
	entries []Entry
	warns   []Warning
	notes   []Note
	stats   Stats
}

func (r result) paths() []string {
	var out []string
	for _, e := range r.entries {
		out = append(out, e.Path)
	}
	return out
}

// rel returns the entries' paths relative to root ("." for root),
// entries outside root left out.
func (r result) rel(root string) []string {
	var out []string
	for _, e := range r.entries {
		if e.Path == root {
			out = append(out, ".")
		} else if s, ok := strings.CutPrefix(e.Path, root+"/"); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r result) find(t *testing.T, path string) Entry {
	t.Helper()
	for _, e := range r.entries {
		if e.Path == path {
			return e
		}
	}
	t.Fatalf("no entry %q among %d entries", path, len(r.entries))
	return Entry{}
}

func walk(t *testing.T, fs FileSet, opts WalkOptions) result {
	t.Helper()
	var r result
	opts.Warn = func(w Warning) { r.warns = append(r.warns, w) }
	opts.Note = func(n Note) { r.notes = append(r.notes, n) }
	if fs.Name == "" {
		fs.Name = "test"
	}
	st, err := Walk(context.Background(), fs, opts, func(e Entry) error {
		r.entries = append(r.entries, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	r.stats = st
	if st.Warnings != int64(len(r.warns)) {
		t.Fatalf("Stats.Warnings = %d, callback saw %d", st.Warnings, len(r.warns))
	}
	return r
}

// mk creates files (names ending in "/" are directories) under root.
func mk(t *testing.T, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(root, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("data of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func statT(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
