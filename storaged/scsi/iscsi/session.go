package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
)

const (
	// pduTimeout bounds reading the rest of a PDU once its first byte has
	// arrived, and each batch of writes.
	pduTimeout = 60 * time.Second
)

// abortWait bounds the wait for the answer to ABORT TASK.
var abortWait = 10 * time.Second

// task is what the PDU loop works for: a SCSI command, a task management
// request, a logout — or nothing (waiting for the command window).
type task struct {
	cmd   *scsi.Command // nil: no SCSI command
	itt   uint32
	lun   uint64
	cmdSN uint32

	dataSN   uint32 // next Data-In DataSN
	received int    // end of the highest Data-In received
	done     bool
	res      scsi.Result
	failed   error // a protocol failure found while reading

	tmfITT  uint32
	tmfDone bool
	tmfResp byte

	logoutITT  uint32
	logoutDone bool
}

func (c *conn) nextITT() uint32 {
	c.itt++
	if c.itt == iscsiwire.ReservedTag {
		c.itt = 1
	}
	return c.itt
}

// errTimedOut is a deadline passing while no PDU had started to arrive:
// the stream is intact.
var errTimedOut = errors.New("no answer before the deadline")

// brokenf is a connection-level failure of a command that was (or may
// have been) sent.
func brokenf(format string, a ...any) error {
	return &outcomeError{detail: fmt.Sprintf(format, a...)}
}

type outcomeError struct{ detail string }

func (e *outcomeError) Error() string {
	return e.detail + "; its outcome is unknown (it may have executed) and it was not resent; the next command logs in again"
}

func (e *outcomeError) Is(target error) bool { return target == ErrOutcomeUnknown }

// command runs one SCSI command to completion: send, Data-Out as the
// target wants it, Data-In into cmd.Data, status. A timeout sends ABORT
// TASK; a command the target aborted comes back as a Result with
// DID_TIME_OUT (its effect is unknown, the connection is kept). An error
// means the connection is unusable.
func (c *conn) command(lun uint64, cmd *scsi.Command, timeout time.Duration, st *Stats) (scsi.Result, error) {
	deadline := time.Now().Add(timeout)
	// The command window (§4.2.2.1): wait for MaxCmdSN to open it.
	idle := &task{}
	for iscsiwire.SerialLess(c.maxCmdSN, c.cmdSN) {
		if err := c.step(idle, deadline, st); err != nil {
			if err == errTimedOut {
				return scsi.Result{}, fmt.Errorf("not sent: the target kept its command window closed (MaxCmdSN %d, CmdSN %d) for %s", c.maxCmdSN, c.cmdSN, timeout)
			}
			return scsi.Result{}, fmt.Errorf("not sent: waiting for the target's command window: %w", err)
		}
	}
	t := &task{cmd: cmd, itt: c.nextITT(), lun: lun, cmdSN: c.cmdSN}
	sc := iscsiwire.SCSICommand{
		Final: true, Attr: iscsiwire.AttrSimple, LUN: lun, ITT: t.itt,
		CmdSN: c.cmdSN, ExpStatSN: c.expStatSN,
	}
	copy(sc.CDB[:], cmd.CDB)
	var imm []byte
	unsolicited := 0 // bytes of unsolicited Data-Out after the immediate data
	switch cmd.Dir {
	case scsi.DirFromDevice:
		sc.Read = true
		sc.ExpectedLength = uint32(len(cmd.Data))
	case scsi.DirToDevice:
		sc.Write = true
		sc.ExpectedLength = uint32(len(cmd.Data))
		burst := min(len(cmd.Data), c.p.FirstBurstLength)
		if c.p.ImmediateData {
			imm = cmd.Data[:min(burst, c.p.MaxRecvDataSegmentLength)]
		}
		if !c.p.InitialR2T {
			unsolicited = burst - len(imm)
		}
		sc.Final = unsolicited == 0
	}
	c.nc.SetWriteDeadline(time.Now().Add(pduTimeout))
	if err := c.w.Write(iscsiwire.NewPDU(&sc, imm)); err != nil {
		return scsi.Result{}, brokenf("sending the command: %v", err)
	}
	c.cmdSN++
	if unsolicited > 0 {
		if err := c.sendData(t, iscsiwire.ReservedTag, len(imm), unsolicited, st); err != nil {
			return scsi.Result{}, brokenf("sending unsolicited data: %v", err)
		}
	}
	for !t.done {
		err := c.step(t, deadline, st)
		if err == nil {
			continue
		}
		if err != errTimedOut {
			return scsi.Result{}, err
		}
		return c.abort(t, timeout, st)
	}
	return t.res, nil
}

