// Package iscsi is a userspace iSCSI initiator (RFC 7143) behind
// scsi.Transport: storaged, tapekey and tapextract reach a tape drive or a
// changer exported by an iSCSI target (Linux LIO, tgt, the vtl) with no
// kernel initiator, no /dev/sg node and no privileges.
//
// One Transport is one session of one connection to one LUN, carrying one
// command at a time: login (no authentication or CHAP, optionally mutual),
// operational negotiation (digests, data segment and burst lengths,
// InitialR2T, ImmediateData, ErrorRecoveryLevel 0), SCSI commands with
// immediate, unsolicited and R2T-solicited Data-Out and Data-In straight
// into the command's buffer, NOP-In answers, asynchronous messages, task
// management (ABORT TASK on a command timeout, LUN RESET) and logout.
//
// When the connection breaks, the command in flight fails with its outcome
// unknown and is never resent (a repeated WRITE or SPACE would corrupt the
// tape position); the next command logs in again with the same ISID, which
// reinstates the session, and the device then reports a unit attention as
// a real drive does after a reset. By default the LUN is reserved with
// SPC-2 RESERVE(6) after login, so that a second initiator gets a
// *scsi.BusyDeviceError, as a second opener of an sg node does.
//
// The wire format is storaged/scsi/iscsiwire; the tests run against
// Debian's tgt (storaged/scsi/iscsi/tgttest), a target written by others.
package iscsi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
)

// MaxData bounds one command's data phase (16 MiB, the largest tape block
// Tapeward writes).
const MaxData = 16 << 20

// Options controls Dial and Discover. The zero value logs in without
// authentication, offers no digests, and reserves the LUN.
type Options struct {
	// InitiatorName is this initiator's iSCSI name; empty:
	// DefaultInitiatorName() (iqn.2026-12.io.tapeward:<hostname>).
	InitiatorName string
	// CHAPSecretFile names a file holding the CHAP secret (one line); set,
	// the login authenticates with CHAP as the address's USER (or, with no
	// USER, as the initiator name). The secret never appears in a message.
	CHAPSecretFile string
	// TargetCHAPSecretFile, with CHAPSecretFile, makes CHAP mutual: the
	// target must prove it knows this secret.
	TargetCHAPSecretFile string
	// HeaderDigest and DataDigest offer CRC32C digests (the target may
	// still choose None).
	HeaderDigest, DataDigest bool
	// MaxRecvDataSegmentLength is the largest data segment we accept
	// (default 256 KiB). Small values make the target split Data-In.
	MaxRecvDataSegmentLength int
	// MaxBurstLength and FirstBurstLength are offered (defaults 16 MiB − 1
	// and 256 KiB); the target may lower them.
	MaxBurstLength, FirstBurstLength int
	// InitialR2T offers InitialR2T=Yes (no unsolicited Data-Out beyond
	// immediate data); NoImmediateData offers ImmediateData=No. With both,
	// every byte of a write is solicited by an R2T.
	InitialR2T, NoImmediateData bool
	// Shared skips the RESERVE(6) of the LUN (several initiators at once).
	Shared bool
	// LoginTimeout bounds connecting and logging in (default 15 s).
	LoginTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.InitiatorName == "" {
		o.InitiatorName = DefaultInitiatorName()
	}
	if o.MaxRecvDataSegmentLength == 0 {
		o.MaxRecvDataSegmentLength = 256 << 10
	}
	if o.MaxBurstLength == 0 {
		o.MaxBurstLength = 1<<24 - 1
	}
	if o.FirstBurstLength == 0 {
		o.FirstBurstLength = 256 << 10
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = 15 * time.Second
	}
	return o
}

func (o Options) offer() iscsiwire.Params {
	p := iscsiwire.DefaultParams()
	p.HeaderDigest, p.DataDigest = o.HeaderDigest, o.DataDigest
	p.MaxRecvDataSegmentLength = o.MaxRecvDataSegmentLength
	p.MaxBurstLength = o.MaxBurstLength
	p.FirstBurstLength = min(o.FirstBurstLength, o.MaxBurstLength)
	p.InitialR2T = o.InitialR2T
	p.ImmediateData = !o.NoImmediateData
	p.ErrorRecoveryLevel = 0
	p.DefaultTime2Wait, p.DefaultTime2Retain = 0, 0
	return p
}

