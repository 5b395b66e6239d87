package iscsi

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	ini "github.com/tapeward/tapeward/storaged/scsi/iscsi"
	w "github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// rawSession logs in to the target by hand (no digests) and returns the
// connection's reader and writer.
func rawSession(t *testing.T, addr, initiator string) (net.Conn, *w.Reader, *w.Writer) {
	t.Helper()
	nc, r, wr, _ := rawLogin(t, addr, initiator, [6]byte{0x80, 9, 9, 9, 0, 0}, 0)
	return nc, r, wr
}

// rawLogin logs in with an ISID and TSIH and returns the final Login
// Response too.
func rawLogin(t *testing.T, addr, initiator string, isid [6]byte, tsih uint16) (net.Conn, *w.Reader, *w.Writer, w.LoginResponse) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r, wr := w.NewReader(nc), w.NewWriter(nc)
	keys := w.AppendText(nil, w.KV{Key: "InitiatorName", Value: initiator}, w.KV{Key: "SessionType", Value: "Normal"},
		w.KV{Key: "TargetName", Value: DefaultName}, w.KV{Key: "AuthMethod", Value: "None"})
	req := w.LoginRequest{Transit: true, CSG: w.StageSecurity, NSG: w.StageFullFeature, ISID: isid, TSIH: tsih, ITT: 1}
	if err := wr.Write(w.NewPDU(&req, keys)); err != nil {
		t.Fatal(err)
	}
	p, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	lr := w.DecodeLoginResponse(&p.BHS)
	if p.Opcode() != w.OpLoginResp || lr.StatusClass != 0 || lr.NSG != w.StageFullFeature || lr.TSIH == 0 {
		t.Fatalf("login: %s %+v", p, lr)
	}
	return nc, r, wr, lr
}

// rawCmd sends a no-data command and returns its status (and the next
// CmdSN).
func rawCmd(t *testing.T, r *w.Reader, wr *w.Writer, lun int, cdb []byte, cmdSN uint32) (byte, uint32) {
	t.Helper()
	cmd := w.SCSICommand{Final: true, Attr: w.AttrSimple, LUN: w.LUN(lun), ITT: cmdSN + 100, CmdSN: cmdSN}
	copy(cmd.CDB[:], cdb)
	if err := wr.Write(w.NewPDU(&cmd, nil)); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.Read()
		if err != nil {
			t.Fatalf("% X: %v", cdb, err)
		}
		if p.Opcode() == w.OpSCSIResponse {
			return w.DecodeSCSIResponse(&p.BHS).Status, cmdSN + 1
		}
	}
}

// NOP-In keepalive: an initiator that answers the target's pings keeps
// its session; one that vanished without closing TCP is dropped after
// two intervals, and its reservation goes with it.
func TestNOPKeepalive(t *testing.T) {
	const iv = 100 * time.Millisecond
	wd := newWorld(t, func(c *Config) { c.NOPInterval = iv })

	// A silent initiator reserves drive0, then stops answering.
	_, r, wr := rawSession(t, wd.addr, "iqn.2026-12.test:silent")
	cmd := w.SCSICommand{Final: true, Attr: w.AttrSimple, LUN: w.LUN(1), ITT: 7, CmdSN: 0}
	copy(cmd.CDB[:], reserve6())
	for range 2 { // the first RESERVE draws the new nexus's unit attention
		cmd.ITT++
		if err := wr.Write(w.NewPDU(&cmd, nil)); err != nil {
			t.Fatal(err)
		}
		cmd.CmdSN++
		p, err := r.Read()
		if err != nil || p.Opcode() != w.OpSCSIResponse {
			t.Fatalf("RESERVE: %v %v", p, err)
		}
		if st := w.DecodeSCSIResponse(&p.BHS).Status; st == scsi.StatusGood {
			break
		}
	}
	// The project's initiator answers pings between commands.
	d, tr := wd.dialLUN(t, wd.addr, 2, ini.Options{})
	testenv.WaitFor(t, "the silent initiator to be dropped", func() bool {
		return strings.Contains(wd.logs.String(), `msg="iSCSI initiator does not answer NOP-In pings; dropping the connection" initiator=iqn.2026-12.test:silent`)
	})
	p, err := r.Read() // the pings it ignored, then the end of the connection
	for err == nil && p.Opcode() == w.OpNOPIn {
		if m := w.DecodeNOPIn(&p.BHS); m.ITT != w.ReservedTag || m.TTT == w.ReservedTag {
			t.Fatalf("target ping %+v: want ITT 0xffffffff and a TTT", m)
		}
		p, err = r.Read()
	}
	if err == nil {
		t.Fatalf("after the pings: %s, want the connection closed", p)
	}
	// Its reservation is gone: another initiator reserves drive0.
	d0, _ := wd.dialLUN(t, wd.addr, 1, ini.Options{InitiatorName: "iqn.2026-12.test:next"})
	d0.TestUnitReady()
	testenv.WaitFor(t, "the project initiator to have answered pings", func() bool { return tr.Stats().NOPIns >= 2 })
	d.TestUnitReady()
	if err := d.TestUnitReady(); err != nil && !strings.Contains(err.Error(), "medium not present") && !strings.Contains(err.Error(), "3A") {
		t.Fatalf("after idle pings: %v", err)
	}
	if st := tr.Stats(); st.Logins != 1 {
		t.Fatalf("the answering initiator logged in %d times, want 1 (never dropped)", st.Logins)
	}
}
