// Package jobstest has fakes of our own gRPC peers for the director's job
// tests: Storage.Job as storaged implements it and Filed.Backup as filed
// does, served over real mutual TLS. The fake filed hands its records to
// the fake storage only with the session's one-time token, as the real
// ones do over Storage.JobData. For tests only.
package jobstest

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
)

const blockSize = 4096

// Storage is storaged's side of Storage.Hello, Inventory and Job: one
// changer whose slot i+1 holds Barcodes[i], Drives drives. Set the
// behaviour fields before the first job.
type Storage struct {
	pb.UnimplementedStorageServer
	Drives   int
	Barcodes []string // slot i+1 holds Barcodes[i] ("" : empty)

	PerVolume int  // members per volume before need_volume (0: no limit)
	FailAfter int  // fail with Unavailable before member N (0: never)
	Exhaust   int  // answer this many opens with ResourceExhausted
	Hold      bool // after opened, wait for Released to close before taking data
	Released  chan struct{}
	Opens     chan *pb.JobOpen // every open, once the session is opened

	mu       sync.Mutex
	sessions map[string]*session
	nextID   int
	controls []*pb.JobControl // every next_volume / no_volume received
}

// SetHold sets Hold while sessions may be running.
func (f *Storage) SetHold(hold bool) {
	f.mu.Lock()
	f.Hold = hold
	f.mu.Unlock()
}

// Controls returns the next_volume and no_volume answers received.
func (f *Storage) Controls() []*pb.JobControl {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.JobControl(nil), f.controls...)
}

type session struct {
	token, client string
	records       chan []*pb.MemberRecord
}

// NewStorage returns a fake storage daemon.
func NewStorage(drives int, barcodes ...string) *Storage {
	return &Storage{Drives: drives, Barcodes: barcodes, sessions: map[string]*session{}, Opens: make(chan *pb.JobOpen, 16),
		Released: make(chan struct{})}
}

// Hello names the storage and its drives.
func (f *Storage) Hello(context.Context, *pb.HelloRequest) (*pb.HelloReply, error) {
	var drives []string
	for i := range f.Drives {
		drives = append(drives, fmt.Sprint(i))
	}
	return &pb.HelloReply{Name: "sd1", Drives: drives, Changers: []string{"changer0"}}, nil
}

// Inventory shows the changer's slots.
func (f *Storage) Inventory(context.Context, *pb.InventoryRequest) (*pb.InventoryReply, error) {
	ch := &pb.ChangerInventory{Name: "changer0"}
	for i, b := range f.Barcodes {
		ch.Slots = append(ch.Slots, &pb.Slot{Slot: uint32(i + 1), Full: b != "", Barcode: b})
	}
	return &pb.InventoryReply{Changers: []*pb.ChangerInventory{ch}}, nil
}

