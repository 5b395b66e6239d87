package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// readCert parses the PEM certificate at path.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s is not exactly one PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// checkLeaf checks that pki/<name>.crt names name with role, is signed by
// the CA in pki/ca.crt for client and server use, and that its key file
// matches it.
func checkLeaf(t *testing.T, pkiDir, name, role string) *x509.Certificate {
	t.Helper()
	ca := readCert(t, filepath.Join(pkiDir, "ca.crt"))
	c := readCert(t, filepath.Join(pkiDir, name+".crt"))
	if c.Subject.CommonName != name {
		t.Fatalf("%s.crt: CN %q, want %q", name, c.Subject.CommonName, name)
	}
	if !slices.Equal(c.Subject.OrganizationalUnit, []string{role}) {
		t.Fatalf("%s.crt: OU %v, want [%s]", name, c.Subject.OrganizationalUnit, role)
	}
	server := role != "console"
	if server && !slices.Contains(c.DNSNames, name) {
		t.Fatalf("%s.crt: DNS names %v lack %q", name, c.DNSNames, name)
	}
	if want := server; slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) != want {
		t.Fatalf("%s.crt (%s): extended key usages %v; serverAuth wanted: %v", name, role, c.ExtKeyUsage, want)
	}
	if c.IsCA {
		t.Fatalf("%s.crt is a CA certificate", name)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("%s.crt does not verify against ca.crt as a client: %v", name, err)
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if server && err != nil {
		t.Fatalf("%s.crt does not verify against ca.crt as server %s: %v", name, name, err)
	}
	if !server && err == nil {
		t.Fatalf("console %s.crt verifies as a server for %s", name, name)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, name+".crt"), filepath.Join(pkiDir, name+".key")); err != nil {
		t.Fatalf("%s.key does not match %s.crt: %v", name, name, err)
	}
	return c
}

