package link_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// directStorage is dataStorage with the behaviours the direct stream
// tests need, chosen by RestoreDataRequest.session: "refuse" fails with
// PermissionDenied, "block" sends until a Send fails or the stream's
// context ends and reports which on ended, "member" sends a member, data
// as a DataOut, a small data message and the end; anything else sends
// src.
type directStorage struct {
	dataStorage
	ended chan error
}

func (s *directStorage) RestoreData(req *pb.RestoreDataRequest, st pb.Storage_RestoreDataServer) error {
	switch req.Session {
	case "refuse":
		return status.Errorf(codes.PermissionDenied, "session %q: the token does not match", req.Session)
	case "block":
		chunk := make([]byte, 1<<20)
		for {
			err := st.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: chunk}})
			if err == nil {
				err = st.Context().Err()
			}
			if err != nil {
				s.ended <- err
				return err
			}
		}
	case "member":
		p, err := tlsconf.PeerOf(st.Context())
		if err != nil {
			return err
		}
		// A small message, then data given as a DataOut, then a small data message.
		if err := st.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Member{Member: &pb.RestoreMember{Seq: 7, WriteAs: []byte(p.Name)}}}); err != nil {
			return err
		}
		done := make(chan []byte, 1)
		if err := st.SendMsg(&link.DataOut{Msg: &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: s.src}}, Done: func(b []byte) { done <- b }}); err != nil {
			return err
		}
		if b := <-done; len(b) != len(s.src) {
			return status.Errorf(codes.Internal, "Done gave back %d bytes, not %d", len(b), len(s.src))
		}
		if err := st.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: []byte("tail")}}); err != nil {
			return err
		}
		return st.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_End{End: &pb.RestoreDataEnd{Members: 1}}})
	}
	return s.dataStorage.RestoreData(req, st)
}

// directWorld: a storage-like server serving gRPC and, on the same port,
// RestoreData and WriteData as direct streams.
type directWorld struct {
	addr   string
	srv    *directStorage
	direct *link.DirectServer
	client *tls.Config // a client certificate ("web1")
	files  func(name, role string) tlsconf.Files
}

// newDirectWorld serves src; wrap, when set, wraps the listener (a
// test's faults).
func newDirectWorld(t testing.TB, src []byte, wrap func(net.Listener) net.Listener) *directWorld {
	t.Helper()
	stc, ctc, files := storageTLS(t)
	w := &directWorld{srv: &directStorage{dataStorage: dataStorage{src: src, got: make(chan [sha256.Size]byte, 1)}, ended: make(chan error, 1)}, client: ctc, files: files}
	var lis net.Listener
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = lis.Addr().String()
	if wrap != nil {
		lis = wrap(lis)
	}
	log := slog.New(slog.DiscardHandler)
	srv := link.NewServer(stc, link.Limits{}, log, link.DataServerOptions()...)
	pb.RegisterStorageServer(srv, w.srv)
	w.direct = link.NewDirect(stc, link.Limits{HandshakeTimeout: 2 * time.Second}, log, &pb.Storage_ServiceDesc, w.srv,
		pb.Storage_RestoreData_FullMethodName, pb.Storage_WriteData_FullMethodName)
	go srv.Serve(w.direct.Split(lis))
	t.Cleanup(func() { link.Shutdown(srv, time.Second); w.direct.Shutdown(time.Second) })
	return w
}

