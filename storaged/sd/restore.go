package sd

// Restore sessions (Storage.Restore and Storage.RestoreData): the
// director opens a session and sends the plan (volumes in read order,
// members in tape order); the client (filed) it named reads the members
// with a one-time token. For each volume the session takes a drive,
// mounts the volume (label checked against the catalog, key fetched and
// loaded for reading only), LOCATEs to each member's first header block
// (or reads on when the member starts in the block already read or the
// next one), skips to its offset and reads exactly that member: its
// headers, stored data and padding, as tools/lib/archive parses them —
// no further. A member cut by the end of a volume is stitched: its
// continuation's own headers are skipped, so the client gets one whole
// member. README.md "Restore sessions" describes the flow.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

const (
	// restoreBufSize and restoreBufs: the ring of buffers between the
	// goroutine reading the tape and the one sending to the client (one
	// RestoreDataReply.data each at most). A buffer grows to the
	// volume's block size when that is larger (copyOut). Memory stays
	// bounded whatever the restore's size.
	restoreBufSize = 256 << 10
	restoreBufs    = 4
	// restoreEvents bounds the events waiting for the Restore stream.
	restoreEvents = 8
	// flushBackstop: how long the client's sender, finding nothing to
	// send, keeps what it gathered while the tape goroutine has not said
	// it is waiting (SendData).
	flushBackstop = time.Millisecond
	// driveRetry is how often a session whose volume's changer has no
	// free drive asks again.
	driveRetry = time.Second
)

// NotInLibraryError fails a restore whose plan names a volume that is
// not in the library (slot 0), or whose slot holds no cartridge.
type NotInLibraryError struct {
	Volume string
	Detail string
}

func (e *NotInLibraryError) Error() string {
	msg := "volume " + e.Volume + " is not in the library"
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg + "; put it in a slot (import) and restore again"
}

// PlanError refuses a plan the tape cannot serve as given: an entry with
// no record or address, a continuation out of place, an address where
// the tape holds another member.
type PlanError struct{ Msg string }

func (e *PlanError) Error() string { return e.Msg }

// RestoreSession is one restore job's session: the plan the director
// sends, the client allowed to read (once, with the token), and a drive
// taken for each volume in turn.
type RestoreSession struct {
	d  *Daemon
	id string
	ticket
	open   *pb.RestoreOpen
	idle   time.Duration
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	planMu      sync.Mutex
	plan        []*pb.RestoreVolume // received, not yet read
	planPending int                 // members in plan
	planned     map[string]bool     // every volume the plan names
	planEnd     bool
	planNote    chan struct{} // the plan grew or ended
	planTaken   chan struct{} // the tape goroutine took a volume off the plan

	events     chan *pb.RestoreEvent
	senderGone chan struct{}
	out        chan restoreItem
	flushDue   atomic.Bool // set by toDrive, taken by the sender's flush
	free       chan []byte
	endSent    chan struct{}
	attachCh   chan struct{}

	timer Timer

	ending // the first reason the session ends (Abort)

	// The tape goroutine's.
	dr        *Drive
	bs        int
	meta      uint32 // tape files before the data: label (and key check)
	encrypted bool
	cursor    tapeio.Cursor
	ar        archive.Reader // reads each member's headers (ResetMember)
	cur       []byte         // output buffer being filled
	cut       *cutState
	volumes   []string

	volume  atomic.Pointer[string] // mounted now
	members atomic.Uint64
	bytes   atomic.Int64
	blocks  atomic.Uint64

	done   chan struct{}
	result error
}

// restoreItem is what the tape goroutine hands the client's sender.
type restoreItem struct {
	member *pb.RestoreMember
	data   []byte // a buffer of the ring, given back once sent
	end    *pb.RestoreDataEnd
	flush  bool // the tape goroutine waits for the drive: send what is gathered
}

// cutState is a member whose part ended with its tape file: the plan's
// next entry must be its continuation.
type cutState struct {
	seq    uint64
	next   uint32 // the continuation_part expected
	path   string
	volume string
}

