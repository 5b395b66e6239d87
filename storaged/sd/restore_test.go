package sd

// Restore sessions in process, over the same mTLS service, vtl and
// director double as the job session tests: the tapes are written by
// real job sessions, then read back member by member.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// written is what a job put on tape: its records (with addresses) and
// the first block of each tape file by volume.
type written struct {
	files []jfile
	recs  []*pb.MemberRecord
	first map[string]uint64 // "volume/tape_file" → first block
}

func fileKey(volume string, tapeFile uint32) string { return fmt.Sprintf("%s/%d", volume, tapeFile) }

// writeJob runs a job session writing files from tape file tapeFile of
// the volume in slot, with next volumes for a span.
func (e *jobEnv) writeJob(t testing.TB, jobID int64, volume string, slot, tapeFile uint32, files []jfile, next ...*pb.JobVolume) *written {
	t.Helper()
	o := jobOpen(volume, slot, tapeFile)
	o.Job.JobId = jobID
	r, err := e.openJob(t, o, next...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.attach(t, e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatal(err)
	}
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
	w := &written{files: files, recs: r.records(), first: map[string]uint64{}}
	for _, ev := range r.events {
		if p := ev.GetPart(); p != nil {
			w.first[fileKey(p.Volume, p.TapeFile)] = p.FirstBlock
		}
	}
	if len(w.recs) != len(files) {
		t.Fatalf("%d records for %d files", len(w.recs), len(files))
	}
	return w
}

// plan is the director's plan for the members of w whose indexes are
// given (in tape order): volumes in read order, a cut member on both
// volumes (its continuation first on the next), as the director builds it.
func plan(w *written, slots map[string]uint32, idx ...int) []*pb.RestoreVolume {
	var vols []*pb.RestoreVolume
	group := func(v string) *pb.RestoreVolume {
		if n := len(vols); n > 0 && vols[n-1].Volume == v {
			return vols[n-1]
		}
		rv := &pb.RestoreVolume{Volume: v, Changer: "changer0", Slot: slots[v]}
		vols = append(vols, rv)
		return rv
	}
	for k, i := range idx {
		rec := w.recs[i]
		seq := uint64(k + 1)
		g := group(rec.Address.Volume)
		g.Members = append(g.Members, &pb.RestoreMember{Seq: seq, Record: rec, TapeFileFirstBlock: w.first[fileKey(rec.Address.Volume, rec.Address.TapeFile)]})
		for n, p := range rec.Parts {
			g := group(p.Address.Volume)
			g.Members = append(g.Members, &pb.RestoreMember{Seq: seq, Record: rec, TapeFileFirstBlock: w.first[fileKey(rec.Address.Volume, rec.Address.TapeFile)],
				ContinuationPart: uint32(n + 1), PartTapeFileFirstBlock: w.first[fileKey(p.Address.Volume, p.Address.TapeFile)]})
		}
	}
	return vols
}

// restoreRun is the director's side of one Restore stream.
type restoreRun struct {
	stream pb.Storage_RestoreClient
	cancel context.CancelFunc
	opened *pb.RestoreOpened

	mu      sync.Mutex
	events  []*pb.RestoreEvent
	changed chan struct{}
	end     chan error
}

// openRestore opens a session and sends the plan (then plan_end).
func (e *jobEnv) openRestore(t testing.TB, open *pb.RestoreOpen, vols []*pb.RestoreVolume) (*restoreRun, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := e.dirc.Restore(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_Open{Open: open}}); err != nil {
		cancel()
		return nil, err
	}
	ev, err := st.Recv()
	if err != nil {
		cancel()
		return nil, err
	}
	r := &restoreRun{stream: st, cancel: cancel, opened: ev.GetOpened(), changed: make(chan struct{}, 1), end: make(chan error, 1)}
	if r.opened == nil {
		cancel()
		return nil, fmt.Errorf("first event %v, want opened", ev)
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
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
		}
	}()
	for _, v := range vols {
		if err := st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_Volume{Volume: v}}); err != nil {
			return r, nil // the session failed; wait says why
		}
	}
	st.Send(&pb.RestoreControl{Msg: &pb.RestoreControl_PlanEnd{PlanEnd: true}})
	return r, nil
}

// restoreOK opens a restore of vols, receives it as web1 and waits for
// the Restore stream's end, failing the test on any error; it returns
// the members received, the end message and the run.
func (e *jobEnv) restoreOK(t testing.TB, vols []*pb.RestoreVolume) ([]got, *pb.RestoreDataEnd, *restoreRun) {
	t.Helper()
	r, err := e.openRestore(t, restoreOpen("web1"), vols)
	if err != nil {
		t.Fatal(err)
	}
	g, end, err := receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatalf("RestoreData: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Restore stream: %v", err)
	}
	return g, end, r
}

func (r *restoreRun) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.end:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("the Restore stream did not end")
		return nil
	}
}

func (r *restoreRun) waitFor(t testing.TB, what string, ok func([]*pb.RestoreEvent) bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		r.mu.Lock()
		done := ok(r.events)
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

func (r *restoreRun) done() *pb.RestoreDone {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if d := ev.GetDone(); d != nil {
			return d
		}
	}
	return nil
}

