package iscsi

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"
	"time"

	w "github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// loginTimeout bounds the whole login phase of a connection.
const loginTimeout = 30 * time.Second

// cmdWindow is the number of commands an initiator may have queued
// (MaxCmdSN − ExpCmdSN + 1).
const cmdWindow = 32

// maxLoginText bounds a login's key=value text across Continue PDUs.
const maxLoginText = 64 << 10

// What the target supports or prefers, as responder (iscsiwire.Negotiate's
// mine). MaxRecvDataSegmentLength is declared from the Config.
var targetKeys = map[string]string{
	"HeaderDigest":        "None,CRC32C",
	"DataDigest":          "None,CRC32C",
	"MaxConnections":      "1",
	"InitialR2T":          "No",  // OR: unsolicited data whenever the initiator wants it
	"ImmediateData":       "Yes", // AND
	"MaxBurstLength":      strconv.Itoa(16776192),
	"FirstBurstLength":    strconv.Itoa(16776192),
	"DefaultTime2Wait":    "0",
	"DefaultTime2Retain":  "0", // ERL 0: nothing survives a connection
	"MaxOutstandingR2T":   "1",
	"DataPDUInOrder":      "Yes",
	"DataSequenceInOrder": "Yes",
	"ErrorRecoveryLevel":  "0",
}

// loginFail is a login refused with a status; msg goes to the log only.
type loginFail struct {
	status uint16
	msg    string
}

func (e *loginFail) Error() string { return w.LoginStatusText(e.status) + ": " + e.msg }

func refuse(status uint16, format string, a ...any) *loginFail {
	return &loginFail{status: status, msg: fmt.Sprintf(format, a...)}
}

