package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// ConsoleService serves tapectl.
type ConsoleService struct {
	pb.UnimplementedConsoleServer
	D *Director
}

// Output is what a command produced.
type Output struct {
	Text    string
	JSON    any // marshalled when the console asks for JSON
	Partial bool
	File    string
	Content []byte
}

// Progress receives progress lines of long commands.
type Progress func(format string, a ...any)

// Run parses one console line and runs it. The parser never panics on
// any input (fuzzed); its errors go back as InvalidArgument.
func (s *ConsoleService) Run(r *pb.RunRequest, stream pb.Console_RunServer) error {
	p, err := tlsconf.PeerOf(stream.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	cmd, err := console.Parse(r.Line)
	if errors.Is(err, console.ErrEmpty) {
		return stream.Send(&pb.RunReply{Msg: &pb.RunReply_Result{Result: &pb.Result{}}})
	}
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	progress := func(format string, a ...any) {
		stream.Send(&pb.RunReply{Msg: &pb.RunReply_Progress{Progress: fmt.Sprintf(format, a...)}})
	}
	s.D.log.Info("console command", "console", p.Name, "command", cmd.String())
	out, err := s.D.Exec(stream.Context(), p.Name, cmd, progress)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return catalogStatus(err)
	}
	res := &pb.Result{Text: out.Text, PartialFailure: out.Partial, FileName: out.File, FileContent: out.Content}
	if r.Json && out.JSON != nil {
		b, err := json.MarshalIndent(out.JSON, "", "  ")
		if err != nil {
			return status.Errorf(codes.Internal, "encoding the result: %v", err)
		}
		res.Json = string(b)
	}
	return stream.Send(&pb.RunReply{Msg: &pb.RunReply_Result{Result: res}})
}

