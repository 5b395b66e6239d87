package iscsi_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
)

// stallProxy forwards TCP between the initiator and tgt and can hold the
// target's bytes back (a stalled network or a target that stops
// answering) while the initiator's still go through.
type stallProxy struct {
	l      net.Listener
	mu     sync.Mutex
	gate   chan struct{} // non-nil: target→initiator bytes wait for it
	fromIn atomic.Int64  // bytes initiator→target
	conns  []net.Conn
	// clients are the initiator-side connections, newest last.
	clients []net.Conn
	sent    []byte // every byte initiator→target
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l}
	t.Cleanup(func() {
		l.Close()
		p.release()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, tc)
			p.clients = append(p.clients, c)
			p.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.mu.Lock()
						p.sent = append(p.sent, buf[:n]...)
						p.mu.Unlock()
						p.fromIn.Add(int64(n))
						tc.Write(buf[:n])
					}
					if err != nil {
						tc.Close()
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := tc.Read(buf)
					p.mu.Lock()
					g := p.gate
					p.mu.Unlock()
					if g != nil {
						<-g
					}
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *stallProxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

// cut closes every connection at once, forwarding nothing held: a
// network or target that dies with answers in flight.
func (p *stallProxy) cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// inject sends b to the newest initiator connection as if the target
// had sent it (between PDUs: call it while the initiator is idle).
func (p *stallProxy) inject(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.clients[len(p.clients)-1].Write(b)
	return err
}

func (p *stallProxy) release() {
	p.mu.Lock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
	p.mu.Unlock()
}

func tur(timeout time.Duration) *scsi.Command {
	return &scsi.Command{CDB: []byte{0, 0, 0, 0, 0, 0}, Dir: scsi.DirNone, Timeout: timeout}
}

// TestCommandTimeout: a command whose answer does not come within its
// timeout gets ABORT TASK. When the answers then arrive (the command
// completed while the abort was on its way) its real result is returned
// on the same connection; when nothing answers the abort either, the
// command fails with its outcome unknown and the next one logs in again.
func TestCommandTimeout(t *testing.T) {
	defer iscsi.SetAbortWait(300 * time.Millisecond)()
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "stall", 8)
	px := newStallProxy(t, srv.Portal)
	addr := strings.Replace(tg.Drive, srv.Portal, px.l.Addr().String(), 1)
	tr := dial(t, addr, iscsi.Options{})
	scsi.NewDevice(tr).DrainUnitAttentions()

	// Late answers: released once the ABORT TASK (48 bytes after the
	// command's 48) has reached tgt.
	px.hold()
	before := px.fromIn.Load()
	go func() {
		for px.fromIn.Load() < before+96 {
			time.Sleep(time.Millisecond) // polls the proxy's byte count
		}
		px.release()
	}()
	res, err := tr.Do(tur(100 * time.Millisecond))
	if err != nil || res.Status != scsi.StatusGood || res.HostStatus != 0 {
		t.Fatalf("TEST UNIT READY answered late: %+v %v, want its GOOD status", res, err)
	}
	if st := tr.Stats(); st.Aborts != 1 || st.Logins != 1 {
		t.Fatalf("stats %+v: want one ABORT TASK and the connection kept", st)
	}

	// No answer at all.
	px.hold()
	_, err = tr.Do(tur(100 * time.Millisecond))
	if !iscsi.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), "ABORT TASK failed") {
		t.Fatalf("TEST UNIT READY never answered: %v, want outcome unknown after a failed ABORT TASK", err)
	}
	t.Log(err)
	px.release()
	if res, err := tr.Do(tur(5 * time.Second)); err != nil || res.Status == scsi.StatusReservationConflict {
		t.Fatalf("the next command: %+v %v, want a new login", res, err)
	}
	if st := tr.Stats(); st.Logins != 2 {
		t.Fatalf("stats %+v: want a second login", st)
	}
}

