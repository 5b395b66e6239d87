package scsi

import (
	"errors"
	"fmt"
	"time"
)

// Default command timeouts (§6.2: LTFS figures for IBM full-height LTO-9,
// 60 s for the "quick" class; §6.3 for the changer). They are always sent
// explicitly: a zero timeout means a driver default that differs between
// the sg and block-layer paths (§7.1, §10 item 11).
var defaultTimeouts = map[byte]time.Duration{
	OpLoadUnload:             960 * time.Second,
	0x2B:                     2940 * time.Second, // LOCATE(10)
	OpLocate16:               2940 * time.Second,
	OpRead6:                  2340 * time.Second,
	OpRewind:                 600 * time.Second,
	OpSpace6:                 2940 * time.Second,
	OpSpace16:                2940 * time.Second,
	OpWrite6:                 1500 * time.Second,
	OpWriteFilemarks6:        1620 * time.Second,
	0x80:                     1620 * time.Second, // WRITE FILEMARKS(16)
	OpErase6:                 74341 * time.Second,
	0x04:                     3000 * time.Second,  // FORMAT MEDIUM
	0x13:                     63300 * time.Second, // VERIFY(6)
	OpInitializeElementStat:  30 * time.Minute,
	OpInitializeElementRange: 30 * time.Minute,
	0x37:                     30 * time.Minute, // INITIALIZE ELEMENT STATUS WITH RANGE
	OpMoveMedium:             5 * time.Minute,
	OpReadElementStatus:      5 * time.Minute,
}

// QuickTimeout is the timeout of every command not in the table
// (INQUIRY, MODE, LOG, TUR, READ POSITION, SPIN/SPOUT …).
const QuickTimeout = 60 * time.Second

// DefaultTimeout returns the timeout used for an opcode when the Command
// does not carry one.
func DefaultTimeout(opcode byte) time.Duration {
	if t, ok := defaultTimeouts[opcode]; ok {
		return t
	}
	return QuickTimeout
}

// OpName names an opcode for messages.
func OpName(op byte) string {
	switch op {
	case OpTestUnitReady:
		return "TEST UNIT READY"
	case OpRewind:
		return "REWIND"
	case OpRequestSense:
		return "REQUEST SENSE"
	case OpReadBlockLimits:
		return "READ BLOCK LIMITS"
	case OpInitializeElementStat:
		return "INITIALIZE ELEMENT STATUS"
	case OpRead6:
		return "READ(6)"
	case OpWrite6:
		return "WRITE(6)"
	case OpWriteFilemarks6:
		return "WRITE FILEMARKS(6)"
	case OpSpace6:
		return "SPACE(6)"
	case OpInquiry:
		return "INQUIRY"
	case OpModeSelect6:
		return "MODE SELECT(6)"
	case OpErase6:
		return "ERASE(6)"
	case OpModeSense6:
		return "MODE SENSE(6)"
	case OpLoadUnload:
		return "LOAD UNLOAD"
	case OpPreventAllow:
		return "PREVENT ALLOW MEDIUM REMOVAL"
	case OpReadPosition:
		return "READ POSITION"
	case OpLogSelect:
		return "LOG SELECT"
	case OpLogSense:
		return "LOG SENSE"
	case OpModeSelect10:
		return "MODE SELECT(10)"
	case OpModeSense10:
		return "MODE SENSE(10)"
	case OpLocate16:
		return "LOCATE(16)"
	case OpSpace16:
		return "SPACE(16)"
	case OpReportLUNs:
		return "REPORT LUNS"
	case OpSecurityProtocolIn:
		return "SECURITY PROTOCOL IN"
	case OpMoveMedium:
		return "MOVE MEDIUM"
	case OpSecurityProtocolOut:
		return "SECURITY PROTOCOL OUT"
	case OpReadElementStatus:
		return "READ ELEMENT STATUS"
	case OpInitializeElementRange:
		return "INITIALIZE ELEMENT STATUS WITH RANGE (vendor)"
	}
	return fmt.Sprintf("opcode 0x%02X", op)
}

// CommandError is a command that completed with CHECK CONDITION (Err is
// the *Sense), another non-GOOD status (Err is a *StatusError), or that
// the transport could not carry (Err is a *TransportError or an OS error).
// errors.As(err, new(*scsi.Sense)) reaches the sense data.
type CommandError struct {
	Addr string // device address, e.g. "/dev/sg3"
	Op   string // command name, e.g. "SECURITY PROTOCOL IN"
	Err  error
}

func (e *CommandError) Error() string { return e.Addr + ": " + e.Op + ": " + e.Err.Error() }
func (e *CommandError) Unwrap() error { return e.Err }

// StatusError is a SAM status other than GOOD or CHECK CONDITION
// (BUSY, RESERVATION CONFLICT, TASK SET FULL …).
type StatusError struct{ Status byte }

func (e *StatusError) Error() string { return "device returned status " + StatusName(e.Status) }

