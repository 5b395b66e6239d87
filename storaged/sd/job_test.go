package sd

// Job sessions end to end in process: the Storage service over real
// mutual TLS (a director certificate and client certificates from one
// test CA), a real vtl, the director double of sd_test.go behind the
// Director interface, and a pax stream made by tools/lib/archive.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// fakeTimers are idle timers the test fires itself.
type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

// fakeTimer never fires by itself; Stop and Reset come from the
// session's goroutines (nothing to record: the test fires it).
type fakeTimer struct {
	d time.Duration
	f func()
}

func (t *fakeTimer) Stop() bool                 { return true }
func (t *fakeTimer) Reset(d time.Duration) bool { return true }

func (ft *fakeTimers) after(d time.Duration, f func()) Timer {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	ft.timers = append(ft.timers, t)
	return t
}

// fire fires the newest timer (the latest session's).
func (ft *fakeTimers) fire() {
	ft.mu.Lock()
	t := ft.timers[len(ft.timers)-1]
	ft.mu.Unlock()
	t.f()
}

type jobEnv struct {
	*lib
	addr   string
	timers *fakeTimers
	dirc   pb.StorageClient
}

// newJobEnv starts a daemon over a vtl and serves it over mTLS as
// storaged's main does (AcceptPeer, Authorize).
func newJobEnv(t testing.TB, drives, slots int, capacity string) *jobEnv {
	t.Helper()
	return newJobEnvTuned(t, drives, slots, capacity, nil)
}

// newJobEnvTuned is newJobEnv; tune may change the configuration and
// options (the idle timers stay the test's).
func newJobEnvTuned(t testing.TB, drives, slots int, capacity string, tune func(*configs.Storaged, *Options)) *jobEnv {
	t.Helper()
	ft := &fakeTimers{}
	l := newLibArgs(t, drives, slots, capacity, func(cfg *configs.Storaged, o *Options) {
		o.AfterFunc = ft.after
		if tune != nil {
			tune(cfg, o)
		}
	})
	tc, err := tlsconf.Server(l.pki.Issue(t, "sd1", tlsconf.RoleStorage), AcceptPeer("director"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(tc)), grpc.MaxRecvMsgSize(8 << 20)}, link.DataServerOptions()...), Authorize("director")...)...)
	pb.RegisterStorageServer(srv, &Service{D: l.d})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	e := &jobEnv{lib: l, addr: lis.Addr().String(), timers: ft}
	e.dirc = e.connect(t, "director", tlsconf.RoleDirector)
	return e
}

// connect dials storaged with a new certificate of name and role.
func (e *jobEnv) connect(t testing.TB, name, role string) pb.StorageClient {
	t.Helper()
	tc, err := tlsconf.Client(e.pki.Issue(t, name, role), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := link.Dial(e.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewStorageClient(conn)
}

// jobRun is the director's side of one Job stream: it records every event
// and answers need_volume with the next of vols (no_volume when none).
type jobRun struct {
	stream  pb.Storage_JobClient
	cancel  context.CancelFunc
	started *pb.JobOpened // the first event (the volume mounting)
	opened  *pb.JobOpened

	mu       sync.Mutex
	events   []*pb.JobEvent
	progress int64
	changed  chan struct{}
	end      chan error
}

func (e *jobEnv) openJob(t testing.TB, open *pb.JobOpen, vols ...*pb.JobVolume) (*jobRun, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := e.dirc.Job(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := st.Send(&pb.JobControl{Msg: &pb.JobControl_Open{Open: open}}); err != nil {
		cancel()
		return nil, err
	}
	ev, err := st.Recv()
	if err != nil {
		cancel()
		return nil, err
	}
	started := ev.GetStarted()
	if started == nil || started.Token == "" || started.Volume != open.Volume.Volume {
		cancel()
		return nil, fmt.Errorf("first event %v, want started with the token and volume %s", ev, open.Volume.Volume)
	}
	if ev, err = st.Recv(); err != nil { // the mount's error
		cancel()
		return nil, err
	}
	r := &jobRun{stream: st, cancel: cancel, started: started, opened: ev.GetOpened(), changed: make(chan struct{}, 1), end: make(chan error, 1)}
	if r.opened == nil || r.opened.Token != started.Token || r.opened.Session != started.Session {
		cancel()
		return nil, fmt.Errorf("second event %v, want opened for session %s", ev, started.Session)
	}
	go func() {
		for {
			ev, err := st.Recv()
			if err == io.EOF {
				err = nil
			}
			if err != nil || ev == nil {
				r.end <- err
				return
			}
			r.mu.Lock()
			r.events = append(r.events, ev)
			if p := ev.GetProgress(); p != nil {
				r.progress = p.StreamBytes
			}
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
			if ev.GetNeedVolume() != nil {
				c := &pb.JobControl{Msg: &pb.JobControl_NoVolume{NoVolume: "the test has no more volumes"}}
				if len(vols) > 0 {
					c = &pb.JobControl{Msg: &pb.JobControl_NextVolume{NextVolume: vols[0]}}
					vols = vols[1:]
				}
				st.Send(c)
			}
		}
	}()
	return r, nil
}

// wait returns how the Job stream ended.
func (r *jobRun) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.end:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("the Job stream did not end")
		return nil
	}
}

// waitFor waits until ok holds for the events so far (checked at each event).
func (r *jobRun) waitFor(t testing.TB, what string, ok func(r *jobRun) bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		r.mu.Lock()
		done := ok(r)
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("waiting for %s", what)
		}
	}
}

