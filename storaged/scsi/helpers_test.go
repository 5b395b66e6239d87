package scsi

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// hx turns the reference's byte notation into bytes: hex pairs separated
// by spaces, "00*15" for a run, "|" ignored, and "quoted ASCII".
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \n\t|")
		if s == "" {
			break
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				t.Fatalf("hx: unterminated string in %q", s)
			}
			out = append(out, s[1:1+end]...)
			s = s[end+2:]
			continue
		}
		tok := s
		if i := strings.IndexAny(s, " \n\t|"); i >= 0 {
			tok, s = s[:i], s[i:]
		} else {
			s = ""
		}
		n := 1
		if i := strings.IndexByte(tok, '*'); i >= 0 {
			var err error
			n, err = strconv.Atoi(tok[i+1:])
			if err != nil {
				t.Fatalf("hx: bad repeat %q", tok)
			}
			tok = tok[:i]
		}
		b, err := hex.DecodeString(tok)
		if err != nil || len(b) != 1 {
			t.Fatalf("hx: bad byte %q", tok)
		}
		for ; n > 0; n-- {
			out = append(out, b[0])
		}
	}
	return out
}

func TestHx(t *testing.T) {
	got := hx(t, `00 10*3 | "Hi" 0A`)
	want := []byte{0x00, 0x10, 0x10, 0x10, 'H', 'i', 0x0A}
	if string(got) != string(want) {
		t.Fatalf("hx = % X, want % X", got, want)
	}
}

// fakeTransport answers commands from a handler, recording them.
type fakeTransport struct {
	addr string
	cmds []Command
	do   func(c *Command) (Result, error)
}

func (f *fakeTransport) Do(c *Command) (Result, error) {
	cp := *c
	cp.CDB = append([]byte(nil), c.CDB...)
	if c.Dir == DirToDevice {
		cp.Data = append([]byte(nil), c.Data...)
	}
	f.cmds = append(f.cmds, cp)
	return f.do(c)
}
func (f *fakeTransport) Addr() string {
	if f.addr == "" {
		return "fake#drive0"
	}
	return f.addr
}
func (f *fakeTransport) Close() error { return nil }

// reply copies data into a data-in command and sets the residual.
func reply(c *Command, data []byte) Result {
	n := copy(c.Data, data)
	return Result{Status: StatusGood, Resid: len(c.Data) - n}
}

func check(sense []byte) Result { return Result{Status: StatusCheckCondition, Sense: sense} }
