package sd

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The crypto cache follows the director's rekeys (architecture.md §4.8):
// the director pushes rewrapped keys (PushKeys), storaged reports its cache
// by KEK (Hello, Status, StorageHello) so that the director can tell what
// still depends on a KEK, and says hello when it starts so that pushes it
// missed while down are made.

// CacheKEKs is the crypto cache by KEK: the counts per KEK id, and the KEK
// ids that cache entries name but this daemon's keyring lacks.
func (d *Daemon) CacheKEKs() ([]*pb.KekCount, []string, error) {
	es, err := d.cache.List()
	if err != nil {
		return nil, nil, err
	}
	counts, unknown := d.cacheKEKs(es)
	return counts, unknown, nil
}

func (d *Daemon) cacheKEKs(es []cryptocache.Entry) ([]*pb.KekCount, []string) {
	have := d.ring.IDs()
	var (
		out     []*pb.KekCount
		unknown []string
	)
	for _, c := range cryptocache.KEKCounts(es) {
		out = append(out, &pb.KekCount{KekId: c.KEKID, Keys: uint32(c.Keys), Sole: uint32(c.Sole)})
		if !slices.Contains(have, c.KEKID) {
			unknown = append(unknown, c.KEKID)
		}
	}
	return out, unknown
}

// checkCacheKEKs logs, at start-up, the KEKs the crypto cache names that
// this daemon does not have: keys only they wrap cannot be unwrapped here
// (a DR from this cache needs those KEK files); wrappings that are also
// held under a configured KEK are superseded and said to be so.
func (d *Daemon) checkCacheKEKs(es []cryptocache.Entry) {
	counts, unknown := d.cacheKEKs(es)
	if len(unknown) == 0 {
		return
	}
	var sole, strs []string
	nSole := 0
	for _, c := range counts {
		if !slices.Contains(unknown, c.KekId) {
			continue
		}
		strs = append(strs, fmt.Sprintf("%s: %d", c.KekId, c.Keys))
		if c.Sole > 0 {
			sole = append(sole, fmt.Sprintf("%s: %d", c.KekId, c.Sole))
			nSole += int(c.Sole)
		}
	}
	if nSole > 0 {
		d.log.Warn("CRYPTO CACHE HOLDS KEYS THIS STORAGED CANNOT UNWRAP: they are wrapped only under KEKs not in its keyring; add those KEK files to [[keys.kek]] in "+d.cfg.Path+" (or run `rekey yes` on the director while they are configured there, which pushes rewrapped keys)",
			"cache", d.cache.Path(), "unknown_kek_ids", unknown, "keys_only_under_them", sole, "stored_keys_under_them", strs, "kek_ids", d.KEKIDs())
		return
	}
	d.log.Warn("crypto cache holds older wrappings under KEKs not in this storaged's keyring (superseded: every such key is also wrapped under a configured KEK; nothing is lost)",
		"cache", d.cache.Path(), "unknown_kek_ids", unknown, "stored_keys_under_them", strs, "kek_ids", d.KEKIDs())
}

// PushResult is what a push did to the crypto cache.
type PushResult struct {
	Added, Unchanged int
	// Skipped: history keys of volumes the cache holds no key of (not
	// added: there is no entry for them to join).
	Skipped int
	KEKs    []*pb.KekCount
}

