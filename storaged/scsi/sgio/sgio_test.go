//go:build linux

package sgio

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// offsets of struct sg_io_hdr, per §7.1 (64-bit Linux).
func goOffsets() map[string]uintptr {
	var h sgIoHdr
	return map[string]uintptr{
		"interface_id":    unsafe.Offsetof(h.interfaceID),
		"dxfer_direction": unsafe.Offsetof(h.dxferDirection),
		"cmd_len":         unsafe.Offsetof(h.cmdLen),
		"mx_sb_len":       unsafe.Offsetof(h.mxSbLen),
		"iovec_count":     unsafe.Offsetof(h.iovecCount),
		"dxfer_len":       unsafe.Offsetof(h.dxferLen),
		"dxferp":          unsafe.Offsetof(h.dxferp),
		"cmdp":            unsafe.Offsetof(h.cmdp),
		"sbp":             unsafe.Offsetof(h.sbp),
		"timeout":         unsafe.Offsetof(h.timeout),
		"flags":           unsafe.Offsetof(h.flags),
		"pack_id":         unsafe.Offsetof(h.packID),
		"usr_ptr":         unsafe.Offsetof(h.usrPtr),
		"status":          unsafe.Offsetof(h.status),
		"masked_status":   unsafe.Offsetof(h.maskedStatus),
		"msg_status":      unsafe.Offsetof(h.msgStatus),
		"sb_len_wr":       unsafe.Offsetof(h.sbLenWr),
		"host_status":     unsafe.Offsetof(h.hostStatus),
		"driver_status":   unsafe.Offsetof(h.driverStatus),
		"resid":           unsafe.Offsetof(h.resid),
		"duration":        unsafe.Offsetof(h.duration),
		"info":            unsafe.Offsetof(h.info),
		"sizeof":          unsafe.Sizeof(h),
	}
}

func TestSgIoHdrLayoutReference(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("§7.1 offsets are for 64-bit Linux")
	}
	want := map[string]uintptr{
		"interface_id": 0, "dxfer_direction": 4, "cmd_len": 8, "mx_sb_len": 9, "iovec_count": 10, "dxfer_len": 12,
		"dxferp": 16, "cmdp": 24, "sbp": 32, "timeout": 40, "flags": 44, "pack_id": 48, "usr_ptr": 56,
		"status": 64, "masked_status": 65, "msg_status": 66, "sb_len_wr": 67, "host_status": 68, "driver_status": 70,
		"resid": 72, "duration": 76, "info": 80, "sizeof": 88,
	}
	got := goOffsets()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s at %d, want %d", k, got[k], w)
		}
	}
}

