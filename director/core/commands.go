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

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// SlotResult is one slot's outcome of a label command.
type SlotResult struct {
	Slot        int    `json:"slot"`
	Volume      string `json:"volume,omitempty"`
	Barcode     string `json:"barcode,omitempty"`
	OK          bool   `json:"ok"`
	Encrypted   bool   `json:"encrypted"`
	Verified    bool   `json:"encryption_verified"`
	Fingerprint string `json:"key_fingerprint,omitempty"`
	KEKID       string `json:"kek_id,omitempty"`
	Drive       string `json:"drive,omitempty"`
	Error       string `json:"error,omitempty"`
	// KeyKept: the label failed after the volume's key was committed; the
	// row stays (status Error) with its key.
	KeyKept bool `json:"key_kept,omitempty"`
	// NotAttempted: the storage stopped answering at an earlier slot;
	// nothing was done for this one (no key made).
	NotAttempted bool `json:"not_attempted,omitempty"`
	unavailable  bool // the storage did not answer (stop the batch)
}

// label runs "label [storage=] [pool=] (slots= barcodes | slot= volume=) [encrypt] [drive=]".
// storage= defaults to the only configured storage, pool= to default_pool.
// The slots are checked against the changer's inventory before anything
// is written (no pool, no key, no row for a bad slot list). Per slot: the
// media row with the wrapped key is committed (status Labeling) before
// storaged is asked; success marks it Append with the encryption-verified
// time, failure marks it Error with the reason and keeps the key. A
// storage that stops answering (Unavailable) stops the command: no key is
// made for the slots after it, and the reply lists them.
func (d *Director) label(ctx context.Context, actor string, cmd console.Command, progress Progress) (*Output, error) {
	storage, poolName, err := d.labelTargets(ctx, cmd, progress)
	if err != nil {
		return nil, err
	}
	link, err := d.storage(storage)
	if err != nil {
		return nil, err
	}
	encrypt, barcodes := cmd.Bool("encrypt"), cmd.Bool("barcodes")
	drive, err := d.driveName(ctx, link, cmd)
	if err != nil {
		return nil, err
	}
	inv, err := link.client.Inventory(ctx, &pb.InventoryRequest{})
	if err != nil {
		return nil, storageErr(storage, "inventory", err)
	}
	if len(inv.Changers) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "storage %s has no changer", storage)
	}
	ch := inv.Changers[0]
	slots := cmd.Slots()
	if !barcodes {
		if n, ok := cmd.Int("slot"); ok {
			slots = []int{n}
		}
	}
	if err := checkSlots(storage, ch, slots); err != nil {
		return nil, err
	}
	// A configured pool is recorded as director.toml says now, so that the
	// new volumes take its current limits.
	configured, err := d.syncPool(ctx, poolName)
	if err != nil {
		return nil, err
	}
	if !configured {
		if _, err := d.store.GetPool(ctx, poolName); isNotFound(err) {
			if _, err := d.store.EnsurePool(ctx, catalog.PoolSpec{Name: poolName, Encrypt: encrypt, Storage: storage}); err != nil {
				return nil, err
			}
			progress("pool %s created", poolName)
		} else if err != nil {
			return nil, err
		}
	}
	var results []SlotResult
	failed, kept := 0, 0
	var notAttempted []int
	for i, n := range slots {
		r := d.labelSlot(ctx, actor, link, ch, n, cmd.Str("volume"), poolName, drive, encrypt, barcodes)
		if !r.OK {
			r.Encrypted = false // asked for, but the volume is not (yet) encrypted
		}
		results = append(results, r)
		if r.OK {
			what := "labelled"
			if r.Encrypted {
				what += ", encryption verified (key " + r.Fingerprint + ")"
			}
			progress("slot %d (%d/%d): %s %s", n, i+1, len(slots), r.Volume, what)
		} else {
			failed++
			if r.KeyKept {
				kept++
			}
			progress("slot %d (%d/%d): FAILED: %s", n, i+1, len(slots), r.Error)
			if r.unavailable && !d.answers(ctx, link) {
				notAttempted = slots[i+1:]
				break
			}
		}
	}
	for _, n := range notAttempted {
		results = append(results, SlotResult{Slot: n, NotAttempted: true, Error: "not attempted: storage " + storage + " stopped answering"})
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tVOLUME\tRESULT\tENCRYPTED\tKEY FINGERPRINT\tKEK ID")
	for _, r := range results {
		res := "labelled"
		if !r.OK {
			res = "FAILED: " + r.Error
		}
		if r.NotAttempted {
			res = "not attempted"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Slot, dash(r.Volume), res, encryptedCell(r, encrypt), dash(r.Fingerprint), dash(r.KEKID))
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d of %d slots labelled", len(slots)-failed-len(notAttempted), len(slots))
	if failed > 0 {
		fmt.Fprintf(&b, "; %d failed", failed)
	}
	if kept > 0 {
		fmt.Fprintf(&b, " (%d of them have their key committed: kept in the catalog, status Error; label them again to retry)", kept)
	}
	if len(notAttempted) > 0 {
		fmt.Fprintf(&b, "\nstorage %s stopped answering: slots %s were not attempted (no key was made for them); when storaged runs again, label them with slots=%s",
			storage, console.FormatSlots(notAttempted), console.FormatSlots(notAttempted))
	}
	return &Output{Text: b.String(), JSON: results, Partial: failed > 0 || len(notAttempted) > 0}, nil
}

func yesNo(encrypted, verified bool) string {
	switch {
	case encrypted && verified:
		return "yes, verified"
	case encrypted:
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// labelSlot labels one slot; it never returns an error, only a result.
func (d *Director) labelSlot(ctx context.Context, actor string, link *storageLink, ch *pb.ChangerInventory, n int, volume, pool, drive string, encrypt, barcodes bool) SlotResult {
	r := SlotResult{Slot: n, Encrypted: encrypt}
	if n < 1 || n > len(ch.Slots) {
		r.Error = fmt.Sprintf("changer %s has slots 1-%d", ch.Name, len(ch.Slots))
		return r
	}
	slot := ch.Slots[n-1]
	r.Barcode = slot.Barcode
	if !slot.Full {
		r.Error = "the slot is empty"
		return r
	}
	if barcodes {
		if slot.Barcode == "" {
			r.Error = "the cartridge has no barcode; label it with slot= volume="
			return r
		}
		volume = slot.Barcode
	}
	r.Volume = volume
	storage := link.ref.Name

	if !d.beginLabel(volume) {
		r.Error = fmt.Sprintf("volume %s is being labelled by another command right now", volume)
		return r
	}
	defer d.endLabel(volume)
	var sk *keys.StoredKey
	relabel := false
	m, err := d.store.GetMedia(ctx, volume)
	if err == nil && m.Status == catalog.StatusLabeling && m.Storage == storage {
		// No label of this volume runs in this director: an earlier one
		// could not record its end (catalog lost, console gone). It is
		// retried like a label that failed, with the committed key.
		got, ierr := d.store.InterruptLabeling(ctx, actor, volume)
		if ierr != nil {
			r.Error = ierr.Error()
			return r
		}
		if len(got) == 1 {
			d.log.Warn("a label of this volume did not finish; retrying it with the committed key", "volume", volume)
			m.Status = catalog.StatusError
		}
	}
	recycle := false
	if err == nil && !barcodes && (m.Status == catalog.StatusPurged || m.Status == catalog.StatusRecycle) && m.Storage == storage {
		// A purged volume labelled by hand, by name (slot= volume=; a
		// range of barcodes never recycles): recycled now, with a new key
		// (the old one to its key history), like a job would.
		if pool != "" && pool != m.Pool {
			if merr := d.store.MoveVolumeToPool(ctx, volume, pool, actor, "labelled into pool "+pool+" by console "+actor); merr != nil {
				r.Error = merr.Error()
				return r
			}
		}
		nm, rerr := d.store.BeginRecycle(ctx, catalog.RecycleRequest{Volume: volume, Encrypt: encrypt, Ring: d.ring, Actor: actor,
			Reason: "recycled by console " + actor + " (label)"})
		if rerr != nil {
			r.Error = rerr.Error()
			return r
		}
		m, recycle = nm, true
	}
	switch {
	case recycle:
		relabel = true
		if encrypt {
			k, err := d.store.VolumeKey(ctx, volume, storage)
			if err != nil {
				r.Error = err.Error()
				return r
			}
			sk = &k
		}
	case err == nil && m.Status == catalog.StatusError && m.Storage == storage && m.Encrypted == encrypt:
		// A label that failed before: try again with the key already
		// committed (the tape may hold blocks written with it, or the
		// label of this volume).
		if err := d.store.BeginRelabel(ctx, volume); err != nil {
			r.Error = err.Error()
			return r
		}
		relabel = true
		if encrypt {
			k, err := d.store.VolumeKey(ctx, volume, storage)
			if err != nil {
				r.Error = err.Error()
				return r
			}
			sk = &k
		}
	case err == nil:
		r.Error = fmt.Sprintf("volume %s is already in the catalog (status %s, pool %s); not relabelled", volume, m.Status, m.Pool)
		return r
	case !isNotFound(err):
		r.Error = err.Error()
		return r
	default:
		var esc keys.Escrow
		if encrypt {
			k, e, err := d.ring.WrapNewEscrow(volume, d.escrow[pool])
			if err != nil {
				r.Error = err.Error()
				return r
			}
			sk, esc = &k, e
		}
		// Commit the row, with the wrapped key (and its escrow envelope),
		// before storaged is asked.
		if _, err := d.store.CreateLabeling(ctx, catalog.MediaNew{Volume: volume, Barcode: slot.Barcode, Pool: pool, Storage: storage,
			Slot: n, Encrypted: encrypt, Key: sk, Escrow: esc, Actor: actor}); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	req := &pb.LabelVolumeRequest{Changer: ch.Name, Slot: uint32(n), Drive: drive, Volume: volume, Pool: pool, Encrypt: encrypt, Relabel: relabel}
	if relabel {
		// A recycling (now, or one whose label did not finish): the tape
		// may still hold the data of the old key, given up in the catalog.
		if req.Recycle, err = d.store.RecyclingUnverified(ctx, volume); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	if sk != nil {
		r.Fingerprint, r.KEKID = sk.Fingerprint, sk.KEKID
		if req.Key, err = d.wrappedKeyOf(ctx, volume, *sk); err != nil {
			r.Error = err.Error()
			return r
		}
		d.event(ctx, volume, catalog.EventFetched, storage, sk.KEKID, "sent to storage "+storage+" with the label request")
	}
	rep, err := link.client.LabelVolume(ctx, req)
	if err != nil {
		r.Error = status.Convert(err).Message()
		r.unavailable = status.Code(err) == codes.Unavailable
		r.KeyKept = encrypt
		if merr := d.store.MarkError(context.WithoutCancel(ctx), volume, "label failed: "+r.Error); merr != nil {
			r.Error += " (and recording the error failed: " + merr.Error() + ")"
		}
		return r
	}
	r.Drive = rep.Drive
	kekID := ""
	if sk != nil {
		kekID = sk.KEKID
	}
	if err := d.recordLabelled(ctx, volume, storage, kekID, encrypt, rep, "after labelling"); err != nil {
		r.Error = err.Error()
		return r
	}
	r.OK, r.Verified = true, encrypt
	return r
}

// wrappedKey is a stored key as the wire carries it.
func wrappedKey(sk keys.StoredKey) *pb.WrappedKey {
	return &pb.WrappedKey{Stored: sk.Value, Scheme: string(sk.Scheme), KekId: sk.KEKID, Fingerprint: sk.Fingerprint}
}

// wrappedKeyOf is wrappedKey with the escrow envelope the catalog stores
// with that key of volume (for the label storaged writes).
func (d *Director) wrappedKeyOf(ctx context.Context, volume string, sk keys.StoredKey) (*pb.WrappedKey, error) {
	w := wrappedKey(sk)
	e, err := d.store.VolumeEscrow(ctx, volume, sk.Fingerprint)
	if err != nil {
		return nil, err
	}
	w.EscrowKeyId, w.EscrowEnvelope = e.KeyID, e.Envelope
	return w, nil
}

// recordLabelled records a storage's successful (re)label of volume: for an
// encrypted volume the reply must say the key-check block read back
// encrypted (otherwise the row goes to status Error, its key kept), then
// the loaded/verified/cleared key events are recorded and the row goes
// Labeling → Append with the verified time.
func (d *Director) recordLabelled(ctx context.Context, volume, storage, kekID string, encrypted bool, rep *pb.LabelVolumeReply, after string) error {
	// The label is on tape: its record must not depend on the console
	// staying connected (a Ctrl-C now would leave the row in Labeling).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var verifiedAt *time.Time
	if encrypted {
		if !rep.EncryptionVerified {
			err := fmt.Errorf("storage %s labelled volume %s but did not verify encryption", storage, volume)
			d.store.MarkError(cctx, volume, err.Error())
			return err
		}
		t := time.Unix(rep.VerifiedTimeUnix, 0)
		verifiedAt = &t
		detail := fmt.Sprintf("drive %s; fingerprint %s, key instance counter %d", rep.Drive, rep.KeyFingerprint, rep.KeyInstanceCounter)
		d.event(cctx, volume, catalog.EventLoaded, storage, kekID, detail)
		d.event(cctx, volume, catalog.EventVerified, storage, kekID, detail+"; key-check block read back encrypted")
		d.event(cctx, volume, catalog.EventCleared, storage, kekID, "drive "+rep.Drive+"; "+after)
	}
	return d.store.MarkLabeled(cctx, volume, time.Unix(rep.LabelTimeUnix, 0), verifiedAt)
}

// driveName turns drive=N into the storage's N-th drive name ("" : any).
func (d *Director) driveName(ctx context.Context, link *storageLink, cmd console.Command) (string, error) {
	n, ok := cmd.Int("drive")
	if !ok {
		return "", nil
	}
	h, err := link.client.Hello(ctx, &pb.HelloRequest{})
	if err != nil {
		return "", storageErr(link.ref.Name, "hello", err)
	}
	if n < 0 || n >= len(h.Drives) {
		return "", status.Errorf(codes.InvalidArgument, "storage %s has drives 0-%d (%s); there is no drive %d", link.ref.Name, len(h.Drives)-1, strings.Join(h.Drives, ", "), n)
	}
	return h.Drives[n], nil
}

// storageErr says which storage failed at what, keeping the gRPC code.
func storageErr(storage, what string, err error) error {
	st := status.Convert(err)
	msg := st.Message()
	switch {
	case st.Code() == codes.Unavailable && strings.Contains(msg, "presented the certificate of"):
		msg = "cannot reach it: " + msg + " — nothing was sent to what answered; find out what listens at its [[storage]] address"
	case st.Code() == codes.Unavailable && strings.Contains(msg, "revoked"):
		msg = "cannot reach it: " + msg + " — the storage needs a new certificate (tapekey pki issue)"
	case st.Code() == codes.Unavailable:
		msg = "cannot reach it: " + msg + " — is storaged running, and do [[storage]] address and tls_server_name match it?"
	case st.Code() == codes.Aborted:
		msg += " — it is running and busy: try again when that operation ends (status storage=" + storage + " shows it)"
	}
	return status.Errorf(st.Code(), "storage %s: %s: %s", storage, what, msg)
}

// VolumeRow is one line of "list volumes".
type VolumeRow struct {
	Volume     string     `json:"volume"`
	Pool       string     `json:"pool"`
	Status     string     `json:"status"`
	Storage    string     `json:"storage,omitempty"`
	Slot       int        `json:"slot,omitempty"`
	Bytes      int64      `json:"bytes"`
	Encrypted  bool       `json:"encrypted"`
	KEKID      string     `json:"kek_id,omitempty"`
	Key        string     `json:"key_fingerprint,omitempty"`
	VerifiedAt *time.Time `json:"encryption_verified_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

func (d *Director) listVolumes(ctx context.Context, cmd console.Command) (*Output, error) {
	ms, err := d.store.ListMedia(ctx, catalog.MediaFilter{Pool: cmd.Str("pool"), Storage: cmd.Str("storage")})
	if err != nil {
		return nil, err
	}
	rows := make([]VolumeRow, 0, len(ms))
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tPOOL\tSTATUS\tSLOT\tBYTES\tENCRYPTED\tKEK ID\tENCRYPTION VERIFIED AT")
	for _, m := range ms {
		r := VolumeRow{Volume: m.Volume, Pool: m.Pool, Status: string(m.Status), Storage: m.Storage, Bytes: m.BytesWritten,
			Encrypted: m.Encrypted, KEKID: m.KEKID, Key: m.KeyFingerprint, VerifiedAt: m.EncryptionVerifiedAt, Error: m.ErrorReason}
		if m.Slot != catalog.NoSlot {
			r.Slot = m.Slot
		}
		rows = append(rows, r)
		verified := "-"
		if m.EncryptionVerifiedAt != nil {
			verified = m.EncryptionVerifiedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		enc := "no"
		if m.Encrypted {
			enc = "yes"
		}
		slot := "-"
		if m.Slot != catalog.NoSlot {
			slot = fmt.Sprint(m.Slot)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Volume, m.Pool, m.Status, slot, m.BytesWritten, enc, dash(m.KEKID), verified)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d volumes", len(ms))
	return &Output{Text: b.String(), JSON: rows}, nil
}

func (d *Director) listKeyEvents(ctx context.Context, cmd console.Command) (*Output, error) {
	limit, _ := cmd.Int("limit")
	evs, err := d.store.ListKeyEvents(ctx, catalog.KeyEventFilter{Volume: cmd.Str("volume"), Limit: limit})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tVOLUME\tEVENT\tACTOR\tKEK ID\tDETAIL")
	for _, e := range evs {
		// Rows recorded before reports were cleaned may hold control
		// characters: never print them raw to a terminal.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), cleanText(e.Volume, 128), e.Event,
			cleanText(e.Actor, 128), dash(cleanText(e.KEKID, 64)), cleanText(e.Detail, 4096))
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d key events", len(evs))
	if evs == nil {
		evs = []catalog.KeyEvent{}
	}
	return &Output{Text: b.String(), JSON: evs}, nil
}

// listVolumeEvents is "list volumeevents": status changes and cartridge
// moves (export, import) and shreds, newest first.
func (d *Director) listVolumeEvents(ctx context.Context, cmd console.Command) (*Output, error) {
	limit, _ := cmd.Int("limit")
	evs, err := d.store.ListVolumeEvents(ctx, cmd.Str("volume"))
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tVOLUME\tSTATUS\tACTOR\tWHY")
	for _, e := range evs {
		st := string(e.New)
		if e.Old != e.New {
			st = string(e.Old) + " -> " + string(e.New)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), cleanText(e.Volume, 128), st,
			cleanText(e.Actor, 128), dash(cleanText(e.Reason, 4096)))
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d volume events", len(evs))
	if evs == nil {
		evs = []catalog.VolumeEvent{}
	}
	return &Output{Text: b.String(), JSON: evs}, nil
}

func (d *Director) statusStorage(ctx context.Context, name string) (*Output, error) {
	link, err := d.storage(name)
	if err != nil {
		return nil, err
	}
	st, err := link.client.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, storageErr(name, "status", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "storage %s: KEKs %s; %d volumes in its crypto cache\n", st.Name, strings.Join(st.KekIds, ", "), st.CacheEntries)
	if r := cacheRecoveryText(st.CacheEntries, st.CacheRecovery); r != "" {
		fmt.Fprintf(&b, "%s\n", r)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRIVE\tSTATE\tVOLUME\tENCRYPTION\tKEY\tKEY INSTANCE COUNTER\tMODES")
	for _, dr := range st.Drives {
		enc := "no AME: " + dr.AmeReason
		if dr.Ame {
			enc = fmt.Sprintf("AME, AES-256-GCM index %d", dr.AlgorithmIndex)
		}
		if !dr.Crypto {
			enc += " (crypto = false)"
		}
		key, kic, modes := "-", "-", "-"
		if k := dr.Key; k != nil {
			if k.KeyLoaded {
				key = "loaded " + dash(k.KeyFingerprint)
			} else if dr.Ame {
				key = "none"
			}
			if dr.Ame {
				kic = fmt.Sprint(k.KeyInstanceCounter)
				modes = dash(k.EncryptionMode) + "/" + dash(k.DecryptionMode)
			}
		}
		vol := dash(dr.Volume)
		if dr.Volume == "" && dr.Barcode != "" {
			vol = dr.Barcode + " (not mounted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dr.Name, dr.State, vol, enc, key, kic, modes)
	}
	tw.Flush()
	for _, dr := range st.Drives { // an unreachable or failed drive says why
		if dr.Error != "" {
			fmt.Fprintf(&b, "%s: error: %s\n", dr.Name, dr.Error)
		}
	}
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: st}, nil
}

// DirectorStatus is "status director".
type DirectorStatus struct {
	Name      string            `json:"name"`
	Catalog   string            `json:"catalog"` // "up" or "DOWN (reason)"
	ActiveKEK string            `json:"active_kek_id"`
	KEKIDs    []string          `json:"kek_ids"`
	Schema    int32             `json:"schema_version"`
	Volumes   map[string]int    `json:"volumes_by_status"`
	Storages  map[string]string `json:"storages"`
	KEKs      []KEKStatus       `json:"keks"`
	// Pools and DefaultPool let a console offer choices (tapectl's
	// label menus).
	Pools       []string `json:"pools"`
	DefaultPool string   `json:"default_pool,omitempty"`
	Configured  []string `json:"configured_storages"`
	// Jobs are the jobs running or waiting in this director.
	Jobs []jobs.Status `json:"jobs"`
	// Scheduled are the runs of the next 24 hours, each with the volume
	// it would write to.
	Scheduled []ScheduledRun `json:"scheduled"`
	// Escrow: per pool, the escrow key its new keys are sealed to and
	// which escrow key ids its encrypted volumes' envelopes use.
	Escrow []EscrowStatus `json:"escrow"`
}

// EscrowStatus is one pool's line of escrow envelopes in "status director".
type EscrowStatus struct {
	Pool string `json:"pool"`
	// EscrowKeyID is the pool's escrow_public_key id ("" : none set).
	EscrowKeyID string `json:"escrow_key_id,omitempty"`
	// Volumes counts its encrypted volumes by the escrow key id of their
	// current key's envelope ("" : no envelope).
	Volumes map[string]int `json:"volumes_by_escrow_key"`
}

// escrowStatus groups the encrypted volumes of ms by pool and escrow key.
func (d *Director) escrowStatus(ms []catalog.Media) []EscrowStatus {
	by := map[string]*EscrowStatus{}
	get := func(pool string) *EscrowStatus {
		if by[pool] == nil {
			by[pool] = &EscrowStatus{Pool: pool, Volumes: map[string]int{}}
			if pub := d.escrow[pool]; pub != nil {
				by[pool].EscrowKeyID = pub.ID()
			}
		}
		return by[pool]
	}
	for pool := range d.escrow {
		get(pool)
	}
	for _, m := range ms {
		if m.Encrypted {
			get(m.Pool).Volumes[m.EscrowKeyID]++
		}
	}
	out := []EscrowStatus{}
	for _, p := range slices.Sorted(maps.Keys(by)) {
		if by[p].EscrowKeyID != "" || len(by[p].Volumes) > 1 || by[p].Volumes[""] == 0 {
			out = append(out, *by[p])
		}
	}
	return out
}

func escrowStatusText(b *bytes.Buffer, es []EscrowStatus) {
	if len(es) == 0 {
		return
	}
	b.WriteString("\nescrow envelopes in the volume labels (tapextract --escrow-key opens them with the escrow private key alone):")
	for _, e := range es {
		fmt.Fprintf(b, "\n  pool %s: ", e.Pool)
		if e.EscrowKeyID != "" {
			fmt.Fprintf(b, "new keys sealed to escrow key %s", e.EscrowKeyID)
		} else {
			b.WriteString("no escrow_public_key")
		}
		var parts []string
		for _, id := range slices.Sorted(maps.Keys(e.Volumes)) {
			if id == "" {
				parts = append(parts, fmt.Sprintf("%d without an envelope", e.Volumes[id]))
			} else {
				parts = append(parts, fmt.Sprintf("%d under escrow key %s", e.Volumes[id], id))
			}
		}
		if len(parts) > 0 {
			b.WriteString("; volumes: " + strings.Join(parts, ", "))
		}
	}
}

// KEKStatus is what depends on one KEK id, in "status director".
type KEKStatus struct {
	KEKID    string             `json:"kek_id"`
	InRing   bool               `json:"in_keyring"`
	Current  int                `json:"catalog_current_keys"`
	History  int                `json:"catalog_history_keys"`
	Storages []KEKStorageReport `json:"storages"`
}

func (d *Director) statusDirector(ctx context.Context) (*Output, error) {
	s := DirectorStatus{Name: d.cfg.Name, ActiveKEK: d.ring.Active().ID(), KEKIDs: d.ring.IDs(), Volumes: map[string]int{}, Storages: map[string]string{},
		Pools: []string{}, DefaultPool: d.cfg.DefaultPool, Configured: slices.Sorted(maps.Keys(d.storages))}
	// The catalog down is one line of the status, not its failure: the
	// KEKs and the storages are still shown.
	s.Catalog = "up"
	ms, err := d.store.ListMedia(ctx, catalog.MediaFilter{})
	var caches []storageCache
	if err == nil {
		caches, err = d.storageCaches(ctx)
	}
	var use []catalog.KEKUse
	if err == nil {
		use, err = d.store.KEKUsage(ctx)
	}
	if err == nil {
		if st, serr := d.store.SchemaState(ctx); serr == nil {
			s.Schema = st.Current
		}
		if ps, perr := d.store.ListPools(ctx); perr == nil {
			for _, p := range ps {
				s.Pools = append(s.Pools, p.Name)
			}
		}
	} else {
		s.Catalog = catalogDown(err)
		ms, use, caches = nil, nil, d.storagesWithoutCatalog(ctx)
	}
	for _, m := range ms {
		s.Volumes[string(m.Status)]++
	}
	var shreds map[string]int
	if err == nil {
		shreds, _ = d.store.PendingShredCounts(ctx)
	}
	for _, c := range caches {
		switch {
		case !c.Reachable:
			s.Storages[c.Storage] = "unreachable: " + c.Error
		default:
			s.Storages[c.Storage] = fmt.Sprintf("up, KEKs %s; %d volumes in its crypto cache", strings.Join(c.StorageKEKs, ", "), c.Entries)
			if c.Recovery != nil {
				s.Storages[c.Storage] += "; " + cacheRecoveryText(c.Entries, c.Recovery)
			}
		}
		if c.Pending > 0 {
			s.Storages[c.Storage] += fmt.Sprintf("; %d crypto cache pushes pending", c.Pending)
		}
		if n := shreds[c.Storage]; n > 0 {
			s.Storages[c.Storage] += fmt.Sprintf("; %d volume shreds pending (made when it next connects)", n)
		}
	}
	ids := map[string]bool{}
	for _, id := range s.KEKIDs {
		ids[id] = true
	}
	for _, u := range use {
		ids[u.KEKID] = true
	}
	for _, c := range caches {
		for _, k := range c.KEKs {
			ids[k.KekId] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		k := KEKStatus{KEKID: id, InRing: slices.Contains(s.KEKIDs, id)}
		for _, u := range use {
			if u.KEKID == id {
				k.Current, k.History = u.Current, u.History
			}
		}
		for _, c := range caches {
			r := KEKStorageReport{Storage: c.Storage, Reachable: c.Reachable, Pending: c.Pending, Error: c.Error}
			if c.Reachable {
				ck := c.kek(id)
				r.Keys, r.Sole = ck.Keys, ck.Sole
			}
			k.Storages = append(k.Storages, r)
		}
		s.KEKs = append(s.KEKs, k)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "director %s, catalog schema %d\nKEKs: %s (active %s)\n", s.Name, s.Schema, strings.Join(s.KEKIDs, ", "), s.ActiveKEK)
	if s.Catalog != "up" {
		fmt.Fprintf(&b, "catalog: %s — volumes, catalog keys and pending pushes are unknown until it is back\n", s.Catalog)
	}
	fmt.Fprintf(&b, "volumes: %d", len(ms))
	for _, st := range []catalog.Status{catalog.StatusAppend, catalog.StatusLabeling, catalog.StatusFull, catalog.StatusError} {
		if n := s.Volumes[string(st)]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, st)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(s.Storages)) {
		fmt.Fprintf(&b, "\nstorage %s: %s", n, s.Storages[n])
	}
	s.Escrow = d.escrowStatus(ms)
	escrowStatusText(&b, s.Escrow)
	s.Jobs = []jobs.Status{}
	if d.jobs != nil {
		s.Jobs = d.jobs.Active()
	}
	d.jobsStatusText(&b, s.Jobs)
	if s.Catalog == "up" {
		s.Scheduled = d.nextRuns(ctx)
		d.nextRunsText(&b, s.Scheduled)
	} else {
		s.Scheduled = []ScheduledRun{}
		b.WriteString("\nscheduled jobs in the next 24 h: unknown until the catalog is back (status scheduler lists them without volumes)")
	}
	b.WriteString("\nwhat depends on each KEK (status kek=ID for one):\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEK ID\tKEYRING\tCATALOG CURRENT\tCATALOG HISTORY\tCRYPTO CACHES (keys / only under it / pushes pending)")
	for _, k := range s.KEKs {
		ring := "-"
		if k.KEKID == s.ActiveKEK {
			ring = "active"
		} else if k.InRing {
			ring = "yes"
		}
		var parts []string
		for _, r := range k.Storages {
			if !r.Reachable {
				parts = append(parts, fmt.Sprintf("%s: unreachable / %d pending", r.Storage, r.Pending))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s: %d / %d / %d pending", r.Storage, r.Keys, r.Sole, r.Pending))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", k.KEKID, ring, k.Current, k.History, strings.Join(parts, "; "))
	}
	tw.Flush()
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: s, Partial: s.Catalog != "up"}, nil
}

// storageDrive resolves storage= and drive= of a command.
func (d *Director) storageDrive(ctx context.Context, cmd console.Command) (*storageLink, string, error) {
	link, err := d.storage(cmd.Str("storage"))
	if err != nil {
		return nil, "", err
	}
	drive, err := d.driveName(ctx, link, cmd)
	return link, drive, err
}

func (d *Director) mount(ctx context.Context, cmd console.Command) (*Output, error) {
	link, drive, err := d.storageDrive(ctx, cmd)
	if err != nil {
		return nil, err
	}
	slot, _ := cmd.Int("slot")
	r, err := link.client.Mount(ctx, &pb.MountRequest{Slot: uint32(slot), Drive: drive})
	if err != nil {
		return nil, storageErr(link.ref.Name, "mount", err)
	}
	text := fmt.Sprintf("%s (slot %d) mounted in %s", r.Volume, slot, r.Drive)
	if r.Encrypted {
		text += fmt.Sprintf("; key %s loaded and verified (key instance counter %d, from the %s)", r.KeyFingerprint, r.KeyInstanceCounter, r.KeySource)
	} else {
		text += "; not encrypted"
	}
	return &Output{Text: text, JSON: r}, nil
}

func (d *Director) unmount(ctx context.Context, cmd console.Command) (*Output, error) {
	link, drive, err := d.storageDrive(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if cmd.Name == "release" {
		if _, err := link.client.Release(ctx, &pb.ReleaseRequest{Drive: drive}); err != nil {
			return nil, storageErr(link.ref.Name, "release", err)
		}
		return &Output{Text: drive + " released; key cleared"}, nil
	}
	r, err := link.client.Unmount(ctx, &pb.UnmountRequest{Drive: drive})
	if err != nil {
		return nil, storageErr(link.ref.Name, "unmount", err)
	}
	if r.Volume == "" {
		return &Output{Text: drive + " held no volume; key cleared", JSON: r}, nil
	}
	return &Output{Text: fmt.Sprintf("%s unmounted from %s and returned to slot %d; key cleared", r.Volume, drive, r.Slot), JSON: r}, nil
}

func (d *Director) updateVolume(ctx context.Context, actor string, cmd console.Command) (*Output, error) {
	mode, err := catalog.ParseEncryptionMode(cmd.Str("encrypt"))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	volume := cmd.Str("volume")
	before, err := d.store.GetMedia(ctx, volume)
	if err != nil {
		return nil, err
	}
	if change := !(mode == catalog.EncryptYes && before.Encrypted) && !(mode == catalog.EncryptNo && !before.Encrypted); change {
		// The catalog alone cannot know that a session is writing right
		// now: the storage daemon that owns the volume is asked.
		if err := d.requireIdleVolume(ctx, before, mode); err != nil {
			return nil, err
		}
	}
	m, err := d.store.UpdateEncryption(ctx, volume, mode, d.ring, actor)
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("volume %s: encryption %s", m.Volume, mode)
	if m.Encrypted {
		text += fmt.Sprintf("; key %s under KEK %s", m.KeyFingerprint, m.KEKID)
	}
	if m.Encrypted == before.Encrypted && m.KeyFingerprint == before.KeyFingerprint {
		return &Output{Text: text + " (unchanged)", JSON: m}, nil
	}
	if before.Encrypted {
		text += fmt.Sprintf("; the old key %s is kept in the volume's key history", before.KeyFingerprint)
	}
	// The label on tape records the old key (or none): rewrite it now, so
	// that the tape and the catalog agree before the volume takes data.
	m, reverted, err := d.relabel(ctx, m, before, actor)
	if reverted {
		return nil, err
	}
	if err != nil {
		return &Output{Text: text + fmt.Sprintf("\nthe label on tape still records the old key: %s\nthe volume is in status Error until it is relabelled: label storage=%s pool=%s slot=%d volume=%s%s",
			status.Convert(err).Message(), m.Storage, m.Pool, m.Slot, m.Volume, map[bool]string{true: " encrypt"}[m.Encrypted]), JSON: m, Partial: true}, nil
	}
	return &Output{Text: text + relabelledText(m), JSON: m}, nil
}

// requireIdleVolume refuses a key change of a volume that its storage
// daemon has mounted (for any purpose) or that holds data by the tape's
// end of data; data seen on tape is recorded (data_since). A storage that
// cannot be asked refuses the change too.
func (d *Director) requireIdleVolume(ctx context.Context, m catalog.Media, mode catalog.EncryptionMode) error {
	what := map[catalog.EncryptionMode]string{catalog.EncryptYes: "encrypt", catalog.EncryptNo: "remove the encryption of", catalog.EncryptRotate: "rotate the key of"}[mode]
	if m.Storage == "" {
		return status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: it belongs to no storage, so no storage daemon can say whether it is mounted or holds data; the key is not changed", what, m.Volume)
	}
	link, err := d.storage(m.Storage)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: its storage %s cannot be asked whether the volume is mounted or holds data (%s); the key is not changed",
			what, m.Volume, m.Storage, status.Convert(err).Message())
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := link.client.VolumeState(vctx, &pb.VolumeStateRequest{Volume: m.Volume})
	cancel()
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: %s; the key is not changed — the storage daemon must say that the volume is not mounted and holds no data: start it (or fix the link) and try again",
			what, m.Volume, status.Convert(storageErr(m.Storage, "asking whether the volume is mounted or holds data", err)).Message())
	}
	if st.HoldsData && st.DataKnown {
		since, merr := d.store.MarkHoldsData(context.WithoutCancel(ctx), m.Volume, d.clock())
		if merr != nil {
			d.log.Error("recording that a volume holds data failed", "volume", m.Volume, "error", merr.Error())
		} else {
			d.log.Warn("storage reports data on a volume the catalog did not know held data; recorded", "volume", m.Volume,
				"storage", m.Storage, "detail", st.Detail, "data_since", since.Format(time.RFC3339))
		}
	}
	switch {
	case st.Mounted:
		state := "mounted"
		if st.Writing {
			state = "mounted and a write session is open"
		}
		extra := ""
		switch {
		case st.DataKnown && st.HoldsData:
			extra = "; it holds data (" + st.Detail + "), recorded in the catalog"
		case st.Detail != "":
			extra = " (" + st.Detail + ")"
		}
		return status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: it is %s in drive %s of storage %s%s; the key of a mounted volume never changes — unmount it first (and a volume that holds data keeps its key)",
			what, m.Volume, state, st.Drive, m.Storage, extra)
	case st.DataKnown && st.HoldsData:
		return status.Errorf(codes.FailedPrecondition, "cannot %s volume %s: storage %s says it holds data (%s), now recorded in the catalog; only a volume with no data may change its encryption",
			what, m.Volume, m.Storage, st.Detail)
	}
	return nil
}

// holdsDataReason is the ErrorInfo reason storaged gives when a relabel
// finds data after the key-check file.
const holdsDataReason = link.ReasonVolumeHoldsData

func storageSaysHoldsData(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Reason == holdsDataReason {
			return true
		}
	}
	return false
}

// relabel asks the volume's storage to rewrite its label with the key the
// catalog now holds (the volume holds no data); on failure the volume is
// left in status Error with the reason. If the storage finds data on the
// tape after all (a write the catalog did not learn of), the key change is
// undone: the key of before (from the history) is current again, the
// volume is marked as holding data, and reverted is true with an error
// that says so.
func (d *Director) relabel(ctx context.Context, m, before catalog.Media, actor string) (_ catalog.Media, reverted bool, _ error) {
	fail := func(err error) (catalog.Media, bool, error) {
		d.store.MarkError(context.WithoutCancel(ctx), m.Volume, "relabel after an encryption change failed: "+status.Convert(err).Message())
		return m, false, err
	}
	link, err := d.storage(m.Storage)
	if err != nil {
		return fail(err)
	}
	if m.Slot == catalog.NoSlot {
		return fail(status.Errorf(codes.FailedPrecondition, "volume %s has no slot recorded", m.Volume))
	}
	if !d.beginLabel(m.Volume) {
		return fail(status.Errorf(codes.FailedPrecondition, "volume %s is being labelled by another command right now", m.Volume))
	}
	defer d.endLabel(m.Volume)
	if err := d.store.BeginRelabel(ctx, m.Volume); err != nil {
		return fail(err)
	}
	req := &pb.LabelVolumeRequest{Slot: uint32(m.Slot), Volume: m.Volume, Pool: m.Pool, MediaType: m.MediaType, Encrypt: m.Encrypted, Relabel: true}
	if m.Encrypted {
		sk, err := d.store.VolumeKey(ctx, m.Volume, m.Storage)
		if err != nil {
			return fail(err)
		}
		if req.Key, err = d.wrappedKeyOf(ctx, m.Volume, sk); err != nil {
			return fail(err)
		}
		d.event(ctx, m.Volume, catalog.EventFetched, m.Storage, sk.KEKID, "sent to storage "+m.Storage+" to relabel the volume")
	}
	rep, err := link.client.LabelVolume(ctx, req)
	if err != nil && storageSaysHoldsData(err) {
		msg := status.Convert(err).Message()
		oldFP := ""
		if before.Encrypted {
			oldFP = before.KeyFingerprint
		}
		restored, rerr := d.store.RestoreKey(context.WithoutCancel(ctx), m.Volume, oldFP, "the relabel found data on tape: "+msg, true, actor)
		if rerr != nil {
			d.log.Error("undoing a key change failed", "volume", m.Volume, "old_fingerprint", oldFP, "error", rerr.Error())
			return fail(status.Errorf(codes.FailedPrecondition, "storage %s found data on volume %s (%s) and undoing the key change failed: %s; the old key %s is in the volume's key history — run the update again once the catalog is reachable",
				m.Storage, m.Volume, msg, rerr.Error(), dash(oldFP)))
		}
		what := "the volume is clear again"
		if oldFP != "" {
			what = "key " + oldFP + " is the current key again"
		}
		d.log.Warn("key change undone: the tape holds data", "volume", m.Volume, "storage", m.Storage, "restored_fingerprint", oldFP, "detail", msg)
		return restored, true, status.Errorf(codes.FailedPrecondition, "the key change of volume %s is undone: storage %s found data on the tape (%s); %s and the volume is recorded as holding data, so its key cannot change (the label on tape was not touched)",
			m.Volume, m.Storage, msg, what)
	}
	if err != nil {
		return fail(storageErr(m.Storage, "relabel", err))
	}
	if err := d.recordLabelled(ctx, m.Volume, m.Storage, m.KEKID, m.Encrypted, rep, "after relabelling"); err != nil {
		return fail(err)
	}
	m, err = d.store.GetMedia(context.WithoutCancel(ctx), m.Volume)
	return m, false, err
}

// RekeyReport is what rekey did or would do.
type RekeyReport struct {
	ActiveKEK        string `json:"active_kek_id"`
	DryRun           bool   `json:"dry_run"`
	ToRewrap         int    `json:"to_rewrap"`
	HistoryToRewrap  int    `json:"history_to_rewrap"`
	Rewrapped        int    `json:"rewrapped"`
	HistoryRewrapped int    `json:"history_rewrapped"`
	AlreadyCurrent   int    `json:"already_current"`
	// Pending: crypto cache pushes waiting per storage (before the rekey
	// for a dry run).
	Pending map[string]int `json:"pushes_pending"`
	Pushes  []PushOutcome  `json:"pushes,omitempty"`
	// BadKeys: stored keys the keyring cannot unwrap (every one is tried).
	BadKeys []BadKey `json:"keys_that_fail,omitempty"`
}

// rekey rewraps every stored key — current and history — under the active
// KEK in one transaction, after checking that every storage daemon that
// answers holds the active KEK (so no volume becomes unmountable), then
// pushes each storage's rewrapped keys into its crypto cache. A storage
// that does not answer is not a reason to refuse: its pushes stay pending
// until it next connects (StorageHello). Without yes it only reports.
func (d *Director) rekey(ctx context.Context, actor string, yes bool, progress Progress) (*Output, error) {
	active := d.ring.Active().ID()
	down := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(d.storages)) {
		link := d.storages[name]
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		link.ready(hctx)
		h, err := link.client.Hello(hctx, &pb.HelloRequest{})
		cancel()
		if err != nil {
			if !unreachable(err) {
				return nil, status.Errorf(codes.FailedPrecondition, "rekey refused: storage %s did not say which KEKs it holds (%s); every storage must hold the active KEK %s before keys move to it",
					name, status.Convert(err).Message(), active)
			}
			down[name] = true
			progress("storage %s is unreachable (%s): its crypto cache will be brought up to date when it next connects; it must hold the active KEK %s by then",
				name, status.Convert(err).Message(), active)
			continue
		}
		if !slices.Contains(h.KekIds, active) {
			return nil, status.Errorf(codes.FailedPrecondition, "rekey refused: storage %s does not hold the active KEK %s (it has %s); add the KEK file to its [[keys.kek]], restart it, then rekey",
				name, active, strings.Join(h.KekIds, ", "))
		}
		progress("storage %s holds the active KEK %s", name, active)
	}
	ms, err := d.store.ListMedia(ctx, catalog.MediaFilter{})
	if err != nil {
		return nil, err
	}
	use, err := d.store.KEKUsage(ctx)
	if err != nil {
		return nil, err
	}
	pending, err := d.store.PendingCounts(ctx)
	if err != nil {
		return nil, err
	}
	rep := RekeyReport{ActiveKEK: active, DryRun: !yes, Pending: pending}
	for _, m := range ms {
		if m.Encrypted && (m.KEKID != active || m.KeyScheme != keys.SchemeV1) {
			rep.ToRewrap++
		}
	}
	for _, u := range use {
		if u.KEKID != active {
			rep.HistoryToRewrap += u.History
		}
	}
	// Every key is unwrapped now, so that every one that would fail is
	// named (the rekey itself stops at the first).
	if rep.BadKeys, err = d.unwrapAll(ctx, active); err != nil {
		return nil, err
	}
	blocking := 0
	for _, k := range rep.BadKeys {
		if k.BlocksRekey {
			blocking++
		}
	}
	if !yes {
		var b strings.Builder
		fmt.Fprintf(&b, "rekey would rewrap %d stored keys and %d history keys under KEK %s (no tape is touched), then push every volume's keys into its storage's crypto cache; run \"rekey yes\" to do it",
			rep.ToRewrap, rep.HistoryToRewrap, active)
		b.WriteString("\n" + pendingLine(pending))
		if len(rep.BadKeys) > 0 {
			b.WriteString("\n" + badKeysText(rep.BadKeys, blocking, false))
		}
		return &Output{Text: b.String(), JSON: rep, Partial: blocking > 0}, nil
	}
	if blocking > 0 {
		return nil, status.Error(codes.FailedPrecondition, badKeysText(rep.BadKeys, blocking, true))
	}
	res, err := d.store.Rekey(ctx, d.ring, actor)
	if err != nil {
		return nil, err
	}
	rep.Rewrapped, rep.HistoryRewrapped, rep.AlreadyCurrent, rep.Pending = res.Rewrapped, res.HistoryRewrapped, res.AlreadyCurrent, res.Pending
	progress("rewrapped %d stored keys and %d history keys under KEK %s; pushing the keys into the crypto caches", res.Rewrapped, res.HistoryRewrapped, active)
	rep.Pushes = d.pushAll(ctx, down)
	var b strings.Builder
	fmt.Fprintf(&b, "rewrapped %d stored keys under KEK %s in one transaction, with %d keys of the volumes' history (%d already were); no tape was touched",
		res.Rewrapped, active, res.HistoryRewrapped, res.AlreadyCurrent)
	partial := false
	for _, o := range rep.Pushes {
		b.WriteString("\n" + o.String())
		partial = partial || o.Pending > 0
	}
	if partial {
		fmt.Fprintf(&b, "\nuntil every push is made, the old KEKs are still needed (status kek=ID says what depends on one)")
	}
	return &Output{Text: b.String(), JSON: rep, Partial: partial}, nil
}

// pendingLine says which storages have crypto cache pushes pending.
func pendingLine(pending map[string]int) string {
	if len(pending) == 0 {
		return "crypto cache pushes pending: none"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(pending)) {
		parts = append(parts, fmt.Sprintf("%s: %d volumes", n, pending[n]))
	}
	return "crypto cache pushes pending (made when the storage next connects): " + strings.Join(parts, ", ")
}

// ExportRow is one exported key (still wrapped).
type ExportRow struct {
	Volume      string `json:"volume"`
	Scheme      string `json:"scheme"`
	KEKID       string `json:"kek_id"`
	Fingerprint string `json:"key_fingerprint"`
}

// exportKeys returns the wrapped keys as a file for the console to write,
// in the form `tapekey cache add` reads (VOLUME<TAB>STORED SCHEME KEK_ID).
func (d *Director) exportKeys(ctx context.Context, actor string, cmd console.Command) (*Output, error) {
	// The console writes the file (it checked, before sending, that it
	// can): the audit says the keys were sent to it, not that a file
	// was written (tapectl reports a write that fails).
	ks, err := d.store.ExportKeys(ctx, catalog.ExportFilter{Pool: cmd.Str("pool"), Detail: "sent to console " + actor + " for its out= file"}, actor)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Tapeward keys export, %s: wrapped volume keys (never usable without their KEK).\n", d.clock().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# Load into a crypto cache with: tapekey cache add FILE < this-file\n# VOLUME<TAB>STORED<TAB>SCHEME<TAB>KEK_ID\n")
	rows := make([]ExportRow, 0, len(ks))
	for _, k := range ks {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", k.Volume, k.Stored, k.Scheme, k.KEKID)
		rows = append(rows, ExportRow{Volume: k.Volume, Scheme: string(k.Scheme), KEKID: k.KEKID, Fingerprint: k.Fingerprint})
	}
	return &Output{Text: fmt.Sprintf("%d wrapped keys exported", len(ks)), JSON: rows, File: cmd.Str("out"), Content: b.Bytes()}, nil
}
