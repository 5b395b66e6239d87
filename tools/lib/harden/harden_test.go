package harden_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/harden"
)

// TestMain turns the test binary into the hardened child when asked: it
// hardens itself, says what prctl reports, and waits on stdin so that the
// parent can look at it through /proc.
func TestMain(m *testing.M) {
	if os.Getenv("HARDEN_CHILD") == "1" {
		// Start from a core limit that allows cores, so the check below
		// can tell (a shell may start us with a soft limit of 0).
		var rl syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_CORE, &rl)
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_CORE, &rl)
		if rl.Max == 0 {
			fmt.Println("error: the core limit is already 0 here; the test cannot tell")
			os.Exit(1)
		}
		before, _ := harden.Dumpable()
		if err := harden.Process(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		after, _ := harden.Dumpable()
		fmt.Printf("dumpable %d %d\n", before, after)
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProcess runs a child that hardens itself and checks, from outside,
// that its core limit is 0 (/proc/PID/limits) and, from its own report,
// that it went from dumpable to not dumpable.
func TestProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARDEN_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if strings.TrimSpace(line) != "dumpable 1 0" {
		t.Fatalf("child reports %q, want \"dumpable 1 0\" (dumpable before, not after)", line)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max core file size") {
			found = true
			if f := strings.Fields(strings.TrimPrefix(l, "Max core file size")); len(f) < 2 || f[0] != "0" || f[1] != "0" {
				t.Fatalf("child's core limit: %q, want soft and hard 0", l)
			}
		}
	}
	if !found {
		t.Fatalf("no core limit in /proc/PID/limits:\n%s", b)
	}
	// This process (not hardened) is still dumpable: the check can tell.
	if v, err := harden.Dumpable(); err != nil || v != 1 {
		t.Fatalf("the test process reports dumpable %d, %v; want 1", v, err)
	}
}
