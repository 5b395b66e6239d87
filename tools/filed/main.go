// Command filed is Tapeward's file daemon: it runs on each client, serves
// the director (and only the director named in its configuration) over
// mutual TLS, walks filesets, and streams backups as pax to the storage
// daemon the director names. See package tools/filed/fd and README.md.
//
//	filed -c /etc/tapeward/filed.toml [--addr-file FILE] [--debug]
//
// SIGTERM and SIGINT stop it: running backups get 5 s to finish, then
// they are cancelled (their jobs fail; the storage daemon ends the tape
// file). SIGHUP re-reads the revocation list.
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
	"github.com/tapeward/tapeward/tools/filed/fd"
	"github.com/tapeward/tapeward/tools/lib/daemon"
	"github.com/tapeward/tapeward/tools/lib/harden"
	"github.com/tapeward/tapeward/tools/lib/metrics"
)

func main() {
	// Its private key is in memory: no core dump, no ptrace.
	if err := harden.Process(); err != nil {
		fmt.Fprintln(os.Stderr, "filed:", err)
		os.Exit(1)
	}
	os.Exit(run())
}

func run() int {
	flags, code, ok := daemon.ParseFlags("filed", "/etc/tapeward/filed.toml", "log at debug level (every file warning, notes)", os.Args[1:], os.Stderr)
	if !ok {
		return code
	}
	log := daemon.Logger(os.Stderr, flags.Debug)

	cfg, err := configs.LoadFiled(flags.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "filed:", err)
		return 1
	}
	if err := os.MkdirAll(cfg.WorkingDirectory, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "filed: working_directory %s: %v (set working_directory in %s)\n", cfg.WorkingDirectory, err, cfg.Path)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var m *fd.Metrics
	if cfg.MetricsListen != "" {
		reg := metrics.NewRegistry()
		m = fd.NewMetrics(reg)
		if _, err := metrics.Serve(ctx, cfg.MetricsListen, reg, log); err != nil {
			fmt.Fprintf(os.Stderr, "filed: %v (set metrics_listen in %s)\n", err, cfg.Path)
			return 1
		}
	}

	files := tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, RevocationList: cfg.TLS.RevocationList}
	tc, err := fd.ServerTLS(files, cfg.Director.Name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "filed:", err)
		return 1
	}
	limits := daemon.Limits(cfg.Limits)
	lis, err := link.Listen(cfg.Listen, limits)
	if err != nil {
		fmt.Fprintf(os.Stderr, "filed: listen %s: %v (set listen in %s)\n", cfg.Listen, err, cfg.Path)
		return 1
	}
	srv := link.NewServer(tc, limits, log, grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	pb.RegisterFiledServer(srv, fd.New(fd.Options{Name: cfg.Name, Files: files, Logger: log, Metrics: m, MaxBandwidth: int64(cfg.MaxBandwidthPerJob)}))
	link.WatchExpiry(ctx, log, files)
	link.ReloadOnHangup(ctx, log)
	log.Info("filed ready", "name", cfg.Name, "listen", lis.Addr().String(), "director", cfg.Director.Name, "version", fd.Version)
	if err := daemon.WriteAddrFile(flags.AddrFile, lis.Addr().String()); err != nil {
		fmt.Fprintf(os.Stderr, "filed: %v\n", err)
		return 1
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		log.Error("serving stopped", "error", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("stopping: running backups get 5s, then they are cancelled")
	link.Shutdown(srv, 5*time.Second)
	log.Info("stopped")
	return 0
}