// OpenRestore opens a restore session for the director: the session's
// id and token; its goroutine waits for the client's RestoreData and
// reads the plan as it arrives (Control). ctx is the Restore stream's.
func (d *Daemon) OpenRestore(ctx context.Context, open *pb.RestoreOpen) (*RestoreSession, error) {
	if open.Client == "" {
		return nil, status.Error(codes.InvalidArgument, "restore open: client (the certificate name allowed to read the data) is required")
	}
	if open.Drive != "" {
		if _, err := d.Drive(open.Drive); err != nil {
			return nil, err
		}
	}
	idle := time.Duration(open.IdleTimeoutSeconds) * time.Second
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	s := &RestoreSession{d: d, open: open, idle: idle, ctx: sctx, cancel: cancel,
		planned: map[string]bool{}, planNote: make(chan struct{}, 1), planTaken: make(chan struct{}, 1),
		events: make(chan *pb.RestoreEvent, restoreEvents), senderGone: make(chan struct{}),
		out: make(chan restoreItem, restoreBufs+2), free: make(chan []byte, restoreBufs),
		endSent: make(chan struct{}), attachCh: make(chan struct{}), ending: ending{abortCh: make(chan struct{})}, done: make(chan struct{})}
	s.id = fmt.Sprintf("restore%d-%s", open.JobId, randomHex(8))
	s.issue(open.Client)
	s.cursor.OnDrive(s.toDrive) // (Reset keeps it)
	s.log = d.log.With("session", s.id, "job_id", open.JobId, "job", open.Job, "client", open.Client)
	for range restoreBufs {
		s.free <- make([]byte, 0, restoreBufSize)
	}
	d.jobsMu.Lock()
	d.restores[s.id] = s
	d.jobsMu.Unlock()
	s.timer = d.afterFunc(idle, s.idleFired)
	go s.run()
	s.log.Info("restore session opened", "idle_timeout", idle.String())
	return s, nil
}

// Opened is the RestoreEvent.opened for the director.
func (s *RestoreSession) Opened() *pb.RestoreOpened {
	return &pb.RestoreOpened{Session: s.id, Token: string(s.token)}
}

// restorePlanBacklog bounds the planned members storaged holds before the
// tape reaches them (about 1 KiB each): Control waits while that many are
// queued, so the director's sends wait on the stream's flow control and a
// restore of millions of files takes no more memory than one of thousands.
const restorePlanBacklog = 8192

// Control takes the director's plan: volumes (consecutive messages may
// name one volume), then plan_end. A volume that is not in the library
// fails the session at once, naming it. While restorePlanBacklog members
// wait to be read, a volume blocks (until the tape goroutine takes some, or
// the session ends); plan_end never waits.
func (s *RestoreSession) Control(c *pb.RestoreControl) error {
	if _, ok := c.Msg.(*pb.RestoreControl_Volume); ok {
		if err := s.waitPlanRoom(); err != nil {
			return err
		}
	}
	s.planMu.Lock()
	defer s.planMu.Unlock()
	if s.planEnd {
		return status.Errorf(codes.InvalidArgument, "restore session %s: a message after plan_end", s.id)
	}
	switch m := c.Msg.(type) {
	case *pb.RestoreControl_Volume:
		v := m.Volume
		switch {
		case v == nil || v.Volume == "":
			return status.Errorf(codes.InvalidArgument, "restore session %s: a plan volume without its name", s.id)
		case v.Slot == 0:
			return &NotInLibraryError{Volume: v.Volume, Detail: "the plan gives it no slot"}
		}
		s.plan = append(s.plan, v)
		s.planPending += len(v.Members)
		s.planned[v.Volume] = true
	case *pb.RestoreControl_PlanEnd:
		s.planEnd = true
	default:
		return status.Errorf(codes.InvalidArgument, "restore session %s: after open the director may send only volume and plan_end", s.id)
	}
	select {
	case s.planNote <- struct{}{}:
	default:
	}
	return nil
}

// waitPlanRoom waits until fewer than restorePlanBacklog planned members
// are queued; the session's end error if it ends first.
func (s *RestoreSession) waitPlanRoom() error {
	for {
		s.planMu.Lock()
		room := s.planPending < restorePlanBacklog
		s.planMu.Unlock()
		if room {
			return nil
		}
		select {
		case <-s.planTaken:
		case <-s.abortCh:
			return s.abortErr
		}
	}
}

