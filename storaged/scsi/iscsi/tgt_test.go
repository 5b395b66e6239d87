package iscsi_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
)

// These tests judge the initiator by tgt, a target written by others:
// one tgtd for the package's tests (TestTgt's subtests, each with its own
// target), a second one for the restart test.

func dial(t *testing.T, addr string, o iscsi.Options) *iscsi.Transport {
	t.Helper()
	a, err := iscsi.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := iscsi.Dial(ctx, a, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func device(t *testing.T, addr string, o iscsi.Options) (*scsi.Device, *iscsi.Transport) {
	t.Helper()
	tr := dial(t, addr, o)
	d := scsi.NewDevice(tr)
	d.DrainUnitAttentions()
	return d, tr
}

func TestTgt(t *testing.T) {
	srv := tgttest.Start(t)

	t.Run("Discovery", func(t *testing.T) {
		a := srv.AddTape(t, "disc", 8)
		b := srv.AddDisk(t, "disc2", 1)
		ts, err := iscsi.Discover(context.Background(), srv.Portal, iscsi.Options{})
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, tg := range ts {
			found[tg.Name] = true
			if len(tg.Portals) == 0 || !strings.HasPrefix(tg.Portals[0], srv.Portal+",") {
				t.Errorf("target %s portals %v, want %s,TPGT", tg.Name, tg.Portals, srv.Portal)
			}
		}
		if !found[a.IQN] || !found[b.IQN] {
			t.Fatalf("SendTargets listed %+v, want %s and %s", ts, a.IQN, b.IQN)
		}
	})

	t.Run("InquiryAndNoAME", func(t *testing.T) {
		tg := srv.AddLibrary(t, "inq", tgttest.Library{Slots: 1})
		d, _ := device(t, tg.Drive, iscsi.Options{})
		q, err := d.Inquiry()
		if err != nil {
			t.Fatal(err)
		}
		if q.DeviceType != scsi.TypeTape || !strings.Contains(q.Product, "VIRTUAL-TAPE") {
			t.Fatalf("LUN 1 INQUIRY: type %d %q %q", q.DeviceType, q.Vendor, q.Product)
		}
		p, err := d.Probe()
		if err != nil || p.AME || !strings.Contains(p.Reason, "no application-managed encryption") {
			t.Fatalf("Probe of tgt's tape (no SECURITY PROTOCOL IN): %+v %v, want AME false with the reason", p, err)
		}
		_, err = d.SetKey(make([]byte, 32), scsi.SetKeyOpts{})
		var noAME *scsi.NoAMEError
		if !errors.As(err, &noAME) || noAME.Addr != tg.Drive || !strings.Contains(err.Error(), "no application-managed encryption") {
			t.Fatalf("SetKey on tgt's tape: %v, want a *scsi.NoAMEError naming %s", err, tg.Drive)
		}
		c, _ := device(t, tg.Changer, iscsi.Options{})
		q, err = c.Inquiry()
		if err != nil || q.DeviceType != scsi.TypeMediumChanger {
			t.Fatalf("LUN 2 INQUIRY: %+v %v", q, err)
		}
	})

	t.Run("WriteReadBack", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			o      iscsi.Options
			params [][2]string // the target's settings
		}{
			{name: "defaults"},
			// Every byte solicited by R2T; Data-In in 4 KiB PDUs.
			{name: "R2T small", o: iscsi.Options{MaxRecvDataSegmentLength: 4096, InitialR2T: true, NoImmediateData: true}},
			// Immediate and unsolicited Data-Out up to FirstBurstLength, then R2T.
			{name: "unsolicited", params: [][2]string{{"InitialR2T", "No"}, {"ImmediateData", "Yes"}, {"FirstBurstLength", "131072"}}},
			{name: "CRC32C", o: iscsi.Options{HeaderDigest: true, DataDigest: true},
				params: [][2]string{{"HeaderDigest", "CRC32C,None"}, {"DataDigest", "CRC32C,None"}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				tg := srv.AddTape(t, "rw"+strings.ReplaceAll(c.name, " ", ""), 16)
				for _, p := range c.params {
					srv.Param(t, tg, p[0], p[1])
				}
				d, tr := device(t, tg.Drive, c.o)
				p := tr.Negotiated()
				if c.o.HeaderDigest && (!p.HeaderDigest || !p.DataDigest) {
					t.Fatalf("digests negotiated %+v, want CRC32C both ways", p)
				}
				if c.name == "unsolicited" && (p.InitialR2T || !p.ImmediateData || p.FirstBurstLength != 131072) {
					t.Fatalf("negotiated %+v, want InitialR2T=No ImmediateData=Yes FirstBurstLength=131072", p)
				}
				writeReadBack(t, d)
				st := tr.Stats()
				mx := p.MaxRecvDataSegmentLength // what tgt declared
				if st.R2Ts == 0 || st.DataOutPDUs < (1<<20)/mx {
					t.Fatalf("stats %+v: want the 1 MiB block in ≥ %d Data-Out PDUs of ≤ %d bytes, solicited by R2T", st, (1<<20)/mx, mx)
				}
				if c.o.MaxRecvDataSegmentLength == 4096 && st.DataInPDUs < (1<<20)/4096 {
					t.Fatalf("stats %+v: want the 1 MiB block read in ≥ 256 Data-In PDUs", st)
				}
			})
		}
	})
}

// writeReadBack writes blocks of several sizes and a filemark, rewinds,
// and reads them back.
func writeReadBack(t *testing.T, d *scsi.Device) {
	t.Helper()
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var blocks [][]byte
	for _, n := range []int{1, 512, 65536 + 3, 1 << 20, 4000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		blocks = append(blocks, b)
		if _, err := d.Write(b); err != nil {
			t.Fatalf("WRITE of %d bytes: %v", n, err)
		}
	}
	if _, err := d.WriteFilemarks(1, false); err != nil {
		t.Fatal(err)
	}
	// tgt answers READ POSITION with zeros (its ssc emulation does not
	// track it): only that it is carried is checked; SPACE positions.
	if _, err := d.ReadPosition(); err != nil {
		t.Fatal(err)
	}
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2<<20)
	if _, err := d.Space(scsi.SpaceBlocks, 3); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Read(buf, true); err != nil || !bytes.Equal(buf[:r.N], blocks[3]) {
		t.Fatalf("READ after SPACE 3 blocks: %d bytes, %v; want block 3 (%d bytes)", r.N, err, len(blocks[3]))
	}
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	for i, want := range blocks {
		r, err := d.Read(buf, true)
		if err != nil {
			t.Fatalf("READ of block %d: %v", i, err)
		}
		if !bytes.Equal(buf[:r.N], want) {
			t.Fatalf("block %d: read %d bytes, want the %d written", i, r.N, len(want))
		}
	}
	r, err := d.Read(buf, true)
	if err != nil || !r.Filemark {
		t.Fatalf("READ after the last block: %+v %v, want the filemark", r, err)
	}
}

func writeSecret(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
