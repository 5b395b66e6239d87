package keys

import (
	"encoding/base32"
	"fmt"
	"hash/crc32"
	"strings"
)

// The paper form of an escrow private key: the 32 private key bytes as
// base32 (A–Z, 2–7), in 13 groups of 4 characters, each group followed by
// one check character that covers the group's position and its text (so a
// typo or two swapped groups name the group), 4 groups to a line; the
// escrow key id is the overall check (the key typed back must have it).
//
//	tapeward-escrow-key v1
//	id 3f9a0c1d2e4b5a69
//	01 ABCDX EFGHY IJKLZ MNOPQ
//	02 …
//	04 QRSTU
//
// Parsing is forgiving where people are: case, extra spaces or hyphens,
// line numbers, and 0/1/8 typed for O/I/B are accepted.

// PaperHeader is the first line of the paper text.
const PaperHeader = "tapeward-escrow-key v1"

const (
	paperGroupData  = 4
	paperGroupsLine = 4
)

var paperEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

const paperAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

var paperCRC = crc32.MakeTable(crc32.Castagnoli)

// paperCheck is the check character of group number n (1-based) with text g.
func paperCheck(n int, g string) byte {
	return paperAlphabet[crc32.Checksum([]byte(fmt.Sprintf("%d:%s", n, g)), paperCRC)%32]
}

// PaperText returns the paper form of p: header, id line, numbered lines of
// checked groups. It contains the private key: print it, never log it.
func (p *EscrowPrivate) PaperText() string {
	raw := p.PrivateKeyBytes()
	defer clear(raw)
	s := paperEnc.EncodeToString(raw)
	var b strings.Builder
	b.WriteString(PaperHeader + "\n")
	b.WriteString("id " + p.ID() + "\n")
	n := 0
	for i := 0; i < len(s); i += paperGroupData {
		g := s[i:min(i+paperGroupData, len(s))]
		n++
		if (n-1)%paperGroupsLine == 0 {
			if n > 1 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%02d", (n-1)/paperGroupsLine+1)
		}
		b.WriteString(" " + g + string(paperCheck(n, g)))
	}
	b.WriteString("\n")
	return b.String()
}

// PaperGroups returns the checked groups of the paper form, in order (for
// a printed layout); the caller must not log them.
func PaperGroups(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] == "id" || line == PaperHeader {
			continue
		}
		out = append(out, f[1:]...)
	}
	return out
}

// PaperError says what is wrong with typed-back paper text; it names a
// group by number and never repeats the text.
type PaperError struct{ Detail string }

func (e *PaperError) Error() string { return "escrow paper key: " + e.Detail }

// ParsePaper turns typed-back paper text into the escrow private key. Errors
// name the group (number, line) whose check fails, or say the key typed
// back does not have the id the paper shows.
func ParsePaper(text string) (*EscrowPrivate, error) {
	var id string
	var groups []string
	sawHeader := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.EqualFold(strings.Join(strings.Fields(line), " "), PaperHeader) {
			sawHeader = true
			continue
		}
		f := strings.Fields(strings.NewReplacer("-", " ", ":", " ").Replace(line))
		if len(f) == 0 {
			continue
		}
		if strings.EqualFold(f[0], "id") {
			if len(f) != 2 {
				return nil, &PaperError{Detail: "the id line must be \"id\" and the 16-character escrow key id"}
			}
			id = strings.ToLower(f[1])
			continue
		}
		if len(f[0]) <= 3 && isDigits(f[0]) {
			f = f[1:]
		}
		for _, g := range f {
			groups = append(groups, normalisePaper(g))
		}
	}
	if !sawHeader && id == "" && len(groups) == 0 {
		return nil, &PaperError{Detail: "no groups found (type the lines under " + PaperHeader + ")"}
	}
	want := (paperEnc.EncodedLen(EscrowPrivateKeyLen) + paperGroupData - 1) / paperGroupData
	var data strings.Builder
	for i, g := range groups {
		n := i + 1
		where := fmt.Sprintf("group %d (line %d, group %d of the line)", n, (n-1)/paperGroupsLine+1, (n-1)%paperGroupsLine+1)
		if n > want {
			return nil, &PaperError{Detail: fmt.Sprintf("%d groups typed, the key has %d: %s is one too many", len(groups), want, where)}
		}
		wantLen := paperGroupData + 1
		if n == want {
			wantLen = paperEnc.EncodedLen(EscrowPrivateKeyLen) - (want-1)*paperGroupData + 1
		}
		if len(g) != wantLen {
			return nil, &PaperError{Detail: fmt.Sprintf("%s has %d characters, want %d", where, len(g), wantLen)}
		}
		for j := 0; j < len(g); j++ {
			if !strings.ContainsRune(paperAlphabet, rune(g[j])) {
				return nil, &PaperError{Detail: fmt.Sprintf("%s: character %d is not one of A-Z, 2-7", where, j+1)}
			}
		}
		body := g[:len(g)-1]
		if paperCheck(n, body) != g[len(g)-1] {
			return nil, &PaperError{Detail: fmt.Sprintf("%s does not match its check character: a typo in it (or a group out of order); compare it with the paper", where)}
		}
		data.WriteString(body)
	}
	if len(groups) < want {
		return nil, &PaperError{Detail: fmt.Sprintf("%d groups typed, the key has %d: group %d onwards is missing", len(groups), want, len(groups)+1)}
	}
	raw, err := paperEnc.DecodeString(data.String())
	if err != nil || len(raw) != EscrowPrivateKeyLen {
		clear(raw)
		return nil, &PaperError{Detail: "the groups do not decode to a 32-byte key"}
	}
	defer clear(raw)
	p, err := EscrowKeyFromBytes(raw)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, &PaperError{Detail: "no id line (\"id\" and the 16-character escrow key id printed on the paper): it is the overall check"}
	}
	if p.ID() != id {
		return nil, &PaperError{Detail: fmt.Sprintf("the groups typed give escrow key %s, but the paper's id line says %s: check the id line, then every group", p.ID(), id)}
	}
	return p, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// normalisePaper upper-cases a typed group and maps the digits people type
// for the letters they look like (base32 has no 0, 1 or 8).
func normalisePaper(g string) string {
	return strings.NewReplacer("0", "O", "1", "I", "8", "B").Replace(strings.ToUpper(g))
}

// LoadEscrowKey reads an escrow private key from a file that holds either
// the Tink JSON keyset (tapekey escrow new) or the paper text typed back.
func LoadEscrowKey(path string) (*EscrowPrivate, error) {
	content, err := readPrivateFile("escrow private key file", path)
	if err != nil {
		return nil, err
	}
	defer clear(content)
	if strings.HasPrefix(strings.TrimSpace(strings.ToLower(string(content[:min(len(content), 64)]))), PaperHeader) {
		p, err := ParsePaper(string(content))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return p, nil
	}
	return LoadEscrowPrivate(path)
}