// PlanEnded says whether plan_end came.
func (s *RestoreSession) PlanEnded() bool {
	s.planMu.Lock()
	defer s.planMu.Unlock()
	return s.planEnd
}

// uses says whether the session's plan names volume (vault exports are
// refused meanwhile).
func (s *RestoreSession) uses(volume string) bool {
	s.planMu.Lock()
	defer s.planMu.Unlock()
	return s.planned[volume]
}

// nextVolume waits for the plan's next volume; false at plan_end.
func (s *RestoreSession) nextVolume() (*pb.RestoreVolume, bool, error) {
	for {
		s.planMu.Lock()
		if len(s.plan) > 0 {
			v := s.plan[0]
			s.plan[0] = nil
			s.plan = s.plan[1:]
			s.planPending -= len(v.Members)
			s.planMu.Unlock()
			select {
			case s.planTaken <- struct{}{}:
			default:
			}
			return v, true, nil
		}
		end := s.planEnd
		s.planMu.Unlock()
		if end {
			return nil, false, nil
		}
		select {
		case <-s.planNote:
		case <-s.abortCh:
			return nil, false, s.abortErr
		}
	}
}

// Abort ends the session with err (the first reason wins): the tape
// goroutine stops, clears the key and returns the cartridge.
func (s *RestoreSession) Abort(err error) { s.end(err, s.cancel) }

func (s *RestoreSession) idleFired() {
	who := "client " + s.client
	if !s.attached.Load() {
		who += " (which never connected)"
	} else {
		who += " (not reading its data)"
	}
	s.Abort(&DroppedError{Msg: fmt.Sprintf("%s silent for %s: dropped", who, s.idle)})
}

// emit hands an event to the Restore stream's sender; it never waits on
// a sender that is gone.
func (s *RestoreSession) emit(ev *pb.RestoreEvent) {
	select {
	case s.events <- ev:
	case <-s.senderGone:
	}
}

// run is the tape goroutine: it waits for the client, reads the plan's
// members and at the end (or an abort) clears the key and returns the
// cartridge.
func (s *RestoreSession) run() {
	err := s.restore()
	s.timer.Stop()
	if err != nil {
		s.Abort(err)
		err = s.abortErr // the first reason: a cancel, not what it interrupted
	}
	if s.dr != nil {
		rel := s.unmount("restore session ended")
		switch {
		case rel != nil:
			s.dr.fail(rel)
			err = errors.Join(err, fmt.Errorf("releasing %s failed: %w", s.dr.name, rel))
		case err != nil:
			err = fmt.Errorf("%w; drive %s released, key cleared", err, s.dr.name)
		}
		s.dr.mu.Unlock()
	}
	s.d.jobsMu.Lock()
	delete(s.d.restores, s.id)
	s.d.jobsMu.Unlock()
	if err != nil {
		s.log.Error("restore session failed", "error", err.Error(), "members", s.members.Load(), "bytes", s.bytes.Load(), "blocks_read", s.blocks.Load())
	} else {
		s.log.Info("restore session done", "members", s.members.Load(), "bytes", s.bytes.Load(), "blocks_read", s.blocks.Load(), "volumes", strings.Join(s.volumes, ","))
	}
	s.result = err
	close(s.done)
}

func (s *RestoreSession) restore() error {
	select {
	case <-s.attachCh:
	case <-s.abortCh:
		return s.abortErr
	}
	for {
		v, ok, err := s.nextVolume()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := s.readVolume(v); err != nil {
			return err
		}
	}
	if c := s.cut; c != nil {
		return &PlanError{Msg: fmt.Sprintf("member %q (plan entry %d) was cut at the end of volume %s, but the plan ends before its continuation", c.path, c.seq, c.volume)}
	}
	// Everything is read: the drive is given back before the client
	// hears the end.
	if s.dr != nil {
		if err := s.unmount("restore read done"); err != nil {
			return err
		}
	}
	if err := s.ship(); err != nil {
		return err
	}
	select {
	case s.out <- restoreItem{end: &pb.RestoreDataEnd{Members: s.members.Load(), Bytes: s.bytes.Load()}}:
	case <-s.abortCh:
		return s.abortErr
	}
	select {
	case <-s.endSent:
		return nil
	case <-s.abortCh:
		return s.abortErr
	}
}

