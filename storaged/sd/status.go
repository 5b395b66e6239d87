package sd

import (
	"maps"
	"slices"

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
		out.Changers = append(out.Changers, ci)
	}
	return out, nil
}

// Status reports every drive: configuration, probe result, the mounted
// volume and the key state read from the drive itself (the last known
// state when the drive is busy).
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
	s := &pb.DriveStatus{Name: dr.name, Address: dr.cfg.Address, Crypto: dr.crypto}
	locked := dr.mu.TryLock()
	if locked {
		defer dr.mu.Unlock()
	}
	s.State, s.Error = dr.state, dr.lastErr
	if !locked {
		s.State += " (busy)"
	}
	if p := dr.probe; p != nil {
		if p.Inquiry != nil {
			s.Vendor, s.Product = p.Inquiry.Vendor, p.Inquiry.Product
		}
		s.Ame, s.AmeReason = p.AME, p.Reason
		s.AlgorithmIndex, s.MaxUkad, s.Ckod = uint32(p.AlgorithmIndex), uint32(p.MaxUKAD), p.CKOD
	}
	if dr.label != nil {
		s.Volume = dr.label.Volume
	}
	s.Barcode = dr.barcode
	ks := &pb.DriveKeyState{KeyLoaded: dr.keyFP != "", KeyFingerprint: dr.keyFP, KeyInstanceCounter: dr.kic}
	if locked && dr.dev != nil && dr.ame() {
		if st, err := dr.dev.Status(); err == nil {
			ks = keyState(st)
		} else {
			s.Error = "reading the encryption status: " + err.Error()
		}
	}
	s.Key = ks
	return s
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
