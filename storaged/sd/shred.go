package sd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tapeward/tapeward/storaged/cryptocache"
)

// Crypto-shredding (architecture.md §4 invariant 7): after `shred
// volume=V yes` the director asks every storage daemon to destroy V's keys
// (Storage.ShredKeys). storaged removes every stored string of V from its
// crypto cache (cryptocache.Shred: one atomic update under the lock) and
// clears the key of any drive that holds V (the cartridge is unmounted
// and returned to its slot: a mount would fetch its key again, which the
// director refuses).

// ShredKeys destroys the keys of volumes in this daemon: the crypto cache
// first (the copy that outlives a power cut), then the drives. A drive
// holding one of the volumes that is busy with another operation cannot
// be released now: the error says so and the director asks again (the
// cache part is idempotent).
func (d *Daemon) ShredKeys(ctx context.Context, volumes []string, reason string) (cryptocache.ShredResult, error) {
	d.shredMu.Lock()
	if d.shredded == nil {
		d.shredded = map[string]time.Time{}
	}
	now := d.clock()
	for v, t := range d.shredded {
		if now.Sub(t) > d.shredGuard() {
			delete(d.shredded, v)
		}
	}
	for _, v := range volumes {
		d.shredded[v] = now
	}
	res, err := d.cache.Shred(volumes...)
	d.shredMu.Unlock()
	if err != nil {
		d.log.Error("crypto cache: shred failed, nothing removed", "volumes", volumes, "reason", reason, "error", err.Error())
		return res, fmt.Errorf("crypto cache: shred refused, nothing removed: %w", err)
	}
	d.log.Warn("KEYS SHREDDED in the crypto cache at the director's request", "volumes", volumes, "reason", reason,
		"stored_strings_destroyed", res.Destroyed, "absent", res.Absent)
	if len(res.NotEdited) > 0 {
		d.log.Error("crypto cache: corrupt copies kept next to the cache still name a shredded volume; they are kept as found and never edited: destroy them by hand (e.g. shred -u) if the keys must be gone from this host",
			"volumes", volumes, "files", res.NotEdited, "dir", d.cfg.WorkingDirectory)
	}
	var errs []error
	for _, dr := range d.drives {
		v := dr.view.Load()
		if v == nil || !slices.Contains(volumes, v.volume) {
			continue
		}
		if _, _, err := d.Unmount(ctx, dr.name); err != nil {
			var bz *BusyError
			if errors.As(err, &bz) {
				err = fmt.Errorf("drive %s holds shredded volume %s and is busy (%s): its key could not be cleared now; the director asks again", dr.name, v.volume, v.state)
			}
			errs = append(errs, err)
			continue
		}
		d.log.Warn("drive unmounted: it held a shredded volume (key cleared, cartridge back in its slot)", "drive", dr.name, "volume", v.volume)
	}
	return res, errors.Join(errs...)
}

// shredGuard is how long after a shred a key of the volume is refused:
// longer than a mount that fetched the key before the shred can take.
// (Later, the director refuses a shredded volume's key itself; a volume
// relabelled with a new key, by recycling, mounts again.)
func (d *Daemon) shredGuard() time.Duration { return d.mountTimeout() + time.Minute }

// cacheKeyUnlessShredded puts a key into the crypto cache unless its
// volume was shredded within shredGuard (then a *CryptoRefusedError): a
// key fetched just before a shred never comes back into the cache.
func (d *Daemon) cacheKeyUnlessShredded(dr *Drive, e cryptocache.Entry) error {
	d.shredMu.Lock()
	defer d.shredMu.Unlock()
	if t, ok := d.shredded[e.Volume]; ok && d.clock().Sub(t) <= d.shredGuard() {
		return &CryptoRefusedError{Drive: dr.name, Volume: e.Volume, Reason: "its keys were shredded at the director's request; its data cannot be read"}
	}
	_, err := d.cache.Put(e)
	return err
}