func (r *jobRun) records() []*pb.MemberRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*pb.MemberRecord
	for _, ev := range r.events {
		if f := ev.GetFlushed(); f != nil {
			out = append(out, f.Records...)
		}
	}
	return out
}

func (r *jobRun) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		switch ev.Msg.(type) {
		case *pb.JobEvent_Part:
			out = append(out, "part")
		case *pb.JobEvent_PartDone:
			out = append(out, "part_done")
		case *pb.JobEvent_NeedVolume:
			out = append(out, "need_volume")
		case *pb.JobEvent_Done:
			out = append(out, "done")
		}
	}
	return out
}

// sender sends a pax stream as JobData messages: data in chunks, each
// batch of records after its members' bytes.
type sender struct {
	st    pb.Storage_JobDataClient
	bw    *bufio.Writer
	aw    *archive.Writer
	recs  []*pb.MemberRecord
	bytes int64
	n     uint64
}

type chunkSender struct{ s *sender }

func (c chunkSender) Write(p []byte) (int, error) {
	if err := c.s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: bytes.Clone(p)}}); err != nil {
		return 0, err
	}
	c.s.bytes += int64(len(p))
	return len(p), nil
}

func (e *jobEnv) attach(t testing.TB, c pb.StorageClient, session, token string) (*sender, error) {
	t.Helper()
	return e.attachCtx(t, context.Background(), c, session, token)
}

func (e *jobEnv) attachCtx(t testing.TB, ctx context.Context, c pb.StorageClient, session, token string) (*sender, error) {
	t.Helper()
	st, err := c.JobData(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: &pb.JobDataOpen{Session: session, Token: token}}}); err != nil {
		if errors.Is(err, io.EOF) { // storaged already ended the call: its status comes from the receive side
			if _, rerr := st.CloseAndRecv(); rerr != nil {
				err = rerr
			}
		}
		return nil, err
	}
	s := &sender{st: st}
	s.bw = bufio.NewWriterSize(chunkSender{s}, 256<<10)
	s.aw = archive.NewWriter(s.bw)
	return s, nil
}

func (s *sender) member(f jfile) error {
	rec, err := s.aw.WriteMember(f.m, bytes.NewReader(f.data))
	if err != nil {
		return err
	}
	s.n++
	s.recs = append(s.recs, memberRecord(rec))
	if len(s.recs) >= 64 {
		return s.sendRecords()
	}
	return nil
}

func (s *sender) sendRecords() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if len(s.recs) == 0 {
		return nil
	}
	err := s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: s.recs}}})
	s.recs = nil
	return err
}

// finish ends the stream and returns storaged's reply.
func (s *sender) finish() (*pb.JobDataReply, error) {
	err := s.aw.Close()
	if err == nil {
		err = s.sendRecords()
	}
	if errors.Is(err, io.EOF) { // storaged ended the call: its status says why
		return s.st.CloseAndRecv()
	}
	if err != nil {
		return nil, err
	}
	if err := s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: &pb.JobDataEnd{StreamBytes: s.bytes, Members: s.n}}}); err != nil {
		return s.st.CloseAndRecv()
	}
	return s.st.CloseAndRecv()
}

type jfile struct {
	m    archive.Member
	data []byte
}

