package emu

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// holders are the connections to one unit.
type holders struct {
	conns map[*Conn]struct{}
	excl  bool
}

// Conn is one I_T nexus to one unit of a Library, in process: what one
// socket connection is to the server, without the socket. The server runs
// every connection through a Conn, so both paths behave the same.
type Conn struct {
	lib    *Library
	unit   string
	nx     *Nexus
	exec   func(*Nexus, *vtlwire.Request) vtlwire.Response
	drive  *Drive // nil for the changer
	detach func()
	once   sync.Once
	// alive reports whether the peer still has the connection open (nil:
	// in process, alive until Close).
	alive func() bool
}

// Connect opens a nexus to unit ("drive0", …, "changer"). With
// h.Exclusive it is refused while any other connection holds the unit; a
// unit held exclusively refuses every other connection. Both refusals are
// a *scsi.BusyDeviceError, as O_EXCL opens of an sg node get EBUSY.
func (lib *Library) Connect(h vtlwire.Hello) (*Conn, error) { return lib.connect(h, nil) }

// connect is Connect for a connection whose peer may go away: alive tells.
// A holder whose peer has already closed is released before the new
// connection is judged, as the kernel releases an sg node's O_EXCL when a
// process dies, before anyone can wait for it.
func (lib *Library) connect(h vtlwire.Hello, alive func() bool) (*Conn, error) {
	c := &Conn{lib: lib, unit: h.Unit, alive: alive}
	switch {
	case h.Unit == "changer":
		c.exec = lib.ExecChanger
	default:
		d, err := lib.driveUnit(h.Unit)
		if err != nil {
			return nil, fmt.Errorf("no unit %q (have drive0..drive%d, changer, panel)", h.Unit, len(lib.drives)-1)
		}
		c.exec, c.drive = d.Exec, d
	}
	lib.releaseDead(h.Unit)
	lib.hmu.Lock()
	hs := lib.holders[h.Unit]
	if hs == nil {
		hs = &holders{conns: map[*Conn]struct{}{}}
		lib.holders[h.Unit] = hs
	}
	switch {
	case hs.excl:
		lib.hmu.Unlock()
		return nil, &scsi.BusyDeviceError{Addr: h.Unit, Detail: h.Unit + " is held exclusively by another connection"}
	case h.Exclusive && len(hs.conns) > 0:
		n := len(hs.conns)
		lib.hmu.Unlock()
		return nil, &scsi.BusyDeviceError{Addr: h.Unit, Detail: fmt.Sprintf("%s has %d other connection(s); an exclusive open needs none", h.Unit, n)}
	}
	hs.conns[c] = struct{}{}
	hs.excl = h.Exclusive
	lib.hmu.Unlock()

	c.nx = newNexus(lib.nextID.Add(1))
	if h.Unit == "changer" {
		lib.mu.Lock()
		lib.cnex[c.nx] = struct{}{}
		lib.mu.Unlock()
		c.detach = func() {
			lib.mu.Lock()
			delete(lib.cnex, c.nx)
			delete(lib.cprevent, c.nx)
			if lib.creserved == c.nx {
				lib.creserved = nil
			}
			lib.mu.Unlock()
		}
	} else {
		d, _ := lib.driveUnit(h.Unit)
		d.attach(c.nx)
		c.detach = func() { d.detach(c.nx) }
	}
	return c, nil
}

// connections counts the open connections to unit.
func (lib *Library) connections(unit string) int {
	lib.hmu.Lock()
	defer lib.hmu.Unlock()
	if hs := lib.holders[unit]; hs != nil {
		return len(hs.conns)
	}
	return 0
}

// Unit is the unit name.
func (c *Conn) Unit() string { return c.unit }

// ReadAhead lets a drive read ahead for this nexus once the host has
// the answer to its command (Drive.ReadAhead); a no-op for the changer.
func (c *Conn) ReadAhead(halves [2][]byte, last []byte) {
	if c.drive != nil {
		c.drive.ReadAhead(c.nx, halves, last)
	}
}

