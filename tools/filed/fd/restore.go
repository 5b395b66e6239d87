package fd

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/extract"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

// restoreJob is one running restore.
type restoreJob struct {
	s      *Service
	req    *pb.RestoreRequest
	ctx    context.Context
	cancel context.CancelCauseFunc
	events chan *pb.RestoreFiledEvent
	w      *extract.Writer

	curMu   sync.Mutex
	current []byte // the member being written
}

// Restore runs a restore: see the Filed service. It dials the storage
// daemon's RestoreData with the session's token and writes each member
// it receives with a extract.Writer under the request's relocation.
// Per-file problems are RestoreFileError events (the restore goes on);
// RestoreFiledDone is the last event of a restore that read the whole
// stream. A storage daemon's error is returned with its code and
// message; cancelling the call stops the restore (the file being
// written is removed, no temporary file is left).
func (s *Service) Restore(req *pb.RestoreRequest, stream pb.Filed_RestoreServer) error {
	log := s.o.Logger.With("job_id", req.JobId)
	rules := rulesOf(req.Relocation)
	rl, replace, err := checkRestoreRequest(req, rules)
	if err != nil {
		s.o.Metrics.failed("request")
		s.o.Metrics.jobDone(ResultError)
		log.Warn("restore refused", "error", err.Error())
		return err
	}
	s.jobStarted(req.JobId)
	defer s.jobEnded(req.JobId)
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	j := &restoreJob{s: s, req: req, ctx: ctx, cancel: cancel, events: make(chan *pb.RestoreFiledEvent, 64)}
	start := time.Now()
	log.Info("restore started", "relocation", rules.String(), "replace", replace.String(),
		"storage", req.StorageName, "storage_address", req.StorageAddress)

	j.w, err = extract.New(extract.Options{Relocator: rl, Replace: replace, Report: j.fileError, Workers: restoreWorkers})
	if err != nil {
		s.o.Metrics.failed("target")
		s.o.Metrics.jobDone(ResultError)
		log.Warn("restore ended", "result", ResultError, "error", err.Error())
		return status.Errorf(codes.FailedPrecondition, "filed %s: %v", s.o.Name, err)
	}
	var evWG sync.WaitGroup
	evWG.Add(1)
	go func() {
		defer evWG.Done()
		sendEvents(j.events, j.s.o.Progress, j.progress, stream.Send, j.s.o.Metrics, j.cancel)
	}()

	err = j.run()
	j.w.Close() // directory attributes, also after an error
	close(j.events)
	evWG.Wait()
	st := j.w.Stats()
	result, err := s.jobEnd(ctx, stream.Context(), err, st.Errors > 0, func() error {
		return stream.Send(&pb.RestoreFiledEvent{Msg: &pb.RestoreFiledEvent_Done{Done: &pb.RestoreFiledDone{
			Files: st.Files, Bytes: st.Bytes, Skipped: st.Skipped, Errors: st.Errors}}})
	})
	dur := time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		log.Warn("restore ended", "result", result, "error", err.Error(), "files", st.Files, "bytes", st.Bytes,
			"skipped", st.Skipped, "errors", st.Errors, "duration", dur)
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Internal, err.Error())
		}
		return err
	}
	log.Info("restore done", "result", result, "files", st.Files, "bytes", st.Bytes, "skipped", st.Skipped,
		"errors", st.Errors, "root", j.w.Root(), "duration", dur)
	return nil
}

// rulesOf converts the wire relocation.
func rulesOf(r *pb.Relocation) relocate.Rules {
	if r == nil {
		return relocate.Rules{}
	}
	return relocate.Rules{Where: r.Where, StripPrefix: r.StripPrefix, AddPrefix: r.AddPrefix, AddSuffix: r.AddSuffix, RegexWhere: r.Regexwhere}
}

// checkRestoreRequest: the storage and session, the relocation rules
// and replace=; errors are InvalidArgument statuses naming the field.
func checkRestoreRequest(req *pb.RestoreRequest, rules relocate.Rules) (*relocate.Relocator, extract.Replace, error) {
	for _, f := range []struct{ name, v string }{
		{"storage_address", req.StorageAddress}, {"storage_name", req.StorageName},
		{"session", req.Session}, {"token", req.Token},
	} {
		if f.v == "" {
			return nil, 0, status.Errorf(codes.InvalidArgument, "RestoreRequest.%s is empty: the director must give the storage daemon and the session to read the data from", f.name)
		}
	}
	rl, err := relocate.New(rules)
	if err != nil {
		return nil, 0, status.Errorf(codes.InvalidArgument, "RestoreRequest.relocation: %v", err)
	}
	replace, err := extract.ParseReplace(req.Replace)
	if err != nil {
		return nil, 0, status.Errorf(codes.InvalidArgument, "RestoreRequest.replace: %v", err)
	}
	return rl, replace, nil
}

