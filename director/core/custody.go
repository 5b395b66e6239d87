package core

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// The crypto caches follow rekey (architecture.md §4.8): a rekey queues a
// push of every volume's keys to its storage (catalog.Rekey), the director
// pushes them at once to every storage it can reach, and a storage that was
// down gets them when it says hello (StorageHello) or, failing that, from
// the retry loop (RetryPushes). "status kek=ID" tells what still depends on
// a KEK before it is removed from the configurations.

// pushBatch is how many volumes go into one PushKeys call.
const pushBatch = 500

// pushTimeout bounds one PushKeys call.
const pushTimeout = 30 * time.Second

// PushOutcome is what pushing the pending keys to one storage did.
type PushOutcome struct {
	Storage     string `json:"storage"`
	Pushed      int    `json:"volumes_pushed"`
	Pending     int    `json:"volumes_pending"`
	Unreachable bool   `json:"unreachable,omitempty"`
	Error       string `json:"error,omitempty"`
}

// String is the line rekey prints for the storage.
func (o PushOutcome) String() string {
	switch {
	case o.Unreachable:
		return fmt.Sprintf("%s: unreachable — %d volumes pending, pushed when it next connects", o.Storage, o.Pending)
	case o.Error != "":
		return fmt.Sprintf("%s: push failed (%s) — %d volumes pending, tried again when it next connects", o.Storage, o.Error, o.Pending)
	case o.Pending > 0:
		return fmt.Sprintf("%s: %d volumes pushed, %d pending", o.Storage, o.Pushed, o.Pending)
	}
	return fmt.Sprintf("%s: %d volumes pushed", o.Storage, o.Pushed)
}

func unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// pushStorage pushes the keys of every volume queued for storage name
// (current and history, as the catalog holds them now) into its crypto
// cache, in batches; each batch that storaged accepted is recorded
// (catalog.CompletePushes: pending rows removed, "pushed" key events).
// Pushes to one storage are serialized.
func (d *Director) pushStorage(ctx context.Context, name string) (o PushOutcome) {
	o.Storage = name
	link, ok := d.storages[name]
	if !ok {
		o.Error = "not configured in " + d.cfg.Path
		return o
	}
	link.pushMu.Lock()
	defer link.pushMu.Unlock()
	defer func() {
		if counts, err := d.store.PendingCounts(context.WithoutCancel(ctx)); err == nil {
			o.Pending = counts[name]
		}
	}()
	pend, err := d.store.PendingPushes(ctx, name)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	for start := 0; start < len(pend); start += pushBatch {
		chunk := pend[start:min(start+pushBatch, len(pend))]
		req := &pb.PushKeysRequest{Reason: chunk[0].Reason}
		vols := 0
		for _, p := range chunk {
			if !p.HasKeys() {
				continue
			}
			vols++
			if p.Current != nil {
				req.Keys = append(req.Keys, &pb.CacheKey{Volume: p.Volume, Key: wrappedKey(*p.Current), Current: true})
			}
			for _, h := range p.History {
				req.Keys = append(req.Keys, &pb.CacheKey{Volume: p.Volume, Key: wrappedKey(h)})
			}
		}
		if len(req.Keys) > 0 {
			cctx, cancel := context.WithTimeout(ctx, pushTimeout)
			if start == 0 {
				link.ready(cctx)
			}
			rep, err := link.client.PushKeys(cctx, req)
			cancel()
			if err != nil {
				o.Unreachable = unreachable(err)
				o.Error = status.Convert(err).Message()
				d.log.Warn("pushing keys into a storage's crypto cache failed; they stay pending", "storage", name,
					"volumes", len(pend)-start, "unreachable", o.Unreachable, "error", o.Error)
				return o
			}
			d.log.Info("keys pushed into a storage's crypto cache", "storage", name, "volumes", vols, "keys", len(req.Keys),
				"added", rep.Added, "unchanged", rep.Unchanged)
		}
		if _, err := d.store.CompletePushes(context.WithoutCancel(ctx), name, chunk, "director"); err != nil {
			o.Error = "recording the push: " + err.Error()
			return o
		}
		o.Pushed += vols
	}
	return o
}