// spec builds the login of a session; secrets are read here.
func (o Options) spec(label, target, user string, discovery bool) (*loginSpec, error) {
	if err := CheckName("initiator name", o.InitiatorName); err != nil {
		return nil, err
	}
	for _, n := range []struct{ what, v string }{
		{"MaxRecvDataSegmentLength", fmt.Sprint(o.MaxRecvDataSegmentLength)},
		{"MaxBurstLength", fmt.Sprint(o.MaxBurstLength)},
		{"FirstBurstLength", fmt.Sprint(o.FirstBurstLength)},
	} {
		if _, err := iscsiwire.Check(n.what, n.v, n.v); err != nil {
			return nil, fmt.Errorf("iSCSI option %s=%s is outside 512..16777215", n.what, n.v)
		}
	}
	s := &loginSpec{initiator: o.InitiatorName, target: target, label: label, offer: o.offer(), discovery: discovery, user: user}
	if s.user == "" {
		s.user = o.InitiatorName
	}
	if o.CHAPSecretFile != "" {
		sec, err := readSecret("CHAP secret", o.CHAPSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		s.secret = sec
	} else if user != "" {
		return nil, fmt.Errorf("%s names CHAP user %q but no CHAP secret file is configured (chap_secret_file, --iscsi-chap-secret-file or TAPEWARD_ISCSI_CHAP_SECRET_FILE)", label, user)
	}
	if o.TargetCHAPSecretFile != "" {
		if s.secret == nil {
			return nil, fmt.Errorf("%s: mutual CHAP needs our own CHAP secret file too", label)
		}
		sec, err := readSecret("target CHAP secret", o.TargetCHAPSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		s.targetSecret = sec
	}
	return s, nil
}

// Transport is a scsi.Transport to one LUN of an iSCSI target. It is not
// safe for concurrent use.
type Transport struct {
	addr Address
	opts Options
	spec *loginSpec
	lun  uint64
	c    *conn // nil after a failure, until the next command logs in again

	reserve    bool // RESERVE(6) after every login
	reserved   bool // the current session holds the reservation
	noReserve  bool // the LUN does not implement RESERVE(6)
	pendingUA  []byte
	closed     bool
	stats      Stats
	lastParams iscsiwire.Params
}

// Stats counts what the transport did (for tests and diagnostics).
type Stats struct {
	Logins      int // successful logins (the first and every reinstatement)
	R2Ts        int // R2T PDUs answered
	DataOutPDUs int // Data-Out PDUs sent (unsolicited and solicited)
	DataInPDUs  int // Data-In PDUs received for our commands
	NOPIns      int // target pings answered
	Aborts      int // ABORT TASKs sent after a command timed out
	AsyncEvents int // asynchronous messages received
}

// Dial logs in to the target and LUN addr names. ctx bounds the connect
// and login. Unless opts.Shared, the LUN is then reserved with RESERVE(6);
// a LUN another initiator reserved gives a *scsi.BusyDeviceError.
func Dial(ctx context.Context, addr Address, opts Options) (*Transport, error) {
	opts = opts.withDefaults()
	spec, err := opts.spec(addr.String(), addr.Target, addr.User, false)
	if err != nil {
		return nil, err
	}
	spec.isid = newISID()
	t := &Transport{addr: addr, opts: opts, spec: spec, lun: iscsiwire.LUN(addr.LUN), reserve: !opts.Shared}
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	t.idle()
	return t, nil
}

func (t *Transport) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.opts.LoginTimeout)
	defer cancel()
	// TSIH 0 with our ISID: a new session, or the reinstatement of the one
	// a broken connection left behind (RFC 7143 §6.3.5).
	c, err := dialLogin(ctx, t.addr.Portal(), t.spec)
	if err != nil {
		return err
	}
	c.lun = t.lun
	t.c = c
	t.reserved = false
	t.stats.Logins++
	t.lastParams = c.p
	if t.reserve && !t.noReserve {
		if err := t.doReserve(); err != nil {
			t.drop()
			return err
		}
	}
	return nil
}