// asyncPDU is an Asynchronous Message as a target sends it. StatSN,
// ExpCmdSN and MaxCmdSN are 0: below what the session has, so they
// change nothing.
func asyncPDU(t *testing.T, lun uint64, event byte, data []byte) []byte {
	var b bytes.Buffer
	if err := iscsiwire.NewWriter(&b).Write(iscsiwire.NewPDU(&iscsiwire.AsyncMessage{LUN: lun, Event: event}, data)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAsyncMessages: asynchronous messages arriving between commands (tgt
// sends none, so the proxy in front of it adds them). A SCSI event
// carrying a unit attention is reported to a following command; a
// request to log out is honoured and the next command logs in again.
func TestAsyncMessages(t *testing.T) {
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "async", 8)
	px := newStallProxy(t, srv.Portal)
	d, tr := device(t, strings.Replace(tg.Drive, srv.Portal, px.l.Addr().String(), 1), iscsi.Options{})
	if err := d.TestUnitReady(); err != nil {
		t.Fatal(err)
	}
	// Fixed-format sense: UNIT ATTENTION, 2A/01 mode parameters changed.
	sense := []byte{0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2a, 0x01, 0, 0, 0, 0}
	if err := px.inject(asyncPDU(t, iscsiwire.LUN(1), iscsiwire.AsyncSCSIEvent, iscsiwire.SenseSegment(sense))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the asynchronous message to arrive", func() bool { return tr.Stats().AsyncEvents == 1 })
	seen, err := d.DrainUnitAttentions()
	if err != nil || len(seen) != 1 || seen[0].ASC != 0x2a || seen[0].ASCQ != 0x01 {
		t.Fatalf("after an asynchronous unit attention: seen %v, %v; want 2A/01 once", seen, err)
	}

	if err := px.inject(asyncPDU(t, iscsiwire.LUN(1), iscsiwire.AsyncLogoutRequest, nil)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the logout request to arrive", func() bool { return tr.Stats().AsyncEvents == 2 })
	// The new login is a new nexus: its unit attention is the proof.
	if seen, err := d.DrainUnitAttentions(); err != nil || len(seen) == 0 {
		t.Fatalf("after the logout request: unit attentions %v, %v; want the new nexus's", seen, err)
	}
	if st := tr.Stats(); st.Logins != 2 {
		t.Fatalf("stats %+v after the target asked for a logout: want a second login", st)
	}
}

// TestRejectedCommand: a command the target answers with a Reject (here
// added by the proxy in front of tgt, naming the command's own header)
// fails with the reason, its outcome unknown, and the next command logs
// in again.
func TestRejectedCommand(t *testing.T) {
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "reject", 8)
	px := newStallProxy(t, srv.Portal)
	d, tr := device(t, strings.Replace(tg.Drive, srv.Portal, px.l.Addr().String(), 1), iscsi.Options{})
	px.hold()
	before := px.fromIn.Load()
	errc := make(chan error, 1)
	go func() { errc <- d.TestUnitReady() }()
	waitUntil(t, "TEST UNIT READY to reach tgt", func() bool { return px.fromIn.Load() >= before+48 })
	px.mu.Lock()
	rejected := append([]byte(nil), px.sent[before:before+48]...)
	px.mu.Unlock()
	var b bytes.Buffer
	iscsiwire.NewWriter(&b).Write(iscsiwire.NewPDU(&iscsiwire.Reject{Reason: iscsiwire.RejectInvalidField}, rejected))
	if err := px.inject(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	px.cut()
	px.release()
	if !iscsi.IsOutcomeUnknown(err) || !strings.Contains(err.Error(), "the target rejected our SCSI Command (invalid PDU field)") {
		t.Fatalf("a rejected TEST UNIT READY: %v, want the Reject's reason", err)
	}
	t.Log(err)
	d.DrainUnitAttentions()
	if err := d.TestUnitReady(); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Logins != 2 {
		t.Fatalf("stats %+v: want a new login after the Reject", st)
	}
}
