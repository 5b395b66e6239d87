package sd

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/scsi"
)

// Inventory reads the slots and drives of one changer ("" : every one).
func (d *Daemon) Inventory(changer string) (*pb.InventoryReply, error) {
	var names []string
	if changer != "" {
		c, err := d.changer(changer)
		if err != nil {
			return nil, err
		}
		names = []string{c.name}
	} else {
		names = slices.Sorted(maps.Keys(d.changers))
	}
	out := &pb.InventoryReply{}
	for _, n := range names {
		c, err := d.changer(n)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		l, err := c.layout()
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		ci := &pb.ChangerInventory{Name: c.name}
		for i, e := range l.Slots {
			ci.Slots = append(ci.Slots, &pb.Slot{Slot: uint32(i + 1), Address: uint32(e.Address), Full: e.Full, Barcode: e.VolumeTag})
		}
		for i, e := range l.Drives {
			ds := &pb.DriveSlot{Index: uint32(i), Address: uint32(e.Address), Full: e.Full, Barcode: e.VolumeTag}
			for _, dr := range d.drives {
				if dr.changer == c && dr.cfg.DriveIndex == i {
					ds.Drive = dr.name
				}
			}
			if e.SValid {
				ds.SourceSlot = l.slotNumber(e.Source)
			}
			ci.Drives = append(ci.Drives, ds)
		}
		for i, e := range l.IE {
			ci.ImportExport = append(ci.ImportExport, &pb.Slot{Slot: uint32(i + 1), Address: uint32(e.Address), Full: e.Full, Barcode: e.VolumeTag})
		}
		out.Changers = append(out.Changers, ci)
	}
	return out, nil
}

// Status reports every drive: configuration, probe result, what it holds
// and the key state the drive itself last reported. It never waits for an
// operation and never makes one fail: it reads each drive's snapshot
// (published by the operations under the drive's lock); a drive that no
// operation holds is asked for its key state first (one short query that an
// operation arriving meanwhile waits for, instead of failing busy), so an
// unreachable drive shows its error and no stale key state.
func (d *Daemon) Status() *pb.StatusReply {
	out := &pb.StatusReply{Name: d.cfg.Name, KekIds: d.KEKIDs()}
	if es, err := d.cache.List(); err == nil {
		out.CacheEntries = uint32(len(es))
		out.CacheKeks, out.CacheUnknownKekIds = d.cacheKEKs(es)
	}
	out.CacheRecovery = cacheRecoveryPB(d.cacheRecovery)
	for _, dr := range d.drives {
		out.Drives = append(out.Drives, dr.status())
	}
	return out
}

func (dr *Drive) status() *pb.DriveStatus {
	busy := !dr.mu.tryQuery()
	if !busy {
		dr.refresh()
		dr.mu.Unlock() // publishes
	}
	s := proto.Clone(dr.snap.Load()).(*pb.DriveStatus)
	if busy {
		s.State += " (busy)"
	}
	return s
}

// refresh asks the drive for its key state (a drive without AME: whether
// it answers at all). Called with dr.mu held.
func (dr *Drive) refresh() {
	if dr.dev == nil {
		return
	}
	if !dr.ame() {
		if _, err := dr.dev.Inquiry(); err != nil {
			dr.ioErr = "the drive does not answer: " + err.Error()
			return
		}
		dr.ioErr = ""
		return
	}
	st, err := dr.dev.Status()
	if err != nil {
		dr.ioErr = "reading the encryption status: " + err.Error()
		dr.keyState = nil
		return
	}
	dr.ioErr, dr.keyState = "", keyState(st)
}

// keyState turns a drive's status page into what Status reports.
func keyState(st *scsi.DataEncryptionStatus) *pb.DriveKeyState {
	ks := &pb.DriveKeyState{
		KeyLoaded:          !st.Cleared(),
		KeyInstanceCounter: st.KeyInstanceCounter,
		EncryptionMode:     st.EncryptionMode.String(),
		DecryptionMode:     st.DecryptionMode.String(),
	}
	if u, ok := scsi.UKAD(st.KADs); ok {
		ks.KeyFingerprint = string(u)
	}
	return ks
}