// deliver is the fake filed's JobData: records for a session, accepted
// only with its one-time token and from the client the director named.
func (f *Storage) deliver(session, token, client string, recs []*pb.MemberRecord) error {
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

// Job is a job session: opened with a one-time token for the client the
// director named, a data part on the volume, flushed records (two at a
// time) with addresses counted from the tape file's first block,
// need_volume after PerVolume members, an index part, done.
func (f *Storage) Job(js grpc.BidiStreamingServer[pb.JobControl, pb.JobEvent]) error {
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
	if f.Exhaust > 0 {
		f.Exhaust--
		f.mu.Unlock()
		return status.Error(codes.ResourceExhausted, "every drive of sd1 is busy")
	}
	f.nextID++
	id := fmt.Sprintf("s%d", f.nextID)
	s := &session{token: "tok-" + id, client: open.Client, records: make(chan []*pb.MemberRecord, 1)}
	f.sessions[id] = s
	hold, perVolume, failAfter := f.Hold, f.PerVolume, f.FailAfter
	f.mu.Unlock()
	if err := js.Send(&pb.JobEvent{Msg: &pb.JobEvent_Opened{Opened: &pb.JobOpened{Session: id, Token: s.token, Drive: "0", Volume: open.Volume.Volume}}}); err != nil {
		return err
	}
	f.Opens <- open
	if hold {
		select {
		case <-f.Released:
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

// Filed is filed's side of Filed.Hello, Estimate and Backup over a tree
// of regular files (path → mtime in ns; a file's size is 100 × the
// length of its path).
type Filed struct {
	pb.UnimplementedFiledServer
	Name string
	SD   *Storage
	// Token, when set, is sent to the storage instead of the director's
	// (an impostor's token).
	Token string
	// Stall: after handing its data to the storage, send nothing more
	// until the call is cancelled (a client that never says done).
	Stall bool

	mu   sync.Mutex
	tree map[string]int64
	warn string // a path that "changes while read"
	reqs []*pb.BackupRequest
	// fetched: the paths the director fetched after a walk.
	fetched []string
}

// NewFiled returns a fake file daemon named name over tree.
func NewFiled(name string, sd *Storage, tree map[string]int64) *Filed {
	return &Filed{Name: name, SD: sd, tree: tree}
}

// Set adds or changes a file.
func (f *Filed) Set(path string, mtime int64) {
	f.mu.Lock()
	f.tree[path] = mtime
	f.mu.Unlock()
}

// Remove deletes a file.
func (f *Filed) Remove(path string) {
	f.mu.Lock()
	delete(f.tree, path)
	f.mu.Unlock()
}

// WarnOn makes path "change while read" (a warning) in later backups.
func (f *Filed) WarnOn(path string) {
	f.mu.Lock()
	f.warn = path
	f.mu.Unlock()
}

// Requests returns the backup requests received.
func (f *Filed) Requests() []*pb.BackupRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.BackupRequest(nil), f.reqs...)
}

// Hello names the client.
func (f *Filed) Hello(context.Context, *pb.FiledHelloRequest) (*pb.FiledHelloReply, error) {
	return &pb.FiledHelloReply{Name: f.Name, Version: "test", Os: "linux"}, nil
}

// Estimate counts the files changed after since.
func (f *Filed) Estimate(r *pb.EstimateRequest, s grpc.ServerStreamingServer[pb.EstimateReply]) error {
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

// Backup sends the records of the files changed after since to the
// storage with the request's token, then progress, seen paths (when
// asked: unchanged ones marked, then walk_done, and the files the
// director fetches are stored too) and done.
func (f *Filed) Backup(s grpc.BidiStreamingServer[pb.BackupControl, pb.BackupEvent]) error {
	c, err := s.Recv()
	if err != nil {
		return err
	}
	r := c.GetRequest()
	if r == nil {
		return status.Errorf(codes.InvalidArgument, "the first message is %T, not the request", c.Msg)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	paths := slices.Collect(mapKeys(f.tree))
	sort.Strings(paths)
	tree := map[string]int64{}
	for k, v := range f.tree {
		tree[k] = v
	}
	warn, token := f.warn, r.Token
	if f.Token != "" {
		token = f.Token
	}
	f.mu.Unlock()
	var recs []*pb.MemberRecord
	var off, bytes int64
	warnings := int64(0)
	store := func(p string) {
		size := int64(len(p) * 100)
		recs = append(recs, &pb.MemberRecord{Path: []byte(p), Type: "file", Size: size, Mode: 0o644, Uid: 1000, Gid: 100, Uname: "alice", Gname: "users",
			MtimeNs: tree[p], Sha256: make([]byte, 32), HeaderOffset: off, DataOffset: off + 512, StoredSize: size})
		off += 512 + (size+511)/512*512
		bytes += size
	}
	for _, p := range paths {
		if tree[p] <= r.SinceUnixNs {
			continue
		}
		store(p)
		if p == warn {
			warnings++
			s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Warning{Warning: &pb.FileWarning{Path: []byte(p), Op: "changed", Message: "file changed while it was read"}}})
		}
	}
	var fetched int64
	if r.SendSeen {
		seen := &pb.SeenPaths{Unchanged: make([]byte, (len(paths)+7)/8)}
		for i, p := range paths {
			seen.Packed = pb.AppendPacked(seen.Packed, p) // as filed sends them
			if tree[p] <= r.SinceUnixNs {
				seen.Unchanged[i/8] |= 1 << (i % 8)
			}
		}
		s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Seen{Seen: seen}})
		s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_WalkDone{WalkDone: &pb.WalkDone{Seen: int64(len(paths))}}})
		for {
			c, err := s.Recv()
			if err != nil {
				return err
			}
			if c.GetFetchEnd() != nil {
				break
			}
			for _, p := range c.GetFetch().GetPaths() {
				store(string(p))
				fetched++
				f.mu.Lock()
				f.fetched = append(f.fetched, string(p))
				f.mu.Unlock()
			}
		}
	}
	if err := f.SD.deliver(r.Session, token, f.Name, recs); err != nil {
		return err
	}
	if f.Stall {
		<-s.Context().Done()
		return s.Context().Err()
	}
	s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Progress{Progress: &pb.BackupProgress{Files: int64(len(recs)), Bytes: bytes, StreamBytes: off}}})
	return s.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Done{Done: &pb.BackupDone{Files: int64(len(recs)), Bytes: bytes, StreamBytes: off,
		Warnings: warnings, Seen: int64(len(paths)), Fetched: fetched}}})
}

// Fetched returns the paths the director fetched, in order.
func (f *Filed) Fetched() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fetched...)
}

// Serve serves register's services on 127.0.0.1 with the certificate
// files, admitting only the director named "director"; it returns the
// address. The server stops when the test ends.
func Serve(t testing.TB, files tlsconf.Files, register func(*grpc.Server)) string {
	t.Helper()
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
