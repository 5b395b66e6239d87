package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/term"
)

const (
	prompt         = "tapectl> "
	historyName    = ".tapeward_history"
	historyLimit   = 500
	keyCtrlC       = 3
	secretKeywords = "key= kek="
)

// lineReader reads one edited line; errCtrlC means the line was abandoned
// with Ctrl-C, io.EOF that the operator left (Ctrl-D). While it is not
// reading, the terminal is in its normal mode, so Ctrl-C during a command
// raises SIGINT, which cancels the command.
type lineReader interface {
	readLine() (string, error)
}

var errCtrlC = errors.New("^C")

// loop is the interactive session: read a line, run it, repeat until
// quit, exit or end of input. Ctrl-C at the prompt drops the line; a
// failed or cancelled command is reported and the prompt comes back.
func (c *console) loop(in lineReader, run func(line string) error) {
	for {
		line, err := in.readLine()
		if errors.Is(err, errCtrlC) {
			continue
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(c.stderr, "tapectl: reading the terminal: %v\n", err)
			}
			return
		}
		if !c.browsing() {
			skip, quit := local(line)
			if quit {
				return
			}
			if skip {
				continue
			}
		}
		err = run(strings.TrimSpace(line))
		switch {
		case errors.Is(err, errInterrupted):
			fmt.Fprintln(c.stderr, "tapectl: cancelled")
		case err != nil:
			fmt.Fprintf(c.stderr, "tapectl: %v\n", err)
		}
	}
}

// interactive runs the prompt on a terminal stdin. The terminal is in raw
// mode only while a line is being edited.
func (c *console) interactive(sigs <-chan os.Signal, stdin *os.File, stdout io.Writer) int {
	out := stdout
	if f, ok := stdout.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		out = c.stderr // keep the prompt out of redirected output
	}
	h := &history{}
	if home, err := os.UserHomeDir(); err == nil {
		h.path = filepath.Join(home, historyName)
		h.load()
	}
	tp := newTermPrompter(stdin, out, h)
	tp.fd = int(stdin.Fd())
	// SIGTERM or SIGHUP at the prompt must not leave the terminal raw.
	if cooked, err := term.GetState(tp.fd); err == nil {
		ends := make(chan os.Signal, 1)
		signal.Notify(ends, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(ends)
		go func() {
			sig := <-ends
			term.Restore(tp.fd, cooked)
			io.WriteString(out, "\n")
			os.Exit(128 + int(sig.(syscall.Signal)))
		}()
	}
	fmt.Fprintf(out, "tapectl: director %s at %s, console %q. Type help for the commands; quit or Ctrl-D leaves.\n",
		directorName(c), c.cfg.Director.Address, c.cfg.Name)
	c.session(tp, sigs, h)
	return exitOK
}

// session runs the interactive loop: each command can be cancelled by a
// SIGINT on sigs, and the history is saved after each.
func (c *console) session(in lineReader, sigs <-chan os.Signal, h *history) {
	warned := false
	c.loop(in, func(line string) error {
		drain(sigs)
		ctx, stop := withInterrupt(sigs)
		var err error
		if a, ok := in.(asker); ok {
			// A label line that leaves out what only the operator
			// can choose: ask, with numbered menus (as Bareos does).
			line, err = c.complete(ctx, a, line)
		}
		if err == nil {
			err = c.exec(ctx, line)
		}
		if a, ok := in.(asker); ok && err == nil && !c.browsing() && asksToRun(line) {
			err = c.confirmRestore(ctx, a, line)
		}
		if tp, ok := in.(*termPrompter); ok {
			if c.browsing() {
				tp.setPrompt("$ ")
			} else {
				tp.setPrompt("")
			}
		}
		stop() // a Ctrl-C just after the command finished has nothing left to cancel
		if serr := h.save(); serr != nil && !warned {
			fmt.Fprintf(c.stderr, "tapectl: saving the history in %s: %v\n", h.path, serr)
			warned = true
		}
		return err
	})
}

func directorName(c *console) string {
	if c.cfg.Director.Name != "" {
		return c.cfg.Director.Name
	}
	return c.cfg.Director.TLSServerName
}

