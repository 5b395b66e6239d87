package sd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// CancelledError ends a session the director cancelled (or whose Job
// stream it closed).
type CancelledError struct{ Msg string }

func (e *CancelledError) Error() string { return e.Msg }

// progressEvery is how often a Job stream carries a JobProgress.
const progressEvery = time.Second

// Job runs a job session for the director: open (JobControl.open) →
// started with the token (the volume mounts meanwhile) → opened; then
// parts, flushed records, part ends, volume requests and progress until
// done, or an error status (job.go).
func (s *Service) Job(stream pb.Storage_JobServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "Job: the first message must be open")
	}
	js, err := s.D.OpenJob(stream.Context(), open)
	if err != nil {
		return rpcError(err)
	}
	go func() {
		for {
			c, err := stream.Recv()
			if err != nil {
				why := "the director closed the Job stream"
				if err != io.EOF {
					why = "the director cancelled the job session (" + status.Convert(err).Message() + ")"
				}
				js.Abort(&CancelledError{Msg: fmt.Sprintf("job session %s: %s", js.id, why)})
				return
			}
			if err := js.Control(c); err != nil {
				js.Abort(err)
				return
			}
		}
	}()
	var sendErr error
	send := func(ev *pb.JobEvent) {
		if sendErr == nil {
			if sendErr = stream.Send(ev); sendErr != nil {
				js.Abort(&CancelledError{Msg: fmt.Sprintf("job session %s: the Job stream broke: %s", js.id, status.Convert(sendErr).Message())})
			}
		}
	}
	// started at once (the client may connect while the volume mounts),
	// opened once it is mounted; a failed mount ends the session (Done).
	send(&pb.JobEvent{Msg: &pb.JobEvent_Started{Started: js.Started()}})
	select {
	case <-js.Mounted():
	case <-js.Done():
	}
	select {
	case <-js.Mounted():
		send(&pb.JobEvent{Msg: &pb.JobEvent_Opened{Opened: js.Opened()}})
	default:
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case ev := <-js.Events():
			send(ev)
		case <-tick.C:
			send(&pb.JobEvent{Msg: &pb.JobEvent_Progress{Progress: js.Progress()}})
		case <-js.Done():
			for {
				select {
				case ev := <-js.Events():
					send(ev)
					continue
				default:
				}
				break
			}
			js.SenderGone()
			if err := js.Result(); err != nil {
				return rpcError(err)
			}
			return sendErr
		}
	}
}

// JobData takes a client's stream for a session: the open with the
// session's token, then data, records, keepalives and end.
func (s *Service) JobData(stream pb.Storage_JobDataServer) error {
	p, err := tlsconf.PeerOf(stream.Context())
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "JobData: %v", err)
	}
	if p.Role != tlsconf.RoleClient {
		return status.Errorf(codes.PermissionDenied, "JobData takes data from clients (certificate role client) only; the caller is %s", p)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "JobData: the first message must be open (session and token)")
	}
	js, err := s.D.AttachClient(open.Session, open.Token, p.Name)
	if err != nil {
		return rpcError(err)
	}
	reply, err := js.ReceiveData(stream.Recv)
	if err != nil {
		return rpcError(err)
	}
	return stream.SendAndClose(reply)
}

// AcceptPeer is storaged's TLS handshake check: the director it is
// configured with, and clients (role client, any name: JobData checks
// the name against the session's).
func AcceptPeer(director string) func(tlsconf.Peer) error {
	return func(p tlsconf.Peer) error {
		switch {
		case p.Role == tlsconf.RoleDirector && p.Name == director:
			return nil
		case p.Role == tlsconf.RoleClient:
			return nil
		case p.Role == tlsconf.RoleDirector:
			return fmt.Errorf("certificate names %s, which is not configured here (expected director %q)", p, director)
		}
		return fmt.Errorf("certificate of %s has role %q; this service accepts director %q and clients", p.Name, p.Role, director)
	}
}

