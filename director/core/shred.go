package core

// Crypto-shredding (issue 11 item 7, architecture.md §4 invariant 7):
// `shred volume=V yes` destroys every copy of V's keys the system holds.
// The catalog's copies go in one transaction (catalog.ShredVolume, which
// queues a shred for every storage daemon); the director then asks each
// storage daemon to destroy its copies (Storage.ShredKeys: crypto cache and
// drives). A storage that is down gets the shred when it says hello again
// (StorageHello) or from the retry loop; until then `shred` reports it
// pending. What no program can reach — keys exports written earlier,
// backups — is listed for the operator.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// shredTimeout bounds one ShredKeys call.
const shredTimeout = 30 * time.Second

// ShredOutcome is what one storage daemon did with the pending shreds.
type ShredOutcome struct {
	Storage     string   `json:"storage"`
	Volumes     int      `json:"volumes_done"`
	Destroyed   int      `json:"stored_strings_destroyed"`
	Absent      int      `json:"volumes_absent"`
	NotEdited   []string `json:"not_edited,omitempty"`
	Pending     int      `json:"volumes_pending"`
	Unreachable bool     `json:"unreachable,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// String is the line shred prints for the storage.
func (o ShredOutcome) String() string {
	var s string
	switch {
	case o.Unreachable && o.Pending > 0:
		s = fmt.Sprintf("pending on %s (unreachable): will be destroyed when it reconnects", o.Storage)
	case o.Error != "" && o.Pending > 0:
		s = fmt.Sprintf("pending on %s (%s): tried again every minute and when it reconnects", o.Storage, o.Error)
	case o.Destroyed > 0:
		s = fmt.Sprintf("%s: %d stored strings destroyed in its crypto cache", o.Storage, o.Destroyed)
	default:
		s = fmt.Sprintf("%s: its crypto cache held no key of it (nothing to destroy)", o.Storage)
	}
	if len(o.NotEdited) > 0 {
		s += fmt.Sprintf("; NOT EDITED on %s: corrupt cache copies kept aside still name the volume (%s) — destroy them by hand", o.Storage, strings.Join(o.NotEdited, ", "))
	}
	return s
}

// shredStorage delivers every shred queued for storage name, one volume a
// call, and records each answer (catalog.CompleteShreds). It is
// serialized with the key pushes to that storage (pushMu): a push read
// before a shred is delivered before it, never after.
func (d *Director) shredStorage(ctx context.Context, name string) (o ShredOutcome) {
	o.Storage = name
	defer func() {
		if counts, err := d.store.PendingShredCounts(context.WithoutCancel(ctx)); err == nil {
			o.Pending = counts[name]
		}
	}()
	ln, ok := d.storages[name]
	if !ok {
		o.Error = "not configured in " + d.cfg.Path
		return o
	}
	ln.pushMu.Lock()
	defer ln.pushMu.Unlock()
	pend, err := d.store.PendingShreds(ctx, name)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	for i, p := range pend {
		cctx, cancel := context.WithTimeout(ctx, shredTimeout)
		if i == 0 {
			ln.ready(cctx)
		}
		var tr metadata.MD
		rep, err := ln.client.ShredKeys(cctx, &pb.ShredKeysRequest{Volumes: []string{p.Volume}, Reason: p.Reason}, grpc.Trailer(&tr))
		cancel()
		notEdited := tr.Get(link.TrailerShredNotEdited)
		o.NotEdited = append(o.NotEdited, notEdited...)
		if err != nil {
			o.Unreachable = unreachable(err)
			o.Error = status.Convert(err).Message()
			d.log.Warn("shredding keys in a storage's crypto cache failed; the shred stays pending", "storage", name,
				"volume", p.Volume, "unreachable", o.Unreachable, "error", o.Error)
			return o
		}
		done := catalog.ShredDone{PendingShred: p, Destroyed: int(rep.Destroyed), Absent: slices.Contains(rep.Absent, p.Volume), NotEdited: notEdited}
		if _, err := d.store.CompleteShreds(context.WithoutCancel(ctx), name, []catalog.ShredDone{done}, "director"); err != nil {
			o.Error = "recording the shred: " + err.Error()
			return o
		}
		d.log.Warn("keys shredded in a storage's crypto cache", "storage", name, "volume", p.Volume,
			"stored_strings_destroyed", rep.Destroyed, "absent", done.Absent, "not_edited", notEdited)
		o.Volumes++
		o.Destroyed += int(rep.Destroyed)
		if done.Absent {
			o.Absent++
		}
	}
	return o
}

// retryShreds delivers the pending shreds of every storage that has some
// (the retry loop's work, next to the key pushes').
func (d *Director) retryShreds(ctx context.Context) []ShredOutcome {
	counts, err := d.store.PendingShredCounts(ctx)
	if err != nil {
		d.log.Error("reading the pending shreds", "error", err.Error())
		return nil
	}
	var out []ShredOutcome
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, d.shredStorage(ctx, name))
	}
	return out
}

// helloShreds delivers, in the background, the shreds a storage that says
// hello missed while it was down.
func (d *Director) helloShreds(name string) {
	counts, err := d.store.PendingShredCounts(d.bg)
	if err != nil || counts[name] == 0 {
		return
	}
	go func() {
		o := d.shredStorage(d.bg, name)
		d.log.Warn("pending shreds after a hello", "storage", name, "result", o.String())
	}()
}

// shredVolume is `shred volume=V [yes]`.
func (d *Director) shredVolume(ctx context.Context, actor, volume string, yes bool) (*Output, error) {
	m, err := d.store.GetMedia(ctx, volume)
	if err != nil {
		return nil, err
	}
	if d.jobs != nil && d.jobs.VolumeInUse(volume) {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot shred volume %s: a job session has it (status director shows the job); wait for the job to end or cancel it, then shred — nothing was destroyed", volume)
	}
	if err := d.requireNotWriting(ctx, m); err != nil {
		return nil, err
	}
	if !yes {
		return d.shredPreview(ctx, m)
	}
	res, err := d.store.ShredVolume(ctx, volume, "console:"+actor)
	if err != nil {
		return nil, err
	}
	d.log.Warn("VOLUME SHREDDED: every key the catalog held of it destroyed", "volume", volume, "actor", actor,
		"fingerprints", res.Fingerprints, "old_status", string(res.OldStatus), "storages", res.Storages)
	var b bytes.Buffer
	fmt.Fprintf(&b, "volume %s shredded: %d keys destroyed in the catalog (%s); this cannot be undone\n",
		volume, len(res.Fingerprints), describeFingerprints(res.Fingerprints))
	fmt.Fprintf(&b, "status: %s -> Purged (%s)\n", res.OldStatus, catalog.ShreddedReason)
	if len(res.Jobs) > 0 {
		fmt.Fprintf(&b, "catalog: %d jobs and %d file records purged with it (their data cannot be read): jobs %s\n",
			len(res.Jobs), res.Files, joinIDs(res.Jobs))
	}
	type shredReport struct {
		catalog.ShredResult
		Outcomes []ShredOutcome `json:"storages"`
	}
	rep := shredReport{ShredResult: res, Outcomes: []ShredOutcome{}}
	if len(res.Storages) > 0 {
		b.WriteString("crypto caches and drives:\n")
	}
	for _, name := range res.Storages {
		o := d.shredStorage(ctx, name)
		rep.Outcomes = append(rep.Outcomes, o)
		fmt.Fprintf(&b, "  %s\n", o.String())
	}
	writeOutOfReach(&b, res.Exports, res.Imported, res.Scheme, res.EscrowKeys)
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: rep}, nil
}

// shredPreview says what `shred volume=V yes` would destroy.
func (d *Director) shredPreview(ctx context.Context, m catalog.Media) (*Output, error) {
	hist, err := d.store.KeyHistory(ctx, m.Volume)
	if err != nil {
		return nil, err
	}
	if !m.Encrypted && len(hist) == 0 {
		ns := &catalog.NothingToShredError{Volume: m.Volume}
		if sh, err := d.store.Shredded(ctx, m.Volume); err == nil && sh != nil {
			ns.Shredded = sh
		}
		return nil, status.Error(codes.FailedPrecondition, ns.Error())
	}
	var fps []string
	if m.Encrypted {
		fps = append(fps, m.KeyFingerprint+" (current, KEK "+m.KEKID+")")
	}
	scheme := string(m.KeyScheme)
	for _, h := range hist {
		if h.Current {
			continue
		}
		fps = append(fps, h.Key.Fingerprint+" (history: "+h.Reason+", KEK "+h.Key.KEKID+")")
		if h.Key.Scheme == "bareos" {
			scheme = "bareos"
		}
	}
	exports, err := d.store.ListKeyEvents(ctx, catalog.KeyEventFilter{Volume: m.Volume, Event: catalog.EventExported})
	if err != nil {
		return nil, err
	}
	imports, err := d.store.ListKeyEvents(ctx, catalog.KeyEventFilter{Volume: m.Volume, Event: catalog.EventImported})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "shred volume=%s would DESTROY every key of the volume the system holds; its data (%d bytes written) could then never be read again, by anyone:\n",
		m.Volume, m.BytesWritten)
	fmt.Fprintf(&b, "  catalog: %d keys — %s\n", len(fps), strings.Join(fps, "; "))
	var storages []string
	for n := range d.storages {
		storages = append(storages, n)
	}
	slices.Sort(storages)
	fmt.Fprintf(&b, "  crypto caches and drives of storages %s (one that is down: when it reconnects)\n", strings.Join(storages, ", "))
	fmt.Fprintf(&b, "  status %s -> Purged (shredded), recorded in the key and volume events\n", m.Status)
	var escrowIDs []string
	if m.EscrowKeyID != "" {
		escrowIDs = append(escrowIDs, m.EscrowKeyID)
	}
	for _, h := range hist {
		if e, err := d.store.VolumeEscrow(ctx, m.Volume, h.Key.Fingerprint); err == nil && !e.IsZero() && !slices.Contains(escrowIDs, e.KeyID) {
			escrowIDs = append(escrowIDs, e.KeyID)
		}
	}
	slices.Sort(escrowIDs)
	writeOutOfReach(&b, toExports(exports), toExports(imports), scheme, escrowIDs)
	fmt.Fprintf(&b, "This cannot be undone. To do it: shred volume=%s yes", m.Volume)
	return &Output{Text: b.String(), JSON: map[string]any{"volume": m.Volume, "would_destroy": fps, "storages": storages, "exports_out_of_reach": toExports(exports)}}, nil
}

// toExports turns key events (newest first) into KeyExports, oldest first.
func toExports(evs []catalog.KeyEvent) []catalog.KeyExport {
	out := make([]catalog.KeyExport, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, catalog.KeyExport{At: evs[i].At, Actor: evs[i].Actor, Detail: evs[i].Detail})
	}
	return out
}

// writeOutOfReach lists the copies of the keys no program here can
// destroy.
func writeOutOfReach(b *bytes.Buffer, exports, imports []catalog.KeyExport, scheme string, escrowKeys []string) {
	b.WriteString("out of the system's reach (destroy them yourself, or the data stays readable with them):\n")
	if len(exports) == 0 {
		b.WriteString("  keys exports: none recorded for this volume\n")
	}
	for _, e := range exports {
		fmt.Fprintf(b, "  keys export written %s by %s (%s)\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Detail)
	}
	for _, e := range imports {
		fmt.Fprintf(b, "  key imported %s by %s (%s): its source may still hold it\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Detail)
	}
	if scheme == "bareos" {
		b.WriteString("  a Bareos-scheme key: the Bareos catalog and the Bareos crypto cache it came from may still hold the passphrase\n")
	}
	for _, id := range escrowKeys {
		fmt.Fprintf(b, "  the escrow envelope in the volume's label on the tape: sealed to escrow key %s, whoever holds that escrow private key can still read the data (overwrite or destroy the cartridge)\n", id)
	}
	b.WriteString("  backups of the catalog database and copies of crypto cache files made before now\n")
}

func describeFingerprints(fps []string) string {
	if len(fps) == 0 {
		return "none"
	}
	return "keys " + strings.Join(fps, ", ")
}

// requireNotWriting refuses a shred while the volume's storage says a
// write session is open on it (a job of another director, or one this
// director lost track of). A storage that cannot be asked does not stop
// the shred: its copies are destroyed when it reconnects.
func (d *Director) requireNotWriting(ctx context.Context, m catalog.Media) error {
	if m.Storage == "" {
		return nil
	}
	ln, err := d.storage(m.Storage)
	if err != nil {
		return nil
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := ln.client.VolumeState(vctx, &pb.VolumeStateRequest{Volume: m.Volume})
	cancel()
	if err != nil || !st.Writing {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "cannot shred volume %s: it is mounted in drive %s of storage %s and a write session is open on it; wait for the job to end or cancel it, then shred — nothing was destroyed",
		m.Volume, st.Drive, m.Storage)
}
