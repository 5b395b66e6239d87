package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"
)

// OpenDirect opens a direct stream to method (a full method name) at
// addr over mutual TLS (tc, from tlsconf.Client). The stream is the
// call's grpc.ClientStream: wrap it in the generated stream type
// (grpc.GenericClientStream) and use it as a gRPC stream. It ends with
// ctx: a blocked Send or Recv returns ctx's error as gRPC's would.
func OpenDirect(ctx context.Context, addr string, tc *tls.Config, method string) (*DirectClientStream, error) {
	l := Limits{}.WithDefaults()
	dialer := net.Dialer{Timeout: l.HandshakeTimeout, KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: l.KeepaliveTime, Interval: l.KeepaliveTimeout / 4, Count: 4}}
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "connecting to %s: %v", addr, err)
	}
	if _, err := io.WriteString(c, DirectPreamble); err != nil {
		c.Close()
		return nil, status.Errorf(codes.Unavailable, "connecting to %s: %v", addr, err)
	}
	raw := &rawConn{Conn: c}
	tconn := tls.Client(raw, tc)
	hctx, cancel := context.WithTimeout(ctx, l.HandshakeTimeout)
	err = tconn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "TLS handshake with %s: %v", addr, err)
	}
	s := &DirectClientStream{fc: newFrameConn(tconn, raw), conn: c, ctx: ctx}
	s.stop = context.AfterFunc(ctx, func() { c.Close() })
	if err := s.fc.writeFrame(frameOpen, []byte(method)); err != nil {
		s.finish()
		return nil, s.wrap(err)
	}
	return s, nil
}

// DirectClientStream is the client side of a direct stream: a
// grpc.ClientStream whose Flush writes what it gathered.
type DirectClientStream struct {
	fc   *frameConn
	conn net.Conn
	ctx  context.Context
	stop func() bool

	once sync.Once
	end  error // after the status (io.EOF when OK) or a failure
}

func (s *DirectClientStream) Context() context.Context     { return s.ctx }
func (s *DirectClientStream) Header() (metadata.MD, error) { return nil, nil }
func (s *DirectClientStream) Trailer() metadata.MD         { return nil }
func (s *DirectClientStream) SendMsg(m any) error          { return s.sendErr(s.fc.sendMsg(m)) }
func (s *DirectClientStream) Flush() error                 { return s.sendErr(s.fc.Flush()) }

// Close ends the stream at once (a caller that has what it wanted and
// does not read on to the status).
func (s *DirectClientStream) Close() error {
	s.finish()
	return nil
}

// CloseSend says no more messages come (and writes what was gathered).
func (s *DirectClientStream) CloseSend() error {
	if err := s.fc.writeFrame(frameHalf, nil); err != nil {
		return s.sendErr(err)
	}
	return s.sendErr(s.fc.Flush())
}

// sendErr: like gRPC, a send that failed because the stream ended says
// io.EOF (RecvMsg then gives the status).
func (s *DirectClientStream) sendErr(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return io.EOF
}

// RecvMsg receives the next message into m (a proto.Message or a
// *DataIn); io.EOF after the server's OK status, the status's error
// otherwise.
func (s *DirectClientStream) RecvMsg(m any) error {
	if s.end != nil {
		return s.end
	}
	kind, payload, err := s.fc.readFrame()
	if err != nil {
		return s.fail(s.wrap(err))
	}
	switch kind {
	case frameMsg, frameData:
		if err := decodeFrame(kind, payload, m); err != nil {
			return s.fail(err)
		}
		return nil
	case frameStatus:
		var st spb.Status
		err := proto.Unmarshal(*payload, &st)
		DataPool.Put(payload)
		if err != nil {
			return s.fail(status.Errorf(codes.Internal, "the server's status does not decode: %v", err))
		}
		if st.Code == int32(codes.OK) {
			return s.fail(io.EOF)
		}
		return s.fail(status.ErrorProto(&st))
	}
	DataPool.Put(payload)
	return s.fail(status.Errorf(codes.Internal, "a frame of kind %q from the server", kind))
}

// fail ends the stream with err (what every later RecvMsg returns).
func (s *DirectClientStream) fail(err error) error {
	s.end = err
	s.finish()
	return err
}

func (s *DirectClientStream) finish() {
	s.once.Do(func() {
		s.stop()
		s.conn.Close()
	})
}

// wrap turns a connection error into gRPC's: the context's when it
// ended, Unavailable otherwise.
func (s *DirectClientStream) wrap(err error) error {
	if s.ctx.Err() != nil {
		return status.FromContextError(s.ctx.Err()).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return status.Errorf(codes.Unavailable, "the server closed the stream without a status")
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("the stream broke: %v", err))
}