// readVolume mounts v (unless it is mounted: consecutive messages for one
// volume) and reads its members.
//
// Entries restored from their record (from_record) read nothing: the
// volume is mounted only for the first entry that reads tape, so a visit
// of such entries alone mounts nothing.
func (s *RestoreSession) readVolume(v *pb.RestoreVolume) error {
	for _, m := range v.Members {
		if err := s.ctx.Err(); err != nil {
			return context.Cause(s.ctx)
		}
		if m.FromRecord {
			if err := s.sendRecordOnly(v.Volume, m); err != nil {
				return err
			}
			continue
		}
		if cur := s.volume.Load(); cur == nil || *cur != v.Volume {
			if err := s.mount(v); err != nil {
				return err
			}
		}
		if err := s.readMember(v.Volume, m); err != nil {
			return err
		}
	}
	return nil
}

// sendRecordOnly passes on a directory the client restores from its
// record: the member message, no data.
func (s *RestoreSession) sendRecordOnly(volume string, m *pb.RestoreMember) error {
	rec := m.GetRecord()
	switch {
	case rec == nil:
		return &PlanError{Msg: fmt.Sprintf("plan entry %d on volume %s has no record", m.GetSeq(), volume)}
	case rec.Type != "dir" || m.ContinuationPart != 0:
		return &PlanError{Msg: fmt.Sprintf("plan entry %d (%q) on volume %s: only a directory's first part is restored from its record, not a %s", m.Seq, rec.Path, volume, rec.Type)}
	case s.cut != nil:
		return &PlanError{Msg: fmt.Sprintf("member %q (plan entry %d) was cut at the end of volume %s, but the plan's next entry is %q (entry %d): its continuation must come first on the next volume",
			s.cut.path, s.cut.seq, s.cut.volume, rec.Path, m.Seq)}
	}
	if err := s.announce(m); err != nil {
		return err
	}
	s.members.Add(1)
	return nil
}

// takeDrive holds a drive of the volume's changer (the one the session
// holds when it fits), waiting while every drive is busy.
func (s *RestoreSession) takeDrive(changer string) error {
	c, err := s.d.changer(changer)
	if err != nil {
		return err
	}
	if s.dr != nil {
		if s.dr.changer == c {
			return nil
		}
		s.dr.mu.Unlock()
		s.dr = nil
	}
	waited := false
	for {
		dr, err := s.d.pickDrive(c, s.open.Drive, false)
		if err == nil && dr.changer != c {
			dr.mu.Unlock()
			return stateErr("%s is a drive of changer %s, the volume is in changer %s", dr.name, changerName(dr.changer), c.name)
		}
		if err == nil {
			s.dr = dr
			if waited {
				s.log.Info("a drive is free", "drive", dr.name)
			}
			return nil
		}
		var bz *BusyError
		if !errors.As(err, &bz) {
			return err
		}
		if !waited {
			s.log.Info("waiting for a free drive", "changer", c.name, "detail", err.Error())
			waited = true
		}
		t := time.NewTimer(driveRetry)
		select {
		case <-t.C:
		case <-s.abortCh:
			t.Stop()
			return s.abortErr
		}
	}
}

func changerName(c *Changer) string {
	if c == nil {
		return "none"
	}
	return c.name
}

