package configs

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README quickstart uses the three sample configs together: every
// port, name and shared file they repeat must agree, the crypto cache must
// not live in the vtl's cartridge directory, and the catalog must be the
// one `make quickstart-db` starts.
func TestQuickstartConfigsAgree(t *testing.T) {
	d, err := LoadDirector("director.toml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadStoraged("storaged.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadConsole("tapectl.toml")
	if err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		return p
	}
	same := func(what string, vals ...string) {
		t.Helper()
		for _, v := range vals[1:] {
			if v != vals[0] {
				t.Errorf("%s disagree: %q", what, vals)
				return
			}
		}
	}
	same("the director's port (director.toml listen, storaged.toml and tapectl.toml [director] address)",
		port(d.Listen), port(s.Director.Address), port(c.Director.Address))
	if len(d.Storages) != 1 {
		t.Fatalf("director.toml has %d [[storage]], the quickstart one", len(d.Storages))
	}
	same("the storage's address (director.toml [[storage]] address, storaged.toml listen)", d.Storages[0].Address, s.Listen)
	same("the storage's name", d.Storages[0].Name, s.Name, d.Storages[0].TLSServerName)
	same("the director's name", d.Name, s.Director.Name, s.Director.TLSServerName, c.Director.TLSServerName)
	same("the CA", d.TLS.CA, s.TLS.CA, c.TLS.CA)
	same("the KEK file", d.Keys.Active().File, s.Keys.KEK[0].File)
	if _, ok := d.ConsoleNamed(c.Name); !ok {
		t.Errorf("tapectl.toml's console %q has no [[console]] in director.toml", c.Name)
	}
	for _, f := range []struct{ file, want string }{{d.TLS.Cert, d.Name}, {s.TLS.Cert, s.Name}, {c.TLS.Cert, c.Name}} {
		if filepath.Base(f.file) != f.want+".crt" {
			t.Errorf("certificate %s is not the one `tapekey pki init` makes for %q (%s.crt)", f.file, f.want, f.want)
		}
	}
	// The crypto cache is not in the library's cartridge directory.
	for _, ch := range s.Changers {
		sock := strings.TrimPrefix(strings.SplitN(ch.Address, "#", 2)[0], "vtl:")
		lib := filepath.Dir(sock)
		if rel, err := filepath.Rel(lib, s.WorkingDirectory); err == nil && !strings.HasPrefix(rel, "..") {
			t.Errorf("working_directory %s is inside the vtl's directory %s", s.WorkingDirectory, lib)
		}
	}
	// The catalog is make quickstart-db's.
	b, err := os.ReadFile("../tools/quickstart/pg.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`PORT=\$\{QUICKSTART_PG_PORT:-(\d+)\}`).FindSubmatch(b)
	if m == nil {
		t.Fatal("tools/quickstart/pg.sh: no default port")
	}
	if d.Catalog.Host != "127.0.0.1" || itoa(int(d.Catalog.Port)) != string(m[1]) || d.Catalog.Database != "tapeward" || d.Catalog.User != "tapeward" {
		t.Errorf("director.toml [catalog] %s:%d %s/%s is not make quickstart-db's 127.0.0.1:%s tapeward/tapeward",
			d.Catalog.Host, d.Catalog.Port, d.Catalog.User, d.Catalog.Database, m[1])
	}
	// filed.toml is the director's client web1.
	fd, err := LoadFiled("filed.toml")
	if err != nil {
		t.Fatal(err)
	}
	cl, ok := d.ClientNamed(fd.Name)
	if !ok {
		t.Fatalf("filed.toml's client %q has no [[client]] in director.toml", fd.Name)
	}
	same("the client's address (director.toml [[client]] address, filed.toml listen)", cl.Address, fd.Listen)
	same("the director's name (director.toml name, filed.toml [director] name)", d.Name, fd.Director.Name)
	same("the CA (director.toml, filed.toml)", d.TLS.CA, fd.TLS.CA)
	if filepath.Base(fd.TLS.Cert) != fd.Name+".crt" {
		t.Errorf("filed.toml's certificate %s is not the one `tapekey pki init --client %s` makes (%s.crt)", fd.TLS.Cert, fd.Name, fd.Name)
	}
	if d.DefaultPool == "" {
		t.Error("director.toml sets no default_pool: the quickstart's `label slots=1-5 barcodes encrypt` would need pool=")
	}
}

// Every document a user needs is in the repository: no Markdown file links
// or points outside it (../shared, absolute paths).
func TestDocsStayInTheRepository(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	n := 0
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "state" || e.Name() == "lib" || e.Name() == "bin") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(p, ".md") {
			return nil
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.Contains(text, "../shared") || strings.Contains(text, "shared/docs/") {
			t.Errorf("%s points at ../shared, outside the repository: an operator does not have it; say it here or in a README of the repository", p)
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs := filepath.Join(filepath.Dir(p), target)
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %q, outside the repository", p, target)
			} else if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links %q, which does not exist", p, target)
			}
		}
		return nil
	})
	if n < 5 {
		t.Fatalf("found only %d Markdown files under %s", n, root)
	}
}
