package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenFilesUnder lists what this process has open under dir, as
// /proc/self/fd names it: a file deleted or made unnamed (O_TMPFILE)
// while open shows as "PATH (deleted)" (an unnamed one as DIR/#INODE).
func OpenFilesUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, dir+"/") {
			open = append(open, l)
		}
	}
	return open
}
