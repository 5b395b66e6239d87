package vtlwire

import (
	"bufio"
	"net"

	"golang.org/x/sys/unix"
)

// Peer is the device side of one connection after its hello: it reads
// requests and writes responses in the connection's mode (data through
// the socket, or through the shared data buffer the client offered).
type Peer struct {
	conn net.Conn
	br   *bufio.Reader
	sh   *SharedBuffer
	buf  []byte
	last []byte // see LastDataIn
}

// Accept reads a client's hello on c and, when it offers a shared data
// buffer, maps the buffer. The caller answers the hello (WriteHelloReply,
// WriteHelloAccept) and closes the Peer (which unmaps the buffer) and c.
// An offered buffer that is missing or malformed is an error; the hello
// is returned with it, so the caller can say so to the client.
func Accept(c net.Conn) (*Peer, Hello, error) {
	var fr *fdReader
	p := &Peer{conn: c}
	if uc, ok := c.(*net.UnixConn); ok {
		fr = &fdReader{c: uc, oob: make([]byte, unix.CmsgSpace(4*4))}
		p.br = bufio.NewReaderSize(fr, 64<<10)
	} else {
		p.br = bufio.NewReaderSize(c, 64<<10)
	}
	h, err := ReadHelloOpts(p.br)
	var fds []int
	if fr != nil {
		fds = fr.done()
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err != nil {
		return nil, h, err
	}
	if !h.SharedBuffer {
		return p, h, nil
	}
	if len(fds) != 1 {
		return nil, h, errNoSharedFD
	}
	if p.sh, err = mapShared(fds[0]); err != nil {
		return nil, h, err
	}
	return p, h, nil
}

// Reader is the connection's buffered reader (for a unit that speaks
// another protocol after the hello).
func (p *Peer) Reader() *bufio.Reader { return p.br }

// SharedBuffer is the connection's shared data buffer, nil without one.
func (p *Peer) SharedBuffer() *SharedBuffer { return p.sh }

// ReadRequest reads the next request; its DataOut is valid until the
// next call.
func (p *Peer) ReadRequest() (*Request, error) { return readRequest(p.br, &p.buf, p.sh) }

// WriteResponse answers the request read last.
func (p *Peer) WriteResponse(resp *Response) (err error) {
	p.last, err = writeResponse(p.conn, resp, p.sh)
	return err
}

// LastDataIn is where in the shared data buffer the client takes the last
// response's data-in from (nil without a shared buffer or data-in): the
// device must not write there until the next request.
func (p *Peer) LastDataIn() []byte { return p.last }

// Close unmaps the shared data buffer; the connection is the caller's.
func (p *Peer) Close() error { return p.sh.Close() }
