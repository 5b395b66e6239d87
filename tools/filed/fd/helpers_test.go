package fd

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/filed/fileset"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// env is filed's service behind real mutual TLS, a fake storage daemon
// (sd1) serving JobData over mutual TLS, and a director's client.
type env struct {
	t       testing.TB
	pki     *testenv.PKI
	dir     string
	svc     *Service
	log     *testenv.LogBuffer
	filedAt string
	sd      *fakeStorage
	sdAt    string
	client  pb.FiledClient // as the director "director"
	dirFile tlsconf.Files
}

const (
	testSession = "sess-42"
	testToken   = "tok-0123456789abcdef"
)

func newEnv(t testing.TB, tune func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, pki: testenv.NewPKI(t, dir), dir: dir, log: &testenv.LogBuffer{}}
	web1 := e.pki.Issue(t, "web1", tlsconf.RoleClient)
	e.dirFile = e.pki.Issue(t, "director", tlsconf.RoleDirector)
	sdFiles := e.pki.Issue(t, "sd1", tlsconf.RoleStorage)

	// The fake storage daemon accepts only web1's client certificate.
	e.sd = newFakeStorage()
	stc, err := tlsconf.Server(sdFiles, tlsconf.Expect([]string{tlsconf.RoleClient}, "web1"))
	if err != nil {
		t.Fatal(err)
	}
	e.sdAt = serveStorage(t, stc, e.sd)

	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{Name: "web1", Files: web1, Logger: logger, Keepalive: time.Hour, Progress: 20 * time.Millisecond}
	if tune != nil {
		tune(&o)
	}
	e.svc = New(o)
	ftc, err := ServerTLS(web1, "director")
	if err != nil {
		t.Fatal(err)
	}
	e.filedAt = serve(t, ftc, func(s *grpc.Server) { pb.RegisterFiledServer(s, e.svc) }, logger)
	e.client = e.dial(e.dirFile)
	return e
}

