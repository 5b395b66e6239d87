package vtlwire

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// SendBuffer is the send buffer both ends ask for: enough for a 1 MiB
// block (storaged's default) and its header to go into the socket in
// one write. With the kernel's default (net.core.wmem_default, ~208 KiB)
// a block crossed in six rounds, the sender stopping each time until
// the receiver had drained the socket: twelve wake-ups between the two
// processes per block, which on two cores left a third of them idle
// during `tapextract extract` (vmstat, 2026-12-04).
const SendBuffer = 4 << 20

// SizeSendBuffer asks the kernel for a send buffer of n bytes on a unix
// socket connection: SO_SNDBUFFORCE where the process may (CAP_NET_ADMIN),
// else SO_SNDBUF, which the kernel caps at net.core.wmem_max. It returns
// what the kernel granted (SO_SNDBUF read back: twice the size asked for,
// the kernel's bookkeeping included). Other connections (tests' pipes)
// are left alone: 0, nil.
func SizeSendBuffer(c net.Conn, n int) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("sizing the socket's send buffer: %w", err)
	}
	var got int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, n); serr != nil {
				return
			}
		}
		got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil {
		return 0, fmt.Errorf("sizing the socket's send buffer: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("sizing the socket's send buffer to %d bytes: %w", n, serr)
	}
	return got, nil
}
