package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
)

// FiledDialer dials the file daemons of [[client]]s over mutual TLS with
// the director's certificate, expecting each one's certificate to carry
// role "client" and the client's name (valid for its tls_server_name),
// and keeps one connection per client.
type FiledDialer struct {
	files tlsconf.Files
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewFiledDialer returns a dialer presenting the director's TLS files.
func NewFiledDialer(files tlsconf.Files) *FiledDialer {
	return &FiledDialer{files: files, conns: map[string]*grpc.ClientConn{}}
}

// Dial returns the Filed client of c. A client that was down (restarted,
// rebooted) is reconnected: Dial waits up to clientConnectWait for its
// connection instead of letting the call fail on the last error, or until
// ctx ends (a job cancelled while its client does not answer ends at once).
func (d *FiledDialer) Dial(ctx context.Context, c *configs.Client) (pb.FiledClient, error) {
	conn, err := d.conn(c)
	if err != nil {
		return nil, err
	}
	link.Ready(ctx, conn, clientConnectWait)
	return pb.NewFiledClient(conn), nil
}

func (d *FiledDialer) conn(c *configs.Client) (*grpc.ClientConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := c.Name + "\x00" + c.Address + "\x00" + c.TLSServerName
	if conn, ok := d.conns[key]; ok {
		return conn, nil
	}
	tc, err := tlsconf.Client(d.files, tlsconf.Peer{Role: tlsconf.RoleClient, Name: c.Name}, c.TLSServerName)
	if err != nil {
		return nil, fmt.Errorf("[[client]] %s: %w", c.Name, err)
	}
	conn, err := link.Dial(c.Address, tc)
	if err != nil {
		return nil, fmt.Errorf("[[client]] %s address %q: %w", c.Name, c.Address, err)
	}
	d.conns[key] = conn
	return conn, nil
}

// clientConnectWait is how long a job waits for its client's filed to
// accept a connection before its call fails with the reason.
const clientConnectWait = 10 * time.Second

// Close closes every connection.
func (d *FiledDialer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, c := range d.conns {
		c.Close()
		delete(d.conns, k)
	}
}
