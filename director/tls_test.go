package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// TestRevokedConsoleRefused: the running director refuses a console whose
// certificate is in its revocation list, logs why (serial, name, when),
// and accepts it again once the list no longer names it — no restart.
func TestRevokedConsoleRefused(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 2, revocationList: true})
	w.ok("list volumes")
	con, err := configs.LoadConsole(w.conPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := tlsconf.Files{Cert: con.TLS.Cert, Key: con.TLS.Key}.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	list := w.dirConf.TLS.RevocationList
	if err := pki.Revoke(list, tlsconf.Revocation{Serial: leaf.SerialNumber, At: time.Date(2026, 12, 2, 6, 30, 0, 0, time.UTC), Name: "admin", Role: "console", Reason: "laptop stolen"}); err != nil {
		t.Fatal(err)
	}
	out, errs, code := w.tapectl("list volumes")
	if code != 1 || out != "" || !strings.Contains(errs, "its certificate may be revoked") {
		t.Fatalf("revoked console: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	testenv.WaitFor(t, "the director to log the refusal", func() bool { return strings.Contains(w.dird.Output(), "refused a connection") })
	log := w.dird.Output()
	for _, want := range []string{"serial=" + tlsconf.FormatSerial(leaf.SerialNumber), `console \"admin\"`, "was revoked on 2026-12-02T06:30:00Z (laptop stolen)"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the director's refusal does not say %s:\n%s", want, log)
		}
	}
	// storaged (not revoked) still works with the director.
	if err := pki.WriteRevocations(list, nil); err != nil {
		t.Fatal(err)
	}
	w.ok("list volumes")
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
}

// TestImpostorStorageRefused: something else holding a certificate of the
// CA with the name "sd1" among its DNS names (another storage issued with
// --host sd1, or a console certificate as tapekey used to issue them)
// answers at the storage's address. The director refuses it at the
// handshake and says what it presented and what it expected; no label is
// recorded as done.
func TestImpostorStorageRefused(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 2})
	w.sd.Stop(t, syscall.SIGTERM)
	for _, imp := range []struct{ name, role string }{{"sd2", tlsconf.RoleStorage}, {"admin", tlsconf.RoleConsole}} {
		tc, err := tlsconf.Server(testenv.Impostor(t, w.pki.CA, w.dir, imp.name, imp.role, "sd1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", w.sdConf.Listen)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
		pb.RegisterStorageServer(srv, pb.UnimplementedStorageServer{})
		go srv.Serve(lis)
		out, errs, code := w.tapectl("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
		srv.Stop()
		all := out + errs
		// (tapectl shows the gRPC message as it is, with its quotes escaped.)
		if code == 0 || !strings.Contains(all, `presented the certificate of `+imp.role+` \"`+imp.name+`\"`) ||
			!strings.Contains(all, `expects storage \"sd1\"`) || !strings.Contains(all, "nothing was sent to what answered") {
			t.Fatalf("label through an impostor %s: exit %d\nstdout: %s\nstderr: %s", imp.role, code, out, errs)
		}
	}
	for _, v := range w.volumes() {
		if v.Status == "Append" {
			t.Fatalf("a volume was labelled through an impostor: %+v", v)
		}
	}
}
