package link

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
)

// Credentials are gRPC's mutual-TLS credentials over tc (from
// tlsconf.Server or tlsconf.Client) with one difference: what gRPC
// writes in one call reaches the socket in one write. crypto/tls writes
// each record (16 KiB of data at most) with a write of its own, so a
// 1 MiB flush of gRPC's was 64 sends through TCP, each waking the peer's
// reader. Batched, data messages over loopback cost 2.3-2.7 CPU-s a GiB
// (both ends) against 2.8-5.8 record by record (BenchmarkDataStream,
// three runs of each, 2026-12-04), and a restore or backup of 2 GiB cost
// filed and storaged 0.4-2.3 CPU-s less (director benchmarks, eight
// alternating pairs). The records, their order and their encryption are
// unchanged; only the socket writes are fewer. Every link uses them
// (Dial, NewServer, filed's data dial); tapectl's console link keeps
// gRPC's own.
func Credentials(tc *tls.Config) credentials.TransportCredentials {
	return batchedCreds{credentials.NewTLS(tc)}
}

type batchedCreds struct {
	credentials.TransportCredentials
}

func (c batchedCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	raw := &rawConn{Conn: conn}
	tc, ai, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	return &batchedConn{Conn: tc, raw: raw}, ai, nil
}

func (c batchedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	raw := &rawConn{Conn: conn}
	tc, ai, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	return &batchedConn{Conn: tc, raw: raw}, ai, nil
}

func (c batchedCreds) Clone() credentials.TransportCredentials {
	return batchedCreds{c.TransportCredentials.Clone()}
}

// batchedConn is the TLS connection gRPC reads and writes: each Write
// is one batch of the raw connection under it.
type batchedConn struct {
	net.Conn // the TLS connection
	raw      *rawConn
	writing  atomic.Int32 // Writes in flight
}

func (c *batchedConn) Write(p []byte) (int, error) {
	c.writing.Add(1)
	defer c.writing.Add(-1)
	c.raw.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.end(); err == nil && ferr != nil {
		return 0, ferr
	}
	return n, err
}

// Close closes the socket at once while a Write is in flight (it may be
// stuck on a peer that does not read, and gRPC closes to end it), as
// tls.Conn does during its own writes; otherwise it closes the TLS
// connection (close_notify first). The batch's socket write comes after
// TLS's Write has returned, so TLS itself would wait for it.
func (c *batchedConn) Close() error {
	if c.writing.Load() != 0 {
		return c.raw.Conn.Close()
	}
	return c.Conn.Close()
}

// rawConn is the TCP connection under TLS. While a batch is open, what
// TLS writes to it is kept, in order, and goes out in one write when the
// batch ends; other writes (the handshake's, an alert or a key update
// TLS sends from a reading goroutine between batches) go straight out.
// After a failed write every later one fails with the same error: TLS
// has already counted the records that were lost, so nothing written
// after them could be read.
type rawConn struct {
	net.Conn
	mu   sync.Mutex
	open int     // batches open
	buf  *[]byte // what the open batches wrote (from batchPool)
	err  error
}

// batchPool holds the batches' buffers between writes: an idle
// connection holds none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (r *rawConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	if r.open > 0 {
		if r.buf == nil {
			r.buf = batchPool.Get().(*[]byte)
		}
		*r.buf = append(*r.buf, p...)
		return len(p), nil
	}
	n, err := r.Conn.Write(p)
	r.err = err
	return n, err
}

func (r *rawConn) begin() {
	r.mu.Lock()
	r.open++
	r.mu.Unlock()
}

// end closes a batch; the last one open writes what was kept and
// returns the error of that write (or of an earlier one).
func (r *rawConn) end() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open--
	if r.open > 0 || r.buf == nil {
		return r.err
	}
	b := r.buf
	r.buf = nil
	if r.err == nil {
		_, r.err = r.Conn.Write(*b)
	}
	*b = (*b)[:0]
	batchPool.Put(b)
	return r.err
}