// abort sends ABORT TASK for a command that timed out.
func (c *conn) abort(t *task, timeout time.Duration, st *Stats) (scsi.Result, error) {
	st.Aborts++
	resp, err := c.taskMgmt(iscsiwire.TMFAbortTask, t.lun, t, abortWait, st)
	if err != nil {
		return scsi.Result{}, brokenf("no answer within its timeout of %s, and ABORT TASK failed: %v", timeout, err)
	}
	if t.done {
		// It completed while the abort was on its way.
		return t.res, nil
	}
	switch resp {
	case iscsiwire.TMFRespComplete, iscsiwire.TMFRespNoTask:
		// Aborted: the device may or may not have acted on it.
		return scsi.Result{HostStatus: 0x03}, nil // DID_TIME_OUT
	}
	return scsi.Result{}, brokenf("no answer within its timeout of %s, and ABORT TASK answered %q", timeout, tmfRespName(resp))
}

// taskMgmt sends a task management request (about ref for ABORT TASK) and
// waits for its response.
func (c *conn) taskMgmt(fn byte, lun uint64, ref *task, wait time.Duration, st *Stats) (byte, error) {
	t := ref
	if t == nil {
		t = &task{}
	}
	t.tmfITT = c.nextITT()
	req := iscsiwire.TaskMgmtRequest{
		Immediate: true, Function: fn, LUN: lun, ITT: t.tmfITT, RefTaskTag: iscsiwire.ReservedTag,
		CmdSN: c.cmdSN, ExpStatSN: c.expStatSN, RefCmdSN: c.cmdSN,
	}
	if ref != nil {
		req.RefTaskTag, req.RefCmdSN, req.ExpDataSN = ref.itt, ref.cmdSN, ref.dataSN
	}
	c.nc.SetWriteDeadline(time.Now().Add(wait))
	if err := c.w.Write(iscsiwire.NewPDU(&req, nil)); err != nil {
		return 0, fmt.Errorf("sending the request: %w", err)
	}
	deadline := time.Now().Add(wait)
	for !t.tmfDone {
		if err := c.step(t, deadline, st); err != nil {
			if err == errTimedOut {
				return 0, fmt.Errorf("no answer in %s", wait)
			}
			return 0, err
		}
	}
	return t.tmfResp, nil
}

// logout ends the session (reason: close the session) and waits for the
// target's answer.
func (c *conn) logout(wait time.Duration, st *Stats) error {
	t := &task{logoutITT: c.nextITT()}
	req := iscsiwire.LogoutRequest{Immediate: true, Reason: iscsiwire.LogoutSession, ITT: t.logoutITT, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}
	c.nc.SetWriteDeadline(time.Now().Add(wait))
	if err := c.w.Write(iscsiwire.NewPDU(&req, nil)); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for !t.logoutDone {
		if err := c.step(t, deadline, st); err != nil {
			if err == errTimedOut {
				return fmt.Errorf("no Logout Response in %s", wait)
			}
			return err
		}
	}
	return nil
}

