//go:build linux

// Package sgio is the Linux SG_IO transport for storaged/scsi (reference
// §7): one open /dev/sgN node, one command at a time.
//
// Why the ioctl runs on a locked OS thread with signals blocked (§7.4):
// the sg driver waits for SG_IO completion interruptibly. If a signal is
// delivered to the waiting thread, the request is orphaned but keeps
// running on the device, and because Go installs its handlers with
// SA_RESTART the kernel may transparently restart the ioctl — sending the
// CDB a second time. For tape that duplicates a WRITE, SPACE or WRITE
// FILEMARKS and silently corrupts the position. A blocked signal does not
// make a signal pending for that thread, so the wait is never broken: the
// signal stays queued (or goes to another thread, for process-directed
// signals) and is handled after the mask is restored. Synchronous fault
// signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) stay unblocked
// — blocking them would turn a fault into a kill — and SIGKILL/SIGSTOP
// cannot be blocked. The Go runtime's preemption signal (SIGURG) is only
// delayed. If the ioctl nevertheless fails with EINTR, the command's fate
// is unknown and it is NOT retried: the caller must re-read the position.
package sgio

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// ioctl numbers (§7.1).
const (
	sgIO              = 0x2285
	sgGetVersionNum   = 0x2282
	sgGetReservedSize = 0x2272
	// blkSectGet (BLKSECTGET) on an sg node answers the request queue's
	// max_sectors in bytes (sg.c max_sectors_bytes): the largest SG_IO
	// data transfer; a larger one fails with ENOMEM.
	blkSectGet = 0x1267
)

// MinVersion is the lowest sg driver version accepted (v3 interface).
const MinVersion = 30000

// sg_io_hdr dxfer_direction values.
const (
	dxferNone    = -1
	dxferToDev   = -2
	dxferFromDev = -3
)

// senseLen is the sense buffer size (the SPC maximum).
const senseLen = 252

// sgIoHdr mirrors struct sg_io_hdr (v3) from <scsi/sg.h>, field for field;
// its layout (88 bytes on 64-bit Linux) is checked in sgio_test.go.
type sgIoHdr struct {
	interfaceID    int32          // 'S'
	dxferDirection int32          // SG_DXFER_*
	cmdLen         uint8          // CDB length
	mxSbLen        uint8          // sense buffer size
	iovecCount     uint16         // 0: dxferp is a flat buffer
	dxferLen       uint32         // data length
	dxferp         unsafe.Pointer // data buffer
	cmdp           unsafe.Pointer // CDB
	sbp            unsafe.Pointer // sense buffer
	timeout        uint32         // milliseconds
	flags          uint32
	packID         int32
	usrPtr         unsafe.Pointer
	status         uint8 // SAM status
	maskedStatus   uint8
	msgStatus      uint8
	sbLenWr        uint8 // sense bytes written
	hostStatus     uint16
	driverStatus   uint16
	resid          int32
	duration       uint32
	info           uint32
}

// Options controls Open.
type Options struct {
	// Types lists the acceptable INQUIRY peripheral device types; empty
	// means a tape drive or a medium changer.
	Types []byte
	// Exclusive opens with O_EXCL (fails with EBUSY if anyone else has
	// the node open).
	Exclusive bool
}

// Transport is an open sg node. It is not safe for concurrent use.
type Transport struct {
	path    string
	fd      int
	version int
	inquiry *scsi.InquiryData
	maxTx   int // largest data transfer (0: unknown)
}

// Open opens an sg node read-write (O_NONBLOCK for the open only, then
// cleared, as proxmox does), checks the sg driver version, and refuses a
// device whose INQUIRY type is not one of opts.Types.
func Open(path string, opts Options) (*Transport, error) {
	flags := unix.O_RDWR | unix.O_NONBLOCK | unix.O_CLOEXEC
	if opts.Exclusive {
		flags |= unix.O_EXCL
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			detail := "EBUSY: another process holds it exclusively"
			if opts.Exclusive {
				detail = "EBUSY: an exclusive (O_EXCL) open needs the node closed by everyone else"
			}
			return nil, &scsi.BusyDeviceError{Addr: path, Detail: detail}
		}
		return nil, openError(path, err)
	}
	t := &Transport{path: path, fd: fd}
	if err := t.setup(opts); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return t, nil
}