// run dials the storage and writes the members it sends.
func (j *restoreJob) run() error {
	s, req := j.s, j.req
	tc, err := s.storageTLS(req.StorageName, req.TlsServerName)
	if err != nil {
		return err
	}
	cs, err := s.openStorage(j.ctx, tc, req.StorageAddress, req.StorageName, pb.Storage_RestoreData_FullMethodName)
	if err != nil {
		return err
	}
	defer cs.Close()
	rs := &grpc.GenericClientStream[pb.RestoreDataRequest, pb.RestoreDataReply]{ClientStream: cs}
	if err = rs.SendMsg(&pb.RestoreDataRequest{Session: req.Session, Token: req.Token}); err == nil {
		err = rs.CloseSend()
	}
	if err != nil {
		s.o.Metrics.failed("storage")
		if err == io.EOF {
			err = rs.RecvMsg(&pb.RestoreDataReply{}) // the stream's status
		}
		return j.storageError(err)
	}
	d := receiveAhead(j.ctx, rs, newPacer(j.s.o.MaxBandwidth))
	defer d.stop()
	r, err := d.recv()
	msg := r.m
	var lastSeq uint64
	for err == nil {
		if msg == nil {
			r.data.Free()
			return status.Errorf(codes.DataLoss, "storage %s: data before the first member", req.StorageName)
		}
		switch x := msg.Msg.(type) {
		case *pb.RestoreDataReply_End:
			st := j.w.Stats()
			s.o.Logger.Debug("storage answered end", "job_id", req.JobId, "members", x.End.GetMembers(), "bytes", x.End.GetBytes(),
				"written", st.Files, "skipped", st.Skipped, "errors", st.Errors)
			return nil
		case *pb.RestoreDataReply_Member:
			rm := x.Member
			if rm.GetRecord() == nil {
				return status.Errorf(codes.DataLoss, "storage %s: member %d without its record", req.StorageName, rm.GetSeq())
			}
			if rm.Seq <= lastSeq && lastSeq > 0 {
				return status.Errorf(codes.DataLoss, "storage %s: member %d after member %d: out of plan order", req.StorageName, rm.Seq, lastSeq)
			}
			lastSeq = rm.Seq
			m := memberOf(rm)
			j.curMu.Lock()
			j.current = rm.Record.Path
			j.curMu.Unlock()
			d.start()
			if err := j.w.Restore(j.ctx, m, d); err != nil {
				return j.stopped(d, err)
			}
			// What the writer did not read of the member (padding, or
			// all of it after a refusal).
			if _, err := io.Copy(io.Discard, d); err != nil {
				return j.stopped(d, err)
			}
			msg, err = d.next, nil
		default:
			return status.Errorf(codes.DataLoss, "storage %s: a message of no known kind where a member or the end was due", req.StorageName)
		}
	}
	return j.stopped(d, err)
}

// stopped explains why the restore stopped: the cancellation, or the
// storage's error.
func (j *restoreJob) stopped(d *memberData, err error) error {
	if j.ctx.Err() != nil {
		if c := context.Cause(j.ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return status.FromContextError(j.ctx.Err()).Err()
	}
	if d.err != nil {
		err = d.err
	}
	j.s.o.Metrics.failed("storage")
	return j.storageError(err)
}

func (j *restoreJob) storageError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return status.Errorf(codes.DataLoss, "storage %s: the data stream ended before its end message", j.req.StorageName)
	}
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Canceled && j.ctx.Err() != nil {
			return status.FromContextError(j.ctx.Err()).Err()
		}
		return status.Errorf(st.Code(), "storage %s: %s", j.req.StorageName, st.Message())
	}
	return status.Errorf(codes.Unavailable, "storage %s: %v", j.req.StorageName, err)
}

// memberOf converts a planned member.
func memberOf(rm *pb.RestoreMember) extract.Member {
	r := rm.Record
	return extract.Member{Path: string(r.Path), WriteAs: string(rm.WriteAs), Type: r.Type, Size: r.Size, Mode: r.Mode,
		UID: r.Uid, GID: r.Gid, MtimeNs: r.MtimeNs, Linkname: string(r.Linkname), SHA256: r.Sha256, Sparse: r.Sparse,
		Devmajor: r.Devmajor, Devminor: r.Devminor, FromRecord: rm.FromRecord}
}

// restoreWorkers write a restore's small files (extract.Options.Workers)
// while the next members are received and checked.
const restoreWorkers = 2

// restoreAhead is how many RestoreData messages (256 KiB of data each
// at most) a restore receives ahead of the writer: receiving (TLS,
// unmarshalling) runs while a file is written and hashed.
const restoreAhead = 16

