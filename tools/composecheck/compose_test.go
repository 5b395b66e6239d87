// Package composecheck checks docker-compose.yml, the Dockerfile and the
// configs they mount against each other and against the repository, since
// no Docker engine runs where the tests run (`docker compose config` is not
// available). It has only tests.
//
// docker-compose.yml is read with the small reader in yaml_test.go (a plain
// YAML subset; see there): go.mod has no YAML library and these checks do
// not justify one. The configs are loaded with package configs, exactly as
// the daemons load them.
package composecheck

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/configs"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tapeward/tapeward\n") {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			t.Fatal("go.mod of github.com/tapeward/tapeward not found above the test directory")
		}
		d = p
	}
}

// service is one compose service, as far as the checks need it.
type service struct {
	name    string
	node    *ynode
	image   string
	argv    []string          // entrypoint + command
	mounts  map[string]string // container path -> source ("./x" bind or volume name)
	binds   map[string]string // container path -> absolute host path (binds only)
	ro      map[string]bool   // container path mounted read-only
	ports   []string
	expose  []string
	ownImg  bool // built from our Dockerfile
	depends map[string]string
}

type compose struct {
	root     string // repository root
	doc      *ynode
	services map[string]*service
	order    []string
	volumes  []string // top-level named volumes
}

func loadCompose(t *testing.T) *compose {
	t.Helper()
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseYAML(string(src))
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, k := range doc.keys {
		if !slices.Contains([]string{"name", "services", "volumes"}, k) {
			t.Fatalf("docker-compose.yml: top-level key %q is not one this check knows (name, services, volumes)", k)
		}
	}
	c := &compose{root: root, doc: doc, services: map[string]*service{}}
	if v := doc.get("volumes"); v != nil {
		c.volumes = v.keys
	}
	svcs := doc.get("services")
	if svcs == nil || svcs.kind != yMap {
		t.Fatal("docker-compose.yml has no services mapping")
	}
	known := []string{"image", "build", "environment", "volumes", "command", "entrypoint", "healthcheck",
		"ports", "expose", "depends_on", "restart", "profiles"}
	for _, name := range svcs.keys {
		n := svcs.m[name]
		if n.kind != yMap {
			t.Fatalf("service %s is not a mapping", name)
		}
		for _, k := range n.keys {
			if !slices.Contains(known, k) {
				t.Fatalf("service %s: key %q is not one this check knows (%s); extend the check with it", name, k, strings.Join(known, ", "))
			}
		}
		s := &service{name: name, node: n, image: n.get("image").scalar(), mounts: map[string]string{},
			binds: map[string]string{}, ro: map[string]bool{}, depends: map[string]string{}}
		s.ownImg = n.get("build") != nil
		s.argv = append(n.get("entrypoint").strs(), n.get("command").strs()...)
		for _, v := range n.get("volumes").strs() {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || len(parts) > 3 {
				t.Fatalf("service %s: volume %q is not SOURCE:TARGET[:ro|rw]", name, v)
			}
			src, dst := parts[0], parts[1]
			if !path.IsAbs(dst) {
				t.Fatalf("service %s: volume %q: the target must be an absolute container path", name, v)
			}
			if len(parts) == 3 {
				if parts[2] != "ro" && parts[2] != "rw" {
					t.Fatalf("service %s: volume %q: mode %q (want ro or rw)", name, v, parts[2])
				}
				s.ro[dst] = parts[2] == "ro"
			}
			if _, dup := s.mounts[dst]; dup {
				t.Fatalf("service %s mounts two things at %s", name, dst)
			}
			s.mounts[dst] = src
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				s.binds[dst] = filepath.Join(root, src)
			}
		}
		s.ports = n.get("ports").strs()
		s.expose = n.get("expose").strs()
		if d := n.get("depends_on"); d != nil {
			for _, k := range d.keys {
				s.depends[k] = d.m[k].get("condition").scalar()
			}
		}
		c.services[name] = s
		c.order = append(c.order, name)
	}
	return c
}

// byBinary returns the services whose argv[0] is bin.
func (c *compose) byBinary(bin string) []*service {
	var out []*service
	for _, n := range c.order {
		if s := c.services[n]; len(s.argv) > 0 && s.argv[0] == bin {
			out = append(out, s)
		}
	}
	return out
}

func (c *compose) one(t *testing.T, bin string) *service {
	t.Helper()
	s := c.byBinary(bin)
	if len(s) != 1 {
		t.Fatalf("want exactly one service running %s, found %d", bin, len(s))
	}
	return s[0]
}

