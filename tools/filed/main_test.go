package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// TestFiledProcess: the binary reads filed.toml, logs "filed ready",
// writes its address, answers its director, serves metrics, re-reads
// the revocation list on SIGHUP and stops cleanly on SIGTERM.
func TestFiledProcess(t *testing.T) {
	dir := t.TempDir()
	bins, err := testenv.Build(dir, "tools/filed")
	if err != nil {
		t.Fatal(err)
	}
	ca := testenv.NewPKI(t, dir)
	files := ca.Issue(t, "web1", tlsconf.RoleClient)
	files.RevocationList = filepath.Join(dir, "revoked.txt")
	if err := pki.WriteRevocations(files.RevocationList, nil); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "filed.toml")
	testenv.Filed{Name: "web1", WorkDir: filepath.Join(dir, "state"), MetricsListen: "localhost:0", TLS: files, DirectorName: "director"}.Write(t, cfg)
	p, addr := testenv.StartServing(t, "filed", filepath.Join(dir, "filed.log"), "filed ready", bins["filed"], "-c", cfg)

	tc, err := tlsconf.Client(ca.Issue(t, "director", tlsconf.RoleDirector), tlsconf.Peer{Name: "web1", Role: tlsconf.RoleClient}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := link.Dial(addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := pb.NewFiledClient(conn).Hello(ctx, &pb.FiledHelloRequest{})
	if err != nil || h.Name != "web1" || h.Version == "" {
		t.Fatalf("Hello = %v, %v", h, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "state")); err != nil || !fi.IsDir() {
		t.Fatalf("working_directory not made: %v", err)
	}

	m := regexp.MustCompile(`msg="serving metrics" listen=(\S+)`).FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no metrics line in the log:\n%s", p.Output())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tapeward_filed_jobs_running 0") {
		t.Fatalf("/metrics lacks filed's collectors:\n%.1500s", body)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "filed to re-read its revocation list", func() bool {
		return strings.Contains(p.Output(), "SIGHUP: revocation lists re-read") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("SIGHUP stopped filed:\n%s", p.Output())
	}
	p.Stop(t, syscall.SIGTERM)
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.Output(), "msg=stopped") {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, p.Output())
	}
}

// TestFiledRefusesABadConfig: an unusable filed.toml is an error naming
// the key, and filed exits 1.
func TestFiledRefusesABadConfig(t *testing.T) {
	dir := t.TempDir()
	bins, err := testenv.Build(dir, "tools/filed")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "filed.toml")
	if err := os.WriteFile(cfg, []byte("name = \"web1\"\nlisten = \"nope\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, "filed", filepath.Join(dir, "filed.log"), "", bins["filed"], "-c", cfg)
	testenv.WaitFor(t, "filed to exit", p.Exited)
	if code := p.Cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.Output(), "listen") {
		t.Fatalf("exit code %d; output:\n%s", code, p.Output())
	}
}
