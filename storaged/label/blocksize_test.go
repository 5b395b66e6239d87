package label

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

func fault(t *testing.T, spec string) {
	t.Helper()
	if out, err := exec.Command(vtlBin, "fault", "--socket", vtlSock, spec).CombinedOutput(); err != nil {
		t.Fatalf("vtl fault %s: %v\n%s", spec, err, out)
	}
	unit, _, _ := strings.Cut(spec, ":")
	t.Cleanup(func() { exec.Command(vtlBin, "fault", "--socket", vtlSock, unit+":none").Run() })
}

// TestVTLEffectiveBlockSize: the label records the block size the data
// will really have (finding 4), not the configured one: lowered to the
// transport's largest transfer and to READ BLOCK LIMITS; a configured
// 16 MiB (which configs accepts) is no longer refused.
func TestVTLEffectiveBlockSize(t *testing.T) {
	cases := []struct {
		name       string
		fault      string
		configured int
		want       int
	}{
		{"adapter limit 1 MiB", "drive2:max_transfer=1MiB", 8 << 20, 1 << 20},
		{"block limits 1 MiB (tgt)", "drive2:max_block=1MiB", 8 << 20, 1 << 20},
		{"configured 16 MiB", "", 16 << 20, 8 << 20},
		{"within every limit", "drive2:max_transfer=4MiB", 256 << 10, 256 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.fault != "" {
				fault(t, c.fault)
			}
			d := drive(t, 2)
			l := goldenLabel()
			l.BlockSize = c.configured
			written, err := WriteEffective(d, l)
			if err != nil {
				t.Fatal(err)
			}
			if written.BlockSize != c.want {
				t.Fatalf("WriteEffective returned block size %d, want %d", written.BlockSize, c.want)
			}
			got, err := Read(d)
			if err != nil {
				t.Fatal(err)
			}
			if got.BlockSize != c.want {
				t.Fatalf("the label on tape says %d, want the effective %d", got.BlockSize, c.want)
			}
			if bs, err := d.EffectiveBlockSize(c.configured); err != nil || bs != c.want {
				t.Fatalf("EffectiveBlockSize %d %v", bs, err)
			}
		})
	}
	// Write (no returned label) records the effective size too.
	fault(t, "drive2:max_transfer=1MiB")
	d := drive(t, 2)
	l := goldenLabel()
	l.BlockSize = 8 << 20
	if err := Write(d, l); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(d); err != nil || got.BlockSize != 1<<20 {
		t.Fatalf("Write: %+v %v", got, err)
	}
	// Invalid fields are refused before the drive is asked anything.
	l.Volume = ""
	if _, err := WriteEffective(scsi.NewDevice(nil), l); err == nil || !strings.Contains(err.Error(), "volume name is empty") {
		t.Fatalf("invalid label: %v", err)
	}
}
