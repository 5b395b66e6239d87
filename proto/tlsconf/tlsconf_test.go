package tlsconf_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
)

// helloServer answers Hello with the caller's identity.
type helloServer struct {
	pb.UnimplementedStorageServer
}

func (helloServer) Hello(ctx context.Context, _ *pb.HelloRequest) (*pb.HelloReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.HelloReply{Name: "sd1", Version: p.Role + "/" + p.Name}, nil
}

func issue(t *testing.T, ca *pki.CA, dir, name, role string) tlsconf.Files {
	t.Helper()
	is, err := ca.Issue(name, role)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := os.MkdirTemp(dir, name+"-"+role+"-")
	if err != nil {
		t.Fatal(err)
	}
	caPath, err := ca.WriteCA(sub)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := is.WriteFiles(sub)
	if err != nil {
		t.Fatal(err)
	}
	return tlsconf.Files{CA: caPath, Cert: c, Key: k}
}

func TestMutualTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	serverFiles := issue(t, ca, dir, "sd1", tlsconf.RoleStorage)
	cfg, err := tlsconf.Server(serverFiles, tlsconf.Expect([]string{tlsconf.RoleDirector}, "dir1"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	pb.RegisterStorageServer(srv, helloServer{})
	go srv.Serve(lis)
	defer srv.Stop()

	call := func(files tlsconf.Files, serverName string, tweak func(*tls.Config)) (*pb.HelloReply, error) {
		ccfg, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: serverName}, "")
		if err != nil {
			t.Fatal(err)
		}
		if tweak != nil {
			tweak(ccfg)
		}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return pb.NewStorageClient(conn).Hello(ctx, &pb.HelloRequest{})
	}

	// The configured director gets through, and the server knows who it is.
	r, err := call(issue(t, ca, dir, "dir1", tlsconf.RoleDirector), "sd1", nil)
	if err != nil {
		t.Fatalf("director dir1: %v", err)
	}
	if r.Version != "director/dir1" {
		t.Fatalf("server saw caller %q, want director/dir1", r.Version)
	}

	refused := []struct {
		name   string
		files  tlsconf.Files
		server string
		tweak  func(*tls.Config)
	}{
		{"another director name", issue(t, ca, dir, "dir2", tlsconf.RoleDirector), "sd1", nil},
		{"a storage certificate", issue(t, ca, dir, "dir1", tlsconf.RoleStorage), "sd1", nil},
		{"a console certificate", issue(t, ca, dir, "admin", tlsconf.RoleConsole), "sd1", nil},
		{"TLS 1.2", issue(t, ca, dir, "dir1b", tlsconf.RoleDirector), "sd1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }},
		{"wrong server name", issue(t, ca, dir, "dir1c", tlsconf.RoleDirector), "sd2", nil},
	}
	other, err := pki.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	refused = append(refused, struct {
		name   string
		files  tlsconf.Files
		server string
		tweak  func(*tls.Config)
	}{"a certificate from another CA", issue(t, other, dir, "dir1", tlsconf.RoleDirector), "sd1", nil})
	for _, c := range refused {
		if _, err := call(c.files, c.server, c.tweak); err == nil {
			t.Errorf("%s: call succeeded, want refused", c.name)
		}
	}
}

func TestPrivateKeyPermissions(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA("test CA")
	f := issue(t, ca, dir, "sd1", tlsconf.RoleStorage)
	os.Chmod(f.Key, 0o644)
	_, err := tlsconf.Server(f, nil)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+f.Key) {
		t.Fatalf("group-readable key: err = %v, want the chmod to run", err)
	}
	if _, err := tlsconf.Client(tlsconf.Files{CA: f.CA, Cert: f.Cert}, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, ""); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("missing key file: err = %v", err)
	}
}
