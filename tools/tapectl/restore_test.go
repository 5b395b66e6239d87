package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tapeward/tapeward/configs"
)

// file=<LIST is read here, one path a line (blank and # lines skipped),
// and sent as one file= per path; a list that cannot be read sends
// nothing.
func TestRestoreFileList(t *testing.T) {
	e := start(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "paths.txt"), []byte("/etc/hosts\n\n# a comment\n/home/ann/a b.txt\r\n"), 0o644)
	r := tapectl(t, dir, "", nil, "-c", e.config, "restore client=web1 file=<paths.txt file=/x where=/tmp/r dryrun")
	expect(t, r, 0, "Restore plan: 2 files\nNothing was run: add yes to run this restore (tapectl asks).\n", "")
	e.lines(t, `restore client=web1 file=/etc/hosts file="/home/ann/a b.txt" file=/x where=/tmp/r dryrun`)

	r = tapectl(t, dir, "", nil, "-c", e.config, "restore client=web1 file=<missing.txt all")
	if r.code != 1 || !strings.Contains(r.stderr, "missing.txt") || !strings.Contains(r.stderr, "nothing was sent") {
		t.Errorf("a missing list: exit %d, stderr %q", r.code, r.stderr)
	}
	long := strings.Repeat("/a/very/long/path/name/to/fill/the/line\n", 300)
	os.WriteFile(filepath.Join(dir, "long.txt"), []byte(long), 0o644)
	r = tapectl(t, dir, "", nil, "-c", e.config, "restore client=web1 file=<long.txt")
	if r.code != 1 || !strings.Contains(r.stderr, "300 paths") || !strings.Contains(r.stderr, "directory=") {
		t.Errorf("a list too long for one line: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(e.d.requests()); n != 1 {
		t.Errorf("the director received %d commands, want 1", n)
	}
}

// At the prompt, a restore without yes shows the plan and asks; yes sends
// it again with yes, anything else runs nothing. After restore … select
// the prompt is the tree browser's until quit, or done and yes.
func TestRestorePromptAsksAndBrowses(t *testing.T) {
	e := start(t)
	cfg, err := configs.LoadConsole(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr, screen bytes.Buffer
	c, err := dial(cfg, false, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	h := &history{path: filepath.Join(t.TempDir(), historyName)}
	input := "restore client=web1 all\r" + "no\r" +
		"restore client=web1 all where=/tmp/r\r" + "yes\r" +
		"restore client=web1 select\r" + "cd /etc\r" + "mark \"x\"\r" + "quit\r" +
		"restore client=web1 select\r" + "done\r" + "yes\r" +
		"quit\r"
	tp := newTermPrompter(iotest.OneByteReader(strings.NewReader(input)), &screen, h)
	c.session(tp, make(chan os.Signal), h)
	e.lines(t, "restore client=web1 all", "restore client=web1 all where=/tmp/r", "restore client=web1 all where=/tmp/r yes",
		"restore client=web1 select", `browse session=s1 line="cd /etc"`, `browse session=s1 line="mark \"x\""`, `browse session=s1 line="quit"`,
		"restore client=web1 select", `browse session=s1 line="done"`, `browse session=s1 line="done yes"`)
	if !strings.Contains(screen.String(), "Run this restore? (yes/no): no") || !strings.Contains(stderr.String(), "restore not run") {
		t.Errorf("screen %q\nstderr %q", screen.String(), stderr.String())
	}
	if !strings.Contains(screen.String(), "$ cd /etc") {
		t.Errorf("the browser's prompt is not $:\n%q", screen.String())
	}
	if !strings.Contains(stdout.String(), "Restore job queued. JobId=9") {
		t.Errorf("stdout %q", stdout.String())
	}
}