// makeTree is n members: a directory, files of up to 40 KiB, a symlink, a
// long name, and big files of the given sizes (random bytes).
func makeTree(n int, big ...int) []jfile {
	mt := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	fs := []jfile{{m: archive.Member{Path: "home/", Type: archive.TypeDir, Mode: 0o755, Mtime: mt}}}
	for i := range n {
		b := make([]byte, (i*7919)%(40<<10))
		rand.Read(b)
		fs = append(fs, jfile{m: archive.Member{Path: fmt.Sprintf("home/f%04d.dat", i), Type: archive.TypeReg, Size: int64(len(b)), Mode: 0o644, Mtime: mt, Uname: "u", Gname: "g", UID: 1000, GID: 1000}, data: b})
	}
	fs = append(fs, jfile{m: archive.Member{Path: "home/link", Type: archive.TypeSymlink, Linkname: "f0001.dat", Mode: 0o777, Mtime: mt}})
	fs = append(fs, jfile{m: archive.Member{Path: "home/" + strings.Repeat("long-name-", 30) + "é.txt", Type: archive.TypeReg, Size: 3, Mode: 0o600, Mtime: mt}, data: []byte("abc")})
	for i, sz := range big {
		b := make([]byte, sz)
		rand.Read(b)
		fs = append(fs, jfile{m: archive.Member{Path: fmt.Sprintf("home/big%d.bin", i), Type: archive.TypeReg, Size: int64(sz), Mode: 0o644, Mtime: mt}, data: b})
	}
	return fs
}

func jobOpen(volume string, slot, tapeFile uint32) *pb.JobOpen {
	return &pb.JobOpen{Job: &pb.JobSpec{JobId: 42, Job: "web1-home", Client: "web1", Fileset: "home", Level: "Full", Pool: "P"},
		Volume: &pb.JobVolume{Volume: volume, Changer: "changer0", Slot: slot, TapeFile: tapeFile, VolumeSeq: 1}, Client: "web1",
		FlushEvery: 512 << 10}
}

// readTapeFile mounts volume (slot) and reads tape file file whole
// through the drive (its key loaded), then unmounts it.
func (e *jobEnv) readTapeFile(t testing.TB, slot uint32, file uint64) []byte {
	t.Helper()
	if _, err := e.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: slot, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, _, err := e.d.Unmount(context.Background(), "drive0"); err != nil {
			t.Fatal(err)
		}
	}()
	dr, _ := e.d.Drive("drive0")
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if err := dr.dev.Rewind(false); err != nil {
		t.Fatal(err)
	}
	if _, err := dr.dev.Space(scsi.SpaceFilemarks, int64(file)); err != nil {
		t.Fatal(err)
	}
	pos, err := dr.dev.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	r, err := tapeio.NewReader(dr.dev, tapeio.Addr{File: file, Block: pos.Block}, tapeio.ReaderOptions{BlockSize: dr.label.BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading tape file %d: %v", file, err)
	}
	return b
}

// needTars fails (never skips) without GNU tar and bsdtar.
func needTars(t testing.TB) {
	t.Helper()
	for _, p := range []string{"tar", "bsdtar"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed: apt-get install tar libarchive-tools", p)
		}
	}
}

func tarList(t testing.TB, prog string, b []byte) string {
	t.Helper()
	cmd := exec.Command(prog, "-tvf", "-")
	cmd.Stdin = bytes.NewReader(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -tvf -: %v\n%s", prog, err, errb.String())
	}
	return out.String()
}

