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
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// dataStorage serves the two directions of a data stream: RestoreData
// sends src in 1 MiB data messages; WriteData takes data messages and
// answers with how many bytes came (their digest goes to got).
type dataStorage struct {
	pb.UnimplementedStorageServer
	src []byte
	got chan [sha256.Size]byte
}

func (s *dataStorage) RestoreData(_ *pb.RestoreDataRequest, st pb.Storage_RestoreDataServer) error {
	for b := s.src; len(b) > 0; b = b[min(len(b), 1<<20):] {
		if err := st.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: b[:min(len(b), 1<<20)]}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *dataStorage) WriteData(st pb.Storage_WriteDataServer) error {
	h, n := sha256.New(), 0
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		h.Write(m.GetData())
		n += len(m.GetData())
		link.ReleaseData(m.GetData())
	}
	s.got <- [sha256.Size]byte(h.Sum(nil))
	return st.SendAndClose(&pb.WriteDataReply{Bytes: uint64(n)})
}

// countingConn counts the writes to a socket.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

// dataLink is a storage-like server with the data options and a client
// dialled as filed dials storaged (a 1 MiB write buffer, 8 MiB windows),
// both with creds, and the writes each side made to its socket.
type dataLink struct {
	client                     pb.StorageClient
	srv                        *dataStorage
	serverWrites, clientWrites atomic.Int64
}

// storageTLS makes a PKI and the TLS configurations of a storage "sd1"
// that accepts the client "web1", and of that client.
func storageTLS(tb testing.TB) (stc, ctc *tls.Config, files func(name, role string) tlsconf.Files) {
	tb.Helper()
	files = newPKI(tb)
	stc, err := tlsconf.Server(files("sd1", tlsconf.RoleStorage), tlsconf.Expect([]string{tlsconf.RoleClient}, "web1"))
	if err != nil {
		tb.Fatal(err)
	}
	ctc, err = tlsconf.Client(files("web1", tlsconf.RoleClient), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return stc, ctc, files
}

func newDataLink(tb testing.TB, creds func(*tls.Config) credentials.TransportCredentials, src []byte) *dataLink {
	tb.Helper()
	stc, ctc, _ := storageTLS(tb)
	d := &dataLink{srv: &dataStorage{src: src, got: make(chan [sha256.Size]byte, 1)}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// grpc.Creds given last replaces NewServer's own.
	srv := link.NewServer(stc, link.Limits{}, slog.New(slog.DiscardHandler), append(link.DataServerOptions(), grpc.Creds(creds(stc)))...)
	pb.RegisterStorageServer(srv, d.srv)
	go srv.Serve(countingListener{lis, &d.serverWrites})
	tb.Cleanup(func() { link.Shutdown(srv, time.Second) })
	conn, err := grpc.NewClient(lis.Addr().String(), append(link.DataDialOptions(),
		grpc.WithTransportCredentials(creds(ctc)),
		grpc.WithWriteBufferSize(1<<20), grpc.WithInitialWindowSize(8<<20), grpc.WithInitialConnWindowSize(16<<20),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &d.clientWrites}, nil
		}))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	d.client = pb.NewStorageClient(conn)
	return d
}

// restore receives everything RestoreData sends, appended to into[:0]
// (a benchmark's buffer, reused).
func (d *dataLink) restore(tb testing.TB, into []byte) []byte {
	tb.Helper()
	rs, err := d.client.RestoreData(context.Background(), &pb.RestoreDataRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	got := bytes.NewBuffer(into[:0])
	for {
		var m pb.RestoreDataReply
		if err := rs.RecvMsg(&m); err == io.EOF {
			return got.Bytes()
		} else if err != nil {
			tb.Fatal(err)
		}
		got.Write(m.GetData())
		link.ReleaseData(m.GetData())
	}
}

// writeAll sends src on WriteData in data messages of chunk bytes and
// checks that the server received it all (its reply and the digest of
// what it read, from got).
func writeAll(t testing.TB, ws pb.Storage_WriteDataClient, src []byte, chunk int, got <-chan [sha256.Size]byte) {
	t.Helper()
	for b := src; len(b) > 0; b = b[min(len(b), chunk):] {
		if err := ws.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: b[:min(len(b), chunk)]}}); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := ws.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if sum := <-got; reply.Bytes != uint64(len(src)) || sum != sha256.Sum256(src) {
		t.Fatalf("WriteData: %d bytes came (want %d), digest matches: %v", reply.Bytes, len(src), sum == sha256.Sum256(src))
	}
}

