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

// candidates are what selectVolume chooses from, in the order of jobs.md
// §4: the pool's Append volumes in the storage, most recently written
// first; then the scratch pool's never-written Append volumes; then the
// Purged volumes to recycle (the pool's, then the scratch pool's), oldest
// last write first. Where the library has them comes from its inventory.
type candidates struct {
	pool, storage string
	encrypt       bool
	media         []catalog.Media
	// locate finds a volume's cartridge in the library; nil when the
	// library was not asked (the preview of an unreachable storage): every
	// volume the catalog records in the library is taken as present.
	locate func(m *catalog.Media) (where, bool)
	// usage of each Append volume against its own limits, at now.
	usage map[string]catalog.VolumeUsage
	now   time.Time
	// others are the pool's volumes in another status than Append.
	others []catalog.Media

	// scratchPool is the pool's scratch_pool ("" : none); scratch its
	// Append volumes never written.
	scratchPool string
	scratch     []catalog.Media
	// recycles: the pool may reuse purged volumes (recycle = true);
	// recycle are the Purged (or Recycle) volumes it may reuse.
	recycles bool
	recycle  []catalog.Media
	// autoPrune: expired are the pool's Full/Used volumes whose
	// retention has ended, which a job prunes when nothing else fits.
	autoPrune bool
	expired   []catalog.Media
}

// How a selected volume comes to the job.
const (
	fromPool    = ""        // an Append volume of the job's pool
	fromScratch = "scratch" // moved in from the scratch pool
	fromRecycle = "recycle" // a purged volume, relabelled with a new key
	fromPrune   = "prune"   // preview only: an expired volume auto-prune would purge, then recycle
)

