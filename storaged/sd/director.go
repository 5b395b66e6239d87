package sd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Director is what storaged needs of the director.
type Director interface {
	// GetVolumeKey sends the label read from a tape of this storage; the
	// director checks it against the catalog (a mismatch is an error with
	// code FailedPrecondition naming both sides) and answers whether the
	// volume is encrypted and with which key (current or from the volume's
	// history).
	GetVolumeKey(ctx context.Context, lbl *pb.LabelView, drive string) (KeyAnswer, error)
	// BeginWrite asks the director to record that a volume holds data,
	// before the first data block of a session; nothing is written without
	// its answer.
	BeginWrite(ctx context.Context, r *pb.BeginWriteRequest) error
	// CurrentKey asks for a volume's current key without a label (a
	// recycled volume's new key, before its new label is written).
	CurrentKey(ctx context.Context, volume, drive string) (KeyAnswer, error)
	// LabelWritten reports, synchronously, that a job session rewrote a
	// recycled volume's label (and verified its key-check block); the
	// director marks it Append. No data is written before its answer.
	LabelWritten(ctx context.Context, r *pb.LabelVolumeReply) error
	// Report tells the director what happened to a volume (best effort).
	Report(ctx context.Context, r *pb.ReportVolumeRequest) error
	// Hello tells the director this daemon is (back) up, with its KEK ids
	// and its crypto cache by KEK; the director then pushes pending keys.
	Hello(ctx context.Context, r *pb.StorageHelloRequest) (*pb.StorageHelloReply, error)
	Close() error
}

// KeyAnswer is the director's answer to GetVolumeKey.
type KeyAnswer struct {
	Encrypted bool
	Key       keys.StoredKey // for an encrypted volume
	Escrow    keys.Escrow    // the key's escrow envelope, if the catalog has one
	// Source is the director's key_source: "current", or "history: …" for
	// a key the volume had before.
	Source string
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

func (g *grpcDirector) GetVolumeKey(ctx context.Context, lbl *pb.LabelView, drive string) (KeyAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	// Wait for the connection for half the time at most: the call then
	// fails fast with the reason the link is down (a refused handshake
	// says who answered) instead of a bare deadline.
	link.Ready(ctx, g.conn, min(g.timeout/2, 5*time.Second))
	r, err := g.client.GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: lbl.Volume, Drive: drive, Label: lbl})
	if err != nil {
		return KeyAnswer{}, err
	}
	ans := KeyAnswer{Encrypted: r.Encrypted, Source: r.KeySource}
	if !r.Encrypted {
		return ans, nil
	}
	if r.Key == nil {
		return KeyAnswer{}, fmt.Errorf("the director says volume %s is encrypted but returned no key", lbl.Volume)
	}
	scheme, err := keys.ParseScheme(r.Key.Scheme)
	if err != nil {
		return KeyAnswer{}, fmt.Errorf("the director's key for volume %s: %w", lbl.Volume, err)
	}
	ans.Key = keys.StoredKey{Scheme: scheme, KEKID: r.Key.KekId, Value: r.Key.Stored, Fingerprint: r.Key.Fingerprint}
	return ans, nil
}

func (g *grpcDirector) CurrentKey(ctx context.Context, volume, drive string) (KeyAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	link.Ready(ctx, g.conn, min(g.timeout/2, 5*time.Second))
	r, err := g.client.GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: volume, Drive: drive})
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "is not encrypted") {
			return KeyAnswer{Source: "current"}, nil // a clear volume has no key
		}
		return KeyAnswer{}, err
	}
	if !r.Encrypted {
		return KeyAnswer{Source: r.KeySource}, nil
	}
	if r.Key == nil {
		return KeyAnswer{}, fmt.Errorf("the director says volume %s is encrypted but returned no key", volume)
	}
	scheme, err := keys.ParseScheme(r.Key.Scheme)
	if err != nil {
		return KeyAnswer{}, fmt.Errorf("the director's key for volume %s: %w", volume, err)
	}
	return KeyAnswer{Encrypted: true, Source: r.KeySource,
		Key:    keys.StoredKey{Scheme: scheme, KEKID: r.Key.KekId, Value: r.Key.Stored, Fingerprint: r.Key.Fingerprint},
		Escrow: keys.Escrow{KeyID: r.Key.EscrowKeyId, Envelope: r.Key.EscrowEnvelope}}, nil
}

