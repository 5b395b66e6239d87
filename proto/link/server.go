package link

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/tapeward/tapeward/proto/tlsconf"
)

// Limits bound what connections may cost a server (the director and
// storaged build theirs with NewServer, so both get the same). Zero
// fields take the defaults.
type Limits struct {
	// HandshakeTimeout closes a connection that has not finished its TLS
	// and HTTP/2 handshakes in time (default 10 s): a peer that opens TCP
	// connections and says nothing holds nothing for long.
	HandshakeTimeout time.Duration
	// MaxConnections is how many connections are served at once (default
	// 256); further ones wait in the listen backlog until one ends.
	MaxConnections int
	// MaxStreams is how many calls one connection may run at once
	// (default 128).
	MaxStreams uint32
	// KeepaliveTime is how long a connection may be silent before the
	// server pings it (default 1 min); KeepaliveTimeout how long the
	// server then waits for the answer before closing it (default 20 s).
	// Peers that are gone (a host that crashed, a cut cable) are noticed
	// and their connection released.
	KeepaliveTime, KeepaliveTimeout time.Duration
}

// Default limits.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxConnections   = 256
	DefaultMaxStreams       = 128
	DefaultKeepaliveTime    = time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
	// MinPingInterval is how often a client may ping; one that pings more
	// often is disconnected (gRPC's "too_many_pings").
	MinPingInterval = 10 * time.Second
)

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.KeepaliveTime <= 0 {
		l.KeepaliveTime = DefaultKeepaliveTime
	}
	if l.KeepaliveTimeout <= 0 {
		l.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	return l
}

// Listen listens on addr (TCP) and serves at most l.MaxConnections
// connections at once.
func Listen(addr string, l Limits) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netutil.LimitListener(lis, l.WithDefaults().MaxConnections), nil
}

// NewServer makes a gRPC server over mutual TLS (tc, from tlsconf.Server)
// with the limits l: the handshake timeout, streams per connection,
// keepalive pings and their enforcement, and WaitForHandlers, so that Stop
// and GracefulStop return only when every handler has returned (and the
// caller may then destroy keys). Handshakes that tlsconf refused (a
// revoked certificate, a peer not configured here) are logged at warning
// level with the remote address; others (a port scanner, a timeout) at
// debug level. opts add daemon-specific options (interceptors, message
// sizes).
func NewServer(tc *tls.Config, l Limits, log *slog.Logger, opts ...grpc.ServerOption) *grpc.Server {
	l = l.WithDefaults()
	if log == nil {
		log = slog.Default()
	}
	all := []grpc.ServerOption{
		grpc.Creds(&loggingCreds{TransportCredentials: Credentials(tc), log: log}),
		grpc.ConnectionTimeout(l.HandshakeTimeout),
		grpc.MaxConcurrentStreams(l.MaxStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: MinPingInterval, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true),
	}
	return grpc.NewServer(append(all, opts...)...)
}

// Shutdown stops srv: gracefully (running calls finish) for up to grace,
// then by cancelling the calls still running. Either way it returns once
// every handler has returned (NewServer sets WaitForHandlers).
func Shutdown(srv *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		srv.Stop()
		<-done
	}
}

// loggingCreds logs refused handshakes.
type loggingCreds struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (c *loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, ai, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		var re *tlsconf.RefusedError
		if errors.As(err, &re) {
			c.log.Warn("refused a connection", "remote", conn.RemoteAddr().String(), "peer", re.Peer.String(), "serial", re.Serial, "reason", re.Reason)
		} else {
			c.log.Debug("handshake failed", "remote", conn.RemoteAddr().String(), "error", err.Error())
		}
	}
	return out, ai, err
}

func (c *loggingCreds) Clone() credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// WatchExpiry logs a warning now and then once a day while the
// certificate of files expires within 30 days (or has expired), until ctx
// ends. It returns at once, after the first check.
func WatchExpiry(ctx context.Context, log *slog.Logger, files tlsconf.Files) {
	check := func() {
		leaf, err := files.Leaf()
		if err != nil {
			log.Warn("cannot read our own certificate to check its expiry", "error", err.Error())
			return
		}
		if msg := tlsconf.ExpiryWarning(leaf, files.Cert, time.Now(), 30*24*time.Hour); msg != "" {
			log.Warn(msg, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	check()
	go func() {
		t := time.NewTicker(24 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				check()
			}
		}
	}()
}

// ReloadOnHangup re-reads every revocation list of the process on SIGHUP
// until ctx ends, logging what it read (or why it could not).
func ReloadOnHangup(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				paths, err := tlsconf.ReloadRevocationLists()
				switch {
				case err != nil:
					log.Error("SIGHUP: a revocation list is unusable; every handshake is refused until it is fixed", "error", err.Error())
				case len(paths) == 0:
					log.Info("SIGHUP: no revocation list is configured ([tls] revocation_list)")
				default:
					log.Info("SIGHUP: revocation lists re-read", "files", strings.Join(paths, ","))
				}
			}
		}
	}()
}