// choice is selectVolume's answer.
type choice struct {
	m    *catalog.Media
	w    where
	from string
	// how says it for the preview and the job log: "" for an Append
	// volume of the pool, "from scratch pool X", "recycled: purged …".
	how string
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
// (and its scratch pool's and the purged ones to recycle) and, when sc is
// not nil, where the storage's changers hold them.
func (r *Runner) volumeCandidates(ctx context.Context, pool, storage string, sc pb.StorageClient) (*candidates, error) {
	c := &candidates{pool: pool, storage: storage, encrypt: true, recycles: true, autoPrune: true}
	if p, ok := r.o.Config.PoolNamed(pool); ok {
		c.encrypt = p.EncryptsVolumes()
		c.scratchPool, c.recycles, c.autoPrune = p.ScratchPool, p.Recycles(), p.AutoPrunes()
	}
	all, err := r.o.Catalog.ListMedia(ctx, catalog.MediaFilter{Pool: pool, Storage: storage})
	if err != nil {
		return nil, fail("catalog", "%v", err)
	}
	c.now = r.o.Clock()
	// Only Append volumes are candidates to append to: Full, Used, Error,
	// Read-Only, Disabled, Archive and Labeling never are; Purged and
	// Recycle ones only through recycling (the others are named when
	// none fits).
	var ms []catalog.Media
	var names []string
	for _, m := range all {
		switch {
		case m.Status == catalog.StatusAppend:
			ms = append(ms, m)
			names = append(names, m.Volume)
		case (m.Status == catalog.StatusPurged || m.Status == catalog.StatusRecycle) && c.recycles && m.Recycle:
			c.recycle = append(c.recycle, m)
		default:
			c.others = append(c.others, m)
		}
	}
	if c.usage, err = r.o.Catalog.VolumeUsages(ctx, names); err != nil {
		return nil, fail("catalog", "%v", err)
	}
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
	if c.scratchPool != "" && c.scratchPool != pool {
		sm, err := r.o.Catalog.ListMedia(ctx, catalog.MediaFilter{Pool: c.scratchPool, Storage: storage})
		if err != nil {
			return nil, fail("catalog", "%v", err)
		}
		var purged []catalog.Media
		for _, m := range sm {
			switch {
			case m.Status == catalog.StatusAppend && m.BytesWritten == 0 && m.LastWritten == nil:
				c.scratch = append(c.scratch, m)
			case (m.Status == catalog.StatusPurged || m.Status == catalog.StatusRecycle) && c.recycles && m.Recycle:
				purged = append(purged, m)
			}
		}
		byOldest(purged)
		byOldest(c.recycle)
		c.recycle = append(c.recycle, purged...)
	} else {
		byOldest(c.recycle)
	}
	if c.autoPrune && c.recycles {
		exp, err := r.o.Catalog.ExpiredVolumes(ctx, pool, c.now)
		if err != nil {
			return nil, fail("catalog", "%v", err)
		}
		byName := map[string]catalog.Media{}
		for _, m := range c.others {
			byName[m.Volume] = m
		}
		for _, v := range exp {
			if m, ok := byName[v]; ok && m.Recycle {
				c.expired = append(c.expired, m)
			}
		}
	}
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

// byOldest sorts volumes to recycle: oldest last write first (never
// written first), then by name.
func byOldest(ms []catalog.Media) {
	sort.SliceStable(ms, func(a, b int) bool {
		la, lb := ms[a].LastWritten, ms[b].LastWritten
		switch {
		case la != nil && lb != nil && !la.Equal(*lb):
			return la.Before(*lb)
		case (la == nil) != (lb == nil):
			return la == nil
		}
		return ms[a].Volume < ms[b].Volume
	})
}

// present says whether m's cartridge is in the library (and where), or
// why not: offsite (the catalog says it was exported) or not found by the
// changer.
func (c *candidates) present(m *catalog.Media) (where, string) {
	if !m.InChanger {
		since := ""
		if m.OffsiteSince != nil {
			since = " since " + m.OffsiteSince.Format(time.DateOnly)
		}
		return where{}, "offsite" + since + ", not in the library"
	}
	if c.locate == nil {
		return where{}, ""
	}
	if w, ok := c.locate(m); ok {
		return w, ""
	}
	return where{}, "not in the changer"
}

// selectVolume is the choice itself, without side effects (the order of
// jobs.md §4): the first Append candidate of the pool (most recently
// written first) that is not excluded (the job's own volumes), encrypted
// as the pool says, not in use by another job and in the library; else a
// never-written Append volume of the scratch pool (encrypted as the pool
// wants); else a Purged volume to recycle, oldest last write first; else,
// for the preview (withExpired), an expired volume auto-prune would purge
// first. Error, Read-Only, Disabled, Archive volumes never. When none
// fits it returns a *NoVolumeError saying what was skipped and how to fix
// it.
func selectVolume(c *candidates, exclude func(string) bool, inUse map[string]bool, withExpired bool) (*choice, *NoVolumeError) {
	var skipped []string
	usable := func(m *catalog.Media, checkEnc bool) (where, bool) {
		if exclude != nil && exclude(m.Volume) {
			return where{}, false
		}
		if checkEnc && m.Encrypted != c.encrypt {
			skipped = append(skipped, fmt.Sprintf("%s (encrypted=%t, pool wants %t)", m.Volume, m.Encrypted, c.encrypt))
			return where{}, false
		}
		if inUse[m.Volume] {
			skipped = append(skipped, m.Volume+" (in use by another job)")
			return where{}, false
		}
		w, why := c.present(m)
		if why != "" {
			skipped = append(skipped, m.Volume+" ("+why+")")
			return where{}, false
		}
		return w, true
	}
	for i := range c.media {
		m := &c.media[i]
		if exclude != nil && exclude(m.Volume) {
			continue
		}
		if to, why := c.overLimit(m); to != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s: it is %s now)", m.Volume, why, to))
			continue
		}
		if w, ok := usable(m, true); ok {
			return &choice{m: m, w: w, from: fromPool}, nil
		}
	}
	for i := range c.scratch {
		m := &c.scratch[i]
		if w, ok := usable(m, true); ok {
			return &choice{m: m, w: w, from: fromScratch, how: "from scratch pool " + c.scratchPool}, nil
		}
	}
	if !c.recycles {
		skipped = append(skipped, "pool "+c.pool+" has recycle = false: its purged volumes are never reused")
	}
	for i := range c.recycle {
		m := &c.recycle[i]
		if w, ok := usable(m, false); ok {
			how := "recycled: purged"
			if m.PurgedAt != nil {
				how += " " + m.PurgedAt.Format(time.DateOnly)
			}
			if m.LastWritten != nil {
				how += ", last written " + m.LastWritten.Format(time.DateOnly)
			}
			if m.Pool != c.pool {
				how += ", from pool " + m.Pool
			}
			return &choice{m: m, w: w, from: fromRecycle, how: how + "; relabelled with a new key"}, nil
		}
	}
	for i := range c.expired {
		m := &c.expired[i]
		if !withExpired {
			skipped = append(skipped, m.Volume+" (retention ended; auto-prune did not purge it)")
			continue
		}
		if w, ok := usable(m, false); ok {
			how := "recycled after auto-prune: retention ended"
			if m.LastWritten != nil {
				how += ", last written " + m.LastWritten.Format(time.DateOnly)
			}
			return &choice{m: m, w: w, from: fromPrune, how: how + "; relabelled with a new key"}, nil
		}
	}
	expired := map[string]bool{}
	for _, m := range c.expired {
		expired[m.Volume] = true
	}
	n := 0
	for _, o := range c.others {
		if expired[o.Volume] {
			continue
		}
		if n == maxOthers {
			skipped = append(skipped, fmt.Sprintf("%d more not Append", len(c.others)-maxOthers))
			break
		}
		n++
		what := string(o.Status)
		if o.ErrorReason != "" {
			what += ": " + o.ErrorReason
		}
		skipped = append(skipped, fmt.Sprintf("%s (%s)", o.Volume, what))
	}
	return nil, &NoVolumeError{Pool: c.pool, Storage: c.storage, Encrypted: c.encrypt, Skipped: skipped, ScratchPool: c.scratchPool}
}

