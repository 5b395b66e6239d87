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

// A port FreeAddr gave out stays reserved until its test ends: a second
// reservation of it fails (in this process as in another: each opens the
// file anew), and succeeds once the first is released.
func TestFreeAddrReservesItsPort(t *testing.T) {
	_, p, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	if _, ok := reservePort(t, port); ok {
		t.Fatalf("port %d, given out by FreeAddr, could be reserved again", port)
	}
	seen := map[string]bool{p: true}
	for range 200 {
		_, q, _ := net.SplitHostPort(FreeAddr(t))
		if seen[q] {
			t.Fatalf("FreeAddr gave port %s twice in one test", q)
		}
		seen[q] = true
	}
	other := port + 1
	release, ok := reservePort(t, other)
	for !ok { // taken by a test running beside this one: try the next
		other++
		release, ok = reservePort(t, other)
	}
	if _, again := reservePort(t, other); again {
		t.Fatalf("port %d reserved twice", other)
	}
	release()
	release2, ok := reservePort(t, other)
	if !ok {
		t.Fatalf("port %d could not be reserved after its release", other)
	}
	release2()
}
