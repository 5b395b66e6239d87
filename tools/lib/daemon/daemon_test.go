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
