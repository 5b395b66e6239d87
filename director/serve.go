package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/core"
	"github.com/tapeward/tapeward/director/jobs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/daemon"
	"github.com/tapeward/tapeward/tools/lib/metrics"
)

// serve runs the daemon until ctx ends (SIGTERM, SIGINT).
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("director", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("c", defaultConfig, "config file")
	fs.StringVar(cfgPath, "config", defaultConfig, "config file")
	debug := fs.Bool("debug", false, "log at debug level")
	addrFile := fs.String("addr-file", "", "once listening, write the bound address to this file (for listen = \"127.0.0.1:0\")")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected %q", fs.Arg(0))}
	}
	log := daemon.Logger(stderr, *debug)
	cfg, err := configs.LoadDirector(*cfgPath)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings { // e.g. a Run line that restricts nothing
		log.Warn("configuration: " + w)
	}
	// Prometheus metrics (metrics_listen, optional): the job runner's
	// collectors (jobs by status, durations, bytes and files written,
	// catalog rows copied, errors) on one registry.
	var jm *jobs.Metrics
	if cfg.MetricsListen != "" {
		reg := metrics.NewRegistry()
		jm = jobs.NewMetrics(reg)
		if _, err := metrics.Serve(ctx, cfg.MetricsListen, reg, log); err != nil {
			return fmt.Errorf("%w (set metrics_listen in %s)", err, cfg.Path)
		}
	}
	d, err := core.New(ctx, core.Options{Config: cfg, Logger: log, Metrics: jm})
	if err != nil {
		return err
	}
	defer d.Close()
	files := tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, RevocationList: cfg.TLS.RevocationList}
	tc, err := tlsconf.Server(files, d.Accept)
	if err != nil {
		return err
	}
	limits := daemon.Limits(cfg.Limits)
	lis, err := link.Listen(cfg.Listen, limits)
	if err != nil {
		return fmt.Errorf("listen %s: %w (set listen in %s)", cfg.Listen, err, cfg.Path)
	}
	unary, stream := core.Authorize()
	srv := link.NewServer(tc, limits, log, grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	pb.RegisterDirectorServer(srv, &core.StorageService{D: d})
	pb.RegisterConsoleServer(srv, &core.ConsoleService{D: d})
	link.WatchExpiry(ctx, log, files)
	link.ReloadOnHangup(ctx, log)
	log.Info("director ready", "name", cfg.Name, "listen", lis.Addr().String())
	if err := daemon.WriteAddrFile(*addrFile, lis.Addr().String()); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	// Crypto cache pushes a storage missed (down during a rekey, its hello
	// lost) are tried again every minute.
	retry := time.NewTicker(time.Minute)
	defer retry.Stop()
	go d.RunPushRetry(ctx, retry.C)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping")
	// Returns once every handler has returned: only then does the
	// deferred d.Close destroy the keyring.
	link.Shutdown(srv, 10*time.Second)
	log.Info("stopped")
	return nil
}