// login runs the login phase. It returns the session (nil after a
// refusal or a dropped connection: the caller closes it).
func (c *conn) login() *session {
	t := c.t
	c.nc.SetDeadline(time.Now().Add(loginTimeout))
	defer c.nc.SetDeadline(time.Time{})
	c.r.MaxData = 8192 // §13.12 default until declared; login PDUs carry no more
	var (
		first     = true
		first1    w.LoginRequest // the first request's ISID, TSIH, CID, ITT
		text      []byte
		initiator string
		stype     = "Normal"
		authed    = t.cfg.CHAPUser == ""
		chapState int // 0 none, 1 AuthMethod=CHAP chosen, 2 challenge sent
		chapID    byte
		chapChal  []byte
		mutual    bool // the target answered the initiator's challenge
		declared  bool // our MaxRecvDataSegmentLength sent
		params    = w.DefaultParams()
	)
	for {
		bhs, _, err := c.r.Header()
		if err != nil {
			c.logEnd("login", err)
			return nil
		}
		if bhs.Opcode() != w.OpLogin {
			c.r.Data(&bhs)
			c.loginRefuse(first1, bhs.ITT(), refuse(w.LoginInvalidDuring, "%s during login", w.OpName(bhs.Opcode())))
			return nil
		}
		req := w.DecodeLoginRequest(&bhs)
		data, err := c.r.Data(&bhs)
		if err != nil {
			c.logEnd("login", err)
			return nil
		}
		if first {
			first1 = req
			c.expCmdSN = req.CmdSN
			c.statSN = req.ExpStatSN
			if req.VersionMin > 0 {
				c.loginRefuse(req, req.ITT, refuse(w.LoginNoVersion, "initiator supports versions %d..%d, target 0", req.VersionMin, req.VersionMax))
				return nil
			}
			first = false
		} else if req.ISID != first1.ISID || req.TSIH != first1.TSIH || req.CID != first1.CID {
			c.loginRefuse(req, req.ITT, refuse(w.LoginInitiatorError, "ISID, TSIH or CID changed during login"))
			return nil
		}
		if len(text)+len(data) > maxLoginText {
			c.loginRefuse(req, req.ITT, refuse(w.LoginInitiatorError, "login text longer than %d bytes", maxLoginText))
			return nil
		}
		text = append(text, data...)
		if req.Continue {
			// More text follows: acknowledge with an empty response.
			if c.loginReply(req, false, req.CSG, 0, nil) != nil {
				return nil
			}
			continue
		}
		kvs, err := w.ParseText(text)
		text = text[:0]
		if err != nil {
			c.loginRefuse(req, req.ITT, refuse(w.LoginInitiatorError, "%v", err))
			return nil
		}
		var answer []w.KV
		var fail *loginFail
		for _, kv := range kvs {
			switch k, v := kv.Key, kv.Value; {
			case k == "InitiatorName":
				if err := checkName(v); err != nil {
					fail = refuse(w.LoginInitiatorError, "InitiatorName: %v", err)
				} else {
					initiator = v
				}
			case k == "SessionType":
				switch v {
				case "Normal", "Discovery":
					stype = v
				default:
					fail = refuse(w.LoginSessionType, "SessionType=%q", v)
				}
			case k == "TargetName":
				if v != t.cfg.Name {
					fail = refuse(w.LoginNotFound, "TargetName %q (this portal serves %s)", v, t.cfg.Name)
				}
				c.targetNamed = true
			case k == "InitiatorAlias" || k == "TargetAlias":
				// Declarative, informational.
			case k == "AuthMethod":
				if req.CSG != w.StageSecurity {
					answer = append(answer, w.KV{Key: k, Value: w.Irrelevant})
					continue
				}
				want := "None"
				if t.cfg.CHAPUser != "" {
					want = "CHAP"
				}
				if inList(v, want) {
					answer = append(answer, w.KV{Key: k, Value: want})
					if want == "CHAP" {
						chapState = 1
					}
				} else if want == "CHAP" {
					fail = refuse(w.LoginAuthFailed, "the initiator offers AuthMethod=%s; this target requires CHAP (give the initiator the CHAP user and secret)", v)
				} else {
					fail = refuse(w.LoginAuthFailed, "the initiator offers AuthMethod=%s; this target has no CHAP configured (AuthMethod=None)", v)
				}
			case k == "CHAP_A":
				if chapState != 1 {
					fail = refuse(w.LoginInitiatorError, "CHAP_A before AuthMethod=CHAP was agreed")
					break
				}
				if !inList(v, w.CHAPAlgorithmMD5) {
					fail = refuse(w.LoginAuthFailed, "CHAP_A=%q: only MD5 (5) is supported", v)
					break
				}
				var id [1]byte
				chapChal = make([]byte, 16)
				rand.Read(id[:])
				rand.Read(chapChal)
				chapID = id[0]
				chapState = 2
				answer = append(answer, w.KV{Key: "CHAP_A", Value: w.CHAPAlgorithmMD5},
					w.KV{Key: "CHAP_I", Value: strconv.Itoa(int(chapID))},
					w.KV{Key: "CHAP_C", Value: w.EncodeBinary(chapChal)})
			case k == "CHAP_N" || k == "CHAP_R":
				// Checked together below.
			case k == "CHAP_I" || k == "CHAP_C":
				if t.cfg.TargetCHAPUser == "" {
					fail = refuse(w.LoginAuthFailed, "the initiator asks for mutual CHAP; this target has no CHAP identity of its own (--iscsi-chap-target-user, --iscsi-chap-target-secret-file)")
				}
				// Answered below, once the initiator's response is checked.
			case w.IsOperational(k):
				mine := targetKeys[k]
				if k == "MaxRecvDataSegmentLength" {
					mine = strconv.Itoa(t.cfg.MaxRecvDataSegmentLength)
				}
				a, err := w.Negotiate(k, v, mine)
				if err != nil {
					fail = refuse(w.LoginInitiatorError, "%v", err)
					break
				}
				set := a
				if k == "MaxRecvDataSegmentLength" {
					set = v // the initiator's declaration: what we may send
					declared = true
				}
				if a != w.RejectValue {
					if err := params.Set(k, set); err != nil {
						fail = refuse(w.LoginInitiatorError, "%v", err)
						break
					}
				}
				answer = append(answer, w.KV{Key: k, Value: a})
			case k == "IFMarker" || k == "OFMarker":
				answer = append(answer, w.KV{Key: k, Value: "No"}) // RFC 3720 keys, still sent by older initiators
			case k == "IFMarkInt" || k == "OFMarkInt":
				answer = append(answer, w.KV{Key: k, Value: w.Irrelevant})
			default:
				answer = append(answer, w.KV{Key: k, Value: w.NotUnderstood})
			}
			if fail != nil {
				break
			}
		}
		if fail == nil {
			if n, ok := w.Lookup(kvs, "CHAP_N"); ok {
				r, rok := w.Lookup(kvs, "CHAP_R")
				fail = c.checkCHAP(chapState, chapID, chapChal, n, r, rok)
				if fail == nil {
					authed, chapState = true, 3
					var ans []w.KV
					ans, fail = c.mutualCHAP(kvs, chapChal)
					answer = append(answer, ans...)
					mutual = len(ans) > 0
				}
			}
		}
		if fail == nil && initiator == "" {
			fail = refuse(w.LoginMissingParam, "no InitiatorName in the login")
		}
		if fail == nil && stype == "Normal" && !c.targetNamed {
			fail = refuse(w.LoginMissingParam, "no TargetName in a normal session's login")
		}
		if fail == nil && !t.allowed(initiator) {
			fail = refuse(w.LoginForbidden, "initiator not in the allow-list (--iscsi-allow)")
		}
		if fail == nil && req.CSG == w.StageOperational && !authed {
			fail = refuse(w.LoginAuthFailed, "CHAP is required and the initiator skipped the security stage")
		}
		if fail == nil && req.CSG != w.StageSecurity && req.CSG != w.StageOperational {
			fail = refuse(w.LoginInitiatorError, "login CSG %d", req.CSG)
		}
		if fail != nil {
			c.loginRefuse(req, req.ITT, fail, "initiator", initiator)
			return nil
		}
		transit := req.Transit
		if transit && req.CSG == w.StageSecurity && !authed {
			if t.cfg.CHAPUser != "" && chapState == 0 {
				c.loginRefuse(req, req.ITT, refuse(w.LoginAuthFailed, "CHAP is required and the initiator did not offer it"), "initiator", initiator)
				return nil
			}
			transit = false // the CHAP exchange goes on
		}
		if transit && req.NSG <= req.CSG || transit && req.NSG == 2 {
			c.loginRefuse(req, req.ITT, refuse(w.LoginInitiatorError, "login stage %d to %d", req.CSG, req.NSG), "initiator", initiator)
			return nil
		}
		if !declared && (req.CSG == w.StageOperational || transit && req.NSG == w.StageFullFeature) {
			answer = append(answer, w.KV{Key: "MaxRecvDataSegmentLength", Value: strconv.Itoa(t.cfg.MaxRecvDataSegmentLength)})
			declared = true
		}
		if c.answered == 0 && stype == "Normal" {
			answer = append(answer, w.KV{Key: "TargetPortalGroupTag", Value: "1"})
		}
		if !(transit && req.NSG == w.StageFullFeature) {
			if c.loginReply(req, transit, req.CSG, req.NSG, w.AppendText(nil, answer...)) != nil {
				return nil
			}
			continue
		}
		// Full feature phase next: make the session, then answer.
		s, lf := c.startSession(req, initiator, stype == "Discovery")
		if lf != nil {
			c.loginRefuse(req, req.ITT, lf, "initiator", initiator)
			return nil
		}
		c.params = params
		if err := c.loginReply(req, true, req.CSG, w.StageFullFeature, w.AppendText(nil, answer...), s.tsih); err != nil {
			c.endSession(s)
			return nil
		}
		auth := "None"
		switch {
		case mutual:
			auth = "mutual CHAP"
		case t.cfg.CHAPUser != "":
			auth = "CHAP"
		}
		t.log.Info("iSCSI login", "initiator", initiator, "isid", fmt.Sprintf("%x", req.ISID), "tsih", s.tsih,
			"session", stype, "auth", auth, "remote", c.nc.RemoteAddr().String(),
			"header_digest", params.HeaderDigest, "data_digest", params.DataDigest)
		return s
	}
}

