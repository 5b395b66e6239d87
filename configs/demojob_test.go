package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoJobExampleLoads: the commented demo job of director.toml,
// uncommented, loads and resolves.
func TestDemoJobExampleLoads(t *testing.T) {
	b, err := os.ReadFile("director.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "# [[fileset]]\n# name    = \"demo\"")
	if i < 0 {
		t.Fatal("director.toml has no demo job example")
	}
	var out []string
	for _, l := range strings.Split(s[i:], "\n") {
		out = append(out, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
	}
	p := filepath.Join(t.TempDir(), "director.toml")
	abs, _ := filepath.Abs(".")
	// Relative paths of the sample resolve against configs/.
	text := strings.ReplaceAll(s[:i], `"../`, `"`+filepath.Dir(abs)+`/`) + strings.Join(out, "\n")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDirector(p)
	if err != nil {
		t.Fatalf("the demo job uncommented: %v", err)
	}
	j, ok := d.JobNamed("web1-demo")
	if !ok || j.Client != "web1" || j.Fileset != "demo" || j.PoolFor(LevelFull) != "Default" || d.StorageFor(j, "Default") != "sd1" {
		t.Fatalf("web1-demo = %+v", j)
	}
}
