package iscsi

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	good := map[string]Address{
		"iscsi://tapehost/iqn.2026-12.com.example:lib/0":           {Host: "tapehost", Port: 3260, Target: "iqn.2026-12.com.example:lib", LUN: 0},
		"iscsi://backup@10.0.0.5:3261/iqn.2003-01.org.linux:t1/12": {User: "backup", Host: "10.0.0.5", Port: 3261, Target: "iqn.2003-01.org.linux:t1", LUN: 12},
		"iscsi://[fe80::1]:3260/naa.6001405abcdef/1":               {Host: "fe80::1", Port: 3260, Target: "naa.6001405abcdef", LUN: 1},
		"iscsi://b%40x@h/iqn.2026-12.io.tapeward.test:x/16383":     {User: "b@x", Host: "h", Port: 3260, Target: "iqn.2026-12.io.tapeward.test:x", LUN: 16383},
	}
	for in, want := range good {
		got, err := ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
			continue
		}
		again, err := ParseAddress(got.String())
		if err != nil || again != got {
			t.Errorf("%q: String %q does not parse back: %+v %v", in, got.String(), again, err)
		}
	}
	for in, why := range map[string]string{
		"iscsi://h/iqn.x:y":            "/TARGET-IQN/LUN",
		"iscsi://u:s3cr3t@h/iqn.x:y/1": "never goes in the address",
		"iscsi:///iqn.x:y/1":           "no host",
		"iscsi://h/tape/1":             "not an iqn.",
		"iscsi://h/iqn.x:y/01":         "LUN",
		"iscsi://h/iqn.x:y/16384":      "LUN",
		"iscsi://h:0/iqn.x:y/1":        "port",
		"iscsi://h/iqn.x:y/1?chap=x":   "query",
		"iscsi://h/iqn.x:y%20z/1":      "character",
		"http://h/iqn.x:y/1":           "iscsi://",
	} {
		_, err := ParseAddress(in)
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), Form) {
			t.Errorf("%q: %v, want an error saying %q", in, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: the error shows the password: %v", in, err)
		}
	}
}