// mount unmounts the volume mounted now and mounts v: label checked
// against the catalog, key fetched and loaded for reading only.
func (s *RestoreSession) mount(v *pb.RestoreVolume) error {
	if s.dr != nil {
		if err := s.unmount("next volume of the restore"); err != nil {
			return err
		}
	}
	if err := s.takeDrive(v.Changer); err != nil {
		return fmt.Errorf("volume %s: %w", v.Volume, err)
	}
	dr := s.dr
	res, err := s.d.mountIn(s.ctx, dr, MountRequest{Changer: v.Changer, Slot: v.Slot, Drive: dr.name, ForRead: true})
	if err != nil {
		// An empty slot whose cartridge no drive holds: the volume left
		// the library (a cartridge in a drive is named by the error).
		var ls *LibraryStateError
		if errors.As(err, &ls) && strings.Contains(ls.Msg, fmt.Sprintf("slot %d is empty", v.Slot)) && !strings.Contains(ls.Msg, "cartridge") {
			return &NotInLibraryError{Volume: v.Volume, Detail: fmt.Sprintf("its slot %d is empty", v.Slot)}
		}
		return fmt.Errorf("mounting volume %s (slot %d) in %s: %w", v.Volume, v.Slot, dr.name, err)
	}
	lbl := res.Label
	if lbl.Volume != v.Volume {
		err := &PositionError{Volume: v.Volume, Msg: fmt.Sprintf("slot %d holds volume %s (barcode %s), not %s; nothing was read", v.Slot, lbl.Volume, orNone(res.Barcode), v.Volume)}
		if uerr := s.unmount("the slot holds another volume"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return err
	}
	s.bs, s.encrypted, s.meta = lbl.BlockSize, lbl.Encryption.Encrypted, 1
	if s.encrypted {
		s.meta = 2
	}
	if s.bs <= 0 || s.bs%archive.BlockSize != 0 {
		return fmt.Errorf("volume %s: its label gives block size %d (want a multiple of %d)", v.Volume, s.bs, archive.BlockSize)
	}
	s.cursor.Reset(dr.dev, s.bs, &s.blocks)
	name := lbl.Volume
	s.volume.Store(&name)
	s.volumes = append(s.volumes, name)
	dr.state = StateReading
	dr.setView(name, StateReading)
	s.log.Info("volume mounted for reading", "volume", name, "drive", dr.name, "encrypted", s.encrypted, "key_source", res.KeySource)
	s.emit(&pb.RestoreEvent{Msg: &pb.RestoreEvent_Mounted{Mounted: &pb.RestoreMounted{Volume: name, Drive: dr.name, Encrypted: s.encrypted, KeyFingerprint: dr.keyFP}}})
	return nil
}

// unmount clears the key, unloads the cartridge and returns it to its
// slot (reporting the key cleared). The drive stays the session's.
func (s *RestoreSession) unmount(why string) error {
	d, dr := s.d, s.dr
	s.volume.Store(nil)
	s.cursor.Reset(nil, 0, nil)
	if !dr.holds() {
		return dr.clearKey(why)
	}
	vol, fp, kek := dr.volume(), dr.keyFP, dr.keyKEK
	err := d.unloadCartridge(dr, why)
	if vol != "" && fp != "" && dr.keyFP == "" {
		d.report(s.ctx, &pb.ReportVolumeRequest{Volume: vol, Drive: dr.name, Event: "cleared", KekId: kek, KeyFingerprint: fp,
			KeyInstanceCounter: dr.kic, Detail: "restore session " + s.id + ": " + why})
	}
	return err
}

// readMember reads one plan entry: a member's first part (its member
// message, headers, data and padding, or its data up to the end of the
// tape file when it is cut there), or the continuation of the member cut
// just before (its data only).
func (s *RestoreSession) readMember(volume string, m *pb.RestoreMember) error {
	rec := m.GetRecord()
	if rec == nil || rec.Address == nil {
		return &PlanError{Msg: fmt.Sprintf("plan entry %d on volume %s has no record or no address", m.GetSeq(), volume)}
	}
	path := string(rec.Path)
	part := m.ContinuationPart
	addr, first := rec.Address, m.TapeFileFirstBlock
	if part == 0 {
		if c := s.cut; c != nil {
			return &PlanError{Msg: fmt.Sprintf("member %q (plan entry %d) was cut at the end of volume %s, but the plan's next entry is %q (entry %d): its continuation must come first on the next volume",
				c.path, c.seq, c.volume, path, m.Seq)}
		}
	} else {
		if int(part) > len(rec.Parts) {
			return &PlanError{Msg: fmt.Sprintf("plan entry %d (%q) reads continuation part %d, but its record lists %d", m.Seq, path, part, len(rec.Parts))}
		}
		if c := s.cut; c == nil || c.seq != m.Seq || c.next != part {
			return &PlanError{Msg: fmt.Sprintf("plan entry %d (%q) continues the member from a previous volume, but the entry before it did not end cut in that member", m.Seq, path)}
		}
		addr, first = rec.Parts[part-1].Address, m.PartTapeFileFirstBlock
		if addr == nil {
			return &PlanError{Msg: fmt.Sprintf("plan entry %d (%q): continuation part %d has no address", m.Seq, path, part)}
		}
	}
	// where names the member in errors (made only for one: a restore
	// reads a member every few microseconds).
	where := func() string {
		return fmt.Sprintf("%q (plan entry %d) at volume %s tape file %d block %d offset %d", path, m.Seq, volume, addr.TapeFile, addr.Block, addr.Offset)
	}
	switch {
	case addr.Volume != "" && addr.Volume != volume:
		return &PlanError{Msg: fmt.Sprintf("%s: the address names volume %s", where(), addr.Volume)}
	case addr.TapeFile < s.meta:
		return &PlanError{Msg: fmt.Sprintf("%s: tape files 0-%d are the volume's label and key check, not data", where(), s.meta-1)}
	case int(addr.Offset) >= s.bs || addr.Offset%archive.BlockSize != 0:
		return &PlanError{Msg: fmt.Sprintf("%s: the offset is not a %d-byte boundary inside a %d-byte block", where(), archive.BlockSize, s.bs)}
	}
	if part == 0 {
		if err := s.announce(m); err != nil {
			return err
		}
	}
	if err := s.cursor.Seek(first+addr.Block, int(addr.Offset), uint64(addr.TapeFile)); err != nil {
		return fmt.Errorf("%s: %w", where(), err)
	}
	var src io.Reader = &s.cursor
	if part == 0 {
		src = teeOut{s}
	}
	ar := &s.ar
	ar.ResetMember(src, int64(addr.Block)*int64(s.bs)+int64(addr.Offset))
	e, err := ar.Next()
	if err != nil {
		if err == io.EOF {
			err = errors.New("no member there (the end of the archive or of the tape file)")
		}
		return fmt.Errorf("%s: %w", where(), err)
	}
	if part == 0 {
		if got := strings.TrimSuffix(e.Header.Name, "/"); got != strings.TrimSuffix(path, "/") {
			return &PlanError{Msg: fmt.Sprintf("%s: the tape holds %q there; nothing of it was restored", where(), got)}
		}
	} else if want := rec.StoredSize - rec.Parts[part-1].DataOffset; !strings.HasPrefix(e.Header.Name, "GNUFileParts/") || e.Header.Size != want {
		return &PlanError{Msg: fmt.Sprintf("%s: the tape holds %q (%d bytes) there, not the continuation of %q (%d bytes)", where(), e.Header.Name, e.Header.Size, path, want)}
	}
	start, end, ok := ar.StoredData()
	if !ok {
		return fmt.Errorf("%s: the member's headers do not say where its data ends", where())
	}
	n, err := s.copyOut(end - ar.Offset())
	if errors.Is(err, io.EOF) {
		// The tape file ends inside the member: a cut.
		read := ar.Offset() + n - start
		want := int64(-1)
		if int(part) < len(rec.Parts) {
			want = rec.Parts[part].DataOffset
			if part > 0 {
				want -= rec.Parts[part-1].DataOffset
			}
		}
		if read != want {
			return fmt.Errorf("%s: the tape file ends after %d of the member's stored bytes (%d data bytes), which its record does not say", where(), read, rec.StoredSize)
		}
		s.cut = &cutState{seq: m.Seq, next: part + 1, path: path, volume: volume}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where(), err)
	}
	if int(part) < len(rec.Parts) {
		return &PlanError{Msg: fmt.Sprintf("%s: the record says the member continues on volume %s, but it ends on this one", where(), rec.Parts[part].GetAddress().GetVolume())}
	}
	if pad := (archive.BlockSize - end%archive.BlockSize) % archive.BlockSize; pad > 0 {
		if _, err := s.copyOut(pad); err != nil {
			return fmt.Errorf("%s: reading its padding: %w", where(), err)
		}
	}
	s.cut = nil
	s.members.Add(1)
	return nil
}

