package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// Volume selection, shared by a job taking its volume (pickVolume) and the
// preview saying which volume a scheduled job would take (WouldWrite).

// where a cartridge is in the library.
type where struct {
	changer string
	slot    uint32
}

// candidates are what selectVolume chooses from: the pool's Append volumes
// in the storage, most recently written first, and where the library has
// them.
type candidates struct {
	pool, storage string
	encrypt       bool
	media         []catalog.Media
	// locate finds a volume's cartridge in the library; nil when the
	// library was not asked (the preview of an unreachable storage): every
	// volume is taken as present.
	locate func(m *catalog.Media) (where, bool)
	// usage of each Append volume against its own limits, at now.
	usage map[string]catalog.VolumeUsage
	now   time.Time
	// others are the pool's volumes in another status than Append.
	others []catalog.Media
}

// overLimit says whether m has reached one of its limits (OverLimit).
func (c *candidates) overLimit(m *catalog.Media) (catalog.Status, string) {
	u, ok := c.usage[m.Volume]
	if !ok {
		return "", ""
	}
	return u.OverLimit(c.now)
}

// maxOthers bounds the volumes of other statuses a *NoVolumeError names.
const maxOthers = 10

// volumeCandidates reads the pool's appendable volumes from the catalog
// and, when sc is not nil, where the storage's changers hold them.
func (r *Runner) volumeCandidates(ctx context.Context, pool, storage string, sc pb.StorageClient) (*candidates, error) {
	c := &candidates{pool: pool, storage: storage, encrypt: true}
	if p, ok := r.o.Config.PoolNamed(pool); ok {
		c.encrypt = p.EncryptsVolumes()
	}
	all, err := r.o.Catalog.ListMedia(ctx, catalog.MediaFilter{Pool: pool, Storage: storage})
	if err != nil {
		return nil, fail("catalog", "%v", err)
	}
	// Only Append volumes are candidates: Full, Used, Error, Read-Only,
	// Disabled, Archive, Purged, Recycle and Labeling never are (the
	// others are named when none fits).
	var ms []catalog.Media
	var names []string
	for _, m := range all {
		if m.Status == catalog.StatusAppend {
			ms = append(ms, m)
			names = append(names, m.Volume)
		} else {
			c.others = append(c.others, m)
		}
	}
	if c.usage, err = r.o.Catalog.VolumeUsages(ctx, names); err != nil {
		return nil, fail("catalog", "%v", err)
	}
	c.now = r.o.Clock()
	sort.SliceStable(ms, func(a, b int) bool {
		la, lb := ms[a].LastWritten, ms[b].LastWritten
		switch {
		case la != nil && lb != nil && !la.Equal(*lb):
			return la.After(*lb)
		case (la == nil) != (lb == nil):
			return la != nil
		}
		return ms[a].Volume < ms[b].Volume
	})
	c.media = ms
	if sc == nil {
		return c, nil
	}
	inv, err := sc.Inventory(ctx, &pb.InventoryRequest{})
	if err != nil {
		return nil, fail("storage", "storage %s inventory: %s", storage, status.Convert(err).Message())
	}
	byBarcode := map[string]where{}
	bySlot := map[uint32]where{}
	for _, ch := range inv.Changers {
		for _, sl := range ch.Slots {
			if !sl.Full {
				continue
			}
			if sl.Barcode != "" {
				byBarcode[sl.Barcode] = where{ch.Name, sl.Slot}
			}
			if len(inv.Changers) == 1 {
				bySlot[sl.Slot] = where{ch.Name, sl.Slot}
			}
		}
	}
	c.locate = func(m *catalog.Media) (where, bool) {
		w, ok := byBarcode[m.Barcode]
		if !ok && m.Barcode == "" && m.Slot != catalog.NoSlot {
			w, ok = bySlot[uint32(m.Slot)]
		}
		return w, ok
	}
	return c, nil
}

// selectVolume is the choice itself, without side effects: the first
// candidate (most recently written first) that is not excluded (the
// job's own volumes), encrypted as the pool says, not in use by another
// job and in the library. When none fits it returns a *NoVolumeError
// saying what was skipped and how to fix it.
func selectVolume(c *candidates, exclude func(string) bool, inUse map[string]bool) (*catalog.Media, where, *NoVolumeError) {
	var skipped []string
	for i := range c.media {
		m := &c.media[i]
		if exclude != nil && exclude(m.Volume) {
			continue
		}
		if to, why := c.overLimit(m); to != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s: it is %s now)", m.Volume, why, to))
			continue
		}
		if m.Encrypted != c.encrypt {
			skipped = append(skipped, fmt.Sprintf("%s (encrypted=%t, pool wants %t)", m.Volume, m.Encrypted, c.encrypt))
			continue
		}
		if inUse[m.Volume] {
			skipped = append(skipped, m.Volume+" (in use by another job)")
			continue
		}
		var w where
		if c.locate != nil {
			var ok bool
			if w, ok = c.locate(m); !ok {
				skipped = append(skipped, m.Volume+" (not in the changer)")
				continue
			}
		}
		return m, w, nil
	}
	for i, o := range c.others {
		if i == maxOthers {
			skipped = append(skipped, fmt.Sprintf("%d more not Append", len(c.others)-maxOthers))
			break
		}
		what := string(o.Status)
		if o.ErrorReason != "" {
			what += ": " + o.ErrorReason
		}
		skipped = append(skipped, fmt.Sprintf("%s (%s)", o.Volume, what))
	}
	return nil, where{}, &NoVolumeError{Pool: c.pool, Storage: c.storage, Encrypted: c.encrypt, Skipped: skipped}
}

