package dial

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]Address{
		"/dev/sg3":                      {Path: "/dev/sg3"},
		"/dev/tape/by-id/scsi-123-sg":   {Path: "/dev/tape/by-id/scsi-123-sg"},
		"vtl:/run/vtl.sock#drive0":      {VTL: true, Path: "/run/vtl.sock", Unit: "drive0"},
		"vtl:/run/vtl.sock#drive12":     {VTL: true, Path: "/run/vtl.sock", Unit: "drive12", Drive: 12},
		"vtl:/tmp/a#b/vtl.sock#changer": {VTL: true, Path: "/tmp/a#b/vtl.sock", Unit: "changer", Change: true},
		"vtl:relative/vtl.sock#drive1":  {VTL: true, Path: "relative/vtl.sock", Unit: "drive1", Drive: 1},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "sg3", "tape0", "vtl:/run/vtl.sock", "vtl:#drive0", "vtl:/s#robot", "vtl:/s#drive", "vtl:/s#drive-1", "vtl:/s#drive01", "nst0"} {
		_, err := Parse(in)
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), Forms) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("drive0"); !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), "vtl:<socket path>#drive<N>") {
		t.Fatalf("bad address: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := Open("vtl:" + sock + "#drive0")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the vtl socket") {
		t.Fatalf("absent vtl: %v", err)
	}
	if runtime.GOOS == "linux" {
		_, err = Open("/dev/null")
		if err == nil || !strings.Contains(err.Error(), "not a SCSI generic (sg) device") {
			t.Fatalf("/dev/null: %v", err)
		}
		_, err = Open("/dev/sg-absent-tapeward")
		if err == nil || !strings.Contains(err.Error(), "no such device node") {
			t.Fatalf("absent node: %v", err)
		}
	}
}