func TestPKIInit(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "", "pki", "init", "--dir", "pki", "--director", "director",
		"--storage", "sd1", "--storage", "sd2", "--client", "fd1", "--console", "admin", "--host", "tape.example.com", "--host", "192.0.2.7")
	pkiDir := filepath.Join(dir, "pki")
	if m := mode(t, pkiDir); m != 0o700 {
		t.Fatalf("pki dir mode %04o, want 0700", m)
	}
	// The CA key is kept by default (pki issue needs it for a second storage).
	want := []string{"admin.crt", "admin.key", "ca.crt", "ca.key", "director.crt", "director.key", "fd1.crt", "fd1.key", "revoked.txt", "sd1.crt", "sd1.key", "sd2.crt", "sd2.key"}
	if got := dirNames(t, pkiDir); !slices.Equal(got, want) {
		t.Fatalf("pki dir holds %v, want %v (ca.key kept by default)", got, want)
	}
	for _, n := range want {
		wantMode := os.FileMode(0o600)
		if n == "revoked.txt" {
			wantMode = 0o644 // no secret; every daemon reads it
		}
		if m := mode(t, filepath.Join(pkiDir, n)); m != wantMode {
			t.Fatalf("%s mode %04o, want %04o", n, m, wantMode)
		}
	}
	if b, err := os.ReadFile(filepath.Join(pkiDir, "revoked.txt")); err != nil || !strings.HasPrefix(string(b), tlsconf.RevocationHeader+"\n") {
		t.Fatalf("revoked.txt: %q, %v; want an empty list with its header", b, err)
	}
	ca := readCert(t, filepath.Join(pkiDir, "ca.crt"))
	if !ca.IsCA || ca.Subject.CommonName != "Tapeward CA" {
		t.Fatalf("ca.crt: IsCA %v CN %q", ca.IsCA, ca.Subject.CommonName)
	}
	for _, w := range []struct{ name, role string }{{"director", "director"}, {"sd1", "storage"}, {"sd2", "storage"}, {"fd1", "client"}, {"admin", "console"}} {
		c := checkLeaf(t, pkiDir, w.name, w.role)
		if w.role == "console" {
			if len(c.DNSNames) > 0 || len(c.IPAddresses) > 0 {
				t.Fatalf("console %s.crt carries DNS %v IP %v; a console never serves", w.name, c.DNSNames, c.IPAddresses)
			}
		} else if !slices.Contains(c.DNSNames, "tape.example.com") || !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.7")) }) {
			t.Fatalf("%s.crt lacks the --host names: DNS %v IP %v", w.name, c.DNSNames, c.IPAddresses)
		}
		// Valid for one year by default.
		if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour || d > 366*24*time.Hour {
			t.Fatalf("%s.crt is valid for %v, want one year", w.name, d)
		}
		// The output names each file, name, role and expiry.
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, filepath.Join("pki", w.name+".crt")) {
				line = l
			}
		}
		exp := "expires " + c.NotAfter.UTC().Format(time.DateOnly)
		if line == "" || !strings.HasPrefix(line, w.role) || !strings.Contains(line, " "+w.name+" ") ||
			!strings.Contains(line, filepath.Join("pki", w.name+".key")) || !strings.Contains(line, exp) {
			t.Fatalf("output line for %s is %q; want role, name, both paths and %q. Output:\n%s", w.name, line, exp, out)
		}
	}
	if !strings.Contains(out, "CA key  "+filepath.Join("pki", "ca.key")+" (mode 0600)") || !strings.Contains(out, "created pki (mode 0700)") {
		t.Fatalf("output does not say where the CA key was kept / the dir was created:\n%s", out)
	}
	// --discard-ca-key: no ca.key, and the output says what that means.
	out2 := ok(t, dir, "", "pki", "init", "--dir", "pki-nokey", "--director", "director", "--discard-ca-key")
	if got := dirNames(t, filepath.Join(dir, "pki-nokey")); slices.Contains(got, "ca.key") || !strings.Contains(out2, "CA key  not kept (--discard-ca-key)") {
		t.Fatalf("--discard-ca-key: pki dir holds %v; output:\n%s", got, out2)
	}
	// No private key material in the output.
	for _, n := range []string{"admin.key", "director.key", "sd1.key"} {
		b, _ := os.ReadFile(filepath.Join(pkiDir, n))
		blk, _ := pem.Decode(b)
		noLeak(t, [][]byte{blk.Bytes}, out)
		if strings.Contains(out, "PRIVATE KEY") {
			t.Fatalf("output holds a PEM key:\n%s", out)
		}
	}
}

func TestPKIInitRefusesOverwriteAndBadInput(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if err := os.Mkdir(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "sd1.key"), []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"pki", "init", "--dir", "pki", "--director", "director", "--storage", "sd1", "--console", "admin"}
	fails(t, 1, dir, "", args, "refusing to overwrite", filepath.Join("pki", "sd1.key"), "nothing was written")
	if got := dirNames(t, pkiDir); !slices.Equal(got, []string{"sd1.key"}) {
		t.Fatalf("after a refused init the dir holds %v; want only the old sd1.key (all or nothing)", got)
	}
	if b, _ := os.ReadFile(filepath.Join(pkiDir, "sd1.key")); string(b) != "old key" {
		t.Fatalf("sd1.key was changed: %q", b)
	}
	// A second init over a complete one refuses too, naming ca.crt.
	ok(t, dir, "", "pki", "init", "--dir", "pki2", "--director", "director")
	fails(t, 1, dir, "", []string{"pki", "init", "--dir", "pki2", "--director", "director"}, filepath.Join("pki2", "ca.crt"), filepath.Join("pki2", "director.crt"))

	fails(t, 2, dir, "", []string{"pki", "init", "--director", "d"}, "needs --dir")
	fails(t, 2, dir, "", []string{"pki", "init", "--dir", "p3", "--storage", "sd1"}, "needs --director")
	fails(t, 2, dir, "", []string{"pki", "init", "--dir", "p3", "--director", "x", "--storage", "x"}, `"x" is given twice`)
	fails(t, 2, dir, "", []string{"pki", "init", "--dir", "p3", "--director", "../evil"}, "use only letters")
	fails(t, 2, dir, "", []string{"pki", "init", "--dir", "p3", "--director", "ca"}, "reserved")
	if _, err := os.Stat(filepath.Join(dir, "p3")); err == nil {
		t.Fatal("a usage error created the directory")
	}
}

