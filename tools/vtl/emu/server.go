package emu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// PanelUnit is the hello name of the front-panel unit.
const PanelUnit = "panel"

// PanelRequest is one newline-delimited JSON request on the panel unit.
type PanelRequest struct {
	Op    string `json:"op"` // "status", "load", "unload", "move", "protect", "fault", "stats"
	Slot  int    `json:"slot,omitempty"`
	Drive int    `json:"drive"`
	// From and To are element addresses for "move".
	From int `json:"from,omitempty"`
	To   int `json:"to,omitempty"`
	// On is the write-protect tab state for "protect".
	On bool `json:"on,omitempty"`
	// Unit and Faults for "fault": replace the unit's faults.
	Unit   string  `json:"unit,omitempty"`
	Faults *Faults `json:"faults,omitempty"`
	// Reset for "stats": the counters start again from zero.
	Reset bool `json:"reset,omitempty"`
}

// PanelResponse answers one PanelRequest.
type PanelResponse struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Slot   int     `json:"slot,omitempty"` // unload: where the cartridge went
	Status *Status `json:"status,omitempty"`
	Stats  *Stats  `json:"stats,omitempty"`
}

// Server serves a Library on a listener.
type Server struct {
	lib   *Library
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	done  bool
	// capped says once that the kernel gave data sockets less send
	// buffer than vtlwire.SendBuffer.
	capped sync.Once
}

// NewServer wraps a library.
func NewServer(lib *Library) *Server {
	return &Server{lib: lib, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections until ctx is cancelled or ln fails; then it
// closes every connection and waits for their handlers.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			break
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) handle(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	p, h, err := vtlwire.Accept(c)
	if err != nil {
		if h.Unit != "" {
			vtlwire.WriteHelloReply(c, err.Error())
		}
		return
	}
	defer p.Close()
	if !h.SharedBuffer {
		s.sizeSendBuffer(c) // READ data goes through the socket
	}
	if h.Unit == PanelUnit {
		vtlwire.WriteHelloReply(c, "")
		s.panel(p.Reader(), c)
		return
	}
	conn, err := s.lib.connect(h, peerAlive(c))
	if err != nil {
		msg := err.Error()
		if b, ok := err.(*scsi.BusyDeviceError); ok {
			msg = vtlwire.BusyPrefix + b.Detail
		}
		vtlwire.WriteHelloReply(c, msg)
		return
	}
	defer conn.Close()
	if err := vtlwire.WriteHelloAccept(c, s.lib.maxTransfer(h.Unit)); err != nil {
		return
	}
	// conn.Exec traces the command (--trace), on this path as on iSCSI's.
	s.loop(p, h.Unit, conn)
}

// sizeSendBuffer gives the connection room for a whole READ answer (a
// streaming drive hands over a block from its buffer at once); a kernel
// cap is said once, with how to lift it.
func (s *Server) sizeSendBuffer(c net.Conn) {
	got, err := vtlwire.SizeSendBuffer(c, vtlwire.SendBuffer)
	if err == nil && (got == 0 || got >= vtlwire.SendBuffer) {
		return
	}
	s.capped.Do(func() {
		attrs := []any{"asked", vtlwire.SendBuffer, "granted", got}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		s.lib.log.Info("vtl: data sockets get a smaller send buffer than asked for, so a large READ crosses in several rounds (slower, still correct); run vtl with CAP_NET_ADMIN or raise net.core.wmem_max", attrs...)
	})
}

// loop serves one connection's commands. With a shared data buffer a
// block is read into (and decrypted in) the first half of the buffer's
// device area, whence the initiator copies it: the one copy a DMA
// transfer makes; a drive reads ahead into the half the initiator is not
// copying from.
func (s *Server) loop(p *vtlwire.Peer, unit string, conn *Conn) {
	log := s.lib.log
	nx := conn.nx
	exec := func(_ *Nexus, req *vtlwire.Request) vtlwire.Response { return conn.Exec(req) }
	var halves [2][]byte
	if dev := p.SharedBuffer().Device(); dev != nil {
		half := len(dev) / 2
		halves = [2][]byte{dev[:0:half], dev[half:half:len(dev)]}
		defer func() { nx.buf = nil }() // the buffer is unmapped after this
	}
	for {
		if halves[0] != nil {
			nx.buf = halves[0]
		}
		req, err := p.ReadRequest()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("vtl connection ended", "unit", unit, "err", err)
			}
			return
		}
		resp, ok := s.safeExec(exec, nx, req, unit)
		if !ok {
			return // a bug in vtl: drop this nexus, keep serving the others
		}
		if err := p.WriteResponse(&resp); err != nil {
			return
		}
		if len(resp.DataIn) > 0 {
			conn.ReadAhead(halves, p.LastDataIn())
		}
	}
}