// doReserve sends RESERVE(6). A unit attention it draws is kept for the
// next command (which then reports it without being sent), so that
// storaged sees the reset as it would without the reservation.
func (t *Transport) doReserve() error {
	for range 8 {
		cmd := &scsi.Command{CDB: []byte{0x16, 0, 0, 0, 0, 0}, Dir: scsi.DirNone, Timeout: scsi.QuickTimeout}
		res, err := t.c.command(t.lun, cmd, cmd.Timeout, &t.stats)
		if err != nil {
			return fmt.Errorf("%s: RESERVE(6): %w", t.Addr(), err)
		}
		if res.HostStatus != 0 {
			return fmt.Errorf("%s: RESERVE(6): %w", t.Addr(), &scsi.TransportError{HostStatus: res.HostStatus})
		}
		switch res.Status {
		case scsi.StatusGood:
			t.reserved = true
			return nil
		case scsi.StatusReservationConflict:
			return &scsi.BusyDeviceError{Addr: t.Addr(), Detail: "another iSCSI initiator holds a reservation on the LUN: RESERVE(6) answered RESERVATION CONFLICT"}
		case scsi.StatusCheckCondition:
			s, err := scsi.ParseSense(res.Sense)
			if err != nil {
				return fmt.Errorf("%s: RESERVE(6): CHECK CONDITION with unusable sense data: %w", t.Addr(), err)
			}
			switch {
			case s.Key == scsi.SenseUnitAttention:
				if t.pendingUA == nil {
					t.pendingUA = res.Sense
				}
				continue
			case s.Key == scsi.SenseIllegalRequest && s.ASC == 0x20:
				// The LUN does not implement RESERVE(6) (tgt's emulated
				// tape and changer): no exclusive access to enforce.
				t.noReserve = true
				return nil
			}
			return fmt.Errorf("%s: RESERVE(6): %w", t.Addr(), s)
		}
		return fmt.Errorf("%s: RESERVE(6): %w", t.Addr(), &scsi.StatusError{Status: res.Status})
	}
	return fmt.Errorf("%s: RESERVE(6) kept answering unit attentions", t.Addr())
}

// Reserved reports whether the session holds an SPC-2 reservation of the
// LUN (false with Options.Shared, or when the LUN does not implement
// RESERVE(6)).
func (t *Transport) Reserved() bool { return t.c != nil && t.reserved }

// Connected reports whether the transport has a logged-in session that
// it knows of no problem with (between commands, the idle reader notices
// a connection the target closed). False: the next command logs in first.
func (t *Transport) Connected() bool { return t.c != nil && t.c.alive() }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	if c := t.c; c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	return t.stats
}

// busy stops the idle reader before this side sends anything, and acts on
// what arrived meanwhile: a connection the target closed while idle is
// dropped (nothing was sent on it: the next login is safe), a logout
// request is honoured, a unit attention kept.
func (t *Transport) busy() {
	if t.c == nil {
		return
	}
	if err := t.c.stopIdle(); err != nil {
		t.drop()
		return
	}
	t.between()
}

// idle starts answering the target's pings between commands (a target
// such as LIO drops a connection whose NOP-Ins go unanswered).
func (t *Transport) idle() {
	if t.c != nil {
		t.c.startIdle(&t.stats)
	}
}

// Negotiated returns the parameters of the last login; its
// MaxRecvDataSegmentLength is the target's declaration.
func (t *Transport) Negotiated() iscsiwire.Params { return t.lastParams }

// String names the transport by its address (never a secret).
func (t *Transport) String() string { return "iSCSI " + t.Addr() }

// Addr implements scsi.Transport: the canonical iscsi:// address.
func (t *Transport) Addr() string { return t.addr.String() }

