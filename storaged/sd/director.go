package sd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Director is what storaged needs of the director.
type Director interface {
	// GetVolumeKey returns the wrapped key of a volume this storage owns.
	GetVolumeKey(ctx context.Context, volume, drive string) (keys.StoredKey, error)
	// Report tells the director what happened to a volume (best effort).
	Report(ctx context.Context, r *pb.ReportVolumeRequest) error
	Close() error
}

// grpcDirector is the Director over mutual TLS.
type grpcDirector struct {
	conn    *grpc.ClientConn
	client  pb.DirectorClient
	timeout time.Duration
}

// DialDirector prepares the mTLS link to the configured director (the
// connection itself is made lazily, so a director that is down at start-up
// is not fatal: the crypto cache answers meanwhile).
func DialDirector(cfg *configs.Storaged) (Director, error) {
	// The director must present a director certificate for the configured
	// director name, valid for tls_server_name (default: that name).
	tc, err := tlsconf.Client(tlsconf.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key, RevocationList: cfg.TLS.RevocationList}, tlsconf.Peer{Role: tlsconf.RoleDirector, Name: cfg.Director.Name}, cfg.Director.TLSServerName)
	if err != nil {
		return nil, fmt.Errorf("%s: director link: %w", cfg.Path, err)
	}
	conn, err := link.Dial(cfg.Director.Address, tc)
	if err != nil {
		return nil, fmt.Errorf("%s: director address %q: %w", cfg.Path, cfg.Director.Address, err)
	}
	timeout := 30 * time.Second
	if cfg.Timeouts.Director.Duration > 0 {
		timeout = cfg.Timeouts.Director.Duration
	}
	return &grpcDirector{conn: conn, client: pb.NewDirectorClient(conn), timeout: timeout}, nil
}

func (g *grpcDirector) GetVolumeKey(ctx context.Context, volume, drive string) (keys.StoredKey, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	// Wait for the connection for half the time at most: the call then
	// fails fast with the reason the link is down (a refused handshake
	// says who answered) instead of a bare deadline.
	link.Ready(ctx, g.conn, min(g.timeout/2, 5*time.Second))
	r, err := g.client.GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: volume, Drive: drive})
	if err != nil {
		return keys.StoredKey{}, err
	}
	if r.Key == nil {
		return keys.StoredKey{}, fmt.Errorf("the director returned no key for volume %s", volume)
	}
	scheme, err := keys.ParseScheme(r.Key.Scheme)
	if err != nil {
		return keys.StoredKey{}, fmt.Errorf("the director's key for volume %s: %w", volume, err)
	}
	return keys.StoredKey{Scheme: scheme, KEKID: r.Key.KekId, Value: r.Key.Stored, Fingerprint: r.Key.Fingerprint}, nil
}

func (g *grpcDirector) Report(ctx context.Context, r *pb.ReportVolumeRequest) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := g.client.ReportVolume(ctx, r)
	return err
}

func (g *grpcDirector) Close() error { return g.conn.Close() }

// directorUnreachable says err means "could not talk to the director" (as
// opposed to an answer such as not-found or permission-denied, which the
// cache must not override).
func directorUnreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// Key sources, as MountReply.key_source says them.
const (
	SourceDirector = "director"
	SourceCache    = "cache"
)

// volumeKey gets a volume's wrapped key: from the director first; from the
// crypto cache only when the director cannot be reached (said in the log).
func (d *Daemon) volumeKey(ctx context.Context, volume, drive string) (keys.StoredKey, string, error) {
	sk, err := d.director.GetVolumeKey(ctx, volume, drive)
	if err == nil {
		return sk, SourceDirector, nil
	}
	if ctx.Err() != nil {
		// The request itself ended (its caller gave up): not a reason to
		// fall back to the cache and load a key nobody waits for.
		return keys.StoredKey{}, "", fmt.Errorf("volume %s: %w", volume, context.Cause(ctx))
	}
	if !directorUnreachable(err) {
		return keys.StoredKey{}, "", fmt.Errorf("the director refused the key of volume %s: %s", volume, status.Convert(err).Message())
	}
	e, cerr := d.cache.Get(volume)
	if cerr != nil {
		return keys.StoredKey{}, "", fmt.Errorf("the director is unreachable (%s) and the crypto cache has no key for volume %s: %w",
			status.Convert(err).Message(), volume, cerr)
	}
	d.log.Warn("director unreachable: using the crypto cache", "volume", volume, "drive", drive,
		"kek_id", e.Key.KEKID, "fingerprint", e.Key.Fingerprint, "cached_since", e.Added.UTC().Format(time.RFC3339),
		"director_error", status.Convert(err).Message())
	return e.Key, SourceCache, nil
}

// report sends a volume event to the director; failures are logged, never
// fatal (the catalog learns the state again at the next report).
func (d *Daemon) report(ctx context.Context, r *pb.ReportVolumeRequest) {
	if r.TimeUnix == 0 {
		r.TimeUnix = d.clock().Unix()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.director.Report(ctx, r); err != nil {
		d.log.Warn("reporting to the director failed", "volume", r.Volume, "event", r.Event, "error", status.Convert(err).Message())
	}
}

func cacheEntry(volume string, sk keys.StoredKey, fp string) cryptocache.Entry {
	sk.Fingerprint = fp
	return cryptocache.Entry{Volume: volume, Key: sk}
}
