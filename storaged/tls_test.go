package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// TestRevokedDirectorCertificate: storaged reads [tls] revocation_list; a
// director certificate added to it is refused at the handshake (and the
// refusal logged with the serial), the list is re-read when it changes and
// on SIGHUP. The daemon runs hardened: no core dumps.
func TestRevokedDirectorCertificate(t *testing.T) {
	e := newEnv(t, envOpts{revocationList: true})
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	leaf, err := e.dirFiles.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	serial := tlsconf.FormatSerial(leaf.SerialNumber)
	if err := pki.Revoke(e.sdConf.TLS.RevocationList, tlsconf.Revocation{Serial: leaf.SerialNumber, At: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Name: "director", Role: "director", Reason: "key leaked"}); err != nil {
		t.Fatal(err)
	}
	e.connect(e.dirFiles)
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err == nil {
		t.Fatal("storaged accepted a revoked director certificate")
	}
	testenv.WaitFor(t, "storaged to log the refusal", func() bool { return strings.Contains(e.log(), "refused a connection") })
	for _, w := range []string{"serial=" + serial, `was revoked on 2026-12-02T06:00:00Z (key leaked)`, `director \"director\"`} {
		if !strings.Contains(e.log(), w) {
			t.Fatalf("storaged's refusal does not say %s:\n%s", w, e.log())
		}
	}
	// Lifted (the file changed): accepted again, without a restart.
	if err := pki.WriteRevocations(e.sdConf.TLS.RevocationList, nil); err != nil {
		t.Fatal(err)
	}
	e.connect(e.dirFiles)
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err != nil {
		t.Fatalf("after the list was emptied: %v", err)
	}
	// SIGHUP re-reads it (and does not stop the daemon).
	if err := e.sd.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "storaged to re-read on SIGHUP", func() bool {
		return strings.Contains(e.log(), "SIGHUP: revocation lists re-read") || e.sd.Exited()
	})
	if e.sd.Exited() {
		t.Fatalf("SIGHUP stopped storaged:\n%s", e.log())
	}
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	// Hardened: core file size 0, soft and hard (the test started it with
	// a hard limit above 0).
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", e.sd.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Max core file size        0                    0") {
		t.Fatalf("storaged's limits:\n%s", b)
	}
}

// TestImpostorDirectorRefused: a program holding a certificate of the same
// CA that carries the name "director" — a console's certificate as tapekey
// used to issue them — takes the director's address. storaged refuses it
// at the handshake (it is not the director it was configured with), asks
// it nothing, and says why; the key comes from the crypto cache.
func TestImpostorDirectorRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(3, "TW0003L6", "", true)
	if err != nil {
		t.Fatal(err)
	}
	imp := &fakeDirector{keys: map[string]keys.StoredKey{}}
	tc, err := tlsconf.Server(testenv.Impostor(t, e.pki.CA, e.dir, "admin", tlsconf.RoleConsole, "director"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	pb.RegisterDirectorServer(srv, imp)
	go srv.Serve(lis)
	defer srv.Stop()

	e.stopStoraged(syscall.SIGTERM)
	e.sdConf.DirectorAddr = lis.Addr().String()
	e.sdConf.Write(t, e.cfgPath)
	e.startStoraged()
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 3, Drive: "drive0", ForWrite: true})
	if err != nil {
		t.Fatalf("mount with an impostor at the director's address: %v", err)
	}
	if mr.KeySource != "cache" || mr.KeyFingerprint != lr.KeyFingerprint {
		t.Fatalf("mount reply %v, want the key from the cache", mr)
	}
	out := e.log()
	if !strings.Contains(out, "director unreachable: using the crypto cache") ||
		!strings.Contains(out, `presented the certificate of console \\\"admin\\\", but this side expects director \\\"director\\\"`) {
		t.Fatalf("storaged's log does not say who answered and who was expected:\n%s", e.log())
	}
	imp.mu.Lock()
	n := imp.fetches + len(imp.reports)
	imp.mu.Unlock()
	if n != 0 {
		t.Fatalf("the impostor received %d requests", n)
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	e.requireNoKeyLoaded()
}

// TestWhoMayCall: storaged's handshake admits its director and clients
// (role client, any name) and nobody else; every method but JobData is
// the director's (a client calling one is refused, naming the method and
// the caller); JobData without a session's token is refused; a revoked
// client certificate is refused at the handshake.
func TestWhoMayCall(t *testing.T) {
	e := newEnv(t, envOpts{revocationList: true})
	web1 := e.issue("web1", tlsconf.RoleClient)
	e.connect(web1)
	_, err := e.client.Hello(e.ctx(), &pb.HelloRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `/tapeward.v1.Storage/Hello is for director "director" only; the caller is client "web1"`) {
		t.Fatalf("a client calling Hello: %v", err)
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a client calling Unmount: %v", err)
	}
	st, err := e.client.JobData(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: &pb.JobDataOpen{Session: "job1-x", Token: strings.Repeat("ab", 32)}}})
	if _, err := st.CloseAndRecv(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "no such session") {
		t.Fatalf("JobData with no session: %v", err)
	}
	if strings.Contains(e.log(), strings.Repeat("ab", 32)) {
		t.Fatal("storaged logged the token of a refused JobData")
	}
	for _, who := range []tlsconf.Files{e.issue("admin", tlsconf.RoleConsole), e.issue("director2", tlsconf.RoleDirector), e.issue("sd2", tlsconf.RoleStorage)} {
		e.connect(who)
		if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("%s: %v, want refused at the handshake", who.Cert, err)
		}
	}
	// The director still may.
	e.connect(e.dirFiles)
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err != nil {
		t.Fatal(err)
	}
	// A revoked client certificate: refused at the handshake.
	leaf, err := web1.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Revoke(e.sdConf.TLS.RevocationList, tlsconf.Revocation{Serial: leaf.SerialNumber, At: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Name: "web1", Role: "client", Reason: "stolen laptop"}); err != nil {
		t.Fatal(err)
	}
	e.connect(web1)
	st, err = e.client.JobData(e.ctx())
	if err == nil {
		_, err = st.CloseAndRecv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a revoked client: %v", err)
	}
	testenv.WaitFor(t, "storaged to log the refusal", func() bool { return strings.Contains(e.log(), "stolen laptop") })
}
