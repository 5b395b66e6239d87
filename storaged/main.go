// Command storaged is Tapeward's storage daemon: it owns the tape drives and
// changers, loads each volume's key into the drive (and clears it again),
// writes labels and data, keeps the crypto cache, and serves the director
// over mutual TLS. See package storaged/sd for what it guarantees.
//
//	storaged -c /etc/tapeward/storaged.toml [--addr-file FILE]
//
// SIGTERM and SIGINT stop it cleanly: running sessions end, then every
// drive's key is cleared. After a crash (kill -9), the next start clears
// every drive's key before anything else.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/sd"
	"github.com/tapeward/tapeward/tools/lib/daemon"
	"github.com/tapeward/tapeward/tools/lib/harden"
	"github.com/tapeward/tapeward/tools/lib/metrics"
)

func main() {
	// Before any key is read: no core dump, no ptrace.
	if err := harden.Process(); err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		os.Exit(1)
	}
	os.Exit(run())
}

func run() int {
	flags, code, ok := daemon.ParseFlags("storaged", "/etc/tapeward/storaged.toml", "log at debug level", os.Args[1:], os.Stderr)
	if !ok {
		return code
	}
	log := daemon.Logger(os.Stderr, flags.Debug)

	cfg, err := configs.LoadStoraged(flags.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	d, err := sd.New(ctx, sd.Options{Config: cfg, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 1
	}
	defer d.Close()

	files := tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, RevocationList: cfg.TLS.RevocationList}
	// The handshake admits the configured director and clients (filed,
	// for JobData); the interceptors keep every other method for the
	// director.
	tc, err := tlsconf.Server(files, sd.AcceptPeer(cfg.Director.Name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "storaged:", err)
		return 1
	}
	limits := daemon.Limits(cfg.Limits)
	lis, err := link.Listen(cfg.Listen, limits)
	if err != nil {
		fmt.Fprintf(os.Stderr, "storaged: listen %s: %v (set listen in %s)\n", cfg.Listen, err, cfg.Path)
		return 1
	}
	if cfg.MetricsListen != "" {
		reg := metrics.NewRegistry()
		if err := d.Register(reg); err != nil {
			fmt.Fprintln(os.Stderr, "storaged: metrics:", err)
			return 1
		}
		if _, err := metrics.Serve(ctx, cfg.MetricsListen, reg, log); err != nil {
			fmt.Fprintf(os.Stderr, "storaged: %v (set metrics_listen in %s)\n", err, cfg.Path)
			return 1
		}
	}
	opts := append(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(8 << 20), grpc.MaxSendMsgSize(8 << 20)}, link.DataServerOptions()...), sd.Authorize(cfg.Director.Name)...)
	srv := link.NewServer(tc, limits, log, opts...)
	svc := &sd.Service{D: d}
	pb.RegisterStorageServer(srv, svc)
	// The clients' data streams also come as direct streams (no HTTP/2)
	// on the same port: filed opens them.
	direct := link.NewDirect(tc, limits, log, &pb.Storage_ServiceDesc, svc,
		pb.Storage_JobData_FullMethodName, pb.Storage_RestoreData_FullMethodName)
	link.WatchExpiry(ctx, log, files)
	link.ReloadOnHangup(ctx, log)
	log.Info("storaged ready", "name", cfg.Name, "listen", lis.Addr().String(), "director", cfg.Director.Name, "kek_ids", d.KEKIDs())
	if err := daemon.WriteAddrFile(flags.AddrFile, lis.Addr().String()); err != nil {
		fmt.Fprintf(os.Stderr, "storaged: %v\n", err)
		return 1
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(direct.Split(lis)) }()
	// Now that PushKeys can be served: tell the director we are up (in the
	// background, retried while it is unreachable).
	d.SayHello(ctx, nil)
	select {
	case err := <-served:
		log.Error("serving stopped", "error", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("stopping: ending sessions, then clearing every drive's key")
	// Sessions still open after 5 s are cancelled; either way this returns
	// once every handler has returned, before the keys are cleared.
	stopped := make(chan struct{})
	go func() { direct.Shutdown(5 * time.Second); close(stopped) }()
	link.Shutdown(srv, 5*time.Second)
	<-stopped
	if err := d.Close(); err != nil {
		log.Error("stopped, but a drive's key could not be cleared: check it with `tapekey drive status`", "error", err.Error())
		return 1
	}
	log.Info("stopped; every drive's key cleared")
	return 0
}