// Exec runs a parsed command for the console named actor, after checking
// that actor is a configured console ([[console]]) whose role may run it
// (console.Permit); otherwise it runs nothing and returns PermissionDenied.
// Key events record actor, the configured name.
func (d *Director) Exec(ctx context.Context, actor string, cmd console.Command, progress Progress) (*Output, error) {
	role, ok := d.consoles[actor]
	if !ok {
		return nil, status.Error(codes.PermissionDenied, d.unconfiguredConsole(actor).Error())
	}
	if err := console.Permit(cmd, actor, role); err != nil {
		d.log.Warn("console command refused", "console", actor, "role", role.String(), "command", cmd.Name)
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	switch cmd.Name {
	case "label", "import", "update volume", "update pool", "prune volume", "purge volume":
		// A job waiting for a volume (max_volume_wait) tries again.
		if d.jobs != nil {
			defer d.jobs.VolumesChanged()
		}
	}
	switch cmd.Name {
	case "help":
		text, err := console.HelpFor(cmd.Str("topic"), role)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return &Output{Text: text}, nil
	case "label":
		return d.label(ctx, actor, cmd, progress)
	case "list volumes":
		if cmd.Bool("vault") {
			return d.listVault(ctx, cmd.Str("pool"))
		}
		return d.listVolumes(ctx, cmd)
	case "export volume":
		return d.exportVolume(ctx, actor, cmd.Str("volume"), cmd.Bool("yes"))
	case "import":
		return d.importVolumes(ctx, actor, cmd.Str("storage"))
	case "prune volume", "purge volume":
		return d.pruneVolume(ctx, actor, cmd.Str("volume"), cmd.Name == "prune volume", cmd.Bool("yes"))
	case "list keyevents":
		return d.listKeyEvents(ctx, cmd)
	case "list volumeevents":
		return d.listVolumeEvents(ctx, cmd)
	case "status storage":
		return d.statusStorage(ctx, cmd.Str("storage"))
	case "status director":
		return d.statusDirector(ctx)
	case "status kek":
		return d.statusKEK(ctx, cmd.Str("kek"))
	case "mount":
		return d.mount(ctx, cmd)
	case "unmount", "release":
		return d.unmount(ctx, cmd)
	case "update volume":
		if cmd.Str("status") != "" {
			return d.updateVolumeStatus(ctx, actor, cmd)
		}
		return d.updateVolume(ctx, actor, cmd)
	case "update pool":
		return d.updatePool(ctx, cmd)
	case "list pools":
		return d.listPools(ctx)
	case "rekey":
		return d.rekey(ctx, actor, cmd.Bool("yes"), progress)
	case "export keys":
		return d.exportKeys(ctx, actor, cmd)
	case "shred volume":
		return d.shredVolume(ctx, actor, cmd.Str("volume"), cmd.Bool("yes"))
	case "run":
		return d.runJob(ctx, actor, cmd, progress)
	case "wait":
		return d.waitJob(ctx, cmd, progress)
	case "cancel":
		return d.cancelJob(ctx, actor, cmd)
	case "estimate":
		return d.estimate(ctx, cmd)
	case "restore":
		return d.restore(ctx, actor, cmd, progress)
	case "browse":
		return d.browseLine(ctx, actor, cmd, progress)
	case "list jobs":
		return d.listJobs(ctx, cmd)
	case "list files":
		return d.listFiles(ctx, cmd)
	case "list jobmedia":
		return d.listJobMedia(ctx, cmd)
	case "list joblog":
		return d.listJobLog(ctx, cmd)
	case "status client":
		return d.statusClient(ctx, cmd.Str("client"))
	case "status scheduler":
		return d.statusScheduler(ctx, cmd)
	case "quit":
		return &Output{Text: "bye"}, nil
	}
	return nil, status.Errorf(codes.Unimplemented, "%s: not implemented in this director", cmd.Name)
}

// migrate applies pending catalog migrations (under tern's advisory lock).
func migrate(ctx context.Context, store *catalog.Store) error {
	c, err := store.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	if err := migrations.Apply(ctx, c.Conn()); err != nil {
		return fmt.Errorf("applying catalog migrations: %w", err)
	}
	return nil
}

// catalogStatus maps catalog errors to gRPC codes; the text is the
// catalog's (which never holds key material).
func catalogStatus(err error) error {
	var (
		ce *catalog.ConflictError
		he *catalog.HasDataError
		ie *catalog.InvalidError
		ue *catalog.UnreachableError
		se *catalog.StateError
		re *catalog.RekeyError
		no *catalog.NotOwnedError
		lm *catalog.LabelMismatchError
		wr *catalog.WriteRefusedError
		te *catalog.TransitionError
		rt *catalog.RetentionError
		iu *catalog.VolumeInUseError
	)
	code := codes.Internal
	switch {
	case errors.Is(err, catalog.ErrShredded), errors.Is(err, catalog.ErrNothingToShred):
		code = codes.FailedPrecondition
	case asErr(err, &ue), catalog.Unavailable(err):
		code = codes.Unavailable
	case asErr(err, &ce):
		code = codes.AlreadyExists
	case isNotFound(err):
		code = codes.NotFound
	case asErr(err, &he), asErr(err, &se), asErr(err, &re), asErr(err, &lm), asErr(err, &wr), asErr(err, &te), asErr(err, &rt), asErr(err, &iu), errors.Is(err, catalog.ErrNotEncrypted):
		code = codes.FailedPrecondition
	case asErr(err, &ie):
		code = codes.InvalidArgument
	case asErr(err, &no):
		code = codes.PermissionDenied
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	msg := err.Error()
	if code == codes.Internal && strings.Contains(msg, "connect") {
		code = codes.Unavailable
	}
	if code == codes.Unavailable {
		// Say that the director answered and its catalog did not (a
		// storage daemon then logs that, not "director unreachable").
		st, derr := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: link.ReasonCatalogUnavailable, Domain: link.ErrorDomain})
		if derr == nil {
			return st.Err()
		}
	}
	return status.Error(code, msg)
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

func isNotFound(err error) bool {
	var nf *catalog.NotFoundError
	return errors.Is(err, catalog.ErrNotFound) || errors.As(err, &nf)
}
