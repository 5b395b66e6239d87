package link

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// DirectServer serves some streaming methods of a gRPC service as direct
// streams (direct.go), beside the gRPC server on the same port (Split).
type DirectServer struct {
	tc      *tls.Config
	limits  Limits
	log     *slog.Logger
	impl    any
	methods map[string]grpc.StreamDesc

	ctx    context.Context // ends at Shutdown: cancels every stream
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool           // Shutdown has begun: no new stream
	wg     sync.WaitGroup // streams being served
}

// NewDirect serves methods (full method names, e.g.
// pb.Storage_JobData_FullMethodName) of the service desc, implemented by
// impl, over mutual TLS (tc, from tlsconf.Server) with l's handshake
// timeout (accepted connections have Go's TCP keepalive). Any other
// method is refused (Unimplemented).
func NewDirect(tc *tls.Config, l Limits, log *slog.Logger, desc *grpc.ServiceDesc, impl any, methods ...string) *DirectServer {
	if log == nil {
		log = slog.Default()
	}
	d := &DirectServer{tc: tc, limits: l.WithDefaults(), log: log, impl: impl, methods: map[string]grpc.StreamDesc{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, sd := range desc.Streams {
		full := "/" + desc.ServiceName + "/" + sd.StreamName
		for _, m := range methods {
			if m == full {
				d.methods[full] = sd
			}
		}
	}
	return d
}

// Split returns the listener gRPC serves: lis's connections that begin
// with DirectPreamble are served here, every other goes to gRPC with
// its first byte put back. Closing it closes lis. A connection that
// sends nothing within the handshake timeout is closed.
func (d *DirectServer) Split(lis net.Listener) net.Listener {
	s := &splitListener{Listener: lis, conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{})}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				// gRPC's Serve retries after a temporary error (too many
				// open files) and returns after any other.
				select {
				case s.errs <- err:
				case <-s.done:
					return
				}
				if t, ok := err.(interface{ Temporary() bool }); ok && t.Temporary() {
					continue
				}
				return
			}
			go d.classify(c, s)
		}
	}()
	return s
}

// splitListener hands gRPC the connections that are not direct streams.
type splitListener struct {
	net.Listener
	conns chan net.Conn
	errs  chan error
	once  sync.Once
	done  chan struct{}
}

func (s *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case err := <-s.errs:
		return nil, err
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *splitListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.Listener.Close()
}

// classify reads a connection's first byte: the preamble's serves a
// direct stream, any other goes to gRPC.
func (d *DirectServer) classify(c net.Conn, s *splitListener) {
	c.SetReadDeadline(time.Now().Add(d.limits.HandshakeTimeout))
	br := bufio.NewReaderSize(c, 16)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	if first[0] != DirectPreamble[0] {
		c.SetReadDeadline(time.Time{})
		select {
		case s.conns <- &peekedConn{Conn: c, r: br}:
		case <-s.done:
			c.Close()
		}
		return
	}
	var pre [len(DirectPreamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:]) != DirectPreamble {
		d.log.Debug("direct stream: a connection sent something else than the preamble", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	if !d.track() {
		c.Close()
		return
	}
	defer d.wg.Done()
	defer c.Close()
	d.serve(c)
}

// peekedConn gives gRPC the byte classify read first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// track counts a stream Shutdown waits for; false once it has begun.
func (d *DirectServer) track() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.wg.Add(1)
	return true
}

// serve runs one direct stream: handshake, open, the method's handler,
// the status.
func (d *DirectServer) serve(c net.Conn) {
	raw := &rawConn{Conn: c}
	tc := tls.Server(raw, d.tc)
	if err := tc.Handshake(); err != nil {
		var re *tlsconf.RefusedError
		if errors.As(err, &re) {
			d.log.Warn("refused a connection", "remote", c.RemoteAddr().String(), "peer", re.Peer.String(), "serial", re.Serial, "reason", re.Reason)
		} else {
			d.log.Debug("handshake failed", "remote", c.RemoteAddr().String(), "error", err.Error())
		}
		return
	}
	fc := newFrameConn(tc, raw)
	kind, name, err := fc.readFrame()
	if err != nil || kind != frameOpen {
		d.log.Debug("direct stream: no open frame", "remote", c.RemoteAddr().String())
		return
	}
	method := string(*name)
	DataPool.Put(name)
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: c.RemoteAddr(), LocalAddr: c.LocalAddr(),
		AuthInfo: credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}})
	// The context ending (the client gone, Shutdown) ends the
	// handler's reads and writes.
	unwatch := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer unwatch()

	var herr error
	if sd, ok := d.methods[method]; ok {
		ss := newDirectServerStream(ctx, cancel, fc)
		herr = sd.Handler(d.impl, ss)
		// The reading goroutine's read ends now (and does not end the
		// context: the status is still to be written); a goroutine
		// the handler left receiving gets an error.
		unwatch()
		c.SetReadDeadline(time.Unix(1, 0))
		ss.stop()
	} else {
		herr = status.Errorf(codes.Unimplemented, "%s is not served as a direct stream here", method)
	}
	st := status.Convert(herr).Proto()
	b, err := proto.Marshal(st)
	if err == nil && fc.writeFrame(frameStatus, b) == nil && fc.Flush() == nil {
		// The client reads the status, then closes: wait for that (a
		// bounded time) so that closing first cannot reset the
		// connection under the status it has not read yet. What the
		// client still sends is read off the socket and dropped.
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(d.limits.HandshakeTimeout))
		stopDrain := context.AfterFunc(d.ctx, func() { c.Close() }) // Shutdown does not wait for it
		io.Copy(io.Discard, c)
		stopDrain()
	}
}

