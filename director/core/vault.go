package core

// The vault (issue 11 item 8): which volumes may leave the library now and
// which must come back, and moving cartridges out and in through the
// library's import/export slots (Storage.ExportVolume / ImportVolume).

import (
	"bytes"
	"context"
	"errors"
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
)

// VaultItem is one volume of the vault view.
type VaultItem struct {
	Volume       string     `json:"volume"`
	Barcode      string     `json:"barcode,omitempty"`
	Pool         string     `json:"pool"`
	Storage      string     `json:"storage,omitempty"`
	Status       string     `json:"status"`
	Slot         int        `json:"slot,omitempty"`
	OffsiteSince *time.Time `json:"offsite_since,omitempty"`
	// Why it is in its section (or, for Kept, why it may not go yet).
	Why string `json:"why"`
}

// VaultPlan is `list volumes vault`: volumes that may go offsite now,
// offsite volumes to bring back, and Full/Used volumes in the library that
// must stay for now.
type VaultPlan struct {
	GoOffsite []VaultItem `json:"may_go_offsite"`
	BringBack []VaultItem `json:"bring_back"`
	Kept      []VaultItem `json:"kept_in_library"`
}

// PlanVault sorts volumes into the vault view's sections at now. A volume
// in the library may go offsite when it is Full or Used, its encryption is
// verified (when it or its pool is encrypted) and no created, running or
// waiting job uses it. An offsite volume comes back once its retention has
// ended after its last write, or when its data is no longer kept (Purged,
// Recycle).
func PlanVault(vs []catalog.VaultVolume, now time.Time) VaultPlan {
	p := VaultPlan{GoOffsite: []VaultItem{}, BringBack: []VaultItem{}, Kept: []VaultItem{}}
	for _, v := range vs {
		it := VaultItem{Volume: v.Volume, Barcode: v.Barcode, Pool: v.Pool, Storage: v.Storage, Status: string(v.Status), OffsiteSince: v.OffsiteSince}
		if v.Slot != catalog.NoSlot {
			it.Slot = v.Slot
		}
		if !v.InChanger {
			switch {
			case v.Status == catalog.Status("Purged") || v.Status == catalog.Status("Recycle"):
				it.Why = fmt.Sprintf("status %s: its data is no longer kept; bring it back for reuse", v.Status)
			case v.Retention > 0 && v.LastWritten != nil && !now.Before(v.LastWritten.Add(v.Retention)):
				it.Why = fmt.Sprintf("retention %s ended %s (last written %s); bring it back to prune and recycle it",
					v.Retention, v.LastWritten.Add(v.Retention).Format(time.DateOnly), v.LastWritten.Format(time.DateOnly))
			default:
				continue // stays offsite
			}
			p.BringBack = append(p.BringBack, it)
			continue
		}
		if v.Status != catalog.Status("Full") && v.Status != catalog.Status("Used") {
			continue
		}
		switch {
		case (v.Encrypted || v.PoolEncrypt) && !v.Encrypted:
			it.Why = fmt.Sprintf("pool %s is encrypted but this volume is clear; relabel it encrypted before it leaves", v.Pool)
		case v.Encrypted && v.VerifiedAt == nil:
			it.Why = "encryption not verified yet; mount it once for writing so the drive proves it encrypts"
		case len(v.ActiveJobs) > 0:
			ids := make([]string, len(v.ActiveJobs))
			for i, id := range v.ActiveJobs {
				ids[i] = fmt.Sprint(id)
			}
			it.Why = "needed by active job " + strings.Join(ids, ", ")
		default:
			it.Why = string(v.Status)
			if v.Encrypted {
				it.Why += ", encryption verified " + v.VerifiedAt.Format(time.DateOnly)
			} else {
				it.Why += ", not encrypted"
			}
			it.Why += ", no active job"
			p.GoOffsite = append(p.GoOffsite, it)
			continue
		}
		p.Kept = append(p.Kept, it)
	}
	return p
}