// handshake runs one mutual TLS 1.3 handshake on loopback between a
// tlsconf.Server (with accept) and a tlsconf.Client expecting want (at
// serverName, "": want's name), exchanging a line, and returns the peer
// the server saw and the errors of both sides.
func handshake(t *testing.T, srv tlsconf.Files, accept func(tlsconf.Peer) error, cli tlsconf.Files, want tlsconf.Peer, serverName string) (tlsconf.Peer, error, error) {
	t.Helper()
	scfg, err := tlsconf.Server(srv, accept)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := tlsconf.Client(cli, want, serverName)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		peer tlsconf.Peer
		err  error
	}
	done := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- res{err: err}
			return
		}
		st := tc.ConnectionState()
		p := tlsconf.Peer{Name: st.PeerCertificates[0].Subject.CommonName, Role: st.PeerCertificates[0].Subject.OrganizationalUnit[0]}
		_, err = io.WriteString(tc, "hello "+p.Name+"\n")
		done <- res{peer: p, err: err}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	var cerr error
	if err != nil {
		cerr = err
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, err := conn.Read(buf) // in TLS 1.3 a refused client certificate shows here
		if err != nil {
			cerr = err
		} else if !strings.HasPrefix(string(buf[:n]), "hello ") {
			cerr = io.ErrUnexpectedEOF
		}
		conn.Close()
	}
	r := <-done
	return r.peer, r.err, cerr
}

func files(pkiDir, name string) tlsconf.Files {
	return tlsconf.Files{CA: filepath.Join(pkiDir, "ca.crt"), Cert: filepath.Join(pkiDir, name+".crt"), Key: filepath.Join(pkiDir, name+".key")}
}

func TestPKIMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "", "pki", "init", "--dir", "pki", "--director", "director", "--storage", "sd1", "--console", "admin")
	ok(t, dir, "", "pki", "init", "--dir", "other", "--director", "director", "--storage", "sd1")
	p := filepath.Join(dir, "pki")
	other := filepath.Join(dir, "other")

	// director dials storaged (sd1 accepts only the director named "director").
	sdAccept := tlsconf.Expect([]string{tlsconf.RoleDirector}, "director")
	peer, serr, cerr := handshake(t, files(p, "sd1"), sdAccept, files(p, "director"), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if serr != nil || cerr != nil {
		t.Fatalf("director -> sd1: server error %v, client error %v", serr, cerr)
	}
	if peer != (tlsconf.Peer{Name: "director", Role: tlsconf.RoleDirector}) {
		t.Fatalf("sd1 saw peer %v", peer)
	}
	// storaged and the console dial the director.
	dirAccept := tlsconf.Expect([]string{tlsconf.RoleStorage, tlsconf.RoleConsole})
	for _, w := range []struct{ name, role string }{{"sd1", tlsconf.RoleStorage}, {"admin", tlsconf.RoleConsole}} {
		peer, serr, cerr := handshake(t, files(p, "director"), dirAccept, files(p, w.name), tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "")
		if serr != nil || cerr != nil {
			t.Fatalf("%s -> director: server error %v, client error %v", w.name, serr, cerr)
		}
		if peer != (tlsconf.Peer{Name: w.name, Role: w.role}) {
			t.Fatalf("director saw peer %v, want %s %s", peer, w.role, w.name)
		}
	}

	// Refusals: a console's certificate where a director is expected (role
	// check); a certificate of another CA; the wrong server name.
	_, serr, cerr = handshake(t, files(p, "sd1"), sdAccept, files(p, "admin"), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if serr == nil || !strings.Contains(serr.Error(), `role "console"`) || cerr == nil {
		t.Fatalf("console cert at storaged: server error %v, client error %v; want a role refusal", serr, cerr)
	}
	_, serr, cerr = handshake(t, files(p, "sd1"), sdAccept, files(other, "director"), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if serr == nil || cerr == nil {
		t.Fatalf("director cert of another CA was accepted (server %v, client %v)", serr, cerr)
	}
	_, serr, cerr = handshake(t, files(p, "sd1"), sdAccept, files(p, "director"), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd2"}, "")
	if cerr == nil || !strings.Contains(cerr.Error(), "sd2") {
		t.Fatalf("client verifying server name sd2 against sd1's cert: client error %v", cerr)
	}
}

func TestPKIKeepCAKeyAndIssue(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "", "pki", "init", "--dir", "pki", "--director", "director", "--storage", "sd1", "--keep-ca-key")
	p := filepath.Join(dir, "pki")
	if m := mode(t, filepath.Join(p, "ca.key")); m != 0o600 {
		t.Fatalf("ca.key mode %04o", m)
	}
	if !strings.Contains(out, filepath.Join("pki", "ca.key")) {
		t.Fatalf("output does not name ca.key:\n%s", out)
	}
	out = ok(t, dir, "", "pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "sd2", "--role", "storage", "--host", "10.1.2.3")
	if !strings.Contains(out, filepath.Join("pki", "sd2.crt")) || !strings.Contains(out, "storage") {
		t.Fatalf("issue output: %s", out)
	}
	c := checkLeaf(t, p, "sd2", "storage")
	if !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("10.1.2.3")) }) {
		t.Fatalf("sd2.crt IPs %v lack 10.1.2.3", c.IPAddresses)
	}
	for _, n := range []string{"sd2.crt", "sd2.key"} {
		if m := mode(t, filepath.Join(p, n)); m != 0o600 {
			t.Fatalf("%s mode %04o", n, m)
		}
	}
	// The later certificate works with the earlier ones.
	_, serr, cerr := handshake(t, files(p, "sd2"), tlsconf.Expect([]string{tlsconf.RoleDirector}, "director"), files(p, "director"), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd2"}, "")
	if serr != nil || cerr != nil {
		t.Fatalf("director -> sd2: server %v, client %v", serr, cerr)
	}

	fails(t, 1, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "sd2", "--role", "storage"}, "refusing to overwrite")
	fails(t, 2, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "x", "--role", "admin"}, `--role "admin"`)
	fails(t, 2, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--role", "storage"}, "needs --name")
	// A CA key that is not this CA's.
	ok(t, dir, "", "pki", "init", "--dir", "pki2", "--director", "director", "--keep-ca-key")
	fails(t, 1, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki2/ca.key", "--name", "sd3", "--role", "storage"}, "does not belong")
	// A CA key readable by others is refused.
	if err := os.Chmod(filepath.Join(p, "ca.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "sd3", "--role", "storage"}, "chmod 600")
	if _, err := os.Stat(filepath.Join(p, "sd3.crt")); err == nil {
		t.Fatal("a refused issue wrote sd3.crt")
	}
}

// TestPKIInitMatchesShippedConfigs makes the certificates under the names
// the sample configs (configs/*.toml) use, in the place they point at, and
// runs every link of the quickstart with exactly those files and names:
// director <- storaged, director <- console, storaged <- director.
func TestPKIInitMatchesShippedConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"director.toml", "storaged.toml", "tapectl.toml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "configs", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "configs", n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := configs.LoadDirector(filepath.Join(dir, "configs", "director.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := configs.LoadStoraged(filepath.Join(dir, "configs", "storaged.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := configs.LoadConsole(filepath.Join(dir, "configs", "tapectl.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The quickstart command: names from the configs, the directory their
	// [tls] ca points at.
	pkiDir := filepath.Dir(d.TLS.CA)
	ok(t, dir, "", "pki", "init", "--dir", pkiDir, "--director", d.Name, "--storage", s.Name, "--console", c.Name)
	tf := func(t configs.TLS) tlsconf.Files { return tlsconf.Files{CA: t.CA, Cert: t.Cert, Key: t.Key} }
	for _, f := range []configs.TLS{d.TLS, s.TLS, c.TLS} {
		for _, p := range []string{f.CA, f.Cert, f.Key} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("a config names %s, which `tapekey pki init --director %s --storage %s --console %s` does not make: %v", p, d.Name, s.Name, c.Name, err)
			}
		}
	}
	if s.Director.Name != d.Name || len(d.Storages) == 0 || d.Storages[0].Name != s.Name {
		t.Fatalf("the sample configs disagree on names: director %q, storaged's director %q, director's storages %+v, storaged %q", d.Name, s.Director.Name, d.Storages, s.Name)
	}
	dirAccept := tlsconf.Expect([]string{tlsconf.RoleStorage, tlsconf.RoleConsole})
	for _, x := range []struct {
		who        string
		cli        configs.TLS
		serverName string
		want       tlsconf.Peer
	}{
		{"storaged", s.TLS, s.Director.TLSServerName, tlsconf.Peer{Name: s.Name, Role: tlsconf.RoleStorage}},
		{"tapectl", c.TLS, c.Director.TLSServerName, tlsconf.Peer{Name: c.Name, Role: tlsconf.RoleConsole}},
	} {
		peer, serr, cerr := handshake(t, tf(d.TLS), dirAccept, tf(x.cli), tlsconf.Peer{Role: tlsconf.RoleDirector, Name: d.Name}, x.serverName)
		if serr != nil || cerr != nil || peer != x.want {
			t.Fatalf("%s -> director with the sample configs: peer %v, server error %v, client error %v", x.who, peer, serr, cerr)
		}
	}
	peer, serr, cerr := handshake(t, tf(s.TLS), tlsconf.Expect([]string{tlsconf.RoleDirector}, s.Director.Name), tf(d.TLS), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: d.Storages[0].Name}, d.Storages[0].TLSServerName)
	if serr != nil || cerr != nil || peer != (tlsconf.Peer{Name: d.Name, Role: tlsconf.RoleDirector}) {
		t.Fatalf("director -> storaged with the sample configs: peer %v, server error %v, client error %v", peer, serr, cerr)
	}
}

func TestPKIHelp(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "", "help")
	for _, w := range []string{"tapekey pki init", "tapekey pki issue"} {
		if !strings.Contains(out, w) {
			t.Fatalf("help does not list %q", w)
		}
	}
	out = ok(t, dir, "", "pki", "init", "--help")
	for _, w := range []string{"-dir", "-director", "-storage", "-console", "-host", "-keep-ca-key", "Organizational Unit"} {
		if !strings.Contains(out, w) {
			t.Fatalf("pki init --help does not mention %s:\n%s", w, out)
		}
	}
}

