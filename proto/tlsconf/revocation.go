package tlsconf

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// A revocation list file names certificates that must no longer be
// accepted, by serial number. It is plain text, so it works without the
// CA's private key and can be read and diffed by hand:
//
//	# tapeward revocation list v1
//	# serial  revoked-at  name  role  reason
//	5f3c0e9a8b7d6c5f4e3d2c1b0a998877  2026-12-02T05:40:00Z  admin  console  laptop stolen
//
// The first line is the header "# tapeward revocation list v1"; an empty
// file is an empty list. Every other line is blank, a comment (# …) or one
// certificate: its serial number in hexadecimal (as `tapekey pki list` and
// `openssl x509 -serial` show it; case and ':' separators do not matter),
// the time it was revoked (RFC 3339), its name and role ("-" when unknown)
// and, for the rest of the line, the reason (may be empty). Fields are
// separated by spaces or tabs.
//
// A serial listed twice, a malformed line or a missing header make the
// whole file unusable: every handshake is then refused with the reason
// (fail closed) until the file is fixed.
//
// `tapekey pki revoke` writes it atomically (temp file, fsync, rename;
// mode 0644: it holds no secret). The daemons and tapectl re-read it when
// its size or modification time changes (checked at every handshake), and
// the daemons on SIGHUP.
const RevocationHeader = "# tapeward revocation list v1"

// Revocation is one revoked certificate.
type Revocation struct {
	Serial *big.Int
	At     time.Time
	Name   string // "" when unknown
	Role   string // "" when unknown
	Reason string
}

// FormatSerial writes a serial number as lowercase hex without separators.
func FormatSerial(n *big.Int) string {
	if n == nil {
		return "-"
	}
	return n.Text(16)
}

// ParseSerial reads a hexadecimal serial number ("5F:3C:…" or "5f3c…").
func ParseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), ":", ""))
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || n.Sign() <= 0 {
		return nil, fmt.Errorf("%q is not a certificate serial number (hexadecimal, as tapekey pki list shows it)", s)
	}
	return n, nil
}

// ParseRevocations reads a revocation list (see RevocationHeader).
func ParseRevocations(b []byte) ([]Revocation, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var out []Revocation
	seen := map[string]int{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if i == 0 {
			if line != RevocationHeader {
				return nil, fmt.Errorf("line 1: want the header %q (is this a revocation list written by tapekey pki revoke?)", RevocationHeader)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return nil, fmt.Errorf("line %d: want SERIAL REVOKED-AT NAME ROLE [REASON], got %q", i+1, line)
		}
		serial, err := ParseSerial(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		at, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: revocation time %q is not RFC 3339 (e.g. 2026-12-02T05:40:00Z)", i+1, f[1])
		}
		id := FormatSerial(serial)
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("line %d: serial %s is already listed on line %d", i+1, id, prev)
		}
		seen[id] = i + 1
		r := Revocation{Serial: serial, At: at.UTC(), Name: dash(f[2]), Role: dash(f[3])}
		if len(f) > 4 {
			r.Reason = strings.Join(f[4:], " ")
		}
		out = append(out, r)
	}
	return out, nil
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), "_")
}

