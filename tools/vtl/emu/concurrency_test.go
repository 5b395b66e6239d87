package emu

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// Many clients at once: two writers per drive on separate nexuses, a reader
// of status pages and the changer's element status, all interleaved; every
// drive serializes its commands, so each writer's blocks read back intact.
func TestManyClients(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.Capacity = 64 << 20 })
	h.load(1, 0)
	h.load(2, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for drive := range 2 {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := vtlwire.Dial(h.sock, fmt.Sprintf("drive%d", drive))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				for range 30 {
					cmd := &scsi.Command{CDB: tur(), Timeout: time.Minute}
					if r, err := c.Do(cmd); err != nil || r.Status == 0 {
						break
					}
				}
				blk := pattern(8192+w, byte(drive*2+w))
				for i := range 50 {
					cmd := &scsi.Command{CDB: write6(len(blk)), Dir: scsi.DirToDevice, Data: blk, Timeout: time.Minute}
					r, err := c.Do(cmd)
					if err != nil || r.Status != 0 {
						errs <- fmt.Errorf("drive%d writer %d block %d: %v %+v", drive, w, i, err, r)
						return
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := vtlwire.Dial(h.sock, "changer")
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		for range 100 {
			cmd := &scsi.Command{CDB: res8(0, true, true, 0, 1000), Dir: scsi.DirFromDevice, Data: make([]byte, 4096), Timeout: time.Minute}
			if _, err := c.Do(cmd); err != nil {
				errs <- err
				return
			}
			h.lib.Status()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every block on each tape is one writer's block, intact.
	for drive := range 2 {
		c := h.dial(fmt.Sprintf("drive%d", drive))
		drainUA(t, c)
		must(t, c, rewind(), nil, 0)
		count := 0
		for {
			r := run(t, c, read6(16384, true), nil, 16384)
			if r.skey() == "8/00/05" {
				break
			}
			if r.status != 0 {
				t.Fatalf("drive%d read: %s", drive, r.skey())
			}
			w := len(r.data) - 8192
			if w < 0 || w > 1 || !bytes.Equal(r.data, pattern(8192+w, byte(drive*2+w))) {
				t.Fatalf("drive%d block %d corrupt", drive, count)
			}
			count++
		}
		if count != 100 {
			t.Fatalf("drive%d: %d blocks, want 100", drive, count)
		}
	}
}