// flag returns the value after name in argv ("" if absent).
func flagValue(argv []string, name string) string {
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// hostPath maps a container path of s to the host file behind it (through
// a bind mount); "" if it is not on a bind mount.
func (s *service) hostPath(p string) string {
	best := ""
	for dst := range s.binds {
		if (p == dst || strings.HasPrefix(p, dst+"/")) && len(dst) > len(best) {
			best = dst
		}
	}
	if best == "" {
		return ""
	}
	return filepath.Join(s.binds[best], strings.TrimPrefix(p, best))
}

// mountOf returns the mount (container dir and source) holding p.
func (s *service) mountOf(p string) (string, string) {
	best := ""
	for dst := range s.mounts {
		if (p == dst || strings.HasPrefix(p, dst+"/")) && len(dst) > len(best) {
			best = dst
		}
	}
	return best, s.mounts[best]
}

// loaded are the configs the daemons of the compose file read.
type loaded struct {
	c                           *compose
	dirSvc, sdSvc, ctlSvc       *service
	director                    *configs.Director
	storaged                    *configs.Storaged
	console                     *configs.Console
	dirPath, sdPath, ctlPath    string // host paths
	dirCPath, sdCPath, ctlCPath string // container paths
}

func loadConfigs(t *testing.T) *loaded {
	t.Helper()
	c := loadCompose(t)
	l := &loaded{c: c, dirSvc: c.one(t, "director"), sdSvc: c.one(t, "storaged"), ctlSvc: c.one(t, "tapectl")}
	var err error
	for _, x := range []struct {
		s           *service
		host, cpath *string
		load        func(string) error
	}{
		{l.dirSvc, &l.dirPath, &l.dirCPath, func(p string) error { l.director, err = configs.LoadDirector(p); return err }},
		{l.sdSvc, &l.sdPath, &l.sdCPath, func(p string) error { l.storaged, err = configs.LoadStoraged(p); return err }},
		{l.ctlSvc, &l.ctlPath, &l.ctlCPath, func(p string) error { l.console, err = configs.LoadConsole(p); return err }},
	} {
		*x.cpath = flagValue(x.s.argv, "-c")
		if *x.cpath == "" {
			t.Fatalf("service %s runs %v without -c CONFIG", x.s.name, x.s.argv)
		}
		*x.host = x.s.hostPath(*x.cpath)
		if *x.host == "" {
			t.Fatalf("service %s: its config %s is not on a bind mount (mounts %v)", x.s.name, *x.cpath, x.s.mounts)
		}
		if !x.s.ro[path.Dir(*x.cpath)] && !x.s.ro[*x.cpath] {
			t.Fatalf("service %s: mount its config directory read-only (:ro)", x.s.name)
		}
		if e := x.load(*x.host); e != nil {
			t.Fatalf("service %s: config %s (%s on the host) does not load: %v", x.s.name, *x.cpath, *x.host, e)
		}
	}
	return l
}

func TestServicesAndImages(t *testing.T) {
	c := loadCompose(t)
	for _, want := range []string{"postgres", "vtl", "storaged", "director"} {
		if c.services[want] == nil {
			t.Fatalf("docker-compose.yml has no %s service (has %v)", want, c.order)
		}
	}
	pg := c.services["postgres"]
	if pg.image != "postgres:15" || pg.ownImg {
		t.Fatalf("postgres service: image %q (build %v); want the official postgres:15", pg.image, pg.ownImg)
	}
	if vol := pg.mounts["/var/lib/postgresql/data"]; vol == "" || strings.HasPrefix(vol, ".") || strings.HasPrefix(vol, "/") {
		t.Fatalf("postgres: /var/lib/postgresql/data must be a named volume, is %q", vol)
	}
	hc := pg.node.get("healthcheck", "test").strs()
	if len(hc) < 2 || !strings.HasPrefix(hc[0], "CMD") || !strings.Contains(strings.Join(hc[1:], " "), "pg_isready") {
		t.Fatalf("postgres healthcheck %q does not run pg_isready", hc)
	}
	if cond := c.services["director"].depends["postgres"]; cond != "service_healthy" {
		t.Fatalf("director depends on postgres with condition %q; want service_healthy", cond)
	}
	if _, ok := c.services["storaged"].depends["vtl"]; !ok {
		t.Fatal("storaged does not depend on vtl")
	}
	// Our services all use one image built from our Dockerfile.
	for _, n := range c.order {
		s := c.services[n]
		if n == "postgres" {
			continue
		}
		if !s.ownImg || s.image != c.services["director"].image {
			t.Fatalf("service %s: image %q, build %v; want the tapeward image built here (%q)", n, s.image, s.ownImg, c.services["director"].image)
		}
		if len(s.argv) == 0 {
			t.Fatalf("service %s has no command", n)
		}
		for dep, cond := range s.depends {
			if c.services[dep] == nil {
				t.Fatalf("service %s depends on unknown service %s", n, dep)
			}
			if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, cond) {
				t.Fatalf("service %s: depends_on %s condition %q", n, dep, cond)
			}
			if cond == "service_healthy" && c.services[dep].node.get("healthcheck") == nil {
				t.Fatalf("service %s waits for %s to be healthy, which has no healthcheck", n, dep)
			}
		}
	}
}

