package vtlwire

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shared data buffer (hello flag bit 1): the data phases of a
// connection go through memory both ends map instead of through the
// socket, as an adapter's DMA puts them straight into the initiator's
// pages: one copy per block instead of two, and no socket buffers.
//
// The client makes a memfd of SharedSize bytes and sends it with the
// hello (SCM_RIGHTS); the device maps it. Its first half is the data-out
// area, its second the device's area. In this mode a request's data-out
// bytes are in the data-out area from offset 0 (none follow the header),
// and a response carries, after its header, a u32 offset in the buffer
// where its data-in bytes are (none follow the sense). A device that
// builds data-in in its area (vtl reads and decrypts a block there) sends
// it without a copy. Commands are strictly one at a time, so neither end
// touches the buffer while the other owns it.
const (
	sharedHalf = MaxData + 64<<10 // a block and its record header
	// SharedSize is the size of a shared data buffer.
	SharedSize = 2 * sharedHalf
)

// helloShared is the hello flag that offers a shared data buffer.
const helloShared = 2

// SharedBuffer is one end's mapping of a connection's shared data buffer.
type SharedBuffer struct {
	mem []byte
}

// newShared makes a shared data buffer; it returns its mapping and the
// memfd to send (the caller closes it once sent).
func newShared() (*SharedBuffer, int, error) {
	fd, err := unix.MemfdCreate("vtl-data", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, -1, fmt.Errorf("making the shared data buffer (memfd_create): %w", err)
	}
	if err := unix.Ftruncate(fd, SharedSize); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("sizing the shared data buffer: %w", err)
	}
	sh, err := mapShared(fd)
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return sh, fd, nil
}

// mapShared maps the buffer fd refers to, which must be SharedSize bytes.
func mapShared(fd int) (*SharedBuffer, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("the shared data buffer: %w", err)
	}
	if st.Size != SharedSize {
		return nil, fmt.Errorf("%w: the shared data buffer is %d bytes, not %d", ErrProtocol, st.Size, SharedSize)
	}
	mem, err := unix.Mmap(fd, 0, SharedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the shared data buffer: %w", err)
	}
	return &SharedBuffer{mem: mem}, nil
}

// Close unmaps the buffer; nil and closed buffers are ignored.
func (s *SharedBuffer) Close() error {
	if s == nil || s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem = nil
	return err
}

// out is the data-out area.
func (s *SharedBuffer) out() []byte { return s.mem[:sharedHalf:sharedHalf] }

// Device is the device's area (all of it): a device that builds data-in
// here (and leaves it here) has it sent without a copy. Nil for a nil
// buffer.
func (s *SharedBuffer) Device() []byte {
	if s == nil {
		return nil
	}
	return s.mem[sharedHalf:SharedSize:SharedSize]
}

// offsetOf returns where b lies in the buffer, if it lies wholly in it.
func (s *SharedBuffer) offsetOf(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, true
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p-base+uintptr(len(b)) > uintptr(len(s.mem)) {
		return 0, false
	}
	return int(p - base), true
}

// fdReader reads a unix socket and keeps the descriptors that arrive
// with the bytes (the hello's shared data buffer).
type fdReader struct {
	c   *net.UnixConn
	fds []int
	oob []byte
}

func (r *fdReader) Read(p []byte) (int, error) {
	if r.oob == nil {
		return r.c.Read(p)
	}
	n, oobn, _, _, err := r.c.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(r.oob[:oobn])
		for _, m := range msgs {
			if fds, e := unix.ParseUnixRights(&m); e == nil {
				r.fds = append(r.fds, fds...)
			}
		}
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: control message: %v", ErrProtocol, perr)
		}
	}
	return n, err
}

// done stops looking for descriptors and returns (and forgets) those
// that came.
func (r *fdReader) done() []int {
	r.oob = nil
	fds := r.fds
	r.fds = nil
	return fds
}

var errNoSharedFD = errors.New("the hello offers a shared data buffer but no descriptor came with it")