// sendTargets asks a discovery session for SendTargets=All.
func (c *conn) sendTargets() ([]iscsiwire.KV, error) {
	itt := c.nextITT()
	ttt := uint32(iscsiwire.ReservedTag)
	body := iscsiwire.AppendText(nil, iscsiwire.KV{Key: "SendTargets", Value: "All"})
	var text []byte
	for range 64 {
		req := iscsiwire.TextRequest{Final: true, ITT: itt, TTT: ttt, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}
		if err := c.w.Write(iscsiwire.NewPDU(&req, body)); err != nil {
			return nil, err
		}
		c.cmdSN++
		body = nil
		for {
			p, err := c.r.Read()
			if err != nil {
				return nil, err
			}
			if p.Opcode() == iscsiwire.OpNOPIn {
				continue
			}
			if p.Opcode() != iscsiwire.OpTextResp {
				return nil, fmt.Errorf("the target answered with a %s", p)
			}
			r := iscsiwire.DecodeTextResponse(&p.BHS)
			c.expStatSN = r.StatSN + 1
			c.updateCmdSN(r.ExpCmdSN, r.MaxCmdSN)
			text = append(text, p.Data...)
			if r.Final && !r.Continue {
				return iscsiwire.ParseText(text)
			}
			ttt = r.TTT
			break
		}
	}
	return nil, errors.New("the target's SendTargets answer did not end")
}

// sendData sends buffer bytes [off, off+n) of t's command as Data-Out
// PDUs of at most the target's MaxRecvDataSegmentLength, for the transfer
// tag ttt (ReservedTag: unsolicited).
func (c *conn) sendData(t *task, ttt uint32, off, n int, st *Stats) error {
	c.nc.SetWriteDeadline(time.Now().Add(pduTimeout))
	end := off + n
	mx := c.p.MaxRecvDataSegmentLength
	for sn := uint32(0); off < end; sn++ {
		k := min(end-off, mx)
		m := iscsiwire.DataOut{Final: off+k == end, LUN: t.lun, ITT: t.itt, TTT: ttt, ExpStatSN: c.expStatSN, DataSN: sn, BufferOffset: uint32(off)}
		if err := c.w.Write(iscsiwire.NewPDU(&m, t.cmd.Data[off:off+k])); err != nil {
			return err
		}
		st.DataOutPDUs++
		off += k
	}
	return nil
}

func (c *conn) updateCmdSN(exp, mx uint32) {
	// §4.2.2.1: a MaxCmdSN below ExpCmdSN−1 is ignored.
	if iscsiwire.SerialLess(mx, exp-1) {
		return
	}
	if iscsiwire.SerialLess(c.expCmdSN, exp) {
		c.expCmdSN = exp
	}
	if iscsiwire.SerialLess(c.maxCmdSN, mx) {
		c.maxCmdSN = mx
	}
}

func (c *conn) gotStatus(statSN uint32) {
	if !iscsiwire.SerialLess(statSN, c.expStatSN) {
		c.expStatSN = statSN + 1
	}
}

