package vtlwire

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Client is a scsi.Transport to one unit of a running vtl.
//
// When the connection breaks (vtl stopped or restarted: a library power
// cycle), the command in flight fails with its fate unknown, as SG_IO's
// does on a transport failure, and is never resent (a repeated WRITE or
// SPACE would corrupt the position). The next command dials again: a new
// I_T nexus, which the device greets with a unit attention (06/29/00), as
// a real drive does after a reset.
type Client struct {
	conn   net.Conn // nil after a failure, until the next command redials
	br     *bufio.Reader
	socket string
	unit   string
	excl   bool
	shared bool          // offer a shared data buffer at each dial
	sh     *SharedBuffer // this connection's shared data buffer, nil: none
	maxTx  int           // data phase limit the unit advertised (0: MaxData)
}

// Dial connects to unit ("drive0", "changer") of the vtl listening on the
// unix socket at path, sharing it with other connections; its data phases
// go through a shared data buffer.
func Dial(path, unit string) (*Client, error) {
	return DialOpts(path, Hello{Unit: unit, SharedBuffer: true})
}

// DialOpts connects with options; with h.Exclusive a unit that another
// connection holds is refused with a *scsi.BusyDeviceError, as an sg node
// opened with O_EXCL is; with h.SharedBuffer the data phases go through a
// shared data buffer (shared.go), else through the socket.
func DialOpts(path string, h Hello) (*Client, error) {
	c := &Client{socket: path, unit: h.Unit, excl: h.Exclusive, shared: h.SharedBuffer}
	if err := c.dial(); err != nil {
		return nil, err
	}
	return c, nil
}

// MaxTransfer implements scsi.MaxTransferer: the unit's advertised limit,
// else MaxData.
func (c *Client) MaxTransfer() int {
	if c.maxTx > 0 {
		return c.maxTx
	}
	return MaxData
}

func (c *Client) dial() error {
	conn, err := net.DialTimeout("unix", c.socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s: cannot reach the vtl socket: %w (is `vtl serve --socket %s` running?)", c.Addr(), err, c.socket)
	}
	if !c.shared {
		// Data through the socket: room for a whole WRITE (block and
		// header) in one go; where the kernel grants less, writes take
		// more rounds, nothing else changes.
		_, _ = SizeSendBuffer(conn, SendBuffer)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	sh, err := c.hello(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%s: %w", c.Addr(), err)
	}
	mt, err := readHelloReply(br)
	if err != nil {
		sh.Close()
		conn.Close()
		if msg, ok := strings.CutPrefix(err.Error(), BusyPrefix); ok {
			return &scsi.BusyDeviceError{Addr: c.Addr(), Detail: "vtl: " + msg}
		}
		return fmt.Errorf("%s: %w", c.Addr(), err)
	}
	c.conn, c.br, c.sh, c.maxTx = conn, br, sh, mt
	return nil
}

// hello sends the hello; offering a shared data buffer, it makes one and
// sends its descriptor with the hello.
func (c *Client) hello(conn net.Conn) (*SharedBuffer, error) {
	switch {
	case !c.excl && !c.shared:
		return nil, WriteHello(conn, c.unit)
	case !c.shared:
		return nil, WriteHelloOpts(conn, Hello{Unit: c.unit, Exclusive: true})
	}
	b, err := helloV2(Hello{Unit: c.unit, Exclusive: c.excl, SharedBuffer: true})
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("a shared data buffer needs a unix socket, not %T", conn)
	}
	sh, fd, err := newShared()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if _, _, err := uc.WriteMsgUnix(b, unix.UnixRights(fd), nil); err != nil {
		sh.Close()
		return nil, err
	}
	return sh, nil
}

// Do implements scsi.Transport.
func (c *Client) Do(cmd *scsi.Command) (scsi.Result, error) {
	if mt := c.MaxTransfer(); cmd.Dir != scsi.DirNone && len(cmd.Data) > mt {
		// What SG_IO does with a transfer above the queue's limit: ENOMEM,
		// nothing sent.
		return scsi.Result{}, fmt.Errorf("%s: %s of %d bytes exceeds the unit's transfer limit of %d bytes per command (ENOMEM on a real adapter)", c.Addr(), opName(cmd), len(cmd.Data), mt)
	}
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return scsi.Result{}, err
		}
	}
	// A key page (SECURITY PROTOCOL OUT) leaves the shared buffer once the
	// drive has it, or the command failed.
	spout := c.sh != nil && cmd.Dir == scsi.DirToDevice && len(cmd.CDB) > 0 && cmd.CDB[0] == scsi.OpSecurityProtocolOut
	sent := writeRequest(c.conn, cmd, c.sh)
	var res scsi.Result
	var err error
	if sent == nil {
		res, err = readResponse(c.br, cmd, c.sh)
	}
	if spout {
		clear(c.sh.out()[:len(cmd.Data)])
	}
	if sent != nil {
		c.broken()
		return scsi.Result{}, fmt.Errorf("%s: sending %s: %w", c.Addr(), opName(cmd), sent)
	}
	if err != nil {
		c.broken()
		return scsi.Result{}, fmt.Errorf("%s: reading the answer to %s (its outcome is unknown): %w", c.Addr(), opName(cmd), err)
	}
	return res, nil
}

func (c *Client) broken() {
	c.conn.Close()
	c.sh.Close()
	c.conn, c.br, c.sh = nil, nil, nil
}

// Addr implements scsi.Transport.
func (c *Client) Addr() string { return "vtl:" + c.socket + "#" + c.unit }

// Close implements scsi.Transport; closing the connection ends the nexus.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.sh.Close()
	c.conn, c.sh = nil, nil
	return err
}

func opName(cmd *scsi.Command) string {
	if len(cmd.CDB) == 0 {
		return "an empty CDB"
	}
	return fmt.Sprintf("opcode 0x%02X", cmd.CDB[0])
}