// TestJobSession: a job writes a pax stream to an encrypted volume; every
// member's record comes back flushed with an address that points at its
// header in the tape file read back through the drive; GNU tar and bsdtar
// list every member of that tape file; the drive holds no key after.
func TestJobSession(t *testing.T) {
	needTars(t)
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if r.opened.Drive != "drive0" || r.opened.Volume != "V1" || !r.opened.Encrypted || len(r.opened.Token) != 64 || r.opened.KeyFingerprint == "" {
		t.Fatalf("opened = %v", r.opened)
	}
	if st := e.d.VolumeState("V1"); !st.Writing || st.Drive != "drive0" {
		t.Fatalf("VolumeState during the session = %v, want writing in drive0", st)
	}
	if _, err := e.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"}); err == nil {
		t.Fatal("a mount took the drive of a job session")
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(300, 3<<20)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := s.finish()
	if err != nil {
		t.Fatalf("JobData: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Job stream: %v", err)
	}
	if reply.StreamBytes != s.bytes || reply.Parts != 1 || len(reply.Volumes) != 1 {
		t.Fatalf("JobData reply %v, sent %d bytes", reply, s.bytes)
	}
	if k := strings.Join(r.kinds(), ","); k != "part,part_done,part,part_done,done" {
		t.Fatalf("events %s, want part,part_done,part,part_done,done (data, then index)", k)
	}
	var part, index *pb.JobPart
	var done *pb.JobDone
	for _, ev := range r.events {
		if p := ev.GetPart(); p != nil && part == nil {
			part = p
		} else if p != nil {
			index = p
		}
		if d := ev.GetDone(); d != nil {
			done = d
		}
	}
	if part.TapeFile != 2 || part.Volume != "V1" || part.Drive != "drive0" || part.Kind != "data" {
		t.Fatalf("part %v", part)
	}
	if index.TapeFile != 3 || index.Part != 2 || index.Kind != "index" || index.StreamOffset != s.bytes {
		t.Fatalf("index part %v", index)
	}
	if done.Members != uint64(len(files)) || done.StreamBytes != s.bytes || done.Index.TapeFile != 3 || done.Index.Kind != "index" {
		t.Fatalf("done %v", done)
	}
	recs := r.records()
	if len(recs) != len(files) {
		t.Fatalf("%d records flushed, want %d", len(recs), len(files))
	}
	e.vtl.RequireNoKey(t)
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle || d0.Volume != "" {
		t.Fatalf("drive after the session: %v", d0)
	}

	data := e.readTapeFile(t, 1, 2)
	bs := int64(1 << 20)
	if l := e.d.cfg.Drives[0].BlockSize; l != 0 {
		bs = int64(l)
	}
	for i, rec := range recs {
		if string(rec.Path) != files[i].m.Path {
			t.Fatalf("record %d is %q, want %q", i, rec.Path, files[i].m.Path)
		}
		a := rec.Address
		if a.Volume != "V1" || a.TapeFile != 2 {
			t.Fatalf("record %q at %v", rec.Path, a)
		}
		off := int64(a.Block)*bs + int64(a.Offset)
		if off >= int64(len(data)) {
			t.Fatalf("record %q at %v: beyond the tape file's %d bytes", rec.Path, a, len(data))
		}
		m, err := archive.NewMemberReader(bytes.NewReader(data[off:]), off).Next()
		if err != nil {
			t.Fatalf("record %q at %v: %v", rec.Path, a, err)
		}
		if strings.TrimSuffix(m.Header.Name, "/") != strings.TrimSuffix(files[i].m.Path, "/") {
			t.Fatalf("record %q at %v: the tape has %q there", rec.Path, a, m.Header.Name)
		}
	}
	for _, prog := range []string{"tar", "bsdtar"} {
		out := tarList(t, prog, data)
		for _, f := range files {
			if !strings.Contains(out, strings.TrimSuffix(f.m.Path, "/")) {
				t.Fatalf("%s -tvf - does not list %q:\n%s", prog, f.m.Path, out)
			}
		}
	}
	e.vtl.RequireNoKey(t)

	// The tape now holds tape files 0-3 (label, key-check, the data and
	// the index). A director whose catalog knows fewer (restored from an
	// older dump) asking to write at tape file 2 is refused: those are
	// data it does not know.
	for _, known := range []uint32{0, 3} {
		o := jobOpen("V1", 1, 2)
		o.Volume.KnownTapeFiles = known
		if _, err := e.openJob(t, o); status.Code(err) != codes.FailedPrecondition ||
			!strings.Contains(err.Error(), "the tape holds 4 tape files but the catalog knows only") {
			t.Fatalf("writing at tape file 2 of a 4-file tape the catalog knows %d of: %v", known, err)
		}
	}
	e.vtl.RequireNoKey(t)
}

