package emu

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// inproc opens an in-process transport as a scsi.Device.
func inproc(t *testing.T, lib *Library, unit string, excl bool) *scsi.Device {
	t.Helper()
	tr, err := lib.Transport(unit, excl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return scsi.NewDevice(tr)
}

func readyDev(t *testing.T, d *scsi.Device) {
	t.Helper()
	for range 100 {
		err := d.TestUnitReady()
		if err == nil {
			return
		}
		if !scsi.IsUnitAttention(err) && !scsi.IsBecomingReady(err) {
			t.Fatal(err)
		}
	}
	t.Fatal("drive never became ready")
}

// TestInProcessTransport: the in-process transport is the same drive as
// the socket: what one writes, the other reads back.
func TestInProcessTransport(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	d := inproc(t, h.lib, "drive0", false)
	readyDev(t, d)
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	blk := bytes.Repeat([]byte("in-process "), 1000)
	if _, err := d.Write(blk); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteFilemarks(1, false); err != nil {
		t.Fatal(err)
	}
	s := scsi.NewDevice(h.dial("drive0"))
	readyDev(t, s)
	if err := s.Rewind(false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	r, err := s.Read(buf, true)
	if err != nil || !bytes.Equal(buf[:r.N], blk) {
		t.Fatalf("socket read of the in-process block: %+v %v", r, err)
	}
	if got := d.MaxTransfer(); got != vtlwire.MaxData {
		t.Fatalf("MaxTransfer %d, want %d", got, vtlwire.MaxData)
	}
	if inq, err := d.Inquiry(); err != nil || inq.DeviceType != scsi.TypeTape || !strings.HasPrefix(d.Addr(), "vtl-inprocess#drive0") {
		t.Fatalf("inquiry %+v %v addr %s", inq, err, d.Addr())
	}
}

// TestExclusive: one exclusive holder per unit, over the socket and in
// process alike; released when the connection closes (finding 3).
func TestExclusive(t *testing.T) {
	h := newTestLib(t, nil)
	a, err := vtlwire.DialOpts(h.sock, vtlwire.Hello{Unit: "drive0", Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = vtlwire.DialOpts(h.sock, vtlwire.Hello{Unit: "drive0", Exclusive: true})
	var busy *scsi.BusyDeviceError
	if !errors.As(err, &busy) || !scsi.IsBusy(err) || !strings.Contains(err.Error(), "vtl:"+h.sock+"#drive0") ||
		!strings.Contains(err.Error(), "another storaged or tapekey has") {
		t.Fatalf("second exclusive open: %v", err)
	}
	if _, err := vtlwire.Dial(h.sock, "drive0"); !scsi.IsBusy(err) {
		t.Fatalf("shared open of an exclusively held unit: %v", err)
	}
	if _, err := h.lib.Transport("drive0", true); !scsi.IsBusy(err) {
		t.Fatalf("in-process exclusive open of a held unit: %v", err)
	}
	// Other units are free.
	b, err := vtlwire.DialOpts(h.sock, vtlwire.Hello{Unit: "drive1", Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	// A shared holder keeps an exclusive open out too (as O_EXCL does).
	// A closed socket releases the unit at once: the next open finds the
	// holder's peer gone (as a dead process's O_EXCL is gone before
	// anyone can wait for it), even before the server read its EOF.
	a.Close()
	s, err := h.lib.Transport("drive0", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vtlwire.DialOpts(h.sock, vtlwire.Hello{Unit: "drive0", Exclusive: true}); !scsi.IsBusy(err) || !strings.Contains(err.Error(), "1 other connection") {
		t.Fatalf("exclusive open of a shared unit: %v", err)
	}
	s.Close()
	// Released at once by Close (in process): the next exclusive open works.
	c, err := vtlwire.DialOpts(h.sock, vtlwire.Hello{Unit: "drive0", Exclusive: true})
	if err != nil {
		t.Fatalf("after every holder closed: %v", err)
	}
	c.Close()
}

// TestFaultMaxTransferAndBlock: a unit with an adapter-like transfer limit
// advertises it, refuses larger commands without executing them, and
// READ BLOCK LIMITS follows max_block.
func TestFaultMaxTransferAndBlock(t *testing.T) {
	h := newTestLib(t, func(c *Config) {
		c.Faults = map[string]Faults{"drive0": {MaxTransfer: 1 << 20, MaxBlock: 2 << 20}}
	})
	h.load(1, 0)
	c := h.dial("drive0")
	if c.MaxTransfer() != 1<<20 {
		t.Fatalf("advertised %d", c.MaxTransfer())
	}
	d := scsi.NewDevice(c)
	readyDev(t, d)
	lim, err := d.ReadBlockLimits()
	if err != nil || lim.Max != 2<<20 || lim.Min != 1 {
		t.Fatalf("block limits %+v %v", lim, err)
	}
	if bs, err := d.EffectiveBlockSize(8 << 20); err != nil || bs != 1<<20 {
		t.Fatalf("effective %d %v", bs, err)
	}
	// The server refuses a command above the limit even from a client
	// that does not check (DID_ERROR, nothing written).
	conn, err := h.lib.Connect(vtlwire.Hello{Unit: "drive0"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	big := make([]byte, 1<<20+1)
	resp := conn.Exec(&vtlwire.Request{Dir: scsi.DirToDevice, CDB: scsi.Write6CDB(uint32(len(big))), DataOut: big})
	if resp.HostStatus != 0x07 || h.lib.Status().Drives[0].Objects != 0 {
		t.Fatalf("oversize write: %+v, objects %d", resp, h.lib.Status().Drives[0].Objects)
	}
	// The client refuses it before sending.
	if _, err := d.Write(big); err == nil || !strings.Contains(err.Error(), "transfer limit") && !strings.Contains(err.Error(), "exceed the transport's limit") {
		t.Fatalf("client write above the limit: %v", err)
	}
	// Runtime change, and refusals of nonsense.
	if err := h.lib.SetFaults("drive0", Faults{}); err != nil {
		t.Fatal(err)
	}
	if lim, _ := d.ReadBlockLimits(); lim.Max != MaxBlock {
		t.Fatalf("after clearing: %+v", lim)
	}
	for _, bad := range []struct {
		unit string
		f    Faults
	}{{"drive0", Faults{Position: "fib"}}, {"changer", Faults{MaxBlock: 1}}, {"drive0", Faults{ShortElementStatus: 8}}, {"drive9", Faults{}}} {
		if err := h.lib.SetFaults(bad.unit, bad.f); err == nil {
			t.Errorf("SetFaults(%s, %+v) accepted", bad.unit, bad.f)
		}
	}
}

// TestFaultPosition: READ POSITION lies as configured, and only in its
// answer: the drive still writes where it really is.
func TestFaultPosition(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	d := scsi.NewDevice(h.dial("drive0"))
	readyDev(t, d)
	for range 3 {
		if _, err := d.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	pos := func() scsi.Position {
		t.Helper()
		p, err := d.ReadPosition()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := pos(); p.Block != 3 {
		t.Fatalf("honest %v", p)
	}
	h.lib.SetFaults("drive0", Faults{Position: "stale"})
	if p := pos(); p.Block != 2 {
		t.Fatalf("stale %v, want block 2", p)
	}
	h.lib.SetFaults("drive0", Faults{Position: "zero"})
	if p := pos(); p.Block != 0 || p.File != 0 || p.BOP {
		t.Fatalf("zero %v", p)
	}
	h.lib.SetFaults("drive0", Faults{Position: "zero", PositionPastEW: true})
	if p := pos(); p.Block != 3 {
		t.Fatalf("zero past EW, before EW: %v", p)
	}
	h.lib.SetFaults("drive0", Faults{})
	if p := pos(); p.Block != 3 {
		t.Fatalf("after the lies: %v", p)
	}
}

// TestFaultShortElementStatus: the changer's answer is 8 bytes shorter
// than its byte counts, as tgt's.
func TestFaultShortElementStatus(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.Faults = map[string]Faults{"changer": {ShortElementStatus: 8}} })
	ch := scsi.NewDevice(h.dial("changer"))
	ch.DrainUnitAttentions()
	cdb := scsi.ReadElementStatusCDB(scsi.ReadElementStatusOpts{Type: scsi.ElementDataTransfer, VolTag: true, DVCID: true, Count: 10, Alloc: 0xFFFF})
	cmd := &scsi.Command{CDB: cdb, Dir: scsi.DirFromDevice, Data: make([]byte, 0xFFFF)}
	res, err := ch.Exec(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// 2 drives × (12 + 36 + 4 + 34) = 172 descriptor bytes + 8 page header.
	got := res.Transferred(cmd)
	b := cmd.Data
	if count := int(b[5])<<16 | int(b[6])<<8 | int(b[7]); count != 180 || got != 8+180-8 {
		t.Fatalf("byte count %d, received %d; want 180 and %d", count, got, 8+180-8)
	}
}

func TestParseFaults(t *testing.T) {
	size := func(s string) (int64, error) {
		if s == "1MiB" {
			return 1 << 20, nil
		}
		var n int64
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, errors.New("bad")
			}
			n = n*10 + int64(c-'0')
		}
		return n, nil
	}
	unit, f, err := ParseFaults("drive0:max_transfer=1MiB,position=zero,position_past_ew=true", size)
	if err != nil || unit != "drive0" || f != (Faults{MaxTransfer: 1 << 20, Position: "zero", PositionPastEW: true}) {
		t.Fatalf("%s %+v %v", unit, f, err)
	}
	if unit, f, err := ParseFaults("changer:short_element_status=8", size); err != nil || unit != "changer" || f.ShortElementStatus != 8 {
		t.Fatalf("%s %+v %v", unit, f, err)
	}
	if _, f, err := ParseFaults("drive1:none", size); err != nil || f != (Faults{}) {
		t.Fatalf("none: %+v %v", f, err)
	}
	for _, bad := range []string{"drive0", "drive0:bogus=1", "drive0:position=maybe", "changer:max_block=1", "drive0:max_transfer=x"} {
		if _, _, err := ParseFaults(bad, size); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestOpenDevice: the in-process opener storaged/sd's Options.OpenDevice
// takes: exclusive, type-checked, from a configured address.
func TestOpenDevice(t *testing.T) {
	h := newTestLib(t, nil)
	d, err := h.lib.OpenDevice("vtl:/run/vtl.sock#drive1", scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if q, err := d.Inquiry(); err != nil || q.DeviceType != scsi.TypeTape || d.Addr() != "vtl-inprocess#drive1" {
		t.Fatalf("%+v %v %s", q, err, d.Addr())
	}
	if _, err := h.lib.OpenDevice("vtl:/run/vtl.sock#drive1", scsi.TypeTape); !scsi.IsBusy(err) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := h.lib.OpenDevice("vtl:/run/vtl.sock#changer", scsi.TypeTape); err == nil || !strings.Contains(err.Error(), "refusing vtl-inprocess#changer: it is a medium changer") {
		t.Fatalf("changer as a tape drive: %v", err)
	}
	// The refused open released the changer.
	ch, err := h.lib.OpenDevice("vtl:/run/vtl.sock#changer", scsi.TypeMediumChanger)
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if _, err := h.lib.OpenDevice("vtl:/s#drive9"); err == nil || !strings.Contains(err.Error(), `no unit "drive9"`) {
		t.Fatalf("drive9: %v", err)
	}
}
