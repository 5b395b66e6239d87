//go:build linux

package fileset_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapeward/tapeward/tools/filed/fileset"
)

// A Full of a small tree, as filed would stream it: each entry in
// order, the data of regular files read with OpenForBackup, warnings
// counted for the job status.
func Example() {
	root, _ := os.MkdirTemp("", "fileset-example-")
	defer os.RemoveAll(root)
	os.MkdirAll(filepath.Join(root, "src/.cache"), 0o755)
	os.WriteFile(filepath.Join(root, "src/main.go"), []byte("package main\n"), 0o644)
	os.WriteFile(filepath.Join(root, "src/main.o"), []byte("\x7fELF"), 0o644)
	os.WriteFile(filepath.Join(root, "src/.cache/x"), []byte("cached"), 0o644)
	os.Link(filepath.Join(root, "src/main.go"), filepath.Join(root, "src/copy.go"))
	os.Symlink("main.go", filepath.Join(root, "src/link.go"))

	fs := fileset.FileSet{Name: "src", Include: []string{root}, Exclude: []string{"*.o", "**/.cache"}}
	if err := fs.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	warnings := 0
	stats, err := fileset.Walk(context.Background(), fs, fileset.WalkOptions{
		Warn: func(w fileset.Warning) { warnings++; fmt.Println("warning:", w) },
	}, func(e fileset.Entry) error {
		rel := "." + strings.TrimPrefix(e.Path, root)
		switch e.Type {
		case fileset.TypeRegular:
			r, err := fileset.OpenForBackup(e)
			if err != nil {
				warnings++
				return nil
			}
			defer r.Close()
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			if c := r.Changed(); c != nil {
				warnings++
			}
			fmt.Printf("%s %s %d bytes\n", e.Type, rel, n)
		case fileset.TypeSymlink:
			fmt.Printf("%s %s -> %s\n", e.Type, rel, e.Linkname)
		case fileset.TypeHardlink:
			fmt.Printf("%s %s -> .%s\n", e.Type, rel, strings.TrimPrefix(e.Linkname, root))
		default:
			fmt.Printf("%s %s\n", e.Type, rel)
		}
		return nil
	})
	fmt.Println(stats.Files, "files,", stats.Bytes, "bytes,", stats.Excluded, "excluded,", warnings, "warnings,", err)
	// Output:
	// dir .
	// dir ./src
	// regular ./src/copy.go 13 bytes
	// symlink ./src/link.go -> main.go
	// hardlink ./src/main.go -> ./src/copy.go
	// 1 files, 13 bytes, 2 excluded, 0 warnings, <nil>
}