// TestDataStreamsWriteOncePerFlush: over Credentials, 8 MiB of data
// messages in either direction arrive whole and take one socket write
// per flush of gRPC's (at most 1 MiB; gRPC also flushes whenever it has
// nothing more to send at once) plus the handshake's and HTTP/2's own
// frames — 12 to 18 writes in 30 runs here, not one per 16 KiB TLS record
// (512 and more).
func TestDataStreamsWriteOncePerFlush(t *testing.T) {
	src := make([]byte, 8<<20)
	rand.Read(src)
	const most = 128
	d := newDataLink(t, link.Credentials, src)

	before := d.serverWrites.Load()
	if got := d.restore(t, nil); !bytes.Equal(got, src) {
		t.Fatalf("RestoreData: %d bytes came, not the %d sent", len(got), len(src))
	}
	if n := d.serverWrites.Load() - before; n > most {
		t.Errorf("the server made %d socket writes for 8 MiB of data (want at most %d)", n, most)
	} else {
		t.Logf("RestoreData of 8 MiB: %d socket writes", n)
	}

	before = d.clientWrites.Load()
	ws, err := d.client.WriteData(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, ws, src, 1<<20, d.srv.got)
	if n := d.clientWrites.Load() - before; n > most {
		t.Errorf("the client made %d socket writes for 8 MiB of data (want at most %d)", n, most)
	} else {
		t.Logf("WriteData of 8 MiB: %d socket writes", n)
	}
}

// BenchmarkDataStream: 64 MiB of RestoreData messages over loopback,
// both ends in this process, with gRPC's TLS credentials (a socket write
// per record), with Credentials (one per flush) and as a direct stream
// (direct.go), in the same run: MB/s and the CPU seconds a GiB cost
// (both ends).
func BenchmarkDataStream(b *testing.B) {
	src := make([]byte, 64<<20)
	rand.Read(src)
	into := make([]byte, len(src)) // the receivers' sink, reused
	for _, c := range []struct {
		name  string
		creds func(*tls.Config) credentials.TransportCredentials
	}{{"records", credentials.NewTLS}, {"batched", link.Credentials}} {
		b.Run(c.name, func(b *testing.B) {
			d := newDataLink(b, c.creds, src)
			b.SetBytes(int64(len(src)))
			cpu0 := testenv.ProcessCPU(b)
			for b.Loop() {
				if got := d.restore(b, into); len(got) != len(src) {
					b.Fatalf("%d bytes came, want %d", len(got), len(src))
				}
			}
			b.ReportMetric((testenv.ProcessCPU(b)-cpu0).Seconds()/float64(b.N)*float64(1<<30)/float64(len(src)), "cpu-s/GiB")
		})
	}
	b.Run("direct", func(b *testing.B) {
		w := newDirectWorld(b, src, nil)
		b.SetBytes(int64(len(src)))
		cpu0 := testenv.ProcessCPU(b)
		for b.Loop() {
			if got, _, err := readAll(w.restore(b, context.Background(), "all"), into); err != io.EOF || len(got) != len(src) {
				b.Fatalf("%d bytes came, want %d (%v)", len(got), len(src), err)
			}
		}
		b.ReportMetric((testenv.ProcessCPU(b)-cpu0).Seconds()/float64(b.N)*float64(1<<30)/float64(len(src)), "cpu-s/GiB")
	})
}
