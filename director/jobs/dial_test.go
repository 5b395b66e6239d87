package jobs

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// A client whose filed accepts the TCP connection but never answers the
// TLS handshake (a stopped process): Dial gives up when the job's context
// ends (a cancel), not only after clientConnectWait.
func TestDialEndsWithTheJobsContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // the kernel accepts; nobody answers
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := testenv.NewPKI(t, t.TempDir())
	d := NewFiledDialer(p.Issue(t, "director", tlsconf.RoleDirector))
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the operator's cancel
	start := time.Now()
	if _, err := d.Dial(ctx, &configs.Client{Name: "web1", Address: l.Addr().String()}); err != nil {
		t.Fatalf("Dial: %v (the call on the client fails, not Dial)", err)
	}
	if took := time.Since(start); took >= clientConnectWait {
		t.Fatalf("Dial took %v with its context ended: it waited the whole clientConnectWait (%v)", took, clientConnectWait)
	}
}