// pushAll pushes to every storage with pending pushes, except those in
// skip (known to be unreachable), and returns an outcome per storage that
// had any, sorted by name.
func (d *Director) pushAll(ctx context.Context, skip map[string]bool) []PushOutcome {
	counts, err := d.store.PendingCounts(ctx)
	if err != nil {
		d.log.Error("reading the pending crypto cache pushes", "error", err.Error())
		return nil
	}
	var out []PushOutcome
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		if skip[name] {
			out = append(out, PushOutcome{Storage: name, Pending: counts[name], Unreachable: true})
			continue
		}
		if _, ok := d.storages[name]; !ok {
			out = append(out, PushOutcome{Storage: name, Pending: counts[name], Error: "not configured in " + d.cfg.Path})
			continue
		}
		out = append(out, d.pushStorage(ctx, name))
	}
	return out
}

// RetryPushes pushes the pending keys of every configured storage that has
// some (the background loop's work).
func (d *Director) RetryPushes(ctx context.Context) []PushOutcome { return d.pushAll(ctx, nil) }

// RunPushRetry runs RetryPushes (and delivers pending shreds) at every
// tick until ctx ends: a storage that missed a push (down during the
// rekey, and its hello lost) or a shred is brought up to date without an
// operator. The ticker is injected (tests send ticks by hand).
func (d *Director) RunPushRetry(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			for _, o := range d.RetryPushes(ctx) {
				if o.Pushed > 0 {
					d.log.Info("pending crypto cache pushes made", "storage", o.Storage, "result", o.String())
				}
			}
			for _, o := range d.retryShreds(ctx) {
				if o.Volumes > 0 {
					d.log.Warn("pending shreds made", "storage", o.Storage, "result", o.String())
				}
			}
		}
	}
}

