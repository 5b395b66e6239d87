// Package scsifault wraps a scsi.Transport and injects faults into the
// commands it carries: the Nth command with a given opcode answers CHECK
// CONDITION with given sense (without reaching the device), or another
// status, or its connection breaks before or after the device ran it, or
// it waits for a gate or a delay first. With the in-process vtl transport
// (tools/vtl/emu: Library.Transport) it gives storaged's drive logic and
// the director fast tests of failures a real library produces rarely —
// the device underneath stays the real emulator, not a mock.
//
// The wrapper is safe for use by one goroutine at a time, as every
// scsi.Transport is; rules may be added from another goroutine.
package scsifault

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// AnyOp matches every opcode in Rule.Op.
const AnyOp = -1

// Rule is one fault: which command it hits and what happens.
type Rule struct {
	// Op is the opcode to match (scsi.OpWrite6 …) or AnyOp.
	Op int
	// Nth is which matching command is hit, counting from 1 after the
	// rule was added; 0 hits every matching command.
	Nth int
	// Times bounds how many commands the rule hits when Nth is 0
	// (0: unlimited).
	Times int

	// Effects (Gate and Delay first, then at most one of the others):

	// Gate: wait until it is closed before going on (tests synchronise a
	// command with something else, with no sleep).
	Gate <-chan struct{}
	// Delay: wait this long before going on.
	Delay time.Duration
	// Sense: answer CHECK CONDITION with these sense bytes (see Sense);
	// the command does not reach the device.
	Sense []byte
	// Status: answer this SAM status (e.g. scsi.StatusBusy,
	// scsi.StatusReservationConflict); the command does not reach the
	// device.
	Status byte
	// DropBefore: the connection breaks before the command is sent: Do
	// fails with an error wrapping ErrDropped; nothing ran.
	DropBefore bool
	// DropAfter: the device runs the command but its answer is lost: Do
	// fails with an error wrapping ErrDropped — the fate is unknown to
	// the caller (a WRITE is on tape, a SPACE has moved).
	DropAfter bool
	// HostStatus: the device runs the command, then the answer carries
	// this Linux host status (0x03 DID_TIME_OUT, 0x07 DID_ERROR …).
	HostStatus uint16
}

// ErrDropped is wrapped by the error of a command whose connection a rule
// broke.
var ErrDropped = errors.New("connection dropped by an injected fault")

// Hit records one command a rule hit.
type Hit struct {
	Rule int // index in the order rules were added
	CDB  []byte
}

// Transport is a scsi.Transport with injected faults.
type Transport struct {
	T     scsi.Transport
	mu    sync.Mutex
	rules []*rule
	hits  []Hit
}

type rule struct {
	Rule
	seen, hit int
}

// Wrap returns t with rules.
func Wrap(t scsi.Transport, rules ...Rule) *Transport {
	f := &Transport{T: t}
	for _, r := range rules {
		f.Add(r)
	}
	return f
}

// Add adds a rule; counting for it starts now.
func (f *Transport) Add(r Rule) {
	f.mu.Lock()
	f.rules = append(f.rules, &rule{Rule: r})
	f.mu.Unlock()
}

// Reset removes every rule (the hit log stays).
func (f *Transport) Reset() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
}

// Hits returns the commands rules hit so far.
func (f *Transport) Hits() []Hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Hit(nil), f.hits...)
}

// match returns the first rule that hits cmd, counting it.
func (f *Transport) match(cmd *scsi.Command) *rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	var chosen *rule
	for i, r := range f.rules {
		if len(cmd.CDB) == 0 || r.Op != AnyOp && byte(r.Op) != cmd.CDB[0] || r.Op < AnyOp || r.Op > 0xFF {
			continue
		}
		r.seen++
		hit := r.Nth == r.seen || r.Nth == 0 && (r.Times == 0 || r.hit < r.Times)
		if hit && chosen == nil {
			r.hit++
			chosen = r
			f.hits = append(f.hits, Hit{Rule: i, CDB: append([]byte(nil), cmd.CDB...)})
		}
	}
	return chosen
}

// Do implements scsi.Transport.
func (f *Transport) Do(cmd *scsi.Command) (scsi.Result, error) {
	r := f.match(cmd)
	if r == nil {
		return f.T.Do(cmd)
	}
	if r.Gate != nil {
		<-r.Gate
	}
	if r.Delay > 0 {
		time.Sleep(r.Delay)
	}
	op := "empty CDB"
	if len(cmd.CDB) > 0 {
		op = scsi.OpName(cmd.CDB[0])
	}
	switch {
	case r.Sense != nil:
		return scsi.Result{Status: scsi.StatusCheckCondition, Sense: append([]byte(nil), r.Sense...), Resid: len(cmd.Data)}, nil
	case r.Status != 0:
		return scsi.Result{Status: r.Status, Resid: len(cmd.Data)}, nil
	case r.DropBefore:
		return scsi.Result{}, fmt.Errorf("%s: sending %s: %w (the command was not sent)", f.Addr(), op, ErrDropped)
	}
	res, err := f.T.Do(cmd)
	switch {
	case err != nil:
		return res, err
	case r.DropAfter:
		return scsi.Result{}, fmt.Errorf("%s: reading the answer to %s (its outcome is unknown): %w", f.Addr(), op, ErrDropped)
	case r.HostStatus != 0:
		res.HostStatus = r.HostStatus
	}
	return res, nil
}

// Addr implements scsi.Transport.
func (f *Transport) Addr() string { return f.T.Addr() }

// Close implements scsi.Transport.
func (f *Transport) Close() error { return f.T.Close() }

// MaxTransfer forwards the wrapped transport's limit.
func (f *Transport) MaxTransfer() int { return scsi.MaxTransfer(f.T) }

// Sense builds fixed-format sense data (18 bytes, response code 0x70)
// with key, ASC and ASCQ, as a drive sends it.
func Sense(key, asc, ascq byte) []byte {
	s := make([]byte, 18)
	s[0], s[2], s[7], s[12], s[13] = 0x70, key&0x0F, 10, asc, ascq
	return s
}