// safeExec runs one command; a panic (a vtl bug) is logged with the CDB
// and ends only this connection. The unit's lock is released by its
// deferred unlock while the panic unwinds.
func (s *Server) safeExec(exec func(*Nexus, *vtlwire.Request) vtlwire.Response, nx *Nexus, req *vtlwire.Request, unit string) (resp vtlwire.Response, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.lib.log.Error("vtl internal error; closing the connection", "unit", unit, "cdb", fmt.Sprintf("% X", req.CDB), "panic", r)
			ok = false
		}
	}()
	return exec(nx, req), true
}

func (s *Server) panel(br *bufio.Reader, c net.Conn) {
	enc := json.NewEncoder(c)
	for {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) == 0 {
			if err != nil {
				return
			}
			continue
		}
		var req PanelRequest
		var resp PanelResponse
		if jerr := json.Unmarshal(line, &req); jerr != nil {
			resp.Error = "bad request: " + jerr.Error()
		} else {
			resp = s.panelOp(req)
		}
		if enc.Encode(&resp) != nil || err != nil {
			return
		}
	}
}

func (s *Server) panelOp(req PanelRequest) PanelResponse {
	lib := s.lib
	switch req.Op {
	case "status":
		st := lib.Status()
		return PanelResponse{OK: true, Status: &st}
	case "load":
		if err := lib.PanelLoad(req.Slot, req.Drive); err != nil {
			return PanelResponse{Error: err.Error()}
		}
		lib.log.Info("panel load", "slot", req.Slot, "drive", req.Drive)
		return PanelResponse{OK: true}
	case "unload":
		slot, err := lib.PanelUnload(req.Drive)
		if err != nil {
			return PanelResponse{Error: err.Error()}
		}
		lib.log.Info("panel unload", "drive", req.Drive, "slot", slot)
		return PanelResponse{OK: true, Slot: slot}
	case "move":
		if err := lib.PanelMove(req.From, req.To); err != nil {
			return PanelResponse{Error: err.Error()}
		}
		lib.log.Info("panel move", "from", req.From, "to", req.To)
		return PanelResponse{OK: true}
	case "fault":
		var f Faults
		if req.Faults != nil {
			f = *req.Faults
		}
		if err := lib.SetFaults(req.Unit, f); err != nil {
			return PanelResponse{Error: err.Error()}
		}
		lib.log.Info("panel fault", "unit", req.Unit, "faults", f.String())
		return PanelResponse{OK: true}
	case "stats":
		st := lib.ReadStats(req.Reset)
		return PanelResponse{OK: true, Stats: &st}
	case "protect":
		if err := lib.PanelProtect(req.Slot, req.On); err != nil {
			return PanelResponse{Error: err.Error()}
		}
		lib.log.Info("panel write-protect", "slot", req.Slot, "on", req.On)
		return PanelResponse{OK: true}
	}
	return PanelResponse{Error: fmt.Sprintf("unknown op %q (status, load, unload, move, protect, fault, stats)", req.Op)}
}

// PanelClient talks to the panel unit of a running vtl.
type PanelClient struct {
	c  net.Conn
	br *bufio.Reader
}

// DialPanel connects to the panel unit.
func DialPanel(socket string) (*PanelClient, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the vtl socket %s: %w", socket, err)
	}
	if err := vtlwire.WriteHello(c, PanelUnit); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	var h [3]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		c.Close()
		return nil, err
	}
	msg := make([]byte, int(h[1])<<8|int(h[2]))
	if _, err := io.ReadFull(br, msg); err != nil {
		c.Close()
		return nil, err
	}
	if h[0] != 0 {
		c.Close()
		return nil, errors.New(string(msg))
	}
	return &PanelClient{c: c, br: br}, nil
}

// Do sends one request and returns the answer; a refused operation is an
// error.
func (p *PanelClient) Do(req PanelRequest) (*PanelResponse, error) {
	b, _ := json.Marshal(req)
	if _, err := p.c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	line, err := p.br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var resp PanelResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, err
	}
	if !resp.OK {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// Close ends the panel connection.
func (p *PanelClient) Close() error { return p.c.Close() }

// peerAlive reports whether the client still has c open: a unix socket
// whose peer closed polls POLLHUP. (A dead holder is released before a
// new connection to its unit is judged; see Library.connect.)
func peerAlive(c net.Conn) func() bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() bool {
		alive := true
		raw.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				alive = false
			}
		})
		return alive
	}
}