// StorageHello is a storage daemon saying it is (back) up: the director
// answers how many volumes' keys are pending for it and pushes them in
// the background.
func (s *StorageService) StorageHello(ctx context.Context, r *pb.StorageHelloRequest) (*pb.StorageHelloReply, error) {
	p, err := tlsconf.PeerOf(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	d := s.D
	if _, ok := d.storages[p.Name]; !ok {
		return nil, status.Errorf(codes.PermissionDenied, "storage %q is not configured in this director", p.Name)
	}
	counts, err := d.store.PendingCounts(ctx)
	if err != nil {
		return nil, catalogStatus(err)
	}
	pending := counts[p.Name]
	active := d.ring.Active().ID()
	d.log.Info("storage said hello", "storage", p.Name, "kek_ids", r.KekIds, "pending_volumes", pending)
	if !slices.Contains(r.KekIds, active) {
		d.log.Warn("storage does not hold the active KEK: it cannot unwrap keys made or rewrapped now; add the KEK file to its [[keys.kek]] and restart it",
			"storage", p.Name, "active_kek_id", active, "kek_ids", r.KekIds)
	}
	if len(r.CacheUnknownKekIds) > 0 {
		d.log.Warn("storage's crypto cache names KEKs the storage does not hold", "storage", p.Name, "kek_ids", r.CacheUnknownKekIds)
	}
	if pending > 0 {
		go func() {
			o := d.pushStorage(d.bg, p.Name)
			d.log.Info("pending crypto cache pushes after a hello", "storage", p.Name, "result", o.String())
		}()
	}
	d.helloShreds(p.Name)
	return &pb.StorageHelloReply{PendingKeys: uint32(pending)}, nil
}

// storageCache is a storage's crypto cache by KEK, asked live.
type storageCache struct {
	Storage     string         `json:"storage"`
	Reachable   bool           `json:"reachable"`
	Error       string         `json:"error,omitempty"`
	Entries     uint32         `json:"cache_entries"`
	KEKs        []*pb.KekCount `json:"cache_keks,omitempty"`
	UnknownKEKs []string       `json:"cache_unknown_kek_ids,omitempty"`
	StorageKEKs []string       `json:"kek_ids,omitempty"`
	Pending     int            `json:"pushes_pending"`
	// Recovery: storaged found its cache corrupt at start-up.
	Recovery *pb.CacheRecovery `json:"cache_recovery,omitempty"`
}

func (c storageCache) kek(id string) *pb.KekCount {
	for _, k := range c.KEKs {
		if k.KekId == id {
			return k
		}
	}
	return &pb.KekCount{KekId: id}
}

// storageCaches asks every configured storage (and every storage with
// pending pushes) for its crypto cache by KEK.
func (d *Director) storageCaches(ctx context.Context) ([]storageCache, error) {
	pending, err := d.store.PendingCounts(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range d.storages {
		names[n] = true
	}
	for n := range pending {
		names[n] = true
	}
	var out []storageCache
	for _, name := range slices.Sorted(maps.Keys(names)) {
		c := storageCache{Storage: name, Pending: pending[name]}
		link, ok := d.storages[name]
		if !ok {
			c.Error = "not configured in " + d.cfg.Path
			out = append(out, c)
			continue
		}
		c.ask(ctx, link)
		out = append(out, c)
	}
	return out, nil
}

// ask fills c with what the storage daemon behind link says of its crypto
// cache (Status, 3 s at most), or the error that kept it from answering.
func (c *storageCache) ask(ctx context.Context, link *storageLink) {
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	st, err := link.client.Status(hctx, &pb.StatusRequest{})
	cancel()
	if err != nil {
		c.Error = status.Convert(err).Message()
		return
	}
	c.Reachable, c.Entries, c.KEKs, c.UnknownKEKs, c.StorageKEKs = true, st.CacheEntries, st.CacheKeks, st.CacheUnknownKekIds, st.KekIds
	c.Recovery = st.CacheRecovery
}

// KEKReport is "status kek=ID": everything that still depends on one KEK.
type KEKReport struct {
	KEKID      string             `json:"kek_id"`
	Configured bool               `json:"configured"`
	Active     bool               `json:"active"`
	Current    int                `json:"catalog_current_keys"`
	History    int                `json:"catalog_history_keys"`
	Sole       []catalog.SoleKey  `json:"catalog_keys_only_under_it"`
	Storages   []KEKStorageReport `json:"storages"`
	Needed     bool               `json:"still_needed"`
	Reasons    []string           `json:"reasons,omitempty"`
	Verdict    string             `json:"verdict"`
}

// KEKStorageReport is one storage's part of a KEKReport.
type KEKStorageReport struct {
	Storage   string `json:"storage"`
	Reachable bool   `json:"reachable"`
	Keys      uint32 `json:"cache_keys"`
	Sole      uint32 `json:"cache_keys_only_under_it"`
	Pending   int    `json:"pushes_pending"`
	Error     string `json:"error,omitempty"`
}

// kekReport works out what depends on KEK id.
func (d *Director) kekReport(ctx context.Context, id string) (*KEKReport, error) {
	r := &KEKReport{KEKID: id, Active: d.ring.Active().ID() == id, Sole: []catalog.SoleKey{}}
	r.Configured = slices.Contains(d.ring.IDs(), id)
	use, err := d.store.KEKUsage(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range use {
		if u.KEKID == id {
			r.Current, r.History = u.Current, u.History
			r.Sole = append(r.Sole, u.Sole...)
		}
	}
	caches, err := d.storageCaches(ctx)
	if err != nil {
		return nil, err
	}
	if r.Active {
		r.Reasons = append(r.Reasons, "it is the active KEK in "+d.cfg.Path+" (new keys are wrapped under it)")
	}
	if n := len(r.Sole); n > 0 {
		r.Reasons = append(r.Reasons, fmt.Sprintf("%d catalog keys are wrapped only under it (run rekey yes with another KEK active)", n))
	}
	for _, c := range caches {
		s := KEKStorageReport{Storage: c.Storage, Reachable: c.Reachable, Pending: c.Pending, Error: c.Error}
		if c.Reachable {
			k := c.kek(id)
			s.Keys, s.Sole = k.Keys, k.Sole
			if s.Sole > 0 {
				r.Reasons = append(r.Reasons, fmt.Sprintf("the crypto cache of storage %s holds %d keys only under it", c.Storage, s.Sole))
			}
		} else {
			r.Reasons = append(r.Reasons, fmt.Sprintf("storage %s is unreachable, so what its crypto cache holds is unknown", c.Storage))
		}
		if c.Pending > 0 {
			r.Reasons = append(r.Reasons, fmt.Sprintf("%d crypto cache pushes to storage %s are pending", c.Pending, c.Storage))
		}
		r.Storages = append(r.Storages, s)
	}
	r.Needed = len(r.Reasons) > 0
	if r.Needed {
		r.Verdict = fmt.Sprintf("KEK %s is still needed: %s", id, strings.Join(r.Reasons, "; "))
	} else {
		r.Verdict = fmt.Sprintf("nothing depends on KEK %s: it may be removed from director.toml and every storaged.toml", id)
	}
	return r, nil
}

// maxListed is how many sole keys "status kek" names before it counts.
const maxListed = 20

func (d *Director) statusKEK(ctx context.Context, id string) (*Output, error) {
	r, err := d.kekReport(ctx, id)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	state := "not in this director's keyring"
	switch {
	case r.Active:
		state = "active in this director's keyring"
	case r.Configured:
		state = "in this director's keyring (not active)"
	}
	fmt.Fprintf(&b, "KEK %s: %s\n", id, state)
	fmt.Fprintf(&b, "catalog: %d current keys, %d history keys wrapped under it; %d only under it\n", r.Current, r.History, len(r.Sole))
	for i, k := range r.Sole {
		if i == maxListed {
			fmt.Fprintf(&b, "  … and %d more\n", len(r.Sole)-maxListed)
			break
		}
		what := "current key"
		if k.History {
			what = "history key"
		}
		fmt.Fprintf(&b, "  %s  %s %s\n", k.Volume, what, k.Fingerprint)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORAGE\tCACHE KEYS UNDER IT\tONLY UNDER IT\tPUSHES PENDING")
	for _, s := range r.Storages {
		keys, sole := fmt.Sprint(s.Keys), fmt.Sprint(s.Sole)
		if !s.Reachable {
			keys, sole = "unknown (unreachable: "+s.Error+")", "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Storage, keys, sole, s.Pending)
	}
	tw.Flush()
	b.WriteString(r.Verdict)
	return &Output{Text: b.String(), JSON: r}, nil
}

// checkKEKsNeeded refuses a keyring that lacks a KEK the catalog's keys
// are wrapped under: the director could not unwrap them (rekey, mounts of
// a storage lacking the KEK would fail later, far from the cause).
func checkKEKsNeeded(ctx context.Context, store *catalog.Store, have []string, cfgPath string) error {
	use, err := store.KEKUsage(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, u := range use {
		if slices.Contains(have, u.KEKID) {
			continue
		}
		var vols []string
		for i, k := range u.Sole {
			if i == 5 {
				vols = append(vols, fmt.Sprintf("… %d more", len(u.Sole)-5))
				break
			}
			vols = append(vols, k.Volume)
		}
		missing = append(missing, fmt.Sprintf("KEK %s wraps %d current and %d history keys in the catalog (volumes %s)",
			u.KEKID, u.Current, u.History, strings.Join(vols, ", ")))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s drops KEKs the catalog still needs: %s. Put their [[keys.kek]] back, run `rekey yes`, "+
		"check that `status kek=ID` says nothing depends on them, and only then remove them", cfgPath, strings.Join(missing, "; "))
}
