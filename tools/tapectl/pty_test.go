package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's controlling side and the
// terminal the child uses.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// startOnPTY starts tapectl with a pseudo-terminal as its controlling
// terminal and stdin, stdout and stderr; the screen collects its output.
func startOnPTY(t *testing.T, home string, args ...string) (*exec.Cmd, *os.File, *os.File, *screen) {
	t.Helper()
	master, tty := openPTY(t)
	cmd := exec.Command(tapectlBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "TAPEWARD_CONSOLE_CONFIG=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := &screen{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			sc.buf.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	return cmd, master, tty, sc
}

// screen collects what the child writes to its terminal.
type screen struct {
	buf  lockedBuffer
	seen int // waitFor searches after this offset
}

// waitFor waits until s appears after what was already matched.
func (sc *screen) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := sc.buf.String()
		if i := strings.Index(all[sc.seen:], s); i >= 0 {
			sc.seen += i + len(s)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; after offset %d it shows:\n%q", s, sc.seen, all[sc.seen:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTerminalSession runs tapectl on a real pseudo-terminal, as an
// operator would: history recall, a command cancelled with Ctrl-C, a line
// abandoned with Ctrl-C, an error, and Ctrl-D to leave.
func TestTerminalSession(t *testing.T) {
	e := start(t)
	home := t.TempDir()
	histPath := filepath.Join(home, historyName)
	if err := os.WriteFile(histPath, []byte("status storage=Tape\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, master, tty, sc := startOnPTY(t, home, "-c", e.config)
	send := func(s string) {
		t.Helper()
		if _, err := master.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}

	sc.waitFor(t, fmt.Sprintf("tapectl: director director at %s, console \"admin\". Type help for the commands; quit or Ctrl-D leaves.\r\n", e.d.addr))
	sc.waitFor(t, "tapectl> ")
	send(up) // the history file's line
	sc.waitFor(t, "status storage=Tape")
	send("\r")
	sc.waitFor(t, "asking storage Tape\r\ndrive 0: empty\r\nStorage Tape: 1 drive, idle\r\ntapectl> ")

	// Ctrl-C while a command runs cancels it on the director.
	send("slow\r")
	sc.waitFor(t, "waiting for the library\r\n")
	<-e.d.started
	send(ctrlC)
	select {
	case <-e.d.cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the director never saw the command cancelled")
	}
	sc.waitFor(t, "tapectl: cancelled\r\ntapectl> ")

	// Ctrl-C at the prompt drops the line.
	send("lab")
	sc.waitFor(t, "lab")
	send(ctrlC)
	sc.waitFor(t, "^C\r\ntapectl> ")
	send("lable\r")
	sc.waitFor(t, "tapectl: unknown command \"lable\" — did you mean \"label\"?\r\ntapectl> ")
	send("list volumes key=1\r")
	sc.waitFor(t, "tapectl: the double has no script for \"list volumes key=1\"\r\ntapectl> ")

	send(ctrlD)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tapectl exited with %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Ctrl-D did not end tapectl")
	}

	e.lines(t, "status storage=Tape", "slow", "lable", "list volumes key=1")
	b, err := os.ReadFile(histPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "status storage=Tape\nslow\nlable\n" {
		t.Errorf("history file %q", b)
	}
	if st, _ := os.Stat(histPath); st.Mode().Perm() != 0o600 {
		t.Errorf("history file mode %04o, want 0600", st.Mode().Perm())
	}
	// The terminal is back in its normal mode.
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
		t.Errorf("terminal left with lflag %#x", tio.Lflag)
	}
}

// TestTerminalSIGTERMRestoresTerminal stops tapectl with SIGTERM while it
// waits at the prompt (terminal in raw mode): the terminal is given back
// in its normal mode.
func TestTerminalSIGTERMRestoresTerminal(t *testing.T) {
	e := start(t)
	cmd, _, tty, sc := startOnPTY(t, t.TempDir(), "-c", e.config)
	sc.waitFor(t, "tapectl> ")
	// The prompt is up once the terminal is raw.
	deadline := time.Now().Add(30 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ICANON == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prompt never put the terminal in raw mode")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %v, want status %d", err, 128+int(syscall.SIGTERM))
	}
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
		t.Errorf("terminal left with lflag %#x", tio.Lflag)
	}
}
