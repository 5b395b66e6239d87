package sd

// The vault: cartridges leave the library through its import/export
// elements (the I/E station) and come back through them. The director
// decides which volumes go (list volumes vault) and records where they are;
// this file only moves cartridges, and refuses to move one that a drive
// holds or a job session uses.

import (
	"fmt"
	"strings"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// ExportVolume moves the cartridge with barcode from its storage slot to
// import/export slot ie (1-based; 0: the first free one).
// volume, when set, is the cartridge's volume name: a drive or a job
// session using it refuses the export.
func (d *Daemon) ExportVolume(changer, barcode, volume string, ie uint32) (*pb.ExportVolumeReply, error) {
	barcode = strings.TrimSpace(barcode)
	if barcode == "" {
		return nil, stateErr("export needs the barcode of the cartridge to move")
	}
	for _, v := range []string{barcode, volume} {
		if v == "" {
			continue
		}
		if err := d.volumeFree(v); err != nil {
			return nil, err
		}
	}
	c, err := d.changer(changer)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, err := c.layout()
	if err != nil {
		return nil, err
	}
	for i, e := range l.Drives {
		if e.Full && e.VolumeTag == barcode {
			return nil, stateErr("cartridge %s is in drive %d of changer %s; unmount it first (export takes it from its slot)", barcode, i, c.name)
		}
	}
	for i, e := range l.IE {
		if e.Full && e.VolumeTag == barcode {
			return nil, stateErr("cartridge %s is already in import/export slot %d of changer %s", barcode, i+1, c.name)
		}
	}
	from := -1
	for i, e := range l.Slots {
		if e.Full && e.VolumeTag == barcode {
			from = i
		}
	}
	if from < 0 {
		return nil, &LibraryStateError{NoSuch: true, Msg: fmt.Sprintf("changer %s holds no cartridge %s in its slots; `inventory` lists what it holds", c.name, barcode)}
	}
	dst, err := l.freeIE(c.name, ie)
	if err != nil {
		return nil, err
	}
	if err := c.dev.MoveMedium(0, l.Slots[from].Address, l.IE[dst].Address); err != nil {
		return nil, fmt.Errorf("changer %s: moving %s from slot %d to import/export slot %d: %w", c.name, barcode, from+1, dst+1, err)
	}
	d.log.Info("cartridge exported", "changer", c.name, "barcode", barcode, "slot", from+1, "ie_slot", dst+1)
	return &pb.ExportVolumeReply{Changer: c.name, FromSlot: uint32(from + 1), IeSlot: uint32(dst + 1)}, nil
}

// ImportVolume moves the cartridge in import/export slot ie (1-based) to
// the slot it was exported from when that is empty, else to the first
// empty storage slot. When barcode is set, the cartridge must carry it.
func (d *Daemon) ImportVolume(changer string, ie uint32, barcode string) (*pb.ImportVolumeReply, error) {
	c, err := d.changer(changer)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, err := c.layout()
	if err != nil {
		return nil, err
	}
	if ie == 0 || int(ie) > len(l.IE) {
		return nil, &LibraryStateError{NoSuch: true, Msg: fmt.Sprintf("changer %s has import/export slots 1-%d; there is no import/export slot %d", c.name, len(l.IE), ie)}
	}
	src := l.IE[ie-1]
	if !src.Full {
		return nil, stateErr("import/export slot %d of changer %s is empty", ie, c.name)
	}
	if barcode = strings.TrimSpace(barcode); barcode != "" && src.VolumeTag != barcode {
		return nil, stateErr("import/export slot %d of changer %s holds %s, not %s", ie, c.name, orNone(src.VolumeTag), barcode)
	}
	to := -1
	if src.SValid {
		if n := l.slotNumber(src.Source); n > 0 && !l.Slots[n-1].Full {
			to = int(n - 1)
		}
	}
	for i := 0; to < 0 && i < len(l.Slots); i++ {
		if !l.Slots[i].Full && !d.slotAwaited(c, l.Slots[i].Address, l) {
			to = i
		}
	}
	if to < 0 {
		return nil, stateErr("changer %s has no empty slot for cartridge %s; export another cartridge first", c.name, orNone(src.VolumeTag))
	}
	if err := c.dev.MoveMedium(0, src.Address, l.Slots[to].Address); err != nil {
		return nil, fmt.Errorf("changer %s: moving %s from import/export slot %d to slot %d: %w", c.name, orNone(src.VolumeTag), ie, to+1, err)
	}
	d.log.Info("cartridge imported", "changer", c.name, "barcode", src.VolumeTag, "ie_slot", ie, "slot", to+1)
	return &pb.ImportVolumeReply{Changer: c.name, Barcode: src.VolumeTag, Slot: uint32(to + 1)}, nil
}

// freeIE picks import/export slot want (1-based) or, for 0, the first
// empty one; it returns its index in l.IE.
func (l *Layout) freeIE(changer string, want uint32) (int, error) {
	if len(l.IE) == 0 {
		return 0, &LibraryStateError{NoSuch: true, Msg: fmt.Sprintf("changer %s has no import/export slots", changer)}
	}
	if want > 0 {
		if int(want) > len(l.IE) {
			return 0, &LibraryStateError{NoSuch: true, Msg: fmt.Sprintf("changer %s has import/export slots 1-%d; there is no import/export slot %d", changer, len(l.IE), want)}
		}
		if e := l.IE[want-1]; e.Full {
			return 0, stateErr("import/export slot %d of changer %s holds %s; take it out of the library first", want, changer, orNone(e.VolumeTag))
		}
		return int(want - 1), nil
	}
	for i, e := range l.IE {
		if !e.Full {
			return i, nil
		}
	}
	return 0, stateErr("every import/export slot of changer %s (%d) is full; take the cartridges out of the library first", changer, len(l.IE))
}

// slotAwaited says whether a cartridge now in a drive of c came from the
// slot at addr (it goes back there on unmount, so an import must not take
// it).
func (d *Daemon) slotAwaited(c *Changer, addr uint16, l *Layout) bool {
	for _, e := range l.Drives {
		if e.Full && e.SValid && e.Source == addr {
			return true
		}
	}
	for _, dr := range d.drives {
		if dr.changer == c {
			if v := dr.view.Load(); v != nil && v.volume != "" && dr.sourceSlot == addr {
				return true
			}
		}
	}
	return false
}

// volumeFree refuses a volume (or barcode) that a drive holds or a job
// session uses.
func (d *Daemon) volumeFree(barcode string) error {
	for _, dr := range d.drives {
		if v := dr.view.Load(); v != nil && v.volume == barcode {
			return stateErr("volume %s is in %s (%s); unmount it first", barcode, dr.name, v.state)
		}
	}
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	for _, s := range d.jobs {
		if s.volume == barcode || s.open.GetVolume().GetVolume() == barcode {
			return stateErr("volume %s is in job session %s (job %d); export it after the job ends", barcode, s.id, s.open.GetJob().GetJobId())
		}
	}
	for _, s := range d.restores {
		if s.uses(barcode) {
			return stateErr("volume %s is in the plan of restore session %s (job %d); export it after the restore ends", barcode, s.id, s.open.GetJobId())
		}
	}
	return nil
}
