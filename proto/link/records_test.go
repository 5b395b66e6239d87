package link

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
)

// recordingConn is the socket under rawConn: it keeps each Write as one
// piece, or fails them all with fail.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) pieces() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func write(t *testing.T, w interface{ Write([]byte) (int, error) }, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

// TestRawConnBatches: writes outside a batch go out as they come; those
// inside (from any goroutine, nested batches included) go out in order in
// one write when the outermost batch ends.
func TestRawConnBatches(t *testing.T) {
	sock := &recordingConn{}
	r := &rawConn{Conn: sock}
	write(t, r, "hello")
	r.begin()
	write(t, r, "a")
	r.begin()
	write(t, r, "b")
	if err := r.end(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // an alert from TLS's reader, say
		defer close(done)
		if n, err := r.Write([]byte("c")); n != 1 || err != nil {
			t.Errorf("Write(c) from another goroutine = %d, %v", n, err)
		}
	}()
	<-done
	if got := len(sock.pieces()); got != 1 {
		t.Fatalf("%d writes before the outer batch ended, want 1 (the one before it)", got)
	}
	if err := r.end(); err != nil {
		t.Fatal(err)
	}
	write(t, r, "after")
	want := []string{"hello", "abc", "after"}
	got := sock.pieces()
	if len(got) != len(want) {
		t.Fatalf("writes %q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("write %d = %q, want %q", i, got[i], want[i])
		}
	}
	r.begin()
	if err := r.end(); err != nil || len(sock.pieces()) != 3 {
		t.Fatalf("an empty batch: %v, %d writes (want none more)", err, len(sock.pieces()))
	}
}

// TestRawConnFailureSticks: a batch whose write fails reports it at its
// end, and every later write fails with it without reaching the socket.
func TestRawConnFailureSticks(t *testing.T) {
	broken := errors.New("connection reset by peer")
	sock := &recordingConn{}
	r := &rawConn{Conn: sock}
	r.begin()
	write(t, r, "record")
	sock.fail = broken
	if err := r.end(); !errors.Is(err, broken) {
		t.Fatalf("end = %v, want %v", err, broken)
	}
	sock.fail = nil
	if _, err := r.Write([]byte("next")); !errors.Is(err, broken) {
		t.Fatalf("a write after the failure: %v, want %v", err, broken)
	}
	r.begin()
	if _, err := r.Write([]byte("batched")); !errors.Is(err, broken) {
		t.Fatalf("a batched write after the failure: %v, want %v", err, broken)
	}
	if err := r.end(); !errors.Is(err, broken) {
		t.Fatalf("end after the failure = %v, want %v", err, broken)
	}
	if n := len(sock.pieces()); n != 0 {
		t.Fatalf("%d writes reached the socket after the failure", n)
	}
}

// stuckConn is a socket whose peer does not read: Write says it began,
// then blocks until Close.
type stuckConn struct {
	net.Conn
	began, closed chan struct{}
	once          sync.Once
}

func (c *stuckConn) Write(p []byte) (int, error) {
	close(c.began)
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stuckConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// tlsStandIn writes through to the raw connection, as TLS does with its
// records, and tells whether its Close (close_notify) was used.
type tlsStandIn struct {
	net.Conn
	raw    *rawConn
	closed bool
}

func (c *tlsStandIn) Write(p []byte) (int, error) { return c.raw.Write(p) }
func (c *tlsStandIn) Close() error                { c.closed = true; return nil }

// TestBatchedConnCloseDuringWrite: a Close while a batch's write is
// stuck closes the socket (the Write then fails) instead of going
// through TLS's close; without a Write in flight TLS's Close is used.
func TestBatchedConnCloseDuringWrite(t *testing.T) {
	sock := &stuckConn{began: make(chan struct{}), closed: make(chan struct{})}
	raw := &rawConn{Conn: sock}
	tc := &tlsStandIn{raw: raw}
	c := &batchedConn{Conn: tc, raw: raw}
	werr := make(chan error, 1)
	go func() { _, err := c.Write([]byte("records")); werr <- err }()
	<-sock.began
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if tc.closed {
		sock.Close() // let the Write go
		t.Fatal("Close during a Write went through TLS's Close (close_notify would queue behind the stuck write)")
	}
	if err := <-werr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the stuck Write returned %v, want %v", err, net.ErrClosed)
	}
	if err := c.Close(); err != nil || !tc.closed {
		t.Fatalf("Close with no Write in flight: %v, through TLS: %v (want nil, true)", err, tc.closed)
	}
}
