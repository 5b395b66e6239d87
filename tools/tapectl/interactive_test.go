package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tapeward/tapeward/configs"
)

// The prompt's line loop runs on x/term's line editor over an in-memory
// reader and writer; only raw mode (fd) is left out.

const (
	up    = "\x1b[A"
	ctrlC = "\x03"
	ctrlD = "\x04"
)

func TestLoopEditingHistoryAndLocalLines(t *testing.T) {
	dir := t.TempDir()
	h := &history{path: filepath.Join(dir, historyName)}
	os.WriteFile(h.path, []byte("status director\nexport keys kek=abc out=k.csv\n"), 0o644)
	h.load()

	input := "list volumes\r" +
		"lab" + ctrlC + // abandoned
		"lable\r" +
		up + up + "\r" + // the line before "lable": list volumes
		"update volume=TW1 KEY=x\r" +
		"\r   \r" +
		"# a comment\r" +
		"slow\r" +
		"list vol\x7f\x7f\x7fvolumes\r" + // backspaces
		"QUIT\r" +
		"help\r"
	var screen, stderr bytes.Buffer
	c := &console{stderr: &stderr}
	// A terminal delivers keys as they are typed.
	tp := newTermPrompter(iotest.OneByteReader(strings.NewReader(input)), &screen, h)
	var ran []string
	c.loop(tp, func(line string) error {
		ran = append(ran, line)
		switch line {
		case "lable":
			return errors.New(`unknown command "lable"`)
		case "slow":
			return errInterrupted
		}
		return nil
	})
	want := []string{"list volumes", "lable", "list volumes", "update volume=TW1 KEY=x", "slow", "list volumes"}
	if strings.Join(ran, "|") != strings.Join(want, "|") {
		t.Errorf("ran %q, want %q", ran, want)
	}
	if got := stderr.String(); got != "tapectl: unknown command \"lable\"\ntapectl: cancelled\n" {
		t.Errorf("stderr %q", got)
	}
	if !strings.Contains(screen.String(), "tapectl> lab^C\r\ntapectl> lable\r\n") {
		t.Errorf("screen does not show the abandoned line: %q", screen.String())
	}

	if err := h.save(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	wantHist := "status director\nlist volumes\nlable\nlist volumes\n# a comment\nslow\nlist volumes\nQUIT\n"
	if string(b) != wantHist {
		t.Errorf("history file:\n%s\nwant:\n%s", b, wantHist)
	}
	if st, _ := os.Stat(h.path); st.Mode().Perm() != 0o600 {
		t.Errorf("history mode %04o, want 0600", st.Mode().Perm())
	}
}

func TestLoopEndsAtCtrlDAndEOF(t *testing.T) {
	for _, in := range []string{"list volumes\r" + ctrlD + "help\r", "list volumes\rhelp", "list volumes\rexit\rhelp\r"} {
		var screen, stderr bytes.Buffer
		c := &console{stderr: &stderr}
		var ran []string
		c.loop(newTermPrompter(strings.NewReader(in), &screen, &history{}), func(line string) error {
			ran = append(ran, line)
			return nil
		})
		if len(ran) != 1 || ran[0] != "list volumes" || stderr.Len() != 0 {
			t.Errorf("%q: ran %q, stderr %q", in, ran, stderr.String())
		}
	}
}

func TestHistoryLimitAndSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, historyName)
	h := &history{path: path}
	for i := range 600 {
		h.Add(fmt.Sprintf("list volumes pool=P%d", i))
		h.Add("rekey kek=secret")
		h.Add("import key=abcd volume=V")
	}
	h.Add("list volumes pool=P599") // a repeat of the last line
	if h.Len() != historyLimit || h.At(0) != "list volumes pool=P599" || h.At(historyLimit-1) != "list volumes pool=P100" {
		t.Fatalf("len %d, newest %q, oldest %q", h.Len(), h.At(0), h.At(h.Len()-1))
	}
	os.WriteFile(path, []byte("old\n"), 0o644)
	if err := h.save(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if st.Mode().Perm() != 0o600 || len(lines) != historyLimit || lines[0] != "list volumes pool=P100" || strings.Contains(string(b), "key=") || strings.Contains(string(b), "kek=") {
		t.Errorf("mode %04o, %d lines, first %q", st.Mode().Perm(), len(lines), lines[0])
	}
	h2 := &history{path: path}
	h2.load()
	if h2.Len() != historyLimit || h2.At(0) != "list volumes pool=P599" {
		t.Errorf("reloaded: len %d, newest %q", h2.Len(), h2.At(0))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, historyName+".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestSessionCtrlCCancelsCommand runs the interactive session against the
// director double: a SIGINT while a command runs cancels it on the
// director and the prompt comes back for the next line.
func TestSessionCtrlCCancelsCommand(t *testing.T) {
	e := start(t)
	cfg, err := configs.LoadConsole(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, screen bytes.Buffer
	stderr := &lockedBuffer{}
	c, err := dial(cfg, false, &stdout, stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	sigs := make(chan os.Signal, 1)
	go func() {
		<-e.d.started
		// Ctrl-C once the operator has seen the progress line.
		for !strings.Contains(stderr.String(), "waiting for the library\n") {
			time.Sleep(time.Millisecond)
		}
		sigs <- os.Interrupt
	}()
	h := &history{path: filepath.Join(t.TempDir(), historyName)}
	done := make(chan struct{})
	go func() {
		c.session(newTermPrompter(strings.NewReader("slow\rlist volumes\rlable x\r"), &screen, h), sigs, h)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the session did not end")
	}
	select {
	case <-e.d.cancelled:
	default:
		t.Error("the director did not see the slow command cancelled")
	}
	if stdout.String() != "TW0001L6  Offsite  Append\nTW0002L6  Offsite  Full\n" ||
		stderr.String() != "waiting for the library\ntapectl: cancelled\ntapectl: unknown command \"lable\" — did you mean \"label\"?\n" {
		t.Errorf("stdout %q\nstderr %q", stdout.String(), stderr.String())
	}
	e.lines(t, "slow", "list volumes", "lable x")
	if b, _ := os.ReadFile(h.path); string(b) != "slow\nlist volumes\nlable x\n" {
		t.Errorf("history %q", b)
	}
}

func TestCtrlCReaderKeepsTypeahead(t *testing.T) {
	r := &ctrlCReader{r: strings.NewReader("ab\x03cd\x03e")}
	var got []string
	buf := make([]byte, 16)
	for {
		n, err := r.Read(buf)
		if n == 0 && err != nil {
			break
		}
		got = append(got, fmt.Sprintf("%q/%v", buf[:n], r.sawCtrlC))
		r.sawCtrlC = false
	}
	want := `"ab\x03"/true|"cd\x03"/true|"e"/false`
	if strings.Join(got, "|") != want {
		t.Errorf("reads %s, want %s", strings.Join(got, "|"), want)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while another goroutine
// writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWithInterrupt(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	ctx, stop := withInterrupt(sigs)
	if stop() || ctx.Err() == nil {
		t.Fatal("no signal: stop reports an interrupt or leaves the context alive")
	}

	ctx, stop = withInterrupt(sigs)
	sigs <- os.Interrupt
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), errInterrupted) || !stop() {
		t.Fatalf("cause %v", context.Cause(ctx))
	}

	// A signal between two commands is not lost: the next one sees it,
	// unless drained (the prompt does that).
	sigs <- os.Interrupt
	ctx, stop = withInterrupt(sigs)
	<-ctx.Done()
	if !stop() {
		t.Fatal("a pending signal was lost")
	}
	sigs <- os.Interrupt
	drain(sigs)
	if len(sigs) != 0 {
		t.Fatal("drain left a signal")
	}
	ctx, stop = withInterrupt(sigs)
	if ctx.Err() != nil || stop() {
		t.Fatal("a drained signal still interrupted")
	}
}
