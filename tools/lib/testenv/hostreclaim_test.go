package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys writes a sysfs tree under a temporary root: a balloon device
// with the given features ("" for none) and page_reporting_order ("" for
// a kernel without page reporting).
func fakeSys(t *testing.T, features, order string) string {
	root := t.TempDir()
	if features != "" {
		dir := filepath.Join(root, "sys/bus/virtio/drivers/virtio_balloon/virtio0")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "features"), []byte(features+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if order != "" {
		p := filepath.Join(root, reportingOrder)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(order+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestHostMemoryReclaim(t *testing.T) {
	// This development VM's balloon: stats, deflate on OOM, reporting.
	withReporting := "0110010100000000000000000000000010"
	noReporting := "0110000100000000000000000000000010"
	for _, c := range []struct {
		name, features, order string
		want                  HostReclaim
	}{
		{"reporting on", withReporting, "9", HostReclaim{Active: true, Order: 9}},
		{"turned off by order", withReporting, "11", HostReclaim{Order: 11}},
		{"device without reporting", noReporting, "9", HostReclaim{}},
		{"no balloon", "", "9", HostReclaim{}},
		{"kernel without page reporting", withReporting, "", HostReclaim{}},
	} {
		if got := hostMemoryReclaim(fakeSys(t, c.features, c.order)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// logTB records what Warn logs.
type logTB struct {
	testing.TB
	lines []string
}

func (l *logTB) Helper() {}
func (l *logTB) Logf(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func TestHostReclaimWarn(t *testing.T) {
	var quiet logTB
	HostReclaim{Order: 11}.Warn(&quiet)
	if len(quiet.lines) != 0 {
		t.Fatalf("an inactive HostReclaim logged %q", quiet.lines)
	}
	var loud logTB
	HostReclaim{Active: true, Order: 9}.Warn(&loud)
	if len(loud.lines) != 1 || !strings.Contains(loud.lines[0], "page_reporting_order") {
		t.Fatalf("an active HostReclaim logged %q, want one warning with the way to turn it off", loud.lines)
	}
}
