package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPaperRoundTrip(t *testing.T) {
	p, err := NewEscrowKey()
	if err != nil {
		t.Fatal(err)
	}
	text := p.PaperText()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if lines[0] != PaperHeader || lines[1] != "id "+p.ID() || len(lines) != 2+4 {
		t.Fatalf("paper text layout:\n%s", text)
	}
	if g := PaperGroups(text); len(g) != 13 || len(g[0]) != 5 {
		t.Fatalf("groups %d", len(g))
	}
	back, err := ParsePaper(text)
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.PrivateKeyBytes(), back.PrivateKeyBytes()
	if !bytes.Equal(a, b) || back.ID() != p.ID() {
		t.Fatal("paper round trip gives another key")
	}
	// As people type: lower case, no line numbers, hyphens, 0 for O.
	sloppy := strings.ToLower(strings.ReplaceAll(text, "O", "0"))
	var typed []string
	for _, l := range strings.Split(sloppy, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && isDigits(f[0]) {
			l = strings.Join(f[1:], "-")
		}
		typed = append(typed, "  "+l)
	}
	typed = append(typed, "----", " : ")
	if back, err := ParsePaper(strings.Join(typed, "\n")); err != nil || back.ID() != p.ID() {
		t.Fatalf("sloppy typing: %v", err)
	}
	// From a file (mode 0600): LoadEscrowKey takes paper text and keysets.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "paper.txt"), []byte(text), 0o600)
	if k, err := LoadEscrowKey(filepath.Join(dir, "paper.txt")); err != nil || k.ID() != p.ID() {
		t.Fatalf("LoadEscrowKey(paper): %v", err)
	}
	js, _ := p.MarshalPrivate()
	os.WriteFile(filepath.Join(dir, "e.key"), js, 0o600)
	if k, err := LoadEscrowKey(filepath.Join(dir, "e.key")); err != nil || k.ID() != p.ID() {
		t.Fatalf("LoadEscrowKey(keyset): %v", err)
	}
}

func TestPaperTypoNamesTheGroup(t *testing.T) {
	p, _ := NewEscrowKey()
	text := p.PaperText()
	groups := PaperGroups(text)
	// Change one character of group 7 (line 2, group 3).
	g := groups[6]
	c := byte('A')
	if g[1] == 'A' {
		c = 'B'
	}
	bad := strings.Replace(text, g, g[:1]+string(c)+g[2:], 1)
	_, err := ParsePaper(bad)
	var pe *PaperError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "group 7 (line 2, group 3 of the line)") {
		t.Fatalf("typo error: %v", err)
	}
	if strings.Contains(err.Error(), g[:4]) {
		t.Fatal("error repeats the group's text")
	}
	// Two groups swapped.
	swapped := strings.Replace(strings.Replace(text, groups[0], "@@", 1), groups[1], groups[0], 1)
	swapped = strings.Replace(swapped, "@@", groups[1], 1)
	if _, err := ParsePaper(swapped); err == nil || !strings.Contains(err.Error(), "group 1 ") {
		t.Fatalf("swapped groups: %v", err)
	}
	// A missing group, and a wrong id line (the overall check).
	if _, err := ParsePaper(strings.Replace(text, " "+groups[12], "", 1)); err == nil || !strings.Contains(err.Error(), "group 13 onwards is missing") {
		t.Fatalf("missing group: %v", err)
	}
	if _, err := ParsePaper(strings.Replace(text, "id "+p.ID(), "id 0000000000000000", 1)); err == nil || !strings.Contains(err.Error(), p.ID()) {
		t.Fatalf("wrong id: %v", err)
	}
}

// FuzzParsePaper: typed-back text never panics; an error never repeats a
// group of what was typed.
func FuzzParsePaper(f *testing.F) {
	p, _ := NewEscrowKey()
	f.Add(p.PaperText())
	f.Add(PaperHeader + "\nid 0123456789abcdef\n01 AAAAA\n")
	f.Add("--\n:\n01\n")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePaper(s)
		if err == nil {
			if k.ID() == "" {
				t.Fatal("key without id")
			}
			return
		}
		for _, g := range PaperGroups(s) {
			if len(g) >= 5 && strings.Contains(err.Error(), g) {
				t.Fatalf("error repeats typed group %q: %v", g, err)
			}
		}
	})
}