func TestPKIDaysRevokeList(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "", "pki", "init", "--dir", "pki", "--director", "director", "--storage", "sd1", "--console", "admin", "--days", "30", "--keep-ca-key")
	p := filepath.Join(dir, "pki")
	c := readCert(t, filepath.Join(p, "admin.crt"))
	if d := c.NotAfter.Sub(c.NotBefore); d < 30*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("--days 30 gave a certificate valid for %v", d)
	}
	ok(t, dir, "", "pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "fd1", "--role", "client", "--days", "90")
	fd := checkLeaf(t, p, "fd1", "client")
	if d := fd.NotAfter.Sub(fd.NotBefore); d < 90*24*time.Hour || d > 91*24*time.Hour {
		t.Fatalf("issue --days 90 gave %v", d)
	}
	ok(t, dir, "", "pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "ops", "--role", "console")
	checkLeaf(t, p, "ops", "console")
	fails(t, 2, dir, "", []string{"pki", "issue", "--dir", "pki", "--ca-key", "pki/ca.key", "--name", "ops2", "--role", "console", "--host", "x.example"}, "no --host")
	fails(t, 2, dir, "", []string{"pki", "init", "--dir", "p9", "--director", "d", "--days", "0"}, "--days 0")

	// list: every certificate with name, role, serial, expiry; none revoked.
	out := ok(t, dir, "", "pki", "list", "--dir", "pki")
	for _, n := range []string{"admin", "director", "sd1", "fd1", "ops"} {
		cert := readCert(t, filepath.Join(p, n+".crt"))
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, n+" ") {
				line = l
			}
		}
		role := cert.Subject.OrganizationalUnit[0]
		if !strings.Contains(line, " "+role+" ") || !strings.Contains(line, tlsconf.FormatSerial(cert.SerialNumber)) ||
			!strings.Contains(line, cert.NotAfter.UTC().Format(time.DateOnly)) || strings.Contains(line, "REVOKED") {
			t.Fatalf("list line for %s: %q\n%s", n, line, out)
		}
	}

	// revoke by certificate file and by serial (looked up in --dir for its name).
	out = ok(t, dir, "", "pki", "revoke", "pki/admin.crt", "--dir", "pki", "--reason", "laptop stolen")
	if !strings.Contains(out, `console "admin"`) || !strings.Contains(out, "revoked.txt") {
		t.Fatalf("revoke output: %s", out)
	}
	sd1 := readCert(t, filepath.Join(p, "sd1.crt"))
	colons := strings.ToUpper(tlsconf.FormatSerial(sd1.SerialNumber))
	ok(t, dir, "", "pki", "revoke", colons, "--dir", "pki")
	revs, err := tlsconfRead(filepath.Join(p, "revoked.txt"))
	if err != nil || len(revs) != 2 || revs[0].Name != "admin" || revs[0].Role != "console" || revs[0].Reason != "laptop stolen" || revs[1].Name != "sd1" || revs[1].Role != "storage" {
		t.Fatalf("revocation list: %+v, %v", revs, err)
	}
	if m := mode(t, filepath.Join(p, "revoked.txt")); m != 0o644 {
		t.Fatalf("revoked.txt mode %04o after revoke", m)
	}
	fails(t, 1, dir, "", []string{"pki", "revoke", "pki/admin.crt", "--dir", "pki"}, "already revoked")
	fails(t, 2, dir, "", []string{"pki", "revoke", "nothex!", "--dir", "pki"}, "serial")
	fails(t, 2, dir, "", []string{"pki", "revoke", "pki/admin.crt"}, "--dir")
	out = ok(t, dir, "", "pki", "list", "--dir", "pki")
	for _, l := range strings.Split(out, "\n") {
		revoked := strings.Contains(l, "REVOKED")
		if (strings.HasPrefix(l, "admin ") || strings.HasPrefix(l, "sd1 ")) != revoked {
			t.Fatalf("list after revoking admin and sd1, line %q:\n%s", l, out)
		}
	}
	if !strings.Contains(out, "laptop stolen") {
		t.Fatalf("list does not show the reason:\n%s", out)
	}

	// The revoked console is refused by a director reading the list.
	lf := func(n string) tlsconf.Files {
		f := files(p, n)
		f.RevocationList = filepath.Join(p, "revoked.txt")
		return f
	}
	_, serr, _ := handshake(t, lf("director"), nil, lf("admin"), tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "")
	if serr == nil || !strings.Contains(serr.Error(), "revoked") {
		t.Fatalf("revoked admin at the director: %v", serr)
	}
}

func tlsconfRead(path string) ([]tlsconf.Revocation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return tlsconf.ParseRevocations(b)
}