func (r *restoreRun) mounted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if m := ev.GetMounted(); m != nil {
			out = append(out, m.Volume)
		}
	}
	return out
}

// got is one member a client received: the member message and its bytes.
type got struct {
	m     *pb.RestoreMember
	data  []byte
	sizes []int // of its data messages
}

// receive reads a RestoreData stream to its end.
func receive(c pb.StorageClient, session, token string) ([]got, *pb.RestoreDataEnd, error) {
	st, err := c.RestoreData(context.Background(), &pb.RestoreDataRequest{Session: session, Token: token})
	if err != nil {
		return nil, nil, err
	}
	var out []got
	for {
		msg, err := st.Recv()
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("the stream ended without its end message")
			}
			return out, nil, err
		}
		switch m := msg.Msg.(type) {
		case *pb.RestoreDataReply_Member:
			out = append(out, got{m: m.Member})
		case *pb.RestoreDataReply_Data:
			if len(out) == 0 {
				return out, nil, fmt.Errorf("data before any member")
			}
			g := &out[len(out)-1]
			g.data, g.sizes = append(g.data, m.Data...), append(g.sizes, len(m.Data))
		case *pb.RestoreDataReply_End:
			if _, err := st.Recv(); err != io.EOF {
				return out, m.End, fmt.Errorf("after end: %v", err)
			}
			return out, m.End, nil
		}
	}
}

// checkMember parses b as exactly one pax member and compares it with f.
func checkMember(t testing.TB, b []byte, f jfile, rec *pb.MemberRecord) {
	t.Helper()
	if want := rec.DataOffset - rec.HeaderOffset + (rec.StoredSize+511)/512*512; int64(len(b)) != want {
		t.Fatalf("%q: %d bytes received, the member is %d on tape", f.m.Path, len(b), want)
	}
	ar := archive.NewMemberReader(bytes.NewReader(b), 0)
	e, err := ar.Next()
	if err != nil {
		t.Fatalf("%q: %v", f.m.Path, err)
	}
	if strings.TrimSuffix(e.Header.Name, "/") != strings.TrimSuffix(f.m.Path, "/") {
		t.Fatalf("received %q, want %q", e.Header.Name, f.m.Path)
	}
	data, err := io.ReadAll(ar)
	if err != nil {
		t.Fatalf("%q: %v", f.m.Path, err)
	}
	if f.m.Sparse != nil {
		f.data = expand(f)
	}
	if !bytes.Equal(data, f.data) {
		t.Fatalf("%q: the data received (%d bytes) differs from the original (%d bytes)", f.m.Path, len(data), len(f.data))
	}
	if f.m.Type == archive.TypeReg && sha256.Sum256(data) != [32]byte(rec.Sha256) {
		t.Fatalf("%q: digest mismatch", f.m.Path)
	}
	if _, err := ar.Next(); err != io.EOF {
		t.Fatalf("%q: bytes after the member: %v", f.m.Path, err)
	}
}

// sparseFile is a 3 MiB sparse file with two data regions (data: the
// regions' bytes, as the sender streams them).
func sparseFile() jfile {
	spans := []archive.Span{{Offset: 1 << 20, Length: 70000}, {Offset: 3<<20 - 5000, Length: 5000}}
	var data []byte
	for i, sp := range spans {
		data = append(data, bytes.Repeat([]byte{byte('a' + i)}, int(sp.Length))...)
	}
	return jfile{m: archive.Member{Path: "home/sparse.img", Type: archive.TypeReg, Size: 3 << 20, Mode: 0o600, Sparse: spans,
		Mtime: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}, data: data}
}

// expand is a sparse jfile's whole content.
func expand(f jfile) []byte {
	b := make([]byte, f.m.Size)
	p := f.data
	for _, sp := range f.m.Sparse {
		copy(b[sp.Offset:], p[:sp.Length])
		p = p[sp.Length:]
	}
	return b
}

func restoreOpen(client string) *pb.RestoreOpen {
	return &pb.RestoreOpen{JobId: 77, Job: "RestoreFiles", Client: client}
}

