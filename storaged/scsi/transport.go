// Package scsi is Tapeward's SCSI initiator layer: the Transport that carries
// one command to a device (Linux SG_IO or the vtl socket), sense decoding,
// CDB builders and parsers for the SPC/SSC/SMC commands a backup daemon uses,
// and the tape data encryption (SECURITY PROTOCOL IN/OUT) pages.
//
// The byte-level spec is ../shared/docs/scsi-reference.md; section numbers in
// comments ("§4.3") refer to it.
//
// Usage: open a Transport with storaged/scsi/dial ("/dev/sg3",
// "vtl:/run/vtl.sock#drive0"), wrap it with NewDevice, and call methods:
//
//	dev, err := dial.OpenDevice(addr, scsi.TypeTape)
//	seen, err := dev.DrainUnitAttentions()     // after open / load
//	p, err := dev.Probe()                      // AME? algorithm index, U-KAD limit, CKOD
//	st, err := dev.SetKey(key, scsi.SetKeyOpts{UKAD: fp}) // encrypt+mixed, verified read-back
//	w, err := dev.Write(block)                 // w.EarlyWarning: change volumes soon
//	n, err := dev.VerifyEncrypted(blk, fp)     // NBES check of a written block
//	r, err := dev.Read(buf, true)              // r.N, r.Filemark, r.EOD, r.Overlength
//	st, err = dev.Clear()                      // modes 0/0, verified read-back
//
// Errors: a CHECK CONDITION is a *CommandError wrapping a *Sense (use
// SenseOf, IsNoMedium, IsUnitAttention …); host/driver failures wrap a
// *TransportError; drives without AME give *NoAMEError; a drive that did not
// take the key gives *KeyNotTakenError; a block that is not encrypted gives
// *NotEncryptedError. No key byte ever appears in an error or a String().
package scsi

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Direction is the data transfer direction of one command, as SG_IO's
// dxfer_direction carries it.
type Direction uint8

const (
	DirNone       Direction = 0 // no data phase (SG_DXFER_NONE)
	DirToDevice   Direction = 1 // data out, e.g. WRITE, MODE SELECT, SPOUT (SG_DXFER_TO_DEV)
	DirFromDevice Direction = 2 // data in, e.g. READ, INQUIRY, SPIN (SG_DXFER_FROM_DEV)
)

func (d Direction) String() string {
	switch d {
	case DirNone:
		return "none"
	case DirToDevice:
		return "to-device"
	case DirFromDevice:
		return "from-device"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// SAM status bytes (§7.1).
const (
	StatusGood                = 0x00
	StatusCheckCondition      = 0x02
	StatusConditionMet        = 0x04
	StatusBusy                = 0x08
	StatusReservationConflict = 0x18
	StatusTaskSetFull         = 0x28
	StatusACAActive           = 0x30
	StatusTaskAborted         = 0x40
)

// Command is one SCSI command as a transport carries it.
type Command struct {
	CDB []byte
	Dir Direction
	// Data is the data-out buffer (DirToDevice: every byte is sent) or the
	// data-in buffer (DirFromDevice: its length is the allocation / transfer
	// length, and the device fills a prefix of it).
	Data []byte
	// Timeout is the device-side command timeout. Zero is not allowed on
	// real hardware; callers use the per-opcode defaults of this package.
	Timeout time.Duration
}

// Result is what came back for one command. A CHECK CONDITION is a Result
// (Status 0x02 with Sense), not a transport error: on tape, filemarks, early
// warning and short blocks arrive that way.
type Result struct {
	Status byte   // SAM status byte
	Sense  []byte // sense bytes actually returned (may be empty)
	// Resid is the number of data bytes not transferred (dxfer_len − actual).
	Resid int
	// HostStatus and DriverStatus are Linux SG_IO's transport-level codes;
	// non-zero means the command's fate on the device is unknown.
	HostStatus   uint16
	DriverStatus uint16
}

// Transferred is the number of data bytes actually moved for cmd, within
// 0..len(cmd.Data) whatever residual the transport reported.
func (r Result) Transferred(cmd *Command) int {
	n := len(cmd.Data) - r.Resid
	if n < 0 {
		return 0
	}
	if n > len(cmd.Data) {
		return len(cmd.Data)
	}
	return n
}

// Transport carries commands to one logical unit (a drive or a changer).
// Implementations: SG_IO on a Linux /dev/sgN node, and the vtl unix socket.
// A Transport is not safe for concurrent use; one command at a time.
type Transport interface {
	// Do sends one command. err is non-nil only when the command could not
	// be carried (OS error, broken socket); device answers are in Result.
	Do(cmd *Command) (Result, error)
	// Addr is the device address, for messages ("/dev/sg3",
	// "vtl:/run/vtl.sock#drive0").
	Addr() string
	Close() error
}

// MaxTransferer is implemented by a Transport that knows the largest data
// phase (in bytes) one command can carry: on Linux the sg node's queue
// limit (a larger SG_IO fails with ENOMEM), on vtl what the unit
// advertises. Transport stays a three-method seam; wrappers forward this.
type MaxTransferer interface {
	// MaxTransfer is the limit in bytes; 0 means unknown (no limit known).
	MaxTransfer() int
}

// MaxTransfer returns t's data phase limit in bytes, 0 when t does not
// know one.
func MaxTransfer(t Transport) int {
	if m, ok := t.(MaxTransferer); ok {
		return max(m.MaxTransfer(), 0)
	}
	return 0
}

// ErrBusy is matched (errors.Is) by a *BusyDeviceError.
var ErrBusy = errors.New("device busy")

// BusyDeviceError refuses to open a device another process holds: Tapeward
// opens drives and changers exclusively (O_EXCL on an sg node, one holder
// per unit on vtl), so that two daemons — or a daemon and `tapekey drive` —
// never interleave commands or clear each other's keys.
type BusyDeviceError struct {
	Addr string // "/dev/sg3", "vtl:/run/vtl.sock#drive0"
	// Detail is what the OS or vtl said.
	Detail string
}

func (e *BusyDeviceError) Error() string {
	s := "device busy: another storaged or tapekey has " + e.Addr + " open"
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s + "; stop that process (" + busyHint(e.Addr) + ") or use another device"
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyDeviceError) Is(target error) bool { return target == ErrBusy }

func busyHint(addr string) string {
	if sock, ok := strings.CutPrefix(addr, "vtl:"); ok {
		if i := strings.LastIndexByte(sock, '#'); i > 0 {
			return "`vtl status --socket " + sock[:i] + " --json` counts each drive's connections"
		}
		return "another client of that vtl holds it"
	}
	if strings.HasPrefix(addr, "iscsi://") {
		return "the target lists the sessions holding it, e.g. `tgtadm --lld iscsi --mode target --op show` on tgt"
	}
	if strings.HasPrefix(addr, "/") {
		return "find it with `fuser -v " + addr + "`"
	}
	return "another connection holds it"
}

// IsBusy reports whether err is a *BusyDeviceError.
func IsBusy(err error) bool { return errors.Is(err, ErrBusy) }
