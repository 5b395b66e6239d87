package sd

// Job sessions (Storage.Job and Storage.JobData): a backup job's pax
// stream, sent by a client (filed) with a one-time token, written to
// tape by a jobtape.JobWriter in a drive this session holds from open to
// end; the director hears of every tape file, every batch of flushed
// records and every full volume on the Job stream. README.md "Job
// sessions" describes the flow.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/jobtape"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

const (
	// DefaultIdleTimeout drops a client that sent nothing (not even a
	// keepalive) for this long, when JobOpen.idle_timeout_seconds is 0.
	DefaultIdleTimeout = 120 * time.Second
	// JobMaxBatch bounds the records of one JobFlushed event (jobtape
	// flushes early when that many wait), and with jobEvents the records
	// a slow director can leave waiting here: memory stays bounded
	// whatever the job's size (8 events of 8,192 records ≈ 40 MB at most).
	JobMaxBatch = 8192
	// jobQueueBytes bounds the client's data received and not yet
	// written to tape (the receiving goroutine waits beyond it, whatever
	// the size of the client's messages), and jobItems the messages
	// between the two goroutines (records-only ones too: at most
	// jobItems × JobMaxBatch records wait, as with the former ring).
	jobQueueBytes = 4 << 20
	jobItems      = 4
	// jobEvents bounds the events waiting for the Job stream's sender
	// (the tape waits for the director beyond that).
	jobEvents = 8
)

// Timer is a stoppable, resettable timer (*time.Timer is one); tests
// inject their own through Options.AfterFunc to fire idle timeouts
// without waiting.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// BusyStorageError says that no drive can take a job session now: every
// drive that fits is in use. The director waits and asks again.
type BusyStorageError struct {
	Storage string
	Drive   string // the drive the director named ("" : any)
	Detail  string
}

func (e *BusyStorageError) Error() string {
	if e.Drive != "" {
		return fmt.Sprintf("drive %s of %s is busy: %s", e.Drive, e.Storage, e.Detail)
	}
	return fmt.Sprintf("every drive of %s is busy: %s", e.Storage, e.Detail)
}

// PositionError refuses a volume whose tape does not hold the tape files
// the catalog says precede the place to write (data would be skipped or
// written after data nobody knows of).
type PositionError struct {
	Volume string
	Msg    string
}

func (e *PositionError) Error() string { return "volume " + e.Volume + ": " + e.Msg }

// DroppedError ends a session whose client went silent, or whose data
// stream broke or was closed without its end.
type DroppedError struct{ Msg string }

func (e *DroppedError) Error() string { return e.Msg }

// JobSession is one backup job's session: a drive held from open to end,
// the volume mounted in it, its JobWriter, and the client allowed to send
// the data (once, with the token).
type JobSession struct {
	d  *Daemon
	id string
	ticket
	open   *pb.JobOpen
	idle   time.Duration
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	// reports: the volume reports of ended parts (reportLater), sent in
	// order by a goroutine while the tape goes on; nil until the first.
	reports     chan *pb.ReportVolumeRequest
	reportsDone chan struct{}

	dr        *Drive
	volume    string // mounted now
	encrypted bool
	keyFP     string
	volSeq    uint32
	volumes   []string
	partSeq   map[int]uint32 // jobtape part → volume sequence number

	// maxBytes: per volume, the bytes this job may write on it
	// (JobVolume.max_bytes; absent or 0: until early warning).
	maxBytes map[string]uint64

	jw *jobtape.JobWriter

	events     chan *pb.JobEvent
	senderGone chan struct{}
	control    chan *pb.JobControl
	items      chan jobItem
	// queued: data bytes handed to the tape goroutine and not yet
	// written; room: a token the tape goroutine leaves after it wrote
	// some (capacity 1: a wakeup is never lost).
	queued atomic.Int64
	room   chan struct{}

	timer Timer

	ending // the first reason the session ends (Abort)

	// inflight are the client's records added to the JobWriter and not
	// yet reported, in stream order (the tape goroutine's): a flushed
	// record goes to the director as the client's message with its
	// address set, not converted back from jobtape's.
	inflight     []*pb.MemberRecord
	inflightHead int

	streamBytes atomic.Int64
	done        chan struct{} // closed once the drive is released
	mounted     chan struct{} // closed once the volume is mounted (start)
	result      error
	summary     jobtape.Summary
}

// jobItem is what the receiving goroutine hands the tape goroutine: a
// data message's stream bytes (a DataCodec buffer, given back once
// written), then the records of members whose bytes are in it or
// before, and the client's end.
type jobItem struct {
	buf  []byte
	recs []archive.Record
	pbs  []*pb.MemberRecord // recs as the client sent them
	end  *pb.JobDataEnd
}

