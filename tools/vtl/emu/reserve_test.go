package emu

import (
	"time"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

func reserve6() []byte { return []byte{0x16, 0, 0, 0, 0, 0} }
func release6() []byte { return []byte{0x17, 0, 0, 0, 0, 0} }

// SPC-2 RESERVE(6)/RELEASE(6): another nexus gets RESERVATION CONFLICT
// except for INQUIRY, REQUEST SENSE, REPORT LUNS and RELEASE; the
// reservation ends with RELEASE, with its holder's nexus and with a LUN
// reset.
func TestReserveRelease(t *testing.T) {
	for _, unit := range []string{"drive0", "changer"} {
		t.Run(unit, func(t *testing.T) {
			h := newTestLib(t, nil)
			a, b := h.dial(unit), h.dial(unit)
			drainUA(t, a)
			drainUA(t, b)
			must(t, a, reserve6(), nil, 0)
			must(t, a, reserve6(), nil, 0) // the holder may reserve again
			if r := run(t, b, tur(), nil, 0); r.status != scsi.StatusReservationConflict {
				t.Fatalf("TUR from another nexus: %v, want RESERVATION CONFLICT", r)
			}
			if r := run(t, b, reserve6(), nil, 0); r.status != scsi.StatusReservationConflict {
				t.Fatalf("RESERVE from another nexus: %v", r)
			}
			must(t, b, []byte{0x12, 0, 0, 0, 96, 0}, nil, 96)
			must(t, b, []byte{0x03, 0, 0, 0, 18, 0}, nil, 18)
			must(t, b, []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0}, nil, 16)
			must(t, b, release6(), nil, 0) // GOOD, releases nothing
			if r := run(t, b, tur(), nil, 0); r.status != scsi.StatusReservationConflict {
				t.Fatalf("TUR after a foreign RELEASE: %v", r)
			}
			must(t, a, release6(), nil, 0)
			if r := run(t, b, tur(), nil, 0); r.status == scsi.StatusReservationConflict {
				t.Fatal("still reserved after the holder's RELEASE")
			}
			must(t, b, reserve6(), nil, 0)
			b.Close()
			// The holder's nexus ended (when the server sees the socket
			// close): the reservation went with it.
			testenv.WaitFor(t, "the reservation to end with its holder's connection", func() bool {
				return run(t, a, tur(), nil, 0).status != scsi.StatusReservationConflict
			})
			expect(t, a, "5/24/00", []byte{0x16, 0x01, 0, 0, 0, 0}, nil, 0) // extent reservations are refused
		})
	}
}

func TestLUNResetReleases(t *testing.T) {
	h := newTestLib(t, nil)
	a, err := h.lib.Connect(helloFor("drive0"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := h.lib.Connect(helloFor("drive0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exec := func(c *Conn, cdb []byte) byte {
		return c.Exec(reqFor(cdb)).Status
	}
	// Take the power-on unit attention of each new nexus.
	for _, c := range []*Conn{a, b} {
		if r := c.Exec(reqFor(tur())); len(r.Sense) < 14 || r.Sense[2]&0xF != 6 {
			t.Fatalf("first TUR: status 0x%02x sense % X, want a unit attention", r.Status, r.Sense)
		}
	}
	if st := exec(a, reserve6()); st != 0 {
		t.Fatalf("RESERVE: status 0x%02x", st)
	}
	if st := exec(b, tur()); st != scsi.StatusReservationConflict {
		t.Fatalf("TUR: status 0x%02x, want conflict", st)
	}
	b.Reset()
	// b's reset released a's reservation; a sees the reset as a unit
	// attention, b does not.
	if st := exec(b, []byte{0x1E, 0, 0, 0, 1, 0}); st != 0 {
		t.Fatalf("PREVENT after reset: status 0x%02x", st)
	}
	r := a.Exec(reqFor(tur()))
	if r.Status != scsi.StatusCheckCondition || len(r.Sense) < 14 || r.Sense[2]&0xF != 6 || r.Sense[12] != 0x29 {
		t.Fatalf("holder after LUN reset: status 0x%02x sense % X, want 6/29/00", r.Status, r.Sense)
	}
}

func helloFor(unit string) vtlwire.Hello { return vtlwire.Hello{Unit: unit} }

func reqFor(cdb []byte) *vtlwire.Request {
	return &vtlwire.Request{Dir: scsi.DirNone, CDB: cdb, Timeout: time.Minute}
}