// restore opens RestoreData as a direct stream for session.
func (w *directWorld) restore(t testing.TB, ctx context.Context, session string) pb.Storage_RestoreDataClient {
	t.Helper()
	cs, err := link.OpenDirect(ctx, w.addr, w.client, pb.Storage_RestoreData_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	rs := &grpc.GenericClientStream[pb.RestoreDataRequest, pb.RestoreDataReply]{ClientStream: cs}
	if err := rs.SendMsg(&pb.RestoreDataRequest{Session: session}); err != nil {
		t.Fatal(err)
	}
	if err := rs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return rs
}

// readAll receives data messages (as DataIn) until the status, the data
// appended to into[:0] (a benchmark's buffer, reused).
func readAll(rs pb.Storage_RestoreDataClient, into []byte) ([]byte, []*pb.RestoreDataReply, error) {
	got := bytes.NewBuffer(into[:0])
	var other []*pb.RestoreDataReply
	for {
		in := link.DataIn{Msg: &pb.RestoreDataReply{}}
		if err := rs.RecvMsg(&in); err != nil {
			return got.Bytes(), other, err
		}
		if in.Frames.Len() > 0 {
			for _, p := range in.Frames.Lend(in.Frames.Len(), nil) {
				got.Write(p)
			}
			in.Frames.Free()
			continue
		}
		m := in.Msg.(*pb.RestoreDataReply)
		if d, ok := m.Msg.(*pb.RestoreDataReply_Data); ok {
			got.Write(d.Data)
			continue
		}
		other = append(other, m)
	}
}

// TestDirectStreamCarriesDataAndStatus: over a direct stream the data
// arrives whole, messages decode, the handler sees the client's
// certificate, and the end is io.EOF; each 1 MiB data message takes one
// socket write, not one per 16 KiB TLS record; gRPC on the same port
// still works.
func TestDirectStreamCarriesDataAndStatus(t *testing.T) {
	src := make([]byte, 5<<20+123)
	rand.Read(src)
	var writes atomic.Int64
	w := newDirectWorld(t, src, func(l net.Listener) net.Listener { return countingListener{l, &writes} })

	got, _, err := readAll(w.restore(t, context.Background(), "all"), nil)
	if err != io.EOF || !bytes.Equal(got, src) {
		t.Fatalf("RestoreData: %d bytes (want %d, equal %v), ended with %v (want io.EOF)", len(got), len(src), bytes.Equal(got, src), err)
	}
	// 6 data messages and the status, and the handshake's few; a write
	// per TLS record would be 64 a MiB.
	if n := writes.Load(); n > 16 {
		t.Errorf("the server made %d socket writes for 6 data messages (want at most 16)", n)
	} else {
		t.Logf("RestoreData of 5 MiB: %d socket writes", n)
	}

	got, other, err := readAll(w.restore(t, context.Background(), "member"), nil)
	if err != io.EOF || !bytes.Equal(got, append(append([]byte{}, src...), "tail"...)) {
		t.Fatalf("member stream: %d bytes (want %d), ended with %v", len(got), len(src)+4, err)
	}
	if len(other) != 2 || other[0].GetMember().GetSeq() != 7 || string(other[0].GetMember().GetWriteAs()) != "web1" || other[1].GetEnd().GetMembers() != 1 {
		t.Fatalf("messages: %v; want member 7 naming the caller web1, then the end", other)
	}

	// Client streaming: WriteData's reply after the half-close.
	cs, err := link.OpenDirect(context.Background(), w.addr, w.client, pb.Storage_WriteData_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	ws := &grpc.GenericClientStream[pb.WriteDataRequest, pb.WriteDataReply]{ClientStream: cs}
	writeAll(t, ws, src, 300<<10, w.srv.got)

	// gRPC on the same port.
	if got, err := w.grpcRestore(t); err != io.EOF || !bytes.Equal(got, src) {
		t.Fatalf("gRPC beside direct streams: %d bytes (want %d), ended with %v", len(got), len(src), err)
	}
}

// grpcRestore calls RestoreData over gRPC (on the port direct streams
// share) and reads it to its end.
func (w *directWorld) grpcRestore(t testing.TB) ([]byte, error) {
	t.Helper()
	conn, err := grpc.NewClient(w.addr, append(link.DataDialOptions(), grpc.WithTransportCredentials(link.Credentials(w.client)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs, err := pb.NewStorageClient(conn).RestoreData(context.Background(), &pb.RestoreDataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(rs, nil)
	return got, err
}

// TestDirectStreamErrors: the handler's status reaches the client with
// its code and message; a method not served directly is Unimplemented; a
// certificate the server does not accept is refused at the handshake.
func TestDirectStreamErrors(t *testing.T) {
	w := newDirectWorld(t, []byte("x"), nil)
	_, _, err := readAll(w.restore(t, context.Background(), "refuse"), nil)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `session "refuse": the token does not match`) {
		t.Fatalf("refused session: %v; want PermissionDenied with the handler's message", err)
	}

	cs, err := link.OpenDirect(context.Background(), w.addr, w.client, pb.Storage_Hello_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(&pb.HelloReply{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Hello as a direct stream: %v; want Unimplemented", err)
	}

	ctc, err := tlsconf.Client(w.files("ops", tlsconf.RoleConsole), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cs, err = link.OpenDirect(context.Background(), w.addr, ctc, pb.Storage_RestoreData_FullMethodName)
	if err == nil {
		// TLS 1.3: the client may finish before the server refuses.
		err = cs.RecvMsg(&pb.RestoreDataReply{})
	}
	if err == nil || err == io.EOF {
		t.Fatalf("a console certificate opened a direct stream (err %v)", err)
	}
}

// TestDirectStreamCancel: the client's context ending ends its Recv
// with Canceled and the handler's context (its Send fails); Shutdown
// ends a handler whose client does not read, after the grace.
func TestDirectStreamCancel(t *testing.T) {
	w := newDirectWorld(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	rs := w.restore(t, ctx, "block")
	in := link.DataIn{Msg: &pb.RestoreDataReply{}}
	if err := rs.RecvMsg(&in); err != nil {
		t.Fatal(err)
	}
	in.Frames.Free()
	cancel()
	var err error
	for err == nil {
		err = rs.RecvMsg(&in)
		in.Frames.Free()
	}
	if status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel: %v; want Canceled", err)
	}
	select {
	case <-w.srv.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler went on sending after the client cancelled")
	}

	rs = w.restore(t, context.Background(), "block") // never read
	_ = rs
	start := time.Now()
	w.direct.Shutdown(200 * time.Millisecond)
	select {
	case err := <-w.srv.ended:
		if err == nil {
			t.Fatal("the blocked handler ended without an error (its Send or its context's)")
		}
	default:
		t.Fatalf("Shutdown returned after %s with the handler still running", time.Since(start))
	}
	// After Shutdown a new stream is closed before its handshake ends.
	if cs, err := link.OpenDirect(context.Background(), w.addr, w.client, pb.Storage_RestoreData_FullMethodName); err == nil {
		if err := cs.RecvMsg(&pb.RestoreDataReply{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("a stream opened after Shutdown: %v; want Unavailable", err)
		}
	} else if status.Code(err) != codes.Unavailable {
		t.Fatalf("a stream opened after Shutdown: %v; want Unavailable", err)
	}
}

// temporaryOnce fails its first Accept with a temporary error (as
// EMFILE is).
type temporaryOnce struct {
	net.Listener
	failed bool
}

type temporaryErr struct{}

func (temporaryErr) Error() string   { return "too many open files (test)" }
func (temporaryErr) Temporary() bool { return true }
func (temporaryErr) Timeout() bool   { return false }

func (l *temporaryOnce) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, temporaryErr{}
	}
	return l.Listener.Accept()
}

// TestSplitAfterTemporaryError: a temporary Accept error does not end
// the split listener (gRPC's Serve retries it): both kinds of
// connection are served after it.
func TestSplitAfterTemporaryError(t *testing.T) {
	w := newDirectWorld(t, []byte("after the error"), func(l net.Listener) net.Listener { return &temporaryOnce{Listener: l} })
	if got, _, err := readAll(w.restore(t, context.Background(), "all"), nil); err != io.EOF || string(got) != "after the error" {
		t.Fatalf("direct stream after a temporary error: %q, %v", got, err)
	}
	if got, err := w.grpcRestore(t); err != io.EOF || string(got) != "after the error" {
		t.Fatalf("gRPC after a temporary error: %q, %v", got, err)
	}
}