// StatusName names a SAM status byte.
func StatusName(s byte) string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY (retry later)"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT (another initiator holds a reservation)"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return fmt.Sprintf("0x%02X", s)
}

// Host status codes (Linux DID_*, §7.1).
var hostStatusNames = map[uint16]string{
	0x00: "DID_OK",
	0x01: "DID_NO_CONNECT (could not connect before timeout)",
	0x02: "DID_BUS_BUSY (bus stayed busy)",
	0x03: "DID_TIME_OUT (command timed out)",
	0x04: "DID_BAD_TARGET (bad target)",
	0x05: "DID_ABORT (command aborted)",
	0x06: "DID_PARITY (parity error)",
	0x07: "DID_ERROR (internal host adapter error)",
	0x08: "DID_RESET (reset by somebody)",
	0x09: "DID_BAD_INTR (unexpected interrupt)",
	0x0A: "DID_PASSTHROUGH",
	0x0B: "DID_SOFT_ERROR (low-level driver wants a retry)",
	0x0C: "DID_IMM_RETRY",
	0x0D: "DID_REQUEUE",
	0x0E: "DID_TRANSPORT_DISRUPTED (transport disrupted)",
	0x0F: "DID_TRANSPORT_FAILFAST (transport class fastfailed)",
	0x10: "DID_TARGET_FAILURE",
	0x11: "DID_NEXUS_FAILURE",
	0x12: "DID_ALLOC_FAILURE",
	0x13: "DID_MEDIUM_ERROR",
}

// HostStatusName names a Linux host_status value.
func HostStatusName(h uint16) string {
	if n, ok := hostStatusNames[h]; ok {
		return n
	}
	return fmt.Sprintf("host status 0x%02X", h)
}

// Linux driver_status bits (§7.1).
const (
	DriverSense   = 0x08
	DriverTimeout = 0x06
)

// DriverStatusName names a Linux driver_status value.
func DriverStatusName(d uint16) string {
	var s string
	switch d & 0x0F {
	case 0:
		s = "DRIVER_OK"
	case 0x01:
		s = "DRIVER_BUSY"
	case 0x02:
		s = "DRIVER_SOFT"
	case 0x03:
		s = "DRIVER_MEDIA"
	case 0x04:
		s = "DRIVER_ERROR"
	case 0x05:
		s = "DRIVER_INVALID"
	case 0x06:
		s = "DRIVER_TIMEOUT (command timed out)"
	case 0x07:
		s = "DRIVER_HARD"
	case 0x08:
		s = "DRIVER_SENSE"
	default:
		s = fmt.Sprintf("driver status 0x%02X", d&0x0F)
	}
	if d&^0x0F != 0 {
		s += fmt.Sprintf(" (suggest 0x%02X)", d>>4)
	}
	return s
}

// TransportError is a command whose fate on the device is unknown: the
// host adapter or driver reported a failure (§7.1 steps 2–3). After one,
// the tape position must be re-read before any further writing.
type TransportError struct {
	HostStatus   uint16
	DriverStatus uint16
}

func (e *TransportError) Error() string {
	s := "transport failure:"
	if e.HostStatus != 0 {
		s += " " + HostStatusName(e.HostStatus)
	}
	if e.DriverStatus&^DriverSense != 0 {
		s += " " + DriverStatusName(e.DriverStatus)
	}
	return s + "; the command's effect on the device is unknown"
}

// Timeout reports a command timeout (DID_TIME_OUT or DRIVER_TIMEOUT).
func (e *TransportError) Timeout() bool {
	return e.HostStatus == 0x03 || e.DriverStatus&0x0F == DriverTimeout
}

// IsTransportError reports whether err is a *TransportError.
func IsTransportError(err error) bool {
	var t *TransportError
	return errors.As(err, &t)
}

// Device runs commands on one logical unit over a Transport: it fills in
// the default timeout, and turns non-GOOD outcomes into typed errors. It
// is not safe for concurrent use (neither is the Transport).
type Device struct {
	T Transport
	// Timeouts overrides the per-opcode defaults.
	Timeouts map[byte]time.Duration

	// OnUnitAttention, if set, is told about every unit attention that a
	// query command (INQUIRY, MODE/LOG SENSE, READ POSITION, READ ELEMENT
	// STATUS, SPIN …) swallowed and retried. Data-path and motion commands
	// never swallow one: the caller sees it as an error.
	OnUnitAttention func(*Sense)

	tde *ProbeResult // cached encryption capabilities (Probe)
}

// NewDevice wraps a transport.
func NewDevice(t Transport) *Device { return &Device{T: t} }

// Addr is the transport's address.
func (d *Device) Addr() string { return d.T.Addr() }

// Close closes the transport.
func (d *Device) Close() error { return d.T.Close() }

func (d *Device) timeout(op byte) time.Duration {
	if t, ok := d.Timeouts[op]; ok && t > 0 {
		return t
	}
	return DefaultTimeout(op)
}

