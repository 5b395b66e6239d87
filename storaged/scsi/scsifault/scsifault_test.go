package scsifault

import (
	"errors"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// drive returns drive0 of an in-process vtl with a cartridge loaded and
// ready, behind a fault-injecting wrapper.
func drive(t *testing.T) (*scsi.Device, *Transport) {
	t.Helper()
	lib, err := emu.NewLibrary(emu.Config{Dir: t.TempDir(), Slots: 2, Drives: 1, Capacity: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	if err := lib.PanelLoad(1, 0); err != nil {
		t.Fatal(err)
	}
	tr, err := lib.Transport("drive0", true)
	if err != nil {
		t.Fatal(err)
	}
	f := Wrap(tr)
	d := scsi.NewDevice(f)
	t.Cleanup(func() { d.Close() })
	for i := 0; ; i++ {
		err := d.TestUnitReady()
		if err == nil {
			break
		}
		if i > 1000 || !scsi.IsUnitAttention(err) && !scsi.IsBecomingReady(err) {
			t.Fatal(err)
		}
	}
	return d, f
}

func position(t *testing.T, d *scsi.Device) uint64 {
	t.Helper()
	p, err := d.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	return p.Block
}

// TestNthWriteFails: the 2nd WRITE answers MEDIUM ERROR 03/0C/00 without
// reaching the drive; the others are written.
func TestNthWriteFails(t *testing.T) {
	d, f := drive(t)
	f.Add(Rule{Op: scsi.OpWrite6, Nth: 2, Sense: Sense(scsi.SenseMediumError, 0x0C, 0x00)})
	blk := make([]byte, 512)
	if _, err := d.Write(blk); err != nil {
		t.Fatal(err)
	}
	_, err := d.Write(blk)
	s, ok := scsi.SenseOf(err)
	if !ok || s.Key != scsi.SenseMediumError || s.ASC != 0x0C {
		t.Fatalf("2nd WRITE: %v, want 03/0C/00", err)
	}
	if _, err := d.Write(blk); err != nil {
		t.Fatal(err)
	}
	if got := position(t, d); got != 2 {
		t.Fatalf("position %d: the failed WRITE must not have reached the drive", got)
	}
	if h := f.Hits(); len(h) != 1 || h[0].CDB[0] != scsi.OpWrite6 {
		t.Fatalf("hits %+v", h)
	}
}

// TestDrop: DropBefore sends nothing; DropAfter runs the command and loses
// the answer (the filemark is on tape, the caller cannot know).
func TestDrop(t *testing.T) {
	d, f := drive(t)
	f.Add(Rule{Op: scsi.OpWriteFilemarks6, Nth: 1, DropBefore: true})
	if _, err := d.WriteFilemarks(1, false); !errors.Is(err, ErrDropped) || scsi.IsTransportError(err) {
		t.Fatalf("drop before: %v", err)
	}
	if got := position(t, d); got != 0 {
		t.Fatalf("position %d after a command that was never sent", got)
	}
	f.Add(Rule{Op: scsi.OpWriteFilemarks6, Nth: 1, DropAfter: true})
	if _, err := d.WriteFilemarks(1, false); !errors.Is(err, ErrDropped) {
		t.Fatalf("drop after: %v", err)
	}
	if got := position(t, d); got != 1 {
		t.Fatalf("position %d: the dropped-after filemark must be on tape", got)
	}
	// Host status after execution: a *TransportError, fate unknown.
	f.Add(Rule{Op: scsi.OpWrite6, Nth: 1, HostStatus: 0x03})
	if _, err := d.Write(make([]byte, 100)); !scsi.IsTransportError(err) {
		t.Fatalf("DID_TIME_OUT: %v", err)
	}
	if got := position(t, d); got != 2 {
		t.Fatalf("position %d after a timed-out write that ran", got)
	}
}

// TestGateAndStatus: a gated command waits for the test, then gets BUSY;
// every-command rules with Times stop after that many.
func TestGateAndStatus(t *testing.T) {
	d, f := drive(t)
	gate := make(chan struct{})
	f.Add(Rule{Op: scsi.OpTestUnitReady, Gate: gate, Status: scsi.StatusBusy, Times: 2})
	done := make(chan error)
	go func() { done <- d.TestUnitReady() }()
	select {
	case err := <-done:
		t.Fatalf("gated command finished before the gate opened: %v", err)
	default:
	}
	close(gate)
	var se *scsi.StatusError
	if err := <-done; !errors.As(err, &se) || se.Status != scsi.StatusBusy {
		t.Fatalf("gated TUR: %v", err)
	}
	if err := d.TestUnitReady(); !errors.As(err, &se) {
		t.Fatalf("second TUR: %v", err)
	}
	if err := d.TestUnitReady(); err != nil {
		t.Fatalf("third TUR (rule used up): %v", err)
	}
	if d.MaxTransfer() <= 0 {
		t.Fatal("MaxTransfer not forwarded")
	}
	f.Reset()
	f.Add(Rule{Op: AnyOp, Nth: 1, Sense: Sense(scsi.SenseNotReady, 0x3A, 0)})
	if err := d.TestUnitReady(); !scsi.IsNoMedium(err) {
		t.Fatalf("any-op rule: %v", err)
	}
}