// memberData reads one member's bytes from the RestoreData stream: the
// data messages up to the next member or end (kept in next). A goroutine
// receives the messages ahead (receiveAhead).
type memberData struct {
	ctx  context.Context
	in   chan received
	quit chan struct{}
	cur  link.Frames          // the rest of the data message being read
	next *pb.RestoreDataReply // the message that ended the member
	err  error                // the stream's error
}

// received is a message of the stream: data (in the receive buffers, not
// copied out of them: the writer hashes and writes a file's data from
// them, Lend) or another message.
type received struct {
	m    *pb.RestoreDataReply // nil: data
	data link.Frames
	err  error
}

// receiveAhead starts receiving rs's messages into a queue of
// restoreAhead, data at most as fast as pace lets; it stops after the end
// message, an error, ctx's end or stop.
func receiveAhead(ctx context.Context, rs pb.Storage_RestoreDataClient, pace *pacer) *memberData {
	d := &memberData{ctx: ctx, in: make(chan received, restoreAhead), quit: make(chan struct{})}
	go func() {
		for {
			in := link.DataIn{Msg: &pb.RestoreDataReply{}}
			err := rs.RecvMsg(&in)
			r := received{m: in.Msg.(*pb.RestoreDataReply), data: in.Frames, err: err}
			if x, ok := r.m.Msg.(*pb.RestoreDataReply_Data); ok {
				r.m, r.data = nil, link.FramesOf(x.Data) // small: protobuf decoded it
			} else if r.data.Len() > 0 {
				r.m = nil
			}
			if r.m == nil {
				if pace.wait(ctx, r.data.Len()) != nil {
					return // ctx ended: recv says so
				}
			}
			select {
			case d.in <- r:
			case <-d.quit:
				return
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			if r.m != nil {
				if _, end := r.m.Msg.(*pb.RestoreDataReply_End); end {
					return
				}
			}
		}
	}()
	return d
}

// stop lets the receiving goroutine go (its Recv ends with the stream).
func (d *memberData) stop() { close(d.quit) }

// recv is the next message; for data, m is nil.
func (d *memberData) recv() (received, error) {
	select {
	case r := <-d.in:
		if r.err != nil {
			d.err = r.err
			return received{}, r.err
		}
		return r, nil
	case <-d.ctx.Done():
		d.err = context.Cause(d.ctx)
		return received{}, d.err
	}
}

// start begins the member whose record was just received.
func (d *memberData) start() { d.cur.Free(); d.next = nil }

// fill makes cur hold more of the member's data: io.EOF at its end. A
// used-up message's buffers go back to the pool here (pieces Lend gave
// out are no longer used once the writer asks again).
func (d *memberData) fill() error {
	for d.cur.Len() == 0 {
		d.cur.Free()
		if d.next != nil {
			return io.EOF
		}
		if d.err != nil {
			return d.err
		}
		r, err := d.recv()
		if err != nil {
			if err == io.EOF {
				d.err = io.ErrUnexpectedEOF
				return d.err
			}
			return err
		}
		if r.m == nil {
			d.cur = r.data
			continue
		}
		d.next = r.m
	}
	return nil
}

func (d *memberData) Read(p []byte) (int, error) {
	if err := d.fill(); err != nil {
		return 0, err
	}
	n := d.cur.Read(p)
	if d.cur.Len() == 0 {
		d.cur.Free() // the receive buffers go back to the pool
	}
	return n, nil
}

// Lend implements extract.Lender: the data as they came in, in the
// receive buffers, which go back to the pool at the next Lend or Read.
func (d *memberData) Lend(max int, dst [][]byte) ([][]byte, error) {
	if err := d.fill(); err != nil {
		return dst, err
	}
	return d.cur.Lend(max, dst), nil
}

// fileError queues a RestoreFileError event.
func (j *restoreJob) fileError(e *extract.FileError) {
	j.s.o.Metrics.warning("restore-" + e.Op)
	j.s.o.Logger.Debug("restore file error", "job_id", j.req.JobId, "op", e.Op, "path", strconv.Quote(e.Path),
		"target", strconv.Quote(e.Target), "message", e.Message)
	ev := &pb.RestoreFiledEvent{Msg: &pb.RestoreFiledEvent_Error{Error: &pb.RestoreFileError{
		Path: []byte(e.Path), Target: []byte(e.Target), Op: e.Op, Message: e.Message}}}
	select {
	case j.events <- ev:
	case <-j.ctx.Done():
	}
}

func (j *restoreJob) progress() *pb.RestoreFiledEvent {
	st := j.w.Stats()
	p := &pb.RestoreFiledProgress{Files: st.Files, Bytes: st.Bytes, Skipped: st.Skipped}
	j.curMu.Lock()
	p.Current = j.current
	j.curMu.Unlock()
	return &pb.RestoreFiledEvent{Msg: &pb.RestoreFiledEvent_Progress{Progress: p}}
}
