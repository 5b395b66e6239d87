package core

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
)

func testView() *catalog.RestoreView {
	m := func(p, typ string, size int64) catalog.RestoreMember {
		return catalog.RestoreMember{File: catalog.File{JobID: 1, FileRow: catalog.FileRow{Path: []byte(p), Type: typ, Size: size, Mode: 0o644}}}
	}
	return catalog.NewRestoreView("web1", "home", []catalog.Job{{ID: 1, Level: catalog.LevelFull}}, []catalog.RestoreMember{
		m("/home/", catalog.FileDir, 0), m("/home/ann/", catalog.FileDir, 0), m("/home/ann/a.txt", catalog.FileRegular, 10),
		m("/home/ann/b.pdf", catalog.FileRegular, 20), m("/home/ann/docs/", catalog.FileDir, 0), m("/home/ann/docs/c.pdf", catalog.FileRegular, 30),
		m("/home/bob/x", catalog.FileRegular, 40),
	})
}

func TestBrowseLines(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	d := &Director{clock: func() time.Time { return now }}
	ctx := context.Background()
	cmd, _ := console.Parse("restore client=web1 select")
	out, err := d.browseStart0(cmd, "alice", testView(), catalog.Criteria{})
	if err != nil {
		t.Fatal(err)
	}
	id := out
	line := func(actor, l string) string {
		t.Helper()
		c, err := console.Parse(`browse session=` + id + ` line="` + l + `"`)
		if err != nil {
			t.Fatal(err)
		}
		o, err := d.browseLine(ctx, actor, c, func(string, ...any) {})
		if err != nil {
			return "ERR " + err.Error()
		}
		return o.Text
	}
	// The browser starts in the deepest directory holding everything.
	if got := line("alice", "pwd"); got != "cwd is: /home/" {
		t.Fatalf("pwd = %q", got)
	}
	if got := line("alice", "ls"); got != " ann/\n bob/\n2 entries" {
		t.Fatalf("ls = %q", got)
	}
	if got := line("alice", "cd ann"); got != "cwd is: /home/ann/" {
		t.Fatalf("cd = %q", got)
	}
	if got := line("alice", "mark *.pdf"); got != "1 files marked." {
		t.Fatalf("mark = %q", got)
	}
	if got := line("alice", "mark docs"); got != "2 files marked." {
		t.Fatalf("mark docs (recursive) = %q", got)
	}
	if got := line("alice", "ls"); got != " a.txt\n*b.pdf\n*docs/\n3 entries" {
		t.Fatalf("ls after marks = %q", got)
	}
	if got := line("alice", "lsmark"); got != "*/home/ann/b.pdf\n*/home/ann/docs/\n*/home/ann/docs/c.pdf\n3 marked" {
		t.Fatalf("lsmark = %q", got)
	}
	if got := line("alice", "estimate"); !strings.HasPrefix(got, "7 total files; 3 marked to be restored; 50 B") {
		t.Fatalf("estimate = %q", got)
	}
	if got := line("alice", "unmark docs"); got != "2 files unmarked." {
		t.Fatalf("unmark = %q", got)
	}
	if got := line("alice", "markdir docs"); got != "1 files marked." {
		t.Fatalf("markdir = %q", got)
	}
	if got := line("alice", "count"); got != "7 total files; 2 marked to be restored." {
		t.Fatalf("count = %q", got)
	}
	if got := line("alice", "find *.pdf"); got != "*/home/ann/b.pdf\n /home/ann/docs/c.pdf\n2 found" {
		t.Fatalf("find = %q", got)
	}
	if got := line("alice", "cd /home/bob/x"); !strings.Contains(got, "no such directory") {
		t.Fatalf("cd to a file = %q", got)
	}
	if got := line("alice", "cd ../.."); got != "cwd is: /" {
		t.Fatalf("cd ../.. = %q", got)
	}
	if got := line("alice", "frobnicate"); !strings.Contains(got, "not a tree browser command") {
		t.Fatalf("unknown verb = %q", got)
	}
	// Another console cannot use the session.
	if got := line("bob", "ls"); !strings.Contains(got, "no tree browser session") {
		t.Fatalf("another console = %q", got)
	}
	if got := line("alice", "quit"); !strings.Contains(got, "nothing was restored") {
		t.Fatalf("quit = %q", got)
	}
	if got := line("alice", "ls"); !strings.Contains(got, "no tree browser session") {
		t.Fatalf("after quit = %q", got)
	}
}
