package emu

import (
	"io"
	"os"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// fuzzLib builds an in-process library (no socket: the fuzzers exercise the
// request → response path directly) with a cartridge in drive0 holding a
// plain block, a filemark and an encrypted block.
func fuzzLib(f *testing.F, mod func(*Config)) *Library {
	dir := f.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "vtlfuzz"); err == nil {
			dir = d
			f.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	cfg := Config{Dir: dir, Slots: 3, Drives: 2, Capacity: 4 << 20}
	if mod != nil {
		mod(&cfg)
	}
	lib, err := NewLibrary(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { lib.Close() })
	lib.PanelLoad(1, 0)
	d := lib.Drive(0)
	nx := newNexus(0)
	d.attach(nx)
	for _, r := range []struct {
		cdb  []byte
		data []byte
	}{
		{tur(), nil}, {write6(10), pattern(10, 1)}, {wfm(1), nil},
		{spoutCDB(52), sde(0x40, 0, 2, 3, testKey(1))}, {write6(20), pattern(20, 2)}, {rewind(), nil},
	} {
		dir := scsi.DirNone
		if r.data != nil {
			dir = scsi.DirToDevice
		}
		d.Exec(nx, &vtlwire.Request{Dir: dir, CDB: r.cdb, DataOut: r.data})
	}
	return lib
}

// checkResponse asserts the wire invariants of any answer.
func checkResponse(t *testing.T, req *vtlwire.Request, resp vtlwire.Response) {
	if len(resp.DataIn) > req.AllocLen {
		t.Fatalf("data-in %d > allocation %d", len(resp.DataIn), req.AllocLen)
	}
	if resp.Status == scsi.StatusCheckCondition && len(resp.Sense) < 8 {
		t.Fatalf("CHECK CONDITION without sense")
	}
	if resp.Status == scsi.StatusGood && len(resp.Sense) != 0 {
		t.Fatalf("GOOD with sense")
	}
	if err := vtlwire.WriteResponse(io.Discard, &resp); err != nil {
		t.Fatalf("unencodable response: %v", err)
	}
}

func fuzzReq(cdb, data []byte, dir byte, alloc uint16) (*vtlwire.Request, bool) {
	if len(cdb) == 0 || len(cdb) > 16 {
		return nil, false
	}
	req := &vtlwire.Request{Dir: scsi.Direction(dir % 3), CDB: cdb}
	switch req.Dir {
	case scsi.DirToDevice:
		req.DataOut = data
	case scsi.DirFromDevice:
		req.AllocLen = int(alloc)
	}
	return req, true
}

func seedCDBs(f *testing.F) {
	for _, c := range [][]byte{
		tur(), rewind(), read6(100, true), read6(10, false), write6(10), wfm(1), space6(0, 1), space6(1, 0xFFFFFF), space6(3, 0),
		readPosLong(), locate16(0, 1), locate16(1, 1), spin(0x20, 0x20, 100), spin(0x20, 0x21, 100), spin(0, 0, 100),
		spoutCDB(52), {0x12, 1, 0x83, 0, 255, 0}, {0x1A, 0, 0x3F, 0, 255, 0}, {0x5A, 0, 0x10, 0, 0, 0, 0, 1, 0, 0},
		{0x15, 0x10, 0, 0, 12, 0}, {0x4D, 0, 0x6E, 0, 0, 0, 0, 1, 0, 0}, {0x1B, 0, 0, 0, 1, 0}, {0x1B, 0, 0, 0, 8, 0},
		{0x05, 0, 0, 0, 0, 0}, {0x03, 1, 0, 0, 252, 0}, {0x1E, 0, 0, 0, 1, 0}, {0x44, 1, 0, 0, 0, 0, 0, 1, 0, 0},
		{0xB8, 0x10, 0, 0, 3, 0xE8, 1, 0, 0xFF, 0xFF, 0, 0}, {0xA5, 0, 0, 0, 0x10, 0, 0x01, 0x00, 0, 0, 0, 0},
		{0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0}, {0x19, 0, 0, 0, 0, 0}, {0x2B, 0, 0, 0, 0, 0, 1, 0, 0, 0},
		space16(1, 1<<63-1), space16(0, -1<<63), locate16(1, 1<<63-1), locate16(0, 1<<64-1),
	} {
		f.Add(c, pattern(64, 3), byte(1), uint16(4096))
		f.Add(c, []byte{}, byte(2), uint16(4096))
	}
}

func FuzzDriveCommand(f *testing.F) {
	seedCDBs(f)
	lib := fuzzLib(f, nil)
	d := lib.Drive(0)
	f.Fuzz(func(t *testing.T, cdb, data []byte, dir byte, alloc uint16) {
		req, ok := fuzzReq(cdb, data, dir, alloc)
		if !ok {
			return
		}
		// Fault switches, chosen by the input (most inputs: none).
		d.mu.Lock()
		d.faults = Faults{Position: []string{"", "", "zero", "stale"}[alloc%4], PositionPastEW: alloc&4 != 0}
		d.mu.Unlock()
		nx := newNexus(1)
		d.attach(nx)
		defer d.detach(nx)
		checkResponse(t, req, d.Exec(nx, req))
		checkResponse(t, req, d.Exec(nx, req)) // again, past the unit attention
	})
}

func FuzzChangerCommand(f *testing.F) {
	seedCDBs(f)
	lib := fuzzLib(f, nil)
	f.Fuzz(func(t *testing.T, cdb, data []byte, dir byte, alloc uint16) {
		req, ok := fuzzReq(cdb, data, dir, alloc)
		if !ok {
			return
		}
		lib.mu.Lock()
		lib.cfaults = Faults{ShortElementStatus: int(alloc%3) * 8}
		lib.mu.Unlock()
		nx := newNexus(1)
		checkResponse(t, req, lib.ExecChanger(nx, req))
		checkResponse(t, req, lib.ExecChanger(nx, req))
	})
}

// FuzzSPOUT sends arbitrary Set Data Encryption parameter lists (with a
// matching transfer length), then exercises a write and a read with
// whatever parameters were accepted.
func FuzzSPOUT(f *testing.F) {
	f.Add(sde(0x40, 0, 2, 3, testKey(1)))
	f.Add(sde(0x40, 0x40, 2, 2, testKey(1), ukad("Hello world!")))
	f.Add(sde(0x20, 0x24, 2, 1, testKey(1), []byte{1, 0, 0, 3, 'a', 'b', 'c'}))
	f.Add(sde(0x40, 0, 0, 0, make([]byte, 32)))
	f.Add(sde(0x00, 0, 0, 0, nil))
	lib := fuzzLib(f, func(c *Config) { c.DefaultPersonality = "hp" })
	d := lib.Drive(0)
	f.Fuzz(func(t *testing.T, p []byte) {
		nx := newNexus(1)
		d.attach(nx)
		defer d.detach(nx)
		nx.ua = nil
		req := &vtlwire.Request{Dir: scsi.DirToDevice, CDB: spoutCDB(len(p)), DataOut: p}
		checkResponse(t, req, d.Exec(nx, req))
		for _, r := range []*vtlwire.Request{
			{Dir: scsi.DirFromDevice, CDB: spin(0x20, 0x20, 4096), AllocLen: 4096},
			{Dir: scsi.DirToDevice, CDB: write6(16), DataOut: pattern(16, 1)},
			{Dir: scsi.DirNone, CDB: space6(0, 0xFFFFFF)},
			{Dir: scsi.DirFromDevice, CDB: spin(0x20, 0x21, 4096), AllocLen: 4096},
			{Dir: scsi.DirFromDevice, CDB: read6(64, true), AllocLen: 64},
		} {
			checkResponse(t, r, d.Exec(nx, r))
		}
	})
}