// TestJobSpansThreeVolumes: 8 MiB volumes, a member larger than a volume:
// the session asks the director for the next volume twice, mounts each
// in the same drive, and every record comes back; the cut member lists
// its continuation parts.
func TestJobSpansThreeVolumes(t *testing.T) {
	e := newJobEnv(t, 1, 4, "8MiB")
	for i, v := range []string{"V1", "V2", "V3"} {
		e.label(t, uint32(i+1), v, true)
	}
	// A slow director: the reports sent while the tape goes on (written,
	// verified) take a while; each must still come before its volume's
	// key is cleared.
	e.dir.mu.Lock()
	e.dir.reports = nil
	e.dir.onReport = func(r *pb.ReportVolumeRequest) {
		if r.Event == "written" || r.Event == "verified" {
			time.Sleep(30 * time.Millisecond)
		}
	}
	e.dir.mu.Unlock()
	r, err := e.openJob(t, jobOpen("V1", 1, 2),
		&pb.JobVolume{Volume: "V2", Changer: "changer0", Slot: 2, TapeFile: 2, VolumeSeq: 2},
		&pb.JobVolume{Volume: "V3", Changer: "changer0", Slot: 3, TapeFile: 2, VolumeSeq: 3})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(100, 10<<20, 6<<20)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := s.finish()
	if err != nil {
		t.Fatalf("JobData: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Job stream: %v", err)
	}
	if strings.Join(reply.Volumes, ",") != "V1,V2,V3" || reply.Parts != 3 {
		t.Fatalf("reply %v, want 3 parts on V1,V2,V3", reply)
	}
	if k := strings.Join(r.kinds(), ","); k != "part,part_done,need_volume,part,part_done,need_volume,part,part_done,part,part_done,done" {
		t.Fatalf("events %s", k)
	}
	recs := r.records()
	if len(recs) != len(files) {
		t.Fatalf("%d records, want %d", len(recs), len(files))
	}
	var seqs []uint32
	for _, ev := range r.events {
		if p := ev.GetPart(); p != nil {
			seqs = append(seqs, p.VolumeSeq)
		}
	}
	if fmt.Sprint(seqs) != "[1 2 3 3]" { // three data parts, the index on the third volume
		t.Fatalf("parts' volume_seq %v", seqs)
	}
	for _, rec := range recs {
		if string(rec.Path) == "home/big0.bin" && (len(rec.Parts) == 0 || rec.Parts[0].Address.Volume == rec.Address.Volume) {
			t.Fatalf("the 10 MiB member on 8 MiB volumes: %v", rec)
		}
	}
	e.vtl.RequireNoKey(t)
	e.dir.mu.Lock()
	var trail []string
	for _, rep := range e.dir.reports {
		trail = append(trail, rep.Volume+":"+rep.Event)
	}
	e.dir.mu.Unlock()
	for _, v := range []string{"V1", "V2", "V3"} {
		w, vf, c := slices.Index(trail, v+":written"), slices.Index(trail, v+":verified"), slices.Index(trail, v+":cleared")
		if w < 0 || vf < 0 || c < w || c < vf {
			t.Errorf("reports %q: want %s's written and verified before its cleared", trail, v)
		}
	}
}

// TestClientSendsWhileTheVolumeMounts: started comes before the mount;
// the client attaches with its token and sends its whole stream while
// the mount is held; opened comes only once the mount is let go, and
// then everything the client sent is on tape. A mount that fails after
// the client attached fails both streams with its error, and leaves the
// drive free and no key loaded.
func TestClientSendsWhileTheVolumeMounts(t *testing.T) {
	hold, holding := make(chan error), make(chan struct{}, 1)
	e := newJobEnvTuned(t, 1, 3, "64MiB", func(_ *configs.Storaged, o *Options) {
		o.beforeJobMount = func() error {
			holding <- struct{}{}
			return <-hold
		}
	})
	e.label(t, 1, "V1", true) // labelling is not a job session: no hold
	start := func() (pb.Storage_JobClient, *pb.JobOpened, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		st, err := e.dirc.Job(ctx)
		if err == nil {
			err = st.Send(&pb.JobControl{Msg: &pb.JobControl_Open{Open: jobOpen("V1", 1, 2)}})
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := st.Recv()
		if err != nil || ev.GetStarted() == nil {
			t.Fatalf("first event %v, %v; want started", ev, err)
		}
		<-holding
		return st, ev.GetStarted(), cancel
	}

	st, started, cancel := start()
	defer cancel()
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), started.Session, started.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(12, 1<<20)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sendRecords(); err != nil { // all of it sent while the mount is held
		t.Fatal(err)
	}
	hold <- nil
	ev, err := st.Recv()
	if err != nil || ev.GetOpened() == nil || ev.GetOpened().Volume != "V1" || !ev.GetOpened().Encrypted {
		t.Fatalf("after the mount: %v, %v; want opened V1, encrypted", ev, err)
	}
	reply, err := s.finish()
	if err != nil || reply.StreamBytes != s.bytes {
		t.Fatalf("JobData: %v, %v (sent %d bytes)", reply, err, s.bytes)
	}
	var members uint64
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d := ev.GetDone(); d != nil {
			members = d.Members
		}
	}
	if members != uint64(len(files)) {
		t.Fatalf("done with %d members, want %d", members, len(files))
	}
	e.vtl.RequireNoKey(t)

	// The mount fails after the client attached.
	st, started, cancel2 := start()
	defer cancel2()
	s, err = e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), started.Session, started.Token)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "storaged to accept the client's open", func() bool {
		e.d.jobsMu.Lock()
		defer e.d.jobsMu.Unlock()
		js := e.d.jobs[started.Session]
		return js != nil && js.attached.Load()
	})
	hold <- &PositionError{Volume: "V1", Msg: "the test's mount failure"}
	if _, err := st.Recv(); status.Code(err) == codes.OK || !strings.Contains(err.Error(), "the test's mount failure") {
		t.Fatalf("the director's stream after a failed mount: %v", err)
	}
	if _, err := s.finish(); err == nil || !strings.Contains(err.Error(), "the test's mount failure") {
		t.Fatalf("the client's stream after a failed mount: %v", err)
	}
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle {
		t.Fatalf("drive after the failed mount: %v", d0)
	}
	e.vtl.RequireNoKey(t)
}