// Shutdown stops accepting direct streams, lets the running ones finish
// for up to grace, then cancels them; it returns once every handler has
// returned.
func (d *DirectServer) Shutdown(grace time.Duration) {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		d.cancel()
		<-done
	}
	d.cancel()
}

// directServerStream is a grpc.ServerStream over a direct stream. A
// goroutine reads the client's frames ahead (one at most waits for
// RecvMsg), so that, as with gRPC, the stream's context ends when the
// client goes away even while the handler is not receiving.
type directServerStream struct {
	fc     *frameConn
	ctx    context.Context
	cancel context.CancelFunc
	in     chan clientFrame
	quit   chan struct{} // closed when the handler has returned
	read   chan struct{} // closed when the reading goroutine has returned
	last   error         // what RecvMsg returns from now on
}

// clientFrame is a frame the reading goroutine read: a message's or
// data's payload (a DataPool buffer), the half-close, or why reading
// stopped.
type clientFrame struct {
	kind    byte
	payload *[]byte
	err     error
}

func newDirectServerStream(ctx context.Context, cancel context.CancelFunc, fc *frameConn) *directServerStream {
	s := &directServerStream{fc: fc, cancel: cancel, in: make(chan clientFrame, 1), quit: make(chan struct{}), read: make(chan struct{})}
	s.ctx = context.WithValue(ctx, directKey{}, s)
	go s.readFrames()
	return s
}

func (s *directServerStream) readFrames() {
	defer close(s.read)
	for {
		f := clientFrame{}
		f.kind, f.payload, f.err = s.fc.readFrame()
		if f.err == nil && f.kind != frameMsg && f.kind != frameData {
			if f.kind != frameHalf || len(*f.payload) > 0 {
				f.err = fmt.Errorf("a frame of kind %q and %d bytes from the client", f.kind, len(*f.payload))
			}
			DataPool.Put(f.payload)
			f.payload = nil
		}
		if f.err != nil {
			// The client has gone (or broke the protocol): the
			// handler's context ends, as gRPC's does.
			s.cancel()
		}
		select {
		case s.in <- f:
		case <-s.quit:
			if f.payload != nil {
				DataPool.Put(f.payload)
			}
			return
		}
		if f.err != nil {
			return
		}
	}
}

// stop ends the reading goroutine once the handler has returned (its
// read is ended by the caller) and waits for it.
func (s *directServerStream) stop() {
	close(s.quit)
	<-s.read
}

func (s *directServerStream) Context() context.Context     { return s.ctx }
func (s *directServerStream) SetHeader(metadata.MD) error  { return nil }
func (s *directServerStream) SendHeader(metadata.MD) error { return nil }
func (s *directServerStream) SetTrailer(metadata.MD)       {}
func (s *directServerStream) SendMsg(m any) error          { return s.fc.sendMsg(m) }

// RecvMsg receives the next message into m (a proto.Message or a
// *DataIn): io.EOF after the client's half-close; Canceled when the
// client went away.
func (s *directServerStream) RecvMsg(m any) error {
	if s.last != nil {
		return s.last
	}
	var f clientFrame
	select {
	case f = <-s.in:
	case <-s.read:
		select {
		case f = <-s.in:
		default:
			f.err = errors.New("the call has ended")
		}
	}
	switch {
	case f.err != nil:
		s.last = status.Errorf(codes.Canceled, "the client's stream ended: %v", f.err)
		return s.last
	case f.kind == frameHalf:
		s.last = io.EOF
		return s.last
	}
	return decodeFrame(f.kind, f.payload, m)
}
