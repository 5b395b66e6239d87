package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// dial runs one handshake between a tlsconf.Server and a tlsconf.Client
// expecting want at serverName, and returns both sides' errors (the
// server's as the server saw it).
func dial(t *testing.T, srv tlsconf.Files, accept func(tlsconf.Peer) error, cli tlsconf.Files, want tlsconf.Peer, serverName string) (serr, cerr error) {
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
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			done <- err
			return
		}
		_, err = io.WriteString(c, "ok\n")
		done <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	if err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 8)) // a refused client certificate shows here (TLS 1.3)
		conn.Close()
	}
	return <-done, err
}

// TestClientChecksServerRoleAndName: a certificate the CA signed is not
// enough to serve; the client wants the role and the name it dialed. The
// impostors carry the server name the client verifies (as old console
// certificates did, with loopback SANs for everyone, or through --host),
// so only the role/name check refuses them.
func TestClientChecksServerRoleAndName(t *testing.T) {
	dir := t.TempDir()
	ca := must(pki.NewCA("test CA"))
	director := issue(t, ca, dir, "director", tlsconf.RoleDirector)
	sd1 := issue(t, ca, dir, "sd1", tlsconf.RoleStorage)
	admin := issue(t, ca, dir, "admin", tlsconf.RoleConsole)
	wantDirector := tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}
	wantSD1 := tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}

	// The real servers are accepted.
	if serr, cerr := dial(t, director, nil, sd1, wantDirector, ""); serr != nil || cerr != nil {
		t.Fatalf("storaged -> director: server %v, client %v", serr, cerr)
	}
	if serr, cerr := dial(t, sd1, nil, director, wantSD1, "127.0.0.1"); serr != nil || cerr != nil {
		t.Fatalf("director -> sd1 at 127.0.0.1: server %v, client %v", serr, cerr)
	}

	for _, c := range []struct {
		name       string
		server     tlsconf.Files
		client     tlsconf.Files
		want       tlsconf.Peer
		serverName string
		presented  string
	}{
		// A console posing as the director to storaged (or tapectl).
		{"console as director", testenv.Impostor(t, ca, dir, "admin", tlsconf.RoleConsole, "director"), sd1, wantDirector, "director", `console "admin"`},
		// A console posing as a storage, reached by loopback address.
		{"console as storage", testenv.Impostor(t, ca, dir, "admin", tlsconf.RoleConsole), director, wantSD1, "127.0.0.1", `console "admin"`},
		// Another storage (its certificate carries the name sd1 too).
		{"sd2 as sd1", testenv.Impostor(t, ca, dir, "sd2", tlsconf.RoleStorage, "sd1"), director, wantSD1, "sd1", `storage "sd2"`},
		// Another storage, on the loopback address the director dials.
		{"sd2 as sd1 by address", issue(t, ca, dir, "sd2", tlsconf.RoleStorage), director, wantSD1, "127.0.0.1", `storage "sd2"`},
		// A storage posing as the director.
		{"storage as director", testenv.Impostor(t, ca, dir, "sd1", tlsconf.RoleStorage, "director"), admin, wantDirector, "director", `storage "sd1"`},
	} {
		_, cerr := dial(t, c.server, nil, c.client, c.want, c.serverName)
		var re *tlsconf.RefusedError
		if cerr == nil || !errors.As(cerr, &re) {
			t.Errorf("%s: client error %v, want a refusal", c.name, cerr)
			continue
		}
		msg := cerr.Error()
		if !strings.Contains(msg, "presented the certificate of "+c.presented) || !strings.Contains(msg, "expects "+c.want.String()) {
			t.Errorf("%s: the refusal does not say what was presented (%s) and expected (%s): %v", c.name, c.presented, c.want, msg)
		}
	}

	// Roles that cannot serve are refused before any dial.
	if _, err := tlsconf.Client(sd1, tlsconf.Peer{Role: tlsconf.RoleConsole, Name: "admin"}, ""); err == nil {
		t.Fatal("a client may expect a console as its server")
	}
}

