package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/core"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
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
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := configs.LoadDirector(*cfgPath)
	if err != nil {
		return err
	}
	d, err := core.New(ctx, core.Options{Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	defer d.Close()
	tc, err := tlsconf.Server(tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, d.Accept)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w (set listen in %s)", cfg.Listen, err, cfg.Path)
	}
	unary, stream := core.Authorize()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)), grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	pb.RegisterDirectorServer(srv, &core.StorageService{D: d})
	pb.RegisterConsoleServer(srv, &core.ConsoleService{D: d})
	log.Info("director ready", "name", cfg.Name, "listen", lis.Addr().String())
	if err := writeAddrFile(*addrFile, lis.Addr().String()); err != nil {
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
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	log.Info("stopped")
	return nil
}
