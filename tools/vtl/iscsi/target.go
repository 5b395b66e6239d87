// Package iscsi serves a vtl library as one iSCSI target (RFC 7143), so
// that real operating systems and tools reach the same emulation as the
// unix socket: LUN 0 is the medium changer, LUN 1..N are drive0..drive(N-1).
//
// Every session opens, per LUN it uses, one emu.Conn (an I_T nexus), the
// path the unix socket server takes too: personalities, faults, unit
// attentions and reservations behave alike on both. Commands run one at a
// time per connection, in CmdSN order, as the emulation is sequential.
//
// Supported: AuthMethod None or CHAP (MD5, initiator authentication), an
// initiator allow-list, HeaderDigest/DataDigest None or CRC32C,
// ErrorRecoveryLevel 0, one connection per session, SendTargets discovery,
// immediate and unsolicited data and R2T, Data-In with phase-collapsed
// status, NOP, Text, task management (ABORT TASK, ABORT/CLEAR TASK SET,
// LOGICAL UNIT RESET, TARGET WARM/COLD RESET), Logout and session
// reinstatement.
package iscsi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// DefaultName is the target's IQN unless Config.Name says otherwise.
const DefaultName = "iqn.2026-12.io.tapeward:vtl"

// Config configures a Target.
type Config struct {
	// Name is the target IQN (DefaultName when empty).
	Name string
	// Allow lists the initiator names (IQNs) that may log in; empty
	// allows every initiator. Others are refused with status 0x0202
	// (authorization failure).
	Allow []string
	// CHAPUser and CHAPSecret require CHAP (MD5) from every initiator
	// when CHAPUser is set. The secret never appears in a log or error.
	CHAPUser   string
	CHAPSecret []byte
	// TargetCHAPUser and TargetCHAPSecret let an initiator ask for
	// mutual CHAP: the target answers its challenge as TargetCHAPUser
	// with TargetCHAPSecret (which must differ from CHAPSecret). Without
	// them a mutual request is refused.
	TargetCHAPUser   string
	TargetCHAPSecret []byte
	// MaxRecvDataSegmentLength is the largest data segment the target
	// receives (default 262144).
	MaxRecvDataSegmentLength int
	// Logger receives logins, logouts and errors (default: the library's).
	Logger *slog.Logger
	// Advertise is the TargetAddress list SendTargets reports, "HOST:PORT"
	// each (portal group tag 1); empty: the address the initiator
	// connected to. For a target behind NAT or a port forward, whose
	// initiators must come back through another address.
	Advertise []string
	// NOPInterval is how long a session may be silent before the target
	// pings it with a NOP-In; a ping unanswered for two intervals drops
	// the connection, so a vanished initiator does not hold its
	// reservation for ever. 0: 30 s; negative: never.
	NOPInterval time.Duration
}

// Target is a library served over iSCSI.
type Target struct {
	cfg Config
	lib *emu.Library
	log *slog.Logger

	mu       sync.Mutex
	sessions map[uint16]*session // by TSIH
	nextTSIH uint16
	conns    map[*conn]struct{}
	done     bool
	wg       sync.WaitGroup
	// panics counts connections dropped by a target bug (the tests
	// require none).
	panics atomic.Int64
}

// Check reports what New would refuse in cfg, without a library: the
// vtl command checks its flags before it opens the cartridges.
func (cfg Config) Check() error { return cfg.check() }

// check validates cfg and fills its defaults.
func (cfg *Config) check() error {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if err := checkName(cfg.Name); err != nil {
		return fmt.Errorf("target name: %w", err)
	}
	for _, a := range cfg.Allow {
		if err := checkName(a); err != nil {
			return fmt.Errorf("allowed initiator: %w", err)
		}
	}
	if cfg.CHAPUser != "" && len(cfg.CHAPSecret) < 12 {
		// RFC 7143 §12.1.3: secrets shorter than 96 bits are easy to
		// guess from a captured exchange.
		return errors.New("the CHAP secret must be at least 12 bytes (RFC 7143 §12.1.3); put a longer one in the secret file")
	}
	if cfg.CHAPUser == "" && len(cfg.CHAPSecret) > 0 {
		return errors.New("a CHAP secret needs a CHAP user name")
	}
	if (cfg.TargetCHAPUser == "") != (len(cfg.TargetCHAPSecret) == 0) {
		return errors.New("mutual CHAP needs both the target's CHAP user name and its secret")
	}
	if cfg.TargetCHAPUser != "" {
		switch {
		case cfg.CHAPUser == "":
			return errors.New("mutual CHAP needs the initiators' CHAP (user name and secret) too")
		case len(cfg.TargetCHAPSecret) < 12:
			return errors.New("the target CHAP secret must be at least 12 bytes (RFC 7143 §12.1.3); put a longer one in the secret file")
		case subtle.ConstantTimeCompare(cfg.TargetCHAPSecret, cfg.CHAPSecret) == 1:
			return errors.New("the target CHAP secret must differ from the initiators' CHAP secret (RFC 7143 §12.1.3)")
		}
	}
	for _, a := range cfg.Advertise {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("advertised address %q (--iscsi-advertise): want HOST:PORT (an IPv6 host in brackets), e.g. 192.0.2.10:3260", a)
		}
	}
	if cfg.MaxRecvDataSegmentLength == 0 {
		cfg.MaxRecvDataSegmentLength = 262144
	}
	if cfg.MaxRecvDataSegmentLength < 512 || cfg.MaxRecvDataSegmentLength >= 1<<24 {
		return fmt.Errorf("MaxRecvDataSegmentLength %d: must be 512..16777215", cfg.MaxRecvDataSegmentLength)
	}
	if cfg.NOPInterval == 0 {
		cfg.NOPInterval = 30 * time.Second
	}
	return nil
}