func (d *Device) cmdErr(cmd *Command, err error) error {
	op := "empty CDB"
	if len(cmd.CDB) > 0 {
		op = OpName(cmd.CDB[0])
	}
	return &CommandError{Addr: d.T.Addr(), Op: op, Err: err}
}

// Run sends cmd and sorts the outcome without treating CHECK CONDITION as
// a failure: it returns the parsed sense (nil when GOOD) and an error only
// for transport failures and statuses other than GOOD/CHECK CONDITION. The
// data-path commands use it, since filemarks, early warning and short
// blocks arrive as CHECK CONDITION.
func (d *Device) Run(cmd *Command) (Result, *Sense, error) {
	if len(cmd.CDB) == 0 {
		return Result{}, nil, d.cmdErr(cmd, errors.New("empty CDB"))
	}
	if cmd.Timeout <= 0 {
		cmd.Timeout = d.timeout(cmd.CDB[0])
	}
	res, err := d.T.Do(cmd)
	if err != nil {
		return res, nil, d.cmdErr(cmd, err)
	}
	if res.HostStatus != 0 || res.DriverStatus&^DriverSense != 0 {
		return res, nil, d.cmdErr(cmd, &TransportError{HostStatus: res.HostStatus, DriverStatus: res.DriverStatus})
	}
	switch res.Status {
	case StatusGood, StatusConditionMet:
		return res, nil, nil
	case StatusCheckCondition:
		s, perr := ParseSense(res.Sense)
		if perr != nil {
			return res, nil, d.cmdErr(cmd, fmt.Errorf("CHECK CONDITION with unusable sense data (% X): %w", truncHex(res.Sense), perr))
		}
		return res, s, nil
	}
	return res, nil, d.cmdErr(cmd, &StatusError{Status: res.Status})
}

func truncHex(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// Exec sends cmd; any CHECK CONDITION becomes a *CommandError wrapping the
// *Sense. Use it for commands where every sense is a failure.
func (d *Device) Exec(cmd *Command) (Result, error) {
	res, s, err := d.Run(cmd)
	if err != nil {
		return res, err
	}
	if s != nil {
		return res, d.cmdErr(cmd, s)
	}
	return res, nil
}

// dataIn runs a data-in query with an n-byte buffer and returns the bytes
// transferred. Queries change nothing on the device, so a unit attention
// (the command was not executed) is reported to OnUnitAttention and the
// command re-issued, a bounded number of times; and a query the transport
// could not carry at all (no answer, e.g. a connection broken by a
// library power cycle) is asked once more.
func (d *Device) dataIn(cdb []byte, n int) ([]byte, error) {
	var err error
	carried := true
	for i := 0; i < uaRetries; i++ {
		cmd := &Command{CDB: cdb, Dir: DirFromDevice, Data: make([]byte, n)}
		var res Result
		res, err = d.Exec(cmd)
		if err == nil {
			return cmd.Data[:res.Transferred(cmd)], nil
		}
		if _, sensed := SenseOf(err); !sensed && !IsTransportError(err) && carried {
			carried = false
			continue
		}
		if !d.noteUA(err) {
			return nil, err
		}
	}
	return nil, err
}

func (d *Device) noteUA(err error) bool {
	s, ok := SenseOf(err)
	if !ok || s.Key != SenseUnitAttention {
		return false
	}
	if s.Code() == ASCEncryptionCapsChanged {
		d.tde = nil // probe again before the next SetKey/Clear
	}
	if d.OnUnitAttention != nil {
		d.OnUnitAttention(s)
	}
	return true
}

// DrainUnitAttentions issues TEST UNIT READY until it stops answering
// UNIT ATTENTION (at most 16 times), as an initiator does after opening a
// device or after a load. It returns the attentions seen (power on, medium
// changed, parameters changed …) and the final TEST UNIT READY error (nil
// when ready; IsNoMedium, IsBecomingReady … otherwise).
func (d *Device) DrainUnitAttentions() ([]*Sense, error) {
	var seen []*Sense
	for i := 0; i < 16; i++ {
		err := d.TestUnitReady()
		s, ok := SenseOf(err)
		if !ok || s.Key != SenseUnitAttention {
			return seen, err
		}
		seen = append(seen, s)
	}
	return seen, fmt.Errorf("%s: still reporting unit attentions after 16 TEST UNIT READY", d.Addr())
}

// dataOut runs a data-out command.
func (d *Device) dataOut(cdb, data []byte) error {
	dir := DirToDevice
	if len(data) == 0 {
		dir = DirNone
	}
	_, err := d.Exec(&Command{CDB: cdb, Dir: dir, Data: data})
	return err
}

// noData runs a command without a data phase.
func (d *Device) noData(cdb []byte) error {
	_, err := d.Exec(&Command{CDB: cdb, Dir: DirNone})
	return err
}
