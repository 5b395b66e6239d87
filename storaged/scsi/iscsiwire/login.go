package iscsiwire

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Login status classes and details (§11.13.5).
const (
	LoginSuccess         = 0x0000
	LoginTargetMovedTemp = 0x0101
	LoginTargetMovedPerm = 0x0102
	LoginInitiatorError  = 0x0200
	LoginAuthFailed      = 0x0201
	LoginForbidden       = 0x0202
	LoginNotFound        = 0x0203
	LoginTargetRemoved   = 0x0204
	LoginNoVersion       = 0x0205
	LoginTooManyConns    = 0x0206
	LoginMissingParam    = 0x0207
	LoginCantIncludeConn = 0x0208
	LoginSessionType     = 0x0209
	LoginNoSession       = 0x020a
	LoginInvalidDuring   = 0x020b
	LoginTargetError     = 0x0300
	LoginServiceUnavail  = 0x0301
	LoginOutOfResources  = 0x0302
)

// LoginStatusText names a login status (class<<8 | detail).
func LoginStatusText(s uint16) string {
	switch s {
	case LoginSuccess:
		return "success"
	case LoginTargetMovedTemp:
		return "target moved temporarily"
	case LoginTargetMovedPerm:
		return "target moved permanently"
	case LoginInitiatorError:
		return "initiator error"
	case LoginAuthFailed:
		return "authentication failed"
	case LoginForbidden:
		return "authorization failure: this initiator may not access the target"
	case LoginNotFound:
		return "target not found"
	case LoginTargetRemoved:
		return "target removed"
	case LoginNoVersion:
		return "unsupported iSCSI version"
	case LoginTooManyConns:
		return "too many connections"
	case LoginMissingParam:
		return "missing parameter"
	case LoginCantIncludeConn:
		return "cannot include this connection in the session"
	case LoginSessionType:
		return "session type not supported"
	case LoginNoSession:
		return "session does not exist"
	case LoginInvalidDuring:
		return "invalid request during login"
	case LoginTargetError:
		return "target error"
	case LoginServiceUnavail:
		return "service unavailable"
	case LoginOutOfResources:
		return "target out of resources"
	}
	return fmt.Sprintf("status 0x%04x", s)
}

// ErrLogin is matched by a *LoginError.
var ErrLogin = errors.New("iSCSI login refused")

// LoginError is a login the target refused (a non-zero status class).
type LoginError struct {
	Target string // the target name (or portal for discovery)
	Status uint16 // class<<8 | detail
}

func (e *LoginError) Error() string {
	s := "iSCSI login to " + e.Target + " refused: " + LoginStatusText(e.Status)
	switch e.Status {
	case LoginAuthFailed:
		s += " (check the CHAP user name and secret on both sides)"
	case LoginForbidden:
		s += " (add this initiator's IQN to the target's allow-list)"
	case LoginNotFound:
		s += " (list the portal's targets with SendTargets discovery, e.g. `iscsi-ls iscsi://HOST:PORT/`)"
	}
	return s
}

// Is makes errors.Is(err, ErrLogin) true.
func (e *LoginError) Is(target error) bool { return target == ErrLogin }

// CHAPAlgorithmMD5 is CHAP_A=5, the only algorithm RFC 7143 requires.
const CHAPAlgorithmMD5 = "5"

// CHAPResponse is CHAP's MD5 response (RFC 1994): MD5(id ‖ secret ‖
// challenge).
func CHAPResponse(id byte, secret, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil)
}

// EncodeBinary is a binary value in the hex form of §6.1 ("0x…").
func EncodeBinary(b []byte) string { return "0x" + hex.EncodeToString(b) }

// DecodeBinary reads a binary value: "0x"/"0X" hex or "0b"/"0B" base64
// (§6.1).
func DecodeBinary(s string) ([]byte, error) {
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			h := s[2:]
			if len(h)%2 == 1 {
				h = "0" + h
			}
			b, err := hex.DecodeString(h)
			if err == nil {
				return b, nil
			}
		case 'b', 'B':
			if b, err := base64.StdEncoding.DecodeString(s[2:]); err == nil {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("iSCSI: %q is not a binary value (0x… hex or 0b… base64)", trunc(strings.TrimSpace(s)))
}

// SerialLess reports a < b in serial number arithmetic (RFC 1982, 32
// bits), as CmdSN, StatSN and DataSN compare.
func SerialLess(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// SenseSegment is a SCSI Response data segment for sense bytes: a 2-byte
// SenseLength, then the sense data (§11.4.7).
func SenseSegment(sense []byte) []byte {
	d := make([]byte, 2+len(sense))
	d[0], d[1] = byte(len(sense)>>8), byte(len(sense))
	copy(d[2:], sense)
	return d
}

// ParseSenseSegment returns the sense bytes of a SCSI Response data
// segment (empty when it has none).
func ParseSenseSegment(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) < 2 {
		return nil, errors.New("iSCSI: SCSI Response data segment shorter than its 2-byte SenseLength")
	}
	n := int(data[0])<<8 | int(data[1])
	if 2+n > len(data) {
		return nil, fmt.Errorf("iSCSI: SenseLength %d is longer than the %d bytes that follow", n, len(data)-2)
	}
	return data[2 : 2+n], nil
}