// serve runs a gRPC server as the daemons build theirs.
func serve(t testing.TB, tc *tls.Config, register func(*grpc.Server), log *slog.Logger) string {
	t.Helper()
	lis, err := link.Listen("127.0.0.1:0", link.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	srv := link.NewServer(tc, link.Limits{}, log, grpc.MaxRecvMsgSize(8<<20))
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// serveStorage serves sd as storaged does: gRPC, and its clients' data
// streams also as direct streams on the same port.
func serveStorage(t testing.TB, tc *tls.Config, sd pb.StorageServer) string {
	t.Helper()
	lis, err := link.Listen("127.0.0.1:0", link.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := link.NewServer(tc, link.Limits{}, log, grpc.MaxRecvMsgSize(8<<20))
	pb.RegisterStorageServer(srv, sd)
	direct := link.NewDirect(tc, link.Limits{}, log, &pb.Storage_ServiceDesc, sd, pb.Storage_JobData_FullMethodName, pb.Storage_RestoreData_FullMethodName)
	go srv.Serve(direct.Split(lis))
	t.Cleanup(func() { srv.Stop(); direct.Shutdown(0) })
	return lis.Addr().String()
}

// dial connects to filed with files as the caller.
func (e *env) dial(files tlsconf.Files) pb.FiledClient {
	e.t.Helper()
	tc, err := tlsconf.Client(files, tlsconf.Peer{Name: "web1", Role: tlsconf.RoleClient}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := link.Dial(e.filedAt, tc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return pb.NewFiledClient(conn)
}

// request is a Backup request for the fake storage.
func (e *env) request(include ...string) *pb.BackupRequest {
	return &pb.BackupRequest{JobId: 42, Job: "web1-home", Level: "Full",
		Fileset:        &pb.FileSetSpec{Name: "home", Include: include, Xattrs: true},
		StorageAddress: e.sdAt, StorageName: "sd1", TlsServerName: "sd1", Session: testSession, Token: testToken}
}

// result is what the director saw of a backup.
type result struct {
	events    []*pb.BackupEvent
	warnings  []*pb.FileWarning
	seen      [][]byte
	unchanged []string // the seen paths marked unchanged
	walkDone  int      // walk_done events
	progress  int
	done      *pb.BackupDone
	err       error
}

func (e *env) backup(ctx context.Context, req *pb.BackupRequest) result {
	e.t.Helper()
	return e.backupFetch(ctx, req)
}

// backupFetch runs a backup as the director does; at walk_done it sends
// fetch (one FetchPaths per argument) and FetchEnd.
func (e *env) backupFetch(ctx context.Context, req *pb.BackupRequest, fetch ...[][]byte) result {
	e.t.Helper()
	var r result
	st, err := e.client.Backup(ctx)
	if err == nil {
		err = st.Send(&pb.BackupControl{Msg: &pb.BackupControl_Request{Request: req}})
	}
	if err != nil && err != io.EOF {
		r.err = err
		return r
	}
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		r.events = append(r.events, ev)
		switch m := ev.Msg.(type) {
		case *pb.BackupEvent_Warning:
			r.warnings = append(r.warnings, m.Warning)
		case *pb.BackupEvent_Seen:
			paths, err := m.Seen.All()
			if err != nil {
				r.err = err
				return r
			}
			for i, p := range paths {
				if i/8 < len(m.Seen.Unchanged) && m.Seen.Unchanged[i/8]&(1<<(i%8)) != 0 {
					r.unchanged = append(r.unchanged, string(p))
				}
			}
			r.seen = append(r.seen, paths...)
		case *pb.BackupEvent_WalkDone:
			r.walkDone++
			for _, f := range fetch {
				if err := st.Send(&pb.BackupControl{Msg: &pb.BackupControl_Fetch{Fetch: &pb.FetchPaths{Paths: f}}}); err != nil {
					r.err = err
					return r
				}
			}
			if err := st.Send(&pb.BackupControl{Msg: &pb.BackupControl_FetchEnd{FetchEnd: &pb.FetchEnd{}}}); err != nil {
				r.err = err
				return r
			}
			st.CloseSend()
		case *pb.BackupEvent_Progress:
			r.progress++
		case *pb.BackupEvent_Done:
			r.done = m.Done
		}
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeStorage stands in for storaged's JobData: it checks the open
// message (session and token), collects the stream and the records (or
// only counts the bytes when discard is set), and checks that every
// record arrives after its member's last byte.
type fakeStorage struct {
	pb.UnimplementedStorageServer
	discard bool
	// sink, when set, receives the stream's data (instead of the
	// in-memory buffer).
	sink io.Writer
	// failAfterData, when set, fails the call with this status once the
	// first data message arrived.
	failAfterData error
	// hold, when set, stops storing what comes after the first data
	// message until the call is cancelled (it goes on receiving: over a
	// direct stream, as over TCP, a server sees its client leave only
	// by reading).
	hold bool

	mu         sync.Mutex
	kinds      []string // message kinds in order (runs of data and records collapsed)
	open       *pb.JobDataOpen
	data       bytes.Buffer
	received   int64
	records    []*pb.MemberRecord
	end        *pb.JobDataEnd
	keepalives int
	problems   []string
	callErr    error // how the last call ended (the context's error when cancelled)

	feed *restoreFeed // what RestoreData sends

	keepalive chan struct{} // a signal per keepalive (non-blocking)
	gotData   chan struct{} // closed at the first data message
	ended     chan struct{} // a signal per call that returned
	dataOnce  sync.Once
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{keepalive: make(chan struct{}, 1), gotData: make(chan struct{}), ended: make(chan struct{}, 4)}
}

func (f *fakeStorage) problem(s string) {
	f.mu.Lock()
	f.problems = append(f.problems, s)
	f.mu.Unlock()
}

func (f *fakeStorage) kind(k string) {
	if n := len(f.kinds); n > 0 && f.kinds[n-1] == k && (k == "data" || k == "records" || k == "keepalive") {
		return
	}
	f.kinds = append(f.kinds, k)
}

func (f *fakeStorage) JobData(stream pb.Storage_JobDataServer) (err error) {
	defer func() {
		f.mu.Lock()
		f.callErr = err
		f.mu.Unlock()
		select {
		case f.ended <- struct{}{}:
		default: // nobody waits for this call's end
		}
	}()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	f.mu.Lock()
	f.kind("open")
	f.open = open
	f.mu.Unlock()
	if open == nil || open.Session != testSession || open.Token != testToken {
		return status.Error(codes.PermissionDenied, "JobData: the first message must be open with the session's token")
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		switch x := m.Msg.(type) {
		case *pb.JobDataRequest_Data:
			f.kind("data")
			f.received += int64(len(x.Data))
			if f.sink != nil {
				if _, err := f.sink.Write(x.Data); err != nil {
					f.mu.Unlock()
					return status.Errorf(codes.Internal, "sink: %v", err)
				}
			} else if !f.discard {
				f.data.Write(x.Data)
			}
		case *pb.JobDataRequest_Records:
			f.kind("records")
			for _, r := range x.Records.Records {
				if end := r.DataOffset + r.StoredSize; end > f.received {
					f.problems = append(f.problems, "record of "+string(r.Path)+" arrived before its last byte")
				}
				if !f.discard {
					f.records = append(f.records, r)
				} else {
					f.records = append(f.records, nil)
				}
			}
		case *pb.JobDataRequest_Keepalive:
			f.kind("keepalive")
			f.keepalives++
			select {
			case f.keepalive <- struct{}{}:
			default:
			}
		case *pb.JobDataRequest_End:
			f.kind("end")
			f.end = x.End
			reply := &pb.JobDataReply{StreamBytes: f.received, Parts: 1, Volumes: []string{"VOL001"}}
			f.mu.Unlock()
			return stream.SendAndClose(reply)
		default:
			f.problems = append(f.problems, "unexpected message after open")
		}
		data := m.GetData() != nil
		f.mu.Unlock()
		if data {
			f.dataOnce.Do(func() { close(f.gotData) })
			if f.failAfterData != nil {
				return f.failAfterData
			}
			if f.hold {
				for {
					if _, err := stream.Recv(); err != nil {
						<-stream.Context().Done()
						return stream.Context().Err()
					}
				}
			}
		}
	}
}

func (f *fakeStorage) snapshot() (kinds []string, data []byte, recs []*pb.MemberRecord, end *pb.JobDataEnd, problems []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.kinds...), f.data.Bytes(), append([]*pb.MemberRecord(nil), f.records...), f.end, append([]string(nil), f.problems...)
}

type fileEntry = fileset.Entry

// waitFor polls ok (a condition, not a sleep for a fixed time).
func waitFor(t testing.TB, what string, ok func() bool) { testenv.WaitFor(t, what, ok) }

// metricValue is the value of the counter or gauge name (with label =
// value, when label is set) in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					ok = true
				}
			}
			if ok {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// restoreFeed is what the fake storage's RestoreData sends: planned
// members with their pax bytes, cut into data messages of chunk bytes
// (default 1 MiB).
type restoreFeed struct {
	members []*pb.RestoreMember
	bytes   [][]byte
	chunk   int
	// holdAfter > 0: once that many stream bytes are sent, stop sending
	// until the call is cancelled.
	holdAfter int64
	// failAfter > 0: after that many data messages, fail with failErr.
	failAfter int
	failErr   error
	noEnd     bool // close the stream without end
	// src, when set, holds the members' bytes: member i's are at[i]
	// (offset, length) in it, and bytes is not used.
	src io.ReaderAt
	at  [][2]int64
}

// RestoreData serves f.feed to a client presenting the session's token.
func (f *fakeStorage) RestoreData(req *pb.RestoreDataRequest, stream pb.Storage_RestoreDataServer) error {
	f.mu.Lock()
	feed := f.feed
	f.mu.Unlock()
	if req.Session != testSession || req.Token != testToken {
		return status.Error(codes.PermissionDenied, "RestoreData: unknown session or wrong token")
	}
	if feed == nil {
		return status.Error(codes.FailedPrecondition, "RestoreData: no restore planned")
	}
	chunk := feed.chunk
	if chunk <= 0 {
		chunk = 1 << 20
	}
	sent, n := 0, int64(0)
	buf := make([]byte, chunk)
	for i, m := range feed.members {
		if err := stream.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Member{Member: m}}); err != nil {
			return err
		}
		size := int64(0)
		if feed.src != nil {
			size = feed.at[i][1]
		} else {
			size = int64(len(feed.bytes[i]))
		}
		for off := int64(0); off < size; {
			c := int(min(int64(chunk), size-off))
			var b []byte
			if feed.src != nil {
				b = buf[:c]
				if _, err := feed.src.ReadAt(b, feed.at[i][0]+off); err != nil {
					return status.Errorf(codes.Internal, "reading member %d: %v", i, err)
				}
			} else {
				b = feed.bytes[i][off : off+int64(c)]
			}
			off += int64(c)
			if err := stream.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: b}}); err != nil {
				return err
			}
			n += int64(c)
			sent++
			f.dataOnce.Do(func() { close(f.gotData) })
			if feed.holdAfter > 0 && n >= feed.holdAfter {
				<-stream.Context().Done()
				return stream.Context().Err()
			}
			if feed.failAfter > 0 && sent == feed.failAfter {
				return feed.failErr
			}
		}
	}
	if feed.noEnd {
		return nil
	}
	return stream.Send(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_End{End: &pb.RestoreDataEnd{Members: uint64(len(feed.members)), Bytes: n}}})
}

// restoreResult is what the director saw of a restore.
type restoreResult struct {
	errors   []*pb.RestoreFileError
	progress int
	done     *pb.RestoreFiledDone
	err      error
}

func (e *env) restore(ctx context.Context, req *pb.RestoreRequest) restoreResult {
	e.t.Helper()
	var r restoreResult
	st, err := e.client.Restore(ctx, req)
	if err != nil {
		r.err = err
		return r
	}
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		switch m := ev.Msg.(type) {
		case *pb.RestoreFiledEvent_Error:
			r.errors = append(r.errors, m.Error)
		case *pb.RestoreFiledEvent_Progress:
			r.progress++
		case *pb.RestoreFiledEvent_Done:
			r.done = m.Done
		}
	}
}

// restoreRequest is a Restore request for the fake storage.
func (e *env) restoreRequest(rel *pb.Relocation, replace string) *pb.RestoreRequest {
	return &pb.RestoreRequest{JobId: 43, StorageAddress: e.sdAt, StorageName: "sd1", TlsServerName: "sd1",
		Session: testSession, Token: testToken, Relocation: rel, Replace: replace}
}