// Authorize returns the interceptors that let only the configured
// director call any method but JobData and RestoreData (which a client
// calls, and which check the caller themselves).
func Authorize(director string) []grpc.ServerOption {
	check := func(ctx context.Context, method string) error {
		if method == pb.Storage_JobData_FullMethodName || method == pb.Storage_RestoreData_FullMethodName {
			return nil
		}
		p, err := tlsconf.PeerOf(ctx)
		if err != nil {
			return status.Errorf(codes.PermissionDenied, "%s: %v", method, err)
		}
		if p.Role != tlsconf.RoleDirector || p.Name != director {
			return status.Errorf(codes.PermissionDenied, "%s is for director %q only; the caller is %s", method, director, p)
		}
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// jobCode maps the job session errors to gRPC codes (rpcError).
func jobCode(err error) (codes.Code, bool) {
	var (
		bs *BusyStorageError
		pe *PositionError
		de *DroppedError
		te *TokenError
		ce *CancelledError
		ni *NotInLibraryError
		pl *PlanError
	)
	switch {
	case errors.As(err, &ni), errors.As(err, &pl):
		return codes.FailedPrecondition, true
	case errors.As(err, &te):
		return codes.PermissionDenied, true
	case errors.As(err, &bs):
		return codes.ResourceExhausted, true
	case errors.As(err, &pe):
		return codes.FailedPrecondition, true
	case errors.As(err, &ce):
		return codes.Canceled, true
	case errors.As(err, &de):
		return codes.Aborted, true
	}
	return 0, false
}

// Restore runs a restore session for the director: open → opened with
// the token; then the plan (volumes, plan_end) while mounted and
// progress events come back, and done with the totals, or an error
// status (restore.go).
func (s *Service) Restore(stream pb.Storage_RestoreServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "Restore: the first message must be open")
	}
	rs, err := s.D.OpenRestore(stream.Context(), open)
	if err != nil {
		return rpcError(err)
	}
	go func() {
		for {
			c, err := stream.Recv()
			if err == io.EOF && rs.PlanEnded() {
				// The director closed its side after the plan: the
				// session goes on until it ends or the stream does.
				select {
				case <-stream.Context().Done():
					rs.Abort(&CancelledError{Msg: fmt.Sprintf("restore session %s: the director cancelled the restore", rs.id)})
				case <-rs.Done():
				}
				return
			}
			if err != nil {
				why := "the director closed the Restore stream before plan_end"
				if err != io.EOF {
					why = "the director cancelled the restore (" + status.Convert(err).Message() + ")"
				}
				rs.Abort(&CancelledError{Msg: fmt.Sprintf("restore session %s: %s", rs.id, why)})
				return
			}
			if err := rs.Control(c); err != nil {
				rs.Abort(err)
				return
			}
		}
	}()
	var sendErr error
	send := func(ev *pb.RestoreEvent) {
		if sendErr == nil {
			if sendErr = stream.Send(ev); sendErr != nil {
				rs.Abort(&CancelledError{Msg: fmt.Sprintf("restore session %s: the Restore stream broke: %s", rs.id, status.Convert(sendErr).Message())})
			}
		}
	}
	send(&pb.RestoreEvent{Msg: &pb.RestoreEvent_Opened{Opened: rs.Opened()}})
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var last *pb.RestoreProgress
	for {
		select {
		case ev := <-rs.Events():
			send(ev)
		case <-tick.C:
			if p := rs.Progress(); last == nil || p.Members != last.Members || p.Bytes != last.Bytes || p.BlocksRead != last.BlocksRead || p.Volume != last.Volume {
				last = p
				send(&pb.RestoreEvent{Msg: &pb.RestoreEvent_Progress{Progress: p}})
			}
		case <-rs.Done():
			for {
				select {
				case ev := <-rs.Events():
					send(ev)
					continue
				default:
				}
				break
			}
			rs.SenderGone()
			if err := rs.Result(); err != nil {
				return rpcError(err)
			}
			send(&pb.RestoreEvent{Msg: &pb.RestoreEvent_Progress{Progress: rs.Progress()}})
			send(&pb.RestoreEvent{Msg: &pb.RestoreEvent_Done{Done: rs.Summary()}})
			return sendErr
		}
	}
}

// RestoreData sends a restore session's members to its client: the
// request carries the session and its token.
func (s *Service) RestoreData(req *pb.RestoreDataRequest, stream pb.Storage_RestoreDataServer) error {
	p, err := tlsconf.PeerOf(stream.Context())
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "RestoreData: %v", err)
	}
	if p.Role != tlsconf.RoleClient {
		return status.Errorf(codes.PermissionDenied, "RestoreData sends data to clients (certificate role client) only; the caller is %s", p)
	}
	rs, err := s.D.AttachRestore(req.Session, req.Token, p.Name)
	if err != nil {
		return rpcError(err)
	}
	go func() {
		select {
		case <-stream.Context().Done():
			rs.Abort(&DroppedError{Msg: fmt.Sprintf("client %s closed its restore data stream before the end", p.Name)})
		case <-rs.Done():
			if rs.Result() != nil {
				// A direct stream's write to a client that stopped
				// reading would wait for it: the status gets a while.
				link.AbandonStream(stream.Context(), abandonedWrite)
			}
		}
	}()
	return rpcError(rs.SendData(stream.SendMsg, func() error { return link.FlushStream(stream.Context()) }))
}

// abandonedWrite is how long a failed session's data stream may still
// take to write (the error status to a client that reads).
const abandonedWrite = 5 * time.Second
