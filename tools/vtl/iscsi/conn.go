package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	w "github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// maxCmdData is the largest data transfer of one command (the socket
// protocol's limit too); maxPendingOut bounds the Data-Out buffered for
// commands still waiting for data.
const (
	maxCmdData    = vtlwire.MaxData
	maxPendingOut = 64 << 20
)

// conn is one TCP connection: its login, then the full feature phase of
// its session.
type conn struct {
	t  *Target
	nc net.Conn
	r  *w.Reader
	w  *w.Writer

	// Login state.
	targetNamed bool
	answered    int

	sess      *session
	params    w.Params // negotiated; MaxRecvDataSegmentLength is the initiator's
	statSN    uint32
	expCmdSN  uint32
	takenOver bool          // another connection reinstated the session (under t.mu)
	done      chan struct{} // closed when serve returns

	// wmu is held while a PDU is handled and while the pinger writes: it
	// guards the writer, statSN, expCmdSN, nextTTT and the ping state.
	wmu      sync.Mutex
	lastRecv atomic.Int64 // UnixNano of the last PDU header received
	pingTTT  uint32       // the outstanding NOP-In's tag (0: none)
	pingSent time.Time

	tasks   map[uint32]*task // write commands waiting for Data-Out, by ITT
	pending int              // their buffered bytes
	nextTTT uint32
	spare   []byte // a write buffer to reuse
	discard []byte
	dataIn  w.DataIn
}

// task is a write command waiting for its Data-Out.
type task struct {
	cmd      w.SCSICommand
	lun      int
	buf      []byte
	got      int    // bytes received (in order: DataPDUInOrder=Yes)
	unsol    bool   // unsolicited Data-Out may still come
	ttt      uint32 // the outstanding R2T's tag (ReservedTag: none)
	burstEnd int    // where the outstanding R2T's burst ends
	r2tsn    uint32
	dataSN   uint32
}

func newConn(t *Target, nc net.Conn) *conn {
	return &conn{t: t, nc: nc, r: w.NewReader(nc), w: w.NewWriter(nc), done: make(chan struct{}), tasks: map[uint32]*task{}}
}

// errDrop ends the connection after a protocol violation (ERL 0).
type errDrop struct{ why string }

func (e *errDrop) Error() string { return e.why }

func drop(format string, a ...any) error { return &errDrop{fmt.Sprintf(format, a...)} }

func (c *conn) serve() {
	defer close(c.done)
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			// A target bug: drop this connection, keep serving the others.
			c.t.panics.Add(1)
			c.t.log.Error("iSCSI target internal error; dropping the connection", "panic", fmt.Sprint(r), "remote", c.nc.RemoteAddr().String())
			c.finish()
		}
	}()
	s := c.login()
	if s == nil {
		return
	}
	c.sess = s
	c.r.MaxData = c.t.cfg.MaxRecvDataSegmentLength
	c.r.Digests = w.Digests{Header: c.params.HeaderDigest, Data: c.params.DataDigest}
	c.w.Digests = c.r.Digests
	c.discard = make([]byte, c.t.cfg.MaxRecvDataSegmentLength)
	c.lastRecv.Store(time.Now().UnixNano())
	stop := make(chan struct{})
	defer close(stop)
	if iv := c.t.cfg.NOPInterval; iv > 0 {
		go c.pinger(iv, stop)
	}
	err := c.fullFeature()
	c.logEnd("session", err)
	c.finish()
}

// finish ends the session with its connection (ERL 0 keeps nothing),
// unless another connection took it over.
func (c *conn) finish() {
	s := c.sess
	if s == nil {
		return
	}
	c.sess = nil
	c.t.mu.Lock()
	taken := c.takenOver
	if !taken {
		s.conn = nil
	}
	c.t.mu.Unlock()
	if taken {
		s.expCmdSN = c.expCmdSN
		return
	}
	s.closeLUNs()
	c.t.unregister(s)
}

func (c *conn) endSession(s *session) {
	c.sess = s
	c.finish()
}