// MaxTransfer implements scsi.MaxTransferer.
func (t *Transport) MaxTransfer() int { return MaxData }

func opName(cmd *scsi.Command) string {
	if len(cmd.CDB) == 0 {
		return "an empty CDB"
	}
	return scsi.OpName(cmd.CDB[0])
}

// Do implements scsi.Transport.
func (t *Transport) Do(cmd *scsi.Command) (scsi.Result, error) {
	op := opName(cmd)
	switch {
	case t.closed:
		return scsi.Result{}, fmt.Errorf("%s: %s: the transport is closed", t.Addr(), op)
	case len(cmd.CDB) == 0 || len(cmd.CDB) > 16:
		return scsi.Result{}, fmt.Errorf("%s: a CDB of %d bytes (1..16 supported)", t.Addr(), len(cmd.CDB))
	case cmd.Dir != scsi.DirNone && len(cmd.Data) > MaxData:
		return scsi.Result{}, fmt.Errorf("%s: %s of %d bytes exceeds the transfer limit of %d bytes per command", t.Addr(), op, len(cmd.Data), MaxData)
	}
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = scsi.DefaultTimeout(cmd.CDB[0])
	}
	t.busy()
	defer t.idle()
	if t.c == nil {
		if err := t.connect(context.Background()); err != nil {
			return scsi.Result{}, fmt.Errorf("not sent (logging in again failed): %w", err)
		}
	}
	if ua := t.pendingUA; ua != nil {
		// A unit attention the target reported to our RESERVE or in an
		// asynchronous message: this command reports it, unsent, as the
		// device would have.
		t.pendingUA = nil
		res := scsi.Result{Status: scsi.StatusCheckCondition, Sense: ua}
		if cmd.Dir != scsi.DirNone {
			res.Resid = len(cmd.Data)
		}
		return res, nil
	}
	res, err := t.c.command(t.lun, cmd, timeout, &t.stats)
	if err != nil {
		t.drop()
		// Device adds the address and the command's name.
		return res, fmt.Errorf("iSCSI: %w", err)
	}
	t.between()
	return res, nil
}

// between acts on what unsolicited PDUs asked for during the last
// exchange.
func (t *Transport) between() {
	c := t.c
	if c == nil {
		return
	}
	if c.ua != nil && t.pendingUA == nil {
		t.pendingUA = c.ua
	}
	c.ua = nil
	switch {
	case c.dropWanted:
		t.drop()
	case c.logoutWanted:
		// The target asks us to log out (e.g. it is shutting down a
		// portal): do so; the next command logs in again.
		c.logout(5*time.Second, &t.stats)
		t.drop()
	}
}

func (t *Transport) drop() {
	if t.c != nil {
		t.c.nc.Close()
		t.c.stopIdle()
		t.c = nil
	}
	t.reserved = false
}

