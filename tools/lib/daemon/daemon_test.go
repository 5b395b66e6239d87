package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
)

func TestWriteAddrFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.addr")
	if err := WriteAddrFile(p, "127.0.0.1:4242"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "127.0.0.1:4242\n" {
		t.Fatalf("%q, %v", b, err)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("the temporary file stayed: %v", err)
	}
	if err := WriteAddrFile(filepath.Join(t.TempDir(), "no", "such", "dir"), "x"); err == nil || !strings.Contains(err.Error(), "--addr-file") {
		t.Fatalf("unwritable path: %v", err)
	}
	if err := WriteAddrFile("", "x"); err != nil {
		t.Fatalf("no path: %v", err)
	}
}

func TestLimits(t *testing.T) {
	l := Limits(configs.Limits{HandshakeTimeout: configs.Duration{Duration: 3 * time.Second}, MaxConnections: 7, MaxStreams: 9,
		KeepaliveTime: configs.Duration{Duration: time.Minute}, KeepaliveTimeout: configs.Duration{Duration: 5 * time.Second}})
	if l.HandshakeTimeout != 3*time.Second || l.MaxConnections != 7 || l.MaxStreams != 9 || l.KeepaliveTime != time.Minute || l.KeepaliveTimeout != 5*time.Second {
		t.Fatalf("%+v", l)
	}
}

func TestParseFlags(t *testing.T) {
	var errb strings.Builder
	f, code, ok := ParseFlags("filed", "/etc/x.toml", "debug", []string{"-c", "f.toml", "--debug", "--addr-file", "a"}, &errb)
	if !ok || code != 0 || f != (Flags{Config: "f.toml", Debug: true, AddrFile: "a"}) {
		t.Fatalf("%+v %d %v", f, code, ok)
	}
	if f, _, ok := ParseFlags("filed", "/etc/x.toml", "debug", nil, &errb); !ok || f.Config != "/etc/x.toml" || f.Debug {
		t.Fatalf("defaults: %+v", f)
	}
	if _, code, ok := ParseFlags("filed", "/etc/x.toml", "debug", []string{"-h"}, &errb); ok || code != 0 {
		t.Fatalf("-h: %d %v", code, ok)
	}
	errb.Reset()
	if _, code, ok := ParseFlags("filed", "/etc/x.toml", "debug", []string{"extra"}, &errb); ok || code != 2 ||
		errb.String() != "filed: unexpected argument \"extra\"; usage: filed -c FILE\n" {
		t.Fatalf("extra argument: %d %v %q", code, ok, errb.String())
	}
	if _, code, ok := ParseFlags("filed", "/etc/x.toml", "debug", []string{"--nope"}, &errb); ok || code != 2 {
		t.Fatalf("unknown flag: %d %v", code, ok)
	}
}

func TestLogger(t *testing.T) {
	var b strings.Builder
	Logger(&b, false).Debug("hidden")
	Logger(&b, true).Debug("shown")
	if strings.Contains(b.String(), "hidden") || !strings.Contains(b.String(), "shown") {
		t.Fatalf("%q", b.String())
	}
}
