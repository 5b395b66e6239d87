package label

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var vtlSock, vtlBin string // socket and binary of the vtl TestMain started

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tapeward-label-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "vtl")
	vtlBin = bin
	if _, err := testenv.Build(filepath.Dir(bin), "tools/vtl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := testenv.ServeVTL(bin, tmp, "--slots", "3", "--drives", "3", "--capacity", "8MiB")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	vtlSock = srv.Socket
	for i := range 3 {
		out, err := exec.Command(bin, "load", "--socket", vtlSock, "--slot", fmt.Sprint(i+1), "--drive", fmt.Sprint(i)).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vtl load: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- vtl log ----\n%s", srv.Log())
	}
	return code
}

// drive opens vtl drive n and waits until it is ready.
func drive(t *testing.T, n int) *scsi.Device {
	t.Helper()
	d, err := dial.OpenDevice(fmt.Sprintf("vtl:%s#drive%d", vtlSock, n), scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := d.TestUnitReady()
		if err == nil {
			return d
		}
		if !scsi.IsBecomingReady(err) && !scsi.IsUnitAttention(err) || time.Now().After(deadline) {
			t.Fatalf("drive%d not ready: %v", n, err)
		}
	}
}

func TestVTLBlankWriteRead(t *testing.T) {
	d := drive(t, 0)
	if _, err := Read(d); !errors.Is(err, ErrBlankTape) {
		t.Fatalf("Read on a blank cartridge: %v, want ErrBlankTape", err)
	}
	l := goldenLabel()
	if err := Write(d, l); err != nil {
		t.Fatal(err)
	}
	pos, err := d.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	if pos.File != 1 || pos.Block != 2 {
		t.Fatalf("after Write: %v, want file 1 block 2", pos)
	}
	got, err := Read(d)
	if err != nil {
		t.Fatal(err)
	}
	got.Version = 0
	if got != l {
		t.Fatalf("read back %+v, want %+v", got, l)
	}
	// The label is followed by a filemark.
	buf := make([]byte, 1<<16)
	r, err := d.Read(buf, true)
	if err != nil || !r.Filemark {
		t.Fatalf("after the label: %+v %v, want a filemark", r, err)
	}

	// With a key loaded (encrypt + mixed) the clear label still reads,
	// and NBES says the label block is not encrypted.
	key := make([]byte, 32)
	rand.Read(key)
	if _, err := d.SetKey(key, scsi.SetKeyOpts{}); err != nil {
		t.Fatal(err)
	}
	defer d.Clear()
	if err := Write(d, l); !errors.Is(err, ErrKeyLoaded) {
		t.Fatalf("Write with a key loaded: %v, want ErrKeyLoaded", err)
	}
	if got, err := Read(d); err != nil || got.Volume != l.Volume {
		t.Fatalf("Read in mixed mode: %+v %v", got, err)
	}
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	n, err := d.NextBlockStatus()
	if err != nil {
		t.Fatal(err)
	}
	if n.Status.Encrypted() {
		t.Fatalf("label block is encrypted: %v", n)
	}
	if _, err := d.Clear(); err != nil {
		t.Fatal(err)
	}
}

func TestVTLForeignAndEncrypted(t *testing.T) {
	d := drive(t, 1)
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	// A foreign first block (an ANSI-like VOL1 label).
	vol1 := []byte("VOL1FOREIGN                                                                    3")
	if _, err := d.Write(vol1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteFilemarks(1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(d); !errors.Is(err, ErrNotTapeward) {
		t.Fatalf("foreign block: %v, want ErrNotTapeward", err)
	}
	// A tape starting with a filemark.
	d.Rewind(false)
	if _, err := d.WriteFilemarks(1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(d); !errors.Is(err, ErrNotTapeward) {
		t.Fatalf("filemark at BOT: %v, want ErrNotTapeward", err)
	}
	// A corrupted Tapeward label.
	blk, _ := Encode(goldenLabel())
	blk[100] ^= 0x20
	d.Rewind(false)
	if _, err := d.Write(blk); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt label: %v, want ErrCorrupt", err)
	}
	// An encrypted first block, read with no key: 74/xx.
	key := make([]byte, 32)
	rand.Read(key)
	if _, err := d.SetKey(key, scsi.SetKeyOpts{}); err != nil {
		t.Fatal(err)
	}
	d.Rewind(false)
	blk, _ = Encode(goldenLabel())
	if _, err := d.Write(blk); err != nil {
		d.Clear()
		t.Fatal(err)
	}
	if _, err := d.Clear(); err != nil {
		t.Fatal(err)
	}
	_, err := Read(d)
	if !errors.Is(err, ErrEncryptedLabel) || !scsi.IsEncryptionError(err) {
		t.Fatalf("encrypted first block: %v, want ErrEncryptedLabel with the 74/xx sense", err)
	}
	if errors.Is(err, ErrNotTapeward) || errors.Is(err, ErrBlankTape) {
		t.Fatalf("encrypted first block error also matches another kind: %v", err)
	}
}
