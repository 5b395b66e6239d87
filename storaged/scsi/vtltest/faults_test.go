package vtltest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// fault sets (spec "UNIT:KEY=VALUE,…") a vtl fault switch for the test and
// clears it afterwards.
func fault(t testing.TB, spec string) {
	t.Helper()
	if out, err := exec.Command(vtlBin, "fault", "--socket", sockets, spec).CombinedOutput(); err != nil {
		t.Fatalf("vtl fault %s: %v\n%s", spec, err, out)
	}
	unit, _, _ := strings.Cut(spec, ":")
	t.Cleanup(func() { exec.Command(vtlBin, "fault", "--socket", sockets, unit+":none").Run() })
}

// TestInventoryShortElementStatus: a changer whose READ ELEMENT STATUS is
// 8 bytes shorter than its byte count (tgt, finding 6). Every drive is
// still in the inventory, the first with its DVCID identifier; the last
// drive's identifier, which the cut took, is absent rather than wrong.
func TestInventoryShortElementStatus(t *testing.T) {
	fault(t, "changer:short_element_status=8")
	ch := open(t, "changer")
	ch.DrainUnitAttentions()
	els, err := ch.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	var drives []scsi.Element
	slots := 0
	for _, e := range els {
		switch e.Type {
		case scsi.ElementDataTransfer:
			drives = append(drives, e)
		case scsi.ElementStorage:
			slots++
		}
	}
	if len(drives) != 3 || slots != 8 {
		t.Fatalf("inventory of a short-answering changer: %d drives, %d slots (want 3 and 8): %v", len(drives), slots, els)
	}
	if drives[0].DeviceID == nil || drives[0].DeviceID.Serial != "TWDRV00000" || drives[2].Address != drives[0].Address+2 {
		t.Fatalf("drives %v", drives)
	}
	if id := drives[2].DeviceID; id != nil && id.Serial != "TWDRV00002" {
		t.Fatalf("last drive's identifier %+v", id)
	}
}
