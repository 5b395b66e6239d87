package vtlwire

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Client is a scsi.Transport to one unit of a running vtl.
type Client struct {
	conn   net.Conn
	br     *bufio.Reader
	socket string
	unit   string
}

// Dial connects to unit ("drive0", "changer") of the vtl listening on the
// unix socket at path.
func Dial(path, unit string) (*Client, error) {
	addr := "vtl:" + path + "#" + unit
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot reach the vtl socket: %w (is `vtl serve --socket %s` running?)", addr, err, path)
	}
	c := &Client{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), socket: path, unit: unit}
	if err := WriteHello(conn, unit); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if err := readHelloReply(c.br); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return c, nil
}

// Do implements scsi.Transport.
func (c *Client) Do(cmd *scsi.Command) (scsi.Result, error) {
	if err := WriteRequest(c.conn, cmd); err != nil {
		return scsi.Result{}, fmt.Errorf("%s: sending %s: %w", c.Addr(), opName(cmd), err)
	}
	res, err := readResponse(c.br, cmd)
	if err != nil {
		return scsi.Result{}, fmt.Errorf("%s: reading the answer to %s: %w", c.Addr(), opName(cmd), err)
	}
	return res, nil
}

// Addr implements scsi.Transport.
func (c *Client) Addr() string { return "vtl:" + c.socket + "#" + c.unit }

// Close implements scsi.Transport; closing the connection ends the nexus.
func (c *Client) Close() error { return c.conn.Close() }

func opName(cmd *scsi.Command) string {
	if len(cmd.CDB) == 0 {
		return "an empty CDB"
	}
	return fmt.Sprintf("opcode 0x%02X", cmd.CDB[0])
}
