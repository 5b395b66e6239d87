package composecheck

import (
	"slices"
	"strings"
	"testing"
)

// The reader itself: what it reads, and that it refuses what it does not
// understand instead of misreading it.
func TestYAMLSubsetReader(t *testing.T) {
	src := `# comment
name: demo   # trailing comment
services:
  a:
    image: "x:1"
    command: ["sh", "-c", "echo 'a, b' # not a comment"]
    volumes:
      - ./dir:/in:ro
      - 'it''s:/b'
    depends_on:
      b:
        condition: service_healthy
    script:
      - sh
      - |
        line one
          indented # kept
        line three
    empty:
  b:
    expose:
      - "9103"
    list_of_maps:
      - k: v
        k2: v2
      - k: w
volumes:
  v1:
`
	root, err := parseYAML(src)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.get("name").scalar(); got != "demo" {
		t.Fatalf("name %q", got)
	}
	a := root.get("services", "a")
	if a == nil || !slices.Equal(root.get("services").keys, []string{"a", "b"}) {
		t.Fatalf("services: %+v", root.get("services"))
	}
	if got := a.get("image").scalar(); got != "x:1" {
		t.Fatalf("image %q", got)
	}
	if got := a.get("command").strs(); !slices.Equal(got, []string{"sh", "-c", "echo 'a, b' # not a comment"}) {
		t.Fatalf("command %q", got)
	}
	if got := a.get("volumes").strs(); !slices.Equal(got, []string{"./dir:/in:ro", "it's:/b"}) {
		t.Fatalf("volumes %q", got)
	}
	if got := a.get("depends_on", "b", "condition").scalar(); got != "service_healthy" {
		t.Fatalf("condition %q", got)
	}
	if got := a.get("script").strs(); len(got) != 2 || got[1] != "line one\n  indented # kept\nline three" {
		t.Fatalf("block %q", got)
	}
	if n := a.get("empty"); n == nil || n.kind != yNull {
		t.Fatalf("empty: %+v", n)
	}
	lm := root.get("services", "b", "list_of_maps")
	if lm == nil || len(lm.list) != 2 || lm.list[0].get("k2").scalar() != "v2" || lm.list[1].get("k").scalar() != "w" {
		t.Fatalf("list of maps: %+v", lm)
	}
	if got := root.get("services", "b", "expose").strs(); !slices.Equal(got, []string{"9103"}) {
		t.Fatalf("expose %q", got)
	}
	if n := root.get("volumes", "v1"); n == nil || n.kind != yNull {
		t.Fatalf("volumes.v1: %+v", n)
	}

	for _, bad := range []struct{ src, want string }{
		{"a: &x 1\nb: *x\n", "outside the supported"},
		{"a: {b: 1}\n", "outside the supported"},
		{"a: 1\na: 2\n", "duplicate key"},
		{"a:\n  b: 1\n    c: 2\n", "indentation"},
		{"a:\n\tb: 1\n", "tab"},
		{"a: [1, 2\n", "must end"},
		{"a:\n  - x\n  y: 1\n", "list item"},
		{"---\na: 1\n", "documents"},
	} {
		if _, err := parseYAML(bad.src); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseYAML(%q): error %v, want one containing %q", bad.src, err, bad.want)
		}
	}
}