// teeOut reads from the session's cursor and puts what it read into
// the output (a member's headers, as the archive reader parses them).
type teeOut struct{ s *RestoreSession }

func (t teeOut) Read(p []byte) (int, error) {
	n, err := t.s.cursor.Read(p)
	if n > 0 {
		if perr := t.s.put(p[:n]); perr != nil {
			return 0, perr
		}
	}
	return n, err
}

// put copies p into the output buffers, shipping each one that fills.
func (s *RestoreSession) put(p []byte) error {
	for len(p) > 0 {
		if s.cur == nil {
			if err := s.getBuf(); err != nil {
				return err
			}
		}
		n := copy(s.cur[len(s.cur):cap(s.cur)], p)
		s.cur = s.cur[:len(s.cur)+n]
		p = p[n:]
		s.bytes.Add(int64(n))
		if len(s.cur) == cap(s.cur) {
			if err := s.ship(); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyOut copies n bytes from the tape to the output; io.EOF when the
// tape file ends first. Whole blocks of the member go from the drive
// straight into an output buffer (Cursor.ReadDirect): a buffer without
// room for one is shipped as it is and the block starts the next. Only
// the part blocks at a member's ends pass through the cursor's buffer.
func (s *RestoreSession) copyOut(n int64) (int64, error) {
	var done int64
	bs := s.cursor.BlockSize()
	for done < n {
		if s.cur == nil {
			if err := s.getBuf(); err != nil {
				return done, err
			}
		}
		whole := s.cursor.Buffered() == 0 && n-done >= int64(bs)
		if whole && cap(s.cur)-len(s.cur) < bs {
			if len(s.cur) > 0 {
				if err := s.ship(); err != nil {
					return done, err
				}
				if err := s.getBuf(); err != nil {
					return done, err
				}
			}
			if cap(s.cur) < bs {
				// The ring's buffers grow to the block size, once.
				s.cur = make([]byte, 0, bs)
			}
		}
		room := s.cur[len(s.cur):cap(s.cur)]
		var k int
		var err error
		if whole {
			k, err = s.cursor.ReadDirect(room, n-done)
		} else {
			k, err = s.cursor.Read(room[:min(int64(len(room)), n-done)])
		}
		s.cur = s.cur[:len(s.cur)+k]
		s.bytes.Add(int64(k))
		done += int64(k)
		if len(s.cur) == cap(s.cur) {
			if serr := s.ship(); serr != nil {
				return done, serr
			}
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (s *RestoreSession) getBuf() error {
	select {
	case s.cur = <-s.free:
		return nil
	case <-s.abortCh:
		return s.abortErr
	}
}

// toDrive tells the client's sender that the tape goroutine is about to
// wait for the drive, after the items it has handed over: those go out
// as soon as the sender has sent them, instead of waiting for more to
// gather with. The flush item wakes a sender waiting for items; when the
// queue is full it is left out and the sender, which has items to send
// first, finds flushDue once it has emptied the queue (nextItem).
func (s *RestoreSession) toDrive() {
	s.flushDue.Store(true)
	select {
	case s.out <- restoreItem{flush: true}:
	default:
	}
}

// announce hands the client's sender member m's message, after the
// data buffered so far (ship): the member's bytes follow it.
func (s *RestoreSession) announce(m *pb.RestoreMember) error {
	if err := s.ship(); err != nil {
		return err
	}
	select {
	case s.out <- restoreItem{member: m}:
		return nil
	case <-s.abortCh:
		return s.abortErr
	}
}

// ship hands the output buffer filled so far to the client's sender.
func (s *RestoreSession) ship() error {
	if len(s.cur) == 0 {
		return nil
	}
	select {
	case s.out <- restoreItem{data: s.cur}:
		s.cur = nil
		return nil
	case <-s.abortCh:
		return s.abortErr
	}
}

// Done is closed when the session has ended and released its drive;
// Result then says how it ended.
func (s *RestoreSession) Done() <-chan struct{} { return s.done }

// Result is nil for a clean end, else why it failed (after Done).
func (s *RestoreSession) Result() error { return s.result }

// Events are the session's events for the Restore stream; call
// SenderGone when nobody reads them any more.
func (s *RestoreSession) Events() <-chan *pb.RestoreEvent { return s.events }

// SenderGone says the Restore stream's sender stopped reading events.
func (s *RestoreSession) SenderGone() { close(s.senderGone) }

// Progress is the RestoreProgress now.
func (s *RestoreSession) Progress() *pb.RestoreProgress {
	p := &pb.RestoreProgress{Members: s.members.Load(), Bytes: s.bytes.Load(), BlocksRead: s.blocks.Load()}
	if v := s.volume.Load(); v != nil {
		p.Volume = *v
	}
	return p
}

// Summary is the RestoreDone of a clean end (after Done).
func (s *RestoreSession) Summary() *pb.RestoreDone {
	return &pb.RestoreDone{Members: s.members.Load(), Bytes: s.bytes.Load(), BlocksRead: s.blocks.Load(), Volumes: s.volumes}
}

// nextItem is the tape goroutine's next item for the client's sender.
// Finding none ready, it flushes what the sender gathered when the tape
// goroutine went to the drive meanwhile (flushDue), and after
// flushBackstop with none. false: the session is ending, or the flush
// failed.
func (s *RestoreSession) nextItem(backstop *time.Timer, flush func() bool) (restoreItem, bool) {
	select {
	case it := <-s.out:
		return it, true
	default:
	}
	if s.flushDue.Swap(false) {
		if !flush() {
			return restoreItem{}, false
		}
	} else { // (just flushed: nothing gathered to wait for)
		backstop.Reset(flushBackstop)
		defer backstop.Stop()
	}
	for {
		select {
		case it := <-s.out:
			return it, true
		case <-s.abortCh:
			return restoreItem{}, false
		case <-backstop.C:
			if !flush() {
				return restoreItem{}, false
			}
		}
	}
}

// AttachRestore checks a client's RestoreData: the session exists, the
// token is this session's and unused, and the certificate is the client
// the director named. The token is then spent.
func (d *Daemon) AttachRestore(session, token, peer string) (*RestoreSession, error) {
	d.jobsMu.Lock()
	s := d.restores[session]
	d.jobsMu.Unlock()
	if s == nil {
		return nil, d.refuseData("restore data", session, peer, noSession, "nothing was read")
	}
	if why := s.admit(token, peer); why != "" {
		return nil, d.refuseData("restore data", session, peer, why, "nothing was read")
	}
	s.timer.Stop()
	close(s.attachCh)
	s.log.Info("client connected with the session's token")
	return s, nil
}

// SendData runs a client's RestoreData stream (send: its SendMsg; flush
// writes what a direct stream gathered, link.FlushStream): it sends what
// the tape goroutine reads, in order, until the end. Small items are
// gathered and written together: a flush when the tape goroutine goes to
// the drive (toDrive) or, finding nothing to send, after flushBackstop
// (a restore of small files hands over two items a member; flushing
// whenever none was ready wrote each member on its own, a TLS record and
// a wakeup of the client apiece). A data buffer goes to the stream as it
// is (link.DataOut) and comes back to the ring once written. The idle
// timer runs while a send or flush waits for the client (a client that
// stops reading is dropped).
func (s *RestoreSession) SendData(send func(any) error, flush func() error) error {
	back := func(b []byte) { // never blocks: the ring has room for every buffer
		if cap(b) > 0 {
			s.free <- b[:0]
		}
	}
	// timed runs a write with the idle timer running; a failed one drops
	// the client.
	timed := func(write func() error) bool {
		s.timer.Reset(s.idle)
		err := write()
		s.timer.Stop()
		if err != nil {
			s.Abort(&DroppedError{Msg: fmt.Sprintf("client %s's data stream broke: %s", s.client, status.Convert(err).Message())})
		}
		return err == nil
	}
	backstop := time.NewTimer(time.Hour)
	backstop.Stop()
	for {
		it, ok := s.nextItem(backstop, func() bool { return timed(flush) })
		if !ok {
			<-s.done
			return s.result
		}
		if it.flush {
			if s.flushDue.Swap(false) && !timed(flush) { // (false: nextItem flushed already)
				<-s.done
				return s.result
			}
			continue
		}
		var msg any
		switch {
		case it.member != nil:
			msg = &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Member{Member: it.member}}
		case it.end != nil:
			msg = &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_End{End: it.end}}
		default:
			msg = &link.DataOut{Msg: &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: it.data}}, Done: back}
		}
		if !timed(func() error { return send(msg) }) {
			<-s.done
			return s.result
		}
		if it.end != nil {
			// Sent once the stream has it (the client may close as soon
			// as it reads it); then it goes out.
			close(s.endSent)
			timed(flush)
			<-s.done
			return s.result
		}
	}
}