// TestRestoreSeveralTapeFiles: two jobs on one encrypted volume (two
// data tape files); a plan of members from both, read in tape order,
// arrives member by member, byte for byte, each exactly one pax member;
// the drive reads with the key loaded for decryption only, and holds no
// key afterwards.
func TestRestoreSeveralTapeFiles(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	w1 := e.writeJob(t, 41, "V1", 1, 2, makeTree(120, 3<<20))
	w2 := e.writeJob(t, 42, "V1", 1, 4, append(makeTree(80), sparseFile())) // tape file 3 is job 41's index
	slots := map[string]uint32{"V1": 1}
	idx1 := []int{0, 1, 5, 6, 60, 61, 119, 120, 121, 122, 123} // the directory, neighbours, a symlink, the long name, the 3 MiB file
	idx2 := []int{3, 40, 82, 83}                               // …, the long name, the sparse file
	// Two messages for V1 (one per tape file): one mount.
	vols := append(plan(w1, slots, idx1...), plan(w2, slots, idx2...)...)
	for _, m := range vols[1].Members {
		m.Seq += uint64(len(idx1))
	}
	r, err := e.openRestore(t, restoreOpen("web1"), vols)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.opened.Token) != 64 || !strings.HasPrefix(r.opened.Session, "restore77-") {
		t.Fatalf("opened %v", r.opened)
	}
	gotMembers, end, err := receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err != nil {
		t.Fatalf("RestoreData: %v", err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Restore stream: %v", err)
	}
	want := len(idx1) + len(idx2)
	if len(gotMembers) != want || end.Members != uint64(want) {
		t.Fatalf("%d members received (end says %d), want %d", len(gotMembers), end.Members, want)
	}
	var total int64
	for i, g := range gotMembers {
		w, j := w1, 0
		if i < len(idx1) {
			j = idx1[i]
		} else {
			w, j = w2, idx2[i-len(idx1)]
		}
		if g.m.Seq != uint64(i+1) || string(g.m.Record.Path) != w.files[j].m.Path {
			t.Fatalf("member %d: seq %d %q, want %d %q", i, g.m.Seq, g.m.Record.Path, i+1, w.files[j].m.Path)
		}
		checkMember(t, g.data, w.files[j], w.recs[j])
		total += int64(len(g.data))
	}
	d := r.done()
	if d == nil || d.Members != uint64(want) || d.Bytes != total || end.Bytes != total || strings.Join(d.Volumes, ",") != "V1" || d.BlocksRead == 0 {
		t.Fatalf("done %v, end %v; received %d bytes", d, end, total)
	}
	if m := r.mounted(); len(m) != 1 || m[0] != "V1" {
		t.Fatalf("mounted events %v", m)
	}
	e.vtl.RequireNoKey(t)
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle || d0.Volume != "" {
		t.Fatalf("drive after the restore: %v", d0)
	}
	// The key's trail: loaded for the mount, cleared at the end.
	e.dir.mu.Lock()
	var trail []string
	for _, rep := range e.dir.reports {
		if rep.Volume == "V1" && (rep.Event == "loaded" || rep.Event == "cleared") {
			trail = append(trail, rep.Event)
		}
	}
	e.dir.mu.Unlock()
	if n := len(trail); n < 2 || trail[n-2] != "loaded" || trail[n-1] != "cleared" {
		t.Fatalf("key events of V1: %v", trail)
	}
}

// TestRestoreSingleFileReadsTwoBlocks: one small file from the middle of
// a 64 MiB tape file (1 MiB blocks): the vtl's counters say the restore
// read the mount's label block and at most 2 data blocks — not the tape
// file. A second file in the block after reads on without a LOCATE.
func TestRestoreSingleFileReadsTwoBlocks(t *testing.T) {
	e := newJobEnvTuned(t, 1, 4, "256MiB", func(cfg *configs.Storaged, _ *Options) { cfg.Drives[0].BlockSize = 1 << 20 })
	e.label(t, 1, "V1", true)
	var files []jfile
	mt := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := range 256 { // 256 × 256 KiB = 64 MiB
		b := make([]byte, 256<<10-i%3*1000)
		copy(b, fmt.Sprintf("file %d\n", i))
		for j := 64; j < len(b); j += 4096 {
			b[j] = byte(i + j)
		}
		files = append(files, jfile{m: archive.Member{Path: fmt.Sprintf("data/f%03d.bin", i), Type: archive.TypeReg, Size: int64(len(b)), Mode: 0o644, Mtime: mt}, data: b})
	}
	w := e.writeJob(t, 41, "V1", 1, 2, files)
	if bs := e.d.cfg.Drives[0].BlockSize; bs != 1<<20 {
		t.Fatalf("block size %d, the test wants 1 MiB", bs)
	}
	// What a mount alone reads (label, checks): measured, not assumed.
	e.vtl.Reads(t, true)
	if _, err := e.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.d.Unmount(context.Background(), "drive0"); err != nil {
		t.Fatal(err)
	}
	rs := e.vtl.Reads(t, true)
	mountBlocks, _ := rs.Cartridge(inventoryBarcode(t, e, 1))
	if mountBlocks == 0 {
		t.Fatalf("the vtl counted no block for a mount: %+v", rs)
	}

	i := 128
	if a := w.recs[i].Address; a.Block < 20 {
		t.Fatalf("member %d at block %d: not in the middle", i, a.Block)
	}
	g, _, r := e.restoreOK(t, plan(w, map[string]uint32{"V1": 1}, i))
	if len(g) != 1 {
		t.Fatalf("%d members", len(g))
	}
	checkMember(t, g[0].data, files[i], w.recs[i])
	rs = e.vtl.Reads(t, true)
	blocks, bytesRead := rs.Cartridge(inventoryBarcode(t, e, 1))
	d := r.done()
	t.Logf("single file of %d bytes at block %d: the mount read %d block(s), the session %d data block(s); the vtl counted %d blocks, %d bytes",
		len(files[i].data), w.recs[i].Address.Block, mountBlocks, d.BlocksRead, blocks, bytesRead)
	if d.BlocksRead > 2 || d.BlocksRead == 0 || blocks != mountBlocks+int64(d.BlocksRead) {
		t.Fatalf("read %d blocks (the mount's %d + the session's %d): want the mount's + at most 2", blocks, mountBlocks, d.BlocksRead)
	}
	if bytesRead > int64(mountBlocks+2)<<20 {
		t.Fatalf("read %d bytes", bytesRead)
	}

	// Two neighbours: the second starts in the block the first ended in
	// or the next one, so the session reads on (no more than 3 blocks).
	g, _, r = e.restoreOK(t, plan(w, map[string]uint32{"V1": 1}, 200, 201, 202, 203))
	for k, j := range []int{200, 201, 202, 203} {
		checkMember(t, g[k].data, files[j], w.recs[j])
	}
	first, last := w.recs[200].Address.Block, w.recs[203].Address.Block+1 // 203 ends in its block or the next
	if d := r.done(); d.BlocksRead > last-first+1 {
		t.Fatalf("4 neighbours in blocks %d-%d: read %d blocks", first, last, d.BlocksRead)
	}
	e.vtl.RequireNoKey(t)
}