func (d *Director) listVault(ctx context.Context, pool string) (*Output, error) {
	vs, err := d.store.VaultVolumes(ctx, pool)
	if err != nil {
		return nil, err
	}
	p := PlanVault(vs, d.clock())
	var b bytes.Buffer
	section := func(title string, items []VaultItem, offsite bool) {
		fmt.Fprintf(&b, "%s (%d):\n", title, len(items))
		if len(items) == 0 {
			b.WriteString("  none\n")
			return
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		where := "SLOT"
		if offsite {
			where = "OFFSITE SINCE"
		}
		fmt.Fprintf(tw, "  VOLUME\tPOOL\tSTATUS\t%s\tWHY\n", where)
		for _, it := range items {
			w := "-"
			switch {
			case offsite && it.OffsiteSince != nil:
				w = it.OffsiteSince.Format(time.DateOnly)
			case !offsite && it.Slot > 0:
				w = fmt.Sprint(it.Slot)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", it.Volume, it.Pool, it.Status, w, it.Why)
		}
		tw.Flush()
	}
	section("May go offsite now (export volume=… yes)", p.GoOffsite, false)
	section("Offsite, to bring back (put them in the import/export slots, then import)", p.BringBack, true)
	section("Full or Used but kept in the library for now", p.Kept, false)
	return &Output{Text: strings.TrimRight(b.String(), "\n"), JSON: p}, nil
}

// exportVolume moves volume's cartridge to a free import/export slot of its
// storage and records it as offsite.
func (d *Director) exportVolume(ctx context.Context, actor, volume string, yes bool) (*Output, error) {
	m, err := d.store.GetMedia(ctx, volume)
	if err != nil {
		return nil, err
	}
	vs, err := d.store.VaultVolumes(ctx, m.Pool)
	if err != nil {
		return nil, err
	}
	var v *catalog.VaultVolume
	for i := range vs {
		if vs[i].Volume == volume {
			v = &vs[i]
		}
	}
	if v == nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: not found", volume)
	}
	if !v.InChanger {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is already offsite (since %s); import brings it back", volume, v.OffsiteSince.Format(time.DateOnly))
	}
	if len(v.ActiveJobs) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is needed by active job %d; export it after the job ends", volume, v.ActiveJobs[0])
	}
	if v.Status == catalog.StatusAppend || v.Status == catalog.Status("Labeling") {
		// Volume selection takes Append volumes: one offsite would be chosen
		// for a job that then cannot mount it.
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is %s: jobs may still write to it; export it once it is Full or Used", volume, v.Status)
	}
	if m.Storage == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s has no storage in the catalog, so no library to export it from", volume)
	}
	barcode := m.Barcode
	if barcode == "" {
		barcode = m.Volume
	}
	note := ""
	if it := PlanVault([]catalog.VaultVolume{*v}, d.clock()); len(it.GoOffsite) == 0 {
		why := "it is " + string(v.Status) + ", not Full or Used"
		if len(it.Kept) > 0 {
			why = it.Kept[0].Why
		}
		note = "; note: list volumes vault would not send it offsite yet (" + why + ")"
	}
	if !yes {
		return &Output{Text: fmt.Sprintf("would move %s (barcode %s, slot %s) of storage %s to a free import/export slot and record it offsite%s; add yes to do it",
			volume, barcode, slotText(m.Slot), m.Storage, note)}, nil
	}
	link, err := d.storage(m.Storage)
	if err != nil {
		return nil, err
	}
	r, err := link.client.ExportVolume(ctx, &pb.ExportVolumeRequest{Barcode: barcode, Volume: volume})
	if err != nil {
		return nil, storageErr(link.ref.Name, "export", err)
	}
	if err := d.store.MarkOffsite(context.WithoutCancel(ctx), volume, d.clock(), "console:"+actor, fmt.Sprintf("exported to I/E slot %d of storage %s", r.IeSlot, m.Storage)); err != nil {
		return nil, fmt.Errorf("cartridge %s is in import/export slot %d of storage %s, but the catalog was not updated (%w); run import storage=%s to put it back, then export again",
			barcode, r.IeSlot, m.Storage, err, m.Storage)
	}
	d.log.Info("volume exported", "volume", volume, "barcode", barcode, "storage", m.Storage, "slot", r.FromSlot, "ie_slot", r.IeSlot, "console", actor)
	return &Output{Text: fmt.Sprintf("%s moved from slot %d to import/export slot %d of storage %s; recorded offsite%s", volume, r.FromSlot, r.IeSlot, m.Storage, note), JSON: r}, nil
}

