package fd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/filed/fileset"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// Seen batches: a SeenPaths event carries at most this many paths or
// bytes.
const (
	seenBatchPaths = 4096
	seenBatchBytes = 512 << 10
)

// job is one running backup.
type job struct {
	s   *Service
	req *pb.BackupRequest
	// control receives the director's messages after the request
	// (FetchPaths, FetchEnd).
	control func() (*pb.BackupControl, error)
	ctx     context.Context
	cancel  context.CancelCauseFunc
	events  chan *pb.BackupEvent
	data    *dataStream
	// dataP is data for the progress goroutine (set before the walk, the
	// stream still opening).
	dataP atomic.Pointer[dataStream]
	w     *archive.Writer
	ids   fileset.IDNames

	// stored holds the inodes with several links whose first path was
	// stored: a later path is then a link to it.
	stored map[[2]uint64]bool

	// seen is the batch of seen paths being filled, packed
	// (SeenPaths.packed), seenPaths of them; seenCap is the capacity a
	// batch starts with (the size of the one before, a little more).
	seen      []byte
	seenPaths int
	seenCap   int
	seenUnch  []byte   // bitmap: path i of seen unchanged by its times (SeenPaths.unchanged)
	unlisted  [][]byte // SeenPaths.unlisted of the batch
	// fetching: the walk is over; entries are the director's fetches
	// (stored whatever their times, not reported seen again).
	fetching bool

	recs recordAlloc
	dr   dataReader // the data of the file being stored

	// Counters (the progress goroutine reads them).
	files, bytes, examined, warnings, seenN, fetched atomic.Int64
	curMu                                            sync.Mutex
	current                                          string // the path being examined
}