// TestRestoreWholeBlocksDirect: the blocks a member fills whole go from
// the drive into the client's data messages without a copy in between
// (Cursor.ReadDirect): with 1 MiB blocks, larger than the session's
// 256 KiB buffers, every such block arrives as one message of its size;
// the part blocks at the member's ends come in smaller ones.
func TestRestoreWholeBlocksDirect(t *testing.T) {
	const bs = 1 << 20
	e := newJobEnvTuned(t, 1, 4, "256MiB", func(cfg *configs.Storaged, _ *Options) { cfg.Drives[0].BlockSize = bs })
	e.label(t, 1, "V1", true)
	files := makeTree(3, 5*bs+100, 2*bs)
	w := e.writeJob(t, 41, "V1", 1, 2, files)
	var idx []int
	for i := range files {
		idx = append(idx, i)
	}
	g, _, _ := e.restoreOK(t, plan(w, map[string]uint32{"V1": 1}, idx...))
	if len(g) != len(files) {
		t.Fatalf("%d members, want %d", len(g), len(files))
	}
	for i, f := range files {
		checkMember(t, g[i].data, f, w.recs[i])
		if f.m.Size < 2*bs {
			continue
		}
		whole := 0
		for _, n := range g[i].sizes {
			if n == bs {
				whole++
			}
		}
		// The member starts inside a block and ends inside another: the
		// blocks between are whole.
		if want := int(f.m.Size/bs) - 1; whole < want {
			t.Errorf("%s (%d bytes): %d data messages of a whole block (%v), want at least %d", f.m.Path, f.m.Size, whole, g[i].sizes, want)
		}
	}
}

// inventoryBarcode is the barcode of the cartridge in slot.
func inventoryBarcode(t testing.TB, e *jobEnv, slot uint32) string {
	t.Helper()
	inv, err := e.d.Inventory("changer0")
	if err != nil {
		t.Fatal(err)
	}
	return inv.Changers[0].Slots[slot-1].Barcode
}

// TestRestoreSpanningMember: a member cut by the end of a volume comes
// to the client whole: one member message, its data from both volumes
// (the continuation's own headers skipped), with the members before it
// on the first volume and after it on the second.
func TestRestoreSpanningMember(t *testing.T) {
	e := newJobEnv(t, 1, 4, "8MiB")
	e.label(t, 1, "V1", true)
	e.label(t, 2, "V2", true)
	files := makeTree(40, 9<<20, 100<<10)
	w := e.writeJob(t, 41, "V1", 1, 2, files, &pb.JobVolume{Volume: "V2", Changer: "changer0", Slot: 2, TapeFile: 2, VolumeSeq: 2})
	big := len(files) - 2
	if rec := w.recs[big]; len(rec.Parts) != 1 || rec.Parts[0].Address.Volume != "V2" || rec.Address.Volume != "V1" {
		t.Fatalf("the 9 MiB member on 8 MiB volumes: %v", rec)
	}
	vols := plan(w, map[string]uint32{"V1": 1, "V2": 2}, 3, big, big+1)
	if len(vols) != 2 || len(vols[0].Members) != 2 || len(vols[1].Members) != 2 || vols[1].Members[0].ContinuationPart != 1 {
		t.Fatalf("plan %v", vols)
	}
	g, end, r := e.restoreOK(t, vols)
	if len(g) != 3 || end.Members != 3 {
		t.Fatalf("%d member messages (end says %d), want 3", len(g), end.Members)
	}
	for k, j := range []int{3, big, big + 1} {
		checkMember(t, g[k].data, files[j], w.recs[j])
	}
	if m := r.mounted(); strings.Join(m, ",") != "V1,V2" {
		t.Fatalf("mounted %v", m)
	}
	if d := r.done(); strings.Join(d.Volumes, ",") != "V1,V2" {
		t.Fatalf("done %v", d)
	}
	e.vtl.RequireNoKey(t)

	// A plan that ends after the cut part (no continuation) fails naming
	// the member; the client gets an error, never a short member.
	r, err := e.openRestore(t, restoreOpen("web1"), vols[:1])
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "home/big0.bin") {
		t.Fatalf("RestoreData of a plan without the continuation: %v", err)
	}
	if err := r.wait(t); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the plan ends before its continuation") {
		t.Fatalf("Restore stream: %v", err)
	}
	e.vtl.RequireNoKey(t)
}

