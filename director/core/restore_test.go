package core

import (
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

func TestParseRestoreArgs(t *testing.T) {
	d := &Director{}
	parse := func(line string) (restoreArgs, error) {
		t.Helper()
		cmd, err := console.Parse(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return d.parseRestoreArgs(cmd)
	}
	a, err := parse(`restore client=web1 before="2026-11-30 12:00" file=/etc/hosts file=/etc/passwd directory=/home/ann fileregex=\.pdf$`)
	if err != nil {
		t.Fatal(err)
	}
	if a.view.Client != "web1" || !a.view.Before.Equal(time.Date(2026, 11, 30, 12, 0, 0, 0, time.Local)) || len(a.criteria.Files) != 2 ||
		len(a.criteria.Directories) != 1 || a.criteria.Regex == nil || !a.criteria.Regex.MatchString("/x/a.pdf") {
		t.Fatalf("parsed %+v", a)
	}
	if a, err := parse("restore jobid=41,42 all"); err != nil || len(a.view.JobIDs) != 2 || !a.criteria.All {
		t.Fatalf("jobid list: %+v, %v", a, err)
	}
	if _, err := parse("restore client=web1 select"); err != nil {
		t.Fatalf("select needs no criteria: %v", err)
	}
	for line, want := range map[string]string{
		"restore client=web1":                         "say what to restore",
		"restore all":                                 "say which client",
		"restore client=web1 current jobid=4 all":     "exclude each other",
		"restore client=web1 before=yesterday all":    "is not a time",
		"restore jobid=4,x all":                       "not a JobId",
		"restore client=web1 fileregex=a(b":           "not a regular expression",
		"restore client=web1 file=<list.txt":          "read by tapectl",
		`restore client=web1 before="2026-13-01" all`: "is not a time",
	} {
		if _, err := parse(line); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", line, err, want)
		}
	}
}

func TestDryRunTargets(t *testing.T) {
	v := testView()
	marks, _ := v.Mark(catalog.Criteria{Files: [][]byte{[]byte("/home/ann/a.txt")}})
	sel := v.Select(marks, nil)
	sel.Members = append(sel.Members, catalog.SelectedMember{RestoreMember: &catalog.RestoreMember{File: catalog.File{FileRow: catalog.FileRow{Path: []byte("/../../x"), Type: catalog.FileRegular}}}})
	files, err := dryRun(sel, &pb.Relocation{Where: "/tmp/r", StripPrefix: "/home", AddSuffix: ".old"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		if f.Error != "" {
			got = append(got, f.Path+" REFUSED")
			continue
		}
		got = append(got, f.Path+" -> "+f.Target)
	}
	want := "/home/ -> /tmp/r | /home/ann/ -> /tmp/r/ann | /home/ann/a.txt -> /tmp/r/ann/a.txt.old | /../../x REFUSED"
	if strings.Join(got, " | ") != want {
		t.Fatalf("dryrun:\n got %s\nwant %s", strings.Join(got, " | "), want)
	}
	if _, err := dryRun(sel, &pb.Relocation{Regexwhere: "!unterminated"}); err == nil {
		t.Fatal("a bad regexwhere was accepted")
	}
}