// NoVolumeError says that a pool has no volume a job could write to, and
// how to get one.
type NoVolumeError struct {
	Pool, Storage string
	Encrypted     bool     // the pool's volumes are encrypted
	Skipped       []string // volumes that did not fit, and why
}

func (e *NoVolumeError) Error() string {
	what := "encrypted"
	if !e.Encrypted {
		what = "clear"
	}
	msg := fmt.Sprintf("no appendable %s volume of pool %s in storage %s", what, e.Pool, e.Storage)
	if len(e.Skipped) > 0 {
		msg += " (skipped: " + strings.Join(e.Skipped, ", ") + ")"
	}
	return msg + "; " + e.Fix()
}

// Fix is what to do: label a volume into the pool, or add scratch volumes.
func (e *NoVolumeError) Fix() string {
	enc := ""
	if e.Encrypted {
		enc = " encrypt"
	}
	return fmt.Sprintf("label one with: label storage=%s pool=%s slots=N barcodes%s, or add scratch volumes", e.Storage, e.Pool, enc)
}

// Short is the preview's line: "pool Offsite has no appendable volume:
// label one (…), or add scratch volumes".
func (e *NoVolumeError) Short() string {
	s := fmt.Sprintf("pool %s has no appendable volume", e.Pool)
	if len(e.Skipped) > 0 {
		s += " (" + strings.Join(e.Skipped, ", ") + ")"
	}
	enc := ""
	if e.Encrypted {
		enc = " encrypt"
	}
	return s + fmt.Sprintf(": label one (label storage=%s pool=%s slots=N barcodes%s), or add scratch volumes", e.Storage, e.Pool, enc)
}

// VolumePlanner answers "which volume would a job of this pool write to
// now" without reserving anything: the runner's own selection
// (selectVolume) on the catalog and each storage's inventory, each read
// once per planner. A storage that does not answer within its timeout is
// planned from the catalog alone (Note says so).
type VolumePlanner struct {
	r       *Runner
	timeout time.Duration
	cands   map[[2]string]*candidates
	errs    map[[2]string]error
	inv     map[string]pb.StorageClient // storage → client that answered (nil: unreachable)
	notes   map[string]string
}

// Planner returns a VolumePlanner on the runner's catalog and storages.
func (r *Runner) Planner() *VolumePlanner {
	return &VolumePlanner{r: r, timeout: 5 * time.Second, cands: map[[2]string]*candidates{}, errs: map[[2]string]error{},
		inv: map[string]pb.StorageClient{}, notes: map[string]string{}}
}

// WouldWrite returns the volume a job writing to pool on storage would
// take now; a *NoVolumeError when there is none; another error when the
// catalog cannot say. note is set when the library was not asked.
func (p *VolumePlanner) WouldWrite(ctx context.Context, pool, storage string) (volume, note string, err error) {
	k := [2]string{pool, storage}
	c, ok := p.cands[k]
	if !ok && p.errs[k] == nil {
		sc, asked := p.inv[storage]
		if !asked {
			if cl, err := p.r.o.Storage(storage); err == nil {
				sc = cl
			} else {
				p.notes[storage] = fmt.Sprintf("storage %s: %v; the library was not asked", storage, err)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, p.timeout)
		c, err = p.r.volumeCandidates(tctx, pool, storage, sc)
		cancel()
		if err != nil && sc != nil {
			if je, ok := err.(*jobError); ok && je.origin == "storage" {
				// The storage did not answer: plan from the catalog.
				p.notes[storage] = err.Error() + "; the library was not asked"
				sc = nil
				c, err = p.r.volumeCandidates(ctx, pool, storage, nil)
			}
		}
		p.inv[storage] = sc
		if err != nil {
			p.errs[k] = err
		} else {
			p.cands[k] = c
		}
	}
	if err := p.errs[k]; err != nil {
		return "", "", err
	}
	p.r.mu.Lock()
	m, _, nv := selectVolume(c, nil, p.r.volumes)
	p.r.mu.Unlock()
	if nv != nil {
		return "", p.notes[storage], nv
	}
	return m.Volume, p.notes[storage], nil
}
