package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tapeward/tapeward/configs"
)

// At the prompt, a label line that leaves out the slots (with barcodes),
// the storage (two configured) and the pool (no default_pool) is
// completed with questions and numbered menus, as Bareos' console asks;
// an empty answer cancels and sends nothing; answers stay out of the
// history.
func TestPromptAsksForWhatLabelLeavesOut(t *testing.T) {
	e := start(t)
	cfg, err := configs.LoadConsole(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr, screen bytes.Buffer
	c, err := dial(cfg, false, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	h := &history{path: filepath.Join(t.TempDir(), historyName)}
	input := "label barcodes encrypt\r" + "1-3\r" + "7\r" + "2\r" + "Offsite\r" +
		"label slots=4 barcodes\r" + "\r" +
		"quit\r"
	tp := newTermPrompter(iotest.OneByteReader(strings.NewReader(input)), &screen, h)
	c.session(tp, make(chan os.Signal), h)

	e.lines(t, "status director", "label barcodes encrypt slots=1-3 storage=sd2 pool=Offsite", "status director")
	for _, want := range []string{
		"Enter the slots to label (e.g. 1-5): 1-3",
		"The defined Storage resources are:\r\n     1: sd1\r\n     2: sd2\r\nSelect Storage resource (1-2): 7",
		"Please enter a number between 1 and 2 (or an empty line to cancel).\r\nSelect Storage resource (1-2): 2",
		"The defined Pool resources are:\r\n     1: Local\r\n     2: Offsite\r\nSelect Pool resource (1-2): Offsite",
	} {
		if !strings.Contains(screen.String(), want) {
			t.Errorf("the screen lacks %q:\n%q", want, screen.String())
		}
	}
	if !strings.Contains(stderr.String(), "tapectl: cancelled: nothing was sent to the director") {
		t.Errorf("stderr: %q", stderr.String())
	}
	if got := strings.Join(h.lines, "|"); got != "label barcodes encrypt|label slots=4 barcodes|quit" {
		t.Errorf("history %q; the answers must not be in it", got)
	}
}
