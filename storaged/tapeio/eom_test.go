package tapeio

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// fault sets a vtl fault switch ("UNIT:KEY=VALUE,…") on l for the test.
func (l *lib) fault(t testing.TB, spec string) {
	t.Helper()
	if out, err := exec.Command(l.bin, "fault", "--socket", l.sock, spec).CombinedOutput(); err != nil {
		t.Fatalf("vtl fault %s: %v\n%s", spec, err, out)
	}
	unit, _, _ := strings.Cut(spec, ":")
	t.Cleanup(func() { exec.Command(l.bin, "fault", "--socket", l.sock, unit+":none").Run() })
}

// TestEarlyWarningPositionLies: past early warning the drive's READ
// POSITION lies (finding 5; tgt's is a stub). The session still ends as a
// volume full with exact counts — the block that brought early warning is
// on tape and counted in n — and the position problem is a distinct
// *PositionError inside it, not in its place.
func TestEarlyWarningPositionLies(t *testing.T) {
	for _, lie := range []string{"zero", "stale"} {
		t.Run(lie, func(t *testing.T) {
			const bs = 64 << 10
			d := small.mount(t, 11, 1)
			labelled(t, d, bs)
			small.fault(t, "drive1:position="+lie+",position_past_ew=true")
			data := randomData(10 << 20) // whole blocks, written from this buffer
			w, err := NewWriter(d, WriterOptions{BlockSize: bs})
			if err != nil {
				t.Fatal(err)
			}
			n, err := w.Write(data)
			var vf *VolumeFullError
			var pe *PositionError
			if !errors.Is(err, ErrVolumeFull) || !errors.As(err, &vf) || vf.Overflow || vf.FilemarkErr != nil {
				t.Fatalf("Write past early warning: n=%d err=%v; want a volume full", n, err)
			}
			if !errors.As(err, &pe) || !errors.Is(err, ErrPosition) || pe.WantBlock != 2+vf.Blocks+1 || pe.WantFile != 2 {
				t.Fatalf("want the lie diagnosed as a *PositionError inside the volume full: %v (%+v)", err, pe)
			}
			if n == 0 || int64(n) != vf.OnVolume || vf.OnVolume != int64(vf.Blocks)*bs || w.OnTape() != vf.OnVolume || !w.EarlyWarning() {
				t.Fatalf("n=%d, on volume %d, blocks %d, on tape %d: the block the drive accepted must be counted", n, vf.OnVolume, vf.Blocks, w.OnTape())
			}
			if !strings.Contains(err.Error(), "volume full (early warning)") || !strings.Contains(err.Error(), "position report is wrong") {
				t.Fatalf("message: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close after the volume filled: %v", err)
			}
			// What is on tape is exactly the n bytes reported.
			small.fault(t, "drive1:none")
			got, err := readAll(t, d, w.Start(), bs)
			if err != nil || !bytes.Equal(got, data[:n]) {
				t.Fatalf("read back %d bytes (%v), want the %d reported", len(got), err, n)
			}
		})
	}
}

// TestCloseAtEarlyWarningPositionLies: the session's last (partial) block
// brings early warning and the position report then lies: Close says so
// with a *PositionError, and EarlyWarning still tells the caller to change
// volumes.
func TestCloseAtEarlyWarningPositionLies(t *testing.T) {
	const bs = 64 << 10
	d := small.mount(t, 12, 1)
	labelled(t, d, bs)
	// Fill to just before early warning with an honest drive.
	w0, err := NewWriter(d, WriterOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	blk := randomData(bs)
	for {
		pos, err := d.ReadPosition()
		if err != nil {
			t.Fatal(err)
		}
		if pos.BPEW {
			t.Fatal("reached early warning while filling")
		}
		// 8 MiB cartridge, 256 KiB early-warning zone: stop 2 blocks before.
		if w0.OnTape() >= 8<<20-256<<10-3*bs-8*bs {
			break
		}
		if _, err := w0.Write(blk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w0.Close(); err != nil {
		t.Fatal(err)
	}
	small.fault(t, "drive1:position=zero,position_past_ew=true")
	w, err := NewWriter(d, WriterOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	var closeErr error
	for i := 0; ; i++ {
		if i > 20 {
			t.Fatal("no early warning")
		}
		if _, err := w.Write(blk[:bs-1]); err != nil { // stays in the buffer until Close
			t.Fatal(err)
		}
		closeErr = w.Close()
		if w.EarlyWarning() {
			break
		}
		if closeErr != nil {
			t.Fatal(closeErr)
		}
		w, err = NewWriter(d, WriterOptions{BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
	}
	var pe *PositionError
	if !errors.As(closeErr, &pe) || errors.Is(closeErr, ErrVolumeFull) || pe.Got.Block != 0 {
		t.Fatalf("Close at early warning with a lying position: %v", closeErr)
	}
	if w.OnTape() != bs-1 || w.Blocks() != 1 {
		t.Fatalf("on tape %d blocks %d", w.OnTape(), w.Blocks())
	}
}