// TestJobTokens: a JobData with a wrong token, another session's token, a
// token already used, a certificate of another client, or a director
// certificate is refused (PermissionDenied) before anything is written;
// the refusals are logged without the token. A client certificate cannot
// call the director's methods.
func TestJobTokens(t *testing.T) {
	e := newJobEnv(t, 2, 4, "64MiB")
	e.label(t, 1, "V1", true)
	e.label(t, 2, "V2", false)
	e.label(t, 3, "V3", false)
	r1, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	o2 := jobOpen("V2", 2, 1)
	o2.Client = "web2"
	r2, err := e.openJob(t, o2)
	if err != nil {
		t.Fatal(err)
	}
	if r1.opened.Drive == r2.opened.Drive {
		t.Fatalf("two sessions on %s", r1.opened.Drive)
	}
	// A third session finds every drive busy.
	if _, err := e.openJob(t, jobOpen("V3", 3, 1)); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "every drive of sd1 is busy") {
		t.Fatalf("a third session with both drives in use: %v", err)
	}
	// The volume of a running session is refused to another.
	if _, err := e.openJob(t, jobOpen("V1", 1, 2)); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "is being written by job session") {
		t.Fatalf("a second session on V1: %v", err)
	}
	web1 := e.connect(t, "web1", tlsconf.RoleClient)
	refused := func(what string, c pb.StorageClient, session, token string) {
		t.Helper()
		s, err := e.attach(t, c, session, token)
		if err == nil {
			s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: make([]byte, 4096)}})
			_, err = s.st.CloseAndRecv()
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s: %v, want PermissionDenied", what, err)
		}
		if strings.Contains(err.Error(), r1.opened.Token) || strings.Contains(err.Error(), r2.opened.Token) {
			t.Fatalf("%s: the refusal carries a token: %v", what, err)
		}
	}
	refused("a wrong token", web1, r1.opened.Session, strings.Repeat("0", 64))
	refused("another session's token", web1, r1.opened.Session, r2.opened.Token)
	refused("the right token from another client", e.connect(t, "web2", tlsconf.RoleClient), r1.opened.Session, r1.opened.Token)
	refused("a director certificate", e.dirc, r1.opened.Session, r1.opened.Token)
	if _, err := web1.Status(context.Background(), &pb.StatusRequest{}); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), "/tapeward.v1.Storage/Status is for director \"director\" only; the caller is client \"web1\"") {
		t.Fatalf("a client calling Status: %v", err)
	}
	// The right client with the right token: accepted, once.
	s, err := e.attach(t, web1, r1.opened.Session, r1.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(20)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "storaged to accept the client's open", func() bool {
		e.d.jobsMu.Lock()
		defer e.d.jobsMu.Unlock()
		js := e.d.jobs[r1.opened.Session]
		return js != nil && js.attached.Load()
	})
	refused("a reused token", web1, r1.opened.Session, r1.opened.Token)
	if _, err := s.finish(); err != nil {
		t.Fatal(err)
	}
	if err := r1.wait(t); err != nil {
		t.Fatal(err)
	}
	var done *pb.JobDone
	for _, ev := range r1.events {
		if d := ev.GetDone(); d != nil {
			done = d
		}
	}
	// Nothing from the refused streams is on tape: exactly the stream sent.
	if done == nil || done.StreamBytes != s.bytes || done.Members != uint64(len(files)) {
		t.Fatalf("done %v; the accepted client sent %d bytes", done, s.bytes)
	}
	r2.cancel()
	if err := r2.wait(t); status.Code(err) != codes.Canceled {
		t.Fatalf("the cancelled session: %v", err)
	}
	e.vtl.RequireNoKey(t)
}

