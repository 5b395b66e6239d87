package iscsi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
)

// conn is one logged-in TCP connection (a session of one connection, as
// MaxConnections=1 makes it) and its sequence numbers.
type conn struct {
	nc net.Conn
	r  *iscsiwire.Reader
	w  *iscsiwire.Writer
	// p are the negotiated parameters; p.MaxRecvDataSegmentLength is the
	// target's declaration (the largest data segment we may send).
	p iscsiwire.Params
	// ourMRDSL is what we declared (the largest we accept).
	ourMRDSL int

	lun                       uint64 // the LUN the session serves (asynchronous events about others are ignored)
	tsih                      uint16
	cmdSN, expCmdSN, maxCmdSN uint32
	expStatSN                 uint32
	itt                       uint32

	// Set by unsolicited PDUs, acted on between commands.
	logoutWanted bool   // Async: the target asks for a logout
	dropWanted   bool   // Async: the target drops the connection
	ua           []byte // Async SCSI event: a unit attention's sense data

	// The idle reader (idle.go) answers the target's NOP-Ins between
	// commands; mu is held while it handles a PDU.
	mu       sync.Mutex
	idleStop atomic.Bool
	idleDone chan struct{}
	idleErr  error
}

// loginSpec is what one login says.
type loginSpec struct {
	initiator string
	target    string // empty for a discovery session
	label     string // what errors name: the address or the portal
	isid      [6]byte
	user      string
	secret    []byte // nil: AuthMethod=None
	// targetSecret, when set, makes CHAP mutual: the target must answer
	// our challenge with it.
	targetSecret []byte
	offer        iscsiwire.Params
	discovery    bool
}

const (
	loginRounds = 16
	// loginMaxData is the data segment size accepted during login.
	loginMaxData = 64 << 10
)

// newISID is a random-format ISID (RFC 7143 §11.12.5: T=10b): one per
// Transport, kept across reconnections so that a new login reinstates the
// session.
func newISID() [6]byte {
	var b [6]byte
	rand.Read(b[:])
	b[0] = 0x80 | b[0]&0x3f
	return b
}

// maxRedirects bounds the login redirections followed.
const maxRedirects = 4

// redirectError is a login the target redirected to another portal.
type redirectError struct {
	label  string
	status uint16
	addr   string // TargetAddress: HOST[:PORT][,TPGT]
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("%s: %s to %q", e.label, iscsiwire.LoginStatusText(e.status), e.addr)
}

// redirectPortal turns a TargetAddress value into HOST:PORT.
func redirectPortal(addr string) (string, error) {
	if i := strings.LastIndexByte(addr, ','); i >= 0 {
		addr = addr[:i] // the portal group tag
	}
	if addr == "" {
		return "", errors.New("no TargetAddress")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(DefaultPort)), nil
}

// dialLogin connects to portal and logs in as spec says, following the
// target's redirections (each login of a Transport starts again at the
// configured portal).
func dialLogin(ctx context.Context, portal string, spec *loginSpec) (*conn, error) {
	for hops := 0; ; hops++ {
		c, err := dialLoginOnce(ctx, portal, spec)
		var rd *redirectError
		if !errors.As(err, &rd) {
			return c, err
		}
		if hops == maxRedirects {
			return nil, fmt.Errorf("%w; redirected %d times, giving up", err, hops+1)
		}
		next, perr := redirectPortal(rd.addr)
		if perr != nil {
			return nil, fmt.Errorf("%w: %v", err, perr)
		}
		portal = next
	}
}