// Exec runs one command on the unit. A data phase above the unit's
// MaxTransfer fault is refused with host status DID_ERROR (0x07) and not
// executed. The response's data-in and sense alias the nexus's buffers
// until the next Exec.
// With Config.Trace the command is logged (opcode and key fields, never
// data).
func (c *Conn) Exec(req *vtlwire.Request) vtlwire.Response {
	if mt := c.lib.maxTransfer(c.unit); mt > 0 && max(req.AllocLen, len(req.DataOut)) > mt {
		return vtlwire.Response{HostStatus: 0x07, Resid: int32(req.AllocLen)}
	}
	resp := c.exec(c.nx, req)
	if c.lib.cfg.Trace && len(req.CDB) > 0 {
		attrs := traceAttrs(req.CDB, len(req.DataOut)+req.AllocLen)
		attrs = append(attrs, slog.String("unit", c.unit), slog.Uint64("nexus", c.nx.id), slog.Int("status", int(resp.Status)))
		if len(resp.Sense) >= 14 && resp.Sense[0]&0x7F == 0x70 {
			attrs = append(attrs, slog.String("sense", fmt.Sprintf("%X/%02X/%02X", resp.Sense[2]&0xF, resp.Sense[12], resp.Sense[13])))
		}
		c.lib.log.LogAttrs(context.Background(), slog.LevelInfo, "cdb", attrs...)
	}
	return resp
}

// releaseDead closes the connections to unit whose peers have gone.
func (lib *Library) releaseDead(unit string) {
	var dead []*Conn
	lib.hmu.Lock()
	if hs := lib.holders[unit]; hs != nil {
		for c := range hs.conns {
			if c.alive != nil && !c.alive() {
				dead = append(dead, c)
			}
		}
	}
	lib.hmu.Unlock()
	for _, c := range dead {
		c.Close()
	}
}

// Close ends the nexus: LOCAL keys and PREVENT go away, and the unit is
// free for an exclusive open again. Safe to call more than once.
func (c *Conn) Close() {
	c.once.Do(func() {
		c.lib.hmu.Lock()
		if hs := c.lib.holders[c.unit]; hs != nil {
			delete(hs.conns, c)
			hs.excl = false
			if len(hs.conns) == 0 {
				delete(c.lib.holders, c.unit)
			}
		}
		c.lib.hmu.Unlock()
		c.detach()
	})
}

// Transport is a scsi.Transport to one unit of an in-process Library: no
// socket and no process, so storaged's logic can be tested fast against
// the real emulator (tests outside tools/vtl import this; storaged's
// non-test code never does). Not safe for concurrent use.
type Transport struct {
	lib   *Library
	hello vtlwire.Hello
	c     *Conn
}

// Transport opens an in-process transport to unit, exclusively or not.
func (lib *Library) Transport(unit string, exclusive bool) (*Transport, error) {
	h := vtlwire.Hello{Unit: unit, Exclusive: exclusive}
	c, err := lib.Connect(h)
	if err != nil {
		if b, ok := err.(*scsi.BusyDeviceError); ok {
			b.Addr = "vtl-inprocess#" + unit
		}
		return nil, err
	}
	return &Transport{lib: lib, hello: h, c: c}, nil
}

// Addr implements scsi.Transport.
func (t *Transport) Addr() string { return "vtl-inprocess#" + t.hello.Unit }

// MaxTransfer implements scsi.MaxTransferer, as the socket client does.
func (t *Transport) MaxTransfer() int {
	if mt := t.lib.maxTransfer(t.hello.Unit); mt > 0 {
		return mt
	}
	return vtlwire.MaxData
}

// Close implements scsi.Transport: the nexus ends.
func (t *Transport) Close() error {
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
	return nil
}