func (g *grpcDirector) LabelWritten(ctx context.Context, r *pb.LabelVolumeReply) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	link.Ready(ctx, g.conn, min(g.timeout, 5*time.Second))
	_, err := g.client.LabelWritten(ctx, r)
	return err
}

func (g *grpcDirector) BeginWrite(ctx context.Context, r *pb.BeginWriteRequest) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	link.Ready(ctx, g.conn, min(g.timeout, 5*time.Second))
	_, err := g.client.BeginWrite(ctx, r)
	return err
}

func (g *grpcDirector) Report(ctx context.Context, r *pb.ReportVolumeRequest) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := g.client.ReportVolume(ctx, r)
	return err
}

func (g *grpcDirector) Hello(ctx context.Context, r *pb.StorageHelloRequest) (*pb.StorageHelloReply, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	link.Ready(ctx, g.conn, min(g.timeout, 5*time.Second))
	return g.client.StorageHello(ctx, r)
}

func (g *grpcDirector) Close() error { return g.conn.Close() }

// directorDown names why the director could not answer, for log lines:
// "director unreachable", or "director's catalog unavailable" when the
// director answered that its catalog is down.
func directorDown(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == link.ReasonCatalogUnavailable {
			return "director's catalog unavailable"
		}
	}
	return "director unreachable"
}

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

// Key sources, as MountReply.key_source says them (a key from the volume's
// history adds the director's or the cache's words for it).
const (
	SourceDirector = "director"
	SourceCache    = "cache"
)

// DirectorRefusedError is the director's refusal of a mount or of a write
// session (a label that does not match the catalog, a volume that may not
// take data, …), with the director's code and words.
type DirectorRefusedError struct {
	Volume, Drive string
	What          string // "the mount", "the write session"
	Code          codes.Code
	Msg           string
}

func (e *DirectorRefusedError) Error() string {
	if e.Code == codes.Unavailable || e.Code == codes.DeadlineExceeded {
		return fmt.Sprintf("%s: the director could not be reached to confirm %s of volume %s: %s", e.Drive, e.What, e.Volume, e.Msg)
	}
	return fmt.Sprintf("%s: the director refused %s of volume %s: %s", e.Drive, e.What, e.Volume, e.Msg)
}

// LabelMismatchError says that a label does not match what the crypto
// cache knows of the volume (the director being unreachable).
type LabelMismatchError struct {
	Volume, Drive string
	Label, Cache  string // each side, in words (fingerprints only)
}

func (e *LabelMismatchError) Error() string {
	return fmt.Sprintf("%s: volume %s refused (the director is unreachable; checked against the crypto cache): the label says %s, the crypto cache has %s; nothing was written — check the cartridge (a foreign or forged label?)",
		e.Drive, e.Volume, e.Label, e.Cache)
}

// labelView is a label as GetVolumeKey carries it.
func labelView(lbl label.Label, barcode string) *pb.LabelView {
	return &pb.LabelView{Volume: lbl.Volume, Barcode: barcode, Encrypted: lbl.Encryption.Encrypted, KekId: lbl.Encryption.KEKID,
		KeyFingerprint: lbl.Encryption.Fingerprint, Storage: lbl.Storage, Pool: lbl.Pool}
}