// inList reports whether the comma-separated list has v.
func inList(list, v string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == v {
			return true
		}
	}
	return false
}

// checkCHAP verifies CHAP_N and CHAP_R against the configured user and
// secret. Nothing of the secret or the response goes into the message.
func (c *conn) checkCHAP(state int, id byte, chal []byte, user, resp string, haveResp bool) *loginFail {
	t := c.t
	if t.cfg.CHAPUser == "" || state != 2 {
		return refuse(w.LoginInitiatorError, "CHAP_N without a CHAP challenge")
	}
	if !haveResp {
		return refuse(w.LoginAuthFailed, "CHAP_N without CHAP_R")
	}
	got, err := w.DecodeBinary(resp)
	if err != nil {
		return refuse(w.LoginAuthFailed, "CHAP_R is not a binary value")
	}
	want := w.CHAPResponse(id, t.cfg.CHAPSecret, chal)
	userOK := t.chapUserOK(user)
	if subtle.ConstantTimeCompare(got, want) != 1 || !userOK {
		if !userOK {
			return refuse(w.LoginAuthFailed, "CHAP: unknown user name")
		}
		return refuse(w.LoginAuthFailed, "CHAP: wrong response (the secrets differ)")
	}
	return nil
}

// mutualCHAP answers the initiator's own challenge (CHAP_I, CHAP_C in
// the PDU of its response), when it sent one: CHAP_N and CHAP_R computed
// with the target's secret. A challenge equal to the target's own is a
// reflection attempt and refused.
func (c *conn) mutualCHAP(kvs []w.KV, ours []byte) ([]w.KV, *loginFail) {
	idS, okI := w.Lookup(kvs, "CHAP_I")
	chS, okC := w.Lookup(kvs, "CHAP_C")
	switch {
	case !okI && !okC:
		return nil, nil
	case !okI || !okC:
		return nil, refuse(w.LoginAuthFailed, "mutual CHAP needs both CHAP_I and CHAP_C")
	}
	id, err := strconv.Atoi(idS)
	if err != nil || id < 0 || id > 255 {
		return nil, refuse(w.LoginAuthFailed, "CHAP_I=%q is not 0..255", idS)
	}
	chal, err := w.DecodeBinary(chS)
	if err != nil || len(chal) == 0 || len(chal) > 1024 {
		return nil, refuse(w.LoginAuthFailed, "the initiator's CHAP_C is not a binary value of 1..1024 bytes")
	}
	if bytes.Equal(chal, ours) {
		return nil, refuse(w.LoginAuthFailed, "the initiator's CHAP challenge repeats the target's (a reflection attempt)")
	}
	t := c.t
	return []w.KV{{Key: "CHAP_N", Value: t.cfg.TargetCHAPUser},
		{Key: "CHAP_R", Value: w.EncodeBinary(w.CHAPResponse(byte(id), t.cfg.TargetCHAPSecret, chal))}}, nil
}

