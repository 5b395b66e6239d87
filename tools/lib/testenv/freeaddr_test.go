package testenv

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr's ports are outside the kernel's ephemeral range (where every
// outgoing connection takes its port) and can be listened on.
func TestFreeAddrAvoidsEphemeralPorts(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	for range 50 {
		addr := FreeAddr(t)
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port >= lo && port <= hi {
			t.Fatalf("FreeAddr gave %s, inside the ephemeral range %d..%d", addr, lo, hi)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which cannot be listened on: %v", addr, err)
		}
		l.Close()
	}
}