// TestRestoreTokens: a RestoreData with a wrong token, another client's
// certificate, a director certificate or a token already used is refused
// (PermissionDenied) without the token in the refusal; the session goes
// on for its client.
func TestRestoreTokens(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", false)
	w := e.writeJob(t, 41, "V1", 1, 1, makeTree(30))
	r, err := e.openRestore(t, restoreOpen("web1"), plan(w, map[string]uint32{"V1": 1}, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	web1 := e.connect(t, "web1", tlsconf.RoleClient)
	refused := func(what string, c pb.StorageClient, session, token string) {
		t.Helper()
		_, _, err := receive(c, session, token)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s: %v, want PermissionDenied", what, err)
		}
		if strings.Contains(err.Error(), r.opened.Token) {
			t.Fatalf("%s: the refusal carries the token: %v", what, err)
		}
	}
	refused("a wrong token", web1, r.opened.Session, strings.Repeat("0", 64))
	refused("no such session", web1, "restore1-x", r.opened.Token)
	refused("another client's certificate", e.connect(t, "web2", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	refused("a director certificate", e.dirc, r.opened.Session, r.opened.Token)
	g, _, err := receive(web1, r.opened.Session, r.opened.Token)
	if err != nil || len(g) != 2 {
		t.Fatalf("the right client: %d members, %v", len(g), err)
	}
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	refused("a reused token", web1, r.opened.Session, r.opened.Token)
	if logs := e.vtl.Output(); strings.Contains(logs, r.opened.Token) {
		t.Fatal("the token is in the vtl's log")
	}
}

// TestRestoreIdleTimeout: a client that never connects is dropped when
// the session's idle timer fires; nothing was mounted, no key loaded.
func TestRestoreIdleTimeout(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	w := e.writeJob(t, 41, "V1", 1, 2, makeTree(10))
	r, err := e.openRestore(t, restoreOpen("web1"), plan(w, map[string]uint32{"V1": 1}, 2))
	if err != nil {
		t.Fatal(err)
	}
	e.timers.fire()
	err = r.wait(t)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "client web1 (which never connected) silent for 2m0s: dropped") {
		t.Fatalf("Restore stream: %v", err)
	}
	refusedLate := func() error {
		_, _, err := receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
		return err
	}
	if err := refusedLate(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the client after the drop: %v", err)
	}
	e.vtl.RequireNoKey(t)

	// A client that connects and stops reading: its timer fires (it runs
	// while a send waits for the client); the drive is released, the key
	// cleared, and the client's stream ends with the reason.
	// The two 16 MiB files: more than every buffer between storaged and
	// the client holds, so a send is waiting when the timer fires.
	w = e.writeJob(t, 42, "V1", 1, 4, makeTree(4, 16<<20, 16<<20))
	var big []int
	for i, rec := range w.recs {
		if rec.GetSize() == 16<<20 {
			big = append(big, i)
		}
	}
	if len(big) != 2 {
		t.Fatalf("the job wrote %d members of 16 MiB, want 2", len(big))
	}
	r, err = e.openRestore(t, restoreOpen("web1"), plan(w, map[string]uint32{"V1": 1}, big...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := e.connect(t, "web1", tlsconf.RoleClient).RestoreData(ctx, &pb.RestoreDataRequest{Session: r.opened.Session, Token: r.opened.Token})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := st.Recv(); err != nil || msg.GetMember() == nil {
		t.Fatalf("first message %v, %v", msg, err)
	}
	r.waitFor(t, "the volume mounted", func(evs []*pb.RestoreEvent) bool { return len(evs) > 0 && evs[0].GetMounted() != nil })
	e.timers.fire()
	err = r.wait(t)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "client web1 (not reading its data) silent for 2m0s: dropped; drive drive0 released, key cleared") {
		t.Fatalf("Restore stream: %v", err)
	}
	e.vtl.RequireNoKey(t)
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "not reading its data") {
				t.Fatalf("the slow client's stream: %v", err)
			}
			break
		}
	}
}

