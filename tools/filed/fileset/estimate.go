//go:build linux

package fileset

import (
	"context"
	"time"
)

// Estimate walks the fileset as a job of since-time since would (zero:
// a Full) without reading data, xattrs or sparse maps, and returns the
// counts: Files, Dirs, Symlinks, Hardlinks, Specials, Bytes (apparent
// size) and Allocated (on disk) of the regular files the job would
// read, Unchanged for the others, Warnings. list, if not nil, is called
// for each entry the job would store (directories and changed
// entries); its error stops the estimate.
func Estimate(ctx context.Context, fset FileSet, since time.Time, list func(Entry) error) (Stats, error) {
	if list == nil {
		list = func(Entry) error { return nil }
	}
	return Walk(ctx, fset, WalkOptions{Since: since, SkipUnchanged: true, noData: true}, list)
}