func (t *Transport) setup(opts Options) error {
	var st unix.Stat_t
	if err := unix.Fstat(t.fd, &st); err != nil {
		return fmt.Errorf("%s: fstat: %w", t.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("%s is not a character device, so not a SCSI generic node (expected /dev/sgN; find it with `lsscsi -g`)", t.path)
	}
	if major := unix.Major(uint64(st.Rdev)); major == 9 {
		return fmt.Errorf("%s is an st tape node (major 9): use the drive's sg node instead (`lsscsi -g`, or /sys/class/scsi_tape/%s/device/scsi_generic/); SG_IO through st filters commands and bypasses st's state", t.path, baseName(t.path))
	}
	fl, err := unix.FcntlInt(uintptr(t.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(t.fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		return fmt.Errorf("%s: clearing O_NONBLOCK: %w", t.path, err)
	}
	v, err := unix.IoctlGetInt(t.fd, sgGetVersionNum)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s is not a SCSI generic (sg) device: SG_GET_VERSION_NUM: %v (expected /dev/sgN; find it with `lsscsi -g`)", t.path, err)
		}
		return fmt.Errorf("%s: SG_GET_VERSION_NUM: %w", t.path, err)
	}
	if v < MinVersion {
		return fmt.Errorf("%s: sg driver version %d is too old (need ≥ %d, the v3 SG_IO interface)", t.path, v, MinVersion)
	}
	t.version = v
	t.maxTx = t.queryMaxTransfer(st.Rdev)
	dev := scsi.NewDevice(t)
	q, err := dev.Inquiry()
	if err != nil {
		return err
	}
	t.inquiry = q
	types := opts.Types
	if len(types) == 0 {
		types = []byte{scsi.TypeTape, scsi.TypeMediumChanger}
	}
	for _, ty := range types {
		if q.DeviceType == ty {
			return nil
		}
	}
	return &WrongTypeError{Path: t.path, Inquiry: q, Want: types}
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// WrongTypeError refuses an sg node that is not the kind of device asked for.
type WrongTypeError struct {
	Path    string
	Inquiry *scsi.InquiryData
	Want    []byte
}

func (e *WrongTypeError) Error() string {
	var want []string
	for _, w := range e.Want {
		want = append(want, scsi.DeviceTypeName(w))
	}
	s := ""
	for i, w := range want {
		if i > 0 {
			s += " or "
		}
		s += w
	}
	return fmt.Sprintf("refusing %s: it is a %s (%s %s), expected a %s",
		e.Path, scsi.DeviceTypeName(e.Inquiry.DeviceType), e.Inquiry.Vendor, e.Inquiry.Product, s)
}

// openError explains why an sg node could not be opened.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("open %s: no such device node (is the sg module loaded? `modprobe sg`; list tape nodes with `lsscsi -g`)", path)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return permissionError(path, "open", err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("open %s: device busy: another process has it open exclusively", path)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return fmt.Errorf("open %s: no device behind this node (detached or powered off): %w", path, err)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// permissionError describes the node's owner, group and mode, and what to
// change. For open failures the file mode decides; for SG_IO EPERM the
// kernel's command filter does, and CAP_SYS_RAWIO lifts it (§7.3).
func permissionError(path, op string, err error) error {
	var st unix.Stat_t
	owner := "unknown owner"
	group, groupName := "", ""
	mode := ""
	if unix.Stat(path, &st) == nil {
		owner = lookupUser(st.Uid)
		groupName = lookupGroup(st.Gid)
		group = groupName
		mode = modeString(st.Mode)
	}
	self := "the daemon user"
	if u, uerr := user.Current(); uerr == nil {
		self = "the daemon user (" + u.Username + ")"
	}
	detail := fmt.Sprintf("%s is %s, owned by %s:%s", path, mode, owner, group)
	if op == "open" {
		return fmt.Errorf("open %s: %v: %s; add %s to group %q, or give it CAP_SYS_RAWIO and access to the node (e.g. a udev rule setting GROUP=%q, MODE=\"0660\")",
			path, err, detail, self, groupName, groupName)
	}
	return fmt.Errorf("%s %s: %v: the kernel's SCSI command filter refused the command (%s); open the sg node read-write (not an st node, not read-only), or give %s CAP_SYS_RAWIO",
		op, path, err, detail, self)
}

func lookupUser(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func lookupGroup(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// modeString renders a device mode like ls: "crw-rw----".
func modeString(m uint32) string {
	b := []byte("?---------")
	switch m & unix.S_IFMT {
	case unix.S_IFCHR:
		b[0] = 'c'
	case unix.S_IFBLK:
		b[0] = 'b'
	case unix.S_IFREG:
		b[0] = '-'
	case unix.S_IFDIR:
		b[0] = 'd'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	return string(b)
}

// queryMaxTransfer asks the kernel how large one SG_IO transfer may be:
// BLKSECTGET (the queue's max_sectors in bytes), else the queue's
// max_sectors_kb in sysfs, else the sg reserved buffer size.
func (t *Transport) queryMaxTransfer(rdev uint64) int {
	if v, err := unix.IoctlGetInt(t.fd, blkSectGet); err == nil && v > 0 {
		return v
	}
	if v := sysfsMaxTransfer("/sys", unix.Major(rdev), unix.Minor(rdev)); v > 0 {
		return v
	}
	if v, err := unix.IoctlGetInt(t.fd, sgGetReservedSize); err == nil && v > 0 {
		return v
	}
	return 0
}

// sysfsMaxTransfer reads max_sectors_kb of the request queue behind the
// character device major:minor under the sysfs root sys, in bytes (0 if
// absent).
func sysfsMaxTransfer(sys string, major, minor uint32) int {
	base := fmt.Sprintf("%s/dev/char/%d:%d/device", sys, major, minor)
	for _, p := range []string{base + "/queue/max_sectors_kb", base + "/max_sectors_kb"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if kb, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && kb > 0 {
			return kb << 10
		}
	}
	return 0
}

// MaxTransfer implements scsi.MaxTransferer: the largest data transfer
// this node's queue takes, as the kernel reported it at open (0: unknown).
func (t *Transport) MaxTransfer() int { return t.maxTx }

// Addr implements scsi.Transport.
func (t *Transport) Addr() string { return t.path }

// Version is the sg driver version (e.g. 30536).
func (t *Transport) Version() int { return t.version }

// Inquiry is the INQUIRY data read at open.
func (t *Transport) Inquiry() *scsi.InquiryData { return t.inquiry }

// Close implements scsi.Transport.
func (t *Transport) Close() error {
	if t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	return err
}

// Do implements scsi.Transport: one SG_IO.
func (t *Transport) Do(cmd *scsi.Command) (scsi.Result, error) {
	if t.fd < 0 {
		return scsi.Result{}, fmt.Errorf("%s: transport closed", t.path)
	}
	if len(cmd.CDB) < 6 || len(cmd.CDB) > 16 {
		return scsi.Result{}, fmt.Errorf("%s: CDB of %d bytes (SG_IO takes 6..16)", t.path, len(cmd.CDB))
	}
	if cmd.Timeout <= 0 {
		return scsi.Result{}, fmt.Errorf("%s: no timeout set (a zero timeout means a driver default; always pass one)", t.path)
	}
	if uint64(len(cmd.Data)) > uint64(^uint32(0)) {
		return scsi.Result{}, fmt.Errorf("%s: data buffer of %d bytes is too large", t.path, len(cmd.Data))
	}
	sense := make([]byte, senseLen)
	cdb := append([]byte(nil), cmd.CDB...)
	ms := cmd.Timeout / time.Millisecond
	if ms > time.Duration(^uint32(0)) {
		ms = time.Duration(^uint32(0))
	}
	h := sgIoHdr{
		interfaceID: 'S',
		cmdLen:      uint8(len(cdb)),
		mxSbLen:     senseLen,
		cmdp:        unsafe.Pointer(&cdb[0]),
		sbp:         unsafe.Pointer(&sense[0]),
		timeout:     uint32(ms),
	}
	switch {
	case cmd.Dir == scsi.DirToDevice && len(cmd.Data) > 0:
		h.dxferDirection = dxferToDev
	case cmd.Dir == scsi.DirFromDevice && len(cmd.Data) > 0:
		h.dxferDirection = dxferFromDev
	default:
		h.dxferDirection = dxferNone
	}
	if h.dxferDirection != dxferNone {
		h.dxferLen = uint32(len(cmd.Data))
		h.dxferp = unsafe.Pointer(&cmd.Data[0])
	}
	errno := ioctlNoSignals(t.fd, &h)
	runtime.KeepAlive(cdb)
	runtime.KeepAlive(sense)
	runtime.KeepAlive(cmd.Data)
	if errno != 0 {
		return scsi.Result{}, t.ioctlError(cmd, errno)
	}
	res := scsi.Result{
		Status:       h.status,
		HostStatus:   h.hostStatus,
		DriverStatus: h.driverStatus,
		Resid:        int(h.resid),
	}
	if n := int(h.sbLenWr); n > 0 {
		res.Sense = sense[:min(n, senseLen)]
	}
	if h.dxferDirection == dxferNone {
		res.Resid = 0
	}
	return res, nil
}

func (t *Transport) ioctlError(cmd *scsi.Command, errno syscall.Errno) error {
	op := scsi.OpName(cmd.CDB[0])
	switch errno {
	case unix.EPERM, unix.EACCES:
		return permissionError(t.path, "SG_IO "+op+" on", errno)
	case unix.EINTR:
		return fmt.Errorf("%s: SG_IO %s interrupted by a signal: the command may still run on the device; re-read the tape position before continuing", t.path, op)
	case unix.EINVAL:
		return fmt.Errorf("%s: SG_IO %s: invalid request header or direction (%v)", t.path, op, errno)
	case unix.ENOMEM, unix.EIO:
		return fmt.Errorf("%s: SG_IO %s: %v (a transfer of %d bytes may exceed the adapter's limit of %d bytes the kernel reported; see max_sectors_kb; use a smaller block_size)", t.path, op, errno, len(cmd.Data), t.maxTx)
	case unix.ENODEV, unix.ENXIO:
		return fmt.Errorf("%s: SG_IO %s: device is gone (%v)", t.path, op, errno)
	}
	return fmt.Errorf("%s: SG_IO %s: %w", t.path, op, errno)
}

// blockedSignals is every signal except the synchronous fault signals.
var blockedSignals = func() unix.Sigset_t {
	var set unix.Sigset_t
	bits := int(unsafe.Sizeof(set.Val[0])) * 8
	for sig := 1; sig <= len(set.Val)*bits && sig <= 64; sig++ {
		switch unix.Signal(sig) {
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS, unix.SIGKILL, unix.SIGSTOP:
			continue
		}
		set.Val[(sig-1)/bits] |= 1 << uint((sig-1)%bits)
	}
	return set
}()

// ioctlNoSignals issues SG_IO on a locked OS thread with signals blocked
// (see the package comment).
func ioctlNoSignals(fd int, h *sgIoHdr) syscall.Errno {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &blockedSignals, &old); err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			return e
		}
		return unix.EINVAL
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), sgIO, uintptr(unsafe.Pointer(h)))
	// Restore the mask before unlocking the thread; a failure here would
	// leave a thread with signals blocked, so crash rather than continue.
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); err != nil {
		panic("sgio: restoring the signal mask: " + err.Error())
	}
	return errno
}