// New makes a target serving lib.
func New(lib *emu.Library, cfg Config) (*Target, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = lib.Logger()
	}
	return &Target{cfg: cfg, lib: lib, log: cfg.Logger, sessions: map[uint16]*session{}, conns: map[*conn]struct{}{}}, nil
}

// checkName accepts iqn., eui. and naa. names (RFC 7143 §4.2.7) loosely:
// a known prefix, no spaces or control bytes, at most 223 bytes.
func checkName(n string) error {
	if len(n) > 223 || len(n) < 5 {
		return fmt.Errorf("%q is not an iSCSI name (iqn.YYYY-MM.reversed.domain[:id], at most 223 bytes)", n)
	}
	switch n[:4] {
	case "iqn.", "eui.", "naa.":
	default:
		return fmt.Errorf("%q is not an iSCSI name: it must start with iqn., eui. or naa.", n)
	}
	for _, c := range []byte(n) {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%q is not an iSCSI name: no spaces or control characters", n)
		}
	}
	return nil
}

// Name is the target IQN.
func (t *Target) Name() string { return t.cfg.Name }

// LUNs is the number of logical units: the changer and the drives.
func (t *Target) LUNs() int { return 1 + t.lib.NumDrives() }

// unitOf names the emulated unit behind a LUN.
func (t *Target) unitOf(lun int) (string, bool) {
	switch {
	case lun == 0:
		return "changer", true
	case lun > 0 && lun <= t.lib.NumDrives():
		return fmt.Sprintf("drive%d", lun-1), true
	}
	return "", false
}

func (t *Target) allowed(initiator string) bool {
	return len(t.cfg.Allow) == 0 || slices.Contains(t.cfg.Allow, initiator)
}

func (t *Target) chapUserOK(user string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(t.cfg.CHAPUser)) == 1
}

// Serve accepts connections on ln until ctx ends or ln fails, one
// goroutine per connection; then it closes every connection and session
// and waits for their goroutines.
func (t *Target) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			break
		}
		if !t.ServeConn(nc) {
			break
		}
	}
	t.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ServeConn serves one connection in a new goroutine; false (and nc
// closed) once the target is closed.
func (t *Target) ServeConn(nc net.Conn) bool { return t.serveConn(nc) != nil }

// serveConn is ServeConn returning the connection (nil once closed).
func (t *Target) serveConn(nc net.Conn) *conn {
	c := newConn(t, nc)
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		nc.Close()
		return nil
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		c.serve()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	return c
}

// Close ends every connection and session and waits for them.
func (t *Target) Close() {
	t.mu.Lock()
	t.done = true
	for c := range t.conns {
		c.nc.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// session is one iSCSI session: an initiator's I_T nexus to the target,
// with one emu nexus per LUN it has used.
type session struct {
	initiator string
	isid      [6]byte
	tsih      uint16
	discovery bool

	// The fields below belong to the connection that serves the session
	// (one at a time; a reinstating connection takes over only after the
	// old one has ended).
	expCmdSN uint32
	luns     map[int]*emu.Conn
	conn     *conn
}

// closeLUNs ends the session's nexuses (reservations and LOCAL keys go).
func (s *session) closeLUNs() {
	for _, c := range s.luns {
		c.Close()
	}
	clear(s.luns)
}

// register adds a logged-in normal session. A session of the same
// initiator and ISID (session reinstatement, §6.3.5) is closed first: its
// connection is dropped and its nexuses end, so reservations and LOCAL
// keys go with it.
func (t *Target) register(s *session) error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return errors.New("target shutting down")
	}
	var old []*session
	for _, o := range t.sessions {
		if o.initiator == s.initiator && o.isid == s.isid {
			old = append(old, o)
		}
	}
	t.mu.Unlock()
	for _, o := range old {
		t.log.Info("iSCSI session reinstated: closing the old one", "initiator", o.initiator, "isid", fmt.Sprintf("%x", o.isid), "tsih", o.tsih)
		t.endSession(o)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		t.nextTSIH++
		if t.nextTSIH == 0 {
			continue
		}
		if _, used := t.sessions[t.nextTSIH]; !used {
			break
		}
	}
	s.tsih = t.nextTSIH
	t.sessions[s.tsih] = s
	return nil
}

// endSession drops the session's connection and waits until it has
// ended (the connection closes the session's nexuses on its way out).
func (t *Target) endSession(s *session) {
	t.mu.Lock()
	c := s.conn
	t.mu.Unlock()
	if c != nil {
		c.nc.Close()
		<-c.done
	}
}

// unregister removes a session whose connection ended.
func (t *Target) unregister(s *session) {
	t.mu.Lock()
	if t.sessions[s.tsih] == s {
		delete(t.sessions, s.tsih)
	}
	t.mu.Unlock()
}

// lookup finds the session a login with a non-zero TSIH names.
func (t *Target) lookup(initiator string, isid [6]byte, tsih uint16) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sessions[tsih]; s != nil && s.initiator == initiator && s.isid == isid {
		return s
	}
	return nil
}