func (c *conn) logEnd(phase string, err error) {
	attrs := []any{"remote", c.nc.RemoteAddr().String()}
	if c.sess != nil {
		attrs = append(attrs, "initiator", c.sess.initiator, "tsih", c.sess.tsih)
	}
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		if c.sess != nil {
			c.t.log.Info("iSCSI connection closed", attrs...)
		}
	default:
		attrs = append(attrs, "phase", phase, "err", err.Error())
		c.t.log.Warn("iSCSI connection dropped", attrs...)
	}
}

// errLogout ends the full feature phase after a Logout Response.
var errLogout = errors.New("logged out")

func (c *conn) fullFeature() error {
	for {
		bhs, ahs, err := c.r.Header()
		if err != nil {
			return err
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if err := c.handle(bhs, ahs); err != nil {
			if errors.Is(err, errLogout) {
				return nil
			}
			return err
		}
	}
}

// pinger sends a NOP-In when the initiator has been silent for iv, and
// drops the connection when a ping stays unanswered for 2·iv (§11.19).
func (c *conn) pinger(iv time.Duration, stop chan struct{}) {
	tk := time.NewTicker(iv / 2)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		c.wmu.Lock()
		now := time.Now()
		if c.pingTTT != 0 && now.Sub(c.pingSent) >= 2*iv {
			who := c.initiator()
			c.wmu.Unlock()
			c.t.log.Warn("iSCSI initiator does not answer NOP-In pings; dropping the connection", "initiator", who, "remote", c.nc.RemoteAddr().String())
			c.nc.Close()
			return
		}
		if c.pingTTT == 0 && now.Sub(time.Unix(0, c.lastRecv.Load())) >= iv {
			c.pingTTT = c.newTTT()
			c.pingSent = now
			m := w.NOPIn{LUN: 0, ITT: w.ReservedTag, TTT: c.pingTTT, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
			c.w.Write(w.NewPDU(&m, nil))
		}
		c.wmu.Unlock()
	}
}

func (c *conn) initiator() string {
	if s := c.sess; s != nil {
		return s.initiator
	}
	return ""
}

// newTTT is a fresh Target Transfer Tag (never 0 or ReservedTag).
func (c *conn) newTTT() uint32 {
	c.nextTTT++
	if c.nextTTT == w.ReservedTag || c.nextTTT == 0 {
		c.nextTTT = 1
	}
	return c.nextTTT
}

// handle serves one PDU whose header was just read.
func (c *conn) handle(bhs w.BHS, ahs []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	op := bhs.Opcode()
	if len(ahs) > 0 && op != w.OpSCSICommand {
		// Only a SCSI Command may carry AHS (§11.2.1.4).
		op = 0xff
	}
	switch op {
	case w.OpSCSICommand:
		return c.command(&bhs, ahs)
	case w.OpDataOut:
		return c.dataOut(&bhs)
	case w.OpNOPOut:
		return c.nop(&bhs)
	case w.OpTaskMgmt:
		return c.taskMgmt(&bhs)
	case w.OpText:
		return c.text(&bhs)
	case w.OpLogout:
		return c.logout(&bhs)
	}
	if err := c.skipData(&bhs); err != nil {
		return err
	}
	switch op {
	case w.OpSNACK:
		// ERL 0: no SNACK support (§11.16: reject it).
		return c.reject(&bhs, w.RejectSNACK)
	case w.OpLogin, 0xff:
		return c.reject(&bhs, w.RejectProtocolError)
	}
	return c.reject(&bhs, w.RejectNotSupported)
}

// skipData reads and drops the data segment of the PDU just read.
func (c *conn) skipData(b *w.BHS) error {
	n := b.DataSegmentLength()
	if n == 0 {
		return nil
	}
	return c.r.DataInto(b, c.discard[:n])
}

func (c *conn) maxCmdSN() uint32 { return c.expCmdSN + cmdWindow - 1 }

// acceptCmdSN applies a request's CmdSN: an immediate request does not
// advance ExpCmdSN; a non-immediate one must be ExpCmdSN. Outside the
// window it is dropped silently (§4.2.2.1).
func (c *conn) acceptCmdSN(immediate bool, cmdSN uint32) bool {
	if immediate {
		return true
	}
	if cmdSN != c.expCmdSN {
		return false
	}
	c.expCmdSN++
	return true
}

func (c *conn) reject(b *w.BHS, reason byte) error {
	m := w.Reject{Reason: reason, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
	c.statSN++
	hdr := *b
	return c.w.Write(w.NewPDU(&m, hdr[:]))
}

func (c *conn) nop(b *w.BHS) error {
	m := w.DecodeNOPOut(b)
	n := b.DataSegmentLength()
	if m.ITT == w.ReservedTag {
		// The answer to a NOP-In of ours, or a ping that wants no reply.
		if m.TTT == c.pingTTT {
			c.pingTTT = 0
		}
		return c.skipData(b)
	}
	data := c.discard[:n]
	if err := c.r.DataInto(b, data); err != nil {
		return err
	}
	if !c.acceptCmdSN(m.Immediate, m.CmdSN) {
		return nil
	}
	if n > c.params.MaxRecvDataSegmentLength {
		data = data[:c.params.MaxRecvDataSegmentLength]
	}
	r := w.NOPIn{LUN: m.LUN, ITT: m.ITT, TTT: w.ReservedTag, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
	c.statSN++
	return c.w.Write(w.NewPDU(&r, data))
}

// senseFixed is an 18-byte fixed-format sense for the target's own
// refusals.
func senseFixed(key byte, asc scsi.ASCQ) []byte {
	s := make([]byte, 18)
	s[0], s[2], s[7], s[12], s[13] = 0x70, key, 10, byte(asc>>8), byte(asc)
	return s
}

// cdbLen is the CDB length of an opcode's group (SPC-4 §4.2.5).
func cdbLen(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 5:
		return 12
	}
	return 16
}

func (c *conn) command(b *w.BHS, ahs []byte) error {
	cmd := w.DecodeSCSICommand(b)
	n := b.DataSegmentLength()
	s := c.sess
	if s.discovery {
		// A discovery session carries only Text, NOP and Logout.
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.reject(b, w.RejectProtocolError)
	}
	if !c.acceptCmdSN(cmd.Immediate, cmd.CmdSN) {
		return c.skipData(b)
	}
	if len(ahs) > 0 {
		// Extended CDBs and bidirectional lengths: not for tape.
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.respond(cmd, scsi.StatusCheckCondition, senseFixed(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB), int(cmd.ExpectedLength))
	}
	if _, busy := c.tasks[cmd.ITT]; busy {
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.reject(b, w.RejectTaskInProgress)
	}
	exp := int(cmd.ExpectedLength)
	badData := n > 0 && (!cmd.Write || !c.params.ImmediateData || n > exp || n > c.params.FirstBurstLength)
	if badData {
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.reject(b, w.RejectProtocolError)
	}
	lun, lunOK := w.LUNNumber(cmd.LUN)
	unit, known := "", false
	if lunOK {
		unit, known = c.t.unitOf(lun)
	}
	op := cmd.CDB[0]
	refuse := func(status byte, sense []byte) error {
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.respond(cmd, status, sense, exp)
	}
	switch {
	case cmd.Read && cmd.Write:
		return refuse(scsi.StatusCheckCondition, senseFixed(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB))
	case exp > maxCmdData:
		return refuse(scsi.StatusCheckCondition, senseFixed(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB))
	case op == scsi.OpReportLUNs:
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.reportLUNs(cmd)
	case !known && op == scsi.OpInquiry:
		if err := c.skipData(b); err != nil {
			return err
		}
		// Peripheral qualifier 011b: no logical unit here (SPC-4 §6.6.2).
		d := []byte{0x7F, 0, 0x06, 0x02, 31, 0, 0, 0}
		d = append(d, make([]byte, 28)...)
		return c.dataInStatus(cmd, d, exp)
	case !known:
		return refuse(scsi.StatusCheckCondition, senseFixed(scsi.SenseIllegalRequest, scsi.ASCQ(0x2500)))
	}
	nx, err := c.nexus(lun, unit)
	if err != nil {
		var busy *scsi.BusyDeviceError
		if errors.As(err, &busy) {
			// Held exclusively over the unix socket (storaged): as a
			// reservation held by another initiator.
			return refuse(scsi.StatusReservationConflict, nil)
		}
		return refuse(scsi.StatusBusy, nil)
	}
	if !cmd.Write || exp == 0 {
		if err := c.skipData(b); err != nil {
			return err
		}
		return c.execute(cmd, nx, nil, lun)
	}
	if c.pending+exp > maxPendingOut {
		return refuse(scsi.StatusTaskSetFull, nil)
	}
	tk := &task{cmd: cmd, lun: lun, buf: c.getBuf(exp), unsol: !cmd.Final && !c.params.InitialR2T, ttt: w.ReservedTag}
	if n > 0 {
		if err := c.r.DataInto(b, tk.buf[:n]); err != nil {
			return err
		}
		tk.got = n
	}
	if tk.got == exp {
		return c.runTask(tk)
	}
	c.tasks[cmd.ITT] = tk
	c.pending += exp
	if tk.unsol && tk.got < min(exp, c.params.FirstBurstLength) {
		return nil // unsolicited Data-Out follows
	}
	tk.unsol = false
	return c.r2t(tk)
}

// getBuf returns a write buffer of n bytes, reusing the last one freed.
func (c *conn) getBuf(n int) []byte {
	if cap(c.spare) >= n {
		b := c.spare[:n]
		c.spare = nil
		return b
	}
	return make([]byte, n)
}

func (c *conn) putBuf(b []byte) {
	if cap(b) > cap(c.spare) {
		c.spare = b[:0]
	}
}

// r2t asks for the next burst of a write.
func (c *conn) r2t(tk *task) error {
	tk.ttt = c.newTTT()
	want := min(len(tk.buf)-tk.got, c.params.MaxBurstLength)
	tk.burstEnd = tk.got + want
	m := w.R2T{LUN: tk.cmd.LUN, ITT: tk.cmd.ITT, TTT: tk.ttt, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN(),
		R2TSN: tk.r2tsn, BufferOffset: uint32(tk.got), DesiredLength: uint32(want)}
	tk.r2tsn++
	tk.dataSN = 0
	return c.w.Write(w.NewPDU(&m, nil))
}

func (c *conn) dataOut(b *w.BHS) error {
	m := w.DecodeDataOut(b)
	n := b.DataSegmentLength()
	tk := c.tasks[m.ITT]
	bad := tk == nil
	if !bad {
		switch {
		case m.TTT == w.ReservedTag && !tk.unsol, m.TTT != w.ReservedTag && m.TTT != tk.ttt:
			bad = true
		case int(m.BufferOffset) != tk.got || tk.got+n > len(tk.buf):
			bad = true
		case m.TTT == w.ReservedTag && tk.got+n > c.params.FirstBurstLength:
			bad = true
		case m.TTT != w.ReservedTag && tk.got+n > tk.burstEnd:
			bad = true
		}
	}
	if bad {
		if err := c.skipData(b); err != nil {
			return err
		}
		if tk != nil {
			// The task cannot complete: end it with a data phase error.
			c.dropTask(tk)
			if err := c.respond(tk.cmd, scsi.StatusCheckCondition, senseFixed(scsi.SenseAbortedCommand, scsi.ASCQ(0x4B00)), len(tk.buf)); err != nil {
				return err
			}
		}
		return c.reject(b, w.RejectInvalidField)
	}
	if err := c.r.DataInto(b, tk.buf[tk.got:tk.got+n]); err != nil {
		return err
	}
	tk.got += n
	tk.dataSN++
	if !m.Final {
		return nil
	}
	if tk.got == len(tk.buf) {
		c.dropTask(tk)
		return c.runTask(tk)
	}
	if m.TTT == w.ReservedTag {
		tk.unsol = false
	} else if tk.got != tk.burstEnd {
		// A burst ended short of what the R2T asked: ask again from here.
	}
	return c.r2t(tk)
}

func (c *conn) dropTask(tk *task) {
	if c.tasks[tk.cmd.ITT] == tk {
		delete(c.tasks, tk.cmd.ITT)
		c.pending -= len(tk.buf)
	}
}

func (c *conn) runTask(tk *task) error {
	nx, err := c.nexus(tk.lun, "")
	if err != nil {
		c.putBuf(tk.buf)
		return c.respond(tk.cmd, scsi.StatusBusy, nil, len(tk.buf))
	}
	err = c.execute(tk.cmd, nx, tk.buf, tk.lun)
	c.putBuf(tk.buf)
	return err
}

// nexus returns the session's emu nexus to a LUN, opening it on first use.
func (c *conn) nexus(lun int, unit string) (*emu.Conn, error) {
	s := c.sess
	if nx := s.luns[lun]; nx != nil {
		return nx, nil
	}
	if unit == "" {
		unit, _ = c.t.unitOf(lun)
	}
	nx, err := c.t.lib.Connect(vtlwire.Hello{Unit: unit})
	if err != nil {
		return nil, err
	}
	s.luns[lun] = nx
	return nx, nil
}

// execute runs one command on the emulation and answers it.
func (c *conn) execute(cmd w.SCSICommand, nx *emu.Conn, out []byte, lun int) error {
	exp := int(cmd.ExpectedLength)
	req := vtlwire.Request{CDB: cmd.CDB[:cdbLen(cmd.CDB[0])], Timeout: time.Minute}
	switch {
	case cmd.Read && exp > 0:
		req.Dir, req.AllocLen = scsi.DirFromDevice, exp
	case cmd.Write && exp > 0:
		req.Dir, req.DataOut = scsi.DirToDevice, out
	default:
		req.Dir = scsi.DirNone
	}
	resp := nx.Exec(&req)
	if resp.HostStatus != 0 {
		// The unit refused the transfer (a max_transfer fault): what a
		// host adapter reports as an error, here a target failure.
		m := w.SCSIResponse{Response: w.RespTargetFailed, ITT: cmd.ITT, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
		c.statSN++
		return c.w.Write(w.NewPDU(&m, nil))
	}
	resid := int(resp.Resid)
	if req.Dir == scsi.DirNone {
		resid = exp
	}
	if n, ok := cdbDataLen(req.CDB); ok && n > exp {
		// The CDB asks for more than the Expected Data Transfer Length:
		// residual overflow (§11.4.5.1), as Linux LIO reports it.
		resid = exp - n
	}
	if req.Dir == scsi.DirFromDevice && resp.Status == scsi.StatusGood && len(resp.Sense) == 0 && len(resp.DataIn) > 0 {
		_, err := c.sendDataIn(cmd, resp.DataIn, true, scsi.StatusGood, resid)
		return err
	}
	dataSN := uint32(0)
	if len(resp.DataIn) > 0 {
		var err error
		if dataSN, err = c.sendDataIn(cmd, resp.DataIn, false, 0, 0); err != nil {
			return err
		}
	}
	return c.respondSN(cmd, resp.Status, resp.Sense, resid, dataSN)
}

// cdbDataLen is the data length a CDB itself states (an allocation or
// parameter list length, or a variable-block transfer length), for the
// commands that have one.
func cdbDataLen(cdb []byte) (int, bool) {
	be := func(a, b int) int {
		n := 0
		for _, x := range cdb[a:b] {
			n = n<<8 | int(x)
		}
		return n
	}
	switch cdb[0] {
	case scsi.OpInquiry, scsi.OpModeSense6, scsi.OpRequestSense:
		if cdb[0] == scsi.OpInquiry {
			return be(3, 5), true
		}
		return int(cdb[4]), true
	case scsi.OpRead6, scsi.OpWrite6:
		if cdb[1]&1 == 0 { // variable blocks: the length is bytes
			return be(2, 5), true
		}
	case scsi.OpModeSense10, scsi.OpLogSense:
		return be(7, 9), true
	case scsi.OpSecurityProtocolIn, scsi.OpSecurityProtocolOut, scsi.OpReportLUNs:
		return be(6, 10), true
	case scsi.OpReadElementStatus:
		return be(7, 10), true
	}
	return 0, false
}

// dataInStatus sends data with the status in the last Data-In (GOOD).
func (c *conn) dataInStatus(cmd w.SCSICommand, data []byte, exp int) error {
	if len(data) > exp {
		data = data[:exp]
	}
	if len(data) == 0 {
		return c.respond(cmd, scsi.StatusGood, nil, exp)
	}
	_, err := c.sendDataIn(cmd, data, true, scsi.StatusGood, exp-len(data))
	return err
}

// sendDataIn sends data in Data-In PDUs of at most the initiator's
// MaxRecvDataSegmentLength, F at the end of every MaxBurstLength
// sequence; with status, the last PDU carries it (S bit). It returns the
// number of PDUs sent.
func (c *conn) sendDataIn(cmd w.SCSICommand, data []byte, status bool, st byte, resid int) (uint32, error) {
	seg := c.params.MaxRecvDataSegmentLength
	burst := c.params.MaxBurstLength
	var sn uint32
	for off := 0; off < len(data); {
		n := min(seg, len(data)-off, burst-off%burst)
		last := off+n == len(data)
		m := &c.dataIn
		*m = w.DataIn{LUN: cmd.LUN, ITT: cmd.ITT, TTT: w.ReservedTag, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN(),
			DataSN: sn, BufferOffset: uint32(off), Final: last || (off+n)%burst == 0}
		if last && status {
			m.HasStatus, m.Final, m.Status, m.StatSN = true, true, st, c.statSN
			m.Underflow, m.Overflow, m.Residual = residual(resid)
			c.statSN++
		}
		if err := c.w.Write(w.NewPDU(m, data[off:off+n])); err != nil {
			return sn, err
		}
		off += n
		sn++
	}
	return sn, nil
}

// residual is the U/O flags and Residual Count of resid bytes not
// transferred (negative: an overflow of −resid bytes).
func residual(resid int) (under, over bool, count uint32) {
	switch {
	case resid > 0:
		return true, false, uint32(resid)
	case resid < 0:
		return false, true, uint32(-resid)
	}
	return false, false, 0
}

// respond sends a SCSI Response with resid bytes not transferred
// (negative: an overflow of −resid bytes).
func (c *conn) respond(cmd w.SCSICommand, status byte, sense []byte, resid int) error {
	return c.respondSN(cmd, status, sense, resid, 0)
}

func (c *conn) respondSN(cmd w.SCSICommand, status byte, sense []byte, resid int, expDataSN uint32) error {
	m := w.SCSIResponse{Status: status, ITT: cmd.ITT, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN(), ExpDataSN: expDataSN}
	m.Underflow, m.Overflow, m.Residual = residual(resid)
	c.statSN++
	var data []byte
	if len(sense) > 0 {
		data = w.SenseSegment(sense)
	}
	return c.w.Write(w.NewPDU(&m, data))
}

// reportLUNs answers REPORT LUNS for every LUN: the changer and drives.
func (c *conn) reportLUNs(cmd w.SCSICommand) error {
	cdb := cmd.CDB[:12]
	alloc := int(binary.BigEndian.Uint32(cdb[6:10]))
	if alloc < 16 || cdb[2] > 2 {
		return c.respond(cmd, scsi.StatusCheckCondition, senseFixed(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB), int(cmd.ExpectedLength))
	}
	n := c.t.LUNs()
	d := make([]byte, 8, 8+8*n)
	binary.BigEndian.PutUint32(d, uint32(8*n))
	for i := range n {
		d = binary.BigEndian.AppendUint64(d, w.LUN(i))
	}
	return c.dataInStatus(cmd, d[:min(len(d), alloc)], int(cmd.ExpectedLength))
}

func (c *conn) taskMgmt(b *w.BHS) error {
	m := w.DecodeTaskMgmtRequest(b)
	if err := c.skipData(b); err != nil {
		return err
	}
	if !c.acceptCmdSN(m.Immediate, m.CmdSN) {
		return nil
	}
	resp := byte(w.TMFRespComplete)
	cold := false
	lun, lunOK := w.LUNNumber(m.LUN)
	_, known := c.t.unitOf(lun)
	switch m.Function {
	case w.TMFAbortTask:
		if tk := c.tasks[m.RefTaskTag]; tk != nil {
			c.dropTask(tk)
			c.putBuf(tk.buf)
		} else if w.SerialLess(m.RefCmdSN, c.expCmdSN) {
			resp = w.TMFRespNoTask // completed already: commands run one at a time
		}
	case w.TMFAbortTaskSet, w.TMFClearTaskSet:
		c.dropTasks(lun, false)
	case w.TMFLUNReset:
		if !lunOK || !known || c.sess.discovery {
			resp = w.TMFRespNoLUN
			break
		}
		c.dropTasks(lun, false)
		c.resetLUN(lun)
	case w.TMFTargetWarmReset, w.TMFTargetColdReset:
		if c.sess.discovery {
			resp = w.TMFRespNotSupported
			break
		}
		c.dropTasks(0, true)
		for l := range c.t.LUNs() {
			c.resetLUN(l)
		}
		cold = m.Function == w.TMFTargetColdReset
	case w.TMFTaskReassign:
		resp = w.TMFRespNoReassign
	default:
		resp = w.TMFRespNotSupported
	}
	r := w.TaskMgmtResponse{Response: resp, ITT: m.ITT, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
	c.statSN++
	if err := c.w.Write(w.NewPDU(&r, nil)); err != nil {
		return err
	}
	if cold {
		return drop("target cold reset")
	}
	return nil
}

func (c *conn) dropTasks(lun int, all bool) {
	for _, tk := range c.tasks {
		if all || tk.lun == lun {
			c.dropTask(tk)
		}
	}
}

// resetLUN is a LOGICAL UNIT RESET: the unit's reservation and PREVENT
// end, the other nexuses see a unit attention.
func (c *conn) resetLUN(lun int) {
	if c.sess.discovery {
		return
	}
	nx, err := c.nexus(lun, "")
	if err != nil {
		return
	}
	nx.Reset()
	c.t.log.Info("iSCSI LUN reset", "initiator", c.sess.initiator, "lun", lun)
}

func (c *conn) text(b *w.BHS) error {
	m := w.DecodeTextRequest(b)
	n := b.DataSegmentLength()
	data := c.discard[:n]
	if err := c.r.DataInto(b, data); err != nil {
		return err
	}
	if !c.acceptCmdSN(m.Immediate, m.CmdSN) {
		return nil
	}
	var answer []w.KV
	kvs, err := w.ParseText(data)
	if err != nil || m.Continue {
		return c.reject(b, w.RejectProtocolError)
	}
	for _, kv := range kvs {
		switch kv.Key {
		case "SendTargets":
			if kv.Value != "All" && kv.Value != c.t.cfg.Name && !(kv.Value == "" && !c.sess.discovery) {
				continue
			}
			if c.sess.discovery || kv.Value != "" {
				answer = append(answer, w.KV{Key: "TargetName", Value: c.t.cfg.Name})
			}
			addrs := c.t.cfg.Advertise
			if len(addrs) == 0 {
				addrs = []string{portal(c.nc.LocalAddr())}
			}
			for _, a := range addrs {
				answer = append(answer, w.KV{Key: "TargetAddress", Value: a + ",1"})
			}
		default:
			answer = append(answer, w.KV{Key: kv.Key, Value: w.NotUnderstood})
		}
	}
	out := w.AppendText(nil, answer...)
	if len(out) > c.params.MaxRecvDataSegmentLength {
		return c.reject(b, w.RejectLongOp)
	}
	r := w.TextResponse{Final: true, LUN: m.LUN, ITT: m.ITT, TTT: w.ReservedTag, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
	c.statSN++
	return c.w.Write(w.NewPDU(&r, out))
}

// portal is an address as SendTargets reports it.
func portal(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ta.IP.To4() == nil {
			return "[" + ta.IP.String() + "]:" + strconv.Itoa(ta.Port)
		}
		return ta.IP.String() + ":" + strconv.Itoa(ta.Port)
	}
	return a.String()
}

func (c *conn) logout(b *w.BHS) error {
	m := w.DecodeLogoutRequest(b)
	if err := c.skipData(b); err != nil {
		return err
	}
	c.acceptCmdSN(m.Immediate, m.CmdSN)
	resp := byte(0)
	if m.Reason == w.LogoutRecovery {
		resp = 2 // connection recovery is not supported (ERL 0)
	}
	if resp == 0 {
		// The session's nexuses end before the initiator hears of the
		// logout, so its next login finds the units free.
		c.t.log.Info("iSCSI logout", "initiator", c.sess.initiator, "tsih", c.sess.tsih)
		c.finish()
	}
	r := w.LogoutResponse{Response: resp, ITT: m.ITT, StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.maxCmdSN()}
	c.statSN++
	if err := c.w.Write(w.NewPDU(&r, nil)); err != nil || resp == 0 {
		return errors.Join(err, errLogout)
	}
	return nil
}