// The same check against the system's <scsi/sg.h>, compiled with gcc.
func TestSgIoHdrLayoutGlibc(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	if _, err := os.Stat("/usr/include/scsi/sg.h"); err != nil {
		t.Skip("<scsi/sg.h> not installed")
	}
	dir := t.TempDir()
	src := `#include <stdio.h>
#include <stddef.h>
#include <scsi/sg.h>
#define F(f) printf("%s %zu\n", #f, offsetof(sg_io_hdr_t, f));
int main(void) {
F(interface_id) F(dxfer_direction) F(cmd_len) F(mx_sb_len) F(iovec_count) F(dxfer_len) F(dxferp) F(cmdp)
F(sbp) F(timeout) F(flags) F(pack_id) F(usr_ptr) F(status) F(masked_status) F(msg_status) F(sb_len_wr)
F(host_status) F(driver_status) F(resid) F(duration) F(info)
printf("sizeof %zu\n", sizeof(sg_io_hdr_t));
printf("SG_IO %d\nSG_GET_VERSION_NUM %d\nSG_DXFER_NONE %d\nSG_DXFER_TO_DEV %d\nSG_DXFER_FROM_DEV %d\n", SG_IO, SG_GET_VERSION_NUM, SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_DXFER_FROM_DEV);
return 0; }
`
	if err := os.WriteFile(filepath.Join(dir, "l.c"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "l")
	if out, err := exec.Command(gcc, "-o", bin, filepath.Join(dir, "l.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := goOffsets()
	consts := map[string]int{"SG_IO": sgIO, "SG_GET_VERSION_NUM": sgGetVersionNum, "SG_DXFER_NONE": dxferNone, "SG_DXFER_TO_DEV": dxferToDev, "SG_DXFER_FROM_DEV": dxferFromDev}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		v, _ := strconv.Atoi(f[1])
		if c, ok := consts[f[0]]; ok {
			if c != v {
				t.Errorf("%s = %d in Go, %d in C", f[0], c, v)
			}
			n++
			continue
		}
		g, ok := got[f[0]]
		if !ok || int(g) != v {
			t.Errorf("%s: Go %d, C %d", f[0], g, v)
		}
		n++
	}
	if n != len(got)+len(consts) {
		t.Fatalf("compared %d fields, want %d", n, len(got)+len(consts))
	}
}

func TestOpenMissingNode(t *testing.T) {
	_, err := Open("/dev/sg-tapeward-absent", Options{})
	if err == nil || !strings.Contains(err.Error(), "/dev/sg-tapeward-absent: no such device node") || !strings.Contains(err.Error(), "lsscsi -g") {
		t.Fatalf("%v", err)
	}
}

func TestOpenNotSG(t *testing.T) {
	_, err := Open("/dev/null", Options{})
	if err == nil || !strings.Contains(err.Error(), "/dev/null is not a SCSI generic (sg) device") {
		t.Fatalf("/dev/null: %v", err)
	}
	f := filepath.Join(t.TempDir(), "sg0")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(f, Options{})
	if err == nil || !strings.Contains(err.Error(), "is not a character device") {
		t.Fatalf("regular file: %v", err)
	}
}

func TestPermissionErrorText(t *testing.T) {
	f := filepath.Join(t.TempDir(), "sg7")
	if err := os.WriteFile(f, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o640); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(f, &st); err != nil {
		t.Fatal(err)
	}
	group := lookupGroup(st.Gid)
	owner := lookupUser(st.Uid)
	msg := openError(f, unix.EACCES).Error()
	for _, want := range []string{
		"open " + f + ": permission denied",
		f + " is -rw-r-----, owned by " + owner + ":" + group,
		"to group \"" + group + "\"",
		"CAP_SYS_RAWIO",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("open message %q\nlacks %q", msg, want)
		}
	}
	msg = permissionError(f, "SG_IO SECURITY PROTOCOL OUT on", unix.EPERM).Error()
	if !strings.Contains(msg, "command filter refused") || !strings.Contains(msg, "CAP_SYS_RAWIO") || !strings.Contains(msg, "SECURITY PROTOCOL OUT") {
		t.Errorf("ioctl message %q", msg)
	}
	if modeString(unix.S_IFCHR|0o660) != "crw-rw----" {
		t.Errorf("modeString %q", modeString(unix.S_IFCHR|0o660))
	}
	// A real EACCES when not running as root.
	if os.Geteuid() != 0 {
		if err := os.Chmod(f, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Open(f, Options{})
		if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "----------") {
			t.Fatalf("real EACCES: %v", err)
		}
	}
}

func TestWrongTypeMessage(t *testing.T) {
	e := &WrongTypeError{Path: "/dev/sg0", Inquiry: &scsi.InquiryData{DeviceType: 0, Vendor: "ATA", Product: "Samsung SSD"}, Want: []byte{scsi.TypeTape, scsi.TypeMediumChanger}}
	want := "refusing /dev/sg0: it is a direct-access block device (disk) (ATA Samsung SSD), expected a sequential-access device (tape drive) or medium changer"
	if e.Error() != want {
		t.Fatalf("%q", e.Error())
	}
}

func TestDoValidates(t *testing.T) {
	tr := &Transport{path: "/dev/sgX", fd: -1}
	if _, err := tr.Do(&scsi.Command{CDB: make([]byte, 6), Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("closed: %v", err)
	}
	fd, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr = &Transport{path: "/dev/null", fd: fd}
	defer tr.Close()
	if _, err := tr.Do(&scsi.Command{CDB: make([]byte, 6)}); err == nil || !strings.Contains(err.Error(), "no timeout") {
		t.Fatalf("zero timeout: %v", err)
	}
	if _, err := tr.Do(&scsi.Command{CDB: make([]byte, 4), Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "6..16") {
		t.Fatalf("short CDB: %v", err)
	}
	// A real SG_IO on a non-sg fd: the kernel says ENOTTY; the error names
	// the command, and the signal mask is restored afterwards.
	var before, after unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, nil, &before)
	_, err = tr.Do(&scsi.Command{CDB: scsi.TestUnitReadyCDB(), Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "TEST UNIT READY") || !errors.Is(err, syscall.ENOTTY) {
		t.Fatalf("SG_IO on /dev/null: %v", err)
	}
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, nil, &after)
	if before != after {
		t.Fatalf("signal mask changed: %v -> %v", before, after)
	}
}

func TestBlockedSignals(t *testing.T) {
	has := func(s unix.Signal) bool {
		bits := int(unsafe.Sizeof(blockedSignals.Val[0])) * 8
		return blockedSignals.Val[(int(s)-1)/bits]&(1<<uint((int(s)-1)%bits)) != 0
	}
	for _, s := range []unix.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGHUP} {
		if !has(s) {
			t.Errorf("%v not blocked", s)
		}
	}
	for _, s := range []unix.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL} {
		if has(s) {
			t.Errorf("%v blocked", s)
		}
	}
}

// TestSysfsMaxTransfer: the queue limit is read from the sg node's device
// directory (max_sectors_kb), in bytes.
func TestSysfsMaxTransfer(t *testing.T) {
	root := t.TempDir()
	if got := sysfsMaxTransfer(root, 21, 3); got != 0 {
		t.Fatalf("absent: %d", got)
	}
	dir := filepath.Join(root, "dev", "char", "21:3", "device", "queue")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "max_sectors_kb"), []byte("1024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := sysfsMaxTransfer(root, 21, 3); got != 1<<20 {
		t.Fatalf("max_sectors_kb 1024: %d", got)
	}
}
