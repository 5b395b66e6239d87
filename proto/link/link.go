// Package link dials the director <-> storaged <-> console gRPC links: with
// a short reconnect backoff (a restarted daemon is reachable again within
// seconds, not gRPC's default two minutes) and a bounded wait for the
// connection before a call, so a call made right after a peer restarts
// waits for it instead of failing at once. It also builds the servers
// (server.go), the data streams' codec (codec.go) and the direct streams
// that carry filed's data to and from storaged without HTTP/2
// (direct.go).
package link

import (
	"context"
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// MaxMessage is the largest message either side accepts.
const MaxMessage = 16 << 20

// Dial prepares a connection to addr (made lazily); opts come first (a
// data path's buffers and codec: DataDialOptions).
func Dial(addr string, tc *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, append(opts[:len(opts):len(opts)],
		grpc.WithTransportCredentials(Credentials(tc)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage), grpc.MaxCallSendMsgSize(MaxMessage)))...)
}

// Ready waits up to max for conn to be connected and reports whether it
// is; the caller then makes its call either way (a failure says why).
func Ready(ctx context.Context, conn *grpc.ClientConn, max time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return true
		case connectivity.Idle, connectivity.TransientFailure:
			conn.Connect()
		case connectivity.Shutdown:
			return false
		}
		if !conn.WaitForStateChange(ctx, s) {
			return false
		}
	}
}