// OpenJob opens a job session: picks a drive, mounts the volume (label
// checked against the catalog, key loaded and verified), positions at
// the tape file the catalog gives, has the director record that the
// volume takes data (BeginWrite) and starts the tape goroutine. The drive
// stays locked until the session ends. ctx is the Job stream's.
func (d *Daemon) OpenJob(ctx context.Context, open *pb.JobOpen) (*JobSession, error) {
	switch {
	case open.GetJob() == nil || open.Volume == nil:
		return nil, status.Error(codes.InvalidArgument, "job open: job and volume are required")
	case open.Client == "":
		return nil, status.Error(codes.InvalidArgument, "job open: client (the certificate name allowed to send the data) is required")
	case open.Volume.Volume == "":
		return nil, status.Error(codes.InvalidArgument, "job open: volume.volume (its name) is required")
	}
	idle := time.Duration(open.IdleTimeoutSeconds) * time.Second
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	s := &JobSession{d: d, open: open, idle: idle, ctx: sctx, cancel: cancel,
		partSeq: map[int]uint32{},
		events:  make(chan *pb.JobEvent, jobEvents), senderGone: make(chan struct{}), control: make(chan *pb.JobControl, 1),
		items: make(chan jobItem, jobItems), room: make(chan struct{}, 1), ending: ending{abortCh: make(chan struct{})}, done: make(chan struct{})}
	s.id = fmt.Sprintf("job%d-%s", open.Job.JobId, randomHex(8))
	s.issue(open.Client)
	s.log = d.log.With("session", s.id, "job_id", open.Job.JobId, "job", open.Job.Job, "client", open.Client)
	s.volSeq = max(open.Volume.VolumeSeq, 1) - 1

	// Two sessions never write one volume.
	d.jobsMu.Lock()
	for _, o := range d.jobs {
		if o.volume == open.Volume.Volume || (o.volume == "" && o.open.Volume.Volume == open.Volume.Volume) {
			d.jobsMu.Unlock()
			cancel(nil)
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is being written by job session %s (job %d); one volume takes one job at a time",
				open.Volume.Volume, o.id, o.open.Job.JobId)
		}
	}
	d.jobs[s.id] = s
	d.jobsMu.Unlock()
	ok := false
	defer func() {
		if !ok {
			d.dropJob(s)
			cancel(nil)
		}
	}()

	c, err := d.changer(open.Volume.Changer)
	if err != nil {
		return nil, err
	}
	dr, err := d.pickDrive(c, open.Drive, false)
	if err != nil {
		var bz *BusyError
		if errors.As(err, &bz) {
			return nil, &BusyStorageError{Storage: d.cfg.Name, Drive: open.Drive, Detail: err.Error()}
		}
		return nil, err
	}
	s.dr = dr
	s.log = s.log.With("drive", dr.name)
	s.mounted = make(chan struct{})
	ok = true
	// The idle timer runs from now: a client that attached sends
	// keepalives while it walks, and while the data queue is full (the
	// mount not done) its silence is not counted.
	s.timer = d.afterFunc(idle, s.idleFired)
	go s.start()
	s.log.Info("job session started, mounting", "volume", open.Volume.Volume, "tape_file", open.Volume.TapeFile, "idle_timeout", idle.String())
	return s, nil
}

// start mounts the session's volume — the client may connect and send
// meanwhile: its data waits in the session's queue — and then runs the
// session. A failed (or aborted) mount ends the session with its error:
// nothing is left mounted, no key loaded, the drive released.
func (s *JobSession) start() {
	if err := s.begin(); err != nil {
		s.timer.Stop()
		s.Abort(err) // the receiving side stops
		s.dr.mu.Unlock()
		s.d.dropJob(s)
		s.log.Warn("job session failed before writing", "error", err.Error())
		s.result = err
		close(s.done)
		return
	}
	close(s.mounted)
	s.d.metrics.jobStarted()
	s.log.Info("job session opened", "volume", s.volume, "tape_file", s.open.Volume.TapeFile)
	s.run()
}

// Mounted is closed once the volume is mounted and the session writes.
func (s *JobSession) Mounted() <-chan struct{} { return s.mounted }