// TestRestoreCancelClearsKey: the director cancels while the client
// reads: the session ends, the drive — which held the volume's key for
// decryption only (encryption disabled) — holds no key, and the
// cartridge is back in its slot.
func TestRestoreCancelClearsKey(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	fp := e.label(t, 1, "V1", true)
	// More than the client's stream window and the session's ring
	// take: the tape waits for the client with the key loaded.
	w := e.writeJob(t, 41, "V1", 1, 2, makeTree(10, 16<<20, 16<<20, 1<<20))
	n := len(w.files)
	r, err := e.openRestore(t, restoreOpen("web1"), plan(w, map[string]uint32{"V1": 1}, n-3, n-2, n-1))
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.connect(t, "web1", tlsconf.RoleClient).RestoreData(context.Background(), &pb.RestoreDataRequest{Session: r.opened.Session, Token: r.opened.Token})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := st.Recv(); err != nil || msg.GetMember() == nil {
		t.Fatalf("first message %v, %v", msg, err)
	}
	r.waitFor(t, "the volume mounted", func(evs []*pb.RestoreEvent) bool {
		for _, ev := range evs {
			if ev.GetMounted() != nil {
				return true
			}
		}
		return false
	})
	// The client stops reading: the ring fills and the drive waits,
	// holding the key, loaded for decryption only.
	vs := e.vtl.Status(t)
	if !strings.Contains(vs, "key "+fp) || !strings.Contains(vs, "enc 0 dec 2") {
		t.Fatalf("vtl during the restore (want key %s, encryption disabled, decryption DECRYPT):\n%s", fp, vs)
	}
	if ks := e.d.Status().Drives[0]; !strings.HasPrefix(ks.State, StateReading) || ks.Volume != "V1" || !ks.Key.KeyLoaded || ks.Key.DecryptionMode != "decrypt" {
		t.Fatalf("drive during the restore: %v", ks)
	}
	r.cancel()
	if err := r.wait(t); status.Code(err) != codes.Canceled {
		t.Fatalf("Restore stream after cancel: %v", err)
	}
	testenv.WaitFor(t, "drive0 to be released", func() bool { return e.d.Status().Drives[0].State == StateIdle })
	e.vtl.RequireNoKey(t)
	if ks := e.d.Status().Drives[0].Key; ks.KeyLoaded {
		t.Fatalf("the drive reports a key after the cancel: %v", ks)
	}
	inv, err := e.d.Inventory("changer0")
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Changers[0].Slots[0].Full || inv.Changers[0].Drives[0].Full {
		t.Fatalf("inventory after the cancel: %v", inv)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if status.Code(err) != codes.Canceled || !strings.Contains(err.Error(), "the director cancelled the restore") {
				t.Fatalf("the client's stream after the cancel: %v", err)
			}
			break
		}
	}
}

// TestRestoreFlipFault: the vtl's flip fault changes a byte of the
// member's data on its way from the drive: the client gets bytes whose
// SHA-256 is not the record's (what filed's check catches).
func TestRestoreFlipFault(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	w := e.writeJob(t, 41, "V1", 1, 2, makeTree(50))
	i := 30
	rec := w.recs[i]
	first := w.first[fileKey("V1", rec.Address.TapeFile)]
	dataAt := int64(rec.Address.Offset) + rec.DataOffset - rec.HeaderOffset + 10 // 10 bytes into its data
	bs := int64(1 << 20)
	abs := int64(first+rec.Address.Block) + dataAt/bs
	e.vtl.Fault(t, fmt.Sprintf("drive0:flip_block=%d,flip_offset=%d", abs, dataAt%bs))
	t.Cleanup(func() { e.vtl.Fault(t, "drive0:none") })
	g, _, _ := e.restoreOK(t, plan(w, map[string]uint32{"V1": 1}, i))
	ar := archive.NewMemberReader(bytes.NewReader(g[0].data), 0)
	if _, err := ar.Next(); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(ar)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(data) == [32]byte(rec.Sha256) || len(data) != len(w.files[i].data) || data[10] != w.files[i].data[10]^0xFF {
		t.Fatalf("with the flip fault the member still matches its digest (or another byte changed)")
	}
	if rs := e.vtl.Reads(t, false); rs.Drives[0].Flipped != 1 {
		t.Fatalf("flipped %d blocks", rs.Drives[0].Flipped)
	}
}

// TestRestoreVolumeNotInLibrary: a plan volume without a slot fails the
// session naming it; so does a slot that holds another volume; nothing
// stays mounted.
func TestRestoreVolumeNotInLibrary(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", false)
	e.label(t, 2, "V2", false)
	w := e.writeJob(t, 41, "V1", 1, 1, makeTree(10))
	vols := plan(w, map[string]uint32{"V1": 0}, 2)
	r, err := e.openRestore(t, restoreOpen("web1"), vols)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "volume V1 is not in the library") {
		t.Fatalf("a plan volume with slot 0: %v", err)
	}
	vols = plan(w, map[string]uint32{"V1": 2}, 2)
	r, err = e.openRestore(t, restoreOpen("web1"), vols)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err := r.wait(t); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "slot 2 holds volume V2") {
		t.Fatalf("a slot holding another volume: %v", err)
	}
	if d0 := e.d.Status().Drives[0]; d0.State != StateIdle {
		t.Fatalf("drive after the refusal: %v", d0)
	}
	// The cartridge of slot 4 taken out through the I/E station: its
	// slot is empty.
	if out, err := exec.Command(e.vtl.Bin, "move", "--socket", e.vtl.Socket, "--from", "0x1003", "--to", "0x0010").CombinedOutput(); err != nil {
		t.Fatalf("vtl move: %v\n%s", err, out)
	}
	r, err = e.openRestore(t, restoreOpen("web1"), plan(w, map[string]uint32{"V1": 4}, 2))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token)
	if err := r.wait(t); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "volume V1 is not in the library (its slot 4 is empty)") {
		t.Fatalf("an empty slot: %v", err)
	}
	e.vtl.RequireNoKey(t)
}