// Backup runs a backup: see the Filed service. It returns once the
// storage daemon has answered end (BackupDone is the last event), or
// with the error that stopped the job: a storage daemon's error is
// returned with its code and message.
func (s *Service) Backup(stream pb.Filed_BackupServer) (err error) {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	req := first.GetRequest()
	if req == nil {
		s.o.Metrics.failed("request")
		return status.Errorf(codes.InvalidArgument, "the backup's first message is %T: it must be the request", first.Msg)
	}
	log := s.o.Logger.With("job_id", req.JobId, "job", req.Job)
	fs, err := FileSetOf(req.Fileset)
	if err == nil {
		err = checkBackupRequest(req)
	}
	if err != nil {
		s.o.Metrics.failed("request")
		s.o.Metrics.jobDone(ResultError)
		log.Warn("backup refused", "error", err.Error())
		return err
	}
	s.jobStarted(req.JobId)
	defer s.jobEnded(req.JobId)
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	j := &job{s: s, req: req, control: stream.Recv, ctx: ctx, cancel: cancel, events: make(chan *pb.BackupEvent, 64), stored: map[[2]uint64]bool{}}
	start := time.Now()
	log.Info("backup started", "level", req.Level, "fileset", fs.Name, "since_unix_ns", req.SinceUnixNs,
		"storage", req.StorageName, "storage_address", req.StorageAddress)

	var evWG sync.WaitGroup
	evWG.Add(1)
	go func() {
		defer evWG.Done()
		sendEvents(j.events, j.s.o.Progress, j.progress, stream.Send, j.s.o.Metrics, j.cancel)
	}()

	done, err := j.run(fs)
	close(j.events)
	evWG.Wait()
	result, err := s.jobEnd(ctx, stream.Context(), err, done.GetWarnings() > 0, func() error {
		return stream.Send(&pb.BackupEvent{Msg: &pb.BackupEvent_Done{Done: done}})
	})
	if err != nil {
		log.Warn("backup ended", "result", result, "error", err.Error(), "files", j.files.Load(), "bytes", j.bytes.Load(),
			"warnings", j.warnings.Load(), "duration", time.Since(start).Round(time.Millisecond).String())
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Internal, err.Error())
		}
		return err
	}
	log.Info("backup done", "result", result, "files", done.Files, "bytes", done.Bytes, "stream_bytes", done.StreamBytes,
		"warnings", done.Warnings, "unchanged", done.Unchanged, "excluded", done.Excluded,
		"duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// checkBackupRequest: the fields filed needs to reach the storage.
func checkBackupRequest(req *pb.BackupRequest) error {
	for _, f := range []struct{ name, v string }{
		{"storage_address", req.StorageAddress}, {"storage_name", req.StorageName},
		{"session", req.Session}, {"token", req.Token},
	} {
		if f.v == "" {
			return status.Errorf(codes.InvalidArgument, "BackupRequest.%s is empty: the director must give the storage daemon and the session to send the data to", f.name)
		}
	}
	return nil
}

// run dials the storage, walks and streams; it returns the totals.
func (j *job) run(fs fileset.FileSet) (*pb.BackupDone, error) {
	s, req := j.s, j.req
	tc, err := s.storageTLS(req.StorageName, req.TlsServerName)
	if err != nil {
		return nil, err
	}
	connect := func() (pb.Storage_JobDataClient, func() error, error) {
		cs, err := s.openStorage(j.ctx, tc, req.StorageAddress, req.StorageName, pb.Storage_JobData_FullMethodName)
		if err != nil {
			return nil, nil, err
		}
		return &grpc.GenericClientStream[pb.JobDataRequest, pb.JobDataReply]{ClientStream: cs}, cs.Flush, nil
	}
	// The walk starts while the stream opens; a stream that fails stops
	// it, the storage's error the cause (stopped returns it, and so does
	// a call that finds the job's context done).
	failed := func(err error) {
		if j.ctx.Err() == nil {
			j.cancel(j.storageError(err))
		}
	}
	j.data = newDataStream(j.ctx, connect, &pb.JobDataOpen{Session: req.Session, Token: req.Token}, s.o.Keepalive, s.o.Metrics, newPacer(s.o.MaxBandwidth), failed)
	j.dataP.Store(j.data)
	j.w = archive.NewWriter(j.data)

	for _, p := range parents(fs.Include) {
		m, ok, err := parentMember(p, &j.ids)
		if err != nil {
			j.warn(p, "lstat", err.Error())
			continue
		}
		if !ok {
			continue
		}
		if req.SendSeen {
			if err := j.addSeen(p, true, false); err != nil {
				return nil, err
			}
		}
		if err := j.write(m, nil); err != nil {
			return nil, err
		}
	}
	opts := fileset.WalkOptions{Since: sinceOf(req.SinceUnixNs), SkipUnchanged: !req.SendSeen, FileXattrsAtOpen: true,
		Warn: func(w fileset.Warning) { j.warn(w.Path, w.Op, w.Err.Error()) },
		Note: func(n fileset.Note) { s.o.Logger.Debug("note", "job_id", req.JobId, "note", n.String()) },
	}
	if req.SendSeen {
		opts.Unlisted = func(p string) { j.unlisted = append(j.unlisted, []byte(p)) }
	}
	st, err := fileset.Walk(j.ctx, fs, opts, j.entry)
	if err != nil {
		return nil, j.stopped(err)
	}
	if err := j.flushSeen(); err != nil {
		return nil, err
	}
	if req.SendSeen {
		if err := j.fetch(fs, opts); err != nil {
			return nil, err
		}
	}
	if err := j.w.Close(); err != nil {
		return nil, j.stopped(err)
	}
	reply, err := j.data.finish(uint64(j.files.Load()))
	if err != nil {
		return nil, j.stopped(err)
	}
	s.o.Logger.Debug("storage answered end", "job_id", req.JobId, "stream_bytes", reply.GetStreamBytes(), "parts", reply.GetParts(), "volumes", reply.GetVolumes())
	return &pb.BackupDone{Files: j.files.Load(), Bytes: j.bytes.Load(), StreamBytes: j.w.Offset(),
		Warnings: j.warnings.Load(), Unchanged: st.Unchanged, Excluded: st.Excluded, Seen: j.seenN.Load(), Fetched: j.fetched.Load()}, nil
}

// fetch follows the walk when the director records what was seen: it
// says walk_done and stores the paths the director sends back (FetchPaths,
// until FetchEnd): paths unchanged by their times that the catalog's
// view lacks, like the files of a directory moved into the backup. Each
// batch is walked as include roots with no since-time (so a path that
// became a directory is stored with its contents); a path gone since
// the walk is skipped without a warning.
func (j *job) fetch(fs fileset.FileSet, opts fileset.WalkOptions) error {
	if err := j.event(&pb.BackupEvent{Msg: &pb.BackupEvent_WalkDone{WalkDone: &pb.WalkDone{Seen: j.seenN.Load()}}}); err != nil {
		return err
	}
	j.fetching = true
	opts.Since, opts.SkipUnchanged, opts.Unlisted = time.Time{}, false, nil
	warn := opts.Warn
	opts.Warn = func(w fileset.Warning) {
		if w.Op != "include root" { // gone since the walk
			warn(w)
		}
	}
	for {
		c, err := j.control()
		if err != nil {
			if j.ctx.Err() != nil {
				return j.stopped(j.ctx.Err())
			}
			return err
		}
		switch m := c.Msg.(type) {
		case *pb.BackupControl_FetchEnd:
			return nil
		case *pb.BackupControl_Fetch:
			if len(m.Fetch.Paths) == 0 {
				continue
			}
			bf := fs
			bf.Include = make([]string, 0, len(m.Fetch.Paths))
			for _, p := range m.Fetch.Paths {
				if len(p) == 0 || p[0] != '/' || p[len(p)-1] == '/' {
					return status.Errorf(codes.InvalidArgument, "the director fetched %q: not an absolute path of a file", p)
				}
				bf.Include = append(bf.Include, string(p))
			}
			if _, err := fileset.Walk(j.ctx, bf, opts, j.entry); err != nil {
				return j.stopped(err)
			}
		default:
			return status.Errorf(codes.InvalidArgument, "after walk_done the director sent %T: only fetch and fetch_end are expected", c.Msg)
		}
	}
}

// stopped explains why the walk or the stream stopped: the storage's
// error if the data stream failed, else the cancellation or err.
func (j *job) stopped(err error) error {
	select {
	case <-j.data.done:
		if j.data.err != nil {
			j.s.o.Metrics.failed("storage")
			return j.storageError(j.data.err)
		}
	default:
	}
	if j.ctx.Err() != nil {
		if c := context.Cause(j.ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return status.FromContextError(j.ctx.Err()).Err()
	}
	j.s.o.Metrics.failed("walk")
	return walkError(j.ctx, err)
}

// storageError is a storage daemon's error, with its code and message.
func (j *job) storageError(err error) error {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Canceled && j.ctx.Err() != nil {
			return status.FromContextError(j.ctx.Err()).Err()
		}
		return status.Errorf(st.Code(), "storage %s: %s", j.req.StorageName, st.Message())
	}
	return status.Errorf(codes.Unavailable, "storage %s: %v", j.req.StorageName, err)
}

// entry is the walk's callback: store the entry (or only note its path).
func (j *job) entry(e fileset.Entry) error {
	if h := j.s.o.beforeEntry; h != nil {
		h(e)
	}
	j.examined.Add(1)
	j.curMu.Lock()
	j.current = e.Path
	j.curMu.Unlock()
	if j.req.SendSeen && !j.fetching {
		if err := j.addSeen(e.Path, e.Type == fileset.TypeDir, e.Unchanged); err != nil {
			return err
		}
	}
	if e.Unchanged {
		return nil
	}
	m := member(&e)
	switch e.Type {
	case fileset.TypeRegular:
		r, err := fileset.OpenForBackup(e)
		if err != nil {
			j.warn(e.Path, opOf(err, "open"), errText(err))
			return nil
		}
		x, xwarn := r.Xattrs()
		m.Xattrs = x
		for _, w := range xwarn {
			j.warn(w.Path, w.Op, w.Err.Error())
		}
		d := &j.dr
		*d = dataReader{r: r, sparse: e.Sparse, ext: e.Data}
		err = j.write(m, d)
		changed := r.Changed()
		r.Close()
		d.r, d.ext = nil, nil
		if err != nil {
			return err
		}
		if d.err != nil {
			j.warn(e.Path, opOf(d.err, "read"), errText(d.err)+"; the rest of the file is stored as zeros")
		} else if changed != nil {
			j.warn(e.Path, "changed", changed.Error())
		}
		if e.Nlink > 1 {
			j.stored[[2]uint64{e.Dev, e.Ino}] = true
		}
		return nil
	case fileset.TypeHardlink:
		if !j.stored[[2]uint64{e.Dev, e.Ino}] {
			j.warn(e.Path, "link", "not stored: it is a hard link to "+strconv.Quote(e.Linkname)+", which could not be stored")
			return nil
		}
	}
	return j.write(m, nil)
}

// write writes one member and queues its record.
func (j *job) write(m archive.Member, data *dataReader) error {
	var rec archive.Record
	var err error
	if data != nil {
		rec, err = j.w.WriteMember(m, data)
	} else {
		rec, err = j.w.WriteMember(m, nil)
	}
	if err != nil {
		return err
	}
	j.data.record(j.w.Offset(), j.recs.wire(&rec))
	if j.fetching {
		j.fetched.Add(1)
	}
	j.files.Add(1)
	j.bytes.Add(rec.Size)
	j.s.o.Metrics.sent(0, rec.Size, 1)
	return nil
}

func opOf(err error, def string) string {
	var w *fileset.Warning
	if errors.As(err, &w) && w.Op != "" {
		return w.Op
	}
	return def
}

func errText(err error) string {
	var w *fileset.Warning
	if errors.As(err, &w) && w.Err != nil {
		return w.Err.Error()
	}
	return err.Error()
}

// warn reports a per-file warning: the job goes on (and ends W).
func (j *job) warn(path, op, msg string) {
	j.warnings.Add(1)
	j.s.o.Metrics.warning(op)
	j.s.o.Logger.Debug("file warning", "job_id", j.req.JobId, "op", op, "path", strconv.Quote(path), "message", msg)
	j.event(&pb.BackupEvent{Msg: &pb.BackupEvent_Warning{Warning: &pb.FileWarning{Path: []byte(path), Op: op, Message: msg}}})
}

// addSeen adds a path the job saw (a directory's ending in '/', as
// memberPath gives it) to the batch, and queues the batch when it is
// full. A queued batch's buffer is not touched again.
func (j *job) addSeen(p string, dir, unchanged bool) error {
	if j.seen == nil {
		j.seen = make([]byte, 0, max(j.seenCap, 64<<10))
		j.seenUnch = make([]byte, seenBatchPaths/8)
	}
	if unchanged {
		j.seenUnch[j.seenPaths/8] |= 1 << (j.seenPaths % 8)
	}
	if dir && !strings.HasSuffix(p, "/") {
		j.seen = pb.AppendPacked(j.seen, p, "/")
	} else {
		j.seen = pb.AppendPacked(j.seen, p)
	}
	j.seenPaths++
	j.seenN.Add(1)
	if j.seenPaths >= seenBatchPaths || len(j.seen) >= seenBatchBytes {
		return j.flushSeen()
	}
	return nil
}

func (j *job) flushSeen() error {
	if j.seenPaths == 0 && len(j.unlisted) == 0 {
		return nil
	}
	sp := &pb.SeenPaths{Packed: j.seen, Unlisted: j.unlisted}
	if j.seenPaths > 0 {
		sp.Unchanged = j.seenUnch[:(j.seenPaths+7)/8]
	}
	ev := &pb.BackupEvent{Msg: &pb.BackupEvent_Seen{Seen: sp}}
	j.seenCap = min(len(j.seen)+len(j.seen)/8, seenBatchBytes+4096)
	j.seen, j.seenPaths, j.seenUnch, j.unlisted = nil, 0, nil, nil
	return j.event(ev)
}

// event queues an event for the director (blocking while the queue is
// full: a slow director slows the walk, memory stays bounded).
func (j *job) event(ev *pb.BackupEvent) error {
	select {
	case j.events <- ev:
		return nil
	case <-j.ctx.Done():
		return context.Cause(j.ctx)
	}
}

func (j *job) progress() *pb.BackupEvent {
	p := &pb.BackupProgress{Files: j.files.Load(), Bytes: j.bytes.Load(), Examined: j.examined.Load()}
	if d := j.dataP.Load(); d != nil {
		p.StreamBytes = d.sent.Load()
	}
	j.curMu.Lock()
	if j.current != "" {
		p.Current = []byte(j.current)
	}
	j.curMu.Unlock()
	return &pb.BackupEvent{Msg: &pb.BackupEvent_Progress{Progress: p}}
}

// sendEvents is the only goroutine that sends on a Backup or Restore
// stream until the job is done: queued events, and progress() every
// period (and once more when events closes). A director that cannot be
// sent to stops the job (cancel).
func sendEvents[E any](events <-chan E, period time.Duration, progress func() E, send func(E) error, m *Metrics, cancel func(error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	failed := false
	try := func(ev E) {
		if failed {
			return
		}
		if err := send(ev); err != nil {
			failed = true
			m.failed("director")
			cancel(fmt.Errorf("sending to the director: %w", err))
		}
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				try(progress())
				return
			}
			try(ev)
		case <-t.C:
			try(progress())
		}
	}
}

// jobEnd ends a backup or restore: the job's cause when its context
// ended, else sendDone (the stream's last message); then the result for
// the metrics — canceled when the director's stream ended, error,
// warnings (warned), or ok — and the error to return.
func (s *Service) jobEnd(ctx, stream context.Context, err error, warned bool, sendDone func() error) (string, error) {
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		if err = sendDone(); err != nil {
			s.o.Metrics.failed("director")
		}
	}
	result := ResultOK
	switch {
	case stream.Err() != nil:
		result, err = ResultCanceled, status.FromContextError(stream.Err()).Err()
	case err != nil:
		result = ResultError
	case warned:
		result = ResultWarnings
	}
	s.o.Metrics.jobDone(result)
	return result, err
}