// startSession makes the session a login leads to: a discovery session,
// a new normal session (reinstating one of the same initiator and ISID),
// or, with a non-zero TSIH, the existing session this connection takes
// over (connection reinstatement).
func (c *conn) startSession(req w.LoginRequest, initiator string, discovery bool) (*session, *loginFail) {
	t := c.t
	if req.TSIH != 0 {
		s := t.lookup(initiator, req.ISID, req.TSIH)
		if s == nil || discovery {
			return nil, refuse(w.LoginNoSession, "no session with TSIH %d for this initiator and ISID", req.TSIH)
		}
		// Connection reinstatement: the old connection ends (its tasks
		// with it, ERL 0) and this one serves the session.
		t.mu.Lock()
		old := s.conn
		if old != nil {
			old.takenOver = true
		}
		t.mu.Unlock()
		if old != nil {
			old.nc.Close()
			<-old.done
		}
		t.mu.Lock()
		s.conn = c
		t.mu.Unlock()
		c.expCmdSN = s.expCmdSN
		if w.SerialLess(c.expCmdSN, req.CmdSN) {
			c.expCmdSN = req.CmdSN
		}
		return s, nil
	}
	s := &session{initiator: initiator, isid: req.ISID, discovery: discovery, luns: map[int]*emu.Conn{}}
	if !discovery {
		if err := t.register(s); err != nil {
			return nil, refuse(w.LoginServiceUnavail, "%v", err)
		}
	}
	t.mu.Lock()
	s.conn = c
	t.mu.Unlock()
	return s, nil
}

// loginReply sends one Login Response with success status.
func (c *conn) loginReply(req w.LoginRequest, transit bool, csg, nsg byte, data []byte, tsih ...uint16) error {
	m := w.LoginResponse{Transit: transit, CSG: csg, ISID: req.ISID, ITT: req.ITT,
		StatSN: c.statSN, ExpCmdSN: c.expCmdSN, MaxCmdSN: c.expCmdSN + cmdWindow - 1}
	if transit {
		m.NSG = nsg
	}
	if len(tsih) > 0 {
		m.TSIH = tsih[0]
	} else {
		m.TSIH = req.TSIH
	}
	c.statSN++
	c.answered++
	return c.w.Write(w.NewPDU(&m, data))
}

// loginRefuse answers a login with a failure status and logs why.
func (c *conn) loginRefuse(req w.LoginRequest, itt uint32, f *loginFail, attrs ...any) {
	m := w.LoginResponse{CSG: req.CSG, ISID: req.ISID, TSIH: req.TSIH, ITT: itt, StatSN: c.statSN,
		ExpCmdSN: c.expCmdSN, MaxCmdSN: c.expCmdSN + cmdWindow - 1,
		StatusClass: byte(f.status >> 8), StatusDetail: byte(f.status)}
	attrs = append(attrs, "status", fmt.Sprintf("0x%04x", f.status), "why", f.msg, "remote", c.nc.RemoteAddr().String())
	c.t.log.Warn("iSCSI login refused", attrs...) // before the answer: whoever hears it can read the log
	c.w.Write(w.NewPDU(&m, nil))
}