func TestReferencedPathsExist(t *testing.T) {
	c := loadCompose(t)
	used := map[string]bool{}
	builds := 0
	for _, n := range c.order {
		s := c.services[n]
		if b := s.node.get("build"); b != nil {
			builds++
			ctx := b.get("context").scalar()
			df := b.get("dockerfile").scalar()
			if b.kind == yScalar {
				ctx, df = b.str, "Dockerfile"
			}
			if ctx == "" || df == "" {
				t.Fatalf("service %s: build needs context and dockerfile", n)
			}
			if st, err := os.Stat(filepath.Join(c.root, ctx)); err != nil || !st.IsDir() {
				t.Fatalf("service %s: build context %s is not a directory: %v", n, ctx, err)
			}
			if _, err := os.Stat(filepath.Join(c.root, ctx, df)); err != nil {
				t.Fatalf("service %s: dockerfile %s: %v", n, df, err)
			}
		}
		for dst, src := range s.mounts {
			if host, ok := s.binds[dst]; ok {
				if _, err := os.Stat(host); err != nil {
					t.Fatalf("service %s mounts %s, which does not exist: %v", n, src, err)
				}
				continue
			}
			if !slices.Contains(c.volumes, src) {
				t.Fatalf("service %s mounts named volume %q, which the top-level volumes section does not declare (%v)", n, src, c.volumes)
			}
			used[src] = true
		}
	}
	if builds == 0 {
		t.Fatal("no service builds the image")
	}
	for _, v := range c.volumes {
		if !used[v] {
			t.Fatalf("volume %q is declared but no service mounts it", v)
		}
	}
	// Every config in configs/compose is one a service loads (no stale file).
	l := loadConfigs(t)
	ents, err := filepath.Glob(filepath.Join(c.root, "configs", "compose", "*.toml"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no configs/compose/*.toml (%v)", err)
	}
	for _, e := range ents {
		if !slices.Contains([]string{l.dirPath, l.sdPath, l.ctlPath}, e) {
			t.Fatalf("%s is not mounted as any service's config", e)
		}
	}
}

// TestMountedConfigsLoad loads each daemon's config the way the daemon
// does (loadConfigs fails on any error) and checks that every absolute path
// in it lies on a volume of that service, and that what the service writes
// is not on a read-only mount.
func TestMountedConfigsLoad(t *testing.T) {
	l := loadConfigs(t)
	d, s, k := l.director, l.storaged, l.console
	check := func(svc *service, what, p string, writable bool) {
		t.Helper()
		if !path.IsAbs(p) {
			t.Fatalf("%s: %s %q is not absolute", svc.name, what, p)
		}
		dst, src := svc.mountOf(p)
		if dst == "" {
			t.Fatalf("service %s: %s %s is on no volume of the service (it would be lost or missing)", svc.name, what, p)
		}
		if writable && svc.ro[dst] {
			t.Fatalf("service %s: %s %s is on read-only mount %s (%s)", svc.name, what, p, dst, src)
		}
	}
	for _, p := range []string{d.TLS.CA, d.TLS.Cert, d.TLS.Key, d.TLS.RevocationList, d.Catalog.PasswordFile, d.Keys.Active().File} {
		check(l.dirSvc, "file", p, false)
	}
	for _, p := range []string{s.TLS.CA, s.TLS.Cert, s.TLS.Key, s.TLS.RevocationList, s.Keys.KEK[0].File} {
		check(l.sdSvc, "file", p, false)
	}
	check(l.sdSvc, "working_directory", s.WorkingDirectory, true)
	for _, p := range []string{k.TLS.CA, k.TLS.Cert, k.TLS.Key, k.TLS.RevocationList} {
		check(l.ctlSvc, "file", p, false)
	}
	for _, dev := range append(slices.Clone(s.Drives), configs.Drive{Name: s.Changers[0].Name, Address: s.Changers[0].Address}) {
		sock, _, _ := strings.Cut(strings.TrimPrefix(dev.Address, "vtl:"), "#")
		check(l.sdSvc, dev.Name+" socket", sock, true)
	}
}

func port(t *testing.T, hostport string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: port %v", hostport, err)
	}
	return h, n
}

// containerPorts returns the container ports of "ports" ([ip:]host:container)
// and "expose" entries.
func containerPorts(t *testing.T, s *service) (published, exposed []int) {
	t.Helper()
	for _, p := range s.ports {
		f := strings.Split(p, ":")
		n, err := strconv.Atoi(strings.TrimSuffix(f[len(f)-1], "/tcp"))
		if err != nil || len(f) < 2 {
			t.Fatalf("service %s: ports entry %q is not [IP:]HOST:CONTAINER", s.name, p)
		}
		published = append(published, n)
	}
	for _, p := range s.expose {
		n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
		if err != nil {
			t.Fatalf("service %s: expose entry %q", s.name, p)
		}
		exposed = append(exposed, n)
	}
	return published, exposed
}

func TestPortsMatchListenAddresses(t *testing.T) {
	l := loadConfigs(t)
	for _, x := range []struct {
		s      *service
		listen string
	}{{l.dirSvc, l.director.Listen}, {l.sdSvc, l.storaged.Listen}} {
		h, p := port(t, x.listen)
		if h != "" && h != "0.0.0.0" && h != "::" {
			t.Fatalf("service %s listens on %s: other containers cannot reach it; listen on \":%d\"", x.s.name, x.listen, p)
		}
		pub, exp := containerPorts(t, x.s)
		all := append(pub, exp...)
		if !slices.Contains(all, p) {
			t.Fatalf("service %s listens on port %d but publishes/exposes %v", x.s.name, p, all)
		}
		for _, q := range all {
			if q != p {
				t.Fatalf("service %s publishes/exposes port %d, where nothing listens (config: %s)", x.s.name, q, x.listen)
			}
		}
	}
	// The director is published for tapectl on the host, on loopback only.
	pub, _ := containerPorts(t, l.dirSvc)
	if len(pub) == 0 {
		t.Fatal("the director's port is not published (tapectl on the host cannot reach it)")
	}
	for _, p := range l.dirSvc.ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Fatalf("director publishes %q; bind it to 127.0.0.1 (mutual TLS protects it, but there is no need to open it)", p)
		}
	}
}

func TestAddressesNameServices(t *testing.T) {
	l := loadConfigs(t)
	c := l.c
	_, dirPort := port(t, l.director.Listen)
	_, sdPort := port(t, l.storaged.Listen)

	// storaged and tapectl dial the director service.
	for _, x := range []struct {
		who string
		ref configs.DirectorRef
	}{{"storaged", l.storaged.Director}, {"tapectl", l.console.Director}} {
		h, p := port(t, x.ref.Address)
		if h != l.dirSvc.name || p != dirPort {
			t.Fatalf("%s dials the director at %s; the director service is %s:%d", x.who, x.ref.Address, l.dirSvc.name, dirPort)
		}
		if x.ref.TLSServerName != l.director.Name {
			t.Fatalf("%s verifies the director's certificate for %q; the director's name (its certificate) is %q", x.who, x.ref.TLSServerName, l.director.Name)
		}
		if x.ref.Name != "" && x.ref.Name != l.director.Name {
			t.Fatalf("%s names the director %q; director.toml says %q", x.who, x.ref.Name, l.director.Name)
		}
	}
	// The director admits the tapectl service's console.
	if _, ok := l.director.ConsoleNamed(l.console.Name); !ok {
		t.Fatalf("director.toml has no [[console]] named %q (tapectl.toml's name): the director would refuse the tapectl service", l.console.Name)
	}
	// The director dials the storaged service.
	if len(l.director.Storages) != 1 {
		t.Fatalf("director.toml has %d storages; the compose file runs one", len(l.director.Storages))
	}
	st := l.director.Storages[0]
	h, p := port(t, st.Address)
	if h != l.sdSvc.name || p != sdPort {
		t.Fatalf("director dials storage %s at %s; the storaged service is %s:%d", st.Name, st.Address, l.sdSvc.name, sdPort)
	}
	if st.Name != l.storaged.Name || st.TLSServerName != l.storaged.Name {
		t.Fatalf("director's storage %q (tls_server_name %q); storaged.toml's name is %q", st.Name, st.TLSServerName, l.storaged.Name)
	}
	// The catalog is the postgres service.
	pg := c.services["postgres"]
	cat := l.director.Catalog
	if cat.Host != "postgres" || cat.Port != 5432 {
		t.Fatalf("catalog at %s:%d; the postgres service is postgres:5432", cat.Host, cat.Port)
	}
	env := pg.node.get("environment")
	if env.get("POSTGRES_DB").scalar() != cat.Database || env.get("POSTGRES_USER").scalar() != cat.User {
		t.Fatalf("postgres creates database %q user %q; director.toml uses %q as %q",
			env.get("POSTGRES_DB").scalar(), env.get("POSTGRES_USER").scalar(), cat.Database, cat.User)
	}
	// The catalog password the keys service writes is the one postgres sets.
	ks := keysService(t, c)
	if pw := env.get("POSTGRES_PASSWORD").scalar(); pw == "" || ks.node.get("environment", "TAPEWARD_DB_PASSWORD").scalar() != pw {
		t.Fatalf("POSTGRES_PASSWORD %q and the keys service's TAPEWARD_DB_PASSWORD %q differ", pw, ks.node.get("environment", "TAPEWARD_DB_PASSWORD").scalar())
	}
}

// keysService is the one-shot service that runs the init script.
func keysService(t *testing.T, c *compose) *service {
	t.Helper()
	var found *service
	for _, n := range c.order {
		if strings.Contains(strings.Join(c.services[n].argv, "\n"), "tapekey pki init") {
			if found != nil {
				t.Fatalf("services %s and %s both run tapekey pki init", found.name, n)
			}
			found = c.services[n]
		}
	}
	if found == nil {
		t.Fatal("no service runs tapekey pki init")
	}
	return found
}

// keysScript is what the keys service's init script makes and copies.
type keysScript struct {
	ks                   *service
	cwd, pkiDir          string
	kekOut, pwFile       string              // absolute (keys service paths)
	names                map[string][]string // role -> certificate names
	copies               map[string][]string // destination directory -> absolute sources
	masterDst, masterVol string              // where the KEK is made, and its volume
}

func (k *keysScript) at(p string) string { return path.Join(k.cwd, p) }

func parseKeysScript(t *testing.T, c *compose) *keysScript {
	t.Helper()
	k := &keysScript{ks: keysService(t, c), names: map[string][]string{}, copies: map[string][]string{}}
	script := k.ks.argv[len(k.ks.argv)-1]
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			switch {
			case w == "cd" && i+1 < len(f):
				k.cwd = f[i+1]
			case w == "tapekey" && i+2 < len(f) && f[i+1] == "pki" && f[i+2] == "init":
				k.pkiDir = flagValue(f, "--dir")
				for j := i; j+1 < len(f); j++ {
					if r, ok := strings.CutPrefix(f[j], "--"); ok && slices.Contains([]string{"director", "storage", "client", "console"}, r) {
						k.names[r] = append(k.names[r], f[j+1])
					}
				}
			case w == "tapekey" && i+2 < len(f) && f[i+1] == "kek" && f[i+2] == "new":
				k.kekOut = flagValue(f, "--out")
			case w == ">" && i+1 < len(f) && strings.HasSuffix(f[i+1], ".password"):
				k.pwFile = f[i+1]
			}
		}
		if len(f) >= 3 && f[0] == "cp" {
			dst := path.Clean(f[len(f)-1])
			for _, src := range f[1 : len(f)-1] {
				if strings.HasPrefix(src, "-") {
					t.Fatalf("keys script: cp %v: no options, please (the check reads plain cp SRC... DIR/)", f[1:])
				}
				if !path.IsAbs(src) {
					src = path.Join(k.cwd, src)
				}
				k.copies[dst] = append(k.copies[dst], src)
			}
		}
	}
	if !path.IsAbs(k.cwd) || k.pkiDir == "" || k.kekOut == "" || k.pwFile == "" {
		t.Fatalf("keys script: cd %q, pki --dir %q, kek --out %q, password file %q; want all (cd absolute):\n%s", k.cwd, k.pkiDir, k.kekOut, k.pwFile, script)
	}
	k.kekOut, k.pwFile = k.at(k.kekOut), k.at(k.pwFile)
	k.masterDst, k.masterVol = k.ks.mountOf(k.kekOut)
	if k.masterDst == "" || strings.HasPrefix(k.masterVol, ".") || k.ks.ro[k.masterDst] {
		t.Fatalf("the keys service writes %s, which is not on a writable named volume", k.kekOut)
	}
	return k
}

// origin returns the file of the keys service that svc's file p is a copy
// of: p lies on a volume that the keys service also mounts, and the script
// copies a file of that name into that directory.
func (k *keysScript) origin(t *testing.T, svc *service, p string) string {
	t.Helper()
	dst, vol := svc.mountOf(p)
	if dst == "" {
		t.Fatalf("service %s: %s is on no volume", svc.name, p)
	}
	if !svc.ro[dst] {
		t.Fatalf("service %s: mount %s (%s, which holds %s) read-only", svc.name, vol, dst, p)
	}
	kdst := ""
	for d, v := range k.ks.mounts {
		if v == vol {
			kdst = d
		}
	}
	if kdst == "" {
		t.Fatalf("service %s reads %s from volume %s, which the keys service does not fill", svc.name, p, vol)
	}
	q := path.Join(kdst, strings.TrimPrefix(p, dst))
	for _, src := range k.copies[path.Dir(q)] {
		if path.Base(src) == path.Base(q) {
			return src
		}
	}
	t.Fatalf("service %s reads %s (%s in the keys service), which the keys script does not copy there (copies: %v)", svc.name, p, q, k.copies)
	return ""
}

// TestKeysServiceMakesWhatConfigsUse checks that the init script makes the
// certificates (names and roles), the KEK and the password file, and
// copies to each service exactly the files its config points at.
func TestKeysServiceMakesWhatConfigsUse(t *testing.T) {
	l := loadConfigs(t)
	k := parseKeysScript(t, l.c)
	pkiFile := func(n string) string { return k.at(path.Join(k.pkiDir, n)) }
	for _, x := range []struct {
		s    *service
		role string
		name string
		tls  configs.TLS
	}{{l.dirSvc, "director", l.director.Name, l.director.TLS}, {l.sdSvc, "storage", l.storaged.Name, l.storaged.TLS}, {l.ctlSvc, "console", l.console.Name, l.console.TLS}} {
		if !slices.Contains(k.names[x.role], x.name) {
			t.Fatalf("tapekey pki init makes %s certificates %v; the %s config's name is %q", x.role, k.names[x.role], x.s.name, x.name)
		}
		for _, f := range []struct{ what, p, want string }{
			{"ca", x.tls.CA, pkiFile("ca.crt")},
			{"cert", x.tls.Cert, pkiFile(x.name + ".crt")},
			{"key", x.tls.Key, pkiFile(x.name + ".key")},
			{"revocation_list", x.tls.RevocationList, pkiFile("revoked.txt")},
		} {
			if f.p == "" {
				t.Fatalf("service %s: [tls] %s is not set", x.s.name, f.what)
			}
			if got := k.origin(t, x.s, f.p); got != f.want {
				t.Fatalf("service %s: [tls] %s %s is a copy of %s; tapekey pki init writes %s", x.s.name, f.what, f.p, got, f.want)
			}
		}
	}
	for _, x := range []struct {
		s *service
		p string
	}{{l.dirSvc, l.director.Keys.Active().File}, {l.sdSvc, l.storaged.Keys.KEK[0].File}} {
		if got := k.origin(t, x.s, x.p); got != k.kekOut {
			t.Fatalf("service %s: KEK %s is a copy of %s; the keys service makes the KEK at %s", x.s.name, x.p, got, k.kekOut)
		}
	}
	if got := k.origin(t, l.dirSvc, l.director.Catalog.PasswordFile); got != k.pwFile {
		t.Fatalf("catalog password_file %s is a copy of %s; the keys service writes %s", l.director.Catalog.PasswordFile, got, k.pwFile)
	}
	for _, s := range []*service{l.dirSvc, l.sdSvc} {
		if s.depends[k.ks.name] != "service_completed_successfully" {
			t.Fatalf("service %s must wait for %s with condition service_completed_successfully (has %q)", s.name, k.ks.name, s.depends[k.ks.name])
		}
	}
}

// TestEachServiceGetsOnlyItsSecrets: a compromised container must not
// hold another's keys. The keys volume (every key, the CA's certificates)
// is the keys service's alone; a volume with a secret in it (a private
// key, the KEK, the catalog password) is mounted by one service, and holds
// nothing that service's config does not use; a volume that several
// services share holds no secret.
func TestEachServiceGetsOnlyItsSecrets(t *testing.T) {
	l := loadConfigs(t)
	k := parseKeysScript(t, l.c)
	for _, n := range l.c.order {
		if s := l.c.services[n]; s != k.ks {
			for dst, vol := range s.mounts {
				if vol == k.masterVol {
					t.Fatalf("service %s mounts the keys volume %s (at %s): it would hold every service's keys; give it only its own", n, vol, dst)
				}
			}
		}
	}
	secret := func(src string) bool {
		return strings.HasSuffix(src, ".key") || src == k.kekOut || src == k.pwFile || strings.HasSuffix(src, ".password")
	}
	uses := map[*service][]string{
		l.dirSvc: {l.director.TLS.CA, l.director.TLS.Cert, l.director.TLS.Key, l.director.TLS.RevocationList, l.director.Keys.Active().File, l.director.Catalog.PasswordFile},
		l.sdSvc:  {l.storaged.TLS.CA, l.storaged.TLS.Cert, l.storaged.TLS.Key, l.storaged.TLS.RevocationList, l.storaged.Keys.KEK[0].File},
		l.ctlSvc: {l.console.TLS.CA, l.console.TLS.Cert, l.console.TLS.Key, l.console.TLS.RevocationList},
	}
	for dir, srcs := range k.copies {
		kdst, vol := k.ks.mountOf(dir)
		if kdst != dir || vol == k.masterVol {
			t.Fatalf("the keys script copies into %s, which is not a volume of its own (mount %q, volume %q)", dir, kdst, vol)
		}
		var holders []*service
		for _, n := range l.c.order {
			if s := l.c.services[n]; s != k.ks && slices.Contains(slices.Collect(maps.Values(s.mounts)), vol) {
				holders = append(holders, s)
			}
		}
		var secrets []string
		for _, src := range srcs {
			if secret(src) {
				secrets = append(secrets, src)
			}
		}
		if len(secrets) == 0 {
			continue
		}
		if len(holders) != 1 {
			var names []string
			for _, h := range holders {
				names = append(names, h.name)
			}
			t.Fatalf("volume %s holds secrets %v and is mounted by %v; a volume with secrets is for one service", vol, secrets, names)
		}
		h := holders[0]
		hdst := ""
		for d, v := range h.mounts {
			if v == vol {
				hdst = d
			}
		}
		for _, src := range srcs {
			p := path.Join(hdst, path.Base(src))
			if !slices.Contains(uses[h], p) {
				t.Fatalf("volume %s gives service %s %s (a copy of %s), which its config does not use; give each service only its own", vol, h.name, p, src)
			}
		}
	}
}

func TestVTLSocketShared(t *testing.T) {
	l := loadConfigs(t)
	vtl := l.c.one(t, "vtl")
	if len(vtl.argv) < 2 || vtl.argv[1] != "serve" {
		t.Fatalf("vtl service runs %v, want vtl serve", vtl.argv)
	}
	sock, dir := flagValue(vtl.argv, "--socket"), flagValue(vtl.argv, "--dir")
	if !path.IsAbs(sock) || !path.IsAbs(dir) {
		t.Fatalf("vtl --socket %q --dir %q: want absolute container paths", sock, dir)
	}
	drives, err := strconv.Atoi(flagValue(vtl.argv, "--drives"))
	if err != nil {
		t.Fatalf("vtl --drives: %v", err)
	}
	if slots, err := strconv.Atoi(flagValue(vtl.argv, "--slots")); err != nil || slots < 5 {
		t.Fatalf("vtl --slots %q: want 5 or more (the quickstart labels slots 1-5)", flagValue(vtl.argv, "--slots"))
	}
	if d, v := vtl.mountOf(dir); d == "" || strings.HasPrefix(v, ".") {
		t.Fatalf("vtl --dir %s (the cartridges) is not on a named volume", dir)
	}
	sdst, svol := vtl.mountOf(sock)
	if sdst == "" || sdst != path.Dir(sock) {
		t.Fatalf("vtl's socket %s is not directly in a volume (mount %q)", sock, sdst)
	}
	if got := l.sdSvc.mounts[sdst]; got != svol {
		t.Fatalf("storaged mounts %q at %s; vtl serves its socket on volume %q there", got, sdst, svol)
	}
	hc := vtl.node.get("healthcheck", "test").strs()
	if flagValue(hc, "--socket") != sock {
		t.Fatalf("vtl healthcheck %v does not check socket %s", hc, sock)
	}
	want := "vtl:" + sock + "#"
	if a := l.storaged.Changers[0].Address; a != want+"changer" {
		t.Fatalf("storaged changer address %q, want %q", a, want+"changer")
	}
	for _, d := range l.storaged.Drives {
		if d.Address != fmt.Sprintf("%sdrive%d", want, d.DriveIndex) {
			t.Fatalf("storaged drive %s address %q, want %sdrive%d", d.Name, d.Address, want, d.DriveIndex)
		}
		if d.DriveIndex >= drives {
			t.Fatalf("storaged drive %s has index %d; vtl serves %d drives", d.Name, d.DriveIndex, drives)
		}
	}
}

// TestDockerfileBuildsEveryBinary checks the Dockerfile's shape and that it
// builds every binary the compose file runs, as packages that exist.
func TestDockerfileBuildsEveryBinary(t *testing.T) {
	c := loadCompose(t)
	b, err := os.ReadFile(filepath.Join(c.root, "configs", "compose", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms, runs, copies, users, envs []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rest := strings.Join(f[1:], " ")
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, rest)
		case "RUN":
			runs = append(runs, rest)
		case "COPY":
			copies = append(copies, rest)
		case "USER":
			users = append(users, rest)
		case "ENV":
			envs = append(envs, rest)
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[0], "golang:1.26 ") || !strings.HasSuffix(froms[0], " AS build") {
		t.Fatalf("FROM lines %q: want a multi-stage build starting with golang:1.26 AS build", froms)
	}
	runtime := froms[len(froms)-1]
	if strings.HasPrefix(runtime, "golang") || !(strings.HasPrefix(runtime, "debian:12-slim") || strings.HasPrefix(runtime, "gcr.io/distroless/static")) {
		t.Fatalf("runtime stage FROM %q: want a small base", runtime)
	}
	if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0", "root:root"}, users[len(users)-1]) {
		t.Fatalf("USER %q: the runtime must not run as root", users)
	}
	if !slices.ContainsFunc(copies, func(s string) bool { return s == "--from=build /out/ /usr/local/bin/" }) {
		t.Fatalf("COPY lines %q: want the binaries copied to /usr/local/bin", copies)
	}
	var targets []string
	for _, r := range runs {
		i := strings.Index(r, "go build")
		if i < 0 {
			continue
		}
		if !slices.Contains(envs, "CGO_ENABLED=0") && !strings.Contains(r, "CGO_ENABLED=0") {
			t.Fatal("go build runs without CGO_ENABLED=0 (static binaries)")
		}
		f := strings.Fields(r[i:])
		if flagValue(f, "-o") != "/out/" {
			t.Fatalf("go build -o %q, want /out/", flagValue(f, "-o"))
		}
		for _, w := range f {
			if strings.HasPrefix(w, "./") {
				targets = append(targets, w)
			}
		}
	}
	want := []string{"./director", "./storaged", "./tools/tapectl", "./tools/tapekey", "./tools/vtl"}
	for _, w := range want {
		if !slices.Contains(targets, w) {
			t.Fatalf("the Dockerfile builds %v; it must build %s", targets, w)
		}
	}
	// Every binary a service runs (command, entrypoint, healthcheck, the
	// init script) is built.
	built := map[string]bool{}
	for _, tg := range targets {
		built[path.Base(tg)] = true
	}
	for _, n := range c.order {
		s := c.services[n]
		if !s.ownImg {
			continue
		}
		run := []string{s.argv[0]}
		if hc := s.node.get("healthcheck", "test").strs(); len(hc) > 1 && hc[0] == "CMD" {
			run = append(run, hc[1])
		}
		if s.argv[0] == "sh" {
			run = run[1:]
			for _, line := range strings.Split(s.argv[len(s.argv)-1], "\n") {
				for _, w := range strings.Fields(line) {
					if slices.Contains([]string{"director", "storaged", "tapectl", "tapekey", "tapextract", "vtl"}, strings.TrimPrefix(w, "$(")) {
						run = append(run, strings.TrimPrefix(w, "$("))
					}
				}
			}
		}
		for _, bin := range run {
			if !built[bin] {
				t.Fatalf("service %s runs %s, which the Dockerfile does not build (it builds %v)", n, bin, targets)
			}
		}
	}
	// The targets are main packages of this module.
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{.Name}}"}, targets...)...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v (the Dockerfile's build targets): %v\n%s", targets, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(targets) {
		t.Fatalf("go list printed %d packages for %d targets:\n%s", len(lines), len(targets), out)
	}
	for _, line := range lines {
		if !strings.HasSuffix(line, " main") {
			t.Fatalf("build target %q is not a main package", line)
		}
	}
}