func dialLoginOnce(ctx context.Context, portal string, spec *loginSpec) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", portal)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot reach the iSCSI portal %s: %w (is the target running and the port right?)", spec.label, portal, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &conn{nc: nc, r: iscsiwire.NewReader(nc), w: iscsiwire.NewWriter(nc)}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = c.login(spec)
	stop()
	if err != nil {
		nc.Close()
		var rd *redirectError
		if ctx.Err() != nil && !errors.Is(err, iscsiwire.ErrLogin) && !errors.As(err, &rd) {
			return nil, fmt.Errorf("%s: iSCSI login did not finish in time: %w", spec.label, err)
		}
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// exchange sends one Login Request and returns the target's answer,
// following Continue flags both ways.
func (c *conn) exchange(spec *loginSpec, req *iscsiwire.LoginRequest, kvs []iscsiwire.KV) (iscsiwire.LoginResponse, []iscsiwire.KV, error) {
	var text []byte
	for {
		req.ITT = c.itt
		c.itt++
		req.ExpStatSN = c.expStatSN
		p := iscsiwire.NewPDU(req, iscsiwire.AppendText(nil, kvs...))
		if err := c.w.Write(p); err != nil {
			return iscsiwire.LoginResponse{}, nil, fmt.Errorf("%s: sending an iSCSI login request: %w", spec.label, err)
		}
		kvs = nil
		pdu, err := c.r.Read()
		if err != nil {
			return iscsiwire.LoginResponse{}, nil, fmt.Errorf("%s: reading the iSCSI login response: %w", spec.label, err)
		}
		if pdu.Opcode() != iscsiwire.OpLoginResp {
			return iscsiwire.LoginResponse{}, nil, fmt.Errorf("%s: the target answered a login with a %s", spec.label, pdu)
		}
		resp := iscsiwire.DecodeLoginResponse(&pdu.BHS)
		if resp.StatusClass == 1 {
			// Redirection (§11.13.5): the answer names where to log in.
			kvs, _ := iscsiwire.ParseText(pdu.Data)
			addr, _ := iscsiwire.Lookup(kvs, "TargetAddress")
			return resp, nil, &redirectError{label: spec.label, status: uint16(resp.StatusClass)<<8 | uint16(resp.StatusDetail), addr: addr}
		}
		if resp.StatusClass != 0 {
			return resp, nil, &iscsiwire.LoginError{Target: spec.label, Status: uint16(resp.StatusClass)<<8 | uint16(resp.StatusDetail)}
		}
		if resp.VersionActive != 0 {
			return resp, nil, fmt.Errorf("%s: the target speaks iSCSI version %d; this initiator speaks 0 (RFC 7143)", spec.label, resp.VersionActive)
		}
		c.expStatSN = resp.StatSN + 1
		c.expCmdSN, c.maxCmdSN = resp.ExpCmdSN, resp.MaxCmdSN
		text = append(text, pdu.Data...)
		if !resp.Continue {
			out, err := iscsiwire.ParseText(text)
			if err != nil {
				return resp, nil, fmt.Errorf("%s: login response: %w", spec.label, err)
			}
			return resp, out, nil
		}
		// More text follows: ask for it with an empty request of the same stage.
		*req = iscsiwire.LoginRequest{CSG: req.CSG, NSG: req.NSG, ISID: req.ISID, TSIH: req.TSIH, CmdSN: req.CmdSN}
	}
}

func (c *conn) login(spec *loginSpec) error {
	c.r.MaxData = loginMaxData
	c.cmdSN = 1
	base := iscsiwire.LoginRequest{ISID: spec.isid, CmdSN: c.cmdSN}
	first := []iscsiwire.KV{{Key: "InitiatorName", Value: spec.initiator}}
	if spec.discovery {
		first = append(first, iscsiwire.KV{Key: "SessionType", Value: "Discovery"})
	} else {
		first = append(first, iscsiwire.KV{Key: "SessionType", Value: "Normal"}, iscsiwire.KV{Key: "TargetName", Value: spec.target})
	}
	stage := byte(iscsiwire.StageSecurity)
	var err error
	if spec.secret == nil {
		stage, err = c.securityNone(spec, base, first)
	} else {
		stage, err = c.securityCHAP(spec, base, first)
	}
	if err != nil {
		return err
	}
	if stage == iscsiwire.StageOperational {
		if err := c.operational(spec, base); err != nil {
			return err
		}
	} else {
		// The target went straight to full feature phase: every key at its default.
		c.p = iscsiwire.DefaultParams()
	}
	c.r.MaxData = c.ourMRDSL
	c.r.Digests = iscsiwire.Digests{Header: c.p.HeaderDigest, Data: c.p.DataDigest}
	c.w.Digests = c.r.Digests
	c.cmdSN = c.expCmdSN
	return nil
}

func (c *conn) securityNone(spec *loginSpec, base iscsiwire.LoginRequest, kvs []iscsiwire.KV) (byte, error) {
	kvs = append(kvs, iscsiwire.KV{Key: "AuthMethod", Value: "None"})
	for range loginRounds {
		req := base
		req.CSG, req.NSG, req.Transit = iscsiwire.StageSecurity, iscsiwire.StageOperational, true
		resp, ans, err := c.exchange(spec, &req, kvs)
		if err != nil {
			return 0, c.authHint(spec, err)
		}
		if v, ok := iscsiwire.Lookup(ans, "AuthMethod"); ok && v != "None" {
			return 0, fmt.Errorf("%s: the target requires authentication (AuthMethod=%s): configure a CHAP secret file (chap_secret_file, --iscsi-chap-secret-file or TAPEWARD_ISCSI_CHAP_SECRET_FILE)", spec.label, v)
		}
		if tsih := resp.TSIH; tsih != 0 {
			c.tsih = tsih
		}
		if resp.Transit {
			return resp.NSG, c.checkNext(spec, resp.NSG)
		}
		kvs = nil
	}
	return 0, fmt.Errorf("%s: the target did not end the iSCSI security stage after %d rounds", spec.label, loginRounds)
}

func (c *conn) authHint(spec *loginSpec, err error) error {
	var le *iscsiwire.LoginError
	if spec.secret == nil && errors.As(err, &le) && le.Status == iscsiwire.LoginAuthFailed {
		return fmt.Errorf("%w; this initiator sent no CHAP credentials — if the target requires CHAP, configure a CHAP secret file (chap_secret_file, --iscsi-chap-secret-file or TAPEWARD_ISCSI_CHAP_SECRET_FILE)", err)
	}
	return err
}

func (c *conn) checkNext(spec *loginSpec, nsg byte) error {
	if nsg != iscsiwire.StageOperational && nsg != iscsiwire.StageFullFeature {
		return fmt.Errorf("%s: the target's login response names next stage %d", spec.label, nsg)
	}
	return nil
}

// securityCHAP runs CHAP (RFC 1994 with MD5, RFC 7143 §12.1.3): the target
// challenges us; with spec.targetSecret we challenge it back.
func (c *conn) securityCHAP(spec *loginSpec, base iscsiwire.LoginRequest, first []iscsiwire.KV) (byte, error) {
	step := func(kvs []iscsiwire.KV, transit bool) (iscsiwire.LoginResponse, []iscsiwire.KV, error) {
		req := base
		req.CSG, req.NSG, req.Transit = iscsiwire.StageSecurity, iscsiwire.StageOperational, transit
		if !transit {
			req.NSG = 0
		}
		return c.exchange(spec, &req, kvs)
	}
	resp, ans, err := step(append(first, iscsiwire.KV{Key: "AuthMethod", Value: "CHAP"}), false)
	if err != nil {
		return 0, err
	}
	if v, _ := iscsiwire.Lookup(ans, "AuthMethod"); v != "CHAP" {
		return 0, fmt.Errorf("%s: the target does not accept CHAP (AuthMethod=%q); remove the CHAP secret file setting or enable CHAP on the target", spec.label, v)
	}
	c.tsih = resp.TSIH
	_, ans, err = step([]iscsiwire.KV{{Key: "CHAP_A", Value: iscsiwire.CHAPAlgorithmMD5}}, false)
	if err != nil {
		return 0, err
	}
	alg, _ := iscsiwire.Lookup(ans, "CHAP_A")
	idS, okI := iscsiwire.Lookup(ans, "CHAP_I")
	chS, okC := iscsiwire.Lookup(ans, "CHAP_C")
	if alg != iscsiwire.CHAPAlgorithmMD5 || !okI || !okC {
		return 0, fmt.Errorf("%s: the target's CHAP challenge is incomplete (CHAP_A=%q, CHAP_I and CHAP_C present: %v, %v); only CHAP_A=5 (MD5) is supported", spec.label, alg, okI, okC)
	}
	id, err := strconv.Atoi(idS)
	if err != nil || id < 0 || id > 255 {
		return 0, fmt.Errorf("%s: the target's CHAP_I=%q is not 0..255", spec.label, idS)
	}
	challenge, err := iscsiwire.DecodeBinary(chS)
	if err != nil || len(challenge) == 0 {
		return 0, fmt.Errorf("%s: the target's CHAP_C is not a binary value", spec.label)
	}
	kvs := []iscsiwire.KV{
		{Key: "CHAP_N", Value: spec.user},
		{Key: "CHAP_R", Value: iscsiwire.EncodeBinary(iscsiwire.CHAPResponse(byte(id), spec.secret, challenge))},
	}
	var myID byte
	var myChallenge []byte
	if spec.targetSecret != nil {
		var b [17]byte
		rand.Read(b[:])
		myID, myChallenge = b[0], b[1:]
		if bytes.Equal(myChallenge, challenge) {
			return 0, fmt.Errorf("%s: the target's CHAP challenge equals ours (a reflection attack?)", spec.label)
		}
		kvs = append(kvs, iscsiwire.KV{Key: "CHAP_I", Value: strconv.Itoa(int(myID))}, iscsiwire.KV{Key: "CHAP_C", Value: iscsiwire.EncodeBinary(myChallenge)})
	}
	resp, ans, err = step(kvs, true)
	if err != nil {
		return 0, err
	}
	if spec.targetSecret != nil {
		r, okR := iscsiwire.Lookup(ans, "CHAP_R")
		got, derr := iscsiwire.DecodeBinary(r)
		want := iscsiwire.CHAPResponse(myID, spec.targetSecret, myChallenge)
		if !okR || derr != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			return 0, fmt.Errorf("%s: the target failed mutual CHAP (its answer to our challenge does not match the target secret): it may not be the target it claims; check the target CHAP secret file on both sides", spec.label)
		}
	}
	for range loginRounds {
		if resp.Transit {
			return resp.NSG, c.checkNext(spec, resp.NSG)
		}
		resp, _, err = step(nil, true)
		if err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s: the target did not end the iSCSI security stage after CHAP", spec.label)
}

// operational negotiates the operational keys (§13) and enters full
// feature phase.
func (c *conn) operational(spec *loginSpec, base iscsiwire.LoginRequest) error {
	offer := spec.offer.Offer()
	if spec.discovery {
		var keep []iscsiwire.KV
		for _, kv := range offer {
			switch kv.Key {
			case "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength":
				keep = append(keep, kv)
			}
		}
		offer = keep
	}
	c.ourMRDSL = spec.offer.MaxRecvDataSegmentLength
	offered := map[string]string{}
	for _, kv := range offer {
		offered[kv.Key] = kv.Value
	}
	p := iscsiwire.DefaultParams()
	kvs := offer
	for range loginRounds {
		req := base
		req.TSIH = c.tsih
		req.CSG, req.NSG, req.Transit = iscsiwire.StageOperational, iscsiwire.StageFullFeature, true
		resp, ans, err := c.exchange(spec, &req, kvs)
		if err != nil {
			return err
		}
		kvs = nil
		for _, kv := range ans {
			if o, ok := offered[kv.Key]; ok {
				delete(offered, kv.Key)
				v, err := iscsiwire.Check(kv.Key, o, kv.Value)
				if err != nil {
					return fmt.Errorf("%s: %w", spec.label, err)
				}
				if kv.Value == iscsiwire.Irrelevant {
					continue
				}
				if err := p.Set(kv.Key, v); err != nil {
					return fmt.Errorf("%s: %w", spec.label, err)
				}
				continue
			}
			if !iscsiwire.IsOperational(kv.Key) {
				continue // TargetAlias, TargetPortalGroupTag, …
			}
			// The target offers a key of its own: answer it.
			mine, _ := spec.offer.Value(kv.Key)
			v, err := iscsiwire.Negotiate(kv.Key, kv.Value, mine)
			if err != nil {
				return fmt.Errorf("%s: %w", spec.label, err)
			}
			kvs = append(kvs, iscsiwire.KV{Key: kv.Key, Value: v})
			if kv.Key == "MaxRecvDataSegmentLength" {
				v = kv.Value // declarative: its own limit
			}
			if v != iscsiwire.RejectValue && v != iscsiwire.NotUnderstood {
				if err := p.Set(kv.Key, v); err != nil {
					return fmt.Errorf("%s: %w", spec.label, err)
				}
			}
		}
		if resp.TSIH != 0 {
			c.tsih = resp.TSIH
		}
		if resp.Transit && resp.NSG == iscsiwire.StageFullFeature && len(kvs) == 0 {
			if p.ErrorRecoveryLevel != 0 {
				return fmt.Errorf("%s: the target negotiated ErrorRecoveryLevel=%d; this initiator does level 0", spec.label, p.ErrorRecoveryLevel)
			}
			if !p.DataPDUInOrder || !p.DataSequenceInOrder {
				return fmt.Errorf("%s: the target wants data out of order (DataPDUInOrder/DataSequenceInOrder=No); this initiator sends and expects it in order", spec.label)
			}
			c.p = p
			return nil
		}
	}
	return fmt.Errorf("%s: the target did not enter full feature phase after %d login rounds", spec.label, loginRounds)
}

// readSecret reads a CHAP secret file: the whole file, without a trailing
// newline. The secret never appears in any message.
func readSecret(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the %s file: %w", what, err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("the %s file %s is empty: write the secret into it (one line)", what, path)
	}
	if strings.ContainsAny(string(b), "\n\x00") {
		return nil, fmt.Errorf("the %s file %s has more than one line: it must hold the secret alone", what, path)
	}
	return b, nil
}
