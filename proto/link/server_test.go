package link_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pki"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// storage answers Hello; while block is set, Hello says it started, waits
// for its context to end, says so on cancelled, then waits for release.
type storage struct {
	pb.UnimplementedStorageServer
	block                       bool
	started, cancelled, release chan struct{}
}

func (s *storage) Hello(ctx context.Context, _ *pb.HelloRequest) (*pb.HelloReply, error) {
	if s.block {
		close(s.started)
		<-ctx.Done()
		close(s.cancelled)
		<-s.release
	}
	return &pb.HelloReply{Name: "sd1"}, nil
}

type world struct {
	addr     string
	director tlsconf.Files
	srv      *storage
	log      *syncBuffer
	stop     func(grace time.Duration)
	issue    func(name, role string) tlsconf.Files
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serve starts a storage-like server with limits l, built as the daemons
// build theirs.
func serve(t *testing.T, l link.Limits, s *storage) *world {
	t.Helper()
	files := newPKI(t)
	tc, err := tlsconf.Server(files("sd1", tlsconf.RoleStorage), tlsconf.Expect([]string{tlsconf.RoleDirector}, "director"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := link.Listen("127.0.0.1:0", l)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := link.NewServer(tc, l, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	pb.RegisterStorageServer(srv, s)
	go srv.Serve(lis)
	var once sync.Once
	w := &world{addr: lis.Addr().String(), director: files("director", tlsconf.RoleDirector), srv: s, log: logs, issue: files,
		stop: func(grace time.Duration) { once.Do(func() { link.Shutdown(srv, grace) }) }}
	t.Cleanup(func() { w.stop(time.Second) })
	return w
}

// newPKI makes a CA for the test (testenv.PKI); the function it returns
// issues a certificate and writes it, its key and the CA's into files.
func newPKI(t testing.TB) func(name, role string) tlsconf.Files {
	t.Helper()
	p := testenv.NewPKI(t, t.TempDir())
	return func(name, role string) tlsconf.Files { return p.Issue(t, name, role) }
}

// client prepares a fresh mutual-TLS connection as the director (closed
// when the test ends).
func (w *world) client(t *testing.T) pb.StorageClient {
	t.Helper()
	c, closeConn := w.dial(t)
	t.Cleanup(closeConn)
	return c
}

func (w *world) dial(t *testing.T) (pb.StorageClient, func()) {
	t.Helper()
	tc, err := tlsconf.Client(w.director, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := link.Dial(w.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	return pb.NewStorageClient(conn), func() { conn.Close() }
}

// hello calls Hello over a fresh connection, closed on return.
func (w *world) hello(t *testing.T, timeout time.Duration) error {
	t.Helper()
	c, closeConn := w.dial(t)
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := c.Hello(ctx, &pb.HelloRequest{})
	return err
}

// TestIdleConnectionsAreClosed: 300 TCP connections that never start a
// TLS handshake do not keep a real client out, and each is closed by the
// server once the handshake timeout passes (seen as EOF on the socket).
func TestIdleConnectionsAreClosed(t *testing.T) {
	const timeout = time.Second
	w := serve(t, link.Limits{HandshakeTimeout: timeout, MaxConnections: 512}, &storage{})
	start := time.Now()
	var idle []net.Conn
	for range 300 {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle)+1, err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	if err := w.hello(t, 5*time.Second); err != nil {
		t.Fatalf("a real client with 300 idle connections open: %v", err)
	}
	// Each idle connection ends with EOF: the server closed it. The read
	// deadline only bounds the test (the old default was 120 s).
	for i, c := range idle {
		c.SetReadDeadline(start.Add(20 * timeout))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
			t.Fatalf("idle connection %d after %v: read %d bytes, %v; want it closed by the server", i+1, time.Since(start).Round(time.Millisecond), n, err)
		}
	}
	if el := time.Since(start); el < timeout-100*time.Millisecond {
		t.Fatalf("the idle connections were closed after %v, before the %v handshake timeout", el, timeout)
	}
	// And the server still serves.
	if err := w.hello(t, 5*time.Second); err != nil {
		t.Fatalf("after the idle connections: %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestConnectionCap: with max_connections in use by idle connections, a
// new connection waits; when one ends, it is served.
func TestConnectionCap(t *testing.T) {
	w := serve(t, link.Limits{HandshakeTimeout: time.Minute, MaxConnections: 2}, &storage{})
	a, err := net.Dial("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.Dial("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := w.hello(t, 500*time.Millisecond); err == nil {
		t.Fatal("a third connection was served while two of max_connections = 2 were held")
	}
	a.Close()
	if err := w.hello(t, 10*time.Second); err != nil {
		t.Fatalf("after one idle connection ended: %v", err)
	}
}

// TestShutdownWaitsForHandlers: Shutdown returns only after a running
// handler has returned (so a daemon destroys its keys after, not during).
func TestShutdownWaitsForHandlers(t *testing.T) {
	s := &storage{block: true, started: make(chan struct{}), cancelled: make(chan struct{}), release: make(chan struct{})}
	w := serve(t, link.Limits{}, s)
	c := w.client(t)
	go c.Hello(context.Background(), &pb.HelloRequest{})
	<-s.started
	stopped := make(chan struct{})
	// The handler is running once the call reaches it; Shutdown's grace
	// is short, so it cancels the call.
	go func() {
		w.stop(50 * time.Millisecond)
		close(stopped)
	}()
	<-s.cancelled
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while a handler was still running")
	case <-time.After(300 * time.Millisecond):
	}
	close(s.release)
	<-stopped
}

// TestRefusalIsLogged: a handshake refused by tlsconf (here: a console
// certificate where only the director is accepted) is logged by the server
// with the peer and the reason; a port scanner's is not a warning.
func TestRefusalIsLogged(t *testing.T) {
	w := serve(t, link.Limits{}, &storage{})
	w.director = w.issue("admin", tlsconf.RoleConsole)
	if err := w.hello(t, 5*time.Second); err == nil {
		t.Fatal("a console certificate was accepted by a server that accepts only the director")
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.log.String(), "refused a connection"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged:\n%s", w.log)
		}
	}
	out := w.log.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, `console \"admin\"`) || !strings.Contains(out, "this service accepts director") {
		t.Fatalf("the refusal log does not name the peer and the reason:\n%s", out)
	}
}

// TestWatchExpiry: a daemon whose certificate expires within 30 days says
// so at start (and names the file); one with a year left says nothing.
func TestWatchExpiry(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		days int
		warn bool
	}{{10, true}, {365, false}} {
		is, err := ca.IssueWith("sd1", tlsconf.RoleStorage, pki.Options{Validity: time.Duration(c.days) * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		sub, _ := os.MkdirTemp(dir, "x")
		crt, key, err := is.WriteFiles(sub)
		if err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		link.WatchExpiry(ctx, slog.New(slog.NewTextHandler(&logs, nil)), tlsconf.Files{Cert: crt, Key: key})
		cancel()
		out := logs.String()
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, crt) && strings.Contains(out, "expires on"); got != c.warn {
			t.Fatalf("certificate valid for %d days: warned %v, want %v:\n%s", c.days, got, c.warn, out)
		}
	}
}
