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
	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
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

	t.Run("CHAP", func(t *testing.T) {
		tg := srv.AddTape(t, "chap", 8)
		const secret = "s3cret-of-twelve+"
		srv.CHAP(t, tg, "backup", secret, "", "")
		good := writeSecret(t, secret)
		tr := dial(t, strings.Replace(tg.Drive, "iscsi://", "iscsi://backup@", 1), iscsi.Options{CHAPSecretFile: good})
		if _, err := scsi.NewDevice(tr).Inquiry(); err != nil {
			t.Fatal(err)
		}
		tr.Close()

		a, _ := iscsi.ParseAddress(strings.Replace(tg.Drive, "iscsi://", "iscsi://backup@", 1))
		const wrongSecret = "not-the-secret-123"
		_, err := iscsi.Dial(context.Background(), a, iscsi.Options{CHAPSecretFile: writeSecret(t, wrongSecret)})
		if !errors.Is(err, iscsiwire.ErrLogin) || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), "CHAP user name and secret") {
			t.Fatalf("CHAP with a wrong secret: %v, want the clear refusal", err)
		}
		t.Log(err)
		if strings.Contains(err.Error(), wrongSecret) || strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows a secret: %v", err)
		}
		a.User = ""
		_, err = iscsi.Dial(context.Background(), a, iscsi.Options{})
		if !errors.Is(err, iscsiwire.ErrLogin) || !strings.Contains(err.Error(), "CHAP secret file") {
			t.Fatalf("no CHAP to a target requiring it: %v, want the refusal naming the CHAP secret file setting", err)
		}
		t.Log(err)
	})

	t.Run("MutualCHAP", func(t *testing.T) {
		tg := srv.AddTape(t, "mutual", 8)
		srv.CHAP(t, tg, "mutual-in", "initiator-secret-1", "mutual-out", "target-secret-22")
		addr := strings.Replace(tg.Drive, "iscsi://", "iscsi://mutual-in@", 1)
		o := iscsi.Options{CHAPSecretFile: writeSecret(t, "initiator-secret-1"), TargetCHAPSecretFile: writeSecret(t, "target-secret-22")}
		tr := dial(t, addr, o)
		if _, err := scsi.NewDevice(tr).Inquiry(); err != nil {
			t.Fatal(err)
		}
		a, _ := iscsi.ParseAddress(addr)
		o.TargetCHAPSecretFile = writeSecret(t, "not-the-target-secret")
		if _, err := iscsi.Dial(context.Background(), a, o); err == nil || !strings.Contains(err.Error(), "failed mutual CHAP") {
			t.Fatalf("a target that does not know our target secret: %v, want the mutual CHAP refusal", err)
		}
	})

	t.Run("Changer", func(t *testing.T) {
		tg := srv.AddLibrary(t, "lib", tgttest.Library{Slots: 3})
		ch, _ := device(t, tg.Changer, iscsi.Options{})
		els, err := ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		var drive, slot1 *scsi.Element
		for i := range els {
			switch {
			case els[i].Type == scsi.ElementDataTransfer:
				drive = &els[i]
			case els[i].Type == scsi.ElementStorage && els[i].Address == 1024:
				slot1 = &els[i]
			}
		}
		if drive == nil || drive.Full || slot1 == nil || !slot1.Full || slot1.VolumeTag != "TWL001" {
			t.Fatalf("inventory %+v: want an empty drive and TWL001 in slot 1024", els)
		}
		if err := ch.MoveMedium(16, 1024, drive.Address); err != nil {
			t.Fatal(err)
		}
		els, err = ch.Inventory()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range els {
			if e.Type == scsi.ElementDataTransfer && (!e.Full || e.VolumeTag != "TWL001") {
				t.Fatalf("after MOVE MEDIUM the drive is %+v, want TWL001 loaded", e)
			}
		}
		d, _ := device(t, tg.Drive, iscsi.Options{})
		writeReadBack(t, d)
	})

	t.Run("ReserveConflict", func(t *testing.T) {
		// tgt implements SPC-2 RESERVE(6) for disks (not for its tape and
		// changer emulation): a disk LUN judges our reservation handling.
		tg := srv.AddDisk(t, "resv", 1)
		first := dial(t, tg.Disk, iscsi.Options{})
		if !first.Reserved() {
			t.Fatalf("the first initiator does not hold the reservation")
		}
		a, _ := iscsi.ParseAddress(tg.Disk)
		_, err := iscsi.Dial(context.Background(), a, iscsi.Options{})
		var busy *scsi.BusyDeviceError
		if !errors.As(err, &busy) || busy.Addr != tg.Disk || !scsi.IsBusy(err) {
			t.Fatalf("a second initiator: %v, want a *scsi.BusyDeviceError naming %s", err, tg.Disk)
		}
		t.Log(err)
		shared := dial(t, tg.Disk, iscsi.Options{Shared: true})
		if shared.Reserved() {
			t.Fatal("a shared transport holds a reservation")
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		second := dial(t, tg.Disk, iscsi.Options{})
		if !second.Reserved() {
			t.Fatal("after the first closed (RELEASE), the second initiator could not reserve")
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		// This tgtd sends logins for the target to a second one, where
		// the target of the same name has its tape (on 127.0.0.2: tgt
		// does not redirect an initiator to its own address).
		other := tgttest.StartOn(t, "127.0.0.2")
		here := srv.AddTape(t, "redir", 8)
		there := other.AddTape(t, "redir", 8)
		host, port, _ := strings.Cut(other.Portal, ":")
		srv.Param(t, here, "RedirectAddress", host)
		srv.Param(t, here, "RedirectPort", port)
		srv.Param(t, here, "RedirectReason", "Temporary")
		d, _ := device(t, here.Drive, iscsi.Options{})
		block := bytes.Repeat([]byte("redirected"), 100)
		if err := d.Rewind(false); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Write(block); err != nil {
			t.Fatal(err)
		}
		d.Close()
		d, _ = device(t, there.Drive, iscsi.Options{})
		d.Rewind(false)
		buf := make([]byte, 4096)
		if r, err := d.Read(buf, true); err != nil || !bytes.Equal(buf[:r.N], block) {
			t.Fatalf("the block written through the redirected login is not on the second tgtd's tape: %d bytes, %v", r.N, err)
		}
	})

	t.Run("LUNReset", func(t *testing.T) {
		tg := srv.AddTape(t, "reset", 8)
		d, tr := device(t, tg.Drive, iscsi.Options{})
		if err := d.TestUnitReady(); err != nil {
			t.Fatal(err)
		}
		if err := tr.LUNReset(); err != nil {
			t.Fatal(err)
		}
		seen, err := d.DrainUnitAttentions()
		if err != nil || len(seen) == 0 {
			t.Fatalf("after LUN RESET: unit attentions %v, %v; want one", seen, err)
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

// TestTgtRestart: the connection lost with a command in flight (its
// answer held back, then every connection cut) fails that command with
// its outcome unknown, not resent; with tgtd down the next command fails
// unsent; once tgtd is back, the next command logs in again (same ISID:
// session reinstatement) and sees the unit attention of the new nexus;
// tgtd killed while the transport is idle is noticed by the idle reader,
// so the next command is not sent into the dead connection.
func TestTgtRestart(t *testing.T) {
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "restart", 8)
	px := newStallProxy(t, srv.Portal)
	d, tr := device(t, strings.Replace(tg.Drive, srv.Portal, px.l.Addr().String(), 1), iscsi.Options{})
	block := bytes.Repeat([]byte("tapeward"), 1000)
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(block); err != nil {
		t.Fatal(err)
	}

	px.hold()
	before := px.fromIn.Load()
	errc := make(chan error, 1)
	go func() { _, err := d.Write(block[:4000]); errc <- err }()
	waitUntil(t, "the WRITE to reach tgt", func() bool { return px.fromIn.Load() >= before+48+4000 })
	px.cut()
	err := <-errc
	px.release()
	if !iscsi.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), "outcome is unknown") || !strings.Contains(err.Error(), "not resent") {
		t.Fatalf("WRITE whose answer was lost: %v, want a clear outcome-unknown error", err)
	}
	t.Log(err)

	srv.Kill(t)
	err = d.TestUnitReady()
	if err == nil || iscsi.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("TEST UNIT READY while tgtd is down: %v, want a not-sent error", err)
	}
	t.Log(err)

	srv.Start(t)
	seen, err := d.DrainUnitAttentions()
	if err != nil || len(seen) == 0 {
		t.Fatalf("after tgtd came back: unit attentions %v, %v; want the new nexus reported", seen, err)
	}
	if n := tr.Stats().Logins; n != 2 {
		t.Fatalf("%d logins, want 2 (the first and one reinstatement)", n)
	}
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	r, err := d.Read(buf, true)
	if err != nil || !bytes.Equal(buf[:r.N], block) {
		t.Fatalf("reading back the block written before the crash: %d bytes, %v", r.N, err)
	}

	// Killed while idle: the idle reader sees the connection close, so the
	// next command is refused unsent rather than lost in flight.
	if !tr.Connected() {
		t.Fatal("not connected after a successful READ")
	}
	srv.Kill(t)
	waitUntil(t, "the idle reader to notice the closed connection", func() bool { return !tr.Connected() })
	err = d.TestUnitReady()
	if err == nil || iscsi.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("TEST UNIT READY after tgtd died under an idle session: %v, want a not-sent error", err)
	}
}

// TestTgtIdlePings: tgt pings an idle connection every second with
// NOP-In and drops it after two unanswered; the idle reader answers, so
// the session outlives several pings and the next command goes out on it.
func TestTgtIdlePings(t *testing.T) {
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "nop", 8)
	srv.Param(t, tg, "nop_interval", "1")
	srv.Param(t, tg, "nop_count", "2")
	d, tr := device(t, tg.Drive, iscsi.Options{})
	waitUntil(t, "three NOP-In pings answered (tgt drops the connection after two unanswered)", func() bool { return tr.Stats().NOPIns >= 3 })
	if err := d.TestUnitReady(); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Logins != 1 {
		t.Fatalf("stats %+v: want the first session kept", st)
	}
}

// waitUntil polls ok (every millisecond, 30 s at most).
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
