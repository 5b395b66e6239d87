package iscsi

import (
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Session and connection reinstatement (RFC 7143 §6.3.5): a login with
// the TSIH of a live session takes the session over (its nexus and
// reservation stay, CmdSN goes on); a login with TSIH 0 and the same
// initiator and ISID replaces the session (the old nexus ends, its
// reservation with it). Another initiator with the same ISID is another
// session.
func TestReinstatement(t *testing.T) {
	wd := newWorld(t, nil)
	const who = "iqn.2026-12.test:reinstate"
	isid := [6]byte{0x80, 1, 1, 1, 0, 0}
	ncA, rA, wA, lrA := rawLogin(t, wd.addr, who, isid, 0)
	sn := lrA.ExpCmdSN
	st, sn := rawCmd(t, rA, wA, 1, reserve6(), sn)
	if st == scsi.StatusCheckCondition { // the new nexus's unit attention
		st, sn = rawCmd(t, rA, wA, 1, reserve6(), sn)
	}
	if st != scsi.StatusGood {
		t.Fatalf("RESERVE: status 0x%02x", st)
	}

	// Connection reinstatement: same TSIH.
	_, rB, wB, lrB := rawLogin(t, wd.addr, who, isid, lrA.TSIH)
	if lrB.TSIH != lrA.TSIH || lrB.ExpCmdSN != sn {
		t.Fatalf("connection reinstatement: TSIH %d ExpCmdSN %d, want %d and %d", lrB.TSIH, lrB.ExpCmdSN, lrA.TSIH, sn)
	}
	if _, err := ncA.Read(make([]byte, 1)); err == nil {
		t.Fatal("the replaced connection is still open")
	}
	if st, sn = rawCmd(t, rB, wB, 1, tur(), sn); st == scsi.StatusReservationConflict {
		t.Fatal("the session lost its own reservation when its connection was reinstated")
	}

	// Another initiator (same ISID): a different session, in conflict.
	_, rO, wO, lrO := rawLogin(t, wd.addr, "iqn.2026-12.test:other", isid, 0)
	if st, _ := rawCmd(t, rO, wO, 1, tur(), lrO.ExpCmdSN); st != scsi.StatusReservationConflict {
		t.Fatalf("other initiator: status 0x%02x, want RESERVATION CONFLICT", st)
	}

	// Session reinstatement: TSIH 0 again. The old session ends first.
	_, rC, wC, lrC := rawLogin(t, wd.addr, who, isid, 0)
	if lrC.TSIH == lrA.TSIH {
		t.Fatal("session reinstatement kept the old TSIH")
	}
	snC := lrC.ExpCmdSN
	st, snC = rawCmd(t, rC, wC, 1, tur(), snC)
	if st == scsi.StatusReservationConflict {
		t.Fatal("the replaced session's reservation survived")
	}
	if st, _ := rawCmd(t, rO, wO, 1, reserve6(), lrO.ExpCmdSN+1); st != scsi.StatusGood && st != scsi.StatusCheckCondition {
		t.Fatalf("other initiator RESERVE after the reinstatement: status 0x%02x", st)
	}
}