// Directories restored from their records (from_record) read nothing:
// a plan of such entries alone mounts no volume (the vtl counts no block
// read), and the client gets each member message with no data.
func TestRestoreFromRecordReadsNothing(t *testing.T) {
	e := newJobEnv(t, 1, 4, "64MiB")
	e.label(t, 1, "V1", true)
	w := e.writeJob(t, 41, "V1", 1, 2, makeTree(20))
	var dirs []int
	for i, rec := range w.recs {
		if rec.Type == "dir" {
			dirs = append(dirs, i)
		}
	}
	if len(dirs) == 0 {
		t.Fatal("the tree has no directory")
	}
	vols := plan(w, map[string]uint32{"V1": 1}, dirs...)
	for _, v := range vols {
		for _, m := range v.Members {
			m.FromRecord = true
		}
	}
	e.vtl.Reads(t, true)
	g, end, r := e.restoreOK(t, vols)
	if len(g) != len(dirs) || end.GetMembers() != uint64(len(dirs)) {
		t.Fatalf("%d members received, end says %d; want %d", len(g), end.GetMembers(), len(dirs))
	}
	for _, m := range g {
		if len(m.data) != 0 || !m.m.FromRecord {
			t.Errorf("member %q: %d bytes of data, from_record %t; want none, true", m.m.Record.Path, len(m.data), m.m.FromRecord)
		}
	}
	if rs := e.vtl.Reads(t, true); rs.Drives[0].Blocks != 0 {
		t.Fatalf("a plan of directories from their records read %d blocks; want none (no mount)", rs.Drives[0].Blocks)
	}
	// A file cannot be restored from its record: the plan is refused.
	bad := plan(w, map[string]uint32{"V1": 1}, firstOfType(t, w, "file"))
	bad[0].Members[0].FromRecord = true
	r, err := e.openRestore(t, restoreOpen("web1"), bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := receive(e.connect(t, "web1", tlsconf.RoleClient), r.opened.Session, r.opened.Token); err == nil || !strings.Contains(err.Error(), "only a directory") {
		t.Fatalf("a file from its record: %v, want refused (only a directory)", err)
	}
	r.wait(t)
}

func firstOfType(t *testing.T, w *written, typ string) int {
	t.Helper()
	for i, rec := range w.recs {
		if rec.Type == typ {
			return i
		}
	}
	t.Fatalf("no %s in the job", typ)
	return -1
}

// The plan storaged holds is bounded: with restorePlanBacklog members
// queued, Control blocks (the director's sends then wait on the stream's
// flow control) until the tape goroutine takes a volume off the plan, or
// the session ends.
func TestRestorePlanBacklogBlocksControl(t *testing.T) {
	vol := func(n int) *pb.RestoreControl {
		return &pb.RestoreControl{Msg: &pb.RestoreControl_Volume{Volume: &pb.RestoreVolume{Volume: "V1", Slot: 1, Members: make([]*pb.RestoreMember, n)}}}
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		s := &RestoreSession{id: "r1", ctx: ctx, cancel: cancel, planned: map[string]bool{}, planNote: make(chan struct{}, 1),
			planTaken: make(chan struct{}, 1), ending: ending{abortCh: make(chan struct{})}}
		if err := s.Control(vol(restorePlanBacklog - 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Control(vol(5)); err != nil { // below the bound when sent: taken whole
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Control(vol(7)) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Control with %d members queued returned %v; want it to wait", restorePlanBacklog+4, err)
		default:
		}
		if v, ok, err := s.nextVolume(); err != nil || !ok || len(v.Members) != restorePlanBacklog-1 {
			t.Fatalf("nextVolume = %d members, %v, %v", len(v.GetMembers()), ok, err)
		}
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Control still waits after the tape goroutine took a volume")
		}
		s.planMu.Lock()
		pending := s.planPending
		s.planMu.Unlock()
		if pending != 12 {
			t.Fatalf("%d members pending, want 12", pending)
		}
		// Full again: the session's end releases a waiting Control with
		// the end's reason.
		if err := s.Control(vol(restorePlanBacklog)); err != nil {
			t.Fatal(err)
		}
		go func() { done <- s.Control(vol(1)) }()
		synctest.Wait()
		why := &CancelledError{Msg: "restore session r1: the director cancelled the restore"}
		s.Abort(why)
		if err := <-done; err != why {
			t.Fatalf("Control after the abort: %v", err)
		}
	})
}

// nopTimer is an idle timer that never fires.
type nopTimer struct{}

func (nopTimer) Stop() bool               { return true }
func (nopTimer) Reset(time.Duration) bool { return true }

// gatherSender is a RestoreSession's client sender (SendData) run on
// its own goroutine against a stream that counts sends and flushes; a
// send waits while the test holds gate's token (a channel: a goroutine
// waiting for a mutex is not durably blocked for synctest).
type gatherSender struct {
	s             *RestoreSession
	mu            sync.Mutex
	sent, flushes int
	gate          chan struct{}
	ended         chan error
}

func startGatherSender() *gatherSender {
	ctx, cancel := context.WithCancelCause(context.Background())
	g := &gatherSender{ended: make(chan error, 1), gate: make(chan struct{}, 1)}
	g.gate <- struct{}{}
	g.s = &RestoreSession{id: "r1", ctx: ctx, cancel: cancel, idle: time.Minute, timer: nopTimer{},
		out: make(chan restoreItem, restoreBufs+2), free: make(chan []byte, 200), // (the buffers come back there)
		endSent: make(chan struct{}), ending: ending{abortCh: make(chan struct{})}, done: make(chan struct{})}
	go func() {
		g.ended <- g.s.SendData(func(v any) error {
			g.gate <- <-g.gate
			g.mu.Lock()
			g.sent++
			g.mu.Unlock()
			if d, ok := v.(*link.DataOut); ok {
				d.Done(d.Msg.(*pb.RestoreDataReply).GetData())
			}
			return nil
		}, func() error {
			g.mu.Lock()
			g.flushes++
			g.mu.Unlock()
			return nil
		})
	}()
	return g
}

func (g *gatherSender) counts() (int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent, g.flushes
}

// members hands the sender n members of one data item each.
func (g *gatherSender) members(n int) {
	for i := range n {
		g.s.out <- restoreItem{member: &pb.RestoreMember{Seq: uint64(i + 1)}}
		g.s.out <- restoreItem{data: make([]byte, 4096, restoreBufSize)}
	}
}

// end hands over the end, waits for the sender's return and checks it.
func (g *gatherSender) end(t *testing.T, members uint64) {
	t.Helper()
	g.s.out <- restoreItem{end: &pb.RestoreDataEnd{Members: members}}
	synctest.Wait()
	close(g.s.done)
	if err := <-g.ended; err != nil {
		t.Fatal(err)
	}
}

// TestRestoreSendDataGathers: the client's sender writes what it gathered
// when the tape goroutine goes to the drive (a flush item), when it has
// had nothing to send for flushBackstop, and at the end — not each time
// it finds the queue empty (a restore of small files hands it two items
// a member, a TLS record and a wakeup of the client each when flushed
// one by one).
func TestRestoreSendDataGathers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGatherSender()
		defer g.s.cancel(nil)
		g.members(50)
		synctest.Wait() // all sent; the sender waits for more with its backstop
		if n, f := g.counts(); n != 100 || f != 0 {
			t.Fatalf("50 members handed over: %d sent, %d flushes; want 100 and none yet", n, f)
		}
		time.Sleep(flushBackstop)
		synctest.Wait()
		if _, f := g.counts(); f != 1 {
			t.Fatalf("nothing more for %v: %d flushes, want 1", flushBackstop, f)
		}
		g.members(20)
		g.s.toDrive()
		synctest.Wait()
		if n, f := g.counts(); n != 140 || f != 2 {
			t.Fatalf("20 more members, then the drive: %d sent, %d flushes; want 140 and 2", n, f)
		}
		g.end(t, 70)
		if n, f := g.counts(); n != 141 || f != 3 {
			t.Fatalf("the end: %d sent, %d flushes; want 141 and 3", n, f)
		}
	})
}