// PushKeys puts keys the director pushes into the crypto cache in one
// atomic update (cryptocache.Push: nothing is removed). Keys wrapped under
// a KEK this daemon does not have are kept too (the cache is for DR, where
// that KEK may be at hand), with a warning.
func (d *Daemon) PushKeys(pks []cryptocache.PushKey, reason string) (PushResult, error) {
	// A string this daemon can unwrap must unwrap to the fingerprint it
	// comes with: a wrong one never replaces a good one in the cache.
	for _, p := range pks {
		if _, ok := d.ring.Get(p.Key.KEKID); !ok || p.Key.Scheme != keys.SchemeV1 {
			continue
		}
		k, err := d.ring.Unwrap(p.Key)
		clear(k)
		if err != nil {
			return PushResult{}, &PushRefusedError{Volume: p.Volume, Fingerprint: p.Key.Fingerprint, KEKID: p.Key.KEKID, Err: err}
		}
	}
	// A history key of a volume the cache holds nothing of (its key was
	// never here, e.g. a volume whose encryption was removed before this
	// daemon cached it) has no entry to join: it is left out and said so.
	es, err := d.cache.List()
	if err != nil {
		return PushResult{}, err
	}
	held := map[string]bool{}
	for _, e := range es {
		held[e.Volume] = true
	}
	for _, p := range pks {
		if p.Current {
			held[p.Volume] = true
		}
	}
	var (
		keep    []cryptocache.PushKey
		skipped []string
	)
	for _, p := range pks {
		if !p.Current && !held[p.Volume] {
			if !slices.Contains(skipped, p.Volume) {
				skipped = append(skipped, p.Volume)
			}
			continue
		}
		keep = append(keep, p)
	}
	if len(skipped) > 0 {
		d.log.Info("pushed history keys of volumes the crypto cache holds no key of were not added (the cache never held their keys)",
			"volumes", skipped)
	}
	res, err := d.cache.Push(keep)
	if err != nil {
		return PushResult{}, fmt.Errorf("crypto cache: push refused, nothing written: %w", err)
	}
	out := PushResult{Skipped: len(pks) - len(keep)}
	for _, r := range res {
		if r == cryptocache.Unchanged || r == cryptocache.Updated {
			out.Unchanged++
		} else {
			out.Added++
		}
	}
	var missing []string
	vols := map[string]bool{}
	for _, p := range pks {
		vols[p.Volume] = true
		if id := p.Key.KEKID; id != "" && p.Key.Scheme == keys.SchemeV1 && !slices.Contains(d.KEKIDs(), id) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		d.log.Warn("pushed keys are wrapped under KEKs this storaged does not have: mounts that fall back to the crypto cache cannot unwrap them; add the KEK files to [[keys.kek]] in "+d.cfg.Path,
			"kek_ids", missing, "have", d.KEKIDs())
	}
	counts, _, err := d.CacheKEKs()
	if err != nil {
		return out, err
	}
	out.KEKs = counts
	d.log.Info("crypto cache updated by the director", "reason", reason, "volumes", len(vols), "keys", len(pks),
		"added", out.Added, "unchanged", out.Unchanged, "skipped", out.Skipped)
	return out, nil
}

// helloBackoff is how long storaged waits before saying hello again to a
// director it could not reach: doubling from the first value to the last.
var helloBackoff = [2]time.Duration{time.Second, 30 * time.Second}

// SayHello tells the director, in the background, that this daemon is up
// (its KEK ids and its crypto cache by KEK), so that the director pushes
// the keys it could not push while this daemon was down. While the
// director cannot be reached it tries again (1 s, doubling to 30 s) until
// it answers or ctx ends. It never blocks the caller; done (may be nil) is
// called once the director has answered. The key events queued meanwhile
// (keys cleared at start-up) are reported right after the hello.
func (d *Daemon) SayHello(ctx context.Context, done func(*pb.StorageHelloReply)) {
	go func() {
		wait := helloBackoff[0]
		warned := false
		for {
			r, err := d.hello(ctx)
			if err == nil {
				d.log.Info("director answered hello", "pending_keys", r.PendingKeys)
				// Key events kept while it was unreachable (start-up
				// clears) go now.
				d.flushReports(ctx)
				if done != nil {
					done(r)
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			if !warned {
				d.log.Warn("cannot say hello to the director (it pushes rekeyed keys into the crypto cache after a hello); trying again in the background",
					"director", d.cfg.Director.Address, "error", status.Convert(err).Message())
				warned = true
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, helloBackoff[1])
		}
	}()
}

func (d *Daemon) hello(ctx context.Context) (*pb.StorageHelloReply, error) {
	counts, unknown, err := d.CacheKEKs()
	if err != nil {
		d.log.Error("reading the crypto cache for the hello", "error", err.Error())
	}
	return d.director.Hello(ctx, &pb.StorageHelloRequest{KekIds: d.KEKIDs(), CacheKeks: counts, CacheUnknownKekIds: unknown})
}

// PushRefusedError says a pushed key does not unwrap (under a KEK this
// daemon holds) to the fingerprint it was pushed with; nothing was written.
type PushRefusedError struct {
	Volume, Fingerprint, KEKID string
	Err                        error
}

func (e *PushRefusedError) Error() string {
	return fmt.Sprintf("crypto cache: push refused, nothing written: the key pushed for volume %s (fingerprint %s) does not unwrap to it under KEK %s: %v",
		e.Volume, e.Fingerprint, e.KEKID, e.Err)
}

func (e *PushRefusedError) Unwrap() error { return e.Err }