// ImportedRow is one cartridge import found in an import/export slot.
type ImportedRow struct {
	Storage string `json:"storage"`
	IESlot  uint32 `json:"ie_slot"`
	Barcode string `json:"barcode"`
	Volume  string `json:"volume,omitempty"`
	Slot    uint32 `json:"slot,omitempty"` // where it went (0: left in place)
	Error   string `json:"error,omitempty"`
}

// importVolumes moves the cartridges in the import/export slots of storage
// ("" : every storage) back to free slots.
func (d *Director) importVolumes(ctx context.Context, actor, storage string) (*Output, error) {
	names := slices.Sorted(maps.Keys(d.storages))
	if storage != "" {
		if _, err := d.storage(storage); err != nil {
			return nil, err
		}
		names = []string{storage}
	}
	ms, err := d.store.ListMedia(ctx, catalog.MediaFilter{})
	if err != nil {
		return nil, err
	}
	byTag := map[string]catalog.Media{}
	for _, m := range ms {
		byTag[m.Volume] = m
	}
	for _, m := range ms {
		if m.Barcode != "" {
			byTag[m.Barcode] = m
		}
	}
	rows := []ImportedRow{}
	var errs []error
	for _, name := range names {
		link, err := d.storage(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inv, err := link.client.Inventory(ctx, &pb.InventoryRequest{})
		if err != nil {
			errs = append(errs, storageErr(name, "inventory", err))
			continue
		}
		for _, c := range inv.Changers {
			for _, ie := range c.ImportExport {
				if !ie.Full {
					continue
				}
				row := ImportedRow{Storage: name, IESlot: ie.Slot, Barcode: ie.Barcode}
				m, known := byTag[ie.Barcode]
				if ie.Barcode == "" || !known {
					row.Error = "unknown barcode: left in place (take it out, or label it after import by hand)"
					if ie.Barcode == "" {
						row.Error = "no barcode: left in place"
					}
					rows = append(rows, row)
					continue
				}
				row.Volume = m.Volume
				r, err := link.client.ImportVolume(ctx, &pb.ImportVolumeRequest{Changer: c.Name, IeSlot: ie.Slot, Barcode: ie.Barcode})
				if err != nil {
					row.Error = storageErr(name, "import", err).Error()
					errs = append(errs, errors.New(row.Error))
					rows = append(rows, row)
					continue
				}
				row.Slot = r.Slot
				if err := d.store.MarkInChanger(context.WithoutCancel(ctx), m.Volume, name, int(r.Slot), "console:"+actor, fmt.Sprintf("imported into slot %d of storage %s (from I/E slot %d)", r.Slot, name, ie.Slot)); err != nil {
					row.Error = fmt.Sprintf("moved to slot %d, but the catalog was not updated: %v", r.Slot, err)
					errs = append(errs, errors.New(row.Error))
				}
				d.log.Info("volume imported", "volume", m.Volume, "barcode", ie.Barcode, "storage", name, "ie_slot", ie.Slot, "slot", r.Slot, "console", actor)
				rows = append(rows, row)
			}
		}
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORAGE\tI/E SLOT\tBARCODE\tVOLUME\tTO SLOT\tRESULT")
	n := 0
	for _, r := range rows {
		res := "in the library again"
		if r.Error != "" {
			res = r.Error
		} else {
			n++
		}
		to := "-"
		if r.Slot > 0 {
			to = fmt.Sprint(r.Slot)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Storage, r.IESlot, dash(r.Barcode), dash(r.Volume), to, res)
	}
	tw.Flush()
	fmt.Fprintf(&b, "%d cartridges imported, %d left in the import/export slots", n, len(rows)-n)
	out := &Output{Text: b.String(), JSON: rows, Partial: len(errs) > 0}
	if len(rows) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func slotText(n int) string {
	if n == catalog.NoSlot {
		return "-"
	}
	return fmt.Sprint(n)
}