// TestRevocationList: a revoked certificate is refused at the handshake by
// the server (client certificate) and by the client (server certificate),
// the list is re-read when it changes, and an unusable list refuses all.
func TestRevocationList(t *testing.T) {
	dir := t.TempDir()
	ca := must(pki.NewCA("test CA"))
	list := filepath.Join(dir, "revoked.txt")
	if err := os.WriteFile(list, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(f tlsconf.Files) tlsconf.Files { f.RevocationList = list; return f }
	director := with(issue(t, ca, dir, "director", tlsconf.RoleDirector))
	sd1 := with(issue(t, ca, dir, "sd1", tlsconf.RoleStorage))
	admin := with(issue(t, ca, dir, "admin", tlsconf.RoleConsole))
	wantDirector := tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}
	accept := tlsconf.Expect([]string{tlsconf.RoleConsole, tlsconf.RoleStorage})

	if serr, cerr := dial(t, director, accept, admin, wantDirector, ""); serr != nil || cerr != nil {
		t.Fatalf("before revocation: server %v, client %v", serr, cerr)
	}
	leaf := func(f tlsconf.Files) *x509.Certificate { return must(f.Leaf()) }
	at := time.Date(2026, 12, 2, 5, 40, 0, 0, time.UTC)
	if err := pki.Revoke(list, tlsconf.Revocation{Serial: leaf(admin).SerialNumber, At: at, Name: "admin", Role: "console", Reason: "laptop stolen"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(list); st.Mode().Perm() != 0o644 {
		t.Fatalf("revocation list mode %04o, want 0644", st.Mode().Perm())
	}
	serr, cerr := dial(t, director, accept, admin, wantDirector, "")
	var re *tlsconf.RefusedError
	if !errors.As(serr, &re) || cerr == nil {
		t.Fatalf("revoked console: server error %v, client error %v; want refused by the server", serr, cerr)
	}
	serial := tlsconf.FormatSerial(leaf(admin).SerialNumber)
	for _, w := range []string{"revoked", serial, `console "admin"`, "2026-12-02T05:40:00Z", "laptop stolen"} {
		if !strings.Contains(serr.Error(), w) {
			t.Errorf("the refusal %q does not say %q", serr, w)
		}
	}
	// Others still get through (the same list, re-read, not a blanket refusal).
	if serr, cerr := dial(t, director, accept, sd1, wantDirector, ""); serr != nil || cerr != nil {
		t.Fatalf("sd1 after admin's revocation: server %v, client %v", serr, cerr)
	}
	// A revoked server certificate is refused by the client.
	if err := pki.Revoke(list, tlsconf.Revocation{Serial: leaf(director).SerialNumber, At: at, Name: "director", Role: "director"}); err != nil {
		t.Fatal(err)
	}
	if _, cerr := dial(t, director, accept, sd1, wantDirector, ""); cerr == nil || !strings.Contains(cerr.Error(), "revoked") {
		t.Fatalf("revoked director certificate: client error %v, want revoked", cerr)
	}
	// Revoking twice says so and changes nothing.
	if err := pki.Revoke(list, tlsconf.Revocation{Serial: leaf(admin).SerialNumber, At: at}); err == nil || !strings.Contains(err.Error(), "already revoked") {
		t.Fatalf("second revoke: %v", err)
	}
	// Un-revoking (the file rewritten without the entries) is picked up too.
	if err := pki.WriteRevocations(list, nil); err != nil {
		t.Fatal(err)
	}
	if serr, cerr := dial(t, director, accept, admin, wantDirector, ""); serr != nil || cerr != nil {
		t.Fatalf("after the list was emptied: server %v, client %v", serr, cerr)
	}
	// An unusable list refuses everyone, saying why.
	if err := os.WriteFile(list, []byte("not a list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// (sd1's side reads it first, when the director's certificate arrives.)
	if _, cerr := dial(t, director, accept, sd1, wantDirector, ""); cerr == nil || !strings.Contains(cerr.Error(), "header") {
		t.Fatalf("malformed list: client error %v, want a refusal naming the problem", cerr)
	}
	os.Remove(list)
	if _, err := tlsconf.OpenRevocationList(filepath.Join(dir, "missing.txt")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing list: %v", err)
	}
}

func TestRevocationFormat(t *testing.T) {
	at := time.Date(2026, 12, 2, 5, 40, 0, 0, time.UTC)
	in := []tlsconf.Revocation{
		{Serial: big.NewInt(0x5f3c), At: at.Add(time.Hour), Name: "admin", Role: "console", Reason: "laptop  stolen\nagain"},
		{Serial: big.NewInt(0xabc), At: at},
	}
	text := tlsconf.FormatRevocations(in)
	out, err := tlsconf.ParseRevocations(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(out) != 2 || out[0].Serial.Int64() != 0xabc || out[0].Name != "" || out[1].Reason != "laptop stolen again" || !out[1].At.Equal(at.Add(time.Hour)) {
		t.Fatalf("round trip:\n%s\n%+v", text, out)
	}
	if n, err := tlsconf.ParseSerial("5F:3C"); err != nil || n.Int64() != 0x5f3c {
		t.Fatalf("ParseSerial(5F:3C) = %v, %v", n, err)
	}
	for _, bad := range []string{
		"# something else\n",
		tlsconf.RevocationHeader + "\nzz 2026-12-02T05:40:00Z a b\n",
		tlsconf.RevocationHeader + "\nabc yesterday a b\n",
		tlsconf.RevocationHeader + "\nabc 2026-12-02T05:40:00Z a\n",
		tlsconf.RevocationHeader + "\nabc 2026-12-02T05:40:00Z a b\nABC 2026-12-02T05:40:00Z a b\n",
	} {
		if _, err := tlsconf.ParseRevocations([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if l, err := tlsconf.ParseRevocations([]byte("\n")); err != nil || len(l) != 0 {
		t.Fatalf("empty file: %v %v", l, err)
	}
}
