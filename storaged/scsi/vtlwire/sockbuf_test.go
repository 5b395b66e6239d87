package vtlwire

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unixPair is a connected pair of unix stream sockets.
func unixPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// fitsUnread reports whether n bytes go into c while its peer reads
// nothing: the write returns before the deadline only if the socket
// holds them all.
func fitsUnread(t *testing.T, c net.Conn, n int, wait time.Duration) bool {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(wait))
	defer c.SetWriteDeadline(time.Time{})
	_, err := c.Write(make([]byte, n))
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Fatal(err)
	}
	return err == nil
}

// A sized socket takes a whole 1 MiB READ answer (block and header)
// without its reader; an unsized one does not (the kernel's default is
// ~208 KiB), so the check can tell them apart. The grant is the size
// asked for, or without CAP_NET_ADMIN the kernel's cap (net.core.wmem_max),
// each doubled as SO_SNDBUF reads back.
func TestSizeSendBuffer(t *testing.T) {
	answer := respHeaderLen + 1<<20

	plain, _ := unixPair(t)
	if fitsUnread(t, plain, answer, 200*time.Millisecond) {
		// A kernel whose net.core.wmem_default is this large: the
		// behavioural check below cannot tell sized from unsized here,
		// the grant's size still can.
		t.Logf("an unsized unix socket took %d unread bytes on this kernel", answer)
	}

	sized, _ := unixPair(t)
	got, err := SizeSendBuffer(sized, SendBuffer)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatal(err)
	}
	wmax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*SendBuffer && got != 2*min(SendBuffer, wmax) {
		t.Fatalf("SizeSendBuffer granted %d bytes, want %d (or %d, the cap of net.core.wmem_max, without CAP_NET_ADMIN)", got, 2*SendBuffer, 2*min(SendBuffer, wmax))
	}
	if got >= 2*answer && !fitsUnread(t, sized, answer, 10*time.Second) {
		t.Fatalf("a socket with a %d-byte send buffer did not take a %d-byte answer unread", got, answer)
	}

	// Pipes and other conns without a file descriptor are left alone.
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if got, err := SizeSendBuffer(p, SendBuffer); got != 0 || err != nil {
		t.Fatalf("SizeSendBuffer(net.Pipe) = %d, %v; want 0, nil", got, err)
	}
}
