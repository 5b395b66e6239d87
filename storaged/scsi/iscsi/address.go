package iscsi

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// DefaultPort is the iSCSI well-known TCP port.
const DefaultPort = 3260

// Address names one logical unit of an iSCSI target:
//
//	iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN
//
// USER is the CHAP user name (the secret is never part of an address: it
// comes from a file, Options.CHAPSecretFile).
type Address struct {
	User   string // CHAP user name; empty: the initiator name
	Host   string // host name or IP address (no brackets)
	Port   int    // TCP port (DefaultPort when the address has none)
	Target string // target name, e.g. iqn.2026-12.com.example:tape
	LUN    int    // 0..16383
}

// ErrAddress is wrapped by every malformed iscsi:// address error.
var ErrAddress = errors.New("malformed iscsi:// address")

// Form is the address form, for messages.
const Form = "iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN"

// ParseAddress reads an iscsi:// address.
func ParseAddress(s string) (Address, error) {
	bad := func(why string) (Address, error) {
		return Address{}, fmt.Errorf("%w %q: %s; the form is %s", ErrAddress, redact(s), why, Form)
	}
	if !strings.HasPrefix(s, "iscsi://") {
		return bad("it does not start with iscsi://")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("not a URL")
	}
	var a Address
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return bad("a CHAP secret never goes in the address; put it in a file and name the file (chap_secret_file, --iscsi-chap-secret-file or TAPEWARD_ISCSI_CHAP_SECRET_FILE)")
		}
		a.User = u.User.Username()
		if a.User == "" {
			return bad("empty user name before @")
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("no ?query or #fragment is allowed")
	}
	a.Host = u.Hostname()
	if a.Host == "" {
		return bad("no host")
	}
	a.Port = DefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad(fmt.Sprintf("port %q is not 1..65535", p))
		}
		a.Port = n
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return bad("the path must be /TARGET-IQN/LUN")
	}
	a.Target = parts[0]
	if err := CheckName("target name", a.Target); err != nil {
		return bad(err.Error())
	}
	lun, err := strconv.Atoi(parts[1])
	if err != nil || lun < 0 || lun > 16383 || strconv.Itoa(lun) != parts[1] {
		return bad(fmt.Sprintf("LUN %q is not a number 0..16383", parts[1]))
	}
	a.LUN = lun
	return a, nil
}

// redact hides a password an address should not have carried.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	return u.Redacted()
}

// Portal is HOST:PORT, for dialing.
func (a Address) Portal() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// String is the address in canonical form (port always written).
func (a Address) String() string {
	s := "iscsi://"
	if a.User != "" {
		s += url.User(a.User).String() + "@"
	}
	return s + a.Portal() + "/" + a.Target + "/" + strconv.Itoa(a.LUN)
}

// DefaultInitiatorName is iqn.2026-12.io.tapeward:<hostname>, the
// initiator name used when none is configured.
func DefaultInitiatorName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	h = strings.ToLower(h)
	// An iSCSI name allows a-z 0-9 . - : only (RFC 3722 stringprep aside).
	h = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, h)
	return "iqn.2026-12.io.tapeward:" + h
}

// CheckName verifies an iSCSI name (initiator or target) has the iqn.,
// eui. or naa. form, fits 223 bytes and has no blank or control
// character. (Targets compare names as they were configured; upper-case
// letters are left to them.)
func CheckName(what, n string) error {
	if !strings.HasPrefix(n, "iqn.") && !strings.HasPrefix(n, "eui.") && !strings.HasPrefix(n, "naa.") {
		return fmt.Errorf("iSCSI %s %q is not an iqn., eui. or naa. name (e.g. iqn.2026-12.com.example:host)", what, n)
	}
	if len(n) > 223 {
		return fmt.Errorf("iSCSI %s %q is longer than 223 bytes", what, n)
	}
	for _, r := range n {
		if r <= ' ' || r == 0x7f || r == '/' {
			return fmt.Errorf("iSCSI %s %q has the character %q (an iSCSI name has letters, digits, '.', '-', ':')", what, n, r)
		}
	}
	return nil
}