// NoVolumeError says that a pool has no volume a job could write to, and
// how to get one.
type NoVolumeError struct {
	Pool, Storage string
	Encrypted     bool     // the pool's volumes are encrypted
	Skipped       []string // volumes that did not fit, and why
	ScratchPool   string   // the pool's scratch_pool ("" : none)
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
	return fmt.Sprintf("label one with: label storage=%s pool=%s slots=N barcodes%s, or %s", e.Storage, e.Pool, enc, e.scratchFix())
}

func (e *NoVolumeError) scratchFix() string {
	if e.ScratchPool != "" {
		return "add scratch volumes (label … pool=" + e.ScratchPool + ")"
	}
	return "add scratch volumes (a scratch_pool for pool " + e.Pool + " in director.toml)"
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
	return s + fmt.Sprintf(": label one (label storage=%s pool=%s slots=N barcodes%s), or %s", e.Storage, e.Pool, enc, e.scratchFix())
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

// Plan is what a job writing to a pool would take now.
type Plan struct {
	Volume string
	// How it comes to the job: "" (an Append volume of the pool), "from
	// scratch pool X", "recycled: purged …; relabelled with a new key".
	How string
	// Note is set when the library was not asked.
	Note string
}

// WouldWrite returns the volume a job writing to pool on storage would
// take now; a *NoVolumeError when there is none; another error when the
// catalog cannot say. note is set when the library was not asked.
func (p *VolumePlanner) WouldWrite(ctx context.Context, pool, storage string) (volume, note string, err error) {
	pl, err := p.WouldTake(ctx, pool, storage)
	return pl.Volume, pl.Note, err
}

// WouldTake is WouldWrite saying how the volume would come to the job.
func (p *VolumePlanner) WouldTake(ctx context.Context, pool, storage string) (Plan, error) {
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
		var err error
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
		return Plan{}, err
	}
	p.r.mu.Lock()
	ch, nv := selectVolume(c, nil, p.r.volumes, true)
	p.r.mu.Unlock()
	if nv != nil {
		return Plan{Note: p.notes[storage]}, nv
	}
	return Plan{Volume: ch.m.Volume, How: ch.how, Note: p.notes[storage]}, nil
}
