package jobs

// Fakes of our own gRPC peers (Storage.Job as storaged implements it,
// Filed.Backup as filed does), served over real mutual TLS: the fake
// filed hands its records to the fake storage only with the session's
// token, as the real ones do over Storage.JobData.

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

const blockSize = 4096

// fakeStorage is storaged's Storage.Job side.
type fakeStorage struct {
	pb.UnimplementedStorageServer
	drives   int
	barcodes []string // slot i+1 holds barcodes[i] ("" : empty)

	mu        sync.Mutex
	perVolume int  // members per volume before need_volume (0: no limit)
	failAfter int  // fail with Unavailable before member N (0: never)
	exhaust   int  // answer this many opens with ResourceExhausted
	hold      bool // after opened, wait for release before taking data
	released  chan struct{}
	sessions  map[string]*fakeSession
	opens     chan *pb.JobOpen
	nextID    int
	controls  []*pb.JobControl // every next_volume / no_volume received
}

type fakeSession struct {
	token, client string
	records       chan []*pb.MemberRecord
}

func newFakeStorage(drives int, barcodes ...string) *fakeStorage {
	return &fakeStorage{drives: drives, barcodes: barcodes, sessions: map[string]*fakeSession{}, opens: make(chan *pb.JobOpen, 16),
		released: make(chan struct{})}
}

func (f *fakeStorage) Hello(context.Context, *pb.HelloRequest) (*pb.HelloReply, error) {
	var drives []string
	for i := range f.drives {
		drives = append(drives, fmt.Sprint(i))
	}
	return &pb.HelloReply{Name: "sd1", Drives: drives, Changers: []string{"changer0"}}, nil
}

func (f *fakeStorage) Inventory(context.Context, *pb.InventoryRequest) (*pb.InventoryReply, error) {
	ch := &pb.ChangerInventory{Name: "changer0"}
	for i, b := range f.barcodes {
		ch.Slots = append(ch.Slots, &pb.Slot{Slot: uint32(i + 1), Full: b != "", Barcode: b})
	}
	return &pb.InventoryReply{Changers: []*pb.ChangerInventory{ch}}, nil
}

// deliver is the fake filed's JobData: records for a session, accepted
// only with its one-time token and from the client the director named.
func (f *fakeStorage) deliver(session, token, client string, recs []*pb.MemberRecord) error {
	f.mu.Lock()
	s := f.sessions[session]
	if s == nil || s.token != token || s.client != client {
		f.mu.Unlock()
		return status.Errorf(codes.PermissionDenied, "session %q: invalid token for client %s", session, client)
	}
	s.token = "" // one time
	f.mu.Unlock()
	s.records <- recs
	return nil
}

