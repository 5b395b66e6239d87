// Package fd is the file daemon's service (proto Filed): Hello, Estimate,
// Backup and Restore. A backup walks a fileset (package
// tools/filed/fileset), writes it as a pax stream (package
// tools/lib/archive) and sends the stream, each member's record and
// keepalives to the storage daemon the director names, over mutual TLS
// with filed's own client certificate and the session's one-time token.
// A restore reads the members the storage daemon sends on RestoreData
// with such a token and writes them safely under the target (package
// tools/lib/extract). README.md (tools/filed) describes both.
package fd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/filed/fileset"
)

// Version is filed's version, as Hello reports it.
const Version = "0.1.0"

// Defaults of Options.
const (
	DefaultKeepalive = 15 * time.Second
	DefaultProgress  = time.Second
)

// Options configure a Service.
type Options struct {
	Name string // this client's name (filed.toml name)
	// Files is filed's own TLS identity (role client): it serves the
	// director with it and presents it to the storage daemon.
	Files  tlsconf.Files
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Keepalive is how long the data stream may stay silent before a
	// keepalive is sent (default 15 s; storaged drops a client silent
	// for its idle timeout, 2 min by default).
	Keepalive time.Duration
	// Progress is the interval of progress events (default 1 s).
	Progress time.Duration
	// MaxBandwidth limits each job's data (a backup's stream to the
	// storage daemon, a restore's from it) to this many bytes per
	// second on average (filed.toml max_bandwidth_per_job; 0: no
	// limit; at least MinBandwidth).
	MaxBandwidth int64

	// beforeEntry, in tests, is called with each walk entry before it
	// is stored (to hold the walk while a test waits for something).
	beforeEntry func(fileset.Entry)
}

// Service serves proto Filed.
type Service struct {
	pb.UnimplementedFiledServer
	o Options

	mu      sync.Mutex
	running map[int64]int
}

// New returns the service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Keepalive <= 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.Progress <= 0 {
		o.Progress = DefaultProgress
	}
	return &Service{o: o, running: map[int64]int{}}
}

// ServerTLS is filed's server configuration: mutual TLS 1.3 with the
// certificate of files, accepting only a director certificate for
// director (the name in filed.toml [director]). Any other peer is
// refused at the handshake (link.NewServer logs who).
func ServerTLS(files tlsconf.Files, director string) (*tls.Config, error) {
	if director == "" {
		return nil, fmt.Errorf("filed: no director name configured; set [director] name")
	}
	return tlsconf.Server(files, tlsconf.Expect([]string{tlsconf.RoleDirector}, director))
}

// Hello says who this filed is and which jobs it runs.
func (s *Service) Hello(ctx context.Context, _ *pb.FiledHelloRequest) (*pb.FiledHelloReply, error) {
	s.mu.Lock()
	jobs := make([]int64, 0, len(s.running))
	for id := range s.running {
		jobs = append(jobs, id)
	}
	s.mu.Unlock()
	slices.Sort(jobs)
	return &pb.FiledHelloReply{Name: s.o.Name, Version: Version, Os: runtime.GOOS + "/" + runtime.GOARCH,
		TimeUnix: time.Now().Unix(), RunningJobs: jobs}, nil
}

// FileSetOf converts the wire fileset and validates it; the error is an
// InvalidArgument status naming the field.
func FileSetOf(spec *pb.FileSetSpec) (fileset.FileSet, error) {
	if spec == nil {
		return fileset.FileSet{}, status.Error(codes.InvalidArgument, "fileset: missing; the request must carry the job's [[fileset]]")
	}
	fs := fileset.FileSet{Name: spec.Name, Include: spec.Include, Exclude: spec.Exclude,
		OneFileSystem: spec.OneFileSystem, ExcludeCaches: spec.ExcludeCaches, Xattrs: spec.Xattrs}
	if err := fs.Validate(); err != nil {
		return fs, status.Error(codes.InvalidArgument, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return fs, nil
}

func sinceOf(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// estimateBatch is how many listed entries go in one EstimateReply.
const estimateBatch = 1000

// Estimate walks the fileset as a job with the request's since-time
// would, without reading data: totals in the last message, and every
// entry a job would store when listing is set.
func (s *Service) Estimate(req *pb.EstimateRequest, stream pb.Filed_EstimateServer) error {
	fs, err := FileSetOf(req.Fileset)
	if err != nil {
		s.o.Metrics.failed("request")
		return err
	}
	ctx := stream.Context()
	var batch []*pb.EstimateEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&pb.EstimateReply{Entries: batch})
		batch = batch[:0]
		return err
	}
	add := func(p string, t fileset.Type, size int64, mode uint32, mtime time.Time) error {
		if !req.Listing {
			return nil
		}
		batch = append(batch, &pb.EstimateEntry{Path: []byte(memberPath(p, t)), Type: archiveType(t).String(),
			Size: size, Mode: mode, MtimeNs: mtime.UnixNano()})
		if len(batch) >= estimateBatch {
			return flush()
		}
		return nil
	}
	var ids fileset.IDNames
	extra := int64(0)
	for _, p := range parents(fs.Include) {
		m, ok, err := parentMember(p, &ids)
		if err != nil || !ok {
			continue
		}
		extra++
		if err := add(p, fileset.TypeDir, 0, uint32(m.Mode), m.Mtime); err != nil {
			return err
		}
	}
	st, err := fileset.Estimate(ctx, fs, sinceOf(req.SinceUnixNs), func(e fileset.Entry) error {
		return add(e.Path, e.Type, e.Size, e.Mode, e.Mtime)
	})
	if err != nil {
		return walkError(ctx, err)
	}
	if err := flush(); err != nil {
		return err
	}
	return stream.Send(&pb.EstimateReply{Totals: &pb.EstimateTotals{
		Files: st.Entries + extra, Bytes: st.Bytes, Unchanged: st.Unchanged, Excluded: st.Excluded, Warnings: st.Warnings}})
}

// walkError is the status of a walk that stopped.
func walkError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

func (s *Service) jobStarted(id int64) {
	s.mu.Lock()
	s.running[id]++
	s.mu.Unlock()
	s.o.Metrics.addRunning(1)
}

func (s *Service) jobEnded(id int64) {
	s.mu.Lock()
	if s.running[id]--; s.running[id] <= 0 {
		delete(s.running, id)
	}
	s.mu.Unlock()
	s.o.Metrics.addRunning(-1)
}

// storageTLS is filed's client TLS to the storage daemon a job names:
// its own certificate, and only a storage certificate named name,
// verified for serverName ("" = the name).
func (s *Service) storageTLS(name, serverName string) (*tls.Config, error) {
	tc, err := tlsconf.Client(s.o.Files, tlsconf.Peer{Name: name, Role: tlsconf.RoleStorage}, serverName)
	if err != nil {
		s.o.Metrics.failed("storage")
		return nil, status.Errorf(codes.FailedPrecondition, "filed %s: TLS to storage %s: %v", s.o.Name, name, err)
	}
	return tc, nil
}

// openStorage opens method on the storage daemon name at addr as a
// direct stream (link.OpenDirect: the data without HTTP/2); a failure is
// counted and names the storage.
func (s *Service) openStorage(ctx context.Context, tc *tls.Config, addr, name, method string) (*link.DirectClientStream, error) {
	cs, err := link.OpenDirect(ctx, addr, tc, method)
	if err != nil {
		s.o.Metrics.failed("storage")
		return nil, status.Errorf(status.Code(err), "filed %s: storage %s at %s: %s", s.o.Name, name, addr, status.Convert(err).Message())
	}
	return cs, nil
}