// FormatRevocations writes a revocation list, sorted by revocation time.
func FormatRevocations(list []Revocation) []byte {
	list = slices.Clone(list)
	slices.SortStableFunc(list, func(a, b Revocation) int { return a.At.Compare(b.At) })
	var b bytes.Buffer
	b.WriteString(RevocationHeader + "\n")
	b.WriteString("# serial  revoked-at  name  role  reason — written by tapekey pki revoke; see package proto/tlsconf\n")
	for _, r := range list {
		fmt.Fprintf(&b, "%s  %s  %s  %s", FormatSerial(r.Serial), r.At.UTC().Format(time.RFC3339), orDash(r.Name), orDash(r.Role))
		if reason := strings.Join(strings.Fields(r.Reason), " "); reason != "" {
			b.WriteString("  " + reason)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// RevocationList is a revocation list file kept up to date: Check re-reads
// it when its size or modification time changed since the last read.
type RevocationList struct {
	path string

	mu      sync.Mutex
	size    int64
	mtime   time.Time
	revoked map[string]Revocation // by FormatSerial
	err     error                 // why the file is unusable (fail closed)
}

var (
	listsMu sync.Mutex
	lists   = map[string]*RevocationList{}
)

// OpenRevocationList reads the revocation list at path. The file must
// exist (an empty file is an empty list). Every configuration of the
// process that names the same path shares one list.
func OpenRevocationList(path string) (*RevocationList, error) {
	listsMu.Lock()
	defer listsMu.Unlock()
	if l, ok := lists[path]; ok {
		return l, nil
	}
	l := &RevocationList{path: path}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	lists[path] = l
	return l, nil
}

// ReloadRevocationLists re-reads every revocation list this process has
// opened (on SIGHUP) and returns their paths; an unusable one is an error
// (and refuses every handshake until it is fixed).
func ReloadRevocationLists() ([]string, error) {
	listsMu.Lock()
	all := slices.Collect(func(yield func(*RevocationList) bool) {
		for _, l := range lists {
			if !yield(l) {
				return
			}
		}
	})
	listsMu.Unlock()
	var paths []string
	var errs []error
	for _, l := range all {
		paths = append(paths, l.path)
		errs = append(errs, l.Reload())
	}
	slices.Sort(paths)
	return paths, errors.Join(errs...)
}

// Reload re-reads the file now.
func (l *RevocationList) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, err := os.Stat(l.path)
	if err != nil {
		return l.fail(err, time.Time{}, -1)
	}
	return l.read(st)
}

// Len is the number of revoked certificates.
func (l *RevocationList) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.revoked)
}

func (l *RevocationList) fail(err error, mtime time.Time, size int64) error {
	if errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("tls: revocation list %s does not exist; create it with tapekey pki revoke (or an empty file), or remove revocation_list from [tls]", l.path)
	} else {
		err = fmt.Errorf("tls: revocation list %s: %v; fix or replace it (until then every certificate is refused)", l.path, err)
	}
	l.err, l.mtime, l.size = err, mtime, size
	return err
}

func (l *RevocationList) read(st os.FileInfo) error {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return l.fail(err, st.ModTime(), st.Size())
	}
	list, err := ParseRevocations(b)
	if err != nil {
		return l.fail(err, st.ModTime(), st.Size())
	}
	m := make(map[string]Revocation, len(list))
	for _, r := range list {
		m[FormatSerial(r.Serial)] = r
	}
	l.revoked, l.err, l.mtime, l.size = m, nil, st.ModTime(), st.Size()
	return nil
}

// Check refuses c if it is revoked, or if the list cannot be read. A nil
// list accepts every certificate.
func (l *RevocationList) Check(c *x509.Certificate) error {
	return l.check(c)
}

func (l *RevocationList) check(c *x509.Certificate) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, err := os.Stat(l.path); err != nil {
		if l.size != -1 || l.err == nil {
			l.fail(err, time.Time{}, -1)
		}
	} else if !st.ModTime().Equal(l.mtime) || st.Size() != l.size {
		l.read(st)
	}
	p := peerOf(c)
	serial := FormatSerial(c.SerialNumber)
	if l.err != nil {
		return &RefusedError{Peer: p, Serial: serial, Reason: l.err.Error()}
	}
	r, ok := l.revoked[serial]
	if !ok {
		return nil
	}
	msg := fmt.Sprintf("the certificate of %s (serial %s) was revoked on %s", p, serial, r.At.Format(time.RFC3339))
	if r.Reason != "" {
		msg += " (" + r.Reason + ")"
	}
	return &RefusedError{Peer: p, Serial: serial, Reason: msg + "; it is listed in " + l.path}
}