func (f *fakeStorage) Job(js grpc.BidiStreamingServer[pb.JobControl, pb.JobEvent]) error {
	ctx := js.Context()
	c, err := js.Recv()
	if err != nil {
		return err
	}
	open := c.GetOpen()
	if open == nil || open.Volume == nil || open.Job == nil {
		return status.Error(codes.InvalidArgument, "the first message must be open with a job and a volume")
	}
	f.mu.Lock()
	if f.exhaust > 0 {
		f.exhaust--
		f.mu.Unlock()
		return status.Error(codes.ResourceExhausted, "every drive of sd1 is busy")
	}
	f.nextID++
	id := fmt.Sprintf("s%d", f.nextID)
	s := &fakeSession{token: "tok-" + id, client: open.Client, records: make(chan []*pb.MemberRecord, 1)}
	f.sessions[id] = s
	hold, perVolume, failAfter := f.hold, f.perVolume, f.failAfter
	f.mu.Unlock()
	if err := js.Send(&pb.JobEvent{Msg: &pb.JobEvent_Opened{Opened: &pb.JobOpened{Session: id, Token: s.token, Drive: "0", Volume: open.Volume.Volume}}}); err != nil {
		return err
	}
	f.opens <- open
	if hold {
		select {
		case <-f.released:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var recs []*pb.MemberRecord
	select {
	case recs = <-s.records:
	case <-ctx.Done():
		return ctx.Err()
	}
	send := func(e *pb.JobEvent) error { return js.Send(e) }
	vol, seq, tf, part := open.Volume.Volume, uint32(1), open.Volume.TapeFile, uint32(1)
	var partStart int64
	startPart := func(off int64) error {
		partStart = off
		return send(&pb.JobEvent{Msg: &pb.JobEvent_Part{Part: &pb.JobPart{Part: part, Kind: "data", Volume: vol, VolumeSeq: seq, TapeFile: tf, FirstBlock: 1000, StreamOffset: off, Drive: "0"}}})
	}
	var pending []*pb.MemberRecord
	flush := func(upTo int64) error {
		err := send(&pb.JobEvent{Msg: &pb.JobEvent_Flushed{Flushed: &pb.JobFlushed{StreamOffset: upTo, Records: pending}}})
		pending = nil
		return err
	}
	if err := startPart(0); err != nil {
		return err
	}
	onVol := 0
	var end int64
	for i, r := range recs {
		if failAfter > 0 && i == failAfter {
			if err := flush(r.HeaderOffset); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "drive 0: write error (sense 3/0C00)")
		}
		if perVolume > 0 && onVol == perVolume {
			if err := flush(r.HeaderOffset); err != nil {
				return err
			}
			send(&pb.JobEvent{Msg: &pb.JobEvent_PartDone{PartDone: &pb.JobPartDone{Part: part, LastBlock: 1000 + uint64(r.HeaderOffset-partStart)/blockSize, Bytes: r.HeaderOffset - partStart, EarlyWarning: true}}})
			send(&pb.JobEvent{Msg: &pb.JobEvent_NeedVolume{NeedVolume: &pb.NeedVolume{FullVolume: vol, Reason: "early warning", VolumeSeq: seq + 1}}})
			c, err := js.Recv()
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.controls = append(f.controls, c)
			f.mu.Unlock()
			nv := c.GetNextVolume()
			if nv == nil {
				return status.Errorf(codes.FailedPrecondition, "the director has no next volume: %s", c.GetNoVolume())
			}
			vol, seq, tf = nv.Volume, nv.VolumeSeq, nv.TapeFile
			part++
			if err := startPart(r.HeaderOffset); err != nil {
				return err
			}
			onVol = 0
		}
		off := r.HeaderOffset - partStart
		r.Address = &pb.BlockAddress{Volume: vol, TapeFile: tf, Block: uint64(off / blockSize), Offset: uint32(off % blockSize)}
		pending = append(pending, r)
		onVol++
		end = r.DataOffset + (r.StoredSize+511)/512*512
		if len(pending) == 2 {
			if err := flush(end); err != nil {
				return err
			}
		}
	}
	if err := flush(end); err != nil {
		return err
	}
	send(&pb.JobEvent{Msg: &pb.JobEvent_PartDone{PartDone: &pb.JobPartDone{Part: part, LastBlock: 1000 + uint64(end-partStart)/blockSize, Bytes: end - partStart}}})
	part++
	idx := &pb.JobPart{Part: part, Kind: "index", Volume: vol, VolumeSeq: seq, TapeFile: tf + 1, FirstBlock: 2000, StreamOffset: end}
	send(&pb.JobEvent{Msg: &pb.JobEvent_Part{Part: idx}})
	send(&pb.JobEvent{Msg: &pb.JobEvent_PartDone{PartDone: &pb.JobPartDone{Part: part, LastBlock: 2001, Bytes: 8192}}})
	return send(&pb.JobEvent{Msg: &pb.JobEvent_Done{Done: &pb.JobDone{Parts: part, Members: uint64(len(recs)), StreamBytes: end, Index: idx}}})
}

// fakeFiled is filed's Backup side over a tree of regular files.
type fakeFiled struct {
	pb.UnimplementedFiledServer
	name string
	sd   *fakeStorage

	mu    sync.Mutex
	tree  map[string]int64 // path → mtime (ns); size = len(path)*100
	warn  string           // a path that "changes while read"
	reqs  []*pb.BackupRequest
	token string // when set, sent instead of the director's (an impostor)
}

func (f *fakeFiled) Hello(context.Context, *pb.FiledHelloRequest) (*pb.FiledHelloReply, error) {
	return &pb.FiledHelloReply{Name: f.name, Version: "test", Os: "linux"}, nil
}

func (f *fakeFiled) Estimate(r *pb.EstimateRequest, s grpc.ServerStreamingServer[pb.EstimateReply]) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var tot pb.EstimateTotals
	var entries []*pb.EstimateEntry
	for _, p := range slices.Sorted(mapKeys(f.tree)) {
		if f.tree[p] <= r.SinceUnixNs {
			tot.Unchanged++
			continue
		}
		tot.Files++
		tot.Bytes += int64(len(p) * 100)
		if r.Listing {
			entries = append(entries, &pb.EstimateEntry{Path: []byte(p), Type: "file", Size: int64(len(p) * 100), Mode: 0o644, MtimeNs: f.tree[p]})
		}
	}
	return s.Send(&pb.EstimateReply{Entries: entries, Totals: &tot})
}