// termPrompter edits lines with x/term on a terminal (or, in tests, on
// any reader and writer).
type termPrompter struct {
	t   *term.Terminal
	in  *ctrlCReader
	out io.Writer
	h   *history
	fd  int // the terminal to put in raw mode; -1: none
	// cur is the prompt shown ("" : prompt; the tree browser's "$ ").
	cur string
}

// setPrompt changes the prompt ("" : the usual one).
func (p *termPrompter) setPrompt(s string) {
	p.cur = s
	p.t.SetPrompt(p.prompt())
}

func (p *termPrompter) prompt() string {
	if p.cur == "" {
		return prompt
	}
	return p.cur
}

func newTermPrompter(in io.Reader, out io.Writer, h *history) *termPrompter {
	p := &termPrompter{in: &ctrlCReader{r: in}, out: out, h: h, fd: -1}
	p.reset()
	return p
}

// reset makes a fresh line editor (x/term keeps the abandoned line after
// Ctrl-C); the history carries over.
func (p *termPrompter) reset() {
	p.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{p.in, p.out}, p.prompt())
	p.t.History = p.h
}

func (p *termPrompter) readLine() (string, error) {
	if p.fd >= 0 {
		// A terminal that does not know its size says 0x0 (keep 80x24).
		if w, h, err := term.GetSize(p.fd); err == nil && w > 0 && h > 0 {
			p.t.SetSize(w, h)
		}
		old, err := term.MakeRaw(p.fd)
		if err != nil {
			return "", err
		}
		defer term.Restore(p.fd, old)
	}
	line, err := p.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil
	}
	// The terminal is raw here: a new line is "\r\n". Writing past the
	// line editor, which would repaint the prompt.
	if err == io.EOF && p.in.sawCtrlC {
		p.in.sawCtrlC = false
		io.WriteString(p.out, "^C\r\n")
		p.reset()
		return "", errCtrlC
	}
	if err == io.EOF {
		io.WriteString(p.out, "\r\n")
	}
	return line, err
}

// ctrlCReader passes input through up to and including a Ctrl-C byte and
// notes it, so that the io.EOF x/term returns for Ctrl-C can be told from
// Ctrl-D; what followed the Ctrl-C is kept for the next read.
type ctrlCReader struct {
	r        io.Reader
	pending  []byte
	sawCtrlC bool
}

func (c *ctrlCReader) Read(b []byte) (int, error) {
	var n int
	if len(c.pending) > 0 {
		n = copy(b, c.pending)
		c.pending = c.pending[n:]
	} else {
		var err error
		n, err = c.r.Read(b)
		if n == 0 {
			return 0, err
		}
	}
	if i := bytes.IndexByte(b[:n], keyCtrlC); i >= 0 {
		c.sawCtrlC = true
		c.pending = append(append([]byte(nil), b[i+1:n]...), c.pending...)
		n = i + 1
	}
	return n, nil
}

// history is the prompt's history: x/term's History, kept in a file
// (oldest line first, mode 0600, the last historyLimit lines). Lines
// that might hold key material are never kept.
type history struct {
	path  string
	lines []string // oldest first
}

func mayHoldSecret(line string) bool {
	l := strings.ToLower(line)
	for _, k := range strings.Fields(secretKeywords) {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}

// Add records a line (x/term calls it for every line read).
func (h *history) Add(line string) {
	line = strings.TrimSpace(line)
	if line == "" || mayHoldSecret(line) {
		return
	}
	if n := len(h.lines); n > 0 && h.lines[n-1] == line {
		return
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > historyLimit {
		h.lines = append([]string(nil), h.lines[len(h.lines)-historyLimit:]...)
	}
}

func (h *history) Len() int { return len(h.lines) }

// At returns the idx-th most recent line (0: the last).
func (h *history) At(idx int) string { return h.lines[len(h.lines)-1-idx] }

func (h *history) load() {
	b, err := os.ReadFile(h.path)
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		h.Add(strings.TrimRight(line, "\r\n"))
	}
}

// save writes the history file atomically with mode 0600.
func (h *history) save() error {
	if h.path == "" {
		return nil
	}
	var b strings.Builder
	for _, l := range h.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), historyName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), h.path)
}