// TestRestoreSendDataDriveWithQueueFull: a trip to the drive while the
// sender's queue is full (its flush item has no room) still flushes as
// soon as the queued items are out, not at the backstop. (The sender on
// 2 cores could fall that far behind: stop 33's CI saw the flush lost.)
func TestRestoreSendDataDriveWithQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGatherSender()
		defer g.s.cancel(nil)
		<-g.gate // the sender's first send waits
		g.s.out <- restoreItem{member: &pb.RestoreMember{Seq: 1}}
		synctest.Wait()
		for range cap(g.s.out) {
			g.s.out <- restoreItem{data: make([]byte, 4096, restoreBufSize)}
		}
		g.s.toDrive() // no room for its item
		if len(g.s.out) != cap(g.s.out) {
			t.Fatalf("queue %d of %d: the test needs it full", len(g.s.out), cap(g.s.out))
		}
		g.gate <- struct{}{}
		synctest.Wait() // time stands still: the backstop cannot fire
		if n, f := g.counts(); n != 1+cap(g.s.out) || f != 1 {
			t.Fatalf("queue emptied after the drive: %d sent, %d flushes; want %d and 1", n, f, 1+cap(g.s.out))
		}
		time.Sleep(flushBackstop)
		synctest.Wait()
		if _, f := g.counts(); f != 1 {
			t.Fatalf("%v later with nothing gathered: %d flushes, want still 1", flushBackstop, f)
		}
		g.end(t, 1)
		if _, f := g.counts(); f != 2 {
			t.Fatalf("the end: %d flushes, want 2", f)
		}
	})
}
