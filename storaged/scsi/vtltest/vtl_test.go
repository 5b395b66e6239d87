// Package vtltest runs the SCSI initiator against a real vtl process over
// its unix socket: TestMain builds ./tools/vtl with `go build`, starts
// `vtl serve` (drive0 IBM-like, drive1 no-AME, drive2 lying) and the tests drive it
// through storaged/scsi/dial exactly as storaged and tapekey will.
package vtltest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var (
	vtlBin  string
	sockets string // socket of the running vtl
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tapeward-vtltest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bins, err := testenv.Build(tmp, "tools/vtl")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vtltest:", err)
		return 1
	}
	vtlBin = bins["vtl"]
	srv, err := testenv.ServeVTL(vtlBin, tmp, "--slots", "8", "--drives", "3", "--capacity", "2GiB",
		"--personality", "drive1=no-ame,drive2=lying", "--load-delay", "50ms")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vtltest:", err)
		return 1
	}
	defer srv.Stop()
	sockets = srv.Socket
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- vtl log ----\n%s", srv.Log())
	}
	return code
}

func open(t testing.TB, unit string) *scsi.Device {
	t.Helper()
	d, err := dial.OpenDevice("vtl:" + sockets + "#" + unit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// waitReady polls TEST UNIT READY through "becoming ready" and unit
// attentions, as storaged does after a load.
func waitReady(t testing.TB, d *scsi.Device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := d.TestUnitReady()
		if err == nil {
			return
		}
		if !scsi.IsBecomingReady(err) && !scsi.IsUnitAttention(err) || time.Now().After(deadline) {
			t.Fatalf("drive not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setDSense switches the drive between fixed and descriptor sense with
// the Control mode page (0x0A, D_SENSE = byte 2 bit 2).
func setDSense(d *scsi.Device, on bool) error {
	p := []byte{0, 0, 0, 0, 0x0A, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if on {
		p[6] = 0x04
	}
	return d.ModeSelect6(p, false)
}

type vtlStatus struct {
	Slots []struct {
		Slot    int    `json:"slot"`
		Address int    `json:"address"`
		Barcode string `json:"barcode"`
	} `json:"slots"`
}

func panelStatus(t testing.TB) vtlStatus {
	t.Helper()
	out, err := exec.Command(vtlBin, "status", "--socket", sockets, "--json").Output()
	if err != nil {
		t.Fatalf("vtl status: %v", err)
	}
	var st vtlStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("vtl status --json: %v\n%s", err, out)
	}
	return st
}

func find(els []scsi.Element, typ scsi.ElementType, addr uint16) (scsi.Element, bool) {
	for _, e := range els {
		if e.Type == typ && e.Address == addr {
			return e, true
		}
	}
	return scsi.Element{}, false
}

// ensureLoaded puts the cartridge of slot n (1-based) into drive 0 unless
// drive 0 already holds one, and waits until it is ready.
func ensureLoaded(t testing.TB, n int) *scsi.Device {
	t.Helper()
	ch := open(t, "changer")
	ea, err := ch.ElementAddresses()
	if err != nil {
		t.Fatal(err)
	}
	els, err := ch.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if d0, ok := find(els, scsi.ElementDataTransfer, ea.FirstDataTransfer); !ok || !d0.Full {
		src := ea.FirstStorage + uint16(n-1)
		if s, ok := find(els, scsi.ElementStorage, src); !ok || !s.Full {
			for _, e := range els {
				if e.Type == scsi.ElementStorage && e.Full {
					src = e.Address
					break
				}
			}
		}
		if err := ch.MoveMedium(0, src, ea.FirstDataTransfer); err != nil {
			t.Fatal(err)
		}
	}
	d := open(t, "drive0")
	waitReady(t, d)
	return d
}

func TestNoAMEDrive(t *testing.T) {
	d := open(t, "drive1")
	p, err := d.Probe()
	if err != nil {
		t.Fatal(err)
	}
	want := "no application-managed encryption: SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)"
	if p.AME || p.Reason != want {
		t.Fatalf("AME %t, reason %q", p.AME, p.Reason)
	}
	_, err = d.SetKey(make([]byte, 32), scsi.SetKeyOpts{})
	if !scsi.IsNoAME(err) || !strings.Contains(err.Error(), "vtl:"+sockets+"#drive1: "+want) {
		t.Fatalf("SetKey: %v", err)
	}
}

// A drive that accepts the key and reports encryption on, but writes
// clear blocks, is caught by VerifyEncrypted after a probe block.
func TestLyingDrive(t *testing.T) {
	ch := open(t, "changer")
	ea, err := ch.ElementAddresses()
	if err != nil {
		t.Fatal(err)
	}
	slot, drive := ea.FirstStorage+7, ea.FirstDataTransfer+2
	if err := ch.MoveMedium(0, slot, drive); err != nil {
		t.Fatal(err)
	}
	d := open(t, "drive2")
	waitReady(t, d)
	key := make([]byte, 32)
	rand.Read(key)
	st, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: []byte("fp:lying")})
	if err != nil || !st.Encrypting() {
		t.Fatalf("the lying drive's SPOUT and DES look fine: %v %v", st, err)
	}
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(bytes.Repeat([]byte{1}, 4096)); err != nil {
		t.Fatal(err)
	}
	_, err = d.VerifyEncrypted(0, []byte("fp:lying"))
	if !scsi.IsNotEncrypted(err) || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("lying drive not detected: %v", err)
	}
	if _, err := d.Clear(); err != nil {
		t.Fatal(err)
	}
	if err := d.Unload(); err != nil {
		t.Fatal(err)
	}
	if err := ch.MoveMedium(0, drive, slot); err != nil {
		t.Fatal(err)
	}
}

func TestLibrary(t *testing.T) {
	drv := open(t, "drive0")
	ch := open(t, "changer")

	t.Run("no cartridge", func(t *testing.T) {
		var err error
		for i := 0; i < 5; i++ { // power-on unit attention first
			if err = drv.TestUnitReady(); !scsi.IsUnitAttention(err) {
				break
			}
		}
		if !scsi.IsNoMedium(err) || !strings.Contains(err.Error(), "no cartridge in drive") {
			t.Fatalf("TUR on an empty drive: %v", err)
		}
		_, err = drv.Read(make([]byte, 1024), true)
		if !scsi.IsNoMedium(err) || !strings.Contains(err.Error(), "READ(6): NOT READY: no cartridge in drive") {
			t.Fatalf("READ on an empty drive: %v", err)
		}
	})

	t.Run("probe ibm", func(t *testing.T) {
		q, err := drv.Inquiry()
		if err != nil || q.DeviceType != scsi.TypeTape {
			t.Fatalf("%+v %v", q, err)
		}
		p, err := drv.Probe()
		if err != nil {
			t.Fatal(err)
		}
		if !p.AME || p.KeySize != 32 || p.MaxUKAD < 16 || p.Algorithm == nil || p.Algorithm.Algorithm != scsi.AlgorithmAES256GCM {
			t.Fatalf("%s", p)
		}
		// The index is the DEC descriptor's, not a constant.
		found := false
		for _, a := range p.Capabilities.Algorithms {
			found = found || (a.Index == p.AlgorithmIndex && a.IsAES256GCMHardware())
		}
		if !found {
			t.Fatalf("algorithm index %d not from DEC %s", p.AlgorithmIndex, p.Capabilities)
		}
		js, err := json.Marshal(p)
		if err != nil || !strings.Contains(string(js), `"ame":true`) {
			t.Fatalf("%s %v", js, err)
		}
	})

	var ea *scsi.ElementAddressAssignment
	t.Run("changer inventory", func(t *testing.T) {
		var err error
		ea, err = ch.ElementAddresses()
		if err != nil {
			t.Fatal(err)
		}
		if ea.NumStorage != 8 || ea.NumDataTransfer != 3 || ea.NumTransport < 1 {
			t.Fatalf("%+v", ea)
		}
		els, err := ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		counts := map[scsi.ElementType]int{}
		for _, e := range els {
			counts[e.Type]++
		}
		if counts[scsi.ElementStorage] != int(ea.NumStorage) || counts[scsi.ElementDataTransfer] != int(ea.NumDataTransfer) ||
			counts[scsi.ElementTransport] != int(ea.NumTransport) || counts[scsi.ElementImportExport] != int(ea.NumImportExport) {
			t.Fatalf("element counts %v vs page 0x1D %+v", counts, ea)
		}
		st := panelStatus(t)
		if len(st.Slots) != 8 {
			t.Fatalf("vtl status: %d slots", len(st.Slots))
		}
		for _, s := range st.Slots {
			e, ok := find(els, scsi.ElementStorage, uint16(s.Address))
			if !ok || e.VolumeTag != s.Barcode || e.Full != (s.Barcode != "") {
				t.Errorf("slot %d at 0x%04X: READ ELEMENT STATUS says %v, vtl status says %q", s.Slot, s.Address, e, s.Barcode)
			}
			if s.Barcode == "" {
				t.Errorf("slot %d has no cartridge on a fresh library", s.Slot)
			}
		}
		// DVCID identifies each drive as its own INQUIRY/VPD 0x80 do.
		q, err := drv.Inquiry()
		if err != nil {
			t.Fatal(err)
		}
		sn, err := drv.SerialNumber()
		if err != nil {
			t.Fatal(err)
		}
		d0, ok := find(els, scsi.ElementDataTransfer, ea.FirstDataTransfer)
		if !ok || d0.Full || d0.DeviceID == nil || d0.DeviceID.Vendor != q.Vendor || d0.DeviceID.Product != q.Product || d0.DeviceID.Serial != sn {
			t.Fatalf("drive 0 element %v (%+v) vs INQUIRY %s serial %q", d0, d0.DeviceID, q, sn)
		}
	})
	if ea == nil {
		t.FailNow()
	}

	slot1 := ea.FirstStorage
	var barcode string
	t.Run("move medium", func(t *testing.T) {
		els, err := ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := find(els, scsi.ElementStorage, slot1)
		barcode = s.VolumeTag
		if err := ch.MoveMedium(0, slot1, ea.FirstDataTransfer); err != nil {
			t.Fatal(err)
		}
		els, err = ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		s, _ = find(els, scsi.ElementStorage, slot1)
		d0, _ := find(els, scsi.ElementDataTransfer, ea.FirstDataTransfer)
		if s.Full || !d0.Full || d0.VolumeTag != barcode || !d0.SValid || d0.Source != slot1 {
			t.Fatalf("after move: slot %v, drive %v", s, d0)
		}
		// Moving into a full drive / from an empty slot fails with the SMC codes.
		err = ch.MoveMedium(0, slot1, ea.FirstDataTransfer+1)
		if sn, ok := scsi.SenseOf(err); !ok || sn.Code() != scsi.ASCMediumSourceEmpty {
			t.Fatalf("move from empty slot: %v", err)
		}
		waitReady(t, drv)
	})

	key := make([]byte, 32)
	rand.Read(key)
	ukad := []byte("fp:3f9a61c0d2e4b857")
	label := bytes.Repeat([]byte("VOL1"), 20)
	data := make([]byte, 256<<10)
	rand.Read(data)

	t.Run("clear label then encrypted data", func(t *testing.T) {
		if err := drv.Rewind(false); err != nil {
			t.Fatal(err)
		}
		if _, err := drv.Clear(); err != nil {
			t.Fatal(err)
		}
		if _, err := drv.Write(label); err != nil {
			t.Fatal(err)
		}
		if _, err := drv.WriteFilemarks(1, false); err != nil {
			t.Fatal(err)
		}
		before, err := drv.Status()
		if err != nil {
			t.Fatal(err)
		}
		st, err := drv.SetKey(key, scsi.SetKeyOpts{UKAD: ukad})
		if err != nil {
			t.Fatal(err)
		}
		if st.EncryptionMode != scsi.EncryptOn || st.DecryptionMode != scsi.DecryptMixed || st.KeyInstanceCounter == before.KeyInstanceCounter {
			t.Fatalf("DES after set: %s (before: %s)", st, before)
		}
		if u, ok := scsi.UKAD(st.KADs); ok && !bytes.Equal(u, ukad) {
			t.Fatalf("DES U-KAD %q", u)
		}
		for i := 0; i < 3; i++ {
			if _, err := drv.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := drv.WriteFilemarks(1, false); err != nil {
			t.Fatal(err)
		}
		pos, err := drv.ReadPosition()
		if err != nil || pos.Block != 6 || pos.File != 2 {
			t.Fatalf("position after writing: %v %v", pos, err)
		}
		if _, err := drv.VerifyEncrypted(2, ukad); err != nil {
			t.Fatalf("honest drive: %v", err)
		}
		if _, err := drv.VerifyEncrypted(0, nil); !scsi.IsNotEncrypted(err) {
			t.Fatalf("the clear label passed as encrypted: %v", err)
		}
	})

	t.Run("read back and next block status", func(t *testing.T) {
		if err := drv.Rewind(false); err != nil {
			t.Fatal(err)
		}
		n, err := drv.NextBlockStatus()
		if err != nil || n.Status != scsi.BlockStatusNotEncrypted {
			t.Fatalf("NBES at the label: %v %v", n, err)
		}
		buf := make([]byte, 1<<20)
		r, err := drv.Read(buf, true)
		if err != nil || r.N != len(label) || !bytes.Equal(buf[:r.N], label) {
			t.Fatalf("label read: %+v %v", r, err)
		}
		r, err = drv.Read(buf, true)
		if err != nil || !r.Filemark {
			t.Fatalf("expected the filemark: %+v %v", r, err)
		}
		n, err = drv.NextBlockStatus()
		if err != nil || n.Status != scsi.BlockStatusDecryptable || !n.Status.Encrypted() {
			t.Fatalf("NBES at data: %v %v", n, err)
		}
		if u, ok := scsi.UKAD(n.KADs); !ok || !bytes.Equal(u, ukad) {
			t.Fatalf("NBES U-KAD: %v", n)
		}
		r, err = drv.Read(buf, true)
		if err != nil || r.N != len(data) || !bytes.Equal(buf[:r.N], data) {
			t.Fatalf("encrypted block read: %+v %v", r, err)
		}
		// Without SILI a short block comes back as ILI, as a value.
		r, err = drv.Read(buf, false)
		if err != nil || !r.Short || r.N != len(data) || !bytes.Equal(buf[:r.N], data) {
			t.Fatalf("ILI read: %+v %v", r, err)
		}
		// LOCATE + READ POSITION.
		if err := drv.Locate(scsi.LocateBlock, 4); err != nil {
			t.Fatal(err)
		}
		pos, err := drv.ReadPosition()
		if err != nil || pos.Block != 4 || pos.File != 1 {
			t.Fatalf("after LOCATE 4: %v %v", pos, err)
		}
		// An over-length block: only the buffer's worth arrives, the block's
		// real size is reported, and the position moves past it.
		small := make([]byte, 1000)
		r, err = drv.Read(small, false)
		if err != nil || !r.Overlength || r.N != 1000 || r.BlockLen != len(data) || !bytes.Equal(small, data[:1000]) {
			t.Fatalf("over-length read at 4: %+v %v", r, err)
		}
		r, err = drv.Read(buf, true)
		if err != nil || !r.Filemark {
			t.Fatalf("second filemark: %+v %v", r, err)
		}
		r, err = drv.Read(buf, true)
		if err != nil || !r.EOD {
			t.Fatalf("EOD: %+v %v", r, err)
		}
		sp, err := drv.Space(scsi.SpaceFilemarks, -2)
		if err != nil || sp.Residual != 0 {
			t.Fatalf("space back 2 filemarks: %+v %v", sp, err)
		}
		// Descriptor-format sense (Control page D_SENSE=1): same outcomes.
		if err := setDSense(drv, true); err != nil {
			t.Fatal(err)
		}
		if err := drv.Locate(scsi.LocateBlock, 5); err != nil {
			t.Fatal(err)
		}
		r, err = drv.Read(buf, true)
		if err != nil || !r.Filemark {
			t.Fatalf("filemark with descriptor sense: %+v %v", r, err)
		}
		r, err = drv.Read(buf, true)
		if err != nil || !r.EOD {
			t.Fatalf("EOD with descriptor sense: %+v %v", r, err)
		}
	})

	t.Run("clear and wrong key", func(t *testing.T) {
		st, err := drv.Clear()
		if err != nil || !st.Cleared() {
			t.Fatalf("clear: %v %v", st, err)
		}
		st, err = drv.Status()
		if err != nil || st.EncryptionMode != scsi.EncryptDisable || st.DecryptionMode != scsi.DecryptDisable {
			t.Fatalf("DES after clear: %v %v", st, err)
		}
		if err := drv.Locate(scsi.LocateBlock, 2); err != nil {
			t.Fatal(err)
		}
		n, err := drv.NextBlockStatus()
		if err != nil || n.Status != scsi.BlockStatusNoKey {
			t.Fatalf("NBES without key: %v %v", n, err)
		}
		_, err = drv.Read(make([]byte, 1<<20), true)
		if sn, ok := scsi.SenseOf(err); !ok || sn.Key != scsi.SenseDataProtect || sn.Code() != scsi.ASCUnableToDecrypt {
			t.Fatalf("read without key: %v", err)
		}
		other := make([]byte, 32)
		rand.Read(other)
		if _, err := drv.SetKey(other, scsi.SetKeyOpts{}); err != nil {
			t.Fatal(err)
		}
		_, err = drv.Read(make([]byte, 1<<20), true)
		if sn, ok := scsi.SenseOf(err); !ok || sn.Code() != scsi.ASCIncorrectEncryptionKey || !strings.Contains(err.Error(), "incorrect data encryption key (74/03)") || sn.Format != scsi.SenseDescriptor {
			t.Fatalf("read with the wrong key: %v", err)
		}
		if err := setDSense(drv, false); err != nil {
			t.Fatal(err)
		}
		for _, k := range [][]byte{key, other} {
			if strings.Contains(strings.ToLower(err.Error()), fmt.Sprintf("%x", k[:6])) {
				t.Fatal("key material in an error")
			}
		}
		if _, err := drv.Clear(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drive queries", func(t *testing.T) {
		l, err := drv.ReadBlockLimits()
		if err != nil || l.Max < 1<<20 || l.Min < 1 {
			t.Fatalf("block limits %+v %v", l, err)
		}
		m, err := drv.ModeSense(false, scsi.PageControlCurrent, 0x0F, 0)
		if err != nil || len(m.BlockDescriptors) != 1 || m.BlockDescriptors[0].BlockLength != 0 {
			t.Fatalf("mode sense: %+v %v", m, err)
		}
		if p, ok := m.Page(0x0F); !ok || len(p.Data) != 16 {
			t.Fatalf("compression page: %+v", m.Pages)
		}
		ids, err := drv.DeviceIdentification()
		if err != nil || len(ids) == 0 {
			t.Fatalf("VPD 0x83: %v %v", ids, err)
		}
		q, _ := drv.Inquiry()
		hasT10 := false
		for _, id := range ids {
			hasT10 = hasT10 || (id.Type == 1 && strings.HasPrefix(string(id.Value), fmt.Sprintf("%-8s%-16s", q.Vendor, q.Product)))
		}
		if !hasT10 {
			t.Fatalf("no T10 vendor ID designator matching INQUIRY in %v", ids)
		}
		// MODE SELECT: toggle DCE in the compression page and read it back.
		cp, _ := m.Page(0x0F)
		dce := cp.Data[2]&0x80 != 0
		sel := append([]byte{0, 0, 0, 8}, 0x5A, 0, 0, 0, 0, 0, 0, 0)
		page := append([]byte(nil), cp.Data...)
		page[0] &^= 0x80
		page[2] ^= 0x80
		sel = append(sel, page...)
		sel[4] = m.BlockDescriptors[0].Density
		if err := drv.ModeSelect6(sel, false); err != nil {
			t.Fatalf("MODE SELECT: %v", err)
		}
		m2, err := drv.ModeSense6(false, scsi.PageControlCurrent, 0x0F, 0)
		if err != nil {
			t.Fatal(err)
		}
		if cp2, ok := m2.Page(0x0F); !ok || (cp2.Data[2]&0x80 != 0) == dce {
			t.Fatalf("DCE not toggled: %+v", m2.Pages)
		}
		if _, err := drv.TapeAlerts(); err != nil {
			t.Fatalf("TapeAlert: %v", err)
		}
		if err := ch.InitializeElementStatus(); err != nil {
			t.Fatalf("INITIALIZE ELEMENT STATUS: %v", err)
		}
	})

	t.Run("unload and put back", func(t *testing.T) {
		if err := drv.PreventMediumRemoval(true); err != nil {
			t.Fatal(err)
		}
		err := drv.Unload()
		if sn, ok := scsi.SenseOf(err); !ok || sn.Code() != scsi.ASCMediumRemovalPrevented {
			t.Fatalf("UNLOAD while prevented: %v", err)
		}
		if err := drv.PreventMediumRemoval(false); err != nil {
			t.Fatal(err)
		}
		if err := drv.Unload(); err != nil {
			t.Fatal(err)
		}
		if err := ch.MoveMedium(0, ea.FirstDataTransfer, slot1); err != nil {
			t.Fatal(err)
		}
		els, err := ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := find(els, scsi.ElementStorage, slot1)
		if !s.Full || s.VolumeTag != barcode {
			t.Fatalf("slot 1 after return: %v", s)
		}
		if err := drv.TestUnitReady(); !scsi.IsNoMedium(err) {
			t.Fatalf("TUR after unload: %v", err)
		}
	})
}

// BenchmarkTransfer measures WRITE/READ throughput through the vtl socket
// transport, per block size, with drive encryption off and on.
func BenchmarkTransfer(b *testing.B) {
	d := ensureLoaded(b, 2)
	if _, err := d.Probe(); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	for _, enc := range []bool{false, true} {
		if enc {
			if _, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: []byte("bench")}); err != nil {
				b.Fatal(err)
			}
		} else if _, err := d.Clear(); err != nil {
			b.Fatal(err)
		}
		mode := "clear"
		if enc {
			mode = "encrypted"
		}
		for _, size := range []int{256 << 10, 1 << 20} {
			block := make([]byte, size)
			rand.Read(block)
			b.Run(fmt.Sprintf("write/%s/%dKiB", mode, size>>10), func(b *testing.B) {
				if err := d.Rewind(false); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					w, err := d.Write(block)
					if err != nil {
						b.Fatal(err)
					}
					if w.EarlyWarning {
						b.StopTimer()
						if err := d.Rewind(false); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
				}
			})
			b.Run(fmt.Sprintf("read/%s/%dKiB", mode, size>>10), func(b *testing.B) {
				const blocks = 32
				if err := d.Rewind(false); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < blocks; i++ {
					if _, err := d.Write(block); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := d.WriteFilemarks(1, false); err != nil {
					b.Fatal(err)
				}
				if err := d.Rewind(false); err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r, err := d.Read(buf, true)
					if err != nil {
						b.Fatal(err)
					}
					if r.Filemark || r.EOD {
						b.StopTimer()
						if err := d.Rewind(false); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
						i--
						continue
					}
					if r.N != size {
						b.Fatalf("read %d bytes, want %d", r.N, size)
					}
				}
			})
		}
	}
	if _, err := d.Clear(); err != nil {
		b.Fatal(err)
	}
}