// begin mounts the volume and starts the job writer.
func (s *JobSession) begin() error {
	d, dr, open, sctx := s.d, s.dr, s.open, s.ctx
	if h := d.beforeJobMount; h != nil {
		if err := h(); err != nil {
			return err
		}
	}
	if err := s.mount(sctx, open.Volume); err != nil {
		return err
	}
	lbl := dr.label
	opts := jobtape.Options{BlockSize: lbl.BlockSize, FlushEvery: int64(open.FlushEvery), MaxBatch: JobMaxBatch, Context: sctx, SpoolDir: d.cfg.WorkingDirectory,
		NextVolume: s.nextVolume, OnFlushed: s.onFlushed, OnPart: s.onPart, OnPartDone: s.onPartDone,
		VolumeLimit: func(v string) int64 { return int64(min(s.maxBytes[v], 1<<62)) },
		VerifyPart: func(string) func(*scsi.Device, tapeio.Addr) error {
			if s.encrypted {
				return tapeio.VerifyFirstBlock([]byte(s.keyFP))
			}
			return nil
		}}
	j := open.Job
	var err error
	s.jw, err = jobtape.New(dr.dev, jobtape.JobInfo{JobID: j.JobId, Job: j.Job, Client: j.Client, FileSet: j.Fileset, Level: j.Level,
		Volume: s.volume, Created: d.clock()}, opts)
	if err != nil {
		s.release("the job writer could not start")
		return err
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// Started is the JobEvent.started for the director: the session, its
// token and drive, and the volume asked for.
func (s *JobSession) Started() *pb.JobOpened {
	return &pb.JobOpened{Session: s.id, Token: string(s.token), Drive: s.dr.name, Volume: s.open.Volume.Volume}
}

// Opened is the JobEvent.opened for the director.
func (s *JobSession) Opened() *pb.JobOpened {
	return &pb.JobOpened{Session: s.id, Token: string(s.token), Drive: s.dr.name, Volume: s.volume, Encrypted: s.encrypted, KeyFingerprint: s.keyFP}
}

// mount mounts jv in the session's drive (locked): the mount flow (label
// checked against the catalog, key loaded and verified), the volume's
// name checked, the tape positioned at jv.tape_file, and BeginWrite.
// On failure nothing is left mounted and no key loaded.
func (s *JobSession) mount(ctx context.Context, jv *pb.JobVolume) (err error) {
	d, dr := s.d, s.dr
	var lbl label.Label
	if jv.Recycle {
		if lbl, err = s.relabelRecycled(ctx, jv); err != nil {
			return err
		}
	} else {
		res, err := d.mountIn(ctx, dr, MountRequest{Changer: jv.Changer, Slot: jv.Slot, Drive: dr.name})
		if err != nil {
			return err
		}
		lbl = res.Label
		if lbl.Volume != jv.Volume {
			s.release("the job's volume was refused")
			return &PositionError{Volume: jv.Volume, Msg: fmt.Sprintf("slot %d holds volume %s (barcode %s), not %s; nothing was written", jv.Slot, lbl.Volume, orNone(res.Barcode), jv.Volume)}
		}
	}
	defer func() {
		if err != nil {
			s.release("the job's volume was refused")
		}
	}()
	if err := s.position(lbl.Volume, lbl.Encryption.Encrypted, uint64(jv.TapeFile), uint64(max(jv.KnownTapeFiles, jv.TapeFile))); err != nil {
		return err
	}
	if err := d.director.BeginWrite(ctx, &pb.BeginWriteRequest{Volume: lbl.Volume, Drive: dr.name, TapeFile: jv.TapeFile, KeyFingerprint: dr.keyFP}); err != nil {
		st := status.Convert(err)
		code := st.Code()
		if directorUnreachable(err) {
			code = codes.Unavailable
		}
		return &DirectorRefusedError{Volume: lbl.Volume, Drive: dr.name, What: "the job session", Code: code,
			Msg: st.Message() + "; nothing was written (a volume takes data only once the director has recorded that it holds data)"}
	}
	s.d.jobsMu.Lock()
	s.volume = lbl.Volume
	s.d.jobsMu.Unlock()
	s.encrypted, s.keyFP = lbl.Encryption.Encrypted, dr.keyFP
	s.volSeq++
	s.volumes = append(s.volumes, lbl.Volume)
	if s.maxBytes == nil {
		s.maxBytes = map[string]uint64{}
	}
	s.maxBytes[lbl.Volume] = jv.MaxBytes
	dr.state = StateWriting
	dr.setView(lbl.Volume, StateWriting)
	return nil
}

// RecycleKeyError refuses to relabel a recycled volume with the key its
// old label names: a tape is never written again under a key it was
// written under before its recycling.
type RecycleKeyError struct {
	Volume, Fingerprint string
}

func (e *RecycleKeyError) Error() string {
	return fmt.Sprintf("refusing to recycle volume %s: the catalog's key %s is the key its old label names; a recycled volume takes a new key (nothing was written)",
		e.Volume, e.Fingerprint)
}

// relabelRecycled rewrites, in the session's drive, the label of a volume
// the director recycled (JobVolume.recycle: purged, a new key committed
// in the catalog, status Labeling): the tape must carry this volume's own
// label; the new key comes from the director (CurrentKey) and must not
// be the old label's; the label and key-check block are written and
// verified with the key put in the crypto cache first (invariant 1), and
// the director is told (LabelWritten) before anything else is written.
// The key stays loaded and the volume mounted; on failure nothing is left
// loaded. Called with dr.mu held.
func (s *JobSession) relabelRecycled(ctx context.Context, jv *pb.JobVolume) (_ label.Label, err error) {
	d, dr := s.d, s.dr
	src, err := d.loadCartridge(ctx, dr, jv.Slot)
	if err != nil {
		if src.Address != 0 {
			if uerr := d.unloadCartridge(dr, "recycling failed"); uerr != nil {
				dr.log.Error("after a failed load", "error", uerr.Error())
			}
		}
		return label.Label{}, err
	}
	defer func() {
		if err != nil {
			s.release("the recycled volume's label was not rewritten")
		}
	}()
	if err := dr.clearKey("before reading the label"); err != nil {
		return label.Label{}, err
	}
	old, err := label.Read(dr.dev)
	if err != nil {
		return label.Label{}, &PositionError{Volume: jv.Volume, Msg: fmt.Sprintf("slot %d (%s): recycling rewrites the volume's own label, but reading it failed: %v; nothing was written", jv.Slot, orNone(src.VolumeTag), err)}
	}
	if old.Volume != jv.Volume {
		return label.Label{}, &PositionError{Volume: jv.Volume, Msg: fmt.Sprintf("slot %d holds volume %s (barcode %s), not %s; nothing was written", jv.Slot, old.Volume, orNone(src.VolumeTag), jv.Volume)}
	}
	dr.found = &old
	ans, err := d.director.CurrentKey(ctx, jv.Volume, dr.name)
	if err != nil {
		st := status.Convert(err)
		code := st.Code()
		if directorUnreachable(err) {
			code = codes.Unavailable
		}
		return label.Label{}, &DirectorRefusedError{Volume: jv.Volume, Drive: dr.name, What: "the recycling", Code: code, Msg: st.Message() + "; nothing was written"}
	}
	if ans.Encrypted && old.Encryption.Encrypted && ans.Key.Fingerprint == old.Encryption.Fingerprint {
		return label.Label{}, &RecycleKeyError{Volume: jv.Volume, Fingerprint: ans.Key.Fingerprint}
	}
	r := LabelRequest{Changer: jv.Changer, Slot: jv.Slot, Volume: jv.Volume, Pool: s.open.GetJob().GetPool(), MediaType: old.MediaType,
		Encrypt: ans.Encrypted, Key: ans.Key, Escrow: ans.Escrow}
	if r.Encrypt {
		if err := d.checkKey(&r); err != nil {
			return label.Label{}, err
		}
		if r.Key.Fingerprint == old.Encryption.Fingerprint {
			return label.Label{}, &RecycleKeyError{Volume: jv.Volume, Fingerprint: r.Key.Fingerprint}
		}
		// Before the label is touched: this drive must be able to encrypt.
		switch {
		case !dr.crypto:
			return label.Label{}, &CryptoRefusedError{Drive: dr.name, Volume: jv.Volume, Reason: "the drive is configured crypto = false"}
		case !dr.ame():
			return label.Label{}, &CryptoRefusedError{Drive: dr.name, Volume: jv.Volume, Reason: dr.noAMEReason()}
		}
	}
	dr.state = StateLabeling
	dr.setView(jv.Volume, StateLabeling)
	res, err := d.writeLabel(dr, r, src.VolumeTag)
	if err != nil {
		return label.Label{}, err
	}
	rep := &pb.LabelVolumeReply{Volume: res.Volume, Barcode: res.Barcode, Slot: res.Slot, Drive: res.Drive,
		LabelTimeUnix: res.Label.LabelTime.Unix(), Encrypted: res.Label.Encryption.Encrypted, EncryptionVerified: res.Verified,
		KeyInstanceCounter: res.KIC, KeyFingerprint: res.Label.Encryption.Fingerprint}
	if res.Verified {
		rep.VerifiedTimeUnix = d.clock().Unix()
	}
	if err := d.director.LabelWritten(ctx, rep); err != nil {
		st := status.Convert(err)
		code := st.Code()
		if directorUnreachable(err) {
			code = codes.Unavailable
		}
		return label.Label{}, &DirectorRefusedError{Volume: jv.Volume, Drive: dr.name, What: "the recycled label", Code: code,
			Msg: st.Message() + "; no data was written (the new label is on tape; the volume stays out of use until it is labelled again)"}
	}
	s.log.Info("recycled volume relabelled with its new key; the director recorded it", "volume", jv.Volume,
		"old_fingerprint", orNone(old.Encryption.Fingerprint), "fingerprint", orNone(res.Label.Encryption.Fingerprint), "verified", res.Verified)
	lbl := res.Label
	dr.label, dr.found = &lbl, nil
	dr.state = StateMounted
	dr.setView(lbl.Volume, StateMounted)
	return lbl, nil
}

// position puts the tape at the start of tape file n, refusing when the
// tape holds fewer tape files (never skip, never write after data the
// catalog does not know) or when n is the label or key-check file.
// Called with dr.mu held.
func (s *JobSession) position(volume string, encrypted bool, n, known uint64) error {
	dev := s.dr.dev
	meta := uint64(1)
	if encrypted {
		meta = 2
	}
	if n < meta {
		return &PositionError{Volume: volume, Msg: fmt.Sprintf("the director asks to write at tape file %d, but tape files 0-%d are its label and key-check file; nothing was written", n, meta-1)}
	}
	if _, err := dev.Space(scsi.SpaceEndOfData, 0); err != nil {
		return fmt.Errorf("%s: volume %s: finding its end of data: %w", s.dr.name, volume, err)
	}
	eod, err := dev.ReadPosition()
	if err != nil {
		return fmt.Errorf("%s: volume %s: reading the position at end of data: %w", s.dr.name, volume, err)
	}
	// eod.File filemarks precede end of data: tape files 0..eod.File-1
	// are complete; tape file eod.File is empty or (a crash) incomplete.
	if n > eod.File {
		return &PositionError{Volume: volume, Msg: fmt.Sprintf("the tape holds %d complete tape files (0-%d) but the catalog says the next one to write is tape file %d; refusing to skip (nothing was written) — check the volume with `tapectl \"status storage\"` and the catalog's job media",
			eod.File, eod.File-1, n)}
	}
	if n < eod.File {
		// Tape files from n on are ones the catalog recorded incomplete
		// (a crash): they are written over. More than the catalog knows
		// are data it does not know (a catalog restored from an older
		// dump): never written over.
		if eod.File > known {
			return &PositionError{Volume: volume, Msg: fmt.Sprintf("the tape holds %d tape files but the catalog knows only %d (the next to write would be tape file %d): the tape holds data the catalog does not know; refusing to write over it (nothing was written) — import the volume's index or use another volume",
				eod.File, known, n)}
		}
		s.log.Warn("writing over tape files the catalog recorded as incomplete",
			"volume", volume, "tape_file", n, "tape_files_on_tape", eod.File)
	}
	if err := dev.Rewind(false); err != nil {
		return fmt.Errorf("%s: volume %s: rewinding: %w", s.dr.name, volume, err)
	}
	if _, err := dev.Space(scsi.SpaceFilemarks, int64(n)); err != nil {
		return fmt.Errorf("%s: volume %s: spacing to tape file %d: %w", s.dr.name, volume, n, err)
	}
	pos, err := dev.ReadPosition()
	if err != nil {
		return fmt.Errorf("%s: volume %s: reading the position: %w", s.dr.name, volume, err)
	}
	if pos.File != n {
		return &PositionError{Volume: volume, Msg: fmt.Sprintf("positioned at tape file %d, the director asked for %d; nothing was written", pos.File, n)}
	}
	return nil
}

// release clears the key, unloads the cartridge and returns it to its
// slot (reporting the key cleared). Called with dr.mu held.
func (s *JobSession) release(why string) error {
	d, dr := s.d, s.dr
	vol, fp, kek := dr.volume(), dr.keyFP, dr.keyKEK
	err := d.unloadCartridge(dr, why)
	if vol != "" && fp != "" && dr.keyFP == "" {
		d.report(s.ctx, &pb.ReportVolumeRequest{Volume: vol, Drive: dr.name, Event: "cleared", KekId: kek, KeyFingerprint: fp,
			KeyInstanceCounter: dr.kic, Detail: "job session " + s.id + ": " + why})
	}
	return err
}

// emit hands an event to the Job stream's sender; it never waits on a
// sender that is gone.
func (s *JobSession) emit(ev *pb.JobEvent) {
	select {
	case s.events <- ev:
	case <-s.senderGone:
	}
}

// onPart is jobtape's OnPart: before a byte of the tape file is written,
// the director records it (BeginWrite with the part, synchronous), so the
// tape never holds a tape file the catalog does not know; then the event.
func (s *JobSession) onPart(p jobtape.Part) error {
	s.partSeq[p.Part] = s.volSeq
	kind := "data"
	if p.Index {
		kind = "index"
	}
	part := &pb.JobPart{Part: uint32(p.Part), Kind: kind, Volume: p.Volume, VolumeSeq: s.volSeq,
		TapeFile: uint32(p.TapeFile), FirstBlock: p.FirstBlock, StreamOffset: p.StreamOffset, Drive: s.dr.name}
	err := s.d.director.BeginWrite(s.ctx, &pb.BeginWriteRequest{Volume: p.Volume, Drive: s.dr.name, TapeFile: uint32(p.TapeFile),
		KeyFingerprint: s.keyFP, JobId: s.open.Job.JobId, Part: part})
	if err != nil {
		st := status.Convert(err)
		code := st.Code()
		if directorUnreachable(err) {
			code = codes.Unavailable
		}
		return &DirectorRefusedError{Volume: p.Volume, Drive: s.dr.name, What: fmt.Sprintf("%s tape file %d of the job", kind, p.TapeFile), Code: code,
			Msg: st.Message() + "; the tape file was not written (a job's tape file is written only once the director has recorded it)"}
	}
	s.emit(&pb.JobEvent{Msg: &pb.JobEvent_Part{Part: part}})
	return nil
}

func (s *JobSession) onPartDone(p jobtape.Part) {
	verified := s.encrypted && p.Blocks > 0
	s.emit(&pb.JobEvent{Msg: &pb.JobEvent_PartDone{PartDone: &pb.JobPartDone{Part: uint32(p.Part), LastBlock: p.LastBlock, Bytes: p.Bytes,
		EarlyWarning: p.EarlyWarning, EncryptionVerified: verified}}})
	if verified && !s.dr.verified {
		s.dr.verified = true
		s.reportLater(&pb.ReportVolumeRequest{Volume: p.Volume, Drive: s.dr.name, Event: "verified", KeyFingerprint: s.dr.keyFP,
			KeyInstanceCounter: s.dr.kic, Detail: "first block of job part read back encrypted"})
	}
	if p.Blocks > 0 {
		s.reportLater(&pb.ReportVolumeRequest{Volume: p.Volume, Drive: s.dr.name, Event: "written", Bytes: uint64(p.Bytes), Blocks: p.Blocks})
	}
	if p.EarlyWarning {
		full := &pb.ReportVolumeRequest{Volume: p.Volume, Drive: s.dr.name, Event: "full"}
		if p.MaxBytes {
			full.Detail = fmt.Sprintf("max_volume_bytes reached: job %d wrote %d bytes in tape file %d (%d allowed on it)",
				s.open.Job.JobId, p.Bytes, p.TapeFile, s.maxBytes[p.Volume])
		}
		s.reportLater(full)
	}
}

// reportLater sends a volume report (best effort, as Daemon.report) from
// a goroutine of the session, in order with the others, so that the tape
// goroutine goes on to the next tape file meanwhile (each is a round trip
// to the director and a catalog transaction). Tape goroutine only.
// drainReports waits for them: before the session's end is reported and
// before the drive's key is cleared (the key's trail stays in order).
func (s *JobSession) reportLater(r *pb.ReportVolumeRequest) {
	if r.TimeUnix == 0 {
		r.TimeUnix = s.d.clock().Unix()
	}
	if s.reports == nil {
		s.reports, s.reportsDone = make(chan *pb.ReportVolumeRequest, 16), make(chan struct{})
		go func() {
			defer close(s.reportsDone)
			for r := range s.reports {
				s.d.report(s.ctx, r)
			}
		}()
	}
	s.reports <- r
}

// drainReports waits for the reports reportLater queued (tape goroutine).
func (s *JobSession) drainReports() {
	if s.reports == nil {
		return
	}
	close(s.reports)
	<-s.reportsDone
	s.reports, s.reportsDone = nil, nil
}

// address is a on the wire (blocks counted from the first block of its
// tape file, as jobtape gives them).
func (s *JobSession) address(a archive.Address) *pb.BlockAddress {
	return &pb.BlockAddress{Volume: a.Volume, TapeFile: uint32(a.TapeFile), Block: uint64(a.Block), Offset: uint32(a.Offset)}
}

// onFlushed is jobtape's OnFlushed: the batch goes to the director as
// the client's records (in flight since AddRecord, in the same order)
// with their addresses.
func (s *JobSession) onFlushed(f jobtape.Flushed) {
	recs := make([]*pb.MemberRecord, len(f.Records))
	addrs := make([]pb.BlockAddress, len(f.Records)) // one allocation a batch
	for i, p := range f.Records {
		var m *pb.MemberRecord
		if s.inflightHead < len(s.inflight) {
			m = s.inflight[s.inflightHead]
			s.inflight[s.inflightHead] = nil
			s.inflightHead++
		}
		if m == nil || m.HeaderOffset != p.Record.HeaderOffset {
			// Not the client's record (never expected): from jobtape's.
			m = memberRecord(p.Record)
		}
		a := &addrs[i]
		a.Volume, a.TapeFile, a.Block, a.Offset = p.Address.Volume, uint32(p.Address.TapeFile), uint64(p.Address.Block), uint32(p.Address.Offset)
		m.Address, m.Parts = a, nil
		for _, pa := range p.Parts {
			m.Parts = append(m.Parts, &pb.MemberPart{Part: uint32(pa.Part), Address: s.address(pa.Address), DataOffset: pa.DataOffset})
		}
		recs[i] = m
	}
	if s.inflightHead == len(s.inflight) {
		s.inflight, s.inflightHead = s.inflight[:0], 0
	} else if s.inflightHead > len(s.inflight)/2 {
		n := copy(s.inflight, s.inflight[s.inflightHead:])
		clear(s.inflight[n:])
		s.inflight, s.inflightHead = s.inflight[:n], 0
	}
	s.emit(&pb.JobEvent{Msg: &pb.JobEvent_Flushed{Flushed: &pb.JobFlushed{StreamOffset: f.StreamOffset, Records: recs}}})
}

// nextVolume is jobtape's NextVolume: ask the director (need_volume),
// wait for its answer, and mount the volume it names in the same drive.
func (s *JobSession) nextVolume(ctx context.Context, reason error) (*scsi.Device, string, error) {
	s.drainReports() // the full volume's reports before its key is cleared
	full := s.volume
	s.log.Info("volume full: asking the director for the next volume", "volume", full, "reason", reason.Error())
	s.emit(&pb.JobEvent{Msg: &pb.JobEvent_NeedVolume{NeedVolume: &pb.NeedVolume{FullVolume: full, Reason: reason.Error(), VolumeSeq: s.volSeq + 1}}})
	var c *pb.JobControl
	select {
	case c = <-s.control:
	case <-s.abortCh:
		return nil, "", s.abortErr
	}
	if why, ok := c.Msg.(*pb.JobControl_NoVolume); ok {
		return nil, "", fmt.Errorf("volume %s is full and the director has no next volume: %s", full, why.NoVolume)
	}
	nv := c.GetNextVolume()
	if nv == nil {
		return nil, "", fmt.Errorf("volume %s is full and the director's answer names no volume", full)
	}
	if err := s.release("volume " + full + " full"); err != nil {
		s.dr.fail(err)
		return nil, "", fmt.Errorf("unmounting the full volume %s: %w", full, err)
	}
	if err := s.mount(ctx, nv); err != nil {
		return nil, "", fmt.Errorf("mounting the next volume %s: %w", nv.Volume, err)
	}
	s.log.Info("next volume mounted", "volume", s.volume, "volume_seq", s.volSeq, "tape_file", nv.TapeFile)
	return s.dr.dev, s.volume, nil
}

// Control takes the director's next_volume / no_volume.
func (s *JobSession) Control(c *pb.JobControl) error {
	switch c.Msg.(type) {
	case *pb.JobControl_NextVolume, *pb.JobControl_NoVolume:
	default:
		return status.Errorf(codes.InvalidArgument, "job session %s: after open the director may send only next_volume or no_volume", s.id)
	}
	select {
	case s.control <- c:
		return nil
	default:
		return status.Errorf(codes.FailedPrecondition, "job session %s: a volume answer came while none was asked for", s.id)
	}
}

// Abort ends the session with err (the first reason wins): the tape
// goroutine ends the tape file cleanly and releases the drive.
func (s *JobSession) Abort(err error) { s.end(err, s.cancel) }

func (s *JobSession) idleFired() {
	who := "client " + s.client
	if !s.attached.Load() {
		who += " (which never connected)"
	}
	s.Abort(&DroppedError{Msg: fmt.Sprintf("%s silent for %s: dropped", who, s.idle)})
}

// run is the tape goroutine: it writes what the receiving goroutine
// hands it, and at the end (or an abort) releases the drive.
func (s *JobSession) run() {
	err := s.write()
	s.timer.Stop()
	if err != nil {
		// Ends the tape file if nothing did yet (after a tape error it
		// writes nothing) and closes the job's index spool.
		s.jw.Abort()
		// Stop the receiving side too (a tape error).
		s.Abort(err)
	}
	s.drainReports()
	rel := s.release("job session ended")
	switch {
	case rel != nil:
		s.dr.fail(rel)
		err = errors.Join(err, fmt.Errorf("releasing %s failed: %w", s.dr.name, rel))
	case err != nil:
		err = fmt.Errorf("%w; drive %s released, key cleared", err, s.dr.name)
	}
	s.dr.mu.Unlock()
	s.d.dropJob(s)
	s.d.metrics.jobEnded(err)
	if err != nil {
		s.log.Error("job session failed", "error", err.Error(), "stream_bytes", s.streamBytes.Load())
	} else {
		s.log.Info("job session done", "stream_bytes", s.summary.StreamBytes, "members", s.summary.Members, "parts", len(s.summary.Parts))
	}
	s.result = err
	close(s.done)
}

func (s *JobSession) write() error {
	for {
		select {
		case <-s.abortCh:
			return s.abortTape()
		case it := <-s.items:
			if len(it.buf) > 0 {
				n, err := s.jw.Write(it.buf)
				s.streamBytes.Add(int64(n))
				s.d.metrics.bytes.Add(float64(n))
				if err != nil {
					s.notClear(err)
					return err
				}
			}
			if it.buf != nil {
				s.queued.Add(-int64(len(it.buf)))
				link.ReleaseData(it.buf) // in the block buffers now
				select {
				case s.room <- struct{}{}:
				default:
				}
			}
			for i, r := range it.recs {
				if err := s.jw.AddRecord(r); err != nil {
					return err
				}
				s.inflight = append(s.inflight, it.pbs[i])
			}
			if it.end == nil {
				continue
			}
			if off := s.jw.Offset(); it.end.StreamBytes != off {
				s.jw.Abort()
				return fmt.Errorf("the client's end says %d stream bytes, storaged received %d", it.end.StreamBytes, off)
			}
			sum, err := s.jw.Close()
			if err != nil {
				s.notClear(err)
				return err
			}
			s.summary = sum
			if it.end.Members != 0 && it.end.Members != uint64(sum.Members) {
				s.log.Warn("the client's end names another member count than the records it sent", "client_members", it.end.Members, "records", sum.Members)
			}
			idx := sum.Index
			s.drainReports()
			s.emit(&pb.JobEvent{Msg: &pb.JobEvent_Done{Done: &pb.JobDone{Parts: uint32(len(sum.Parts)), Members: uint64(sum.Members), StreamBytes: sum.StreamBytes,
				Index: &pb.JobPart{Part: uint32(idx.Part), Kind: "index", Volume: idx.Volume, VolumeSeq: s.volSeq, TapeFile: uint32(idx.TapeFile),
					FirstBlock: idx.FirstBlock, StreamOffset: sum.StreamBytes, Drive: s.dr.name}}}})
			return nil
		}
	}
}

// abortTape ends the current tape file cleanly (flushed records and
// part_done still go to the director) and returns the abort's reason.
func (s *JobSession) abortTape() error {
	_, err := s.jw.Abort()
	if err != nil {
		return errors.Join(s.abortErr, fmt.Errorf("ending the tape file: %w", err))
	}
	return s.abortErr
}

// notClear takes a drive that wrote a clear block with encryption
// reported on out of use (as data sessions do).
func (s *JobSession) notClear(err error) {
	if scsi.IsNotEncrypted(err) {
		s.dr.clearKey("written block was not encrypted")
		s.dr.fail(err)
		s.log.Error("THE DRIVE WROTE A CLEAR BLOCK WITH ENCRYPTION REPORTED ON: the session is stopped and the drive is taken out of use", "volume", s.volume, "error", err.Error())
	}
}

func (d *Daemon) dropJob(s *JobSession) {
	d.jobsMu.Lock()
	delete(d.jobs, s.id)
	d.jobsMu.Unlock()
}

// Done is closed when the session has ended and released its drive;
// Result then says how it ended.
func (s *JobSession) Done() <-chan struct{} { return s.done }

// Result is nil for a clean end, else why it failed (after Done).
func (s *JobSession) Result() error { return s.result }

// Events are the session's events for the Job stream; call SenderGone
// when nobody reads them any more.
func (s *JobSession) Events() <-chan *pb.JobEvent { return s.events }

// SenderGone says the Job stream's sender stopped reading events.
func (s *JobSession) SenderGone() { close(s.senderGone) }

// Progress is the JobProgress now.
func (s *JobSession) Progress() *pb.JobProgress {
	s.d.jobsMu.Lock()
	vol := s.volume
	s.d.jobsMu.Unlock()
	return &pb.JobProgress{StreamBytes: s.streamBytes.Load(), Volume: vol}
}

// TokenError refuses a JobData stream (wrong, used or another session's
// token, another client's certificate). It never carries the token.
type TokenError struct{ Msg string }

func (e *TokenError) Error() string { return e.Msg }

// AttachClient checks a client's JobData open: the session exists, the
// token is this session's and unused, and the certificate is the client
// the director named. The token is then spent.
func (d *Daemon) AttachClient(session, token, peer string) (*JobSession, error) {
	d.jobsMu.Lock()
	s := d.jobs[session]
	d.jobsMu.Unlock()
	if s == nil {
		return nil, d.refuseData("job data", session, peer, noSession, "nothing was written")
	}
	if why := s.admit(token, peer); why != "" {
		return nil, d.refuseData("job data", session, peer, why, "nothing was written")
	}
	s.timer.Reset(s.idle)
	s.log.Info("client connected with the session's token")
	return s, nil
}

// ReceiveData runs a client's JobData stream after its open: a receiving
// goroutine hands each data message's buffer (up to jobQueueBytes) to the
// tape goroutine that writes them, and the idle timer restarts at every
// message. It returns once the session ended.
func (s *JobSession) ReceiveData(recv func() (*pb.JobDataRequest, error)) (*pb.JobDataReply, error) {
	go s.receive(recv)
	<-s.done
	if s.result != nil {
		return nil, s.result
	}
	return &pb.JobDataReply{StreamBytes: s.summary.StreamBytes, Parts: uint32(len(s.summary.Parts)), Volumes: s.volumes}, nil
}

func (s *JobSession) receive(recv func() (*pb.JobDataRequest, error)) {
	var cur jobItem
	// While storaged does not read (the queue is full: the tape is slower,
	// or a next volume is being asked for and mounted) the client cannot
	// send: its silence is not counted.
	ship := func() bool {
		select {
		case s.items <- cur:
			cur = jobItem{}
			return true
		default:
		}
		s.timer.Stop()
		defer s.timer.Reset(s.idle)
		select {
		case s.items <- cur:
			cur = jobItem{}
			return true
		case <-s.abortCh:
			return false
		}
	}
	for {
		msg, err := recv()
		if err == io.EOF {
			s.Abort(&DroppedError{Msg: fmt.Sprintf("client %s closed its data stream without its end", s.client)})
			return
		}
		if err != nil {
			s.Abort(&DroppedError{Msg: fmt.Sprintf("client %s's data stream broke: %s", s.client, status.Convert(err).Message())})
			return
		}
		s.timer.Reset(s.idle)
		switch m := msg.Msg.(type) {
		case *pb.JobDataRequest_Data:
			// The message's buffer itself goes to the tape goroutine (no
			// copy), with the records received before it.
			if len(m.Data) == 0 {
				continue
			}
			if !s.waitRoom() {
				return
			}
			s.queued.Add(int64(len(m.Data)))
			cur.buf = m.Data
			if !ship() {
				return
			}
		case *pb.JobDataRequest_Records:
			for _, r := range m.Records.Records {
				rec, err := archiveRecord(r)
				if err != nil {
					s.Abort(&DroppedError{Msg: fmt.Sprintf("client %s sent a bad record: %v", s.client, err)})
					return
				}
				cur.recs = append(cur.recs, rec)
				cur.pbs = append(cur.pbs, r)
			}
			if len(cur.recs) >= JobMaxBatch && !ship() {
				return
			}
		case *pb.JobDataRequest_Keepalive:
		case *pb.JobDataRequest_End:
			cur.end = m.End
			ship()
			return
		case *pb.JobDataRequest_Open:
			s.Abort(&DroppedError{Msg: fmt.Sprintf("client %s sent a second open on its data stream", s.client)})
			return
		}
	}
}

// waitRoom waits while jobQueueBytes of data wait for the tape (the idle
// timer paused meanwhile); false: the session was aborted.
func (s *JobSession) waitRoom() bool {
	if s.queued.Load() < jobQueueBytes {
		return true
	}
	s.timer.Stop()
	defer s.timer.Reset(s.idle)
	for s.queued.Load() >= jobQueueBytes {
		select {
		case <-s.room:
		case <-s.abortCh:
			return false
		}
	}
	return true
}

// archiveRecord is a client's MemberRecord as jobtape takes it.
func archiveRecord(m *pb.MemberRecord) (archive.Record, error) {
	t, ok := memberTypes[m.Type]
	if !ok {
		return archive.Record{}, fmt.Errorf("member %q: unknown type %q", m.Path, m.Type)
	}
	if n := len(m.Sha256); n != 0 && n != 32 {
		return archive.Record{}, fmt.Errorf("member %q: a sha256 of %d bytes (a SHA-256 digest is 32 bytes, or none)", m.Path, n)
	}
	r := archive.Record{Path: string(m.Path), Type: t, Size: m.Size, Mode: int64(m.Mode), UID: m.Uid, GID: m.Gid, Uname: m.Uname, Gname: m.Gname,
		Mtime: m.MtimeNs, Linkname: string(m.Linkname), Devmajor: m.Devmajor, Devminor: m.Devminor, Sparse: m.Sparse,
		HeaderOffset: m.HeaderOffset, DataOffset: m.DataOffset, StoredSize: m.StoredSize, Warnings: int(m.Warnings)}
	copy(r.SHA256[:], m.Sha256)
	return r, nil
}

// memberTypes are the archive types by the names MemberRecord.type uses.
var memberTypes = func() map[string]archive.Type {
	m := map[string]archive.Type{}
	for _, t := range []archive.Type{archive.TypeReg, archive.TypeLink, archive.TypeSymlink, archive.TypeChar, archive.TypeBlock, archive.TypeDir, archive.TypeFifo} {
		m[t.String()] = t
	}
	return m
}()

// memberRecord is r as the director takes it (address set by the caller).
func memberRecord(r archive.Record) *pb.MemberRecord {
	m := &pb.MemberRecord{Path: []byte(r.Path), Type: r.Type.String(), Size: r.Size, Mode: uint32(r.Mode), Uid: r.UID, Gid: r.GID,
		Uname: r.Uname, Gname: r.Gname, MtimeNs: r.Mtime, Linkname: []byte(r.Linkname), Sparse: r.Sparse, Devmajor: r.Devmajor,
		Devminor: r.Devminor, HeaderOffset: r.HeaderOffset, DataOffset: r.DataOffset, StoredSize: r.StoredSize, Warnings: uint32(r.Warnings)}
	if r.SHA256 != ([32]byte{}) {
		m.Sha256 = r.SHA256[:]
	}
	return m
}