// step reads one PDU (waiting for its start until deadline) and applies
// it to t. errTimedOut means nothing arrived; any other error means the
// connection can no longer be used.
func (c *conn) step(t *task, deadline time.Time, st *Stats) error {
	c.nc.SetReadDeadline(deadline)
	if err := c.r.Wait(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errTimedOut
		}
		return brokenf("the connection to the target broke before the answer: %v", err)
	}
	c.nc.SetReadDeadline(time.Now().Add(pduTimeout))
	hdr, _, err := c.r.Header()
	if err != nil {
		return brokenf("reading a PDU: %v", err)
	}
	discard := func() error {
		if _, err := c.r.Data(&hdr); err != nil {
			return brokenf("reading a %s: %v", iscsiwire.OpName(hdr.Opcode()), err)
		}
		return nil
	}
	protocol := func(format string, a ...any) error {
		if err := discard(); err != nil {
			return err
		}
		return brokenf("protocol error from the target: %s", fmt.Sprintf(format, a...))
	}
	switch hdr.Opcode() {
	case iscsiwire.OpDataIn:
		d := iscsiwire.DecodeDataIn(&hdr)
		c.updateCmdSN(d.ExpCmdSN, d.MaxCmdSN)
		if t.cmd == nil || d.ITT != t.itt || t.done {
			return discard() // for a task we aborted
		}
		if t.cmd.Dir != scsi.DirFromDevice {
			return protocol("Data-In for a command that reads nothing")
		}
		n, off := hdr.DataSegmentLength(), int(d.BufferOffset)
		if d.DataSN != t.dataSN {
			return protocol("Data-In DataSN %d, expected %d", d.DataSN, t.dataSN)
		}
		if off+n > len(t.cmd.Data) {
			return protocol("Data-In at offset %d+%d beyond the %d-byte buffer", off, n, len(t.cmd.Data))
		}
		if err := c.r.DataInto(&hdr, t.cmd.Data[off:off+n]); err != nil {
			return brokenf("reading Data-In: %v", err)
		}
		st.DataInPDUs++
		t.dataSN++
		t.received = max(t.received, off+n)
		if d.HasStatus {
			c.gotStatus(d.StatSN)
			t.done = true
			t.res = scsi.Result{Status: d.Status, Resid: t.resid(d.Underflow, d.Residual)}
		}
	case iscsiwire.OpSCSIResponse:
		r := iscsiwire.DecodeSCSIResponse(&hdr)
		data, err := c.r.Data(&hdr)
		if err != nil {
			return brokenf("reading a SCSI Response: %v", err)
		}
		c.updateCmdSN(r.ExpCmdSN, r.MaxCmdSN)
		c.gotStatus(r.StatSN)
		if t.cmd == nil || r.ITT != t.itt || t.done {
			return nil
		}
		t.done = true
		if r.Response != iscsiwire.RespCompleted {
			// Target failure: the command's effect is unknown.
			t.res = scsi.Result{HostStatus: 0x07} // DID_ERROR
			return nil
		}
		sense, err := iscsiwire.ParseSenseSegment(data)
		if err != nil {
			return brokenf("SCSI Response: %v", err)
		}
		t.res = scsi.Result{Status: r.Status, Sense: sense, Resid: t.resid(r.Underflow, r.Residual)}
	case iscsiwire.OpR2T:
		r := iscsiwire.DecodeR2T(&hdr)
		if err := discard(); err != nil {
			return err
		}
		c.updateCmdSN(r.ExpCmdSN, r.MaxCmdSN)
		if t.cmd == nil || r.ITT != t.itt || t.done {
			return nil // for a task we aborted
		}
		if t.cmd.Dir != scsi.DirToDevice {
			return brokenf("protocol error from the target: R2T for a command that writes nothing")
		}
		off, n := int(r.BufferOffset), int(r.DesiredLength)
		if n == 0 || off+n > len(t.cmd.Data) {
			return brokenf("protocol error from the target: R2T for bytes %d+%d of a %d-byte write", off, n, len(t.cmd.Data))
		}
		st.R2Ts++
		if err := c.sendData(t, r.TTT, off, n, st); err != nil {
			return brokenf("sending data the target asked for: %v", err)
		}
	case iscsiwire.OpNOPIn:
		m := iscsiwire.DecodeNOPIn(&hdr)
		data, err := c.r.Data(&hdr)
		if err != nil {
			return brokenf("reading a NOP-In: %v", err)
		}
		c.updateCmdSN(m.ExpCmdSN, m.MaxCmdSN)
		if m.ITT != iscsiwire.ReservedTag {
			c.gotStatus(m.StatSN)
		}
		if m.TTT != iscsiwire.ReservedTag {
			// The target pings: answer with its TTT and data.
			if len(data) > c.p.MaxRecvDataSegmentLength {
				data = data[:c.p.MaxRecvDataSegmentLength]
			}
			out := iscsiwire.NOPOut{Immediate: true, LUN: m.LUN, ITT: iscsiwire.ReservedTag, TTT: m.TTT, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}
			c.nc.SetWriteDeadline(time.Now().Add(pduTimeout))
			if err := c.w.Write(iscsiwire.NewPDU(&out, data)); err != nil {
				return brokenf("answering the target's NOP-In: %v", err)
			}
			st.NOPIns++
		}
	case iscsiwire.OpAsync:
		m := iscsiwire.DecodeAsyncMessage(&hdr)
		data, err := c.r.Data(&hdr)
		if err != nil {
			return brokenf("reading an Asynchronous Message: %v", err)
		}
		c.updateCmdSN(m.ExpCmdSN, m.MaxCmdSN)
		c.gotStatus(m.StatSN)
		st.AsyncEvents++
		switch m.Event {
		case iscsiwire.AsyncSCSIEvent:
			sense, _ := iscsiwire.ParseSenseSegment(data)
			if s, err := scsi.ParseSense(sense); err == nil && s.Key == scsi.SenseUnitAttention && m.LUN == c.lun && c.ua == nil {
				c.ua = append([]byte(nil), sense...)
			}
		case iscsiwire.AsyncLogoutRequest, iscsiwire.AsyncRequestNegotiate:
			c.logoutWanted = true
		case iscsiwire.AsyncDropConnection, iscsiwire.AsyncDropAll:
			c.dropWanted = true
		}
	case iscsiwire.OpReject:
		m := iscsiwire.DecodeReject(&hdr)
		data, err := c.r.Data(&hdr)
		if err != nil {
			return brokenf("reading a Reject: %v", err)
		}
		c.updateCmdSN(m.ExpCmdSN, m.MaxCmdSN)
		c.gotStatus(m.StatSN)
		if len(data) < iscsiwire.BHSLen {
			return brokenf("the target sent a Reject (%s) without the rejected header", iscsiwire.RejectReasonName(m.Reason))
		}
		itt := binary.BigEndian.Uint32(data[16:20])
		op := data[0] & 0x3f
		if (t.cmd != nil && itt == t.itt) || (t.tmfITT != 0 && itt == t.tmfITT) || (t.logoutITT != 0 && itt == t.logoutITT) {
			return brokenf("the target rejected our %s (%s)", iscsiwire.OpName(op), iscsiwire.RejectReasonName(m.Reason))
		}
	case iscsiwire.OpTaskMgmtResp:
		m := iscsiwire.DecodeTaskMgmtResponse(&hdr)
		if err := discard(); err != nil {
			return err
		}
		c.updateCmdSN(m.ExpCmdSN, m.MaxCmdSN)
		c.gotStatus(m.StatSN)
		if t.tmfITT != 0 && m.ITT == t.tmfITT {
			t.tmfDone, t.tmfResp = true, m.Response
		}
	case iscsiwire.OpLogoutResp:
		m := iscsiwire.DecodeLogoutResponse(&hdr)
		if err := discard(); err != nil {
			return err
		}
		c.updateCmdSN(m.ExpCmdSN, m.MaxCmdSN)
		c.gotStatus(m.StatSN)
		if t.logoutITT != 0 && m.ITT == t.logoutITT {
			t.logoutDone = true
		}
	default:
		return protocol("unexpected %s in full feature phase", iscsiwire.OpName(hdr.Opcode()))
	}
	return nil
}

// resid is the residual count of t's command: the target's underflow, or
// the Data-In bytes that never came, whichever is larger.
func (t *task) resid(underflow bool, residual uint32) int {
	n := len(t.cmd.Data)
	if t.cmd.Dir == scsi.DirNone {
		return 0
	}
	r := 0
	if underflow {
		r = int(min(residual, uint32(n)))
	}
	if t.cmd.Dir == scsi.DirFromDevice && n-t.received > r {
		r = n - t.received
	}
	return r
}
