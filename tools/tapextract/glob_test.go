package main

import "testing"

func TestCompileGlobs(t *testing.T) {
	for _, c := range []struct {
		pats []string
		path string
		want bool
	}{
		{[]string{"/home/ann/**"}, "home/ann/a/b.txt", true},
		{[]string{"/home/ann/**"}, "home/anna/b.txt", false},
		{[]string{"home/ann"}, "home/ann/", true},          // a directory and
		{[]string{"home/ann"}, "home/ann/x/y", true},       // what is under it
		{[]string{"home/*/x.txt"}, "home/bob/x.txt", true}, // * stays within a name
		{[]string{"home/*/x.txt"}, "home/bob/c/x.txt", false},
		{[]string{"big/large-0?.bin"}, "big/large-01.bin", true},
		{[]string{"a.b"}, "axb", false}, // no regexp meaning
		{[]string{"x", "big/**"}, "big/q", true},
	} {
		m, err := compileGlobs(c.pats)
		if err != nil {
			t.Fatal(err)
		}
		if got := m(c.path); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pats, c.path, got, c.want)
		}
	}
	if m, err := compileGlobs(nil); m != nil || err != nil {
		t.Errorf("no patterns: a matcher (%v)", err)
	}
	if _, err := compileGlobs([]string{"/"}); err == nil {
		t.Error("--include / was accepted")
	}
}
