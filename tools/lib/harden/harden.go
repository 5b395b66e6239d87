// Package harden keeps key material of a running process out of core
// dumps and away from debuggers of the same user: Process marks the process
// non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace attach by
// anyone without CAP_SYS_PTRACE, /proc/PID/mem and friends owned by root)
// and sets RLIMIT_CORE to 0 (soft and hard), as the first thing the
// daemons and tapekey do. It works without systemd's LimitCORE=0 (the
// director run by hand, in Docker), and with it.
package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Process applies both settings to the calling process. An error says
// which one failed; a core limit that cannot be lowered because it is
// already 0 is not an error.
func Process() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("harden: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		var cur unix.Rlimit
		if gerr := unix.Getrlimit(unix.RLIMIT_CORE, &cur); gerr == nil && cur.Cur == 0 && cur.Max == 0 {
			return nil
		}
		return fmt.Errorf("harden: setting RLIMIT_CORE to 0: %w (run the daemon with LimitCORE=0, or ulimit -c 0)", err)
	}
	return nil
}

// Dumpable reports the process's PR_GET_DUMPABLE value (1: dumpable).
func Dumpable() (int, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v, err
}