// Do implements scsi.Transport, checking what the socket protocol checks.
func (t *Transport) Do(cmd *scsi.Command) (scsi.Result, error) {
	if t.c == nil {
		return scsi.Result{}, fmt.Errorf("%s: transport closed", t.Addr())
	}
	if len(cmd.CDB) == 0 || len(cmd.CDB) > 16 {
		return scsi.Result{}, fmt.Errorf("%s: CDB length %d: must be 1..16 bytes", t.Addr(), len(cmd.CDB))
	}
	if mt := t.MaxTransfer(); cmd.Dir != scsi.DirNone && len(cmd.Data) > mt {
		return scsi.Result{}, fmt.Errorf("%s: opcode 0x%02X of %d bytes exceeds the unit's transfer limit of %d bytes per command (ENOMEM on a real adapter)", t.Addr(), cmd.CDB[0], len(cmd.Data), mt)
	}
	req := &vtlwire.Request{Dir: cmd.Dir, CDB: append([]byte(nil), cmd.CDB...), Timeout: cmd.Timeout}
	if req.Timeout == 0 {
		req.Timeout = time.Minute
	}
	switch cmd.Dir {
	case scsi.DirFromDevice:
		req.AllocLen = len(cmd.Data)
	case scsi.DirToDevice:
		req.DataOut = cmd.Data
	}
	resp := t.c.Exec(req)
	res := scsi.Result{Status: resp.Status, HostStatus: resp.HostStatus, Resid: int(resp.Resid)}
	if len(resp.Sense) > 0 {
		res.Sense = append([]byte(nil), resp.Sense...)
	}
	if len(resp.DataIn) > 0 {
		if cmd.Dir != scsi.DirFromDevice || len(resp.DataIn) > len(cmd.Data) {
			return scsi.Result{}, fmt.Errorf("%s: device sent %d data-in bytes for a %s command with a %d-byte buffer", t.Addr(), len(resp.DataIn), cmd.Dir, len(cmd.Data))
		}
		copy(cmd.Data, resp.DataIn)
	}
	return res, nil
}

// OpenDevice opens, exclusively and in process, the unit a device address
// names as storaged's configuration holds it ("vtl:<socket>#drive0",
// "vtl:<socket>#changer"; the socket part is not used), and refuses a
// unit whose INQUIRY device type is not one of types. It has the
// signature of storaged/sd's Options.OpenDevice, so a daemon test can run
// against this Library with no socket and no process; wrap the Device's
// transport with storaged/scsi/scsifault to inject failures:
//
//	open := func(a string, ty ...byte) (*scsi.Device, error) {
//		d, err := lib.OpenDevice(a, ty...)
//		if err == nil {
//			d.T = scsifault.Wrap(d.T, rules...)
//		}
//		return d, err
//	}
func (lib *Library) OpenDevice(address string, types ...byte) (*scsi.Device, error) {
	unit := address
	if i := strings.LastIndexByte(address, '#'); i >= 0 {
		unit = address[i+1:]
	}
	t, err := lib.Transport(unit, true)
	if err != nil {
		return nil, err
	}
	d := scsi.NewDevice(t)
	if len(types) > 0 {
		q, err := d.Inquiry()
		if err != nil {
			t.Close()
			return nil, err
		}
		if !slices.Contains(types, q.DeviceType) {
			t.Close()
			return nil, fmt.Errorf("refusing %s: it is a %s (%s %s), expected a %s", t.Addr(), scsi.DeviceTypeName(q.DeviceType), q.Vendor, q.Product, scsi.DeviceTypeName(types[0]))
		}
	}
	return d, nil
}

// Reset is a LOGICAL UNIT RESET received on this nexus (iSCSI task
// management, or a bus reset): the unit's reservation is released, every
// nexus's PREVENT MEDIUM REMOVAL ends, and every other nexus sees 06/29/00
// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED. Cartridge, position and
// key state stay, as on a drive whose bus was reset.
func (c *Conn) Reset() {
	lib := c.lib
	if c.unit == "changer" {
		lib.mu.Lock()
		lib.creserved = nil
		for nx := range lib.cnex {
			delete(lib.cprevent, nx)
			if nx != c.nx {
				nx.addUA(scsi.ASCPowerOnReset)
			}
		}
		lib.mu.Unlock()
		return
	}
	d, err := lib.driveUnit(c.unit)
	if err != nil {
		return
	}
	d.lock()
	d.reserved = nil
	for nx := range d.nexuses {
		nx.prevent = false
		if nx != c.nx {
			nx.addUA(scsi.ASCPowerOnReset)
		}
	}
	d.mu.Unlock()
}