func mapKeys(m map[string]int64) func(func(string) bool) {
	return func(y func(string) bool) {
		for k := range m {
			if !y(k) {
				return
			}
		}
	}
}

func (f *fakeFiled) Backup(r *pb.BackupRequest, s grpc.ServerStreamingServer[pb.BackupEvent]) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	paths := slices.Collect(mapKeys(f.tree))
	sort.Strings(paths)
	tree := map[string]int64{}
	for k, v := range f.tree {
		tree[k] = v
	}
	warn, token := f.warn, r.Token
	if f.token != "" {
		token = f.token
	}
	f.mu.Unlock()
	var recs []*pb.MemberRecord
	var off, bytes int64
	warnings := int64(0)
	for _, p := range paths {
		if tree[p] <= r.SinceUnixNs {
			continue
		}
		size := int64(len(p) * 100)
		recs = append(recs, &pb.MemberRecord{Path: []byte(p), Type: "file", Size: size, Mode: 0o644, Uid: 1000, Gid: 100, Uname: "alice", Gname: "users",
			MtimeNs: tree[p], Sha256: make([]byte, 32), HeaderOffset: off, DataOffset: off + 512, StoredSize: size})
		off += 512 + (size+511)/512*512
		bytes += size
		if p == warn {
			warnings++
			s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Warning{Warning: &pb.FileWarning{Path: []byte(p), Op: "changed", Message: "file changed while it was read"}}})
		}
	}
	if err := f.sd.deliver(r.Session, token, f.name, recs); err != nil {
		return err
	}
	s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Progress{Progress: &pb.BackupProgress{Files: int64(len(recs)), Bytes: bytes, StreamBytes: off}}})
	if r.SendSeen {
		var seen [][]byte
		for _, p := range paths {
			seen = append(seen, []byte(p))
		}
		s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Seen{Seen: &pb.SeenPaths{Paths: seen}}})
	}
	return s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Done{Done: &pb.BackupDone{Files: int64(len(recs)), Bytes: bytes, StreamBytes: off,
		Warnings: warnings, Seen: int64(len(paths))}}})
}

// serveTLS serves register's services on 127.0.0.1 with a certificate
// of name and role, admitting only the director; it returns the address.
func serveTLS(t *testing.T, p *testenv.PKI, name, role string, register func(*grpc.Server)) string {
	t.Helper()
	files := p.Issue(t, name, role)
	tc, err := tlsconf.Server(files, tlsconf.Expect([]string{tlsconf.RoleDirector}, "director"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := link.NewServer(tc, link.Limits{}, nil)
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}