// TestJobIdleTimeout: a client that goes silent is dropped when its idle
// timer fires: the tape file is ended cleanly (flushed records and
// part_done still reach the director), the Job stream ends with the
// reason, the drive is released and holds no key.
func TestJobIdleTimeout(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(200)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sendRecords(); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "2 MiB on tape", func(r *jobRun) bool { return r.progress >= 2<<20 })
	// The client is now silent (no end, no keepalive): its timer fires.
	e.timers.fire()
	err = r.wait(t)
	want := "client web1 silent for 2m0s: dropped; drive drive0 released, key cleared"
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), want) {
		t.Fatalf("Job stream: %v, want Aborted %q", err, want)
	}
	if _, err := s.st.CloseAndRecv(); status.Code(err) != codes.Aborted {
		t.Fatalf("JobData of the dropped client: %v", err)
	}
	k := r.kinds()
	if len(k) != 2 || k[0] != "part" || k[1] != "part_done" {
		t.Fatalf("events %v, want part, part_done", k)
	}
	recs := r.records()
	if len(recs) == 0 {
		t.Fatal("no record reported for the bytes on tape")
	}
	for i, rec := range recs {
		if string(rec.Path) != files[i].m.Path {
			t.Fatalf("record %d %q, want %q", i, rec.Path, files[i].m.Path)
		}
	}
	e.vtl.RequireNoKey(t)
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle || d0.Volume != "" {
		t.Fatalf("drive after the drop: %v", d0)
	}
	// What was flushed reads back: every reported member lists.
	data := e.readTapeFile(t, 1, 2)
	cmd := exec.Command("bsdtar", "-tf", "-")
	cmd.Stdin = bytes.NewReader(data)
	out, _ := cmd.Output()
	for _, rec := range recs {
		if !strings.Contains(string(out), strings.TrimSuffix(string(rec.Path), "/")) {
			t.Fatalf("bsdtar does not list reported member %q", rec.Path)
		}
	}
}

// TestJobDirectorCancel: the director cancels the Job stream while the
// client streams: the session ends, the client's stream is refused, the
// cartridge goes back to its slot and no key stays.
func TestJobDirectorCancel(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(100)
	for _, f := range files[:50] {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sendRecords(); err != nil {
		t.Fatal(err)
	}
	r.cancel()
	if err := r.wait(t); status.Code(err) != codes.Canceled {
		t.Fatalf("Job stream after cancel: %v", err)
	}
	testenv.WaitFor(t, "drive0 to be released", func() bool { return e.d.Status().Drives[0].State == StateIdle })
	var serr error
	for _, f := range files[50:] {
		if serr = s.member(f); serr != nil {
			break
		}
	}
	if serr == nil {
		_, err = s.finish()
	} else {
		_, err = s.st.CloseAndRecv() // the status after a Send's io.EOF
	}
	if status.Code(err) != codes.Canceled || !strings.Contains(err.Error(), "the director cancelled the job session") {
		t.Fatalf("the client's stream after the director cancelled: %v", err)
	}
	e.vtl.RequireNoKey(t)
	inv, err := e.d.Inventory("changer0")
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Changers[0].Slots[0].Full || inv.Changers[0].Drives[0].Full {
		t.Fatalf("inventory after the cancel: %v", inv)
	}
}

// TestJobClientKilled: the client's data stream breaks mid-member (filed
// killed): the session takes the abort path — the tape file is ended,
// the flushed records and part_done reach the director, the Job stream
// ends Aborted with the reason, and no key stays.
func TestJobClientKilled(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	s, err := e.attachCtx(t, ctx, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(200)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sendRecords(); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "2 MiB on tape", func(r *jobRun) bool { return r.progress >= 2<<20 })
	kill()
	err = r.wait(t)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "client web1's data stream broke") || !strings.Contains(err.Error(), "drive drive0 released, key cleared") {
		t.Fatalf("Job stream after the client was killed: %v", err)
	}
	if k := strings.Join(r.kinds(), ","); k != "part,part_done" {
		t.Fatalf("events %s", k)
	}
	if len(r.records()) == 0 {
		t.Fatal("no flushed record reported")
	}
	e.vtl.RequireNoKey(t)
}

// TestJobRefusedPositions: a tape file past the tape's end of data, or on
// the label, is refused (FailedPrecondition) with nothing written and the
// cartridge back in its slot; a bad slot is NotFound.
func TestJobRefusedPositions(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	_, err := e.openJob(t, jobOpen("V1", 1, 5))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "volume V1: the tape holds 2 complete tape files (0-1) but the catalog says the next one to write is tape file 5") {
		t.Fatalf("tape file 5 on a new volume: %v", err)
	}
	if _, err := e.openJob(t, jobOpen("V1", 1, 1)); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "label and key-check file") {
		t.Fatalf("tape file 1 of an encrypted volume: %v", err)
	}
	if _, err := e.openJob(t, jobOpen("V1", 9, 2)); status.Code(err) != codes.NotFound {
		t.Fatalf("slot 9: %v", err)
	}
	if _, err := e.openJob(t, jobOpen("V9", 1, 2)); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "slot 1 holds volume V1") {
		t.Fatalf("the wrong volume in the slot: %v", err)
	}
	e.vtl.RequireNoKey(t)
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle {
		t.Fatalf("drive after refusals: %v", d0)
	}
}