// LUNReset sends a LOGICAL UNIT RESET task management request; the device
// then reports a unit attention (29/03) to every initiator.
func (t *Transport) LUNReset() error {
	if t.closed {
		return fmt.Errorf("%s: LUN RESET: the transport is closed", t.Addr())
	}
	t.busy()
	defer t.idle()
	if t.c == nil {
		if err := t.connect(context.Background()); err != nil {
			return err
		}
	}
	resp, err := t.c.taskMgmt(iscsiwire.TMFLUNReset, t.lun, nil, 30*time.Second, &t.stats)
	if err != nil {
		t.drop()
		return fmt.Errorf("%s: LUN RESET: %w", t.Addr(), err)
	}
	t.between()
	if resp != iscsiwire.TMFRespComplete {
		return fmt.Errorf("%s: LUN RESET refused: %s", t.Addr(), tmfRespName(resp))
	}
	// A LUN reset releases SPC-2 reservations: take it again.
	if t.reserved {
		t.reserved = false
		if err := t.doReserve(); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the reservation, logs out and closes the connection.
func (t *Transport) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.busy()
	if t.c == nil {
		return nil
	}
	var errs []error
	if t.reserved {
		cmd := &scsi.Command{CDB: []byte{0x17, 0, 0, 0, 0, 0}, Dir: scsi.DirNone, Timeout: 30 * time.Second}
		res, err := t.c.command(t.lun, cmd, cmd.Timeout, &t.stats)
		if err != nil {
			errs = append(errs, fmt.Errorf("RELEASE(6): %w", err))
		} else if res.HostStatus != 0 {
			errs = append(errs, fmt.Errorf("RELEASE(6): %w", &scsi.TransportError{HostStatus: res.HostStatus}))
		} else if res.Status != scsi.StatusGood && res.Status != scsi.StatusCheckCondition {
			errs = append(errs, fmt.Errorf("RELEASE(6): %w", &scsi.StatusError{Status: res.Status}))
		}
	}
	if len(errs) == 0 {
		if err := t.c.logout(5*time.Second, &t.stats); err != nil {
			errs = append(errs, fmt.Errorf("logout: %w", err))
		}
	}
	t.drop()
	if err := errors.Join(errs...); err != nil {
		// The connection is closed anyway; the target ends the session.
		return fmt.Errorf("%s: closing: %w", t.Addr(), err)
	}
	return nil
}

func tmfRespName(r byte) string {
	switch r {
	case iscsiwire.TMFRespComplete:
		return "function complete"
	case iscsiwire.TMFRespNoTask:
		return "task does not exist"
	case iscsiwire.TMFRespNoLUN:
		return "LUN does not exist"
	case iscsiwire.TMFRespTaskAllegnt:
		return "task still allegiant"
	case iscsiwire.TMFRespNoReassign:
		return "task allegiance reassignment not supported"
	case iscsiwire.TMFRespNotSupported:
		return "task management function not supported"
	case iscsiwire.TMFRespNotAuthorized:
		return "function authorization failed"
	case iscsiwire.TMFRespRejected:
		return "function rejected"
	}
	return fmt.Sprintf("response %d", r)
}

// Target is one target a portal lists in SendTargets discovery.
type Target struct {
	Name    string
	Portals []string // TargetAddress values: "HOST:PORT,TPGT"
}

// Discover lists the targets behind portal (HOST[:PORT]) with a discovery
// session (SendTargets=All).
func Discover(ctx context.Context, portal string, opts Options) ([]Target, error) {
	opts = opts.withDefaults()
	if _, _, err := net.SplitHostPort(portal); err != nil {
		portal = net.JoinHostPort(strings.Trim(portal, "[]"), strconv.Itoa(DefaultPort))
	}
	label := "iscsi://" + portal + "/"
	spec, err := opts.spec(label, "", "", true)
	if err != nil {
		return nil, err
	}
	spec.isid = newISID()
	ctx, cancel := context.WithTimeout(ctx, opts.LoginTimeout)
	defer cancel()
	c, err := dialLogin(ctx, portal, spec)
	if err != nil {
		return nil, err
	}
	defer c.nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	}
	kvs, err := c.sendTargets()
	if err != nil {
		return nil, fmt.Errorf("%s: SendTargets: %w", label, err)
	}
	var out []Target
	for _, kv := range kvs {
		switch kv.Key {
		case "TargetName":
			out = append(out, Target{Name: kv.Value})
		case "TargetAddress":
			if len(out) > 0 {
				out[len(out)-1].Portals = append(out[len(out)-1].Portals, kv.Value)
			}
		}
	}
	var st Stats
	c.logout(5*time.Second, &st)
	return out, nil
}

// IsOutcomeUnknown reports whether err is a command whose fate on the
// device is unknown (the connection broke while it was in flight).
func IsOutcomeUnknown(err error) bool { return errors.Is(err, ErrOutcomeUnknown) }

// ErrOutcomeUnknown is wrapped by the error of a command that was (or may
// have been) sent when the connection broke: it was not resent.
var ErrOutcomeUnknown = errors.New("iSCSI command outcome unknown")

var _ scsi.MaxTransferer = (*Transport)(nil)