// labelKey checks the label read from a tape and returns the key it needs:
// the director compares it with the catalog; only when the director cannot
// be reached does the crypto cache answer (said in the log): a clear label
// on a volume the cache holds a key for is refused, an encrypted one gets
// the cached key whose fingerprint it names (current or history). history
// says the key is not the volume's current key.
func (d *Daemon) labelKey(ctx context.Context, lbl label.Label, barcode, drive string) (ans KeyAnswer, source string, history bool, err error) {
	ans, err = d.director.GetVolumeKey(ctx, labelView(lbl, barcode), drive)
	if err == nil {
		switch {
		case ans.Encrypted != lbl.Encryption.Encrypted:
			return KeyAnswer{}, "", false, &DirectorRefusedError{Volume: lbl.Volume, Drive: drive, What: "the mount", Code: codes.FailedPrecondition,
				Msg: fmt.Sprintf("its answer (encrypted %v) contradicts the label (encrypted %v)", ans.Encrypted, lbl.Encryption.Encrypted)}
		case ans.Encrypted && ans.Key.Fingerprint != "" && ans.Key.Fingerprint != lbl.Encryption.Fingerprint:
			return KeyAnswer{}, "", false, &DirectorRefusedError{Volume: lbl.Volume, Drive: drive, What: "the mount", Code: codes.FailedPrecondition,
				Msg: fmt.Sprintf("it returned key %s but the label names key %s", ans.Key.Fingerprint, lbl.Encryption.Fingerprint)}
		}
		source = SourceDirector
		if ans.Source != "" && ans.Source != "current" {
			source += " (" + ans.Source + ")"
			history = true
		}
		return ans, source, history, nil
	}
	if ctx.Err() != nil {
		// The request itself ended (its caller gave up): not a reason to
		// fall back to the cache and load a key nobody waits for.
		return KeyAnswer{}, "", false, fmt.Errorf("volume %s: %w", lbl.Volume, context.Cause(ctx))
	}
	if !directorUnreachable(err) {
		st := status.Convert(err)
		return KeyAnswer{}, "", false, &DirectorRefusedError{Volume: lbl.Volume, Drive: drive, What: "the mount", Code: st.Code(), Msg: st.Message()}
	}
	derr, down := status.Convert(err).Message(), directorDown(err)
	e, cerr := d.cache.Get(lbl.Volume)
	var nf *cryptocache.NotFoundError
	switch {
	case errors.As(cerr, &nf) && !lbl.Encryption.Encrypted:
		d.log.Warn(down+": the crypto cache has no key for this clear volume; mounting it clear", "volume", lbl.Volume, "drive", drive,
			"director_error", derr)
		return KeyAnswer{}, SourceCache, false, nil
	case cerr != nil:
		return KeyAnswer{}, "", false, fmt.Errorf("%s (%s) and the crypto cache has no key for volume %s: %w", down, derr, lbl.Volume, cerr)
	case !lbl.Encryption.Encrypted:
		return KeyAnswer{}, "", false, &LabelMismatchError{Volume: lbl.Volume, Drive: drive, Label: "not encrypted",
			Cache: fmt.Sprintf("key %s (KEK %s) for it", orNone(e.Key.Fingerprint), orNone(e.Key.KEKID))}
	}
	want := lbl.Encryption.Fingerprint
	if e.Key.Fingerprint == want || e.Key.Fingerprint == "" || want == "" {
		d.log.Warn(down+": using the crypto cache", "volume", lbl.Volume, "drive", drive,
			"kek_id", e.Key.KEKID, "fingerprint", e.Key.Fingerprint, "cached_since", e.Added.UTC().Format(time.RFC3339),
			"director_error", derr)
		return KeyAnswer{Encrypted: true, Key: e.Key, Source: "current"}, SourceCache, false, nil
	}
	known := []string{orNone(e.Key.Fingerprint) + " (current)"}
	for _, h := range e.History {
		if h.Key.Fingerprint == want {
			d.log.Warn(down+": using a key from the crypto cache's history of the volume (the label names it)", "volume", lbl.Volume,
				"drive", drive, "kek_id", h.Key.KEKID, "fingerprint", h.Key.Fingerprint, "replaced", h.Replaced.UTC().Format(time.RFC3339),
				"director_error", derr)
			return KeyAnswer{Encrypted: true, Key: h.Key, Source: "history"}, SourceCache + " (history: replaced " + h.Replaced.UTC().Format("2006-01-02 15:04:05Z") + ")", true, nil
		}
		known = append(known, orNone(h.Key.Fingerprint))
	}
	return KeyAnswer{}, "", false, &LabelMismatchError{Volume: lbl.Volume, Drive: drive,
		Label: fmt.Sprintf("encrypted with key %s (KEK %s)", want, orNone(lbl.Encryption.KEKID)),
		Cache: "only keys " + strings.Join(known, ", ") + " for it"}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
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