// TestMetrics: the daemon's collectors count key loads and clears, show
// each drive's state, and no label carries a fingerprint.
func TestMetrics(t *testing.T) {
	l := newLib(t, 1)
	fp := l.label(t, 1, "V1", true)
	if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := l.d.Register(reg); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			fmt.Fprintf(&out, "%s", mf.GetName())
			for _, lp := range m.Label {
				fmt.Fprintf(&out, " %s=%s", lp.GetName(), lp.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			fmt.Fprintf(&out, " %g\n", v)
		}
	}
	for _, want := range []string{"tapeward_storaged_key_loads_total 2\n", "tapeward_storaged_drive_state drive=drive0 state=mounted 1\n", "tapeward_storaged_job_sessions_active 0\n"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("metrics lack %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), fp) {
		t.Fatalf("a metric names the key fingerprint:\n%s", out.String())
	}
}

// TestJobSessionClearVolume: a clear (encrypted = false) volume takes a
// job the same way — no key is fetched or loaded, its first data tape file
// is 1 (no key-check file) — and its data tape file reads back through the
// drive as a tar archive GNU tar and bsdtar list.
func TestJobSessionClearVolume(t *testing.T) {
	needTars(t)
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "C1", false)
	r, err := e.openJob(t, jobOpen("C1", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r.opened.Encrypted || r.opened.KeyFingerprint != "" {
		t.Fatalf("opened = %v, want a clear session", r.opened)
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(20, 1<<20)
	for _, f := range files {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.finish(); err != nil {
		t.Fatalf("JobData: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Job stream: %v", err)
	}
	e.vtl.RequireNoKey(t)
	data := e.readTapeFile(t, 1, 1)
	for _, prog := range []string{"tar", "bsdtar"} {
		out := tarList(t, prog, data)
		for _, f := range files {
			if !strings.Contains(out, strings.TrimSuffix(f.m.Path, "/")) {
				t.Fatalf("%s -tvf - does not list %q:\n%s", prog, f.m.Path, out)
			}
		}
	}
}

// TestJobBadRecord: a record whose digest is not 32 bytes ends the
// session, naming the member and the digest's length; the records before
// it that are on tape still go to the director, as the client sent them
// with their addresses.
func TestJobBadRecord(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	r, err := e.openJob(t, jobOpen("V1", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	client := e.connect(t, "web1", tlsconf.RoleClient)
	s, err := e.attach(t, client, r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
	files := makeTree(400)
	for _, f := range files[:50] {
		if err := s.member(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sendRecords(); err != nil {
		t.Fatal(err)
	}
	// The other members' bytes (megabytes: flushes come), their records
	// held back until the first 50 are reported.
	var held []*pb.MemberRecord
	for _, f := range files[50:] {
		rec, err := s.aw.WriteMember(f.m, bytes.NewReader(f.data))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, memberRecord(rec))
	}
	if err := s.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	const sent = 50
	r.waitFor(t, "the first 50 records flushed", func(r *jobRun) bool {
		n := 0
		for _, ev := range r.events {
			n += len(ev.GetFlushed().GetRecords())
		}
		return n >= sent
	})
	held[3].Sha256 = held[3].Sha256[:16]
	bad := string(held[3].Path)
	s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: held}}})
	_, err = s.st.CloseAndRecv()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("client web1 sent a bad record: member %q: a sha256 of 16 bytes", bad)) {
		t.Fatalf("JobData after a 16-byte digest: %v", err)
	}
	if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "a sha256 of 16 bytes") {
		t.Fatalf("Job stream: %v", err)
	}
	recs := r.records()
	if len(recs) != sent {
		t.Fatalf("%d records flushed, want the %d sent before the bad one", len(recs), sent)
	}
	for i, m := range recs {
		if string(m.Path) != files[i].m.Path || m.Address == nil || m.Address.Volume != "V1" || m.Address.TapeFile != 2 {
			t.Errorf("record %d: %q at %v, want %q on V1 tape file 2", i, m.Path, m.Address, files[i].m.Path)
		}
	}
	e.vtl.RequireNoKey(t)
}
